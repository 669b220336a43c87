"""What the tests share: the course's paths and commands (`make`, `nbgrader`, a JupyterLab
server, one Chromium), the run's order (the tests that do not read the graded classes
first, beside the classes grading in the background; then the work computed ahead
(`graded_ahead`); then the classes' readers), the lanes of `pytest -n` (`one_lane`), and
the modules `make test-fast` leaves out (SLOW_MODULES).
"""
import collections
import concurrent.futures
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]  # coursekit, conftest
# Screenshots of the browser tests, for a person to look at.
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, with no network: without these Chromium keeps dialling Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
TOKEN = "udl-11-3-test"
# One torch thread, as in the graded kernels and as the kernel's seed-0 numbers were
# computed (coursekit.authoring.sync), so the tests' own numbers agree with them to the bit. In the
# full suite the in-process tests also run beside the classes' gradings, where torch's
# second thread waited for a core at every operation (4 tests in 12 minutes, against 101
# in 141 s alone). Verdicts hold on any thread count, only the last digits move:
# UDL_TORCH_THREADS=2 runs the stability tests with the rounding perturbed.
torch.set_num_threads(int(os.environ.get("UDL_TORCH_THREADS", "1")))

from coursekit.course import ASSIGNMENT  # noqa: E402
from coursekit.examples.samples import course_copy, nbgrader_env  # noqa: E402
from coursekit.grading import gradebook  # noqa: E402

# Gradebooks made by the tests themselves are stamped as the course's commands stamp
# theirs (nbgrader_config.py), without an `alembic` process each.
gradebook.stamp_new_gradebooks_in_process()


# What `make test-fast` leaves out: tests that start a kernel, a browser, a server or Unix
# users (every test of these modules, and any test marked slow). The rest runs in about
# a minute and a half in two lanes, for every edit; `make test` runs everything.
SLOW_MODULES = {"test_attention", "test_bench", "test_colab", "test_exchange",
                "test_formgrader", "test_grading", "test_instructor_walk", "test_judge_cheats",
                "test_jupyterlab", "test_parallel", "test_safe_grading", "test_validate"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts a kernel, a browser, a server or Unix "
                            "users (make test-fast leaves it out)")
    config.addinivalue_line("markers", "one_lane(name): every test holding `name` (Unix "
                            "users, say) runs in the same lane of `pytest -n N`")
    # `pytest -n N` (make test-fast): lanes as `lanes` draws them.
    if getattr(config.option, "dist", "no") == "load":
        from xdist._version import version_tuple as xdist_version

        if pytest.version_tuple[:2] >= (9, 2) and xdist_version[:2] <= (3, 8):
            raise pytest.UsageError(LANES_BROKEN)
        config.option.dist = "loadgroup"
        config.option.loadscopereorder = False
    if getattr(config, "workerinput", {}).get("lanes"):
        config.option.loadgroup = True  # a lane reads its options from the command line


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """Tells each lane (pytest-xdist) that the run groups its tests, as pytest_configure
    decided."""
    node.workerinput["lanes"] = node.config.getvalue("dist") == "loadgroup"


# First: pytest-xdist reads the lanes' marks when its own hook runs.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    # The graded classes take the longest and grade in the background from the first test
    # on (the fixture `graded_classes`): every other test runs first, beside them. Just
    # before them come the tests of work computed ahead (graded_ahead), which the
    # background begins once a class is graded: the later they ask, the less they wait.
    after = after_the_classes(items)
    ahead = sharing_module_fixtures(
        {item for item in items if item not in after and uses_work_ahead(item)}, items) - after
    items[:] = ([item for item in items if item not in after and item not in ahead]
                + [item for item in items if item in ahead]
                + [item for item in items if item in after])
    lane = lanes(items)
    for item in items:
        if item in lane:
            item.add_marker(pytest.mark.xdist_group(lane[item]), append=False)


LANES_BROKEN = ("pytest-xdist would not keep this run's lanes (its issue 1386, pytest 9.2 "
                "with pytest-xdist 3.8), so every lane would set up every shared fixture "
                "again: install the versions requirements.txt asks for (make test does).")


def pytest_collection_finish(session):
    grouped = [item for item in session.items if item.get_closest_marker("xdist_group")]
    if session.config.getoption("loadgroup", False) and grouped and "@" not in grouped[0].nodeid:
        raise pytest.UsageError(LANES_BROKEN)


def reads_the_classes(item):
    return "graded_classes" in getattr(item, "fixturenames", ())


def fixture_defs(item):
    info = getattr(item, "_fixtureinfo", None)
    return {name: defs[-1] for name, defs in (info.name2fixturedefs.items() if info else ())
            if defs}


