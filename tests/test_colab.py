"""Self-study in Colab: the release runs with only torch, numpy, matplotlib and mnist1d.

Colab has no nbgrader and no course files, so the release is run here the way Colab would
run it: alone in an empty folder, in a fresh virtualenv holding exactly those four packages
(at the course's pinned versions) and a kernel.
"""
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from packaging.requirements import Requirement

from conftest import ROOT
from coursekit.authoring import sync
from coursekit.course import ASSIGNMENT, BRANCH, NOTEBOOK, RELEASE_NOTEBOOK, REPOSITORY, grade_id
from coursekit.grading.verdicts import printed_verdicts
from coursekit.examples.samples import SAMPLES, make_submission

STUDENT_PACKAGES = ("torch", "numpy", "matplotlib", "mnist1d", "ipykernel")


def pinned(names):
    """The requirement lines of requirements.txt for these packages (same versions)."""
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    found = [line for line in lines
             if re.split(r"[<>=\[ ]", line, maxsplit=1)[0] in names]
    assert len(found) == len(names), found
    return found


def normalized(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_closure(names):
    """{normalized name: distribution} of what is installed here that `names` need, their
    requirements followed through environment markers (extras left out): what pip would
    install for them."""
    found, wanted = {}, list(names)
    while wanted:
        name = wanted.pop()
        if normalized(name) in found:
            continue
        found[normalized(name)] = distribution = metadata.distribution(name)
        for line in distribution.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                wanted.append(requirement.name)
    return found


def link_distributions(distributions, site_packages):
    """Each installed file of `distributions` linked into `site_packages` at its place: the
    venv then holds those packages and nothing else, without unpacking torch again (a
    minute of the suite's time)."""
    for distribution in distributions:
        for file in distribution.files or []:
            if file.parts[0] == "..":  # scripts and data outside site-packages
                continue
            source, target = Path(distribution.locate_file(file)), site_packages / file
            if not source.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:  # another file system
                target.symlink_to(source)


@pytest.fixture(scope="session")
def plain_kernel(tmp_path_factory):
    """A kernel spec whose Python has only the student packages, at the versions the course
    pins (this virtualenv's own, installed from requirements.txt). Their shared
    requirements (traitlets, tornado, jupyter-client) are at the versions pip chose beside
    nbgrader: what this proves is that the release runs without the course's tooling, not
    that the student lines alone resolve the same way."""
    home = tmp_path_factory.mktemp("colab")
    venv = home / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site_packages = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True).stdout.strip())
    closure = installed_closure(STUDENT_PACKAGES)
    for line in pinned(STUDENT_PACKAGES):
        requirement = Requirement(line)
        installed = closure[normalized(requirement.name)].version
        assert requirement.specifier.contains(installed, prereleases=True), (line, installed)
    link_distributions(closure.values(), site_packages)
    subprocess.run([str(python), "-m", "ipykernel", "install", "--prefix", str(home / "jp"),
                    "--name", "plain"], check=True, capture_output=True)
    return python, home / "jp" / "share" / "jupyter" / "kernels"


def run_in_plain_kernel(notebook, plain_kernel, folder):
    """Run `notebook` in `folder`, which holds what Colab's first cell fetches (this machine
    has no network: test_the_first_cell_fetches_the_helpers_of_this_repositorys_release)."""
    _, kernels = plain_kernel
    sync.place_helpers(folder)
    manager = KernelManager(kernel_name="plain",
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)]))
    client = NotebookClient(notebook, km=manager, timeout=300, allow_errors=True,
                            resources={"metadata": {"path": str(folder)}})
    try:
        client.execute()
    finally:
        # nbclient leaves running a kernel whose manager it was given: it held a core's
        # worth of torch for the rest of the run.
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    return notebook


def test_plain_environment_has_no_course_tooling(plain_kernel):
    python, _ = plain_kernel
    for module in ("nbgrader", "coursekit", "jupyterlab", "udl_bn_checks"):
        found = subprocess.run([str(python), "-c", "import %s" % module],
                               capture_output=True, cwd="/")
        assert found.returncode != 0, module


