"""The notebook teaches the way the book does: predict, then run, then explain (issue 15).

The cell-order tests read the release (what a student sees before running anything) and
the graded reference's outputs (what a student who answers correctly sees printed), so
they hold for the committed notebooks as `make grade` leaves them.
"""
import re

import nbformat
import pytest

from conftest import ROOT
from coursekit import predictions
from coursekit.course import ASSIGNMENT, NOTEBOOK, RELEASE_NOTEBOOK, grade_id
from coursekit.samples import make_submission
from coursekit.sync import HELPERS_ID

REFERENCE = ROOT / "autograded" / "reference" / ASSIGNMENT / NOTEBOOK

# What would give each prediction's answer away: the measured shape or number, or the
# explanation. Case-insensitive. Nothing before the prediction's cell may say any of them.
SPOILERS = {
    "prediction_plain": [r"doubl", r"exponential", r"compound", r"twofold", r"multipl"],
    "prediction_batchnorm": [r"linearly", r"linear growth", r"0\.6[89]", r"1 ?- ?1/\\?pi",
                             r"\\frac\{1\}\{\\pi\}", r"same amount", r"stays? flat",
                             r"per block"],
    "prediction_log_batchnorm": [r"bends? over", r"bending over", r"smaller and smaller"],
    "prediction_slope": [r"scatter", r"differs from", r"twenty networks:", r"\d\.\d%"],
    "prediction_rescaled": [r"drift", r"shrinks slowly", r"falls? slowly", r"loses a little",
                            r"of its start", r"multiplied the variance by 0\."],
    "prediction_log_rescaled": [r"falling straight line", r"gently falling"],
    "prediction_training": [r"overflow", r"\bnan\b", r"diverg", r"cannot"],
    "prediction_train_vs_eval": [r"train mode vs eval mode", r"largest difference",
                                 r"outputs differ", r"no longer depends"],
    "prediction_created_in_forward": [r"always in train mode", r"never reaches",
                                      r"only reaches registered", r"alone fails"],
}
# The written question's answer: batch norm after the ReLU adds about 2 per block.
WRITTEN_SPOILERS = [r"(?<![\d.])2(\.0+)? per block", r"slope of about 2", r"bn\(relu",
                    r"after the relu"]


def cells_as_seen():
    """[(grade_id, what a student reads in that cell: its text, then the reference's
    outputs)] in release order. The self-check helpers cell is left out: past its
    comments it is the checks' code compressed (coursekit/sync.py), which no one reads and
    in which random letters could spell anything."""
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    outputs = {grade_id(cell): cell.get("outputs", [])
               for cell in nbformat.read(REFERENCE, as_version=4).cells}
    seen = []
    for cell in release.cells:
        if grade_id(cell) == HELPERS_ID:
            continue
        printed = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                          + str(o.get("evalue", "")) for o in outputs.get(grade_id(cell), []))
        seen.append((grade_id(cell), cell.source + "\n" + printed))
    return seen


@pytest.fixture(scope="module")
def seen():
    return cells_as_seen()


def index_of(seen, cell_id):
    return next(i for i, (gid, _) in enumerate(seen) if gid == cell_id)


def test_every_prediction_has_a_prompt_before_it_and_its_reveal_right_after(seen):
    ids = [gid for gid, _ in seen]
    assert [gid for gid in ids if gid in predictions.BY_NAME] == list(predictions.BY_NAME)
    for name in predictions.BY_NAME:
        at = ids.index(name)
        assert "predict" in seen[at - 1][1].lower(), "%s has no prompt before it" % name
        # The run right after it says the guess beside the measurement.
        assert 'recall("%s"' % name in seen[at + 1][1], name
        assert "You predicted:" in seen[at + 1][1] and "Measured:" in seen[at + 1][1], name


@pytest.mark.parametrize("name", list(SPOILERS))
def test_nothing_before_a_prediction_gives_its_answer_away(seen, name):
    assert set(SPOILERS) == set(predictions.BY_NAME)
    before = seen[:index_of(seen, name)]
    for gid, text in before:
        for spoiler in SPOILERS[name]:
            found = re.search(spoiler, text, re.IGNORECASE)
            assert not found, "%s (before %s) says %r" % (gid, name, found.group(0))


def test_the_written_question_is_not_answered_before_it(seen):
    before = seen[:index_of(seen, "written_intro")]
    for gid, text in before:
        for spoiler in WRITTEN_SPOILERS:
            assert not re.search(spoiler, text, re.IGNORECASE), (gid, spoiler)


def test_the_derivation_is_explained_only_after_its_todo(seen):
    todo, answer = index_of(seen, "predicted_increment"), index_of(seen, "explain_increment")
    assert todo < answer
    for gid, text in seen[:todo]:
        assert not re.search(r"1/\\sqrt\{2\\pi\}|\\frac\{1\}\{\\sqrt\{2\\pi\}\}|1 ?- ?1/pi"
                             r"|\\frac\{1\}\{2\}-\\frac\{1\}\{2\\pi\}", text), gid


def test_checks_that_print_measurements_come_after_the_run_and_its_explanation(seen):
    ids = [gid for gid, _ in seen]
    for check, explanation in (("test_no_compounding", "explain_batchnorm"),
                               ("test_placement", "explain_batchnorm"),
                               ("test_rescaled_flat", "explain_three"),
                               ("test_training_comparison", "explain_training"),
                               ("test_train_eval", "explain_eval")):
        assert ids.index(explanation) < ids.index(check), check


