"""Sample submissions: the release notebook with some answer cells filled in.

``make_submission(answers)`` is what the tests use to build a submission for any student
answer. SAMPLES holds every sample student (the tests grade most of them, the benchmark
20); the few in COMMITTED are the course's example class under ``submitted/``, which
``make grade`` grades and whose graded notebooks and feedback pages are committed for a
reader to open. ``python -m coursekit.examples.samples``
(``make samples``) rewrites those after the release changes. It writes only the students
named in COMMITTED, so real submissions next to them are never touched.
"""
import copy
import hashlib
import os
import shutil
import sys

import nbformat

from coursekit.authoring import predictions
from coursekit.examples import answers
from coursekit.course import (ASSIGNMENT, NOTEBOOK, RELEASE_NOTEBOOK, ROOT, SOURCE_NOTEBOOK,
                              grade_id, is_solution)

# The answer in a student's copy of the original notebook, the course's starting point,
# verbatim: it creates each BatchNorm1d inside forward AND normalizes the residual stream,
# so its printout is flat.
SEED_ANSWER = '''class ResidualNetworkWithBatchNorm(torch.nn.Module):
  def __init__(self, input_size, output_size, hidden_size=100):
    super(ResidualNetworkWithBatchNorm, self).__init__()
    self.linear1 = nn.Linear(input_size, hidden_size)
    self.linear2 = nn.Linear(hidden_size, hidden_size)
    self.linear3 = nn.Linear(hidden_size, hidden_size)
    self.linear4 = nn.Linear(hidden_size, hidden_size)
    self.linear5 = nn.Linear(hidden_size, hidden_size)
    self.linear6 = nn.Linear(hidden_size, hidden_size)
    self.linear7 = nn.Linear(hidden_size, output_size)


  def count_params(self):
    return sum([p.view(-1).shape[0] for p in self.parameters()])

  def forward(self, x):
    print_variance("Input", x)

    # Initial transformation
    x = self.linear1(x)
    print_variance("First preactivation", x)

    # First residual block
    x = nn.BatchNorm1d(x.shape[1])(x)  # Proper BatchNorm initialization
    residual = self.linear2(x.relu())
    res1 = x + residual
    print_variance("After first residual connection", res1)

    # Second residual block
    res1 = nn.BatchNorm1d(res1.shape[1])(res1)
    residual = self.linear3(res1.relu())
    res2 = res1 + residual
    print_variance("After second residual connection", res2)

    # Third residual block
    res2 = nn.BatchNorm1d(res2.shape[1])(res2)
    residual = self.linear4(res2.relu())
    res3 = res2 + residual
    print_variance("After third residual connection", res3)

    # Fourth residual block
    res3 = nn.BatchNorm1d(res3.shape[1])(res3)
    residual = self.linear5(res3.relu())
    res4 = res3 + residual
    print_variance("After fourth residual connection", res4)

    # Fifth residual block
    res4 = nn.BatchNorm1d(res4.shape[1])(res4)
    residual = self.linear6(res4.relu())
    res5 = res4 + residual
    print_variance("After fifth residual connection", res5)

    return self.linear7(res5)'''


def solution_cells():
    """grade_id -> source of every answer cell in the instructor's notebook."""
    source = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    return {grade_id(cell): cell.source for cell in source.cells
            if is_solution(cell)}


def make_submission(answers, release=None):
    """The release notebook with the answer cells named in `answers` replaced."""
    notebook = copy.deepcopy(release or nbformat.read(RELEASE_NOTEBOOK, as_version=4))
    unknown = set(answers) - {grade_id(cell) for cell in notebook.cells}
    if unknown:
        raise KeyError("the release has no cell %s" % ", ".join(sorted(unknown)))
    for cell in notebook.cells:
        if grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return notebook


CLASS_CELL = "residual_network_with_batchnorm"


def _reference_with(**cells):
    return lambda: dict(solution_cells(), **cells)


def _slipped(slips):
    """The reference with each of `slips` (one per later exercise) in its answer cell."""
    cells = {answers.SLIPS[name].cell: answers.SLIPS[name].source for name in slips}
    assert len(cells) == len(slips), "one slip per exercise: %s" % (slips,)
    return _reference_with(**cells)


SAMPLES = {
    "reference": solution_cells,
    "blank": dict,
    "seed": lambda: {CLASS_CELL: SEED_ANSWER},
    # The network's points stand alone: the plain network, everything else right.
    "plain_class_rest_right": lambda: {k: v for k, v in solution_cells().items()
                                       if k != CLASS_CELL},
}
# One student per answer category, everything else answered as in the reference.
SAMPLES.update({"variant_" + name: _reference_with(**{CLASS_CELL: category.source})
                for name, category in answers.CATEGORIES.items()})
# Typical slips in the later exercises, the network right (the fast tests run every slip of
# answers.SLIPS; these show nbgrader grades them the same way). A slip costs its own
# exercise's points and nothing else, so one student carries one slip in each exercise:
# "partial", a typical slip everywhere after block_variances; "other_slips", the
# shortcuts that once earned full marks (issue 14).
SLIPPED = {
    "partial": ("plot_pyplot", "increment_without_he", "slope_end_points",
                "rescaled_branch_only", "train_without_momentum", "running_biased"),
    "other_slips": ("plot_from_one", "running_with_batchnorm", "train_full_batch"),
}
SAMPLES.update({student: _slipped(slips) for student, slips in SLIPPED.items()})
# {slip: the sample student who carries it}
SAMPLE_SLIPS = {slip: student for student, slips in SLIPPED.items() for slip in slips}
# The example class: full marks, nothing, the seed's partial network, and "partial".
COMMITTED = ("reference", "blank", "seed", "partial")


# What a copy of the course needs to release and grade (tests, benchmark).
COURSE_FILES = ("nbgrader_config.py", "coursekit", "source")


def course_copy(root):
    """A copy of the course at `root`: no gradebook, no submissions."""
    root.mkdir(parents=True, exist_ok=True)
    for name in COURSE_FILES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, root / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(ROOT / name, root / name)
    return root


def nbgrader_env():
    """The environment nbgrader needs when run from a course copy: this interpreter's bin
    folder first on PATH, for the programs it runs by name (alembic, for a gradebook made
    without the course's config)."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


def submission_path(root, student):
    return root / "submitted" / student / ASSIGNMENT / NOTEBOOK


def submit(root, student, notebook):
    path = submission_path(root, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


def guesses(student):
    """The prediction cells of a sample student (never graded). Made up, but spread the
    way a class's guesses spread: mostly what the run shows, some of each other choice,
    a few in the student's own words or left empty, so ``predictions.png`` shows what an
    instructor will read there. The same for every run of ``make samples``."""
    if student == "blank":
        return {}
    cells = {}
    for prediction in predictions.PREDICTIONS:
        draw = hashlib.sha256(("%s/%s" % (student, prediction.name)).encode()).digest()[0] / 256
        others = [c for c in prediction.choices if c != prediction.measured]
        guess = (prediction.measured if draw < 0.55
                 else others[int((draw - 0.55) / 0.3 * len(others))] if draw < 0.85
                 else "not sure" if draw < 0.93 else "")
        cells[prediction.name] = prediction.cell_source(guess)
    return cells


def sample_submission(student):
    """The sample `student`: its answers and its guesses."""
    return make_submission(dict(SAMPLES[student](), **guesses(student)))


def write_samples(root=ROOT):
    for student in COMMITTED:
        path = submit(root, student, sample_submission(student))
        print("wrote", path.relative_to(root))


if __name__ == "__main__":
    write_samples()
    sys.exit(0)
