"""The observing half of the checks for Notebook 11.3: what the student's code *does*.

One copy of this file serves everyone. The notebook embeds it verbatim in a locked cell,
as the module ``udl_bn_checks``, beside the judging half (judge.py, as ``udl_bn_judge``);
the visible self-checks call ``check_*`` from there, and a Colab student needs nothing
else. The course's tests import both. The grader sends a fresh copy of both into the
student's kernel with every graded test cell, asks only for observations
(``observations``), and decides the grade in its own process with judge.py.

The observers never read source text, attribute names or anything the student prints.
They build the student's model themselves, initialize it the way the notebook does (He,
biases zero), trace one forward pass (each Linear and normalization call with its
parameters, and every residual addition, on copies of the values) and record what the
student's functions return for inputs the judge chose. Every observer seeds its own random
numbers and leaves the caller's random state untouched.
"""
import contextlib
import copy
import hashlib
import io
import math
import sys
import types
import warnings

import numpy as np
import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# In the package, the package's judge; in the notebook, the module the helpers cell (or the
# grader's request) registered under this name.
if __name__.startswith("coursekit."):
    from coursekit.kernel import judge
else:
    import udl_bn_judge as judge

Verdict, input_batch, stream_variance = judge.Verdict, judge.input_batch, judge.stream_variance
INPUT_SIZE, OUTPUT_SIZE, HIDDEN_SIZE = judge.INPUT_SIZE, judge.OUTPUT_SIZE, judge.HIDDEN_SIZE
N_BLOCKS = judge.N_BLOCKS

# numpy's OpenBLAS takes its work buffer (32 MB of address space) at the first LAPACK call
# (np.polyfit, np.linalg) and ends the process, exit(1), when it cannot get it. Take it now,
# while the helpers cell runs, so that a cell that used up the address space costs only
# its own points.
np.polyfit(np.arange(3.0), np.arange(3.0), 1)

KINDS = {"Linear": nn.Linear, "BatchNorm1d": nn.BatchNorm1d, "LayerNorm": nn.LayerNorm,
         "GroupNorm": nn.GroupNorm, "InstanceNorm1d": nn.InstanceNorm1d,
         "LocalResponseNorm": nn.LocalResponseNorm}
TRACED_MODULES = tuple(KINDS.values())
# `x + y`, `x += y`, `torch.add(x, y)` and `x.add(y)` all reach torch under these names.
ADD_NAMES = {"add", "add_", "__add__", "__radd__", "__iadd__"}
# What each kind's computation depends on besides its input.
SETTINGS = ("eps", "normalized_shape", "num_groups", "size", "alpha", "beta", "k",
            "num_features")


# Trace and profile hooks the student's code set while it was observed (unhooked()).
HOOKED = []


def unhooked():
    """Turn off any trace or profile hook the student's code just set, before the observer
    goes on, and remember it for the grader: such a hook would see the observer's own
    calls and returns."""
    HOOKED.extend(suspend_hooks())


@contextlib.contextmanager
def quiet():
    """Swallow prints and warnings: stderr output in a test cell would zero its points."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        unhooked()


@contextlib.contextmanager
def seeded(seed):
    """Seed torch for the block, then give the caller back its own random state."""
    try:
        with torch.random.fork_rng(devices=[]):
            # The CPU generator alone, the one fork_rng gives back: torch.manual_seed would
            # also seed CUDA's, outside that, and on a machine without CUDA it formats the
            # whole call stack for a seeding it queues (about a millisecond, many times per
            # check).
            torch.random.default_generator.manual_seed(seed)
            yield
    finally:
        unhooked()


def he_init(model):
    """The notebook's weights_init, kept here so a student's edit cannot change a verdict."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def said(error, first_line=False):
    """What `error` says, after its kind: "ValueError: ..."."""
    text = str(error).split("\n")[0] if first_line else str(error)
    return "%s: %s" % (type(error).__name__, text)


def call_student(function_name, call, shown_call=None):
    """judge.Returned of `call()`: its value, or a message naming what it raised."""
    try:
        with quiet():
            return judge.Returned(value=call())
    except NotImplementedError:
        return judge.Returned(error="%s still raises NotImplementedError: replace that line "
                              "with your code." % function_name)
    except Exception as error:  # the student's code can raise anything
        return judge.Returned(error="%s raised %s." % (shown_call or function_name,
                                                         said(error)[:2000]))


def _kind(module):
    return next((kind for kind, cls in KINDS.items() if isinstance(module, cls)),
                type(module).__name__)


