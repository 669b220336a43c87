"""Reading a submission before it is graded: broken files, and notebooks that lost their
nbgrader metadata.

`read_submission(path)` returns the notebook or raises `SubmissionProblem` with a sentence
an instructor can act on (missing, empty, too big, not JSON, not a notebook, cells or
nbgrader metadata broken). `restore_metadata` gives back the nbgrader metadata that some
editors strip, by matching the student's cells to the release: unchanged cells match
exactly, the cells in between are paired by type and similarity. A notebook too far from
the release to match raises `SubmissionProblem`. `repair_grade_cells` keeps one cell per
grade id, and makes a cell marked as the assignment's that is not in it the student's own
(nbgrader crashes on both). `edited_fixed_cells` names the fixed
(locked) cells a student changed, whose edits grading puts back; `put_back_missing_cells`
re-inserts every graded or fixed cell the student deleted where the release has it.
Everything here takes time at most linear in the file's size, which is capped: one
student's file never stops the class.
"""
import copy
import difflib
import hashlib
import json
import os

import nbformat
from nbgrader.nbgraderformat import MetadataValidator

from coursekit.course import grade_id, is_graded, is_locked, is_solution

# A submission is matched when at least this share of the release's fixed (locked)
# cells is found unchanged in it.
MIN_LOCKED_FOUND = 0.5
# The release is 133 KB and 73 cells; the course's graded sample notebooks, figures
# included, are at most 380 KB. Anything far beyond is not an honest submission of this
# assignment, and reading, checking and matching it costs time linear in its size.
MAX_NOTEBOOK_BYTES = 20_000_000
MAX_CELLS = 1000
# Pairing an edited cell with the most similar candidate: difflib's ratio is quadratic in
# the length of what it compares, so it sees at most this much of each source, among at
# most this many candidates (the nearest to where the release has the cell). Honest
# answer cells are under 2 KB and a stretch between two unchanged cells holds a handful.
COMPARED_CHARS = 2000
MAX_CANDIDATES = 12

CELL_TYPES = ("code", "markdown", "raw")


class SubmissionProblem(Exception):
    """A submission that cannot be graded as it is; the message says why."""


def read_submission(path):
    if not os.path.exists(path):
        folder = os.path.dirname(path)
        others = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        holds = "it holds: %s" % ", ".join(others) if others else "it is empty"
        raise SubmissionProblem("%s is missing (%s)" % (path, holds))
    size = os.path.getsize(path)
    if size > MAX_NOTEBOOK_BYTES:
        raise SubmissionProblem(
            "%s is %s; grading takes notebooks of up to %s (an honest one is well under "
            "1 MB): it probably holds saved data or huge outputs; clear them and resubmit"
            % (path, _megabytes(size), _megabytes(MAX_NOTEBOOK_BYTES)))
    with open(path, "rb") as handle:
        raw = handle.read()
    if not raw.strip():
        raise SubmissionProblem("%s is empty (%d bytes): the upload probably failed"
                                % (path, len(raw)))
    try:
        text = raw.decode("utf-8")
        content = json.loads(text)
    except UnicodeDecodeError:
        raise SubmissionProblem("%s is not a text file, so not a notebook" % path) from None
    except json.JSONDecodeError as error:
        raise SubmissionProblem(
            "%s is not valid JSON (line %d, column %d: %s): the file was cut short or "
            "edited outside Jupyter" % (path, error.lineno, error.colno, error.msg)) from None
    except RecursionError:
        raise SubmissionProblem("%s is not a notebook (its JSON is nested thousands of "
                                "levels deep)" % path) from None
    if not isinstance(content, dict):
        raise SubmissionProblem("%s is JSON but not a notebook (it has no list of cells)" % path)
    version = content.get("nbformat")
    if version == 3 and isinstance(content.get("worksheets"), list):
        return _read_version_3(text, path)
    if not isinstance(content.get("cells"), list):
        if version not in (None, 4):
            raise SubmissionProblem("%s is a notebook of format %s; grading reads formats 3 "
                                    "and 4: open and save it in Jupyter" % (path, _short(version)))
        raise SubmissionProblem("%s is JSON but not a notebook (it has no list of cells)" % path)
    if version != 4:
        raise SubmissionProblem("%s %s; grading reads formats 3 and 4: open and save it in "
                                "Jupyter" % (path, "has no format number" if version is None
                                             else "is a notebook of format %s" % _short(version)))
    if not isinstance(content.get("metadata", {}), dict):
        raise SubmissionProblem("%s has notebook metadata %s, not a dictionary: it was probably "
                                "edited outside Jupyter" % (path, _short(content["metadata"])))
    _check_cells(content["cells"], path)
    return _parse(text, path)


