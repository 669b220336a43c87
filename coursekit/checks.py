"""Behavioural checks for Notebook 11.3's exercises: what the student's code *does*.

One copy of this file serves everyone. The course's tests import it; the notebook embeds
it verbatim in a locked cell that registers it as the module ``udl_bn_checks``, and both
the visible self-checks and the hidden tests call it from there. So the checks a student
runs in Colab, the checks that grade, and the checks the test suite proves stable are
the same code. It needs only torch, numpy and matplotlib.

The checks never read source text, attribute names or anything the student prints. They
build the student's model themselves, initialise it the way the notebook does (He, biases
zero), trace one forward pass (which modules run, in what order, on what values, and every
residual addition) and measure variances on the tensors they capture. Every check seeds
its own random numbers and leaves the caller's random state untouched, so a verdict
depends only on the student's code and the seed.
"""
import contextlib
import copy
import io
import math
import warnings

import numpy as np
import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

# numpy's OpenBLAS takes its work buffer (32 MB of address space) at the first LAPACK call
# (np.polyfit, np.linalg) and ends the process, exit(1), when it cannot get it. Take it now,
# while the helpers cell runs, so that a cell that used up the address space costs only
# its own points.
np.polyfit(np.arange(3.0), np.arange(3.0), 1)

INPUT_SIZE, OUTPUT_SIZE, HIDDEN_SIZE = 40, 10, 100
BATCH_SIZE, N_BLOCKS = 200, 5

# Normalisations students reach for instead of batch norm, named in messages.
OTHER_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.InstanceNorm1d, nn.LocalResponseNorm)
TRACED_MODULES = (nn.Linear, nn.BatchNorm1d) + OTHER_NORMS
# `x + y`, `x += y`, `torch.add(x, y)` and `x.add(y)` all reach torch under these names.
ADD_NAMES = {"add", "add_", "__add__", "__radd__", "__iadd__"}

# Compounding is multiplication: what each of the last three blocks multiplies the variance
# by, on average. Measured over 100 seeds (tests/test_checks_stability.py keeps these
# honest): the plain network 1.63-1.94, with or without batch norm on the stem; every
# batch-norm variant at most 1.33 (BN after the ReLU with BN on the stem, the steepest), a
# normalised stream about 1.0. 1.45 separates them with room. (The ratio of the last to the
# first variance does not: batch norm on the stem starts the stream at 1 instead of 2,
# which moves that ratio by half, for the plain network and the linear ones alike.)
COMPOUNDING_FACTOR = 1.45
# Figure 11.6c adds 1 - 1/pi = 0.68 per block (fitted slopes 0.56-0.76 over 100 seeds);
# BN at the end of the branch adds 0.86-1.09, after the ReLU about 2.
BOOK_SLOPE = 1 - 1 / math.pi
BOOK_SLOPE_BAND = (0.48, 0.82)


class Verdict:
    """The outcome of one check: passed or not, and a message for the student."""

    def __init__(self, name, passed, message):
        self.name, self.passed, self.message = name, bool(passed), message

    def __repr__(self):
        return "Verdict(%r, %r, %r)" % (self.name, self.passed, self.message)


class _Event:
    def __init__(self, kind, module, inputs, output):
        self.kind, self.module, self.inputs, self.output = kind, module, inputs, output


class _AddRecorder(TorchFunctionMode):
    """Records every tensor addition with copies of its operands and result."""

    def __init__(self, events):
        super().__init__()
        self.events = events

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        operands = None
        if (getattr(func, "__name__", "") in ADD_NAMES and len(args) >= 2
                and all(isinstance(a, torch.Tensor) for a in args[:2])):
            # Copy before the call: an in-place `x += y` overwrites its left operand.
            operands = tuple(a.detach().clone() for a in args[:2])
        result = func(*args, **kwargs)
        if operands is not None and isinstance(result, torch.Tensor):
            self.events.append(_Event("add", None, operands, result.detach().clone()))
        return result


@contextlib.contextmanager
def quiet():
    """Swallow prints and warnings: stderr output in a test cell would zero its points."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def seeded(seed):
    """Seed torch for the block, then give the caller back its own random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def he_init(model):
    """The notebook's weights_init, kept here so a student's edit cannot change a verdict."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def input_batch(seed, batch_size=BATCH_SIZE):
    generator = torch.Generator().manual_seed(10_000 + seed)
    return torch.randn(batch_size, INPUT_SIZE, generator=generator)


def stream_variance(values):
    """What print_variance prints: each neuron's variance over the batch, averaged."""
    return float(np.mean(np.var(values.detach().double().numpy(), axis=0)))


def _close(a, b):
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


class ForwardTrace:
    """One traced forward pass of a freshly built, He-initialised model in train mode.

    ``blocks[k]`` describes residual block k+1: the stream entering it, the addition that
    closes it, and the Linear and normalisation calls made in between.
    """

    def __init__(self, model_class, seed=0):
        self.error = None
        self.blocks = []
        self.stem_norms = []
        self.variances = []
        with seeded(seed), quiet():
            try:
                self.model = model_class(INPUT_SIZE, OUTPUT_SIZE, HIDDEN_SIZE)
                he_init(self.model)
                self.model.train()
            except Exception as error:  # a student's constructor can raise anything
                self.error = "building %s(%d, %d, %d) raised %s: %s" % (
                    getattr(model_class, "__name__", "the model"), INPUT_SIZE,
                    OUTPUT_SIZE, HIDDEN_SIZE, type(error).__name__, error)
                return
            self.events, self.error = record_forward(self.model, input_batch(seed))
        if self.error is None:
            self._split_into_blocks()

    def _split_into_blocks(self):
        shape = (BATCH_SIZE, HIDDEN_SIZE)
        linears = [i for i, e in enumerate(self.events)
                   if e.kind == "module" and isinstance(e.module, nn.Linear)]
        stems = [i for i in linears if self.events[i].output.shape == shape]
        if not stems:
            self.error = "no Linear layer produced a batch of %d hidden values" % HIDDEN_SIZE
            return
        stem = stems[0]
        head = next((i for i in reversed(linears) if self.events[i].output.shape[-1] ==
                     OUTPUT_SIZE), len(self.events))
        adds = [i for i, e in enumerate(self.events)
                if e.kind == "add" and stem < i < head and e.output.shape == shape]
        if len(adds) != N_BLOCKS:
            self.error = ("forward made %d residual additions (x + branch) between the first "
                          "Linear layer and the output layer; the network has %d blocks"
                          % (len(adds), N_BLOCKS))
            return
        stem = self._stem_end(stem, adds[0])
        starts = [stem] + adds[:-1]
        for start, end in zip(starts, adds):
            inside = self.events[start + 1:end]
            self.blocks.append({
                "stream": self.events[start].output,
                "add": self.events[end],
                "linears": [e for e in inside if e.kind == "module"
                            and isinstance(e.module, nn.Linear)],
                "norms": [e for e in inside if e.kind == "module"
                          and isinstance(e.module, (nn.BatchNorm1d,) + OTHER_NORMS)],
            })
        self.variances = [stream_variance(self.events[stem].output)] + [
            stream_variance(self.events[i].output) for i in adds]

    def _stem_end(self, stem, first_add):
        """Where the stem ends: the first Linear layer, plus any normalisation applied to
        its output before block 1 (`f = bn0(linear1(x))`), which is outside the residual
        branches. Such a normalisation counts as the stem's only when block 1 still calls
        one of its own after it, and adds its branch to that value or to a normalisation of
        it (the stream itself normalised, as blocks 2 to 5 may do it too); otherwise it is
        block 1's own. Returns the index of the event whose output enters block 1."""
        # The normalisations applied one after another to the stem's output.
        chain, current = [], stem
        for index in range(stem + 1, first_add):
            event = self.events[index]
            if event.kind != "module":
                continue
            if not (isinstance(event.module, (nn.BatchNorm1d,) + OTHER_NORMS)
                    and _close(event.inputs[0], self.events[current].output)):
                break
            chain.append(index)
            current = index
        skip = self.events[first_add].inputs
        carried = [k for k, index in enumerate(chain)
                   if any(_close(operand, self.events[index].output) for operand in skip)]
        if not carried:
            return stem
        later_norms = [i for i in range(stem + 1, first_add) if self.events[i].kind == "module"
                       and isinstance(self.events[i].module, (nn.BatchNorm1d,) + OTHER_NORMS)]
        ends = [index for index in chain[:carried[-1] + 1]
                if any(i > index for i in later_norms)]
        if not ends:
            return stem
        self.stem_norms = [self.events[i] for i in chain if i <= ends[-1]]
        return ends[-1]

    def batchnorm_calls(self):
        return [e for e in self.events if e.kind == "module"
                and isinstance(e.module, nn.BatchNorm1d)]

    def registered(self, module):
        return any(module is m for m in self.model.modules())

    def name_of(self, module):
        for name, candidate in self.model.named_modules():
            if candidate is module:
                return "self." + name
        return "a BatchNorm1d created in forward"


