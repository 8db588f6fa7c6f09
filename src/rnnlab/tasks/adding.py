r"""The adding problem (both conventions) and the multiplication problem.

Each step carries a pair ``(value, marker)``; two pairs are marked; the net must output a
function of the two marked values at the end of the sequence.

**1997 convention** (Hochreiter & Schmidhuber 1997, Exp. 4; docs/tasks.md#adding-1997-convention):

- length :math:`L \sim U\{T, \dots, T + \lfloor T/10 \rfloor\}`, values :math:`\sim U[-1, 1]`;
- :math:`X_1` is marked among the first 10 pairs, :math:`X_2` among the first
  :math:`T/2 - 1` pairs still unmarked (never pair 1); markers are 1 on the marked
  pairs, 0 elsewhere, and -1 on the first and last pairs (overriding a mark on pair 1,
  which is therefore invisible: then :math:`X_1 := 0`);
- target :math:`0.5 + (X_1 + X_2)/4 \in [0, 1]`; correct when :math:`|\text{error}| < 0.04`.

**Modern convention** (Le et al. 2015; Arjovsky et al. 2016;
docs/tasks.md#adding-modern-convention): fixed length
``T``, values :math:`\sim U[0, 1]`, markers 0/1 with one mark uniform in the first half and
one in the second half, target :math:`X_1 + X_2`. Predicting the constant 1 gives the
baseline MSE :math:`\mathrm{Var}(X_1 + X_2) = 1/6 \approx 0.167` (:data:`BASELINE_MSE`).

**Multiplication** (1997, Exp. 5; docs/tasks.md#multiplication-problem): as the 1997 adding
problem but values
:math:`\sim U[0, 1]`, :math:`X_1 := 1` when pair 1 is marked, target :math:`X_1 X_2`.

Inputs ``(B, T, 2)`` = (value, marker); targets ``(B, 1)`` at step ``lengths - 1``.

Example::

    from rnnlab.tasks import adding
    batch = adding.generate(32, T=100, seed=0)            # 1997 convention
    out, _ = lstm(batch.inputs, lengths=batch.lengths)   # (B, T, H) -> head -> (B, T, 1)
    loss = adding.loss(pred, batch)                      # MSE at each sequence's end
    wrong = adding.error_rate(pred, batch)               # fraction with |error| >= 0.04
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
    randint,
    uniform,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

INPUT_SIZE = 2
OUTPUT_SIZE = 1
THRESHOLD = 0.04
BASELINE_MSE = 1.0 / 6.0  # modern convention, always predicting 1
CONVENTIONS = ("1997", "modern")


def _marked_1997(batch_size: int, T: int, g: torch.Generator):
    """Positions ``(p1, p2)`` of the two marks, 1997 rules: p1 in the first 10 pairs, p2
    among the first T/2 - 1 pairs other than p1 and other than pair 1 (whose marker is
    always -1, so only X_1 may fall there, hidden)."""
    # at T = 10 pair 9 can be the last pair, whose marker is -1: a mark there would be
    # hidden yet counted, so the first mark stays before it (unchanged for T >= 11)
    p1 = randint(0, min(9, T - 2), batch_size, g)
    w = T // 2 - 1  # the window of X_2: pairs 1 .. w-1 (0-based)
    # draw p2 uniform over the free slots 1 .. w-1 minus p1
    inside = (p1 >= 1) & (p1 < w)
    free = torch.where(inside, torch.full_like(p1, w - 2), torch.full_like(p1, w - 1))
    r = 1 + (torch.rand(batch_size, generator=g, dtype=torch.float64) * free).long()
    p2 = torch.where(inside & (r >= p1), r + 1, r)
    return p1, p2


def _pairs_1997(batch_size, T, g, low):
    L = randint(T, T + T // 10, batch_size, g)  # lengths
    Tmax = int(L.max())
    values = uniform(low, 1.0, (batch_size, Tmax), g)
    p1, p2 = _marked_1997(batch_size, T, g)
    rows = torch.arange(batch_size)
    marker = torch.zeros(batch_size, Tmax, dtype=torch.float64)
    marker[rows, p1] = 1.0
    marker[rows, p2] = 1.0
    # the first and last markers are -1; a mark on pair 1 is thereby hidden, which is
    # why the paper sets X_1 := 0 (adding) or 1 (multiplication) in that case
    marker[:, 0] = -1.0
    marker[rows, L - 1] = -1.0
    valid = torch.arange(Tmax)[None, :] < L[:, None]
    values = values * valid
    return L, Tmax, values, marker, p1, p2, rows


def generate(
    batch_size: int,
    T: int = 100,
    *,
    convention: str = "1997",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the adding problem.

    convention: ``"1997"`` (variable length in [T, T + T//10], T >= 10) or ``"modern"``
    (fixed length T, T >= 2). See the module docstring.
    """
    check_range("batch_size", batch_size, 1)
    check_choice("convention", convention, CONVENTIONS)
    g = make_generator(generator, seed)
    if convention == "1997":
        check_range("T (1997 adding: the first 10 pairs hold the first mark)", T, 10)
        L, Tmax, values, marker, p1, p2, rows = _pairs_1997(batch_size, T, g, -1.0)
        x1 = torch.where(p1 == 0, torch.zeros_like(values[:, 0]), values[rows, p1])
        x2 = values[rows, p2]
        target = 0.5 + (x1 + x2) / 4.0
    else:
        check_range("T (modern adding: one mark in each half)", T, 2)
        L = torch.full((batch_size,), T, dtype=torch.long)
        Tmax = T
        values = uniform(0.0, 1.0, (batch_size, T), g)
        h = T // 2
        p1 = randint(0, h - 1, batch_size, g)
        p2 = randint(h, T - 1, batch_size, g)
        rows = torch.arange(batch_size)
        marker = torch.zeros(batch_size, T, dtype=torch.float64)
        marker[rows, p1] = 1.0
        marker[rows, p2] = 1.0
        target = values[rows, p1] + values[rows, p2]
    inputs = torch.stack([values, marker], dim=-1)  # (B, T, 2)
    return finish(inputs, target[:, None], end_mask(L, Tmax), L, device, dtype)


