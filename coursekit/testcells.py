"""The notebook's autograded test cells, one row each: where their points are set.

``coursekit.sync`` writes each test cell of the source notebook from its row (its text and
its points in the nbgrader metadata); the grader reads which check judges it and which of
the student's objects that check observes. Changing a check's points is one edit here,
then ``make release samples grade`` (mid-term: ``make release``, then ``make autograde``
to grade everyone again). Points edited in the notebook instead would be undone by the
release, so ``make release`` refuses them, naming the cells (coursekit.releases).
docs/checks.md and the README, which quote the points for readers, are checked against
this table by tests/test_points.py.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class TestCell:
    grade_id: str
    points: int
    checks: str           # what the cell checks, in the words of its first line
    check: str            # the check that judges it (coursekit.judge)
    arguments: str        # the student's objects it observes, as the notebook names them
    function: str = ""    # the udl_bn_checks function the cell calls: check_<check> if empty
    options: str = ""     # arguments after the student's objects
    reseeded: bool = True  # its hidden part runs the check again with another seed

    def call(self, seed=None):
        arguments = [self.arguments, self.options] + ([] if seed is None else
                                                       ["seed=%d" % seed])
        return "udl_bn_checks.%s(%s)" % (self.function or "check_" + self.check,
                                         ", ".join(a for a in arguments if a))

    def source(self):
        return ("# Check (%d point%s): %s\n"
                "import udl_bn_checks\n"
                "udl_bn_checks.score(%s, %d)\n"
                "### BEGIN HIDDEN TESTS\n"
                "# The visible check first (so a failure repeats its message), then a "
                "second seed.\n"
                "udl_bn_checks.require(%s,\n"
                "                      %s)\n"
                "### END HIDDEN TESTS" % (
                    self.points, "" if self.points == 1 else "s", self.checks, self.call(),
                    self.points, self.call(), self.call(1 if self.reseeded_in_kernel()
                                                        else None)))

    def reseeded_in_kernel(self):
        """Whether the hidden part can run a second seed in the notebook's kernel: not for
        a check that compares with a right answer, whose numbers the kernel holds for
        seed 0 only (coursekit.reference). The grader judges its own secret seed anyway."""
        from coursekit.judge import EXPECTING

        return self.reseeded and self.check not in EXPECTING


NETWORK = "ResidualNetworkWithBatchNorm"
RESCALED = "ResidualNetworkRescaled"

TEST_CELLS = (
    TestCell("test_registered", 1, "the BatchNorm1d layers are created in __init__.",
             "registered", NETWORK),
    TestCell("test_used", 2, "each residual block calls its own BatchNorm1d once.",
             "used", NETWORK),
    TestCell("test_no_compounding", 2, "the variance no longer compounds across the blocks.",
             "no_compounding", NETWORK),
    TestCell("test_placement", 3, "batch norm opens each residual branch, as in figure 11.6c.",
             "placement", NETWORK),
    TestCell("test_block_variances", 2,
             "block_variances returns the six variances of one forward pass.",
             "block_variances", "block_variances, ResidualNetwork"),
    TestCell("test_plot_linear", 2, "the linear plot shows both curves, labeled, with a legend.",
             "plot_linear", "plot_variance_growth", function="check_plot", options="False"),
    TestCell("test_plot_log", 1, "the log-scale plot uses a logarithmic y axis.",
             "plot_log", "plot_variance_growth", function="check_plot", options="True"),
    # The derivation has one answer: no second seed.
    TestCell("test_increment", 1, "your derivation of the variance one branch adds.",
             "increment", "predicted_increment", reseeded=False),
    TestCell("test_slope", 1, "the least-squares slope of six variances.",
             "slope", "measured_slope"),
    TestCell("test_rescaled_blocks", 2, "each block passes on (x + branch) / sqrt(2).",
             "rescaled_blocks", RESCALED),
    TestCell("test_rescaled_flat", 1, "the rescaled network's variance no longer compounds.",
             "rescaled_flat", RESCALED),
    TestCell("test_train_model", 2, "He start, SGD with momentum 0.9, one mean loss per epoch.",
             "train_model", "train_model"),
    TestCell("test_training_comparison", 1, "batch norm trains where the plain network cannot.",
             "training_comparison", "train_model, x_train, y_train"),
    TestCell("test_running_mean", 1, "running_mean as BatchNorm1d keeps it.",
             "running_mean", "running_statistics"),
    TestCell("test_running_var", 1, "running_var as BatchNorm1d keeps it (unbiased).",
             "running_var", "running_statistics"),
    TestCell("test_train_eval", 2,
             "running statistics in train mode, one example at a time in eval mode.",
             "train_eval", NETWORK),
)
BY_ID = {cell.grade_id: cell for cell in TEST_CELLS}
