"""Reading a submission before it is graded: broken files, and notebooks that lost their
nbgrader metadata.

`read_submission(path)` returns the notebook or raises `SubmissionProblem` with a sentence
an instructor can act on (missing, empty, not JSON, not a notebook). `restore_metadata`
gives back the nbgrader metadata that some editors strip, by matching the student's cells
to the release: unchanged cells match exactly, the cells in between are paired by type
and similarity. A notebook too far from the release to match raises `SubmissionProblem`.
"""
import difflib
import json
import os

import nbformat

# A submission is matched when at least this share of the release's fixed (locked)
# cells is found unchanged in it.
MIN_LOCKED_FOUND = 0.5


class SubmissionProblem(Exception):
    """A submission that cannot be graded as it is; the message says why."""


def read_submission(path):
    if not os.path.exists(path):
        folder = os.path.dirname(path)
        others = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        holds = "it holds: %s" % ", ".join(others) if others else "it is empty"
        raise SubmissionProblem("%s is missing (%s)" % (path, holds))
    with open(path, "rb") as handle:
        raw = handle.read()
    if not raw.strip():
        raise SubmissionProblem("%s is empty (%d bytes): the upload probably failed"
                                % (path, len(raw)))
    try:
        content = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SubmissionProblem("%s is not a text file, so not a notebook" % path) from None
    except json.JSONDecodeError as error:
        raise SubmissionProblem(
            "%s is not valid JSON (line %d, column %d: %s): the file was cut short or "
            "edited outside Jupyter" % (path, error.lineno, error.colno, error.msg)) from None
    if not isinstance(content, dict) or not isinstance(content.get("cells"), list):
        raise SubmissionProblem("%s is JSON but not a notebook (it has no list of cells)" % path)
    try:
        return nbformat.reads(raw.decode("utf-8"), as_version=4)
    except Exception as error:  # nbformat raises several kinds for malformed notebooks
        raise SubmissionProblem("%s is not a readable notebook (%s)"
                                % (path, str(error).splitlines()[0])) from None


def grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _key(cell):
    return cell.cell_type, "\n".join(line.rstrip() for line in cell.source.strip().splitlines())


def restore_metadata(notebook, release, name="the notebook"):
    """Give cells of `notebook` the nbgrader metadata of the release cells they match.

    Returns the grade ids restored (an empty list when nothing was missing). Release cells
    that match nothing stay missing; nbgrader re-inserts the graded ones.
    """
    present = {grade_id(cell) for cell in notebook.cells} - {None}
    wanted = [i for i, cell in enumerate(release.cells)
              if grade_id(cell) and grade_id(cell) not in present]
    if not wanted:
        return []
    free = [i for i, cell in enumerate(notebook.cells) if not grade_id(cell)]
    release_keys = [_key(cell) for cell in release.cells]
    student_keys = [_key(notebook.cells[i]) for i in free]
    pairs = {}  # release index -> student index
    matcher = difflib.SequenceMatcher(None, release_keys, student_keys, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            pairs[block.a + k] = free[block.b + k]

    locked = [i for i, cell in enumerate(release.cells)
              if cell.metadata.get("nbgrader", {}).get("locked")]
    found = sum(1 for i in locked if i in pairs or grade_id(release.cells[i]) in present)
    if locked and found < MIN_LOCKED_FOUND * len(locked):
        raise SubmissionProblem(
            "%s cannot be matched to the release: only %d of its %d fixed cells are in it, "
            "so it is probably another assignment's notebook or rewritten from scratch; "
            "grade it by hand" % (name, found, len(locked)))

    # Cells between two matched neighbours were edited (answers, tampered cells): pair
    # each with the most similar cell of the same type in the same stretch.
    taken = set(pairs.values())
    for index in wanted:
        if index in pairs:
            continue
        before = max([pairs[i] for i in pairs if i < index], default=-1)
        after = min([pairs[i] for i in pairs if i > index], default=len(notebook.cells))
        candidates = [j for j in free if before < j < after and j not in taken
                      and notebook.cells[j].cell_type == release.cells[index].cell_type]
        if candidates:
            similarity = [(difflib.SequenceMatcher(None, release.cells[index].source,
                                                   notebook.cells[j].source).ratio(), -j)
                          for j in candidates]
            best = -max(similarity)[1]
            pairs[index] = best
            taken.add(best)

    restored = []
    for index in wanted:
        if index in pairs:
            cell = notebook.cells[pairs[index]]
            cell.metadata["nbgrader"] = dict(release.cells[index].metadata["nbgrader"])
            restored.append(grade_id(cell))
    return restored