class _Modules:
    """judge.ModuleInfo of each module met, registered in `model` or not."""

    def __init__(self, model):
        self.model = model
        self.known = {}
        self.alive = []  # keeps modules made in forward alive, so their ids stay theirs
        parameters = {id(p) for p in model.parameters()}
        self.names = {id(m): name for name, m in model.named_modules()}
        for name, module in model.named_modules():
            if isinstance(module, TRACED_MODULES):
                self.info(module, parameters)

    def info(self, module, parameters=None):
        key = id(module)
        if key not in self.known:
            self.alive.append(module)
            weight = getattr(module, "weight", None)
            self.known[key] = judge.ModuleInfo(
                key=len(self.known), kind=_kind(module), class_name=type(module).__name__,
                name=self.names.get(key),
                affine=bool(getattr(module, "affine", getattr(module, "elementwise_affine",
                                                              False))),
                track_running_stats=bool(getattr(module, "track_running_stats", False)),
                weight_registered=(weight is None or parameters is None
                                   or id(weight) in parameters),
                settings={name: _setting(getattr(module, name)) for name in SETTINGS
                          if hasattr(module, name)})
        return self.known[key]

    def registered(self):
        return [info for key, info in self.known.items() if info.name is not None]


def _setting(value):
    return list(value) if isinstance(value, tuple) else value


class _AddRecorder(TorchFunctionMode):
    """Records every tensor addition with copies of its operands and result."""

    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        operands = None
        if (getattr(func, "__name__", "") in ADD_NAMES and len(args) >= 2
                and all(isinstance(a, torch.Tensor) for a in args[:2])):
            # Copy before the call: an in-place `x += y` overwrites its left operand.
            operands = [a.detach().clone() for a in args[:2]]
        result = func(*args, **kwargs)
        if operands is not None and isinstance(result, torch.Tensor):
            self.calls.append(judge.Call("add", None, operands, result.detach().clone()))
        return result


def _parameters_of(module):
    found = {}
    for name in ("weight", "bias", "running_mean", "running_var"):
        value = getattr(module, name, None)
        if isinstance(value, torch.Tensor):
            found[name] = value.detach().clone()
    return found


def record_forward(model, x, modules):
    """Run model(x), recording Linear and normalization calls and every addition, in order.

    A global hook sees every module call, including modules created inside forward,
    which per-model hooks would miss. Returns (calls, what model(x) returned, error
    message or None).
    """
    calls = []
    returned = None

    def hook(module, inputs, output):
        if (isinstance(module, TRACED_MODULES) and inputs
                and isinstance(inputs[0], torch.Tensor) and isinstance(output, torch.Tensor)):
            calls.append(judge.Call("module", modules.info(module),
                                    [inputs[0].detach().clone()], output.detach().clone(),
                                    training=bool(module.training),
                                    params=_parameters_of(module)))

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        with torch.no_grad(), _AddRecorder(calls):
            returned = model(x)
    except Exception as error:
        return calls, None, "forward raised " + said(error)
    finally:
        unhooked()
        handle.remove()
    if isinstance(returned, torch.Tensor):
        returned = returned.detach().clone()
    else:
        returned = None
    return calls, returned, None


def _build(model_class, seed):
    """A fresh, He-initialized model in train mode, or the message of what went wrong."""
    try:
        try:
            model = model_class(INPUT_SIZE, OUTPUT_SIZE, HIDDEN_SIZE)
        finally:
            unhooked()
        he_init(model)
        model.train()
        return model, None
    except Exception as error:  # a student's constructor can raise anything
        return None, "building %s(%d, %d, %d) raised %s" % (
            getattr(model_class, "__name__", "the model"), INPUT_SIZE, OUTPUT_SIZE,
            HIDDEN_SIZE, said(error))


def traced(model_class, seed=0):
    """(judge.NetworkObservation, the model it traced or None)."""
    observation = judge.NetworkObservation(getattr(model_class, "__name__", "the model"))
    with seeded(seed), quiet():
        model, observation.build_error = _build(model_class, seed)
        if model is None:
            return observation, None
        modules = _Modules(model)
        observation.calls, observation.output, observation.forward_error = record_forward(
            model, input_batch(seed), modules)
        observation.modules = modules.registered()
    return observation, model


def observe_network(model_class, seed=0):
    return traced(model_class, seed)[0]


def _backward_problem(model_class, seed):
    """Why one training step's backward pass fails on a fresh model, or None (a model that
    cannot even be built is the caller's to report)."""
    with seeded(seed), quiet():
        model, _ = _build(model_class, seed)
        if model is None:
            return None
        try:
            model(input_batch(seed)).square().mean().backward()
        except Exception as error:
            text = str(error).split("\n")[0]
            if "inplace" in text or "in-place" in text:
                return ("its backward pass fails, because a value it needs was "
                        "\"modified by an inplace operation\". An in-place addition such as "
                        "x += branch(x) overwrites the values batch norm saved to compute its "
                        "gradient; write x = x + branch(x)")
            return "a training step fails: " + said(error, first_line=True)
    return None