def module_fixtures(item):
    """(module, name) of each module-scoped fixture the test uses."""
    return {(item.module.__name__, name) for name, fixture in fixture_defs(item).items()
            if fixture.scope == "module"}


def uses_work_ahead(item):
    return bool(AHEAD.keys() & set(getattr(item, "fixturenames", ())))


def sharing_module_fixtures(chosen, items):
    """`chosen`, and every test of `items` sharing a module-scoped fixture with one of
    them: run apart, that fixture would be set up twice."""
    chosen = set(chosen)
    while True:
        shared = set().union(*(module_fixtures(item) for item in chosen))
        more = {item for item in items if item not in chosen and module_fixtures(item) & shared}
        if not more:
            return chosen
        chosen |= more


def after_the_classes(items):
    """The tests that read the graded classes, with those sharing a module's fixture."""
    return sharing_module_fixtures({item for item in items if reads_the_classes(item)}, items)


# Session fixtures every lane may make for itself: a release (seconds), and the graded
# classes (every test of the run has them; only a run in one lane grades them).
EVERY_LANE = {"course_root", "classes_grading"}


def shared_setup(item):
    """What the test shares with others that must be set up once, in one lane: its
    module's fixtures, the course's costly session fixtures (one Chromium, test_parallel's
    gradings), and what a `one_lane` mark names (Unix users added and removed)."""
    fixtures = fixture_defs(item)

    keys = module_fixtures(item)
    keys |= {("session", name) for name, fixture in fixtures.items()
             if fixture.scope == "session" and name not in EVERY_LANE
             and Path(fixture.baseid or ".").parts[:1] == ("tests",)}
    keys |= {("mark", mark.args[0]) for mark in item.iter_markers("one_lane")}
    return keys


def lanes(items):
    """{test: its group} for each test that shares setup with others (`shared_setup`):
    `pytest -n 2` runs a group in one lane, and spreads every other test one by one."""
    parent = {}

    def root(key):
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    keys = {item: sorted(shared_setup(item)) for item in items}
    for first, *rest in (k for k in keys.values() if k):
        for key in rest:
            parent[root(key)] = root(first)
    modules = {}
    for item, held in keys.items():
        if held:
            modules.setdefault(root(held[0]), set()).add(item.module.__name__)
    names, taken = {}, collections.Counter()
    for group, held_by in modules.items():
        name = "+".join(sorted(held_by))
        taken[name] += 1
        names[group] = name if taken[name] == 1 else "%s#%d" % (name, taken[name])
    return {item: names[root(held[0])] for item, held in keys.items() if held}