def test_reference_answers_run_in_colab_alone(plain_kernel, tmp_path):
    notebook = make_submission(SAMPLES["reference"]())
    run_in_plain_kernel(notebook, plain_kernel, tmp_path)
    errors = [(grade_id(c), o.ename, o.evalue) for c in notebook.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert errors == []
    install = next(c for c in notebook.cells if grade_id(c) == "install")
    assert install.outputs == [], "the install cell should do nothing when all is there"
    # MNIST-1D was built right there, not downloaded or copied in.
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == \
        ["mnist1d_data.pkl", sync.HELPERS_FILE]
    checks = [c for c in notebook.cells if grade_id(c).startswith("test_")]
    printed = "".join(o.get("text", "") for c in checks for o in c.outputs)
    assert printed.count("✓ ") == len(checks) and "✗" not in printed
    figure = next(c for c in notebook.cells if grade_id(c) == "draw_figure")
    assert any("image/png" in o.get("data", {}) for o in figure.outputs)


def test_self_checks_in_colab_say_what_the_grader_says(plain_kernel, tmp_path):
    """The seed's mistakes, diagnosed in Colab with the messages its feedback gives."""
    notebook = make_submission(SAMPLES["seed"]())
    run_in_plain_kernel(notebook, plain_kernel, tmp_path)
    graded = nbformat.read(ROOT / "autograded" / "seed" / ASSIGNMENT / NOTEBOOK, as_version=4)
    hidden = {grade_id(c): o.evalue for c in graded.cells for o in c.get("outputs", [])
              if o.output_type == "error" and o.ename == "AssertionError"}
    # The check cells' own lines (the last cell lists them all again).
    seen = {grade_id(c): message for c in notebook.cells
            if c.cell_type == "code" and grade_id(c).startswith("test_")
            for mark, message in printed_verdicts(c.outputs) if mark == "✗"}
    assert len(hidden) >= 5 and seen == hidden


def test_colab_badge_opens_this_repositorys_release():
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    badge = release.cells[0]
    assert grade_id(badge) == sync.BADGE_ID and badge.source == sync.badge_source()
    url = re.search(r'href="([^"]+)"', badge.source).group(1)
    prefix = "https://colab.research.google.com/github/%s/blob/%s/" % (REPOSITORY, BRANCH)
    assert url.startswith(prefix)
    assert (ROOT / url[len(prefix):]).resolve() == Path(RELEASE_NOTEBOOK).resolve()
    # Set in one place: no other file of the course spells the address out.
    spelled = subprocess.run(["git", "grep", "-l", REPOSITORY], cwd=ROOT,
                             capture_output=True, text=True).stdout.split()
    assert [f for f in spelled if not f.endswith(".ipynb") and not f.endswith(".html")] == \
        ["coursekit/course.py"]


def test_the_first_cell_fetches_the_helpers_of_this_repositorys_release(tmp_path):
    """Colab opens the notebook alone: its first code cell fetches the helpers file from
    the release folder of this repository, and says so in one line when it cannot."""
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    install = next(c for c in release.cells if grade_id(c) == sync.INSTALL_ID)
    assert install.source == sync.install_source()
    url = re.search(r"'(https://raw\.githubusercontent\.com/[^']+)'", install.source).group(1)
    prefix = "https://raw.githubusercontent.com/%s/%s/" % (REPOSITORY, BRANCH)
    assert url.startswith(prefix)
    shipped = ROOT / url[len(prefix):]
    assert shipped == Path(RELEASE_NOTEBOOK).parent / sync.HELPERS_FILE
    assert shipped.read_text() == sync.helpers_file_text()
    # No network here: the fetch fails with one line, not a traceback.
    code = install.source.replace("    %pip install --quiet", "    pass  #")
    code = code.replace("https://raw.githubusercontent.com", "http://127.0.0.1:9")
    said = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert said.returncode == 0 and said.stderr == "", said.stderr
    assert said.stdout.startswith("Could not fetch %s (" % sync.HELPERS_FILE), said.stdout
    assert said.stdout.count("\n") == 1 and not (tmp_path / sync.HELPERS_FILE).exists()
