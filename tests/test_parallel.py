"""Grading at scale (issue 5): parallel workers, a shared SQLite gradebook, PostgreSQL + Dask.

A small class (honest, wrong, blank, tampered and broken submissions) is graded by
`coursekit.grading.parallel` with two local workers, then by a Dask cluster of separate worker
processes on a PostgreSQL gradebook. Every grade and every autograded notebook must agree
with grading one student at a time, which the graded classes did (tests/graded_classes.py):
the hostile class by plain sequential `nbgrader autograde` (the reference, the tampered and
the broken submissions), the sample class by `coursekit.grading.parallel` with one worker (the
blank and the seed).
"""
import contextlib
import glob
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

import hostile
from conftest import free_port, graded_ahead, make, nbgrader, nbgrader_env, run_command
from coursekit.course import ASSIGNMENT, NOTEBOOK, gradebook_url
from coursekit.classroom.report import collect
from coursekit.examples.samples import (course_copy, SAMPLES, make_submission, sample_submission,
                                        submit)

# Graded one at a time in the sample class, by coursekit.grading.parallel with one worker.
SAMPLED = ["blank", "seed"]
# Graded in the hostile class by plain sequential nbgrader autograde.
HONEST = ["zz_reference"]
TAMPERED = ["deleted_tests", "stripped_metadata"]
BROKEN = ["not_json"]
CLASS = SAMPLED + HONEST
STUDENTS = CLASS + TAMPERED + BROKEN


def build_class(root):
    """The same notebooks the graded classes hold under the same names."""
    for student in SAMPLED:
        submit(root, student, sample_submission(student))
    for student in HONEST + TAMPERED:
        submit(root, student, hostile.CASES[student](0))
    for student in BROKEN:
        path = root / "submitted" / student / ASSIGNMENT / NOTEBOOK
        path.parent.mkdir(parents=True)
        path.write_bytes(hostile.CASES[student](0))
    return root


def parallel(root, *args):
    env = nbgrader_env()
    env["PYTHONPATH"] = str(root)
    return run_command([sys.executable, "-m", "coursekit.grading.parallel", ASSIGNMENT, *args],
                       root, env, timeout=900)


def grades(url):
    rows, _, _ = collect(url)
    return {row.student: (row.score, row.per_test) for row in rows}


def notebooks(root):
    """{student: [(cell id, text of its outputs, kinds of output)]} of every autograded notebook."""
    found = {}
    for path in sorted((root / "autograded").glob("*/%s/%s" % (ASSIGNMENT, NOTEBOOK))):
        notebook = nbformat.read(path, as_version=4)
        found[path.parts[-3]] = [
            (cell.metadata.get("nbgrader", {}).get("grade_id"),
             "".join(o.get("text", "") + o.get("evalue", "") for o in cell.get("outputs", [])),
             sorted(set(k for o in cell.get("outputs", []) for k in o.get("data", {}))))
            for cell in notebook.cells]
    return found


def sqlite(root):
    return gradebook_url(root)


@dataclass
class Graded:
    grades: dict      # {student: (score, per-test points)}
    notebooks: dict   # {student: what notebooks() reads of the autograded notebook}


@pytest.fixture(scope="module")
def sequential(graded_classes):
    """This class's students as the graded classes graded them, one at a time."""
    found = Graded({}, {})
    for graded, students in ((graded_classes.samples, SAMPLED),
                             (graded_classes.hostile, HONEST + TAMPERED + BROKEN)):
        grades_there, notebooks_there = grades(sqlite(graded["root"])), notebooks(graded["root"])
        found.grades.update({s: grades_there[s] for s in students})
        found.notebooks.update({s: notebooks_there[s] for s in students if s in notebooks_there})
    assert set(found.notebooks) == set(CLASS + TAMPERED)
    return found


# The gradings are computed ahead, beside the tests, once a graded class frees a core; the
# comparisons with the classes at the end find them done.
@graded_ahead
def two_workers(tmp_path_factory):
    root = build_class(course_copy(tmp_path_factory.mktemp("two_workers")))
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root, parallel(root, "--jobs", "2")


def test_two_workers_give_the_grades_of_sequential_nbgrader(sequential, two_workers):
    root, _ = two_workers
    assert grades(sqlite(root)) == sequential.grades
    assert set(grades(sqlite(root))) == set(STUDENTS)


