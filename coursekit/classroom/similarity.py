"""Similar answers: every pair of students' answer cells compared, for the instructor to read.

``python -m coursekit.classroom.similarity [--root DIR] [--threshold X] [--out FILE]`` (``make
similarity``) reads every ``submitted/<student>/bn/`` notebook and writes
``similarity.html`` at the course root: the pairs of students whose answers are at least
``--threshold`` alike, each with the matching cells side by side as the students wrote
them. It is evidence for a person to read, never a verdict: it changes no grade, and it
writes nothing but that page (submissions and gradebook are only read).

How two answers are compared:

- Answer cells are the release's solution cells (found by grade id; a notebook whose
  nbgrader metadata was stripped is matched to the release by ``coursekit.grading.intake``).
  Prediction cells are left out: a guess is picked from a short list of choices.
- Code is normalized on its syntax tree: names bound in a function are renamed by order of
  first appearance, and so is any other name the release does not use (the notebook's and
  the libraries' names, attributes and keywords stay); docstrings are dropped and
  ``ast.unparse`` writes it back, so comments and formatting vanish. A cell that does not
  parse (IPython magics, syntax errors) is compared token by token, comments dropped.
  Markdown (the written answer) is compared sentence by sentence, on lower-case words.
- What the release gave is no evidence: the lines of the release's cell are taken out of
  each answer first, so an untouched TODO contributes nothing.
- A pair's score is the share of what the two wrote beyond the release that matches
  (``difflib.SequenceMatcher`` over the normalized lines of each cell, lines weighted by
  their tokens, summed over the cells): big answers weigh more than small ones. Short TODOs
  have few sensible answers, so a pair is listed only when the matching part is at least
  MIN_SHARED_TOKENS long, and a cell holding only lines of the model solution
  (``source/``) is marked as such.
- Code that most of the class shares is no evidence either: a line written (beyond the
  release) by more than COMMON_SHARE of the students, and by at least COMMON_STUDENTS, is
  taken out of everyone's answers before pairs are compared.

Two students who both hand in the model solution throughout are listed (with every cell
marked *model solution*): about 1,200 tokens alike is worth a look, whether they found it
on their own or it was passed around. When most of the class hands it in, it is common
code and nobody is listed for it.
"""
import argparse
import ast
import builtins
import collections
import difflib
import html
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from coursekit.authoring import predictions
from coursekit.course import ASSIGNMENT, NOTEBOOK, RELEASE_NOTEBOOK, ROOT, grade_id, is_solution
from coursekit.grading.folders import describe, foreign_entries
from coursekit.grading.intake import SubmissionProblem, read_submission, restore_metadata

REPORT = "similarity.html"
# Pairs at or above this score are listed. Measured (tests/test_similarity.py and the
# answer categories of coursekit/examples/answers.py): a copy with other names, comments and
# formatting scores 0.998 with its original; the network TODO answered in different styles
# (book, module list, sequential) scores under 0.4; the example class's "partial" (the
# reference with a slip in six exercises) scores 0.69 with "reference".
THRESHOLD = 0.9
# ... and only when the part that matches is at least this many tokens (a line of code is
# about ten): more than the largest single TODO answered as the model solution does (the
# network: 145 tokens beyond the release; the three short TODOs: about 80 together).
MIN_SHARED_TOKENS = 200
# A line more than this share of the class wrote, and at least this many students, is
# common code: taken out before comparing.
COMMON_SHARE = 0.5
COMMON_STUDENTS = 3
# A cell is shown side by side when this share of what both wrote in it matches.
CELL_SHOWN = 0.5
# Comparing is quadratic in a cell's length at worst: longer cells are compared on their
# start (an honest answer cell is under 2 KB).
MAX_CELL_CHARS = 50_000
MAX_UNITS = 2000

GUESSES = frozenset(prediction.name for prediction in predictions.PREDICTIONS)
TOKEN = re.compile(r"\w+|[^\w\s]")
WORD = re.compile(r"\w+")
SOLUTION_MARKER = re.compile(r"^\s*#+\s*(BEGIN|END) SOLUTION\s*$", re.MULTILINE)
SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ListComp, ast.SetComp,
          ast.DictComp, ast.GeneratorExp)


# --- normalizing one cell --------------------------------------------------------------

