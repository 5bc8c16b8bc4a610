"""`make check`: a progress report of passed, failed and not-started exercises."""

import nbformat
import pytest

from course_utils import selfcheck

SETUP = "import torch\nfrom course_utils import check"
BODIES = {
    "passed": "return torch.logsumexp(x, dim)",
    "failed": "return (x - x.amax(dim, keepdim=True)).exp().sum(dim).log()",
    "not started": "raise NotImplementedError()",
}


def _student_notebook(folder, body, extra=""):
    cells = [SETUP, f"def logsumexp(x, dim):\n    {body}", "check.logsumexp(logsumexp)"]
    if extra:
        cells.append(extra)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    path = folder / "00_welcome.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("status", list(BODIES))
def test_progress_table_reports_each_status(status, tmp_path, capsys):
    path = _student_notebook(tmp_path, BODIES[status])
    before = path.read_bytes()
    code = selfcheck.main([str(path)])
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("00_welcome"))
    assert "logsumexp" in row and status in row
    assert code == 0, "unfinished work is progress, not an error"
    assert out.rstrip().endswith(f"{int(status == 'passed')} of 1 exercises passed")
    assert "pytest" not in out and "Error 1" not in out and "passed," not in out
    assert path.read_bytes() == before, "make check must never modify the student's notebook"
    if status == "failed":  # the mistake is named, the answer is not given
        assert "add it back" in out and "m + log" not in out


def test_strict_exits_1_unless_everything_passed(tmp_path, capsys):
    assert selfcheck.main([str(_student_notebook(tmp_path, BODIES["failed"])), "--strict"]) == 1
    assert selfcheck.main([str(_student_notebook(tmp_path, BODIES["passed"])), "--strict"]) == 0


def test_failure_message_is_whole_and_wrapped():
    long = "word " * 60
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("check.logsumexp(logsumexp)")])
    nb.cells[0].execution_count = 1
    nb.cells[0].outputs = [nbformat.v4.new_output(
        "error", ename="CheckFailed", evalue="x",
        traceback=["\x1b[31m✗ logsumexp\x1b[0m: " + long + "END", "  hint: second line"])]
    table, done, total = selfcheck.progress_table({"00_welcome": selfcheck.notebook_progress(nb)})
    assert (done, total) == (0, 1)
    assert "END" in table and "hint: second line" in table, "the whole message, hint included"
    assert max(len(line) for line in table.splitlines()) <= selfcheck.WIDTH
    assert "\x1b[" not in table


def test_other_failing_cells_are_listed(tmp_path, capsys):
    path = _student_notebook(tmp_path, BODIES["passed"], extra="undefined_name + 1")
    selfcheck.main([str(path)])
    out = capsys.readouterr().out
    assert "(other cell)" in out and "NameError" in out


def test_missing_notebook_is_reported(tmp_path, capsys):
    assert selfcheck.main([str(tmp_path / "nope.ipynb")]) == 2
    assert "no such notebook" in capsys.readouterr().out


def test_no_work_folder_says_what_to_do(tmp_path, capsys):
    assert selfcheck.main(["--work-dir", str(tmp_path / "work")]) == 2
    assert "make lab" in capsys.readouterr().out
