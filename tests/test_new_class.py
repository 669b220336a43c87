"""`make new-class` (issue 27): the example students go, nothing of a real class ever does.

Each test works on a copy of the course with the committed example class, its graded
notebooks and feedback pages, grades.csv, and a gradebook holding the examples' rows. The
refusal goes through make, as the instructor runs it; the rest calls the module.
"""
import shutil

import pytest
from nbgrader.api import Gradebook

from conftest import ROOT, checksums, make
from coursekit.examples import newclass
from coursekit.course import ASSIGNMENT, NOTEBOOK, gradebook_url
from coursekit.examples.samples import (COMMITTED, course_copy, make_submission, nbgrader_env,
                                        submit)


@pytest.fixture
def course(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", nbgrader_env()["PATH"])  # the commands it runs, by name
    root = course_copy(tmp_path / "course")
    for name in ("release", "submitted", "autograded", "feedback"):
        shutil.copytree(ROOT / name, root / name)
    for name in ("grades.csv", "Makefile", "requirements.txt"):
        shutil.copy2(ROOT / name, root / name)  # copy2: make finds the venv up to date
    with Gradebook(gradebook_url(root)) as gradebook:
        gradebook.add_assignment(ASSIGNMENT)
        for student in COMMITTED:
            gradebook.add_student(student)
            gradebook.add_submission(ASSIGNMENT, student)
    return root


def students(root):
    with Gradebook(gradebook_url(root)) as gradebook:
        return sorted(student.id for student in gradebook.students)


def everything_but_the_gradebook(root):
    return {path: digest for path, digest in checksums(root).items()
            if path != "gradebook.db"}


def new_class(root, capsys, *argv):
    status = newclass.main(list(argv), root=root)
    said = capsys.readouterr()
    return status, said.out, said.err


def test_only_the_examples_go_and_the_course_stays(course, capsys):
    kept = {path: digest for path, digest in everything_but_the_gradebook(course).items()
            if path.split("/")[0] not in ("submitted", "autograded", "feedback", "grades.csv")}
    status, out, _ = new_class(course, capsys)
    assert status == 0 and "Removed the example students blank, partial, reference, seed" in out
    for folder in ("submitted", "autograded", "feedback"):
        assert list((course / folder).iterdir()) == [], folder
    assert not (course / "grades.csv").exists()
    assert students(course) == []
    assert everything_but_the_gradebook(course) == kept
    assert new_class(course, capsys)[:2] == (0, "No example students left: the class is yours.\n")


def test_it_refuses_when_a_real_student_is_present_and_changes_nothing(course):
    submit(course, "ada", make_submission({}))
    with Gradebook(gradebook_url(course)) as gradebook:
        gradebook.add_student("cy")  # a roster imported before anyone handed in
    before = checksums(course)
    result = make(course, "new-class", check=False)
    assert result.returncode != 0
    said = [line for line in result.stderr.splitlines() if line.startswith("Not starting")]
    assert len(said) == 1 and "ada (submitted/), cy (the gradebook) are not among the " \
        "shipped examples" in said[0], result.stderr
    assert "KEEP_OTHERS=1" in said[0]
    assert checksums(course) == before
    assert students(course) == sorted(COMMITTED + ("cy",))


def test_a_real_student_named_like_an_example_is_never_taken_for_it(course, capsys):
    path = course / "submitted" / "seed" / ASSIGNMENT / NOTEBOOK
    path.write_text(path.read_text().replace("BatchNorm1d", "BatchNorm1d ", 1))
    before = checksums(course / "submitted" / "seed")
    status, _, err = new_class(course, capsys)
    assert status == 1 and "seed (submitted/, autograded/, feedback/, the gradebook) is not " \
        "among the shipped examples" in err
    status, out, _ = new_class(course, capsys, "--keep-others")
    assert status == 0 and "Kept as they were: seed." in out
    assert checksums(course / "submitted" / "seed") == before
    assert students(course) == ["seed"]
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["seed"]


def test_keep_others_removes_the_examples_and_leaves_the_class_byte_for_byte(course):
    """Through make, as the README says: make new-class KEEP_OTHERS=1."""
    submit(course, "ada", make_submission({}))
    (course / "autograded" / "ada").mkdir()
    (course / "autograded" / "ada" / "notes.txt").write_text("the instructor's")
    theirs = {path: digest for path, digest in checksums(course).items()
              if "/ada/" in "/" + path}
    result = make(course, "new-class", "KEEP_OTHERS=1")
    assert "Kept as they were: ada." in result.stdout
    assert {path: digest for path, digest in checksums(course).items()
            if "/ada/" in "/" + path} == theirs
    assert sorted(p.name for p in (course / "submitted").iterdir()) == ["ada"]
    # grades.csv holds only the examples: it goes with them.
    assert not (course / "grades.csv").exists()
    assert students(course) == []


def test_without_a_release_it_says_so_in_one_line_and_changes_nothing(course, capsys):
    """The examples are told from real students by comparison with the release."""
    shutil.rmtree(course / "release")
    before = checksums(course)
    status, out, err = new_class(course, capsys)
    assert status == 1 and out == ""
    assert err.count("\n") == 1 and "there is no release" in err and "make release" in err
    assert checksums(course) == before
