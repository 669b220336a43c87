"""docs/scale.md's capacity plan agrees with the benchmark table above it (issue 27).

The plan once quoted the floor (a bare kernel) as a submission's cost, and its core-hours
were off by 2.5x. `make bench` now writes the plan with the table (coursekit.examples.bench.
capacity_plan); every figure of it is recomputed here from the table, independently of
that code, and the committed plan must be the one the table gives.
"""
import re
import subprocess

import pytest

from conftest import ROOT
from coursekit.examples import bench

SCALE = (ROOT / "docs" / "scale.md").read_text()


def measured(label):
    """A figure of the bench table's line starting with `label`."""
    found = re.search(r"^%s\s+([\d.]+)" % re.escape(label), SCALE, re.M)
    assert found, "docs/scale.md's bench table has no line %r" % label
    return float(found.group(1))


def plan():
    return SCALE[SCALE.index("**Capacity plan.**"):SCALE.index("Plan for:")]


def quoted(pattern):
    """The number the plan gives where `pattern` (a regex with one group) matches."""
    found = re.search(pattern.replace(" ", r"\s+"), plan(), re.S)  # lines break anywhere
    assert found, "docs/scale.md's capacity plan no longer says %r" % pattern
    return float(found.group(1))


PER_SUBMISSION = measured("coursekit.grading.parallel --jobs 2, per submission")
SEQUENTIAL = measured("sequential nbgrader autograde, per submission")
CORE_SECONDS = 2 * PER_SUBMISSION  # two workers on two cores
PEAK_MIB = float(re.search(r"peak memory of one worker with its kernel: (\d+) MiB",
                           SCALE).group(1))


@pytest.mark.parametrize("pattern, expected, places", [
    (r"takes \*\*([\d.]+) s\*\* of wall time", PER_SUBMISSION, 2),
    (r"costs \*\*([\d.]+) core-seconds\*\*", CORE_SECONDS, 1),
    (r"peaks at \*\*(\d+) MiB\*\*", PEAK_MIB, 0),
    (r"10,000 submissions\*\* cost \*\*([\d.]+) core-hours", 10_000 * CORE_SECONDS / 3600, 1),
    (r"about \*\*([\d.]+) hours\*\* on one 2-core", 10_000 * PER_SUBMISSION / 3600, 1),
    (r"about \*\*([\d.]+) GiB\*\*\s+of memory per machine", 8 * PEAK_MIB / 1024, 1),
    (r"take about \*\*(\d+) minutes\*\*, if each core", 10_000 * CORE_SECONDS / 64 / 60, 0),
    (r"JOBS=2`\) that is about\s+\*\*(\d+) minutes\*\*", 200 * PER_SUBMISSION / 60, 0),
    (r"\(16 workers.*?about \*\*(\d+) minutes\*\*", 200 * CORE_SECONDS / 16 / 60, 0),
    (r"JOBS=1`.*?about \*\*(\d+) minutes\*\*", 200 * SEQUENTIAL / 60, 0),
])
def test_each_figure_of_the_plan_follows_from_the_table(pattern, expected, places):
    assert quoted(pattern) == round(expected, places), (
        "docs/scale.md's capacity plan says %s where the bench table gives %.*f (%s)"
        % (quoted(pattern), places, expected, pattern))


def test_the_plan_is_not_the_floor():
    floor = measured("floor: fresh kernel, imports, builds MNIST-1D")
    assert CORE_SECONDS > 2 * floor
    assert "%g s of one core" % round(floor) not in plan()


def test_the_plan_is_the_one_make_bench_writes_from_the_table():
    """A hand edit of a figure, or a table from a new run with the old plan, fails here:
    `python -m coursekit.examples.bench --plan` writes the plan again from the committed table."""
    written = bench.capacity_plan(bench.Cost.from_table(bench.block_text(bench.SCALE_DOC)))
    assert bench.block_text(bench.SCALE_DOC, bench.PLAN) == written, (
        "docs/scale.md's capacity plan is not what its bench table gives: run "
        "`.venv/bin/python -m coursekit.examples.bench --plan` (or make bench)")


def test_make_autograde_passes_the_gradebook_and_the_scheduler_through():
    def command(*settings):
        result = subprocess.run(["make", "-n", "autograde", *settings], cwd=ROOT,
                                capture_output=True, text=True, check=True)
        return [line for line in result.stdout.splitlines()
                if "coursekit.grading.parallel" in line]

    db, scheduler = "postgresql://grader@db-host/gradebook", "tcp://scheduler-host:8786"
    [line] = command("DB=" + db, "SCHEDULER=" + scheduler, "STUDENT=ada")
    assert line.endswith("--student 'ada' --db '%s' --scheduler '%s'" % (db, scheduler)), line
    [line] = command()
    assert line.endswith("--student '*'"), line
