"""An instructor's logs carry no warning that says nothing about the class
(coursekit/grading/quiet.py): no SQLAlchemy warning when a submission enters the
gradebook, no "Config option
`display_data_priority` not recognized", no WARNING for each folder --force replaces, and
"Alternative text is missing" only for images of the student's own code.

No kernel: the gradebook gets its submission as nbgrader's autograde adds it, and the
graded notebook is the release with the outputs a graded class shows.
"""
import json
import re
import subprocess
import sys

import nbformat
import pytest
from bs4 import BeautifulSoup

from conftest import nbgrader
from coursekit.course import ASSIGNMENT, NOTEBOOK, gradebook_url, is_locked, is_solution
from coursekit.grading.preprocessors import UNFINISHED_FIGURE_ALT
from coursekit.grading.quiet import SUBMISSION_NOT_IN_SESSION
from coursekit.examples.samples import course_copy, nbgrader_env

STUDENT = "ada"
READER = "grace"  # of the feedback page
# A 1x1 PNG, as the inline backend writes a figure.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5"
       "ErkJggg==")

# Adds a student's submission as nbgrader's autograde does (Gradebook.add_submission), every
# warning shown, after loading the course's config (as every nbgrader command and the
# coursekit.grading.parallel workers do) or not; prints the warnings it met, as JSON.
ADD_SUBMISSION = r"""
import json, sys, warnings
root, student, with_config = sys.argv[1], sys.argv[2], sys.argv[3] == "config"
warnings.simplefilter("always")
if with_config:
    from traitlets.config.loader import PyFileConfigLoader
    PyFileConfigLoader("nbgrader_config.py", path=root).load_config()
from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning
with warnings.catch_warnings(record=True) as caught:
    with Gradebook("sqlite:///%s/gradebook.db" % root) as gradebook:
        gradebook.update_or_create_student(student)
        gradebook.add_submission("bn", student)
    # Another warning of the gradebook's still shows.
    warnings.warn_explicit("Object of type <Student> is not what it seems", SAWarning,
                           "api.py", 1, module="nbgrader.api")
print(json.dumps([str(warning.message) for warning in caught]))
"""


def add_submission(root, student, with_config):
    result = subprocess.run([sys.executable, "-c", ADD_SUBMISSION, str(root), student,
                             "config" if with_config else "bare"], cwd=root,
                            env=nbgrader_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course copy with the release in its gradebook and no submission yet."""
    root = course_copy(tmp_path_factory.mktemp("quiet"))
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root


def test_a_submission_enters_the_gradebook_without_a_warning(course):
    # Without the course's config, nbgrader's add_submission makes SQLAlchemy warn...
    bare = add_submission(course, "bare", with_config=False)
    assert [m for m in bare if re.match(SUBMISSION_NOT_IN_SESSION, m)], bare
    # ... with it, as every grading run has it, only the other warning shows.
    assert add_submission(course, STUDENT, with_config=True) == [
        "Object of type <Student> is not what it seems"]
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url(course)) as gradebook:  # stored whole all the same
        submission = gradebook.find_submission(ASSIGNMENT, STUDENT)
        assert [len(notebook.grades) for notebook in submission.notebooks] == [
            len(notebook.grade_cells) for notebook in submission.assignment.notebooks]


def graded_notebook(course, student, own_figure=False):
    """The release as graded for `student`: the course's first figure cell stopped by an
    error after opening its figure (an unanswered TODO), and, when `own_figure`, a figure
    of the student's own code without alt text."""
    notebook = nbformat.read(course / "release" / ASSIGNMENT / NOTEBOOK, as_version=4)
    figure = nbformat.v4.new_output("display_data", data={"image/png": PNG,
                                                          "text/plain": "<Figure>"})
    fixed = next(cell for cell in notebook.cells if cell.cell_type == "code"
                 and is_locked(cell) and not is_solution(cell) and "show(" in cell.source)
    fixed.outputs = [nbformat.v4.new_output("error", ename="NameError",
                                            evalue="name 'x' is not defined", traceback=[]),
                     figure]
    if own_figure:
        answer = next(cell for cell in notebook.cells
                      if cell.cell_type == "code" and is_solution(cell))
        answer.outputs = [nbformat.v4.new_output("display_data", data=dict(figure.data))]
    path = course / "autograded" / student / ASSIGNMENT / NOTEBOOK
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return fixed


def test_feedback_warns_only_of_the_students_own_figures(course):
    add_submission(course, READER, with_config=True)
    graded_notebook(course, READER, own_figure=True)
    result = nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    assert [line for line in result.stderr.splitlines() if "WARNING" in line] == [
        "[GenerateFeedbackApp | WARNING] Alternative text is missing on 1 image(s)."]

    fixed = graded_notebook(course, READER)
    # Replaces the first page, as make feedback does.
    result = nbgrader(course, "generate_feedback", ASSIGNMENT, "--force")
    assert "WARNING" not in result.stderr and "Warning" not in result.stderr, result.stderr
    assert "INFO] Removing existing assignment" in result.stderr  # still said
    page = BeautifulSoup((course / "feedback" / READER / ASSIGNMENT / NOTEBOOK).with_suffix(
        ".html").read_text(), features="html.parser")
    cell = page.find(id="cell-id=%s" % fixed.id)
    assert [img.get("alt") for img in cell.select("img")] == [UNFINISHED_FIGURE_ALT]
