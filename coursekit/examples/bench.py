"""`make bench`: what grading costs on this machine, as ratios to a floor measured here.

The floor is a fresh Jupyter kernel that imports torch, numpy, matplotlib and mnist1d and
builds MNIST-1D: no grading of this notebook can cost less. One run, on a copy of the
course holding 20 of the sample submissions, measures that floor, sequential
`nbgrader autograde`, `coursekit.grading.parallel` with 2 workers, and the notebook's execution
alone in the sandbox (on a quiet machine, and beside one other busy process, as a student
on a shared server meets it), then prints times, ratios, the slowest cell and peak memory,
and writes them, with the capacity plan they give, into docs/scale.md (and a summary into
the README).
"""
import contextlib
import dataclasses
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import nbformat

from coursekit.course import ASSIGNMENT, NOTEBOOK, ROOT, grade_id, gradebook_url

FLOOR_CODE = """\
import numpy, torch, matplotlib.pyplot, mnist1d
args = mnist1d.data.get_dataset_args()
data = mnist1d.data.get_dataset(args, path='./floor.pkl', download=False, regenerate=True)
"""
SUBMISSIONS = 20
# Where make bench writes what it measured, between these markers (nothing else is touched).
README, SCALE_DOC = ROOT / "README.md", ROOT / "docs" / "scale.md"
BEGIN = "<!-- written by make bench: begin -->"
END = "<!-- written by make bench: end -->"
# docs/scale.md's capacity plan, written from the same run's figures (capacity_plan).
PLAN = "capacity plan"
# The table's lines the plan is computed from (and `--plan` reads back from the page).
PARALLEL_LINE = "coursekit.grading.parallel --jobs 2, per submission"  # WORKERS
SEQUENTIAL_LINE = "sequential nbgrader autograde, per submission"
PEAK_LINE = "peak memory of one worker with its kernel:"
FLOOR_LINE = "floor: fresh kernel, imports, builds MNIST-1D"
WORKERS = 2  # of the parallel run, one per core of this machine


def markers(block=None):
    """The (begin, end) markers of a block make bench writes: the table's, or `block`'s."""
    if block is None:
        return BEGIN, END
    return ("<!-- written by make bench, %s: begin -->" % block,
            "<!-- written by make bench, %s: end -->" % block)


@dataclasses.dataclass
class Cost:
    """What one submission costs, as the bench table gives it."""
    parallel_seconds: float    # wall time per submission, WORKERS workers side by side
    sequential_seconds: float  # wall time per submission, nbgrader autograde alone
    peak_mib: float            # one worker with its kernel, at its largest
    floor_seconds: float       # a bare kernel that imports the libraries, builds the data

    @property
    def core_seconds(self):
        """The cores the parallel run held, for its wall time per submission."""
        return WORKERS * self.parallel_seconds

    @classmethod
    def from_table(cls, text):
        """The figures of a bench table as make bench prints it (docs/scale.md's block)."""
        import re

        def figure(pattern):
            found = re.search(pattern, text, re.M)
            if not found:
                raise SystemExit("The bench table has no line %r: run make bench." % pattern)
            return float(found.group(1))

        return cls(figure(r"^%s\s+([\d.]+)" % re.escape(PARALLEL_LINE)),
                   figure(r"^%s\s+([\d.]+)" % re.escape(SEQUENTIAL_LINE)),
                   figure(r"^%s (\d+) MiB" % re.escape(PEAK_LINE)),
                   figure(r"^%s\s+([\d.]+)" % re.escape(FLOOR_LINE)))


