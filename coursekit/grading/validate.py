"""`nbgrader validate` and JupyterLab's Validate button, telling students what each check said.

Stock nbgrader reads a check cell's returned points (checks.score) as partial credit: a
failing check shows as "Partial credit; passed some but not all of the tests", without the
message that says what to fix, without points, without a total. `CourseValidator` reports
every graded check in notebook order instead, as the notebook printed it:

    ✗ used, 0 of 2 points: forward calls no BatchNorm1d layer. Each of the five ...
    ✓ slope, 1 of 1 point: measured_slope fits a straight line through all six ...
    Total: 1 of 25 points from the checks.
    The written answer (3 points) is graded by your instructor.

`install()` (called by nbgrader_config.py) makes both `nbgrader validate` and the Validate
button's server handler use it: nbgrader builds its `Validator` by name in each place,
with no option to choose another class.

What the Validate button can show is fixed by nbgrader's lab extension, which renders
the server's result itself: an empty result becomes its own "Success! Your notebook
passes all the tests.", and each entry of `failed` becomes "The following cell failed:",
the cell's code, then the entry's `error` as HTML. So the dialog lists each failing check
(or blank written answer) with its verdict and points, and the last entry also carries
the whole report and the total. When every check passes, the dialog can only say
"Success!": every other kind of entry is worded as a failure (and `passed` breaks the
extension), so the report and total are then shown by `nbgrader validate` alone.
"""
import html
import sys
from dataclasses import asdict, dataclass

from nbconvert.filters import strip_ansi
from nbgrader import utils
from nbgrader.preprocessors import IgnorePattern
from nbgrader.validator import Validator
from traitlets import List

if __name__.startswith("udl_bn_"):
    # Carried into a student's config (coursekit/classroom/studentconfig.py), with its two
    # neighbours beside it under the same prefix.
    nbgrader_compat = sys.modules["udl_bn_nbgrader_compat"]
    verdicts = sys.modules["udl_bn_verdicts"]
else:
    from coursekit.grading import nbgrader_compat, verdicts

BLANK_WRITTEN = "This written answer is still blank; your instructor grades it."


def settings(cell):
    """A cell's nbgrader settings, or {}. coursekit.course has the grader's twin; this
    module imports nothing of the course's, so that a student's config can carry it."""
    metadata = cell.get("metadata")
    found = metadata.get("nbgrader") if isinstance(metadata, dict) else None
    return found if isinstance(found, dict) else {}


@dataclass
class CheckResult:
    """What one graded check cell earned, and why."""
    name: str
    mark: str
    message: str
    earned: float
    points: float

    @property
    def passed(self):
        return self.mark == verdicts.PASSED

    def line(self, width=verdicts.MESSAGE_WIDTH):
        """`✗ name, 0 of 2 points: message`, wrapped between words as checks.score wraps."""
        return verdicts.wrapped("%s %s, %s: %s" % (
            self.mark, self.name, verdicts.points_text(self.earned, self.points),
            self.message), width=width)


def check_verdict(cell, log=None):
    """The verdict of a check cell the notebook just ran, from its outputs.

    The points are what nbgrader's autograder gives the cell (utils.determine_grade), so
    validating never promises more than grading gives; the message is what the check
    printed (checks.score). A check worth nothing that printed ✗ or raised has failed too.
    """
    earned, points = utils.determine_grade(cell, log)
    # The check's name as the feedback pages show it (plot_linear, running_var).
    name = verdicts.test_name(settings(cell).get("grade_id") or "")
    passed = earned >= points and not any(
        o.output_type == "error" for o in cell.outputs) and verdicts.FAILED not in (
        mark for mark, _ in verdicts.printed_verdicts(cell.outputs))
    return CheckResult(name, verdicts.PASSED if passed else verdicts.FAILED,
                       verdicts.message(cell.outputs, passed), earned, points)


def is_check(cell):
    """An autograded test cell: graded code that is not the student's own answer."""
    return (cell.cell_type == "code" and utils.is_grade(cell)
            and not utils.is_solution(cell))


def is_written(cell):
    """A cell the instructor grades by hand: a graded answer, or a task."""
    return utils.is_task(cell) or (utils.is_grade(cell) and utils.is_solution(cell))


