"""The judging half of the checks: verdicts from what the student's code did.

The observing half (checks.py) runs in the student's kernel: it calls the student's code on
inputs chosen here and writes down what happened, as records of plain values and arrays
(``Observation``s). This half turns records into verdicts. It never calls student code, so
it runs the same anywhere: in the student's kernel for the visible self-checks, and in the
grader's own process for grades, where records arrive as text (``encode``/``decode``: JSON
with arrays as base64, never a pickle).

A record from a student's kernel can be forged, so before a check passes the judge makes
sure the record adds up:
- every traced layer's output is what that layer computes from its input and its reported
  parameters (the judge recomputes each one with its own torch);
- the forward pass started from the batch the judge chose (``input_batch(seed)``, for a
  seed the student cannot know), and every traced value comes from that batch through the
  traced steps (each input is the batch or an earlier output, a multiple of one, or one
  through a ReLU);
- returned values are compared with what the judge computes itself from its own inputs.
What cannot be checked that way is listed in docs/grading-safety.md ("What the judge
believes, and what it cannot check").

Messages are the course's teaching voice: what is wrong, why it matters, what to change.
"""
import base64
import dataclasses
import json
import math
import textwrap
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# In the package, the package's rows; in the notebook, the module the helpers cell (or the
# grader's request) registered under this name.
if __name__.startswith("coursekit."):
    from coursekit.kernel import testcells
else:
    import udl_bn_testcells as testcells

INPUT_SIZE, OUTPUT_SIZE, HIDDEN_SIZE = 40, 10, 100
BATCH_SIZE, N_BLOCKS = 200, 5

# Normalizations students reach for instead of batch norm, named in messages. The observer
# records each traced module under the first of these kinds it is an instance of.
NORM_KINDS = ("BatchNorm1d", "LayerNorm", "GroupNorm", "InstanceNorm1d", "LocalResponseNorm")
OTHER_NORM_KINDS = NORM_KINDS[1:]
TRACED_KINDS = ("Linear",) + NORM_KINDS
# Messages are printed broken between words at this width: JupyterLab breaks long output
# lines anywhere, mid-word.
MESSAGE_WIDTH = 88


def wrapped(text, indent="  ", width=MESSAGE_WIDTH):
    """`text` broken between words only (a word longer than `width` keeps its own line),
    later lines indented. This module stands alone in the student's kernel; the grader's
    side has a torch-free twin, coursekit.grading.verdicts.wrapped (kept alike by the
    tests)."""
    return textwrap.fill(text, width=width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False)

# Compounding is multiplication: what each of the last three blocks multiplies the variance
# by, on average. Measured over 100 seeds (tests/test_checks_stability.py keeps these
# honest): the plain network 1.63-1.94, with or without batch norm on the stem; every
# batch-norm variant at most 1.33 (BN after the ReLU with BN on the stem, the steepest), a
# normalized stream about 1.0. 1.45 separates them with room. (The ratio of the last to the
# first variance does not: batch norm on the stem starts the stream at 1 instead of 2,
# which moves that ratio by half, for the plain network and the linear ones alike.)
COMPOUNDING_FACTOR = 1.45
# Figure 11.6c adds 1 - 1/pi = 0.68 per block (fitted slopes 0.56-0.76 over 100 seeds);
# BN at the end of the branch adds 0.86-1.09, after the ReLU about 2.
BOOK_SLOPE = 1 - 1 / math.pi
BOOK_SLOPE_BAND = (0.48, 0.82)


class Verdict:
    """The outcome of one check: passed or not, and a message for the student.

    ``untrusted`` says why the record behind a verdict could not be believed (the grader
    then flags the notebook); such a verdict never passes."""

    def __init__(self, name, passed, message, untrusted=None, raised=None):
        self.name, self.passed, self.message = name, bool(passed), message
        self.untrusted = untrusted
        # What a failed hidden test raises: its message, or the error the student's
        # objects raised before the check could start (a NameError, say).
        self.raised = raised or ("AssertionError", message)

    def __repr__(self):
        return "Verdict(%r, %r, %r)" % (self.name, self.passed, self.message)


# --- Records: what the observing half writes down -----------------------------------------

@dataclass
class ModuleInfo:
    """A module of the student's network: what it is, and where it is registered."""
    key: int                     # tells modules apart within one record
    kind: str                    # one of TRACED_KINDS, or the class name
    class_name: str
    name: Optional[str]          # its name in named_modules(); None if created in forward
    affine: bool = False
    track_running_stats: bool = False
    weight_registered: bool = True   # its scale is among model.parameters()
    settings: dict = field(default_factory=dict)   # eps, momentum, shapes: to recompute it


@dataclass
class Call:
    """One traced step of a forward pass: a module call, or a tensor addition."""
    kind: str                    # "module" or "add"
    module: Optional[ModuleInfo]
    inputs: list
    output: Any
    training: bool = False
    params: dict = field(default_factory=dict)   # weight, bias, running statistics


@dataclass
class NetworkObservation:
    """One forward pass of a freshly built, He-initialized model in train mode, on
    ``input_batch(seed)``."""
    model_name: str
    build_error: Optional[str] = None
    forward_error: Optional[str] = None
    modules: list = field(default_factory=list)   # registered modules (named_modules)
    calls: list = field(default_factory=list)
    output: Any = None                            # what model(x) returned


@dataclass
class Returned:
    """What one call of a student's function gave: an error message, or its value."""
    error: Optional[str] = None
    value: Any = None


@dataclass
class TrainEvalObservation:
    network: NetworkObservation
    build_error: Optional[str] = None
    backward_problem: Optional[str] = None
    train_error: Optional[str] = None
    # The kernel's word that the registered layers' running statistics changed in train
    # mode: it picks which message to give, never a pass (that rests on eval_network).
    statistics_moved: bool = False
    # Each tracked BatchNorm1d's running statistics right after the train-mode passes, by
    # name: eval mode must normalize with these as they are.
    trained_statistics: dict = field(default_factory=dict)
    eval_error: Optional[str] = None
    # The same model's forward pass in eval mode, after training, on input_batch(seed)...
    eval_network: Optional[NetworkObservation] = None
    # ... and on its first example alone, after another batch: both traced, so the judge
    # recomputes each step instead of taking the kernel's word for either output.
    alone_network: Optional[NetworkObservation] = None


@dataclass
class BlockVariancesObservation:
    network: NetworkObservation
    returned: Returned
    # Only when the values are wrong: whether the notebook's print_variance still records,
    # and what block_variances returns with the notebook's own print_variance put back.
    print_variance_records: Optional[bool] = None
    with_notebook_print_variance: Optional[list] = None


@dataclass
class LineInfo:
    x: list
    y: list
    label: str


@dataclass
class AxesInfo:
    lines: list
    has_legend: bool
    xlabel: str
    ylabel: str
    yscale: str


@dataclass
class PlotObservation:
    returned: Returned
    axes: Optional[AxesInfo] = None
    stray: list = field(default_factory=list)    # AxesInfo of every other axes


@dataclass
class RunningObservation:
    returned: Returned           # value: (mean, var) as float64 tensors
    # Which batch-norm computations running_statistics asked torch for. Each one raised
    # (batch norm is refused while the check runs), so this list only picks the message:
    # emptying it earns nothing.
    batch_norm_used: list = field(default_factory=list)


@dataclass
class Parameters:
    """A linear layer's parameters after a run, as plain numbers."""
    weight: list                 # OUTPUT_SIZE rows of INPUT_SIZE
    bias: list


@dataclass
class TrainModelObservation:
    at_rest: Returned            # lr 0, two epochs, batches of 80: losses
    full_batch: Optional[Returned] = None     # lr 0.5, four epochs, one batch
    trained: Optional[Parameters] = None      # ... what the model it was given holds after
    alike: Optional[Returned] = None          # every example alike, batches of 80: losses
    batches: Optional[Returned] = None        # lr 0.5, two epochs, batches of 80: losses
    restart: Optional[Returned] = None        # lr 0, one epoch, a model at restart_start ...
    restarted_to: Optional[Parameters] = None  # ... and what that model holds after


@dataclass
class ComparisonObservation:
    train_model: TrainModelObservation
    plain: Optional[Returned] = None
    batchnorm: Optional[Returned] = None


# What a right answer gives, from coursekit.authoring.reference (the grader's answer key). The
# kernel receives these for seed 0 only, as numbers.

@dataclass
class Statistics:
    mean: list
    var: list


