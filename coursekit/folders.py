"""What a student's folder may hold when the grader, outside the sandbox, touches it.

nbgrader reads, copies, writes and chmods the files of `submitted/<student>/<a>/` and
`autograded/<student>/<a>/` with calls that follow links. Student code can leave a
symlink there (to the source notebook, the gradebook, the config, another student's
submission), a hard link, a FIFO that blocks a reader forever, or a device node; so can a
zip or a git checkout that lands in `submitted/`. The grader therefore only ever meets
plain regular files with one link, and directories:

- `foreign_entries(folder)` lists everything else, without following anything (a
  submission holding any of it is refused, and nothing in it is copied);
- `remove_foreign_entries(folder)` deletes it (after the kernel has stopped, before
  nbgrader writes the autograded notebook) and says what it removed;
- `read_plain_file(path, limit)` reads a small file there without following a link or
  waiting on a pipe.
"""
import os
import shutil
import stat
from dataclasses import dataclass


@dataclass(frozen=True)
class Foreign:
    """An entry of a student's folder that is not a plain file or a directory."""
    path: str
    kind: str

    def describe(self, top):
        return "%s (%s)" % (os.path.relpath(self.path, top), self.kind)


def _kind(path, status):
    mode = status.st_mode
    if stat.S_ISLNK(mode):
        try:
            return "a link to %s" % os.readlink(path)
        except OSError:
            return "a link"
    if stat.S_ISREG(mode):
        return "a hard link" if status.st_nlink > 1 else None
    if stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def foreign_entries(folder):
    """Every entry under `folder` (itself included) that is not a regular file with one
    link or a directory; nothing is followed."""
    found = []
    try:
        top = os.lstat(folder)
    except FileNotFoundError:
        return found
    kind = _kind(folder, top)
    if kind:
        return [Foreign(folder, kind)]
    pending = [folder]
    while pending:
        directory = pending.pop()
        # A folder the student's code made unreadable is still the grader's to read.
        os.chmod(directory, os.lstat(directory).st_mode | stat.S_IRWXU)
        with os.scandir(directory) as entries:
            for entry in entries:
                status = entry.stat(follow_symlinks=False)
                kind = _kind(entry.path, status)
                if kind:
                    found.append(Foreign(entry.path, kind))
                elif stat.S_ISDIR(status.st_mode):
                    pending.append(entry.path)
    return sorted(found, key=lambda item: item.path)


def remove_foreign_entries(folder):
    """Delete what `foreign_entries` finds (never what it points at), and any folder
    standing where nbgrader will write a notebook; returns what it removed."""
    found = foreign_entries(folder)
    for item in found:
        # unlink removes a link, a pipe or a device node itself, never its target.
        os.unlink(item.path)
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if name.endswith(".ipynb") and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
            found.append(Foreign(path, "a folder named like the notebook"))
    return found


def describe(found, top, limit=5):
    shown = ", ".join(item.describe(top) for item in found[:limit])
    more = len(found) - limit
    return shown + (" and %d more" % more if more > 0 else "")


def read_plain_file(path, limit):
    """Up to `limit` + 1 bytes of `path` (more than `limit` means it is too big), or None
    when `path` is not a plain file: missing, a link (never followed) or a special file
    (never waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as handle:
        return handle.read(limit + 1)
