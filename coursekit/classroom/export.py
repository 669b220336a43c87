"""LMS export: this assignment's total for every student, as CSV an LMS imports.

Two nbgrader export plugins, read from the gradebook (never from the notebooks):

* ``CanvasExport`` (the course's ``nbgrader export``) writes ``grades-canvas.csv``, the
  file Canvas's *Grades > Import* accepts: the five student columns Canvas's own gradebook
  export starts with (Student, ID, SIS User ID, SIS Login ID, Section), one column for this
  assignment, and a "Points Possible" second row.
* ``PlainExport`` (``nbgrader export --exporter=coursekit.classroom.export.PlainExport``) writes
  ``grades-lms.csv`` for any other LMS: student id, names, email, the total, the maximum,
  and what makes up the total (raw score, late penalty, seconds late, hand grading pending).

``make export`` runs both. One row per student in the gradebook, sorted by student id.

The total is nbgrader's own: the submission's score (autograded points plus hand grades),
less its late penalty, never below 0, as nbgrader's stock CSV export computes it. A
written answer not graded yet counts 0 (the export says how many are waiting). A student
in the gradebook with no submission gets an empty cell, not 0: in Canvas an empty cell
leaves the student ungraded, so Canvas's own missing-submission policy decides, and a late
hand-in graded later is not shown as a zero meanwhile. ``--CanvasExport.missing=0`` (or
``EX``, excused, in Canvas) writes that instead.

Canvas matches a row to a student by the ID column (its numeric user id), else SIS User
ID, else SIS Login ID, else the Student name; rows it cannot match are listed on its
import page and not imported. nbgrader's student id is usually the JupyterHub login, which
is the Canvas SIS Login ID: ``CanvasExport.id_column`` says where it goes. Canvas matches
the assignment column by the id in "Title (123)" when there is one, else by its exact
title, and otherwise creates a new assignment; it also sets the assignment's points
possible from the "Points Possible" row.

Student ids, names and titles come from outside (a roster, a JupyterHub login), and a
spreadsheet opening the file runs a cell starting with = + - @ (or tab, CR, LF, NUL) as a
formula: such a cell is written with a leading ' (OWASP's advice for CSV injection), which
spreadsheets show as text. Control characters in a cell are written as visible escapes
(`printable`). A student id changed either way cannot match in an LMS: the export names
those students, to be graded by hand.
"""
import csv
import os
import re
import sqlite3
import tempfile
import warnings
from pathlib import Path

from nbgrader.api import MissingEntry
from nbgrader.plugins import ExportPlugin
from traitlets import Bool, Enum, Int, Unicode

from coursekit.grading import quiet
from coursekit.grading.attention import of_class as needs_attention
from coursekit.course import ASSIGNMENT
from coursekit.escape import neutralize, printable
from coursekit.classroom.report import of_submissions, whole_seconds_late

CANVAS_STUDENT_COLUMNS = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
# Canvas's own gradebook export writes the second row's label indented like this.
POINTS_POSSIBLE = "    Points Possible"
PLAIN_COLUMNS = ["student_id", "last_name", "first_name", "email", "score", "max_score",
                 "raw_score", "late_penalty", "seconds_late", "needs_manual_grade"]


class ExportError(Exception):
    """What stops an export, said in one line."""


def points(value):
    """A score as an LMS reads it: at most two decimals, no trailing zeros."""
    text = "%.2f" % value
    return text.rstrip("0").rstrip(".") if "." in text else text


def display_name(student):
    """"Last, First" as Canvas's export writes it, or whichever part is known."""
    last, first = (student.last_name or "").strip(), (student.first_name or "").strip()
    return "%s, %s" % (last, first) if last and first else last or first


def check_gradebook(url):
    """Raise ExportError when `url` names an SQLite gradebook that is missing or is not one.
    (Opening a missing one would create an empty gradebook.db.)"""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return
    path = Path(parsed.database)
    if not path.is_file():
        raise ExportError("No gradebook at %s: grade the class first (make grade)." % path)
    connection = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        connection.execute("SELECT name FROM assignment LIMIT 1").fetchall()
    except sqlite3.Error:
        raise ExportError("%s is not an nbgrader gradebook." % path) from None
    finally:
        connection.close()