def record_forward(model, x):
    """Run model(x), recording Linear and normalisation calls and every addition, in order.

    A global hook sees every module call, including modules created inside forward,
    which per-model hooks would miss. Returns (events, error message or None).
    """
    events = []

    def hook(module, inputs, output):
        if (isinstance(module, TRACED_MODULES) and inputs
                and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor)):
            events.append(_Event("module", module, (inputs[0].detach().clone(),),
                                 output.detach().clone()))

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        with torch.no_grad(), _AddRecorder(events):
            model(x)
    except Exception as error:
        return events, "forward raised %s: %s" % (type(error).__name__, error)
    finally:
        handle.remove()
    return events, None


def _blocks_list(indices):
    indices = sorted(set(indices))
    return ("block %d" % indices[0] if len(indices) == 1 else
            "blocks " + ", ".join(str(i) for i in indices[:-1]) + " and %d" % indices[-1])


def _fmt(values):
    return ", ".join("%.2f" % v for v in values)


# --- ResidualNetworkWithBatchNorm --------------------------------------------------------

def check_registered(model_class, seed=0):
    """BatchNorm1d layers are created in __init__, so they are part of the model."""
    name = "registered"
    trace = ForwardTrace(model_class, seed)
    if not hasattr(trace, "model"):
        return Verdict(name, False, "Your network could not be built: %s." % trace.error)
    registered = [m for m in trace.model.modules() if isinstance(m, nn.BatchNorm1d)]
    parameters = {id(p) for p in trace.model.parameters()}
    unregistered = [e for e in trace.batchnorm_calls() if not trace.registered(e.module)]
    if unregistered:
        return Verdict(name, False,
                       "forward creates nn.BatchNorm1d layers as it runs, so they are not part "
                       "of the model: the optimiser never sees their scale and offset, their "
                       "running statistics are lost after every call, and model.eval() does "
                       "not reach them. Create one nn.BatchNorm1d(hidden_size) per block in "
                       "__init__ (for example self.bn1) and call those in forward.")
    if not registered:
        others = sorted({type(m).__name__ for m in trace.model.modules()
                         if isinstance(m, OTHER_NORMS)})
        if others:
            return Verdict(name, False,
                           "Your network uses %s, not nn.BatchNorm1d. %s normalises each "
                           "example across its neurons; batch norm normalises each neuron "
                           "across the batch, which is what this notebook studies. Use "
                           "nn.BatchNorm1d(hidden_size)." % (others[0], others[0]))
        return Verdict(name, False,
                       "No nn.BatchNorm1d layer is registered in your network. Create one per "
                       "residual block in __init__, for example "
                       "self.bn1 = nn.BatchNorm1d(hidden_size).")
    if any(m.affine and id(m.weight) not in parameters for m in registered):
        return Verdict(name, False, "Some BatchNorm1d scales are missing from "
                       "model.parameters(), so the optimiser would never train them.")
    return Verdict(name, True, "%d BatchNorm1d layers are registered in __init__."
                   % len(registered))


def check_used(model_class, seed=0):
    """Each residual block calls its own BatchNorm1d, once per forward pass."""
    name = "used"
    trace = ForwardTrace(model_class, seed)
    if trace.error:
        return Verdict(name, False, "Could not follow your forward pass: %s." % trace.error)
    # Every BatchNorm1d call counts here, registered or not: a layer created inside forward
    # is a mistake of its own (check_registered, check_train_eval), not of this check.
    calls = trace.batchnorm_calls()
    if not calls:
        if any(isinstance(m, nn.BatchNorm1d) for m in trace.model.modules()):
            return Verdict(name, False,
                           "Your __init__ creates BatchNorm1d layers but forward never calls "
                           "them, so they change nothing: this is still the plain network. "
                           "Call each block's layer at the start of its residual branch.")
        return Verdict(name, False, "forward calls no BatchNorm1d layer. Each of the five "
                       "residual blocks should call its own, at the start of its branch.")
    problems = []
    blocks_of = {}
    for index, block in enumerate(trace.blocks, start=1):
        own = [e for e in block["norms"] if isinstance(e.module, nn.BatchNorm1d)]
        if not own:
            problems.append("block %d calls no BatchNorm1d" % index)
        elif len(own) > 1:
            problems.append("block %d calls %d BatchNorm1d layers" % (index, len(own)))
        for e in own:
            blocks_of.setdefault(id(e.module), []).append(index)
    modules = {id(call.module): call.module for call in calls}
    for key, module in modules.items():
        blocks = blocks_of.get(key, [])
        count = sum(call.module is module for call in calls)
        if len(set(blocks)) > 1:
            problems.append("%s is shared by %s" % (trace.name_of(module), _blocks_list(blocks)))
        elif count > 1:
            problems.append("%s is called %d times in one forward pass"
                            % (trace.name_of(module), count))
    silent = [m for m in trace.model.modules() if isinstance(m, nn.BatchNorm1d)
              and id(m) not in modules]
    if problems and silent and len(silent) < len(modules) + len(silent):
        problems.append("%s %s never called (a copy-paste slip?)" % (
            ", ".join(trace.name_of(m) for m in silent), "is" if len(silent) == 1 else "are"))
    if problems:
        shared = any("shared" in p for p in problems)
        why = ("Each block needs its own layer: a layer keeps one scale, one offset and one "
               "set of running statistics, and the values at different depths have different "
               "statistics, so a shared layer mixes them up (and eval mode goes wrong). "
               if shared else
               "Each of the five residual branches should call its own BatchNorm1d exactly once "
               "(a copy-paste slip often calls one block's layer twice and another's never). ")
        return Verdict(name, False, "In your forward, %s. %sCreate five layers and call "
                       "layer k in block k." % ("; ".join(problems), why))
    return Verdict(name, True, "Each of the five blocks calls its own BatchNorm1d once.")