def observe_train_eval(model_class, seed=0):
    observation = judge.TrainEvalObservation(network=observe_network(model_class, seed))
    o = observation
    with seeded(seed), quiet():
        model, error = _build(model_class, seed)
        if model is None:
            o.build_error = error.split(" raised ", 1)[1]
            return o
    o.backward_problem = _backward_problem(model_class, seed)
    if o.backward_problem:
        return o
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
            o.train_error = said(error)
            return o
        o.statistics_moved = any(not torch.equal(b, m.running_mean)
                                 for b, m in zip(before, layers))
        if not o.statistics_moved:
            return o
        o.trained_statistics = {
            name: judge.Statistics(m.running_mean.double().tolist(), m.running_var.double().tolist())
            for name, m in model.named_modules() if any(m is layer for layer in layers)}
        model.eval()
        batch = input_batch(seed)
        # Both eval-mode passes are traced, so that the judge recomputes each norm layer's
        # output from its running statistics (a layer that runs only in train mode is seen
        # missing) and compares the lone example with the batch from values it confirmed.
        o.eval_network, error = _traced_again(model, batch, o.network.model_name)
        if error is not None:
            o.eval_error = error
            return o
        try:
            # Another batch first: a layer that kept the last batch's statistics for
            # eval mode would then treat the lone example with another batch's.
            with torch.no_grad():
                model(input_batch(seed + 7))
        except Exception as error:
            o.eval_error = said(error, first_line=True)
            return o
        o.alone_network, o.eval_error = _traced_again(model, batch[:1], o.network.model_name)
    return o


def _traced_again(model, batch, model_name):
    """(judge.NetworkObservation of model(batch) as the model is now, error or None)."""
    network = judge.NetworkObservation(model_name)
    modules = _Modules(model)
    network.calls, network.output, error = record_forward(model, batch, modules)
    network.modules = modules.registered()
    if error is not None:
        error = error.split("forward raised ", 1)[-1].split("\n")[0]
    return network, error


# --- block_variances and plot_variance_growth ---------------------------------------------

def observe_block_variances(block_variances, plain_model_class, seed=0):
    network, model = traced(plain_model_class, seed)
    observation = judge.BlockVariancesObservation(network, judge.Returned())
    if model is None or network.forward_error:
        return observation
    with seeded(seed):
        returned = call_student("block_variances",
                                lambda: block_variances(copy.deepcopy(model), input_batch(seed)),
                                "block_variances(model, x_batch)")
    observation.returned = returned
    if returned.error:
        return observation
    try:
        returned.value = [float(v) for v in returned.value]
    except Exception:
        observation.returned = judge.Returned(
            error="block_variances should return a list of six numbers; it returned %r."
            % (returned.value,))
        return observation
    expected = judge.Trace.of(network).variances
    if not (len(returned.value) == len(expected)
            and np.allclose(returned.value, expected, rtol=1e-3)):
        observation.print_variance_records, observation.with_notebook_print_variance = \
            _with_notebook_print_variance(block_variances, plain_model_class, model, seed)
    return observation


def _with_notebook_print_variance(block_variances, plain_model_class, model, seed):
    """Whether print_variance, perhaps redefined by the student, still records in
    variance_log; if not, what block_variances returns with the notebook's print_variance
    put back. Looks at the namespace the plain network's forward runs in (the notebook's),
    calls print_variance there on a probe, and puts everything back as it was."""
    namespace = getattr(getattr(plain_model_class, "forward", None), "__globals__", None)
    if not isinstance(namespace, dict):
        return None, None
    log, current = namespace.get("variance_log"), namespace.get("print_variance")
    if not isinstance(log, list) or not callable(current):
        return None, None
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
        return True, None

    def notebook_print_variance(name, data):
        log.append((name, stream_variance(data)))

    namespace["print_variance"] = notebook_print_variance
    try:
        with seeded(seed), quiet():
            values = [float(v) for v in block_variances(copy.deepcopy(model), input_batch(seed))]
    except Exception:
        return False, None
    finally:
        namespace["print_variance"] = current
        log[:] = kept
    return False, values


def _axes_info(axes):
    return judge.AxesInfo(
        lines=[judge.LineInfo(x=[float(v) for v in np.asarray(line.get_xdata(), float)],
                              y=[float(v) for v in np.asarray(line.get_ydata(), float)],
                              label=str(line.get_label())) for line in axes.get_lines()],
        has_legend=axes.get_legend() is not None, xlabel=str(axes.get_xlabel()),
        ylabel=str(axes.get_ylabel()), yscale=str(axes.get_yscale()))


