r"""The random-permutation problem of Martens & Sutskever (2011)
(docs/tasks.md#random-permutation).

A sequence of ``T`` symbols from a vocabulary of ``V = 100``: the first is 0 or 1, the
next :math:`T - 2` are uniform over :math:`2 \dots V-1`, and the last repeats the first.
The net reads the first :math:`T - 1` symbols (one-hot, ``(B, T-1, V)``) and predicts the
next symbol at every step; only the last prediction (of the repeated first symbol) is
scored. Targets ``(B, T-1)`` long; correct when the scored step's most active output is
the target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnlab.tasks._common import (
    TaskBatch,
    check_range,
    end_mask,
    finish,
    make_generator,
    masked_cross_entropy,
    per_step_all,
    randint,
    step_prediction,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)


def generate(
    batch_size: int,
    T: int = 100,
    vocab_size: int = 100,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the random-permutation problem (T >= 3, vocab_size >= 3)."""
    check_range("batch_size", batch_size, 1)
    check_range("T", T, 3)
    check_range("vocab_size", vocab_size, 3)
    g = make_generator(generator, seed)
    seq = randint(2, vocab_size - 1, (batch_size, T), g)
    seq[:, 0] = randint(0, 1, batch_size, g)
    seq[:, -1] = seq[:, 0]
    inputs = F.one_hot(seq[:, :-1], vocab_size).double()  # (B, T-1, V)
    L = torch.full((batch_size,), T - 1, dtype=torch.long)
    return finish(inputs, seq[:, 1:], end_mask(L, T - 1), L, device, dtype)


def loss(logits: torch.Tensor, batch: TaskBatch, all_steps: bool = False) -> torch.Tensor:
    """Cross-entropy at the scored step (``all_steps=True``: at every step, as the net is
    trained to predict every next symbol). ``logits (B, T-1, V)``."""
    logits = step_prediction(logits, batch, batch.inputs.shape[-1], "logits")
    mask = torch.ones_like(batch.mask) if all_steps else batch.mask
    return masked_cross_entropy(logits, batch.targets, mask)


def is_correct(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Bool ``(B,)``: the last prediction's most active output is the first symbol."""
    logits = step_prediction(logits, batch, batch.inputs.shape[-1], "logits")
    return per_step_all(logits.argmax(-1) == batch.targets, batch.mask)


def error_rate(logits: torch.Tensor, batch: TaskBatch) -> float:
    """Fraction of sequences wrong."""
    return _error_rate(is_correct(logits, batch))


def solve(batch: TaskBatch) -> torch.Tensor:
    """The perfect predictor's logits ``(B, T-1, V)``: the first symbol at the last step
    (other steps are uniform over 2..V-1 and get uniform scores)."""
    B, T1, V = batch.inputs.shape
    logits = torch.zeros(B, T1, V, dtype=batch.inputs.dtype, device=batch.inputs.device)
    logits[:, :, :2] = -1e4
    first = batch.inputs[:, 0].argmax(-1)
    logits[:, -1] = -1e4
    logits[torch.arange(B), -1, first] = 0.0
    return logits
