"""The notebook teaches the way the book does: predict, then run, then explain (issue 15).

The cell-order tests read the release (what a student sees before running anything) and
the graded reference's outputs (what a student who answers correctly sees printed), so
they hold for the committed notebooks as `make grade` leaves them.
"""
import ast
import inspect
import re
from dataclasses import dataclass

import nbformat
import pytest

from conftest import ROOT
from coursekit.authoring import predictions
from coursekit.kernel import testcells
from coursekit.course import ASSIGNMENT, NOTEBOOK, RELEASE_NOTEBOOK, grade_id
from coursekit.examples.samples import make_submission

REFERENCE = ROOT / "autograded" / "reference" / ASSIGNMENT / NOTEBOOK

# What would give each prediction's answer away: the measured shape or number, or the
# explanation. Case-insensitive. Nothing a student reads before making the prediction may
# say any of them: the cells before it, the code of the run right after it (on screen while
# they predict), its question, and every message a check before it can print.
SPOILERS = {
    "prediction_plain": [r"doubl", r"exponential", r"compound", r"twofold", r"multipl"],
    "prediction_batchnorm": [r"linearly", r"linear growth", r"0\.6[89]", r"1 ?- ?1/\\?pi",
                             r"\\frac\{1\}\{\\pi\}", r"same amount", r"stays? flat",
                             r"per block", r"connections? added"],
    "prediction_log_batchnorm": [r"bends? over", r"bending over", r"smaller and smaller"],
    "prediction_slope": [r"scatter", r"differs from", r"twenty networks:", r"\d\.\d%"],
    "prediction_rescaled": [r"drift", r"shrinks slowly", r"falls? slowly", r"loses a little",
                            r"of its start", r"multiplied the variance by 0\.",
                            r"connections? multiplied"],
    "prediction_log_rescaled": [r"falling straight line", r"gently falling"],
    "prediction_training": [r"overflow", r"\bnan\b", r"diverg", r"cannot", r"fails? to train",
                            r"if any"],
    "prediction_train_vs_eval": [r"outputs differ", r"no longer depends", r"for eval mode",
                                 r"normali[sz]es with th(ose|e running) estimates"],
    "prediction_created_in_forward": [r"always in train mode", r"never reaches",
                                      r"only reaches registered", r"alone fails",
                                      r"normali[sz]ed with its own"],
}
# The written question's answer: batch norm after the ReLU adds about 2 per block.
WRITTEN_SPOILERS = [r"(?<![\d.])2(\.0+)? per block", r"slope of about 2", r"bn\(relu",
                    r"after the relu"]
# The derivation's answer (the TODO predicted_increment), as the notebook's Markdown, the
# checks' plain text or a measurement would give it.
DERIVATION = [r"1/\\sqrt\{2\\pi\}", r"\\frac\{1\}\{\\sqrt\{2\\pi\}\}", r"1 ?- ?1/\\?pi",
              r"\\frac\{1\}\{2\}-\\frac\{1\}\{2\\pi\}", r"1/sqrt\(2 ?pi\)", r"1/\(2 ?pi\)"]
MEASURED_INCREMENT = [r"(%[+.\d]*f|\d) per block", r"0\.6[89]", r"close to 0\.7"]


@dataclass
class Seen:
    """One cell of the release as a student meets it."""
    grade_id: str
    source: str
    printed: str  # what the graded reference printed there

    @property
    def text(self):
        return self.source + "\n" + self.printed


def cells_as_seen():
    """[Seen] in release order (the self-check helpers cell included: it is a few readable
    lines; the checks' compressed text is in a file beside the notebook)."""
    release = nbformat.read(RELEASE_NOTEBOOK, as_version=4)
    outputs = {grade_id(cell): cell.get("outputs", [])
               for cell in nbformat.read(REFERENCE, as_version=4).cells}
    seen = []
    for cell in release.cells:
        printed = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                          + str(o.get("evalue", "")) for o in outputs.get(grade_id(cell), []))
        seen.append(Seen(grade_id(cell), cell.source, printed))
    return seen


def _definitions(module):
    """{name: the AST node that defines it at the top of `module`}."""
    found = {}
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            found[node.name] = node
        elif isinstance(node, ast.Assign):
            found.update({t.id: node for t in node.targets if isinstance(t, ast.Name)})
    return found


def _literals(node, failing_only):
    """The string literals under `node`, docstrings left out; with failing_only, those of
    verdicts that pass (Verdict(name, True, ...)) too."""
    if isinstance(node, ast.Call) and failing_only and len(node.args) > 1 and (
            getattr(node.func, "id", getattr(node.func, "attr", None)) == "Verdict"
            and isinstance(node.args[1], ast.Constant) and node.args[1].value is True):
        return []
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    body = getattr(node, "body", None)
    docstring = (body[0] if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and body
                 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                 else None)
    return [text for child in ast.iter_child_nodes(node) if child is not docstring
            for text in _literals(child, failing_only)]


