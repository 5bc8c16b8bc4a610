"""The notebooks as a whole: student copies in sync, Run All finishing, registry complete."""

import re
from pathlib import Path

import nbformat
import pytest

from course_utils.authoring import BEGIN, ROOT, stale_student_notebooks
from course_utils.checks import REGISTRY, exercises

SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
STUDENT = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK_CALL = re.compile(r"^\s*check\.(\w+)\(\s*\1\s*\)", re.MULTILINE)
TRAINED_BY_YOURS = {"04_vae", "05_iwae", "06_beta_vae", "07_conditional_vae"}


def _all_text(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))


@pytest.mark.parametrize("stem", sorted(TRAINED_BY_YOURS))
def test_stored_solutions_are_trained_by_the_exercise_code(stem):
    """The solutions pass their checks, so their stored runs say the student's code trained."""
    nb = nbformat.read(ROOT / "solutions" / f"{stem}.ipynb", as_version=4)
    assert "using your " in _all_text(nb) and "using the reference" not in _all_text(nb)


def _code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert SOLUTIONS and [p.name for p in SOLUTIONS] == [p.name for p in STUDENT]


def test_student_copies_match_solutions():
    assert stale_student_notebooks() == [], "notebooks/ is stale: run `make student`"


def test_student_copies_have_no_answers_or_outputs():
    for path in STUDENT:
        for cell in _code_cells(path):
            assert BEGIN not in cell.source, f"{path.name}: a solution leaked"
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_every_exercise_has_a_stub_and_a_check_right_after(path):
    cells = _code_cells(path)
    registered = {e.name for e in exercises(path.stem)}
    checked = [name for c in cells for name in CHECK_CALL.findall(c.source)]
    assert sorted(checked) == sorted(registered), f"{path.name}: check cells vs registry"
    for i, cell in enumerate(cells):
        for name in CHECK_CALL.findall(cell.source):
            previous = cells[i - 1].source
            assert f"def {name}(" in previous and BEGIN in previous, (
                f"{path.name}: the cell before check.{name} must define {name} with a solution"
            )


def test_every_registered_exercise_has_a_notebook():
    stems = {p.stem for p in SOLUTIONS}
    for exercise in REGISTRY.values():
        assert exercise.notebook in stems, f"{exercise.name}: no notebook {exercise.notebook}"


def test_first_code_cell_is_the_standard_setup():
    for path in SOLUTIONS:
        first = _code_cells(path)[0].source
        for line in ("seed_everything(0)", "device = get_device()", "FAST = fast_mode()"):
            assert line in first, f"{path.name}: setup cell lacks `{line}`"


@pytest.mark.parametrize("path", STUDENT, ids=lambda p: p.stem)
def test_untouched_student_notebook_runs_to_the_end(path, monkeypatch):
    """Run All on the student copy, as JupyterLab does: it stops at an error unless the cell
    is tagged raises-exception. Every check cell says 'not started', the last cell runs, and
    no other cell fails."""
    from nbclient import NotebookClient

    monkeypatch.setenv("COURSE_FAST", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(  # allow_errors=False: only the raises-exception tag lets a cell fail
        nb, timeout=600, kernel_name="python3", allow_errors=False,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    last_code = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last_code.execution_count is not None, f"{path.name}: Run All did not reach the end"
    if path.stem in TRAINED_BY_YOURS:  # unfinished exercises: the reference trains the model
        assert "using the reference" in _all_text(nb), path.name
    not_started, unexpected = [], []
    for index, cell in enumerate(nb.cells):
        errors = [o for o in cell.get("outputs", []) if o.output_type == "error"]
        names = CHECK_CALL.findall(cell.source) if cell.cell_type == "code" else []
        for error in errors:
            if names and error.ename == "ExerciseNotStarted":
                not_started.extend(names)
            else:
                unexpected.append(f"cell {index}: {error.ename}: {error.evalue[:200]}")
    assert not unexpected, f"{path.name}: cells failed that should not:\n" + "\n".join(unexpected)
    assert sorted(not_started) == sorted(e.name for e in exercises(path.stem))


def test_only_check_cells_may_raise_in_student_copies():
    for path in STUDENT:
        for cell in _code_cells(path):
            tagged = "raises-exception" in cell.metadata.get("tags", [])
            assert tagged == bool(re.search(r"^\s*check\.\w+\(", cell.source, re.MULTILINE)), (
                f"{path.name}: only check cells are tagged raises-exception")
    for path in SOLUTIONS:  # the solutions keep failing loudly under nbval
        for cell in _code_cells(path):
            assert "raises-exception" not in cell.metadata.get("tags", []), path.name


def test_a_check_run_before_its_exercise_cell_says_what_to_do():
    """'Run All Above' or a skipped cell: a top-level NameError is two lines, not a traceback;
    a NameError inside a function keeps its traceback."""
    from nbclient import NotebookClient

    sources = ["from course_utils import check", "check.logsumexp(logsumexp)",
               "def f():\n    return nope\nf()"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    short, deep = (c.outputs[0] for c in nb.cells[1:])
    assert short.ename == "NameError" and len(short.traceback) == 2
    assert "Run the cell that defines it first" in short.traceback[1]
    assert deep.ename == "NameError" and len(deep.traceback) > 2