@dataclass
class RunningExpected:
    batchnorm: Statistics          # what nn.BatchNorm1d holds: the right answer
    biased: Statistics             # ... the slips students make
    start_zero: Statistics
    reversed_momentum: Statistics
    default_momentum: Statistics
    cumulative: Statistics


@dataclass
class TrainingExpected:
    at_rest: float                 # the loss of the untrained model on the whole set
    sgd: list                      # full-batch SGD with momentum 0.9: the right losses
    no_momentum: list              # ... the slips students make
    no_zero_grad: list
    other_lr: list
    alike_by_steps: list           # [k - 1]: the alike run's losses at k steps an epoch
    whole_set_steps: list          # the batches run, each step taking the whole set
    trained: "Parameters"          # the model's parameters after the right full-batch run


@dataclass
class SlopeExpected:
    slope: float
    intercept: float
    two_point: float
    without_first: float


@dataclass
class Unavailable:
    """The check could not even start: the names it grades are missing or broken."""
    ename: str
    message: str


RECORDS = {cls.__name__: cls for cls in (
    ModuleInfo, Call, NetworkObservation, Returned, TrainEvalObservation,
    BlockVariancesObservation, LineInfo, AxesInfo, PlotObservation, RunningObservation,
    TrainModelObservation, Parameters, ComparisonObservation, Unavailable, Statistics,
    RunningExpected, TrainingExpected, SlopeExpected)}
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64,
           "int32": torch.int32, "bool": torch.bool}


# --- Records as text ----------------------------------------------------------------------

def encode(value):
    """A record (or list, dict, number, text, tensor) as JSON text. A tensor equal to one
    written before (a layer's input is often the previous step's output) is written once."""
    return json.dumps(_plain(value, {}), separators=(",", ":"))


def _plain(value, seen):
    if dataclasses.is_dataclass(value) and type(value).__name__ in RECORDS:
        return {"__record__": type(value).__name__,
                **{f.name: _plain(getattr(value, f.name), seen)
                   for f in dataclasses.fields(value)}}
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().contiguous()
        key = (str(array.dtype), tuple(array.shape), array.numpy().tobytes())
        if key in seen:
            return {"__same__": seen[key]}
        seen[key] = len(seen)
        return {"__tensor__": [str(array.dtype).replace("torch.", ""), list(array.shape),
                               base64.b64encode(key[2]).decode("ascii")]}
    if isinstance(value, (list, tuple)):
        return [_plain(v, seen) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, seen) for k, v in value.items()}
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    if isinstance(value, (float, np.floating, np.integer)):
        return float(value)
    raise TypeError("cannot record a %s" % type(value).__name__)


class Unreadable(ValueError):
    """Text that is not a record this module writes."""


def decode(text):
    """The record `encode` wrote. Builds only this module's record types and tensors."""
    try:
        return _built(json.loads(text), [])
    except Unreadable:
        raise
    except (ValueError, TypeError, KeyError, IndexError, RecursionError,
            AttributeError) as error:
        raise Unreadable("%s: %s" % (type(error).__name__, error)) from None


