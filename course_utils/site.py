"""The course as a static website: ``python -m course_utils.site [--out DIR]`` (``make site``).

Builds an HTML book with Sphinx, myst-nb and sphinx-book-theme (the ``site`` extra) from the
solution notebooks **with their stored outputs**: nothing is executed, so the pages show the
figures and check lines of the last ``make solutions``. One page per notebook, in course
order, plus the course map and a page on how the course works, both taken from the README.
Each notebook page offers its exercise copy (``notebooks/``) for download. Cells tagged
``solution-only`` (the claims that guard the prose) are left out.

Why Sphinx with myst-nb: it renders stored notebook outputs without a kernel, MathJax for
the math, and a static fallback for widgets; sphinx-book-theme gives the book layout the
UvA tutorials and Jupyter Book use. The output is plain HTML: any static host will do.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from .authoring import ROOT, SOLUTION_ONLY, serialize

SITE_DIR = ROOT / "build" / "site"
_MAP_HEADING = "## The course"
# The course's public repository: the Colab links and every notebook's Colab install come from
# here (tests/test_site.py checks that the notebooks agree). Change it in this one place, then
# run `python -m course_utils.site --sync-setup` and `make student`.
REPOSITORY_URL = "https://github.com/from-em-to-vaes/course"
BRANCH = "main"


def colab_setup_source() -> str:
    """The lines that open every notebook's setup cell: on Colab, install the course first."""
    return (
        "import sys\n"
        "if \"google.colab\" in sys.modules:  # on Colab: install the course first\n"
        "    import subprocess\n"
        "    subprocess.run([sys.executable, \"-m\", \"pip\", \"install\", \"-q\",\n"
        f"                    \"course_utils @ git+{REPOSITORY_URL}\"], check=True)\n"
    )


def colab_url(name: str) -> str:
    """The link that opens the exercise notebook ``notebooks/<name>.ipynb`` in Colab."""
    path = REPOSITORY_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{path}/blob/{BRANCH}/notebooks/{name}.ipynb"


def sync_setup_cells(root: Path = ROOT) -> list[str]:
    """Put colab_setup_source() at the top of each solution's first code cell; returns the
    names changed. Only the cell's source changes: off Colab it runs as before, so its
    stored output stays true."""
    changed = []
    for name in notebook_names(root):
        path = root / "solutions" / f"{name}.ipynb"
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if c.cell_type == "code")
        body = cell.source.split(_SETUP_END, 1)[1] if _SETUP_END in cell.source else cell.source
        source = colab_setup_source() + body.lstrip("\n")
        if source != cell.source:
            cell.source = source
            path.write_text(serialize(nb), encoding="utf-8")
            changed.append(name)
    return changed


_SETUP_END = "check=True)\n"


def notebook_names(root: Path = ROOT) -> list[str]:
    """The course's notebooks in order: ["00_welcome", ...]."""
    return sorted(path.stem for path in (root / "solutions").glob("[0-9][0-9]_*.ipynb"))


def readme_section(readme: str, heading: str) -> str:
    """The text of one "## " section of the README, heading included."""
    start = readme.index(heading)
    following = readme.find("\n## ", start + len(heading))
    return readme[start:following if following != -1 else len(readme)].strip() + "\n"


def page_notebook(path: Path, name: str) -> nbformat.NotebookNode:
    """A solution notebook for the site: claims dropped, Colab and download links on top."""
    nb = nbformat.read(path, as_version=4)
    nb.cells = [cell for cell in nb.cells
                if SOLUTION_ONLY not in cell.get("metadata", {}).get("tags", [])]
    link = nbformat.v4.new_markdown_cell(
        f"*Work through it yourself:* [open the exercise notebook in Colab]({colab_url(name)}) "
        f"or {{download}}`download it <exercises/{name}.ipynb>` (the same lesson with the "
        "solutions left for you to write; locally it needs the course installed, see *How the "
        "course works*; on Colab its first cell installs it)."
    )
    nb.cells.insert(1, link)  # below the title
    nb.metadata.pop("widgets", None)  # the widgets' saved state would load a renderer from a CDN
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [WIDGET_FALLBACK if _WIDGET_VIEW in out.get("data", {}) else out
                            for out in cell.outputs]
    return nb


