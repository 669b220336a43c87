"""Issue 29: a check is declared once. Adding one is a row in coursekit/kernel/testcells.py, its
observer in checks.py and its judge in judge.py (plus its cell's place in the source
notebook), and nothing else.

In a copy of the course a toy check is added that way: "predicted_increment returns a
positive number". `make release` writes its test cell and ships it to the kernel; grading
the reference answers gives it its point and the feedback page its message; `nbgrader
validate` on the blank release shows it failing, with the judge's message.
"""
import csv
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import graded_ahead, make, run_command
from coursekit.course import ASSIGNMENT, NOTEBOOK, grade_id
from coursekit.examples.samples import (course_copy, make_submission, nbgrader_env, solution_cells,
                                        submit)

pytestmark = pytest.mark.slow

TOY = "test_toy"
ROW = '''    TestCell("test_toy", 1, "predicted_increment returns a positive number.",
             "toy", "predicted_increment", "observe_toy"),
'''
OBSERVER = '''def observe_toy(predicted_increment, seed=0):
    return call_student("predicted_increment", predicted_increment, "predicted_increment()")


'''
JUDGE = '''def judge_toy(observation, seed=0):
    if observation.error:
        return Verdict("toy", False, "The toy check: " + observation.error)
    positive = isinstance(observation.value, float) and observation.value > 0
    return Verdict("toy", positive, "The toy check %s a positive increment."
                   % ("found" if positive else "did not find"))


'''


def insert_before(path, marker, text):
    content = path.read_text()
    assert content.count(marker) == 1, (path, marker)
    path.write_text(content.replace(marker, text + marker))


def add_the_toy_check(root):
    """The three declarations, and the cell's place: after the increment's own check."""
    kit = root / "coursekit" / "kernel"
    insert_before(kit / "testcells.py", ")\nBY_ID = ", ROW)
    insert_before(kit / "checks.py", "# Which observer each check reads", OBSERVER)
    insert_before(kit / "judge.py", "# Each check's judge: judge_<check>", JUDGE)
    source = root / "source" / ASSIGNMENT / NOTEBOOK
    notebook = nbformat.read(source, as_version=4)
    after = next(k for k, cell in enumerate(notebook.cells)
                 if grade_id(cell) == "test_increment")
    notebook.cells.insert(after + 1, nbformat.v4.new_code_cell("", metadata={"nbgrader": {
        "grade": True, "solution": False, "locked": True, "points": 1, "grade_id": TOY,
        "schema_version": 3}}))
    nbformat.write(notebook, source)


@graded_ahead
def toy_course(tmp_path_factory):
    """The copy with the toy check, released, the reference graded with its feedback page,
    and what `nbgrader validate` said of the blank release."""
    root = course_copy(tmp_path_factory.mktemp("toy_check"))
    add_the_toy_check(root)
    released = make(root, "release")
    release = nbformat.read(root / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    submit(root, "ada", make_submission(solution_cells(), release))
    graded = make(root, "autograde", "feedback", "report")
    validated = run_command([str(Path(sys.executable).parent / "nbgrader"), "validate",
                             str(root / "release" / ASSIGNMENT / NOTEBOOK)], root,
                            nbgrader_env(), timeout=600)
    assert validated.returncode == 0, validated.stderr[-4000:]
    return dict(root=root, released=released, release=release, graded=graded,
                validated=validated.stdout)


def test_the_release_writes_its_test_cell_with_its_points(toy_course):
    cell = next(cell for cell in toy_course["release"].cells if grade_id(cell) == TOY)
    assert cell.metadata.nbgrader["points"] == 1
    assert cell.source.startswith("# Check (1 point): predicted_increment returns a positive")
    assert "udl_bn_checks.score(udl_bn_checks.check_toy(predicted_increment), 1)" in cell.source


def test_grading_gives_it_its_point_and_the_feedback_page_its_message(toy_course):
    root = toy_course["root"]
    with open(root / "grades.csv", newline="") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert rows["ada"][TOY] == "1", rows
    assert "0 need attention" in toy_course["graded"].stdout, toy_course["graded"].stdout
    page = (root / "feedback" / "ada" / ASSIGNMENT / NOTEBOOK).with_suffix(".html")
    assert "The toy check found a positive increment." in page.read_text()


def test_validate_shows_it_failing_on_the_blank_release_with_the_judges_message(toy_course):
    said = " ".join(toy_course["validated"].split())  # its lines broken between words
    assert ("✗ toy, 0 of 1 point: The toy check: predicted_increment still raises "
            "NotImplementedError") in said, toy_course["validated"]