def observe_plot(plot_variance_growth, log_scale, seed=0):
    import matplotlib.pyplot as plt

    plain_values, batchnorm_values = judge.plot_values(seed)
    # As in the notebook's figure, the axes passed in is not pyplot's current axes: a
    # second figure is current, so whatever plt.plot draws lands there, not on ax.
    previous = plt.gcf() if plt.get_fignums() else None
    before = set(plt.get_fignums())
    figure, ax = plt.subplots()
    decoy = plt.figure()
    decoy.add_subplot()
    try:
        returned = call_student("plot_variance_growth", lambda: plot_variance_growth(
            ax, list(plain_values), list(batchnorm_values), log_scale))
        observation = judge.PlotObservation(judge.Returned(error=returned.error))
        if returned.error:
            return observation
        others = [decoy] + [plt.figure(number) for number in plt.get_fignums()
                            if number not in before | {figure.number, decoy.number}]
        observation.axes = _axes_info(ax)
        observation.stray = [_axes_info(a) for f in others for a in f.axes]
        return observation
    finally:
        for number in plt.get_fignums():
            if number not in before:
                plt.close(number)
        if previous is not None and plt.fignum_exists(previous.number):
            plt.figure(previous.number)


# --- Why +0.68 per block ------------------------------------------------------------------

def observe_increment(predicted_increment, seed=0):
    returned = call_student("predicted_increment", lambda: float(predicted_increment()))
    if returned.error and "NotImplementedError" not in returned.error:
        returned.error = ("predicted_increment() should return one number; it "
                          + returned.error.split(" ", 1)[1])
    elif returned.error:
        returned.error = returned.error.replace("your code", "your derivation")
    return returned


def observe_slope(measured_slope, seed=0):
    returned = call_student("measured_slope",
                            lambda: measured_slope(list(judge.slope_sample(seed))),
                            "measured_slope(variances)")
    if returned.error:
        return returned
    try:
        return judge.Returned(value=float(returned.value))
    except Exception:
        return judge.Returned(error="measured_slope should return one number, the slope; it "
                              "returned %r. (np.polyfit returns the slope first, then the "
                              "intercept.)" % (returned.value,))


# --- Running statistics of BatchNorm1d -----------------------------------------------------

BATCH_NORM_REFUSED = ("batch norm is switched off while this check runs: the TODO asks "
                      "for the running statistics computed by hand")


class _BatchNormRefuser(TorchFunctionMode):
    """Refuses every batch-norm computation torch is asked for (nn.BatchNorm1d and its
    relatives, F.batch_norm, torch.batch_norm): a function that has batch norm compute
    the statistics gets an error, not the numbers. What was refused is noted, for the
    message only; no record of it decides anything."""

    NAMES = {"batch_norm", "native_batch_norm", "_batch_norm_impl_index", "instance_norm"}

    def __init__(self):
        super().__init__()
        self.used = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.NAMES:
            self.used.append(func.__name__)
            raise RuntimeError(BATCH_NORM_REFUSED)
        return func(*args, **(kwargs or {}))


class _BatchNormDispatchRefuser(TorchDispatchMode):
    """The same refusal below torch's Python layer, where every batch-norm kernel is
    called: TorchScript, `layer.forward` with torch functions switched off, and private
    entry points such as torch.batch_norm_update_stats all reach it."""

    def __init__(self, used):
        super().__init__()
        self.used = used

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "batch_norm" in str(func):
            self.used.append(str(func))
            raise RuntimeError(BATCH_NORM_REFUSED)
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def _refusing_batch_norm():
    refuser = _BatchNormRefuser()

    def hook(module, inputs):
        if isinstance(module, nn.modules.batchnorm._NormBase):
            refuser.used.append(type(module).__name__)
            raise RuntimeError(BATCH_NORM_REFUSED)

    handle = nn.modules.module.register_module_forward_pre_hook(hook)
    try:
        with refuser, _BatchNormDispatchRefuser(refuser.used):
            yield refuser.used
    finally:
        handle.remove()


def observe_running(running_statistics, seed=0):
    batches, momentum = judge.stat_batches(seed), judge.momentum_for(seed)
    with torch.no_grad(), _refusing_batch_norm() as batch_norm_used:
        returned = call_student(
            "running_statistics",
            lambda: running_statistics([b.clone() for b in batches], momentum=momentum),
            "running_statistics(batches, momentum=%g)" % momentum)
    observation = judge.RunningObservation(returned, list(batch_norm_used))
    if returned.error:
        return observation
    try:
        returned.value = [torch.as_tensor(v, dtype=torch.float64).detach().flatten().clone()
                          for v in returned.value]
        if len(returned.value) != 2:
            raise ValueError
    except Exception:
        observation.returned = judge.Returned(
            error="running_statistics should return two tensors, (running_mean, "
            "running_var); it returned %r." % (type(returned.value).__name__,))
    return observation


# --- Training with and without batch norm ---------------------------------------------------

