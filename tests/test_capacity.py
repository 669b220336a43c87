"""docs/scale.md's capacity plan agrees with the benchmark table above it (issue 27).

The plan once quoted the floor (a bare kernel) as a submission's cost, and its core-hours
were off by 2.5x. Every figure of the plan is recomputed here from the table `make bench`
writes; when a new run changes the table, this fails until the plan is updated.
"""
import re

import pytest

from conftest import ROOT

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
    found = re.search(pattern, plan(), re.S)
    assert found, "docs/scale.md's capacity plan no longer says %r" % pattern
    return float(found.group(1))


PER_SUBMISSION = measured("coursekit.parallel --jobs 2, per submission")
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
])
def test_each_figure_of_the_plan_follows_from_the_table(pattern, expected, places):
    assert quoted(pattern) == round(expected, places), (
        "docs/scale.md's capacity plan says %s where the bench table gives %.*f (%s)"
        % (quoted(pattern), places, expected, pattern))


def test_the_plan_is_not_the_floor():
    floor = measured("floor: fresh kernel, imports, builds MNIST-1D")
    assert CORE_SECONDS > 2 * floor
    assert "%g s of one core" % round(floor) not in plan()
