"""What a student sees when validating: each check's ✓ or ✗, message and points, a total.

`nbgrader validate` runs the way a student runs it (from the course folder, the
virtualenv's bin first on PATH) on copies of the blank release, the reference answers
and the reference with one slip; the three run side by side, once for the module. A
small notebook made here covers what the release cannot show quickly: a check worth
nothing, a check cell that raises, and the result the Validate button's dialog renders.
"""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbgrader import utils

from conftest import ROOT, nbgrader_env
from coursekit.authoring import sync
from coursekit.examples import answers
from coursekit.course import ASSIGNMENT, NOTEBOOK, RELEASE_NOTEBOOK, grade_id
from coursekit.grading.verdicts import VERDICT_LINE, test_name as check_name
from coursekit.examples.samples import make_submission, solution_cells
from coursekit.grading.validate import CourseValidator

SLIP = "slope_end_points"
# A report line after its mark: "name, k of n points: message".
LINE = re.compile(r"^(\w+), (\d+(?:\.\d+)?) of (\d+(?:\.\d+)?) points?: (.+)$", re.DOTALL)


def check_points():
    """[(name, points)] of the release's autograded checks, in notebook order."""
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    return [(check_name(grade_id(cell)), float(cell.metadata.nbgrader["points"]))
            for cell in release.cells if cell.cell_type == "code"
            and cell.metadata.get("nbgrader", {}).get("grade")]


def written_note(blank):
    """What the report says of the release's written answer (one, graded by hand)."""
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    points, = [cell.metadata.nbgrader["points"] for cell in release.cells
               if cell.metadata.get("nbgrader", {}).get("solution")
               and cell.metadata.nbgrader.get("grade")]
    return ("The written answer (%g points) is graded by your instructor.%s\n"
            % (points, " It is still blank." if blank else ""))


