"""The judge (issue 12): verdicts from observations, and observations that do not add up.

The observing half runs where the student's code runs; anything it reports can be forged.
These tests forge records the way a student who has read the checks would, and show that
the judge believes none of them, while every honest record keeps its verdict.
"""
import copy
import hashlib
import math
import os
import shutil
import subprocess
import sys
import json

import nbformat
import pytest
import torch

from coursekit.examples import answers as variants
from coursekit.grading import grader
from coursekit.kernel import checks, judge
from coursekit.course import SOURCE_NOTEBOOK, grade_id
from coursekit.grading.feedback import hidden_lines, visible_source
from coursekit.examples.samples import solution_cells

BOOK = variants.model_class("book")


@pytest.fixture(scope="module")
def book_trace():
    return checks.observe_network(BOOK, seed=3)


def judged(check, observation, seed=3):
    return judge.judge(check, judge.decode(judge.encode(observation)), seed)


def test_an_honest_record_keeps_its_verdicts_through_text(book_trace):
    for name in ("registered", "used", "no_compounding", "placement"):
        direct = judge.judge(name, book_trace, 3)
        assert direct.passed and direct.untrusted is None
        through_text = judged(name, book_trace)
        assert (through_text.passed, through_text.message) == (direct.passed, direct.message)


def test_the_checks_sharing_an_observation_read_its_forward_pass_once(book_trace, monkeypatch):
    """The grader judges the four network checks from one observation: the judge follows
    its forward pass once (Trace.of), not once per check."""
    observation = judge.decode(judge.encode(book_trace))
    followed = []
    follow = judge.Trace.__init__
    monkeypatch.setattr(judge.Trace, "__init__",
                        lambda trace, o: (followed.append(o), follow(trace, o))[1])
    for name in ("registered", "used", "no_compounding", "placement"):
        assert judge.judge(name, observation, 3).passed, name
    assert len(followed) == 1 and followed[0] is observation


def test_text_holds_only_records_and_tensors():
    with pytest.raises(judge.Unreadable):
        judge.decode(json.dumps({"__record__": "Popen", "args": ["sh"]}))
    with pytest.raises(judge.Unreadable):
        judge.decode(json.dumps({"__tensor__": ["object", [1], "AAAA"]}))
    with pytest.raises(judge.Unreadable):
        judge.decode(json.dumps({"__tensor__": ["float32", [1000], "AAAA"]}))
    with pytest.raises(judge.Unreadable):
        judge.decode("[" * 100_000)
    with pytest.raises(judge.Unreadable):
        judge.decode(json.dumps([{"__same__": 3}]))
    with pytest.raises(judge.Unreadable):
        judge.decode(json.dumps({"__record__": "Returned", "error": None, "value": 1,
                                 "__class__": "x"}))


def _forged(trace, change):
    forged = copy.deepcopy(trace)
    change(forged)
    return forged


def _first(trace, kind):
    return next(c for c in trace.calls if c.kind == "module" and c.module.kind == kind)


FORGERIES = {
    # A layer whose output is not what its weights make of its input.
    "linear_output": lambda t: _first(t, "Linear").output.mul_(0.5),
    "batchnorm_output": lambda t: _first(t, "BatchNorm1d").output.mul_(0.3),
    # An addition that is not the sum of its operands (a smaller variance, say).
    "addition": lambda t: next(c for c in t.calls if c.kind == "add").output.mul_(0.7),
    # A forward pass on a batch of the student's choosing, not the grader's.
    "own_batch": lambda t: [setattr(c, "inputs", [torch.randn_like(c.inputs[0])])
                            for c in t.calls[:1]],
    # A value from nowhere entering a later layer.
    "value_from_nowhere": lambda t: setattr(_first(t, "BatchNorm1d"), "inputs",
                                            [torch.randn(200, 100)]),
}


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_a_record_that_does_not_add_up_passes_nothing(book_trace, forgery):
    forged = _forged(book_trace, FORGERIES[forgery])
    for name in ("used", "no_compounding", "placement"):
        verdict = judged(name, forged)
        assert not verdict.passed, (forgery, name, verdict.message)