def check_no_compounding(model_class, seed=0):
    """The variance no longer multiplies block after block as in figure 11.6a."""
    name = "no_compounding"
    trace = ForwardTrace(model_class, seed)
    if trace.error:
        return Verdict(name, False, "Could not measure the variance: %s." % trace.error)
    variances = trace.variances
    factor = (variances[-1] / variances[-4]) ** (1 / 3)
    ratio = variances[-1] / variances[0]
    measured = "measured at initialisation: %s" % _fmt(variances)
    if factor >= COMPOUNDING_FACTOR:
        hint = ("" if trace.batchnorm_calls() else
                " Your forward calls no BatchNorm1d, so nothing resets the scale.")
        return Verdict(name, False,
                       "The variance still compounds: each of the last three blocks multiplies "
                       "it by %.2f on average, %.1f-fold over the five blocks (%s), as in the "
                       "plain network of figure 11.6a. Each branch passes on the variance it "
                       "receives and the skip adds it back, so each block nearly doubles it. "
                       "Normalising what each branch receives stops that.%s"
                       % (factor, ratio, measured, hint))
    return Verdict(name, True, "The variance no longer compounds: each of the last three "
                   "blocks multiplies it by only %.2f on average, where the plain network's "
                   "nearly double it (%s)." % (factor, measured))


def _diagnose_block(block, index):
    """Why block `index` differs from figure 11.6c, or None when it matches."""
    stream = block["stream"]
    left, right = block["add"].inputs
    batchnorms = [e for e in block["norms"] if isinstance(e.module, nn.BatchNorm1d)]
    if not batchnorms:
        return "no_bn", index
    bn = batchnorms[0]
    bn_in, bn_out = bn.inputs[0], bn.output
    skip_is_stream = _close(left, stream) or _close(right, stream)
    if not skip_is_stream and (_close(left, bn_out) or _close(right, bn_out)):
        return "normalised_stream", index
    if not skip_is_stream:
        return "skip", index
    if _close(bn_in, torch.relu(stream)):
        return "after_relu", index
    if any(_close(bn_in, lin.output) for lin in block["linears"]):
        return "branch_end", index
    if not _close(bn_in, stream):
        return "not_first", index
    if not block["linears"] or not _close(block["linears"][-1].inputs[0], torch.relu(bn_out)):
        return "relu_linear", index
    branch = right if _close(left, stream) else left
    if not _close(branch, block["linears"][-1].output):
        return "branch_end", index
    return None


PLACEMENT_MESSAGES = {
    "no_bn": "no BatchNorm1d runs inside the residual branch of %s",
    "normalised_stream": (
        "in %s the skip connection carries the normalised values: you normalise the residual "
        "stream itself, so every block restarts from variance 1 and the variance stays flat. "
        "In figure 11.6c only the branch is normalised: x + linear(relu(bn(x)))"),
    "skip": ("in %s the skip connection does not carry the stream entering the block: "
             "a residual block adds its branch to its own input x"),
    "after_relu": ("in %s the BatchNorm1d comes after the ReLU; figure 11.6c puts it first "
                   "in the branch, before the ReLU: x + linear(relu(bn(x)))"),
    "branch_end": ("in %s the BatchNorm1d sits at the end of the branch, after the Linear; "
                   "figure 11.6c puts it first, on what the branch receives: "
                   "x + linear(relu(bn(x)))"),
    "not_first": "in %s the BatchNorm1d does not receive the block's input x",
    "relu_linear": ("in %s the BatchNorm1d output does not go through ReLU and then the "
                    "block's Linear layer"),
}


def check_placement(model_class, seed=0):
    """Figure 11.6c: x + linear(relu(bn(x))), so the variance grows by about +0.68 a block."""
    name = "placement"
    trace = ForwardTrace(model_class, seed)
    if trace.error:
        return Verdict(name, False, "Could not follow your forward pass: %s." % trace.error)
    found = {}
    for index, block in enumerate(trace.blocks, start=1):
        diagnosis = _diagnose_block(block, index)
        if diagnosis:
            found.setdefault(diagnosis[0], []).append(diagnosis[1])
    if found:
        details = "; ".join(PLACEMENT_MESSAGES[kind] % _blocks_list(blocks)
                            for kind, blocks in found.items())
        return Verdict(name, False, "Your batch norm is not where figure 11.6c puts it: %s."
                       % details)
    slope = np.polyfit(np.arange(1, N_BLOCKS + 1), trace.variances[1:], 1)[0]
    low, high = BOOK_SLOPE_BAND
    if not low <= slope <= high:
        return Verdict(name, False,
                       "The layers are in the right places, but the variance grows by %+.2f "
                       "per block (%s); with figure 11.6c at initialisation it grows by about "
                       "%+.2f. Check the layers' settings (scale 1, offset 0)."
                       % (slope, _fmt(trace.variances), BOOK_SLOPE))
    return Verdict(name, True, "BatchNorm1d opens every residual branch and the skip carries "
                   "the raw stream: the variance grows linearly, %+.2f per block." % slope)


def _backward_problem(model_class, seed):
    """Why one training step's backward pass fails on a fresh model, or None."""
    with seeded(seed), quiet():
        try:
            model = model_class(INPUT_SIZE, OUTPUT_SIZE, HIDDEN_SIZE)
            he_init(model)
            model.train()
            model(input_batch(seed)).square().mean().backward()
        except Exception as error:
            text = str(error).split("\n")[0]
            if "inplace" in text or "in-place" in text:
                return ("its backward pass fails, because a value it needs was "
                        "\"modified by an inplace operation\". An in-place addition such as "
                        "x += branch(x) overwrites the values batch norm saved to compute its "
                        "gradient; write x = x + branch(x)")
            return "a training step fails: %s: %s" % (type(error).__name__, text)
    return None


def _no_running_statistics(model_class, seed):
    """Why no registered BatchNorm1d of the model updates its running statistics."""
    trace = ForwardTrace(model_class, seed)
    calls = trace.batchnorm_calls() if hasattr(trace, "events") else []
    if any(not trace.registered(e.module) for e in calls):
        return ("Your forward creates its BatchNorm1d layers as it runs, so none of them keeps "
                "running statistics from one call to the next, and model.eval() never reaches "
                "them: in eval mode they still normalise with the batch's own statistics (a "
                "batch of one example fails). Create the layers in __init__ and call those.")
    if any(isinstance(m, nn.BatchNorm1d) for m in getattr(trace, "model", nn.Module()).modules()):
        return ("Your BatchNorm1d layers are never called in forward, so none of them updates "
                "its running statistics in train mode and eval mode has nothing to use. Call "
                "each block's layer at the start of its branch.")
    return ("Your network has no BatchNorm1d, so there are no running statistics for eval "
            "mode to use. Create one per block in __init__ and call it at the start of the "
            "block's branch.")


def check_train_eval(model_class, seed=0):
    """The network trains; running statistics update in train mode; eval mode treats each
    example on its own."""
    name = "train_eval"
    with seeded(seed), quiet():
        try:
            model = model_class(INPUT_SIZE, OUTPUT_SIZE, HIDDEN_SIZE)
            he_init(model)
        except Exception as error:
            return Verdict(name, False, "Your network could not be built: %s: %s."
                           % (type(error).__name__, error))
    problem = _backward_problem(model_class, seed)
    if problem:
        return Verdict(name, False, "Your network cannot be trained: %s." % problem)
    with seeded(seed), quiet():
        layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)
                  and m.track_running_stats]
        before = [m.running_mean.clone() for m in layers]
        model.train()
        try:
            with torch.no_grad():
                for step in range(3):
                    model(input_batch(seed + 1000 * (step + 1)))
        except Exception as error:
            return Verdict(name, False, "forward raised %s in train mode: %s."
                           % (type(error).__name__, error))
        if not any(not torch.equal(b, m.running_mean) for b, m in zip(before, layers)):
            return Verdict(name, False, _no_running_statistics(model_class, seed))
        model.eval()
        batch = input_batch(seed)
        try:
            with torch.no_grad():
                whole = model(batch)[:1]
                alone = model(batch[:1])
        except Exception as error:
            return Verdict(name, False,
                           "In eval mode a batch of one example raised %s: %s. After "
                           "model.eval() batch norm should use its running statistics, not "
                           "the batch's; layers created inside forward never switch to eval "
                           "mode." % (type(error).__name__, str(error).split("\n")[0]))
    if not _close(whole, alone):
        return Verdict(name, False,
                       "In eval mode one example's output still depends on the rest of its "
                       "batch: some normalisation uses batch statistics after model.eval(). "
                       "Use nn.BatchNorm1d layers created in __init__.")
    return Verdict(name, True, "Running statistics update in train mode, and in eval mode "
                   "each example is processed on its own (a batch of one works).")


