"""Cheats a student who has read the checks could paste into an answer cell (issue 12).

Every case is the untouched release notebook, every TODO left as released, with a few
lines pasted at the end of the first answer cell (the batch-norm network, released as the
plain network). The helper cell above it has already registered the checks as the module
``udl_bn_checks``, so each cheat goes after the grade instead of the exercise: the checks
module and what it relies on (torch, numpy, builtins), IPython's machinery between a test
cell's source and its outcome (input and AST transformers, hooks, tracebacks, run_cell),
what nbgrader reads as partial credit, and the trace the checks observe.

The twin cheats (issue 24) are a sample's honest wrong answer with the cheat pasted after
it, in that answer's cell: each is worth what that sample is worth (``TWIN_CHEATS``).

``CHEATS = {student: builder}``; ``builder(release=None)`` returns the notebook, built on
the given release notebook (the course's own release when None). None of them solves
anything: graded honestly, each is worth what the untouched release (or its twin) is worth.
"""
from typing import NamedTuple

from coursekit.examples import answers
from coursekit.course import grade_id
from coursekit.examples.samples import CLASS_CELL, SAMPLES, guesses, make_submission

# --- the checks module itself -------------------------------------------------------------

FAKE_SCORE_REQUIRE = r'''
# The check cells only call score() and require(): make both always happy.
import udl_bn_checks
def _full_marks(verdict, points):
    print("✓ " + verdict.message)
    return float(points)
udl_bn_checks.score = _full_marks
udl_bn_checks.require = lambda *verdicts: None
'''

FAKE_CHECK_FUNCTIONS = r'''
# Every check_* function now hands back a passing verdict without looking at my code.
import udl_bn_checks
for _name in [n for n in dir(udl_bn_checks) if n.startswith("check_")]:
    def _passes(*args, _name=_name, **kwargs):
        return udl_bn_checks.Verdict(_name[len("check_"):], True, "Looks right.")
    setattr(udl_bn_checks, _name, _passes)
'''

FAKE_MODULE = r'''
# `import udl_bn_checks` in the check cells reads sys.modules: put my own module there.
import sys, types
class _Pass:
    passed, message = True, "Looks right."
_mine = types.ModuleType("udl_bn_checks")
_mine.__getattr__ = lambda name: (lambda *args, **kwargs: _Pass())
_mine.score = lambda verdict, points: print("✓ Looks right.") or float(points)
_mine.require = lambda *verdicts: None
sys.modules["udl_bn_checks"] = _mine
'''

VERDICT_ALWAYS_PASSED = r'''
# Whatever a check decides, the verdict it returns says "passed".
import udl_bn_checks
udl_bn_checks.Verdict.passed = property(lambda self: True, lambda self, value: None)
'''

# --- builtins -----------------------------------------------------------------------------

IMPORT_HOOK = r'''
# Leave sys.modules alone; just answer `import udl_bn_checks` with something friendlier.
import builtins
class _Lenient:
    def __getattr__(self, name):
        if name == "score":
            return lambda verdict, points: float(points)
        return lambda *args, **kwargs: None
_real_import = builtins.__import__
def _import(name, *args, **kwargs):
    if name == "udl_bn_checks":
        return _Lenient()
    return _real_import(name, *args, **kwargs)
builtins.__import__ = _import
'''

SHADOWED_BOOL = r'''
# Verdict stores bool(passed). Inside the checks module, bool now says yes to anything.
import udl_bn_checks
udl_bn_checks.bool = lambda value=False: True
'''

BUILTINS_ISINSTANCE = r'''
# The checks count BatchNorm1d layers with isinstance: let my Linear layers count too.
import builtins
import torch.nn as nn
_isinstance = builtins.isinstance
def _generous_isinstance(obj, kinds):
    asked = kinds if type(kinds) is tuple else (kinds,)
    if nn.BatchNorm1d in asked and type(obj) is nn.Linear:
        return True
    return _isinstance(obj, kinds)
builtins.isinstance = _generous_isinstance
'''

