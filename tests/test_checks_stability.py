"""The checks' verdicts never depend on the seed: 100 seeds, every category.

These call the very functions the notebook's test cells call (the notebook embeds
coursekit/checks.py verbatim; test_release checks that), so what is proven here is what
grades.
"""
import pytest
import torch

from coursekit import answers as variants
from coursekit import checks
from coursekit.samples import solution_cells

SEEDS = range(100)


@pytest.mark.parametrize("variant", sorted(variants.VARIANTS))
def test_network_verdicts_are_the_same_for_100_seeds(variant):
    model_class = variants.model_class(variant)
    for seed in SEEDS:
        failed = {name for name, check in checks.NETWORK_CHECKS.items()
                  if not check(model_class, seed=seed).passed}
        assert failed == variants.FAILS[variant], "seed %d" % seed


@pytest.mark.parametrize("variant", sorted(variants.MESSAGES))
def test_failure_messages_name_the_mistake(variant):
    messages = [check(variants.model_class(variant)).message
                for name, check in checks.NETWORK_CHECKS.items()
                if name in variants.FAILS[variant]]
    assert any(variants.MESSAGES[variant] in message for message in messages), messages


def test_seed_document_messages_name_both_mistakes():
    model_class = variants.model_class("seed")
    messages = " ".join(check(model_class).message for check in checks.NETWORK_CHECKS.values())
    assert "creates nn.BatchNorm1d layers as it runs" in messages
    assert "normalise the residual stream itself" in messages


def test_checks_leave_the_callers_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    checks.check_placement(variants.model_class("book"), seed=7)
    assert torch.equal(torch.rand(3), expected)


def _logging_print_variance(log):
    def print_variance(name, data):
        log.append((name, checks.stream_variance(data)))
    return print_variance


def _plain_network(log):
    """The notebook's ResidualNetwork, with print_variance feeding `log`."""
    namespace = {"torch": torch, "nn": torch.nn,
                 "print_variance": _logging_print_variance(log)}
    exec(variants.NO_NORMALISATION.replace("ResidualNetworkWithBatchNorm", "ResidualNetwork"),
         namespace)
    return namespace["ResidualNetwork"]


def test_block_variances_verdicts_are_the_same_for_100_seeds():
    namespace = {"variance_log": []}
    namespace["print_variance"] = _logging_print_variance(namespace["variance_log"])
    exec(solution_cells()["block_variances"], namespace)
    plain = _plain_network(namespace["variance_log"])
    for seed in SEEDS:
        assert checks.check_block_variances(namespace["block_variances"], plain, seed).passed

    def with_input(model, x):
        return [checks.stream_variance(x)] + namespace["block_variances"](model, x)

    verdict = checks.check_block_variances(with_input, plain)
    assert not verdict.passed and "input's variance" in verdict.message


def test_plot_verdicts():
    namespace = {}
    exec(solution_cells()["plot_variance_growth"], namespace)
    plot = namespace["plot_variance_growth"]
    for seed in range(5):
        assert checks.check_plot(plot, False, seed).passed
        assert checks.check_plot(plot, True, seed).passed

    def no_legend_no_log(ax, plain, batchnorm, log_scale=False):
        ax.plot(plain, label="plain")
        ax.plot(batchnorm, label="batch norm")
        ax.set_xlabel("block")
        ax.set_ylabel("variance")

    assert "legend" in checks.check_plot(no_legend_no_log, False).message
    assert "logarithmic" in checks.check_plot(no_legend_no_log, True).message

    def pyplot_state(ax, plain, batchnorm, log_scale=False):
        import matplotlib.pyplot as plt
        plt.figure()
        plt.plot(plain, label="plain")
        plt.plot(batchnorm, label="bn")

    assert "ax.plot" in checks.check_plot(pyplot_state, False).message
