"""Claims: a false sentence fails the run, fast mode skips, a stored run is complete."""

import os

import nbformat
import pytest

from course_utils import authoring
from course_utils.authoring import ROOT
from course_utils.claims import HOLDS, SKIPPED, ClaimFailed, claim, stored_run_problems

SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
SETUP = 'from course_utils import fast_mode\nprint(f"fast mode: {fast_mode()}")'
CLAIM = "from course_utils.claims import claim\nclaim({holds}, 'the gap shrinks', 'gap 0.3')"


def _notebook(holds: str = "True") -> nbformat.NotebookNode:
    claim_cell = nbformat.v4.new_code_cell(CLAIM.format(holds=holds))
    claim_cell.metadata["tags"] = ["solution-only"]
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP), claim_cell])


def _run(nb, monkeypatch, fast: bool) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    monkeypatch.setenv("COURSE_FAST", "1" if fast else "0")
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True).execute()
    return nb


def test_a_true_claim_prints_the_sentence_and_its_evidence(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "0")
    claim(3 > 2, "three beats two", "3 vs 2")
    assert capsys.readouterr().out == f"{HOLDS} three beats two (3 vs 2)\n"


def test_a_false_claim_quotes_the_sentence_and_says_what_to_do(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "0")
    with pytest.raises(ClaimFailed, match='"the rows differ".*0.01') as err:
        claim(False, "the rows differ", "spread 0.01")
    assert "Change the sentence" in str(err.value)


def test_fast_mode_skips_claims_and_says_so(capsys, monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")
    claim(False, "the rows differ")  # not asserted on a fast run's tiny data
    assert capsys.readouterr().out == f"{SKIPPED} the rows differ\n"


def test_a_claim_needs_its_sentence():
    with pytest.raises(TypeError, match="sentence"):
        claim(True, "")


def test_a_failing_claim_fails_make_solutions_and_saves_nothing(tmp_path, monkeypatch, capsys):
    path = tmp_path / "99_claim.ipynb"
    text = authoring.serialize(_notebook("1 > 2"))
    path.write_text(text, encoding="utf-8")
    monkeypatch.delenv("COURSE_FAST", raising=False)  # as `make solutions` runs it
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert authoring.main(["execute", str(path)]) == 1
    assert "ClaimFailed" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == text
    assert "TQDM_DISABLE" not in os.environ  # the run leaves the caller's environment alone


def test_a_default_run_with_every_claim_held_is_accepted(monkeypatch):
    assert stored_run_problems(_run(_notebook(), monkeypatch, fast=False)) == []


def test_outputs_stored_from_a_fast_run_are_rejected(monkeypatch):
    problems = stored_run_problems(_run(_notebook(), monkeypatch, fast=True), "nb")
    assert any("fast run" in p for p in problems)
    assert any("0 of 1 claims" in p for p in problems)


def test_a_claim_cell_that_never_ran_is_rejected(monkeypatch):
    nb = _run(_notebook(), monkeypatch, fast=False)
    nb.cells[1].outputs, nb.cells[1].execution_count = [], None
    problems = stored_run_problems(nb, "nb")
    assert "nb, cell 1: never ran in the stored run" in problems
    assert "nb, cell 1: 0 of 1 claims stored as holding" in problems


def test_a_failed_claim_or_an_untagged_claim_cell_is_rejected(monkeypatch):
    nb = _run(_notebook("False"), monkeypatch, fast=False)
    nb.cells[1].metadata["tags"] = []
    problems = stored_run_problems(nb, "nb")
    assert "nb, cell 1: stored with an error" in problems
    assert any("must be tagged solution-only" in p for p in problems)


def test_a_notebook_without_claims_is_rejected(monkeypatch):
    nb = _run(_notebook(), monkeypatch, fast=False)
    del nb.cells[1]
    assert stored_run_problems(nb, "nb") == ["nb: no claim cell guards its prose"]


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_stored_solutions_are_a_default_run_with_every_claim_held(path):
    nb = nbformat.read(path, as_version=4)
    assert stored_run_problems(nb, path.name) == []