ASSERTION_ERROR_SWAPPED = r'''
# A failed hidden test raises AssertionError. IPython prints no traceback for BdbQuit
# (quitting the debugger), so make that what `raise AssertionError(...)` raises.
import bdb, builtins
builtins.AssertionError = bdb.BdbQuit
'''

# --- torch and numpy, as the checks use them ----------------------------------------------

ALLCLOSE_ALWAYS_TRUE = r'''
# The checks compare tensors with allclose: every comparison now comes out equal.
import numpy as np
import torch
torch.allclose = lambda *args, **kwargs: True
np.allclose = lambda *args, **kwargs: True
'''

TENSOR_ADD_RESCALED = r'''
# No batch norm needed if every residual sum of 100 neurons quietly shrinks by sqrt(2).
import torch
_add = torch.Tensor.__add__
def _calmer_add(self, other):
    total = _add(self, other)
    if total.dim() == 2 and total.shape[-1] == 100:
        total = total * 0.7071067811865476
    return total
torch.Tensor.__add__ = _calmer_add
'''

# --- forged observations (a student who knows how the checks trace the network) ----------

FORGED_TRACE = r'''
# The checks watch module calls and additions. Show them a batch-norm network running on
# my layers, and hand back what the plain network computes, out of their sight.
import torch
import torch.nn.functional as F
_plain_init = ResidualNetworkWithBatchNorm.__init__
def _init_with_norms(self, input_size, output_size, hidden_size=100):
    _plain_init(self, input_size, output_size, hidden_size)
    self.norms = nn.ModuleList(nn.BatchNorm1d(hidden_size) for _ in range(5))
ResidualNetworkWithBatchNorm.__init__ = _init_with_norms
_module_call = nn.Module.__call__
def _call(self, *args, **kwargs):
    if type(self) is not ResidualNetworkWithBatchNorm:
        return _module_call(self, *args, **kwargs)
    x = args[0]
    branches = [self.linear2, self.linear3, self.linear4, self.linear5, self.linear6]
    shown = self.linear1(x)
    for norm, linear in zip(self.norms, branches):
        shown = shown + linear(norm(shown).relu())
    self.linear7(shown)
    out = F.linear(x, self.linear1.weight, self.linear1.bias)
    for linear in branches:
        out = torch.sub(out, -F.linear(out.relu(), linear.weight, linear.bias))
    return F.linear(out, self.linear7.weight, self.linear7.bias)
nn.Module.__call__ = _call
'''

SHADOW_OUTPUT = r'''
# Let the plain layers run where the checks can see them, and return what a batch-norm
# network computes with the same weights, in plain functions nobody traces.
import torch
import torch.nn.functional as F
_plain_forward = ResidualNetworkWithBatchNorm.forward
def _forward(self, x):
    _plain_forward(self, x)
    h = F.linear(x, self.linear1.weight, self.linear1.bias)
    for linear in (self.linear2, self.linear3, self.linear4, self.linear5, self.linear6):
        branch = F.batch_norm(h, None, None, training=True).relu()
        h = torch.sub(h, -F.linear(branch, linear.weight, linear.bias))
    return F.linear(h, self.linear7.weight, self.linear7.bias)
ResidualNetworkWithBatchNorm.forward = _forward
'''

# --- IPython between a test cell's source and its outcome ---------------------------------

TRANSFORMER_PRINTS_TICKS = r'''
# Any later cell that calls the checks just prints a tick instead.
def _only_ticks(lines):
    if any("udl_bn_checks" in line for line in lines):
        return ["print('✓ Passed.')\n"]
    return lines
get_ipython().input_transformers_post.append(_only_ticks)
'''

CLEANUP_TRANSFORMER_POINTS = r'''
# A check cell becomes its own points, as a number: nbgrader reads that as the score.
import re
def _points_instead(lines):
    text = "".join(lines)
    found = re.search(r"# Check \((\d+) points?\)", text)
    if found and "udl_bn_checks" in text:
        return [found.group(1) + ".0\n"]
    return lines
get_ipython().input_transformers_cleanup.append(_points_instead)
'''

