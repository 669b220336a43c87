"""make similarity: similar answers listed for the instructor to read, nothing changed.

A small class in a course folder of its own (the committed release and source notebook, a
gradebook file, submissions): a disguised copy, independent answers, blank submissions,
short TODOs answered alike, the model solution twice, broken files and student markup.
The command runs once on it as `make similarity` runs it; the tests read its report.
"""
import difflib
import os
import html
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap

import nbformat
import pytest

import hostile
from conftest import checksums
from coursekit.classroom import similarity
from coursekit.examples import answers
from coursekit.course import ASSIGNMENT, NOTEBOOK, RELEASE_NOTEBOOK, ROOT, SOURCE_NOTEBOOK
from coursekit.examples.samples import (CLASS_CELL, make_submission, solution_cells,
                                        submission_path, submit)

# ada answers in her own way ...
ORIGINAL = {
    CLASS_CELL: answers.MODULE_LIST,
    "block_variances": '''def block_variances(model, x_batch):
  # Run the network once and keep what print_variance logged after the input.
  variance_log.clear()
  with torch.no_grad():
    model(x_batch)
  logged = variance_log[1:]
  return [float(value) for name, value in logged][:6]
''',
    "train_model": answers.TRAIN_RIGHT,
    "running_statistics": answers.RUNNING.replace("UNBIASED", "True"),
    "written_after_relu": (
        "I guessed the variance would stop growing, because every branch now sees unit "
        "variance. It did not stop: I measured a slope close to 2 per block, far more than "
        "the 0.68 we derived before. After the ReLU the normalized input keeps its full "
        "variance of one, so the He weights double it into 2. The skip connection adds "
        "that fixed amount every block, which is linear growth and not compounding."),
}
# ... and "<script>bo" hands in ada's work with other names, comments and formatting.
RENAMED = {
    CLASS_CELL: {"x": "h", "i": "k", "norm": "bn", "linear": "layer", "F": "functional",
                 "input_size": "n_in", "output_size": "n_out", "hidden_size": "width"},
    "block_variances": {"model": "net", "x_batch": "inputs", "logged": "entries",
                        "value": "v", "name": "label"},
    "train_model": {"losses": "history", "loss_function": "criterion", "optimizer": "opt",
                    "data_loader": "loader", "x_batch": "xb", "y_batch": "yb",
                    "total": "running", "epoch": "ep", "loss": "err"},
    "running_statistics": {"mean": "mu", "var": "sigma2", "batch": "b", "batches": "data"},
}
COPIER = "<script>bo"
MARKUP_COMMENT = '# </pre><script>alert("bo")</script>'


def disguised(cell_id, source):
    """`source` as a copier hands it in: names renamed, comments replaced, reformatted."""
    if cell_id == "written_after_relu":
        return "**My answer.**\n\n" + textwrap.fill(source.upper(), 50)
    names = RENAMED[cell_id]
    # A name, not an attribute.
    source = re.sub(r"(?<![\w.])(%s)\b" % "|".join(map(re.escape, names)),
                    lambda m: names[m.group(1)], source)
    lines = [MARKUP_COMMENT, "# worked this out myself"]
    for line in source.splitlines():
        line = line.split("  #")[0].rstrip() if not line.lstrip().startswith("#") else ""
        if line:
            indent = len(line) - len(line.lstrip())
            lines.append(" " * (2 * indent) + line.lstrip().replace(",", " ,"))
            if line.rstrip().endswith(":"):
                lines.append("")
    return "\n".join(lines) + "\n"


COPY = {cell_id: disguised(cell_id, source) for cell_id, source in ORIGINAL.items()}
MODEL = solution_cells()
SHORT = {CLASS_CELL: MODEL[CLASS_CELL], "block_variances": MODEL["block_variances"]}

CLASS = {
    "ada": make_submission(ORIGINAL),
    # Stripped nbgrader metadata, as some editors leave it: matched back to the release.
    COPIER: hostile.strip(make_submission(COPY)),
    # Independent answers to the network TODO, in other styles than ada's.
    "cy": make_submission({CLASS_CELL: answers.BOOK}),
    "di": make_submission({CLASS_CELL: answers.SEQUENTIAL}),
    "blank1": make_submission({}),
    "blank2": make_submission({}),
    "model1": make_submission(MODEL),
    "model2": make_submission(MODEL),
    "short1": make_submission(SHORT),
    "short2": make_submission(SHORT),
}
BROKEN = {"broken": b'{"cells": [', "unmatched": nbformat.writes(
    hostile.unmatchable(0)).encode(), "<img src=x onerror=alert(1)>": b"\xff\xfe"}