NETWORK_CHECKS = {
    "registered": check_registered,
    "used": check_used,
    "no_compounding": check_no_compounding,
    "placement": check_placement,
    "train_eval": check_train_eval,
}


# --- block_variances and plot_variance_growth ---------------------------------------------

def check_block_variances(block_variances, plain_model_class, seed=0):
    """block_variances(model, x) returns the six variances the test measures itself."""
    name = "block_variances"
    trace = ForwardTrace(plain_model_class, seed)
    if trace.error:
        return Verdict(name, False, "The plain ResidualNetwork could not be traced: %s."
                       % trace.error)
    with seeded(seed), quiet():
        model = copy.deepcopy(trace.model)
        try:
            returned = block_variances(model, input_batch(seed))
        except NotImplementedError:
            return Verdict(name, False, "block_variances still raises NotImplementedError: "
                           "replace that line with your code.")
        except Exception as error:
            return Verdict(name, False, "block_variances(model, x_batch) raised %s: %s."
                           % (type(error).__name__, error))
    try:
        values = [float(v) for v in returned]
    except Exception:
        return Verdict(name, False, "block_variances should return a list of six numbers; "
                       "it returned %r." % (returned,))
    expected = trace.variances
    if len(values) == len(expected) and np.allclose(values, expected, rtol=1e-3):
        return Verdict(name, True, "block_variances returns the six variances of one forward "
                       "pass.")
    if _redefined_print_variance_explains(block_variances, plain_model_class, trace.model,
                                          seed, expected):
        return Verdict(name, False, "block_variances returned %s, because print_variance no "
                       "longer adds what it prints to variance_log: a cell of yours defines "
                       "its own print_variance, which replaces the notebook's. With the "
                       "notebook's print_variance your block_variances returns the right six "
                       "variances. Delete your print_variance, then run the notebook's cells "
                       "again from its print_variance cell down."
                       % ("no numbers" if not values else _fmt(values)))
    if len(values) == len(expected) + 1 and np.allclose(values[1:], expected, rtol=1e-3):
        return Verdict(name, False, "Your list starts with the input's variance; leave it out "
                       "and start at the first pre-activation (six numbers in all).")
    if len(values) != len(expected):
        return Verdict(name, False, "block_variances returned %d numbers; it should return six: "
                       "the first pre-activation, then the stream after each of the five "
                       "residual connections." % len(values))
    return Verdict(name, False, "block_variances returned %s, but this model's variances "
                   "on that batch are %s. Measure one forward pass of the model you are "
                   "given on the batch you are given, without re-initialising it."
                   % (_fmt(values), _fmt(expected)))


def _redefined_print_variance_explains(block_variances, plain_model_class, model, seed,
                                       expected):
    """Whether print_variance, redefined by the student, no longer records in variance_log,
    and block_variances returns the right values once the notebook's print_variance is back.
    Looks at the namespace the plain network's forward runs in (the notebook's), calls
    print_variance there on a probe, and puts everything back as it was."""
    namespace = getattr(getattr(plain_model_class, "forward", None), "__globals__", None)
    if not isinstance(namespace, dict):
        return False
    log, current = namespace.get("variance_log"), namespace.get("print_variance")
    if not isinstance(log, list) or not callable(current):
        return False
    probe, kept = input_batch(seed)[:20], list(log)
    try:
        with quiet():
            current("probe", probe)
        records = (len(log) == len(kept) + 1
                   and abs(float(log[-1][1]) - stream_variance(probe)) < 1e-4)
    except Exception:
        records = False
    finally:
        log[:] = kept
    if records:
        return False

    def notebook_print_variance(name, data):
        log.append((name, stream_variance(data)))

    namespace["print_variance"] = notebook_print_variance
    try:
        with seeded(seed), quiet():
            values = [float(v) for v in block_variances(copy.deepcopy(model), input_batch(seed))]
    except Exception:
        return False
    finally:
        namespace["print_variance"] = current
        log[:] = kept
    return len(values) == len(expected) and np.allclose(values, expected, rtol=1e-3)


SAMPLE_PLAIN = [2.0, 3.7, 6.8, 12.4, 22.9, 41.5]
SAMPLE_BN = [2.0, 2.6, 3.3, 4.0, 4.6, 5.3]


def _matching_lines(axes, values):
    """Lines on `axes` whose y values are `values`."""
    return [line for line in axes.get_lines() if len(line.get_ydata()) == len(values)
            and np.allclose(np.asarray(line.get_ydata(), float), values)]


def _stray_drawing(stray_axes, plain_values, batchnorm_values):
    """What the student drew on axes other than the one passed in (plt.plot and friends
    draw on whatever axes is current), as a list of names, or []."""
    drawn = []
    for axes in stray_axes:
        if _matching_lines(axes, plain_values) or _matching_lines(axes, batchnorm_values):
            drawn.append("curves")
        if axes.get_xlabel() or axes.get_ylabel():
            drawn.append("axis labels")
        if axes.get_legend() is not None:
            drawn.append("legend")
        if axes.get_yscale() != "linear":
            drawn.append("log scale")
    drawn = sorted(set(drawn), key=drawn.index)
    return drawn


def _plot_problems(ax, log_scale, plain_values, batchnorm_values, stray):
    problems = []
    if stray:
        what = (stray[0] if len(stray) == 1 else
                ", ".join(stray[:-1]) + " and " + stray[-1])
        problems.append("your %s went to pyplot's current axes, not to the ax you were "
                        "given: plt.plot, plt.xlabel, plt.legend and plt.yscale draw on "
                        "whatever axes is current (in the notebook's two-panel figure, the "
                        "right-hand one both times, leaving the left one empty). Draw on ax: "
                        "ax.plot, ax.set_xlabel, ax.set_ylabel, ax.legend, ax.set_yscale"
                        % what)
    plain = next(iter(_matching_lines(ax, plain_values)), None)
    batchnorm = next(iter(_matching_lines(ax, batchnorm_values)), None)
    if plain is None or batchnorm is None:
        if not stray:
            missing = [what for what, line in (("plain", plain), ("batch-norm", batchnorm))
                       if line is None]
            problems.append("no curve on the axes you were given shows the %s variances "
                            "(draw with ax.plot on the ax argument)" % " or ".join(missing))
        return problems
    blocks = np.arange(len(plain_values))
    for line in (plain, batchnorm):
        x = np.asarray(line.get_xdata(), float)
        if x.shape == blocks.shape and np.allclose(x, blocks + 1):
            problems.append("your curves start at block 1, but the first value is the first "
                            "pre-activation, before any residual block: plot against 0 for "
                            "the first pre-activation, then 1 to 5 (range(len(values)), or "
                            "just ax.plot(values))")
            break
        if x.shape != blocks.shape or not np.allclose(x, blocks):
            problems.append("plot each list against the block number: 0 for the first "
                            "pre-activation, then 1 to 5")
            break
    labels = [line.get_label() for line in (plain, batchnorm)]
    if any(label.startswith("_") for label in labels) or labels[0] == labels[1]:
        problems.append("give each curve its own label (ax.plot(..., label='plain'))")
    if ax.get_legend() is None:
        problems.append("add a legend (ax.legend()) so a reader can tell the curves apart")
    if not ax.get_xlabel() or not ax.get_ylabel():
        problems.append("label both axes (ax.set_xlabel, ax.set_ylabel)")
    scale = ax.get_yscale()
    if log_scale and scale != "log":
        problems.append("with log_scale=True the y axis should be logarithmic "
                        "(ax.set_yscale('log'))")
    if not log_scale and scale != "linear":
        problems.append("with log_scale=False the y axis should stay linear")
    return problems


