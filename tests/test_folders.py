"""What the grader lets through of a student's folder (coursekit.grading.folders): plain files and
folders only, nothing followed. The graded attacks are in test_safe_grading.py; the race
against collect with real Unix users in test_exchange.py."""
import os
import pwd
import stat

import pytest

from coursekit.classroom import exchange
from coursekit.grading import folders
from coursekit.grading.folders import (Unfit, copy_unfollowed, foreign_entries, read_plain_file,
                                       remove_foreign_entries)

SECRET = b"instructor only: 5f0c1e"


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


def files_under(folder):
    """{path under `folder`: bytes} of every file, nothing followed (a link is b"LINK")."""
    found = {}
    for where, folders_, names in os.walk(folder):
        for name in folders_ + names:
            path = os.path.join(where, name)
            if os.path.islink(path):
                found[os.path.relpath(path, folder)] = b"LINK"
            elif os.path.isfile(path):
                with open(path, "rb") as handle:
                    found[os.path.relpath(path, folder)] = handle.read()
    return found


@pytest.fixture
def secret(tmp_path):
    """An instructor's folder holding one file a student must never get a byte of."""
    folder = tmp_path / "instructor"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    return folder


@pytest.fixture
def submission(tmp_path):
    folder = tmp_path / "inbound" / "student+bn+2026-01-01 00:00:00.000000 UTC+abc"
    (folder / "extra").mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "extra" / "data.txt").write_text("my data")
    (folder / "timestamp.txt").write_text("2026-01-01 00:00:00.000000 UTC")
    return folder


def test_a_copy_never_follows_a_link_and_names_what_it_left_out(tmp_path, secret,
                                                                submission):
    os.symlink(secret / "secret.txt", submission / "link.txt")
    os.symlink(secret, submission / "extra" / "linked folder")
    os.mkfifo(submission / "pipe")  # a reader that opened it would wait forever
    (submission / "mine.txt").write_text("twice")
    os.link(submission / "mine.txt", submission / "extra" / "again.txt")
    (submission / "run.sh").write_text("#!/bin/sh")
    os.chmod(submission / "run.sh", 0o4755)

    copy = tmp_path / "copy"
    found = copy_unfollowed(str(submission), str(copy), os.getuid())

    assert {os.path.relpath(item.path, submission): item.kind for item in found} == {
        "link.txt": "a link to %s" % (secret / "secret.txt"),
        "extra/linked folder": "a link to %s" % secret, "pipe": "a named pipe",
        "mine.txt": "a hard link", "extra/again.txt": "a hard link"}
    assert files_under(copy) == {"notes.txt": b"my notes", "extra/data.txt": b"my data",
                                 "timestamp.txt": b"2026-01-01 00:00:00.000000 UTC",
                                 "run.sh": b"#!/bin/sh"}
    assert stat.S_IMODE(os.stat(copy / "run.sh").st_mode) == 0o755  # no setuid bit


def test_a_submission_that_is_itself_a_link_or_another_users_is_not_copied(tmp_path,
                                                                           secret,
                                                                           submission):
    os.symlink(secret, tmp_path / "inbound" / "linked")
    found = copy_unfollowed(str(tmp_path / "inbound" / "linked"), str(tmp_path / "a"),
                            os.getuid())
    assert [item.kind for item in found] == ["a link to %s" % secret]
    found = copy_unfollowed(str(submission), str(tmp_path / "b"), os.getuid() + 4242)
    assert [item.kind.startswith("an entry of ") for item in found] == [True]
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_copy_stops_at_its_size_and_depth_limits(tmp_path, submission):
    with pytest.raises(Unfit, match="more than 10 bytes"):
        copy_unfollowed(str(submission), str(tmp_path / "a"), os.getuid(), max_bytes=10)
    deep = submission
    for _ in range(folders.MAX_DEPTH + 1):
        deep = deep / "d"
        deep.mkdir()
    with pytest.raises(Unfit, match="nested"):
        copy_unfollowed(str(submission), str(tmp_path / "b"), os.getuid())


