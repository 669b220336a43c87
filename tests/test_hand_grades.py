"""Issue 27: a regrade keeps the hand grades of unchanged written answers.

A class of two is graded with `make autograde`, and both written answers are graded by
hand as the formgrader does it (a score and a comment). Then bob changes his answer, and
each student is regraded alone with `make autograde STUDENT=...`. Ada's hand grade stays
graded everywhere (gradebook, grades.csv, the report, her feedback page); bob's is marked
for grading again, its old score and comment kept and named in the report.
"""
import csv

import nbformat
import pytest
from nbgrader.api import Gradebook

from conftest import graded_ahead, make, nbgrader
from coursekit.course import ASSIGNMENT, NOTEBOOK, gradebook_url
from coursekit.grading.gradebook import answers_record_path
from coursekit.examples.samples import course_copy, make_submission, solution_cells, submit

pytestmark = pytest.mark.slow

WRITTEN = "written_after_relu"
NOTEBOOK_ID = NOTEBOOK[:-len(".ipynb")]
ANSWERS = {"ada": "Batch norm after the ReLU: the slope doubles, about 2 per block.",
           "bob": "It grows faster, I think."}
HAND = {"ada": (2.5, "Good: now say why the ReLU halves it, ada."),
        "bob": (1.0, "Measure the slope, bob.")}
CHANGED = "It grows about twice as fast: the ReLU no longer halves the variance."


def hand_grade(url, student, score, comment):
    """What the formgrader's Manual Grading stores (nbgrader's GradeHandler and
    CommentHandler)."""
    with Gradebook(url) as gradebook:
        grade = gradebook.find_grade(WRITTEN, NOTEBOOK_ID, ASSIGNMENT, student)
        grade.manual_score, grade.needs_manual_grade = score, False
        gradebook.find_comment(WRITTEN, NOTEBOOK_ID, ASSIGNMENT, student).manual_comment = \
            comment
        gradebook.db.commit()


def stored(url, student):
    with Gradebook(url) as gradebook:
        grade = gradebook.find_grade(WRITTEN, NOTEBOOK_ID, ASSIGNMENT, student)
        comment = gradebook.find_comment(WRITTEN, NOTEBOOK_ID, ASSIGNMENT, student)
        submission = gradebook.find_submission(ASSIGNMENT, student)
        return (grade.manual_score, grade.needs_manual_grade, comment.manual_comment,
                bool(submission.needs_manual_grade), submission.score)


@graded_ahead
def regraded(tmp_path_factory):
    root = course_copy(tmp_path_factory.mktemp("hand-grades"))
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    for student, answer in ANSWERS.items():
        submit(root, student, make_submission(dict(solution_cells(), **{WRITTEN: answer})))
    make(root, "autograde", "JOBS=2")
    url = gradebook_url(root)
    for student, (score, comment) in HAND.items():
        hand_grade(url, student, score, comment)
    before = {student: stored(url, student) for student in ANSWERS}
    path = root / "submitted" / "bob" / ASSIGNMENT / NOTEBOOK
    notebook = nbformat.read(path, as_version=4)
    next(c for c in notebook.cells
         if c.metadata.get("nbgrader", {}).get("grade_id") == WRITTEN).source = CHANGED
    nbformat.write(notebook, path)
    logs = {student: make(root, "autograde", "STUDENT=%s" % student).stdout
            for student in ANSWERS}
    report = make(root, "report", check=False)
    make(root, "feedback")
    return root, url, before, logs, report


def test_a_hand_grade_of_an_unchanged_answer_stays_graded(regraded):
    _, url, before, _, _ = regraded
    score, comment = HAND["ada"]
    assert before["ada"] == (score, False, comment, False, 25 + score)
    assert stored(url, "ada") == before["ada"]


def test_a_changed_answer_is_graded_again_and_its_old_grade_is_kept_beside_it(regraded):
    root, url, before, _, _ = regraded
    score, comment = HAND["bob"]
    assert before["bob"] == (score, False, comment, False, 25 + score)
    assert stored(url, "bob") == (score, True, comment, True, 25 + score)
    # The record says which answer the next hand grade is for: the changed one.
    assert answers_record_path(root, ASSIGNMENT, "bob").is_file()


def test_grades_csv_and_the_report_keep_the_hand_grade(regraded):
    root, _, _, _, report = regraded
    with open(root / "grades.csv", newline="") as handle:
        table = {row["student"]: row for row in csv.DictReader(handle)}
    assert (table["ada"][WRITTEN], table["ada"][WRITTEN + " comment"], table["ada"]["problem"]) \
        == ("2.5", HAND["ada"][1], "")
    assert (table["bob"][WRITTEN], table["bob"][WRITTEN + " comment"]) == ("", HAND["bob"][1])
    assert table["bob"]["problem"] == (
        "%s changed since you graded it (your 1 point and comment kept until you grade it "
        "again in Manual Grading)" % WRITTEN)
    assert "1 of 2 submissions has a written answer to grade by hand" in report.stdout
    assert report.returncode == 0, report.stdout + report.stderr


def test_the_feedback_page_shows_the_kept_hand_grade_and_comment(regraded):
    root = regraded[0]
    page = (root / "feedback" / "ada" / ASSIGNMENT / (NOTEBOOK_ID + ".html")).read_text()
    assert HAND["ada"][1] in page
    from bs4 import BeautifulSoup

    results = BeautifulSoup(page, features="html.parser").select_one("#results")
    assert (float(results["data-score"]), float(results["data-max-score"])) == (27.5, 28.0)