def check_plot(plot_variance_growth, log_scale, seed=0):
    """plot_variance_growth(ax, plain, bn, log_scale) draws a labelled figure on ax."""
    import matplotlib.pyplot as plt

    name = "plot_log" if log_scale else "plot_linear"
    plain_values = [v * (1 + 0.1 * seed) for v in SAMPLE_PLAIN]
    batchnorm_values = [v * (1 + 0.05 * seed) for v in SAMPLE_BN]
    # As in the notebook's figure, the axes passed in is not pyplot's current axes: a
    # second figure is current, so whatever plt.plot draws lands there, not on ax.
    previous = plt.gcf() if plt.get_fignums() else None
    before = set(plt.get_fignums())
    figure, ax = plt.subplots()
    decoy = plt.figure()
    decoy.add_subplot()
    try:
        with quiet():
            try:
                plot_variance_growth(ax, list(plain_values), list(batchnorm_values), log_scale)
            except NotImplementedError:
                return Verdict(name, False, "plot_variance_growth still raises "
                               "NotImplementedError: replace that line with your code.")
            except Exception as error:
                return Verdict(name, False, "plot_variance_growth raised %s: %s."
                               % (type(error).__name__, error))
        others = [decoy] + [plt.figure(number) for number in plt.get_fignums()
                            if number not in before | {figure.number, decoy.number}]
        stray = _stray_drawing([a for f in others for a in f.axes],
                               plain_values, batchnorm_values)
        problems = _plot_problems(ax, log_scale, plain_values, batchnorm_values, stray)
    finally:
        for number in plt.get_fignums():
            if number not in before:
                plt.close(number)
        if previous is not None and plt.fignum_exists(previous.number):
            plt.figure(previous.number)
    if problems:
        return Verdict(name, False, "Your %s plot needs work: %s." % (
            "log-scale" if log_scale else "linear", "; ".join(problems)))
    return Verdict(name, True, "The %s plot shows both curves, labelled, with a legend."
                   % ("log-scale" if log_scale else "linear"))


# --- Why +0.68 per block ------------------------------------------------------------------

# Wrong derivations students reach, and what each one missed.
INCREMENT_SLIPS = (
    (0.5 - 1 / (2 * math.pi),
     "that is the variance of the ReLU's output. The He-initialised linear layer then "
     "doubles the variance it receives (He initialisation is built to make up for the "
     "ReLU halving it)"),
    (1.0,
     "that would hold if the ReLU's output had mean zero: E[relu(z)^2] = 1/2, doubled by He "
     "initialisation. But a variance subtracts the squared mean, and E[relu(z)] = "
     "1/sqrt(2 pi), so the ReLU's output has variance 1/2 - 1/(2 pi) before the doubling"),
    (0.5,
     "that is E[relu(z)^2], the ReLU's mean square: subtract its squared mean "
     "(1/sqrt(2 pi))^2 to get the variance, then double it for He initialisation"),
    (2.0,
     "that is the factor by which a plain block multiplies the variance, not what one "
     "batch-normalised branch adds"),
)


def check_increment(predicted_increment):
    """predicted_increment() is 1 - 1/pi, derived exactly rather than read off a plot."""
    name = "increment"
    try:
        with quiet():
            value = float(predicted_increment())
    except NotImplementedError:
        return Verdict(name, False, "predicted_increment still raises NotImplementedError: "
                       "replace that line with your derivation.")
    except Exception as error:
        return Verdict(name, False, "predicted_increment() should return one number; it "
                       "raised %s: %s." % (type(error).__name__, error))
    if abs(value - BOOK_SLOPE) < 1e-6:
        return Verdict(name, True, "Derived: each branch adds 1 - 1/pi = %.4f to the "
                       "variance of the stream." % value)
    for slip, why in INCREMENT_SLIPS:
        if abs(value - slip) < 1e-6:
            return Verdict(name, False, "You predict %.4f per block, but %s." % (value, why))
    if abs(value - BOOK_SLOPE) < 0.02:
        return Verdict(name, False, "%.4f is close to what the network measures, but the "
                       "check wants the exact value of your derivation: write it with np.pi "
                       "rather than a rounded number." % value)
    return Verdict(name, False, "You predict %.4f per block. Follow the branch at "
                   "initialisation: batch norm hands it a standard normal z; the ReLU's "
                   "output has variance E[relu(z)^2] - E[relu(z)]^2; the He-initialised "
                   "linear layer doubles that." % value)


def _slope_sample(seed):
    """Six variances with linear growth and a bend, so that two-point answers differ."""
    generator = np.random.default_rng(20 + seed)
    return [float(v) for v in 2.0 + 0.7 * np.arange(6) + generator.normal(0, 0.15, 6)]


def check_slope(measured_slope, seed=0):
    """measured_slope(variances) is the least-squares slope of the six values."""
    name = "slope"
    variances = _slope_sample(seed)
    blocks = np.arange(len(variances))
    expected = float(np.polyfit(blocks, variances, 1)[0])
    try:
        with quiet():
            returned = measured_slope(list(variances))
    except NotImplementedError:
        return Verdict(name, False, "measured_slope still raises NotImplementedError: replace "
                       "that line with your code.")
    except Exception as error:
        return Verdict(name, False, "measured_slope(variances) raised %s: %s."
                       % (type(error).__name__, error))
    try:
        value = float(returned)
    except Exception:
        return Verdict(name, False, "measured_slope should return one number, the slope; it "
                       "returned %r. (np.polyfit returns the slope first, then the "
                       "intercept.)" % (returned,))
    if abs(value - expected) < 1e-6:
        return Verdict(name, True, "measured_slope fits a straight line through all six "
                       "variances and returns its slope.")
    if abs(value - float(np.polyfit(blocks, variances, 1)[1])) < 1e-6:
        return Verdict(name, False, "measured_slope returned the intercept of the line; "
                       "np.polyfit(x, y, 1) returns [slope, intercept].")
    if abs(value - (variances[-1] - variances[0]) / (len(variances) - 1)) < 1e-6:
        return Verdict(name, False, "measured_slope uses only the first and last values; "
                       "fit a line through all six by least squares (np.polyfit), so one "
                       "noisy block does not decide the answer.")
    if abs(value - float(np.polyfit(blocks[1:], variances[1:], 1)[0])) < 1e-6:
        return Verdict(name, False, "measured_slope leaves out the first pre-activation; fit "
                       "all six values, against block numbers 0 to 5.")
    return Verdict(name, False, "measured_slope returned %.4f for the variances %s; the "
                   "least-squares slope against block numbers 0 to 5 is %.4f."
                   % (value, _fmt(variances), expected))


# --- The 1/sqrt(2) fix of figure 11.6b -----------------------------------------------------

RESCALE = 1 / math.sqrt(2)
# Measured over 100 seeds: rescaled networks end at 0.39-0.71 of the first pre-activation's
# variance, rescaling only the branch at 3.9-5.8, dividing by 2 at 0.01-0.02.
RESCALED_BAND = (0.25, 1.6)