class StudentTotal:
    """One student's line: who, and their total (None without a submission)."""

    def __init__(self, student, submission, max_score):
        self.student = student
        self.max_score = max_score
        self.total = self.raw = self.penalty = self.seconds_late = None
        self.needs_manual_grade = None
        if submission is not None:
            self.raw = submission.score
            self.penalty = submission.late_submission_penalty or 0.0
            self.total = max(0.0, self.raw - self.penalty)
            self.seconds_late = submission.total_seconds_late
            self.needs_manual_grade = bool(submission.needs_manual_grade)


def class_rows(gradebook, assignment, students=()):
    """(the Assignment, [StudentTotal] for every student in the gradebook, or those in
    `students`, sorted by id). Raises ExportError when the gradebook has no such assignment."""
    try:
        found = gradebook.find_assignment(assignment)
    except MissingEntry:
        raise ExportError("The gradebook has no assignment %r: release and grade it first "
                          "(make grade)." % assignment) from None
    max_score = found.max_score
    submissions = {s.student_id: s for s in gradebook.assignment_submissions(assignment)}
    rows = [StudentTotal(student, submissions.get(student.id), max_score)
            for student in gradebook.students if not students or student.id in students]
    return found, sorted(rows, key=lambda row: row.student.id)


class _LMSExport(ExportPlugin):
    """What both exports share: which assignment, where the file goes, the empty cell."""

    filename = "grades.csv"

    missing = Unicode(
        "", help="What the total cell holds for a student with no submission: empty (the "
        "default: in Canvas the student stays ungraded and Canvas's missing-submission "
        "policy applies), a number such as 0, or (Canvas only) EX for excused."
    ).tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Before nbgrader opens the gradebook, which would create a missing one.
        coursedir = getattr(self.parent, "coursedir", None)
        if coursedir is not None:
            try:
                check_gradebook(coursedir.db_url)
            except ExportError as error:
                self.fail(str(error))

    def fail(self, message):
        """nbgrader's one-line error and exit status 1 in `nbgrader export`; else raise."""
        if hasattr(self.parent, "fail"):
            self.parent.fail(message)
        raise ExportError(message)

    def allowed_missing(self):
        return r"(\d+(\.\d+)?)?"

    def destination(self):
        """--to as given (relative to the working folder); else the course folder."""
        if self.to:
            return Path(self.to)
        coursedir = getattr(self.parent, "coursedir", None)
        return Path(coursedir.root if coursedir is not None else ".") / self.filename

    def export(self, gradebook):
        try:
            self.write_export(gradebook)
        except ExportError as error:
            self.fail(str(error))

    def write_export(self, gradebook):
        if len(self.assignment) > 1:
            raise ExportError("This export writes one assignment at a time, not %s."
                              % ", ".join(map(str, self.assignment)))
        if not re.fullmatch(self.allowed_missing(), self.missing):
            raise ExportError("%s.missing must be empty or a number%s, not %r."
                              % (type(self).__name__,
                                 " or EX" if "EX" in self.allowed_missing() else "",
                                 self.missing))
        name = str(self.assignment[0]) if self.assignment else ASSIGNMENT
        with warnings.catch_warnings():
            quiet.gradebook_autoflush()  # as in nbgrader_config.py; any other warning shows
            assignment, rows = class_rows(gradebook, name, [str(s) for s in self.student])
            table = self.table(assignment, rows)
        path = self.destination()
        write_table(table, path)
        graded = [row for row in rows if row.total is not None]
        self.log.info("Wrote %s: %d students, %d with a submission.", path, len(rows),
                      len(graded))
        waiting = [row.student.id for row in graded if row.needs_manual_grade]
        if waiting:
            self.log.warning("%s a written answer not graded yet: the total leaves it out "
                             "(the formgrader: Manual Grading).",
                             of_submissions(len(waiting), len(graded)))
        coursedir = getattr(self.parent, "coursedir", None)
        attention = needs_attention(coursedir.root, name) if coursedir is not None else {}
        if attention:
            self.log.warning("%d student(s) need attention (grades.csv's problem column); "
                             "their totals may be old or zero until that is settled: %s",
                             len(attention), ", ".join(map(printable, sorted(attention))))
        changed = [row.student.id for row in rows
                   if neutralize(row.student.id, keep="") != row.student.id]
        if changed:
            self.log.warning("Written with a leading ' so no spreadsheet runs them as "
                             "formulas, or with their control characters escaped, these "
                             "student ids will not match in the LMS; enter their grades by "
                             "hand: %s", ", ".join("'%s'" % printable(i) for i in changed))

    def total_cell(self, row):
        return self.missing if row.total is None else points(row.total)


