r"""Bengio's 2-sequence problem, with noise (Hochreiter & Schmidhuber 1997, Exp. 3;
docs/tasks.md#two-sequence-problem).

One input line. The first :math:`N` elements are :math:`+1` (class 1) or :math:`-1`
(class 0); the others are Gaussian noise with mean 0 and variance 0.2. The length is
uniform in :math:`[T, T + \lfloor T/10 \rfloor]`; the target is given at the end.

- ``"3a"``: targets 1 / 0; correct when the end error is below 0.2.
- ``"3b"``: as 3a, with the noise also added to the N informative elements.
- ``"3c"``: targets 0.8 / 0.2 plus Gaussian target noise (sigma 0.32), inputs as 3a
  (the paper's text says 3c modifies 3a's targets only; treat as [S]); success: the mean
  absolute difference between output and the *clean* target below 0.015.

Inputs ``(B, T, 1)``; targets ``(B, 1)`` (noisy in 3c), ``clean_targets`` ``(B, 1)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from rnnlab.tasks._common import (
    abs_correct,
    check_choice,
    check_range,
    check_threshold,
    end_mask,
    end_prediction,
    float_dtype,
    make_generator,
    randint,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

VARIANTS = ("3a", "3b", "3c")
NOISE_VARIANCE = 0.2
TARGET_NOISE_STD = 0.32
THRESHOLD = 0.2


class TwoSequenceBatch(NamedTuple):
    """A :class:`~rnnlab.tasks.TaskBatch` plus the noise-free targets of variant 3c."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    clean_targets: torch.Tensor


def generate(
    batch_size: int,
    T: int = 100,
    N: int = 3,
    *,
    variant: str = "3a",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TwoSequenceBatch:
    """A batch of the 2-sequence problem (requires 1 <= N < T)."""
    check_range("batch_size", batch_size, 1)
    check_range("N", N, 1)
    check_range(f"T (at least N + 1 = {N + 1})", T, N + 1)
    check_choice("variant", variant, VARIANTS)
    g = make_generator(generator, seed)
    L = randint(T, T + T // 10, batch_size, g)
    Tmax = int(L.max())
    cls = randint(0, 1, batch_size, g)
    noise = math.sqrt(NOISE_VARIANCE) * torch.randn(
        batch_size, Tmax, generator=g, dtype=torch.float64
    )
    x = noise.clone()
    sign = (2 * cls - 1).double()[:, None]  # (B, 1)
    x[:, :N] = sign + (noise[:, :N] if variant == "3b" else 0.0)
    x = x * (torch.arange(Tmax)[None, :] < L[:, None])
    if variant == "3c":
        clean = 0.2 + 0.6 * cls.double()
        target = clean + TARGET_NOISE_STD * torch.randn(
            batch_size, generator=g, dtype=torch.float64
        )
    else:
        clean = cls.double()
        target = clean
    dtype = float_dtype(dtype)
    return TwoSequenceBatch(
        x[..., None].to(device=device, dtype=dtype),  # (B, T, 1)
        target[:, None].to(device=device, dtype=dtype),
        end_mask(L, Tmax).to(device),
        L.to(device),
        clean[:, None].to(device=device, dtype=dtype),
    )


def loss(pred: torch.Tensor, batch: TwoSequenceBatch) -> torch.Tensor:
    """Mean squared error at the end against the (possibly noisy) targets."""
    return ((end_prediction(pred, batch) - batch.targets) ** 2).mean()


def is_correct(pred: torch.Tensor, batch: TwoSequenceBatch, threshold: float = THRESHOLD):
    """Bool ``(B,)``: end error against the clean target below ``threshold`` (0.2)."""
    threshold = check_threshold("threshold", threshold)
    return abs_correct(end_prediction(pred, batch), batch.clean_targets, threshold)


def error_rate(pred, batch: TwoSequenceBatch, threshold: float = THRESHOLD) -> float:
    """Fraction of sequences misclassified."""
    return _error_rate(is_correct(pred, batch, threshold))


def mean_abs_clean_error(pred: torch.Tensor, batch: TwoSequenceBatch) -> float:
    """Mean |output - clean target| (the 3c success measure, must be < 0.015)."""
    return float((end_prediction(pred, batch) - batch.clean_targets).abs().mean())


def solve(batch: TwoSequenceBatch, N: int = 3, variant: str = "3a") -> torch.Tensor:
    """The perfect solver: the class read from the sign of the sum of the first ``N``
    inputs, on the clean target scale of ``variant`` (1/0, or 0.8/0.2 for 3c): ``(B, 1)``."""
    check_choice("variant", variant, VARIANTS)
    cls = (batch.inputs[:, :N, 0].sum(1) > 0).to(batch.inputs.dtype)
    return ((0.2 + 0.6 * cls) if variant == "3c" else cls)[:, None]
