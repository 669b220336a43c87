import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
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
# computed (coursekit.sync), so the tests' own numbers agree with them to the bit. In the
# full suite the in-process tests also run beside the classes' gradings, where torch's
# second thread waited for a core at every operation (4 tests in 12 minutes, against 101
# in 141 s alone). Verdicts hold on any thread count, only the last digits move:
# UDL_TORCH_THREADS=2 runs the stability tests with the rounding perturbed.
torch.set_num_threads(int(os.environ.get("UDL_TORCH_THREADS", "1")))

from coursekit.course import ASSIGNMENT  # noqa: E402
from coursekit.samples import course_copy, nbgrader_env  # noqa: E402


# What `make test-fast` leaves out: tests that start a kernel, a browser, a server or Unix
# users (every test of these modules, and any test marked slow). The rest runs in about
# three minutes, for every edit; `make test` runs everything.
SLOW_MODULES = {"test_attention", "test_bench", "test_colab", "test_exchange",
                "test_formgrader", "test_grading", "test_instructor_walk", "test_judge_cheats",
                "test_jupyterlab", "test_parallel", "test_safe_grading", "test_validate"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: starts a kernel, a browser, a server or Unix "
                            "users (make test-fast leaves it out)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    # The graded classes take the longest and grade in the background from the first test
    # on (the fixture `graded_classes`): every other test runs first, beside them.
    after = after_the_classes(items)
    items[:] = [item for item in items if item not in after] + [
        item for item in items if item in after]


def reads_the_classes(item):
    return "graded_classes" in getattr(item, "fixturenames", ())


def module_fixtures(item):
    """(module, name) of each module-scoped fixture the test uses."""
    info = getattr(item, "_fixtureinfo", None)
    return {(item.module.__name__, name)
            for name, defs in (info.name2fixturedefs.items() if info else ())
            if defs and defs[-1].scope == "module"}


def after_the_classes(items):
    """The tests that read the graded classes, and every test sharing a module-scoped
    fixture with one of them: run apart, that fixture would be set up twice."""
    after = {item for item in items if reads_the_classes(item)}
    while True:
        shared = set().union(*(module_fixtures(item) for item in after))
        more = {item for item in items if item not in after and module_fixtures(item) & shared}
        if not more:
            return after
        after |= more


def checksums(folder):
    """{path under `folder`: sha256} of every file in it, to prove nothing was changed."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(Path(folder).rglob("*")) if path.is_file()}


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
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


def nbgrader(root, *args, check=True):
    result = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args],
                            cwd=root, env=nbgrader_env(), capture_output=True, text=True)
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
    result = subprocess.run(
        ["make", "--no-print-directory", "VENV=%s" % venv, "-o", "%s/.installed" % venv,
         "-o", "%s/etc/jupyter/nbgrader_config.py" % venv, *targets],
        cwd=root, env=nbgrader_env(), capture_output=True, text=True)
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
    from graded_classes import Background

    grading = Background(tmp_path_factory)
    try:
        yield grading
    finally:
        grading.stop()


@pytest.fixture(scope="session")
def graded_classes(classes_grading):
    """The sample class and the hostile class, each graded once per run (graded_classes.py):
    every test reading a graded sample, cheat or hostile case reads it here."""
    return classes_grading.result()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for every browser test (each opens pages of its own)."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
