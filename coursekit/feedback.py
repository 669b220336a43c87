"""Feedback pages that teach without giving the hidden tests away.

nbgrader's feedback HTML is the autograded notebook, hidden tests and their tracebacks
included: a student who reads it can learn every hidden check by heart. ``SummariseTests``
runs in ``generate_feedback`` after nbgrader's GetGrades and rewrites every autograded test
cell to what the student may see: the visible part of its code (the release's), and one
verdict: the test's name, points earned and possible, passed or failed, and the message.
"""
import os
import re
import textwrap

import nbformat
from nbgrader.converters import GenerateFeedback
from nbgrader.preprocessors import NbGraderPreprocessor

from coursekit.course import is_graded, is_solution, settings
from coursekit.folders import read_plain_file
from coursekit.intake import recorded_fixed_cells

# nbgrader's default delimiters (ClearHiddenTests); the course uses them.
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
# What the visible self-checks print (checks.score): one line per verdict.
# A check's printed verdict: its mark, then its message, wrapped onto indented lines.
VERDICT_LINE = re.compile(r"^([✓✗]) (.*(?:\n  .*)*)$", re.MULTILINE)


def _lines(source):
    """(inside a hidden-test block?, line) for each line but the delimiters."""
    hidden = False
    for line in source.splitlines():
        if BEGIN_HIDDEN in line:
            hidden = True
        elif END_HIDDEN in line:
            hidden = False
        else:
            yield hidden, line


def visible_source(source):
    """The cell's code with every hidden-test block (delimiter lines included) removed."""
    return "\n".join(line for hidden, line in _lines(source) if not hidden).rstrip()


def hidden_lines(source):
    """The lines of code inside hidden-test blocks (for the tests that look for leaks)."""
    return [line.strip() for hidden, line in _lines(source) if hidden and line.strip()]


def printed_verdicts(outputs):
    """[(✓ or ✗, message)] that the checks printed in these outputs, each message on one
    line again."""
    text = "".join(o.get("text") for o in outputs if o.get("output_type") == "stream"
                   and isinstance(o.get("text"), str))
    return [(mark, " ".join(message.split())) for mark, message in VERDICT_LINE.findall(text)]


def verdict(outputs, passed):
    """The message explaining a test's result, from the outputs it left."""
    marks = printed_verdicts(outputs)
    errors = [o for o in outputs if o.output_type == "error"]
    if passed:
        return " ".join(message for mark, message in marks if mark == "✓") or "Passed."
    if errors:
        # Hidden tests raise the visible check's own message (checks.require).
        error = errors[0]
        if error.ename == "AssertionError" and error.evalue:
            return error.evalue
        return "%s: %s" % (error.ename, error.evalue) if error.evalue else error.ename
    failed = [message for mark, message in marks if mark == "✗"]
    return " ".join(failed) or "This test did not pass."


def test_name(grade_id):
    return grade_id[len("test_"):] if grade_id.startswith("test_") else grade_id


def wrapped(text, indent="  ", width=90):
    """`text` broken between words only (a word longer than `width` keeps its own line),
    later lines indented: JupyterLab and the feedback page would break it mid-word. The
    kernel's twin is coursekit.judge.wrapped (the checks cannot import this package there);
    tests/test_validate.py keeps the two alike."""
    return textwrap.fill(text, width=width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)


def summary(grade_id, score, points, message):
    passed = score >= points
    # Outputs are preformatted text: wrap the message, or the page scrolls sideways.
    return "%s %s: %s, %g of %g point%s\n%s\n" % (
        "✓" if passed else "✗", test_name(grade_id), "passed" if passed else "failed",
        score, points, "" if points == 1 else "s", wrapped(message, indent="", width=90))


def put_back_note(edited, put_back):
    """What opens the feedback page when grading put fixed cells back (None if nothing)."""
    def names(ids):
        return ", ".join("`%s`" % name for name in ids)

    said = []
    if edited:
        said.append("Your edits to these fixed cells were put back before grading and were "
                    "not graded: %s. Code your answers need (an import, say) belongs in "
                    "a cell of your own." % names(edited))
    if put_back:
        said.append("These cells were missing from your notebook; they were put back "
                    "before grading: %s." % names(put_back))
    return "**Note from the grader.** " + " ".join(said) if said else None


class SummariseTests(NbGraderPreprocessor):
    """Show each autograded test as name, points, pass/fail and message; never its code.

    When grading put fixed cells back (coursekit.intake.record_fixed_cells), a short note
    at the top of the page says which.
    """

    def preprocess(self, nb, resources):
        from coursekit.grader import recorded_tampering

        nb, resources = super().preprocess(nb, resources)
        notes = [put_back_note(*recorded_fixed_cells(nb)), recorded_tampering(nb.metadata)]
        for note in reversed([n for n in notes if n]):
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(
                note if note.startswith("**") else "**Note from the grader.** " + note))
        return nb, resources

    def preprocess_cell(self, cell, resources, cell_index):
        info = settings(cell)
        if cell.cell_type != "code" or not is_graded(cell) or is_solution(cell):
            return cell, resources
        score, points = float(info.get("score") or 0), float(info.get("points") or 0)
        message = verdict(cell.outputs, score >= points)
        cell.source = visible_source(cell.source)
        cell.outputs = [nbformat.v4.new_output(
            "stream", name="stdout", text=summary(info.get("grade_id", ""), score, points,
                                                 message))]
        cell.execution_count = None
        return cell, resources


# What nbgrader's release_feedback reads beside each page: the submission's time, and the
# secret that names the page in the exchange (both written by `nbgrader submit`).
RELEASE_FILES = ("timestamp.txt", "submission_secret.txt")
MAX_RELEASE_FILE_BYTES = 4096


class CourseGenerateFeedback(GenerateFeedback):
    """nbgrader's generate_feedback, writing the feedback pages and nothing else of the
    autograded folder.

    Stock nbgrader also copies every other file of the autograded folder into the
    feedback folder, which `release_feedback` hands to the student: files the student's
    code wrote while graded (any size) and, were one ever left there, links followed to
    what they point at. Students get their pages. Beside them go only the two small files
    release_feedback needs (RELEASE_FILES), those of the submission that was graded (the
    autograded folder's), and only when they are plain files.
    """

    def init_assignment(self, assignment_id, student_id):
        graded = self._format_source(assignment_id, student_id)
        dest = self._format_dest(assignment_id, student_id)
        for name in RELEASE_FILES:
            data = read_plain_file(os.path.join(graded, name), MAX_RELEASE_FILE_BYTES)
            # None: not handed in through the exchange.
            if data is not None and len(data) <= MAX_RELEASE_FILE_BYTES:
                os.makedirs(dest, exist_ok=True)
                with open(os.path.join(dest, name), "wb") as handle:
                    handle.write(data)


def install():
    """Make nbgrader's generate_feedback (command line and formgrader) use the course's."""
    from nbgrader.apps import api, generatefeedbackapp

    generatefeedbackapp.GenerateFeedback = CourseGenerateFeedback
    api.GenerateFeedback = CourseGenerateFeedback
