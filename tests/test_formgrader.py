"""The instructor's side in a real browser: the formgrader, Manual Grading and feedback pages.

One course copy is released and autograded with the course's config (sandbox on) for two
students: the honest reference, and `html_payloads` (tests/hostile.py), whose markdown,
written answer and outputs carry script. A third student's submission waits, ungraded.
JupyterLab then runs from the course folder as the instructor runs it, so the formgrader
loads the course's nbgrader_config.py, with an exchange to release feedback to; Debian's
Chromium, driven by Playwright, opens the formgrader from JupyterLab's Nbgrader menu,
autogrades the third student with its button, grades written answers by hand with a score
and a comment, generates and releases feedback, and opens every page a student's markup
reaches. The released page and the grade table then show the hand grade. Screenshots land
in tests/artifacts/.
"""
import contextlib
import csv
import functools
import hashlib
import http.server
import re
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

import hostile
from nbgrader.utils import notebook_hash

from conftest import ARTIFACTS, ROOT, TOKEN, jupyterlab_server, make, nbgrader
from coursekit.classroom import exchange
from coursekit.examples import answers
from coursekit.course import ASSIGNMENT, COURSE_ID, NOTEBOOK, grade_id, gradebook_url
from coursekit.examples.samples import (course_copy, nbgrader_env, sample_submission,
                                        submission_path)
from test_grading import points
from graded_classes import Listener

HONEST, HOSTILE = "reference", "html_payloads"
# One typical slip in each later exercise (coursekit/examples/samples.py): checks pass and fail.
PARTIAL = "partial"
NOTEBOOK_ID = NOTEBOOK[:-len(".ipynb")]
WRITTEN = hostile.WRITTEN_ANSWER
# Far below the 300 s the formgrader hung for when it deadlocked on the gradebook.
QUICK_MS = 20_000
# Any URL but this machine's (the servers the tests start listen on 127.0.0.1).
FOREIGN = re.compile(r"^(?!(?:https?|wss?)://(?:127\.0\.0\.1|localhost)(?::\d+)?/)")
# The formgrader's autograde button grades one notebook while the browser waits: 45 s on
# two cores busy with another test run. Still far below those 300 s.
AUTOGRADE_MS = 150_000
# JupyterLab's first load in a fresh profile, on a busy machine.
LAB_MS = 90_000
# Submitted, not autograded: the formgrader's button grades this one.
BY_BUTTON = "graded_by_button"
# The hand grade of BY_BUTTON's written answer, out of its 3 points, and the comment.
HAND_SCORE = 2
COMMENT = "Right idea. Say *why* ReLU halves the variance: hand-graded-in-chromium-1103."
# A cell of BY_BUTTON's own: which of the course's files its kernel can see.
PROBE = 'import os\nprint("course files the kernel sees:", [p for p in %r if os.path.exists(p)])\n'
COURSE_FILES_PROBED = ("source", "gradebook.db", "submitted", "nbgrader_config.py")


def collected(root, student, notebook, minute):
    """Put `notebook` where `nbgrader collect` puts a student's submission, with the
    timestamp and secret that `nbgrader submit` writes beside it; release_feedback names
    the student's page in the exchange by that secret."""
    path = submission_path(root, student)
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    (path.parent / "timestamp.txt").write_text("2025-03-14 09:%02d:00.000000 UTC" % minute)
    (path.parent / "submission_secret.txt").write_text(
        hashlib.sha256(student.encode()).hexdigest())