@pytest.mark.parametrize("forgery", sorted(FORGERIES))
def test_each_forgery_is_named_as_untrusted_when_it_would_have_passed(book_trace, forgery):
    forged = _forged(book_trace, FORGERIES[forgery])
    verdicts = [judged(name, forged) for name in ("used", "no_compounding", "placement")]
    assert any(v.untrusted for v in verdicts), [v.message for v in verdicts]
    assert all("could not confirm" in v.message for v in verdicts if v.untrusted)


def test_a_record_made_for_another_seed_is_not_believed(book_trace):
    """A student who precomputed the book network's record for one seed cannot reuse it."""
    assert judged("placement", book_trace, seed=3).passed
    assert not judged("placement", book_trace, seed=4).passed


def test_returned_values_are_recomputed_by_the_judge():
    """A forged return value is judged against the judge's own reference."""
    fake = judge.RunningObservation(judge.Returned(value=[torch.zeros(6, dtype=torch.float64),
                                                          torch.ones(6, dtype=torch.float64)]))
    assert not judged("running_mean", fake).passed
    assert not judged("running_var", fake).passed
    slope = judge.Returned(value=0.7)
    assert not judged("slope", slope, seed=1234).passed


def test_a_record_built_to_break_the_judge_fails_and_is_untrusted():
    broken = judge.NetworkObservation("x", calls=[judge.Call("module", None, [], None)])
    verdict = judged("placement", broken)
    assert not verdict.passed


NORM_LAYERS = {  # every kind the judge recomputes, with an input of a shape it takes
    "Linear": (lambda: torch.nn.Linear(100, 100), (8, 100)),
    "BatchNorm1d": (lambda: torch.nn.BatchNorm1d(100), (8, 100)),
    "BatchNorm1d, no affine": (lambda: torch.nn.BatchNorm1d(100, affine=False), (8, 100)),
    "BatchNorm1d, no running statistics": (
        lambda: torch.nn.BatchNorm1d(100, track_running_stats=False), (8, 100)),
    "LayerNorm": (lambda: torch.nn.LayerNorm(100), (8, 100)),
    "GroupNorm": (lambda: torch.nn.GroupNorm(4, 100), (8, 100)),
    "InstanceNorm1d": (lambda: torch.nn.InstanceNorm1d(100, affine=True,
                                                       track_running_stats=True), (8, 100, 5)),
    "InstanceNorm1d, one example": (lambda: torch.nn.InstanceNorm1d(8), (8, 100)),
    "LocalResponseNorm": (lambda: torch.nn.LocalResponseNorm(3), (8, 100, 5)),
}


@pytest.mark.parametrize("layer", sorted(NORM_LAYERS))
def test_the_judge_recomputes_every_traced_kind_in_train_and_eval_mode(layer):
    """An honest layer's record adds up; the same record with its output nudged does not."""
    make, shape = NORM_LAYERS[layer]
    torch.manual_seed(0)
    module = make()
    with torch.no_grad():
        for _ in range(3):  # running statistics that are not the initial zeros and ones
            module(torch.randn(shape) * 2 + 1)
    for training in (True, False):
        module.train(training)
        calls, _, error = checks.record_forward(module, torch.randn(shape) * 3 - 1,
                                                checks._Modules(module))
        assert error is None and len(calls) == 1
        call = calls[0]
        assert judge._agrees(call.output, judge._recomputed(call)), (layer, training)
        call.output = call.output + 0.01
        assert not judge._agrees(call.output, judge._recomputed(call)), (layer, training)


def test_unavailable_objects_fail_with_the_error_they_raised():
    verdict = judge.judge("used", judge.Unavailable("NameError", "name 'X' is not defined"), 0)
    assert not verdict.passed and verdict.message == "NameError: name 'X' is not defined"


# --- the grader's side ----------------------------------------------------------------------

def test_every_autograded_test_cell_is_judged_with_the_check_its_visible_code_calls():
    notebook = nbformat.read(SOURCE_NOTEBOOK, as_version=4)
    tests = {grade_id(cell): cell for cell in notebook.cells
             if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade")
             and not cell.metadata["nbgrader"].get("solution")}
    assert set(tests) == set(grader.TESTS)
    for cell_id, (check, arguments) in grader.TESTS.items():
        visible = visible_source(tests[cell_id].source)
        assert checks.OBSERVERS[check]
        called = {"plot_linear": "check_plot(", "plot_log": "check_plot("}.get(
            check, "check_%s(" % check)
        assert called + arguments.split(",")[0] in visible, cell_id
        assert hidden_lines(tests[cell_id].source), cell_id