def is_blank(cell):
    """The answer cell still holds what the release gave (nbgrader's own test)."""
    return (bool(settings(cell)) and utils.is_solution(cell)
            and settings(cell).get("checksum") == utils.compute_checksum(cell))


def written_note(cells):
    """One sentence about the answers graded by hand, or "" when there are none."""
    if not cells:
        return ""
    points = sum(float(settings(cell).get("points") or 0) for cell in cells)
    blank = sum(1 for cell in cells if is_blank(cell))
    if len(cells) == 1:
        note = "The written answer (%s) is graded by your instructor." % (
            verdicts.points(points))
        return note + (" It is still blank." if blank else "")
    note = "The %d written answers (%g points) are graded by your instructor." % (
        len(cells), points)
    return note + (" %d of them are still blank." % blank if blank else "")


class CourseValidator(nbgrader_compat.ValidatorHooks):
    """nbgrader's Validator, reporting each check's ✓ or ✗, message and points, and total.

    Type changes, edited test cells and --invert are reported as stock nbgrader does: a
    check's points mean nothing once its cell was edited.
    """

    # As autograding does (nbgrader_config.py): a library warning on stderr is not a
    # failure, so validate gives what grading will give.
    preprocessors = List(Validator.class_traits()["preprocessors"].default()
                         + [IgnorePattern],
                         help="Preprocessors that run the notebook before its checks "
                              "are read.").tag(config=True)

    def report(self, results, written):
        """The report's text: each check's line, the total, the note on written answers."""
        earned = sum(result.earned for result in results)
        points = sum(result.points for result in results)
        lines = ["All checks, in notebook order:", ""]
        lines += [result.line() for result in results]
        lines += ["", "Total: %s from the checks." % verdicts.points_text(earned, points)]
        if written:
            lines.append(verdicts.wrapped(written_note(written), indent=""))
        return "\n".join(lines) + "\n"

    def validate(self, filename):
        """nbgrader's results, with `failed` rewritten and the report added.

        `failed` lists, in notebook order, each failing check with its verdict, each blank
        written answer, and (with validate_all) other cells that raised, as nbgrader words
        them; its last entry ends with the report, for the Validate button's dialog.
        `checks` holds each check's verdict, `report` the text `nbgrader validate` prints.
        """
        self.ran = self._report = None
        results = super().validate(filename)
        nb = self.ran
        if nb is None or self.invert or "changed" in results:
            return results
        checked = {id(cell): check_verdict(cell, self.log) for cell in nb.cells
                   if is_check(cell)}
        written = [cell for cell in nb.cells if is_written(cell)]
        self._report = self.report(list(checked.values()), written)
        stock_failed = {id(cell) for cell in self.failed_cells(nb)}
        # Each entry's error; those the report says already are not printed again.
        failed, self._reported = [], set()
        for cell in nb.cells:
            if id(cell) in checked and not checked[id(cell)].passed:
                error = checked[id(cell)].line()
                self._reported.add(error)
            elif is_written(cell) and is_blank(cell):
                error = BLANK_WRITTEN
                self._reported.add(error)
            elif id(cell) in stock_failed and not (is_check(cell) or is_written(cell)):
                error = self.cell_error(cell)
            else:
                continue
            failed.append({"source": cell.source.strip(), "raw_error": error})
        if failed:
            failed[-1]["raw_error"] += "\n\n" + self._report
        for entry in failed:
            entry["error"] = html.escape(strip_ansi(entry["raw_error"]))
        results = {"checks": [asdict(result) for result in checked.values()],
                   "report": self._report}
        if failed:
            results["failed"] = failed
        return results

    # nbgrader's validate_and_print prints a header, then each failed cell: the header
    # becomes the report, and the cells it already lists are left out.
    def print_header(self, num_failed):
        self.stream.write(self._report)

    def print_failed_cell(self, source, error):
        error = error.removesuffix("\n\n" + self._report)
        if error not in self._reported:
            super().print_failed_cell(source, error)


def install():
    """Make `nbgrader validate` and the Validate button's handler use CourseValidator.

    The handler reads nbgrader_config.py (from the Jupyter server's working folder) on
    every click, before it builds its Validator, so replacing it here takes effect at once.
    """
    nbgrader_compat.build_instead("Validator", CourseValidator)