def _rescaled_streams(trace):
    """The stream leaving each block (after any rescaling): what block k+1 adds to, or what
    the output layer receives. [] when the forward pass does not have that shape."""
    leaving = []
    for index, block in enumerate(trace.blocks):
        if index + 1 < len(trace.blocks):
            nxt = trace.blocks[index + 1]
            branch = nxt["linears"][-1].output if nxt["linears"] else None
            left, right = nxt["add"].inputs
            if branch is not None and _proportional(right, branch):
                leaving.append(left)
            elif branch is not None and _proportional(left, branch):
                leaving.append(right)
            else:
                return []
        else:
            head = [e for e in trace.events if e.kind == "module"
                    and isinstance(e.module, nn.Linear) and e.output.shape[-1] == OUTPUT_SIZE]
            if not head:
                return []
            leaving.append(head[-1].inputs[0])
    return leaving


def _scale_between(total, leaving):
    """c such that leaving = c * total, or None."""
    if total.shape != leaving.shape:
        return None
    total, leaving = total.flatten().double(), leaving.flatten().double()
    scale = float(leaving @ total / (total @ total))
    return scale if torch.allclose(leaving, scale * total, rtol=1e-4, atol=1e-5) else None


def _proportional(a, b):
    """Whether a is a non-zero multiple of b."""
    return _scale_between(b, a) not in (None, 0)


def _rescaled_trace(model_class, seed, name):
    trace = ForwardTrace(model_class, seed)
    if trace.error:
        return None, Verdict(name, False, "Could not follow your forward pass: %s."
                             % trace.error)
    if trace.batchnorm_calls() or any(isinstance(m, OTHER_NORMS)
                                      for m in trace.model.modules()):
        return None, Verdict(name, False, "ResidualNetworkRescaled normalises: figure 11.6b "
                             "has no batch norm, only a rescaling of each block's sum by "
                             "1/sqrt(2).")
    leaving = _rescaled_streams(trace)
    if not leaving:
        return None, Verdict(name, False, "Could not find each block's stream: every block "
                             "should add its branch, linear(relu(x)), to the stream x.")
    return (trace, leaving), None


def _branch_rescaled(block):
    """Whether one operand of the block's addition is its Linear's output times 1/sqrt(2)."""
    if not block["linears"]:
        return False
    branch = block["linears"][-1].output
    scales = [_scale_between(branch, operand) for operand in block["add"].inputs]
    return any(scale is not None and abs(scale - RESCALE) < 1e-3 for scale in scales)


def check_rescaled_blocks(model_class, seed=0):
    """Each block passes on (x + linear(relu(x))) / sqrt(2)."""
    name = "rescaled_blocks"
    found, failed = _rescaled_trace(model_class, seed, name)
    if failed:
        return failed
    trace, leaving = found
    found = {}
    for index, (block, out) in enumerate(zip(trace.blocks, leaving), start=1):
        scale = _scale_between(block["add"].output, out)
        if scale is not None and abs(scale - RESCALE) < 1e-3:
            continue
        if scale is None:
            kind = "in %s what leaves the block is not a multiple of x + linear(relu(x))"
        elif abs(scale - 1) < 1e-3 and _branch_rescaled(block):
            kind = ("in %s you rescale only the branch, so the skip adds the stream back at "
                    "full size and the variance still grows")
        elif abs(scale - 1) < 1e-3:
            kind = "in %s the sum passes on without rescaling"
        else:
            kind = "in %%s the sum is multiplied by %.3f, not 1/sqrt(2) = %.3f" % (scale, RESCALE)
        found.setdefault(kind, []).append(index)
    if found:
        details = "; ".join(kind % _blocks_list(blocks) for kind, blocks in found.items())
        details = details[0].upper() + details[1:]
        return Verdict(name, False, "%s. Figure 11.6b multiplies the whole "
                       "sum by 1/sqrt(2): (x + linear(relu(x))) / math.sqrt(2), which halves "
                       "the variance the block nearly doubled." % details)
    return Verdict(name, True, "Every block passes on (x + linear(relu(x))) / sqrt(2).")


def check_rescaled_flat(model_class, seed=0):
    """The rescaled network's variance stays within a small factor over five blocks."""
    name = "rescaled_flat"
    found, failed = _rescaled_trace(model_class, seed, name)
    if failed:
        return failed
    trace, leaving = found
    variances = [trace.variances[0]] + [stream_variance(v) for v in leaving]
    ratio = variances[-1] / variances[0]
    low, high = RESCALED_BAND
    measured = "measured at initialisation: %s" % _fmt(variances)
    if ratio > high:
        return Verdict(name, False, "The variance still grows %.1f-fold over five blocks (%s). "
                       "Rescale each block's whole sum, stream and branch together, by "
                       "1/sqrt(2)." % (ratio, measured))
    if ratio < low:
        return Verdict(name, False, "The variance shrinks to %.2f of its start over five "
                       "blocks (%s): you rescale by too much. Each block nearly doubles the "
                       "variance, so the sum needs 1/sqrt(2), which halves it, not 1/2, which "
                       "quarters it." % (ratio, measured))
    if ratio < 0.9:
        how = ("The variance no longer compounds: after five blocks it is %.2f of its start, a "
               "slow drift down (%s). A plain block multiplies the variance by a little less "
               "than 2, and 1/sqrt(2) halves it, so each block loses a little."
               % (ratio, measured))
    elif ratio > 1.1:
        how = ("The variance no longer compounds: after five blocks it is %.2f times its "
               "start, a slow drift up (%s), where the plain network's grows 12 to 23-fold."
               % (ratio, measured))
    else:
        how = ("The variance stays where it started: %.2f times its start after five blocks "
               "(%s)." % (ratio, measured))
    return Verdict(name, True, how)


# --- Running statistics of BatchNorm1d -----------------------------------------------------

def _stat_batches(seed, features=6):
    generator = torch.Generator().manual_seed(30_000 + seed)
    return [2.0 + 3.0 * torch.randn(size, features, generator=generator)
            for size in (50, 20, 35)]


def _momentum_for(seed):
    # Never the default 0.1, so an answer that ignores the argument fails on every seed.
    return 0.25 + 0.1 * (seed % 5)


def _reference_running(batches, momentum, unbiased=True, start_var=1.0, reverse=False,
                       cumulative=False):
    mean = torch.zeros(batches[0].shape[1], dtype=torch.float64)
    var = torch.full_like(mean, start_var)
    for count, batch in enumerate(batches, start=1):
        batch = batch.double()
        weight = 1 / count if cumulative else (1 - momentum if reverse else momentum)
        mean = (1 - weight) * mean + weight * batch.mean(0)
        var = (1 - weight) * var + weight * batch.var(0, unbiased=unbiased)
    return mean, var


def _running_of_batchnorm(batches, momentum):
    layer = nn.BatchNorm1d(batches[0].shape[1], momentum=momentum).double()
    layer.train()
    with torch.no_grad():
        for batch in batches:
            layer(batch.double())
    return layer.running_mean, layer.running_var


class _BatchNormWatcher(TorchFunctionMode):
    """Notes every batch-norm computation torch is asked for (nn.BatchNorm1d and its
    relatives, F.batch_norm, torch.batch_norm), so a check can tell whether a function
    computed statistics itself or had batch norm compute them."""

    NAMES = {"batch_norm", "native_batch_norm", "_batch_norm_impl_index", "instance_norm"}

    def __init__(self):
        super().__init__()
        self.used = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.NAMES:
            self.used.append(func.__name__)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _watching_batch_norm():
    watcher = _BatchNormWatcher()

    def hook(module, inputs):
        if isinstance(module, nn.modules.batchnorm._NormBase):
            watcher.used.append(type(module).__name__)

    handle = nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        with watcher:
            yield watcher.used
    finally:
        handle.remove()


