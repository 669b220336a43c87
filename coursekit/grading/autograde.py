"""`nbgrader autograde` for this course: safe to run on a whole class.

`install()` (called by nbgrader_config.py) makes nbgrader's autograde command, and the
formgrader's autograde button, use `CourseAutograde`, which adds to stock nbgrader:

- it refuses to start when the sandbox (coursekit.grading.sandbox) is missing, before anyone is
  graded, with a message that says how to install it;
- a submission that is missing, empty, not JSON, not a notebook, or cannot be matched to
  the release is set aside with one clear line naming the student and the file (no
  traceback); that student gets zero in the gradebook, everyone else is graded;
- what each student needs the instructor's attention for (a file it could not read,
  grading that failed or did not finish, grade cells it had to repair, code the judge saw
  tamper) is written down once (coursekit.grading.attention), and the command exits non-zero
  whenever anyone does;
- every line it logs, nbgrader's own included, shows student ids (folder names the
  students chose) with their control characters escaped (coursekit.escape.printable).

Sandboxing each kernel, surviving runaway code and restoring stripped metadata happen in
the preprocessors (coursekit.grading.preprocessors) that nbgrader_config.py puts in the pipeline.
"""
import glob
import logging
import os
import shutil
import warnings

from nbgrader.api import Gradebook, MissingEntry
from nbgrader.converters import Autograde, NbGraderException

from coursekit.grading import attention, nbgrader_compat
from coursekit.course import notebook_metadata
from coursekit.escape import printable
from coursekit.grading.folders import describe, foreign_entries
from coursekit.grading.intake import (SubmissionProblem, read_submission, restore_metadata,
                                      unreadable_timestamp)
from coursekit.grading.preprocessors import SandboxedExecute
from coursekit.record import recorded_repair, recorded_tampering
from coursekit.authoring.releases import release_notebooks
from coursekit.grading.sandbox import Sandbox, SandboxUnavailable


def problem_of(student_folder, releases):
    """Why a student's submission cannot be graded, or None when it can."""
    # Read nothing through a link: it could lead to the solutions, the gradebook or
    # another student's work (coursekit.grading.folders).
    student_root = os.path.dirname(os.path.normpath(student_folder))
    if "\n" in os.path.basename(student_root):
        # nbgrader reads the id out of the path with a regular expression whose "." stops
        # at a line break: it would skip this student without a word.
        return ("%s: the student id (the folder's name) holds a line break, which nbgrader "
                "cannot grade; rename the folder" % student_root)
    linked = foreign_entries(student_root)
    if linked:
        return ("%s holds a link or special file (%s): those are never graded, and "
                "nothing of this submission was read; ask the student to submit the files "
                "themselves" % (student_folder, describe(linked, os.path.dirname(student_root))))
    timestamp = unreadable_timestamp(student_folder)
    if timestamp:
        return timestamp
    try:
        for name, release in releases.items():
            notebook = read_submission(os.path.join(student_folder, name + ".ipynb"))
            restore_metadata(notebook, release, name=os.path.join(student_folder,
                                                                   name + ".ipynb"))
    except SubmissionProblem as problem:
        return str(problem)
    except Exception as error:  # one student's file must never stop the class
        return "%s could not be read (%s)" % (student_folder, _said(error))
    return None


def _said(error):
    lines = str(error).strip().splitlines()
    return "%s: %s" % (type(error).__name__, lines[0]) if lines else type(error).__name__


class PrintableLog(logging.Filter):
    """Every line logged, with its control characters escaped (printable): nbgrader writes
    student ids into its own lines, in paths, before they reach the log. Each id of `ids`
    is escaped whole, line breaks included; elsewhere line breaks stay (tracebacks).

    Records no handler of `logger` would show are dropped unread: nbclient logs every
    message of the kernel at debug level, the judge's long replies among them, and
    formatting and escaping those cost a grading about 0.25 s a notebook."""

    def __init__(self, logger=None):
        super().__init__()
        self.ids = set()
        self.logger = logger

    def filter(self, record):
        if self.logger is not None and not shown(self.logger, record.levelno):
            return False
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a record that cannot be formatted is logging's to report
            return True
        for name in self.ids:
            message = message.replace(name, printable(name))
        record.msg, record.args = printable(message, keep="\t\n"), None
        record.exc_info = record.exc_text = None
        return True


def shown(logger, level):
    """Whether a handler that `logger` passes records to would show one of `level`."""
    handled = False
    while logger is not None:
        for handler in logger.handlers:
            handled = True
            if level >= handler.level:
                return True
        if not logger.propagate:
            break
        logger = logger.parent
    return not handled and level >= getattr(logging.lastResort, "level", logging.WARNING)


def printable_log(log):
    """The PrintableLog filtering `log`, added once (the formgrader reuses its logger)."""
    found = next((f for f in log.filters if isinstance(f, PrintableLog)), None)
    if found is None:
        found = PrintableLog(log)
        log.addFilter(found)
    return found


