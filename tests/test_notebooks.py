"""The notebooks as a whole: student copies in sync, stopping only at checks, registry complete."""

import re
from pathlib import Path

import nbformat
import pytest

from course_utils.authoring import BEGIN, ROOT, stale_student_notebooks
from course_utils.checks import REGISTRY, exercises

SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
STUDENT = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHECK_CALL = re.compile(r"^\s*check\.(\w+)\(\s*\1\s*\)", re.MULTILINE)


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
def test_student_notebook_stops_only_at_checks(path, monkeypatch):
    """Run the student copy: each check cell says 'not started', and no other cell fails."""
    from nbclient import NotebookClient

    monkeypatch.setenv("COURSE_FAST", "1")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
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