def test_todo_texts_give_no_answer_line_and_stage_their_hints(seen):
    text = dict(seen)
    assert "linear(relu(bn(" not in text["todo_batchnorm"].replace(" ", "")
    assert "/ np.sqrt(2)`" not in text["rescaled_intro"] and "res1 =" not in text["rescaled_intro"]
    for todo in ("todo_batchnorm", "todo_variances", "todo_plot", "why_068_intro",
                 "rescaled_intro", "training_intro", "train_eval_intro"):
        assert text[todo].count("<details>") == 2, todo


@pytest.mark.parametrize("student", ["reference", "blank"])
def test_each_run_says_what_the_student_predicted_and_never_marks_it(student):
    from coursekit.samples import submission_path

    guesses = predictions.recorded(nbformat.read(submission_path(ROOT, student), as_version=4))
    graded = nbformat.read(ROOT / "autograded" / student / ASSIGNMENT / NOTEBOOK, as_version=4)
    printed = {grade_id(cell): "".join(o.get("text", "") for o in cell.get("outputs", []))
               for cell in graded.cells}
    sources = {grade_id(cell): cell.source for cell in graded.cells}
    for name in predictions.BY_NAME:
        reveal = next(gid for gid, source in sources.items() if 'recall("%s"' % name in source)
        guess = guesses.get(name, "").strip()
        said = ("You predicted: " + guess if guess
                else "You predicted: (nothing recorded in %s)" % name)
        # The blank release's later runs stop at its unanswered TODOs; its first two run.
        if student == "reference" or name in ("prediction_plain", "prediction_batchnorm"):
            assert said in printed[reveal], (student, name)
        assert "✗" not in printed[reveal] and "wrong" not in printed[reveal].lower()


def test_guesses_are_read_from_the_text_and_sorted_into_choices():
    plain = predictions.BY_NAME["prediction_plain"]
    notebook = make_submission({
        "prediction_plain": plain.cell_source("  Grows by a FIXED   factor "),
        "prediction_batchnorm": "prediction_batchnorm = 'it will explode'",
        "prediction_slope": "prediction_slope = (",  # does not parse: skipped
    })
    guesses = predictions.recorded(notebook)
    assert guesses["prediction_plain"].strip() == "Grows by a FIXED   factor"
    counts = predictions.tally([notebook, make_submission({})])
    assert counts["prediction_plain"]["grows by a fixed factor"] == 1
    assert counts["prediction_plain"][predictions.NONE] == 1
    assert counts["prediction_batchnorm"][predictions.OWN_WORDS] == 1
    assert counts["prediction_slope"][predictions.NONE] == 2


def test_the_report_draws_how_the_class_predicted(tmp_path):
    from coursekit.report import submitted_notebooks, write_prediction_chart
    from coursekit.samples import SAMPLES, sample_submission, submit

    for student in SAMPLES:
        submit(tmp_path, student, sample_submission(student))
    notebooks = submitted_notebooks(tmp_path)
    assert len(notebooks) == len(SAMPLES) > 10
    counts = write_prediction_chart(notebooks, tmp_path / "predictions.png")
    assert (tmp_path / "predictions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name, by_choice in counts.items():
        assert sum(by_choice.values()) == len(notebooks)
        # The samples' made-up guesses spread like a class's: not all the same.
        assert max(by_choice.values()) < len(notebooks), name


def test_every_figure_has_alt_text_in_the_notebook_and_on_the_feedback_page():
    from coursekit.pictures import PICTURES

    graded = nbformat.read(REFERENCE, as_version=4)
    alts = {grade_id(cell): output.metadata["image/png"].get("alt", "")
            for cell in graded.cells for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})}
    assert set(alts) == set(PICTURES)
    page = (ROOT / "feedback" / "reference" / ASSIGNMENT / NOTEBOOK).with_suffix(".html")
    from bs4 import BeautifulSoup

    images = BeautifulSoup(page.read_text(), features="html.parser").find_all("img")
    on_page = [img.get("alt") for img in images if img.get("src", "").startswith("data:")]
    for cell, alt in alts.items():
        # Says what is drawn, with the run's own numbers.
        assert len(alt) > 80 and re.search(r"\d\.\d", alt), (cell, alt)
    assert on_page == list(alts.values())


def test_hostile_prediction_cells_cannot_break_the_report(tmp_path):
    from coursekit.report import submitted_notebooks

    nested = "prediction_plain = " + "(" * 5000 + '"x"' + ")" * 5000
    notebook = make_submission({"prediction_plain": nested,
                                "prediction_slope": "prediction_slope = '%s'" % ("y" * 30_000)})
    guesses = predictions.recorded(notebook)
    assert "prediction_plain" not in guesses and "prediction_slope" not in guesses
    # A file that is not a notebook is left to the grade table, not the chart.
    for student, content in (("broken", "{not json"), ("fine", nbformat.writes(notebook))):
        folder = tmp_path / "submitted" / student / ASSIGNMENT
        folder.mkdir(parents=True)
        (folder / NOTEBOOK).write_text(content)
    assert len(submitted_notebooks(tmp_path)) == 1


def test_the_training_explanation_quotes_what_the_run_shows():
    """Its epochs are the cell's, and the reference run's final loss is in its range."""
    graded = {grade_id(cell): cell for cell in nbformat.read(REFERENCE, as_version=4).cells}
    text = graded["explain_training"].source
    epochs = int(re.search(r"n_epochs = (\d+)", graded["train_both"].source).group(1))
    words = {3: "three", 4: "four", 5: "five", 6: "six"}
    assert "after %s epochs" % words[epochs] in text
    low, high = map(float, re.search(r"ended between (\d\.\d+) and (\d\.\d+)", text).groups())
    printed = "".join(o.get("text", "") for o in graded["train_both"].outputs)
    losses = re.search(r"lr 0\.1 +batch norm +loss per epoch: (.*)", printed).group(1)
    losses = [float(v) for v in losses.split(", ")]
    assert len(losses) == epochs and low <= losses[-1] <= high
