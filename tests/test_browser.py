"""The student's workflow in a real browser: `make lab` (headless), notebook 04, Run All.

JupyterLab is started exactly as ``make lab`` starts it (the Makefile target, with a work
folder of the test's own and ``LAB_ARGS`` for a loopback port and a token); Debian's
Chromium, driven by playwright, opens the student copy of 04 and does what a student does:
Run All, drag the interpolation slider, type a wrong then a right ``gaussian_kl``, save.
Skipped, with how to install it, where Chromium or playwright is missing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from course_utils.authoring import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOK = "04_vae.ipynb"
RUN_ALL_TIMEOUT_S = 420
# The probe's flags: no sandbox as root, and no background connections on a closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
WRONG_KL = ("def gaussian_kl(mu, logvar):\n"
            "    return (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)\n")
RIGHT_KL = ("def gaussian_kl(mu, logvar):\n"
            "    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(-1)\n")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium: install it with "
                       "`apt-get install chromium` (Debian/Ubuntu) to run the browser test"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing: "
                               "`make setup` installs it (the dev extra)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"make lab exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer at {url} within {timeout} s")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` on a loopback port with a work folder of its own: yields (url, work, token)."""
    base = tmp_path_factory.mktemp("lab")
    work, settings = base / "work", base / "settings"
    # Every cell in the page (JupyterLab 4 otherwise renders only those on screen).
    tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    port, token = _free_port(), secrets.token_hex(16)
    lab_args = " ".join([
        "--no-browser", "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
        f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={base / 'ws'}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"])
    env = {**os.environ, "COURSE_FAST": "1", "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
           "JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_DATA_DIR": str(base / "data")}
    env.pop("TQDM_DISABLE", None)  # the progress bar is under test
    process = subprocess.Popen(
        ["make", "--no-print-directory", "lab", f"WORK={work}", f"LAB_ARGS={lab_args}",
         f"PYTHON={sys.executable}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{url}/api/status?token={token}", process)
        yield url, work, token
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def page(lab):
    url, _, token = lab
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}")
        page.wait_for_selector(".jp-Notebook .jp-CodeCell")
        _wait_for_idle(page, 120)
        yield page
        browser.close()


def _wait_for_idle(page, timeout_s: float, settle_s: int = 3) -> None:
    """Until the kernel has been idle, with nothing queued ([*] prompts), for settle_s seconds.

    The indicator reads idle for a moment between two cells of a Run All, hence the settling.
    """
    deadline = time.monotonic() + timeout_s
    idle_for = 0
    while time.monotonic() < deadline:
        status = page.get_attribute(".jp-Notebook-ExecutionIndicator", "data-status")
        queued = page.locator(".jp-InputPrompt", has_text="*").count()
        idle_for = idle_for + 1 if status == "idle" and queued == 0 else 0
        if idle_for >= settle_s:
            return
        time.sleep(1)
    raise TimeoutError(f"the kernel was still busy after {timeout_s} s")


def _code_cell(page, text: str):
    cells = page.locator(".jp-CodeCell").filter(has=page.locator(".cm-content", has_text=text))
    assert cells.count() >= 1, f"no code cell containing {text!r}"
    return cells.first


def _prompt_number(cell) -> int | None:
    found = re.search(r"\[(\d+)\]", cell.locator(".jp-InputPrompt").inner_text())
    return int(found.group(1)) if found else None


def _replace_and_run(page, cell, source: str) -> None:
    """Type source over the cell's code and run it with Shift+Enter (the check cell follows)."""
    cell.locator(".cm-content").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(source)  # as pasted: no auto-indent or bracket closing
    page.keyboard.press("Shift+Enter")  # runs it; the check cell below is now selected
    page.keyboard.press("Shift+Enter")  # runs the check


def _check_output(page, check_cell, previous: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        _wait_for_idle(page, 60)
        text = check_cell.locator(".jp-OutputArea").inner_text()
        if text.strip() and text != previous:
            return text
        time.sleep(0.5)
    raise TimeoutError("the check printed nothing new")


def test_a_student_runs_notebook_04_in_jupyterlab(lab, page):
    _, work, _ = lab
    # Run All, as from the Run menu, on the untouched notebook: every cell must run.
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    code_cells = page.locator(".jp-CodeCell")
    last = code_cells.nth(code_cells.count() - 1)
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    while _prompt_number(last) is None and time.monotonic() < deadline:
        time.sleep(1)
    _wait_for_idle(page, 60)
    assert _prompt_number(last) is not None, "Run All stopped before the last cell"
    check_cell = _code_cell(page, "check.gaussian_kl(gaussian_kl)")
    assert "not implemented" in check_cell.inner_text().lower() or "NotImplemented" in \
        check_cell.inner_text(), "the unfinished exercise should say so"

    # The progress bars of fit are widgets, not text.
    assert page.locator(".jp-OutputArea .widget-progress, .jp-OutputArea .widget-hprogress") \
        .count() > 0, "no progress bar widget rendered"

    # Dragging the interpolation slider changes the decoded image.
    slider_cell = _code_cell(page, "interpolation_slider(model")
    slider_cell.scroll_into_view_if_needed()
    handle = slider_cell.locator(".widget-slider .noUi-handle").first
    images = slider_cell.locator(".widget-image")
    assert images.count() == 3, "the slider shows x_a, the decoded mix and x_b"
    before = images.nth(1).get_attribute("src")
    box = handle.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 150, box["y"] + box["height"] / 2, steps=10)
    page.mouse.up()
    deadline = time.monotonic() + 20
    while images.nth(1).get_attribute("src") == before and time.monotonic() < deadline:
        time.sleep(0.3)
    assert images.nth(1).get_attribute("src") != before, "dragging the slider changed nothing"

    # A wrong answer is named; the right one passes.
    exercise = _code_cell(page, "def gaussian_kl(mu, logvar)")
    exercise.scroll_into_view_if_needed()
    previous = check_cell.locator(".jp-OutputArea").inner_text()
    _replace_and_run(page, exercise, WRONG_KL)
    wrong = _check_output(page, check_cell, previous)
    assert "factor 1/2" in wrong, wrong
    assert "Traceback" not in wrong and len(wrong.splitlines()) <= 6, wrong
    _replace_and_run(page, exercise, RIGHT_KL)
    right = _check_output(page, check_cell, wrong)
    assert "✓" in right, right

    # Saved in the student's folder, and it survives `make student` and `make lab`'s sync.
    page.keyboard.press("Control+S")
    saved = work / NOTEBOOK
    deadline = time.monotonic() + 30
    while "0.5 * (mu.pow(2)" not in saved.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "0.5 * (mu.pow(2)" in saved.read_text(), "the work was not saved in work/"
    kept = saved.read_bytes()
    subprocess.run(["make", "--no-print-directory", "student", f"PYTHON={sys.executable}"],
                   cwd=ROOT, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "course_utils.workspace", "--work-dir", str(work)],
                   cwd=ROOT, check=True, capture_output=True)
    assert saved.read_bytes() == kept, "the student's notebook was overwritten"
