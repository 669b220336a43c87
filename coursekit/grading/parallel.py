"""Autograde a whole class with several workers.

    python -m coursekit.grading.parallel bn --jobs 2                        # this machine
    python -m coursekit.grading.parallel bn --db postgresql://...  \\
                                    --scheduler tcp://host:8786      # a Dask cluster

Each worker grades one student at a time with nbgrader's own autograde, through the
course's config (sandbox, repairs, broken files: coursekit.grading.autograde), so every student
gets exactly what `nbgrader autograde bn` gives them. Workers are local processes
(`--jobs`, default: the number of cores), or the workers of a Dask cluster that share the
course folder (`--scheduler`). The gradebook is the course's SQLite file, whose writers
take turns (coursekit.grading.gradebook), or any database nbgrader supports (`--db`). A student
whose grading fails is reported and never stops the others; the exit status is non-zero
when anyone needs attention.
"""
import argparse
import concurrent.futures
import multiprocessing
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Optional

from coursekit.grading import attention

_apis = {}


@dataclass
class Outcome:
    """What grading one student came to, as its worker reports it."""
    student: str
    ok: bool
    score: Optional[tuple] = None    # (points, possible); None when the gradebook has none
    problem: Optional[str] = None    # why the submission needs attention
    seconds: float = 0.0
    worker_mib: float = 0.0
    kernel_mib: float = 0.0
    peak_mib: float = 0.0            # worker and kernel together
    pid: Optional[int] = None        # the worker's


def _config(root, db_url, settings):
    from traitlets.config import Config
    from traitlets.config.loader import PyFileConfigLoader

    # Refuses unless the config below installs grading.
    import coursekit.grading.failclosed  # noqa: F401

    try:
        config = PyFileConfigLoader("nbgrader_config.py", path=root).load_config()
    except Exception as error:  # whatever the file raises, nobody is graded without it
        raise SystemExit("Refusing to autograde: %s/nbgrader_config.py did not load (%s: %s)."
                         % (root, type(error).__name__, str(error).splitlines()[0]
                            if str(error) else "")) from None
    config.CourseDirectory.root = root
    if db_url:
        config.CourseDirectory.db_url = db_url
    for name, value in settings.items():
        section, trait = name.split(".")
        config.merge(Config({section: {trait: value}}))
    return config


def _api(root, db_url, settings):
    key = (root, db_url, tuple(sorted(settings.items())))
    if key not in _apis:
        if root not in sys.path:
            sys.path.insert(0, root)
        from nbgrader.apps import NbGraderAPI

        from coursekit.grading.gradebook import serialise_sqlite_writers

        # Workers (and the parent that forks them) only grade: their SQLite writers queue.
        serialise_sqlite_writers()
        _apis[key] = NbGraderAPI(config=_config(root, db_url, settings))
    return _apis[key]


class PeakMemory:
    """Largest resident memory of this worker and of its kernel, sampled while grading.

    (getrusage cannot see the kernel: it runs three processes down, under bubblewrap.)
    Each look reads every process of the machine (psutil finds children by their parent
    ids): every 50 ms that cost a grading worker 5 to 18% of a core, by how many processes
    the machine runs. Every 200 ms still sees the kernel's peak: it holds what the
    notebook built until the end.
    """

    def __init__(self, interval=0.2):
        import psutil

        self.process, self.interval = psutil.Process(), interval
        self.worker = self.kernel = self.together = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        import psutil

        while not self._stop.wait(self.interval):
            try:
                own = self.process.memory_info().rss
                kernel = 0
                for child in self.process.children(recursive=True):
                    try:
                        kernel += child.memory_info().rss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        pass
            except psutil.Error:
                continue
            self.worker = max(self.worker, own)
            self.kernel = max(self.kernel, kernel)
            self.together = max(self.together, own + kernel)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def grade_student(root, assignment, student, db_url=None, settings=None):
    """Autograde one student; runs in a worker. Never raises: failures are reported."""
    started, now = time.monotonic(), time.time()
    with PeakMemory() as memory:
        try:
            api = _api(root, db_url, settings or {})
            result = api.autograde(assignment, student, force=True, create=True)
            score = _score(api, assignment, student)
            # What this run recorded: an older record says nothing about it.
            problem = attention.read(api.coursedir.root, assignment, student, since=now - 1)
            if problem is None and not result["success"]:
                problem = _run_failure(result)
        except Exception as error:  # one student's failure must not stop the class
            result, score, problem = {"success": False}, None, "%s: %s" % (
                type(error).__name__, error)
    return Outcome(student, bool(result["success"]) and problem is None, score, problem,
                   time.monotonic() - started, worker_mib=memory.worker / 2**20,
                   kernel_mib=memory.kernel / 2**20, peak_mib=memory.together / 2**20,
                   pid=os.getpid())


