"""What a student's folder may hold when the grader, outside the sandbox, touches it.

nbgrader reads, copies, writes and chmods the files of `submitted/<student>/<a>/` and
`autograded/<student>/<a>/` with calls that follow links. Student code can leave a
symlink there (to the source notebook, the gradebook, the config, another student's
submission), a hard link, a FIFO that blocks a reader forever, or a device node; so can a
zip or a git checkout that lands in `submitted/`. The grader therefore only ever meets
plain regular files with one link, and directories:

- `foreign_entries(folder)` lists everything else, without following anything (a
  submission holding any of it is refused, and nothing in it is graded);
- `remove_foreign_entries(folder)` deletes it (after the kernel has stopped, before
  nbgrader writes the autograded notebook) and says what it removed;
- `read_plain_file(path, limit)` reads a small file there without following a link or
  waiting on a pipe;
- `copy_unfollowed(source, destination, owner)` copies a folder that someone else can
  still change while it is read (a submission in the exchange's inbound): a check of that
  folder says nothing about what a later copy reads, so the copy itself opens each entry
  without following a link, copies only plain files and directories of `owner`, and
  returns everything else it met. Check and refuse the copy, never the original.
"""
import errno
import os
import pwd
import shutil
import stat
from dataclasses import dataclass

# An entry opened this way is never reached through a link (the open fails with ELOOP),
# a pipe never blocks the opener and a terminal never becomes its controlling one.
_UNFOLLOWED = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Each level of folders being copied holds one descriptor open; a submission is flat.
MAX_DEPTH = 32
CHUNK = 1 << 20


@dataclass(frozen=True)
class Foreign:
    """An entry of a student's folder that the grader does not take: not a plain file
    with one link or a directory, or (for copy_unfollowed) not the student's own."""
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


class Unfit(Exception):
    """A folder `copy_unfollowed` gave up on as a whole; the message says why."""


def copy_unfollowed(source, destination, owner, max_bytes=None):
    """Copy the folder `source` to `destination` (which must not exist yet) without
    following a link at any moment, even if `source` changes while it is read, and return
    the `Foreign` entries met, which are not copied: links, special files, hard links,
    entries not owned by the user id `owner`, entries that changed under the copy. The
    copy holds plain files with one link and directories only, with modes stripped of
    setuid, setgid and sticky bits. Raises `Unfit` past `max_bytes` of data in all or
    MAX_DEPTH levels of folders, leaving `destination` for the caller to delete.

    Every entry is opened relative to its folder's descriptor, so a folder (`source`
    included) swapped for a link once opened changes nothing that is read; kind and owner
    are those of the opened descriptor (fstat), never of a path that may since point
    elsewhere."""
    try:
        top = os.open(source, _UNFOLLOWED | os.O_DIRECTORY)
    except OSError as error:
        return [Foreign(source, _unopened(error, source))]
    found = []
    try:
        status = os.fstat(top)
        kind = _not_ours(status, owner)
        if kind:
            return [Foreign(source, kind)]
        budget = _Budget(max_bytes)
        _copy_folder(top, status, source, destination, owner, found, budget, 0)
    finally:
        os.close(top)
    return sorted(found, key=lambda item: item.path)


def _unopened(error, name, folder=None):
    """What an entry that could not be opened without following anything is."""
    if error.errno == errno.ENOENT:
        return "an entry that vanished while it was copied"
    if error.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENXIO):
        return "an entry the grader cannot read (%s)" % error.strerror
    try:
        status = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return "an entry that changed while it was copied"
    if stat.S_ISLNK(status.st_mode):
        return _link(name, folder)
    if stat.S_ISREG(status.st_mode) and error.errno == errno.ENOTDIR:
        return "a file, not a folder"
    return _kind(name, status) or "an entry that changed while it was copied"


def _link(name, folder):
    try:
        return "a link to %s" % os.readlink(name, dir_fd=folder)
    except OSError:
        return "a link"


def _not_ours(status, owner):
    """Why an entry may not be copied, or None for a plain file or a directory of
    `owner`."""
    mode = status.st_mode
    if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return _kind("", status)
    if stat.S_ISREG(mode) and status.st_nlink > 1:
        # The very inode of a file elsewhere, perhaps one only the instructor may read.
        return "a hard link"
    if status.st_uid != owner:
        # A file the student did not write but could move in (one that root left in their
        # home, say) would be read here with the grader's rights.
        return "an entry of %s" % _user(status.st_uid)
    return None


def _user(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return "user id %d" % uid


def _copy_folder(folder, itself, path, destination, owner, found, budget, depth):
    if depth > MAX_DEPTH:
        raise Unfit("its folders are nested more than %d deep" % MAX_DEPTH)
    os.mkdir(destination, 0o700)
    for name in sorted(os.listdir(folder)):
        entry = os.path.join(path, name)
        try:
            seen = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except OSError as error:
            found.append(Foreign(entry, _unopened(error, name, folder)))
            continue
        kind = _not_ours(seen, owner)
        if kind:
            # Never opened: opening a device node can act on the device.
            found.append(Foreign(entry, _link(name, folder) if stat.S_ISLNK(seen.st_mode)
                                 else kind))
            continue
        try:
            opened = os.open(name, _UNFOLLOWED, dir_fd=folder)
        except OSError as error:
            found.append(Foreign(entry, _unopened(error, name, folder)))
            continue
        try:
            status = os.fstat(opened)
            kind = _not_ours(status, owner)
            if not kind and (status.st_dev, status.st_ino) != (seen.st_dev, seen.st_ino):
                kind = "an entry that changed while it was copied"
            if kind:
                found.append(Foreign(entry, kind))
                continue
            target = os.path.join(destination, name)
            if stat.S_ISDIR(status.st_mode):
                _copy_folder(opened, status, entry, target, owner, found, budget, depth + 1)
            else:
                _copy_file(opened, target, status, budget)
        finally:
            os.close(opened)
    os.chmod(destination, stat.S_IMODE(itself.st_mode) & 0o777 | 0o700)
    os.utime(destination, ns=(itself.st_atime_ns, itself.st_mtime_ns))


class _Budget:
    """The bytes a copy may still write: none counted when `limit` is None."""

    def __init__(self, limit):
        self.limit, self.left = limit, limit

    def spend(self, size):
        if self.limit is not None:
            self.left -= size
            if self.left < 0:
                raise Unfit("it holds more than %d bytes" % self.limit)


def _copy_file(opened, target, status, budget):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(target, flags, 0o600), "wb") as out:
        while True:
            chunk = os.read(opened, CHUNK)
            if not chunk:
                break
            budget.spend(len(chunk))
            out.write(chunk)
        out.flush()
        os.fchmod(out.fileno(), stat.S_IMODE(status.st_mode) & 0o777 | 0o600)
        os.utime(out.fileno(), ns=(status.st_atime_ns, status.st_mtime_ns))