def _built(value, tensors):
    """`value` with its records and tensors built; `tensors` holds those built so far, in
    the order encode wrote them."""
    if isinstance(value, list):
        return [_built(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__same__" in value:
        return tensors[int(value["__same__"])].clone()
    if "__tensor__" in value:
        dtype, shape, data = value["__tensor__"]
        if dtype not in _DTYPES:
            raise Unreadable("a tensor of %s" % dtype)
        raw = base64.b64decode(data.encode("ascii"), validate=True)
        array = np.frombuffer(raw, dtype=str(dtype))
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise Unreadable("a tensor's data does not match its shape")
        tensors.append(torch.from_numpy(array.reshape([int(s) for s in shape]).copy()))
        return tensors[-1]
    if "__record__" in value:
        cls = RECORDS.get(value["__record__"])
        if cls is None:
            raise Unreadable("unknown record %r" % value["__record__"])
        names = {f.name for f in dataclasses.fields(cls)}
        if set(value) - names - {"__record__"}:
            raise Unreadable("unknown fields in %s" % cls.__name__)
        return cls(**{k: _built(v, tensors) for k, v in value.items() if k != "__record__"})
    return {k: _built(v, tensors) for k, v in value.items()}


# --- Inputs the judge chooses: the same in the kernel and in the grader ---------------------

def input_batch(seed, batch_size=BATCH_SIZE):
    generator = torch.Generator().manual_seed(10_000 + seed)
    return torch.randn(batch_size, INPUT_SIZE, generator=generator)


def stream_variance(values):
    """What print_variance prints: each neuron's variance over the batch, averaged."""
    return float(np.mean(np.var(torch.as_tensor(values).detach().double().numpy(), axis=0)))


def _close(a, b):
    """torch.allclose(a, b, rtol=1e-4, atol=1e-5), for tensors of one shape. Most pairs the
    judge compares differ (it searches for which traced value is which), and their first
    elements show it at a fifth of the cost of comparing them all."""
    if a.shape != b.shape:
        return False
    return (torch.allclose(a.reshape(-1)[:64], b.reshape(-1)[:64], rtol=1e-4, atol=1e-5)
            and torch.allclose(a, b, rtol=1e-4, atol=1e-5))


def _same_or_rectified(value, source):
    """Whether `value` is `source`, or `source` through a ReLU (an elementwise step the
    trace does not record)."""
    return _close(value, source) or _close(value, torch.relu(source))


def _blocks_list(indices):
    indices = sorted(set(indices))
    return ("block %d" % indices[0] if len(indices) == 1 else
            "blocks " + ", ".join(str(i) for i in indices[:-1]) + " and %d" % indices[-1])


def _fmt(values):
    return ", ".join("%.2f" % v for v in values)


# --- Does a traced forward pass add up? -----------------------------------------------------

def _statistics(call):
    """The running (mean, var) a norm layer normalizes with, or (None, None) when it
    uses the batch's own: in train mode, or when it keeps none."""
    mean, var = call.params.get("running_mean"), call.params.get("running_var")
    if call.training or mean is None or var is None:
        return None, None
    return mean.double().clone(), var.double().clone()


def _batch_norm(call, x, weight, bias, s):
    mean, var = _statistics(call)
    return F.batch_norm(x, mean, var, weight, bias, training=mean is None, eps=s["eps"])


def _instance_norm(call, x, weight, bias, s):
    # InstanceNorm1d also takes one unbatched (channels, length) example.
    mean, var = _statistics(call) if call.module.track_running_stats else (None, None)
    batched = x if x.dim() == 3 else x.unsqueeze(0)
    return F.instance_norm(batched, mean, var, weight, bias, use_input_stats=mean is None,
                           eps=s["eps"]).reshape(x.shape)


# How each traced kind computes its output: (call, input, weight, bias, settings) -> output.
_COMPUTE = {
    "Linear": lambda call, x, weight, bias, s: F.linear(x, weight, bias),
    "BatchNorm1d": _batch_norm,
    "InstanceNorm1d": _instance_norm,
    "LayerNorm": lambda call, x, weight, bias, s: F.layer_norm(
        x, tuple(s["normalized_shape"]), weight, bias, s["eps"]),
    "GroupNorm": lambda call, x, weight, bias, s: F.group_norm(
        x, s["num_groups"], weight, bias, s["eps"]),
    "LocalResponseNorm": lambda call, x, weight, bias, s: F.local_response_norm(
        x, s["size"], s["alpha"], s["beta"], s["k"]),
}


def _recomputed(call):
    """What the traced module computes from the recorded input, by the judge's own torch
    in double precision; None for a kind the judge cannot recompute."""
    compute = _COMPUTE.get(call.module.kind)
    if compute is None:
        return None
    weight, bias = (call.params.get(name) for name in ("weight", "bias"))
    return compute(call, call.inputs[0].double(),
                   None if weight is None else weight.double(),
                   None if bias is None else bias.double(), call.module.settings)


def _agrees(output, expected):
    """Whether `expected` is all finite and torch.allclose(output.double(), expected,
    rtol=1e-3, atol=1e-3). Written out as torch's isclose computes it for a finite
    `expected`, to the bit: this runs for every traced step of every check, and allclose
    after isfinite cost three times as much."""
    if expected is None or tuple(output.shape) != tuple(expected.shape):
        return False
    output = output.double()
    if expected.numel() == 0:
        return True
    allowed = expected.abs().mul_(1e-3).add_(1e-3)  # finite exactly where expected is
    if not bool(allowed.max() < math.inf):          # a NaN anywhere makes the max NaN
        return False
    return bool((output - expected).abs_().le_(allowed).all())


def _derived_from(value, sources):
    """Whether `value` is a source, a non-zero multiple of one, or one through a ReLU.
    `sources` holds (value, its ReLU) pairs, latest last."""
    for source, rectified in reversed(sources):
        if source.shape == value.shape and (torch.equal(source, value)
                                            or torch.equal(rectified, value)):
            return True
    for source, rectified in reversed(sources):
        if source.shape == value.shape and any(
                _scale_between(candidate, value) not in (None, 0)
                for candidate in (source, rectified)):
            return True
    return False


def unconfirmed(observation, seed, batch=None):
    """Why the traced forward pass does not add up, or None when it does. It must start
    from `batch`, by default input_batch(seed)."""
    if observation is None:
        return "that forward pass was not traced"
    cached = getattr(observation, "_unconfirmed", {})
    if seed not in cached:
        cached[seed] = _unconfirmed(observation, seed, batch)
        try:
            observation._unconfirmed = cached
        except AttributeError:
            pass
    return cached[seed]


def _unconfirmed(observation, seed, batch=None):
    if observation.build_error or observation.forward_error:
        return None
    calls = observation.calls
    try:
        for index, call in enumerate(calls):
            if call.kind == "add":
                if len(call.inputs) != 2 or not _agrees(call.output, call.inputs[0].double()
                                                         + call.inputs[1].double()):
                    return "addition %d is not the sum of its operands" % (index + 1)
            elif not _agrees(call.output, _recomputed(call)):
                return ("the %s called at step %d did not compute its output from its input "
                        "and parameters" % (call.module.class_name, index + 1))
        if not calls:
            return "nothing was traced"
        # Everything traced must come from the grader's batch, through the traced steps.
        batch = input_batch(seed) if batch is None else batch
        sources = [(batch, torch.relu(batch))]
        for index, call in enumerate(calls):
            if not all(_derived_from(value, sources) for value in call.inputs):
                return ("step %d received values that neither the grader's batch nor an "
                        "earlier step produced" % (index + 1))
            sources.append((call.output, torch.relu(call.output)))
        # ... and what the model returned must be what its traced steps computed.
        last = calls[-1].output
        output = observation.output
        if not (isinstance(output, torch.Tensor) and (
                _derived_from(output, sources[-1:]) or any(
                    output.shape == last.shape and torch.allclose(
                        output.double(), function(last.double(), dim=-1), rtol=1e-4,
                        atol=1e-5)
                    for function in (torch.softmax, torch.log_softmax)))):
            return "the model's output is not what its traced layers computed"
    except (AttributeError, KeyError, TypeError, ValueError, IndexError, RuntimeError) as error:
        return "its record is malformed (%s)" % type(error).__name__
    return None


def confirmed(verdict, observation, seed):
    """`verdict`, unless it passes on a record that does not add up."""
    if not verdict.passed:
        return verdict
    why = unconfirmed(observation, seed)
    if why is None:
        return verdict
    return Verdict(verdict.name, False, "The grader could not confirm what your code computed: "
                   "%s. This check passes only on values it can confirm." % why, untrusted=why)


# --- ResidualNetworkWithBatchNorm --------------------------------------------------------

@dataclass
class Block:
    """Residual block k: the stream entering it, the addition that closes it, and the
    Linear and normalization calls made in between."""
    stream: Any
    add: Call
    linears: list
    norms: list


class Trace:
    """The judge's reading of a NetworkObservation: where the stem ends, the five blocks,
    and the variance of the stream after each."""

    @classmethod
    def of(cls, observation):
        """The reading of `observation`, made once: the checks that share an observation
        (the four network checks read one forward pass) read it from there."""
        trace = getattr(observation, "_trace", None)
        if trace is None:
            trace = cls(observation)
            try:
                observation._trace = trace
            except AttributeError:
                pass
        return trace

    def __init__(self, observation):
        self.observation = observation
        self.built = observation.build_error is None
        self.error = observation.build_error or observation.forward_error
        self.events = observation.calls
        self.modules = observation.modules
        self.blocks, self.stem_norms, self.variances = [], [], []
        if self.error is None:
            self._split_into_blocks()

    def _is(self, event, *kinds):
        return event.kind == "module" and event.module.kind in kinds

    def _split_into_blocks(self):
        shape = (BATCH_SIZE, HIDDEN_SIZE)
        linears = [i for i, e in enumerate(self.events) if self._is(e, "Linear")]
        stems = [i for i in linears if tuple(self.events[i].output.shape) == shape]
        if not stems:
            self.error = "no Linear layer produced a batch of %d hidden values" % HIDDEN_SIZE
            return
        stem = stems[0]
        head = next((i for i in reversed(linears) if self.events[i].output.shape[-1] ==
                     OUTPUT_SIZE), len(self.events))
        adds = [i for i, e in enumerate(self.events)
                if e.kind == "add" and stem < i < head and tuple(e.output.shape) == shape]
        if len(adds) != N_BLOCKS:
            self.error = ("forward made %d residual additions (x + branch) between the first "
                          "Linear layer and the output layer; the network has %d blocks"
                          % (len(adds), N_BLOCKS))
            return
        stem, entering = self._stem_end(stem, adds[0])
        starts = [stem] + adds[:-1]
        for start, end in zip(starts, adds):
            inside = self.events[start + 1:end]
            self.blocks.append(Block(
                stream=entering if start == stem else self.events[start].output,
                add=self.events[end],
                linears=[e for e in inside if self._is(e, "Linear")],
                norms=[e for e in inside if self._is(e, *NORM_KINDS)]))
        self.variances = [stream_variance(entering)] + [
            stream_variance(self.events[i].output) for i in adds]

    def _stem_end(self, stem, first_add):
        """Where the stem ends, found by the skip connection of block 1: the first Linear
        layer, plus the normalizations applied to its output before block 1, each perhaps
        through a ReLU (`f = relu(bn0(linear1(x)))`); these are outside the residual
        branches. Such a normalization counts as the stem's only when block 1's skip
        carries its output (or its ReLU), or a normalization of it (the stream itself
        normalized, as blocks 2 to 5 may do it too), and block 1 still calls a
        normalization of its own after it; otherwise it is block 1's own. Returns (the
        index of the stem's last event, the stream entering block 1)."""
        chain, current = [], self.events[stem].output
        for index in range(stem + 1, first_add):
            event = self.events[index]
            if event.kind != "module":
                continue
            if not (self._is(event, *NORM_KINDS) and _same_or_rectified(event.inputs[0],
                                                                        current)):
                break
            chain.append(index)
            current = event.output
        skip = self.events[first_add].inputs
        carried = {k: operand for k, index in enumerate(chain) for operand in skip
                   if _same_or_rectified(operand, self.events[index].output)}
        if not carried:
            return stem, self.events[stem].output
        later_norms = [i for i in range(stem + 1, first_add)
                       if self._is(self.events[i], *NORM_KINDS)]
        ends = [k for k, index in enumerate(chain[:max(carried) + 1])
                if any(i > index for i in later_norms)]
        if not ends:
            return stem, self.events[stem].output
        end = ends[-1]
        self.stem_norms = [self.events[i] for i in chain[:end + 1]]
        # What block 1 receives: the stem's last output as the skip carries it (through a
        # ReLU, say); where a normalization of it is carried instead, the output itself.
        entering = self.events[chain[end]].output
        if end in carried and _close(carried[end], torch.relu(entering)):
            entering = carried[end]
        return chain[end], entering

    def batchnorm_calls(self):
        return [e for e in self.events if self._is(e, "BatchNorm1d")]

    def registered_modules(self, *kinds):
        return [m for m in self.modules if m.kind in kinds]

    @staticmethod
    def name_of(module):
        return "self." + module.name if module.name else "a BatchNorm1d created in forward"


def judge_registered(observation, seed=0):
    """BatchNorm1d layers are created in __init__, so they are part of the model."""
    name = "registered"
    trace = Trace.of(observation)
    if not trace.built:
        return Verdict(name, False, "Your network could not be built: %s." % trace.error)
    registered = trace.registered_modules("BatchNorm1d")
    unregistered = [e for e in trace.batchnorm_calls() if e.module.name is None]
    if unregistered:
        return Verdict(name, False,
                       "forward creates nn.BatchNorm1d layers as it runs, so they are not part "
                       "of the model: the optimizer never sees their scale and offset, their "
                       "running statistics are lost after every call, and model.eval() does "
                       "not reach them. Create one nn.BatchNorm1d(hidden_size) per block in "
                       "__init__ (for example self.bn1) and call those in forward.")
    if not registered:
        others = sorted({m.class_name for m in trace.registered_modules(*OTHER_NORM_KINDS)})
        if others:
            return Verdict(name, False,
                           "Your network uses %s, not nn.BatchNorm1d. %s normalizes each "
                           "example across its neurons; batch norm normalizes each neuron "
                           "across the batch, which is what this notebook studies. Use "
                           "nn.BatchNorm1d(hidden_size)." % (others[0], others[0]))
        return Verdict(name, False,
                       "No nn.BatchNorm1d layer is registered in your network. Create one per "
                       "residual block in __init__, for example "
                       "self.bn1 = nn.BatchNorm1d(hidden_size).")
    if any(m.affine and not m.weight_registered for m in registered):
        return Verdict(name, False, "Some BatchNorm1d scales are missing from "
                       "model.parameters(), so the optimizer would never train them.")
    return Verdict(name, True, "%d BatchNorm1d layers are registered in __init__."
                   % len(registered))


def judge_used(observation, seed=0):
    """Each residual block calls its own BatchNorm1d, once per forward pass."""
    name = "used"
    trace = Trace.of(observation)
    if trace.error:
        return Verdict(name, False, "Could not follow your forward pass: %s." % trace.error)
    # Every BatchNorm1d call counts here, registered or not: a layer created inside forward
    # is a mistake of its own (registered, train_eval), not of this check.
    calls = trace.batchnorm_calls()
    if not calls:
        if trace.registered_modules("BatchNorm1d"):
            return Verdict(name, False,
                           "Your __init__ creates BatchNorm1d layers but forward never calls "
                           "them, so they change nothing: this is still the plain network. "
                           "Call each block's layer at the start of its residual branch.")
        return Verdict(name, False, "forward calls no BatchNorm1d layer. Each of the five "
                       "residual blocks should call its own, at the start of its branch.")
    problems = []
    blocks_of = {}
    for index, block in enumerate(trace.blocks, start=1):
        own = [e for e in block.norms if e.module.kind == "BatchNorm1d"]
        if not own:
            problems.append("block %d calls no BatchNorm1d" % index)
        elif len(own) > 1:
            problems.append("block %d calls %d BatchNorm1d layers" % (index, len(own)))
        for e in own:
            blocks_of.setdefault(e.module.key, []).append(index)
    modules = {call.module.key: call.module for call in calls}
    for key, module in modules.items():
        blocks = blocks_of.get(key, [])
        count = sum(call.module.key == key for call in calls)
        if len(set(blocks)) > 1:
            problems.append("%s is shared by %s" % (trace.name_of(module), _blocks_list(blocks)))
        elif count > 1:
            problems.append("%s is called %d times in one forward pass"
                            % (trace.name_of(module), count))
    silent = [m for m in trace.registered_modules("BatchNorm1d") if m.key not in modules]
    if problems and silent and len(silent) < len(modules) + len(silent):
        problems.append("%s %s never called (a copy-paste slip?)" % (
            ", ".join(trace.name_of(m) for m in silent), "is" if len(silent) == 1 else "are"))
    if problems:
        shared = any("shared" in p for p in problems)
        why = ("Each block needs its own layer: a layer keeps one scale, one offset and one "
               "set of running statistics, and the values at different depths have different "
               "statistics, so a shared layer mixes them up. "
               if shared else
               "Each of the five residual branches should call its own BatchNorm1d exactly once "
               "(a copy-paste slip often calls one block's layer twice and another's never). ")
        return Verdict(name, False, "In your forward, %s. %sCreate five layers and call "
                       "layer k in block k." % ("; ".join(problems), why))
    return confirmed(Verdict(name, True, "Each of the five blocks calls its own BatchNorm1d "
                             "once."), observation, seed)


def judge_no_compounding(observation, seed=0):
    """The variance no longer multiplies block after block as in figure 11.6a: the typical
    factor of the last three blocks (their median, so that one block's jump is not taken
    for compounding) stays under COMPOUNDING_FACTOR."""
    name = "no_compounding"
    trace = Trace.of(observation)
    if trace.error:
        return Verdict(name, False, "Could not measure the variance: %s." % trace.error)
    variances = trace.variances
    factors = [after / before for before, after in zip(variances, variances[1:])]
    typical = float(np.median(factors[-3:]))
    measured = ("the stream's variance after the first layer and after each block: %s"
                % _fmt(variances))
    if typical >= COMPOUNDING_FACTOR:
        multiplying = [k for k, factor in enumerate(factors, start=1)
                       if factor >= COMPOUNDING_FACTOR]
        everywhere = len(multiplying) == N_BLOCKS
        hint = ("" if trace.batchnorm_calls() else
                " Your forward calls no BatchNorm1d, so nothing resets the scale.")
        return Verdict(name, False,
                       "The variance still compounds: %s multiplies it (by %s), %.1f-fold "
                       "over the five blocks (%s)%s. In a block whose branch is not normalized, the "
                       "branch passes on the variance it receives and the skip adds it back, "
                       "so the block nearly doubles it. Normalizing what each branch receives "
                       "stops that.%s"
                       % ("every block" if everywhere else _blocks_list(multiplying),
                          _fmt(factors[k - 1] for k in multiplying),
                          variances[-1] / variances[0], measured,
                          ", as in the plain network of figure 11.6a" if everywhere else "",
                          hint))
    return confirmed(Verdict(name, True, "The variance no longer compounds: the last three "
                             "blocks multiply it by factors of only %s, where the plain "
                             "network's blocks nearly double it (%s)."
                             % (_fmt(factors[-3:]), measured)),
                     observation, seed)


def _diagnose_block(block, index):
    """Why block `index` differs from figure 11.6c, or None when it matches."""
    stream = block.stream
    left, right = block.add.inputs
    batchnorms = [e for e in block.norms if e.module.kind == "BatchNorm1d"]
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
    if any(_same_or_rectified(bn_in, lin.output) for lin in block.linears):
        return "branch_end", index
    if not _close(bn_in, stream):
        return "not_first", index
    if not block.linears or not _close(block.linears[-1].inputs[0], torch.relu(bn_out)):
        return "relu_linear", index
    branch = right if _close(left, stream) else left
    if not _close(branch, block.linears[-1].output):
        return "branch_end", index
    return None


PLACEMENT_MESSAGES = {
    "no_bn": "no BatchNorm1d runs inside the residual branch of %s",
    "normalised_stream": (
        "in %s the skip connection carries the normalized values: you normalize the residual "
        "stream itself, so every block restarts from variance 1 and the variance stays flat. "
        "In figure 11.6c only the branch is normalized: x + linear(relu(bn(x)))"),
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


def judge_placement(observation, seed=0):
    """Figure 11.6c: x + linear(relu(bn(x))), so the variance grows by about +0.68 a block."""
    name = "placement"
    trace = Trace.of(observation)
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
                       "per block (%s); with figure 11.6c at initialization it grows by about "
                       "%+.2f. Check the layers' settings (scale 1, offset 0)."
                       % (slope, _fmt(trace.variances), BOOK_SLOPE))
    return confirmed(Verdict(name, True, "BatchNorm1d opens every residual branch and the "
                             "skip carries the raw stream: the variance grows linearly, %+.2f "
                             "per block." % slope), observation, seed)


def _no_running_statistics(network):
    """Why no registered BatchNorm1d of the model updates its running statistics."""
    trace = Trace.of(network)
    if any(e.module.name is None for e in trace.batchnorm_calls()):
        return ("Your forward creates its BatchNorm1d layers as it runs, so none of them keeps "
                "running statistics from one call to the next, and model.eval() never reaches "
                "them: in eval mode they still normalize with the batch's own statistics (a "
                "batch of one example fails). Create the layers in __init__ and call those.")
    if trace.registered_modules("BatchNorm1d"):
        return ("Your BatchNorm1d layers are never called in forward, so none of them updates "
                "its running statistics in train mode and eval mode has nothing to use. Call "
                "each block's layer at the start of its branch.")
    return ("Your network has no BatchNorm1d, so there are no running statistics for eval "
            "mode to use. Create one per block in __init__ and call it at the start of the "
            "block's branch.")


def _batchnorm_calls_by_name(network):
    counts = {}
    for call in Trace.of(network).batchnorm_calls() if network is not None else ():
        if call.module.name is not None:
            counts[call.module.name] = counts.get(call.module.name, 0) + 1
    return counts


def _normalized_with_running_statistics(network):
    """Whether a registered BatchNorm1d normalized with running statistics that moved off
    their start (mean 0, variance 1) in this eval-mode pass."""
    for call in Trace.of(network).batchnorm_calls():
        mean, var = _statistics(call)
        if call.module.name is not None and mean is not None and not (
                torch.all(mean == 0) and torch.all(var == 1)):
            return True
    return False


def _statistics_changed_in_eval(o):
    """The registered BatchNorm1d layers that normalized, in either eval-mode pass, with
    statistics other than the running ones they held after training, as words, or None."""
    changed = []
    for network in (o.eval_network, o.alone_network):
        for call in Trace.of(network).batchnorm_calls():
            kept = o.trained_statistics.get(call.module.name)
            mean, var = _statistics(call)
            if kept is None or mean is None:
                continue
            try:
                same = (np.allclose(mean.numpy(), np.asarray(kept.mean, float), rtol=1e-5,
                                    atol=1e-7)
                        and np.allclose(var.numpy(), np.asarray(kept.var, float), rtol=1e-5,
                                        atol=1e-7))
            except (TypeError, ValueError, AttributeError):
                same = False
            if not same:
                changed.append("self." + call.module.name)
    if not changed:
        return None
    changed = list(dict.fromkeys(changed))
    return changed[0] if len(changed) == 1 else ", ".join(changed[:-1]) + " and " + changed[-1]


def _skipped_in_eval(o):
    """The registered BatchNorm1d layers that forward calls in train mode and not in eval
    mode, as words ("self.bn2 and self.bn3"), or None."""
    trained = _batchnorm_calls_by_name(o.network)
    evaluated = _batchnorm_calls_by_name(o.eval_network)
    missing = sorted(name for name, count in trained.items() if evaluated.get(name, 0) < count)
    if not missing:
        return None
    names = ["self." + name for name in missing]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _unused_in_eval(network):
    """The BatchNorm1d layers whose eval-mode output nothing after them receives, as
    words, or None."""
    calls = network.calls if network is not None else []
    unused = []
    for index, call in enumerate(calls):
        if not (call.kind == "module" and call.module.kind == "BatchNorm1d"):
            continue
        made = [(call.output, torch.relu(call.output))]
        later = [value for later in calls[index + 1:] for value in later.inputs]
        if isinstance(network.output, torch.Tensor):
            later.append(network.output)
        if not any(_derived_from(value, made) for value in later):
            unused.append(Trace.name_of(call.module))
    if not unused:
        return None
    unused = list(dict.fromkeys(unused))
    return unused[0] if len(unused) == 1 else ", ".join(unused[:-1]) + " and " + unused[-1]


def judge_train_eval(observation, seed=0):
    """The network trains; running statistics update in train mode; eval mode treats each
    example on its own."""
    name = "train_eval"
    o = observation
    if o.build_error:
        return Verdict(name, False, "Your network could not be built: %s." % o.build_error)
    if o.backward_problem:
        return Verdict(name, False, "Your network cannot be trained: %s." % o.backward_problem)
    if o.train_error:
        return Verdict(name, False, "forward raised %s in train mode: %s."
                       % o.train_error.partition(": ")[::2])
    if not o.statistics_moved:
        return Verdict(name, False, _no_running_statistics(o.network))
    if o.eval_error:
        return Verdict(name, False,
                       "In eval mode a batch of one example raised %s. After model.eval() "
                       "batch norm should use its running statistics, not the batch's; layers "
                       "created inside forward never switch to eval mode." % o.eval_error)
    whole = getattr(o.eval_network, "output", None)
    alone = getattr(o.alone_network, "output", None)
    if not (isinstance(whole, torch.Tensor) and isinstance(alone, torch.Tensor)):
        return Verdict(name, False, "In eval mode your network's forward did not return a "
                       "tensor.")
    if not _close(whole[:1], alone):
        return Verdict(name, False,
                       "In eval mode one example's output still depends on the rest of its "
                       "batch: some normalization uses batch statistics after model.eval(). "
                       "Use nn.BatchNorm1d layers created in __init__.")
    skipped = _skipped_in_eval(o)
    if skipped:
        return Verdict(name, False,
                       "In eval mode your network skips %s, which it calls in train mode. "
                       "After model.eval() batch norm must still normalize, with the running "
                       "statistics it gathered in training; without it the trained network "
                       "sees values on another scale. Call the layers the same way in both "
                       "modes." % skipped)
    changed = _statistics_changed_in_eval(o)
    if changed:
        return Verdict(name, False,
                       "In eval mode %s normalizes with statistics other than the running "
                       "statistics it gathered in training. After model.eval() batch norm "
                       "should use running_mean and running_var as they are, without "
                       "changing them." % changed)
    unused = _unused_in_eval(o.eval_network)
    if unused:
        return Verdict(name, False,
                       "In eval mode your network calls %s but does not use what it returns, "
                       "so nothing is normalized after model.eval(). Call the layers the same "
                       "way in both modes." % unused)
    why = unconfirmed(o.eval_network, seed) or unconfirmed(o.alone_network, seed,
                                                           input_batch(seed)[:1])
    if why:
        why = "in eval mode, " + why
        return Verdict(name, False, "The grader could not confirm what your code computed: "
                       "%s." % why, untrusted=why)
    # The running statistics must have moved in train mode: seen in the statistics the
    # eval-mode layers normalized with, which the judge recomputed their outputs from.
    if not _normalized_with_running_statistics(o.eval_network):
        return Verdict(name, False, _no_running_statistics(o.network))
    passed = Verdict(name, True, "Running statistics update in train mode, and in eval mode "
                     "each example is processed on its own (a batch of one works).")
    # The layers that moved must be the exercise's: one BatchNorm1d per block, as wide as
    # the network's hidden layers.
    if not any(m.settings.get("num_features") == HIDDEN_SIZE
               for m in Trace.of(o.network).registered_modules("BatchNorm1d")):
        why = "no registered BatchNorm1d normalizes the %d hidden values" % HIDDEN_SIZE
        return Verdict(name, False, "The grader could not confirm what your code computed: "
                       "%s." % why, untrusted=why)
    return confirmed(passed, o.network, seed)


# --- block_variances and plot_variance_growth ---------------------------------------------

def judge_block_variances(observation, seed=0):
    """block_variances(model, x) returns the six variances the test measures itself."""
    name = "block_variances"
    o = observation
    trace = Trace.of(o.network)
    if trace.error:
        return Verdict(name, False, "The plain ResidualNetwork could not be traced: %s."
                       % trace.error)
    if o.returned.error:
        return Verdict(name, False, o.returned.error)
    try:
        values = [float(v) for v in o.returned.value]
    except Exception:
        return Verdict(name, False, "block_variances should return a list of six numbers; "
                       "it returned %s." % (o.returned.value,))
    expected = trace.variances
    if len(values) == len(expected) and np.allclose(values, expected, rtol=1e-3):
        return confirmed(Verdict(name, True, "block_variances returns the six variances of one "
                                 "forward pass."), o.network, seed)
    redone = o.with_notebook_print_variance
    if (o.print_variance_records is False and redone is not None
            and len(redone) == len(expected) and np.allclose(redone, expected, rtol=1e-3)):
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
    return Verdict(name, False, "block_variances returned %s, but this model's six variances "
                   "on that batch are %s: the first pre-activation, then the stream after "
                   "each of the five residual connections. If your list starts with the "
                   "input's variance, leave it out and take the six after it. Otherwise, "
                   "measure one forward pass of the model you are given on the batch you "
                   "are given, without re-initializing it."
                   % (_fmt(values), _fmt(expected)))


SAMPLE_PLAIN = [2.0, 3.7, 6.8, 12.4, 22.9, 41.5]
SAMPLE_BN = [2.0, 2.6, 3.3, 4.0, 4.6, 5.3]


def plot_values(seed):
    """The two lists the plot check hands plot_variance_growth."""
    step = seed % 10
    return ([v * (1 + 0.1 * step) for v in SAMPLE_PLAIN],
            [v * (1 + 0.05 * step) for v in SAMPLE_BN])


def _matching_lines(axes, values):
    """Lines on `axes` whose y values are `values`."""
    return [line for line in axes.lines if len(line.y) == len(values)
            and np.allclose(np.asarray(line.y, float), values)]


def _stray_drawing(stray_axes, plain_values, batchnorm_values):
    """What the student drew on axes other than the one passed in (plt.plot and friends
    draw on whatever axes is current), as a list of names, or []."""
    drawn = []
    for axes in stray_axes:
        if _matching_lines(axes, plain_values) or _matching_lines(axes, batchnorm_values):
            drawn.append("curves")
        if axes.xlabel or axes.ylabel:
            drawn.append("axis labels")
        if axes.has_legend:
            drawn.append("legend")
        if axes.yscale != "linear":
            drawn.append("log scale")
    return sorted(set(drawn), key=drawn.index)


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
        x = np.asarray(line.x, float)
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
    labels = [line.label for line in (plain, batchnorm)]
    if any(label.startswith("_") for label in labels) or labels[0] == labels[1]:
        problems.append("give each curve its own label (ax.plot(..., label='plain'))")
    if not ax.has_legend:
        problems.append("add a legend (ax.legend()) so a reader can tell the curves apart")
    if not ax.xlabel or not ax.ylabel:
        problems.append("label both axes (ax.set_xlabel, ax.set_ylabel)")
    if log_scale and ax.yscale != "log":
        problems.append("with log_scale=True the y axis should be logarithmic "
                        "(ax.set_yscale('log'))")
    if not log_scale and ax.yscale != "linear":
        problems.append("with log_scale=False the y axis should stay linear")
    return problems


def _judge_plot(observation, seed, log_scale):
    name = "plot_log" if log_scale else "plot_linear"
    if observation.returned.error:
        return Verdict(name, False, observation.returned.error)
    plain_values, batchnorm_values = plot_values(seed)
    stray = _stray_drawing(observation.stray, plain_values, batchnorm_values)
    problems = _plot_problems(observation.axes, log_scale, plain_values, batchnorm_values,
                              stray)
    if problems:
        return Verdict(name, False, "Your %s plot needs work: %s." % (
            "log-scale" if log_scale else "linear", "; ".join(problems)))
    return Verdict(name, True, "The %s plot shows both curves, labeled, with a legend."
                   % ("log-scale" if log_scale else "linear"))


def judge_plot_linear(observation, seed=0):
    """plot_variance_growth(ax, plain, bn, False) draws a labeled figure on ax."""
    return _judge_plot(observation, seed, False)


def judge_plot_log(observation, seed=0):
    """plot_variance_growth(ax, plain, bn, True) draws it with a logarithmic y axis."""
    return _judge_plot(observation, seed, True)


# --- Why +0.68 per block ------------------------------------------------------------------

# Wrong derivations students reach, and what each one missed.
INCREMENT_SLIPS = (
    (0.5 - 1 / (2 * math.pi),
     "that is the variance of the ReLU's output. The He-initialized linear layer then "
     "doubles the variance it receives (He initialization is built to make up for the "
     "ReLU halving it)"),
    (1.0,
     "that would hold if the ReLU's output had mean zero. Its output is never negative, so "
     "its mean is not zero, and a variance subtracts the squared mean: work out E[relu(z)] "
     "(the hints above help) and use the ReLU's variance, not its mean square, before the "
     "doubling"),
    (0.5,
     "that is E[relu(z)^2], the ReLU's mean square. A variance subtracts the squared mean, "
     "E[relu(z)]^2 (the hints above help you find E[relu(z)]), and He initialization then "
     "doubles what is left"),
    (2.0,
     "that is the factor by which a plain block multiplies the variance, not what one "
     "batch-normalized branch adds"),
)


def judge_increment(returned, seed=0):
    """predicted_increment() is 1 - 1/pi, derived exactly rather than read off a plot."""
    name = "increment"
    if returned.error:
        return Verdict(name, False, returned.error)
    value = returned.value
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
                   "initialization: batch norm hands it a standard normal z; the ReLU's "
                   "output has variance E[relu(z)^2] - E[relu(z)]^2; the He-initialized "
                   "linear layer doubles that." % value)


def slope_sample(seed):
    """Six variances with linear growth and a bend, so that two-point answers differ."""
    generator = np.random.default_rng(20 + seed)
    return [float(v) for v in 2.0 + 0.7 * np.arange(6) + generator.normal(0, 0.15, 6)]


def judge_slope(returned, seed=0, expected=None):
    """measured_slope(variances) is the least-squares slope of the six values."""
    name = "slope"
    if returned.error:
        return Verdict(name, False, returned.error)
    value = returned.value
    if abs(value - expected.slope) < 1e-6:
        return Verdict(name, True, "measured_slope fits a straight line through all six "
                       "variances and returns its slope.")
    if abs(value - expected.intercept) < 1e-6:
        return Verdict(name, False, "measured_slope returned the intercept of the line; "
                       "np.polyfit(x, y, 1) returns [slope, intercept].")
    if abs(value - expected.two_point) < 1e-6:
        return Verdict(name, False, "measured_slope uses only the first and last values; "
                       "fit a line through all six by least squares (np.polyfit), so one "
                       "noisy block does not decide the answer.")
    if abs(value - expected.without_first) < 1e-6:
        return Verdict(name, False, "measured_slope leaves out the first pre-activation; fit "
                       "all six values, against block numbers 0 to 5.")
    return Verdict(name, False, "measured_slope returned %.4f for the variances %s; the "
                   "least-squares slope against block numbers 0 to 5 is %.4f."
                   % (value, _fmt(slope_sample(seed)), expected.slope))


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
            branch = nxt.linears[-1].output if nxt.linears else None
            left, right = nxt.add.inputs
            if branch is not None and _proportional(right, branch):
                leaving.append(left)
            elif branch is not None and _proportional(left, branch):
                leaving.append(right)
            else:
                return []
        else:
            head = [e for e in trace.events if trace._is(e, "Linear")
                    and e.output.shape[-1] == OUTPUT_SIZE]
            if not head:
                return []
            leaving.append(head[-1].inputs[0])
    return leaving


def _scale_between(total, leaving):
    """c such that leaving = c * total, or None."""
    if total.shape != leaving.shape:
        return None
    total, leaving = total.flatten().double(), leaving.flatten().double()
    norm = float(total @ total)
    if norm == 0 or not math.isfinite(norm):
        return None
    scale = float(leaving @ total / norm)
    return scale if torch.allclose(leaving, scale * total, rtol=1e-4, atol=1e-5) else None


def _proportional(a, b):
    """Whether a is a non-zero multiple of b."""
    return _scale_between(b, a) not in (None, 0)


def _rescaled_trace(observation, name):
    trace = Trace.of(observation)
    if trace.error:
        return None, Verdict(name, False, "Could not follow your forward pass: %s."
                             % trace.error)
    if trace.batchnorm_calls() or trace.registered_modules(*OTHER_NORM_KINDS):
        return None, Verdict(name, False, "ResidualNetworkRescaled normalizes: figure 11.6b "
                             "has no batch norm, only a rescaling of each block's sum by "
                             "1/sqrt(2).")
    leaving = _rescaled_streams(trace)
    if not leaving:
        return None, Verdict(name, False, "Could not find each block's stream: every block "
                             "should add its branch, linear(relu(x)), to the stream x.")
    return (trace, leaving), None


def _branch_rescaled(block):
    """Whether one operand of the block's addition is its Linear's output times 1/sqrt(2)."""
    if not block.linears:
        return False
    branch = block.linears[-1].output
    scales = [_scale_between(branch, operand) for operand in block.add.inputs]
    return any(scale is not None and abs(scale - RESCALE) < 1e-3 for scale in scales)


def judge_rescaled_blocks(observation, seed=0):
    """Each block passes on (x + linear(relu(x))) / sqrt(2)."""
    name = "rescaled_blocks"
    found, failed = _rescaled_trace(observation, name)
    if failed:
        return failed
    trace, leaving = found
    found = {}
    for index, (block, out) in enumerate(zip(trace.blocks, leaving), start=1):
        scale = _scale_between(block.add.output, out)
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
                       "sum, stream and branch together, by 1/sqrt(2), which halves the "
                       "variance the block nearly doubled." % details)
    return confirmed(Verdict(name, True, "Every block passes on (x + linear(relu(x))) / "
                             "sqrt(2)."), observation, seed)


