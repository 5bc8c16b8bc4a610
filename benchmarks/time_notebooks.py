"""Time every solutions notebook in fast mode (COURSE_FAST=1) and in default mode.

Each run executes one notebook top to bottom in a fresh kernel (nbclient, working directory
= the notebook's folder, nothing saved) and measures the wall time, kernel start included.
The table goes into the "## Notebook run times" section of benchmarks/RESULTS.md; rows of
notebooks not timed this time are kept. Budgets (2-core CPU): fast <= 45 s, default <= 180 s.

    python benchmarks/time_notebooks.py               # every notebook, both modes
    python benchmarks/time_notebooks.py --fast-only   # fast mode only
    python benchmarks/time_notebooks.py --only 04     # notebooks whose name starts with 04

Exits with status 1 if a notebook fails to run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parent.parent
FAST_BUDGET_S, DEFAULT_BUDGET_S = 45.0, 180.0
SECTION = "## Notebook run times"
HEADER = "| notebook | fast (s) | default (s) | budget ok | measured |"
RULE = "|---|---:|---:|:---:|---|"
NOT_RUN = "—"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # colour codes in IPython's error text


@contextlib.contextmanager
def course_fast(value: str):
    """Set $COURSE_FAST for the kernels started inside the block (they inherit os.environ)."""
    old = os.environ.get("COURSE_FAST")
    os.environ["COURSE_FAST"] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ["COURSE_FAST"]
        else:
            os.environ["COURSE_FAST"] = old


def time_notebook(path: Path, fast: bool, cell_timeout: int) -> tuple[float, str | None]:
    """Run one notebook in a fresh kernel: (seconds, None) or (seconds, error summary)."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    error = None
    with course_fast("1" if fast else "0"):
        try:
            client.execute()
        except CellExecutionError as err:
            error = _last_line(str(err))
        except (CellTimeoutError, DeadKernelError) as err:
            error = f"{type(err).__name__}: {_last_line(str(err))}"
    return time.perf_counter() - start, error


def _last_line(text: str) -> str:
    lines = [line for line in _ANSI.sub("", text).strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def budget_ok(fast_s: float | None, default_s: float | None, failed: bool) -> str:
    """✓ when every measured time is within its budget and nothing failed, else ✗."""
    if failed:
        return "✗ (error)"
    within = (fast_s is None or fast_s <= FAST_BUDGET_S) and (
        default_s is None or default_s <= DEFAULT_BUDGET_S)
    return "✓" if within else "✗"


def table_row(stem: str, fast_s: float | None, default_s: float | None, failed: bool) -> str:
    def cell(seconds):
        return NOT_RUN if seconds is None else f"{seconds:.1f}"

    today = datetime.date.today().isoformat()
    ok = budget_ok(fast_s, default_s, failed)
    return f"| {stem} | {cell(fast_s)} | {cell(default_s)} | {ok} | {today} |"


def existing_rows(section_body: list[str]) -> dict[str, str]:
    """Table rows already in the section, keyed by notebook name."""
    rows = {}
    for line in section_body:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] not in ("notebook", "") and set(cells[0]) != {"-"}:
            rows[cells[0]] = line.rstrip()
    return rows


def notes_after_table(section_body: list[str]) -> list[str]:
    """The hand-written lines after the table (what each run changed), kept on a rewrite."""
    table = [i for i, line in enumerate(section_body) if line.startswith("|")]
    if not table:
        return []
    notes = section_body[table[-1] + 1:]
    while notes and not notes[0].strip():
        notes = notes[1:]
    while notes and not notes[-1].strip():
        notes = notes[:-1]
    return notes


def section_bounds(lines: list[str]) -> tuple[int, int] | None:
    """(first body line, end) of the run-times section, or None if the file has none."""
    for i, line in enumerate(lines):
        if line.strip() == SECTION:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("## ")),
                       len(lines))
            return i + 1, end
    return None


def write_results(results: Path, new_rows: dict[str, str], keep: set[str], command: str) -> None:
    """Replace only the body of the run-times section; keep old rows of notebooks in `keep`."""
    lines = results.read_text().splitlines() if results.exists() else ["# Benchmark results"]
    bounds = section_bounds(lines)
    if bounds is None:
        lines += ["", SECTION]
        bounds = (len(lines), len(lines))
    old = {k: v for k, v in existing_rows(lines[bounds[0]:bounds[1]]).items() if k in keep}
    rows = {**old, **new_rows}
    notes = notes_after_table(lines[bounds[0]:bounds[1]])
    body = [
        "",
        f"Measured with `{command}` on {platform.machine()} with {os.cpu_count()} CPU cores "
        f"(Python {platform.python_version()}): wall time of a fresh kernel running the "
        "notebook top to bottom (nbclient, cwd solutions/), kernel start included. Budgets: "
        f"fast mode (COURSE_FAST=1) ≤ {FAST_BUDGET_S:.0f} s, default mode ≤ "
        f"{DEFAULT_BUDGET_S:.0f} s; {NOT_RUN} = not measured. Each row gives the day it was "
        "measured.",
        "",
        HEADER,
        RULE,
        *(rows[stem] for stem in sorted(rows)),
        "",
        *([*notes, ""] if notes else []),
    ]
    lines[bounds[0]:bounds[1]] = body
    results.write_text("\n".join(lines).rstrip("\n") + "\n")


def select(solutions: Path, only: list[str] | None) -> list[Path]:
    notebooks = sorted(solutions.glob("*.ipynb"))
    if only:
        notebooks = [p for p in notebooks if any(p.stem.startswith(o) for o in only)]
    return notebooks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast-only", action="store_true", help="skip the default-mode runs")
    parser.add_argument("--only", action="append", metavar="NN",
                        help="time only notebooks whose name starts with NN (repeatable)")
    parser.add_argument("--solutions", type=Path, default=ROOT / "solutions")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--cell-timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)

    notebooks = select(args.solutions, args.only)
    if not notebooks:
        print(f"no notebook in {args.solutions} matches {args.only or '*'}", file=sys.stderr)
        return 2
    new_rows, failures = {}, []
    for path in notebooks:
        times, failed = {}, False
        for fast in (True,) if args.fast_only else (True, False):
            mode = "fast" if fast else "default"
            seconds, error = time_notebook(path, fast, args.cell_timeout)
            times[mode] = seconds
            status = f"FAILED: {error}" if error else "ok"
            print(f"{path.stem:<32} {mode:<8} {seconds:7.1f} s  {status}", flush=True)
            if error:
                failed = True
                failures.append(f"{path.name} ({mode}): {error}")
        new_rows[path.stem] = table_row(path.stem, times.get("fast"), times.get("default"), failed)
    keep = {p.stem for p in args.solutions.glob("*.ipynb")}
    command = "python benchmarks/time_notebooks.py " + " ".join(argv or sys.argv[1:])
    write_results(args.results, new_rows, keep, command.strip())
    print(f"wrote {args.results}")
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