def check_messages(check, failing_only=False):
    """Every text check `check` can print, with the blanks its numbers fill: the string
    literals of its judging function and its observer, and of everything of judge.py and
    checks.py those use (functions, classes, tables of messages)."""
    from coursekit.kernel import checks, judge

    definitions = {"judge": _definitions(judge), "checks": _definitions(checks)}
    todo = [("judge", judge.JUDGES[check].__name__), ("checks", checks.OBSERVERS[check].__name__)]
    done, texts = set(), []
    while todo:
        module, name = todo.pop()
        if (module, name) in done or name not in definitions[module]:
            continue
        done.add((module, name))
        node = definitions[module][name]
        texts += _literals(node, failing_only)
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                todo.append((module, sub.id))
            elif (isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name)
                  and sub.value.id == "judge"):
                todo.append(("judge", sub.attr))
    return "\n".join(texts)


@dataclass
class Read:
    """What a student can read: the cells (Seen) and every check's messages."""
    cells: list
    messages: dict          # check: every text it can print
    failing_messages: dict  # check: every text it can print when it fails

    def index(self, cell_id):
        return next(i for i, cell in enumerate(self.cells) if cell.grade_id == cell_id)

    def checks_before(self, cell_id):
        return [testcells.BY_ID[c.grade_id].check for c in self.cells[:self.index(cell_id)]
                if c.grade_id in testcells.BY_ID]


def read_by_student():
    checks = [cell.check for cell in testcells.TEST_CELLS]
    return Read(cells_as_seen(), {c: check_messages(c) for c in checks},
                {c: check_messages(c, failing_only=True) for c in checks})


def _found(patterns, where, text):
    return ["%s says %r" % (where, m.group(0)) for pattern in patterns
            for m in [re.search(pattern, text, re.IGNORECASE)] if m]


def prediction_spoilers(read, name):
    """What gives prediction `name` away before the student makes it."""
    at = read.index(name)
    found = []
    for cell in read.cells[:at]:
        found += _found(SPOILERS[name], cell.grade_id, cell.text)
    found += _found(SPOILERS[name], read.cells[at + 1].grade_id + "'s code",
                    read.cells[at + 1].source)
    found += _found(SPOILERS[name], "the question",
                    predictions.BY_NAME[name].question)
    for check in read.checks_before(name):
        found += _found(SPOILERS[name], "a message of check %s" % check, read.messages[check])
    return found


def derivation_spoilers(read):
    """What gives the derivation (the TODO predicted_increment) away: before it, its answer
    or the measured increment; on its screen (up to the run that compares it with the
    networks), the derivation; in the messages of its failing check, its pieces."""
    todo, reveal = read.index("predicted_increment"), read.index("compare_slope")
    found = []
    for cell in read.cells[:todo]:
        found += _found(DERIVATION + MEASURED_INCREMENT, cell.grade_id, cell.text)
    for check in read.checks_before("predicted_increment"):
        found += _found(DERIVATION + MEASURED_INCREMENT, "a message of check %s" % check,
                        read.messages[check])
    for cell in read.cells[todo:reveal]:
        found += _found(DERIVATION, cell.grade_id, cell.source)
    found += _found(DERIVATION, "a failing message of check increment",
                    read.failing_messages["increment"])
    return found


def code_in_messages(read):
    """Fixes given as code: the rescaled network's line, or code that names a module the
    notebook never imports (copying it raises NameError)."""
    imported = "\n".join(cell.source for cell in read.cells)
    found = _found([r"\)\s*/\s*[\w.]*sqrt\(2\)"], "a failing message of rescaled_blocks",
                   read.failing_messages["rescaled_blocks"])
    for check, text in read.messages.items():
        for module in set(re.findall(r"\b(math|torch|np|nn|F)\.\w+\(", text)):
            if not re.search(r"^\s*import .*\b%s\b|^\s*from %s import|as %s\b"
                             % (module, module, module), imported, re.MULTILINE):
                found.append("a message of check %s uses %s, which the notebook never "
                             "imports" % (check, module))
    return found


@pytest.fixture(scope="module")
def read():
    return read_by_student()


@pytest.fixture(scope="module")
def seen():
    return [(cell.grade_id, cell.text) for cell in cells_as_seen()]


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
def test_nothing_before_a_prediction_gives_its_answer_away(read, name):
    assert set(SPOILERS) == set(predictions.BY_NAME)
    assert prediction_spoilers(read, name) == []


def written_spoilers(read):
    """What answers the written question before it: the cells, and the numbers of any
    message a check before it can print (its other words name placements to correct)."""
    found = []
    for cell in read.cells[:read.index("written_intro")]:
        found += _found(WRITTEN_SPOILERS, cell.grade_id, cell.text)
    for check in read.checks_before("written_intro"):
        found += _found(WRITTEN_SPOILERS[:2], "a message of check %s" % check,
                        read.messages[check])
    return found


def test_the_written_question_is_not_answered_before_it(read):
    assert written_spoilers(read) == []