def judge_rescaled_flat(observation, seed=0):
    """The rescaled network's variance stays within a small factor over five blocks."""
    name = "rescaled_flat"
    found, failed = _rescaled_trace(observation, name)
    if failed:
        return failed
    trace, leaving = found
    variances = [trace.variances[0]] + [stream_variance(v) for v in leaving]
    ratio = variances[-1] / variances[0]
    low, high = RESCALED_BAND
    measured = "measured at initialization: %s" % _fmt(variances)
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
    return confirmed(Verdict(name, True, how), observation, seed)


# --- Running statistics of BatchNorm1d -----------------------------------------------------

def stat_batches(seed, features=6):
    generator = torch.Generator().manual_seed(30_000 + seed)
    return [2.0 + 3.0 * torch.randn(size, features, generator=generator)
            for size in (50, 20, 35)]


def momentum_for(seed):
    # Never the default 0.1, so an answer that ignores the argument fails on every seed.
    return 0.25 + 0.1 * (seed % 5)


def _judge_running(name, which, observation, seed, expected):
    returned = observation.returned
    batches, momentum = stat_batches(seed), momentum_for(seed)
    if returned.error and not observation.batch_norm_used:
        return Verdict(name, False, returned.error)
    if returned.error:  # the error is batch norm's refusal
        used = observation.batch_norm_used[0]
        return Verdict(name, False, "running_statistics has %s compute the statistics for it: "
                       "the TODO asks you to compute them yourself, without nn.BatchNorm1d. "
                       "For each batch in turn, running = (1 - momentum) * running + momentum "
                       "* batch_statistic, starting from mean 0 and variance 1 (and the "
                       "variance is the unbiased one)." % (
                           "nn." + used if used[:1].isupper() else "torch's batch_norm"))
    mean, var = returned.value
    features = batches[0].shape[1]
    if mean.numel() != features or var.numel() != features:
        return Verdict(name, False, "running_statistics returned %d and %d numbers for batches "
                       "of %d features: keep one statistic per feature (average over the "
                       "batch, dim 0)." % (mean.numel(), var.numel(), features))
    got = (mean, var)[0 if which == "mean" else 1].double()
    label = "running_" + which

    def matches(statistics):
        return torch.allclose(got, torch.tensor(getattr(statistics, which), dtype=torch.float64),
                              rtol=1e-4, atol=1e-5)

    truth = getattr(expected.batchnorm, which)
    if matches(expected.batchnorm):
        return Verdict(name, True, "%s matches what nn.BatchNorm1d keeps (tested with momentum %g)."
                       % (label, momentum))
    if which == "var" and matches(expected.biased):
        why = ("you average the biased batch variance (divide by N). BatchNorm1d normalizes "
               "with that one, but stores the unbiased one (divide by N - 1, "
               "batch.var(dim=0, unbiased=True)) in running_var")
    elif which == "var" and matches(expected.start_zero):
        why = "running_var starts at 1, not 0 (a layer that has seen nothing assumes unit " \
              "variance)"
    elif matches(expected.reversed_momentum):
        why = ("the momentum weighs the new batch: running = (1 - momentum) * running + "
               "momentum * batch_statistic")
    elif momentum != 0.1 and matches(expected.default_momentum):
        why = "use the momentum argument (it was %g here), not a fixed 0.1" % momentum
    elif matches(expected.cumulative):
        why = ("you take the plain average of the batches (what momentum=None does); with a "
               "momentum, each update keeps (1 - momentum) of the old value")
    else:
        why = ("for each batch in turn, running = (1 - momentum) * running + momentum * "
               "batch_statistic, starting from mean 0 and variance 1")
    return Verdict(name, False, "Your %s is %s; nn.BatchNorm1d holds %s after these batches: "
                   "%s." % (label, _fmt(got[:3]) + ", ...", _fmt(truth[:3]) + ", ...", why))