FLAGGED = {frozenset({"ada", COPIER}), frozenset({"model1", "model2"})}
TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "strong",
        "em", "ul", "li", "span", "section", "table", "tr", "th", "td", "pre", "code", "br"}


def new_course(root, students, broken=()):
    for notebook in (RELEASE_NOTEBOOK, SOURCE_NOTEBOOK):
        target = root / notebook.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(notebook, target)
    with sqlite3.connect(root / "gradebook.db") as gradebook:
        gradebook.execute("create table grade (student text, score real)")
        gradebook.execute("insert into grade values ('ada', 25)")
    for student, notebook in students.items():
        submit(root, student, notebook)
    for student, content in dict(broken).items():
        path = submission_path(root, student)
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
    (root / "submitted" / "no_notebook" / "bn").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = new_course(tmp_path_factory.mktemp("similarity"), CLASS, BROKEN)
    before = checksums(root)
    done = subprocess.run([sys.executable, "-m", "coursekit.classroom.similarity", "--root",
                           str(root)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    report = root / similarity.REPORT
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    return dict(root=root, done=done, before=before, after=checksums(root), html=text,
                result=similarity.class_similarity(root))


def listed_pairs(text):
    found = re.findall(r'<section class="pair" id="pair-\d+">\s*<h3><span class="student">'
                       r'(.*?)</span> and <span class="student">(.*?)</span>', text)
    return {frozenset(html.unescape(name) for name in pair) for pair in found}


def section(text, first, second):
    for part in text.split('<section class="pair"')[1:]:
        if {html.unescape(n) for n in re.findall(r'<span class="student">(.*?)</span>',
                                                 part.split("</h3>")[0])} == {first, second}:
            return part.split("</section>")[0]
    raise AssertionError("no section for %s and %s" % (first, second))


def pair_of(result, first, second):
    students = {s.name: s for s in result.students}
    order = list(dict.fromkeys(c for s in students.values() for c in s.answers))
    return similarity.compare(students[first], students[second], order)


def test_the_command_exits_0_writes_the_report_and_says_where(run):
    assert run["done"].returncode == 0, run["done"].stderr
    assert "Traceback" not in run["done"].stderr
    report = run["root"] / similarity.REPORT
    assert str(report) in run["done"].stdout
    assert "2 pairs at 0.90 or more" in run["done"].stdout
    assert "(%d could not be read)" % (len(BROKEN) + 1) in run["done"].stdout
    assert "evidence to read, not a verdict" in run["html"]
    assert "never changes a grade" in run["html"]
    assert "Similar answers to a short TODO are common" in run["html"]


def test_exactly_the_copy_and_the_twice_handed_in_model_solution_are_listed(run):
    assert listed_pairs(run["html"]) == FLAGGED


def test_a_disguised_copy_is_flagged_with_its_original(run):
    # The disguise is real: as text, most lines of the copy differ from the original.
    raw = difflib.SequenceMatcher(None, "\n".join(ORIGINAL.values()).splitlines(),
                                  "\n".join(COPY.values()).splitlines(), autojunk=False)
    assert raw.ratio() < 0.3
    assert nbformat.read(submission_path(run["root"], COPIER), as_version=4).cells[0] \
        .metadata.get("nbgrader") is None
    pair = pair_of(run["result"], "ada", COPIER)
    assert pair.score >= similarity.THRESHOLD
    assert pair.shared >= similarity.MIN_SHARED_TOKENS
    assert frozenset({"ada", COPIER}) in listed_pairs(run["html"])
    # Each copied cell is shown side by side, as each student wrote it.
    shown = section(run["html"], "ada", COPIER)
    for cell_id in ORIGINAL:
        assert "<code>%s</code>" % cell_id in shown
        assert html.escape(ORIGINAL[cell_id]) in shown
        assert html.escape(COPY[cell_id]) in shown


def test_independent_answers_in_other_styles_are_not_flagged(run):
    listed = listed_pairs(run["html"])
    for first, second in (("ada", "cy"), ("ada", "di"), ("cy", "di")):
        pair = pair_of(run["result"], first, second)
        assert pair.score < similarity.THRESHOLD, (first, second, pair.score)
        assert frozenset({first, second}) not in listed


def test_untouched_releases_are_not_flagged(run):
    pair = pair_of(run["result"], "blank1", "blank2")
    assert (pair.score, pair.shared) == (0.0, 0)
    assert frozenset({"blank1", "blank2"}) not in listed_pairs(run["html"])
    assert "Wrote nothing beyond the release: blank1, blank2." in run["html"]


def test_a_short_todo_answered_alike_is_not_flagged(run):
    # Alike, as the model solution of the network and block_variances is, but short.
    pair = pair_of(run["result"], "short1", "short2")
    assert pair.score >= similarity.THRESHOLD
    assert 0 < pair.shared < similarity.MIN_SHARED_TOKENS
    assert frozenset({"short1", "short2"}) not in listed_pairs(run["html"])


def test_the_model_solution_handed_in_twice_is_listed_and_marked(run):
    # A decision: a whole notebook alike is worth reading, whatever its source; every cell
    # says it is the model solution, for the instructor to weigh.
    shown = section(run["html"], "model1", "model2")
    rows = shown.split("<tr>")[2:]
    assert len(rows) == len(similarity.Release(
        nbformat.read(RELEASE_NOTEBOOK, as_version=4)).order)
    assert all("<em>model solution</em>" in row for row in rows)
    assert "<em>model solution</em>" not in section(run["html"], "ada", COPIER)


def test_code_most_of_the_class_shares_is_not_evidence(tmp_path):
    # The same two model solutions, in a class where most students hand it in.
    root = new_course(tmp_path, {"model1": make_submission(MODEL),
                                 "model2": make_submission(MODEL),
                                 "model3": make_submission(MODEL),
                                 "blank": make_submission({})})
    result = similarity.class_similarity(root)
    assert result.pairs == [] and result.common > 0
    assert pair_of(result, "model1", "model2").shared == 0


def test_an_unreadable_submission_is_listed_not_a_crash(run):
    text = run["html"]
    unread = text.split("<h2>Could not be read</h2>")[1].split("</ul>")[0]
    for name, says in (("broken", "is not valid JSON"), ("unmatched", "cannot be matched"),
                       ("<img src=x onerror=alert(1)>", "is not a text file"),
                       ("no_notebook", "is missing")):
        assert "<strong>%s</strong>: " % html.escape(name) in unread
        assert says in unread.split(html.escape(name), 1)[1].split("</li>")[0]
    assert str(run["root"]) not in unread


def test_a_submission_holding_a_link_is_named_and_not_read(tmp_path):
    root = new_course(tmp_path, {})
    folder = root / "submitted" / "linker" / ASSIGNMENT
    folder.mkdir(parents=True)
    os.symlink(root / "source" / ASSIGNMENT / NOTEBOOK, folder / NOTEBOOK)
    problems = {s.name: s.problem for s in similarity.class_similarity(root).students}
    assert "holds a link or special file" in problems["linker"], problems


def test_student_markup_is_escaped(run):
    text = run["html"]
    assert set(re.findall(r"</?\s*([A-Za-z][\w-]*)", text)) <= TAGS
    assert "<script" not in text.lower() and "<img" not in text.lower()
    assert "&lt;script&gt;bo" in text
    assert html.escape(MARKUP_COMMENT) in text
    assert html.escape("<img src=x onerror=alert(1)>") in text


def test_nothing_submitted_is_changed(run):
    written = set(run["after"]) - set(run["before"])
    assert written == {similarity.REPORT}
    del run["after"][similarity.REPORT]
    assert run["after"] == run["before"]
    assert any(name.startswith("submitted/") for name in run["before"])
    assert "gradebook.db" in run["before"]


def test_the_report_is_the_same_every_time(run):
    # Another process, another hash seed: the same page, byte for byte.
    assert similarity.report_html(run["result"]) == run["html"]
