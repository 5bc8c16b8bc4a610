"""The student's own folder, ``work/``: seeded from ``notebooks/``, never overwritten.

``make lab`` and ``make check`` call ``sync``. A notebook missing from ``work/`` is copied
there; one the student has not changed since it was copied follows course updates; one the
student has changed is never touched: ``sync`` says that a newer version exists and
``python -m course_utils.workspace --side-by-side`` writes it beside the student's copy as
``NN_topic.course-update.ipynb``. ``work/`` is git-ignored, so a ``git pull`` of the course
never conflicts with it.

A small manifest, ``work/.course-copies.json``, remembers the SHA-256 of the course version
each notebook was copied from; a copy whose bytes still hash to that value is unchanged.

    python -m course_utils.workspace                  # seed or update work/ (make lab does it)
    python -m course_utils.workspace --side-by-side   # also write newer course versions beside
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .authoring import ROOT

WORK_DIR = ROOT / "work"
COURSE_DIR = ROOT / "notebooks"
MANIFEST = ".course-copies.json"
UPDATE_SUFFIX = ".course-update.ipynb"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _is_course_notebook(path: Path) -> bool:
    return path.name[:2].isdigit() and not path.name.endswith(UPDATE_SUFFIX)


@dataclass
class SyncReport:
    """What ``sync`` did, by notebook file name."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)  # unchanged by the student: follows the course
    kept: list[str] = field(default_factory=list)  # edited by the student, a newer version exists
    side_by_side: list[str] = field(default_factory=list)  # newer versions written beside

    def lines(self, work_dir: Path) -> list[str]:
        """Messages for the student, one per notebook that needs a word."""
        out = [f"added {work_dir.name}/{name}" for name in self.added]
        out += [f"updated {work_dir.name}/{name} (you had not changed it)" for name in self.updated]
        for name in self.kept:
            beside = name.replace(".ipynb", UPDATE_SUFFIX)
            if name in self.side_by_side:
                out.append(f"the course has a newer {name}: it is beside yours as "
                           f"{work_dir.name}/{beside}; your copy is unchanged")
            else:
                out.append(f"the course has a newer {name}; your edited copy is kept. To get the "
                           "new one beside it: python -m course_utils.workspace --side-by-side")
        return out


def _read_manifest(work_dir: Path) -> dict[str, str]:
    path = work_dir / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        print(f"warning: {path} is unreadable; treating every copy in {work_dir} as edited",
              file=sys.stderr)
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_manifest(work_dir: Path, manifest: dict[str, str]) -> None:
    path = work_dir / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def sync(work_dir: Path = WORK_DIR, course_dir: Path = COURSE_DIR,
         side_by_side: bool = False) -> SyncReport:
    """Bring ``work_dir`` up to date with ``course_dir`` without touching an edited notebook."""
    course_dir, work_dir = Path(course_dir), Path(work_dir)
    sources = sorted(p for p in course_dir.glob("[0-9][0-9]_*.ipynb") if _is_course_notebook(p))
    if not sources:
        raise FileNotFoundError(f"no course notebooks in {course_dir}")
    work_dir.mkdir(parents=True, exist_ok=True)
    manifest, report = _read_manifest(work_dir), SyncReport()
    for source in sources:
        name, course_sha = source.name, _sha256(source)
        target = work_dir / name
        if not target.exists():
            target.write_bytes(source.read_bytes())
            manifest[name] = course_sha
            report.added.append(name)
            continue
        mine = _sha256(target)
        if mine == course_sha:
            manifest[name] = course_sha
        elif mine == manifest.get(name):  # untouched since copied: follow the course
            target.write_bytes(source.read_bytes())
            manifest[name] = course_sha
            report.updated.append(name)
        else:  # the student's work: never overwritten
            report.kept.append(name)
            beside = work_dir / name.replace(".ipynb", UPDATE_SUFFIX)
            ours = not beside.exists() or _sha256(beside) == manifest.get(beside.name)
            if ours and (side_by_side or beside.exists()):  # never over a file they edited
                beside.write_bytes(source.read_bytes())
                manifest[beside.name] = course_sha
                report.side_by_side.append(name)
    _write_manifest(work_dir, manifest)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_utils.workspace",
                                     description="Seed or update your work/ folder from "
                                     "notebooks/, never overwriting a notebook you changed.")
    parser.add_argument("--side-by-side", action="store_true",
                        help="write newer course versions of notebooks you changed beside them")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR)
    parser.add_argument("--course-dir", type=Path, default=COURSE_DIR)
    args = parser.parse_args(argv)
    try:
        report = sync(args.work_dir, args.course_dir, side_by_side=args.side_by_side)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for line in report.lines(args.work_dir):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