def probed_reference(root):
    """The reference, with a cell after the imports that lists the course's files it sees."""
    notebook = hostile.reference()
    index = next(i for i, cell in enumerate(notebook.cells) if grade_id(cell) == "imports")
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(
        PROBE % [str(root / name) for name in COURSE_FILES_PROBED]))
    return notebook


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = course_copy(tmp_path_factory.mktemp("formgrader") / "course")
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    listener = Listener()
    for minute, (student, notebook) in enumerate(
            ((HONEST, hostile.reference()), (HOSTILE, hostile.html_payloads(listener.port)),
             (PARTIAL, sample_submission(PARTIAL)))):
        collected(root, student, notebook, minute)
    nbgrader(root, "autograde", ASSIGNMENT, "--force")
    nbgrader(root, "generate_feedback", ASSIGNMENT, "--force")
    # Collected after the command line graded the class: only the formgrader grades it.
    collected(root, BY_BUTTON, probed_reference(root), 3)
    # Where release_feedback puts the pages, made as the course makes its exchange.
    shared = Path(exchange.create_root(tmp_path_factory.mktemp("exchange") / "exchange"))
    yield dict(root=root, listener=listener, url=gradebook_url(root), exchange=shared)
    listener.server.close()


@pytest.fixture(scope="module")
def jupyterlab(course, tmp_path_factory):
    """JupyterLab started from the course folder, as the README tells instructors to, with
    the course's exchange given on its command line."""
    from test_studentconfig import installed_guard

    home = tmp_path_factory.mktemp("lab-home")
    # The guard as `make` installs it, which hides the instructor's tools outside a course
    # folder: here they stay.
    env = dict(nbgrader_env(), JUPYTER_CONFIG_PATH=str(installed_guard(home / "make").parent))
    with jupyterlab_server(course["root"], home, env,
                           "--Exchange.root=%s" % course["exchange"]) as url:
        yield url


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
        # A routed request waits in Chromium until this thread answers it, and the sync API
        # answers only inside a Playwright call: a request sent while a test polls with
        # time.sleep would wait out the poll. A regex is matched by Playwright's driver, so
        # requests to this machine are never routed and never wait on Python.
        self.page.route(FOREIGN, lambda route: route.abort())

    def _dialog(self, dialog):
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _finished(self, request):
        took = request.timing.get("responseEnd", 0)
        if took > QUICK_MS:
            self.slow.append((request.url, took))

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


