"""The answer key: what a right answer computes, for the inputs of one seed.

This module never reaches the student's kernel. The grader computes each check's
expectations here, for seed 0 and for its secret seed, and the judge compares the
student's values with them. The notebook's visible self-checks get only the numbers for
seed 0, written into the helpers cell by ``coursekit.authoring.sync`` (``kernel_expectations``),
never this code: a student who digs them out learns the answers for inputs the grader
does not use.
"""
import copy
import functools
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from coursekit.kernel import judge


def running(batches, momentum, unbiased=True, start_var=1.0, reverse=False,
            cumulative=False):
    """Running (mean, var) after `batches`, updated the way the keyword arguments say:
    the defaults are nn.BatchNorm1d's rule, the others the slips students make."""
    mean = torch.zeros(batches[0].shape[1], dtype=torch.float64)
    var = torch.full_like(mean, start_var)
    for count, batch in enumerate(batches, start=1):
        batch = batch.double()
        weight = 1 / count if cumulative else (1 - momentum if reverse else momentum)
        mean = (1 - weight) * mean + weight * batch.mean(0)
        var = (1 - weight) * var + weight * batch.var(0, unbiased=unbiased)
    return mean, var


def running_of_batchnorm(batches, momentum):
    """What nn.BatchNorm1d itself holds after seeing `batches` in training mode."""
    layer = nn.BatchNorm1d(batches[0].shape[1], momentum=momentum).double()
    layer.train()
    with torch.no_grad():
        for batch in batches:
            layer(batch.double())
    return layer.running_mean.clone(), layer.running_var.clone()


def _pair(statistics):
    return judge.Statistics(*[[float(v) for v in s] for s in statistics])


def running_expected(seed):
    batches, momentum = judge.stat_batches(seed), judge.momentum_for(seed)
    return judge.RunningExpected(
        batchnorm=_pair(running_of_batchnorm(batches, momentum)),
        biased=_pair(running(batches, momentum, unbiased=False)),
        start_zero=_pair(running(batches, momentum, start_var=0.0)),
        reversed_momentum=_pair(running(batches, momentum, reverse=True)),
        default_momentum=_pair(running(batches, 0.1)),
        cumulative=_pair(running(batches, momentum, cumulative=True)))


def sgd_losses(model, x, y, n_epochs, lr, momentum=0.9, zero_grad=True, steps_per_epoch=1):
    """SGD on the whole of (x, y) at each step: each epoch's mean loss before its steps.

    The steps are torch.optim.SGD's, operation for operation (its single-tensor path, the
    one it takes on the CPU), so the losses are the same to the bit (test_answer_key). The
    optimizer itself is not used: making one imports torch's compiler, a second of CPU in
    every grading process that only needs these numbers."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    velocity = [None] * len(parameters)
    losses = []
    for _ in range(n_epochs):
        epoch = []
        for _ in range(steps_per_epoch):
            if zero_grad:
                for p in parameters:
                    p.grad = None
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            with torch.no_grad():
                for i, p in enumerate(parameters):
                    if p.grad is None:
                        continue
                    step = p.grad
                    if momentum:
                        if velocity[i] is None:
                            velocity[i] = step.detach().clone()
                        else:
                            velocity[i].mul_(momentum).add_(step)
                        step = velocity[i]
                    p.add_(step, alpha=-lr)
            epoch.append(loss.item())
        losses.append(sum(epoch) / len(epoch))
    return losses


def training_expected(seed):
    x, y = judge.training_data(seed)
    epochs, lr = judge.FULL_BATCH_EPOCHS, judge.FULL_BATCH_LR
    with torch.no_grad():
        at_rest = float(F.cross_entropy(judge.Affine(seed)(x), y))
    # Every example alike: a step on any batch of them is the same step, so the losses
    # say how many steps an epoch took, whatever the batches and their order.
    alike_x, alike_y = judge.alike_data(seed)
    by_steps = [sgd_losses(judge.Affine(seed), alike_x[:1], alike_y[:1], judge.ALIKE_EPOCHS,
                           judge.ALIKE_LR, steps_per_epoch=k)
                for k in range(1, judge.ALIKE_MOST_STEPS + 1)]
    model = judge.Affine(seed)
    right = sgd_losses(model, x, y, epochs, lr)
    return judge.TrainingExpected(
        at_rest=at_rest,
        sgd=right,
        no_momentum=sgd_losses(judge.Affine(seed), x, y, epochs, lr, momentum=0.0),
        no_zero_grad=sgd_losses(judge.Affine(seed), x, y, epochs, lr, zero_grad=False),
        other_lr=sgd_losses(judge.Affine(seed), x, y, epochs, judge.OTHER_LR),
        alike_by_steps=by_steps,
        whole_set_steps=sgd_losses(judge.Affine(seed), x, y, judge.BATCHES_EPOCHS, lr,
                                   steps_per_epoch=math.ceil(len(x) / judge.BATCHES_BATCH_SIZE)),
        trained=judge.parameters_of(model))


def slope_expected(seed):
    variances = judge.slope_sample(seed)
    blocks = np.arange(len(variances))
    slope, intercept = (float(v) for v in np.polyfit(blocks, variances, 1))
    return judge.SlopeExpected(
        slope=slope, intercept=intercept,
        two_point=(variances[-1] - variances[0]) / (len(variances) - 1),
        without_first=float(np.polyfit(blocks[1:], variances[1:], 1)[0]))


EXPECTED = {
    "running_mean": running_expected,
    "running_var": running_expected,
    "train_model": training_expected,
    "training_comparison": training_expected,
    "slope": slope_expected,
}


def expected(check, seed):
    """The record of what a right answer gives for `check` on `seed`'s inputs, or None
    for a check that judges the student's own network against itself. A copy of the
    record: each judgement may read it as it likes."""
    make = EXPECTED.get(check)
    return copy.deepcopy(_made(make, seed)) if make else None


@functools.lru_cache(maxsize=32)
def _made(make, seed):
    """Made once per grading process: seed 0's records are every notebook's, and two
    checks read each record (train_model and training_comparison, running_mean and
    running_var). A training record takes about 30 ms to make."""
    return make(seed)


def kernel_expectations():
    """{check: expectations for seed 0}, the only part of the answer key the notebook's
    kernel receives: its visible self-checks run on seed 0."""
    return {check: expected(check, 0) for check in EXPECTED}
