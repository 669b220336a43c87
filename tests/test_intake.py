"""Reading submissions: clear messages for broken files, metadata restored by matching."""
import nbformat
import pytest

import hostile
from coursekit.intake import SubmissionProblem, read_submission, restore_metadata
from coursekit.samples import RELEASE_NOTEBOOK
from coursekit.sync import grade_id


@pytest.fixture(scope="module")
def release():
    return nbformat.read(RELEASE_NOTEBOOK, as_version=4)


@pytest.mark.parametrize("content, says", [
    (None, "is missing (it holds: notes.txt)"),
    (b"", "is empty (0 bytes)"),
    (b"  \n", "is empty (3 bytes)"),
    (b'{"cells": [', "is not valid JSON (line 1, column 12"),
    (b"\xff\xfe\x00", "is not a text file"),
    (b"[1, 2]", "is JSON but not a notebook"),
])
def test_a_broken_file_gets_one_clear_sentence(tmp_path, content, says):
    path = tmp_path / "bn.ipynb"
    (tmp_path / "notes.txt").write_text("hi")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SubmissionProblem) as problem:
        read_submission(str(path))
    assert str(path) in str(problem.value) and says in str(problem.value)


def test_a_good_file_is_read(tmp_path, release):
    path = tmp_path / "bn.ipynb"
    nbformat.write(release, path)
    assert read_submission(str(path)) == release


def test_stripped_metadata_comes_back_on_the_matching_cells(release):
    submission = hostile.reference()
    stripped = hostile.strip(submission)
    stripped.cells.insert(5, nbformat.v4.new_markdown_cell("my notes"))
    restored = restore_metadata(stripped, release)
    assert sorted(restored) == sorted(grade_id(c) for c in release.cells if grade_id(c))
    by_id = {grade_id(c): c.source for c in stripped.cells if grade_id(c)}
    assert by_id == {grade_id(c): c.source for c in submission.cells if grade_id(c)}


def test_a_partly_stripped_notebook_gets_back_only_what_it_lost(release):
    submission = hostile.reference()
    del submission.cells[22].metadata["nbgrader"]
    assert restore_metadata(submission, release) == [grade_id(release.cells[22])]


def test_an_intact_notebook_is_left_alone(release):
    submission = hostile.reference()
    assert restore_metadata(submission, release) == []
    assert submission == hostile.reference()


def test_another_notebook_cannot_be_matched(release):
    with pytest.raises(SubmissionProblem, match="cannot be matched to the release"):
        restore_metadata(hostile.unmatchable(0), release, name="bob's notebook")
