"""The grader's side of the judge: what it asks the student's kernel, and what it believes.

For each autograded test cell, ``SandboxedExecute`` (coursekit.grading.preprocessors) runs the
cell's visible code in the student's kernel, as the student saw it, and keeps its output.
The hidden part never reaches the kernel. Instead the grader sends a ``request``: fresh
copies of the checks' two halves, which observe the student's objects for seed 0 and for a
seed drawn from the course's secret, and send the observations back as text. The grader
judges them in its own process (coursekit.kernel.judge), and the cell's graded outcome is that
verdict. Whatever the student's code did to the kernel, it can change what was observed,
never how it is judged; the judge confirms what it believes (see judge.py).

A notebook is flagged, with one sentence in the grade table, the log and the feedback
page, when its kernel's own test results disagree with the judge's, when code the
notebook wrote replaced or hooked what the checks rely on, or when an observation is
missing or does not add up. Its points stay the judge's.
"""
import ast
import builtins
import functools
import hashlib
import hmac
import json
import marshal
import multiprocessing.util
import os
import re
import secrets
import shutil
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path

from coursekit.course import KERNEL_FILES, KERNEL_MODULES, grade_id, is_locked
from coursekit.record import OWN_RUN
from coursekit.grading.verdicts import printed_verdicts
from coursekit.kernel.testcells import TEST_CELLS, asked

# Which check grades each autograded test cell, and the student's objects it observes
# (a Python expression in the notebook's namespace).
TESTS = {cell.grade_id: (cell.check, cell.arguments) for cell in TEST_CELLS}

# What the grader asks the kernel to observe for each check (testcells.asked): the network
# checks read one traced forward pass, so the network's cells in a row cost the kernel one
# request. (Asking for train_eval's, which holds that pass, would send its train- and
# eval-mode passes too: three times the data, for nothing.)
ASKED = {cell.check: asked(cell.check) for cell in TEST_CELLS}

MIME = "text/x-udl-observation"
# Room for one request's observations (a traced forward pass is about 4 MB as text).
MAX_OBSERVATION_BYTES = 64_000_000
SECRET_FILE = ".judge_secret"


def course_secret(root):
    """The course's secret, made on first use; only the grader can read it.

    Seeds drawn from it are the same every time a notebook is graded again, and no
    student can know them. Keep the file (it is in .gitignore) to keep grades stable.
    """
    path = Path(root) / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_hex(32).encode())
        return path.read_bytes()


def secret_seed(secret, *about):
    """A seed in [1000, 2**31) for one observation of one submission."""
    digest = hmac.new(secret, "\0".join(about).encode(), hashlib.sha256).digest()
    return 1000 + int.from_bytes(digest[:8], "big") % (2 ** 31 - 1000)


@functools.lru_cache(maxsize=1)
def _compiled_checks():
    """Both halves of the checks compiled here once, as bytes, and their sha256."""
    folder = Path(__file__).resolve().parent.parent / "kernel"
    compiled = marshal.dumps({name: compile((folder / file).read_text(), name + ".py", "exec")
                              for name, file in KERNEL_FILES.items()})
    return compiled, hashlib.sha256(compiled).hexdigest()


_checks_path = None


def checks_file():
    """(path, sha256) of a read-only file holding both halves of the checks, written for
    this process's kernels to load fresh at every request. The request names it instead
    of carrying it: ipykernel hashes every cell's text in pure Python, and the 92 KB the
    compiled checks came to as text cost the kernel about 0.03 s a request. The sandbox
    mounts its folder read-only (coursekit.grading.sandbox); a kernel without one reads it
    where it is. Written again if it is gone (a formgrader left running for days, whose
    /tmp the system cleaned)."""
    global _checks_path
    compiled, digest = _compiled_checks()
    if _checks_path is None or not os.path.isfile(_checks_path):
        _remove_left_behind(tempfile.gettempdir())
        here = tempfile.mkdtemp(prefix="udl-checks-%d-" % os.getpid())
        # Removed when this process exits, a grading worker included (multiprocessing ends
        # those without atexit), and never by a forked child's exit: Finalize keeps its pid.
        multiprocessing.util.Finalize(None, shutil.rmtree, args=(here,),
                                      kwargs={"ignore_errors": True}, exitpriority=0)
        os.chmod(here, 0o755)  # the sandbox's own user reads it
        path = os.path.join(here, "checks.marshal")
        with open(path, "wb") as handle:
            handle.write(compiled)
        os.chmod(path, 0o444)
        _checks_path = path
    return _checks_path, digest