def multiplication(
    batch_size: int,
    T: int = 100,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the 1997 multiplication problem (Exp. 5): values U[0, 1], target
    X_1 * X_2 (X_1 := 1 when pair 1 is marked), same marks and lengths as the 1997 adding
    problem (T >= 10)."""
    check_range("batch_size", batch_size, 1)
    check_range("T (multiplication: the first 10 pairs hold the first mark)", T, 10)
    g = make_generator(generator, seed)
    L, Tmax, values, marker, p1, p2, rows = _pairs_1997(batch_size, T, g, 0.0)
    x1 = torch.where(p1 == 0, torch.ones_like(values[:, 0]), values[rows, p1])
    target = x1 * values[rows, p2]
    inputs = torch.stack([values, marker], dim=-1)  # (B, T, 2)
    return finish(inputs, target[:, None], end_mask(L, Tmax), L, device, dtype)


def loss(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean squared error at each sequence's end; ``pred`` is ``(B, 1)``, ``(B,)`` or
    ``(B, T, 1)``."""
    return ((end_prediction(pred, batch) - batch.targets) ** 2).mean()


def is_correct(pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD):
    """Bool ``(B,)``: absolute error at the end below ``threshold`` (0.04, the 1997 rule,
    also used for multiplication and the modern convention)."""
    threshold = check_threshold("threshold", threshold)
    return abs_correct(end_prediction(pred, batch), batch.targets, threshold)


def error_rate(pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD) -> float:
    """Fraction of sequences with absolute error >= ``threshold``."""
    return _error_rate(is_correct(pred, batch, threshold))


def solve(batch: TaskBatch, convention: str = "1997") -> torch.Tensor:
    """The exact answer computed from the inputs (the perfect solver), ``(B, 1)``.

    convention: ``"1997"``, ``"modern"`` or ``"multiplication"``.
    """
    check_choice("convention", convention, (*CONVENTIONS, "multiplication"))
    values, marker = batch.inputs[..., 0], batch.inputs[..., 1]
    marked = marker == 1.0  # a hidden mark on pair 1 (marker -1) counts as X_1 := 0 or 1
    if convention == "multiplication":
        return torch.where(marked, values, torch.ones_like(values)).prod(dim=1)[:, None]
    s = (values * marked).sum(dim=1)
    if convention == "1997":
        return (0.5 + s / 4.0)[:, None]
    return s[:, None]
