r"""The XOR problem of Martens & Sutskever (2011) (docs/tasks.md#xor).

Inputs ``(value, marker)`` with binary values; length uniform in :math:`[50f, 55f)`,
:math:`f = T/100`; one mark in :math:`[f, 10f)` and one in :math:`[15f, 25f)`. The target
at the end is the XOR of the two marked bits, ``(B, 1)``. A sequence is correct when
the output is on the right side of 0.5 (``|error| < 0.5``; our reading, the code's exact
rule is not recorded in docs/tasks.md). The original code notes that HF solves T = 100 only
rarely.
"""

from __future__ import annotations

import torch

from rnnlab.tasks._common import (
    TaskBatch,
    abs_correct,
    check_range,
    check_threshold,
    end_mask,
    end_prediction,
    finish,
    make_generator,
    randint,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

INPUT_SIZE = 2
THRESHOLD = 0.5


def generate(
    batch_size: int,
    T: int = 100,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the XOR problem (T >= 10 so that the mark windows are non-empty)."""
    check_range("batch_size", batch_size, 1)
    check_range("T (xor: windows [f, 10f) and [15f, 25f), f = T/100)", T, 10)
    g = make_generator(generator, seed)
    f = T / 100
    lo, hi = int(50 * f), max(int(50 * f), int(55 * f) - 1)
    # the windows rounded to whole steps, each at least one step wide and the second after
    # the first (for T < 20, [f, 10f) holds no step >= 1: the first mark is then at step 1)
    L = randint(lo, hi, batch_size, g)
    Tmax = int(L.max())
    bits = randint(0, 1, (batch_size, Tmax), g).double()
    a1 = max(1, int(f))
    b1 = max(a1, int(10 * f) - 1)
    a2 = max(b1 + 1, int(15 * f))
    b2 = max(a2, int(25 * f) - 1)
    p1, p2 = randint(a1, b1, batch_size, g), randint(a2, b2, batch_size, g)
    rows = torch.arange(batch_size)
    marker = torch.zeros(batch_size, Tmax, dtype=torch.float64)
    marker[rows, p1] = 1.0
    marker[rows, p2] = 1.0
    valid = torch.arange(Tmax)[None, :] < L[:, None]
    target = (bits[rows, p1] != bits[rows, p2]).double()
    inputs = torch.stack([bits * valid, marker], dim=-1)  # (B, T, 2)
    return finish(inputs, target[:, None], end_mask(L, Tmax), L, device, dtype)


def loss(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean squared error at the end."""
    return ((end_prediction(pred, batch) - batch.targets) ** 2).mean()


def is_correct(pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD):
    """Bool ``(B,)``: end error below ``threshold``."""
    threshold = check_threshold("threshold", threshold)
    return abs_correct(end_prediction(pred, batch), batch.targets, threshold)


def error_rate(pred, batch: TaskBatch, threshold: float = THRESHOLD) -> float:
    """Fraction of sequences wrong."""
    return _error_rate(is_correct(pred, batch, threshold))


def solve(batch: TaskBatch) -> torch.Tensor:
    """The exact XOR of the marked bits, ``(B, 1)``."""
    bits, marked = batch.inputs[..., 0], batch.inputs[..., 1] == 1
    return ((bits * marked).sum(1) % 2)[:, None]
