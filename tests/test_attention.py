"""'Needs attention' is written down once, by the autograder (coursekit.grading.attention),
and read by the parallel runner and the grade table. Here: what the autograder records as
a student's grading starts, stops, fails or finds tampering, without running a kernel.
What the whole class's table and log then say is in test_safe_grading.py, test_parallel.py
and test_judge_cheats.py."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

import hostile
from coursekit import record
from coursekit.grading import attention, parallel
from coursekit.course import ASSIGNMENT, NOTEBOOK
from coursekit.examples.samples import course_copy, nbgrader_env, submit

STUDENT = "zz_reference"


def test_a_record_is_one_sentence_replaced_whole_and_cleared(tmp_path):
    assert attention.read(tmp_path, ASSIGNMENT, "ada") is None
    attention.record(tmp_path, ASSIGNMENT, "ada", "first\n  thought")
    attention.record(tmp_path, ASSIGNMENT, "ada", "second   thought\n")
    assert attention.read(tmp_path, ASSIGNMENT, "ada") == "second thought"
    assert [p.name for p in (tmp_path / "autograded" / "ada").iterdir()] == [
        "%s.needs-attention.txt" % ASSIGNMENT]
    attention.clear(tmp_path, ASSIGNMENT, "ada")
    attention.clear(tmp_path, ASSIGNMENT, "ada")
    assert attention.read(tmp_path, ASSIGNMENT, "ada") is None


def test_the_class_needs_attention_for_what_was_recorded_and_what_was_never_graded(tmp_path):
    for student in ("graded", "flagged", "never_graded"):
        (tmp_path / "submitted" / student / ASSIGNMENT).mkdir(parents=True)
    for student in ("graded", "flagged"):
        (tmp_path / "autograded" / student / ASSIGNMENT).mkdir(parents=True)
        (tmp_path / "autograded" / student / ASSIGNMENT / NOTEBOOK).write_text("{}")
    attention.record(tmp_path, ASSIGNMENT, "flagged", "something to read")
    # A record of a student who no longer has a submission is not the class's business.
    attention.record(tmp_path, ASSIGNMENT, "withdrawn", "old news")
    assert attention.of_class(tmp_path, ASSIGNMENT) == {
        "flagged": "something to read", "never_graded": attention.NOT_GRADED}


@pytest.mark.parametrize("text", ["next tuesday", "9" * 400, "2026-13-45 25:00:00 UTC"])
def test_a_timestamp_nbgrader_cannot_read_sets_the_submission_aside(tmp_path, text):
    from coursekit.grading.autograde import problem_of

    folder = tmp_path / "submitted" / "ada" / ASSIGNMENT
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text(text)
    said = problem_of(str(folder), {})
    assert said.startswith(str(folder / "timestamp.txt")) and "holds no time" in said
    (folder / "timestamp.txt").write_text("2026-12-14 17:00:00.000000 UTC")
    assert problem_of(str(folder), {}) is None
    (folder / "timestamp.txt").unlink()
    (folder / "timestamp.txt").mkdir()
    assert "timestamp.txt is not a plain file" in problem_of(str(folder), {})


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = course_copy(tmp_path_factory.mktemp("attention") / "course")
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT,
                    "--force"], cwd=root, env=nbgrader_env(), check=True, capture_output=True)
    submit(root, STUDENT, hostile.reference())
    return root


def grade_with(course, monkeypatch, convert):
    """Grade STUDENT the way a worker does, with nbgrader's conversion replaced."""
    from nbgrader.converters.autograde import Autograde

    monkeypatch.setattr(Autograde, "convert_single_notebook", convert)
    return parallel.grade_student(str(course), ASSIGNMENT, STUDENT)


def write_graded(autograde, notebook):
    folder = Path(autograde._format_dest(ASSIGNMENT, STUDENT))
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, folder / NOTEBOOK)


def test_grading_that_fails_says_why_in_the_record_and_the_outcome(course, monkeypatch):
    def fails(self, notebook):
        raise RuntimeError("the disk went away")

    outcome = grade_with(course, monkeypatch, fails)
    assert not outcome.ok
    assert outcome.problem == attention.read(course, ASSIGNMENT, STUDENT) == (
        "grading stopped (RuntimeError: the disk went away): see the autograde log")


def test_grading_that_is_killed_midway_is_recorded_as_unfinished(course, monkeypatch):
    def killed(self, notebook):
        raise KeyboardInterrupt

    outcome = grade_with(course, monkeypatch, killed)
    assert not outcome.ok
    assert outcome.problem == attention.read(course, ASSIGNMENT, STUDENT) == attention.UNFINISHED


def test_tampering_the_judge_wrote_into_the_graded_notebook_is_recorded(course, monkeypatch):
    sentence = "Test cells changed what they report; %s." % record.OWN_RUN

    def flags(self, notebook):
        graded = nbformat.v4.new_notebook()
        record.record_tampering(graded, sentence)
        write_graded(self, graded)

    outcome = grade_with(course, monkeypatch, flags)
    assert not outcome.ok
    assert outcome.problem == attention.read(course, ASSIGNMENT, STUDENT) == sentence


def test_grading_that_finds_nothing_clears_the_record(course, monkeypatch):
    attention.record(course, ASSIGNMENT, STUDENT, "from an earlier run")

    def finds_nothing(self, notebook):
        write_graded(self, nbformat.v4.new_notebook())

    outcome = grade_with(course, monkeypatch, finds_nothing)
    assert outcome.ok and outcome.problem is None
    assert attention.read(course, ASSIGNMENT, STUDENT) is None
