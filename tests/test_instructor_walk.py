"""The instructor's term on a shared server, in the order docs/shared-server.md gives it,
with real Unix students and no sudo (issue 27).

The instructor (the user running the tests) makes an empty class (`make new-class`),
keeps the exchange in a per-user config (the JupyterLab's home's ~/.jupyter, as the guide
says), and releases; three students fetch and hand in as themselves (one twice, one after
the due date); the instructor collects, grades, grades the written answer by hand in the
formgrader in Chromium, regrades that student alone, writes the feedback and releases it
with the formgrader's button; each student fetches their page; the grades go out with
`make export`. Reuses test_exchange's users and test_formgrader's browser helpers.
"""
import csv
import os
import re
import shutil
import tempfile
from contextlib import ExitStack
from types import SimpleNamespace

import pytest
from nbgrader.api import Gradebook

from conftest import ROOT, TOKEN, jupyterlab_server, make, nbgrader
from coursekit import exchange
from coursekit.course import ASSIGNMENT, COURSE_ID, NOTEBOOK, gradebook_url
from coursekit.samples import course_copy, nbgrader_env
from test_exchange import (TREE, Machine, Student, answers, committed_points, now_utc,
                           privileges, run, students_python, submit)
from test_formgrader import (ARTIFACTS, LAB_MS, QUICK_MS, WRITTEN, Watched, assignment_row,
                             close_modal, finished, open_in_manual_grading)

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


@pytest.fixture(scope="module")
def walk(tmp_path_factory, browser):
    with ExitStack() as cleanup:
        machine = Machine(privileges(), cleanup)
        yield term(tmp_path_factory, browser, machine, cleanup)


def term(tmp_path_factory, browser, machine, cleanup):
    walk = SimpleNamespace(students={role: Student(role, "") for role in HANDS_IN})
    top = tempfile.mkdtemp(prefix="udl-walk-test-", dir="/tmp")
    cleanup.callback(run, ["rm", "-rf", "--one-file-system", top], machine.privileges,
                     "rm " + top)
    os.chmod(top, 0o755)
    machine.bin = students_python(os.path.join(top, "python"))
    shared = exchange.create_root(os.path.join(top, "exchange"))
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
    release = (root / "release" / ASSIGNMENT / NOTEBOOK).read_bytes()
    for student in walk.students.values():
        machine.add_user(student)
        machine.write(student, os.path.join(student.home, ".jupyter", "nbgrader_config.py"),
                      exchange.student_config(shared).encode())
        machine.nbgrader(student, "fetch_assignment", ASSIGNMENT)
    for role, hands_in in HANDS_IN.items():
        student = walk.students[role]
        if role == "late":
            nbgrader(root, "db", "assignment", "add", ASSIGNMENT, "--duedate=" + now_utc())
        for submission in hands_in:
            submit(machine, student, SimpleNamespace(inbound=os.path.join(
                shared, COURSE_ID, "inbound")), answers(student, submission, release))

    make(root, "collect", at_exchange)
    walk.grade = make(root, "grade", check=False)
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
        row.locator("td.status span").wait_for()  # drawn with the buttons, once loaded
        walk.row = {name: row.locator("td.%s a" % name).count()
                    for name in ("release", "collect", "release-feedback")}
        walk.status = row.locator("td.status").inner_text()

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
        row, _ = assignment_row(frame)
        row.locator("td.release-feedback a").click()
        modal, walk.released, walk.released_said = finished(frame, QUICK_MS * 3)
        tab.page.screenshot(path=str(ARTIFACTS / "walk-release-feedback.png"))
        close_modal(modal)
        context.close()

    walk.pages = {}
    for role, student in walk.students.items():
        machine.nbgrader(student, "fetch_feedback", ASSIGNMENT)
        found = machine.python(student, TREE, os.path.join(student.folder, "feedback"))
        walk.pages[role] = {path: machine.read(student, os.path.join(
            student.folder, "feedback", path)).decode() for path in found}
    walk.export = make(root, "export")
    return walk


def table(path):
    with open(path, newline="") as handle:
        return {row[next(iter(row))]: row for row in csv.DictReader(handle)}


def test_the_new_class_starts_empty_and_the_term_grades_without_a_complaint(walk):
    assert "Removed the example students" in walk.new_class.stdout
    assert walk.grade.returncode == 0, (walk.grade.stdout + walk.grade.stderr)[-3000:]
    assert "Warning" not in walk.grade.stderr and "WARNING" not in walk.grade.stderr, \
        walk.grade.stderr[-3000:]
    names = sorted(s.name for s in walk.students.values())
    assert sorted(os.listdir(walk.root / "submitted")) == names


def test_the_formgrader_sees_the_exchange_through_the_instructors_own_config(walk):
    assert walk.status == "released"
    assert walk.row == {"release": 1, "collect": 1, "release-feedback": 1}
    assert walk.released == "success-modal", walk.released_said


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


def test_each_student_fetches_their_own_page_with_the_hand_grade(walk):
    for role, pages in walk.pages.items():
        assert [path.endswith(PAGE) for path in pages] == [True], (role, pages)
    [page] = walk.pages["twice"].values()
    assert COMMENT.replace("*why*", "why") in re.sub(r"<[^>]+>", "", page)
    total = committed_points()["partial"][0] + HAND_SCORE
    assert re.search(r'data-score="%s"' % re.escape("%.1f" % total), page)


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