def _read_version_3(text, path):
    """Jupyter's older format, converted as Jupyter itself would."""
    notebook = _parse(text, path)
    _check_cells(notebook.cells, path)
    return notebook


def _parse(text, path):
    try:
        return nbformat.reads(text, as_version=4)
    except Exception as error:  # nbformat raises several kinds for malformed notebooks
        first = (str(error).splitlines() or [type(error).__name__])[0]
        raise SubmissionProblem("%s is not a readable notebook (%s)"
                                % (path, _clip(first, 120))) from None


def _check_cells(cells, path):
    """Refuse what nbgrader or the matching would trip over, naming the cell."""
    if len(cells) > MAX_CELLS:
        raise SubmissionProblem(
            "%s has %d cells; grading takes at most %d, far more than an honest submission "
            "needs: it was probably generated by a program"
            % (path, len(cells), MAX_CELLS))
    for number, cell in enumerate(cells, 1):
        problem = _cell_problem(cell)
        if problem:
            raise SubmissionProblem("%s: cell %d of %d %s: it was probably edited outside "
                                    "Jupyter; fix that cell or ask for a fresh copy"
                                    % (path, number, len(cells), problem))


def _cell_problem(cell):
    if not isinstance(cell, dict):
        return "is %s, not a cell" % _short(cell)
    if cell.get("cell_type") not in CELL_TYPES:
        return ("has no cell type" if "cell_type" not in cell
                else "has cell type %s, not code, markdown or raw" % _short(cell["cell_type"]))
    source = cell.get("source")
    if not (isinstance(source, str) or isinstance(source, list)
            and all(isinstance(line, str) for line in source)):
        return "has no source" if "source" not in cell else (
            "has source %s, not text" % _short(source))
    metadata = cell.get("metadata")
    if not isinstance(metadata, dict):
        return "has no metadata" if "metadata" not in cell else (
            "has metadata %s, not a dictionary" % _short(metadata))
    if "outputs" in cell and not (isinstance(cell["outputs"], list)
                                  and all(isinstance(o, dict) for o in cell["outputs"])):
        return "has outputs %s, not a list of outputs" % _short(cell["outputs"])
    if "nbgrader" not in metadata:
        return None
    settings = metadata["nbgrader"]
    if not isinstance(settings, dict):
        return "has nbgrader metadata %s, not a dictionary of settings" % _short(settings)
    # What nbgrader will do with it: bring it up to date, then validate it.
    probe = nbformat.from_dict({"cell_type": cell["cell_type"], "source": "",
                                "metadata": {"nbgrader": copy.deepcopy(settings)}})
    try:
        validator = MetadataValidator()
        validator.upgrade_cell_metadata(probe)
        if "nbgrader" in probe.metadata and not probe.metadata.nbgrader.get("grade_id"):
            # No grade id is no reason to refuse the notebook: repair_grade_cells makes
            # the cell the student's own.
            probe.metadata.nbgrader["grade_id"] = "none"
        validator.validate_cell(probe)
    except Exception as error:  # jsonschema, nbgrader and plain type errors alike
        what = getattr(error, "message", None) or str(error) or type(error).__name__
        where = "/".join(str(p) for p in getattr(error, "path", []))
        return "has broken nbgrader metadata (%s%s)" % (
            where + ": " if where else "", _clip(what.splitlines()[0], 100))
    return None


def _short(value):
    """A value as it appears in the file, short enough for one line of the log."""
    return _clip(repr(value), 40)


def _clip(text, limit):
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _megabytes(size):
    return ("%.1f MB" % (size / 1e6)).replace(".0 ", " ")


def _key(cell):
    """A cell's type and text, blind to trailing spaces, as a short fixed-size digest."""
    text = "\n".join(line.rstrip() for line in cell.source.strip().splitlines())
    return hashlib.sha256(("%s\0%s" % (cell.cell_type, text)).encode(
        "utf-8", "surrogatepass")).digest()