def _remove_left_behind(top):
    """The folders checks_file made in processes that have ended without removing them
    (killed: a Dask worker stopped with its cluster), this user's only."""
    for entry in os.scandir(top):
        made_by = re.fullmatch(r"udl-checks-(\d+)-\w+", entry.name)
        if (made_by and entry.is_dir(follow_symlinks=False)
                and entry.stat(follow_symlinks=False).st_uid == os.getuid()):
            try:
                os.kill(int(made_by.group(1)), 0)
            except ProcessLookupError:
                shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:  # alive, as another user
                pass


def request(check, arguments, seeds, nonce):
    """The code sent to the kernel: observe `check` for `seeds`, show the result as text."""
    path, digest = checks_file()
    return _REQUEST % dict(path=path, digest=digest, modules=tuple(KERNEL_FILES),
                           check=check, arguments=arguments,
                           seeds=list(seeds), nonce=nonce, mime=MIME)


# Runs in the student's kernel, after the test cell's visible code. Nothing it reports is
# believed without the judge's confirmation. It leaves the notebook's own modules as found.
_REQUEST = '''\
def _udl_grader_request():
    import gc, hashlib, marshal, sys, types
    with open(%(path)r, "rb") as handle:
        compiled = handle.read()
    if hashlib.sha256(compiled).hexdigest() != %(digest)r:
        raise RuntimeError("the grader's copy of its checks has changed")
    found = {name: sys.modules.get(name) for name in %(modules)r}
    fresh = {}
    try:
        for name, code in marshal.loads(compiled).items():
            sys.modules[name] = fresh[name] = types.ModuleType(name)
            exec(code, fresh[name].__dict__)
    finally:
        for name, module in found.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    judge, checks = fresh["udl_bn_judge"], fresh["udl_bn_checks"]
    helpers = found["udl_bn_checks"]
    hooked = checks.suspend_hooks()
    report = {"nonce": %(nonce)r, "integrity": checks.integrity() + hooked,
              "fingerprints": {}}
    for label, module in (("checks", helpers), ("judge", getattr(helpers, "judge", None)),
                          ("judge module", found["udl_bn_judge"])):
        if isinstance(module, types.ModuleType):
            report["fingerprints"][label] = checks.code_fingerprint(module)
    # What the notebook built so far is set aside from garbage collection while observing:
    # a full collection over it cost a request about 0.2 s, at random.
    gc.freeze()
    try:
        report["observations"] = checks.observations(%(check)r, lambda: (%(arguments)s,),
                                                     %(seeds)r)
    finally:
        gc.unfreeze()
    report["hooked_while_observing"] = list(dict.fromkeys(checks.suspend_hooks()
                                                          + checks.HOOKED))
    from IPython.display import display
    display({%(mime)r: judge.encode(report)}, raw=True)
_udl_grader_request()
del _udl_grader_request
'''

# Runs in the student's kernel after one of its cells failed. The failed cell's frames stay
# referenced from its traceback (IPython keeps the exception), and with them everything
# they held: after a cell that filled memory up to the cap and failed, every later cell,
# the grader's requests included, would fail for want of memory. Clearing the frames of
# the error and of every error it was raised from lets that memory go, so that a runaway
# cell costs only itself. (Reading `f_locals` again drops the copy of the cleared locals
# that formatting the traceback made.)
RELEASE_FAILED_CELL = '''\
def _udl_release_failed_cell():
    import gc, sys, traceback
    errors, seen = [getattr(sys, "last_value", None)], set()
    while errors:
        error = errors.pop()
        if not isinstance(error, BaseException) or id(error) in seen:
            continue
        seen.add(id(error))
        trace = error.__traceback__
        traceback.clear_frames(trace)
        while trace is not None:
            trace.tb_frame.f_locals
            trace = trace.tb_next
        errors += [error.__cause__, error.__context__, *getattr(error, "exceptions", ())]
    gc.collect()
_udl_release_failed_cell()
del _udl_release_failed_cell
'''


