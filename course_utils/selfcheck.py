"""``make check``: run the student's notebooks with nbval in fast mode, then print progress.

Each exercise ends up passed, failed (with the first line of its check's message) or not
started. The notebooks are executed in a fresh kernel and never written to.

    python -m course_utils.selfcheck                        # every notebook in notebooks/
    python -m course_utils.selfcheck notebooks/04_vae.ipynb # just one
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .authoring import ROOT
from .checks import exercises

_CHECK_CALL = re.compile(r"^\s*check\.(\w+)\(\s*\1\s*\)", re.MULTILINE)  # check.x(x)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PASSED, FAILED, NOT_STARTED = "passed", "failed", "not started"


@dataclass
class NotebookProgress:
    """What happened to one notebook: exercise -> (status, detail), plus other failing cells."""

    exercises: dict[str, tuple[str, str]] = field(default_factory=dict)
    other_failures: list[str] = field(default_factory=list)


def _first_error_line(excinfo) -> str:
    """The first meaningful line of a failed cell's error, without colours."""
    text = getattr(excinfo.value, "inner_traceback", None) or str(excinfo.value)
    lines = [_ANSI.sub("", line).strip() for line in str(text).splitlines()]
    lines = [line for line in lines if line]
    marked = [line for line in lines if line.startswith("✗")]
    if marked:
        return marked[0].split(":", 1)[-1].strip()
    return lines[-1] if lines else "the cell raised an error"


class ProgressPlugin:
    """A pytest plugin that records, for each nbval cell, which exercise check it ran."""

    def __init__(self) -> None:
        self.notebooks: dict[str, NotebookProgress] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        cell = getattr(item, "cell", None)
        if report.when != "call" or cell is None:
            return
        progress = self.notebooks.setdefault(Path(str(item.fspath)).stem, NotebookProgress())
        names = _CHECK_CALL.findall(cell.source)
        if report.passed:
            for name in names:
                progress.exercises[name] = (PASSED, "")
            return
        detail = _first_error_line(call.excinfo) if call.excinfo else "failed"
        for name in names:
            started = "not implemented yet" not in detail
            progress.exercises[name] = (FAILED, detail) if started else (NOT_STARTED, "")
        if not names:
            progress.other_failures.append(f"cell {item.cell_num}: {detail}")


def _symbol(status: str) -> str:
    return {PASSED: "✓", FAILED: "✗", NOT_STARTED: "·"}[status]


def progress_table(notebooks: dict[str, NotebookProgress]) -> tuple[str, int, int]:
    """Render the progress table; returns (text, exercises passed, exercises in total)."""
    rows, done, total = [], 0, 0
    for stem in sorted(notebooks):
        progress = notebooks[stem]
        names = [e.name for e in exercises(stem)] or list(progress.exercises)
        for i, name in enumerate(names):
            status, detail = progress.exercises.get(name, (NOT_STARTED, "no check cell ran"))
            done, total = done + (status == PASSED), total + 1
            text = f"{_symbol(status)} {status}" + (f": {detail[:90]}" if detail else "")
            rows.append(f"{stem if i == 0 else '':<28} {name:<28} {text}")
        for failure in progress.other_failures:
            rows.append(f"{'':<28} {'(other cell)':<28} ✗ {failure[:90]}")
    header = f"{'notebook':<28} {'exercise':<28} status"
    rule = "-" * len(header.ljust(80))
    summary = f"{done} of {total} exercises passed"
    return "\n".join([header, rule, *rows, rule, summary]), done, total


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (argv if argv is not None else sys.argv[1:])]
    paths = paths or sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"no such notebook: {', '.join(missing)}")
        return 2
    os.environ["COURSE_FAST"] = "1"
    plugin = ProgressPlugin()
    print(f"Checking {len(paths)} notebook(s) in fast mode; this runs every cell...")
    pytest.main(
        ["--nbval-lax", "--nbval-current-env", "-q", "--tb=no", "-rN", "-p", "no:cacheprovider",
         "--rootdir", str(paths[0].parent), *map(str, paths)],
        plugins=[plugin],
    )
    table, done, total = progress_table(plugin.notebooks)
    print("\n" + table)
    return 0 if done == total else 1


if __name__ == "__main__":
    sys.exit(main())