class CanvasExport(_LMSExport):
    """Canvas's gradebook import: grades-canvas.csv, one column for this assignment."""

    filename = "grades-canvas.csv"

    assignment_title = Unicode(
        "UDL 11.3 Batch normalization (%s)" % ASSIGNMENT,
        help="The assignment column's title: the Canvas assignment's exact name. Canvas "
        "finds the assignment by this title (or by canvas_assignment_id when set) and "
        "creates a new assignment when none has it."
    ).tag(config=True)

    canvas_assignment_id = Int(
        0, min=0,
        help="The Canvas assignment's id (the number in its address, .../assignments/123). "
        "When set, the column is titled \"<assignment_title> (<id>)\", the way Canvas's own "
        "export titles it, and Canvas matches it by id whatever the title. 0: by title."
    ).tag(config=True)

    id_column = Enum(
        ["SIS Login ID", "SIS User ID", "ID"], default_value="SIS Login ID",
        help="The Canvas column that receives the nbgrader student id: SIS Login ID (the "
        "default: a JupyterHub login is usually the Canvas login), SIS User ID, or ID (the "
        "numeric Canvas user id). Canvas matches a row by ID, then SIS User ID, then SIS "
        "Login ID, then the Student name; the other id columns stay empty."
    ).tag(config=True)

    section = Unicode(
        "", help="The Section cell of every row. Canvas requires the column but does not "
        "use it to match students; empty by default."
    ).tag(config=True)

    points_possible_row = Bool(
        True, help="Write the \"Points Possible\" second row (the assignment's maximum, "
        "hand-graded points included). Canvas sets the assignment's points possible from "
        "it; False keeps the points set in Canvas."
    ).tag(config=True)

    def allowed_missing(self):
        return r"(\d+(\.\d+)?|EX)?"

    def column_title(self):
        title = self.assignment_title.strip()
        if not title:
            raise ExportError("CanvasExport.assignment_title is empty: Canvas needs the "
                              "assignment's name as the column title.")
        return "%s (%d)" % (title, self.canvas_assignment_id) if self.canvas_assignment_id \
            else title

    def table(self, assignment, rows):
        header = CANVAS_STUDENT_COLUMNS + [neutralize(self.column_title())]
        table = [header]
        if self.points_possible_row:
            table.append([POINTS_POSSIBLE, "", "", "", "", points(assignment.max_score)])
        where = CANVAS_STUDENT_COLUMNS.index(self.id_column)
        for row in rows:
            cells = [neutralize(display_name(row.student)), "", "", "",
                     neutralize(self.section), self.total_cell(row)]
            cells[where] = neutralize(row.student.id, keep="")
            table.append(cells)
        return table


class PlainExport(_LMSExport):
    """grades-lms.csv for other LMSs: the student's id and names, the total, the maximum,
    and what the total is made of."""

    filename = "grades-lms.csv"

    def table(self, assignment, rows):
        table = [list(PLAIN_COLUMNS)]
        for row in rows:
            student = row.student
            submitted = row.total is not None
            table.append([
                neutralize(student.id, keep=""), neutralize(student.last_name),
                neutralize(student.first_name), neutralize(student.email),
                self.total_cell(row), points(row.max_score),
                points(row.raw) if submitted else "",
                points(row.penalty) if submitted else "",
                "%d" % whole_seconds_late(row.seconds_late) if submitted else "",
                ("yes" if row.needs_manual_grade else "no") if submitted else ""])
        return table


def write_table(table, path):
    """Write `table` as UTF-8 CSV at `path`, whole or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".%s." % path.name)
    try:
        with os.fdopen(handle, "w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows(table)
        umask = os.umask(0)  # mkstemp makes the file private; give it the usual mode
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
