"""The instructor's term on a shared server, in the order docs/shared-server.md gives it,
with real Unix students and no sudo (issue 27), and nbgrader's exchange end to end.

One term, run once for the module: the instructor (the user running the tests) makes an
empty class (`make new-class`), keeps the exchange in a per-user config (the JupyterLab's
home's ~/.jupyter, as the guide says), and releases; three students fetch and hand in as
themselves, with nbgrader's own commands (one on time, one twice, one after the due date),
and two hand in what they could not have (under another's name, a link to the solutions);
the instructor collects, grades, grades the written answer by hand in the formgrader in
Chromium, regrades that student alone, writes the feedback and releases it with the
formgrader's button and with `make release-feedback`; each student fetches their page (one
also asks for another's); the grades go out with `make export`. The tests then read what
happened: who got which grade and which page, what was late, what students could see of
each other, and that nothing a student handed in was changed or lost. The Unix users and
the collect race are in test_exchange.py, the browser helpers in test_formgrader.py. Needs
root (as in CI) or passwordless sudo, to create and delete the users.
"""
import contextlib
import csv
import json
import os
import re
import shutil
import tempfile
import time
from contextlib import ExitStack
from types import SimpleNamespace

import pytest
from nbgrader.api import Gradebook
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from conftest import (ROOT, TOKEN, checksums, chromium, graded_ahead,
                      in_a_thread_of_its_own, jupyterlab_server, make, nbgrader, server_stacks)
from coursekit.classroom import exchange
from coursekit.course import ASSIGNMENT, COURSE_ID, NOTEBOOK, gradebook_url
from coursekit.examples.samples import course_copy, nbgrader_env
from test_exchange import (FORGE, PROBE, TREE, Machine, Student, answers, committed_points,
                           now_utc, privileges, run, sha256, students_python, submit)
from test_formgrader import (ARTIFACTS, AUTOGRADE_MS, LAB_MS, QUICK_MS, WRITTEN, Watched,
                             assignment_row, close_modal, open_in_manual_grading, press)

# They add and remove Unix users: one lane at a time (`pytest -n N`, tests/conftest.py).
pytestmark = pytest.mark.one_lane("unix-users")

# Who hands in what, in order (samples of coursekit.examples.samples; "blank" is the untouched
# release). The three last submissions have different points, so a page's score names it.
HANDS_IN = {"ontime": ("reference",), "twice": ("blank", "partial"), "late": ("seed",)}
HAND_SCORE = 2
COMMENT = "Close: say *why* the ReLU halves the variance (walk-1127)."
PAGE = NOTEBOOK.replace(".ipynb", ".html")


def formgrader(context, url):
    """JupyterLab > Nbgrader > Formgrader, as the instructor opens it."""
    tab = Watched(context)
    tab.page.goto("%s/lab" % url)
    tab.page.get_by_role("menuitem", name="Nbgrader", exact=True).click(timeout=LAB_MS)
    tab.page.get_by_role("menuitem", name="Formgrader", exact=True).click()
    frame = tab.page.frame_locator("iframe[src*='/formgrader']")
    frame.get_by_role("link", name="Manage Assignments").wait_for()
    return tab, frame


@graded_ahead
def walk(tmp_path_factory):
    """The term, in a Chromium of its own and with its Unix users removed when it ends:
    in the full suite it runs beside the other tests (conftest.graded_ahead), or where the
    run's own Chromium is open (a thread of its own)."""
    return in_a_thread_of_its_own(whole_term, tmp_path_factory)


def whole_term(tmp_path_factory):
    with chromium() as browser, ExitStack() as cleanup:
        machine = Machine(privileges(), cleanup)
        return term(tmp_path_factory, browser, machine, cleanup)


