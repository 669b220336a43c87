"""Real `nbgrader autograde` on the sample class: every verdict the course promises.

The samples (coursekit/samples.py) are the reference, the blank release, the seed
document's answer, one student per answer category of coursekit/answers.py, and two that
show the exercises' points are independent. One autograde run grades them all, split over
two course copies that run side by side on the two cores.
"""
import subprocess
import sys

import nbformat
import pytest

from coursekit import answers as variants
from conftest import ROOT, nbgrader_env
from coursekit.report import collect
from coursekit.samples import course_copy, SAMPLES, make_submission, submission_path, submit
from coursekit.sync import ASSIGNMENT, NOTEBOOK, SOURCE_NOTEBOOK, grade_id

NETWORK_TESTS = ["test_" + name for name in
                 ("registered", "used", "no_compounding", "placement", "train_eval")]
PLOT_TESTS = ["test_plot_linear", "test_plot_log"]


def points():
    notebook = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    return {grade_id(cell): cell.metadata.nbgrader["points"] for cell in notebook.cells
            if cell.metadata.nbgrader.get("grade")}


def class_of_submissions():
    """The committed samples, which are what `make grade` grades."""
    return {student: nbformat.read(submission_path(ROOT, student), as_version=4)
            for student in SAMPLES}


def test_committed_samples_are_in_step_with_the_release():
    for student, answers_of in SAMPLES.items():
        committed = nbformat.read(submission_path(ROOT, student), as_version=4)
        assert committed == make_submission(answers_of()), "run: make samples (%s)" % student


@pytest.fixture(scope="session")
def graded(tmp_path_factory):
    """{student: ({test: points}, {test: text of its outputs})} after one autograde."""
    submissions = sorted(class_of_submissions().items())
    roots, runs = [], []
    for half in range(2):
        root = course_copy(tmp_path_factory.mktemp("class%d" % half))
        for student, notebook in submissions[half::2]:
            submit(root, student, notebook)
        roots.append(root)
    nbgrader = [sys.executable, "-m", "nbgrader"]
    for root in roots:
        subprocess.run(nbgrader + ["generate_assignment", ASSIGNMENT, "--force"], cwd=root,
                       env=nbgrader_env(), check=True, capture_output=True)
        runs.append(subprocess.Popen(nbgrader + ["autograde", ASSIGNMENT, "--force"], cwd=root,
                                     env=nbgrader_env(), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True))
    for run in runs:
        log = run.communicate()[0]
        assert run.returncode == 0, log[-4000:]
    results = {}
    for root in roots:
        rows, _ = collect("sqlite:///%s" % (root / "gradebook.db"))
        for student, _, _, per_test in rows:
            autograded = nbformat.read(root / "autograded" / student / ASSIGNMENT / NOTEBOOK,
                                       as_version=4)
            outputs = {grade_id(cell): " ".join(o.get("text", "") + o.get("evalue", "")
                                                for o in cell.get("outputs", []))
                       for cell in autograded.cells if cell.cell_type == "code"}
            results[student] = (per_test, outputs, autograded)
    assert len(results) == len(submissions)
    return results


def failing(scores):
    return {test for test, earned in scores.items() if earned < points()[test]}


def test_reference_earns_every_point(graded):
    scores, _, _ = graded["reference"]
    assert scores == points()


def test_untouched_release_earns_nothing(graded):
    scores, _, _ = graded["blank"]
    assert set(scores) == set(points()) and sum(scores.values()) == 0


def test_seed_solution_gets_partial_credit_naming_both_mistakes(graded):
    scores, outputs, _ = graded["seed"]
    assert 0 < sum(scores[t] for t in NETWORK_TESTS) < sum(points()[t] for t in NETWORK_TESTS)
    text = " ".join(outputs[t] for t in failing(scores))
    assert "creates nn.BatchNorm1d layers as it runs" in text
    assert "normalise the residual stream itself" in text


@pytest.mark.parametrize("variant", sorted(variants.VARIANTS))
def test_each_answer_category_grades_as_promised(graded, variant):
    scores, outputs, _ = graded["variant_" + variant]
    expected = {"test_" + name for name in variants.FAILS[variant]}
    also = {"test_" + name for name in variants.OTHER_FAILS.get(variant, ())}
    assert failing(scores) == expected | also
    assert all(scores[t] == 0 for t in expected)
    class_points = sum(scores[t] for t in NETWORK_TESTS)
    class_max = sum(points()[t] for t in NETWORK_TESTS)
    if variant in variants.AT_MOST_HALF:
        assert class_points <= class_max / 2
    if expected:
        assert any(variants.MESSAGES[variant] in outputs[t] for t in expected)


def test_points_of_the_exercises_are_independent(graded):
    scores, _, _ = graded["book_class_broken_plot"]
    assert failing(scores) == set(PLOT_TESTS)
    scores, _, _ = graded["plain_class_rest_right"]
    assert failing(scores) == set(NETWORK_TESTS)


def test_completed_notebook_runs_top_to_bottom_and_draws_the_figures(graded):
    _, _, notebook = graded["reference"]
    errors = [grade_id(cell) for cell in notebook.cells if cell.cell_type == "code"
              and any(o.output_type == "error" for o in cell.outputs)]
    assert errors == []
    figure = next(cell for cell in notebook.cells if grade_id(cell) == "draw_figure")
    assert any("image/png" in o.get("data", {}) for o in figure.outputs)