def _train(train_model, model, x, y, n_epochs, lr, batch_size):
    """judge.Returned of train_model(...): one float per epoch, or what went wrong."""
    returned = call_student("train_model", lambda: train_model(
        model, x, y, n_epochs, lr, batch_size=batch_size),
        "train_model(model, x_train, y_train, %d, %g, batch_size=%d)" % (n_epochs, lr,
                                                                          batch_size))
    if returned.error:
        return returned
    try:
        losses = [float(v) for v in returned.value]
    except Exception:
        return judge.Returned(error="train_model should return a list of numbers, one mean "
                              "loss per epoch; it returned %r." % (type(returned.value).__name__,))
    if len(losses) != n_epochs:
        return judge.Returned(error="train_model returned %d numbers for %d epochs; return one "
                              "per epoch, the mean training loss over that epoch's batches."
                              % (len(losses), n_epochs))
    return judge.Returned(value=losses)


def observe_train_model(train_model, seed=0):
    x, y = judge.training_data(seed)
    with seeded(seed):
        observation = judge.TrainModelObservation(_train(
            train_model, judge.Affine(seed), x, y, 2, 0.0, judge.BATCHES_BATCH_SIZE))
        # One batch per epoch makes the run deterministic, whatever the shuffling.
        model = judge.Affine(seed)
        observation.full_batch = _train(train_model, model, x, y, judge.FULL_BATCH_EPOCHS,
                                        judge.FULL_BATCH_LR, len(x))
        observation.trained = _parameters_after(model)
        alike_x, alike_y = judge.alike_data(seed)
        observation.alike = _train(train_model, judge.Affine(seed), alike_x, alike_y,
                                   judge.ALIKE_EPOCHS, judge.ALIKE_LR, judge.BATCHES_BATCH_SIZE)
        observation.batches = _train(train_model, judge.Affine(seed), x, y,
                                     judge.BATCHES_EPOCHS, judge.FULL_BATCH_LR,
                                     judge.BATCHES_BATCH_SIZE)
        # Both networks must start from He initialization, as run_one_step_of_model does.
        model = nn.Sequential(nn.Linear(INPUT_SIZE, OUTPUT_SIZE))
        start = judge.restart_start(seed)
        with torch.no_grad():
            model[0].weight.copy_(torch.tensor(start.weight))
            model[0].bias.copy_(torch.tensor(start.bias))
        observation.restart = _train(train_model, model, x, y, 1, 0.0, len(x))
        observation.restarted_to = _parameters_after(model[0])
    return observation


def _parameters_after(layer):
    """judge.Parameters of `layer`, or None when train_model left it unreadable."""
    try:
        return judge.parameters_of(layer)
    except Exception:
        return None


class _PlainNetwork(nn.Module):
    """The comparison's networks, plain or with batch norm opening each branch. Narrower
    than the exercise's (64 hidden values, fixed), so that this network, which a student's
    train_model receives while graded, can never stand in for the student's own."""

    def __init__(self, batchnorm=False):
        super().__init__()
        hidden = 64
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


def observe_training_comparison(train_model, x_train, y_train, seed=0):
    observation = judge.ComparisonObservation(observe_train_model(train_model, seed))
    # Training two networks is the slow part: only worth it when train_model runs.
    if not judge.train_model_ran(observation.train_model):
        return observation
    x = torch.as_tensor(x_train[:judge.COMPARISON_EXAMPLES], dtype=torch.float32)
    y = torch.as_tensor(y_train[:judge.COMPARISON_EXAMPLES], dtype=torch.long)
    with seeded(seed):
        observation.plain = _train(train_model, _PlainNetwork(batchnorm=False), x, y,
                                   judge.COMPARISON_EPOCHS, judge.COMPARISON_LR, 100)
        if observation.plain.error:
            return observation
        observation.batchnorm = _train(train_model, _PlainNetwork(batchnorm=True), x, y,
                                       judge.COMPARISON_EPOCHS, judge.COMPARISON_LR, 100)
    return observation


# --- What the notebook calls -------------------------------------------------------------

def observe_plot_linear(plot_variance_growth, seed=0):
    return observe_plot(plot_variance_growth, False, seed)


def observe_plot_log(plot_variance_growth, seed=0):
    return observe_plot(plot_variance_growth, True, seed)


# Which observer each check reads (testcells.py names them).
OBSERVERS = {cell.check: globals()[cell.observer] for cell in judge.testcells.TEST_CELLS}


def check(name, *arguments, seed=0):
    """Observe, then judge: the verdict of check `name` on the student's objects. The
    checks that compare with a right answer read its numbers for seed 0, which the
    helpers cell puts in the module udl_bn_expected (outside a notebook, they come from
    coursekit.authoring.reference); nothing here can compute them."""
    observation = OBSERVERS[name](*arguments, seed=seed)
    expected = None
    if name in judge.EXPECTING:
        numbers = sys.modules.get("udl_bn_expected")
        if numbers is None:
            try:  # outside the notebook: the course's own answer key
                from coursekit.authoring import reference as numbers
            except ImportError:
                pass
        expected = numbers.expected(name, seed) if hasattr(numbers, "expected") else None
        if expected is None:
            return Verdict(name, False, "This check compares with numbers that the helpers "
                           "cell defines: run the helpers cell near the top of the notebook, "
                           "then this cell again.")
    return judge.judge(name, observation, seed, expected)


