"""nbgrader configuration for the UDL Notebook 11.3 course (batch normalization).

It puts the course's steps into nbgrader's pipelines (the sandboxed executor, metadata
repair, feedback, inert student markup) and, through the install() calls below, has
nbgrader build the course's autograde, generate_feedback and Validator where it builds
its own by name. Everything the course changes inside nbgrader (those classes, the
private methods it overrides, the attributes it replaces) is in
coursekit/grading/nbgrader_compat.py, written against the nbgrader pinned in
requirements.txt.
"""
import os
import sys

# The course tooling (coursekit) lives beside this file; nbgrader must import it.
COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))
if COURSE_ROOT not in sys.path:
    sys.path.insert(0, COURSE_ROOT)

from coursekit.course import COURSE_ID  # noqa: E402
from coursekit.grading import (autograde, feedback, gradebook, quiet,  # noqa: E402
                               schemacheck, validate)
from coursekit.grading.feedback import SummariseTests  # noqa: E402
from coursekit.grading.preprocessors import (HelpersOneLine, KernelLanguageInfo,  # noqa: E402
                                             PortablePaths, ReleaseStub, RestoreMetadata,
                                             SandboxedExecute, UnfinishedFigures)
from coursekit.grading.sanitize import InertStudentHTML  # noqa: E402
from nbgrader.converters.autograde import Autograde  # noqa: E402
from nbgrader.converters.generate_assignment import GenerateAssignment  # noqa: E402
from nbgrader.converters.generate_feedback import GenerateFeedback  # noqa: E402
from nbgrader.preprocessors import Execute, SaveAutoGrades  # noqa: E402

c = get_config()  # noqa: F821

c.CourseDirectory.course_id = COURSE_ID
c.CourseDirectory.root = COURSE_ROOT

# No warning that says nothing to an instructor (coursekit/grading/quiet.py): SQLAlchemy's about
# nbgrader's new submissions, nbgrader's for each folder --force replaces as asked.
quiet.gradebook_autoflush()
quiet.replacing_is_info()
# nbgrader's metadata schema is checked once per process, not once per cell (about 0.4 s
# of every notebook graded; coursekit/grading/schemacheck.py).
schemacheck.install()
# A new gradebook is stamped without starting alembic in a subprocess (about a second each;
# coursekit/grading/gradebook.py).
gradebook.stamp_new_gradebooks_in_process()

# The batch-norm TODO is released as the plain network to adapt, as in the original notebook.
_stock = GenerateAssignment.class_traits()["preprocessors"].default()
_after = _stock.index(next(p for p in _stock if p.__name__ == "ClearSolutions")) + 1
# The release opens unmodified in JupyterLab: its language_info is the kernel's own.
c.GenerateAssignment.preprocessors = (_stock[:_after] + [ReleaseStub] + _stock[_after:]
                                     + [KernelLanguageInfo])

# Autograding runs student code in a sandbox and grades a whole class even when some
# submissions are broken or hostile (coursekit/grading/autograde.py says what that adds).
autograde.install()
_sanitize = Autograde.class_traits()["sanitize_preprocessors"].default()
c.Autograde.sanitize_preprocessors = [RestoreMetadata] + _sanitize
# A hand grade stays graded when a regrade finds the same answer (coursekit/grading/gradebook.py).
c.Autograde.autograde_preprocessors = [
    {Execute: SandboxedExecute, SaveAutoGrades: gradebook.SaveGrades}.get(p, p)
    for p in Autograde.class_traits()["autograde_preprocessors"].default()]
# Outputs name the grading machine's Python as any machine's (site-packages/torch/...);
# last, student markup in the stored notebook (what the formgrader shows) is inert.
c.Autograde.autograde_preprocessors += [PortablePaths, InertStudentHTML]
# Feedback shows each test's name, points and message, never the hidden tests' code;
# feedback folders receive the pages and nothing else of the autograded folder.
feedback.install()
_feedback = GenerateFeedback.class_traits()["preprocessors"].default()
_after = _feedback.index(next(p for p in _feedback if p.__name__ == "GetGrades")) + 1
c.GenerateFeedback.preprocessors = (_feedback[:_after] + [SummariseTests] + _feedback[_after:]
                                    + [InertStudentHTML])
# Feedback pages open with the results: the total, each check, the written answer
# (coursekit/grading/templates/feedback_results). Feedback pages and the formgrader's Manual
# Grading (both nbconvert's HTMLExporter) show the self-check helpers as one line, and
# describe a figure of the course's that an error left unfinished.
c.HTMLExporter.preprocessors = [HelpersOneLine, UnfinishedFigures]
# Validating (`nbgrader validate`, JupyterLab's Validate button) lists each check's ✓ or ✗,
# message and points, and the total, instead of "Partial credit" (coursekit/grading/validate.py).
validate.install()
# Graders running side by side share gradebook.db: in `nbgrader autograde` (and the
# coursekit.grading.parallel workers) SQLite writers queue; never in the Jupyter server, where the
# formgrader would deadlock on its own second connection (coursekit/grading/gradebook.py).
gradebook.serialise_if_autograde_command()
# Limits of each student's kernel (coursekit/grading/sandbox.py). Grading code you trust on a
# machine without bubblewrap: --Sandbox.unsafe_run_without_sandbox=True
c.Sandbox.memory_gib = 4
c.Sandbox.max_processes = 64
c.Sandbox.cpu_seconds = 600
# One thread per kernel: identical outputs whatever else runs (and JOBS=N scales).
c.Sandbox.threads = 1

# The slowest honest cell (one SGD step, or building MNIST-1D) takes about a second here;
# two minutes leaves room for a slow machine and still stops an endless loop.
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True
# Without timings a re-run writes identical autograded notebooks.
c.Execute.record_timing = False
# What a student's output may leave in the graded notebook; the rest is cut, with a note.
# Honest output is at most 95 KB in a cell (a figure) and 233 KB in a notebook.
c.SandboxedExecute.max_cell_output_bytes = 1_000_000
c.SandboxedExecute.max_notebook_output_bytes = 5_000_000

# Late work: past the due date (set in the formgrader's Manage Assignments, or
# `nbgrader db assignment add bn --duedate="2026-12-14 17:00 Europe/London"`), a submission
# is flagged in the grade table and grades.csv's `late` column; no points are taken off.
# "zero" would give late work zero points.
c.LateSubmissionPlugin.penalty_method = "none"

# A warning torch or numpy prints to stderr would zero a test cell that passed.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = r"\w+Warning: |warnings\.warn\("

# A test cell the student deleted is put back and graded, instead of counting zero.
# RestoreMetadata already puts back every deleted cell (nbgrader's repair raises KeyError
# on several in a row); this stays as nbgrader's own safety net.
c.OverwriteCells.add_missing_cells = True

# `nbgrader export` (make export) writes grades-canvas.csv for Canvas's gradebook import;
# `--exporter=coursekit.classroom.export.PlainExport` writes grades-lms.csv
# (coursekit/classroom/export.py).
from coursekit.classroom.export import CanvasExport  # noqa: E402
c.ExportApp.plugin_class = CanvasExport

# nbgrader's exchange (make collect, make release-feedback): collect sets aside what a
# student could not have handed in (another's name, links to the instructor's files, a
# made-up time); release_feedback skips, and names, feedback with nothing to release it to
# (coursekit/classroom/exchange.py).
from coursekit.classroom.exchange import CourseCollect, CourseReleaseFeedback  # noqa: E402
c.ExchangeFactory.collect = CourseCollect
c.ExchangeFactory.release_feedback = CourseReleaseFeedback
