"""What each `make release` publishes, so a change mid-term is safe.

- Points live in ``coursekit/kernel/testcells.py``: ``coursekit.authoring.sync`` writes
  them into the source notebook's test cells on every release. A test cell whose points
  were edited in the notebook itself would be put back without a word; ``check-points``
  refuses first, naming the cells and the file to edit (``make release`` runs it before
  sync).
- Students keep the release they fetched. When a fixed cell changes mid-term (a TODO's
  wording, a check's points), an honest student's notebook still holds the earlier text,
  which is not an edit of theirs. ``record`` (``make release`` runs it last) adds the
  release's fixed cells, as digests, to ``published-releases.json`` at the course root, one
  entry per distinct release; ``as_published`` says whether a cell's text is that of any
  release ever published. The grade table reads it (coursekit.classroom.report).

    python -m coursekit.authoring.releases check-points   # before coursekit.authoring.sync
    python -m coursekit.authoring.releases record         # after nbgrader generate_assignment
"""
import argparse
import functools
import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set

import nbformat

from coursekit.course import (ASSIGNMENT, NOTEBOOK, ROOT, grade_id, is_graded, is_locked, settings)

RECORD_NAME = "published-releases.json"


def release_notebooks(coursedir, assignment):
    """{notebook name: release notebook} of an assignment (read again only when changed).

    Callers only read these notebooks: every student of a class shares one copy.
    """
    folder = coursedir.format_path(coursedir.release_directory, ".", assignment)
    names = sorted(name for name in os.listdir(folder) if name.endswith(".ipynb"))
    return _read_release(folder, tuple(
        (name, os.stat(os.path.join(folder, name)).st_mtime_ns) for name in names))


@functools.lru_cache(maxsize=8)
def _read_release(folder, stamped_names):
    return {name[:-len(".ipynb")]: nbformat.read(os.path.join(folder, name), as_version=4)
            for name, _ in stamped_names}


def record_path(root=ROOT):
    return Path(root) / RECORD_NAME


def cell_digest(cell):
    """A fixed cell's type and text, blind to trailing spaces and blank lines (as the grader
    compares them: coursekit.grading.intake)."""
    text = "\n".join(line.rstrip() for line in str(cell.get("source", "")).splitlines()
                     if line.strip())
    return hashlib.sha256(("%s\n%s" % (cell.get("cell_type"), text)).encode()).hexdigest()


@dataclass(frozen=True)
class Release:
    """One published release: {grade id: digest} of its fixed cells."""
    cells: Dict[str, str]


def fixed_cells(notebook):
    found = {}
    for cell in notebook.cells:
        if is_locked(cell) and grade_id(cell):
            found.setdefault(grade_id(cell), cell_digest(cell))
    return found


def read_published(root=ROOT) -> List[Release]:
    """Every release recorded at `root`, oldest first ([] when none is)."""
    try:
        entries = json.loads(record_path(root).read_text(encoding="utf-8"))["releases"]
        return [Release(dict(entry["cells"])) for entry in entries]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def published_digests(root=ROOT) -> Dict[str, Set[str]]:
    """{grade id: digests of that fixed cell in any published release}."""
    found = {}
    for release in read_published(root):
        for name, digest in release.cells.items():
            found.setdefault(name, set()).add(digest)
    return found


def as_published(cell, published):
    """Whether `cell` (a submitted notebook's) reads as its fixed cell did in a release."""
    return cell_digest(cell) in published.get(grade_id(cell), ())


def record(root=ROOT, assignment=ASSIGNMENT):
    """Add the release now in release/ to the record, unless it is there already.
    Returns True when it was added."""
    release = Release(fixed_cells(nbformat.read(
        Path(root) / "release" / assignment / NOTEBOOK, as_version=4)))
    known = read_published(root)
    if release in known:
        return False
    entries = [{"cells": r.cells} for r in known + [release]]
    path = record_path(root)
    partial = path.with_name(path.name + ".%d.tmp" % os.getpid())
    partial.write_text(json.dumps({"releases": entries}, indent=1, sort_keys=True) + "\n",
                       encoding="utf-8")
    os.replace(partial, path)
    return True


@dataclass(frozen=True)
class PointsEdit:
    """A test cell whose points were changed in the source notebook, not in the table."""
    grade_id: str
    in_notebook: float
    in_table: int


def points_edited_in_notebook(source, release, table):
    """Test cells of `source` whose points differ from both the table (testcells.py) and
    the last release: edited in the notebook, where sync would undo them. A cell that still
    has the last release's points was not touched: the table changed, sync applies it."""
    released = {grade_id(cell): settings(cell).get("points")
                for cell in (release.cells if release else []) if is_graded(cell)}
    edits = []
    for cell in source.cells:
        name = grade_id(cell)
        if name in table and is_graded(cell):
            points = settings(cell).get("points")
            if points != table[name] and (release is None or points != released.get(name)):
                edits.append(PointsEdit(name, points, table[name]))
    return edits


def check_points(root=ROOT, assignment=ASSIGNMENT):
    """None, or why `make release` must not go on (one paragraph)."""
    from coursekit.kernel.testcells import TEST_CELLS

    source_path = Path(root) / "source" / assignment / NOTEBOOK
    release_path = Path(root) / "release" / assignment / NOTEBOOK
    source = nbformat.read(source_path, as_version=4)
    release = nbformat.read(release_path, as_version=4) if release_path.exists() else None
    edits = points_edited_in_notebook(source, release,
                                      {cell.grade_id: cell.points for cell in TEST_CELLS})
    if not edits:
        return None
    return ("Not releasing: points were changed in %s (%s), but a check's points live in "
            "coursekit/kernel/testcells.py, and a release writes them from there, undoing "
            "your edit. Set them in coursekit/kernel/testcells.py (or undo the edit in the "
            "notebook), then run make release again." % (
                source_path.relative_to(root), ", ".join(
                    "%s: %g in the notebook, %d in testcells.py" % (e.grade_id, e.in_notebook,
                                                                     e.in_table)
                    for e in edits)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("check-points", "record"))
    parser.add_argument("--root", default=str(ROOT))
    args = parser.parse_args(argv)
    root = Path(args.root)
    if args.action == "check-points":
        refusal = check_points(root)
        if refusal:
            print(refusal, file=sys.stderr)
            return 1
        return 0
    if record(root):
        count = len(read_published(root))
        print("recorded this release's fixed cells in %s (%d release%s so far)"
              % (RECORD_NAME, count, "" if count == 1 else "s"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
