"""The grade table (coursekit.classroom.report) from a gradebook built by hand, no kernel run: hand
grades and their comments, late work under the course's policy, the attention column."""
import csv
import dataclasses
import datetime

import pytest
from nbgrader.api import Gradebook
from traitlets.config.loader import PyFileConfigLoader

from conftest import ROOT
from coursekit.classroom import report
from coursekit.course import ASSIGNMENT, gradebook_url
from coursekit.examples.samples import nbgrader_env

DUE = datetime.datetime(2026, 12, 14, 17, 0)
WRITTEN, CHECK = "written_after_relu", "test_registered"


@pytest.fixture
def graded(tmp_path):
    """A class of three: on time and hand-graded, late by 2 h 5 min, on time and waiting."""
    with Gradebook(gradebook_url(tmp_path)) as gradebook:
        gradebook.add_assignment(ASSIGNMENT, duedate=DUE)
        gradebook.add_notebook("nb", ASSIGNMENT)
        gradebook.add_grade_cell(CHECK, "nb", ASSIGNMENT, max_score=2, cell_type="code")
        gradebook.add_grade_cell(WRITTEN, "nb", ASSIGNMENT, max_score=3,
                                 cell_type="markdown")
        gradebook.add_solution_cell(WRITTEN, "nb", ASSIGNMENT)
        for student, late in (("ada", 0), ("bob", 2 * 3600 + 5 * 60), ("cy", 0)):
            gradebook.add_student(student)
            gradebook.add_submission(ASSIGNMENT, student, timestamp=DUE + datetime.timedelta(
                seconds=late or -60))
            check = gradebook.find_grade(CHECK, "nb", ASSIGNMENT, student)
            check.auto_score, check.needs_manual_grade = 2, False
            written = gradebook.find_grade(WRITTEN, "nb", ASSIGNMENT, student)
            written.needs_manual_grade = student == "cy"
            if student != "cy":
                written.manual_score = 1 if student == "bob" else 2.5
                comment = gradebook.find_comment(WRITTEN, "nb", ASSIGNMENT, student)
                comment.manual_comment = "Good, but say why, %s." % student
        gradebook.db.commit()
    return tmp_path


def test_the_course_flags_late_work_and_takes_nothing_off():
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert config.LateSubmissionPlugin.penalty_method == "none"


def test_grades_csv_holds_hand_grades_comments_and_lateness(graded):
    rows, tests, _ = report.collect(gradebook_url(graded))
    report.write_grades_csv(rows, tests, graded / "grades.csv", {"cy": "something to read"})
    with open(graded / "grades.csv", newline="") as handle:
        table = {row["student"]: row for row in csv.DictReader(handle)}
    assert {s: (r["score"], r[CHECK], r[WRITTEN], r[WRITTEN + " comment"], r["late"],
                r["problem"]) for s, r in table.items()} == {
        "ada": ("4.5", "2", "2.5", "Good, but say why, ada.", "", ""),
        "bob": ("3", "2", "1", "Good, but say why, bob.", "2 h 05 min late, no penalty", ""),
        "cy": ("2", "2", "", "", "", "something to read")}


def test_the_table_says_who_was_late_and_who_waits_for_hand_grading(graded):
    rows, _, _ = report.collect(gradebook_url(graded))
    lines = report.table(rows).splitlines()
    assert [line.split()[0] for line in lines if "LATE: 2 h 05 min late, no penalty" in line] \
        == ["bob"]
    assert [row.student for row in rows if row.waits_for_hand_grading] == ["cy"]


def test_a_student_with_a_problem_and_no_grade_still_has_a_row_and_no_formula(graded):
    rows, tests, _ = report.collect(gradebook_url(graded))
    problems = {"=HYPERLINK(1)": "submitted after the last autograde", "ada": "look"}
    report.write_grades_csv(rows, tests, graded / "grades.csv", problems)
    with open(graded / "grades.csv", newline="") as handle:
        table = {row["student"]: row for row in csv.DictReader(handle)}
    assert table["'=HYPERLINK(1)"]["problem"] == "submitted after the last autograde"
    assert table["'=HYPERLINK(1)"]["score"] == "" and table["ada"]["problem"] == "look"
    lines = report.table(rows, problems).splitlines()
    assert [line.split()[:2] for line in lines
            if line.endswith("NEEDS ATTENTION: submitted after the last autograde")] == [
        ["=HYPERLINK(1)", "-"]]


