"""Issue 27: a change mid-term flags no honest student.

A class of two (the reference answers and the partial sample) is graded. Then, as an
instructor would mid-term, a check's points change in coursekit/kernel/testcells.py and a TODO's
wording in the source notebook, and `make release` runs. The students keep the release
they fetched, so their notebooks hold the earlier text of both cells. Before the regrade
the report says both were graded against an earlier release; after `make autograde`
nobody is flagged, the autograder's summary and the report agree, every total is out of
the new maximum, and the report names the grade that changed.
"""
import csv
import re

import nbformat
import pytest

from conftest import graded_ahead, make
from coursekit.course import ASSIGNMENT, NOTEBOOK, grade_id
from coursekit.classroom.report import EARLIER_RELEASE
from coursekit.examples.samples import course_copy, sample_submission, submit
from coursekit.kernel.testcells import BY_ID, TEST_CELLS

pytestmark = pytest.mark.slow

CHECK, TODO = "test_running_var", "todo_plot"
NEW_POINTS = BY_ID[CHECK].points + 2
WRITTEN_POINTS = 3
OLD_MAX = sum(cell.points for cell in TEST_CELLS) + WRITTEN_POINTS
NEW_MAX = OLD_MAX + 2
REWORDED = "**TODO (reworded mid-term):** "


def table(root):
    with open(root / "grades.csv", newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def change_midterm(root):
    testcells = root / "coursekit" / "kernel" / "testcells.py"
    text = testcells.read_text()
    row = 'TestCell("%s", %d,' % (CHECK, BY_ID[CHECK].points)
    assert text.count(row) == 1
    testcells.write_text(text.replace(row, 'TestCell("%s", %d,' % (CHECK, NEW_POINTS)))
    source = root / "source" / ASSIGNMENT / NOTEBOOK
    notebook = nbformat.read(source, as_version=4)
    cell = next(cell for cell in notebook.cells if grade_id(cell) == TODO)
    cell.source = cell.source.replace("**TODO:** ", REWORDED, 1)
    nbformat.write(notebook, source)


@graded_ahead
def midterm(tmp_path_factory):
    root = course_copy(tmp_path_factory.mktemp("midterm"))
    make(root, "release")
    for student, sample in (("ada", "reference"), ("bob", "partial")):
        submit(root, student, sample_submission(sample))
    make(root, "autograde", "JOBS=2")
    first = make(root, "report")
    before = table(root)
    change_midterm(root)
    released = make(root, "release")
    stale = make(root, "report")
    regraded = make(root, "autograde", "JOBS=2")
    after = make(root, "report")
    return dict(root=root, first=first, before=before, released=released, stale=stale,
                regraded=regraded, after=after, table=table(root))


def test_the_new_release_has_the_new_points_and_wording(midterm):
    release = nbformat.read(midterm["root"] / "release" / ASSIGNMENT / NOTEBOOK,
                            as_version=4)
    cells = {grade_id(cell): cell for cell in release.cells}
    assert cells[CHECK].metadata.nbgrader["points"] == NEW_POINTS
    assert cells[TODO].source.startswith(REWORDED)
    assert "2 releases so far" in midterm["released"].stdout


def test_before_the_regrade_the_report_names_who_was_graded_against_the_earlier_release(
        midterm):
    said = midterm["stale"].stdout
    for student in ("ada", "bob"):
        line = next(line for line in said.splitlines() if line.startswith(student + " "))
        assert "/%d " % NEW_MAX in line + " " and ("NOTE: " + EARLIER_RELEASE) in line, line
    assert "2 graded against an earlier release" in said


def test_after_the_regrade_nobody_is_flagged_and_the_summary_and_report_agree(midterm):
    assert "2 graded, 0 need attention" in midterm["regraded"].stdout
    said = midterm["after"].stdout
    assert "NEEDS ATTENTION" not in said and "NOTE" not in said, said
    assert "2 graded, 0 need attention." in said
    assert all(row["problem"] == "" for row in midterm["table"].values()), midterm["table"]


def test_every_total_is_out_of_the_new_maximum_and_the_changed_grade_is_named(midterm):
    before, after = midterm["before"], midterm["table"]
    assert {s: row["max_score"] for s, row in before.items()} == {"ada": str(OLD_MAX),
                                                                  "bob": str(OLD_MAX)}
    assert {s: row["max_score"] for s, row in after.items()} == {"ada": str(NEW_MAX),
                                                                 "bob": str(NEW_MAX)}
    # The reference passes the check whose points grew; the partial sample does not.
    assert float(after["ada"]["score"]) == float(before["ada"]["score"]) + 2
    assert after["ada"][CHECK] == str(NEW_POINTS) and after["bob"][CHECK] == "0"
    assert after["bob"]["score"] == before["bob"]["score"]
    changed = re.search(r"Grades changed since the last report: (.*)", midterm["after"].stdout)
    assert changed and changed.group(1) == "ada %s/%d -> %g/%d" % (
        before["ada"]["score"], NEW_MAX, float(before["ada"]["score"]) + 2, NEW_MAX)