def test_the_derivation_is_explained_only_after_its_todo(read):
    assert read.index("predicted_increment") < read.index("compare_slope") \
        < read.index("explain_increment")
    assert derivation_spoilers(read) == []


def test_no_message_gives_a_fix_as_code(read):
    assert code_in_messages(read) == []


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
    from coursekit.examples.samples import submission_path

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
    from coursekit.classroom.report import submitted_notebooks, write_prediction_chart
    from coursekit.examples.samples import SAMPLES, sample_submission, submit

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
    from coursekit.examples.pictures import PICTURES

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
    from coursekit.classroom.report import submitted_notebooks

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


def _with_cell_text(read, cell_id, added):
    cells = [Seen(c.grade_id, c.source + ("\n" + added if c.grade_id == cell_id else ""),
                  c.printed) for c in read.cells]
    return Read(cells, read.messages, read.failing_messages)


def _with_cell_moved(read, cell_id, after_id):
    cells = [c for c in read.cells if c.grade_id != cell_id]
    at = next(i for i, c in enumerate(cells) if c.grade_id == after_id)
    cells.insert(at + 1, read.cells[read.index(cell_id)])
    return Read(cells, read.messages, read.failing_messages)


def _with_message(read, check, added):
    messages = dict(read.messages, **{check: read.messages[check] + "\n" + added})
    failing = dict(read.failing_messages, **{check: read.failing_messages[check] + "\n" + added})
    return Read(read.cells, messages, failing)


# The spoilers issue 26 found, each put back as it was: (how, what finds it).
PUT_BACK = {
    "run_batchnorm's code says the connections added": (
        lambda r: _with_cell_text(r, "run_batchnorm", 'recall("prediction_batchnorm", "the '
                                  'residual connections added " + ", ".join(...))'),
        lambda r: prediction_spoilers(r, "prediction_batchnorm")),
    "run_plain's code says multiplied": (
        lambda r: _with_cell_text(r, "run_plain", 'recall("prediction_plain", "the residual '
                                  'connections multiplied the variance by " + ...)'),
        lambda r: prediction_spoilers(r, "prediction_plain")),
    "run_rescaled's code says multiplied": (
        lambda r: _with_cell_text(r, "run_rescaled", 'recall("prediction_rescaled", "the '
                                  'residual connections multiplied the variance by " + ...)'),
        lambda r: prediction_spoilers(r, "prediction_rescaled")),
    "created_in_forward_demo's code says normalized with its own statistics": (
        lambda r: _with_cell_text(r, "created_in_forward_demo", '"in eval mode the whole batch '
                                  'ran, normalized with its own statistics, and one example '
                                  'alone %s"'),
        lambda r: prediction_spoilers(r, "prediction_created_in_forward")),
    "explain_increment on the screen of its TODO": (
        lambda r: _with_cell_moved(r, "explain_increment", "test_increment"),
        derivation_spoilers),
    "placement's +0.69 per block before the derivation": (
        lambda r: _with_cell_moved(r, "test_placement", "test_no_compounding"),
        derivation_spoilers),
    "explain_batchnorm's close to 0.7": (
        lambda r: _with_cell_text(r, "explain_batchnorm", "each residual connection adds "
                                  "roughly the same amount, close to 0.7."),
        derivation_spoilers),
    "the increment's mean-square slip message": (
        lambda r: _with_message(r, "increment", "so the ReLU's output has variance 1/2 - "
                                "1/(2 pi) before the doubling"),
        derivation_spoilers),
    "rescaled_blocks' fix as code": (
        lambda r: _with_message(r, "rescaled_blocks", "Figure 11.6b multiplies the whole sum "
                                "by 1/sqrt(2): (x + linear(relu(x))) / math.sqrt(2), which "
                                "halves the variance"),
        code_in_messages),
    "train_eval_intro: eval mode uses the running estimates": (
        lambda r: _with_cell_text(r, "train_eval_intro", "It also keeps running estimates of "
                                  "both, for eval mode, where it normalizes with those "
                                  "estimates instead."),
        lambda r: prediction_spoilers(r, "prediction_train_vs_eval")),
    "the training question's hint": (
        lambda r: _with_cell_text(r, "predict_training", "Record in the next cell which, if "
                                  "any, fails to train at the larger rate."),
        lambda r: prediction_spoilers(r, "prediction_training")),
}


@pytest.mark.parametrize("spoiler", list(PUT_BACK))
def test_each_spoiler_found_before_is_caught_when_put_back(read, spoiler):
    put_back, finds = PUT_BACK[spoiler]
    assert finds(read) == []
    assert finds(put_back(read)), spoiler


def test_the_plot_todo_asks_only_what_its_checks_check(read):
    """A TODO that asks for something no check looks at teaches students to skip it."""
    todo = read.cells[read.index("todo_plot")].source.split("<details>")[0].lower()
    checked = (read.messages["plot_linear"] + read.messages["plot_log"]).lower()
    for asked in ("marker", "line style", "color", "title"):
        assert asked not in todo or asked in checked, asked