def _check_function(cell):
    """udl_bn_checks.check_<check>(the student's objects, seed=0): what its test cell calls,
    the seed by name or after the objects. It keeps the check's name and the number of
    objects, never the row, which the notebook's code could change."""
    name, count = cell.check, len(cell.arguments.split(","))

    def check_function(*objects, seed=0):
        if len(objects) == count + 1:
            *objects, seed = objects
        return check(name, *objects, seed=seed)

    check_function.__name__ = check_function.__qualname__ = cell.called
    check_function.__doc__ = "%s(%s, seed=0): %s" % (cell.called, cell.arguments, cell.checks)
    return check_function


def check_plot(plot_variance_growth, log_scale, seed=0):
    """plot_variance_growth(ax, plain, bn, log_scale) draws a labeled figure on ax."""
    return check("plot_log" if log_scale else "plot_linear", plot_variance_growth, seed=seed)


# check_registered, check_used, ...: one for each row that names no function of its own
# (check_plot, above, serves two).
globals().update({cell.called: _check_function(cell) for cell in judge.testcells.TEST_CELLS
                  if not cell.function})


def score(verdict, points):
    """Visible self-checks: print the verdict line, "✓ used, 2 of 2 points: message", and
    keep it for checks_so_far(). Never raises, so "Run All" carries on past a failing check.

    nbgrader's validate gives a check cell full points unless its last value reads as a
    number: a passing check returns nothing, so no bare number is left in the notebook; a
    failing one returns Unearned(), which validate reads as 0 points and a notebook shows
    as nothing (the verdict line says the points).
    """
    scored = Scored(verdict.name, verdict.passed, points if verdict.passed else 0, points,
                    verdict.message)
    again = [k for k, s in enumerate(SCORED) if s.name == scored.name]
    if again:  # run again: the new verdict takes the old one's place
        SCORED[again[0]] = scored
    else:
        SCORED.append(scored)
    # JupyterLab breaks long output lines anywhere, mid-word: Scored.line breaks them
    # between words.
    print(scored.line())
    return None if verdict.passed else Unearned()


def show(figure, alt):
    """Display a matplotlib figure with alt text, for screen readers: nbconvert and the
    feedback page put the output's "alt" metadata on the image."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(figure, metadata={"image/png": {"alt": alt}})
    plt.close(figure)  # else the inline backend shows it a second time, without the text


def recall(name, measured):
    """After a run: the student's recorded prediction `name` beside what the run measured.

    A prediction is never marked wrong; putting the two side by side is the lesson. Read
    from the notebook's globals by name, so a deleted prediction cell is not an error.
    """
    guess = vars(sys.modules["__main__"]).get(name)
    guess = guess.strip() if isinstance(guess, str) else ""
    print("You predicted: %s" % (guess or "(nothing recorded in %s)" % name))
    print(judge.wrapped("Measured:      " + measured, indent=" " * 15))


def require(*verdicts):
    """Hidden tests: pass silently, or fail with the first failing verdict's message.

    A hidden test passes the visible check's verdict first, then the same check on other
    seeds, so a student who failed the visible check reads the very message they saw.
    """
    __tracebackhide__ = True
    for verdict in verdicts:
        if not verdict.passed:
            raise AssertionError(verdict.message)


import dataclasses  # noqa: E402 (this section's own; the lead edits the top)


@dataclasses.dataclass
class Scored:
    """What score() printed for one check."""
    name: str
    passed: bool
    earned: float
    points: float
    message: str

    def line(self):
        """"✗ used, 0 of 2 points: message", as Validate and the feedback page show it
        (coursekit.grading.verdicts reads it back: VERDICT_LINE)."""
        return judge.wrapped("%s %s, %s: %s" % ("✓" if self.passed else "✗", self.name,
                                                 points_text(self.earned, self.points),
                                                 self.message))


# Each check this notebook ran, in the order each first ran. (A list: the grader's
# fingerprint of this module leaves it out, as it changes while the notebook runs.)
SCORED = []


class Unearned(float):
    """A failing check cell's value: its text, 0.0, is the points nbgrader's validate
    reads; a notebook shows its HTML, which is empty."""

    def __new__(cls):
        return super().__new__(cls, 0.0)

    def _repr_html_(self):
        return ""


def points_text(earned, points):
    """"0 of 2 points", as Validate words it (coursekit.grading.verdicts.points_text)."""
    return "%g of %g point%s" % (earned, points, "" if points == 1 else "s")


def checks_so_far(checks, points, written=0):
    """The notebook's last cell: every check run so far, its ✓ or ✗, points and message,
    and the total, as Validate reports them, with no nbgrader needed (Colab, any folder).
    `checks` and `points`: how many checks the notebook has and what they are worth;
    `written`: the points of the answer your instructor grades by hand."""
    if not SCORED:
        print("No check has run yet: run the notebook from the top (Run > Run All Cells).")
        return
    earned = sum(s.earned for s in SCORED)
    possible = sum(s.points for s in SCORED)
    lines = ["Your checks so far, in the order they ran:", ""]
    lines += [s.line() for s in SCORED]
    lines += ["", "Total: %s from the checks." % points_text(earned, possible)]
    if len(SCORED) < checks:
        lines.append(judge.wrapped(
            "%d more check%s (%g point%s) %s not run yet: run the notebook from the top."
            % (checks - len(SCORED), "" if checks - len(SCORED) == 1 else "s",
               points - possible, "" if points - possible == 1 else "s",
               "has" if checks - len(SCORED) == 1 else "have"), indent=""))
    if written:
        lines.append("The written answer (%g point%s) is graded by your instructor."
                     % (written, "" if written == 1 else "s"))
    print("\n".join(lines))


def finished(*names):
    """Whether the notebook's functions `names` are written. A cell that shows what they
    compute starts with it, so that Run All on a half-done notebook goes on to the end;
    for the first that is missing or still raises NotImplementedError it prints one line
    naming it."""
    space = vars(sys.modules["__main__"])
    for name in names:
        function = space.get(name)
        code = getattr(function, "__code__", None)
        if function is None:
            print("Run the cell that defines `%s` above first, then this one." % name)
            return False
        if code is not None and "NotImplementedError" in code.co_names:
            print("Finish `%s` above first: it still raises NotImplementedError." % name)
            return False
    return True


def steps(values):
    """Variances in order, and each step from one to the next both as a factor and as an
    amount: which of the two stays the same is for the reader to see, so the code that
    prints it gives neither away before the run."""
    return "%s; from each to the next: %s" % (
        ", ".join("%.2f" % v for v in values),
        ", ".join("×%.2f (%+.2f)" % (b / a, b - a) for a, b in zip(values, values[1:])))


# --- What the grader asks for -------------------------------------------------------------

def observations(name, arguments, seeds):
    """What the grader asks for: check `name` observed for each seed. `arguments` gives
    the student's objects; whatever it raises is recorded instead."""
    try:
        objects = arguments()
    except Exception as error:
        return [judge.Unavailable(type(error).__name__, str(error)[:2000]) for _ in seeds]
    return [OBSERVERS[name](*objects, seed=seed) for seed in seeds]