@dataclass
class Observed:
    """What came back from one request: the observations per seed, and what the kernel
    looked like (names replaced or hooked, fingerprints of the checks' modules)."""
    observations: list
    integrity: list = field(default_factory=list)
    fingerprints: dict = field(default_factory=dict)
    # Trace or profile hooks that the student's code set while it was being observed.
    hooked_while_observing: list = field(default_factory=list)


# Said when the kernel ran out of memory while observing: the grader's own limits (or a
# CUDA build of torch, which needs 3.3 GB of address space to import) are to blame, not the
# notebook, so the instructor is told what to check rather than that it tampered.
OUT_OF_MEMORY = ("the grader's request ran out of memory in the kernel (MemoryError): check "
                 "c.Sandbox.memory_gib and that torch is the CPU build")


def read_reply(outputs, nonce, seeds):
    """Observed, or a sentence saying why the reply cannot be used."""
    from coursekit.kernel import judge

    if any(o.get("output_type") == "error" and o.get("ename") == "MemoryError"
           for o in outputs):
        return OUT_OF_MEMORY
    texts = [o.get("data", {}).get(MIME) for o in outputs
             if o.get("output_type") == "display_data" and isinstance(o.get("data"), dict)]
    texts = [t for t in texts if isinstance(t, str)]
    if len(texts) != 1:
        return "the grader's request for observations %s" % (
            "came back %d times" % len(texts) if texts else "did not come back")
    try:
        report = judge.decode(texts[0])
    except judge.Unreadable:
        return "the grader's request came back unreadable"
    if not isinstance(report, dict) or report.get("nonce") != nonce:
        return "the grader's request came back with another request's answer"
    observations = report.get("observations")
    if not isinstance(observations, list) or len(observations) != len(seeds):
        return "the grader's request came back without its observations"
    names = lambda key: [str(name)[:200] for name in report.get(key) or []][:50]  # noqa: E731
    if "hooked_while_observing" not in report:
        return "the grader's request came back without its check of hooks"
    fingerprints = report.get("fingerprints")
    return Observed(observations, names("integrity"),
                    fingerprints if isinstance(fingerprints, dict) else {},
                    names("hooked_while_observing"))


@functools.lru_cache(maxsize=1)
def expected_fingerprints():
    """The fingerprints of the checks' modules as this course ships them: the grader's own
    copies, which nothing changes, hashed once (every request's reply is compared)."""
    from coursekit.kernel import checks, judge

    judge_print = checks.code_fingerprint(judge)
    return {"checks": checks.code_fingerprint(checks), "judge": judge_print,
            "judge module": judge_print}


def changed_modules(fingerprints):
    """Names of what differs from the shipped checks, as 'udl_bn_checks.score'."""
    expected = expected_fingerprints()
    changed = []
    for label, shipped in expected.items():
        seen = fingerprints.get(label)
        if not isinstance(seen, dict):  # the helpers cell always makes both modules
            changed.append("%s (missing)" % ("udl_bn_checks" if label == "checks"
                                             else "udl_bn_judge"))
            continue
        module = "udl_bn_checks" if label == "checks" else "udl_bn_judge"
        for name in sorted(set(shipped) | set(seen)):
            if shipped.get(name) != seen.get(name):
                changed.append("%s.%s" % (module, name))
    return sorted(set(changed))


# Observations are believed only from a kernel where these are what the libraries ship.
INTEGRITY_CHECKED = ("torch", "numpy", "builtins", "math")