def test_lateness_is_to_the_second_rounded_up_and_names_a_penalty():
    """The table and grades.csv say the seconds grades-lms.csv's seconds_late holds."""
    row = report.GradeRow("ada", 0, 28, {}, {}, {}, 61, 25, False)
    assert report.lateness(row) == "1 min 01 s late, 25 points off"
    said = {seconds: report.lateness(dataclasses.replace(row, seconds_late=seconds,
                                                         late_penalty=0))
            for seconds in (0, 0.2, 12, 60, 7500, 7512.4)}
    assert said == {0: "", 0.2: "1 s late, no penalty", 12: "12 s late, no penalty",
                    60: "1 min late, no penalty", 7500: "2 h 05 min late, no penalty",
                    7512.4: "2 h 05 min 13 s late, no penalty"}
    assert [report.whole_seconds_late(seconds) for seconds in said] == [0, 1, 12, 60, 7500,
                                                                        7513]


def test_control_characters_in_an_id_or_a_problem_are_printed_escaped(tmp_path):
    """Issue 24: a folder name reaches the table and grades.csv as visible escapes, and the
    table's columns still line up."""
    import hostile

    odd = report.GradeRow(hostile.ODD_ID, 25, 28, {CHECK: 2}, {}, {}, 0, 0, False)
    plain = report.GradeRow("ada", 28, 28, {CHECK: 2}, {}, {}, 0, 0, False)
    problems = {hostile.ODD_ID: "submitted/%s/bn is odd" % hostile.ODD_ID,
                "=\x1b]0;title\x07": "never graded"}
    lines = report.table([odd, plain], problems).splitlines()
    assert not hostile.CONTROL_CHARACTERS.search("\n".join(lines))
    assert lines[1].startswith(hostile.ODD_ID_SHOWN + "  ")
    assert lines[1].endswith("NEEDS ATTENTION: submitted/%s/bn is odd" % hostile.ODD_ID_SHOWN)
    assert lines[2].index("28/28") == lines[1].index("25/28")
    assert lines[3].startswith("=\\x1b]0;title\\x07  ")
    report.write_grades_csv([odd, plain], [CHECK], tmp_path / "grades.csv", problems)
    raw = (tmp_path / "grades.csv").read_text(encoding="utf-8").replace("\r\n", "\n")
    assert not hostile.CONTROL_CHARACTERS.search(raw), raw
    with open(tmp_path / "grades.csv", newline="") as handle:
        table = {row["student"]: row for row in csv.DictReader(handle)}
    assert table[hostile.ODD_ID_SHOWN]["problem"] == "submitted/%s/bn is odd" % (
        hostile.ODD_ID_SHOWN)
    assert table["'=\\x1b]0;title\\x07"]["problem"] == "never graded"


def test_the_report_names_who_was_graded_against_an_earlier_release(tmp_path, monkeypatch):
    """Issue 27: a graded notebook holds each cell's checksum as the gradebook had it at
    grading; one that differs now was graded against an earlier release. A cell the graded
    notebook lacks (a deleted answer) is no sign of it."""
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    from coursekit.course import NOTEBOOK

    monkeypatch.setenv("PATH", nbgrader_env()["PATH"])
    notebook_id = NOTEBOOK[:-len(".ipynb")]
    current = {"todo_plot": "new-wording", "answer": "stub"}
    with Gradebook(gradebook_url(tmp_path)) as gradebook:
        gradebook.add_assignment(ASSIGNMENT)
        gradebook.add_notebook(notebook_id, ASSIGNMENT)
        for name, checksum in current.items():
            gradebook.add_source_cell(name, notebook_id, ASSIGNMENT, cell_type="markdown",
                                      locked=name == "todo_plot", source=name,
                                      checksum=checksum)
    graded_with = {"ada": current, "bob": dict(current, todo_plot="old-wording"),
                   "cy": {"todo_plot": "new-wording"}}
    for student, checksums in graded_with.items():
        cells = [new_markdown_cell(name, metadata={"nbgrader": {
            "grade_id": name, "checksum": checksum}}) for name, checksum in checksums.items()]
        path = tmp_path / "autograded" / student / ASSIGNMENT / NOTEBOOK
        path.parent.mkdir(parents=True)
        nbformat.write(new_notebook(cells=cells), path)
    assert report.graded_against_an_earlier_release(gradebook_url(tmp_path), tmp_path) \
        == ["bob"]


def test_the_report_names_whose_total_changed_since_the_last_grades_csv(graded):
    rows, tests, _ = report.collect(gradebook_url(graded))
    report.write_grades_csv(rows, tests, graded / "grades.csv")
    before = report.read_totals(graded / "grades.csv")
    assert before == {"ada": (4.5, 5.0), "bob": (3.0, 5.0), "cy": (2.0, 5.0)}
    now = [dataclasses.replace(row, score=row.score + 2, max_score=7) if row.student == "bob"
           else row for row in rows]
    assert report.grade_changes(before, now) == [("bob", (3.0, 5.0), (5.0, 7))]
