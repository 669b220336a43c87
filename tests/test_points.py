"""Points live in coursekit/kernel/testcells.py (issue 27): the documents quote them, and a
release never undoes points an instructor edited in the notebook without a word."""
import hashlib
import re
import shutil

import nbformat

from conftest import ROOT, make
from coursekit.authoring import releases
from coursekit.course import ASSIGNMENT, NOTEBOOK, SOURCE_NOTEBOOK, grade_id
from coursekit.kernel.testcells import BY_ID, TEST_CELLS

CHECK = "test_placement"


def quoted_points(path):
    """[(line number, points)] of a Markdown table's rows whose second column is a number."""
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        columns = line.split(" | ")
        if line.startswith("| ") and len(columns) > 1 and columns[1].isdigit():
            found.append((number, int(columns[1])))
    return found


def test_the_documents_quote_the_points_of_the_table():
    """Each document that quotes the points agrees with coursekit/kernel/testcells.py; a failure
    names the file, the line and what to write there."""
    total = sum(cell.points for cell in TEST_CELLS)
    checks = ROOT / "docs" / "checks.md"
    quoted = quoted_points(checks)
    assert sorted(points for _, points in quoted) == sorted(c.points for c in TEST_CELLS), (
        "docs/checks.md quotes points %s (lines %s); coursekit/kernel/testcells.py gives %s: "
        "update the table's points column" % (
            [p for _, p in quoted], [n for n, _ in quoted], [c.points for c in TEST_CELLS]))
    for path in (checks, ROOT / "README.md"):
        text = path.read_text()
        found = re.search(r"What the checks grade \((\d+) points", text)
        line = text[:found.start()].count("\n") + 1 if found else None
        assert found and int(found.group(1)) == total, (
            "%s%s must say 'What the checks grade (%d points': coursekit/kernel/testcells.py's "
            "total" % (path.relative_to(ROOT), ", line %d," % line if line else "", total))


def copy_course(tmp_path):
    root = tmp_path / "course"
    for name in ("source", "release"):
        shutil.copytree(ROOT / name, root / name)
    return root


def edit_points(path, points):
    notebook = nbformat.read(path, as_version=4)
    cell = next(c for c in notebook.cells if grade_id(c) == CHECK)
    cell.metadata.nbgrader["points"] = points
    nbformat.write(notebook, path)


def test_points_edited_in_the_notebook_are_named_not_undone(tmp_path):
    root = copy_course(tmp_path)
    edit_points(root / "source" / ASSIGNMENT / NOTEBOOK, 7)
    said = releases.check_points(root)
    assert said.startswith("Not releasing: points were changed in source/bn/%s" % NOTEBOOK)
    assert "%s: 7 in the notebook, %d in testcells.py" % (CHECK, BY_ID[CHECK].points) in said
    assert "coursekit/kernel/testcells.py" in said and "\n" not in said


def test_points_changed_in_the_table_are_released(tmp_path):
    """The notebook still has the last release's points: the table changed, sync applies it."""
    root = copy_course(tmp_path)
    edits = releases.points_edited_in_notebook(
        nbformat.read(SOURCE_NOTEBOOK, as_version=4),
        nbformat.read(root / "release" / ASSIGNMENT / NOTEBOOK, as_version=4),
        dict({c.grade_id: c.points for c in TEST_CELLS}, **{CHECK: 9}))
    assert edits == []
    assert releases.check_points(root) is None


def test_make_release_refuses_and_leaves_the_notebook_as_it_was(tmp_path):
    from coursekit.examples.samples import course_copy

    root = course_copy(tmp_path / "course")
    shutil.copytree(ROOT / "release", root / "release")
    source = root / "source" / ASSIGNMENT / NOTEBOOK
    edit_points(source, 7)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    result = make(root, "release", check=False)
    assert result.returncode != 0
    assert "Not releasing: points were changed in source/bn/%s" % NOTEBOOK in result.stderr
    assert hashlib.sha256(source.read_bytes()).hexdigest() == digest
    assert not (root / releases.RECORD_NAME).exists()


def test_a_release_is_recorded_once_and_its_cells_read_as_published(tmp_path):
    root = copy_course(tmp_path)
    assert releases.record(root) is True and releases.record(root) is False
    published = releases.published_digests(root)
    release = nbformat.read(root / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    todo = next(c for c in release.cells if grade_id(c) == "todo_plot")
    assert releases.as_published(todo, published)
    todo.source += "\nA line of the student's own."
    assert not releases.as_published(todo, published)
    # Trailing spaces and blank lines are no edit, as for the grader.
    todo.source = todo.source.rsplit("\n", 1)[0].replace("\n", "  \n\n")
    assert releases.as_published(todo, published)


def test_the_committed_record_holds_the_committed_release():
    published = releases.published_digests(ROOT)
    release = nbformat.read(ROOT / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    assert releases.fixed_cells(release).items() <= {
        (name, digest) for name, digests in published.items() for digest in digests}, \
        "published-releases.json lacks the committed release: run make release"