def test_two_workers_write_the_autograded_notebooks_of_sequential_nbgrader(sequential,
                                                                           two_workers):
    root, _ = two_workers
    assert notebooks(root) == sequential.notebooks


def test_both_workers_graded(two_workers):
    _, run = two_workers
    pids = {line.split()[-1] for line in run.stdout.splitlines() if "worker pid" in line}
    assert len(pids) == 2, run.stdout


def test_a_broken_submission_is_reported_and_stops_nobody(two_workers):
    _, run = two_workers
    assert run.returncode == 1, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    broken = [line for line in lines if line.startswith("not_json ")]
    assert broken and all("NEEDS ATTENTION" in line and "is not valid JSON" in line
                          for line in broken)
    graded = {line.split()[0] for line in lines if line.endswith("graded")}
    assert set(CLASS + TAMPERED) <= graded
    assert "%d graded, 1 need attention" % len(CLASS + TAMPERED) in run.stdout


def test_progress_shows_each_student_as_it_finishes(two_workers):
    _, run = two_workers
    progress = [line for line in run.stdout.splitlines() if line.startswith("[")]
    total = len(STUDENTS)
    assert [line.split("]")[0] for line in progress] == [
        "[%*d/%d" % (len(str(total)), n, total) for n in range(1, total + 1)]


def test_make_autograde_with_a_student_regrades_that_student_alone(two_workers, tmp_path):
    graded, _ = two_workers
    root = tmp_path / "course"
    shutil.copytree(graded, root)
    notebooks = {path: (path.stat().st_mtime_ns, path.read_bytes())
                 for path in (root / "autograded").glob("*/%s/%s" % (ASSIGNMENT, NOTEBOOK))}
    before = grades(sqlite(root))
    # The seed student hands in the reference: a regrade must show it.
    submit(root, "seed", make_submission(SAMPLES["reference"]()))

    run = make(root, "autograde", "STUDENT=seed")

    after = grades(sqlite(root))
    assert after["seed"] == before["zz_reference"] != before["seed"]
    assert {s: g for s, g in after.items() if s != "seed"} == {
        s: g for s, g in before.items() if s != "seed"}
    for path, (stamp, content) in notebooks.items():
        if path.parts[-3] != "seed":
            assert (path.stat().st_mtime_ns, path.read_bytes()) == (stamp, content), path
    assert "1 graded, 0 need attention" in run.stdout, run.stdout[-3000:]


def _increment_shared_counter(url, times, failures):
    sys.path.insert(0, os.environ["COURSE_ROOT"])
    from coursekit.grading.gradebook import serialise_sqlite_writers
    from nbgrader.api import Gradebook

    serialise_sqlite_writers()
    worker = multiprocessing.current_process().name
    try:
        for n in range(times):
            with Gradebook(url) as gradebook:
                student = gradebook.find_student("counter")
                student.email = str(int(student.email) + 1)
                gradebook.update_or_create_student("%s-%d" % (worker, n))
                gradebook.db.commit()
    except Exception as error:
        failures.put("%s: %s" % (type(error).__name__, error))


