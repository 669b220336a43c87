"""nbgrader's metadata schema is checked once per process (coursekit/grading/schemacheck.py), and
every cell is still judged as jsonschema.validate judges it: the same cells pass, the same
error is raised for the same broken metadata. No kernel."""
import copy
import subprocess
import sys

import jsonschema
import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator

from conftest import ROOT
from coursekit.course import RELEASE_NOTEBOOK
from coursekit.grading.schemacheck import SchemaCheckedOnce

# Broken nbgrader metadata of the kinds an editor or a student leaves behind.
BROKEN = {
    "points as text": {"points": "two"},
    "locked as text": {"locked": "yes"},
    "grade as text": {"grade": "yes"},
    "schema version as text": {"schema_version": "3"},
    "not a dict": None,
}


def graded_metadata():
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    return next(cell.metadata.nbgrader for cell in release.cells
                if cell.metadata.get("nbgrader", {}).get("grade"))


def outcome(validate, instance, schema):
    try:
        validate(instance, schema)
    except jsonschema.ValidationError as error:
        return error.message, list(error.absolute_path), error.validator
    return None


@pytest.mark.parametrize("broken", sorted(BROKEN))
def test_broken_metadata_raises_the_error_jsonschema_raises(broken):
    schema = MetadataValidator().schema
    instance = copy.deepcopy(dict(graded_metadata()))
    if BROKEN[broken] is None:
        instance = ["not", "a", "dict"]
    else:
        instance.update(BROKEN[broken])
    expected = outcome(jsonschema.validate, instance, schema)
    assert expected is not None
    assert outcome(SchemaCheckedOnce.validate, instance, schema) == expected


def test_every_cell_of_the_release_passes_as_before():
    schema = MetadataValidator().schema
    for cell in nbformat.read(RELEASE_NOTEBOOK, as_version=4).cells:
        if "nbgrader" in cell.metadata:
            assert outcome(SchemaCheckedOnce.validate, dict(cell.metadata.nbgrader), schema) \
                is None


def test_the_course_config_installs_it_for_every_nbgrader_command():
    loaded = subprocess.run(
        [sys.executable, "-c", "from traitlets.config.loader import PyFileConfigLoader; "
         "PyFileConfigLoader('nbgrader_config.py', path=%r).load_config(); "
         "from nbgrader.nbgraderformat import common; "
         "print(type(common.jsonschema).__name__)" % str(ROOT)],
        cwd=ROOT, capture_output=True, text=True)
    assert loaded.stdout.strip() == "SchemaCheckedOnce", loaded.stderr[-2000:]
