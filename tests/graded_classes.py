"""The two classes the full suite grades, each once per run, side by side on the two cores.

Grading is what the suite's time goes to (each notebook costs about twice the floor), so
every test that reads a graded sample, cheat or hostile case reads it from here
(conftest's `graded_classes`), and a test that must change a course copies one.

- The sample class: the samples of coursekit.examples.samples (`SAMPLE_CLASS`: every slip, and the
  answer categories a cheat's twin keeps) and the cheats of tests/cheats.py, graded as
  `make autograde` does (coursekit.grading.parallel, through the course's config), then feedback
  and the grade table. The samples `blank` and
  `reference` are the cheats' controls: the untouched release and the reference solution
  are graded once for both.
- The hostile class: the cases of tests/hostile.py, graded by plain `nbgrader autograde`
  as an instructor would, then graded again (all but the cases that take long, which
  gain nothing from it) to show a second grading gives the same grades. `zz_reference`
  comes last, so an honest notebook runs after every hostile one.

The hostile class is a class of its own: its cases reach for the other students' folders
and the gradebook, its memory bombs and loops would slow the honest notebooks around them,
and its grade table is meant to flag them all.

The classes grade in the background (`Background`), from the run's first test on, while
every test that does not read them runs beside them (conftest orders those first): the
modules that wait on one process (a browser, a server, Unix users, the seeds of the
stability tests) fill what the two gradings leave of the cores.
"""
import concurrent.futures
import contextlib
import csv
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

import cheats
import hostile
from conftest import BACKGROUND, checksums
from coursekit.course import ASSIGNMENT, NOTEBOOK, gradebook_url
from coursekit.classroom.report import points_by_student
from coursekit.examples.samples import (SAMPLES, course_copy, nbgrader_env, sample_submission,
                                        submit, submission_path)

# The cheats' honest controls, among the samples: the untouched release and the reference.
CONTROLS = ("blank", "reference")
# The answer categories graded here are those a cheat's twin keeps (tests/cheats.py). Every
# category's points and message, reached through the grader's own request and judge, are
# proven without a kernel for two secrets (test_checks_stability.py); what a kernel adds
# is the same for every answer, and these show it.
GRADED_VARIANTS = tuple(sorted({twin.sample for twin in cheats.TWIN_CHEATS.values()
                                if twin.sample.startswith("variant_")}))
SAMPLE_CLASS = tuple(student for student in SAMPLES
                     if not student.startswith("variant_") or student in GRADED_VARIANTS)
# Far above the slowest honest cell (about a second); none of the cheats loops.
SAMPLE_SETTINGS = ["--set", "Execute.timeout=30"]
# Far above the slowest honest cell (about 1 s), and room for the memory bombs to reach
# the 4 GiB allowance first: filling /tmp (RAM) takes about 13 s from the kernel's start
# on a quiet machine of this kind, and took over 20 s (both memory tests timed out) with
# the sample class grading beside it and other work on the cores. Only the loops wait
# for the timeout.
HOSTILE_TIMEOUT = ["--Execute.timeout=30"]


