"""The instructor's side in a real browser: the formgrader, Manual Grading and feedback pages.

One course copy is released and autograded with the course's config (sandbox on) for two
students: the honest reference, and `html_payloads` (tests/hostile.py), whose markdown,
written answer and outputs carry script. JupyterLab then runs from the course folder as
the instructor runs it, so the formgrader loads the course's nbgrader_config.py; Debian's
Chromium, driven by Playwright, grades the written answer by hand and opens every page a
student's markup reaches. Screenshots land in tests/artifacts/.
"""
import functools
import http.server
import threading
import time

import nbformat
import pytest
from nbgrader.api import Gradebook

import hostile
from conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, TOKEN, jupyterlab_server, nbgrader
from coursekit.course import ASSIGNMENT, NOTEBOOK, grade_id, gradebook_url
from coursekit.samples import course_copy, nbgrader_env, submission_path
from test_grading import points
from test_safe_grading import Listener

HONEST, HOSTILE = "reference", "html_payloads"
NOTEBOOK_ID = NOTEBOOK[:-len(".ipynb")]
WRITTEN = hostile.WRITTEN_ANSWER
# Far below the 300 s the formgrader hung for when it deadlocked on the gradebook.
QUICK_MS = 20_000


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = course_copy(tmp_path_factory.mktemp("formgrader") / "course")
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    listener = Listener()
    for student, notebook in ((HONEST, hostile.reference()),
                              (HOSTILE, hostile.html_payloads(listener.port))):
        path = submission_path(root, student)
        path.parent.mkdir(parents=True)
        nbformat.write(notebook, path)
    nbgrader(root, "autograde", ASSIGNMENT, "--force")
    nbgrader(root, "generate_feedback", ASSIGNMENT, "--force")
    yield dict(root=root, listener=listener, url=gradebook_url(root))
    listener.server.close()


@pytest.fixture(scope="module")
def jupyterlab(course, tmp_path_factory):
    """JupyterLab started from the course folder, as the README tells instructors to."""
    home = tmp_path_factory.mktemp("lab-home")
    with jupyterlab_server(course["root"], home, nbgrader_env()) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Watched:
    """A tab that records every request, dialog and slow response; nothing leaves the machine.

    Requests to other hosts (the page template's MathJax, the Colab badge) are recorded and
    answered with an error at once: there is no network here, and waiting for it is slow.
    """

    def __init__(self, context):
        self.page = context.new_page()
        self.requests, self.dialogs, self.slow = [], [], []
        self.page.on("request", lambda r: self.requests.append((r.method, r.url)))
        self.page.on("dialog", self._dialog)
        self.page.on("requestfinished", self._finished)
        self.page.route("**/*", self._route)

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _finished(self, request):
        took = request.timing.get("responseEnd", 0)
        if took > QUICK_MS:
            self.slow.append((request.url, took))

    @staticmethod
    def _route(route):
        host = route.request.url.split("/")[2] if "://" in route.request.url else ""
        if host.split(":")[0] in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            route.abort()

    def foreign(self, origin):
        return {url.split("?")[0] for _, url in self.requests
                if not url.startswith(origin) and not url.startswith("data:")}


