"""Feedback pages that teach without giving the hidden tests away.

nbgrader's feedback HTML is the autograded notebook, hidden tests and their tracebacks
included: a student who reads it can learn every hidden check by heart. ``SummariseTests``
runs in ``generate_feedback`` after nbgrader's GetGrades and rewrites every autograded test
cell to what the student may see: the visible part of its code (the release's), and one
verdict: the test's name, points earned and possible, passed or failed, and the message.
"""
import os
from dataclasses import dataclass

import nbformat
import nbgrader
from nbgrader.converters import GenerateFeedback
from traitlets.config import Config

from coursekit.course import is_graded, is_solution, settings
from coursekit.grading.folders import read_plain_file
from coursekit.grading.quiet import CoursePreprocessor
from coursekit.record import recorded_fixed_cells, recorded_tampering
from coursekit.grading import nbgrader_compat, verdicts
from coursekit.grading.verdicts import points_text, test_name

# nbgrader's default delimiters (ClearHiddenTests); the course uses them.
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"


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


def result_text(grade_id, score, points, message):
    passed = score >= points
    # Outputs are preformatted text: wrap the message, or the page scrolls sideways.
    return "%s %s: %s, %s\n%s\n" % (
        verdicts.PASSED if passed else verdicts.FAILED, test_name(grade_id),
        "passed" if passed else "failed", points_text(score, points),
        verdicts.wrapped(message, indent=""))


WAITING = "Waiting for your instructor, who grades it by hand."


@dataclass
class ResultLine:
    """One line of the results a feedback page opens with; `anchor` is the grade id its
    cell below carries."""
    anchor: str
    name: str
    mark: str
    points: str
    message: str
    kind: str  # passed, failed, waiting or graded: how the line is drawn
    comment: str = ""  # the instructor's, in Markdown


@dataclass
class Results:
    """What the top of a feedback page says (coursekit/grading/templates/feedback_results)."""
    total: str
    lines: list
    waiting: dict  # grade id of each written answer not graded yet: what its cell says


def written_line(cell, score, points, needs_hand_grade, blank):
    """The results' line for an answer graded by hand."""
    info = settings(cell)
    name = "written answer" if cell.cell_type == "markdown" else test_name(info["grade_id"])
    comment = info.get("comment") or ""
    if needs_hand_grade:
        return ResultLine(info["grade_id"], name, "…", verdicts.points(points), WAITING,
                          "waiting")
    if blank:  # nbgrader's own comment on it ("No response.") would only repeat that
        return ResultLine(info["grade_id"], name, verdicts.FAILED,
                          points_text(score, points),
                          "Left blank.", "failed")
    return ResultLine(info["grade_id"], name, "✎", points_text(score, points),
                      "Graded by your instructor.", "graded", comment)


def total_text(checks, written, score, max_score):
    """The results' first line: the total, and what is still to come."""
    earned = sum(line_score for line_score, _ in checks)
    possible = sum(points for _, points in checks)
    waiting = [points for line, points in written if line.kind == "waiting"]
    if waiting:
        return ("%s from the checks; your written answer%s (%s) %s waiting for your "
                "instructor" % (points_text(earned, possible), "s" if len(waiting) > 1 else "",
                                verdicts.points(sum(waiting)),
                                "are" if len(waiting) > 1 else "is"))
    return "%s in total (%s from the checks)" % (points_text(score, max_score),
                                                 points_text(earned, possible))


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


