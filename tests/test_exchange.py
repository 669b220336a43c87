"""nbgrader's exchange with real Unix users: the accounts, and the collect race.

`Machine` makes student accounts on this machine and runs nbgrader's own commands as each
of them, with the config a real course gives them; `students_python` gives them an
nbgrader they can run, wherever the course is cloned. The term that uses them (release,
fetch, submit, collect, grade, feedback, with what students can see of each other) is
test_instructor_walk.py. Here, cheap to run alone (`-k swapping`): one student keeps
swapping links to an instructor-only file into their submission for the whole of several
collects. Needs root (as in CI) or passwordless sudo, to create and delete the users.
"""
import csv
import hashlib
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import threading
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from conftest import ROOT, make
from coursekit.classroom import exchange
from coursekit.course import ASSIGNMENT, COURSE_ID, NOTEBOOK
from coursekit.examples.samples import SAMPLES, course_copy, make_submission

COURSE = COURSE_ID
# They add and remove Unix users: one lane at a time (`pytest -n N`, tests/conftest.py).
pytestmark = pytest.mark.one_lane("unix-users")


@dataclass
class Student:
    role: str
    name: str
    home: str = ""
    uid: int = -1
    # One per submit, in order: inbound folder, timestamp, sha256s, owner (see submit)
    submissions: list = field(default_factory=list)

    @property
    def folder(self):
        return os.path.join(self.home, ASSIGNMENT)

    @property
    def marker(self):
        """What this student writes in a prediction cell: their page must show it."""
        return "guessed by " + self.name

    @property
    def last(self):
        return self.submissions[-1]


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def run(argv, privileges, what, input=None, check=True):
    result = subprocess.run(privileges + argv, input=input, capture_output=True)
    if check and result.returncode != 0:
        raise AssertionError("%s failed (exit %d):\n%s" % (
            what, result.returncode,
            (result.stdout + result.stderr).decode(errors="replace")[-4000:]))
    return result


def privileges():
    """What runs a command as root: nothing as root, sudo when it needs no password."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"],
                                               capture_output=True).returncode == 0:
        return ["sudo", "-n"]
    pytest.fail("test_exchange.py creates Unix users for its students and runs nbgrader as "
                "each of them: run the tests as root (as CI does) or with passwordless sudo.")


def closed_folder(path):
    """The first folder on the way to `path` that other users cannot enter, or None."""
    for folder in [*reversed(Path(path).parents), Path(path)]:
        if folder.is_dir() and not os.stat(folder).st_mode & stat.S_IXOTH:
            return folder
    return None


def base_prefix(python):
    """Where `python` keeps its standard library."""
    return subprocess.run([python, "-c", "import sys; print(sys.base_prefix)"],
                          capture_output=True, text=True, check=True).stdout.strip()


def students_python(folder):
    """A virtualenv at `folder` that every user can run, with nbgrader for the students.

    Where this virtualenv's packages are open to every user, the students' one sees them:
    they run the very nbgrader the instructor does, at no cost. Where they are not (a clone
    in a private home folder, mode 0700), the students get an nbgrader of their own,
    installed from PyPI, as the README tells instructors to provide it. Either way its
    interpreter is one every user can run (pyenv's under /root is not; then a system
    Python of the same version is used)."""
    version = "python%d.%d" % sys.version_info[:2]
    found = [os.path.realpath(sys.executable)] + [
        shutil.which(version, path=where) for where in ("/usr/local/bin", "/usr/bin")]
    for python in filter(None, found):
        if not closed_folder(python) and not closed_folder(base_prefix(python)):
            break
    else:
        pytest.fail("Students need a %s that every user can run (this virtualenv's, %s, is "
                    "where only its owner may go): install Debian's python3 or run the "
                    "tests from a virtualenv built on a system-wide Python."
                    % (version, os.path.realpath(sys.executable)))
    packages = sysconfig.get_paths()["purelib"]
    if not closed_folder(packages):
        subprocess.run([python, "-m", "venv", "--without-pip", folder], check=True)
        site_packages = Path(folder, "lib", version, "site-packages")
        (site_packages / "course.pth").write_text("import site; site.addsitedir(%r)\n"
                                                  % packages)
        return Path(folder, "bin")
    return _own_nbgrader(python, folder)


def _own_nbgrader(python, folder):
    """The students' own virtualenv with this course's nbgrader, built once per test run
    (pip's cache makes a second build quick) and copied nowhere: `folder` is a link to it."""
    from importlib.metadata import version as installed

    built = Path(tempfile.gettempdir(), "udl-students-nbgrader-%s" % installed("nbgrader"))
    if not (built / ".complete").exists():
        shutil.rmtree(built, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(built)], check=True)
        pip = subprocess.run([str(built / "bin" / "python"), "-m", "pip", "install", "--quiet",
                              "--disable-pip-version-check", "nbgrader==%s"
                              % installed("nbgrader")], capture_output=True, text=True)
        if pip.returncode != 0:
            pytest.fail("Could not install nbgrader for the test's students (this clone's "
                        "virtualenv is where they cannot go):\n" + pip.stderr[-3000:])
        for path in [built, *built.rglob("*")]:  # every user runs it, nobody changes it
            if not path.is_symlink():
                path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
        (built / ".complete").touch()
    os.symlink(built, folder)
    return Path(folder, "bin")