def checksums(folder):
    """{path under `folder`: sha256} of every file in it, to prove nothing was changed."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(Path(folder).rglob("*")) if path.is_file()}


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# `python -m jupyterlab`, which writes every thread's stack to its log on SIGUSR2
# (server_stacks: what a test shows when the server stops answering; the server keeps
# SIGUSR1 to print where it serves).
SERVER_WITH_STACKS = ("import faulthandler, signal, sys\n"
                      "faulthandler.register(signal.SIGUSR2, all_threads=True)\n"
                      "from jupyterlab.labapp import main\n"
                      "sys.exit(main())\n")


def server_stacks(home, lines=120):
    """The last `lines` of the log of the JupyterLab that jupyterlab_server started with
    this `home`, once it has written every thread's stack there."""
    for runtime in (home / "runtime").glob("jpserver-*.json"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            os.kill(json.loads(runtime.read_text())["pid"], signal.SIGUSR2)
    time.sleep(2)
    return "\n".join((home / "lab.log").read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def jupyterlab_server(root_dir, home, env, *options, cwd=None):
    """JupyterLab serving `root_dir`, started in `cwd` (`root_dir` by default: nbgrader's
    handlers read nbgrader_config.py from there), on a free loopback port, with its settings
    and runtime files under `home`: yields its URL, and stops it afterwards."""
    env = dict(env, JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), HOME=str(home))
    url = "http://127.0.0.1:%d" % free_port()
    with open(home / "lab.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER_WITH_STACKS, "--no-browser", "--allow-root",
             "--ip=127.0.0.1", "--port=%s" % url.rsplit(":", 1)[1],
             "--ServerApp.root_dir=%s" % root_dir, "--IdentityProvider.token=%s" % TOKEN,
             "--ServerApp.open_browser=False", *options],
            cwd=cwd or root_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen("%s/api/status?token=%s" % (url, TOKEN), timeout=2)
                    break
                except OSError:
                    if time.time() > deadline or server.poll() is not None:
                        pytest.fail("JupyterLab did not start:\n"
                                    + (home / "lab.log").read_text())
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


# Commands run for work computed ahead go through the background's Commands (set for its
# thread by graded_classes.Ahead), which stops them when the run ends early.
BACKGROUND = threading.local()


def run_command(command, cwd, env, timeout=None):
    """subprocess.run(command) with its output as text; stoppable in the background."""
    commands = getattr(BACKGROUND, "commands", None)
    if commands is not None:
        return commands.run(command, cwd, env, timeout=timeout)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def in_a_thread_of_its_own(function, *arguments):
    """function(*arguments), run in a new thread that runs commands as this one does
    (BACKGROUND): its result, or its error raised here. Playwright's sync API allows one
    Playwright per thread, and the run's `browser` lives in the main thread."""
    commands = getattr(BACKGROUND, "commands", None)

    def run():
        BACKGROUND.commands = commands
        return function(*arguments)

    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(run).result()


def nbgrader(root, *args, check=True):
    result = run_command([str(Path(sys.executable).parent / "nbgrader"), *args], root,
                         nbgrader_env())
    if check and result.returncode != 0:
        raise AssertionError("nbgrader %s failed:\n%s" % (" ".join(args), result.stderr[-4000:]))
    return result


def make(root, *targets, check=True):
    """Run the course's Makefile in the course copy `root` with this checkout's virtualenv,
    as an instructor runs it (the venv is never rebuilt or rewritten from there)."""
    for name in ("Makefile", "requirements.txt"):
        if not (root / name).exists():
            # copy2 keeps requirements.txt's date: `make grade` runs sub-makes, which the
            # -o options below do not reach; they must find the venv up to date.
            shutil.copy2(ROOT / name, root / name)
    venv = Path(sys.executable).parent.parent
    result = run_command(
        ["make", "--no-print-directory", "VENV=%s" % venv, "-o", "%s/.installed" % venv,
         "-o", "%s/etc/jupyter/nbgrader_config.py" % venv, *targets], root, nbgrader_env())
    if check and result.returncode != 0:
        raise AssertionError("make %s failed:\n%s" % (" ".join(targets),
                                                      (result.stdout + result.stderr)[-4000:]))
    return result


@pytest.fixture(scope="session")
def course_root(tmp_path_factory):
    root = course_copy(tmp_path_factory.mktemp("course"))
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root


@pytest.fixture(scope="session", autouse=True)
def classes_grading(request, tmp_path_factory):
    """Starts grading the classes before the first test when any test of the run reads
    them, so that they grade while the tests that do not run; stops them at the end."""
    if not any(reads_the_classes(item) for item in request.session.items):
        yield None
        return
    if hasattr(request.config, "workerinput"):
        # Measured: a second lane slowed the classes, which every reader waits for, more
        # than it gained (28 minutes against 23, docs/scale.md).
        yield OneLaneOnly()
        return
    from graded_classes import Background

    grading = Background(tmp_path_factory, ahead_in_order(request.session.items))
    try:
        yield grading
    finally:
        grading.stop()


class OneLaneOnly:
    def result(self):
        pytest.fail("The graded classes are graded in one lane: run these tests without -n "
                    "(make test does). pytest -n is for make test-fast.", pytrace=False)

    def ahead(self, name, function, tmp_path_factory):
        return function(tmp_path_factory)


# {name: function} of the fixtures made with graded_ahead.
AHEAD = {}


def graded_ahead(function):
    """A session fixture computed beside the tests once a graded class frees a core
    (graded_classes.Background), or where a test first asks for it when its turn has not
    come. `function(tmp_path_factory)` may only grade and run commands in course copies of
    its own: it runs in a thread, while other tests run."""
    AHEAD[function.__name__] = function

    @pytest.fixture(scope="session", name=function.__name__)
    def fixture(classes_grading, tmp_path_factory):
        if classes_grading is None:  # a run that grades no class
            return function(tmp_path_factory)
        return classes_grading.ahead(function.__name__, function, tmp_path_factory)

    fixture.__doc__ = function.__doc__
    return fixture


def ahead_in_order(items):
    """(name, function) of each graded_ahead fixture these tests use, first used first."""
    used = {}
    for item in items:
        for name in getattr(item, "fixturenames", ()):
            if name in AHEAD:
                used.setdefault(name, AHEAD[name])
    return list(used.items())


@pytest.fixture(scope="session")
def graded_classes(classes_grading):
    """The sample class and the hostile class, each graded once per run (graded_classes.py):
    every test reading a graded sample, cheat or hostile case reads it here."""
    return classes_grading.result()


@contextlib.contextmanager
def chromium():
    """A headless Chromium, for the thread that opens it (Playwright's objects belong to
    the thread that made them)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test in the run's own thread (each opens
    pages of its own)."""
    with chromium() as launched:
        yield launched