def judge_running_mean(observation, seed=0, expected=None):
    """running_statistics(batches, momentum) gives BatchNorm1d's running_mean."""
    return _judge_running("running_mean", "mean", observation, seed, expected)


def judge_running_var(observation, seed=0, expected=None):
    """running_statistics(batches, momentum) gives BatchNorm1d's (unbiased) running_var."""
    return _judge_running("running_var", "var", observation, seed, expected)


# --- Training with and without batch norm ---------------------------------------------------

class Affine(nn.Module):
    """A linear classifier without nn.Linear, so weights_init leaves its start alone."""

    def __init__(self, seed):
        super().__init__()
        generator = torch.Generator().manual_seed(40_000 + seed)
        self.weight = nn.Parameter(0.1 * torch.randn(OUTPUT_SIZE, INPUT_SIZE,
                                                     generator=generator))
        self.bias = nn.Parameter(torch.zeros(OUTPUT_SIZE))

    def forward(self, x):
        return x @ self.weight.t() + self.bias


def parameters_of(layer):
    """Parameters of an Affine or nn.Linear, as plain numbers."""
    return Parameters(weight=layer.weight.detach().double().tolist(),
                      bias=layer.bias.detach().double().tolist())


def _parameters_match(got, want):
    try:
        return all(np.allclose(np.asarray(getattr(got, part), float),
                               np.asarray(getattr(want, part), float), rtol=1e-3, atol=1e-5)
                   for part in ("weight", "bias"))
    except (TypeError, ValueError, AttributeError):
        return False