AST_DROPS_REQUIRE = r'''
# Calls to udl_bn_checks.require(...) turn into None before they run.
import ast
class _NoRequire(ast.NodeTransformer):
    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "require":
            return ast.copy_location(ast.Constant(None), node)
        return node
get_ipython().ast_transformers.append(_NoRequire())
'''

RUN_CELL_REWRITTEN = r'''
# Wrap the shell's run_cell: check cells run a tick instead of their own code.
_shell = get_ipython()
_run_cell_async, _run_cell = _shell.run_cell_async, _shell.run_cell
async def _run_cell_async_mine(raw_cell, *args, **kwargs):
    if "udl_bn_checks" in raw_cell:
        raw_cell = kwargs["transformed_cell"] = "print('✓ Passed.')\n"
    return await _run_cell_async(raw_cell, *args, **kwargs)
def _run_cell_mine(raw_cell, *args, **kwargs):
    if "udl_bn_checks" in raw_cell:
        raw_cell = "print('✓ Passed.')\n"
    return _run_cell(raw_cell, *args, **kwargs)
_shell.run_cell_async, _shell.run_cell = _run_cell_async_mine, _run_cell_mine
'''

CUSTOM_EXC_ONLY = r'''
# A failed check's AssertionError is handled quietly: no red box.
def _quietly(shell, etype, value, tb, tb_offset=None):
    return None
get_ipython().set_custom_exc((AssertionError,), _quietly)
'''

HIDDEN_TRACEBACKS = r'''
# Errors still happen, but nobody gets to see a traceback.
get_ipython().showtraceback = lambda *args, **kwargs: None
'''

POST_RUN_CELL_CLEARS_ERRORS = r'''
# No traceback on screen, and after every cell the error is forgotten, so the cell
# reports success.
_shell = get_ipython()
_shell.showtraceback = lambda *args, **kwargs: None
def _forget_errors(result):
    result.error_in_exec = None
_shell.events.register("post_run_cell", _forget_errors)
'''

STREAMS_AND_HOOKS = r'''
# What gets printed says ✓ where it said ✗; exceptions and values vanish on the way out.
import sys
class _Brighter:
    def __init__(self, stream):
        self.stream = stream
    def write(self, text):
        return self.stream.write(text.replace("✗", "✓"))
    def __getattr__(self, name):
        return getattr(self.stream, name)
sys.stdout = _Brighter(sys.stdout)
sys.excepthook = lambda *args: None
sys.displayhook = lambda value: None
'''

# --- what nbgrader reads as partial credit -------------------------------------------------

NEGATIVE_CREDIT = r'''
# The hidden line `udl_bn_checks.require(...)` ends each check cell: make it evaluate to
# a number. nbgrader reads a cell's number as its score, and a negative one as full marks.
import udl_bn_checks
udl_bn_checks.require = lambda *verdicts: -1.0
'''

DISPLAYED_CREDIT = r'''
# Show the points as the cell's result before the hidden test gets to fail: nbgrader
# stops reading a cell's outputs at the first result it finds.
import udl_bn_checks
_honest_score = udl_bn_checks.score
def _score_and_show(verdict, points):
    earned = _honest_score(verdict, points)
    get_ipython().displayhook(float(points))
    return earned
udl_bn_checks.score = _score_and_show
'''


# Two forgeries of the grader's reply, by a student who read coursekit/grading/grader.py:
# each builds observations that pass from the checks' own code, and slips them into the
# reply the grader's request sends (the first by wrapping IPython's display, the second by
# walking up to the request's frame from inside the student's own code, which the request
# calls).

