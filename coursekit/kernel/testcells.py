"""The course's checks, one row each: the only place a check is declared.

A row is one autograded test cell of the notebook and everything about its check: its grade
id, its points and the words of its first line; the student's objects it observes, as the
notebook names them, and the observer (a function of checks.py) that looks at them; its
judge, always ``judge_<check>`` in judge.py. Everything else comes from these rows:
``coursekit.authoring.sync`` writes each test cell of the source notebook from its row; the
kernel's checks module makes ``check_<check>`` from it; the grader reads which check judges
a cell, what it asks the kernel to observe and which of the checks' functions a notebook may
call (coursekit.grading.grader). Checks with the same observer and objects share one
observation.

Adding a check is a row here, its observer in checks.py and its judge in judge.py, plus
the cell's place in the source notebook. Changing a check's points is one edit here, then
``make release samples grade`` (mid-term: ``make release``, then ``make autograde`` to
grade everyone again). Points edited in the notebook instead would be undone by the
release, so ``make release`` refuses them, naming the cells (coursekit.authoring.releases).
docs/checks.md and the README, which quote the points for readers, are checked against
this table by tests/test_points.py.

This module runs in the student's kernel too (as ``udl_bn_testcells``, beside judge.py and
checks.py): it imports nothing.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class TestCell:
    grade_id: str
    points: int
    checks: str           # what the cell checks, in the words of its first line
    check: str            # the check's name: judge.judge_<check> decides it
    arguments: str        # the student's objects it observes, as the notebook names them
    observer: str         # the function of checks.py that observes them
    function: str = ""    # the udl_bn_checks function the cell calls: check_<check> if empty
    options: str = ""     # arguments after the student's objects
    reseeded: bool = True  # its hidden part runs the check again with another seed

    @property
    def called(self):
        """The udl_bn_checks function the cell calls."""
        return self.function or "check_" + self.check


NETWORK = "ResidualNetworkWithBatchNorm"
RESCALED = "ResidualNetworkRescaled"

TEST_CELLS = (
    TestCell("test_registered", 1, "the BatchNorm1d layers are created in __init__.",
             "registered", NETWORK, "observe_network"),
    TestCell("test_used", 2, "each residual block calls its own BatchNorm1d once.",
             "used", NETWORK, "observe_network"),
    TestCell("test_no_compounding", 2, "the variance no longer compounds across the blocks.",
             "no_compounding", NETWORK, "observe_network"),
    TestCell("test_placement", 3, "batch norm opens each residual branch, as in figure 11.6c.",
             "placement", NETWORK, "observe_network"),
    TestCell("test_block_variances", 2,
             "block_variances returns the six variances of one forward pass.",
             "block_variances", "block_variances, ResidualNetwork", "observe_block_variances"),
    TestCell("test_plot_linear", 2, "the linear plot shows both curves, labeled, with a legend.",
             "plot_linear", "plot_variance_growth", "observe_plot_linear",
             function="check_plot", options="False"),
    TestCell("test_plot_log", 1, "the log-scale plot uses a logarithmic y axis.",
             "plot_log", "plot_variance_growth", "observe_plot_log",
             function="check_plot", options="True"),
    # The derivation has one answer: no second seed.
    TestCell("test_increment", 1, "your derivation of the variance one branch adds.",
             "increment", "predicted_increment", "observe_increment", reseeded=False),
    TestCell("test_slope", 1, "the least-squares slope of six variances.",
             "slope", "measured_slope", "observe_slope"),
    TestCell("test_rescaled_blocks", 2, "each block passes on (x + branch) / sqrt(2).",
             "rescaled_blocks", RESCALED, "observe_network"),
    TestCell("test_rescaled_flat", 1, "the rescaled network's variance no longer compounds.",
             "rescaled_flat", RESCALED, "observe_network"),
    TestCell("test_train_model", 2, "He start, SGD with momentum 0.9, one mean loss per epoch.",
             "train_model", "train_model", "observe_train_model"),
    TestCell("test_training_comparison", 1, "batch norm trains where the plain network cannot.",
             "training_comparison", "train_model, x_train, y_train",
             "observe_training_comparison"),
    TestCell("test_running_mean", 1, "running_mean as BatchNorm1d keeps it.",
             "running_mean", "running_statistics", "observe_running"),
    TestCell("test_running_var", 1, "running_var as BatchNorm1d keeps it (unbiased).",
             "running_var", "running_statistics", "observe_running"),
    TestCell("test_train_eval", 2,
             "running statistics in train mode, one example at a time in eval mode.",
             "train_eval", NETWORK, "observe_train_eval"),
)
BY_ID = {cell.grade_id: cell for cell in TEST_CELLS}
BY_CHECK = {cell.check: cell for cell in TEST_CELLS}
# The checks an answer to the first TODO (the batch-norm network) decides.
NETWORK_CHECKS = tuple(cell.check for cell in TEST_CELLS if cell.arguments == NETWORK)


def asked(check):
    """The check whose observation the grader asks the kernel for, to judge `check`: the
    first with the same observer and objects, so that a row of cells that read one
    observation (the network's) costs the kernel one request."""
    cell = BY_CHECK[check]
    return next(other.check for other in TEST_CELLS
                if (other.observer, other.arguments) == (cell.observer, cell.arguments))