def _call_running(running_statistics, seed):
    batches, momentum = _stat_batches(seed), _momentum_for(seed)
    try:
        with quiet(), torch.no_grad(), _watching_batch_norm() as batch_norm_used:
            returned = running_statistics([b.clone() for b in batches], momentum=momentum)
    except NotImplementedError:
        return None, "running_statistics still raises NotImplementedError: replace that line " \
                     "with your code."
    except Exception as error:
        return None, "running_statistics(batches, momentum=%g) raised %s: %s." % (
            momentum, type(error).__name__, error)
    if batch_norm_used:
        return None, ("running_statistics has %s compute the statistics for it: the TODO "
                      "asks you to compute them yourself, without nn.BatchNorm1d. For each "
                      "batch in turn, running = (1 - momentum) * running + momentum * "
                      "batch_statistic, starting from mean 0 and variance 1 (and the "
                      "variance is the unbiased one)." % (
                          "nn." + batch_norm_used[0] if batch_norm_used[0][0].isupper()
                          else "torch's batch_norm"))
    try:
        mean, var = (torch.as_tensor(v, dtype=torch.float64).detach().flatten()
                     for v in returned)
    except Exception:
        return None, "running_statistics should return two tensors, (running_mean, " \
                     "running_var); it returned %r." % (type(returned).__name__,)
    features = batches[0].shape[1]
    if mean.numel() != features or var.numel() != features:
        return None, ("running_statistics returned %d and %d numbers for batches of %d "
                      "features: keep one statistic per feature (average over the batch, "
                      "dim 0)." % (mean.numel(), var.numel(), features))
    return (batches, momentum, mean, var), None


def _running_verdict(name, which, running_statistics, seed):
    found, problem = _call_running(running_statistics, seed)
    if problem:
        return Verdict(name, False, problem)
    batches, momentum, mean, var = found
    index = 0 if which == "mean" else 1
    got = (mean, var)[index]
    truth = _running_of_batchnorm(batches, momentum)[index]
    label = "running_" + which

    def matches(**how):
        return torch.allclose(got, _reference_running(batches, momentum, **how)[index],
                              rtol=1e-4, atol=1e-5)

    if torch.allclose(got, truth.double(), rtol=1e-4, atol=1e-5):
        return Verdict(name, True, "%s matches what nn.BatchNorm1d keeps (momentum %g)."
                       % (label, momentum))
    if which == "var" and matches(unbiased=False):
        why = ("you average the biased batch variance (divide by N). BatchNorm1d normalises "
               "with that one, but stores the unbiased one (divide by N - 1, "
               "batch.var(dim=0, unbiased=True)) in running_var")
    elif which == "var" and matches(start_var=0.0):
        why = "running_var starts at 1, not 0 (a layer that has seen nothing assumes unit " \
              "variance)"
    elif matches(reverse=True):
        why = ("the momentum weighs the new batch: running = (1 - momentum) * running + "
               "momentum * batch_statistic")
    elif momentum != 0.1 and torch.allclose(
            got, _reference_running(batches, 0.1)[index], rtol=1e-4, atol=1e-5):
        why = "use the momentum argument (it was %g here), not a fixed 0.1" % momentum
    elif matches(cumulative=True):
        why = ("you take the plain average of the batches (what momentum=None does); with a "
               "momentum, each update keeps (1 - momentum) of the old value")
    else:
        why = ("for each batch in turn, running = (1 - momentum) * running + momentum * "
               "batch_statistic, starting from mean 0 and variance 1")
    return Verdict(name, False, "Your %s is %s; nn.BatchNorm1d holds %s after these batches: "
                   "%s." % (label, _fmt(got[:3]) + ", ...", _fmt(truth[:3]) + ", ...", why))


def check_running_mean(running_statistics, seed=0):
    """running_statistics(batches, momentum) gives BatchNorm1d's running_mean."""
    return _running_verdict("running_mean", "mean", running_statistics, seed)


def check_running_var(running_statistics, seed=0):
    """running_statistics(batches, momentum) gives BatchNorm1d's (unbiased) running_var."""
    return _running_verdict("running_var", "var", running_statistics, seed)


# --- Training with and without batch norm ---------------------------------------------------

class _Affine(nn.Module):
    """A linear classifier without nn.Linear, so weights_init leaves its start alone."""

    def __init__(self, seed):
        super().__init__()
        generator = torch.Generator().manual_seed(40_000 + seed)
        self.weight = nn.Parameter(0.1 * torch.randn(OUTPUT_SIZE, INPUT_SIZE,
                                                     generator=generator))
        self.bias = nn.Parameter(torch.zeros(OUTPUT_SIZE))

    def forward(self, x):
        return x @ self.weight.t() + self.bias


def _training_data(seed, size=400):
    generator = torch.Generator().manual_seed(50_000 + seed)
    x = torch.randn(size, INPUT_SIZE, generator=generator)
    y = (x[:, :OUTPUT_SIZE].argmax(1) + (x[:, 0] > 1.5).long()) % OUTPUT_SIZE
    return x, y


def _sgd_losses(model, x, y, n_epochs, lr, momentum=0.9, zero_grad=True):
    """Full-batch SGD, one step per epoch: the loss before each step."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses = []
    for _ in range(n_epochs):
        if zero_grad:
            optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@contextlib.contextmanager
def _counting_steps(model):
    """Counts optimiser steps taken while the block runs (any torch.optim optimiser) and
    the backward passes that reach the model's parameters (for a hand-written update)."""
    counts = {"steps": 0, "backward": 0}

    def on_step(optimizer, args, kwargs):
        counts["steps"] += 1

    def on_gradient(gradient):
        counts["backward"] += 1

    import torch.optim.optimizer as optimizers

    handles = [optimizers.register_optimizer_step_post_hook(on_step)]
    first = next(iter(model.parameters()), None)
    if first is not None and first.requires_grad:
        handles.append(first.register_hook(on_gradient))
    try:
        yield counts
    finally:
        for handle in handles:
            handle.remove()


def _call_train(train_model, model, x, y, n_epochs, lr, batch_size, counts=None):
    try:
        with quiet(), _counting_steps(model) as counted:
            returned = train_model(model, x, y, n_epochs, lr, batch_size=batch_size)
        if counts is not None:
            counts.update(counted)
    except NotImplementedError:
        return None, "train_model still raises NotImplementedError: replace that line with " \
                     "your code."
    except Exception as error:
        return None, "train_model(model, x_train, y_train, %d, %g, batch_size=%d) raised %s: %s." \
            % (n_epochs, lr, batch_size, type(error).__name__, error)
    try:
        losses = [float(v) for v in returned]
    except Exception:
        return None, "train_model should return a list of numbers, one mean loss per " \
                     "epoch; it returned %r." % (type(returned).__name__,)
    if len(losses) != n_epochs:
        return None, "train_model returned %d numbers for %d epochs; return one per epoch, " \
                     "the mean training loss over that epoch's batches." % (len(losses), n_epochs)
    return losses, None


# Not the default of 100, so a train_model that ignores batch_size is seen; 400 examples
# make 5 batches an epoch.
BATCHES_BATCH_SIZE = 80