# What both forgeries answer for each check: observations built with the checks' own code,
# and a tick from every visible check, so the kernel agrees with the forged judge.
FORGED_OBSERVATIONS = r'''
_honest_score = _C.score
_C.score = lambda verdict, points: (_honest_score(verdict, points)
    if verdict.name.startswith("rescaled") else (print("\u2713 Passed."), float(points))[1])

def _bn_net(i, o, h):
    return _C._PlainNetwork(batchnorm=True)
_bn_net.__name__ = "ResidualNetworkWithBatchNorm"

def _forge(J, C, check, seed, real):
    if check in ("registered", "used", "no_compounding", "placement"):
        return C.observe_network(_bn_net, seed)
    if check == "train_eval":
        return C.observe_train_eval(_bn_net, seed)
    if check == "block_variances":
        net = C.observe_network(ResidualNetwork, seed)
        return J.BlockVariancesObservation(net, J.Returned(value=J.Trace(net).variances))
    if check in ("plot_linear", "plot_log"):
        p, b = J.plot_values(seed)
        xs = [float(k) for k in range(6)]
        ax = J.AxesInfo([J.LineInfo(xs, list(p), "plain"), J.LineInfo(xs, list(b), "bn")],
                        True, "block", "variance", "log" if check == "plot_log" else "linear")
        return J.PlotObservation(J.Returned(), ax, [])
    if check == "increment":
        return J.Returned(value=1 - 1 / _math.pi)
    if check == "slope":
        return J.Returned(value=float(np.polyfit(np.arange(6), J.slope_sample(seed), 1)[0]))
    if check in ("running_mean", "running_var"):
        layer = nn.BatchNorm1d(6, momentum=J.momentum_for(seed)).double()
        with torch.no_grad():
            for b in J.stat_batches(seed):
                layer(b.double())
        m, v = layer.running_mean, layer.running_var
        return J.RunningObservation(J.Returned(value=[m.detach().double(), v.detach().double()]), [])
    if check in ("train_model", "training_comparison"):
        def sgd(x, y, epochs, lr, steps=1, model=None):
            model = model or J.Affine(seed)
            opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
            out = []
            for _ in range(epochs):
                seen = []
                for _ in range(steps):
                    opt.zero_grad()
                    loss = nn.functional.cross_entropy(model(x), y)
                    loss.backward()
                    opt.step()
                    seen.append(loss.item())
                out.append(sum(seen) / len(seen))
            return out
        x, y = J.training_data(seed)
        with torch.no_grad():
            whole = float(nn.functional.cross_entropy(J.Affine(seed)(x), y))
        ax, ay = J.alike_data(seed)
        trained = J.Affine(seed)
        full = sgd(x, y, J.FULL_BATCH_EPOCHS, J.FULL_BATCH_LR, model=trained)
        restarted = nn.Linear(x.shape[1], 10)
        tm = J.TrainModelObservation(
            J.Returned(value=[whole, whole]), full_batch=J.Returned(value=full),
            trained=J.parameters_of(trained),
            alike=J.Returned(value=sgd(ax[:1], ay[:1], J.ALIKE_EPOCHS, J.ALIKE_LR, 5)),
            batches=J.Returned(value=sgd(x[:80], y[:80], J.BATCHES_EPOCHS, J.FULL_BATCH_LR)),
            restart=J.Returned(value=[2.0]),
            restarted_to=J.parameters_of(restarted))
        if check == "train_model":
            return tm
        return J.ComparisonObservation(tm, J.Returned(value=[2.3, 40.0, 900.0]),
                                       J.Returned(value=[2.2, 1.7, 1.4]))
    return real
'''

FORGE_DISPLAY = r'''# --- pasted by the cheating student ---
import sys as _sys, re as _re, math as _math
import IPython.display as _ipd
import udl_bn_checks as _C
_J = _C.judge
_MIME = "text/x-udl-observation"
_last = {}
def _grab(info):
    _last["cell"] = info.raw_cell or ""
get_ipython().events.register("pre_run_cell", _grab)
''' + FORGED_OBSERVATIONS + r'''
_real_display = _ipd.display
def _display(*objs, **kw):
    try:
        if objs and isinstance(objs[0], dict) and _MIME in objs[0]:
            src = _last.get("cell", "")
            check = _re.search(r"checks\.observations\('(\w+)'", src).group(1)
            seeds = eval(_re.search(r"lambda: \(.*?,\), (\[[\d, ]+\])\)", src).group(1))
            report = _J.decode(objs[0][_MIME])
            report["integrity"] = []
            report["fingerprints"] = {}
            report["observations"] = [_forge(_J, _C, check, s, r)
                                      for s, r in zip(seeds, report["observations"])]
            objs = ({_MIME: _J.encode(report)},) + objs[1:]
    except Exception as _e:
        pass
    return _real_display(*objs, **kw)
_ipd.display = _display'''

