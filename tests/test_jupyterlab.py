"""The student's path in a real browser: JupyterLab, the release, the reference answers.

JupyterLab runs on localhost from the course's virtualenv; Debian's Chromium, driven by
Playwright (never its own downloaded browser), opens the release notebook, types the
reference answers into the answer cells, runs every cell from the Run menu, and the test
reads what the page shows. Screenshots land in tests/artifacts/ for a person to look at.
"""
import json
import os
import re
import shutil
from dataclasses import dataclass

import nbformat
import pytest

from conftest import ARTIFACTS, ROOT, TOKEN, jupyterlab_server
from coursekit.course import NOTEBOOK, RELEASE_NOTEBOOK, grade_id
from coursekit.examples.samples import solution_cells
from coursekit.authoring.sync import HELPERS_FILE



@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    """A JupyterLab serving a folder that holds only the release notebook."""
    home = tmp_path_factory.mktemp("lab")
    work = home / "work"
    work.mkdir()
    shutil.copy(RELEASE_NOTEBOOK, work / NOTEBOOK)
    shutil.copy(RELEASE_NOTEBOOK.parent / HELPERS_FILE, work)
    # Render every cell, not only those in view, so the page can be read from top to end.
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # No "news?" pop-up over the figures: there is no network to fetch news from anyway.
    notices = home / "settings" / "@jupyterlab" / "apputils-extension"
    notices.mkdir(parents=True)
    (notices / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Started from the course folder, so that Validate grades with the course's config.
    with jupyterlab_server(work, home, os.environ, "--LabApp.expose_app_in_browser=True",
                           cwd=ROOT) as url:
        yield url, work


def open_notebook(browser, url, path, height):
    """A new tab with the notebook at `path` open in JupyterLab and its kernel idle."""
    tab = browser.new_page(viewport={"width": 1400, "height": height})
    tab.goto("%s/lab/tree/%s?token=%s" % (url, path, TOKEN))
    tab.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    tab.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell"
                          ".currentWidget && window.jupyterapp.shell.currentWidget"
                          ".sessionContext.session?.kernel?.status === 'idle'",
                          timeout=60_000)
    return tab


@pytest.fixture(scope="module")
def page(jupyterlab, browser):
    url, _ = jupyterlab
    tab = open_notebook(browser, url, NOTEBOOK, 1000)
    yield tab
    tab.close()


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


def run_cell(page, index):
    """Run one cell as a student does (select it, Run Selected Cell), wait for it to end,
    and return what it printed."""
    page.evaluate("async (index) => { const w = window.jupyterapp.shell.currentWidget;"
                  " w.content.activeCellIndex = index; w.content.deselectAll();"
                  " await window.jupyterapp.commands.execute('notebook:run-cell'); }", index)
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget"
                           ".sessionContext.session.kernel.status === 'idle'", timeout=120_000)
    outputs = page.evaluate("(index) => { const cell = window.jupyterapp.shell.currentWidget"
                            ".content.model.sharedModel.cells[index];"
                            " return cell.cell_type === 'code' ? cell.getOutputs() : []; }",
                            index)
    return "".join(str(o.get("text", "")) + str(o.get("evalue", "")) for o in outputs)


# A student's wrong first attempt at each exercise: the seed's real answer to the first
# TODO, a typical slip in each later one (coursekit/examples/answers.py). The checks it must fail.
def first_attempts():
    from coursekit.examples.answers import CATEGORIES, SLIPS
    from coursekit.examples.samples import SEED_ANSWER

    attempts = {"residual_network_with_batchnorm": (SEED_ANSWER, CATEGORIES["seed"].fails),
                "block_variances": ("def block_variances(model, x_batch):\n"
                                    "  variance_log.clear()\n  model(x_batch)\n"
                                    "  return [v for name, v in variance_log]\n",
                                    {"block_variances"})}
    for slip in ("plot_from_one", "increment_without_he", "slope_end_points",
                 "rescaled_branch_only", "train_without_momentum", "running_biased"):
        cell, source, fails, _ = SLIPS[slip]
        attempts[cell] = (source, fails)
    return attempts


@dataclass
class Walk:
    """What the walk saw: for each exercise, the checks' output after the wrong first
    attempt and after the fix; for each prediction, the guess typed and what its run said."""
    wrong: dict
    fixed: dict
    said_back: dict


