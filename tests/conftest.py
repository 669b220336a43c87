import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]  # coursekit, conftest

from coursekit.samples import course_copy  # noqa: E402
from coursekit.sync import ASSIGNMENT  # noqa: E402


def nbgrader_env():
    env = dict(os.environ)
    # nbgrader runs alembic by name; the test's interpreter is the course's venv.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def nbgrader(root, *args, check=True):
    result = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args],
                            cwd=root, env=nbgrader_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError("nbgrader %s failed:\n%s" % (" ".join(args), result.stderr[-4000:]))
    return result


@pytest.fixture(scope="session")
def course_root(tmp_path_factory):
    root = course_copy(tmp_path_factory.mktemp("course"))
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root
