"""`make check`: the progress table reports passed, failed and not-started exercises."""

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
    assert code == (0 if status == "passed" else 1)
    assert path.read_bytes() == before, "make check must never modify the student's notebook"
    if status == "failed":
        assert "add it back" not in row or "differs" in row


def test_other_failing_cells_are_listed(tmp_path, capsys):
    path = _student_notebook(tmp_path, BODIES["passed"], extra="undefined_name + 1")
    selfcheck.main([str(path)])
    out = capsys.readouterr().out
    assert "(other cell)" in out and "NameError" in out


def test_missing_notebook_is_reported(tmp_path, capsys):
    assert selfcheck.main([str(tmp_path / "nope.ipynb")]) == 2
    assert "no such notebook" in capsys.readouterr().out