def verdicts(check, arguments, reply, seeds, distrust=None):
    """(the judge's verdicts for each seed, findings: sentences about tampering).

    `distrust` says why nothing this kernel reports can be believed (the notebook's own
    code tampers with the checks, IPython or the libraries); every verdict then fails."""
    from coursekit.authoring import reference
    from coursekit.kernel import judge

    if not isinstance(reply, Observed):
        return [judge.Verdict(check, False, "The grader could not observe your code: %s. Run "
                              "the notebook from the top: each check needs the cells above "
                              "it." % reply)], ["in %s, %s" % (check, reply)]
    replaced = [name for name in reply.integrity if name.split(".")[0] in INTEGRITY_CHECKED]
    distrust = distrust or ("code in your notebook replaced %s, which the checks rely on"
                            % ", ".join(replaced[:3]) if replaced else None)
    hooked = reply.hooked_while_observing
    distrust = distrust or ("code in your notebook set %s while the checks ran"
                            % ", ".join(hooked[:3]) if hooked else None)
    judged, findings = [], []
    for observation, seed in zip(reply.observations, seeds):
        verdict = judge.judge(check, observation, seed, reference.expected(check, seed))
        network = getattr(observation, "network", observation)
        why = (judge.unconfirmed(network, seed)
               if isinstance(network, judge.NetworkObservation) else None)
        if why:  # said of the record, so the checks that share it name it once
            findings.append("what the kernel reported of %s does not add up (%s)"
                            % (arguments, why))
        if distrust:  # named once, where it was found
            verdict = judge.Verdict(check, False, "The grader could not confirm what your "
                                    "code computed: %s. Remove that code and run the notebook "
                                    "again." % distrust)
        elif verdict.untrusted and verdict.untrusted != why:
            findings.append("in %s, what the kernel reported does not add up (%s)"
                            % (check, verdict.untrusted))
        judged.append(verdict)
    return judged, findings


# What the student's own cells may not do, read from the submitted text by the grader (the
# kernel cannot hide these). Honest answers to this notebook never need any of them.
# ("stack" is not here: torch.stack and np.stack are everyday code; inspect.stack's frames
# are reached through the f_ names.)
_INTROSPECTION = {"_getframe", "currentframe", "f_back", "f_locals", "f_globals",
                  "get_referrers", "get_objects", "settrace", "setprofile", "addaudithook",
                  "__code__", "__globals__", "_current_frames", "walk_stack", "walk_tb",
                  "tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_trace", "monitoring",
                  "gettrace", "getprofile",
                  # the observers' state through closures and torch's own registries
                  "__closure__", "cell_contents", "_get_current_function_mode_stack",
                  "_get_function_stack_at", "_global_forward_hooks",
                  "_global_forward_pre_hooks", "DisableTorchFunction",
                  "_pop_torch_function_stack", "_push_on_torch_function_stack",
                  "_disable_torch_function_impl", "_pop_mode_temporarily", "_pop_mode",
                  "_push_mode", "_set_torch_function_state", "_TorchFunctionState",
                  "_is_torch_function_mode_enabled", "_len_torch_function_stack",
                  "_get_current_function_mode", "_get_current_dispatch_mode",
                  "_disable_current_modes", "_python_dispatch",
                  # the checks' torch modes hold for the thread that runs them only
                  "Thread", "start_new_thread", "ThreadPoolExecutor"}
_IPYTHON = {"events", "input_transformers_post", "input_transformers_cleanup",
            "input_transformer_manager", "ast_transformers", "set_custom_exc",
            "showtraceback", "showsyntaxerror", "display_pub", "run_cell", "run_cell_async",
            "CustomTB", "displayhook", "excepthook", "register_magic_function"}
_RUN_TIME = {"exec", "eval", "compile", "__import__"}
# Modules whose attributes the checks or the grader rely on, as a notebook names them.
_WATCHED_NAMES = {"torch", "nn", "np", "numpy", "F", "builtins", "sys", "IPython", "math",
                  "types", *KERNEL_MODULES}
_CHECKS_API = {"score", "require", "recall", "show", "steps", "finished",
               "checks_so_far"} | {cell.called for cell in TEST_CELLS}
_BUILTINS = {name for name, value in vars(builtins).items()
             if isinstance(value, type) and issubclass(value, BaseException)} | {
    "super", "isinstance", "issubclass", "getattr", "setattr", "hasattr", "callable",
    "display", "__import__", "exec", "eval", "compile", "globals", "vars"}
# Phrases of suspicious_code that honest code can produce (debugging with inspect, say):
# flagged, but the observations are still believed.
WEAK = ("imports ",)


def _root(node):
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "vars" and node.args):  # vars(sys)["settrace"] = ...
            node = node.args[0]
            continue
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