def _score(api, assignment, student):
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gradebook:
        try:
            submission = gradebook.find_submission(assignment, student)
        except MissingEntry:
            return None
        return submission.score, submission.max_score


def _run_failure(result):
    """Why an autograde run that recorded nothing for its student failed: the run itself
    stopped before grading anyone (the gradebook, the config), as its log says."""
    errors = [line.strip()[len("[ERROR] "):] for line in (result.get("log") or "").splitlines()
              if line.strip().startswith("[ERROR]")]
    return "autograde failed before grading: %s" % (errors[0] if errors else "see the log")


class Progress:
    """A bar and one line per finished student (the bar only on a terminal)."""

    def __init__(self, total, stream=sys.stdout):
        self.total, self.done, self.stream = total, 0, stream
        self.tty = stream.isatty()

    def update(self, outcome):
        self.done += 1
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write("[%*d/%d] %s\n" % (len(str(self.total)), self.done, self.total,
                                           progress_line(outcome)))
        if self.tty and self.done < self.total:
            filled = 30 * self.done // self.total
            self.stream.write("[%s%s] %d/%d graded" % ("#" * filled, "." * (30 - filled),
                                                     self.done, self.total))
        self.stream.flush()


def progress_line(outcome):
    """One student's line, as printed: the id (a folder name the student chose) and the
    problem (which may quote it) with their control characters escaped."""
    from coursekit.escape import printable

    points = "%g/%g" % outcome.score if outcome.score else "-"
    status = "graded" if outcome.ok else "NEEDS ATTENTION: " + printable(outcome.problem)
    return "%-26s %7s  %5.1f s  %s" % (printable(outcome.student), points, outcome.seconds,
                                       status)


def class_summary(outcomes, seconds, workers):
    lines = ["", "%-26s %7s  %7s  %s" % ("student", "points", "time", "status")]
    lines += [progress_line(o) for o in sorted(outcomes, key=lambda o: o.student)]
    lines.append("")
    for pid in sorted({o.pid for o in outcomes if o.pid}):
        own = [o for o in outcomes if o.pid == pid]
        lines.append("%d students, peak memory %.0f MiB (worker %.0f + kernel %.0f), worker pid %d"
                     % (len(own), max(o.peak_mib for o in own),
                        max(o.worker_mib for o in own), max(o.kernel_mib for o in own),
                        pid))
    attention = [o for o in outcomes if not o.ok]
    lines.append("%d graded, %d need attention, in %.1f s with %s" % (
        len(outcomes) - len(attention), len(attention), seconds, workers))
    return "\n".join(lines)


def students_of(root, assignment, pattern="*"):
    import glob

    folders = glob.glob(os.path.join(root, "submitted", pattern, assignment))
    return sorted(os.path.basename(os.path.dirname(f)) for f in folders if os.path.isdir(f))


def preflight(root, assignment, db_url, settings):
    """Refuse before starting any worker when grading cannot be done safely or at all."""
    from nbgrader.api import Gradebook, MissingEntry

    from coursekit.course import gradebook_url
    from coursekit.grading.sandbox import Sandbox, SandboxUnavailable

    # Through the workers' own cache: local workers are forked from here, ready to grade
    # (the judge, with torch, imported once for all of them).
    config = _api(root, db_url, settings).config
    import coursekit.kernel.judge  # noqa: F401
    from nbgrader.apps import api

    from coursekit.grading.failclosed import REFUSAL, ConfigNotLoaded

    if api.Autograde is ConfigNotLoaded:
        return REFUSAL
    try:
        Sandbox(config=config).check()
        api.Autograde(config=config).check_pipeline()
    except SandboxUnavailable as refusal:
        return str(refusal)
    url = db_url or gradebook_url(root)
    with Gradebook(url) as gradebook:
        try:
            gradebook.find_assignment(assignment)
        except MissingEntry:
            return ("The gradebook has no assignment '%s': release it first "
                    "(make release, or nbgrader generate_assignment %s)" % (assignment,
                                                                             assignment))
    return None