def _moved(observation, seed):
    """Whether the model train_model was given holds other parameters after the
    full-batch run: read from its parameters, which the judge compares with its start."""
    return (observation.trained is not None
            and not _parameters_match(observation.trained, parameters_of(Affine(seed))))


def restart_start(seed):
    """Where the restart run's model starts: random values, so that a train_model cannot
    tell this run from another by its start, and biases far from zero."""
    generator = torch.Generator().manual_seed(60_000 + seed)
    return Parameters(weight=(1.0 + torch.rand(OUTPUT_SIZE, INPUT_SIZE, generator=generator))
                      .double().tolist(),
                      bias=(1.0 + torch.rand(OUTPUT_SIZE, generator=generator)).double().tolist())


def _restarted(observation, seed):
    """Whether train_model re-initialized the model it was given the way weights_init does
    (weights moved off their start, biases zero), and trained from there: at lr 0 its one
    loss is the loss of those parameters, which the judge recomputes, so parameters that
    train_model did not start from disagree with it."""
    o = observation
    x, y = training_data(seed)
    try:
        weight = torch.tensor(o.restarted_to.weight, dtype=torch.float64)
        bias = torch.tensor(o.restarted_to.bias, dtype=torch.float64)
        start = torch.tensor(restart_start(seed).weight, dtype=torch.float64)
        if torch.allclose(weight, start) or bool(torch.any(bias != 0)):
            return False
        loss = float(F.cross_entropy(x.double() @ weight.t() + bias, y))
        return bool(np.isclose(float(o.restart.value[0]), loss, rtol=1e-3, atol=1e-5))
    except (TypeError, ValueError, AttributeError, IndexError, RuntimeError):
        return False


