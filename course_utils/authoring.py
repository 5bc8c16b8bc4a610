"""One source, two copies: generate student notebooks from the solutions, and run notebooks.

Instructors write ``solutions/NN_topic.ipynb``. Inside an exercise, the answer sits between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers); cells tagged
``solution-only`` are for instructors. ``student_copy`` replaces each marked block with
``# YOUR CODE HERE`` / ``raise NotImplementedError()``, drops solution-only cells, clears
outputs and tags every check cell ``raises-exception``, so that Run All goes on past an
unfinished exercise (JupyterLab and nbclient honour the tag; the solutions keep failing
loudly). Each copy records a hash of its cells, so that ``student`` can tell a copy it
generated from one edited by hand, and refuses to overwrite the latter unless forced (then it
keeps a backup in ``notebooks/.backup/``). Students work in ``work/`` (``course_utils.workspace``),
which nothing here touches. Command line::

    python -m course_utils.authoring student            # regenerate notebooks/ from solutions/
    python -m course_utils.authoring student --force    # ... even over hand-edited copies
    python -m course_utils.authoring student --check    # exit 1 if notebooks/ is out of date
    python -m course_utils.authoring execute solutions/04_vae.ipynb [--no-save]
    python -m course_utils.authoring from-py draft.py solutions/NN_topic.ipynb
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
SOLUTION_ONLY = "solution-only"
STUB_CODE = ("# YOUR CODE HERE", "raise NotImplementedError()")
STUB_MARKDOWN = ("YOUR ANSWER HERE",)
RAISES_EXCEPTION = "raises-exception"  # Run All continues past such a cell when it fails
_CHECK_CELL = re.compile(r"^\s*check\.\w+\(", re.MULTILINE)
COPY_KEY = "course_copy"  # notebook metadata: {"cells_sha256": ...} of the generated copy
ROOT = Path(__file__).resolve().parent.parent
NB_VERSION = 4


# --------------------------------------------------------------------------- student copies


def _stub_solutions(source: str, stub: tuple[str, ...], where: str) -> str:
    """Replace every BEGIN/END SOLUTION block in ``source`` by ``stub`` at the block's indent."""
    out, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {number}: {BEGIN} inside another solution block")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub)
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}, line {number}: {END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} is never closed by {END}")
    return "\n".join(out)


def student_copy(nb: nbformat.NotebookNode, name: str = "notebook") -> nbformat.NotebookNode:
    """The student version of a solution notebook: answers stubbed, outputs cleared."""
    student = copy.deepcopy(nb)
    cells = []
    for index, cell in enumerate(student.cells):
        if SOLUTION_ONLY in cell.get("metadata", {}).get("tags", []):
            continue
        where = f"{name}, cell {index}"
        stub = STUB_CODE if cell.cell_type == "code" else STUB_MARKDOWN
        cell.source = _stub_solutions(cell.source, stub, where)
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
            if _CHECK_CELL.search(cell.source):
                tags = cell.metadata.setdefault("tags", [])
                if RAISES_EXCEPTION not in tags:
                    tags.append(RAISES_EXCEPTION)
        cells.append(cell)
    student.cells = cells
    student.metadata.pop("widgets", None)
    student.metadata[COPY_KEY] = {"cells_sha256": cells_hash(student)}
    return student


def cells_hash(nb: nbformat.NotebookNode) -> str:
    """SHA-256 of what a student can change: each cell's type, source and outputs."""
    content = [[c.cell_type, c.source, c.get("outputs", [])] for c in nb.cells]
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def edited_by_hand(path: Path) -> bool:
    """True if the notebook at ``path`` is no longer the copy ``student`` generated.

    A copy without the recorded hash (made before the hash existed) counts as generated."""
    try:
        nb = nbformat.read(path, as_version=NB_VERSION)
    except Exception:  # unreadable: not something we generated
        return True
    recorded = nb.metadata.get(COPY_KEY, {}).get("cells_sha256")
    return recorded is not None and recorded != cells_hash(nb)


def serialize(nb: nbformat.NotebookNode) -> str:
    """Notebook JSON exactly as committed (stable formatting, trailing newline)."""
    return nbformat.writes(nb, version=NB_VERSION).rstrip("\n") + "\n"


def expected_student_notebooks(
    solutions_dir: Path = ROOT / "solutions",
) -> dict[str, str]:
    """{file name: student notebook JSON} for every solution notebook."""
    out = {}
    for path in sorted(Path(solutions_dir).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=NB_VERSION)
        out[path.name] = serialize(student_copy(nb, path.name))
    return out


BACKUP_DIR = ".backup"


def write_student_notebooks(
    solutions_dir: Path = ROOT / "solutions", notebooks_dir: Path = ROOT / "notebooks",
    force: bool = False,
) -> tuple[list[str], list[str]]:
    """Regenerate ``notebooks/`` from ``solutions/``: returns (names written, names refused).

    A copy edited by hand is refused, unless ``force``, which first backs it up in
    ``notebooks/.backup/``."""
    notebooks_dir = Path(notebooks_dir)
    notebooks_dir.mkdir(exist_ok=True)
    written, refused = [], []
    for name, text in expected_student_notebooks(solutions_dir).items():
        target = notebooks_dir / name
        if target.exists() and target.read_text(encoding="utf-8") == text:
            continue
        if target.exists() and edited_by_hand(target):
            if not force:
                refused.append(name)
                continue
            stamp = time.strftime("%Y%m%d-%H%M%S")
            backup = notebooks_dir / BACKUP_DIR / f"{target.stem}.{stamp}.ipynb"
            backup.parent.mkdir(exist_ok=True)
            backup.write_bytes(target.read_bytes())
        target.write_text(text, encoding="utf-8")
        written.append(name)
    return written, refused