def swapping(monkeypatch, swaps):
    """os.open that, when the copier opens the entry named in `swaps` (relative to the
    folder it is reading), first runs that swap: the student's move between any check and
    the copy's open."""
    real_open = os.open

    def open_after_swap(path, flags, mode=0o777, *, dir_fd=None):
        swap = swaps.pop(path, None) if dir_fd is not None else None
        if swap:
            swap()
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(folders.os, "open", open_after_swap)
    return swaps


def swap_for_link(entry, target):
    def swap():
        os.rename(entry, str(entry) + ".away")
        os.symlink(target, entry)
    return swap


def test_a_file_or_folder_swapped_for_a_link_during_the_copy_is_caught_not_followed(
        tmp_path, secret, submission, monkeypatch):
    swaps = swapping(monkeypatch, {
        "notes.txt": swap_for_link(submission / "notes.txt", secret / "secret.txt"),
        "extra": swap_for_link(submission / "extra", secret)})
    found = copy_unfollowed(str(submission), str(tmp_path / "copy"), os.getuid())
    assert swaps == {}  # both swaps happened
    assert {os.path.relpath(item.path, submission): item.kind for item in found} == {
        "notes.txt": "a link to %s" % (secret / "secret.txt"),
        "extra": "a link to %s" % secret}
    assert SECRET not in b"".join(files_under(tmp_path / "copy").values())


def test_a_folder_swapped_for_a_link_once_opened_is_read_as_it_was(
        tmp_path, secret, submission, monkeypatch):
    # The copy reads the folders it opened, not whatever the paths name since.
    (secret / "data.txt").write_bytes(SECRET)
    (secret / "notes.txt").write_bytes(SECRET)
    inbound = submission.parent
    swaps = swapping(monkeypatch, {
        "data.txt": swap_for_link(submission / "extra", secret),
        "notes.txt": swap_for_link(submission, secret)})
    found = copy_unfollowed(str(submission), str(tmp_path / "copy"), os.getuid())
    assert swaps == {} and found == []
    assert files_under(tmp_path / "copy") == {
        "notes.txt": b"my notes", "extra/data.txt": b"my data",
        "timestamp.txt": b"2026-01-01 00:00:00.000000 UTC"}
    assert os.path.islink(submission) and os.path.isdir(str(submission) + ".away")
    assert sorted(os.listdir(inbound)) == sorted([submission.name, submission.name + ".away"])


def test_collect_refuses_and_deletes_the_copy_of_a_submission_swapped_during_it(
        tmp_path, secret, submission, monkeypatch):
    student = pwd.getpwuid(os.getuid()).pw_name
    os.rename(submission, tmp_path / "inbound" / (student + "+bn+x"))
    submission = tmp_path / "inbound" / (student + "+bn+x")
    clean = tmp_path / "clean"
    assert exchange.take(str(submission), str(clean), student) is None
    assert files_under(clean)["notes.txt"] == b"my notes"

    swaps = swapping(monkeypatch, {"notes.txt": swap_for_link(submission / "notes.txt",
                                                              secret / "secret.txt")})
    copy = tmp_path / "copy"
    refused = exchange.take(str(submission), str(copy), student)
    assert swaps == {}
    assert refused == ("it holds a link, a special file or a file that is not %s's own "
                       "(%s/notes.txt (a link to %s))" % (student, submission.name,
                                                          secret / "secret.txt"))
    assert not copy.exists()


def test_collect_refuses_a_submission_another_user_made_in_a_students_name(tmp_path,
                                                                           submission):
    """The inbound lets anyone drop a folder named for any student: collect takes only the
    student's own (test_instructor_walk.py does it with real Unix users)."""
    maker = pwd.getpwuid(os.getuid()).pw_name
    student = next(user.pw_name for user in pwd.getpwall() if user.pw_uid != os.getuid())
    copy = tmp_path / "copy"
    assert exchange.take(str(submission), str(copy), student) == (
        "it belongs to %s, not %s" % (maker, student))
    assert not copy.exists()
    assert exchange.take(str(submission), str(copy), maker) is None
