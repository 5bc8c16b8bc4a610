"""``make check``: run the student's notebooks in fast mode and print a progress report.

Each notebook runs top to bottom in a fresh kernel (nbclient, errors allowed, so every cell
runs), in memory: the file is never written. Each exercise ends up passed, failed (with its
check's whole message, wrapped) or not started; other cells that failed are listed with their
error's first line. The last line counts the exercises passed. Unfinished work is progress,
not an error: the exit status is 0 unless ``--strict`` is given (then 1 unless all passed);
2 means no notebooks were found.

    python -m course_utils.selfcheck                     # every notebook in work/
    python -m course_utils.selfcheck work/04_vae.ipynb   # just one
    python -m course_utils.selfcheck --strict            # exit 1 unless every exercise passed
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .checks import exercises
from .workspace import WORK_DIR

_CHECK_CALL = re.compile(r"^\s*check\.(\w+)\(\s*\1\s*\)", re.MULTILINE)  # check.x(x)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PASSED, FAILED, NOT_STARTED = "passed", "failed", "not started"
WIDTH = 100
_NAME, _EXERCISE = 26, 26


@dataclass
class NotebookProgress:
    """What happened to one notebook: exercise -> (status, detail), plus other failing cells."""

    exercises: dict[str, tuple[str, str]] = field(default_factory=dict)
    other_failures: list[str] = field(default_factory=list)


def _plain(text: str) -> str:
    return _ANSI.sub("", text)


def _error_message(error) -> str:
    """The student-facing message of an error output: its rendered lines, without colours.

    Our checks render as '✗ name: message' plus indented lines; anything else as its last
    traceback line (e.g. 'NameError: name ... is not defined')."""
    lines = [_plain(line).rstrip() for item in error.get("traceback", [])
             for line in str(item).splitlines()]
    lines = [line for line in lines if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("✗")), None)
    if start is not None:
        first = lines[start].split(":", 1)[-1].strip()
        return "\n".join([first, *(line.strip() for line in lines[start + 1:])])
    return f"{error.get('ename', 'Error')}: {_plain(str(error.get('evalue', ''))).strip()}"


def _stream(cell) -> str:
    return _plain("".join(o.get("text", "") for o in cell.get("outputs", [])
                          if o.get("output_type") == "stream"))


def notebook_progress(nb: nbformat.NotebookNode) -> NotebookProgress:
    """Read an executed notebook's outputs: which checks passed, failed or never started."""
    progress = NotebookProgress()
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        names = _CHECK_CALL.findall(cell.source)
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if not errors:
            for name in names:
                ran = cell.get("execution_count") is not None or "✓" in _stream(cell)
                progress.exercises[name] = (PASSED, "") if ran else (NOT_STARTED, "")
            continue
        error = errors[0]
        if not names:
            first_line = _error_message(error).splitlines()[0]
            progress.other_failures.append(f"cell {index}: {first_line}")
            continue
        for name in names:
            if error.get("ename") == "ExerciseNotStarted":
                progress.exercises[name] = (NOT_STARTED, "")
            else:
                progress.exercises[name] = (FAILED, _error_message(error))
    return progress


def run_notebook(path: Path, timeout: int = 900) -> NotebookProgress:
    """Execute a copy of the notebook at ``path`` in fast mode (never saved) and read it."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook_progress(nb)


def _symbol(status: str) -> str:
    return {PASSED: "✓", FAILED: "✗", NOT_STARTED: "·"}[status]


def _row(first: str, second: str, text: str) -> list[str]:
    """One table row; a long status wraps under its own column."""
    indent = " " * (_NAME + _EXERCISE + 2)
    lines = []
    for i, paragraph in enumerate(text.splitlines() or [""]):
        wrapped = textwrap.wrap(paragraph, WIDTH - len(indent), break_long_words=False,
                                break_on_hyphens=False) or [""]
        lines.extend(wrapped if i == 0 else ["  " + w for w in wrapped])
    head = f"{first:<{_NAME}} {second:<{_EXERCISE}} {lines[0]}"
    return [head, *(indent + line for line in lines[1:])]


def progress_table(notebooks: dict[str, NotebookProgress]) -> tuple[str, int, int]:
    """Render the progress table; returns (text, exercises passed, exercises in total)."""
    rows, done, total = [], 0, 0
    for stem in sorted(notebooks):
        progress = notebooks[stem]
        names = [e.name for e in exercises(stem)] or list(progress.exercises)
        for i, name in enumerate(names):
            status, detail = progress.exercises.get(name, (NOT_STARTED, "no check cell ran"))
            done, total = done + (status == PASSED), total + 1
            text = f"{_symbol(status)} {status}" + (f": {detail}" if detail else "")
            rows.extend(_row(stem if i == 0 else "", name, text))
        for failure in progress.other_failures:
            rows.extend(_row("" if names else stem, "(other cell)", f"✗ {failure}"))
    header = f"{'notebook':<{_NAME}} {'exercise':<{_EXERCISE}} status"
    rule = "-" * WIDTH
    summary = f"{done} of {total} exercises passed"
    return "\n".join([header, rule, *rows, rule, summary]), done, total


def _default_notebooks(work_dir: Path) -> list[Path]:
    return sorted(p for p in Path(work_dir).glob("[0-9][0-9]_*.ipynb")
                  if not p.name.endswith(".course-update.ipynb"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.selfcheck",
                                     description="Re-run your notebooks in fast mode and report "
                                     "which exercises pass.")
    parser.add_argument("paths", nargs="*", type=Path, help=f"default: every notebook in "
                        f"{WORK_DIR.name}/")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 unless every exercise passed")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    args = parser.parse_args(argv)
    paths = args.paths or _default_notebooks(args.work_dir)
    if not paths:
        print(f"no notebooks found in {args.work_dir}. Run `make lab` (or `make check`) from the "
              "course folder once: it copies the course notebooks there for you to work in.")
        return 2
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"no such notebook: {', '.join(missing)}")
        return 2
    print(f"Checking {len(paths)} notebook(s) in fast mode; this runs every cell "
          "(your files are not modified)...", flush=True)
    saved = {key: os.environ.get(key) for key in ("COURSE_FAST", "TQDM_DISABLE")}
    os.environ["COURSE_FAST"] = "1"  # the kernels inherit these; restored afterwards
    os.environ.setdefault("TQDM_DISABLE", "1")
    notebooks = {}
    try:
        for path in paths:
            print(f"  {path.name}", flush=True)
            notebooks[path.stem] = run_notebook(path)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    table, done, total = progress_table(notebooks)
    print("\n" + table)
    return 1 if args.strict and done < total else 0


if __name__ == "__main__":
    sys.exit(main())