def tool(name):
    """An administrator's command (as root, /usr/sbin may not be on PATH)."""
    return shutil.which(name) or os.path.join("/usr/sbin", name)


class Machine:
    """The users this module creates, and running commands as each of them."""

    # useradd and userdel lock /etc/passwd, and fail rather than wait: one at a time in
    # this process (the instructor's walk runs beside the other tests, graded_ahead).
    accounts = threading.Lock()

    def __init__(self, privileges, cleanup):
        self.privileges, self.cleanup = privileges, cleanup
        self.bin = None  # the students' Python (students_python)

    def add_user(self, student):
        for _ in range(10):
            name = "udl_ex_%s_%s" % (secrets.token_hex(3), student.role)
            if not self.exists(name):
                break
        else:
            raise AssertionError("no free user name")
        student.name = name
        with self.accounts:
            result = run([tool("useradd"), "--create-home", "--shell", "/bin/bash", name],
                         self.privileges, "useradd " + name, check=False)
        if self.exists(name):  # ours from now on, whatever useradd said
            self.cleanup.callback(self.remove_user, name)
        assert result.returncode == 0, "useradd %s failed: %s" % (name, result.stderr)
        entry = pwd.getpwnam(name)
        student.home, student.uid = entry.pw_dir, entry.pw_uid
        # Homes are private, as on a shared course machine (Debian's default is 0755 here):
        # a student's home holds the secret that names their feedback in the exchange.
        run(["chmod", "0700", student.home], self.privileges, "chmod " + student.home)

    @staticmethod
    def exists(name):
        try:
            pwd.getpwnam(name)
            return True
        except KeyError:
            return False

    def remove_user(self, name):
        home = pwd.getpwnam(name).pw_dir
        with self.accounts:
            result = run([tool("userdel"), "--remove", name], self.privileges,
                         "userdel " + name, check=False)
        if os.path.isdir(home) and not self.exists(name):
            run(["rm", "-rf", "--one-file-system", home], self.privileges, "rm " + home)
        assert not self.exists(name), "could not delete user %s: %s" % (name, result.stderr)

    def command(self, student, *argv):
        """What runs `argv` as `student`, in their home, with a clean environment."""
        env = ["env", "-i", "-C", student.home, "HOME=" + student.home, "USER=" + student.name,
               "LOGNAME=" + student.name, "PATH=%s:/usr/bin:/bin" % self.bin,
               "LANG=C.UTF-8", "PYDEVD_DISABLE_FILE_VALIDATION=1"]
        return self.privileges + [tool("runuser"), "-u", student.name, "--", *env, *argv]

    def as_student(self, student, *argv, input=None, check=True):
        """Run `argv` as `student`, in their home, with a clean environment."""
        return run(self.command(student, *argv), [],
                   "%s (as %s)" % (" ".join(argv)[:200], student.role), input=input,
                   check=check)

    def nbgrader(self, student, *args, check=True):
        return self.as_student(student, str(self.bin / "python"), "-m", "nbgrader", *args,
                               check=check)

    def write(self, student, path, data):
        self.as_student(student, "sh", "-c", 'mkdir -p "$(dirname "$1")" && cat > "$1"',
                        "sh", path, input=data)

    def read(self, student, path):
        return self.as_student(student, "cat", path).stdout

    def python(self, student, script, *args):
        return json.loads(self.as_student(student, str(self.bin / "python"), "-c", script,
                                          *args).stdout)


