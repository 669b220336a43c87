"""The SQLite gradebook under several graders at once.

SQLite lets one connection write at a time. SQLAlchemy's SQLite driver starts each
transaction as a reader and upgrades it when it first writes; if another grader holds the
write lock at that moment SQLite answers "database is locked" at once, without waiting
(the busy timeout does not cover an upgrade). Starting every transaction with
`BEGIN IMMEDIATE` takes the write lock up front, so graders queue for it (up to the busy
timeout) instead of failing. This is the recipe in SQLAlchemy's SQLite documentation
("Serializable isolation / Savepoints / Transactional DDL"). Other databases are untouched.

Only grading processes may do this: the `nbgrader autograde` command and the workers of
coursekit.parallel, which do nothing else. A process that nests gradebook sessions must
not: the formgrader inside the Jupyter server opens a second connection while its first
holds a transaction, and with `BEGIN IMMEDIATE` the second waits on the first for the
whole busy timeout, then fails with "database is locked".
"""
import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine

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


def is_serialised():
    return event.contains(Engine, "connect", _on_connect)


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