def report_lines(stdout):
    """[(mark, name, earned, points, message)] of each check `nbgrader validate` printed."""
    lines = []
    for mark, rest in VERDICT_LINE.findall(stdout):
        name, earned, points, message = LINE.match(rest).groups()
        lines.append((mark, name, float(earned), float(points), " ".join(message.split())))
    return lines


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    """{case: what `nbgrader validate` printed} for the blank, reference and one slip."""
    slip_cell, slip_source = answers.SLIPS[SLIP].cell, answers.SLIPS[SLIP].source
    notebooks = {"blank": nbformat.read(RELEASE_NOTEBOOK, as_version=4),
                 "reference": make_submission(solution_cells()),
                 "slip": make_submission(dict(solution_cells(), **{slip_cell: slip_source}))}
    runs = {}
    for case, notebook in notebooks.items():
        folder = tmp_path_factory.mktemp(case)
        # The data beside the notebook, as released: it is not built again.
        shutil.copy(ROOT / "source" / ASSIGNMENT / "mnist1d_data.pkl", folder)
        sync.place_helpers(folder)
        nbformat.write(notebook, folder / NOTEBOOK)
        command = [str(Path(sys.executable).parent / "nbgrader"), "validate",
                   str(folder / NOTEBOOK)]
        runs[case] = subprocess.Popen(
            command, cwd=ROOT, env=nbgrader_env(), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
    outputs = {}
    for case, run in runs.items():
        stdout, stderr = run.communicate(timeout=600)
        assert run.returncode == 0, stderr[-4000:]
        assert "Exception while loading config" not in stderr, stderr[-4000:]
        outputs[case] = stdout
    return outputs


def test_the_blank_release_fails_every_check_with_its_message(validated):
    lines = report_lines(validated["blank"])
    assert [(name, points) for _, name, _, points, _ in lines] == check_points()
    for mark, name, earned, points, message in lines:
        assert mark == "✗" and earned == 0, (name, message)
        assert len(message) > 20, (name, message)
    messages = {name: message for _, name, _, _, message in lines}
    assert "BatchNorm1d" in messages["registered"]
    assert "block_variances still raises NotImplementedError" in messages["block_variances"]
    total = sum(points for _, points in check_points())
    assert "Total: 0 of %g points from the checks." % total in validated["blank"]
    assert validated["blank"].endswith(written_note(blank=True))


def test_the_reference_passes_every_check_for_all_its_points(validated):
    lines = report_lines(validated["reference"])
    assert [(name, points) for _, name, _, points, _ in lines] == check_points()
    assert all(mark == "✓" and earned == points
               for mark, _, earned, points, _ in lines), lines
    messages = {name: message for _, name, _, _, message in lines}
    assert "BatchNorm1d" in messages["used"]
    total = sum(points for _, points in check_points())
    assert "Total: %g of %g points from the checks." % (total, total) in validated["reference"]
    assert validated["reference"].endswith(written_note(blank=False))


def test_one_slip_fails_its_own_check_with_the_reason(validated):
    _, _, failing, phrase = answers.SLIPS[SLIP]
    lines = report_lines(validated["slip"])
    assert [(name, points) for _, name, _, points, _ in lines] == check_points()
    for mark, name, earned, points, message in lines:
        if name in failing:
            assert (mark, earned) == ("✗", 0) and phrase in message, (name, message)
        else:
            assert (mark, earned) == ("✓", points), (name, message)
    total = sum(points for _, points in check_points())
    lost = sum(points for name, points in check_points() if name in failing)
    assert "Total: %g of %g points from the checks." % (total - lost, total) in \
        validated["slip"]


def test_validating_never_says_partial_credit_nor_shouts(validated):
    for case, stdout in validated.items():
        assert "Partial credit" not in stdout, case
        assert "VALIDATION FAILED" not in stdout and "The following cell" not in stdout, case


# --- A small notebook: what the release cannot show in a few seconds ----------------------

def _cell(kind, source, **nbgrader):
    cell = (nbformat.v4.new_code_cell if kind == "code" else nbformat.v4.new_markdown_cell)(
        source)
    cell.metadata.nbgrader = dict({"grade": False, "solution": False, "locked": False,
                                   "task": False, "schema_version": 3}, **nbgrader)
    cell.metadata.nbgrader["checksum"] = utils.compute_checksum(cell)
    return cell


def _check(grade_id, source, points):
    return _cell("code", source, grade=True, locked=True, grade_id=grade_id, points=points)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """CourseValidator's result on a notebook with one check of each kind."""
    notebook = nbformat.v4.new_notebook(cells=[
        _cell("code", "def answer():\n  return 41", solution=True, grade_id="answer"),
        _check("test_passes", 'print("✓ It passes.")\n1.0', 1),
        _check("test_worth_nothing", 'print("✗ <b>Not</b> yet: try again.")\n0.0', 0),
        _check("test_raises", "assert answer() == 42, 'answer() should give 42'", 2),
        _cell("markdown", "YOUR ANSWER HERE", solution=True, grade=True,
              grade_id="written", points=3),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                "language": "python"}})
    path = tmp_path_factory.mktemp("small") / "small.ipynb"
    nbformat.write(notebook, path)
    return CourseValidator().validate(str(path))


def test_a_check_worth_nothing_that_printed_a_cross_fails_with_its_message(small):
    checks = {check["name"]: check for check in small["checks"]}
    assert checks["worth_nothing"]["mark"] == "✗"
    assert checks["worth_nothing"]["message"] == "<b>Not</b> yet: try again."
    assert checks["passes"]["mark"] == "✓"


def test_a_check_cell_that_raises_fails_with_the_assertions_message(small):
    # As the feedback page words it (coursekit.grading.verdicts.error_text).
    raised = next(check for check in small["checks"] if check["name"] == "raises")
    assert raised["mark"] == "✗" and raised["earned"] == 0 and raised["points"] == 2
    assert raised["message"] == "answer() should give 42"


def test_the_validate_dialog_lists_failing_checks_then_the_report(small):
    # nbgrader's lab extension shows each `failed` entry's source and its `error` as HTML.
    failed = small["failed"]
    assert [entry["source"].splitlines()[0] for entry in failed] == [
        'print("✗ <b>Not</b> yet: try again.")',
        "assert answer() == 42, 'answer() should give 42'", "YOUR ANSWER HERE"]
    # The error is HTML: what a check prints is shown as text.
    assert failed[0]["error"] == (
        "✗ worth_nothing, 0 of 0 points: &lt;b&gt;Not&lt;/b&gt; yet: try again.")
    assert "still blank" in failed[2]["error"]
    last = failed[-1]["error"]
    assert "✓ passes, 1 of 1 point: It passes." in last
    assert "✗ raises, 0 of 2 points: answer() should give 42" in last
    assert "Total: 1 of 3 points from the checks." in last
    assert "The written answer (3 points) is graded by your instructor." in last
    assert "Partial credit" not in str(small)