@pytest.fixture(scope="module")
def instructor(browser, jupyterlab):
    """A browser context logged in to the instructor's JupyterLab."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    # A page that waits on the gradebook fails here, not after the 300 s busy timeout.
    context.set_default_timeout(QUICK_MS)
    login = context.new_page()
    login.goto("%s/formgrader?token=%s" % (jupyterlab, TOKEN))
    login.close()
    yield context
    context.close()


def submission_id(course, student):
    with Gradebook(course["url"]) as gradebook:
        return gradebook.find_submission_notebook(NOTEBOOK_ID, ASSIGNMENT, student).id


def written_grade(course, student):
    with Gradebook(course["url"]) as gradebook:
        grade = gradebook.find_grade(WRITTEN, NOTEBOOK_ID, ASSIGNMENT, student)
        return grade.manual_score, grade.needs_manual_grade


def open_in_manual_grading(instructor, jupyterlab, course, student):
    """Formgrader > Manual Grading > bn > the notebook > the student's submission."""
    tab = Watched(instructor)
    started = time.monotonic()
    tab.page.goto("%s/formgrader" % jupyterlab)
    tab.page.get_by_role("link", name="Manual Grading").click()
    tab.page.get_by_role("link", name=ASSIGNMENT, exact=True).click()
    tab.page.get_by_role("link", name=NOTEBOOK_ID, exact=True).click()
    link = tab.page.locator('a[href*="/formgrader/submissions/%s"]'
                            % submission_id(course, student))
    link.first.click()
    tab.page.wait_for_selector("#%s" % WRITTEN, timeout=QUICK_MS)
    tab.page.wait_for_load_state("load")
    return tab, time.monotonic() - started


def settle(page):
    """Time for anything deferred (autofocus, ontoggle, onload of late images) to fire."""
    page.wait_for_load_state("load")
    page.wait_for_timeout(1500)


def assert_inert(tab, course, origin, honest_foreign=frozenset()):
    page = tab.page
    assert page.title() != hostile.MARK
    assert page.evaluate("() => window.__pwned === undefined")
    assert tab.dialogs == []
    assert course["listener"].contacts == []
    assert not [r for r in tab.requests if hostile.MARK in r[1] or ":%d/" %
                course["listener"].port in r[1]]
    # Only the page's own origin, and what the honest student's page loads as well.
    assert tab.foreign(origin) <= set(honest_foreign), tab.foreign(origin)
    active = page.evaluate("""mark => {
        const found = [];
        const content = document.querySelector('#notebook-container') || document.body;
        for (const e of content.querySelectorAll('*')) {
            for (const a of e.attributes) {
                if (a.name.startsWith('on') && a.value.includes(mark)) found.push(e.outerHTML);
                if (/^\\s*javascript:/i.test(a.value)) found.push(e.outerHTML);
            }
            if (e.tagName === 'SCRIPT' && e.text.includes(mark)) found.push(e.outerHTML);
            if (['IFRAME', 'OBJECT', 'EMBED'].includes(e.tagName)) found.push(e.outerHTML);
        }
        return found;
    }""", hostile.MARK)
    assert active == []
    assert not list(course["root"].rglob("%s-*" % hostile.MARK))


def test_the_honest_reference_earns_every_autograded_point(course):
    with Gradebook(course["url"]) as gradebook:
        grades = {grade.name: grade.score for grade in
                  gradebook.find_submission_notebook(NOTEBOOK_ID, ASSIGNMENT, HONEST).grades}
    assert {name: grades[name] for name in points()} == points()


def test_a_written_answer_still_waits_for_the_instructor(course):
    # Its needs_manual_grade comes from nbgrader's checksum, taken before sanitizing.
    assert written_grade(course, HONEST) == (None, True)
    assert written_grade(course, HOSTILE) == (None, True)


def test_the_stored_notebook_keeps_honest_markdown_and_has_no_live_markup(course):
    root = course["root"]
    submitted = nbformat.read(submission_path(root, HONEST), as_version=4)
    graded = nbformat.read(root / "autograded" / HONEST / ASSIGNMENT / NOTEBOOK, as_version=4)
    assert ([c.source for c in graded.cells if c.cell_type == "markdown"]
            == [c.source for c in submitted.cells if c.cell_type == "markdown"])
    hostile_nb = nbformat.read(root / "autograded" / HOSTILE / ASSIGNMENT / NOTEBOOK,
                               as_version=4)
    written = next(c for c in hostile_nb.cells if grade_id(c) == WRITTEN)
    assert "<img" not in written.source and "&lt;img" in written.source
    types = {key for cell in hostile_nb.cells if cell.cell_type == "code"
             for output in cell.outputs for key in output.get("data", {})}
    assert "application/javascript" not in types
    assert {"text/html", "image/svg+xml", "image/png"} <= types