def term(tmp_path_factory, browser, machine, cleanup):
    walk = SimpleNamespace(students={role: Student(role, "") for role in HANDS_IN})
    # Outside pytest's folder, which other users cannot enter.
    top = tempfile.mkdtemp(prefix="udl-walk-test-", dir="/tmp")
    cleanup.callback(run, ["rm", "-rf", "--one-file-system", top], machine.privileges,
                     "rm " + top)
    os.chmod(top, 0o755)
    machine.bin = students_python(os.path.join(top, "python"))
    shared = walk.exchange = exchange.create_root(os.path.join(top, "exchange"))
    walk.course = os.path.join(shared, COURSE_ID)
    walk.inbound = os.path.join(walk.course, "inbound")
    root = walk.root = course_copy(tmp_path_factory.mktemp("walk-course"))
    # The instructor's own ~/.jupyter/nbgrader_config.py: the formgrader's JupyterLab runs
    # with this home. The make targets are given the exchange on their command line.
    home = walk.home = tmp_path_factory.mktemp("instructor-home")
    (home / ".jupyter").mkdir()
    (home / ".jupyter" / "nbgrader_config.py").write_text(exchange.student_config(shared))
    at_exchange = "EXCHANGE=" + shared

    # A clone holds the example class: new-class removes it.
    for folder in ("release", "submitted", "autograded", "feedback"):
        shutil.copytree(ROOT / folder, root / folder, dirs_exist_ok=True)
    walk.new_class = make(root, "new-class")
    make(root, "release-assignment", at_exchange)
    walk.release = (root / "release" / ASSIGNMENT / NOTEBOOK).read_bytes()

    # Each student fetches, and hands in; the due date falls before the late one's submit.
    walk.fetched = {}
    for student in walk.students.values():
        machine.add_user(student)
        machine.write(student, os.path.join(student.home, ".jupyter", "nbgrader_config.py"),
                      exchange.student_config(shared).encode())
        reach = machine.as_student(student, str(machine.bin / "python"), "-c",
                                   "import importlib.util as u; assert u.find_spec('nbgrader')",
                                   check=False)
        if reach.returncode:
            pytest.fail("A student cannot find nbgrader with %s: %s" % (
                machine.bin / "python", reach.stderr.decode(errors="replace")[-1000:]))
        machine.nbgrader(student, "fetch_assignment", ASSIGNMENT)
        walk.fetched[student.role] = machine.read(student, os.path.join(student.folder,
                                                                         NOTEBOOK))
    for role, hands_in in HANDS_IN.items():
        student = walk.students[role]
        if role == "late":
            walk.due = now_utc()
            nbgrader(root, "db", "assignment", "add", ASSIGNMENT, "--duedate=" + walk.due)
        for submission in hands_in:
            submit(machine, student, walk, answers(student, submission, walk.fetched[role]))
    # Two forgeries: ontime hands in under twice's name; late hands in a link to the
    # solutions.
    walk.forged = {}
    for forger, named, target in (("ontime", "twice", ""),
                                  ("late", "late", str(root / "source" / ASSIGNMENT / NOTEBOOK))):
        walk.forged[forger] = machine.python(
            walk.students[forger], FORGE, walk.inbound, walk.students[named].name,
            os.path.join(walk.students[forger].folder, NOTEBOOK), target)
    walk.inbound_submitted = checksums(walk.inbound)
    walk.homes_submitted = {role: machine.python(student, TREE, student.home)
                            for role, student in walk.students.items()}

    walk.collect = make(root, "collect", at_exchange)
    walk.collected = checksums(root / "submitted")
    walk.grade = make(root, "grade", check=False)
    walk.graded = checksums(root / "submitted")
    walk.scores_graded = scores(walk)  # before the hand grade adds to one of them
    twice = walk.students["twice"].name
    env = dict(nbgrader_env())
    with jupyterlab_server(root, home, env) as url:
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(QUICK_MS)
        login = context.new_page()
        login.goto("%s/formgrader?token=%s" % (url, TOKEN))
        login.close()
        tab, frame = formgrader(context, url)
        row, _ = assignment_row(frame)
        row.locator("td.status span").wait_for()
        walk.row, walk.status = exchange_buttons(row)

        # Manual Grading: the written answer of the student who handed in twice.
        course = dict(root=root, url=gradebook_url(root))
        grading, _ = open_in_manual_grading(context, url, course, twice)
        grading.page.screenshot(path=str(ARTIFACTS / "walk-manual-grading.png"))
        walk.saves = []
        for field, value, api in ((WRITTEN, str(HAND_SCORE), "grade"),
                                  (WRITTEN + "-comment", COMMENT, "comment")):
            box = grading.page.locator("#%s" % field)
            box.scroll_into_view_if_needed()
            with grading.page.expect_response(lambda r: "/formgrader/api/%s/" % api in r.url
                                              and r.request.method == "PUT") as saved:
                box.fill(value)
                box.press("Tab")
            walk.saves.append(saved.value.status)
        grading.page.close()

        walk.regrade = make(root, "autograde", "STUDENT=" + twice)
        walk.feedback = make(root, "feedback", "report")
        # What the button did, read from the exchange: one page per student; the server's
        # answer is read once it has come, and a server that released nothing has its
        # threads' stacks shown.
        answered = []
        tab.page.on("response", lambda response: answered.append(response)
                    if response.request.method == "POST"
                    and response.url.endswith("/release_feedback") else None)
        press(tab.page, lambda: assignment_row(frame)[0].locator("td.release-feedback a"),
              "release_feedback")
        walk.released = released_pages(walk, len(walk.students), AUTOGRADE_MS)
        walk.server_log = (server_stacks(home) if len(walk.released) < len(walk.students)
                           else "")
        # Its modal is read too, but not waited on past QUICK_MS.
        modal = frame.locator("#success-modal, #error-modal")
        with contextlib.suppress(PlaywrightTimeout):
            modal.wait_for(timeout=QUICK_MS)
        walk.release_answer = server_answer(answered)
        walk.modal = modal.get_attribute("id") if modal.count() == 1 else None
        tab.page.screenshot(path=str(ARTIFACTS / "walk-release-feedback.png"))
        if walk.modal:
            walk.modal_said = modal.inner_text()
            close_modal(modal)
        context.close()
    # The README's command releases the same pages again, for instructors without the
    # formgrader: each student still finds one page, their own.
    make(root, "release-feedback", at_exchange)

    # Each student fetches their feedback; one also asks for another's.
    for student in walk.students.values():
        machine.nbgrader(student, "fetch_feedback", ASSIGNMENT)
    machine.nbgrader(walk.students["late"], "fetch_feedback", ASSIGNMENT,
                     "--student=" + walk.students["ontime"].name)
    walk.pages = {}
    for role, student in walk.students.items():
        found = machine.python(student, TREE, os.path.join(student.folder, "feedback"))
        walk.pages[role] = {path: machine.read(student, os.path.join(
            student.folder, "feedback", path)) for path in found}
    walk.export = make(root, "export")

    # What each student can reach of the others' work.
    cache = os.path.join(".local", "share", "jupyter", "nbgrader_cache", COURSE_ID)
    walk.probes = {}
    for role, student in walk.students.items():
        others = [{"name": other.name, "home": other.home,
                   "notebook": os.path.join(other.folder, NOTEBOOK),
                   "secret": os.path.join(other.home, cache,
                                          other.last["entry"].rsplit("+", 1)[0],
                                          "submission_secret.txt")}
                  for other in walk.students.values() if other is not student]
        walk.probes[role] = machine.python(student, PROBE, json.dumps({
            "course": walk.course, "inbound": walk.inbound,
            "outbound": os.path.join(walk.course, "outbound", ASSIGNMENT),
            "feedback": os.path.join(walk.course, "feedback"), "others": others}))

    # Everything as it is at the end.
    walk.inbound_after = checksums(walk.inbound)
    walk.submitted_after = checksums(root / "submitted")
    walk.homes_after = {role: machine.python(student, TREE, student.home)
                        for role, student in walk.students.items()}
    return walk