@pytest.fixture(scope="module")
def completed(page):
    """A student's walk through the notebook, top to bottom, one cell at a time: each
    exercise first answered wrong (its checks run at once, as a student reruns them), then
    fixed; each prediction recorded as a guess before its run. Then Run > Run All Cells."""
    from coursekit.authoring.predictions import BY_NAME

    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    answers = solution_cells()
    ids = [grade_id(cell) for cell in release.cells]
    check_at = {gid[len("test_"):]: i for i, gid in enumerate(ids) if gid.startswith("test_")}
    attempts = first_attempts()
    walk = Walk({}, {}, {})
    for index, cell in enumerate(release.cells):
        gid = grade_id(cell)
        if gid in attempts:
            wrong, fails = attempts[gid]
            type_into_cell(page, index, wrong)
            run_cell(page, index)
            walk.wrong[gid] = {name: run_cell(page, check_at[name]) for name in fails}
            page.screenshot(path=str(ARTIFACTS / ("jupyterlab-walk-%s.png" % gid)))
        if gid in BY_NAME:  # a guess that is not what the run will show
            guess = next(c for c in BY_NAME[gid].choices if c != BY_NAME[gid].measured)
            type_into_cell(page, index, BY_NAME[gid].cell_source(guess))
            walk.said_back[gid] = guess
        elif gid in answers:
            type_into_cell(page, index, answers[gid])
        printed = run_cell(page, index)
        if gid.startswith("test_"):
            walk.fixed[gid[5:]] = printed
        previous = ids[index - 1] if index else None
        if previous in BY_NAME:  # the run right after a prediction
            walk.said_back[previous] = (walk.said_back[previous], printed)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-answers-typed.png"))
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const cells = w.content.model.sharedModel.cells;"
        " return w.sessionContext.session.kernel.status === 'idle' &&"
        " cells.every(c => c.cell_type !== 'code' || c.execution_count !== null); }",
        timeout=180_000)
    return release, answers, walk


def test_each_wrong_first_attempt_fails_its_checks_and_the_fix_passes(completed):
    _, _, walk = completed
    assert set(walk.wrong) == set(first_attempts())
    for exercise, printed_by_check in walk.wrong.items():
        for name, printed in printed_by_check.items():
            assert printed.startswith("✗ "), (exercise, name, printed)
        for name in printed_by_check:
            assert walk.fixed[name].startswith("✓ "), (exercise, name, walk.fixed[name])


def test_each_guess_is_said_back_beside_what_the_run_measured(completed):
    from coursekit.authoring.predictions import BY_NAME

    _, _, walk = completed
    assert set(walk.said_back) == set(BY_NAME)
    for name, (guess, printed) in walk.said_back.items():
        assert "You predicted: %s\nMeasured: " % guess in printed, (name, printed)
        assert "✗" not in printed


def test_answers_typed_in_the_browser_are_the_reference(completed, page):
    from coursekit.authoring.predictions import BY_NAME

    release, answers, walk = completed
    typed = cell_sources(page)
    for index, cell in enumerate(release.cells):
        if grade_id(cell) in BY_NAME:
            guess = walk.said_back[grade_id(cell)][0]
            assert typed[index] == BY_NAME[grade_id(cell)].cell_source(guess)
        elif grade_id(cell) in answers:
            assert typed[index] == answers[grade_id(cell)]


def test_run_all_gives_no_error_and_every_check_passes(completed, page):
    outputs = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells"
        ".map(c => c.cell_type === 'code' ? c.getOutputs() : [])")
    errors = [o for cell in outputs for o in cell if o["output_type"] == "error"]
    assert errors == []
    assert page.locator(".jp-OutputArea-output[data-mime-type="
                        "'application/vnd.jupyter.stderr']").count() == 0
    release, _, _ = completed
    assert_checks_and_total(release, page, outputs, passed=True)


def output_text(page, index):
    """What cell `index` shows as its output (scrolled into view: JupyterLab may render only
    the cells in view)."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed()
    return cell.locator(".jp-OutputArea").inner_text()


def assert_checks_and_total(release, page, outputs, passed):
    """Each check cell shows one verdict line, "✓ name, k of n points: message", and no bare
    number; the last cell's total is what nbgrader reads from the check cells."""
    from nbgrader import utils

    from coursekit.kernel.checks import points_text
    from coursekit.authoring.sync import SUMMARY_ID
    from coursekit.kernel.testcells import BY_ID

    earned = possible = 0
    for index, cell in enumerate(release.cells):
        test = BY_ID.get(grade_id(cell))
        if test is None:
            continue
        text = output_text(page, index)
        got = test.points if passed else 0
        start = "%s %s, %s: " % ("✓" if passed else "✗", test.check,
                                 points_text(got, test.points))
        assert text.startswith(start) and len(text) > len(start) + 10, (start, text)
        assert not re.search(r"^\s*(Out\[\d*\]:)?\s*[\d.]+\s*$", text, re.MULTILINE), text
        ran = nbformat.from_dict(dict(cell, outputs=outputs[index]))
        score, points = utils.determine_grade(ran)
        earned, possible = earned + score, possible + points
    summary = next(i for i, cell in enumerate(release.cells) if grade_id(cell) == SUMMARY_ID)
    assert summary == len(release.cells) - 1
    assert "Total: %s from the checks." % points_text(earned, possible) \
        in output_text(page, summary)
    assert earned == (possible if passed else 0)


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