@pytest.fixture(scope="module")
def honest_grading(course, instructor, jupyterlab):
    tab, took = open_in_manual_grading(instructor, jupyterlab, course, HONEST)
    settle(tab.page)
    yield tab, took
    tab.page.close()


def test_the_formgrader_grades_the_written_answer_by_hand(course, honest_grading):
    tab, took = honest_grading
    assert took * 1000 < QUICK_MS * 2
    score = tab.page.locator("#%s" % WRITTEN)
    score.scroll_into_view_if_needed()
    tab.page.screenshot(path=str(ARTIFACTS / "formgrader-manual-grading.png"))
    with tab.page.expect_response(lambda r: "/formgrader/api/grade/" in r.url
                                  and r.request.method == "PUT", timeout=QUICK_MS) as saved:
        score.fill("2.5")
        score.press("Tab")
    assert saved.value.status == 200
    deadline = time.monotonic() + 10
    while written_grade(course, HONEST)[0] != 2.5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert written_grade(course, HONEST) == (2.5, False)
    assert tab.slow == []
    tab.page.screenshot(path=str(ARTIFACTS / "formgrader-written-answer-saved.png"))


def test_student_markup_does_not_run_in_manual_grading(course, instructor, jupyterlab,
                                                       honest_grading):
    tab, _ = open_in_manual_grading(instructor, jupyterlab, course, HOSTILE)
    settle(tab.page)
    tab.page.screenshot(path=str(ARTIFACTS / "formgrader-html-payloads.png"), full_page=True)
    assert_inert(tab, course, jupyterlab, honest_grading[0].foreign(jupyterlab))
    assert not [method for method, _ in tab.requests if method != "GET"]
    # The instructor sees what the student wrote, as text.
    answer = tab.page.locator(".nbgrader_cell", has=tab.page.locator("#%s" % WRITTEN))
    assert 'onerror="document.title' in answer.inner_text()
    tab.page.close()


@pytest.fixture(scope="module")
def feedback_site(course):
    """The feedback folder over http, as a course website would serve it."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(course["root"] / "feedback"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def open_feedback(browser, site, student):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = Watched(context)
    tab.page.goto("%s/%s/%s/%s.html" % (site, student, ASSIGNMENT, NOTEBOOK_ID))
    settle(tab.page)
    return tab


@pytest.fixture(scope="module")
def honest_feedback(browser, feedback_site):
    tab = open_feedback(browser, feedback_site, HONEST)
    yield tab
    tab.page.context.close()


def test_the_honest_feedback_page_shows_its_figures_and_markdown(honest_feedback):
    page = honest_feedback.page
    figures = page.locator("img[src^='data:image/png']")
    assert figures.count() >= 3
    for k in range(figures.count()):
        loaded = figures.nth(k).evaluate("img => img.complete && img.naturalWidth >= 600")
        assert loaded, k
    written = page.locator(".text_cell_render", has_text="Model answer")
    assert written.locator("em", has_text="Model answer").count() == 1
    assert page.locator(".text_cell_render h2, .text_cell_render h1").count() >= 3
    assert page.locator(".text_cell_render strong").count() >= 3
    assert page.locator("a[href*='colab.research.google.com']").count() == 1
    page.screenshot(path=str(ARTIFACTS / "feedback-reference.png"))


def test_student_markup_does_not_run_in_the_feedback_page(browser, feedback_site, course,
                                                          honest_feedback):
    tab = open_feedback(browser, feedback_site, HOSTILE)
    tab.page.screenshot(path=str(ARTIFACTS / "feedback-html-payloads.png"), full_page=True)
    assert_inert(tab, course, feedback_site, honest_feedback.foreign(feedback_site))
    notes = tab.page.locator(".text_cell_render", has_text="My notes")
    assert notes.locator("em", has_text="ordinary").count() == 1
    assert "<script>document.title" in notes.inner_text()
    tab.page.context.close()
