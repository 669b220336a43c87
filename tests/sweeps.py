"""Seed sweeps computed beside the run: the stability tests' loops over 100 seeds.

A test marked `@pytest.mark.sweep(function, "parameter", ...)` asserts on what
`function(its parameters...)` returns, and asks for it with `sweeps.result(function, ...)`.
In the full suite (the run that grades the classes, in one lane) every such sweep is handed
at the start to a process of its own, in the order the tests will ask: about four minutes
of computing that the tests' one lane no longer waits on, since conftest puts these tests
after the others that do not read the classes. Elsewhere (one module, `make test-fast`)
each is computed where the test asks for it. `function` must be a module-level function
of a test module, and what it returns must pickle.
"""
import concurrent.futures
import multiprocessing
import os
import sys


def planned(items):
    """(function, arguments) of every sweep these tests will ask for, first asked first."""
    found = []
    for item in items:
        for mark in item.iter_markers("sweep"):
            function, names = mark.args[0], mark.args[1:]
            key = (function, tuple(item.callspec.params[name] for name in names))
            if key not in found:
                found.append(key)
    return found


def _start(path, threads):
    sys.path[:0] = path
    import torch

    torch.set_num_threads(threads)


class Sweeps:
    """The planned sweeps, computed one after another in one spawned process (a fresh
    interpreter: the run's own threads and state stay behind)."""

    def __init__(self, plan=()):
        self.futures = {}
        self.pool = None
        if plan:
            threads = int(os.environ.get("UDL_TORCH_THREADS", "1"))
            self.pool = concurrent.futures.ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=_start,
                initargs=(list(sys.path), threads))
            for function, arguments in plan:
                self.futures[function.__module__, function.__name__, arguments] = \
                    self.pool.submit(function, *arguments)

    def result(self, function, *arguments):
        future = self.futures.pop((function.__module__, function.__name__, arguments), None)
        return function(*arguments) if future is None else future.result()

    def stop(self):
        """Drops the sweeps not begun (a run ended early); the one under way ends first."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
