"""What the course relies on inside nbgrader, nbclient and jupyter_client that they do not
promise: one list to audit before upgrading any of them.

The code that relies on it stays in the class it changes (validate.py's is carried, word
for word, into every student's nbgrader config, where this package cannot be imported).
tests/test_architecture.py keeps this list whole: it finds every private name a course
class overrides or calls on its library base and every library attribute the course
replaces, fails if one is missing here, and fails if one is gone from the installed
library.
"""

# Written against these versions (nbgrader is pinned in requirements.txt; the other two
# come with it).
WRITTEN_AGAINST = {"nbgrader": "0.9.6", "nbclient": "0.11.0", "jupyter_client": "8.10.0"}

# {course class: (library class, [its private names the course class overrides or calls])}
PRIVATE_NAMES = {
    "coursekit.grading.autograde.CourseAutograde": (
        "nbgrader.converters.base.BaseConverter", ["_format_dest", "_format_source"]),
    "coursekit.grading.feedback.CourseGenerateFeedback": (
        "nbgrader.converters.base.BaseConverter", ["_format_dest", "_format_source"]),
    "coursekit.classroom.exchange.CourseCollect": (
        "nbgrader.exchange.default.collect.ExchangeCollect",
        ["_path_to_record", "_sort_by_timestamp"]),
    "coursekit.grading.validate.CourseValidator": (
        "nbgrader.validator.Validator",
        ["_extract_error", "_get_failed_cells", "_preprocess", "_print_error",
         "_print_num_failed"]),
    "coursekit.grading.outputcaps.CappedOutputs": (
        "nbclient.client.NotebookClient", ["_display_id_map"]),
    "coursekit.grading.sandbox.SandboxedKernelManager": (
        "jupyter_client.manager.KernelManager",
        ["_async_cleanup_resources", "_async_launch_kernel", "_async_pre_start_kernel",
         "_close_control_socket", "_control_socket"]),
}

# {library module or class: [its attributes the course replaces]}. nbgrader builds these
# classes by module-level name, with no option to choose another (the install() functions
# of autograde, feedback, validate and failclosed); init_destination is wrapped to say
# "replacing" as information rather than a warning (quiet.py); the metadata validators'
# jsonschema checks the schema once per process (schemacheck.py).
PATCHED = {
    "nbgrader.apps.api": ["Autograde", "GenerateFeedback"],
    "nbgrader.apps.autogradeapp": ["Autograde"],
    "nbgrader.apps.generatefeedbackapp": ["GenerateFeedback"],
    "nbgrader.apps.validateapp": ["Validator"],
    "nbgrader.converters.base.BaseConverter": ["init_destination"],
    "nbgrader.nbgraderformat.common": ["jsonschema"],
    "nbgrader.server_extensions.validate_assignment.handlers": ["Validator"],
}
