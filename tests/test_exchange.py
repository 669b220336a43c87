"""nbgrader's exchange, end to end, with real Unix users.

One round trip, run once for the module: an exchange folder and three student accounts on
this machine. The instructor releases; each student fetches, edits and submits (one on
time, one twice, one after the due date), as themselves, with nbgrader's own commands and
the config a real course gives them; the instructor collects, runs `make grade` and
releases the feedback; each student fetches theirs. The tests then read what happened:
who got which grade and which page, what was late, what students could see of each other,
and that nothing a student handed in was changed or lost. Apart from it (and cheap to run
alone, `-k swapping`), one more student keeps swapping links to an instructor-only file
into their submission for the whole of several collects. Needs root (as in CI) or
passwordless sudo, to create and delete the users.
"""
import csv
import hashlib
import json
import os
import pwd
import re
import secrets
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from conftest import ROOT, checksums, make, nbgrader
from coursekit import exchange
from coursekit.course import ASSIGNMENT, COURSE_ID, NOTEBOOK, gradebook_url
from coursekit.samples import SAMPLES, course_copy, make_submission

COURSE = COURSE_ID
PAGE = NOTEBOOK.replace(".ipynb", ".html")
# Who hands in what, in order (samples of coursekit.samples; "blank" is the untouched
# release). The three last submissions have different points, so a page's score names it.
HANDS_IN = {"ontime": ("reference",), "twice": ("blank", "partial"), "late": ("seed",)}


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
        result = run([tool("userdel"), "--remove", name], self.privileges, "userdel " + name,
                     check=False)
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


@pytest.fixture(scope="module")
def trip(tmp_path_factory):
    with ExitStack() as cleanup:
        yield round_trip(tmp_path_factory, Machine(privileges(), cleanup), cleanup)


def round_trip(tmp_path_factory, machine, cleanup):
    trip = SimpleNamespace(students={role: Student(role, "") for role in HANDS_IN})
    # Outside pytest's folder, which other users cannot enter.
    top = tempfile.mkdtemp(prefix="udl-exchange-test-", dir="/tmp")
    cleanup.callback(run, ["rm", "-rf", "--one-file-system", top], machine.privileges,
                     "rm " + top)
    os.chmod(top, 0o755)
    machine.bin = students_python(os.path.join(top, "python"))
    trip.exchange = exchange.create_root(os.path.join(top, "exchange"))
    trip.course = os.path.join(trip.exchange, COURSE)
    trip.inbound = os.path.join(trip.course, "inbound")
    at_exchange = "EXCHANGE=" + trip.exchange
    root = trip.root = course_copy(tmp_path_factory.mktemp("exchange-course"))

    for student in trip.students.values():
        machine.add_user(student)
        machine.write(student, os.path.join(student.home, ".jupyter", "nbgrader_config.py"),
                      exchange.student_config(trip.exchange).encode())
    reach = machine.as_student(trip.students["ontime"], str(machine.bin / "python"), "-c",
                               "import importlib.util as u; assert u.find_spec('nbgrader')",
                               check=False)
    if reach.returncode:
        pytest.fail("A student cannot find nbgrader with %s: %s" % (
            machine.bin / "python", reach.stderr.decode(errors="replace")[-1000:]))

    # The instructor releases.
    make(root, "release-assignment", at_exchange)
    trip.release = (root / "release" / ASSIGNMENT / NOTEBOOK).read_bytes()

    # Each student fetches, and hands in; the due date falls before the late one's submit.
    trip.fetched = {}
    for student in trip.students.values():
        machine.nbgrader(student, "fetch_assignment", ASSIGNMENT)
        trip.fetched[student.role] = machine.read(student, os.path.join(student.folder,
                                                                         NOTEBOOK))
    for role in ("ontime", "twice", "late"):
        student = trip.students[role]
        if role == "late":
            trip.due = now_utc()
            nbgrader(root, "db", "assignment", "add", ASSIGNMENT, "--duedate=" + trip.due)
        for submission in HANDS_IN[role]:
            submit(machine, student, trip, answers(student, submission, trip.fetched[role]))
    # Two forgeries: ontime hands in under twice's name; late hands in a link to the
    # solutions.
    trip.forged = {}
    for forger, named, target in (("ontime", "twice", ""),
                                  ("late", "late", str(root / "source" / ASSIGNMENT / NOTEBOOK))):
        trip.forged[forger] = machine.python(
            trip.students[forger], FORGE, trip.inbound, trip.students[named].name,
            os.path.join(trip.students[forger].folder, NOTEBOOK), target)
    trip.inbound_submitted = checksums(trip.inbound)
    trip.homes_submitted = {
        role: machine.python(student, TREE, student.home) for role, student in
        trip.students.items()}

    # The instructor collects, grades and releases the feedback.
    trip.collect = make(root, "collect", at_exchange)
    trip.collected = checksums(root / "submitted")
    trip.grade = make(root, "grade", check=False)
    trip.graded = checksums(root / "submitted")
    make(root, "release-feedback", at_exchange)

    # Each student fetches their feedback; one also asks for another's.
    for student in trip.students.values():
        machine.nbgrader(student, "fetch_feedback", ASSIGNMENT)
    machine.nbgrader(trip.students["late"], "fetch_feedback", ASSIGNMENT,
                     "--student=" + trip.students["ontime"].name)
    trip.feedback = {}
    for role, student in trip.students.items():
        pages = machine.python(student, TREE, os.path.join(student.folder, "feedback"))
        trip.feedback[role] = {path: machine.read(student, os.path.join(
            student.folder, "feedback", path)) for path in pages}

    # What each student can reach of the others' work.
    cache = os.path.join(".local", "share", "jupyter", "nbgrader_cache", COURSE)
    trip.probes = {}
    for role, student in trip.students.items():
        others = [{"name": other.name, "home": other.home,
                   "notebook": os.path.join(other.folder, NOTEBOOK),
                   "secret": os.path.join(other.home, cache,
                                          other.last["entry"].rsplit("+", 1)[0],
                                          "submission_secret.txt")}
                  for other in trip.students.values() if other is not student]
        trip.probes[role] = machine.python(student, PROBE, json.dumps({
            "course": trip.course, "inbound": trip.inbound,
            "outbound": os.path.join(trip.course, "outbound", ASSIGNMENT),
            "feedback": os.path.join(trip.course, "feedback"), "others": others}))

    # Everything as it is at the end.
    trip.inbound_after = checksums(trip.inbound)
    trip.submitted_after = checksums(root / "submitted")
    trip.homes_after = {role: machine.python(student, TREE, student.home)
                        for role, student in trip.students.items()}
    return trip