class _Folder:
    """The text an expression of a cell always makes, when it is built of constants only:
    `"set" + "trace"`, `"".join([...])`, `"{}{}".format(...)`, f-strings, `%`, `chr(115)`,
    slices, and names the cell binds once, to such an expression. A name the scan knows,
    built this way, is as suspicious as the name written out."""

    LONGEST = 100  # longer than any name looked for: not folded further
    # A width or precision of three digits or more ("%0999999999d") would make the folding
    # itself allocate gigabytes (str.format and f-strings with a format spec are not folded).
    WIDE = re.compile(r"%[^%a-zA-Z]*(\d{3}|\*)")
    METHODS = ("join", "format", "replace", "lower", "upper", "strip", "lstrip", "rstrip",
               "capitalize", "title", "swapcase")

    def __init__(self, tree):
        bindings, values = {}, {}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.With, ast.AsyncWith,
                                   ast.comprehension)):
                targets = [getattr(node, "target", None)] + [
                    item.optional_vars for item in getattr(node, "items", [])]
            else:
                continue
            for target in filter(None, targets):
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        bindings[name.id] = bindings.get(name.id, 0) + 1
                        values[name.id] = node.value if name is target and isinstance(
                            node, (ast.Assign, ast.NamedExpr)) else None
        self.bound = {name: value for name, value in values.items()
                      if value is not None and bindings[name] == 1}
        self._folded, self._busy = {}, set()

    def text(self, node):
        """The string `node` always evaluates to, or None."""
        value = self.value(node)
        return value if isinstance(value, str) else None

    def built(self, node):
        """The text of `node` when it is assembled from pieces (not one literal, nor an
        f-string of literal text only)."""
        if isinstance(node, ast.Constant):
            return None
        text = self.text(node)
        # Picked whole from literals (("a", "b")[0], "%s" % "a", f"a"): written out, not built.
        if text is None or text in self._literals(node, set()):
            return None
        return text

    def _literals(self, node, seen):
        """The string literals `node` is made of, through the names it reads."""
        found = set()
        for part in ast.walk(node):
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                found.add(part.value)
            elif isinstance(part, ast.Name) and part.id in self.bound and part.id not in seen:
                seen.add(part.id)
                found |= self._literals(self.bound[part.id], seen)
        return found

    def value(self, node):
        key = id(node)
        if key not in self._folded:
            if key in self._busy:  # a name bound to an expression that names itself
                return None
            self._busy.add(key)
            try:
                value = self._value(node)
            except (TypeError, ValueError, IndexError, KeyError, OverflowError,
                    RecursionError, MemoryError):
                value = None
            finally:
                self._busy.discard(key)
            if isinstance(value, str) and len(value) > self.LONGEST or (
                    isinstance(value, list) and len(value) > self.LONGEST):
                value = None
            self._folded[key] = value
        return self._folded[key]

    def _value(self, node):
        fold = self.value
        if isinstance(node, ast.Constant):
            return node.value if isinstance(node.value, (str, int)) else None
        if isinstance(node, ast.Name):
            return fold(self.bound[node.id]) if node.id in self.bound else None
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [fold(item) for item in node.elts]
            return None if None in items else items
        if isinstance(node, ast.BinOp):
            left, right = fold(node.left), fold(node.right)
            if isinstance(left, str) and isinstance(right, str) and isinstance(node.op, ast.Add):
                return left + right
            if (isinstance(left, str) and right is not None and isinstance(node.op, ast.Mod)
                    and not self.WIDE.search(left)):
                return left % (tuple(right) if isinstance(right, list) else right)
            return None
        if isinstance(node, ast.JoinedStr):
            if any(isinstance(part, ast.FormattedValue) and (
                    part.format_spec is not None or part.conversion != -1)
                   for part in node.values):
                return None  # f"{x:>999999999}": not folded, never allocated
            parts = [fold(part.value if isinstance(part, ast.FormattedValue) else part)
                     for part in node.values]
            return None if None in parts else "".join(str(part) for part in parts)
        if isinstance(node, ast.Subscript):
            sequence, index = fold(node.value), node.slice
            if not isinstance(sequence, (str, list)):
                return None
            if isinstance(index, ast.Slice):
                return sequence[slice(*(None if part is None else fold(part) for part in
                                        (index.lower, index.upper, index.step)))]
            return sequence[fold(index)]
        if isinstance(node, ast.Call) and not node.keywords:
            arguments = [fold(argument) for argument in node.args]
            if None in arguments:
                return None
            if isinstance(node.func, ast.Name) and node.func.id in ("chr", "str"):
                return (chr if node.func.id == "chr" else str)(*arguments)
            if isinstance(node.func, ast.Attribute) and node.func.attr in self.METHODS:
                owner = fold(node.func.value)
                if isinstance(owner, str) and not (node.func.attr == "format"
                                                   and re.search(r"[:!]", owner)):
                    return getattr(owner, node.func.attr)(*arguments)
        return None