def exchange_buttons(row):
    """({button: how many the assignment's row shows}, its status), once the row shows
    every exchange button or the time is up. The formgrader draws the row once it has read
    the assignments list: a single look can catch it half drawn (the locator `row` finds the
    row anew at each look)."""
    deadline = time.monotonic() + QUICK_MS / 1000
    while True:
        buttons = {name: row.locator("td.%s a" % name).count()
                   for name in ("release", "collect", "release-feedback")}
        if all(buttons.values()) or time.monotonic() > deadline:
            return buttons, row.locator("td.status").inner_text()
        time.sleep(0.25)


def server_answer(answers):
    """(HTTP status, its JSON) of the first of the formgrader's `answers` (Playwright
    responses), or None when none came."""
    if not answers:
        return None
    try:
        said = answers[0].json()
    except Exception:  # not the API's JSON (an error page), or its body is gone
        said = {"success": False, "log": answers[0].status_text}
    return answers[0].status, said


def released_pages(walk, expected, timeout_ms):
    """The feedback pages in the exchange, once there are `expected` of them (or the time
    is up)."""
    folder = os.path.join(walk.course, "feedback")
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        pages = sorted(name for name in (os.listdir(folder) if os.path.isdir(folder) else [])
                       if name.endswith(".html"))
        if len(pages) >= expected or time.monotonic() > deadline:
            return pages
        time.sleep(0.2)