def _without_docstrings(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _arguments(node):
    args = node.args
    every = args.posonlyargs + args.args + args.kwonlyargs + [
        a for a in (args.vararg, args.kwarg) if a is not None]
    return every


def _bound_in(scope):
    """Names a function, lambda or comprehension binds itself (its locals)."""
    names, declared = set(), set()
    if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        names.update(a.arg for a in _arguments(scope))
        todo = list(scope.body) if isinstance(scope.body, list) else [scope.body]
    else:
        names.update(n.id for g in scope.generators for n in ast.walk(g.target)
                     if isinstance(n, ast.Name))
        return names
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            declared.update(node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            todo.extend(node.decorator_list)
            continue
        if isinstance(node, SCOPES):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return names - declared


class _Renamer:
    """Canonical names: a function's locals by order of first appearance (``v<depth>_<n>``),
    other names the release does not use likewise (``g<n>``); the rest stay."""

    def __init__(self, keep, imported=()):
        self.keep = keep
        self.imported = frozenset(imported)   # aliases the cell's imports choose
        self.others = {}

    def name(self, ident, scopes):
        for depth in range(len(scopes) - 1, -1, -1):
            mapping, bound = scopes[depth]
            if ident in bound:
                return mapping.setdefault(ident, "v%d_%d" % (depth + 1, len(mapping)))
        if ident in self.keep and ident not in self.imported:
            return ident
        return self.others.setdefault(ident, "g%d" % len(self.others))

    def visit(self, node, scopes, in_class=False):
        if isinstance(node, ast.Name):
            node.id = self.name(node.id, scopes)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            node.names = [self.name(n, [] if isinstance(node, ast.Global) else scopes[:-1])
                          for n in node.names]
        elif isinstance(node, ast.ExceptHandler) and node.name:
            node.name = self.name(node.name, scopes)
        elif isinstance(node, ast.alias) and node.asname:
            node.asname = self.name(node.asname, scopes)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if not in_class:
                node.name = self.name(node.name, scopes)
            for child in node.decorator_list:
                self.visit(child, scopes)
        if isinstance(node, ast.ClassDef):
            for child in node.bases + node.keywords:
                self.visit(child, scopes)
            for child in node.body:
                self.visit(child, scopes, in_class=True)
            return
        if isinstance(node, SCOPES):
            inner = scopes + [({}, _bound_in(node))]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                for default in node.args.defaults + [d for d in node.args.kw_defaults if d]:
                    self.visit(default, scopes)
                for argument in _arguments(node):
                    argument.arg = self.name(argument.arg, inner)
                    argument.annotation = None
                if not isinstance(node, ast.Lambda):
                    node.returns = None
                for child in node.body if isinstance(node.body, list) else [node.body]:
                    self.visit(child, inner)
                return
            for generator in node.generators:
                self.visit(generator, inner)
            for child in ((node.key, node.value) if isinstance(node, ast.DictComp)
                          else (node.elt,)):
                self.visit(child, inner)
            return
        for child in ast.iter_child_nodes(node):
            self.visit(child, scopes)


def _parse(source):
    """The syntax tree of a cell, with IPython's line magics and shell lines left out;
    None when it is not Python."""
    for text in (source, re.sub(r"^[%!].*$", "", source, flags=re.MULTILINE)):
        try:
            return ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def _weighted(lines):
    units = []
    for line in lines:
        tokens = TOKEN.findall(line)
        if tokens:
            units.append((" ".join(tokens), len(tokens)))
    return units[:MAX_UNITS]


def code_units(source, keep):
    """(units, parsed): the cell's normalized lines, each with its weight in tokens."""
    tree = _parse(source)
    if tree is not None:
        try:
            tree = _without_docstrings(tree)
            imported = {alias.asname for node in ast.walk(tree)
                        if isinstance(node, (ast.Import, ast.ImportFrom))
                        for alias in node.names if alias.asname}
            _Renamer(keep, imported).visit(tree, [])
            return _weighted(ast.unparse(tree).splitlines()), True
        except (RecursionError, ValueError, MemoryError):
            pass
    return _weighted(_without_comment(line) for line in source.splitlines()), False


def _without_comment(line):
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#":
            return line[:index]
    return line


def prose_units(text):
    """A markdown cell's sentences, as lower-case words, each weighted by its words."""
    units = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n\s*\n", text):
        words = WORD.findall(sentence.lower())
        if words:
            units.append((" ".join(words), len(words)))
    return units[:MAX_UNITS]


def normalized(cell_type, source, keep):
    """(units, how) of one cell; how is "code", "tokens" (code that did not parse) or
    "prose"."""
    source = source[:MAX_CELL_CHARS]
    if cell_type == "code":
        units, parsed = code_units(source, keep)
        return units, "code" if parsed else "tokens"
    return prose_units(source), "prose"


def beyond(units, given):
    """`units` without the lines of `given` (each taken out as often as it occurs there)."""
    left = collections.Counter(line for line, _ in given)
    kept = []
    for line, weight in units:
        if left[line] > 0:
            left[line] -= 1
        else:
            kept.append((line, weight))
    return kept


def release_names(release):
    """Every name the release's code uses: the notebook's and the libraries' vocabulary."""
    names = set(dir(builtins))
    for cell in release.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias):
                names.add((node.asname or node.name).split(".")[0])
    return frozenset(names)


# --- the class --------------------------------------------------------------------------

@dataclass
class Answer:
    cell_type: str
    source: str                # as the student wrote it
    units: list                # normalized lines beyond the release, with their weights
    model: bool = False        # every line beyond the release is the model solution's
    own: int = 0               # tokens written beyond the release (common code included)

    @property
    def weight(self):
        return sum(weight for _, weight in self.units)


@dataclass
class Student:
    name: str
    problem: str = ""          # why the notebook could not be read
    answers: dict = field(default_factory=dict)   # grade id -> Answer

    @property
    def written(self):
        return sum(answer.weight for answer in self.answers.values())


class Release:
    """The release's answer cells, normalized once each way they may be compared."""

    def __init__(self, notebook, model=None):
        self.notebook = notebook
        self.keep = release_names(notebook)
        self.cells = {}
        for cell in notebook.cells:
            if is_solution(cell) and grade_id(cell) not in GUESSES:
                self.cells.setdefault(grade_id(cell), cell)
        self.order = list(self.cells)
        self._given = {}
        self.model = {}
        for cell in (model.cells if model is not None else ()):
            if grade_id(cell) in self.cells:
                self.model[grade_id(cell)] = collections.Counter(
                    line for line, _ in self.written(grade_id(cell), cell.cell_type,
                                                     cell.source))

    def given(self, cell_id, how):
        if (cell_id, how) not in self._given:
            cell = self.cells[cell_id]
            if how == "prose":
                units = prose_units(cell.source)
            else:
                units, _ = code_units(cell.source, self.keep)
                if how == "tokens":
                    units = _weighted(_without_comment(line)
                                      for line in cell.source.splitlines())
            self._given[cell_id, how] = units
        return self._given[cell_id, how]

    def written(self, cell_id, cell_type, source):
        """What an answer holds beyond the release cell, normalized (nbgrader's solution
        markers, which only the instructor's notebook has, left out)."""
        units, how = normalized(cell_type, SOLUTION_MARKER.sub("", source), self.keep)
        return beyond(units, self.given(cell_id, how))

    def from_model(self, cell_id, units):
        """Whether every line of `units` is in the model solution's answer."""
        return bool(units) and not collections.Counter(
            line for line, _ in units) - self.model.get(cell_id, collections.Counter())


def read_student(folder, release, root):
    student = Student(folder.name)
    path = folder / ASSIGNMENT / NOTEBOOK
    # Read nothing through a link or a pipe, as grading does (coursekit.grading.folders).
    linked = foreign_entries(str(folder))
    if linked:
        student.problem = "%s holds a link or special file (%s): not read" % (
            folder.relative_to(root), describe(linked, str(folder.parent)))
        return student
    try:
        notebook = read_submission(str(path))
        restore_metadata(notebook, release.notebook, name="%s's notebook" % folder.name)
    except SubmissionProblem as problem:
        student.problem = str(problem).replace(str(root) + "/", "")
        return student
    except Exception as error:  # one student's file never stops the report
        student.problem = "%s could not be read (%s)" % (
            path.relative_to(root), type(error).__name__)
        return student
    cells = {}
    for cell in notebook.cells:
        if grade_id(cell) in release.cells and isinstance(cell.source, str):
            cells[grade_id(cell)] = cell   # the last of a grade id: the one nbgrader keeps
    for cell_id, cell in cells.items():
        units = release.written(cell_id, cell.cell_type, cell.source)
        student.answers[cell_id] = Answer(
            cell.cell_type, cell.source, units, own=sum(weight for _, weight in units),
            model=release.from_model(cell_id, units))
    return student


@dataclass
class CellMatch:
    cell_id: str
    score: float
    shared: int


@dataclass
class Pair:
    first: Student
    second: Student
    score: float
    shared: int                # matching tokens
    cells: list                # CellMatch, in notebook order


def _matched(units, other):
    matcher = difflib.SequenceMatcher(None, [line for line, _ in units],
                                      [line for line, _ in other], autojunk=False)
    return sum(weight for block in matcher.get_matching_blocks()
               for _, weight in units[block.a:block.a + block.size])


def compare(first, second, order):
    shared = total = 0
    cells = []
    for cell_id in order:
        a, b = first.answers.get(cell_id), second.answers.get(cell_id)
        weights = (a.weight if a else 0), (b.weight if b else 0)
        total += sum(weights)
        if all(weights):
            matched = _matched(a.units, b.units)
            shared += matched
            if matched:
                cells.append(CellMatch(cell_id, 2 * matched / sum(weights), matched))
    return Pair(first, second, 2 * shared / total if total else 0.0, shared, cells)


def without_common(students):
    """Take the lines more than COMMON_SHARE of `students` wrote (and at least
    COMMON_STUDENTS) out of every answer. Returns how many distinct lines that was."""
    counts = collections.Counter()
    for student in students:
        for cell_id, answer in student.answers.items():
            counts.update((cell_id, line) for line in {line for line, _ in answer.units})
    common = {key for key, count in counts.items()
              if count >= COMMON_STUDENTS and count > COMMON_SHARE * len(students)}
    for student in students:
        for cell_id, answer in student.answers.items():
            answer.units = [(line, weight) for line, weight in answer.units
                            if (cell_id, line) not in common]
    return len(common)


def _notebook(path):
    try:
        return nbformat.read(path, as_version=4)
    except (OSError, ValueError):
        return None


@dataclass
class Similarity:
    students: list             # every student, in name order
    pairs: list                # at or above the threshold, sharing enough: most alike first
    common: int                # lines taken out as the class's common code
    threshold: float


def class_similarity(root=ROOT, threshold=THRESHOLD):
    """Every student of the course at `root` read and every pair compared."""
    root = Path(root)
    released = (_notebook(root / "release" / ASSIGNMENT / NOTEBOOK)
                or _notebook(RELEASE_NOTEBOOK))
    if released is None:
        raise SystemExit("No release notebook to compare with: run make release first.")
    release = Release(released, _notebook(root / "source" / ASSIGNMENT / NOTEBOOK))
    folders = sorted(path for path in (root / "submitted").glob("*")
                     if path.is_dir() and not path.name.startswith("."))
    students = [read_student(folder, release, root) for folder in folders]
    readable = [s for s in students if not s.problem]
    common = without_common(readable)
    pairs = []
    for index, first in enumerate(readable):
        for second in readable[index + 1:]:
            pair = compare(first, second, release.order)
            if pair.score >= threshold and pair.shared >= MIN_SHARED_TOKENS:
                pairs.append(pair)
    pairs.sort(key=lambda p: (-p.score, p.first.name, p.second.name))
    return Similarity(students, pairs, common, threshold)


# --- the report -------------------------------------------------------------------------

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 90em; color: #222; }
.verdict { border-left: 4px solid #c58a00; background: #fff8e5; padding: 0.6em 1em; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; vertical-align: top; padding: 0.3em; text-align: left; }
th.cell, td.cell { width: 12em; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; font-size: 0.85em; }
.problem { color: #a00; }
"""


def _html(text):
    return html.escape(str(text), quote=True)


HOW = ("<p>Each student's answer cells are compared with every other student's, after "
       "renaming the names they chose and dropping comments, docstrings and formatting (on "
       "the syntax tree). Taken out first, as no evidence: every line the release already "
       "had (an untouched TODO counts for nothing), and every line that more than half the "
       "class wrote, at least %d students (%d line%s here). The score is the share of what "
       "is left of the two answers that matches, line by line, weighted by length: long "
       "answers weigh more than short ones. A pair is listed at a score of %.2f or more, and "
       "only when the matching part is at least %d tokens long (about %d lines of code). "
       "Prediction cells are not compared: guesses come from a short list. A cell marked "
       "<em>model solution</em> holds, on both sides, only lines of the instructor's model "
       "solution (<code>source/</code>).</p>")


def report_html(result):
    students, pairs, threshold = result.students, result.pairs, result.threshold
    readable = [s for s in students if not s.problem]
    unread = [s for s in students if s.problem]
    nothing = [s for s in readable if not any(a.own for a in s.answers.values())]
    out = ['<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">',
           "<title>Similar answers: %s</title>" % _html(ASSIGNMENT),
           "<style>%s</style>\n</head>\n<body>" % STYLE,
           "<h1>Similar answers: assignment %s</h1>" % _html(ASSIGNMENT),
           '<p class="verdict"><strong>This report is evidence to read, not a verdict.</strong> '
           "It never changes a grade. Similar answers to a short TODO are common: a few lines "
           "have few sensible ways to be written, and many students arrive at the model "
           "solution on their own. Read the cells side by side and judge.</p>",
           HOW % (COMMON_STUDENTS, result.common, "" if result.common == 1 else "s",
                  threshold, MIN_SHARED_TOKENS, MIN_SHARED_TOKENS // 10),
           "<ul>",
           "<li>%d students compared; %d pair%s listed.</li>"
           % (len(readable), len(pairs), "" if len(pairs) == 1 else "s")]
    if nothing:
        out.append("<li>Wrote nothing beyond the release: %s.</li>"
                   % ", ".join(_html(s.name) for s in nothing))
    out.append("</ul>")
    if unread:
        out.append("<h2>Could not be read</h2>\n<p>These are not compared (<code>make "
                   "grade</code> names the same problems).</p>\n<ul>")
        out.extend('<li><strong>%s</strong>: <span class="problem">%s</span></li>'
                   % (_html(s.name), _html(s.problem)) for s in unread)
        out.append("</ul>")
    out.append("<h2>Pairs at %.2f or more</h2>" % threshold)
    if not pairs:
        out.append("<p>None.</p>")
    for number, pair in enumerate(pairs, 1):
        a, b = pair.first, pair.second
        out.append('<section class="pair" id="pair-%d">' % number)
        out.append('<h3><span class="student">%s</span> and <span class="student">%s</span>: '
                   "%.2f</h3>" % (_html(a.name), _html(b.name), pair.score))
        out.append("<p>%d tokens match, of the %d that %s and the %d that %s wrote beyond "
                   "the release and the common code.</p>"
                   % (pair.shared, a.written, _html(a.name), b.written, _html(b.name)))
        out.append('<table>\n<tr><th class="cell">answer cell</th><th>%s</th><th>%s</th></tr>'
                   % (_html(a.name), _html(b.name)))
        shown = [c for c in pair.cells if c.score >= CELL_SHOWN]
        for cell in shown:
            notes = ["%.2f alike, %d tokens" % (cell.score, cell.shared)]
            if a.answers[cell.cell_id].model and b.answers[cell.cell_id].model:
                notes.append("<em>model solution</em>")
            out.append('<tr><td class="cell"><code>%s</code><br>%s</td>'
                       "<td><pre>%s</pre></td><td><pre>%s</pre></td></tr>"
                       % (_html(cell.cell_id), "<br>".join(notes),
                          _html(a.answers[cell.cell_id].source),
                          _html(b.answers[cell.cell_id].source)))
        out.append("</table>")
        others = len(pair.cells) - len(shown)
        if others:
            out.append("<p>%d more answer cell%s match in part (under %.2f).</p>"
                       % (others, "" if others == 1 else "s", CELL_SHOWN))
        out.append("</section>")
    out.append("</body>\n</html>\n")
    return "\n".join(out)


def _printable(text):
    return "".join(c if c.isprintable() else "?" for c in text)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m coursekit.classroom.similarity",
        description="Compare every pair of students' answers; write similarity.html.")
    parser.add_argument("--root", type=Path, default=ROOT, help="the course folder")
    parser.add_argument("--threshold", type=float, default=THRESHOLD,
                        help="list pairs at or above this score (0 to 1; %(default)s)")
    parser.add_argument("--out", type=Path, help="where to write the report "
                        "(default: similarity.html in the course folder)")
    options = parser.parse_args(argv)
    root = options.root.resolve()
    out = options.out or root / REPORT
    result = class_similarity(root, options.threshold)
    students, pairs = result.students, result.pairs
    out.write_text(report_html(result), encoding="utf-8")
    unread = sum(1 for s in students if s.problem)
    print("Similarity: %d students compared%s; %d pair%s at %.2f or more."
          % (len(students) - unread, " (%d could not be read)" % unread if unread else "",
             len(pairs), "" if len(pairs) == 1 else "s", options.threshold))
    for pair in pairs:
        print("  %.2f  %s and %s" % (pair.score, _printable(pair.first.name),
                                      _printable(pair.second.name)))
    print("Report: %s (evidence to read, not a verdict; no grade was changed)" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
