"""Student answers to the batch-norm TODO, one per category the course must grade.

Each is the source of a solution cell, written the way students write it (a survey of
real students' answers to this TODO), in a ``Category`` that says what grading must make of
it: the network checks it fails (none means full marks) and the phrase their messages must
contain. ``SLIPS`` does the same for typical wrong answers to the later TODOs. The sample
submissions (samples.py) paste them into the release so that the tests grade every one with
nbgrader; the fast stability test runs the checks on them directly.
"""
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import numpy as np

from coursekit.kernel import testcells


@dataclass(frozen=True)
class Category:
    """One way students answer the first TODO, and what grading must make of it."""
    source: str
    fails: frozenset = frozenset()      # the network checks it fails
    message: str = ""                   # a phrase the failing checks' messages contain
    at_most_half: bool = False          # it may earn at most half the network's points
    also_fails: frozenset = frozenset()  # checks outside the network's that it fails too
    also_message: str = ""              # ... and a phrase of their messages


class Slip(NamedTuple):
    """A typical wrong answer to one of the later TODOs."""
    cell: str              # the answer cell it replaces
    source: str
    fails: set             # the checks it fails: its own exercise's only
    message: str           # a phrase of their messages

PLAIN_INIT = """
    self.linear1 = nn.Linear(input_size, hidden_size)
    self.linear2 = nn.Linear(hidden_size, hidden_size)
    self.linear3 = nn.Linear(hidden_size, hidden_size)
    self.linear4 = nn.Linear(hidden_size, hidden_size)
    self.linear5 = nn.Linear(hidden_size, hidden_size)
    self.linear6 = nn.Linear(hidden_size, hidden_size)
    self.linear7 = nn.Linear(hidden_size, output_size)
"""
FIVE_BN = """
    self.bn1 = nn.BatchNorm1d(hidden_size)
    self.bn2 = nn.BatchNorm1d(hidden_size)
    self.bn3 = nn.BatchNorm1d(hidden_size)
    self.bn4 = nn.BatchNorm1d(hidden_size)
    self.bn5 = nn.BatchNorm1d(hidden_size)
"""


def _separate_attributes(init_extra, body):
    return ("class ResidualNetworkWithBatchNorm(torch.nn.Module):\n"
            "  def __init__(self, input_size, output_size, hidden_size=100):\n"
            "    super(ResidualNetworkWithBatchNorm, self).__init__()\n"
            + PLAIN_INIT + init_extra +
            "\n  def count_params(self):\n"
            "    return sum([p.view(-1).shape[0] for p in self.parameters()])\n\n"
            "  def forward(self, x):\n" + body)


def _blocks(template, names=("bn1", "bn2", "bn3", "bn4", "bn5")):
    """Five residual blocks from a one-line template using {prev}, {res}, {bn}, {lin}."""
    lines, prev = [], "f"
    for k, bn in enumerate(names, start=1):
        res = "res%d" % k
        lines.append("    " + template.format(prev=prev, res=res, bn="self." + bn,
                                               lin="self.linear%d" % (k + 1)))
        lines.append('    print_variance("After residual connection %d", %s)' % (k, res))
        prev = res
    return "\n".join(lines) + "\n"


STEM = ('    print_variance("Input", x)\n    f = self.linear1(x)\n'
        '    print_variance("First preactivation", f)\n')
HEAD = "    return self.linear7(res5)\n"

BOOK = _separate_attributes(FIVE_BN, STEM + _blocks("{res} = {prev} + {lin}({bn}({prev}).relu())")
                            + HEAD)

MODULE_LIST = """
import torch.nn.functional as F

class ResidualNetworkWithBatchNorm(nn.Module):
  def __init__(self, input_size, output_size, hidden_size=100):
    super().__init__()
    self.input_layer = nn.Linear(input_size, hidden_size)
    self.norms = nn.ModuleList([nn.BatchNorm1d(hidden_size) for _ in range(5)])
    self.hidden = nn.ModuleList([nn.Linear(hidden_size, hidden_size) for _ in range(5)])
    self.output_layer = nn.Linear(hidden_size, output_size)

  def forward(self, x):
    print_variance("Input", x)
    x = self.input_layer(x)
    print_variance("First preactivation", x)
    for i, (norm, linear) in enumerate(zip(self.norms, self.hidden)):
      x = x + linear(F.relu(norm(x)))
      print_variance("After residual connection %d" % (i + 1), x)
    return self.output_layer(x)
"""