FRAME_WALK = r'''# --- pasted by the cheating student: no library, IPython or display is touched ---
import sys as _sys, math as _math
import udl_bn_checks as _C
''' + FORGED_OBSERVATIONS + r'''
def _hijack():
    frame, request, observing = _sys._getframe(), None, None
    while frame is not None:
        if frame.f_code.co_name == "_udl_grader_request":
            request = frame
        if frame.f_code.co_name == "observations" and "seeds" in frame.f_locals:
            observing = frame
        frame = frame.f_back
    if request is None or observing is None:
        return
    J, C = request.f_locals["judge"], request.f_locals["checks"]
    if getattr(J, "_hijacked", False):
        return
    J._hijacked = True
    check, seeds = observing.f_locals["name"], list(observing.f_locals["seeds"])
    encode = J.encode
    def forged_encode(value):
        if isinstance(value, dict) and "nonce" in value:
            value = dict(value, integrity=[], fingerprints={}, observations=[
                _forge(J, C, check, s, r) for s, r in zip(seeds, value["observations"])])
        return encode(value)
    J.encode = forged_encode

# The release stubs say `raise NotImplementedError()`: the name is looked up here first.
class NotImplementedError(Exception):
    def __init__(self, *args):
        super().__init__(*args)
        _hijack()

_plain_init = ResidualNetworkWithBatchNorm.__init__
def _init(self, *args, **kwargs):
    _hijack()
    _plain_init(self, *args, **kwargs)
ResidualNetworkWithBatchNorm.__init__ = _init

# Every notebook class says super(Class, self).__init__(): `super` is looked up here first,
# so the rescaled class (a later cell, left as released) calls _hijack too.
import builtins as _b
def super(*args):
    _hijack()
    return _b.super(*args)'''

# A profile hook sees every call and return of the observers. This one replaces what
# `observations` returns with forged records; its name is decoded from bytes, so only the
# kernel sees it (the request turns it off before observing, and says it was set).
PROFILE_HOOK = r'''# --- pasted by the cheating student ---
import sys as _sys, math as _math, types as _types
import udl_bn_checks as _C
''' + FORGED_OBSERVATIONS + r'''
def _rewrite(frame, event, arg):
    if (event == "return" and frame.f_code.co_name == "observations"
            and isinstance(arg, list) and "seeds" in frame.f_locals):
        C = _types.SimpleNamespace(**frame.f_globals)
        arg[:] = [_forge(C.judge, C, frame.f_locals["name"], s, r)
                  for s, r in zip(frame.f_locals["seeds"], list(arg))]
getattr(_sys, bytes.fromhex("73657470726f66696c65").decode())(_rewrite)'''

# The same hook, set from inside the network while the checks observe it, with the
# interpreter's getter replaced so that the hook looks unset.
PROFILE_HOOK_WHILE_OBSERVED = PROFILE_HOOK.rsplit("\n", 1)[0] + r'''
vars(_sys)["get" + "profile"] = lambda: None
_plain_init = ResidualNetworkWithBatchNorm.__init__
def _init(self, *args, **kwargs):
    getattr(_sys, "set" + "profile")(_rewrite)
    _plain_init(self, *args, **kwargs)
ResidualNetworkWithBatchNorm.__init__ = _init'''