def test_the_sqlite_gradebook_takes_concurrent_writers_without_losing_a_row(tmp_path,
                                                                             monkeypatch):
    """Read-modify-write from four processes at once: every update and every row survives."""
    from nbgrader.api import Gradebook

    from conftest import ROOT

    monkeypatch.setenv("COURSE_ROOT", str(ROOT))
    url = gradebook_url(tmp_path)
    with Gradebook(url) as gradebook:
        gradebook.update_or_create_student("counter", email="0")
    context = multiprocessing.get_context("spawn")
    failures = context.Queue()
    workers = [context.Process(target=_increment_shared_counter, args=(url, 40, failures),
                               name="w%d" % i) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    errors = []
    while not failures.empty():
        errors.append(failures.get())
    assert errors == []
    with Gradebook(url) as gradebook:
        assert gradebook.find_student("counter").email == "160"
        names = [s.id for s in gradebook.students]
        assert len(names) == len(set(names)) == 161


# --- Beyond one machine: PostgreSQL gradebook, Dask workers in separate processes ---

def wait_for(predicate, what, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError("%s did not start within %d s" % (what, seconds))


def run(command):
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, "%s failed:\n%s" % (" ".join(command), result.stderr)


@contextlib.contextmanager
def postgres():
    """A throwaway PostgreSQL server on loopback (as the `postgres` user when run as root)."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    assert binaries, "PostgreSQL is missing: make test installs it (apt-get install postgresql)"
    bindir = binaries[-1]
    # Outside pytest's own folders, which only root may enter.
    data = tempfile.mkdtemp(prefix="udl-postgres-")
    run_as = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    run(run_as + [bindir + "/initdb", "-D", data, "-A", "trust", "-U", "grader"])
    run(run_as + [bindir + "/pg_ctl", "-D", data, "-l", data + "/log", "-w", "start",
                  "-o", "-p %d -k %s -c listen_addresses=127.0.0.1" % (port, data)])
    try:
        run(run_as + [bindir + "/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "grader",
                      "gradebook"])
        yield "postgresql://grader@127.0.0.1:%d/gradebook" % port
    finally:
        subprocess.run(run_as + [bindir + "/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


@contextlib.contextmanager
def dask_cluster(root):
    """A scheduler and two workers, each its own process, as on separate machines."""
    port = free_port()
    env = nbgrader_env()
    env["PYTHONPATH"] = str(root)
    dask = [str(os.path.join(os.path.dirname(sys.executable), "dask"))]
    processes = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port",
                                          str(port), "--no-dashboard"], cwd=root, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = "tcp://127.0.0.1:%d" % port
    try:
        for _ in range(2):
            processes.append(subprocess.Popen(
                dask + ["worker", address, "--nworkers", "1", "--nthreads", "1",
                        "--no-dashboard", "--host", "127.0.0.1"],
                cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=60) as client:
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, "two Dask workers")
        yield address
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


@dataclass
class DaskRun:
    root: Path
    run: subprocess.CompletedProcess
    grades: dict      # read from the PostgreSQL gradebook right after the run


@graded_ahead
def on_dask_and_postgres(tmp_path_factory):
    """The class graded on the Dask cluster into PostgreSQL; both are stopped once the
    grades are read, so that nothing idles beside the rest of the suite."""
    root = build_class(course_copy(tmp_path_factory.mktemp("dask_course")))
    with postgres() as url, dask_cluster(root) as address:
        nbgrader(root, "generate_assignment", ASSIGNMENT, "--force",
                 "--CourseDirectory.db_url=%s" % url)
        graded = parallel(root, "--db", url, "--scheduler", address)
        return DaskRun(root, graded, grades(url))


def test_dask_workers_on_postgres_give_the_grades_of_sequential_sqlite(
        sequential, on_dask_and_postgres):
    dask = on_dask_and_postgres
    assert dask.run.returncode == 1, dask.run.stderr[-3000:]  # the broken submission
    assert dask.grades == sequential.grades
    assert notebooks(dask.root) == sequential.notebooks
    assert not (dask.root / "gradebook.db").exists()


def test_the_dask_run_used_both_workers(on_dask_and_postgres):
    pids = {line.split()[-1] for line in on_dask_and_postgres.run.stdout.splitlines()
            if "worker pid" in line}
    assert len(pids) == 2, on_dask_and_postgres.run.stdout


def test_a_student_id_full_of_control_characters_is_printed_escaped():
    """Issue 24: the progress line and the summary show a folder name as visible escapes."""
    from coursekit.grading.parallel import Outcome, class_summary, progress_line

    outcomes = [Outcome(hostile.ODD_ID, True, (25, 28), seconds=1.0),
                Outcome("ada\x1b[2J", False, problem="submitted/ada\x1b[2J/bn\u202e is odd")]
    printed = "\n".join([progress_line(o) for o in outcomes]
                        + [class_summary(outcomes, 2.0, "1 worker")])
    assert not hostile.CONTROL_CHARACTERS.search(printed), printed
    assert progress_line(outcomes[0]).startswith(hostile.ODD_ID_SHOWN + " ")
    assert progress_line(outcomes[1]).endswith(
        "NEEDS ATTENTION: submitted/ada\\x1b[2J/bn\\u202e is odd")