SEQUENTIAL = """
class ResidualNetworkWithBatchNorm(torch.nn.Module):
  def __init__(self, input_size, output_size, hidden_size=100):
    super(ResidualNetworkWithBatchNorm, self).__init__()
    self.linear1 = nn.Linear(input_size, hidden_size)
    self.branches = nn.ModuleList([
        nn.Sequential(nn.BatchNorm1d(hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size))
        for _ in range(5)])
    self.linear7 = nn.Linear(hidden_size, output_size)

  def forward(self, x):
    x = self.linear1(x)
    for branch in self.branches:
      x = x + branch(x)
    return self.linear7(x)
"""

# The same network adding in place: batch norm's saved input is overwritten, so the
# forward pass is right but the backward pass fails and the network cannot be trained.
IN_PLACE_ADD = SEQUENTIAL.replace("x = x + branch(x)", "x += branch(x)")

EXTRA_NORMS = _separate_attributes(
    FIVE_BN + "    self.bn_in = nn.BatchNorm1d(input_size)\n"
    "    self.bn_out = nn.BatchNorm1d(hidden_size)\n"
    "    self.spare = nn.BatchNorm1d(hidden_size)  # never used\n",
    '    x = self.bn_in(x)\n' + STEM.split("\n", 1)[1]
    + _blocks("{res} = torch.add({prev}, {lin}(torch.relu({bn}({prev}))))")
    + "    return self.linear7(self.bn_out(res5))\n")

# Figure 11.6c plus a batch norm on the stem's output, before the first block: outside
# the residual branches, so it changes nothing the checks grade.
STEM_NORM = _separate_attributes(
    FIVE_BN + "    self.bn0 = nn.BatchNorm1d(hidden_size)\n",
    STEM.replace("f = self.linear1(x)", "f = self.bn0(self.linear1(x))")
    + _blocks("{res} = {prev} + {lin}({bn}({prev}).relu())") + HEAD)

# Figure 11.6c, and a print_variance of the student's own in the same cell: it prints more
# neatly but no longer adds to variance_log, which block_variances reads.
OWN_PRINT_VARIANCE = BOOK + """
def print_variance(name, data):
  variance = np.mean(np.var(data.detach().numpy(), axis=0))
  print("%-35s variance = %8.3f" % (name, variance))
"""

SHARED = _separate_attributes(
    "    self.bn = nn.BatchNorm1d(hidden_size)\n",
    STEM + _blocks("{res} = {prev} + {lin}({bn}({prev}).relu())", names=("bn",) * 5) + HEAD)

BRANCH_END = _separate_attributes(
    FIVE_BN, STEM + _blocks("{res} = {prev} + {bn}({lin}({prev}.relu()))") + HEAD)

STREAM_BEFORE_ADD = _separate_attributes(
    FIVE_BN, STEM + _blocks("{res} = {bn}({prev}); {res} = {res} + {lin}({res}.relu())") + HEAD)

STREAM_AFTER_ADD = _separate_attributes(
    FIVE_BN, STEM + _blocks("{res} = {bn}({prev} + {lin}({prev}.relu()))") + HEAD)

CREATED_IN_FORWARD = _separate_attributes(
    "", STEM + _blocks("{res} = {prev} + {lin}(nn.BatchNorm1d({prev}.shape[1])({prev}).relu())")
    + HEAD)

# The seed document's answer: BatchNorm1d created in forward AND the stream normalized.
SEED = _separate_attributes(
    "", STEM + _blocks("{res} = nn.BatchNorm1d({prev}.shape[1])({prev}); "
                       "{res} = {res} + {lin}({res}.relu())") + HEAD)

AFTER_RELU = _separate_attributes(
    FIVE_BN, STEM + _blocks("{res} = {prev} + {lin}({bn}({prev}.relu()))") + HEAD)

CALLED_TWICE = _separate_attributes(
    FIVE_BN, STEM + _blocks("{res} = {prev} + {lin}({bn}({prev}).relu())",
                            names=("bn1", "bn2", "bn2", "bn4", "bn5")) + HEAD)

LAYER_NORM = _separate_attributes(
    FIVE_BN.replace("BatchNorm1d", "LayerNorm"),
    STEM + _blocks("{res} = {prev} + {lin}({bn}({prev}).relu())") + HEAD)

# Batch norm on the stem before its ReLU, then at the end of each branch, after the
# branch's own ReLU: the stem's norm is outside the blocks, and every block is branch-end.
STEM_RELU_BRANCH_END = _separate_attributes(
    "    self.bn0 = nn.BatchNorm1d(hidden_size)\n" + FIVE_BN,
    STEM.replace("f = self.linear1(x)", "f = self.bn0(self.linear1(x)).relu()")
    + _blocks("{res} = {prev} + {bn}({lin}({prev}).relu())") + HEAD)