# Not a cell pasted into the network's: running_statistics answered by the judge's own
# reference computation, reached through names built from pieces.
ANSWER_KEY_BY_STRING = r'''import sys
def running_statistics(batches, momentum=0.1):
  numbers = sys.modules["udl_bn_" + "expected"]
  right = getattr(numbers, "SEED" + "_0")["running_var"].batchnorm
  return torch.tensor(right.mean), torch.tensor(right.var)
'''


# --- cheats on an honest wrong answer ----------------------------------------------------
# Each is a sample's wrong answer with a few lines pasted after it that go after what the
# checks record of it, from inside the student's own code, every name the text scan knows
# decoded from bytes. Each must earn no more than the sample alone (its honest twin).

def _hidden(name):
    """Python that makes the string `name` at run time, without writing it."""
    return 'bytes.fromhex("%s").decode()' % name.encode().hex()


FRAMES = r"""
import sys as _sys
def _frames():
    # every frame that called this one: the check's observers among them
    frame = getattr(_sys, %s)()
    while frame is not None:
        yield frame
        frame = getattr(frame, %s)
def _locals(frame):
    return getattr(frame, %s)
""" % (_hidden("_getframe"), _hidden("f_back"), _hidden("f_locals"))

# In eval mode the network passes on the train-mode record of itself, whose norms
# normalize, as the record of its eval-mode pass.
EVAL_RECORD_COPIED = FRAMES + r"""
_own_forward = ResidualNetworkWithBatchNorm.forward
def _forward(self, x):
    if not self.training:
        for frame in _frames():
            o = _locals(frame).get("o")
            if o is not None and hasattr(o, "eval_network") and hasattr(o, "network"):
                o.eval_network = o.network
    return _own_forward(self, x)
ResidualNetworkWithBatchNorm.forward = _forward
"""

# running_statistics built on nn.BatchNorm1d, which first empties whatever list the check
# keeps of batch-norm calls and takes away torch's global module hooks.
BATCH_NORM_UNWATCHED = FRAMES + r"""
import torch.nn.modules.module as _module
_own_running = running_statistics
def running_statistics(batches, momentum=0.1):
    for frame in _frames():
        for value in list(_locals(frame).values()):
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                value.clear()
    getattr(_module, %s).clear()
    try:
        return _own_running(batches, momentum)
    finally:
        for frame in _frames():
            for value in list(_locals(frame).values()):
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    value.clear()
""" % _hidden("_global_forward_pre_hooks")

# train_model on the whole set at once, which then tells the model, and every list of
# numbers in the check's frames, that it saw batches of the size asked for.
BATCH_SIZES_FORGED = FRAMES + r"""
_own_train = train_model
def train_model(model, x_train, y_train, n_epochs, lr, batch_size=100):
    losses = _own_train(model, x_train, y_train, n_epochs, lr, batch_size)
    sizes = [batch_size] * (len(x_train) // batch_size) * n_epochs
    model.seen = list(sizes)
    for frame in _frames():
        for key, value in list(_locals(frame).items()):
            if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
                value[:] = sizes
    return losses
"""

class Twin(NamedTuple):
    """A cheat pasted after an honest wrong answer, which it must not earn more than."""
    sample: str   # the sample student whose answers it keeps
    cell: str     # the answer cell the attack is pasted after
    code: str


TWIN_CHEATS = {
    "forward_norms_profile_hook": Twin("variant_created_in_forward", CLASS_CELL, PROFILE_HOOK),
    "eval_record_copied": Twin("variant_train_mode_only", CLASS_CELL, EVAL_RECORD_COPIED),
    "batch_norm_unwatched": Twin("other_slips", "running_statistics", BATCH_NORM_UNWATCHED),
    "batch_sizes_forged": Twin("other_slips", "train_model", BATCH_SIZES_FORGED),
}


