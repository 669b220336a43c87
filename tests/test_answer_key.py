"""The released notebook's helpers (the file its helpers cell imports) hold no answer key
(issue 24).

The kernel gets the observing half of the checks, the judging of numbers, and the numbers a
right answer gives on seed 0's inputs. It never gets the code that computes right answers
(coursekit.authoring.reference): with it, a student could pass running_statistics, train_model or
measured_slope by calling it, for the grader's secret seed too. These tests run the helpers
file of the committed release and look for such code by name and by what it does. The last
tests check the key's own numbers and how they are handed out.
"""
import contextlib
import inspect
import io
import sys
import types

import numpy as np
import pytest
import torch

from coursekit.authoring import reference
from coursekit.kernel import judge
from coursekit.course import RELEASE_NOTEBOOK
from coursekit.grading.grader import KERNEL_MODULES
from coursekit.authoring.sync import HELPERS_FILE

SEED = 5  # not 0: the seed whose numbers the kernel is allowed to hold
# reference.expected(check, seed) is also the kernel's interface to its seed-0 numbers
# (udl_bn_expected.expected); that one is tested for what it answers instead.
REFERENCE_NAMES = {name for name, value in vars(reference).items()
                   if inspect.isfunction(value) and value.__module__ == reference.__name__
                   } - {"expected"}


@pytest.fixture(scope="module")
def kernel_modules():
    """The modules the released helpers file defines, run as the helpers cell imports it."""
    text = (RELEASE_NOTEBOOK.parent / HELPERS_FILE).read_text()
    names = KERNEL_MODULES
    saved = {name: sys.modules.get(name) for name in names}
    try:
        exec(compile(text, HELPERS_FILE, "exec"), {})
        modules = {name: sys.modules[name] for name in names}
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return modules


def _functions(modules):
    for module in modules.values():
        for name, value in vars(module).items():
            if isinstance(value, types.FunctionType):
                yield "%s.%s" % (module.__name__, name), value
            elif isinstance(value, type) and value.__module__ == module.__name__:
                for method_name, method in vars(value).items():
                    if isinstance(method, types.FunctionType):
                        yield "%s.%s.%s" % (module.__name__, name, method_name), method


def test_the_helpers_cell_defines_the_three_modules(kernel_modules):
    assert hasattr(kernel_modules["udl_bn_checks"], "check_running_var")
    assert hasattr(kernel_modules["udl_bn_judge"], "judge_running_var")
    # The seed-0 numbers are the answer key's, to the digit.
    numbers = kernel_modules["udl_bn_expected"]
    for check in judge.EXPECTING:
        assert judge.encode(numbers.expected(check, 0)) == \
            judge.encode(reference.expected(check, 0)), check


def test_no_reference_function_is_in_the_kernel_by_name(kernel_modules):
    found = {name for name, _ in _functions(kernel_modules)
             if name.rsplit(".", 1)[-1] in REFERENCE_NAMES | {
                 "_reference_running", "_running_of_batchnorm", "_sgd_losses"}}
    assert not found, found


def test_the_kernel_holds_numbers_for_seed_0_only(kernel_modules):
    numbers = kernel_modules["udl_bn_expected"]
    assert all(numbers.expected(check, seed) is None
               for check in judge.EXPECTING for seed in (1, SEED, 1234))


def _candidate_calls():
    """Arguments a reference computation would take, for SEED's inputs."""
    batches, momentum = judge.stat_batches(SEED), judge.momentum_for(SEED)
    x, y = judge.training_data(SEED)
    variances = judge.slope_sample(SEED)
    return [
        (batches, momentum),
        ([b.clone() for b in batches],),
        (judge.Affine(SEED), x, y, judge.FULL_BATCH_EPOCHS, judge.FULL_BATCH_LR),
        (judge.Affine(SEED), x, y, judge.FULL_BATCH_EPOCHS, judge.FULL_BATCH_LR, 0.9),
        (list(variances),),
        (SEED,),
        ("running_var", SEED), ("train_model", SEED), ("slope", SEED),
    ]