def test_the_shipped_helpers_match_the_grader_fingerprints():
    """The notebook's helpers cell builds modules whose fingerprints the grader expects,
    so an untouched notebook is never flagged; a changed function is named."""
    import sys

    from coursekit.authoring.sync import helpers_file_text

    # Every module the helpers file defines goes back as it was: a udl_bn_expected left
    # behind would give later tests' checks the kernel's seed-0 numbers only.
    saved = {name: sys.modules.get(name) for name in grader.KERNEL_MODULES}
    try:
        exec(compile(helpers_file_text(), "udl_bn_helpers.py", "exec"), {})
        module = sys.modules["udl_bn_checks"]
        seen = {"checks": checks.code_fingerprint(module),
                "judge": checks.code_fingerprint(module.judge),
                "judge module": checks.code_fingerprint(sys.modules["udl_bn_judge"])}
        assert grader.changed_modules(seen) == []
        assert grader.changed_modules({}) == ["udl_bn_checks (missing)",
                                              "udl_bn_judge (missing)"]
        module.score = lambda verdict, points: float(points)
        module.judge.Verdict.__init__ = lambda self, *a, **k: None
        seen = {"checks": checks.code_fingerprint(module),
                "judge": checks.code_fingerprint(module.judge),
                "judge module": checks.code_fingerprint(sys.modules["udl_bn_judge"])}
        assert grader.changed_modules(seen) == ["udl_bn_checks.score", "udl_bn_judge.Verdict"]
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value


def test_secret_seeds_are_stable_and_differ_by_submission():
    secret = b"course secret"
    first = grader.secret_seed(secret, "ana", "digest-1", "used", "ResidualNetworkWithBatchNorm")
    assert first == grader.secret_seed(secret, "ana", "digest-1", "used",
                                       "ResidualNetworkWithBatchNorm")
    assert first != grader.secret_seed(secret, "ana", "digest-2", "used",
                                       "ResidualNetworkWithBatchNorm")
    assert first != grader.secret_seed(b"another course", "ana", "digest-1", "used",
                                       "ResidualNetworkWithBatchNorm")
    assert 1000 <= first < 2 ** 31


def test_the_course_secret_is_made_once_and_private(tmp_path):
    secret = grader.course_secret(tmp_path)
    assert grader.course_secret(tmp_path) == secret and len(secret) >= 32
    assert (tmp_path / grader.SECRET_FILE).stat().st_mode & 0o077 == 0


def test_the_kernel_result_is_read_from_what_the_visible_check_printed():
    def stdout(text):
        return nbformat.v4.new_output("stream", name="stdout", text=text)

    assert grader.kernel_passed([stdout("✓ fine\n")])
    assert not grader.kernel_passed([stdout("✗ no\n")])
    assert not grader.kernel_passed([stdout("✓ fine\n"), nbformat.v4.new_output(
        "error", ename="NameError", evalue="x", traceback=[])])
    assert grader.kernel_passed([]) is None  # output cut: no verdict to compare


def test_integrity_names_what_notebook_code_replaced():
    namespace = {}
    exec(compile("import torch\ndef allclose(*a, **k):\n    return True\n",
                 "/tmp/ipykernel_1/1.py", "exec"), namespace)
    original = torch.allclose
    torch.allclose = namespace["allclose"]
    try:
        assert "torch.allclose" in checks.integrity()
    finally:
        torch.allclose = original
    assert "torch.allclose" not in checks.integrity()


def test_reference_answers_pass_through_text_for_many_seeds():
    """Through text, the judge's confirmation never rejects an honest record: every network
    answer, 4 seeds (test_checks_stability runs the same confirmation in-process for 100)."""
    for variant in sorted(variants.CATEGORIES):
        model_class = variants.model_class(variant)
        for seed in range(0, 100, 25):
            observation = checks.observe_network(model_class, seed)
            for name in ("used", "no_compounding", "placement"):
                verdict = judged(name, observation, seed)
                assert verdict.untrusted is None, (variant, seed, name, verdict.message)
    rescaled = variants.run_answer(solution_cells()["residual_network_rescaled"])[
        "ResidualNetworkRescaled"]
    for seed in range(0, 100, 25):
        observation = checks.observe_network(rescaled, seed)
        for name in ("rescaled_blocks", "rescaled_flat"):
            assert judged(name, observation, seed).passed, (seed, name)