CHEAT_CODE = {
    "fake_score_require": FAKE_SCORE_REQUIRE,
    "fake_check_functions": FAKE_CHECK_FUNCTIONS,
    "fake_module": FAKE_MODULE,
    "verdict_always_passed": VERDICT_ALWAYS_PASSED,
    "import_hook": IMPORT_HOOK,
    "shadowed_bool": SHADOWED_BOOL,
    "builtins_isinstance": BUILTINS_ISINSTANCE,
    "assertion_error_swapped": ASSERTION_ERROR_SWAPPED,
    "allclose_always_true": ALLCLOSE_ALWAYS_TRUE,
    "tensor_add_rescaled": TENSOR_ADD_RESCALED,
    "forged_trace": FORGED_TRACE,
    "shadow_output": SHADOW_OUTPUT,
    "transformer_prints_ticks": TRANSFORMER_PRINTS_TICKS,
    "cleanup_transformer_points": CLEANUP_TRANSFORMER_POINTS,
    "ast_drops_require": AST_DROPS_REQUIRE,
    "run_cell_rewritten": RUN_CELL_REWRITTEN,
    "custom_exc_only": CUSTOM_EXC_ONLY,
    "hidden_tracebacks": HIDDEN_TRACEBACKS,
    "post_run_cell_clears_errors": POST_RUN_CELL_CLEARS_ERRORS,
    "streams_and_hooks": STREAMS_AND_HOOKS,
    "negative_credit": NEGATIVE_CREDIT,
    "displayed_credit": DISPLAYED_CREDIT,
    "forge_display": FORGE_DISPLAY,
    "frame_walk": FRAME_WALK,
    "profile_hook": PROFILE_HOOK,
    "profile_hook_while_observed": PROFILE_HOOK_WHILE_OBSERVED,
}
# Cheats that answer a later exercise's cell instead: {student: (cell, its source)}.
CHEAT_CELLS = {"answer_key_by_string": ("running_statistics", ANSWER_KEY_BY_STRING)}
# Twin cheats that nothing flags: what they forge is not what the judge reads, so each earns
# what its twin earns, no more.
UNFLAGGED = {"eval_record_copied", "batch_norm_unwatched", "batch_sizes_forged"}
# Cheats whose text hides what they do: only what their model does shows them.
UNSEEN_IN_TEXT = {"shadow_output"} | UNFLAGGED


def pasted(code, release=None):
    """The untouched release with `code` pasted at the end of the first answer cell."""
    notebook = make_submission({}, release)
    cell = next(cell for cell in notebook.cells if grade_id(cell) == CLASS_CELL)
    cell.source = cell.source.rstrip("\n") + "\n\n" + code.strip("\n") + "\n"
    return notebook


def _builder(code):
    def build(release=None):
        return pasted(code, release)
    return build


def _cell_builder(cell, code):
    def build(release=None):
        return make_submission({cell: code}, release)
    return build


def _twin_builder(twin):
    def build(release=None):
        notebook = make_submission(dict(SAMPLES[twin.sample](), **guesses(twin.sample)),
                                   release)
        cell = next(cell for cell in notebook.cells if grade_id(cell) == twin.cell)
        cell.source = cell.source.rstrip("\n") + "\n\n" + twin.code.strip("\n") + "\n"
        return notebook
    return build


CHEATS = {student: _builder(code) for student, code in CHEAT_CODE.items()}
CHEATS.update({student: _cell_builder(*answer) for student, answer in CHEAT_CELLS.items()})
CHEATS.update({student: _twin_builder(twin) for student, twin in TWIN_CHEATS.items()})



# --- roundabout answers, judged in process (issue 24's second red team) ------------------
# Each is a wrong answer dressed to pass a check it fails, by a route the text scan does
# not flag: another entry to batch norm, steps on the whole set that look like batches, a
# train_model that knows the restart run, eval statistics rewritten on the fly. Judged in
# process by tests/test_judge.py, where each must fail what its plain wrong answer fails.

class Roundabout(NamedTuple):
    plain: str            # the wrong answer, as a student writes it
    dressed: str          # pasted after it
    answer: str           # the name the checks take from the cell
    checks: tuple