def run_local(jobs, tasks, progress):
    """Grade with `jobs` worker processes; a worker that dies costs only its student.

    When a worker process dies, every unfinished student of that pool fails with it; each
    is then graded again in a pool of its own, so only the one that kills its worker is lost.
    """
    outcomes = []
    for task in _run_pool(jobs, tasks, outcomes, progress):
        if _run_pool(1, [task], outcomes, progress):
            outcome = _lost(task, "its worker process died while grading it")
            outcomes.append(outcome)
            progress.update(outcome)
    return outcomes


def _run_pool(jobs, tasks, outcomes, progress):
    lost = []
    # Forked after preflight, each worker starts with nbgrader imported and the course's
    # config loaded (1 to 2 s saved per worker). The parent has no other thread then:
    # with fork, ProcessPoolExecutor starts all workers before its own manager thread.
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
        futures = {pool.submit(grade_student, *task): task for task in tasks}
        for future in concurrent.futures.as_completed(futures):
            try:
                outcome = future.result()
            except concurrent.futures.process.BrokenProcessPool:
                lost.append(futures[future])
                continue
            outcomes.append(outcome)
            progress.update(outcome)
    return lost


def run_dask(scheduler, tasks, progress):
    from distributed import Client, as_completed

    outcomes = []
    with Client(scheduler) as client:
        futures = {client.submit(grade_student, *task, key="autograde-%s" % task[2],
                                 pure=False): task for task in tasks}
        for future in as_completed(futures):
            try:
                outcome = future.result()
            except Exception as error:  # the worker running it was lost
                outcome = _lost(futures[future], "%s: %s" % (type(error).__name__, error))
            outcomes.append(outcome)
            progress.update(outcome)
    return outcomes


def _lost(task, why):
    return Outcome(task[2], False, problem=why)


def grade_class(root, assignment, jobs=None, db_url=None, scheduler=None, settings=None,
                students="*", stream=sys.stdout):
    """Grade every submission of `assignment`; returns the outcomes, one per student."""
    root = os.path.abspath(root)
    settings = settings or {}
    refusal = preflight(root, assignment, db_url, settings)
    if refusal:
        raise SystemExit(refusal)
    names = students_of(root, assignment, students)
    tasks = [(root, assignment, student, db_url, settings) for student in names]
    progress = Progress(len(tasks), stream)
    if scheduler:
        return run_dask(scheduler, tasks, progress)
    return run_local(jobs or os.cpu_count(), tasks, progress)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("assignment")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(),
                        help="local worker processes (default: the number of cores)")
    parser.add_argument("--db", help="gradebook URL (default: the course's gradebook.db)")
    parser.add_argument("--scheduler", help="address of a Dask scheduler whose workers "
                        "share this course folder (e.g. tcp://10.0.0.5:8786)")
    parser.add_argument("--student", default="*", help="which students (a glob)")
    parser.add_argument("--set", action="append", default=[], metavar="CLASS.TRAIT=VALUE",
                        help="a config value for this run, e.g. Execute.timeout=60")
    parser.add_argument("--root", default=os.getcwd(), help="the course folder")
    args = parser.parse_args(argv)
    settings = {}
    for item in args.set:
        name, _, value = item.partition("=")
        settings[name] = _literal(value)
    started = time.monotonic()
    outcomes = grade_class(args.root, args.assignment, args.jobs, args.db, args.scheduler,
                           settings, args.student)
    workers = ("the Dask cluster at %s" % args.scheduler if args.scheduler
               else "%d worker%s" % (args.jobs, "" if args.jobs == 1 else "s"))
    print(class_summary(outcomes, time.monotonic() - started, workers))
    return 0 if outcomes and all(o.ok for o in outcomes) else 1


def _literal(value):
    import ast

    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


if __name__ == "__main__":
    # Run the imported module, not __main__: Dask pickles functions of __main__ by value,
    # globals included, and a worker would get this process's cached API instead of
    # loading the course's config itself.
    from coursekit.grading import parallel

    sys.exit(parallel.main())