# Run as a student: {path under the folder: sha256} of every file ({} when it is missing).
TREE = """
import hashlib, json, os, sys
top, found = sys.argv[1], {}
for folder, _, files in os.walk(top):
    for name in files:
        path = os.path.join(folder, name)
        with open(path, "rb") as handle:
            found[os.path.relpath(path, top)] = hashlib.sha256(handle.read()).hexdigest()
print(json.dumps(found))
"""

# Run as a student: what they can do to the exchange and to the other students' work.
PROBE = """
import glob, json, os, sys
given, seen = json.loads(sys.argv[1]), {}

def attempt(what, action):
    try:
        action()
        seen[what] = "allowed"
    except PermissionError:
        seen[what] = "denied"
    except OSError as error:
        seen[what] = type(error).__name__

def rename_course():
    os.rename(given["course"], given["course"] + ".moved")
    os.rename(given["course"] + ".moved", given["course"])  # put back at once

def replace_release():
    open(os.path.join(given["outbound"], "11_3_Batch_Normalization.ipynb"), "wb").close()

attempt("list inbound", lambda: os.listdir(given["inbound"]))
attempt("list feedback", lambda: os.listdir(given["feedback"]))
attempt("rename the course folder", rename_course)
attempt("replace the release", replace_release)
for other in given["others"]:
    name = other["name"]
    attempt(name + ": list home", lambda: os.listdir(other["home"]))
    attempt(name + ": read notebook", lambda: open(other["notebook"], "rb").read())
    attempt(name + ": read secret", lambda: open(other["secret"], "rb").read())
    seen[name + ": submissions found"] = glob.glob(os.path.join(given["inbound"], name + "+*"))
print(json.dumps(seen))
"""


# Run as a student: a folder in the inbound that `submit` would not have made, named for
# the student argv[2], dated after every real one, holding a copy of the notebook argv[3]
# and, when argv[4] is given, a link to it.
FORGE = """
import json, os, shutil, sys
inbound, student, notebook, target = sys.argv[1:5]
when = "2099-01-01 00:00:00.000000 UTC"
folder = os.path.join(inbound, "%s+bn+%s+forged" % (student, when))
os.mkdir(folder)
shutil.copy(notebook, os.path.join(folder, "11_3_Batch_Normalization.ipynb"))
with open(os.path.join(folder, "timestamp.txt"), "w") as handle:
    handle.write(when)
if target:
    os.symlink(target, os.path.join(folder, "notes.txt"))
print(json.dumps(os.path.basename(folder)))
"""


def answers(student, submission, release):
    """The notebook `student` hands in as `submission`, from the release they fetched."""
    if submission == "blank":
        return release
    cells = dict(SAMPLES[submission](), prediction_plain='prediction_plain = "%s"'
                 % student.marker)
    return nbformat.writes(make_submission(
        cells, release=nbformat.reads(release.decode(), as_version=4))).encode()