def capacity_plan(cost):
    """docs/scale.md's capacity plan, every figure computed from `cost` (tests/test_capacity.py
    recomputes them)."""
    core_seconds = cost.core_seconds
    many = 10_000 * core_seconds
    paragraphs = [
        "**Capacity plan.** From the table above, not the floor: with two workers a "
        "submission takes **%.2f s** of wall time, so it costs **%.1f core-seconds** (two "
        "cores for %.2f s; a sequential run, %.2f s of one core, leaves the second core "
        "idle), and a worker with its kernel peaks at **%.0f MiB**. The floor (a bare "
        "kernel, %.2f s) is %.0f%% of that: grading runs the whole notebook, the hidden tests "
        "and nbgrader's own steps. `make bench` writes this plan with the table "
        "(`.venv/bin/python -m coursekit.examples.bench --plan` from the table alone); "
        "`tests/test_capacity.py` recomputes every figure from the table."
        % (cost.parallel_seconds, core_seconds, cost.parallel_seconds,
           cost.sequential_seconds, cost.peak_mib, cost.floor_seconds,
           100 * cost.floor_seconds / core_seconds),
        "",
        "- **10,000 submissions** cost **%.1f core-hours**: about **%.1f hours** on one "
        "2-core machine with `JOBS=2`. 8 machines with 8 cores each (64 Dask workers, about "
        "**%.1f GiB** of memory per machine) take about **%d minutes**, if each core grades "
        "as fast as in the two-worker run here."
        % (many / 3600, 10_000 * cost.parallel_seconds / 3600, 8 * cost.peak_mib / 1024,
           round(many / 64 / 60)),
        "- **A class of 200**, the worked example: 200 × %.1f core-seconds is %.2f "
        "core-hours. On this machine (2 cores, `make autograde JOBS=2`) that is about "
        "**%d minutes**; on a small cluster of 4 machines with 4 cores each (16 workers, "
        "`make autograde DB=postgresql://grader@db-host/gradebook "
        "SCHEDULER=tcp://scheduler-host:8786`) about **%d minutes**, plus the workers' start."
        % (core_seconds, 200 * core_seconds / 3600, round(200 * cost.parallel_seconds / 60),
           round(200 * core_seconds / 16 / 60)),
        "- **On the students' own JupyterHub**, each worker takes a whole core for as long "
        "as the class grades, and its students' kernels compete for the rest: grade "
        "off-hours, or cap the workers (`JOBS=1` leaves every other core to the students; "
        "at the sequential run's pace the class of 200 then takes about **%d minutes** "
        "here)." % round(200 * cost.sequential_seconds / 60)]
    return "\n".join(textwrap.fill(paragraph, width=90, subsequent_indent="  " if
                                    paragraph.startswith("- ") else "",
                                    break_long_words=False, break_on_hyphens=False)
                      for paragraph in paragraphs)


def run_notebook(notebook, folder, kernel_manager_class=None, shutdown="graceful"):
    """Seconds to execute `notebook` in a fresh kernel with `folder` as working directory."""
    from nbclient import NotebookClient

    options = {"kernel_manager_class": kernel_manager_class} if kernel_manager_class else {}
    options["shutdown_kernel"] = shutdown
    started = time.monotonic()
    NotebookClient(notebook, timeout=600, allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}, **options).execute()
    return time.monotonic() - started


def floor_seconds(scratch, runs=3, shutdown="graceful"):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(FLOOR_CODE)])
    notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}
    times = []
    for run in range(runs):
        folder = scratch / ("floor-%s-%d" % (shutdown, run))
        folder.mkdir()
        times.append(run_notebook(notebook, folder, shutdown=shutdown))
    return statistics.median(times)


@contextlib.contextmanager
def busy_core():
    """One other process keeping a core busy, as on a shared JupyterHub or a laptop with a
    browser open."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def slowest_cell(notebook):
    """(seconds, id) of the code cell that ran longest, from the timings nbclient records."""
    def seconds(cell):
        timing = cell.metadata.get("execution", {})
        started, ended = (timing.get(key) for key in ("iopub.execute_input",
                                                       "shell.execute_reply"))
        if not (started and ended):
            return 0.0
        return (datetime.datetime.fromisoformat(ended.replace("Z", "+00:00"))
                - datetime.datetime.fromisoformat(started.replace("Z", "+00:00"))
                ).total_seconds()

    cell = max((c for c in notebook.cells if c.cell_type == "code"), key=seconds)
    return seconds(cell), grade_id(cell) or cell.get("id")


class NoLimits:
    """SubmissionLimits that limit nothing: the sandbox as it was before them."""

    def __init__(self, *args):
        pass

    def wrap(self, command):
        return command

    def watch(self, pid):
        pass

    def why_it_died(self):
        return None

    def close(self):
        pass


def bare_sandbox():
    """The course's kernel manager without the limits of the whole submission."""
    from coursekit.grading.sandbox import SandboxedKernelManager

    return type("BareSandboxedKernelManager", (SandboxedKernelManager,),
                {"limits_class": NoLimits})


