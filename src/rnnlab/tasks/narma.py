r"""The i.i.d.-input benchmarks of reservoir computing: NARMA and memory capacity.

NARMA of order m (Atiya & Parlos 2000; Jaeger 2003 for m = 10): input :math:`u_t`
i.i.d. uniform in [0, 0.5], output

.. math::

    y_{t+1} = \alpha\, y_t + \beta\, y_t \sum_{i=0}^{m-1} y_{t-i}
              + \gamma\, u_{t-m+1}\, u_t + \delta

with :math:`\alpha = 0.3, \beta = 0.05, \gamma = 1.5, \delta = 0.1` and :math:`y_t = 0`
(and :math:`u_t = 0`) before the start. At step t the input is :math:`u_t` and the target
:math:`y_{t+1}`, which depends on inputs up to :math:`u_t`. The inputs are not rescaled and
the targets not normalised (the published NMSE values differ by these choices: here
NMSE = MSE / Var(y) on the raw targets). The recursion can diverge for rare input
sequences (m = 10 very rarely, larger m more often); a sequence whose |y| exceeds 10 is
drawn again, and the count of redraws is returned.

Memory capacity (Jaeger 2001): input :math:`u_t` i.i.d. uniform in [-0.5, 0.5] (our
choice of range; the capacity does not depend on it for a linear readout of a linear
reservoir), targets :math:`u_{t-k}` for delays :math:`k = 1..K`. Steps :math:`t < K` are
not scored (``mask`` False), so every delay is scored on the same steps.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from rnnlab._validation import check_positive_int
from rnnlab.tasks._common import TaskBatch, make_generator, uniform

NARMA_COEFFICIENTS = (0.3, 0.05, 1.5, 0.1)  # alpha, beta, gamma, delta
NARMA_INPUT_RANGE = (0.0, 0.5)
MEMORY_INPUT_RANGE = (-0.5, 0.5)


class NarmaBatch(NamedTuple):
    """inputs (B, T, 1), targets (B, T, 1) (target[t] = y_{t+1}), mask (B, T) all True,
    lengths (B,), redraws: how many diverging sequences were drawn again."""

    inputs: Tensor
    targets: Tensor
    mask: Tensor
    lengths: Tensor
    redraws: int


def narma_targets(u: Tensor, order: int = 10) -> Tensor:
    """The NARMA outputs for inputs u (B, T) (float64): (B, T) with entry t = y_{t+1}."""
    alpha, beta, gamma, delta = NARMA_COEFFICIENTS
    B, T = u.shape
    y = torch.zeros(B, T + 1, dtype=torch.float64)  # y[:, t] = y_t, y_0 = 0
    for t in range(T):
        lo = max(0, t - order + 1)
        window = y[:, lo : t + 1].sum(1)  # sum_{i=0}^{m-1} y_{t-i} (zeros before start)
        u_old = u[:, t - order + 1] if t - order + 1 >= 0 else torch.zeros(B, dtype=u.dtype)
        y[:, t + 1] = alpha * y[:, t] + beta * y[:, t] * window + gamma * u_old * u[:, t] + delta
    return y[:, 1:]


def narma(
    T: int, order: int = 10, batch_size: int = 1, generator=None, seed: int | None = None
) -> NarmaBatch:
    """A batch of NARMA-``order`` sequences (see the module docstring)."""
    check_positive_int("T", T)
    check_positive_int("order", order)
    check_positive_int("batch_size", batch_size)
    g = make_generator(generator, seed)
    lo, hi = NARMA_INPUT_RANGE
    u = uniform(lo, hi, (batch_size, T), g)
    y = narma_targets(u, order)
    redraws = 0
    bad = ~(y.abs() <= 10).all(1)
    while bool(bad.any()):
        if redraws > 1000 * batch_size:
            raise RuntimeError(f"narma: order {order} diverges for almost every input sequence")
        k = int(bad.sum())
        u[bad] = uniform(lo, hi, (k, T), g)
        y[bad] = narma_targets(u[bad], order)
        redraws += k
        bad = ~(y.abs() <= 10).all(1)
    return NarmaBatch(
        u[..., None],
        y[..., None],
        torch.ones(batch_size, T, dtype=torch.bool),
        torch.full((batch_size,), T, dtype=torch.long),
        redraws,
    )


def memory_task(
    T: int, max_delay: int, batch_size: int = 1, generator=None, seed: int | None = None
) -> TaskBatch:
    """Inputs (B, T, 1) i.i.d. uniform in [-0.5, 0.5] and targets (B, T, K) with
    targets[b, t, k-1] = u[b, t-k] for k = 1..K = ``max_delay`` (zero before the start);
    mask (B, T) is False for t < K."""
    check_positive_int("T", T, minimum=2)
    check_positive_int("max_delay", max_delay)
    check_positive_int("batch_size", batch_size)
    if max_delay >= T:
        from rnnlab.errors import InputError

        raise InputError(f"max_delay: expected fewer than T = {T} steps, received {max_delay}")
    g = make_generator(generator, seed)
    lo, hi = MEMORY_INPUT_RANGE
    u = uniform(lo, hi, (batch_size, T), g)  # (B, T)
    targets = torch.zeros(batch_size, T, max_delay, dtype=torch.float64)
    for k in range(1, max_delay + 1):
        targets[:, k:, k - 1] = u[:, :-k]
    mask = torch.zeros(batch_size, T, dtype=torch.bool)
    mask[:, max_delay:] = True
    return TaskBatch(u[..., None], targets, mask, torch.full((batch_size,), T, dtype=torch.long))