def training_data(seed, size=400):
    generator = torch.Generator().manual_seed(50_000 + seed)
    x = torch.randn(size, INPUT_SIZE, generator=generator)
    y = (x[:, :OUTPUT_SIZE].argmax(1) + (x[:, 0] > 1.5).long()) % OUTPUT_SIZE
    return x, y


# Not the default of 100, so a train_model that ignores batch_size is seen; 400 examples
# make 5 batches an epoch.
BATCHES_BATCH_SIZE = 80
FULL_BATCH_EPOCHS, FULL_BATCH_LR = 4, 0.5
OTHER_LR = 0.05  # a learning rate students hard-code instead of using lr
ALIKE_EPOCHS, ALIKE_LR, ALIKE_MOST_STEPS = 2, 0.5, 10
BATCHES_EPOCHS = 2  # the run on batches of distinct examples, at FULL_BATCH_LR


def alike_data(seed, size=400):
    """`size` copies of one example: any batch of them gives the same step, so the losses
    of a run on them count its steps, whatever the batches or their order."""
    x, y = training_data(seed, size=1)
    return x.repeat(size, 1), y.repeat(size)


def train_model_ran(observation):
    """Whether train_model ran through every call the check made: only then is the slow
    part of the comparison worth running. (Whether it is right is the grader's to say.)"""
    o = observation
    return all(r is not None and r.error is None for r in (
        o.at_rest, o.full_batch, o.alike, o.batches, o.restart)) and o.trained is not None


