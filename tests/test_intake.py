"""Reading submissions: clear messages for broken files, metadata restored by matching."""
import time

import nbformat
import pytest

import hostile
from coursekit.grading.intake import SubmissionProblem, read_submission, restore_metadata

from coursekit.course import RELEASE_NOTEBOOK, grade_id


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


def _release_json(change):
    import json

    content = json.loads(RELEASE_NOTEBOOK.read_text())
    change(content, content["cells"][19])
    return json.dumps(content).encode()


RELEASE_CELLS = len(nbformat.read(RELEASE_NOTEBOOK, as_version=4).cells)


@pytest.mark.parametrize("change, says", [
    (lambda nb, cell: cell["metadata"].update(nbgrader="oops"),
     f"cell 20 of {RELEASE_CELLS} has nbgrader metadata 'oops', not a dictionary of settings"),
    (lambda nb, cell: cell["metadata"]["nbgrader"].update(points="lots"),
     f"cell 20 of {RELEASE_CELLS} has broken nbgrader metadata (points: 'lots' is not of type 'number')"),
    (lambda nb, cell: cell["metadata"]["nbgrader"].update(grade_id=7),
     "(grade_id: 7 is not of type 'string')"),
    (lambda nb, cell: cell["metadata"]["nbgrader"].update(locked="yes"),
     "(locked: 'yes' is not of type 'boolean')"),
    # A cell without its grade id is read (issue 24): see the repair tests below.
    (lambda nb, cell: cell["metadata"]["nbgrader"].update(schema_version=[]),
     f"cell 20 of {RELEASE_CELLS} has broken nbgrader metadata ("),
    (lambda nb, cell: nb["cells"].__setitem__(19, "print(1)"),
     f"cell 20 of {RELEASE_CELLS} is 'print(1)', not a cell"),
    (lambda nb, cell: cell.update(source=5), f"cell 20 of {RELEASE_CELLS} has source 5, not text"),
    (lambda nb, cell: cell.pop("source"), f"cell 20 of {RELEASE_CELLS} has no source"),
    (lambda nb, cell: cell.update(cell_type="python"),
     f"cell 20 of {RELEASE_CELLS} has cell type 'python', not code, markdown or raw"),
    (lambda nb, cell: cell.update(metadata=[1]),
     f"cell 20 of {RELEASE_CELLS} has metadata [1], not a dictionary"),
    (lambda nb, cell: cell.pop("metadata"), f"cell 20 of {RELEASE_CELLS} has no metadata"),
    (lambda nb, cell: cell.update(outputs="none"),
     f"cell 20 of {RELEASE_CELLS} has outputs 'none', not a list of outputs"),
    (lambda nb, cell: nb.pop("nbformat"), "has no format number; grading reads formats 3 and 4"),
    (lambda nb, cell: nb.update(nbformat=5), "is a notebook of format 5; grading reads"),
    (lambda nb, cell: nb.update(metadata=[]), "has notebook metadata [], not a dictionary"),
    (lambda nb, cell: nb.update(nbformat_minor="five"), "is not a readable notebook ("),
    (lambda nb, cell: nb["cells"].extend([nb["cells"][0]] * 1000),
     f"has {RELEASE_CELLS + 1000} cells; grading takes at most 1000"),
])
def test_malformed_cells_and_metadata_get_one_line_naming_the_cell(tmp_path, change, says):
    path = tmp_path / "bn.ipynb"
    path.write_bytes(_release_json(change))
    with pytest.raises(SubmissionProblem) as problem:
        read_submission(str(path))
    message = str(problem.value)
    assert message.startswith(str(path)) and says in message, message
    assert "\n" not in message and len(message) < 400


def test_deeply_nested_json_is_refused_in_one_line(tmp_path):
    path = tmp_path / "bn.ipynb"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(SubmissionProblem, match="is not a notebook .its JSON is nested thousands"):
        read_submission(str(path))