def validate_dialog_text(page):
    """Click the toolbar's Validate (nbgrader's lab extension), wait for its dialog, read
    it and close it. The server saves and runs the notebook first: about 20 seconds."""
    page.locator(".validate-button").click()
    message = page.wait_for_selector(".jp-Dialog #validation-message", timeout=300_000)
    text = message.inner_text()
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-validate.png"))
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.wait_for_selector(".jp-Dialog", state="detached")
    return text


def test_validate_shows_each_check_its_points_and_the_total(completed, page):
    from coursekit.examples.answers import SLIPS

    # The Validate handler reads nbgrader_config.py from the server's working folder, which
    # is where the tests run: the course's, as for a class whose server starts there.
    assert os.getcwd() == str(ROOT), "run the tests from the course folder"
    # Every check passes: nbgrader's extension then shows its own fixed "Success!" line,
    # and nothing the server sends can add to it (coursekit/grading/validate.py).
    assert validate_dialog_text(page).strip() == "Success! Your notebook passes all the tests."
    # One slip: the failing check with its message and points, then every check and the
    # total. The reference answer is typed back afterwards.
    release, answers, _ = completed
    cell, slip, _, phrase = SLIPS["slope_end_points"]
    index = next(i for i, c in enumerate(release.cells) if grade_id(c) == cell)
    type_into_cell(page, index, slip)
    try:
        text = validate_dialog_text(page)
    finally:
        type_into_cell(page, index, answers[cell])
        page.keyboard.press("Control+s")
    checks = [c.metadata.nbgrader["points"] for c in release.cells
              if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade")]
    assert "✗ slope, 0 of 1 point: measured_slope " in text and phrase in text
    assert "✓ used, 2 of 2 points: " in text and text.count("✓ ") == len(checks) - 1
    assert "Total: %g of %g points from the checks." % (sum(checks) - 1, sum(checks)) in text
    assert "is graded by your instructor." in text
    assert "Partial credit" not in text


# --- A student's JupyterLab, started where a student starts it: release/bn/, or a
# JupyterHub home holding the fetched bn/. The course's config is not there; what students
# get comes from the virtualenv's guard (as `make` installs it) or the students' config
# (as coursekit.classroom.exchange prints it), both coursekit/classroom/studentconfig.py.

@pytest.fixture(scope="module", params=["release_folder", "jupyterhub_home"])
def student_lab(request, tmp_path_factory):
    from coursekit.classroom import exchange
    from test_studentconfig import installed_guard

    home = tmp_path_factory.mktemp("student-" + request.param)
    env = dict(os.environ)
    if request.param == "release_folder":
        folder = home / "course" / "release" / "bn"
        env["JUPYTER_CONFIG_PATH"] = str(installed_guard(home / "make").parent)
    else:
        folder = home / "bn"
        (home / ".jupyter").mkdir()
        (home / ".jupyter" / "nbgrader_config.py").write_text(
            exchange.student_config(home / "exchange"))
    folder.mkdir(parents=True)
    shutil.copy(RELEASE_NOTEBOOK, folder / NOTEBOOK)
    shutil.copy(RELEASE_NOTEBOOK.parent / HELPERS_FILE, folder)
    # Every cell rendered, as in the walk's lab, so that Run All's outputs can be read.
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    notices = home / "settings" / "@jupyterlab" / "apputils-extension"
    notices.mkdir(parents=True)
    (notices / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    served = folder if request.param == "release_folder" else home
    with jupyterlab_server(served, home, env, "--LabApp.expose_app_in_browser=True",
                           cwd=served) as url:
        yield request.param, url, folder.relative_to(served) / NOTEBOOK


@pytest.fixture(scope="module")
def student_page(student_lab, browser):
    where, url, path = student_lab
    tab = open_notebook(browser, url, path, 900)
    # Time for anything JupyterLab writes into the notebook once its kernel is up.
    tab.wait_for_timeout(2000)
    tab.screenshot(path=str(ARTIFACTS / ("jupyterlab-first-screen-%s.png" % where)))
    yield where, tab
    tab.close()


def test_a_student_jupyterlab_opens_the_release_unmodified(student_page):
    where, page = student_page
    widget = "window.jupyterapp.shell.currentWidget"
    assert page.evaluate("() => %s.context.model.dirty" % widget) is False, where
    assert "jp-mod-dirty" not in page.evaluate("() => %s.title.className" % widget), where


def test_a_student_jupyterlab_has_no_instructor_tools(student_page):
    where, page = student_page
    assert page.locator("#nbgrader-create_assignemnt").count() == 0, where
    assert "Create Assignment" not in page.locator(".lm-TabBar-tab").all_inner_texts()
    page.get_by_role("menuitem", name="Nbgrader", exact=True).click()
    items = page.locator(".lm-Menu-content .lm-Menu-itemLabel").all_inner_texts()
    page.keyboard.press("Escape")
    # A student still fetches and submits from the Assignment List.
    assert "Assignment List" in items, (where, items)
    assert not {"Formgrader", "Formgrader (local)", "Create assignment"} & set(items), items


def test_validate_in_a_student_jupyterlab_shows_each_failing_check_and_the_total(
        student_page):
    where, page = student_page
    page.locator(".validate-button").click()
    message = page.wait_for_selector(".jp-Dialog #validation-message", timeout=300_000)
    text = message.inner_text()
    page.screenshot(path=str(ARTIFACTS / ("jupyterlab-validate-failing-%s.png" % where)))
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.wait_for_selector(".jp-Dialog", state="detached")
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    points = sum(c.metadata.nbgrader["points"] for c in release.cells
                 if c.cell_type == "code" and c.metadata.get("nbgrader", {}).get("grade"))
    assert "✗ registered, 0 of 1 point: " in text and "BatchNorm1d" in text, (where, text)
    assert "✗ block_variances, 0 of 2 points: block_variances still raises" in text
    assert "Total: 0 of %g points from the checks." % points in text, (where, text)
    assert "Partial credit" not in text


def test_run_all_on_the_untouched_release_reaches_the_end(student_page):
    """Every check says ✗ with its message and 0 points, every cell that needs an unfinished
    TODO says which, and the last cell adds up nothing."""
    where, page = student_page
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const cells = w.content.model.sharedModel.cells;"
        " return w.sessionContext.session.kernel.status === 'idle' &&"
        " cells.every(c => c.cell_type !== 'code' || c.execution_count !== null); }",
        timeout=300_000)
    outputs = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells"
        ".map(c => c.cell_type === 'code' ? c.getOutputs() : [])")
    assert [o for cell in outputs for o in cell if o["output_type"] == "error"] == [], where
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    assert_checks_and_total(release, page, outputs, passed=False)
    waiting = {grade_id(cell): output_text(page, i) for i, cell in enumerate(release.cells)
               if "udl_bn_checks.finished(" in cell.source}
    assert waiting and all(re.fullmatch(r"Finish `\w+` above first: it still raises "
                                        r"NotImplementedError\.\s*", text)
                           for text in waiting.values()), waiting
    for name, index in (("failing-check", _index_of(release, "test_registered")),
                        ("checks-so-far", len(release.cells) - 1)):
        page.locator(".jp-Notebook .jp-Cell").nth(index).scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / ("jupyterlab-%s-%s.png" % (name, where))))


def _index_of(release, cell_id):
    return next(i for i, cell in enumerate(release.cells) if grade_id(cell) == cell_id)


def test_the_helpers_cell_is_one_line_and_expanded_shows_readable_code(student_page):
    """Collapsed, as its metadata asks, it takes one line; expanded, as a student may, it
    shows a few lines of code, no compressed text (that is in the file beside it)."""
    from coursekit.course import HELPERS_ID
    from test_formgrader import compressed_text

    where, page = student_page
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    cell = page.locator(".jp-Notebook .jp-Cell").nth(_index_of(release, HELPERS_ID))
    cell.scroll_into_view_if_needed()
    assert cell.bounding_box()["height"] < 100, where
    cell.locator(".jp-InputCollapser").click()
    page.wait_for_timeout(500)
    code = cell.locator(".jp-InputArea").inner_text()
    page.screenshot(path=str(ARTIFACTS / ("jupyterlab-helpers-expanded-%s.png" % where)))
    assert "import sys, udl_bn_helpers" in code, code
    assert code.count("\n") < 12 and compressed_text(code) == [], code
    assert cell.bounding_box()["height"] < 300, where
