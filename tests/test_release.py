"""The release students get: generated from source, no answers, no hidden tests."""
import json

import nbformat
import pytest
from nbgrader.validator import Validator

from conftest import ROOT
from coursekit.authoring import sync
from coursekit.course import ASSIGNMENT, NOTEBOOK, SOURCE_NOTEBOOK, grade_id

RELEASE = ROOT / "release" / ASSIGNMENT / NOTEBOOK


def cells(path):
    return [(cell.cell_type, grade_id(cell), cell.source, cell.metadata.get("nbgrader"))
            for cell in nbformat.read(path, as_version=4).cells]


def test_config_loads_without_error():
    # nbgrader only logs a broken config and then grades with its defaults.
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    names = [p.__name__ for p in config.GenerateAssignment.preprocessors]
    assert names.index("ReleaseStub") == names.index("ClearSolutions") + 1
    assert config.OverwriteCells.add_missing_cells is True
    # A config that fails to load would grade with stock nbgrader: no sandbox at all.
    sanitize = [p.__name__ for p in config.Autograde.sanitize_preprocessors]
    assert sanitize[0] == "RestoreMetadata" and "OverwriteCells" in sanitize
    execute = [p.__name__ for p in config.Autograde.autograde_preprocessors]
    assert "SandboxedExecute" in execute and "Execute" not in execute
    from nbgrader.apps import autogradeapp
    assert autogradeapp.Autograde.__name__ == "CourseAutograde"


def test_generated_cells_are_in_step_with_the_package():
    notebook = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    assert sync.stale_cells(notebook) == [], "run: python -m coursekit.authoring.sync"


def test_a_test_cells_points_and_text_come_from_its_row(tmp_path):
    from coursekit.kernel.testcells import BY_ID

    path = tmp_path / NOTEBOOK
    notebook = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    cell = next(c for c in notebook.cells if grade_id(c) == "test_placement")
    cell.metadata.nbgrader["points"] = 7
    cell.source = cell.source.replace("(3 points)", "(7 points)")
    nbformat.write(notebook, path)
    assert "test_placement" in sync.sync(path)
    cell = next(c for c in nbformat.read(path, as_version=4).cells
                if grade_id(c) == "test_placement")
    assert cell.metadata.nbgrader["points"] == BY_ID["test_placement"].points == 3
    assert cell.source.startswith("# Check (3 points)")
    assert "udl_bn_checks.score(udl_bn_checks.check_placement(ResidualNetworkWithBatchNorm), 3)" \
        in cell.source


def test_every_row_calls_a_function_the_checks_define_with_its_objects():
    """What each row promises the kernel holds: a row with options names a function of
    its own (the made ones take only the objects, then the seed), that function is in the
    checks module, each object is a plain name, and every judge and observer exists."""
    from coursekit.kernel import checks, judge
    from coursekit.kernel.testcells import TEST_CELLS

    for cell in TEST_CELLS:
        assert callable(getattr(checks, cell.called, None)), cell.called
        assert cell.function or not cell.options, cell.grade_id
        assert all(name.strip().isidentifier() for name in cell.arguments.split(",")), cell
        assert callable(getattr(judge, "judge_" + cell.check, None)), cell.check
        assert checks.OBSERVERS[cell.check] is getattr(checks, cell.observer), cell.check
    made = [cell.called for cell in TEST_CELLS if not cell.function]
    assert len(made) == len(set(made))
    assert not {cell.function for cell in TEST_CELLS} & set(made)


def test_committed_release_is_what_nbgrader_generates(course_root):
    generated = cells(course_root / "release" / ASSIGNMENT / NOTEBOOK)
    committed = cells(RELEASE)
    assert len(generated) == len(committed)
    for fresh, kept in zip(generated, committed):
        assert fresh == kept, "release/ is stale at cell %s: run make release" % fresh[1]


def test_release_has_no_answers_hidden_tests_or_outputs():
    release = RELEASE.read_text()
    assert "BEGIN HIDDEN TESTS" not in release and "udl_bn_checks.require" not in release
    assert "BEGIN SOLUTION" not in release and "release_source" not in release
    source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    for cell in source.cells:
        if cell.metadata["nbgrader"].get("solution"):
            answer_lines = [line for line in cell.source.splitlines()
                            if "bn" in line or "ax." in line or "variance_log" in line]
            assert not any(line.strip() and line in release.splitlines()
                           for line in answer_lines if "print_variance" not in line)
    notebook = json.loads(release)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_every_test_cell_is_locked_and_has_points():
    graded = [(kind, meta) for kind, _, _, meta in cells(SOURCE_NOTEBOOK) if meta["grade"]]
    tests = [meta for kind, meta in graded if kind == "code"]
    assert len(tests) >= 8
    assert all(meta["locked"] and not meta["solution"] and meta["points"] > 0 for meta in tests)
    # The written answer: the student's to edit, graded by hand.
    written = [meta for kind, meta in graded if kind == "markdown"]
    assert written and all(meta["solution"] and meta["points"] > 0 for meta in written)


@pytest.mark.slow
def test_source_notebook_passes_its_own_tests(tmp_path):
    # `nbgrader validate` exits 0 even on failure: read the validator's result.
    copy = tmp_path / NOTEBOOK
    copy.write_text(SOURCE_NOTEBOOK.read_text())
    sync.place_helpers(tmp_path)
    result = Validator().validate(str(copy))
    assert not result.get("failed") and not result.get("changed"), result


@pytest.mark.slow
def test_blank_release_passes_no_test(tmp_path):
    copy = tmp_path / NOTEBOOK
    copy.write_text(RELEASE.read_text())
    sync.place_helpers(tmp_path)
    result = Validator(invert=True).validate(str(copy))
    assert result.get("passed", []) == [], result