def scores(walk):
    """{role: (score in the gradebook, seconds late, score in grades.csv, its late column)}."""
    grades = table(walk.root / "grades.csv")
    with Gradebook(gradebook_url(walk.root)) as gradebook:
        submissions = {role: gradebook.find_submission(ASSIGNMENT, student.name)
                       for role, student in walk.students.items()}
        return {role: (submission.score, submission.total_seconds_late,
                       float(grades[walk.students[role].name]["score"]),
                       grades[walk.students[role].name]["late"])
                for role, submission in submissions.items()}


def table(path):
    with open(path, newline="") as handle:
        return {row[next(iter(row))]: row for row in csv.DictReader(handle)}


def test_every_student_fetches_the_release(walk):
    for role, fetched in walk.fetched.items():
        assert fetched == walk.release, role


def test_every_submission_reaches_the_inbound_under_its_students_name(walk):
    entries = sorted([submission["entry"] for student in walk.students.values()
                      for submission in student.submissions]
                     + list(walk.forged.values()))
    assert sorted({path.split("/")[0] for path in walk.inbound_after}) == entries
    for student in walk.students.values():
        assert len(student.submissions) == len(HANDS_IN[student.role])
        for submission in student.submissions:
            assert submission["owner"] == student.uid, submission
            assert submission["notebook"] == submission["handed in"], submission
    twice = walk.students["twice"]
    first, second = twice.submissions
    assert first["notebook"] == sha256(walk.release)  # the untouched release first
    assert second["notebook"] != first["notebook"]
    assert first["timestamp"] < second["timestamp"]


def test_the_new_class_collects_each_students_last_submission_and_no_one_else(walk):
    assert "Removed the example students" in walk.new_class.stdout
    submitted = walk.root / "submitted"
    assert sorted(os.listdir(submitted)) == sorted(s.name for s in walk.students.values())
    for student in walk.students.values():
        folder = submitted / student.name / ASSIGNMENT
        assert sha256((folder / NOTEBOOK).read_bytes()) == student.last["notebook"]
        assert (folder / "timestamp.txt").read_text() == student.last["timestamp"]


def test_collect_sets_aside_what_a_student_could_not_have_handed_in(walk):
    log = walk.collect.stdout + walk.collect.stderr
    ontime, twice, late = (walk.students[role].name for role in ("ontime", "twice", "late"))
    assert "%s: %s in the exchange was set aside, not collected: it belongs to %s, not %s" % (
        twice, walk.forged["ontime"], ontime, twice) in log, log[-3000:]
    assert "%s: %s in the exchange was set aside, not collected: it holds a link" % (
        late, walk.forged["late"]) in log, log[-3000:]
    # Nothing of the instructor's reached a student's folder.
    source = sha256((walk.root / "source" / ASSIGNMENT / NOTEBOOK).read_bytes())
    assert source not in walk.collected.values()


def test_make_grade_grades_the_term_without_a_warning_or_a_complaint(walk):
    said = (walk.grade.stdout + walk.grade.stderr)[-3000:]
    assert walk.grade.returncode == 0, said
    assert "Warning" not in walk.grade.stderr and "WARNING" not in walk.grade.stderr, said
    assert "NEEDS ATTENTION" not in walk.grade.stdout + walk.grade.stderr, said


def test_each_student_gets_the_points_of_what_they_handed_in_last(walk):
    expected = committed_points()
    last = {role: expected[hands_in[-1]][0] for role, hands_in in HANDS_IN.items()}
    assert len(set(last.values())) == len(last)  # a score names the submission
    for role, (gradebook, _, table_score, _) in walk.scores_graded.items():
        assert (gradebook, table_score) == (last[role], last[role]), role


def test_only_the_submission_after_the_due_date_is_late(walk):
    for role, student in walk.students.items():
        late = role == "late"
        for submission in student.submissions:
            assert (submission["timestamp"] > walk.due) == late, (role, submission)
        _, seconds_late, _, said = walk.scores_graded[role]
        assert (seconds_late > 0, bool(said)) == (late, late), (role, seconds_late, said)


def test_the_formgrader_sees_the_exchange_through_the_instructors_own_config(walk):
    assert walk.status == "released"
    assert walk.row == {"release": 1, "collect": 1, "release-feedback": 1}
    assert len(walk.released) == len(walk.students), (
        "%s released; the end of the server's log:\n%s" % (walk.released, walk.server_log))
    if walk.release_answer is not None:
        status, said = walk.release_answer
        assert (status, said.get("success")) == (200, True), said
    assert walk.modal != "error-modal", walk.modal_said