@pytest.mark.parametrize("size", [60_000_000, 21_000_000])
def test_a_huge_file_is_refused_before_it_is_read(tmp_path, size):
    path = tmp_path / "bn.ipynb"
    with open(path, "wb") as handle:
        handle.truncate(size)  # sparse: nothing is written, and nothing may be read
    with pytest.raises(SubmissionProblem) as problem:
        read_submission(str(path))
    assert "bn.ipynb is %d MB; grading takes notebooks of up to 20 MB" % (size // 10**6) \
        in str(problem.value)


def test_a_format_3_notebook_is_read_and_matched(tmp_path, release):
    path = tmp_path / "bn.ipynb"
    path.write_bytes(hostile.version_3(0))
    notebook = read_submission(str(path))
    assert notebook.nbformat == 4
    assert [c.source for c in notebook.cells] == [c.source for c in hostile.reference().cells]
    assert restore_metadata(notebook, release) == []
    stripped = hostile.strip(notebook)
    assert len(restore_metadata(stripped, release)) == len(release.cells)


@pytest.mark.parametrize("build", [hostile.long_varied_cells, hostile.many_candidates])
def test_matching_a_large_adversarial_notebook_takes_a_second_or_so(release, build):
    notebook = build()
    size = len(nbformat.writes(notebook).encode())
    assert 1_000_000 < size < 5_000_000
    start = time.perf_counter()
    restored = restore_metadata(notebook, release)
    # It took 144 s when every candidate's whole text was compared.
    assert time.perf_counter() - start < 5
    assert sorted(restored) == sorted(grade_id(c) for c in release.cells)
    # Each grade id is back on the student's own version of its cell.
    by_id = {grade_id(c): c.source for c in notebook.cells if grade_id(c)}
    for cell in hostile.reference().cells:
        assert by_id[grade_id(cell)] in (cell.source, cell.source + "\n# edited"), grade_id(cell)


# Issue 14: deleted cells come back in place, edited fixed cells are named, and the record
# of both is the grader's.

@pytest.mark.parametrize("deleted", [
    hostile.ALL_TESTS, hostile.CONSECUTIVE_TESTS,
    ("colab_badge", "title", "install", "imports"),  # the first cells of all
    ("test_running_var", "created_in_forward_intro", "written_intro", "written_after_relu"),
])
def test_deleted_cells_any_number_are_put_back_in_release_order(release, deleted):
    from coursekit.grading.intake import put_back_missing_cells

    notebook = hostile.reference()
    notebook.cells = [cell for cell in notebook.cells if grade_id(cell) not in deleted]
    assert restore_metadata(notebook, release) == []
    assert put_back_missing_cells(notebook, release) == [
        grade_id(c) for c in release.cells if grade_id(c) in deleted]
    assert [grade_id(c) for c in notebook.cells] == [grade_id(c) for c in release.cells]
    assert len({c.id for c in notebook.cells}) == len(notebook.cells)
    nbformat.validate(notebook)


def test_edited_fixed_cells_are_named_and_the_record_is_the_graders(release):
    from coursekit.grading.intake import edited_fixed_cells
    from coursekit.record import record_fixed_cells, recorded_fixed_cells

    notebook = hostile.edited_imports(0)
    # Trailing spaces and blank lines are not edits.
    title = next(c for c in notebook.cells if grade_id(c) == "title")
    title.source = "\n" + title.source.replace("\n", "  \n") + "\n\n"
    assert edited_fixed_cells(notebook, release) == ["imports", "test_used"]
    assert recorded_fixed_cells(notebook) == ([], ["title"])  # the student's own claim
    record_fixed_cells(notebook, [], [])
    assert recorded_fixed_cells(notebook) == ([], []) and "udl" not in notebook.metadata
    record_fixed_cells(notebook, ["imports"], ["test_used"])
    assert recorded_fixed_cells(notebook) == (["imports"], ["test_used"])
    assert edited_fixed_cells(hostile.reference(), release) == []


# Issue 24, item 8: grade cells nbgrader crashes on (KeyError: 'grade_id') are repaired,
# and the sentence says what was wrong.

def _repaired(notebook, release):
    from coursekit.grading.intake import repair_grade_cells

    repair = repair_grade_cells(notebook, release)
    restore_metadata(notebook, release)
    return repair.sentence()


def test_a_duplicated_check_keeps_its_first_copy_only(release):
    notebook = hostile.duplicated_check(0)
    first = next(c for c in notebook.cells if grade_id(c) == "test_used")
    first.source += "\n# the first copy"
    said = _repaired(notebook, release)
    assert said.startswith(hostile.MALFORMED["duplicated_check"])
    assert [grade_id(c) for c in notebook.cells] == [grade_id(c) for c in release.cells]
    assert next(c for c in notebook.cells if grade_id(c) == "test_used") is first


def test_a_duplicated_answer_keeps_both_copies_running_and_the_first_graded(release):
    from coursekit.examples.samples import CLASS_CELL

    notebook = hostile.reference()
    index = next(i for i, c in enumerate(notebook.cells) if grade_id(c) == CLASS_CELL)
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell(
        "# my second try\n" + notebook.cells[index].source,
        metadata=dict(notebook.cells[index].metadata)))
    said = _repaired(notebook, release)
    assert said.startswith("the notebook has two copies of the answer cell `%s` (the first "
                           "was graded)" % CLASS_CELL)
    assert notebook.cells[index + 1].source.startswith("# my second try")
    assert "nbgrader" not in notebook.cells[index + 1].metadata
    assert grade_id(notebook.cells[index]) == CLASS_CELL


def test_a_locked_cell_without_an_id_is_read_and_becomes_the_students_own(tmp_path, release):
    path = tmp_path / "bn.ipynb"
    nbformat.write(hostile.locked_without_id(0), path)
    notebook = read_submission(str(path))  # no reason to set the notebook aside
    said = _repaired(notebook, release)
    assert hostile.MALFORMED["locked_without_id"] in said and said.startswith("cell ")
    scratch = next(c for c in notebook.cells if c.source.startswith("scratch = "))
    assert "nbgrader" not in scratch.metadata
    assert [grade_id(c) for c in notebook.cells if grade_id(c)] == [
        grade_id(c) for c in release.cells if grade_id(c)]


def test_an_id_the_release_does_not_have_is_named(release):
    notebook = hostile.reference()
    notebook.cells.insert(3, nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {
        "locked": True, "grade": False, "solution": False, "schema_version": 3,
        "grade_id": "my_cell"}}))
    assert _repaired(notebook, release).startswith(
        "cell 4 is marked as one of the assignment's cells but is not one of them "
        "(`my_cell`), so it ran as your own code")


def test_a_release_cell_that_only_lost_its_id_is_matched_back_without_a_word(release):
    notebook = hostile.reference()
    imports = next(c for c in notebook.cells if grade_id(c) == "imports")
    del imports.metadata["nbgrader"]["grade_id"]
    assert _repaired(notebook, release) is None
    assert grade_id(imports) == "imports"
    assert _repaired(hostile.reference(), release) is None


def test_the_repair_sentence_is_the_graders_record(release):
    from coursekit.record import record_fixed_cells, recorded_repair

    notebook = hostile.reference()
    notebook.metadata["udl"] = {"grade_cells_repaired": "the student's own claim"}
    record_fixed_cells(notebook, [], [])
    assert recorded_repair(notebook.metadata) is None
    record_fixed_cells(notebook, [], [], "what grading found")
    assert recorded_repair(notebook.metadata) == "what grading found"