def _numbers(value, depth=0):
    """Every float in `value`, flattened (records, tensors, lists)."""
    if depth > 4:
        return []
    if isinstance(value, torch.Tensor):
        return [float(v) for v in value.detach().double().flatten()[:50]]
    if isinstance(value, (int, float, np.floating)) and not isinstance(value, bool):
        return [float(value)]
    if isinstance(value, (list, tuple)):
        return [n for v in value[:20] for n in _numbers(v, depth + 1)]
    if hasattr(value, "__dataclass_fields__"):
        return [n for f in value.__dataclass_fields__ for n in _numbers(getattr(value, f),
                                                                        depth + 1)]
    return []


def _answers():
    """Numbers only a right answer for SEED gives."""
    running = reference.running_expected(SEED).batchnorm
    training = reference.training_expected(SEED)
    slope = reference.slope_expected(SEED)
    return {"running_mean": running.mean, "running_var": running.var,
            "sgd losses": training.sgd, "slope": [slope.slope]}


def _contains(found, wanted):
    return any(np.allclose(found[k:k + len(wanted)], wanted, rtol=1e-4, atol=1e-6)
               for k in range(len(found) - len(wanted) + 1))


def test_no_kernel_function_computes_a_right_answer(kernel_modules):
    answers = _answers()
    leaks = []
    for name, function in _functions(kernel_modules):
        for arguments in _candidate_calls():
            try:
                with contextlib.redirect_stdout(io.StringIO()), \
                        contextlib.redirect_stderr(io.StringIO()):
                    value = function(*arguments)
            except Exception:
                continue
            found = _numbers(value)
            leaks += ["%s%s gives the %s" % (name, tuple(type(a).__name__ for a in arguments),
                                             what)
                      for what, wanted in answers.items() if _contains(found, wanted)]
    assert not leaks, leaks


def test_the_behaviour_search_finds_the_answer_key_itself():
    """The search above would see reference.py's functions if they were in the kernel."""
    answers = _answers()
    batches, momentum = judge.stat_batches(SEED), judge.momentum_for(SEED)
    assert _contains(_numbers(reference.running_of_batchnorm(batches, momentum)),
                     answers["running_var"])
    x, y = judge.training_data(SEED)
    assert _contains(_numbers(reference.sgd_losses(judge.Affine(SEED), x, y,
                                                   judge.FULL_BATCH_EPOCHS,
                                                   judge.FULL_BATCH_LR)),
                     answers["sgd losses"])


def test_each_record_of_the_answer_key_is_made_once_and_handed_out_as_a_copy():
    """The grader asks for seed 0's records for every notebook, and two checks read each
    record: made once per process, and a judgement that changed its copy changes no other."""
    from coursekit.authoring import reference

    made = reference._made.cache_info().misses
    first = reference.expected("train_model", 12345)
    first.sgd.append(float("nan"))
    second = reference.expected("training_comparison", 12345)
    assert reference._made.cache_info().misses == made + 1
    assert second.sgd == reference.training_expected(12345).sgd
    assert second is not reference.expected("train_model", 12345)


def _torch_sgd_losses(model, x, y, n_epochs, lr, momentum=0.9, zero_grad=True,
                      steps_per_epoch=1):
    """reference.sgd_losses as a student writes it, with torch.optim.SGD."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses = []
    for _ in range(n_epochs):
        epoch = []
        for _ in range(steps_per_epoch):
            if zero_grad:
                optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            epoch.append(loss.item())
        losses.append(sum(epoch) / len(epoch))
    return losses


@pytest.mark.parametrize("variant", [{}, {"momentum": 0.0}, {"zero_grad": False},
                                     {"lr": judge.OTHER_LR}, {"steps_per_epoch": 4}])
def test_the_answer_keys_sgd_is_torchs_to_the_bit(variant):
    """The key steps SGD itself (torch.optim.SGD would import torch's compiler into every
    grading process): its losses and trained weights are the optimizer's, bit for bit."""
    for seed in (0, 1, SEED, 12345):
        x, y = judge.training_data(seed)
        arguments = dict(n_epochs=judge.FULL_BATCH_EPOCHS, lr=judge.FULL_BATCH_LR) | variant
        ours, torchs = judge.Affine(seed), judge.Affine(seed)
        assert (reference.sgd_losses(ours, x, y, **arguments)
                == _torch_sgd_losses(torchs, x, y, **arguments)), seed
        for mine, theirs in zip(ours.parameters(), torchs.parameters()):
            assert torch.equal(mine, theirs), seed
