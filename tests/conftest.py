import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]  # coursekit, conftest

from coursekit.sync import ASSIGNMENT  # noqa: E402

# What a course copy needs to release and grade; submissions are added per test.
COURSE_FILES = ["nbgrader_config.py", "coursekit", "source"]


def nbgrader_env():
    env = dict(os.environ)
    # nbgrader runs alembic by name; the test's interpreter is the course's venv.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def make_course(root):
    """A throwaway copy of the course with a fresh gradebook and no submissions."""
    root.mkdir(parents=True, exist_ok=True)
    for name in COURSE_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    return root


def nbgrader(root, *args, check=True):
    result = subprocess.run([str(Path(sys.executable).parent / "nbgrader"), *args],
                            cwd=root, env=nbgrader_env(), capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError("nbgrader %s failed:\n%s" % (" ".join(args), result.stderr[-4000:]))
    return result


@pytest.fixture(scope="session")
def course_root(tmp_path_factory):
    root = make_course(tmp_path_factory.mktemp("course"))
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root