def test_the_grader_reads_tampering_from_the_submitted_text():
    """What the student's cells do to the checks, IPython or the libraries is read by the
    grader from the text (the kernel cannot hide it); honest answers raise nothing."""
    import cheats
    from coursekit.examples.samples import SAMPLES, sample_submission

    for student in SAMPLES:
        assert grader.suspicious_cells(sample_submission(student)) == [], student
    for source in [c.source for c in variants.CATEGORIES.values()] + list(
            solution_cells().values()) + [slip.source for slip in variants.SLIPS.values()]:
        assert grader.suspicious_code(source) == [], source
    # Every cheat is seen in its text but those that hide what they do, seen by the kernel.
    for name, build in cheats.CHEATS.items():
        findings = grader.suspicious_cells(build())
        assert bool(findings) == (name not in cheats.UNSEEN_IN_TEXT), (name, findings)
        assert bool(grader.distrusted(findings)) == bool(findings), name
    weak = grader.suspicious_code("import inspect\nprint(inspect.signature(print))\n")
    assert weak and grader.distrusted(weak) is None
    hidden = grader.suspicious_code("exec(bytes.fromhex('7072696e74282929').decode())\n")
    assert hidden and grader.distrusted(hidden)


@pytest.mark.parametrize("source", [
    "import udl_bn_testcells\n",
    "from udl_bn_testcells import TEST_CELLS\n",
    "from udl_bn_expected import SEED_0\n",
    "import udl_bn_judge as J\n",
])
def test_a_notebook_reaching_for_the_kernels_other_modules_is_named(source):
    """The checks' rows and seed 0's numbers are modules of the helpers file too: a cell
    that imports them is named, as one that imports the judge is."""
    assert grader.suspicious_code(source), source


def test_trace_and_profile_hooks_are_turned_off_and_named():
    """The grader's request turns off every hook that could rewrite what the observers
    return, and names it, however the notebook hid it."""
    import sys
    import threading

    from coursekit.kernel import checks

    assert checks.suspend_hooks() == []
    getter = sys.getprofile
    try:
        sys.setprofile(lambda *args: None)
        threading.settrace(lambda *args: None)
        assert checks.suspend_hooks() == ["sys.setprofile", "threading.settrace"]
        assert sys.getprofile() is None and threading.gettrace() is None
        sys.setprofile(lambda *args: None)
        sys.getprofile = lambda: None  # a getter that says nothing is set
        assert checks.suspend_hooks() == ["sys.getprofile (replaced)"]
        sys.getprofile = getter
        assert sys.getprofile() is None  # turned off all the same
    finally:
        sys.getprofile = getter
        sys.setprofile(None)
        threading.settrace(None)


@pytest.mark.parametrize("source", [
    'import sys\ngetattr(sys, "set" + "profile")(print)\n',
    'import sys\nname = "".join(["set", "trace"])\ngetattr(sys, name)(print)\n',
    'import sys\nsys.modules[f"udl_bn_{\'judge\'}"]\n',
    'import sys\nvars(sys)["gettrace"[::1]] = None\n',
    'frame = None\nf = getattr(frame, "f_%s" % "back")\n',
    'import builtins\ngetattr(builtins, "ex" "ec")("1")\n',
    'helper = getattr(object(), "_refusing_" + "batch_norm")\n',
    'import sys\njudge = sys.modules.get("udl_bn_judge")\nkey = getattr(judge, "_unused_in_eval")\n',
    'from udl_bn_judge import _unused_in_eval\n',
    'from sys import setprofile as quiet_please\n',
    'import udl_bn_checks\nC = udl_bn_checks\nnet = C._PlainNetwork()\n',
    'import builtins\nvars(builtins).get("exec")("1")\n',
])
def test_names_built_from_pieces_are_read_as_written(source):
    assert grader.distrusted(grader.suspicious_code(source)), source


