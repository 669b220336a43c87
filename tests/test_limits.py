"""A cell stopped at a budget of the whole submission is told which budget.

A cell that writes into /tmp (RAM, charged to the submission's cgroup, with no swap to make
room) can stall at the memory limit in Linux's reclaim instead of being stopped by it,
until its time limit runs out and it ignores the interrupt: once in a full run, the hostile
class's tmp_bomb was told "the cell ran past the 30 s time limit" instead of its memory
(docs/scale.md). These tests need no kernel: the cgroup's figure is given.
"""
import asyncio
import concurrent.futures

import nbformat
import pytest
from nbclient.exceptions import CellTimeoutError

from coursekit.grading import limits
from coursekit.grading.preprocessors import SandboxedExecute
from coursekit.grading.sandbox import Sandbox, SandboxedKernelManager

GIB = 2**30


class Charged:
    """A cgroup whose memory figure is `used` bytes."""

    def __init__(self, used):
        self.used = used

    def memory_bytes(self):
        return self.used


def submission(used, tmp_path):
    """The limits of a submission of 4 GiB whose cgroup reports `used` bytes (None: no
    cgroup on this machine)."""
    watched = limits.SubmissionLimits(Sandbox(use_cgroups=False), str(tmp_path),
                                      str(tmp_path))
    watched.cgroup = None if used is None else Charged(used)
    return watched


@pytest.mark.parametrize("used, at_it", [(4 * GIB, True), (4 * GIB - 2**20, True),
                                          (3 * GIB, False), (None, False)])
def test_a_submission_is_at_its_memory_limit_only_when_its_cgroup_says_so(
        used, at_it, tmp_path):
    assert submission(used, tmp_path).at_memory_limit() is at_it


class StuckKernel(SandboxedKernelManager):
    """A kernel manager whose kernel stopped answering, its submission's memory at `used`."""

    def __init__(self, used, tmp_path):
        super().__init__()
        self._limits = submission(used, tmp_path)

    async def _async_is_alive(self):
        return False


@pytest.mark.parametrize("used, says", [
    (4 * GIB, "The grader stopped the kernel while running this cell: the notebook's "
              "processes used more than 4 GiB of memory together (files in /tmp count too)."),
    (1 * GIB, "The cell ran past the 30 s time limit and ignored the interrupt, so the "
              "grader stopped its kernel.")])
def test_a_cell_that_times_out_at_the_memory_limit_is_told_of_its_memory(
        used, says, tmp_path, monkeypatch):
    async def timed_out(self, *args, **kwargs):
        raise CellTimeoutError("timed out")

    monkeypatch.setattr(SandboxedExecute.__mro__[1], "async_execute_cell", timed_out)
    grader = SandboxedExecute(timeout=30)
    grader.km = StuckKernel(used, tmp_path)
    cell = nbformat.v4.new_code_cell("open('/tmp/fill', 'wb').write(b'x' * 2**33)")
    # In a thread of its own: in the full suite the browser tests' Playwright keeps an event
    # loop running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, grader.async_execute_cell(cell, 0)).result()
    assert [(o.ename, o.evalue) for o in cell.outputs] == [("KernelStopped", says)]