def repair_grade_cells(notebook, release):
    """Leave at most one cell per grade id, each one the release has; returns the `Repair`,
    which says what was wrong.

    nbgrader keys every fixed, graded or answer cell on its grade id in the gradebook, and
    crashes (KeyError: 'grade_id') on two cells sharing one (it empties the metadata of all
    but the last) and on a marked cell without one. So:

    - Of cells sharing a grade id, the first keeps it, where the release has the cell.
      A later copy of a fixed cell or check is dropped: grading puts the release's text
      back into the first, so nothing of the student's is lost. A later copy of an answer
      cell stays, as the student's own code, so everything they wrote still runs.
    - A cell marked as the assignment's (fixed, graded, an answer) without a grade id, or
      with one the release does not have, has nothing nbgrader could check it against or
      put back: it becomes an ordinary cell of the student's, and runs as such. A release
      cell that only lost its id is matched back by `restore_metadata`, like any cell
      whose metadata an editor stripped.
    """
    known = {grade_id(cell): cell for cell in release.cells if grade_id(cell)}
    repair, kept, seen = Repair(), [], set()
    for number, cell in enumerate(notebook.cells, 1):
        name = grade_id(cell)
        if "nbgrader" not in cell.metadata:
            pass
        elif not isinstance(name, str) or name not in known:
            if _marked(cell):
                repair.strangers.append((number, name if isinstance(name, str) else None,
                                         cell))
            del cell.metadata["nbgrader"]
        elif name in seen:
            repair.copies[name] = (repair.copies.get(name, (1,))[0] + 1, _kind(known[name]))
            if is_locked(known[name]):
                continue
            del cell.metadata["nbgrader"]
        else:
            seen.add(name)
        kept.append(cell)
    notebook.cells = kept
    return repair


class Repair:
    """What `repair_grade_cells` found: {grade id: (copies, what the cell is)}, and the
    marked cells it made the student's own, as (number, their grade id or None, cell)."""

    def __init__(self):
        self.copies, self.strangers = {}, []

    def sentence(self):
        """What was wrong, for the student and the instructor, or None. Read after
        `restore_metadata`: a cell it matched back to the release is not the student's."""
        said = ["%s of the %s `%s`" % (_copies(count), kind, name)
                for name, (count, kind) in self.copies.items()]
        said = ["the notebook has " + _and(said) + " (the first was graded)"] if said else []
        strangers = [(number, name) for number, name, cell in self.strangers
                     if not grade_id(cell)]
        if strangers:
            ids = ["`%s`" % _clip(name, 40) for _, name in strangers if name]
            one = len(strangers) == 1
            said.append("%s but %s, so %s as your own code" % (
                "cell %d is marked as one of the assignment's cells" % strangers[0][0] if one
                else "cells %s are marked as the assignment's cells"
                % _and([str(number) for number, _ in strangers]),
                ("is not one of them (%s)" if one else "are not among them (%s)") % _and(ids)
                if ids else "has no id" if one else "have no id",
                "it ran" if one else "they ran"))
        if not said:
            return None
        return "; ".join(said) + ("; download a fresh copy of the assignment and paste "
                                  "your answers into it")


def _marked(cell):
    """Whether nbgrader takes `cell` for one of the assignment's."""
    settings = cell.metadata.get("nbgrader")
    return isinstance(settings, dict) and bool(settings.get("grade_id") or any(
        settings.get(flag) for flag in ("grade", "solution", "locked", "task")))


def _copies(count):
    return "%s copies" % {2: "two", 3: "three"}.get(count, count)


def _kind(cell):
    return "answer cell" if is_solution(cell) else "check" if is_graded(cell) \
        else "fixed cell"


def _and(words):
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def restore_metadata(notebook, release, name="the notebook"):
    """Give cells of `notebook` the nbgrader metadata of the release cells they match.

    Returns the grade ids restored (an empty list when nothing was missing). Release cells
    that match nothing stay missing; `put_back_missing_cells` re-inserts them.
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
    # Digests compare in constant time, so this exact pass costs at most the product of
    # the cell counts, both capped.
    matcher = difflib.SequenceMatcher(None, release_keys, student_keys, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            pairs[block.a + k] = free[block.b + k]

    locked = [i for i, cell in enumerate(release.cells) if is_locked(cell)]
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
        best = _most_similar(release.cells[index].source,
                             _nearest(candidates, index, release, pairs, before, after),
                             notebook)
        if best is not None:
            pairs[index] = best
            taken.add(best)

    restored = []
    for index in wanted:
        if index in pairs:
            cell = notebook.cells[pairs[index]]
            cell.metadata["nbgrader"] = dict(release.cells[index].metadata["nbgrader"])
            restored.append(grade_id(cell))
    return restored


def _nearest(candidates, index, release, pairs, before, after):
    """At most MAX_CANDIDATES of `candidates`, those nearest to where the release cell
    `index` would sit between the matched cells `before` and `after`."""
    if len(candidates) <= MAX_CANDIDATES:
        return candidates
    anchor_before = max([i for i in pairs if i < index], default=-1)
    anchor_after = min([i for i in pairs if i > index], default=len(release.cells))
    share = (index - anchor_before) / (anchor_after - anchor_before)
    expected = before + share * (after - before)
    return sorted(sorted(candidates, key=lambda j: (abs(j - expected), j))[:MAX_CANDIDATES])


def _most_similar(source, candidates, notebook):
    """The candidate whose source is most like `source` (the first one on a tie), or None.

    difflib's cheap upper bounds rule most candidates out before its quadratic ratio.
    """
    if not candidates:
        return None
    matcher = difflib.SequenceMatcher(None)
    matcher.set_seq1(source[:COMPARED_CHARS])
    best, best_ratio = None, -1.0
    for j in candidates:
        matcher.set_seq2(notebook.cells[j].source[:COMPARED_CHARS])
        if matcher.real_quick_ratio() > best_ratio and matcher.quick_ratio() > best_ratio:
            ratio = matcher.ratio()
            if ratio > best_ratio:
                best, best_ratio = j, ratio
    return best


def _normalised(source):
    """A cell's text blind to trailing spaces and blank lines."""
    return "\n".join(line.rstrip() for line in source.splitlines() if line.strip())


