"""What keeps an instructor's logs quiet: the warnings nbgrader's libraries print on every
grading run that say nothing about the class, each silenced where it arises and for a
named reason. Every other warning still shows (tests/test_quiet.py).

* SQLAlchemy's "Object of type <SubmittedAssignment> not in session" (the gradebook,
  `gradebook_autoflush`): nbgrader_config.py installs the filter, so every nbgrader
  command, the coursekit.grading.parallel workers and the formgrader load it.
* "Config option `display_data_priority` not recognized" (`CoursePreprocessor`): the
  course's preprocessors accept the setting nbconvert's HTMLExporter gives all its parts.
* "Removing existing assignment: <folder>", a WARNING for each folder --force replaces
  (`replacing_is_info`): INFO, as make release and make feedback ask for it.
* "Alternative text is missing on N image(s)" for a figure the course's own cell had begun
  when an error stopped it: coursekit.grading.preprocessors.UnfinishedFigures describes it. A
  figure of the student's own code without alt text is still named, as nbconvert does.
"""
import logging
import warnings

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import List

from coursekit.grading import nbgrader_compat

# nbgrader's Gradebook.add_submission links each new submission, and its notebooks, to
# their assignment and student before it adds them to the session; reading the
# assignment's notebooks then autoflushes, and SQLAlchemy 2 warns that the link does not
# add the object to the session. nbgrader adds it itself a few lines on (nbgrader/api.py),
# and the submission is stored whole, grades and comments included.
SUBMISSION_NOT_IN_SESSION = (r"Object of type <Submitted(Assignment|Notebook)> not in session, "
                             r"add operation along '\w+\.submissions' will not proceed")


def gradebook_autoflush():
    """Silence SQLAlchemy's warning about nbgrader's new submissions, and nothing else."""
    from sqlalchemy.exc import SAWarning

    warnings.filterwarnings("ignore", message=SUBMISSION_NOT_IN_SESSION, category=SAWarning,
                            module=r"nbgrader\.api")


class CoursePreprocessor(NbGraderPreprocessor):
    """nbgrader's preprocessor, configurable as every part of nbconvert's exporters is.

    NbGraderPreprocessor declares nbconvert's `display_data_priority` again without
    config=True. HTMLExporter's default config sets that option for all its parts
    (NbConvertBase), so generate_feedback logged "Config option `display_data_priority`
    not recognized" once for each of the course's preprocessors. nbgrader's own GetGrades
    declares it configurable for the same reason. No course preprocessor reads it.
    """

    display_data_priority = List(
        NbGraderPreprocessor.class_traits()["display_data_priority"].default()
    ).tag(config=True)


# What nbgrader logs, as a WARNING, for each folder it replaces under --force.
REPLACING = ("Removing existing assignment: ", "Removing existing notebook: ")


class _ReplacingIsInfo(logging.Filter):
    """nbgrader's "Removing existing assignment: <folder>" as INFO, not WARNING."""

    def filter(self, record):
        if record.levelno == logging.WARNING and str(record.msg).startswith(REPLACING):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def replacing_is_info():
    """Log nbgrader's replacing of a folder under --force as INFO.

    make release and make feedback pass --force: the release and every feedback page are
    written again from what is graded now, as asked. nbgrader logs a WARNING for each
    folder it replaces (one a student in make feedback), which an instructor reads as
    trouble though nothing is wrong. It still says which folder it replaced.
    """
    from nbgrader.converters.base import BaseConverter

    original = BaseConverter.init_destination
    if getattr(original, "replacing_is_info", False):
        return

    def init_destination(self, assignment_id, student_id):
        log = getattr(self.log, "logger", self.log)  # a LoggerAdapter's logger
        demote = _ReplacingIsInfo()
        log.addFilter(demote)
        try:
            return original(self, assignment_id, student_id)
        finally:
            log.removeFilter(demote)

    init_destination.replacing_is_info = True
    nbgrader_compat.replace("nbgrader.converters.base.BaseConverter", "init_destination",
                            init_destination)