def test_the_hand_grade_survives_regrading_the_student(walk):
    assert walk.saves == [200, 200]
    twice = walk.students["twice"].name
    partial = committed_points()["partial"][0]
    with Gradebook(gradebook_url(walk.root)) as gradebook:
        grade = gradebook.find_grade(WRITTEN, NOTEBOOK[:-len(".ipynb")], ASSIGNMENT, twice)
        comment = gradebook.find_comment(WRITTEN, NOTEBOOK[:-len(".ipynb")], ASSIGNMENT,
                                         twice)
        kept = (grade.manual_score, grade.needs_manual_grade, comment.manual_comment,
                gradebook.find_submission(ASSIGNMENT, twice).score)
    assert kept == (HAND_SCORE, False, COMMENT, partial + HAND_SCORE)
    assert re.search(r"^%s\s+%g/28" % (twice, partial + HAND_SCORE), walk.feedback.stdout,
                     re.M), walk.feedback.stdout
    grades = table(walk.root / "grades.csv")
    assert (grades[twice][WRITTEN], grades[twice][WRITTEN + " comment"]) == (
        "%g" % HAND_SCORE, COMMENT)


def score_of(page):
    """The notebook's total score on a feedback page, as the results atop it carry it."""
    from bs4 import BeautifulSoup

    results = BeautifulSoup(page, features="html.parser").select_one("#results")
    return float(results["data-score"]), float(results["data-max-score"])


def test_each_student_fetches_exactly_their_own_page_with_the_hand_grade(walk):
    # The late student also asked for the on-time one's: still one page, their own.
    expected = committed_points()
    for role, student in walk.students.items():
        pages = walk.pages[role]
        # One page, filed under the time of the submission that was graded.
        assert list(pages) == [os.path.join(student.last["timestamp"], PAGE)], pages
        page = next(iter(pages.values()))
        course_page = walk.root / "feedback" / student.name / ASSIGNMENT / PAGE
        assert page == course_page.read_bytes(), role
        text = page.decode()
        assert student.marker in text, role
        points, possible = expected[HANDS_IN[role][-1]]
        hand = HAND_SCORE if role == "twice" else 0
        assert score_of(text) == (points + hand, possible), role
        for other in walk.students.values():
            if other is not student:
                assert other.name not in text, (role, other.role)
    [page] = walk.pages["twice"].values()
    assert COMMENT.replace("*why*", "why") in re.sub(r"<[^>]+>", "", page.decode())


def test_students_cannot_reach_each_others_work_or_the_course(walk):
    for role, seen in walk.probes.items():
        for what, outcome in seen.items():
            if what.endswith("submissions found"):
                assert outcome == [], (role, what)
            else:
                assert outcome == "denied", (role, what, outcome)
        assert len(seen) == 4 + 4 * (len(walk.students) - 1)


def test_nothing_a_student_handed_in_is_modified_or_lost(walk):
    # Every submission stays in the inbound as it arrived, the twice-submitted first one too.
    assert walk.inbound_after == walk.inbound_submitted
    for student in walk.students.values():
        for submission in student.submissions:
            key = os.path.join(submission["entry"], NOTEBOOK)
            assert walk.inbound_after[key] == submission["notebook"]
    # What collect copied into the course is what grading, regrading and releasing left.
    assert walk.collected == walk.graded == walk.submitted_after
    # The students' own files: only the fetched feedback is new.
    for role, after in walk.homes_after.items():
        new = os.path.join(ASSIGNMENT, "feedback") + os.sep
        assert {path: digest for path, digest in after.items()
                if not path.startswith(new)} == walk.homes_submitted[role], role


def test_the_export_and_the_table_agree_on_who_was_late(walk):
    lms = table(walk.root / "grades-lms.csv")
    grades = table(walk.root / "grades.csv")
    for role, student in walk.students.items():
        seconds = int(lms[student.name]["seconds_late"])
        assert (seconds > 0) == (role == "late"), (role, seconds)
        assert bool(grades[student.name]["late"]) == (role == "late")
        if seconds:
            said = grades[student.name]["late"]
            parts = dict((unit, int(n)) for n, unit in re.findall(r"(\d+) (h|min|s)\b", said))
            assert parts.get("h", 0) * 3600 + parts.get("min", 0) * 60 + parts.get("s", 0) \
                == seconds, said