def committed_points():
    """{sample: (points, possible)}, as the committed example class's grade table has them."""
    with open(ROOT / "grades.csv", newline="") as handle:
        return {row["student"]: (float(row["score"]), float(row["max_score"]))
                for row in csv.DictReader(handle)}


def grade_table(trip):
    with open(trip.root / "grades.csv", newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


def gradebook_submissions(trip):
    from nbgrader.api import Gradebook

    found = {}
    with Gradebook(gradebook_url(trip.root)) as gradebook:
        for student in trip.students.values():
            submission = gradebook.find_submission(ASSIGNMENT, student.name)
            found[student.role] = (submission.score, submission.total_seconds_late)
    return found


def test_every_student_fetches_the_release(trip):
    for role, fetched in trip.fetched.items():
        assert fetched == trip.release, role


def test_every_submission_reaches_the_inbound_under_its_students_name(trip):
    entries = sorted([submission["entry"] for student in trip.students.values()
                      for submission in student.submissions]
                     + list(trip.forged.values()))
    assert sorted({path.split("/")[0] for path in trip.inbound_after}) == entries
    for student in trip.students.values():
        assert len(student.submissions) == len(HANDS_IN[student.role])
        for submission in student.submissions:
            assert submission["owner"] == student.uid, submission
            assert submission["notebook"] == submission["handed in"], submission
    twice = trip.students["twice"]
    first, second = twice.submissions
    assert first["notebook"] == sha256(trip.release)  # the untouched release first
    assert second["notebook"] != first["notebook"]
    assert first["timestamp"] < second["timestamp"]


def test_collect_takes_each_students_last_submission(trip):
    submitted = trip.root / "submitted"
    assert sorted(os.listdir(submitted)) == sorted(s.name for s in trip.students.values())
    for student in trip.students.values():
        folder = submitted / student.name / ASSIGNMENT
        assert sha256((folder / NOTEBOOK).read_bytes()) == student.last["notebook"]
        assert (folder / "timestamp.txt").read_text() == student.last["timestamp"]


def test_collect_sets_aside_what_a_student_could_not_have_handed_in(trip):
    log = trip.collect.stdout + trip.collect.stderr
    ontime, twice, late = (trip.students[role].name for role in ("ontime", "twice", "late"))
    assert "%s: %s in the exchange was set aside, not collected: it belongs to %s, not %s" % (
        twice, trip.forged["ontime"], ontime, twice) in log, log[-3000:]
    assert "%s: %s in the exchange was set aside, not collected: it holds a link" % (
        late, trip.forged["late"]) in log, log[-3000:]
    # Nothing of the instructor's reached a student's folder.
    source = sha256((trip.root / "source" / ASSIGNMENT / NOTEBOOK).read_bytes())
    assert source not in trip.collected.values()


def test_make_grade_grades_the_class_without_a_complaint(trip):
    said = "\n".join(line for line in (trip.grade.stdout + trip.grade.stderr).splitlines()
                     if "Warning" not in line and not line.startswith(" "))
    assert "NEEDS ATTENTION" not in said, said[-3000:]
    assert trip.grade.returncode == 0, said[-3000:]


def test_each_student_gets_the_points_of_what_they_handed_in_last(trip):
    expected = committed_points()
    scores = {hands_in[-1]: expected[hands_in[-1]][0] for hands_in in HANDS_IN.values()}
    assert len(set(scores.values())) == len(scores)  # a score names the submission
    table = grade_table(trip)
    gradebook = gradebook_submissions(trip)
    for role, hands_in in HANDS_IN.items():
        name = trip.students[role].name
        assert gradebook[role][0] == expected[hands_in[-1]][0], role
        assert float(table[name]["score"]) == expected[hands_in[-1]][0], role


def test_only_the_submission_after_the_due_date_is_late(trip):
    gradebook = gradebook_submissions(trip)
    table = grade_table(trip)
    for role, student in trip.students.items():
        late = role == "late"
        for submission in student.submissions:
            assert (submission["timestamp"] > trip.due) == late, (role, submission)
        assert (gradebook[role][1] > 0) == late, (role, gradebook[role])
        assert bool(table[student.name]["late"]) == late, table[student.name]


def score_of(page):
    """The notebook's total score on a feedback page, as the results atop it carry it."""
    from bs4 import BeautifulSoup

    results = BeautifulSoup(page, features="html.parser").select_one("#results")
    return float(results["data-score"]), float(results["data-max-score"])


def test_each_student_fetches_exactly_their_own_feedback(trip):
    # The late student also asked for the on-time one's: still one page, their own.
    expected = committed_points()
    for role, student in trip.students.items():
        pages = trip.feedback[role]
        # One page, filed under the time of the submission that was graded.
        assert list(pages) == [os.path.join(student.last["timestamp"], PAGE)], pages
        page = next(iter(pages.values()))
        course_page = trip.root / "feedback" / student.name / ASSIGNMENT / PAGE
        assert page == course_page.read_bytes(), role
        text = page.decode()
        assert student.marker in text, role
        assert score_of(text) == expected[HANDS_IN[role][-1]], role
        for other in trip.students.values():
            if other is not student:
                assert other.name not in text, (role, other.role)


def test_students_cannot_reach_each_others_work_or_the_course(trip):
    for role, seen in trip.probes.items():
        for what, outcome in seen.items():
            if what.endswith("submissions found"):
                assert outcome == [], (role, what)
            else:
                assert outcome == "denied", (role, what, outcome)
        assert len(seen) == 4 + 4 * (len(trip.students) - 1)


def test_nothing_a_student_handed_in_is_modified_or_lost(trip):
    # Every submission stays in the inbound as it arrived, the twice-submitted first one too.
    assert trip.inbound_after == trip.inbound_submitted
    for student in trip.students.values():
        for submission in student.submissions:
            key = os.path.join(submission["entry"], NOTEBOOK)
            assert trip.inbound_after[key] == submission["notebook"]
    # What collect copied into the course is what grading and releasing left.
    assert trip.collected == trip.graded == trip.submitted_after
    # The students' own files: only the fetched feedback is new.
    for role, after in trip.homes_after.items():
        new = os.path.join(ASSIGNMENT, "feedback") + os.sep
        assert {path: digest for path, digest in after.items()
                if not path.startswith(new)} == trip.homes_submitted[role], role


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
