r"""Noise-free sequences with long time lags (Hochreiter & Schmidhuber 1997, Exp. 2;
docs/tasks.md#long-time-lags).

**2a** (local regularity): symbols :math:`a_1 \dots a_{p-1}, x, y` (indices
:math:`0 \dots p-2`, then :math:`x = p-1`, :math:`y = p`; :math:`V = p + 1`). The two
sequences :math:`(y, a_1, \dots, a_{p-1}, y)` and :math:`(x, a_1, \dots, a_{p-1}, x)` are
drawn with probability 1/2. The net sees the first :math:`p` symbols and predicts the
next one at every step; all :math:`p` predictions are scored. Success: the maximum
absolute output error, against the one-hot next symbol, stays below 0.25.

**2b** (no local regularity): as 2a, but the middle :math:`p - 1` symbols are drawn
uniformly (with replacement) from :math:`a_1 \dots a_{p-1}`. Those steps cannot be
predicted, so only the last prediction (the copy of the first symbol) is scored here.

**2c** (very long lags, distractors): symbols :math:`a_1 \dots a_p` (0..p-1), ``x`` = p,
``y`` = p+1, ``b`` = p+2, ``e`` = p+3 (:math:`V = p + 4`). A sequence is ``b``, then ``x``
or ``y``, then ``q`` distractors, then further distractors each continuing with
probability 9/10 (otherwise the sequence goes on), then ``e``; at the ``e`` step the net
must output which of ``x``/``y`` came second, on 2 outputs (targets ``(B, 2)`` one-hot).
Success: both absolute errors below 0.2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnlab.tasks._common import (
    TaskBatch,
    abs_correct,
    check_range,
    check_threshold,
    end_mask,
    end_prediction,
    finish,
    make_generator,
    per_step_all,
    randint,
    step_prediction,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

THRESHOLD_2AB = 0.25
THRESHOLD_2C = 0.2
CONTINUE_2C = 0.9


def _lag_sequences(batch_size, p, g, random_middle):
    first = randint(p - 1, p, batch_size, g)  # x or y
    if random_middle:
        middle = randint(0, p - 2, (batch_size, p - 1), g)
    else:
        middle = torch.arange(p - 1).expand(batch_size, -1)
    return torch.cat([first[:, None], middle, first[:, None]], dim=1)  # (B, p + 1)


def _generate_ab(batch_size, p, g, random_middle, device, dtype):
    seq = _lag_sequences(batch_size, p, g, random_middle)
    V = p + 1
    inputs = F.one_hot(seq[:, :-1], V).double()  # (B, p, V)
    targets = seq[:, 1:]  # (B, p) long: the next symbol
    L = torch.full((batch_size,), p, dtype=torch.long)
    mask = end_mask(L, p) if random_middle else torch.ones(batch_size, p, dtype=torch.bool)
    return finish(inputs, targets, mask, L, device, dtype)


def generate_2a(
    batch_size: int,
    p: int = 100,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """Task 2a: inputs ``(B, p, p + 1)`` one-hot, targets ``(B, p)`` next-symbol indices,
    every step scored (p >= 2)."""
    check_range("batch_size", batch_size, 1)
    check_range("p", p, 2)
    return _generate_ab(batch_size, p, make_generator(generator, seed), False, device, dtype)


def generate_2b(
    batch_size: int,
    p: int = 100,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """Task 2b: as 2a with a random middle; only the last step is scored (p >= 2)."""
    check_range("batch_size", batch_size, 1)
    check_range("p", p, 2)
    return _generate_ab(batch_size, p, make_generator(generator, seed), True, device, dtype)


def generate_2c(
    batch_size: int,
    q: int = 100,
    p: int = 100,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """Task 2c: inputs ``(B, T, p + 4)`` one-hot (T varies), targets ``(B, 2)`` one-hot
    (x, y) at the ``e`` step (q >= 0, p >= 1)."""
    check_range("batch_size", batch_size, 1)
    check_range("q", q, 0)
    check_range("p", p, 1)
    g = make_generator(generator, seed)
    second = randint(0, 1, batch_size, g)  # 0: x, 1: y
    # extra distractors: geometric, P(k) = 0.9^k * 0.1
    u = torch.rand(batch_size, generator=g, dtype=torch.float64).clamp_min(1e-300)
    extra = torch.floor(torch.log(u) / torch.log(torch.tensor(CONTINUE_2C, dtype=torch.float64)))
    extra = extra.long()
    L = 2 + q + extra + 1  # b, x|y, distractors, e
    Tmax = int(L.max())
    sym = randint(0, p - 1, (batch_size, Tmax), g)
    rows = torch.arange(batch_size)
    sym[:, 0] = p + 2  # b
    sym[:, 1] = p + second
    sym[rows, L - 1] = p + 3  # e
    valid = torch.arange(Tmax)[None, :] < L[:, None]
    inputs = F.one_hot(sym, p + 4).double() * valid[..., None]  # (B, T, V)
    targets = F.one_hot(second, 2).double()  # (B, 2)
    return finish(inputs, targets, end_mask(L, Tmax), L, device, dtype)


def is_correct_2ab(
    pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD_2AB
) -> torch.Tensor:
    """Bool ``(B,)`` for 2a/2b: at every scored step every output (in [0, 1]) is within
    ``threshold`` of the one-hot next symbol. ``pred (B, T, V)``."""
    threshold = check_threshold("threshold", threshold)
    pred = step_prediction(pred, batch, batch.inputs.shape[-1])
    onehot = F.one_hot(batch.targets, pred.shape[-1]).to(pred.dtype)
    ok = ((pred - onehot).abs() < threshold).all(-1)  # (B, T)
    return per_step_all(ok, batch.mask)


def is_correct_2c(
    pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD_2C
) -> torch.Tensor:
    """Bool ``(B,)`` for 2c: both end outputs within ``threshold`` of their targets."""
    threshold = check_threshold("threshold", threshold)
    return abs_correct(end_prediction(pred, batch), batch.targets, threshold)


def loss_2ab(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean squared error against the one-hot next symbol over the scored steps."""
    pred = step_prediction(pred, batch, batch.inputs.shape[-1])
    onehot = F.one_hot(batch.targets, pred.shape[-1]).to(pred.dtype)
    m = batch.mask[..., None].to(pred.dtype)
    return (((pred - onehot) ** 2) * m).sum() / (m.sum() * pred.shape[-1])


