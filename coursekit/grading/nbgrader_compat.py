"""Everything the course changes inside nbgrader, in one module: what to audit before
upgrading it (or nbclient and jupyter_client, listed at KERNEL_LIBRARY_NAMES).

nbgrader offers no option for these, so the course reaches into it, and only here:

- the private methods the course's classes override or call, each behind a hook with a
  public name that the course's class overrides instead (`ConverterFolders`,
  `CollectHooks`, `ValidatorHooks`);
- the classes nbgrader builds by their name in a module, with no option to choose
  another (`build_instead`), and the other attributes the course replaces (`replace`).

tests/test_architecture.py fails when a private name of nbgrader is used anywhere else in
the package, when an nbgrader attribute is replaced anywhere else (but in failclosed.py,
which must stand alone: it is what refuses to grade when everything else failed to load),
and when a name listed here is gone from the installed nbgrader.

It imports nothing of the course's: a student's nbgrader config carries it word for word,
with validate.py (coursekit/classroom/studentconfig.py).
"""
import importlib
import sys

from nbgrader.exchange.default.collect import ExchangeCollect
from nbgrader.validator import Validator

# Written against these versions (nbgrader is pinned in requirements.txt; the other two
# come with it). tests/test_architecture.py fails on any other: read this module then.
WRITTEN_AGAINST = {"nbgrader": "0.9.6", "nbclient": "0.11.0", "jupyter_client": "8.10.0"}
# nbgrader 0.9.6's newest gradebook migration: the version it stamps on a new gradebook.
MIGRATION_HEAD = "e43177bfe90b"

# {where: [its attributes the course replaces]}. nbgrader builds these classes by their
# name in these modules; init_destination is wrapped to log "replacing" as information
# (quiet.py); the metadata validators' jsonschema checks each schema once (schemacheck.py);
# a new gradebook is stamped with MIGRATION_HEAD (gradebook.py).
REPLACED = {
    "nbgrader.apps.api": ["Autograde", "GenerateFeedback"],
    "nbgrader.apps.autogradeapp": ["Autograde"],
    "nbgrader.apps.generatefeedbackapp": ["GenerateFeedback"],
    "nbgrader.apps.validateapp": ["Validator"],
    "nbgrader.converters.base.BaseConverter": ["init_destination"],
    "nbgrader.nbgraderformat.common": ["jsonschema"],
    "nbgrader.api": ["get_alembic_version"],
    "nbgrader.server_extensions.validate_assignment.handlers": ["Validator"],
}
# Replaced only once something else has loaded it: importing the Validate button's
# handler would cost every nbgrader command the Jupyter server's start-up.
ONLY_ONCE_LOADED = ("nbgrader.server_extensions.",)

# {hook class: (nbgrader class, [its private names the hook overrides or calls])}
PRIVATE_NAMES = {
    "ConverterFolders": ("nbgrader.converters.base.BaseConverter",
                         ["_format_dest", "_format_source"]),
    "CollectHooks": ("nbgrader.exchange.default.collect.ExchangeCollect",
                     ["_path_to_record", "_sort_by_timestamp"]),
    "ValidatorHooks": ("nbgrader.validator.Validator",
                       ["_extract_error", "_get_failed_cells", "_preprocess", "_print_error",
                        "_print_num_failed"]),
}

# nbclient and jupyter_client, beneath nbgrader's Execute: the kernel's sandbox and the
# output caps override or read these private names in their own classes, where the
# grading's security boundary reads best whole. They are listed here so that this module
# is the whole audit before an upgrade. {course class: (library class, [private names])}
KERNEL_LIBRARY_NAMES = {
    "coursekit.grading.outputcaps.CappedOutputs": (
        "nbclient.client.NotebookClient", ["_display_id_map"]),
    "coursekit.grading.sandbox.SandboxedKernelManager": (
        "jupyter_client.manager.KernelManager",
        ["_async_cleanup_resources", "_async_launch_kernel", "_async_pre_start_kernel",
         "_close_control_socket", "_control_socket"]),
}


def _where(dotted):
    """The module, or the class in a module, `dotted` names; None if it is a module
    replaced only once loaded and not loaded yet."""
    if dotted.startswith(ONLY_ONCE_LOADED):
        return sys.modules.get(dotted)
    module, _, name = dotted.rpartition(".")
    try:
        return importlib.import_module(dotted)
    except ImportError:
        return getattr(importlib.import_module(module), name)


def replace(where, name, value):
    """Set `name` of `where` (a dotted module or class of nbgrader's) to `value`, when
    REPLACED lists it; anything else is refused, so that this module stays the whole list."""
    if name not in REPLACED.get(where, ()):
        raise ValueError("%s.%s is not in nbgrader_compat.REPLACED" % (where, name))
    found = _where(where)
    if found is not None:
        setattr(found, name, value)


def build_instead(name, cls):
    """Make nbgrader build `cls` wherever it builds its class `name` by that name
    (nbgrader's command and the formgrader's API; for Validator, the Validate button)."""
    for where, names in REPLACED.items():
        if name in names:
            replace(where, name, cls)


def built(name):
    """The classes nbgrader builds now as `name`, where it builds it (for the tests)."""
    return {where: getattr(_where(where), name, None) for where, names in REPLACED.items()
            if name in names and _where(where) is not None}


class ConverterFolders:
    """For a converter (nbgrader's BaseConverter): the folders it reads and writes."""

    def source_folder(self, assignment_id, student_id):
        """The folder (a glob pattern when an id is "*") the converter reads."""
        return self._format_source(assignment_id, student_id)

    def dest_folder(self, assignment_id, student_id):
        """The folder the converter writes."""
        return self._format_dest(assignment_id, student_id)


class CollectHooks(ExchangeCollect):
    """nbgrader's collect, with its reading of an inbound submission's name and its choice
    of the latest submission as public methods to override."""

    def submission_record(self, path):
        """The record of one inbound submission folder (username, filename, timestamp)."""
        return super()._path_to_record(path)

    def latest_first(self, records):
        """One student's records, the one to collect first."""
        return super()._sort_by_timestamp(records)

    def _path_to_record(self, path):
        return self.submission_record(path)

    def _sort_by_timestamp(self, records):
        return self.latest_first(records)


class ValidatorHooks(Validator):
    """nbgrader's Validator, keeping the notebook it ran (`ran`), with its failed cells,
    their errors and what it prints as public methods."""

    ran = None

    def _preprocess(self, nb):
        # validate() keeps the notebook it ran to itself.
        self.ran = super()._preprocess(nb)
        return self.ran

    def failed_cells(self, nb):
        """The cells nbgrader counts as failed."""
        return self._get_failed_cells(nb)

    def cell_error(self, cell):
        """A failed cell's error, as nbgrader words it."""
        return self._extract_error(cell)

    def print_header(self, num_failed):
        """What validate_and_print prints before the failed cells."""
        super()._print_num_failed(num_failed)

    def print_failed_cell(self, source, error):
        """What validate_and_print prints for each failed cell."""
        super()._print_error(source, error)

    def _print_num_failed(self, num_failed):
        self.print_header(num_failed)

    def _print_error(self, source, error):
        self.print_failed_cell(source, error)
