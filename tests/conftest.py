import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(Path(__file__).parent)]  # coursekit, conftest

from coursekit.samples import course_copy, nbgrader_env  # noqa: E402
from coursekit.sync import ASSIGNMENT  # noqa: E402


def free_port():
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
