r"""The two toy recurrent nets of the lectures (Hinton, CSC321/Coursera lecture 7).

**Summing its inputs** (:func:`sum_inputs`): one input line of values uniform in
[-1, 1]; the target is the running sum :math:`s_t = \sum_{\tau \le t} x_\tau` at every
step (``per_step=True``) or the total at the end. A linear unit with recurrent weight 1
and input weight 1 solves it exactly. Correct when every scored error is below
``tolerance`` (default 0.05).

**Which input had the larger total** (:func:`larger_total`): two input lines of values
uniform in [0, 1]; the target is 1 when line 1's total so far exceeds line 2's, else 0,
at every step or at the end. Correct when every scored output is on the right side of
0.5. A net can solve it with one linear unit that integrates :math:`x^{(1)} - x^{(2)}`
followed by a threshold.
"""

from __future__ import annotations

import torch

from rnnlab._validation import check_rank, check_tensor
from rnnlab.errors import InputError
from rnnlab.tasks._common import (
    TaskBatch,
    check_range,
    check_threshold,
    end_mask,
    end_prediction,
    finish,
    make_generator,
    masked_mse,
    per_step_all,
    step_prediction,
    uniform,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

SUM_TOLERANCE = 0.05
THRESHOLD = 0.5


def _batch(x, running, per_step, device, dtype):
    B, T = running.shape
    L = torch.full((B,), T)
    if per_step:
        return finish(x, running[..., None], torch.ones(B, T, dtype=torch.bool), L, device, dtype)
    return finish(x, running[:, -1:], end_mask(L, T), L, device, dtype)


def sum_inputs(
    batch_size: int,
    T: int = 10,
    *,
    per_step: bool = True,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """Inputs ``(B, T, 1)`` uniform in [-1, 1]; targets the running sum ``(B, T, 1)`` or
    the total ``(B, 1)``."""
    check_range("batch_size", batch_size, 1)
    check_range("T", T, 1)
    x = uniform(-1.0, 1.0, (batch_size, T, 1), make_generator(generator, seed))
    return _batch(x, x[..., 0].cumsum(1), per_step, device, dtype)


def larger_total(
    batch_size: int,
    T: int = 10,
    *,
    per_step: bool = False,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """Inputs ``(B, T, 2)`` uniform in [0, 1]; targets 1 where line 1's total (so far)
    exceeds line 2's: ``(B, T, 1)`` or ``(B, 1)``."""
    check_range("batch_size", batch_size, 1)
    check_range("T", T, 1)
    x = uniform(0.0, 1.0, (batch_size, T, 2), make_generator(generator, seed))
    diff = (x[..., 0] - x[..., 1]).cumsum(1)
    return _batch(x, (diff > 0).double(), per_step, device, dtype)


def _pred(pred, batch):
    """``(B, T, 1)`` for a per-step batch, ``(B, 1)`` for an end-of-sequence one."""
    if batch.targets.dim() == 3:
        return step_prediction(pred, batch, 1)
    return end_prediction(pred, batch)


def loss(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean squared error over the scored steps (both toy tasks)."""
    p = _pred(pred, batch)
    if batch.targets.dim() == 3:
        return masked_mse(p, batch.targets, batch.mask)
    return ((p - batch.targets) ** 2).mean()


def is_correct(pred: torch.Tensor, batch: TaskBatch, tolerance: float) -> torch.Tensor:
    """Bool ``(B,)``: every scored output within ``tolerance`` of its target (use
    :data:`SUM_TOLERANCE` for the sum, :data:`THRESHOLD` for the comparison)."""
    tolerance = check_threshold("tolerance", tolerance)
    p = _pred(pred, batch)
    ok = (p - batch.targets).abs() < tolerance
    if batch.targets.dim() == 3:
        return per_step_all(ok.all(-1), batch.mask)
    return ok.all(-1)


def error_rate(pred: torch.Tensor, batch: TaskBatch, tolerance: float) -> float:
    """Fraction of sequences wrong."""
    return _error_rate(is_correct(pred, batch, tolerance))


def linear_sum_net(x: torch.Tensor, w: float = 1.0) -> torch.Tensor:
    r"""The perfect solver of :func:`sum_inputs`: the linear unit
    :math:`h_t = w h_{t-1} + x_t`, ``(B, T, 1) -> (B, T, 1)`` (exact for ``w = 1``)."""
    check_tensor("x", x)
    check_rank("x", x, (3,), "(B, T, F)")
    h = torch.zeros_like(x[:, 0])
    out = []
    for t in range(x.shape[1]):
        h = w * h + x[:, t, :1]
        out.append(h)
    return torch.stack(out, 1)


def comparison_net(x: torch.Tensor) -> torch.Tensor:
    """The perfect solver of :func:`larger_total`: integrate line 1 minus line 2 and
    threshold at 0, ``(B, T, 2) -> (B, T, 1)``."""
    check_tensor("x", x)
    if x.dim() != 3 or x.shape[-1] != 2:
        raise InputError(f"x: expected shape (B, T, 2), received shape {tuple(x.shape)}")
    return (linear_sum_net(x[..., :1] - x[..., 1:]) > 0).to(x.dtype)