def loss_2c(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean squared error of the 2 end outputs."""
    return ((end_prediction(pred, batch) - batch.targets) ** 2).mean()


def error_rate(correct: torch.Tensor) -> float:
    """Fraction of sequences wrong, from ``is_correct_2ab`` / ``is_correct_2c``."""
    return _error_rate(correct)


def solve_2ab(batch: TaskBatch) -> torch.Tensor:
    """The exact automaton of 2a/2b: ``(B, p, V)`` one-hot predictions. In 2a the next
    symbol after ``a_k`` is ``a_{k+1}``, and after ``a_{p-1}`` the remembered first
    symbol; in 2b only the last (scored) step is deterministic."""
    sym = batch.inputs.argmax(-1)  # (B, p)
    B, p = sym.shape
    V = batch.inputs.shape[-1]
    nxt = torch.empty_like(sym)
    nxt[:, 0] = 0
    nxt[:, 1:] = (sym[:, 1:] + 1).clamp_max(V - 1)
    nxt[:, -1] = sym[:, 0]  # the copy of the first symbol
    return F.one_hot(nxt, V).to(batch.inputs.dtype)


def solve_2c(batch: TaskBatch) -> torch.Tensor:
    """The exact answer of 2c: ``(B, 2)`` one-hot of the second symbol."""
    V = batch.inputs.shape[-1]
    second = batch.inputs[:, 1].argmax(-1) - (V - 4)
    return F.one_hot(second, 2).to(batch.inputs.dtype)