# Branch-end batch norm in blocks 1 to 4, none in block 5 (its layer is never called).
LAST_BLOCK_UNNORMALIZED = _separate_attributes(
    FIVE_BN, STEM + _blocks("{res} = {prev} + {bn}({lin}({prev}.relu()))",
                            names=("bn1", "bn2", "bn3", "bn4")).replace("{bn}", "")
    + "    res5 = res4 + self.linear6(res4.relu())\n"
    + '    print_variance("After residual connection 5", res5)\n' + HEAD)

# Batch norm in train mode only: the book's network while training, the plain one after
# model.eval(), so the trained weights meet values on a scale they never saw.
TRAIN_MODE_ONLY = _separate_attributes(
    FIVE_BN, STEM + _blocks("{res} = {prev} + {lin}(({bn}({prev}) if self.training "
                            "else {prev}).relu())") + HEAD)

NEVER_CALLED = _separate_attributes(
    FIVE_BN, STEM + _blocks("{res} = {prev} + {lin}({prev}.relu())") + HEAD)

NO_NORMALISATION = _separate_attributes(
    "", STEM + _blocks("{res} = {prev} + {lin}({prev}.relu())") + HEAD)

# The plain network with a print_variance that fakes linear growth.
FAKED_PRINTOUT = NO_NORMALISATION + """
_calls = [0]
def print_variance(name, data):
  _calls[0] += 1
  print("%s variance=%f" % (name, 1.0 + 0.68 * (_calls[0] % 7)))
"""

# An answer that leaves the first TODO undone fails every check it decides.
UNDONE = frozenset(testcells.NETWORK_CHECKS)
# A print_variance of the student's own no longer records what the network computes, so
# block_variances, which reads it, fails too, with a message that names that cause.
OWN_PRINTOUT = dict(also_fails=frozenset({"block_variances"}),
                    also_message="defines its own print_variance")
CATEGORIES = {
    "book": Category(BOOK),
    "module_list": Category(MODULE_LIST),
    "sequential": Category(SEQUENTIAL),
    "in_place_add": Category(IN_PLACE_ADD, frozenset({"train_eval"}), "write x = x + branch(x)"),
    "extra_norms": Category(EXTRA_NORMS),
    "stem_norm": Category(STEM_NORM),
    "own_print_variance": Category(OWN_PRINT_VARIANCE, **OWN_PRINTOUT),
    "shared": Category(SHARED, frozenset({"used"}), "shared by blocks"),
    "branch_end": Category(BRANCH_END, frozenset({"placement"}), "at the end of the branch"),
    "stream_before_add": Category(STREAM_BEFORE_ADD, frozenset({"placement"}),
                                  "normalize the residual stream itself"),
    "stream_after_add": Category(STREAM_AFTER_ADD, frozenset({"used", "placement"}),
                                 "normalize the residual stream itself"),
    # One mistake, two consequences: each block still calls its own layer, once.
    "created_in_forward": Category(CREATED_IN_FORWARD, frozenset({"registered", "train_eval"}),
                                   "creates nn.BatchNorm1d layers as it runs"),
    "seed": Category(SEED, frozenset({"registered", "placement", "train_eval"}),
                     "creates nn.BatchNorm1d layers as it runs"),
    "after_relu": Category(AFTER_RELU, frozenset({"placement"}), "after the ReLU"),
    "called_twice": Category(CALLED_TWICE, frozenset({"used"}),
                             "never called (a copy-paste slip?)"),
    "layer_norm": Category(LAYER_NORM, frozenset({"registered", "used", "placement",
                                                  "train_eval"}),
                           "uses LayerNorm, not nn.BatchNorm1d"),
    "stem_relu_branch_end": Category(STEM_RELU_BRANCH_END, frozenset({"placement"}),
                                     "at the end of the branch"),
    "last_block_unnormalized": Category(LAST_BLOCK_UNNORMALIZED,
                                        frozenset({"used", "placement"}),
                                        "block 5 calls no BatchNorm1d"),
    "train_mode_only": Category(TRAIN_MODE_ONLY, frozenset({"train_eval"}),
                                "In eval mode your network skips"),
    "never_called": Category(NEVER_CALLED, frozenset({"used", "no_compounding", "placement",
                                                      "train_eval"}),
                             "forward never calls them", at_most_half=True),
    "no_normalisation": Category(NO_NORMALISATION, UNDONE,
                                 "No nn.BatchNorm1d layer is registered", at_most_half=True),
    "faked_printout": Category(FAKED_PRINTOUT, UNDONE, "The variance still compounds",
                               at_most_half=True, **OWN_PRINTOUT),
}


