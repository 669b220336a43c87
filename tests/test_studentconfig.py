"""What every student's nbgrader loads (coursekit/classroom/studentconfig.py), without a browser.

The config text carries coursekit/grading/validate.py and
coursekit/classroom/studentconfig.py as code, into the virtualenv's guard (`make`) and the
students' config (`coursekit.classroom.exchange`). These tests run it the way nbgrader does,
in a fresh interpreter with nothing of the course's on sys.path: the course folder is
private on a JupyterHub. tests/test_jupyterlab.py clicks Validate in JupyterLabs started
outside the course folder.
"""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from coursekit.classroom import exchange, studentconfig
from coursekit.classroom.studentconfig import INSTRUCTOR_TOOLS, without_instructor_tools

GUARD = Path("etc", "jupyter", "nbgrader_config.py")


def installed_guard(folder):
    """The guard `make` installs into a virtualenv at `folder` (this interpreter's, linked):
    the folder Jupyter would read it from."""
    venv = folder / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text('#!/bin/sh\nexec %s "$@"\n' % sys.executable)
    python.chmod(0o755)
    (venv / ".installed").touch()
    make_guard(venv)
    return venv / GUARD


def make_guard(venv, *options):
    """Only the guard's own rule runs: its other prerequisites are this checkout's files."""
    return subprocess.run(["make", "--no-print-directory", "-f", str(ROOT / "Makefile"),
                           "VENV=%s" % venv, "-o", "%s/.installed" % venv, *options,
                           str(venv / GUARD)],
                          cwd=ROOT, check=True, capture_output=True, text=True)


def run_config(path, code):
    """Load the config file at `path` as nbgrader does, in a fresh interpreter that
    cannot import coursekit, then run `code`; returns what it printed."""
    program = ("from traitlets.config.loader import PyFileConfigLoader\n"
               "config = PyFileConfigLoader(%r, path=%r).load_config()\n"
               % (path.name, str(path.parent))
               + code)
    result = subprocess.run([sys.executable, "-c", program], cwd=path.parent,
                            env=dict(os.environ, PYTHONPATH=""), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def course_only(tree):
    """The `else:` parts of `if __name__...:` tests: what a module runs only where it is
    not carried (validate.py imports its neighbours there from the package)."""
    return [part for node in ast.walk(tree) if isinstance(node, ast.If)
            and "__name__" in ast.unparse(node.test) for part in node.orelse]


def test_the_carried_modules_import_nothing_of_the_course():
    for _, name in studentconfig.CARRIED:
        tree = ast.parse((ROOT / "coursekit" / name).read_text())
        skipped = {id(node) for part in course_only(tree) for node in ast.walk(part)}
        nodes = [node for node in ast.walk(tree) if id(node) not in skipped]
        imported = {alias.name for node in nodes if isinstance(node, ast.Import)
                    for alias in node.names}
        imported |= {node.module for node in nodes
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert not [module for module in imported if module.startswith("coursekit")], name


def test_the_guard_make_installs_refuses_to_autograde_and_reports_every_check(tmp_path):
    guard = installed_guard(tmp_path)
    assert guard.read_text() == ((ROOT / "coursekit" / "grading" / "failclosed.py").read_text()
                                 + studentconfig.config_text())
    said = run_config(guard, (
        "import sys\n"
        "from nbgrader.apps import api, autogradeapp, validateapp\n"
        "assert 'coursekit' not in sys.modules\n"
        "print(autogradeapp.Autograde.__name__, api.Autograde.__name__,\n"
        "      validateapp.Validator.__name__, validateapp.Validator.__module__)\n"))
    assert said.stdout.split() == ["ConfigNotLoaded", "ConfigNotLoaded", "CourseValidator",
                                   "udl_bn_validate"]


def test_a_carried_module_that_fails_is_logged_and_the_refusal_stays(tmp_path):
    guard = installed_guard(tmp_path)
    said = run_config(guard, (
        "import logging\n"
        "logging.basicConfig()\n"
        "namespace = {'get_config': lambda: None, 'c': None}\n"
        "exec(open(%r).read(), namespace)\n"
        "namespace['_udl_bn_load']('udl_bn_broken', 'raise RuntimeError(\"broken\")')\n"
        "from nbgrader.apps import autogradeapp\n"
        "print(autogradeapp.Autograde.__name__)\n" % str(guard)))
    assert said.stdout.split() == ["ConfigNotLoaded"]
    assert "The course's udl_bn_broken did not load" in said.stderr


def test_the_students_config_alone_reports_every_check(tmp_path):
    config = tmp_path / "nbgrader_config.py"
    config.write_text(exchange.student_config("/srv/nbgrader/exchange"))
    said = run_config(config, (
        "from nbgrader.apps import validateapp\n"
        "print(validateapp.Validator.__name__, config.Exchange.root,\n"
        "      config.CourseDirectory.course_id)\n"))
    assert said.stdout.split() == ["CourseValidator", "/srv/nbgrader/exchange", "udl-11-3"]


@pytest.mark.parametrize("disabled", [[], ["@jupyterlab/some:plugin"]])
def test_a_student_jupyterlab_gets_no_instructor_tools(tmp_path, monkeypatch, disabled):
    monkeypatch.chdir(tmp_path)
    page = without_instructor_tools({"disabledExtensions": list(disabled)})
    assert page["disabledExtensions"] == disabled + list(INSTRUCTOR_TOOLS)


def test_the_instructors_jupyterlab_in_the_course_folder_keeps_them(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert without_instructor_tools({"disabledExtensions": []}) == {"disabledExtensions": []}


def test_make_refreshes_the_guard_when_a_carried_module_changes(tmp_path):
    guard = installed_guard(tmp_path)
    os.utime(guard, (1, 1))  # older than every prerequisite
    dry = make_guard(guard.parents[2], "-n")
    assert "coursekit.classroom.studentconfig" in dry.stdout, dry.stdout
