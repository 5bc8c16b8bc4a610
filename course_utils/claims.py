"""Claims: the sentences of a lesson about its numbers and figures, asserted on every run.

A sentence such as "M2 beats the baseline at every label count" is backed by a cell tagged
``solution-only`` (so students never see it) that calls ``claim`` with the condition and the
sentence. In the default mode a false claim raises ``ClaimFailed``, so ``make solutions``
stops the day the sentence stops holding; in fast mode claims are skipped and say so.

``stored_run_problems`` reads a solution notebook and lists what shows that its stored
outputs did not come from a default-mode run in which every claim ran and held.
"""

from __future__ import annotations

import re

import nbformat

from .device import fast_mode

HOLDS = "✓ claim holds:"
SKIPPED = "claim skipped (fast mode):"
SOLUTION_ONLY = "solution-only"
_CLAIM_CALL = re.compile(r"^\s*claim\(", re.MULTILINE)
_SETUP_LINE = "fast mode: False"


class ClaimFailed(AssertionError):
    """A sentence of the prose is not true of this run; the message quotes it."""

    def _render_traceback_(self) -> list[str]:
        return [f"ClaimFailed: {line}" if i == 0 else f"  {line}"
                for i, line in enumerate(str(self).splitlines())]


def claim(holds, sentence: str, evidence: str = "") -> None:
    """Assert that `sentence` of the prose holds on this run; evidence: the numbers behind it."""
    if not isinstance(sentence, str) or not sentence.strip():
        raise TypeError("claim needs the sentence it guards, as a non-empty string")
    detail = f" ({evidence})" if evidence else ""
    if fast_mode():
        print(f"{SKIPPED} {sentence}")
        return
    if not bool(holds):
        raise ClaimFailed(
            f'the prose says "{sentence}", but this run disagrees{detail}.\n'
            "Change the sentence (and this claim) to what the output shows, or fix the run."
        )
    print(f"{HOLDS} {sentence}{detail}")


def _stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream")


def claim_cells(nb: nbformat.NotebookNode) -> list[tuple[int, nbformat.NotebookNode]]:
    """(index, cell) of every code cell that calls claim(...)."""
    return [(i, c) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and _CLAIM_CALL.search(c.source)]


def stored_run_problems(nb: nbformat.NotebookNode, name: str = "notebook") -> list[str]:
    """Why the stored outputs of nb are not a complete default-mode run with every claim held."""
    code = [(i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    problems = []
    if not code or _SETUP_LINE not in _stream_text(code[0][1]):
        problems.append(f"{name}: the setup cell does not print '{_SETUP_LINE}' "
                        "(outputs stored from a fast run?): run `make solutions`")
    for i, cell in code:
        if cell.execution_count is None:
            problems.append(f"{name}, cell {i}: never ran in the stored run")
        if any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            problems.append(f"{name}, cell {i}: stored with an error")
    claims = claim_cells(nb)
    if not claims:
        problems.append(f"{name}: no claim cell guards its prose")
    for i, cell in claims:
        if SOLUTION_ONLY not in cell.metadata.get("tags", []):
            problems.append(f"{name}, cell {i}: a claim cell must be tagged {SOLUTION_ONLY}")
        text = _stream_text(cell)
        calls, held = len(_CLAIM_CALL.findall(cell.source)), text.count(HOLDS)
        if SKIPPED in text or held < calls:
            problems.append(f"{name}, cell {i}: {held} of {calls} claims stored as holding")
    return problems
