"""The student's path in a real browser: JupyterLab, the release, the reference answers.

JupyterLab runs on localhost from the course's virtualenv; Debian's Chromium, driven by
Playwright (never its own downloaded browser), opens the release notebook, types the
reference answers into the answer cells, runs every cell from the Run menu, and the test
reads what the page shows. Screenshots land in tests/artifacts/ for a person to look at.
"""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import nbformat
import pytest

from conftest import ROOT, free_port
from coursekit.samples import RELEASE_NOTEBOOK, solution_cells
from coursekit.sync import NOTEBOOK, grade_id

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
# As root, with no network: without these Chromium keeps dialling Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TOKEN = "udl-11-3-test"


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """A JupyterLab serving a folder that holds only the release notebook."""
    home = tmp_path_factory.mktemp("lab")
    work = home / "work"
    work.mkdir()
    shutil.copy(RELEASE_NOTEBOOK, work / NOTEBOOK)
    # Render every cell, not only those in view, so the page can be read from top to end.
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # No "news?" pop-up over the figures: there is no network to fetch news from anyway.
    notices = home / "settings" / "@jupyterlab" / "apputils-extension"
    notices.mkdir(parents=True)
    (notices / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), HOME=str(home))
    log = open(home / "lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
         "--ip=127.0.0.1", "--port=%d" % port, "--ServerApp.root_dir=%s" % work,
         "--IdentityProvider.token=%s" % TOKEN, "--LabApp.expose_app_in_browser=True",
         "--ServerApp.open_browser=False"],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    url = "http://127.0.0.1:%d" % port
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen("%s/api/status?token=%s" % (url, TOKEN), timeout=2)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("JupyterLab did not start:\n" + (home / "lab.log").read_text())
            time.sleep(0.5)
    yield url, work
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture(scope="module")
def page(jupyterlab):
    from playwright.sync_api import sync_playwright

    url, _ = jupyterlab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.goto("%s/lab/tree/%s?token=%s" % (url, NOTEBOOK, TOKEN))
        tab.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        tab.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell"
                              ".currentWidget && window.jupyterapp.shell.currentWidget"
                              ".sessionContext.session?.kernel?.status === 'idle'",
                              timeout=60_000)
        yield tab
        browser.close()


def type_into_cell(page, index, text):
    """Replace a cell's code the way a student would: click it, select all, type."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    if "jp-MarkdownCell" in (cell.get_attribute("class") or ""):
        cell.locator(".jp-MarkdownOutput").dblclick()  # a rendered answer opens for editing
    editor = cell.locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    # insert_text types the text as one input event: no auto-indent, no closed brackets.
    page.keyboard.insert_text(text)


def cell_sources(page):
    return page.evaluate("() => window.jupyterapp.shell.currentWidget.content.model"
                         ".sharedModel.cells.map(c => c.getSource())")


@pytest.fixture(scope="module")
def completed(page):
    """The notebook after typing the reference answers and Run > Run All Cells."""
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    answers = solution_cells()
    for index, cell in enumerate(release.cells):
        if grade_id(cell) in answers:
            type_into_cell(page, index, answers[grade_id(cell)])
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-answers-typed.png"))
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const cells = w.content.model.sharedModel.cells;"
        " return w.sessionContext.session.kernel.status === 'idle' &&"
        " cells.every(c => c.cell_type !== 'code' || c.execution_count !== null); }",
        timeout=180_000)
    return release, answers


def test_answers_typed_in_the_browser_are_the_reference(completed, page):
    release, answers = completed
    typed = cell_sources(page)
    for index, cell in enumerate(release.cells):
        if grade_id(cell) in answers:
            assert typed[index] == answers[grade_id(cell)]


def test_run_all_gives_no_error_and_every_check_passes(completed, page):
    outputs = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells"
        ".map(c => c.cell_type === 'code' ? c.getOutputs() : [])")
    errors = [o for cell in outputs for o in cell if o["output_type"] == "error"]
    assert errors == []
    assert page.locator(".jp-OutputArea-output[data-mime-type="
                        "'application/vnd.jupyter.stderr']").count() == 0
    release, _ = completed
    checks = [i for i, cell in enumerate(release.cells) if grade_id(cell).startswith("test_")]
    text = [page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".jp-OutputArea")
            .inner_text() for i in checks]
    assert all(t.startswith("✓ ") for t in text), text


def test_variance_figures_are_rendered(completed, page):
    figures = page.locator(".jp-RenderedImage img")
    assert figures.count() >= 1
    for k in range(figures.count()):
        figure = figures.nth(k)
        figure.scroll_into_view_if_needed()
        size = figure.evaluate("img => [img.complete, img.naturalWidth, img.naturalHeight]")
        assert size[0] and size[1] >= 600 and size[2] >= 300, size
        figure.screenshot(path=str(ARTIFACTS / ("jupyterlab-figure-%d.png" % (k + 1))))
    # The figure in context: its cell and what the notebook says about it.
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-figure-in-notebook.png"))