def test_the_course_config_puts_the_validator_in_the_command_and_the_lab_handler():
    from nbgrader.apps import validateapp
    from nbgrader.server_extensions.validate_assignment import handlers
    from traitlets.config.loader import PyFileConfigLoader

    PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    assert validateapp.Validator is CourseValidator
    assert handlers.Validator is CourseValidator


def test_the_grader_wraps_messages_as_the_kernel_does():
    """Validate and the feedback pages (coursekit.grading.verdicts, no torch in the Jupyter
    server) break lines exactly as the checks print them in the kernel
    (coursekit.kernel.judge), and count points in the same words."""
    from coursekit.grading import verdicts
    from coursekit.kernel import checks, judge

    # One width: Validate's lines and the pages' messages break where the kernel's do.
    assert verdicts.MESSAGE_WIDTH == judge.MESSAGE_WIDTH
    texts = ["✗ " + " ".join(["word"] * 40), "a well-known non-linear, x+branch(x) " * 6,
             "Measured:      " + "x" * 120 + " then more", ""]
    for text in texts:
        for indent, width in (("  ", judge.MESSAGE_WIDTH), ("", 90), (" " * 15, 60)):
            assert verdicts.wrapped(text, indent, width) == judge.wrapped(text, indent, width)
        assert verdicts.wrapped(text) == judge.wrapped(text)
    for earned, possible in ((0, 1), (1, 1), (0, 2), (1.5, 2.5), (3, 3)):
        assert verdicts.points_text(earned, possible) == checks.points_text(earned, possible)


def test_validate_and_the_feedback_page_word_each_failure_alike():
    """A check cell's outputs give one message, by one rule (coursekit.grading.verdicts):
    Validate's line and the feedback page's result say the same about each failure."""
    from coursekit.grading.feedback import SummariseTests
    from coursekit.grading.validate import check_verdict

    wrapped_assertion = "forward calls no BatchNorm1d layer.\n  Each of the five blocks needs one"
    failures = {
        "a hidden test's assertion, wrapped": (
            [nbformat.v4.new_output("error", ename="AssertionError", evalue=wrapped_assertion,
                                    traceback=["AssertionError: forward calls no",
                                               "  Each of the five blocks needs one."])],
            "forward calls no BatchNorm1d layer. Each of the five blocks needs one"),
        "a name never defined": (
            [nbformat.v4.new_output("error", ename="NameError",
                                    evalue="name 'ResidualNetworkWithBatchNorm' is not defined",
                                    traceback=["\x1b[0;31mNameError\x1b[0m: ..."])],
            "NameError: name 'ResidualNetworkWithBatchNorm' is not defined"),
        "a printed ✗": (
            [nbformat.v4.new_output("stream", name="stdout",
                                    text="✗ used, 0 of 2 points: forward calls no\n  layer.\n")],
            "forward calls no layer."),
        "a warning on stderr": (
            [nbformat.v4.new_output("stream", name="stderr",
                                    text="UserWarning: \x1b[1mx\x1b[0m\n")],
            "This check wrote to stderr, which grading counts as failing: UserWarning: x"),
    }
    for case, (outputs, said) in failures.items():
        cell = nbformat.v4.new_code_cell("check_used(ResidualNetworkWithBatchNorm)")
        cell.metadata.nbgrader = {"grade": True, "solution": False, "locked": True,
                                  "grade_id": "test_used", "points": 2, "score": 0}
        cell.outputs = outputs
        validated = check_verdict(cell)
        assert (validated.mark, validated.message) == ("✗", said), case
        summarise = SummariseTests()
        summarise._checks = []
        summarise.preprocess_cell(nbformat.from_dict(cell), {}, 0)
        assert summarise._checks[0][0].message == said, case
