"""Grades no student code can forge (issue 12): the cheats of tests/cheats.py, graded for real.

The cheats are graded with the sample class (tests/graded_classes.py, once per run), whose
samples `blank` (the untouched release) and `reference` (the reference solution) are their
honest controls, as an instructor would grade them: `python -m coursekit.grading.parallel` through
the course's config, then `nbgrader generate_feedback` and `python -m coursekit.classroom.report`.
Every cheat must earn no more than the untouched release (a twin cheat: no more than the
sample whose wrong answer it keeps, on any test), and be flagged in the grade table, on its
feedback page and in the autograde log with the sentence that says its points come from the
grader's own run (but the twin cheats whose forgeries the judge never reads).
"""
import html
import re

import nbformat
import pytest

import cheats
from coursekit.course import ASSIGNMENT, SOURCE_NOTEBOOK, grade_id
from coursekit.record import OWN_RUN
from graded_classes import CONTROLS

CHEATS = sorted(cheats.CHEATS)
FLAGGED = sorted(set(cheats.CHEATS) - cheats.UNFLAGGED)


def automatic_points():
    """{test cell: points} of every autograded cell (the written answer is graded by hand)."""
    notebook = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    return {grade_id(cell): cell.metadata.nbgrader["points"] for cell in notebook.cells
            if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade")}


POINTS = automatic_points()
FULL = sum(POINTS.values())


@pytest.fixture(scope="module")
def graded(graded_classes):
    return graded_classes.samples


def flat(text):
    return " ".join(text.split())


SAID = flat(OWN_RUN)


def automatic(graded, student):
    assert student in graded["grades"], "%s was not graded:\n%s" % (
        student, graded["autograde"].stdout[-3000:])
    return sum(graded["grades"][student].values())


def problem(graded, student):
    assert student in graded["table"], "%s has no row in grades.csv:\n%s" % (
        student, graded["report"].stdout[-3000:])
    return graded["table"][student]["problem"]


def feedback_text(graded, student):
    """The text of the student's feedback pages, markup removed, whitespace collapsed."""
    pages = sorted((graded["root"] / "feedback" / student / ASSIGNMENT).glob("*.html"))
    assert pages, "no feedback page for %s:\n%s" % (student, graded["feedback"].stderr[-3000:])
    text = " ".join(page.read_text(encoding="utf-8") for page in pages)
    # Both ways of dropping tags, so a tag inside the sentence cannot hide it.
    return [flat(html.unescape(re.sub(r"<[^>]+>", joint, text))) for joint in ("", " ")]


def log_lines_naming(graded, student):
    log = graded["autograde"].stdout + "\n" + graded["autograde"].stderr
    name = re.compile(r"(?<![\w-])%s(?![\w-])" % re.escape(student))
    return [flat(line) for line in log.splitlines() if name.search(line)]


# --- the honest controls -----------------------------------------------------------------

def test_every_submission_is_graded_on_every_test(graded):
    for student in CONTROLS + tuple(CHEATS):
        assert set(graded["grades"].get(student, {})) == set(POINTS), student


def test_the_reference_keeps_full_marks(graded):
    assert FULL == 25
    assert automatic(graded, "reference") == FULL, graded["grades"]["reference"]


def test_the_untouched_release_earns_nothing(graded):
    assert automatic(graded, "blank") == 0, graded["grades"]["blank"]


@pytest.mark.parametrize("student", CONTROLS)
def test_an_honest_submission_is_not_flagged(graded, student):
    assert problem(graded, student) == ""
    assert not any(SAID in page for page in feedback_text(graded, student))
    assert not any(SAID in line for line in log_lines_naming(graded, student))


# --- the cheats --------------------------------------------------------------------------

@pytest.mark.parametrize("student", CHEATS)
def test_a_cheat_earns_no_more_than_the_untouched_release_or_its_twin(graded, student):
    """The untouched release, or for a twin cheat the sample whose answer it keeps."""
    twin = cheats.TWIN_CHEATS[student].sample if student in cheats.TWIN_CHEATS else "blank"
    earned, honest = automatic(graded, student), automatic(graded, twin)
    gained = {test: score for test, score in graded["grades"][student].items()
              if score > graded["grades"][twin].get(test, 0)}
    assert not gained and earned <= honest, "%s earned %g of %g automatic points (%s %g): %s" \
        % (student, earned, FULL, twin, honest, gained)


@pytest.mark.parametrize("student", FLAGGED)
def test_a_cheat_is_flagged_in_the_grade_table(graded, student):
    said = problem(graded, student)
    assert said, "%s is not flagged in grades.csv" % student
    assert SAID in flat(said), said


@pytest.mark.parametrize("student", FLAGGED)
def test_a_cheat_is_told_on_its_feedback_page(graded, student):
    assert any(SAID in page for page in feedback_text(graded, student)), \
        "%s's feedback page does not say %r" % (student, OWN_RUN)


@pytest.mark.parametrize("student", FLAGGED)
def test_a_cheat_is_named_in_the_autograde_log(graded, student):
    lines = log_lines_naming(graded, student)
    assert any(SAID in line for line in lines), "no line of the autograde log names %s " \
        "with %r:\n%s" % (student, OWN_RUN, "\n".join(lines))