def _steps_verdict(name, examples, per_epoch, steps, losses, what=None):
    if what:
        pass
    elif steps == 1:
        what = ("one step per epoch, on all %d examples at once: it ignores batch_size "
                "and trains on the full batch" % examples)
    elif steps:
        what = "%d steps per epoch" % steps
    else:
        what = ("a number of steps that differs from epoch to epoch (its losses were %s)"
                % _fmt(losses))
    return Verdict(name, False, "With %d examples and batch_size=%d, each epoch should "
                   "take %d optimizer steps, one per batch; train_model took %s. As the "
                   "TODO says, load shuffled batches with DataLoader(TensorDataset("
                   "x_train, y_train), batch_size=batch_size, shuffle=True) and take "
                   "one step per batch." % (examples, BATCHES_BATCH_SIZE, per_epoch, what))


def judge_train_model(observation, seed=0, expected=None):
    """train_model: He start, SGD with momentum 0.9 at the given lr, mean loss per epoch,
    one step per batch."""
    name = "train_model"
    o, e = observation, expected
    x, _ = training_data(seed)
    if o.at_rest.error:
        return Verdict(name, False, o.at_rest.error)
    # With lr 0 nothing moves, so every epoch's mean batch loss is the whole set's loss.
    losses = o.at_rest.value
    per_epoch = math.ceil(len(x) / BATCHES_BATCH_SIZE)
    if not np.allclose(losses, e.at_rest, rtol=1e-4):
        if np.allclose(losses, per_epoch * e.at_rest, rtol=1e-4):
            why = "you add up the batch losses; return their mean"
        else:
            why = ("each number should be the mean cross-entropy loss "
                   "(nn.CrossEntropyLoss) over the epoch's batches")
        return Verdict(name, False, "With lr=0 the model never changes, so every epoch's "
                       "loss is %.4f; train_model returned %s: %s." % (e.at_rest, _fmt(losses),
                                                                       why))
    if o.full_batch.error:
        return Verdict(name, False, o.full_batch.error)
    if not _moved(o, seed):
        return Verdict(name, False, "train_model did not change the model it was given: "
                       "train that model in place (its parameters, through the optimizer).")
    # The steps are counted from the losses, which the grader recomputes, not from
    # anything the kernel counted. A count that differs is said first: it explains the
    # full-batch losses too (batch_size ignored there as well).
    if o.alike.error:
        return Verdict(name, False, o.alike.error)
    steps = next((k for k, other in enumerate(e.alike_by_steps, start=1)
                  if np.allclose(o.alike.value, other, rtol=1e-3, atol=1e-5)), None)
    if steps is not None and steps != per_epoch:
        return _steps_verdict(name, len(x), per_epoch, steps, o.alike.value)
    # On examples that differ, steps on shuffled batches follow no fixed path; steps that
    # each take the whole set follow exactly one, which the judge recomputes.
    if o.batches is None or o.batches.error:
        return Verdict(name, False, o.batches.error if o.batches else
                       "train_model was not run on batches of %d." % BATCHES_BATCH_SIZE)
    if steps == per_epoch and np.allclose(o.batches.value, e.whole_set_steps, rtol=1e-4,
                                          atol=1e-6):
        return _steps_verdict(name, len(x), per_epoch, None, o.alike.value,
                              "%d steps per epoch, each on all %d examples at once: it "
                              "ignores batch_size" % (steps, len(x)))
    losses = o.full_batch.value
    if not np.allclose(losses, e.sgd, rtol=1e-3, atol=1e-5):
        slips = ((e.no_momentum,
                  "this is SGD without momentum (or with an optimizer made afresh every "
                  "epoch): create torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9) "
                  "once, before the loop"),
                 (e.no_zero_grad,
                  "the gradients pile up from step to step: call optimizer.zero_grad() "
                  "before each backward pass"),
                 (e.other_lr,
                  "this is learning rate %g: use the lr argument" % OTHER_LR))
        why = next((text for other, text in slips
                    if np.allclose(losses, other, rtol=1e-3, atol=1e-5)),
                   "train with torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9), "
                   "zero_grad, loss.backward() and optimizer.step() for each batch")
        return Verdict(name, False, "From the same start, full-batch SGD with momentum 0.9 "
                       "at lr=%g gives the losses %s; train_model gave %s: %s." % (
                           FULL_BATCH_LR, _fmt(e.sgd), _fmt(losses), why))
    if steps is None:
        return _steps_verdict(name, len(x), per_epoch, steps, o.alike.value)
    if not _parameters_match(o.trained, e.trained):
        return Verdict(name, False, "train_model returned the right losses, but the model it "
                       "was given does not hold the weights they were computed with: train "
                       "that model in place, not a copy of it.")
    if o.restart.error:
        return Verdict(name, False, o.restart.error)
    if not _restarted(o, seed):
        return Verdict(name, False, "train_model should start with "
                       "model.apply(weights_init), as run_one_step_of_model does, so "
                       "both networks train from He initialization.")
    return Verdict(name, True, "train_model starts from He initialization, steps SGD with "
                   "momentum 0.9 at the lr it is given, and returns each epoch's mean loss.")


# Measured on the first 2000 MNIST-1D examples (3 epochs, batches of 100, SGD with momentum
# 0.9, checks._PlainNetwork): at lr 0.1 the plain network's loss overflows to nan for 30
# seeds out of 30, batch norm's ends at 1.73-2.15.
COMPARISON_LR, COMPARISON_EPOCHS, COMPARISON_EXAMPLES = 0.1, 3, 2000


def judge_training_comparison(observation, seed=0, expected=None):
    """With train_model, batch norm trains at a learning rate where the plain net diverges."""
    name = "training_comparison"
    # A train_model that is off (no momentum, say) makes the outcome depend on the seed:
    # then the experiment says nothing, and this check says so whatever the seed.
    loop = judge_train_model(observation.train_model, seed, expected)
    if not loop.passed:
        return Verdict(name, False, "This comparison runs your train_model, which is not "
                       "right yet (see its check above): " + loop.message)
    for returned in (observation.plain, observation.batchnorm):
        if returned.error:
            return Verdict(name, False, returned.error)
    plain, batchnorm = observation.plain.value, observation.batchnorm.value
    plain_end = plain[-1] if math.isfinite(plain[-1]) else float("inf")
    story = ("in the check's own run (smaller networks, fewer epochs), at lr %g the plain "
             "network's loss went %s, batch norm's %s"
             % (COMPARISON_LR, _fmt(plain), _fmt(batchnorm)))
    if not all(math.isfinite(v) for v in batchnorm) or batchnorm[-1] >= batchnorm[0]:
        return Verdict(name, False, "With your train_model the batch-norm network did not "
                       "learn: %s. Its loss should fall from epoch to epoch." % story)
    if batchnorm[-1] >= plain_end:
        return Verdict(name, False, "With your train_model %s: the plain network did not "
                       "fall behind, though from He initialization at this learning rate it "
                       "should diverge. Check that train_model starts from weights_init and "
                       "uses SGD with momentum 0.9 at the lr it is given." % story)
    if not math.isfinite(plain[-1]):
        return Verdict(name, True, "Batch norm trains where the plain network cannot: %s."
                       % story)
    return Verdict(name, True, "Batch norm trains better than the plain network at this "
                   "learning rate: %s." % story)


# Each check's judge: judge_<check> (testcells.py declares the checks).
JUDGES = {cell.check: globals()["judge_" + cell.check] for cell in testcells.TEST_CELLS}


# The checks that compare with what a right answer gives (coursekit.authoring.reference): those
# whose judge takes it.
EXPECTING = frozenset(check for check, function in JUDGES.items()
                      if "expected" in function.__code__.co_varnames[
                          :function.__code__.co_argcount])


def judge(check, observation, seed, expected=None):
    """The verdict of `check` on one observation, whatever the observation holds.
    `expected`: what a right answer gives on `seed`'s inputs, for the checks that compare
    with one (coursekit.authoring.reference)."""
    if isinstance(observation, Unavailable):
        return Verdict(check, False, "%s: %s" % (observation.ename, observation.message),
                       raised=(observation.ename[:100], observation.message))
    try:
        if check in EXPECTING:
            return JUDGES[check](observation, seed, expected)
        return JUDGES[check](observation, seed)
    except Exception as error:  # a record built to break the judge fails, and says so
        why = "its record could not be read (%s)" % type(error).__name__
        return Verdict(check, False, "The grader could not confirm what your code computed: "
                       "%s." % why, untrusted=why)