def edited_fixed_cells(notebook, release, published=None):
    """Grade ids of the release's fixed (locked) cells whose text or type the submission
    changed, in release order. Grading puts the release's cell back (nbgrader's
    OverwriteCells), so what the student wrote there is not graded.

    Of cells sharing a grade id, the first is compared: the one grading keeps
    (`repair_grade_cells`). A cell as some earlier release had it (`published`, from
    coursekit.authoring.releases) is not an edit: the student kept what they were given.
    """
    from coursekit.authoring.releases import as_published

    published = published or {}
    cells = {}
    for cell in notebook.cells:
        if grade_id(cell):
            cells.setdefault(grade_id(cell), cell)
    edited = []
    for fixed in release.cells:
        cell = cells.get(grade_id(fixed)) if is_locked(fixed) else None
        if cell is not None and (cell.cell_type != fixed.cell_type
                                 or _normalised(cell.source) != _normalised(fixed.source)) \
                and not as_published(cell, published):
            edited.append(grade_id(fixed))
    return edited


def put_back_missing_cells(notebook, release):
    """Re-insert each graded or fixed cell of the release missing from `notebook`.

    A copy of the release's cell goes right after the nearest earlier release cell the
    notebook holds (before the nearest later one when it holds no earlier one), so any
    number of deleted cells, in any order, come back in release order. nbgrader then
    restores a test cell's hidden part and grades it. (nbgrader's own repair,
    OverwriteCells.add_missing_cells, raises KeyError when consecutive cells are missing.)
    Returns the grade ids put back, in release order.
    """
    present = {grade_id(cell) for cell in notebook.cells} - {None}
    missing = [index for index, cell in enumerate(release.cells)
               if grade_id(cell) and grade_id(cell) not in present
               and (is_locked(cell) or is_graded(cell))]
    if not missing:
        return []
    ids = {cell.get("id") for cell in notebook.cells}
    for index in missing:
        where = {}
        for position, cell in enumerate(notebook.cells):
            if grade_id(cell):
                where.setdefault(grade_id(cell), position)
        earlier = [where[grade_id(cell)] + 1 for cell in release.cells[:index]
                   if grade_id(cell) in where]
        later = [where[grade_id(cell)] for cell in release.cells[index + 1:]
                 if grade_id(cell) in where]
        position = earlier[-1] if earlier else later[0] if later else len(notebook.cells)
        cell = copy.deepcopy(release.cells[index])
        if "id" in cell and cell.id in ids:
            cell.id = "put-back-%d" % index
        ids.add(cell.get("id"))
        notebook.cells.insert(position, cell)
    return [grade_id(release.cells[index]) for index in missing]


def unreadable_timestamp(folder):
    """Why `folder`'s timestamp.txt (written by `nbgrader submit`) holds no time nbgrader can
    read, or None: when it does, or when there is none or it is empty (nbgrader reads those
    as "no time", and says so). nbgrader itself fails on one with an AttributeError."""
    from nbgrader.utils import parse_utc

    from coursekit.grading.folders import read_plain_file

    path = os.path.join(folder, "timestamp.txt")
    text = read_plain_file(path, 200)
    if text is None and os.path.lexists(path):
        return "%s is not a plain file (a folder, say); fix or delete it" % path
    if not text or not text.strip():
        return None
    try:
        if len(text) <= 200:
            parse_utc(text.decode("utf-8").strip())
            return None
    except (ValueError, OverflowError, UnicodeDecodeError):
        pass
    return ("%s holds no time nbgrader can read (a submission's time, like "
            "'2026-12-14 17:00:00.000000 UTC'); fix or delete it" % path)