def printed_variances():
    """A print_variance like the notebook's, for running variants outside a notebook."""
    def print_variance(name, data):
        pass
    return print_variance


WEIGHTS_INIT = """
def weights_init(layer_in):
  if isinstance(layer_in, nn.Linear):
    nn.init.kaiming_uniform_(layer_in.weight)
    layer_in.bias.data.fill_(0.0)
"""


def run_answer(source, name="<answer>", above=None):
    """Execute an answer cell as the notebook would; returns the cell's namespace. `above`:
    the namespace the notebook's own cells ran in, which the answer then runs in too (so
    their functions see what it redefines); the defaults below stand in for what it lacks."""
    from torch.utils.data import DataLoader, TensorDataset

    import matplotlib.pyplot as plt

    # What the notebook has defined when an answer cell runs, and nothing more.
    namespace = {} if above is None else above
    for key, value in {"torch": torch, "nn": nn, "np": np, "DataLoader": DataLoader,
                       "TensorDataset": TensorDataset, "plt": plt}.items():
        namespace.setdefault(key, value)
    if "print_variance" not in namespace:
        namespace["print_variance"] = printed_variances()
    exec(WEIGHTS_INIT, namespace)
    exec(compile(source, name, "exec"), namespace)
    return namespace


def model_class(variant):
    """Execute a variant's source as a notebook cell would and return its class."""
    return run_answer(CATEGORIES[variant].source, "<%s>" % variant)[
        "ResidualNetworkWithBatchNorm"]



# --- The other exercises ---------------------------------------------------------------------
# Typical wrong answers to each of the later TODOs, each with the checks it must fail (an
# exercise's own checks only: its points do not depend on the others) and a phrase its
# message must contain. The reference answers are the source notebook's solution cells.

def _rescaled(block):
    """ResidualNetworkRescaled with every residual connection written as `block`."""
    return _separate_attributes("", STEM + _blocks(block) + HEAD).replace(
        "ResidualNetworkWithBatchNorm", "ResidualNetworkRescaled")


TRAIN_LOOP = '''def train_model(model, x_train, y_train, n_epochs, lr, batch_size=100):
  loss_function = nn.CrossEntropyLoss()
  optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=MOMENTUM)
  data_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True)
  model.apply(weights_init)
  losses = []
  for epoch in range(n_epochs):
    total = 0.0
    for x_batch, y_batch in data_loader:
      ZERO_GRAD
      loss = loss_function(model(x_batch), y_batch)
      loss.backward()
      optimizer.step()
      total += loss.item()
    losses.append(total / len(data_loader))
  return losses
'''
TRAIN_RIGHT = TRAIN_LOOP.replace("MOMENTUM", "0.9").replace("ZERO_GRAD", "optimizer.zero_grad()")

RUNNING = '''def running_statistics(batches, momentum=0.1):
  mean, var = torch.zeros(batches[0].shape[1]), torch.ones(batches[0].shape[1])
  for batch in batches:
    mean = (1 - momentum) * mean + momentum * batch.mean(dim=0)
    var = (1 - momentum) * var + momentum * batch.var(dim=0, unbiased=UNBIASED)
  return mean, var
'''

PLOT = '''def plot_variance_growth(ax, plain_variances, batchnorm_variances, log_scale=False):
  BLOCKS
  ON.plot(BLOCKS_ARGplain_variances, 'o-', label='plain')
  ON.plot(BLOCKS_ARGbatchnorm_variances, 's-', label='batch norm')
  ON.XLABEL('residual block')
  ON.YLABEL('variance')
  if log_scale:
    ON.YSCALE('log')
  ON.legend()
'''
# plt.plot and friends draw on whatever axes is current, not on the ax passed in.
PLOT_PYPLOT = (PLOT.replace("  BLOCKS\n", "").replace("BLOCKS_ARG", "").replace("ON.", "plt.")
               .replace("XLABEL", "xlabel").replace("YLABEL", "ylabel").replace("YSCALE", "yscale"))
# Block numbers 1 to 6: the first pre-activation comes before block 1.
PLOT_FROM_ONE = (PLOT.replace("BLOCKS_ARG", "blocks, ").replace("BLOCKS",
                 "blocks = range(1, len(plain_variances) + 1)").replace("ON.", "ax.")
                 .replace("XLABEL", "set_xlabel").replace("YLABEL", "set_ylabel")
                 .replace("YSCALE", "set_yscale"))

# The TODO says to compute the statistics without nn.BatchNorm1d; this lets it do the work.
RUNNING_WITH_BATCHNORM = '''def running_statistics(batches, momentum=0.1):
  layer = nn.BatchNorm1d(batches[0].shape[1], momentum=momentum)
  for batch in batches:
    layer(batch)
  return layer.running_mean, layer.running_var
'''