@pytest.mark.parametrize("source", [
    'for k in range(1, 6):\n  layer = getattr(self, "bn%d" % k)\n',
    'mode = "eval"\nprint(f"{mode} mode")\nlabel = "check" + "s"\n',
    'stats = {"events": 1}\nprint(stats["events"])\n',
    'text = "%0999999999d" % 1\n',
    "x = " + " + ".join(['"ab"'] * 5000) + "\n",
    'import torch\nv = torch.stack([torch.ones(2), torch.zeros(2)])\n',
    'outputs = {}\noutputs["eval"] = model(x)\nlosses = {"train": [], "eval": []}\n',
    'getattr(model, "eval")()\nopts = {"compile": False}\nprint(opts["compile"])\n',
    'results = {}\nresults[f"HIDDEN_SIZE"] = 100\nprint(f"{name:>10}", "block".capitalize())\n',
    'headers = ("training_data", "validation")\nprint(headers[0], "%s" % "observations")\n',
    'class A: pass\nprint(hasattr(A(), "events"), {"monitoring": 1}["monitoring"])\n',
    'class Trainer:\n  def _build(self): self._train = self.training_data = 1\n',
    'w = "999999999"\nx = "{0:{1}}".format("a", w)\ny = f"{w:>{w}}"\n',
])
def test_honest_strings_are_not_read_as_names(source):
    assert grader.suspicious_code(source) == [], source


# --- cheats on an honest wrong answer, judged in this process (issue 24) -------------------

# {(sample, answer cell): (the name the checks take from the cell, the checks to judge)}
TWIN_CHECKS = {("variant_train_mode_only", "residual_network_with_batchnorm"):
               ("ResidualNetworkWithBatchNorm", ("train_eval",)),
               ("other_slips", "running_statistics"):
               ("running_statistics", ("running_mean", "running_var")),
               ("other_slips", "train_model"): ("train_model", ("train_model",))}


def twin_verdicts(source, twin):
    name, checked = TWIN_CHECKS[twin.sample, twin.cell]
    answer = variants.run_answer(source, "<%s>" % twin.sample)[name]
    return {check: checks.check(check, answer, seed=0) for check in checked}


@pytest.mark.parametrize("student", sorted(
    student for student, twin in __import__("cheats").TWIN_CHEATS.items()
    if (twin.sample, twin.cell) in TWIN_CHECKS))
def test_what_a_cheat_forges_from_inside_its_own_code_does_not_pass(student):
    """The observers keep nothing a frame walk from the student's code can rewrite: pasted
    after a wrong answer, the cheat fails each check that the answer alone fails."""
    import cheats
    from coursekit.examples.samples import SAMPLES

    twin = cheats.TWIN_CHEATS[student]
    honest = SAMPLES[twin.sample]()[twin.cell]
    alone = twin_verdicts(honest, twin)
    assert not any(verdict.passed for verdict in alone.values()), alone
    forged = twin_verdicts(honest.rstrip("\n") + "\n\n" + twin.code, twin)
    assert not any(verdict.passed for verdict in forged.values()), forged


def test_a_train_model_that_steps_per_batch_on_the_whole_set_cannot_claim_batches():
    """The batch sizes a train_model gave its model are kept where the model does not reach:
    one that steps once per batch, each on the whole set, and writes its model's record,
    is still told that it ignores batch_size."""
    source = '''def train_model(model, x_train, y_train, n_epochs, lr, batch_size=100):
  loss_function = nn.CrossEntropyLoss()
  optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
  model.apply(weights_init)
  losses = []
  for epoch in range(n_epochs):
    total = 0.0
    steps = range(0, len(x_train), batch_size)
    for start in steps:
      optimizer.zero_grad()
      loss = loss_function(model(x_train), y_train)
      loss.backward()
      optimizer.step()
      total += loss.item()
    losses.append(total / len(steps))
  model.seen = [batch_size] * 100
  return losses
'''
    verdict = checks.check("train_model", variants.run_answer(source)["train_model"], seed=0)
    assert not verdict.passed and "ignores batch_size" in verdict.message, verdict.message


@pytest.mark.parametrize("name", sorted(__import__("cheats").ROUNDABOUT))
def test_a_wrong_answer_dressed_by_a_roundabout_route_still_fails(name):
    """Neither the plain wrong answer nor the same answer dressed up passes its checks, and
    the text scan has nothing to say of either: the judge alone must see through it."""
    import cheats

    case = cheats.ROUNDABOUT[name]
    for source in (case.plain, case.plain.rstrip("\n") + "\n\n" + case.dressed):
        assert grader.suspicious_code(source) == [], (name, grader.suspicious_code(source))
        answer = variants.run_answer(source, "<%s>" % name)[case.answer]
        for check in case.checks:
            verdict = checks.check(check, answer, seed=0)
            assert not verdict.passed, (name, check, verdict.message)