@functools.lru_cache(maxsize=1)
def _checks_internals():
    """What the checks' modules define that a notebook has no business calling: their
    private helpers and their observing, judging and tracing functions (the answer key
    among them). Names of plain words or constants ("Block", "HIDDEN_SIZE") are left out:
    a label such as f"{name}" must never count."""
    from coursekit.kernel import checks, judge

    return frozenset(
        name for module in (checks, judge) for name, value in vars(module).items()
        if not name.startswith("__") and name not in _CHECKS_API
        and (callable(value) or isinstance(value, dict))
        and getattr(value, "__module__", module.__name__) == module.__name__
        and not isinstance(value, types.ModuleType)
        and (name.startswith("_") or "_" in name and not isinstance(value, type)))


@functools.lru_cache(maxsize=1)
def _known_names():
    """Every name the scan recognizes when a cell builds it from pieces or reads it by a
    string: the interpreter's and IPython's machinery, and the checks' internals."""
    return frozenset(name for name in _INTROSPECTION | _IPYTHON | _checks_internals() | {
        "__builtins__", "import_module", *KERNEL_MODULES}
        if "_" in name or len(name) >= 8)


def _namespace(node):
    """Whether `node` is a namespace read by key: vars(x), globals(), locals(),
    x.__dict__, sys.modules or __builtins__ (where "eval" is the builtin, not a dict's
    key)."""
    return ((isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id in ("vars", "globals", "locals"))
            or (isinstance(node, ast.Attribute) and node.attr in ("__dict__", "modules"))
            or (isinstance(node, ast.Name) and node.id in ("__builtins__", "builtins")))