def stale_student_notebooks(
    solutions_dir: Path = ROOT / "solutions", notebooks_dir: Path = ROOT / "notebooks"
) -> list[str]:
    """Names of student notebooks that are missing, differ from, or have no solution source."""
    expected = expected_student_notebooks(solutions_dir)
    stale = [
        name
        for name, text in expected.items()
        if not (Path(notebooks_dir) / name).exists()
        or (Path(notebooks_dir) / name).read_text(encoding="utf-8") != text
    ]
    orphans = [p.name for p in Path(notebooks_dir).glob("*.ipynb") if p.name not in expected]
    return stale + orphans


# --------------------------------------------------------------------------- drafts


_HEADER = re.compile(r"^# %%(?P<rest>.*)$")


def _new_cell(kind: str, lines: list[str], tags: list[str]) -> nbformat.NotebookNode:
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    if kind == "markdown":
        lines = [re.sub(r"^# ?", "", line) for line in lines]
        cell = nbformat.v4.new_markdown_cell("\n".join(lines))
    else:
        cell = nbformat.v4.new_code_cell("\n".join(lines))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def from_percent(text: str) -> nbformat.NotebookNode:
    """Build a notebook from a percent-format draft (``# %%`` code, ``# %% [markdown]``)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "name": "python3",
    }
    nb.metadata["language_info"] = {"name": "python"}
    kind, tags, lines = None, [], []
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header is None:
            lines.append(line)
            continue
        if kind is not None:
            nb.cells.append(_new_cell(kind, lines, tags))
        rest = header["rest"]
        kind = "markdown" if "[markdown]" in rest else "code"
        found = re.search(r"tags\s*=\s*(\[.*?\])", rest)
        tags, lines = (json.loads(found[1]) if found else []), []
    if kind is not None:
        nb.cells.append(_new_cell(kind, lines, tags))
    return nb


# --------------------------------------------------------------------------- execution


def execute(path: Path, save: bool = True, timeout: int = 900) -> float:
    """Run a notebook top to bottom in a fresh kernel (cwd = its folder); returns seconds.

    Progress bars are switched off (TQDM_DISABLE): a stored bar would show its first frame.
    """
    from nbclient import NotebookClient

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no notebook at {path}")
    nb = nbformat.read(path, as_version=NB_VERSION)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    previous = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # inherited by the kernel nbclient starts
    start = time.perf_counter()
    try:
        client.execute()
    finally:  # the caller's environment is left as it was
        if previous is None:
            del os.environ["TQDM_DISABLE"]
        else:
            os.environ["TQDM_DISABLE"] = previous
    seconds = time.perf_counter() - start
    if save:
        path.write_text(serialize(nb), encoding="utf-8")
    return seconds


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.authoring")
    sub = parser.add_subparsers(dest="command", required=True)
    student = sub.add_parser("student", help="regenerate notebooks/ from solutions/")
    student.add_argument("--check", action="store_true", help="only report stale copies")
    student.add_argument("--force", action="store_true",
                         help="overwrite copies edited by hand (a backup is kept)")
    run = sub.add_parser("execute", help="run notebooks and store their outputs")
    run.add_argument("paths", nargs="+", type=Path)
    run.add_argument("--no-save", action="store_true")
    draft = sub.add_parser("from-py", help="convert a percent-format draft to a notebook")
    draft.add_argument("source", type=Path)
    draft.add_argument("target", type=Path)
    args = parser.parse_args(argv)

    if args.command == "student":
        if args.check:
            stale = stale_student_notebooks()
            for name in stale:
                print(f"out of date: notebooks/{name}")
            if stale:
                print("notebooks/ is generated from solutions/ (an instructor step: `make "
                      "student`). Students: your own copies live in work/, which nothing "
                      "overwrites; see the README.")
            return 1 if stale else 0
        written, refused = write_student_notebooks(force=args.force)
        for name in written:
            print(f"wrote notebooks/{name}")
        for name in refused:
            print(f"not overwritten: notebooks/{name} was edited by hand since it was generated."
                  " Keep that work in work/ (make lab copies the notebooks there), or pass "
                  f"--force (make student FORCE=1), which backs it up in notebooks/{BACKUP_DIR}/",
                  file=sys.stderr)
        return 1 if refused else 0
    if args.command == "execute":
        from nbclient.exceptions import CellExecutionError

        for path in args.paths:
            try:
                seconds = execute(path, save=not args.no_save)
            except CellExecutionError as err:  # a failing cell or claim: nothing is saved
                print(f"{path}: a cell failed, outputs not saved\n{err}", file=sys.stderr)
                return 1
            print(f"{path}: {seconds:.1f} s")
        return 0
    nb = from_percent(args.source.read_text(encoding="utf-8"))
    args.target.write_text(serialize(nb), encoding="utf-8")
    print(f"wrote {args.target} ({len(nb.cells)} cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