def sanitizing_seconds(root, student="reference", runs=5):
    """Seconds to make one graded notebook's student markup inert (InertStudentHTML)."""
    import copy

    from traitlets.config import Config

    from coursekit.grading.sanitize import InertStudentHTML

    graded = nbformat.read(root / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    step = InertStudentHTML(config=Config({"CourseDirectory": {"root": str(root)}}))
    resources = {"nbgrader": {"assignment": ASSIGNMENT, "student": student,
                              "notebook": NOTEBOOK[:-len(".ipynb")]}}
    times = []
    for _ in range(runs):
        notebook = copy.deepcopy(graded)
        started = time.monotonic()
        step.preprocess(notebook, copy.deepcopy(resources))
        times.append(time.monotonic() - started)
    return statistics.median(times)


def judge_seconds(root, student="reference", runs=3):
    """(seconds to execute one graded notebook with the judge, the same with its test cells
    run whole in the kernel as stock nbgrader does), medians of interleaved runs."""
    import copy

    from coursekit.grading.parallel import _config
    from coursekit.grading.preprocessors import SandboxedExecute

    class InKernelTests(SandboxedExecute):
        def is_judged(self, cell):
            return False

    graded = nbformat.read(root / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    config = _config(str(root), None, {})
    times = {SandboxedExecute: [], InKernelTests: []}
    # Run 0 warms up: the grader imports the judge and torch once per process, not per
    # submission.
    for run in range(runs + 1):
        for step in times:
            folder = root.parent / ("judge-%s-%d" % (step.__name__, run))
            shutil.copytree(root / "autograded" / student / ASSIGNMENT, folder)
            resources = {"metadata": {"path": str(folder)},
                         "nbgrader": {"assignment": ASSIGNMENT, "student": student,
                                      "notebook": NOTEBOOK[:-len(".ipynb")]}}
            started = time.monotonic()
            step(config=config).preprocess(copy.deepcopy(graded), resources)
            times[step].append(time.monotonic() - started)
    return (statistics.median(times[SandboxedExecute][1:]),
            statistics.median(times[InKernelTests][1:]))


def nbgrader(root, *args):
    from coursekit.examples.samples import nbgrader_env

    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=nbgrader_env(),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def grades(root):
    from coursekit.classroom.report import points_by_student

    return points_by_student(gradebook_url(root))


def main():
    from coursekit.grading.parallel import grade_class
    from coursekit.examples.samples import SAMPLES, course_copy, sample_submission, submit
    from coursekit.grading.sandbox import SandboxedKernelManager

    students = sorted(SAMPLES)[:SUBMISSIONS]
    with tempfile.TemporaryDirectory(prefix="udl-bench-") as scratch:
        scratch = Path(scratch)
        print("Benchmark: %d submissions, %d cores" % (len(students), os.cpu_count()))
        floor = floor_seconds(scratch)
        # Grading stops a kernel at once after its last cell (SandboxedExecute); the same
        # floor stopped that way shows how much of the saving is that alone.
        floor_stopped = floor_seconds(scratch, shutdown="immediate")
        root = course_copy(scratch / "course")
        for student in students:
            submit(root, student, sample_submission(student))
        nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
        sequential = nbgrader(root, "autograde", ASSIGNMENT, "--force")
        sequential_grades = grades(root)
        with open(os.devnull, "w") as quiet:
            started = time.monotonic()
            outcomes = grade_class(root, ASSIGNMENT, jobs=WORKERS, stream=quiet)
            parallel = time.monotonic() - started
        same = grades(root) == sequential_grades and all(o.ok for o in outcomes)

        def alone(student, run="class", manager=SandboxedKernelManager, executed=None):
            """Seconds to execute one submission in its graded folder (MNIST-1D included),
            no nbgrader; the executed notebook is appended to `executed`."""
            notebook = nbformat.read(root / "submitted" / student / ASSIGNMENT / NOTEBOOK,
                                     as_version=4)
            folder = scratch / ("alone-%s-%s" % (student, run))
            shutil.copytree(root / "autograded" / student / ASSIGNMENT, folder)
            seconds = run_notebook(notebook, folder, manager, "immediate")
            if executed is not None:
                executed.append(notebook)
            return seconds

        quiet_runs, busy_runs = [], []
        execution = statistics.median(alone("reference", run, executed=quiet_runs)
                                      for run in range(3))
        with busy_core():
            busy = statistics.median(alone("reference", "busy-%d" % run, executed=busy_runs)
                                     for run in range(3))
        # Interleaved, so that the machine's drift during the run falls on both alike.
        guarded, bare = [], []
        for run in range(3):
            guarded.append(alone("reference", "guarded-%d" % run))
            bare.append(alone("reference", "bare-%d" % run, bare_sandbox()))
        limits_cost = statistics.median(guarded) - statistics.median(bare)
        sanitizing = sanitizing_seconds(root)
        judged, in_kernel = judge_seconds(root)
        # Submissions that fail early run shorter: nbgrader's own share is measured against
        # the very same notebooks executed alone.
        class_alone = sum(alone(student) for student in students) / len(students)

    per = sequential / len(students)
    peak = max(outcomes, key=lambda o: o.peak_mib)
    rows = [
        (FLOOR_LINE, floor, 1.0),
        ("  the same, kernel stopped at once at the end", floor_stopped, floor_stopped / floor),
        ("the reference alone, sandboxed (median of 3)", execution, execution / floor),
        ("  the same, one other process busy (median of 3)", busy, busy / floor),
        ("the same %d submissions alone, each" % len(students), class_alone,
         class_alone / floor),
        (SEQUENTIAL_LINE, per, per / floor),
        ("  of which nbgrader's own work", per - class_alone, (per - class_alone) / floor),
        (PARALLEL_LINE, parallel / len(students),
         parallel / len(students) / floor),
        ("submission-wide limits (cgroup, watchdog), each", limits_cost,
         limits_cost / floor),
        ("inert student markup (sanitize.py), each", sanitizing,
         sanitizing / floor),
        ("the reference graded by the judge (median of 3)", judged, judged / floor),
        ("  the same, tests run whole in the kernel (stock)", in_kernel, in_kernel / floor),
    ]
    slowest = {label: max(slowest_cell(notebook) for notebook in runs)
               for label, runs in (("quiet", quiet_runs), ("one other busy process", busy_runs))}
    lines = ["%-50s %8s %10s" % ("", "seconds", "x floor")]
    lines += ["%-50s %8.2f %10.3f" % row for row in rows]
    lines += [
        "",
        "sequential, %d submissions: %7.1f s" % (len(students), sequential),
        "--jobs 2,    %d submissions: %7.1f s" % (len(students), parallel),
        "speed-up of 2 workers: %.2fx (target >= 1.8x)" % (sequential / parallel),
        "the completed notebook (the reference) alone: %.2fx floor (target <= 2x)"
        % (execution / floor),
        "the same with one other busy process: %.2fx floor" % (busy / floor)]
    lines += ["slowest cell of the reference, %s: %s, %.1f s (target <= 20 s busy)"
              % (label, cell, seconds) for label, (seconds, cell) in slowest.items()]
    lines += [
        "per-submission cost, sequential: %.2fx floor; %.2fx the same notebooks alone "
        "(grading overhead; target <= 1.5x)" % (per / floor, per / class_alone),
        "%s %.0f MiB (worker %.0f + kernel %.0f; target < 1024 MiB)"
        % (PEAK_LINE, peak.peak_mib, peak.worker_mib, peak.kernel_mib),
        "added cost of the whole-submission limits and inert markup: %.3fx floor "
        "(target <= 0.1x)" % ((limits_cost + sanitizing) / floor),
        "added cost of the judge (observing outside the tests, judging in the grader): "
        "%.3fx floor per submission (target <= 0.3x)" % ((judged - in_kernel) / floor),
        "grades of the two runs identical: %s" % ("yes" if same else "NO")]
    print("\n" + "\n".join(lines))
    measured = "`make bench`, %s, %d cores, %d sample submissions" % (
        datetime.date.today().isoformat(), os.cpu_count(), len(students))
    publish(SCALE_DOC, "%s; every figure is relative to a floor measured in the same run:"
            "\n\n```\n%s\n```" % (measured, "\n".join(lines)))
    quiet_seconds, quiet_cell = slowest["quiet"]
    publish(README, "The completed notebook runs in **%.2fx** the time of a bare kernel that "
            "only imports the libraries and builds the data (**%.2fx** beside one other busy "
            "process); its slowest cell, `%s`, takes %.1f s (%s; all figures in "
            "[docs/scale.md](docs/scale.md))." % (execution / floor, busy / floor, quiet_cell,
                                                  quiet_seconds, measured))
    # From the table as printed, so that the plan's figures are the table's to the digit.
    publish(SCALE_DOC, capacity_plan(Cost.from_table("\n".join(lines))), PLAN)
    print("\nwritten into %s (the table and the capacity plan) and %s"
          % (SCALE_DOC.name, README.name))
    return 0 if same else 1


def publish(path, text, block=None):
    """Put `text` between the `make bench` markers of `path` (the table's, or `block`'s),
    leaving the rest as it is."""
    first, last = markers(block)
    document = path.read_text()
    begin, end = document.find(first), document.find(last)
    if begin < 0 or end < begin:
        raise SystemExit("%s has no %s ... %s block for make bench to fill in; add one where "
                         "the figures belong" % (path, first, last))
    path.write_text(document[:begin + len(first)] + "\n" + text + "\n" + document[end:])


def block_text(path, block=None):
    """What make bench last wrote between `path`'s markers (the table's, or `block`'s)."""
    first, last = markers(block)
    document = path.read_text()
    begin, end = document.find(first), document.find(last)
    if begin < 0 or end < begin:
        raise SystemExit("%s has no %s ... %s block" % (path, first, last))
    return document[begin + len(first):end].strip("\n")


def replan():
    """Write docs/scale.md's capacity plan again from its table, without measuring (after
    the plan's wording changed)."""
    publish(SCALE_DOC, capacity_plan(Cost.from_table(block_text(SCALE_DOC))), PLAN)
    print("capacity plan written into %s from its bench table" % SCALE_DOC.name)
    return 0


if __name__ == "__main__":
    sys.exit(replan() if sys.argv[1:] == ["--plan"] else main())