# Where code the student wrote comes from: a notebook cell, or an exec'd string.
_NOTEBOOK_FILES = ("/ipykernel_", "<ipython-input", "<string>", "<stdin>")
# Packages that legitimately hook into IPython and the interpreter.
_TRUSTED_PACKAGES = ("IPython", "ipykernel", "matplotlib", "matplotlib_inline", "traitlets",
                     "comm", "jupyter_client", "zmq", "tornado", "sys", "builtins",
                     "debugpy", "_pydevd", "pydevd")


_BUILTIN_ALIASES = {"EnvironmentError", "IOError"}


def _origin(value):
    """'notebook' when `value` was written in the notebook, else its package."""
    function = getattr(value, "__func__", value)
    code = getattr(function, "__code__", None)
    if code is not None and any(mark in code.co_filename for mark in _NOTEBOOK_FILES):
        return "notebook"
    module = getattr(function, "__module__", None) or type(value).__module__ or ""
    return "notebook" if module == "__main__" else module.split(".")[0]


def integrity(watched=None):
    """What in the kernel was replaced or hooked by notebook code: a sorted list of names.

    Looks at the functions of torch, numpy and builtins the checks rely on, IPython's input
    and AST transformers, its event callbacks and error handlers, and the streams. Code a
    student pastes shows up here; the grade never depends on it (the judge decides).
    """
    found = set()
    namespaces = {"torch": torch, "torch.nn.functional": nn.functional,
                  "torch.Tensor": torch.Tensor, "torch.nn.Module": nn.Module,
                  "numpy": np, "builtins": __builtins__ if isinstance(__builtins__, dict)
                  else vars(__builtins__), "math": math}
    namespaces.update({"torch.nn." + name: cls for name, cls in KINDS.items()})
    for name in ("IPython.display", "IPython.core.display_functions"):
        if name in sys.modules:
            namespaces[name] = sys.modules[name]
    namespaces.update(watched or {})
    for label, namespace in namespaces.items():
        items = namespace if isinstance(namespace, dict) else vars(namespace)
        for name, value in list(items.items()):
            # A builtin is replaced when its name is not its own (AssertionError = BdbQuit).
            renamed = (label == "builtins" and name not in _BUILTIN_ALIASES
                       and isinstance(getattr(value, "__name__", None), str)
                       and value.__name__ != name and not name.startswith("_")
                       and _origin(value) not in _TRUSTED_PACKAGES)
            if callable(value) and (renamed or _origin(value) == "notebook"):
                found.add("%s.%s" % (label, name))
    shell = _shell()
    if shell is not None:
        manager = getattr(shell, "input_transformer_manager", None)
        hooks = {
            "IPython input transformers": list(getattr(shell, "input_transformers_post", []))
            + list(getattr(manager, "cleanup_transforms", []))
            + list(getattr(manager, "line_transforms", []))
            + list(getattr(manager, "token_transformers", [])),
            "IPython AST transformers": list(getattr(shell, "ast_transformers", [])),
            "IPython event callbacks": [c for cs in getattr(getattr(shell, "events", None),
                                                            "callbacks", {}).values()
                                        for c in cs],
        }
        if getattr(shell, "custom_exceptions", ()):
            found.add("IPython's error handler (set_custom_exc)")
        for what, functions in hooks.items():
            if any(_origin(f) not in _TRUSTED_PACKAGES for f in functions if f is not None):
                found.add(what)
        for name, value in list(vars(shell).items()):
            if callable(value) and _origin(value) == "notebook":
                found.add("IPython's %s" % name)
    for name in ("excepthook", "displayhook", "stdout", "stderr"):
        value = getattr(sys, name, None)
        value = value if callable(value) else type(value)
        if _origin(value) not in _TRUSTED_PACKAGES:
            found.add("sys.%s" % name)
    if sys.gettrace() is not None and _origin(sys.gettrace()) == "notebook":
        found.add("sys.settrace")
    return sorted(found)