def check_train_model(train_model, seed=0):
    """train_model: He start, SGD with momentum 0.9 at the given lr, mean loss per epoch."""
    name = "train_model"
    x, y = _training_data(seed)
    with seeded(seed):
        # With lr 0 nothing moves, so every epoch's mean batch loss is the whole set's loss.
        model = _Affine(seed)
        with torch.no_grad():
            whole = float(nn.functional.cross_entropy(model(x), y))
        counts = {}
        losses, problem = _call_train(train_model, model, x, y, 2, 0.0, BATCHES_BATCH_SIZE,
                                      counts)
        if problem:
            return Verdict(name, False, problem)
        per_epoch = math.ceil(len(x) / BATCHES_BATCH_SIZE)
        if not np.allclose(losses, whole, rtol=1e-4):
            if np.allclose(losses, per_epoch * whole, rtol=1e-4):
                why = "you add up the batch losses; return their mean"
            else:
                why = ("each number should be the mean cross-entropy loss "
                       "(nn.CrossEntropyLoss) over the epoch's batches")
            return Verdict(name, False, "With lr=0 the model never changes, so every epoch's "
                           "loss is %.4f; train_model returned %s: %s." % (
                               whole, _fmt(losses), why))
        steps = counts["steps"] or counts["backward"]
        if steps != 2 * per_epoch:
            if steps == 2:
                what = ("one step per epoch, on all %d examples at once: it ignores batch_size "
                        "and trains on the full batch" % len(x))
            else:
                what = "%d steps in 2 epochs" % steps
            return Verdict(name, False, "With %d examples and batch_size=%d, each epoch should "
                           "take %d optimiser steps, one per batch; train_model took %s. As the "
                           "TODO says, load shuffled batches with DataLoader(TensorDataset("
                           "x_train, y_train), batch_size=batch_size, shuffle=True) and take "
                           "one step per batch." % (len(x), BATCHES_BATCH_SIZE, per_epoch, what))
        # One batch per epoch makes the run deterministic, whatever the shuffling.
        model = _Affine(seed)
        start = model.weight.detach().clone()
        losses, problem = _call_train(train_model, model, x, y, 4, 0.5, len(x))
        if problem:
            return Verdict(name, False, problem)
        if torch.equal(model.weight.detach(), start):
            return Verdict(name, False, "train_model did not change the model it was given: "
                           "train that model in place (its parameters, through the "
                           "optimizer).")
        expected = _sgd_losses(_Affine(seed), x, y, 4, 0.5)
        if not np.allclose(losses, expected, rtol=1e-3, atol=1e-5):
            slips = (("momentum", _sgd_losses(_Affine(seed), x, y, 4, 0.5, momentum=0.0),
                      "this is SGD without momentum (or with an optimizer made afresh every "
                      "epoch): create torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9) "
                      "once, before the loop"),
                     ("zero_grad", _sgd_losses(_Affine(seed), x, y, 4, 0.5, zero_grad=False),
                      "the gradients pile up from step to step: call optimizer.zero_grad() "
                      "before each backward pass"),
                     ("lr", _sgd_losses(_Affine(seed), x, y, 4, 0.05),
                      "this is learning rate 0.05: use the lr argument"))
            why = next((text for _, other, text in slips
                        if np.allclose(losses, other, rtol=1e-3, atol=1e-5)),
                       "train with torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), "
                       "zero_grad, loss.backward() and optimizer.step() for each batch")
            return Verdict(name, False, "From the same start, full-batch SGD with momentum 0.9 "
                           "at lr=0.5 gives the losses %s; train_model gave %s: %s." % (
                               _fmt(expected), _fmt(losses), why))
        # Both networks must start from He initialisation, as run_one_step_of_model does.
        model = nn.Sequential(nn.Linear(INPUT_SIZE, OUTPUT_SIZE))
        with torch.no_grad():
            model[0].weight.fill_(5.0)
            model[0].bias.fill_(5.0)
        _, problem = _call_train(train_model, model, x, y, 1, 0.0, len(x))
        if problem:
            return Verdict(name, False, problem)
        if torch.all(model[0].weight == 5.0) or torch.any(model[0].bias != 0):
            return Verdict(name, False, "train_model should start with "
                           "model.apply(weights_init), as run_one_step_of_model does, so "
                           "both networks train from He initialisation.")
    return Verdict(name, True, "train_model starts from He initialisation, steps SGD with "
                   "momentum 0.9 at the lr it is given, and returns each epoch's mean loss.")


class _PlainNetwork(nn.Module):
    def __init__(self, hidden=HIDDEN_SIZE, batchnorm=False):
        super().__init__()
        self.stem = nn.Linear(INPUT_SIZE, hidden)
        self.branches = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(N_BLOCKS))
        self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) if batchnorm else nn.Identity()
                                   for _ in range(N_BLOCKS))
        self.head = nn.Linear(hidden, OUTPUT_SIZE)

    def forward(self, x):
        x = self.stem(x)
        for norm, branch in zip(self.norms, self.branches):
            x = x + branch(torch.relu(norm(x)))
        return self.head(x)


# Measured on MNIST-1D (5 epochs, batches of 100, SGD with momentum 0.9): at lr 0.1 the plain
# network's loss overflows to nan for 30 seeds out of 30, batch norm's ends at 1.06-1.19.
COMPARISON_LR, COMPARISON_EPOCHS, COMPARISON_EXAMPLES = 0.1, 3, 2000


def check_training_comparison(train_model, x_train, y_train, seed=0):
    """With train_model, batch norm trains at a learning rate where the plain net diverges."""
    name = "training_comparison"
    # A train_model that is off (no momentum, say) makes the outcome depend on the seed:
    # then the experiment says nothing, and this check says so whatever the seed.
    loop = check_train_model(train_model, seed)
    if not loop.passed:
        return Verdict(name, False, "This comparison runs your train_model, which is not "
                       "right yet (see its check above): " + loop.message)
    x = torch.as_tensor(x_train[:COMPARISON_EXAMPLES], dtype=torch.float32)
    y = torch.as_tensor(y_train[:COMPARISON_EXAMPLES], dtype=torch.long)
    finals = {}
    with seeded(seed):
        for label, batchnorm in (("plain", False), ("batch norm", True)):
            losses, problem = _call_train(train_model, _PlainNetwork(batchnorm=batchnorm), x, y,
                                          COMPARISON_EPOCHS, COMPARISON_LR, 100)
            if problem:
                return Verdict(name, False, problem)
            finals[label] = losses
    plain, batchnorm = finals["plain"], finals["batch norm"]
    plain_end = plain[-1] if math.isfinite(plain[-1]) else float("inf")
    story = ("at lr %g the plain network's loss went %s, batch norm's %s"
             % (COMPARISON_LR, _fmt(plain), _fmt(batchnorm)))
    if not all(math.isfinite(v) for v in batchnorm) or batchnorm[-1] >= batchnorm[0]:
        return Verdict(name, False, "With your train_model the batch-norm network did not "
                       "learn: %s. Its loss should fall from epoch to epoch." % story)
    if batchnorm[-1] >= plain_end:
        return Verdict(name, False, "With your train_model %s: the plain network did not "
                       "fall behind, though from He initialisation at this learning rate it "
                       "should diverge. Check that train_model starts from weights_init and "
                       "uses SGD with momentum 0.9 at the lr it is given." % story)
    if not math.isfinite(plain[-1]):
        return Verdict(name, True, "Batch norm trains where the plain network cannot: %s."
                       % story)
    return Verdict(name, True, "Batch norm trains better than the plain network at this "
                   "learning rate: %s." % story)


# --- what the notebook calls -------------------------------------------------------------

def score(verdict, points):
    """Visible self-checks: say what passed or what to fix, and return the points earned.

    Never raises, so "Run All" carries on past a failing check; the returned number is
    what nbgrader's validate reads as the cell's score.
    """
    print("%s %s" % ("✓" if verdict.passed else "✗", verdict.message))
    return float(points) if verdict.passed else 0.0


def require(*verdicts):
    """Hidden tests: pass silently, or fail with the first failing verdict's message.

    A hidden test passes the visible check's verdict first, then the same check on other
    seeds, so a student who failed the visible check reads the very message they saw.
    """
    __tracebackhide__ = True
    for verdict in verdicts:
        if not verdict.passed:
            raise AssertionError(verdict.message)
