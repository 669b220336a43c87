"""The course's record in a notebook's metadata, under one key: its writers and readers.

- In a graded notebook: what grading put back or repaired in the fixed cells and the
  tampering the grader saw. The grader writes it after the student's code has run, and the
  kernel never sees notebook metadata, so student code cannot forge it. The autograder's
  summary, the grade table and the feedback page read it.
- In a cell of the instructor's notebook: the text the release gives that cell when it is
  not nbgrader's stub (coursekit.authoring.sync writes it; the release's ReleaseStub puts it in
  place and removes the record).
"""
import re

KEY = "udl"

# In a graded notebook's record.
EDITED, PUT_BACK = "fixed_cells_edited", "fixed_cells_put_back"
REPAIRED = "grade_cells_repaired"  # coursekit.grading.intake.repair_grade_cells's sentence
TAMPERING = "tampering"
# Every tampering sentence says where the points came from (coursekit.grading.grader).
OWN_RUN = "the points come from the grader's own run"
# In a cell's record.
RELEASE_SOURCE = "release_source"

_GRADE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")


def _record(metadata):
    record = metadata.get(KEY) if isinstance(metadata, dict) else None
    return record if isinstance(record, dict) else {}


def record_fixed_cells(notebook, edited, put_back, repaired=None):
    """Write what grading put back or repaired into the notebook's metadata, replacing
    whatever the submission held under the key (left out when there is nothing)."""
    notebook.metadata.pop(KEY, None)
    record = {key: list(ids) for key, ids in ((EDITED, edited), (PUT_BACK, put_back)) if ids}
    if repaired:
        record[REPAIRED] = repaired
    if record:
        notebook.metadata[KEY] = record


def recorded_repair(metadata):
    """The sentence `record_fixed_cells` wrote about a graded notebook's malformed grade
    cells, or None."""
    said = _record(metadata).get(REPAIRED)
    return said if isinstance(said, str) and said else None


def recorded_fixed_cells(notebook):
    """(edited, put back): the grade ids `record_fixed_cells` wrote into a graded notebook."""
    record = _record(notebook.metadata)

    def ids(key):
        value = record.get(key)
        return [v for v in value if isinstance(v, str) and _GRADE_ID.match(v)] \
            if isinstance(value, list) else []
    return ids(EDITED), ids(PUT_BACK)


def record_tampering(notebook, sentence):
    notebook.metadata.setdefault(KEY, {})[TAMPERING] = sentence


def recorded_tampering(metadata):
    """The sentence the grader wrote into a graded notebook's metadata, or None."""
    sentence = _record(metadata).get(TAMPERING)
    return sentence if isinstance(sentence, str) and OWN_RUN in sentence else None


def release_source(cell):
    """The text the release gives `cell`, or None when it is nbgrader's own."""
    return _record(cell.get("metadata")).get(RELEASE_SOURCE)


def set_release_source(cell, text):
    cell.metadata.setdefault(KEY, {})[RELEASE_SOURCE] = text


def pop_release_source(cell):
    """The text the release gives `cell` (None when it has none), taking its record away."""
    record = cell.get("metadata", {}).get(KEY)
    if not isinstance(record, dict) or RELEASE_SOURCE not in record:
        return None
    text = record.pop(RELEASE_SOURCE)
    if not record:
        del cell.metadata[KEY]
    return text
