"""Which submissions need the instructor's attention, written down once by the autograder.

The autograder (coursekit.grading.autograde) keeps one file per student beside their graded folder,
``autograded/<student>/<assignment>.needs-attention.txt``, holding one sentence: why the
submission could not be graded, why grading stopped, or what the judge saw it tamper with.
It writes the file when it starts grading a student (so a run that dies midway leaves
"did not finish"), replaces it with what it found, and removes it when there is nothing to
look at. The parallel runner, the grade table and the exit statuses read it; none of them
works it out again.

The file sits outside ``autograded/<student>/<assignment>/``, where nbgrader, the feedback
and the formgrader look, so it changes nothing they see.
"""
import os
from pathlib import Path
from typing import Dict, Optional

from coursekit.course import ASSIGNMENT, NOTEBOOK, ROOT

UNFINISHED = "grading did not finish (the run stopped or was killed): see the autograde log"
NOT_GRADED = "not graded yet: run make autograde"


def record_path(root, assignment, student):
    return Path(root) / "autograded" / student / ("%s.needs-attention.txt" % assignment)


def record(root, assignment, student, why):
    """Say that `student` needs attention, and why (replacing what was said before)."""
    path = record_path(root, assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole or not at all: readers run while other workers grade.
    partial = path.with_name(path.name + ".%d.tmp" % os.getpid())
    partial.write_text(" ".join(why.split()) + "\n", encoding="utf-8")
    os.replace(partial, path)


def clear(root, assignment, student):
    """Grading `student` found nothing for the instructor to look at."""
    try:
        record_path(root, assignment, student).unlink()
    except FileNotFoundError:
        pass


def read(root, assignment, student, since=None) -> Optional[str]:
    """Why `student` needs attention, or None; with `since` (a time.time()), only what was
    recorded since then."""
    path = record_path(root, assignment, student)
    try:
        if since is not None and path.stat().st_mtime < since:
            return None
        said = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as error:
        return "the attention record could not be read (%s): grade this student again" % (
            type(error).__name__)
    return said or None


def of_class(root=ROOT, assignment=ASSIGNMENT) -> Dict[str, str]:
    """{student: why}, for every student with a submission who needs attention."""
    found = {}
    for folder in sorted((Path(root) / "submitted").glob("*/" + assignment)):
        student = folder.parent.name
        why = read(root, assignment, student)
        if why is None and not (Path(root) / "autograded" / student / assignment
                                / NOTEBOOK).exists():
            why = NOT_GRADED
        if why:
            found[student] = why
    return found