class Listener:
    """A TCP server on loopback that records every connection it receives."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.contacts = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, address = self.server.accept()
            except OSError:
                return
            self.contacts.append(address)
            connection.close()


class Graded(dict):
    """What grading a class left; a short repr keeps failure reports readable."""

    def __repr__(self):
        return "<the class graded at %s>" % self["root"]


@dataclass
class GradedClasses:
    samples: Graded
    hostile: Graded
    seconds: dict


class Stopped(Exception):
    """The run ended before the classes were graded."""


class Commands:
    """Runs the classes' commands, each in a process group of its own, so that a run that
    ends early (a failure under -x, Ctrl-C) stops them instead of leaving them grading."""

    def __init__(self):
        self.lock = threading.Lock()
        self.running = set()
        self.stopped = False

    def run(self, command, cwd, env=None, timeout=None):
        with self.lock:
            if self.stopped:
                raise Stopped()
            process = subprocess.Popen(command, cwd=cwd, env=env or nbgrader_env(), text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True)
            self.running.add(process)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill(process)
            process.communicate()
            raise
        finally:
            with self.lock:
                self.running.discard(process)
        if self.stopped:
            raise Stopped()
        return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)

    def nbgrader(self, root, *args, check=True):
        result = self.run([str(Path(sys.executable).parent / "nbgrader"), *args], root)
        if check and result.returncode != 0:
            raise AssertionError("nbgrader %s failed:\n%s" % (" ".join(args),
                                                              result.stderr[-4000:]))
        return result

    # The sample class took 30 minutes with the load average at 10 (other work on the
    # cores): the timeout only stops a grading that hangs.
    def parallel(self, root, *args, timeout=3600):
        return self.run([sys.executable, "-m", "coursekit.grading.parallel", ASSIGNMENT, *args],
                        root, env=dict(nbgrader_env(), PYTHONPATH=str(root)), timeout=timeout)

    def stop(self):
        with self.lock:
            self.stopped = True
            running = list(self.running)
        for process in running:
            self._kill(process)

    @staticmethod
    def _kill(process):
        # The group holds nbgrader's kernels and sandboxes as well as nbgrader itself.
        for sent in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sent)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)


def grades_of(root):
    return points_by_student(gradebook_url(root))


def protected_state(root):
    """Content and mode of what a link left by student code could lead the grader to."""
    paths = [root / "nbgrader_config.py", root / "gradebook.db", Path(hostile.ROOT_ONLY),
             *sorted((root / "source").rglob("*.ipynb")),
             *sorted((root / "submitted").rglob("*.ipynb"))]
    return {str(path): (path.stat().st_mode,
                        None if path.name == "gradebook.db" else path.read_bytes())
            for path in paths}


def released_course(folder, commands):
    root = course_copy(folder)
    commands.nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root


def grade_sample_class(folder, commands):
    root = released_course(folder, commands)
    release = nbformat.read(root / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    for student in SAMPLE_CLASS:
        submit(root, student, sample_submission(student))
    for student, build in cheats.CHEATS.items():
        submit(root, student, build(release))
    seconds, step = {}, time.monotonic()
    autograde = commands.parallel(root, "--jobs", "1", *SAMPLE_SETTINGS)
    (root / "autograde.log").write_text(autograde.stdout + autograde.stderr)  # to read later
    seconds["autograde"], step = time.monotonic() - step, time.monotonic()
    feedback = commands.nbgrader(root, "generate_feedback", ASSIGNMENT, "--force",
                                 check=False)
    seconds["feedback"], step = time.monotonic() - step, time.monotonic()
    report = commands.run([sys.executable, "-m", "coursekit.classroom.report"], root,
                          env=dict(nbgrader_env(), PYTHONPATH=str(root)), timeout=300)
    seconds["report"] = time.monotonic() - step
    table = {}
    if (root / "grades.csv").exists():
        with open(root / "grades.csv", newline="") as handle:
            table = {row["student"]: row for row in csv.DictReader(handle)}
    return Graded(root=root, autograde=autograde, feedback=feedback, report=report,
                  grades=grades_of(root), table=table, seconds=seconds)


def grade_hostile_class(folder, commands):
    root = released_course(folder, commands)
    listener = Listener()
    for student, build in hostile.CASES.items():
        content = build(listener.port)
        path = submission_path(root, student)
        path.parent.mkdir(parents=True, exist_ok=True)
        if content is None:
            (path.parent / "my_notes.txt").write_text("I forgot to upload the notebook")
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            nbformat.write(content, path)
        for name, target in hostile.SUBMITTED_LINKS.get(student, {}).items():
            os.symlink(target, path.parent / name)
    root_only = Path(hostile.ROOT_ONLY)
    root_only.write_text("only root may read this")
    root_only.chmod(0o600)
    fixed = {name: checksums(root / name) for name in ("submitted", "source", "release")}
    fixed["protected"] = protected_state(root)
    seconds, step = {}, time.monotonic()
    first = commands.nbgrader(root, "autograde", ASSIGNMENT, "--force", *HOSTILE_TIMEOUT,
                              check=False)
    grades = grades_of(root)
    seconds["autograde"], step = time.monotonic() - step, time.monotonic()
    feedback = commands.nbgrader(root, "generate_feedback", ASSIGNMENT, "--force",
                                 check=False)
    seconds["feedback"], step = time.monotonic() - step, time.monotonic()
    second = commands.nbgrader(
        root, "autograde", ASSIGNMENT, "--force", *HOSTILE_TIMEOUT,
        "--CourseDirectory.student_id_exclude=" + ",".join(hostile.GRADED_ONCE), check=False)
    regrades = grades_of(root)
    seconds["second autograde"], step = time.monotonic() - step, time.monotonic()
    listener.server.close()
    # What coursekit.grading.parallel prints of the student whose id is full of control
    # characters, graded alone (the autograded notebook is the same as before).
    odd = commands.parallel(root, "--jobs", "1", "--student", "odd*", "--set",
                            "Execute.timeout=20", timeout=300)
    seconds["parallel, one student"] = time.monotonic() - step
    return Graded(root=root, listener=listener, fixed=fixed, first=first, second=second,
                  grades=grades, regrades=regrades, feedback=feedback, odd_parallel=odd,
                  seconds=seconds)


class Ahead:
    """Work computed piece by piece in the order given, by each thread that calls `run`:
    `result(name)` computes a piece whose turn has not come in the caller (and drops it
    from the queue), and while it waits for a piece begun elsewhere computes the next
    pieces itself, so nothing is computed twice or waited on in vain."""

    def __init__(self, waiting):
        self.lock = threading.Lock()
        self.waiting = list(waiting)  # (name, function of one argument)
        self.begun = {}               # name: Future
        self.finished = {}            # name: time.monotonic() when it was done

    def _next(self):
        """The next piece of the queue, marked begun: (its function, its Future)."""
        name, function = self.waiting.pop(0)
        future = self.begun[name] = concurrent.futures.Future()
        return name, function, future

    def _compute(self, name, function, future, argument):
        try:
            future.set_result(function(argument))
        except BaseException as error:  # raised again where the result is asked for
            future.set_exception(error)
        finally:
            self.finished[name] = time.monotonic()

    def run(self, argument, commands=None):
        """Computes the queue; with `commands` (Commands), conftest's command helpers run
        through it in this thread, and nothing more begins once it is stopped."""
        BACKGROUND.commands = commands
        try:
            while True:
                with self.lock:
                    if (commands is not None and commands.stopped) or not self.waiting:
                        return
                    taken = self._next()
                self._compute(*taken, argument)
        finally:
            BACKGROUND.commands = None

    def result(self, name, function, argument):
        while True:
            with self.lock:
                future, taken = self.begun.get(name), None
                if future is None:
                    self.waiting = [(n, f) for n, f in self.waiting if n != name]
                elif not future.done() and self.waiting:
                    taken = self._next()
            if future is None:
                return function(argument)
            if taken is None:
                return future.result()
            self._compute(*taken, argument)


class Background:
    """Both classes, each graded by one process, the two side by side, in a thread of
    their own: `result()` waits for them, `stop()` ends what is still running.

    Once one class is graded, a core is free for the rest of the run: two more threads
    then compute, piece by piece, the fixtures made with conftest's `graded_ahead` that
    this run's tests use (gradings in course copies of their own), in the order the tests
    will ask for them (`Ahead`); a test that asks for a piece still under way computes the
    next pieces meanwhile."""

    def __init__(self, tmp_path_factory, ahead=()):
        self.started = time.monotonic()
        self.commands = Commands()
        self.pool = concurrent.futures.ThreadPoolExecutor(4)
        self.done = {}  # class: seconds from the start until it was graded
        self.samples = self.pool.submit(self._timed, "sample class", grade_sample_class,
                                        tmp_path_factory.mktemp("sample_class"))
        self.hostile = self.pool.submit(self._timed, "hostile class", grade_hostile_class,
                                        tmp_path_factory.mktemp("hostile_class"))
        self.graded = None
        self.queue = Ahead(ahead)
        for _ in range(2):
            self.pool.submit(self._ahead_once_a_class_is_graded, tmp_path_factory)

    def _timed(self, name, grade, folder):
        try:
            return grade(folder, self.commands)
        finally:
            self.done[name] = time.monotonic() - self.started

    def _ahead_once_a_class_is_graded(self, tmp_path_factory):
        concurrent.futures.wait([self.samples, self.hostile],
                                return_when=concurrent.futures.FIRST_COMPLETED)
        self.queue.run(tmp_path_factory, self.commands)

    def ahead(self, name, function, tmp_path_factory):
        return self.queue.result(name, function, tmp_path_factory)

    def result(self):
        if self.graded is None:
            self.graded = GradedClasses(self.samples.result(), self.hostile.result(),
                                        dict(self.done))
            # Beside the screenshots, for whoever times the suite (docs/scale.md).
            from conftest import ARTIFACTS
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "graded-classes.txt").write_text(summary(self.graded).strip() + "\n")
        return self.graded

    def stop(self):
        self.commands.stop()
        self.pool.shutdown(wait=True)
        if self.queue.finished:  # when each piece of work ahead was done, for docs/scale.md
            from conftest import ARTIFACTS
            ARTIFACTS.mkdir(exist_ok=True)
            with open(ARTIFACTS / "graded-classes.txt", "a") as log:
                log.write("work ahead done: %s\n" % ", ".join(
                    "%s %.0f s after the classes began" % (name, done - self.started)
                    for name, done in sorted(self.queue.finished.items(),
                                             key=lambda item: item[1])))


def summary(graded):
    return ("\ngraded the sample class (%d notebooks: %s) and the hostile class (%d: %s) "
            "side by side, done %s" % (
                len(SAMPLE_CLASS) + len(cheats.CHEATS),
                ", ".join("%s %.0f s" % item for item in graded.samples["seconds"].items()),
                len(hostile.CASES),
                ", ".join("%s %.0f s" % item for item in graded.hostile["seconds"].items()),
                " and ".join("%s %.0f s after it began" % item
                             for item in sorted(graded.seconds.items(), key=lambda i: i[1]))))