_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_FALLBACK = nbformat.v4.new_output("display_data", data={"text/markdown": (
    "*An interactive widget stands here in the notebook: its sliders need a live kernel "
    "(Jupyter on your machine, or Colab). The figures around it show the same model.*")})


def course_map(readme: str, names: list[str]) -> str:
    """The README's course table, each notebook name turned into a link to its page."""
    text = readme_section(readme, _MAP_HEADING).split("\n\n**Your work lives")[0]
    for name in names:
        text = text.replace(f"`{name}`", f"[{name}]({name}.ipynb)")
    return text


def stage(out: Path, root: Path = ROOT) -> Path:
    """Write the Sphinx source folder (conf.py, pages, notebooks) into out; returns it."""
    names = notebook_names(root)
    readme = (root / "README.md").read_text(encoding="utf-8")
    title = readme.splitlines()[0].lstrip("# ").strip()
    if out.exists():
        shutil.rmtree(out)
    (out / "exercises").mkdir(parents=True)
    for name in names:
        (out / f"{name}.ipynb").write_text(
            serialize(page_notebook(root / "solutions" / f"{name}.ipynb", name)),
            encoding="utf-8")
        shutil.copy(root / "notebooks" / f"{name}.ipynb", out / "exercises" / f"{name}.ipynb")
    intro = readme.split("## Quick start")[0].split("\n", 1)[1].strip()
    toctree = "\n".join(["```{toctree}", ":maxdepth: 1", ":caption: Lessons", "", *names,
                         "```", "", "```{toctree}", ":maxdepth: 1", ":caption: About", "",
                         "how_the_course_works", "```"])
    (out / "index.md").write_text(
        f"# {title}\n\n{intro}\n\n{course_map(readme, names)}\n{toctree}\n", encoding="utf-8")
    how = "\n".join(readme_section(readme, heading) for heading in
                    ("## Quick start", "## The course")).replace(_MAP_HEADING, "## Exercises, "
                                                                  "checks, modes and data", 1)
    (out / "how_the_course_works.md").write_text(
        "# How the course works\n\n" + re.sub(r"\| notebook \|.*?\n\n", "", how, flags=re.S),
        encoding="utf-8")
    (out / "conf.py").write_text(_CONF.format(title=title), encoding="utf-8")
    return out


_CONF = '''\
project = "{title}"
extensions = ["myst_nb", "sphinx-mathjax-offline"]  # MathJax served with the site: no CDN
nb_execution_mode = "off"  # the stored outputs of `make solutions`
nb_output_stderr = "remove"  # progress bars and warnings are not part of the lesson
myst_enable_extensions = ["dollarmath", "amsmath"]
html_theme = "sphinx_book_theme"
html_title = "{title}"
exclude_patterns = ["_build", "exercises"]
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]
'''


def build(out: Path = SITE_DIR, root: Path = ROOT) -> Path:
    """Stage the sources under out/_source and build the HTML into out; returns out."""
    source = stage(out.parent / (out.name + "_source"), root)
    if out.exists():
        shutil.rmtree(out)
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", str(source), str(out)],
        capture_output=True, text=True)
    if result.returncode != 0:  # -W: a warning (a broken link, a bad cell) fails the build
        raise RuntimeError(f"sphinx-build failed:\n{result.stderr[-3000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SITE_DIR, help="where the HTML goes")
    parser.add_argument("--sync-setup", action="store_true",
                        help="write the Colab install lines into the solutions' setup cells")
    args = parser.parse_args(argv)
    if args.sync_setup:
        print("updated:", ", ".join(sync_setup_cells()) or "nothing")
        return 0
    out = build(args.out)
    print(f"built {len(notebook_names())} lesson pages into {out}; open {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