def _pairs_near_the_tolerance():
    """(output, expected) pairs around every edge of allclose: equal, within and just past
    the tolerance in one element, NaN or an infinity on either side, empty, a scalar, and
    outputs of other dtypes."""
    generator = torch.Generator().manual_seed(0)
    expected = torch.randn(200, 100, generator=generator, dtype=torch.float64)
    pairs = [(expected.float(), expected), (expected.clone(), expected),
             (torch.empty(0, 100), torch.empty(0, 100, dtype=torch.float64)),
             (torch.tensor(1.0), torch.tensor(1.0005, dtype=torch.float64)),
             (torch.tensor(1.0), torch.tensor(1.003, dtype=torch.float64)),
             (torch.ones(3, dtype=torch.int64), torch.ones(3, dtype=torch.float64)),
             (torch.ones(3, dtype=torch.bool), torch.ones(3, dtype=torch.float64)),
             (expected.half(), expected), (expected.float()[:, :99], expected)]
    for where in (0, 63, 64, 19_999):
        for step in (0.999e-3, 1.001e-3, 1e-2, float("nan"), float("inf"), -float("inf")):
            for bad_side in ("output", "expected"):
                output, wanted = expected.clone().float(), expected.clone()
                changed = output if bad_side == "output" else wanted
                value = changed.view(-1)[where]
                changed.view(-1)[where] = step if not math.isfinite(step) else (
                    value + step * (1 + abs(float(value))))
                pairs.append((output, wanted))
    return pairs


def test_the_judges_fast_comparisons_decide_as_torch_allclose_does():
    """_agrees and _close are written out for speed; they must decide exactly as the
    allclose calls they replaced, on every edge."""
    for output, expected in _pairs_near_the_tolerance():
        old_agrees = (tuple(output.shape) == tuple(expected.shape)
                      and bool(torch.isfinite(expected).all())
                      and torch.allclose(output.double(), expected, rtol=1e-3, atol=1e-3))
        assert judge._agrees(output, expected) == old_agrees, (output, expected)
        a, b = output.double(), expected
        old_close = a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)
        assert judge._close(a, b) == old_close, (a, b)
    assert judge._agrees(torch.ones(3), None) is False


def test_a_request_refuses_checks_that_are_not_the_graders(tmp_path):
    """The grader's request loads the checks from a file it names with its digest: a copy
    that differs by one byte is refused, not run."""
    path, _ = grader.checks_file()
    forged = tmp_path / "checks.marshal"
    forged.write_bytes(open(path, "rb").read() + b"\0")
    code = grader.request("registered", "ResidualNetworkWithBatchNorm", [0], "0" * 32)
    with pytest.raises(RuntimeError, match="the grader's copy of its checks has changed"):
        exec(code.replace(path, str(forged)), {})


def test_the_checks_file_is_written_again_when_something_removed_it():
    """A formgrader left running for days may have its /tmp cleaned under it: the next
    request must still find the checks, not fail every notebook it grades."""
    path, digest = grader.checks_file()
    shutil.rmtree(os.path.dirname(path))
    again, same_digest = grader.checks_file()
    assert same_digest == digest and os.path.isfile(again)
    with open(again, "rb") as handle:
        assert hashlib.sha256(handle.read()).hexdigest() == digest


def test_a_checks_folder_left_by_a_killed_process_is_removed_by_the_next(tmp_path):
    """A grading process killed (a Dask worker stopped with its cluster) cannot remove its
    folder: the next process to make one removes it, and never a living process's."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    left = tmp_path / ("udl-checks-%s-abc123" % dead.stdout.strip())
    living = tmp_path / ("udl-checks-%d-def456" % os.getpid())
    other = tmp_path / "udl-checks-notapid"
    for folder in (left, living, other):
        folder.mkdir()
        (folder / "checks.marshal").write_bytes(b"x")
    grader._remove_left_behind(str(tmp_path))
    assert not left.exists() and living.exists() and other.exists()