class CourseAutograde(nbgrader_compat.ConverterFolders, Autograde):

    def init_notebooks(self):
        shown = printable_log(self.log)
        try:
            Sandbox(parent=self).check()
            self.check_pipeline()
        except SandboxUnavailable as refusal:
            self.log.error(str(refusal))
            raise NbGraderException(str(refusal)) from None
        self.problems = []
        self.flagged = []
        self.matched = []  # (assignment, student) of every submission this run looked at
        pattern = self.source_folder(self.coursedir.assignment_id, self.coursedir.student_id)
        folders = [os.path.normpath(folder) for folder in sorted(glob.glob(pattern))]
        shown.ids.update(name for name in (os.path.basename(os.path.dirname(folder))
                                           for folder in folders) if printable(name) != name)
        try:
            super().init_notebooks()
        except NbGraderException:
            self.assignments = {}
        releases = {}
        for folder in folders:
            assignment_id = os.path.basename(folder)
            student_id = os.path.basename(os.path.dirname(folder))
            self.matched.append((assignment_id, student_id))
            if assignment_id not in releases:
                releases[assignment_id] = release_notebooks(self.coursedir, assignment_id)
            problem = problem_of(folder, releases[assignment_id])
            if problem:
                self.problems.append((assignment_id, student_id, problem))
                for key in [k for k in self.assignments if os.path.normpath(k) == folder]:
                    del self.assignments[key]
        if not self.assignments and not self.problems:
            raise NbGraderException("No submissions were found by '%s'" % pattern)

    # nbgrader grades a student as init_assignment, convert_single_notebook for each of
    # their notebooks, then set_permissions; an error anywhere skips the rest of them.
    def init_assignment(self, assignment_id, student_id):
        self._grading, self._found = (assignment_id, student_id), []
        attention.record(self.coursedir.root, assignment_id, student_id, attention.UNFINISHED)
        try:
            super().init_assignment(assignment_id, student_id)
        except Exception as error:
            attention.record(self.coursedir.root, assignment_id, student_id,
                             "grading stopped (%s): see the autograde log" % _said(error))
            raise

    def convert_single_notebook(self, notebook_filename):
        try:
            super().convert_single_notebook(notebook_filename)
        except Exception as error:
            attention.record(self.coursedir.root, *self._grading,
                             "grading stopped (%s): see the autograde log" % _said(error))
            raise
        graded = notebook_metadata(os.path.join(self.dest_folder(*self._grading),
                                                os.path.basename(notebook_filename)))
        self._found += [recorded_repair(graded), recorded_tampering(graded)]

    def set_permissions(self, assignment_id, student_id):
        super().set_permissions(assignment_id, student_id)
        found = "; ".join(filter(None, self._found))
        if found:
            attention.record(self.coursedir.root, assignment_id, student_id, found)
            self.flagged.append(student_id)
        else:
            attention.clear(self.coursedir.root, assignment_id, student_id)

    def check_pipeline(self):
        """Refuse when the config runs notebooks with anything but the sandboxed Execute."""
        from traitlets.utils.importstring import import_item

        steps = [import_item(p) if isinstance(p, str) else p
                 for p in self.autograde_preprocessors]
        if not any(isinstance(p, type) and issubclass(p, SandboxedExecute) for p in steps):
            raise SandboxUnavailable(
                "Refusing to autograde: the config's Autograde.autograde_preprocessors do "
                "not run notebooks with coursekit.grading.preprocessors.SandboxedExecute, so "
                "student code would run without its sandbox. Restore nbgrader_config.py.")

    def convert_notebooks(self):
        failure = None
        try:
            super().convert_notebooks()
        except NbGraderException as error:
            failure = error
        for assignment_id, student_id, problem in self.problems:
            self._grade_zero(assignment_id, student_id)
            attention.record(self.coursedir.root, assignment_id, student_id, problem)
        if self.problems:
            # Escaped whole (a problem quotes the folder): no id can start a line of its own.
            self.log.error("%d submission(s) could not be graded and got zero; fix or "
                           "re-submit them, then autograde again:\n  %s", len(self.problems),
                           "\n  ".join("%s: %s" % (printable(student_id), printable(problem))
                                       for _, student_id, problem in self.problems))
        if self.flagged:
            self.log.error("Graded, but grading repaired their grade cells or the judge saw "
                           "tampering; read their notebooks: %s",
                           ", ".join(map(printable, self.flagged)))
        # Also those this run skipped (graded before, and no --force) that still need it.
        waiting = sorted({student for assignment_id, student in self.matched
                          if attention.read(self.coursedir.root, assignment_id, student)})
        if failure or waiting:
            raise NbGraderException(str(failure or "some submissions need attention: "
                                        + ", ".join(map(printable, waiting))))

    def _grade_zero(self, assignment_id, student_id):
        """A student whose file cannot be read still appears in the grades, with zero."""
        stale = self.dest_folder(assignment_id, student_id)
        if os.path.isdir(stale):
            shutil.rmtree(stale)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Gradebook(self.coursedir.db_url, self.coursedir.course_id) as gradebook:
                gradebook.update_or_create_student(student_id)
                try:
                    gradebook.find_assignment(assignment_id)
                except MissingEntry:
                    return
                submission = gradebook.update_or_create_submission(assignment_id, student_id)
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        grade.auto_score = 0
                        grade.needs_manual_grade = False
                gradebook.db.commit()


def install():
    """Make nbgrader's autograde app (command line and formgrader) use CourseAutograde."""
    nbgrader_compat.build_instead("Autograde", CourseAutograde)