def suspend_hooks():
    """Names of the trace and profile hooks set in this kernel, each turned off.

    Such a hook sees every call and return of the observers, and can rewrite what they
    return; the grader's request turns them off before it observes and again after, and
    the grader is told which were set. The setters are called whatever the getters say,
    and a getter or setter that is not the interpreter's own is named too (a replaced
    setter is still replaced after observing, so the grader then believes nothing). Audit
    hooks cannot be removed or listed; the grader's text scan names `addaudithook`."""
    import threading

    found = []
    for owner, what in ((sys, "trace"), (sys, "profile"), (threading, "trace"),
                        (threading, "profile")):
        get, put = (getattr(owner, verb + what, None) for verb in ("get", "set"))
        for function, verb in ((get, "get"), (put, "set")):
            # type(len), not types.BuiltinFunctionType: the types module can be patched.
            genuine = (type(function) is type(len) and function.__self__ is sys
                       if owner is sys else type(function) is type(suspend_hooks)
                       and function.__code__.co_filename == threading.__file__)
            if function is not None and not (genuine and function.__name__ == verb + what):
                found.append("%s.%s%s (replaced)" % (owner.__name__, verb, what))
        if get is not None and get() is not None:
            found.append("%s.set%s" % (owner.__name__, what))
        if put is not None:
            put(None)
    monitoring = getattr(sys, "monitoring", None)  # Python 3.12 and later
    for tool in range(6) if monitoring is not None else ():
        if monitoring.get_tool(tool) is not None:
            found.append("sys.monitoring (tool %d)" % tool)
            monitoring.set_events(tool, 0)
            monitoring.free_tool_id(tool)
    return found


def _shell():
    try:
        return get_ipython()  # noqa: F821 (IPython's builtin, present in a kernel)
    except NameError:
        return None


def code_fingerprint(module):
    """{name: hash} of the functions, classes and constants of a module, to tell a module
    made from this file's text from one a student changed."""
    prints = {}
    for name, value in sorted(vars(module).items()):
        if name.startswith("__"):
            continue
        if isinstance(value, types.FunctionType):
            # The name too: the check_<check> functions differ by it alone.
            prints[name] = _code_hash(value.__code__) + value.__qualname__
        elif isinstance(value, type) and value.__module__ == module.__name__:
            prints[name] = hashlib.sha256("".join(
                "%s=%s;" % (k, _code_hash(v.__code__) if isinstance(v, types.FunctionType)
                            else type(v).__name__)
                for k, v in sorted(vars(value).items())
                if isinstance(v, types.FunctionType) or not k.startswith("__")
            ).encode()).hexdigest()[:16]
        elif isinstance(value, (bool, int, float, str, tuple)):
            prints[name] = repr(value)[:200]
        elif isinstance(value, dict):  # tables of functions (OBSERVERS, JUDGES)
            prints[name] = hashlib.sha256("".join(
                "%s=%s;" % (k, _code_hash(v.__code__) + v.__qualname__
                            if isinstance(v, types.FunctionType) else type(v).__name__)
                for k, v in sorted(value.items(), key=lambda item: str(item[0]))
            ).encode()).hexdigest()[:16]
    return prints


def _code_hash(code):
    digest = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        digest.update((_code_hash(const) if isinstance(const, types.CodeType)
                       else repr(const)).encode())
    digest.update(repr(code.co_names).encode())
    return digest.hexdigest()[:16]
