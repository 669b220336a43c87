"""The course's own facts, each written once: where it lives, its id, assignment and notebook,
its gradebook, where Colab opens the release, and how to read a cell's nbgrader settings.

A submitted notebook's metadata can be anything (a list, a string, missing), so the
readers here never assume a dictionary before asking nbgrader's own helpers.
"""
from pathlib import Path

from nbgrader import utils

ROOT = Path(__file__).resolve().parent.parent
COURSE_ID = "udl-11-3"
ASSIGNMENT = "bn"
NOTEBOOK = "11_3_Batch_Normalization.ipynb"
SOURCE_NOTEBOOK = ROOT / "source" / ASSIGNMENT / NOTEBOOK
RELEASE_NOTEBOOK = ROOT / "release" / ASSIGNMENT / NOTEBOOK
# The generated cell that registers the checks in the student's kernel (coursekit.authoring.sync).
HELPERS_ID = "self_check_helpers"
# The modules the helpers file beside the notebook defines in the kernel, in that order: the
# files of coursekit/kernel/ (each imports the one before it), then the numbers right
# answers give on seed 0.
KERNEL_FILES = {"udl_bn_testcells": "testcells.py", "udl_bn_judge": "judge.py",
                "udl_bn_checks": "checks.py"}
KERNEL_MODULES = (*KERNEL_FILES, "udl_bn_expected")
# The GitHub repository the release is opened from in Colab (owner/name, branch).
REPOSITORY, BRANCH = "udl-courses/udl-11-3-batch-norm", "main"


def gradebook_url(root=ROOT):
    """The SQLite gradebook nbgrader keeps in a course folder."""
    return "sqlite:///%s" % (Path(root) / "gradebook.db")


def notebook_metadata(path):
    """A notebook file's metadata, or {} when the file or its metadata cannot be read."""
    import json

    try:
        with open(path, encoding="utf-8") as handle:
            metadata = json.load(handle).get("metadata")
    except (OSError, ValueError, AttributeError):
        return {}
    return metadata if isinstance(metadata, dict) else {}


def settings(cell):
    """A cell's nbgrader settings, or {} when it has none that nbgrader could read."""
    found = cell.get("metadata", {}).get("nbgrader") if isinstance(
        cell.get("metadata"), dict) else None
    return found if isinstance(found, dict) else {}


def grade_id(cell):
    return settings(cell).get("grade_id")


def is_graded(cell):
    return bool(settings(cell)) and bool(utils.is_grade(cell))


def is_solution(cell):
    return bool(settings(cell)) and bool(utils.is_solution(cell))


def is_locked(cell):
    return bool(settings(cell)) and bool(utils.is_locked(cell))