def submit(machine, student, trip, notebook):
    """`student` hands in `notebook` (bytes); records what reached the inbound."""
    machine.write(student, os.path.join(student.folder, NOTEBOOK), notebook)
    before = set(os.listdir(trip.inbound))
    machine.nbgrader(student, "submit", ASSIGNMENT)
    new = sorted(set(os.listdir(trip.inbound)) - before)
    assert len(new) == 1 and new[0].startswith(student.name + "+%s+" % ASSIGNMENT), new
    folder = os.path.join(trip.inbound, new[0])
    with open(os.path.join(folder, "timestamp.txt")) as handle:
        timestamp = handle.read()
    with open(os.path.join(folder, NOTEBOOK), "rb") as handle:
        arrived = sha256(handle.read())
    student.submissions.append({"entry": new[0], "timestamp": timestamp, "notebook": arrived,
                                "handed in": sha256(notebook), "owner": os.stat(folder).st_uid})


def now_utc():
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def committed_points():
    """{sample: (points, possible)}, as the committed example class's grade table has them."""
    with open(ROOT / "grades.csv", newline="") as handle:
        return {row["student"]: (float(row["score"]), float(row["max_score"]))
                for row in csv.DictReader(handle)}


# Run as a student while the instructor collects: an early plain submission, then a later
# one whose file notes.txt, folder extra/ and (now and then) whole folder the student keeps
# swapping for links to the instructor's file argv[3] and its folder, and back, until its
# stdin closes. When a collect marks the folder (a chmod of its untouched figures/ changes
# that folder's ctime: the moment a check has passed), it holds the links for a second.
# Says "ready" once swapping, then prints how many swaps it made and marks it saw.
SWAPPER = """
import json, os, sys, threading, time
inbound, student, secret = sys.argv[1:4]
instructor = os.path.dirname(secret)

def hand_in(when, tag):
    folder = os.path.join(inbound, "%s+bn+%s+%s" % (student, when, tag))
    os.makedirs(os.path.join(folder, "extra"))
    os.makedirs(os.path.join(folder, "figures"))
    for name, text in (("11_3_Batch_Normalization.ipynb", '{"cells": []}'),
                       ("timestamp.txt", when), ("notes.txt", "plain notes"),
                       (os.path.join("extra", "data.txt"), "plain data"),
                       (os.path.join("figures", "plot.txt"), "plain plot")):
        with open(os.path.join(folder, name), "w") as handle:
            handle.write(text)
    return folder

hand_in("2026-01-01 00:00:00.000000 UTC", "early")
folder = hand_in("2099-06-01 00:00:00.000000 UTC", "race")
notes, extra = os.path.join(folder, "notes.txt"), os.path.join(folder, "extra")
# Hidden names: collect's glob never lists them.
new_notes, extra_away = os.path.join(folder, ".notes"), os.path.join(folder, ".extra")
away = os.path.join(inbound, ".race")
figures = os.path.join(folder, "figures")

def link_notes():
    os.symlink(secret, new_notes)
    os.rename(new_notes, notes)

def plain_notes():
    with open(new_notes, "w") as handle:
        handle.write("plain notes")
    os.rename(new_notes, notes)

def swap_folder(path, aside, target, hold=lambda: None):
    os.rename(path, aside)
    os.symlink(target, path)
    hold()
    os.unlink(path)
    os.rename(aside, path)

stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
swaps = marks = rounds = 0
mark = os.stat(figures).st_ctime_ns
while not stop.is_set():
    rounds += 1
    end = time.monotonic() + 0.005
    while time.monotonic() < end:  # blind: a link whenever collect happens to look
        link_notes()
        plain_notes()
        swap_folder(extra, extra_away, instructor)
        swaps += 2
    if rounds % 10 == 0:
        swap_folder(folder, away, instructor)
        swaps += 1
    end = time.monotonic() + 0.005
    while time.monotonic() < end:  # quiet and plain, watching for the mark of a check
        if os.stat(figures).st_ctime_ns != mark:
            marks += 1
            link_notes()
            swap_folder(extra, extra_away, instructor, hold=lambda: time.sleep(1))
            plain_notes()
            mark = os.stat(figures).st_ctime_ns
            break
    if rounds == 1:
        print("ready", flush=True)
print(json.dumps({"swaps": swaps, "marks": marks}), flush=True)
"""