def suspicious_code(source):
    """What a cell of the student's does to the checks or the interpreter, as short
    phrases; [] for honest code."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        tree = ast.parse("\n".join(lines))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    try:
        return _suspicious_tree(tree)
    except RecursionError:
        return ["is nested too deeply to read"]


def _suspicious_tree(tree):
    folder = _Folder(tree)
    known, internals = _known_names(), _checks_internals()
    built, read = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.expr):
            text = folder.built(node)
            if text in known:
                built.append("builds the name %s from pieces" % text)
        # getattr(sys, "settrace"), vars(sys)["settrace"], sys.modules.get("udl_bn_judge"):
        # read below as sys.settrace, sys.modules.udl_bn_judge.
        named, owner = None, None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "getattr" and len(node.args) > 1):
            named, owner = folder.text(node.args[1]), node.args[0]
        elif isinstance(node, ast.Subscript) and _namespace(node.value):
            named, owner = folder.text(node.slice), node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("get", "pop", "setdefault") and node.args
              and _namespace(node.func.value)):
            named, owner = folder.text(node.args[0]), node.func.value
        if not isinstance(named, str) or not named.isidentifier():
            continue
        if named in KERNEL_MODULES or named in internals:
            built.append("reaches into the checks (%s)" % named)
        elif named in _RUN_TIME and _namespace(owner):
            built.append("runs code it builds at run time (%s)" % named)
        elif named in _INTROSPECTION or named in _IPYTHON:
            read.append(ast.Expr(ast.Attribute(value=owner, attr=named, ctx=ast.Load())))
    tree.body.extend(read)
    relied, checks = set(_WATCHED_NAMES), set(KERNEL_MODULES)
    found = built
    for node in ast.walk(tree):  # names the cell gives those modules (import ... as _C)
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in relied:
                    relied.add(alias.asname or alias.name.split(".")[0])
                if alias.name in checks:
                    checks.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in relied:
            relied.update(alias.asname or alias.name for alias in node.names)
    relied |= checks
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _INTROSPECTION:
            found.append("looks at the interpreter's frames or hooks (%s)" % node.attr)
        elif isinstance(node, ast.Attribute) and node.attr in _IPYTHON:
            found.append("changes how IPython runs cells (%s)" % node.attr)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in _RUN_TIME):
            found.append("runs code it builds at run time (%s)" % node.func.id)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in checks and node.attr not in _CHECKS_API):
            found.append("reaches into the checks (%s.%s)" % (node.value.id, node.attr))
        elif isinstance(node, ast.Attribute) and node.attr in internals and (
                node.attr.startswith(("_", "observe_", "judge_"))
                and ("_" in node.attr.strip("_") or node.attr.lstrip("_")[:1].isupper())):
            # C = udl_bn_checks; C._refusing_batch_norm: a name only the checks use (not a
            # word such as _build or _train, which a student's own class may have).
            found.append("reaches into the checks (%s)" % node.attr)
        elif isinstance(node, ast.ImportFrom) and any(
                alias.name in _INTROSPECTION | _IPYTHON | _RUN_TIME | internals
                or (node.module or "").split(".")[0] in KERNEL_MODULES
                and alias.name not in _CHECKS_API for alias in node.names):
            found.append("takes %s from %s, which %s" % (
                ", ".join(alias.name for alias in node.names), node.module,
                "reaches into the checks" if (node.module or "").startswith("udl_bn_")
                else "looks at the interpreter's frames or hooks"))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] + [getattr(node, "module", "") or ""]
            if any(name.split(".")[0] in set(KERNEL_MODULES) - {"udl_bn_checks"} | {
                       "gc", "inspect", "ctypes", "importlib"}
                   or name == "udl_bn_checks" and isinstance(node, ast.ImportFrom)
                   for name in names):
                found.append("imports %s" % ", ".join(n for n in names if n))
        targets = []
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = getattr(node, "targets", None) or [node.target]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("setattr", "delattr") and node.args):
            named = node.args[1] if len(node.args) > 1 else None
            targets = [ast.Attribute(value=node.args[0], attr=named.value if isinstance(
                named, ast.Constant) and isinstance(named.value, str) else "...")]
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, (ast.Attribute, ast.Subscript)) and _root(part) in relied:
                    found.append("replaces %s" % ast.unparse(part)[:60])
                    break
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names = [node.name]
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            names = [t.id for t in (getattr(node, "targets", None) or [node.target])
                     if isinstance(t, ast.Name)]
        else:
            names = []
        found += ["rebinds the builtin %s" % name for name in names if name in _BUILTINS]
    return list(dict.fromkeys(found))


def distrusted(findings):
    """Why no observation of this notebook's kernel can be believed, or None: the first
    finding of suspicious_cells that honest code never produces."""
    strong = [f for f in findings if not any(weak in f for weak in WEAK)]
    return ("your notebook's %s" % strong[0]) if strong else None


def suspicious_cells(nb):
    """Findings about the cells a student writes (answers, and cells of their own)."""
    findings = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or is_locked(cell):
            continue
        for what in suspicious_code(cell.source if isinstance(cell.source, str) else ""):
            findings.append("%s %s" % (grade_id(cell) or "cell %d" % (index + 1), what))
    return findings


def kernel_passed(outputs):
    """Whether the visible check passed in the student's kernel, by what it printed: True,
    False, or None when it left no verdict (its output cut by the caps, say)."""
    if any(o.get("output_type") == "error" for o in outputs):
        return False
    marks = [mark for mark, _ in printed_verdicts(o for o in outputs
                                                  if o.get("name") == "stdout")]
    return None if not marks else ("✓" in marks and "✗" not in marks)


def tampering_sentence(findings):
    """One sentence for the grade table, the log and the feedback page."""
    if all(OUT_OF_MEMORY in finding for finding in findings):
        return "Not graded in full: %s; grade this student again once it has more." % (
            OUT_OF_MEMORY)
    findings = [finding for finding in findings if OUT_OF_MEMORY not in finding]
    shown = findings[:4] + (["and %d more" % (len(findings) - 4)] if len(findings) > 4 else [])
    return "Tampering seen: %s; %s, not from what the notebook's kernel reported." % (
        "; ".join(shown), OWN_RUN)


def submission_digest(sources):
    """A digest of a submission's cell sources: a new submission gets new secret seeds."""
    return hashlib.sha256(json.dumps(sources, sort_keys=True, default=str).encode()).hexdigest()