class SummariseTests(CoursePreprocessor):
    """Show each autograded test as name, points, pass/fail and message; never its code.

    When grading put fixed cells back (coursekit.record.record_fixed_cells), a short note
    at the top of the page says which.
    """

    def preprocess(self, nb, resources):
        self._checks = []  # (ResultLine, score, points) of each check, in notebook order
        nb, resources = super().preprocess(nb, resources)
        written = self._written(nb, resources)
        lines = [line for line, _, _ in self._checks] + [line for line, _ in written]
        resources["results"] = Results(
            total_text([(score, points) for _, score, points in self._checks], written,
                       float(resources["nbgrader"].get("score") or 0),
                       float(resources["nbgrader"].get("max_score") or 0)),
            lines, {line.anchor: "%s (%s)" % (WAITING, line.points)
                    for line, _ in written if line.kind == "waiting"})
        notes = [put_back_note(*recorded_fixed_cells(nb)), recorded_tampering(nb.metadata)]
        for note in reversed([n for n in notes if n]):
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(
                note if note.startswith("**") else "**Note from the grader.** " + note))
        return nb, resources

    @staticmethod
    def _written(nb, resources):
        """[(ResultLine, points)] of the answers graded by hand, from the gradebook: only it
        knows whether one still waits (nbgrader's own page says "Score: 0.0")."""
        from nbgrader.api import Gradebook

        from coursekit.grading.validate import is_blank, is_written

        cells = [cell for cell in nb.cells if is_written(cell) and settings(cell).get("grade_id")]
        if not cells:
            return []
        ids = resources["nbgrader"]
        found = []
        with Gradebook(ids["db_url"]) as gradebook:
            for cell in cells:
                grade = gradebook.find_grade(settings(cell)["grade_id"], ids["notebook"],
                                             ids["assignment"], ids["student"])
                points = float(grade.max_score or 0)
                found.append((written_line(cell, float(grade.score or 0), points,
                                           bool(grade.needs_manual_grade), is_blank(cell)),
                              points))
        return found

    def preprocess_cell(self, cell, resources, cell_index):
        info = settings(cell)
        if cell.cell_type != "code" or not is_graded(cell) or is_solution(cell):
            return cell, resources
        score, points = float(info.get("score") or 0), float(info.get("points") or 0)
        passed = score >= points
        message = verdicts.message(cell.outputs, passed)
        self._checks.append((ResultLine(
            info.get("grade_id", ""), test_name(info.get("grade_id", "")),
            verdicts.PASSED if passed else verdicts.FAILED, points_text(score, points),
            message, "passed" if passed else "failed"), score, points))
        cell.source = visible_source(cell.source)
        cell.outputs = [nbformat.v4.new_output(
            "stream", name="stdout",
            text=result_text(info.get("grade_id", ""), score, points, message))]
        cell.execution_count = None
        return cell, resources


# What nbgrader's release_feedback reads beside each page: the submission's time, and the
# secret that names the page in the exchange (both written by `nbgrader submit`).
RELEASE_FILES = ("timestamp.txt", "submission_secret.txt")
# The feedback page's template: coursekit/grading/templates/feedback_results, which extends
# nbgrader's (found by its path in nbgrader's templates).
TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
FEEDBACK_TEMPLATE = "feedback_results"
NBGRADER_TEMPLATES = os.path.join(os.path.dirname(nbgrader.__file__), "server_extensions",
                                  "formgrader", "templates")


def template_config(extra_template_paths=()):
    """HTMLExporter's settings for the course's feedback page, keeping the template paths
    it already has (nbgrader's generate_feedback adds Bootstrap's)."""
    config = Config()
    config.HTMLExporter.template_name = FEEDBACK_TEMPLATE
    config.HTMLExporter.extra_template_basedirs = [TEMPLATES, NBGRADER_TEMPLATES]
    paths = list(extra_template_paths)
    config.HTMLExporter.extra_template_paths = paths + [
        path for path in [NBGRADER_TEMPLATES] if path not in paths]
    return config
MAX_RELEASE_FILE_BYTES = 4096


class CourseGenerateFeedback(nbgrader_compat.ConverterFolders, GenerateFeedback):
    """nbgrader's generate_feedback, writing the feedback pages and nothing else of the
    autograded folder.

    Stock nbgrader also copies every other file of the autograded folder into the
    feedback folder, which `release_feedback` hands to the student: files the student's
    code wrote while graded (any size) and, were one ever left there, links followed to
    what they point at. Students get their pages. Beside them go only the two small files
    release_feedback needs (RELEASE_FILES), those of the submission that was graded (the
    autograded folder's), and only when they are plain files.
    """

    def start(self):
        # Set here, not in __init__: nbgrader's API (the formgrader's Generate Feedback)
        # sets nbgrader's own template after making the converter.
        self.update_config(template_config(
            self.config.HTMLExporter.get("extra_template_paths", [])))
        return super().start()

    def init_assignment(self, assignment_id, student_id):
        graded = self.source_folder(assignment_id, student_id)
        dest = self.dest_folder(assignment_id, student_id)
        for name in RELEASE_FILES:
            data = read_plain_file(os.path.join(graded, name), MAX_RELEASE_FILE_BYTES)
            # None: not handed in through the exchange.
            if data is not None and len(data) <= MAX_RELEASE_FILE_BYTES:
                os.makedirs(dest, exist_ok=True)
                with open(os.path.join(dest, name), "wb") as handle:
                    handle.write(data)


def install():
    """Make nbgrader's generate_feedback (command line and formgrader) use the course's."""
    nbgrader_compat.build_instead("GenerateFeedback", CourseGenerateFeedback)