@contextlib.contextmanager
def served(directory):
    """`directory` over http on loopback: yields its URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def toy_formgrader(render_seconds=0.0):
    """A page in an iframe, like the formgrader's in JupyterLab: its link reloads it (taking
    `render_seconds` to render, as on a busy machine), its button POSTs and names, in the
    top page's title, the document whose request was answered. Yields (URL, the POSTs)."""
    inner = (b"<a href='/formgrader'>Manage Assignments</a><button onclick=\"fetch("
             b"'/release_feedback', {method: 'POST'}).then(r => r.text()).then(() => "
             b"parent.document.title = 'answered in ' + (window.old ? 'old' : 'new'))\">"
             b"Release Feedback</button>")
    pages = {"/": b"<iframe src='/formgrader'></iframe>", "/formgrader": inner}
    posted = []

    class Site(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/formgrader":
                time.sleep(render_seconds)
            self._answer(pages[self.path], "text/html")

        def do_POST(self):
            posted.append(self.path)
            self._answer(b"{}", "application/json")

        def _answer(self, body, kind):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield "http://127.0.0.1:%d" % server.server_address[1], posted
    finally:
        server.shutdown()
        server.server_close()


def test_a_watched_tab_sends_requests_to_this_machine_while_the_test_thread_sleeps(browser):
    """The instructor walk presses Release Feedback, then polls the exchange with time.sleep.
    Its POST must reach the server without waiting for a Playwright call; what would leave
    the machine is still refused, and recorded."""
    context = browser.new_context()
    with toy_formgrader() as (url, posted):
        try:
            tab = Watched(context)
            tab.page.goto(url + "/formgrader")
            # Sent once this thread has left Playwright, as a click's request can be.
            tab.page.evaluate("() => { setTimeout(() => fetch('/release_feedback', "
                              "{method: 'POST'}), 300); }")
            time.sleep(3)  # no Playwright call: nothing in this thread can let a request go
            assert posted == ["/release_feedback"], "the POST waited for the test's thread"
            away = "https://cdn.example.org/mathjax.js"
            assert tab.page.evaluate("url => fetch(url).then(() => 'fetched', () => 'refused')",
                                     away) == "refused"
            assert away in tab.foreign("http://127.0.0.1")
        finally:
            context.close()


@contextlib.contextmanager
def toy_formgrader_tab(browser, render_seconds):
    """The toy formgrader open in a tab of its own: yields (the tab, its iframe, the POSTs)."""
    context = browser.new_context()
    with toy_formgrader(render_seconds) as (url, posted):
        try:
            page = context.new_page()
            page.goto(url)
            yield page, page.frame_locator("iframe"), posted
        finally:
            context.close()


def answered_in(page):
    """The toy formgrader's title once its POST was answered: which page the button was in."""
    page.wait_for_function("() => document.title.startsWith('answered')")
    return page.title()


def test_a_button_pressed_after_following_a_link_is_the_new_pages(browser):
    """Playwright does not wait for an iframe's navigation: right after the link's click, the
    old page still shows the same button. Pressed there, its request was cancelled when the
    new page replaced it (the walk's Release Feedback, in three full runs)."""
    with toy_formgrader_tab(browser, render_seconds=1.5) as (page, frame, _):
        frame.locator("body").evaluate("body => { window.old = true; }")
        follow(frame, frame.get_by_role("link", name="Manage Assignments"))
        with page.expect_request(lambda request: request.method == "POST"):
            frame.get_by_role("button", name="Release Feedback").click()
        assert answered_in(page) == "answered in new"


def test_a_press_sends_one_request_however_long_its_page_takes_to_open(browser):
    """press finds its button afresh, opening Manage Assignments again on the way: a page
    that takes longer than the request's wait to open is still pressed once (Release and
    Release Feedback are not to be repeated)."""
    with toy_formgrader_tab(browser, render_seconds=6) as (page, frame, posted):
        def button():
            follow(frame, frame.get_by_role("link", name="Manage Assignments"))
            return frame.get_by_role("button", name="Release Feedback")

        press(page, button, "release_feedback")
        assert (answered_in(page), posted) == ("answered in new", ["/release_feedback"])


@pytest.fixture(scope="module")
def feedback_site(course):
    """The feedback folder over http, as a course website would serve it."""
    with served(course["root"] / "feedback") as url:
        yield url


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


# --- The feedback page leads with the results --------------------------------------------

# Compressed text as the helpers cell carried it: a long run of base85 characters, no
# space, mixing lower and upper case, digits and signs (Python code has dots and spaces).
BASE85_RUN = re.compile(r"[0-9A-Za-z!#$%&()*+\-;<=>?@^_`{|}~]{60,}")
HELPERS = "celltag_self_check_helpers"  # the class the helpers cell's rendering carries


def compressed_text(text):
    return [run for run in BASE85_RUN.findall(text)
            if all(re.search(kind, run) for kind in (r"[a-z]", r"[A-Z]", r"[0-9]",
                                                      r"[!#$%&*+;<=>?@^`{|}~-]"))]


def test_the_compressed_text_detector_finds_the_helpers_packing():
    import base64
    import zlib

    packed = base64.b85encode(zlib.compress((ROOT / "coursekit" / "kernel" / "checks.py").read_bytes()))
    assert compressed_text("x = (\n  '%s'\n)" % packed.decode()[:84])
    assert not compressed_text(
        "udl_bn_checks.score(udl_bn_checks.check_no_compounding(ResidualNetworkWithBatchNorm), 2)")


def results_of(page):
    """[[verdict, name, points, message]] of each line of the results atop a feedback page."""
    return page.evaluate("""() => [...document.querySelectorAll('#results tr.result')].map(
        tr => [...tr.querySelectorAll('td')].map(td => td.innerText.trim()))""")


def graded_checks(course, student):
    """[(name, score, points)] of a student's autograded checks, in notebook order."""
    with Gradebook(course["url"]) as gradebook:
        grades = {grade.name: (grade.score, grade.max_score) for grade in
                  gradebook.find_submission_notebook(NOTEBOOK_ID, ASSIGNMENT, student).grades}
    return [(name[len("test_"):], *grades[name]) for name in points()]


@pytest.fixture(scope="module")
def partial_feedback(browser, feedback_site):
    """PARTIAL's page, on a 1400x900 screen."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = Watched(context)
    tab.page.goto("%s/%s/%s/%s.html" % (feedback_site, PARTIAL, ASSIGNMENT, NOTEBOOK_ID))
    settle(tab.page)
    tab.page.screenshot(path=str(ARTIFACTS / "feedback-first-screen.png"))
    yield tab.page
    context.close()


def test_the_feedback_page_opens_with_the_first_verdict_on_the_first_screen(partial_feedback):
    page = partial_feedback
    first = page.locator("#results td.verdict").first.bounding_box()
    assert first["y"] + first["height"] < 900, first
    height = page.evaluate("() => document.documentElement.scrollHeight")
    print("first verdict at y = %.0f px; page %d px tall" % (first["y"], height))


def test_the_results_name_every_check_with_its_verdict_points_and_message(
        course, partial_feedback):
    lines = results_of(partial_feedback)
    checks = graded_checks(course, PARTIAL)
    assert [line[1] for line in lines] == [name for name, _, _ in checks] + ["written answer"]
    assert {line[0] for line in lines[:-1]} == {"✓", "✗"}  # the partial student has both
    for (mark, name, said, message), (_, score, possible) in zip(lines, checks):
        assert mark == ("✓" if score >= possible else "✗"), name
        assert said == "%g of %g point%s" % (score, possible, "" if possible == 1 else "s")
        assert len(message) > 10, (name, message)
    phrase = answers.SLIPS["slope_end_points"].message
    assert phrase in dict((line[1], line[3]) for line in lines)["slope"]


def test_each_results_line_links_to_its_cell_below(partial_feedback):
    page = partial_feedback
    anchors = page.evaluate("""() => [...document.querySelectorAll('#results td.name a')].map(
        a => [a.getAttribute('href').slice(1),
              document.getElementsByName(a.getAttribute('href').slice(1)).length,
              (document.getElementsByName(a.getAttribute('href').slice(1))[0] || document.body)
                .getBoundingClientRect().top])""")
    below = page.locator("#results").bounding_box()
    for anchor, found, top in anchors:
        assert found == 1 and top > below["y"] + below["height"], anchor
    page.locator("#results td.name a", has_text="slope").click()
    assert page.evaluate("() => location.hash") == "#test_slope"


def test_the_written_answer_reads_as_waiting_until_hand_graded(partial_feedback):
    page = partial_feedback
    assert results_of(page)[-1] == ["…", "written answer", "3 points",
                                    "Waiting for your instructor, who grades it by hand."]
    answer = page.locator(".nbgrader_cell", has=page.locator("a[name='%s']" % WRITTEN))
    heading = answer.locator(".panel-heading").inner_text()
    assert "Waiting for your instructor" in heading and "Score" not in heading
    assert "is waiting for your instructor" in page.locator("#results h4").inner_text()


def test_no_compressed_text_on_the_feedback_page_and_the_helpers_take_one_line(
        partial_feedback):
    page = partial_feedback
    assert compressed_text(page.locator("body").inner_text()) == []
    helpers = page.locator(".%s .input_area" % HELPERS)
    assert helpers.count() == 1
    assert helpers.inner_text().strip().count("\n") == 0
    assert helpers.bounding_box()["height"] < 60


def test_the_formgrader_shows_the_helpers_as_one_line(honest_grading):
    page = honest_grading[0].page
    helpers = page.locator(".%s .input_area" % HELPERS)
    assert helpers.count() == 1
    assert helpers.inner_text().strip().count("\n") == 0
    assert compressed_text(page.locator("body").inner_text()) == []


# The formgrader as JupyterLab opens it, autograding with its button; Manual Grading with a
# score and a comment; feedback generated and released from the formgrader; the grade table.

def close_modal(modal):
    """Press the formgrader's modal's OK and wait until it is gone."""
    modal.get_by_role("button", name="OK").click()
    modal.wait_for(state="detached")


def press(page, button, action, attempts=3):
    """Clicks the formgrader's `button` (a function giving its locator afresh) until the page
    posts `action` to the formgrader's API. The page builds its table after loading, and
    again after each action, emptying a cell before drawing its link: a click that lands in
    between does nothing (once in a full run, Release Feedback sent no request)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for _ in range(attempts):
        # Found (and any page it needs opened) before the request's five seconds begin: a
        # page slow to open must not read as a click that sent nothing, and be pressed again.
        target = button()
        target.wait_for()
        try:
            with page.expect_request(lambda request: request.method == "POST" and
                                     request.url.endswith("/" + action), timeout=5_000):
                target.click()
            return
        except PlaywrightTimeout:
            continue
    pytest.fail("The formgrader's %s button sent nothing in %d clicks" % (action, attempts))


def finished(frame, timeout):
    """The formgrader's answer to a button: its success or error modal, and its text."""
    modal = frame.locator("#success-modal, #error-modal")
    modal.wait_for(timeout=timeout)
    return modal, modal.get_attribute("id"), modal.inner_text()


@pytest.fixture(scope="module")
def formgrader_in_lab(instructor, jupyterlab):
    """JupyterLab > the Nbgrader menu > Formgrader: the formgrader in Lab's panel."""
    tab = Watched(instructor)
    tab.page.goto("%s/lab" % jupyterlab)
    tab.page.get_by_role("menuitem", name="Nbgrader", exact=True).click(timeout=LAB_MS)
    tab.page.get_by_role("menuitem", name="Formgrader", exact=True).click()
    frame = tab.page.frame_locator("iframe[src*='/formgrader']")
    frame.get_by_role("link", name="Manage Assignments").wait_for()
    tab.page.screenshot(path=str(ARTIFACTS / "formgrader-in-jupyterlab.png"))
    # The instructor's JupyterLab, in the course folder, keeps Create Assignment too.
    assert tab.page.locator("#nbgrader-create_assignemnt").count() == 1
    yield tab, frame
    tab.page.close()


def follow(frame, link):
    """Clicks `link` in the formgrader's `frame` and waits for the page it opens: a locator
    used before that can find the old page's element (test_a_button_pressed_after_...)."""
    with frame.owner.element_handle().content_frame().expect_navigation():
        link.click()


def assignment_row(frame):
    """Manage Assignments: the assignment's row (reached by its submissions count)."""
    follow(frame, frame.get_by_role("link", name="Manage Assignments"))
    count = frame.locator("a[href$='/formgrader/manage_submissions/%s']" % ASSIGNMENT)
    return frame.locator("#main-table tr", has=count), count


@pytest.fixture(scope="module")
def autograded_by_button(course, formgrader_in_lab):
    """Manage Assignments > bn's submissions > BY_BUTTON's autograde button."""
    tab, frame = formgrader_in_lab
    _, count = assignment_row(frame)
    follow(frame, count)
    student = frame.locator("td.student-id").filter(has_text=re.compile("^%s$" % BY_BUTTON))
    row = frame.locator("#main-table tr", has=student)
    before = row.locator("td.status").inner_text()
    started = time.monotonic()
    press(tab.page, lambda: row.locator("td.autograde a"), "autograde")
    modal, outcome, said = finished(frame, AUTOGRADE_MS)
    took = time.monotonic() - started
    tab.page.screenshot(path=str(ARTIFACTS / "formgrader-autograde-button.png"))
    close_modal(modal)
    row.locator("td.score").filter(has_text="/").wait_for()
    yield dict(before=before, outcome=outcome, said=said, took=took,
               status=row.locator("td.status").inner_text(),
               score=row.locator("td.score").inner_text())


def autograded_notebook(course, student):
    return nbformat.read(course["root"] / "autograded" / student / ASSIGNMENT / NOTEBOOK,
                         as_version=4)


def test_the_formgrader_autogrades_a_submission_with_its_button(course, autograded_by_button):
    graded = autograded_by_button
    assert graded["before"] == "needs autograding"
    assert graded["outcome"] == "success-modal", graded["said"]
    assert "Successfully autograded '%s' for student '%s'" % (ASSIGNMENT, BY_BUTTON) \
        in graded["said"]
    assert graded["took"] * 1000 < AUTOGRADE_MS, graded["took"]
    assert (course["root"] / "autograded" / BY_BUTTON / ASSIGNMENT / NOTEBOOK).is_file()
    with Gradebook(course["url"]) as gradebook:
        submission = gradebook.find_submission_notebook(NOTEBOOK_ID, ASSIGNMENT, BY_BUTTON)
        grades = {grade.name: grade.auto_score for grade in submission.grades}
    assert {name: grades[name] for name in points()} == points()
    assert sum(points().values()) == 25
    # The submissions table says so without a reload: the written answer still waits.
    assert graded["status"] == "needs manual grading"
    assert graded["score"] == "25 / 28"


def test_the_formgrader_autogrades_in_the_course_sandbox(course, autograded_by_button):
    """The button goes through the course's config: the student's kernel saw none of the
    course's files, which all exist; the course's autograde left no attention note."""
    assert all((course["root"] / name).exists() for name in COURSE_FILES_PROBED)
    probe = next(cell for cell in autograded_notebook(course, BY_BUTTON).cells
                 if cell.source.startswith("import os\nprint(\"course files"))
    assert [o.get("text") for o in probe.outputs] == ["course files the kernel sees: []\n"]
    assert not list((course["root"] / "autograded").glob("*/*needs-attention*"))


@pytest.fixture(scope="module")
def hand_graded(course, instructor, jupyterlab, autograded_by_button):
    """Manual Grading: BY_BUTTON's written answer gets a score and a comment."""
    tab, _ = open_in_manual_grading(instructor, jupyterlab, course, BY_BUTTON)
    saves = []
    for field, value, api in ((WRITTEN, str(HAND_SCORE), "grade"),
                              (WRITTEN + "-comment", COMMENT, "comment")):
        box = tab.page.locator("#%s" % field)
        box.scroll_into_view_if_needed()
        with tab.page.expect_response(lambda r: "/formgrader/api/%s/" % api in r.url
                                      and r.request.method == "PUT") as saved:
            box.fill(value)
            box.press("Tab")
        saves.append(saved.value.status)
    tab.page.screenshot(path=str(ARTIFACTS / "formgrader-hand-grade-and-comment.png"))
    yield saves, tab.slow
    tab.page.close()


def stored_hand_grade(course, student):
    with Gradebook(course["url"]) as gradebook:
        grade = gradebook.find_grade(WRITTEN, NOTEBOOK_ID, ASSIGNMENT, student)
        comment = gradebook.find_comment(WRITTEN, NOTEBOOK_ID, ASSIGNMENT, student)
        return (grade.manual_score, grade.needs_manual_grade, comment.manual_comment,
                gradebook.find_submission(ASSIGNMENT, student).score)


def test_manual_grading_stores_the_score_and_the_comment(course, hand_graded):
    saves, slow = hand_graded
    assert saves == [200, 200]
    assert slow == []
    # Saved when the server answered the PUT: nothing to wait for.
    assert stored_hand_grade(course, BY_BUTTON) == (HAND_SCORE, False, COMMENT, 25 + HAND_SCORE)


@pytest.fixture(scope="module")
def feedback_released(course, formgrader_in_lab, hand_graded):
    """Manage Assignments > bn: Generate Feedback, then Release Feedback."""
    tab, frame = formgrader_in_lab
    outcomes = {}
    for step in ("generate-feedback", "release-feedback"):
        press(tab.page, lambda: assignment_row(frame)[0].locator("td.%s a" % step),
              step.replace("-", "_"))
        modal, outcome, said = finished(frame, QUICK_MS * 3)
        tab.page.screenshot(path=str(ARTIFACTS / ("formgrader-%s.png" % step)))
        outcomes[step] = outcome, said
        close_modal(modal)
    yield outcomes


def released_page(course, student):
    """Where release_feedback puts the student's page: named by their submission's secret,
    which `nbgrader fetch_feedback` hashes the same way to find it."""
    secret = (submission_path(course["root"], student).parent
              / "submission_secret.txt").read_text()
    return (course["exchange"] / COURSE_ID / "feedback"
            / ("%s.html" % notebook_hash(secret=secret, notebook_id=NOTEBOOK_ID)))


def test_the_formgrader_generates_and_releases_feedback(course, feedback_released):
    for step, (outcome, said) in feedback_released.items():
        assert outcome == "success-modal", (step, said)
    feedback = course["root"] / "feedback" / BY_BUTTON / ASSIGNMENT / (NOTEBOOK_ID + ".html")
    assert feedback.is_file()
    for student in (HONEST, HOSTILE, PARTIAL, BY_BUTTON):
        assert released_page(course, student).read_bytes() == (
            course["root"] / "feedback" / student / ASSIGNMENT
            / (NOTEBOOK_ID + ".html")).read_bytes(), student
    released = course["exchange"] / COURSE_ID / "feedback"
    assert sorted(p.name for p in released.iterdir()) \
        == sorted(released_page(course, s).name for s in (HONEST, HOSTILE, PARTIAL, BY_BUTTON))


def test_the_released_feedback_page_shows_the_hand_score_and_the_comment(
        course, browser, feedback_released):
    page_file = released_page(course, BY_BUTTON)
    assert page_file.is_file(), "nothing released at %s" % page_file
    with served(page_file.parent) as site:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = Watched(context)
        tab.page.goto("%s/%s" % (site, page_file.name))
        tab.page.wait_for_load_state("load")
        written = tab.page.locator(".nbgrader_cell", has=tab.page.locator(
            "a[name='%s']" % WRITTEN))
        written.scroll_into_view_if_needed()
        tab.page.screenshot(path=str(ARTIFACTS / "feedback-released-hand-grade.png"))
        answer = written.inner_text()
        outline = tab.page.locator("body").inner_text()
        comment_html = written.locator(".panel-footer").inner_html()
        tab_results = results_of(tab.page)
        context.close()
    assert "Score: %.1f / 3.0" % HAND_SCORE in answer
    assert "Comments:" in answer
    # The comment, rendered from Markdown as nbgrader renders it.
    assert COMMENT.replace("*why*", "why") in answer
    assert "<em>why</em>" in comment_html
    # The results at the top: the written answer's score and the comment, and the total.
    assert tab_results[-1][:3] == ["✎", "written answer", "%g of 3 points"
                                                    % HAND_SCORE]
    assert COMMENT.replace("*why*", "why") in tab_results[-1][3]
    assert "Your results: %g of 28 points in total" % (25 + HAND_SCORE) in outline
    # The course's feedback step: each check by name, its verdict and points, no code.
    assert re.search(r"✓ [^\n]+: passed, 2 of 2 points", outline)


def test_the_grade_table_includes_the_hand_grade(course, hand_graded):
    report = make(course["root"], "report")
    with open(course["root"] / "grades.csv", newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {HONEST, HOSTILE, PARTIAL, BY_BUTTON}
    assert rows[BY_BUTTON]["score"] == "%g" % (25 + HAND_SCORE)
    assert rows[BY_BUTTON]["max_score"] == "28"
    assert re.search(r"^%s\s+%g/28" % (BY_BUTTON, 25 + HAND_SCORE), report.stdout, re.M), \
        report.stdout
    # The written answer's columns: the hand score (blank while nobody has graded it) and
    # the instructor's comment.
    assert rows[BY_BUTTON][WRITTEN] == "%g" % HAND_SCORE
    assert rows[BY_BUTTON][WRITTEN + " comment"] == COMMENT
    assert rows[HOSTILE][WRITTEN] == rows[HOSTILE][WRITTEN + " comment"] == ""


def test_regrading_with_the_button_keeps_the_hand_grade(course, formgrader_in_lab,
                                                        hand_graded, feedback_released):
    """Issue 27: the formgrader's Autograde button on a student already graded by hand,
    whose written answer is unchanged: the hand score and comment stay, as graded."""
    tab, frame = formgrader_in_lab
    _, count = assignment_row(frame)
    follow(frame, count)
    student = frame.locator("td.student-id").filter(has_text=re.compile("^%s$" % BY_BUTTON))
    row = frame.locator("#main-table tr", has=student)
    press(tab.page, lambda: row.locator("td.autograde a"), "autograde")
    modal, outcome, said = finished(frame, AUTOGRADE_MS)
    close_modal(modal)
    assert outcome == "success-modal", said
    assert stored_hand_grade(course, BY_BUTTON) == (HAND_SCORE, False, COMMENT,
                                                    25 + HAND_SCORE)
    _, count = assignment_row(frame)  # the table again, as the gradebook now has it
    follow(frame, count)
    row = frame.locator("#main-table tr", has=frame.locator("td.student-id").filter(
        has_text=re.compile("^%s$" % BY_BUTTON)))
    assert row.locator("td.status").inner_text() == "graded"
    assert row.locator("td.score").inner_text() == "%g / 28" % (25 + HAND_SCORE)


# The exchange's buttons (issue 27): with the exchange in the instructor's config, the
# formgrader's Manage Assignments offers Release and Collect, and both go through it.

def handed_in(course, release):
    """A submission in the exchange's inbound, as `nbgrader submit` leaves it, by the Unix
    user running the tests (the course's collect takes only a student's own)."""
    import os
    import pwd

    student = pwd.getpwuid(os.getuid()).pw_name
    when = "2025-03-14 09:30:00.000000 UTC"
    folder = (course["exchange"] / COURSE_ID / "inbound"
              / ("%s+%s+%s+%s" % (student, ASSIGNMENT, when, "a1b2c3d4e5f6")))
    folder.mkdir()
    (folder / NOTEBOOK).write_bytes(release)
    (folder / "timestamp.txt").write_text(when)
    return student


@pytest.fixture(scope="module")
def through_the_exchange(course, formgrader_in_lab, feedback_released):
    """Manage Assignments > bn: Release, a student hands in, then Collect."""
    tab, frame = formgrader_in_lab
    row, _ = assignment_row(frame)
    found = dict(draft=row.locator("td.status").inner_text(), outcomes={})
    release = (course["root"] / "release" / ASSIGNMENT / NOTEBOOK).read_bytes()
    for step in ("release", "collect"):
        press(tab.page, lambda: assignment_row(frame)[0].locator("td.%s a" % step),
              step.replace("-", "_"))
        modal, outcome, said = finished(frame, QUICK_MS * 3)
        tab.page.screenshot(path=str(ARTIFACTS / ("formgrader-%s.png" % step)))
        found["outcomes"][step] = outcome, said
        close_modal(modal)
        if step == "release":
            row, _ = assignment_row(frame)
            found["released"] = row.locator("td.status").inner_text()
            found["student"] = handed_in(course, release)
    found["release"] = release
    yield found


def test_the_formgrader_releases_and_collects_through_the_exchange(course,
                                                                   through_the_exchange):
    found = through_the_exchange
    assert (found["draft"], found["released"]) == ("draft", "released")
    for step, (outcome, said) in found["outcomes"].items():
        assert outcome == "success-modal", (step, said)
    assert "Successfully released '%s'" % ASSIGNMENT in found["outcomes"]["release"][1]
    outbound = course["exchange"] / COURSE_ID / "outbound" / ASSIGNMENT / NOTEBOOK
    assert outbound.read_bytes() == found["release"]
    assert "Successfully collected submissions of '%s'" % ASSIGNMENT \
        in found["outcomes"]["collect"][1]
    collected_notebook = submission_path(course["root"], found["student"])
    assert collected_notebook.read_bytes() == found["release"]
    assert (collected_notebook.parent / "timestamp.txt").read_text() \
        == "2025-03-14 09:30:00.000000 UTC"
