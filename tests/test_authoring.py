"""The generator of student notebooks and the percent-format drafts."""

import nbformat
import pytest

from course_utils.authoring import from_percent, serialize, student_copy

DRAFT = '''# %% [markdown]
# # Title
# Some *prose*.

# %%
import torch

# %%
def square(x):
    """x (N,) -> (N,)"""
    y = x
    ### BEGIN SOLUTION
    return y * y
    ### END SOLUTION

# %% tags=["solution-only"]
secret = 42

# %% [markdown]
# Why?
# ### BEGIN SOLUTION
# because
# ### END SOLUTION
'''


def _draft():
    nb = from_percent(DRAFT)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="hi")]
    nb.cells[1].execution_count = 3
    return nb


def test_from_percent_builds_cells_with_tags():
    nb = from_percent(DRAFT)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "code", "markdown"]
    assert nb.cells[0].source == "# Title\nSome *prose*."
    assert nb.cells[3].metadata["tags"] == ["solution-only"]
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_student_copy_stubs_answers_keeps_signature_and_indent():
    student = student_copy(_draft())
    code = student.cells[2].source
    assert code.splitlines() == [
        "def square(x):",
        '    """x (N,) -> (N,)"""',
        "    y = x",
        "    # YOUR CODE HERE",
        "    raise NotImplementedError()",
    ]


def test_student_copy_hides_markdown_answers():
    assert student_copy(_draft()).cells[-1].source == "Why?\nYOUR ANSWER HERE"


def test_student_copy_drops_solution_only_cells_and_clears_outputs():
    student = student_copy(_draft())
    assert all("secret" not in c.source for c in student.cells)
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None


def test_student_copy_leaves_the_solution_untouched():
    nb = _draft()
    before = serialize(nb)
    student_copy(nb)
    assert serialize(nb) == before


def test_student_copy_is_deterministic():
    nb = _draft()
    assert serialize(student_copy(nb)) == serialize(student_copy(nb))


@pytest.mark.parametrize(
    "source, message",
    [
        ("### BEGIN SOLUTION\nx = 1\n", "never closed"),
        ("x = 1\n### END SOLUTION\n", "without"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
    ],
)
def test_unbalanced_markers_are_reported_with_their_cell(source, message):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    with pytest.raises(ValueError, match=message) as err:
        student_copy(nb, "07_x.ipynb")
    assert "07_x.ipynb, cell 0" in str(err.value)