# Ignores batch_size: one full-batch step per epoch, no DataLoader.
TRAIN_FULL_BATCH = '''def train_model(model, x_train, y_train, n_epochs, lr, batch_size=100):
  loss_function = nn.CrossEntropyLoss()
  optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
  model.apply(weights_init)
  losses = []
  for epoch in range(n_epochs):
    optimizer.zero_grad()
    loss = loss_function(model(x_train), y_train)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
  return losses
'''

SLIPS = {
    "increment_without_he": Slip("predicted_increment",
                             "def predicted_increment():\n  return 0.5 - 1 / (2 * np.pi)\n",
                             {"increment"}, "doubles the variance"),
    "increment_mean_square": Slip("predicted_increment", "def predicted_increment():\n  return 1.0\n",
                              {"increment"}, "subtracts the squared mean"),
    "increment_rounded": Slip("predicted_increment", "def predicted_increment():\n  return 0.68\n",
                          {"increment"}, "exact value"),
    "slope_end_points": Slip("measured_slope",
                         "def measured_slope(variances):\n"
                         "  return (variances[-1] - variances[0]) / (len(variances) - 1)\n",
                         {"slope"}, "first and last"),
    "slope_intercept": Slip("measured_slope",
                        "def measured_slope(variances):\n"
                        "  return np.polyfit(range(len(variances)), variances, 1)[1]\n",
                        {"slope"}, "intercept"),
    "rescaled_branch_only": Slip("residual_network_rescaled",
                             _rescaled("{res} = {prev} + {lin}({prev}.relu()) / np.sqrt(2)"),
                             {"rescaled_blocks", "rescaled_flat"}, "rescale only the branch"),
    "rescaled_by_half": Slip("residual_network_rescaled",
                         _rescaled("{res} = ({prev} + {lin}({prev}.relu())) / 2"),
                         {"rescaled_blocks", "rescaled_flat"}, "not 1/sqrt(2)"),
    "rescaled_not_at_all": Slip("residual_network_rescaled",
                            _rescaled("{res} = {prev} + {lin}({prev}.relu())"),
                            {"rescaled_blocks", "rescaled_flat"}, "without rescaling"),
    "running_biased": Slip("running_statistics", RUNNING.replace("UNBIASED", "False"),
                       {"running_var"}, "unbiased"),
    "running_reversed": Slip("running_statistics",
                         RUNNING.replace("UNBIASED", "True").replace(
                             "(1 - momentum) * mean + momentum", "momentum * mean + (1 - momentum)")
                         .replace("(1 - momentum) * var + momentum",
                                  "momentum * var + (1 - momentum)"),
                         {"running_mean", "running_var"}, "weighs the new batch"),
    "running_fixed_momentum": Slip("running_statistics",
                               RUNNING.replace("UNBIASED", "True").replace(
                                   "for batch in batches:",
                                   "momentum = 0.1\n  for batch in batches:"),
                               {"running_mean", "running_var"}, "momentum argument"),
    "train_without_momentum": Slip("train_model", TRAIN_LOOP.replace("MOMENTUM", "0.0").replace(
                                   "ZERO_GRAD", "optimizer.zero_grad()"),
                               {"train_model", "training_comparison"}, "without momentum"),
    "train_without_zero_grad": Slip("train_model", TRAIN_LOOP.replace("MOMENTUM", "0.9").replace(
                                    "ZERO_GRAD", "pass"),
                                {"train_model", "training_comparison"}, "zero_grad"),
    "train_summed_loss": Slip("train_model", TRAIN_RIGHT.replace(" / len(data_loader)", ""),
                          {"train_model", "training_comparison"}, "mean"),
    "plot_pyplot": Slip("plot_variance_growth", PLOT_PYPLOT, {"plot_linear", "plot_log"},
                    "Draw on ax"),
    "plot_from_one": Slip("plot_variance_growth", PLOT_FROM_ONE, {"plot_linear", "plot_log"},
                      "0 for the first pre-activation"),
    "running_with_batchnorm": Slip("running_statistics", RUNNING_WITH_BATCHNORM,
                               {"running_mean", "running_var"}, "without nn.BatchNorm1d"),
    "train_full_batch": Slip("train_model", TRAIN_FULL_BATCH,
                         {"train_model", "training_comparison"}, "ignores batch_size"),
    "train_without_init": Slip("train_model", TRAIN_RIGHT.replace(
                               "  model.apply(weights_init)\n", ""),
                           {"train_model", "training_comparison"}, "weights_init"),
}
