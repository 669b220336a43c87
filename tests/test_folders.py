"""What the grader lets through of a student's folder (coursekit.folders): plain files and
folders only, nothing followed. The graded attacks are in test_safe_grading.py."""
import os

from coursekit.folders import foreign_entries, read_plain_file, remove_foreign_entries


def test_everything_but_plain_files_and_folders_is_removed_never_its_target(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the student's")
    folder = tmp_path / "student"
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / "answer.txt").write_text("mine")
    os.symlink(outside, folder / "deep" / "er" / "link")
    os.symlink(tmp_path, folder / "up")
    os.mkfifo(folder / "pipe")
    (folder / "own.txt").write_text("twice")
    os.link(folder / "own.txt", folder / "again.txt")
    (folder / "nb.ipynb").mkdir()
    (folder / "locked").mkdir()
    os.symlink("/", folder / "locked" / "root")
    (folder / "locked").chmod(0)

    removed = {os.path.relpath(item.path, folder): item.kind
               for item in remove_foreign_entries(str(folder))}

    assert removed == {
        "deep/er/link": "a link to %s" % outside, "up": "a link to %s" % tmp_path,
        "pipe": "a named pipe", "own.txt": "a hard link", "again.txt": "a hard link",
        "nb.ipynb": "a folder named like the notebook", "locked/root": "a link to /"}
    assert outside.read_text() == "not the student's"
    assert (folder / "answer.txt").read_text() == "mine"
    assert foreign_entries(str(folder)) == []


def test_a_folder_that_is_itself_a_link_is_reported_and_not_entered(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink(tmp_path / "real", tmp_path / "student")
    found = foreign_entries(str(tmp_path / "student"))
    assert [item.kind for item in found] == ["a link to %s" % (tmp_path / "real")]


def test_a_small_file_is_read_only_when_plain(tmp_path):
    (tmp_path / "small.txt").write_bytes(b"12345")
    os.symlink(tmp_path / "small.txt", tmp_path / "link.txt")
    os.mkfifo(tmp_path / "pipe")  # would block a reader forever
    (tmp_path / "folder").mkdir()
    assert read_plain_file(tmp_path / "small.txt", 5) == b"12345"
    assert read_plain_file(tmp_path / "small.txt", 3) == b"1234"  # longer than allowed
    for name in ("link.txt", "pipe", "folder", "missing"):
        assert read_plain_file(tmp_path / name, 5) is None, name
