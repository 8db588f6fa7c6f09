r"""Parity of a bit stream (docs/tasks.md#parity).

Bits are encoded as :math:`\pm 1` (``encoding="pm1"``, Schmidhuber, Hochreiter & Bengio
2001) or 0/1. The target is 1 when the number of 1s is odd, 0 when even: at the end
(``per_step=False``, ``targets (B, 1)``) or the running parity after every bit
(``per_step=True``, ``targets (B, T, 1)``, every valid step scored). A sequence is
correct when every scored output is on the right side of 0.5.
"""

from __future__ import annotations

import torch

from rnnlab.tasks._common import (
    TaskBatch,
    abs_correct,
    check_choice,
    check_range,
    check_threshold,
    end_mask,
    end_prediction,
    finish,
    make_generator,
    masked_mse,
    per_step_all,
    randint,
    step_prediction,
    valid_mask,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

THRESHOLD = 0.5


def generate(
    batch_size: int,
    min_length: int = 1,
    max_length: int | None = None,
    *,
    per_step: bool = False,
    encoding: str = "pm1",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """Bit strings with length uniform in ``[min_length, max_length]`` (default: exactly
    ``min_length``); inputs ``(B, T, 1)``."""
    check_range("batch_size", batch_size, 1)
    check_range("min_length", min_length, 1)
    max_length = min_length if max_length is None else max_length
    check_range(f"max_length (at least min_length = {min_length})", max_length, min_length)
    check_choice("encoding", encoding, ("pm1", "01"))
    g = make_generator(generator, seed)
    L = randint(min_length, max_length, batch_size, g)
    T = int(L.max())
    valid = valid_mask(L, T)
    bits = randint(0, 1, (batch_size, T), g) * valid
    x = (2.0 * bits - 1.0) * valid if encoding == "pm1" else bits.double()
    running = (bits.cumsum(1) % 2).double()  # (B, T)
    if per_step:
        return finish(x[..., None], running[..., None] * valid[..., None], valid, L, device, dtype)
    final = running[torch.arange(batch_size), L - 1]
    return finish(x[..., None], final[:, None], end_mask(L, T), L, device, dtype)


def _pred(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """``(B, T, 1)`` for a per-step batch, ``(B, 1)`` for an end-of-sequence one."""
    if batch.targets.dim() == 3:
        return step_prediction(pred, batch, 1)
    return end_prediction(pred, batch)


def loss(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean squared error over the scored steps (outputs in [0, 1])."""
    p = _pred(pred, batch)
    if batch.targets.dim() == 3:
        return masked_mse(p, batch.targets, batch.mask)
    return ((p - batch.targets) ** 2).mean()


def is_correct(pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD):
    """Bool ``(B,)``: every scored output within ``threshold`` of its 0/1 target."""
    threshold = check_threshold("threshold", threshold)
    p = _pred(pred, batch)
    if batch.targets.dim() == 3:
        return per_step_all(((p - batch.targets).abs() < threshold).all(-1), batch.mask)
    return abs_correct(p, batch.targets, threshold)


def error_rate(pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD) -> float:
    """Fraction of sequences wrong."""
    return _error_rate(is_correct(pred, batch, threshold))


def solve(batch: TaskBatch) -> torch.Tensor:
    """The two-state parity automaton run over the inputs: ``(B, T, 1)`` running parity
    (or ``(B, 1)`` final parity for an end-of-sequence batch)."""
    x = batch.inputs[..., 0]
    state = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    out = []
    for t in range(x.shape[1]):
        state = torch.where(x[:, t] > 0.5, 1 - state, state)  # a 1 (or +1) flips
        out.append(state)
    run = torch.stack(out, 1)[..., None]  # (B, T, 1)
    if batch.targets.dim() == 3:
        return run * batch.mask[..., None].to(x.dtype)
    return end_prediction(run, batch)
