"""The gradebook: several graders writing SQLite at once, and hand grades kept across
regrades.

SQLite lets one connection write at a time. SQLAlchemy's SQLite driver starts each
transaction as a reader and upgrades it when it first writes; if another grader holds the
write lock at that moment SQLite answers "database is locked" at once, without waiting
(the busy timeout does not cover an upgrade). Starting every transaction with
`BEGIN IMMEDIATE` takes the write lock up front, so graders queue for it (up to the busy
timeout) instead of failing. This is the recipe in SQLAlchemy's SQLite documentation
("Serializable isolation / Savepoints / Transactional DDL"). Other databases are untouched.

Only grading processes may do this: the `nbgrader autograde` command and the workers of
coursekit.grading.parallel, which do nothing else. A process that nests gradebook sessions must
not: the formgrader inside the Jupyter server opens a second connection while its first
holds a transaction, and with `BEGIN IMMEDIATE` the second waits on the first for the
whole busy timeout, then fails with "database is locked".

Hand grades kept across regrades (`SaveGrades`): nbgrader's autograde marks every grade
that has a manual score as needing grading again, so regrading one student would send an
answer the instructor already graded back to Manual Grading, blank its cell in grades.csv
and count it in the report's "to grade by hand". `SaveGrades` takes nbgrader's place in
the pipeline and keeps a hand grade as graded when the answer is the one that was graded.
What was graded is known from a small record the autograder keeps beside each student's
graded folder (`autograded/<student>/<assignment>.hand-graded.json`): a digest of each
written answer as the last grading stored it, which is what the formgrader showed. A
changed answer is marked for grading again, as nbgrader does, and its old score and
comment stay in the gradebook (nbgrader never drops them); the report names it.
"""
import hashlib
import json
import os
import sqlite3
from pathlib import Path

from nbgrader.api import Gradebook
from nbgrader.preprocessors import SaveAutoGrades
from sqlalchemy import event
from sqlalchemy.engine import Engine

from coursekit.grading import nbgrader_compat

BUSY_TIMEOUT_MS = 300_000


def _on_connect(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        # The driver must not open transactions itself: _on_begin does.
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA busy_timeout = %d" % BUSY_TIMEOUT_MS)


def _on_begin(connection):
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def serialise_sqlite_writers():
    """Make every SQLite gradebook this process opens safe for concurrent graders.

    For grading processes only (see the module's docstring).
    """
    if not event.contains(Engine, "connect", _on_connect):
        event.listen(Engine, "connect", _on_connect)
        event.listen(Engine, "begin", _on_begin)


def serialise_if_autograde_command():
    """serialise_sqlite_writers() when this process is `nbgrader autograde`, else nothing.

    nbgrader_config.py calls this. Every nbgrader command and the Jupyter server read that
    file, but only in the autograde command is the running application (created before it
    reads the config) an AutogradeApp; the server and the formgrader keep SQLite's own
    behavior.
    """
    from nbgrader.apps.autogradeapp import AutogradeApp
    from traitlets.config import Application

    if Application.initialized() and isinstance(Application.instance(), AutogradeApp):
        serialise_sqlite_writers()


def stamp_new_gradebooks_in_process():
    """nbgrader stamps each new gradebook with its newest migration, which it learns by
    running `alembic heads` in a subprocess: about a second of CPU for every new gradebook,
    and a failure wherever alembic is not on PATH. The pinned nbgrader's is known
    (nbgrader_compat.MIGRATION_HEAD, checked against its migrations by test_architecture)."""
    nbgrader_compat.replace("nbgrader.api", "get_alembic_version",
                            lambda: nbgrader_compat.MIGRATION_HEAD)


def answers_record_path(root, assignment, student):
    """Where the digests of a student's graded written answers are kept: beside the graded
    folder, like the attention record, so nbgrader, feedback and the formgrader never see it."""
    return Path(root) / "autograded" / student / ("%s.hand-graded.json" % assignment)


def answer_digest(source):
    """A written answer's digest, blind to trailing spaces and blank lines at its ends."""
    text = "\n".join(line.rstrip() for line in source.strip().splitlines())
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def graded_by_hand(cell):
    """A cell whose points the instructor gives: an answer cell that is also graded."""
    from nbgrader import utils

    return bool(utils.is_grade(cell)) and bool(utils.is_solution(cell))


def _read_record(path):
    """{notebook: {grade id: digest}}; {} when there is none or it cannot be read (then
    every hand grade is marked for grading again: nbgrader's own behaviour, never a loss)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(path, record):
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".%d.tmp" % os.getpid())
    partial.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(partial, path)



class SaveGrades(SaveAutoGrades):
    """nbgrader's SaveAutoGrades, keeping the hand grades of unchanged answers as graded
    (see the module's docstring). nbgrader_config.py puts it in SaveAutoGrades's place."""

    def preprocess(self, nb, resources):
        from nbgrader.api import MissingEntry
        from nbgrader.coursedir import CourseDirectory

        from coursekit.escape import printable

        info = resources["nbgrader"]
        notebook, assignment, student = info["notebook"], info["assignment"], info["student"]
        answers = {cell.metadata.nbgrader["grade_id"]: answer_digest(cell.source)
                   for cell in nb.cells if graded_by_hand(cell)}
        path = answers_record_path(CourseDirectory(parent=self).root, assignment, student)
        record = _read_record(path)
        shown = record.get(notebook) if isinstance(record.get(notebook), dict) else {}
        # Graded by hand before this run, and the answer is the one the grader saw.
        kept = []
        with Gradebook(info["db_url"]) as gradebook:
            for name, digest in answers.items():
                try:
                    grade = gradebook.find_grade(name, notebook, assignment, student)
                except MissingEntry:
                    continue
                if (grade.manual_score is not None and not grade.needs_manual_grade
                        and shown.get(name) == digest):
                    kept.append(name)
        nb, resources = super().preprocess(nb, resources)
        if kept:
            with Gradebook(info["db_url"]) as gradebook:
                for name in kept:
                    gradebook.find_grade(name, notebook, assignment,
                                         student).needs_manual_grade = False
                gradebook.db.commit()
            self.log.info("%s: hand grades kept, the answers are unchanged: %s",
                          printable(student), ", ".join(kept))
        record[notebook] = answers
        _write_record(path, record)
        return nb, resources
