"""`make site`: the static book builds from the stored outputs, page by page, links intact."""

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from course_utils import site

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    return site.build(tmp_path_factory.mktemp("site") / "html")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.images, self.classes = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("img", "script", "link"):
            self.images.append(attrs.get("src") or attrs.get("href") or "")
        self.classes += (attrs.get("class") or "").split()


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_every_notebook_has_its_page_in_course_order(built):
    names = site.notebook_names()
    assert len(names) == 10 and names[0] == "00_welcome"
    index = (built / "index.html").read_text(encoding="utf-8")
    positions = [index.index(f'href="{name}.html"') for name in names]
    assert positions == sorted(positions)  # the course map lists them in order
    for name in names:
        assert (built / f"{name}.html").is_file()
    assert (built / "how_the_course_works.html").is_file()


def test_no_page_holds_a_stored_error_or_a_claim_cell(built):
    for name in site.notebook_names():
        page = (built / f"{name}.html").read_text(encoding="utf-8")
        assert "Traceback (most recent call last)" not in page, name
        assert "output error" not in page and "ClaimFailed" not in page, name
        assert "claim holds" not in page, name  # solution-only cells are left out


def test_internal_links_images_and_scripts_resolve(built):
    for page in built.glob("*.html"):
        parsed = _parse(page)
        for target in parsed.links + parsed.images:
            url = urlparse(target)
            if url.scheme or not url.path or target.startswith("#"):
                continue
            assert (page.parent / unquote(url.path)).exists(), f"{page.name}: {target}"


def test_pages_carry_figures_math_and_the_exercise_download(built):
    page = built / "06_beta_vae.html"
    parsed = _parse(page)
    pngs = [src for src in parsed.images if src.endswith(".png")]
    assert len(pngs) >= 10  # the notebook's stored figures
    text = page.read_text(encoding="utf-8")
    assert re.search(r"\\\(|\\\[|\$\$", text) or "math" in parsed.classes  # math for MathJax
    assert any("mathjax" in src.lower() and not urlparse(src).scheme for src in parsed.images)
    downloads = [link for link in parsed.links if link.endswith("06_beta_vae.ipynb")
                 and "_downloads" in link]
    assert downloads, "the page offers its exercise notebook"
    exercise = page.parent / unquote(downloads[0])
    assert "### BEGIN SOLUTION" not in exercise.read_text(encoding="utf-8")  # the student copy


def test_the_course_map_comes_from_the_readme():
    readme = (Path(site.ROOT) / "README.md").read_text(encoding="utf-8")
    table = site.course_map(readme, site.notebook_names())
    assert "[04_vae](04_vae.ipynb)" in table and "`04_vae`" not in table


def test_a_built_page_shows_rendered_math_and_a_figure_in_a_browser(built):
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no Chromium: `apt-get install chromium` to run the browser check")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto((built / "04_vae.html").as_uri())
            page.wait_for_function("document.querySelectorAll('mjx-container').length > 10",
                                   timeout=30_000)  # MathJax, served with the site, typeset
            shown = page.evaluate("Array.from(document.images).filter("
                                  "i => i.complete && i.naturalWidth > 100).length")
        finally:
            browser.close()
    assert shown >= 5  # the stored figures load and have a size


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_every_setup_cell_installs_the_course_on_colab_from_the_one_url(folder):
    import nbformat

    for name in site.notebook_names():
        nb = nbformat.read(Path(site.ROOT) / folder / f"{name}.ipynb", as_version=4)
        setup = next(cell for cell in nb.cells if cell.cell_type == "code")
        assert setup.source.startswith(site.colab_setup_source()), f"{folder}/{name}"


def _run_colab_block(monkeypatch, on_colab: bool) -> list:
    import subprocess
    import sys
    import types

    calls = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append((cmd, kw)))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(site.colab_setup_source(), "<setup cell>", "exec"), {})
    return calls


def test_the_colab_branch_pip_installs_the_course_and_elsewhere_does_nothing(monkeypatch):
    import sys

    (command, options), = _run_colab_block(monkeypatch, on_colab=True)
    assert command == [sys.executable, "-m", "pip", "install", "-q",
                       f"course_utils @ git+{site.REPOSITORY_URL}"]
    assert options == {"check": True}  # a failed install stops the notebook there
    assert _run_colab_block(monkeypatch, on_colab=False) == []


def test_each_page_links_its_exercise_notebook_in_colab(built):
    for name in site.notebook_names():
        assert site.colab_url(name) in (built / f"{name}.html").read_text(encoding="utf-8")
    assert site.colab_url("04_vae") == ("https://colab.research.google.com/github/"
                                        + site.REPOSITORY_URL.removeprefix("https://github.com/")
                                        + "/blob/main/notebooks/04_vae.ipynb")


def test_sync_setup_cells_writes_the_lines_once(tmp_path):
    import shutil

    shutil.copytree(Path(site.ROOT) / "solutions", tmp_path / "solutions")
    assert site.sync_setup_cells(tmp_path) == []  # the committed solutions carry them already
    first = tmp_path / "solutions" / "00_welcome.ipynb"
    first.write_text(first.read_text(encoding="utf-8").replace("from-em-to-vaes", "someone"),
                     encoding="utf-8")
    assert site.sync_setup_cells(tmp_path) == ["00_welcome"]  # an old URL is replaced
    assert site.sync_setup_cells(tmp_path) == []


def test_widgets_get_a_static_note_instead_of_a_renderer_from_a_cdn(built):
    import nbformat

    with_widgets = [name for name in site.notebook_names()
                    if "widget-view+json" in (Path(site.ROOT) / "solutions"
                                              / f"{name}.ipynb").read_text(encoding="utf-8")]
    assert with_widgets  # 04, 06, ... store widget outputs
    note = site.WIDGET_FALLBACK["data"]["text/markdown"].strip("*")[:40]
    for name in with_widgets:
        page = (built / f"{name}.html").read_text(encoding="utf-8")
        assert note in page and "widget-view+json" not in page, name
    assert isinstance(site.WIDGET_FALLBACK, nbformat.NotebookNode)