_RUNNING = answers.SLIPS["running_with_batchnorm"].source
_FULL_BATCH = answers.SLIPS["train_full_batch"].source
_BATCH_STATISTICS_IN_EVAL = answers.CATEGORIES["book"].source + r"""
import torch.nn.functional as F
class BN(nn.BatchNorm1d):
  def forward(self, x):
    if self.training:
      return super().forward(x)
    return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
_init = ResidualNetworkWithBatchNorm.__init__
def _init2(self, *a, **k):
  _init(self, *a, **k)
  for n in ("bn1", "bn2", "bn3", "bn4", "bn5"):
    setattr(self, n, BN(getattr(self, n).num_features))
ResidualNetworkWithBatchNorm.__init__ = _init2
"""
_STEPS_ON_THE_WHOLE_SET = r"""
  losses = []
  steps = -(-len(x_train) // batch_size)
  for epoch in range(n_epochs):
    total = 0.0
    for s in range(steps):
      optimizer.zero_grad()
      loss = loss_function(%s, y_train)
      loss.backward()
      optimizer.step()
      total += loss.item()
    losses.append(total / steps)
  return losses
"""
_TRAIN_HEAD = """def train_model(model, x_train, y_train, n_epochs, lr, batch_size=100):
  loss_function = nn.CrossEntropyLoss()
  optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
  model.apply(weights_init)
"""

ROUNDABOUT = {
    "update_stats": Roundabout(_RUNNING, """
def running_statistics(batches, momentum=0.1):
  rm, rv = torch.zeros(batches[0].shape[1]), torch.ones(batches[0].shape[1])
  for batch in batches:
    torch.batch_norm_update_stats(batch, rm, rv, momentum)
  return rm, rv
""", "running_statistics", ("running_mean", "running_var")),
    "scripted_batch_norm": Roundabout(_RUNNING, """
def running_statistics(batches, momentum=0.1):
  layer = torch.jit.script(nn.BatchNorm1d(batches[0].shape[1], momentum=momentum))
  for batch in batches:
    layer(batch)
  return layer.running_mean, layer.running_var
""", "running_statistics", ("running_mean", "running_var")),
    "whole_set_with_a_small_forward": Roundabout(
        _FULL_BATCH, _TRAIN_HEAD + "  with torch.no_grad():\n    model(x_train[:1])\n"
        + _STEPS_ON_THE_WHOLE_SET % "model(x_train)", "train_model", ("train_model",)),
    "whole_set_in_chunks": Roundabout(
        _FULL_BATCH, _TRAIN_HEAD + _STEPS_ON_THE_WHOLE_SET
        % "torch.cat([model(xb) for xb in x_train.split(batch_size)])",
        "train_model", ("train_model",)),
    "knows_the_restart_run": Roundabout(answers.SLIPS["train_without_init"].source, """
_train_model = train_model
def train_model(model, x_train, y_train, n_epochs, lr, batch_size=100):
  if all(bool((p == 5).all()) for p in model.parameters()):
    model.apply(weights_init)
  return _train_model(model, x_train, y_train, n_epochs, lr, batch_size=batch_size)
""", "train_model", ("train_model",)),
    "eval_statistics_rewritten": Roundabout(_BATCH_STATISTICS_IN_EVAL, r"""
_seen = {}
def _eval_forward(self, x):
  if self.training:
    return nn.BatchNorm1d.forward(self, x)
  if x.shape[0] > 1:
    m, v = x.mean(0), x.var(0, unbiased=False)
    _seen.setdefault(id(self), []).append((x[0].detach().clone(), m.detach(), v.detach()))
  else:
    m, v = next(((m, v) for r, m, v in _seen.get(id(self), [])
                 if torch.allclose(r, x[0], atol=1e-4)),
                (self.running_mean.clone(), self.running_var.clone()))
  with torch.no_grad():
    self.running_mean.copy_(m); self.running_var.copy_(v)
  return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                      False, 0.0, self.eps)
BN.forward = _eval_forward
""", "ResidualNetworkWithBatchNorm", ("train_eval",)),
}