@pytest.fixture(scope="module")
def race(tmp_path_factory):
    """One student who keeps swapping links into their submission in the inbound, and an
    instructor's file that only the instructor (root in CI) may read, marked."""
    with ExitStack() as cleanup:
        machine = Machine(privileges(), cleanup)
        top = tempfile.mkdtemp(prefix="udl-exchange-race-", dir="/tmp")
        cleanup.callback(run, ["rm", "-rf", "--one-file-system", top], machine.privileges,
                         "rm " + top)
        os.chmod(top, 0o755)
        machine.bin = students_python(os.path.join(top, "python"))
        student = Student("racer", "")
        machine.add_user(student)
        exchange_root = exchange.create_root(os.path.join(top, "exchange"))
        inbound = os.path.join(exchange_root, COURSE, "inbound")
        os.makedirs(inbound)
        os.chmod(os.path.dirname(inbound), 0o755)
        os.chmod(inbound, 0o733)  # as nbgrader's release_assignment makes it
        instructor = os.path.join(top, "instructor")
        os.mkdir(instructor, 0o700)
        secret = os.path.join(instructor, "secret.txt")
        marker = "instructor only " + secrets.token_hex(16)
        with open(os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as handle:
            handle.write(marker)
        yield SimpleNamespace(machine=machine, student=student, exchange=exchange_root,
                              inbound=inbound, secret=secret, marker=marker.encode(),
                              root=course_copy(tmp_path_factory.mktemp("race-course")))


def marked_or_linked(folder, marker):
    """Every path under `folder` that holds `marker` or is a link (never followed)."""
    found = []
    for where, folders, files in os.walk(folder):
        for name in folders + files:
            path = os.path.join(where, name)
            if os.path.islink(path):
                found.append(path + " (a link)")
            elif name in files:
                with open(path, "rb") as handle:
                    if marker in handle.read():
                        found.append(path)
    return found


def test_a_student_swapping_links_in_during_collect_gets_no_instructor_byte(race):
    swapper = subprocess.Popen(
        race.machine.command(race.student, str(race.machine.bin / "python"), "-c", SWAPPER,
                             race.inbound, race.student.name, race.secret),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert swapper.stdout.readline() == b"ready\n", swapper.stderr.read()[-2000:]
        logs = []
        for _ in range(3):
            shutil.rmtree(race.root / "submitted", ignore_errors=True)
            logs.append(make(race.root, "collect", "EXCHANGE=" + race.exchange))
            # The whole course: submitted/, and any copy collect left behind.
            assert marked_or_linked(race.root, race.marker) == [], logs[-1].stderr[-3000:]
            collected = race.root / "submitted" / race.student.name / ASSIGNMENT
            assert (collected / "timestamp.txt").read_text() in (
                "2026-01-01 00:00:00.000000 UTC", "2099-06-01 00:00:00.000000 UTC")
            assert [path.name for path in race.root.iterdir()
                    if path.name.startswith(".collect-")] == []
    finally:
        swapper.stdin.close()
        swaps = swapper.stdout.read()
        swapper.wait(timeout=60)
    assert swapper.returncode == 0, swapper.stderr.read()[-2000:]
    swaps = json.loads(swaps)
    assert swaps["swaps"] > 1000  # it swapped for the whole of each collect
    # Collect only reads the student's folder: it gives no signal to swap on.
    assert swaps["marks"] == 0
    # Only the submission being swapped is ever set aside; the plain one never is.
    said = "\n".join(log.stdout + log.stderr for log in logs)
    assert "+early was set aside" not in said, said[-3000:]
