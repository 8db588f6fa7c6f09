r"""The pathological problems of Martens & Sutskever (2011) with the conventions of
Sutskever's code (docs/hessian_free.md, docs/tasks.md#hessian-free-problems).

Every length and window is scaled by :math:`f = T/100` and rounded down to whole steps;
each window keeps at least one step, starts at step 1 or later and after the previous
window (so small ``T``, such as a quick test's, still gives well-formed sequences).

- **addition / multiplication** (:func:`addition`, :func:`multiplication`): inputs
  ``(value, marker)``, values :math:`U[0, 1]`, length :math:`L \in [100f, 110f)`, one mark
  in :math:`[f, 10f)`, one in :math:`[10f, 50f)`; the marker is -1 at step 0 and at step
  :math:`L - 3` (our reading of "3 steps before the end"), 1 on the marks, 0 elsewhere.
  Target :math:`x + y` (the code; ``target="mean"``: :math:`(x + y)/2`, the theses) or
  :math:`x y`. Squared loss; **wrong when** :math:`|\text{error}| > 0.04`.
- **xor**: :func:`rnnlab.tasks.xor.generate` (already these conventions): binary values,
  length :math:`[50f, 55f)`, marks in :math:`[f, 10f)` and :math:`[15f, 25f)`, target the
  XOR; squared loss, wrong when the output is on the wrong side of 0.5.
- **temporal order, 2 or 3 symbols** (:func:`temporal_order`): the eight one-hot symbols
  ``E, B, a, b, c, d, X, Y`` of :mod:`rnnlab.tasks.temporal_order`; ``E`` at step 0,
  distractors ``a..d``, the trigger ``B`` at the last step; ``X``/``Y`` at one position in
  each of :math:`[f, 10f]`, :math:`[40f, 50f]` (4 classes) or :math:`[f, 10f]`,
  :math:`[30f, 40f]`, :math:`[50f, 60f]` (8 classes), both ends included; length
  :math:`[100f, 110f)`. Class = the order as a binary number (``Y = 1``, first most
  significant); cross-entropy at the end; wrong when the most active output is not the class.
- **random permutation**: :func:`rnnlab.tasks.permutation.generate` (already these
  conventions): 100 symbols, the first 0 or 1 and repeated at the end, the rest from
  2..99; cross-entropy on every next symbol, only the last prediction scored.
- **noiseless memorisation, 5-bit and 20-bit**: :func:`rnnlab.tasks.copying.memorization`
  (5 binary symbols, or 10 from a 5-letter alphabet, at the start; the trigger
  ``num_chars + 1`` steps before the end; the data to be output in the last ``num_chars``
  steps); wrong when any of those symbols is wrong.

**How these differ from the 1997 generators** (:mod:`rnnlab.tasks.adding`,
:mod:`rnnlab.tasks.temporal_order` with ``convention="1997"``): the 1997 adding problem
draws values in :math:`[-1, 1]`, puts the first mark in the first 10 pairs and the second
in the first :math:`T/2 - 1`, sets the markers -1 on the first and the *last* pair, and
asks for :math:`0.5 + (x+y)/4`, correct when the error is *below* 0.04; its lengths are
:math:`[T, T + T/10]` (both ends). The 1997 multiplication problem uses those marks too.
The 1997 temporal order fixes its windows at [10, 20], [50, 60] (or [10, 20], [33, 43],
[66, 76]) whatever the length and scores every output within 0.3 of the one-hot target.

A problem is **solved** when fewer than 1% of the test sequences are wrong
(:data:`SOLVED_BELOW`). :data:`PROBLEMS` maps each name to its generator and scoring::

    from rnnlab.tasks import pathological as P
    prob = P.PROBLEMS["addition"]
    batch = prob.generate(100, 50, seed=0)      # T = 50: f = 0.5
    wrong = prob.error_rate(net_outputs, batch)  # outputs (B, T, 1) or (B, 1)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from rnnlab.errors import InputError
from rnnlab.tasks import copying, permutation, xor
from rnnlab.tasks._common import (
    TaskBatch,
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
from rnnlab.tasks.temporal_order import INPUT_SIZE as TEMPORAL_INPUT_SIZE

THRESHOLD = 0.04  # regression problems: wrong when |error| > THRESHOLD
SOLVED_BELOW = 0.01  # a problem is solved when fewer than 1% of test sequences are wrong
TARGETS = ("sum", "mean")


def scaled_window(a: float, b: float, f: float, start: int, closed: bool) -> tuple[int, int]:
    """Whole steps ``(lo, hi)`` (both included) of the window ``[a f, b f)`` (``closed``:
    ``[a f, b f]``), rounded down, starting no earlier than ``start`` and at least one step
    wide."""
    lo = max(start, int(a * f))
    hi = int(b * f) if closed else int(b * f) - 1
    return lo, max(lo, hi)


def _lengths(batch_size: int, T: int, g: torch.Generator, lo_c=100, hi_c=110):
    f = T / 100
    lo, hi = scaled_window(lo_c, hi_c, f, 1, closed=False)
    return randint(lo, hi, batch_size, g)


def _marked_pairs(batch_size, T, g, name):
    check_range("batch_size", batch_size, 1)
    check_range(f"T ({name}: windows [f, 10f) and [10f, 50f), f = T/100)", T, 10)
    f = T / 100
    L = _lengths(batch_size, T, g)
    Tmax = int(L.max())
    a1, b1 = scaled_window(1, 10, f, 1, closed=False)
    a2, b2 = scaled_window(10, 50, f, b1 + 1, closed=False)
    p1, p2 = randint(a1, b1, batch_size, g), randint(a2, b2, batch_size, g)
    rows = torch.arange(batch_size)
    values = uniform(0.0, 1.0, (batch_size, Tmax), g)
    valid = torch.arange(Tmax)[None, :] < L[:, None]
    values = values * valid
    marker = torch.zeros(batch_size, Tmax, dtype=torch.float64)
    marker[rows, p1] = 1.0
    marker[rows, p2] = 1.0
    marker[:, 0] = -1.0
    marker[rows, L - 3] = -1.0  # after both windows: L - 3 >= 97f - 3 > 50f for T >= 10
    return L, Tmax, values, marker, values[rows, p1], values[rows, p2]


def addition(
    batch_size: int,
    T: int = 100,
    *,
    target: str = "sum",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the addition problem (T >= 10); ``target``: ``"sum"`` (x + y, the code)
    or ``"mean"`` ((x + y)/2). Inputs ``(B, T, 2)``, targets ``(B, 1)`` at the end."""
    check_choice("target", target, TARGETS)
    g = make_generator(generator, seed)
    L, Tmax, values, marker, x, y = _marked_pairs(batch_size, T, g, "addition")
    t = x + y if target == "sum" else (x + y) / 2
    inputs = torch.stack([values, marker], dim=-1)  # (B, T, 2)
    return finish(inputs, t[:, None], end_mask(L, Tmax), L, device, dtype)


def multiplication(
    batch_size: int,
    T: int = 100,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the multiplication problem (T >= 10): as :func:`addition`, target x y."""
    g = make_generator(generator, seed)
    L, Tmax, values, marker, x, y = _marked_pairs(batch_size, T, g, "multiplication")
    inputs = torch.stack([values, marker], dim=-1)  # (B, T, 2)
    return finish(inputs, (x * y)[:, None], end_mask(L, Tmax), L, device, dtype)


def temporal_windows(T: int, symbols: int) -> tuple[tuple[int, int], ...]:
    """The X/Y windows (both ends included) for base length ``T`` and 2 or 3 symbols."""
    f = T / 100
    spans = ((1, 10), (40, 50)) if symbols == 2 else ((1, 10), (30, 40), (50, 60))
    out, start = [], 1
    for a, b in spans:
        lo, hi = scaled_window(a, b, f, start, closed=True)
        out.append((lo, hi))
        start = hi + 1
    return tuple(out)


def temporal_order(
    batch_size: int,
    T: int = 100,
    symbols: int = 2,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the temporal-order problem with 2 (4 classes) or 3 (8 classes) relevant
    symbols (T >= 10). Inputs ``(B, T, 8)`` one-hot, targets ``(B,)`` long classes."""
    check_range("batch_size", batch_size, 1)
    if isinstance(symbols, bool) or symbols not in (2, 3):
        raise InputError(f"symbols: expected 2 or 3, received {symbols!r}")
    check_range("T (temporal order: the windows scale with f = T/100)", T, 10)
    g = make_generator(generator, seed)
    L = _lengths(batch_size, T, g)
    Tmax = int(L.max())
    sym = randint(2, 5, (batch_size, Tmax), g)  # distractors a..d
    sym[:, 0] = 0  # E
    rows = torch.arange(batch_size)
    label = torch.zeros(batch_size, dtype=torch.long)
    for a, b in temporal_windows(T, symbols):
        pos = randint(a, b, batch_size, g)
        bit = randint(0, 1, batch_size, g)
        sym[rows, pos] = 6 + bit  # X or Y
        label = 2 * label + bit
    sym[rows, L - 1] = 1  # trigger B
    valid = torch.arange(Tmax)[None, :] < L[:, None]
    inputs = F.one_hot(sym, TEMPORAL_INPUT_SIZE).double() * valid[..., None]  # (B, T, 8)
    return finish(inputs, label, end_mask(L, Tmax), L, device, dtype)


# --------------------------------------------------------------------------- scoring


def regression_loss(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean squared error at each sequence's end; ``pred (B, 1)``, ``(B,)`` or ``(B, T, 1)``."""
    return ((end_prediction(pred, batch) - batch.targets) ** 2).mean()


def regression_correct(pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD):
    """Bool ``(B,)``: :math:`|\\text{error}| \\le` ``threshold`` at the end (wrong when it
    exceeds it, the code's rule)."""
    threshold = check_threshold("threshold", threshold)
    return ((end_prediction(pred, batch) - batch.targets).abs() <= threshold).all(-1)


def class_loss(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Cross-entropy of the class at the end; ``logits (B, K)`` or ``(B, T, K)``."""
    K = logits.shape[-1] if hasattr(logits, "shape") and logits.dim() >= 2 else None
    return F.cross_entropy(end_prediction(logits, batch, K), batch.targets)


def class_correct(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Bool ``(B,)``: the most active output at the end is the class."""
    K = logits.shape[-1] if hasattr(logits, "shape") and logits.dim() >= 2 else None
    return end_prediction(logits, batch, K).argmax(-1) == batch.targets


class Problem(NamedTuple):
    """One pathological problem: ``generate(batch_size, T, generator=, seed=)``, the sizes
    of the net's input and output, whether the output is read at every step (``per_step``)
    or only at the end, ``loss(outputs, batch)`` and ``is_correct(outputs, batch) -> (B,)``."""

    name: str
    generate: Callable[..., TaskBatch]
    input_size: int
    output_size: int
    per_step: bool
    loss: Callable[[torch.Tensor, TaskBatch], torch.Tensor]
    is_correct: Callable[[torch.Tensor, TaskBatch], torch.Tensor]

    def error_rate(self, outputs: torch.Tensor, batch: TaskBatch) -> float:
        """Fraction of sequences wrong."""
        return _error_rate(self.is_correct(outputs, batch))


def _xor_correct(pred, batch):
    return xor.is_correct(pred, batch)


def _perm_loss(logits, batch):
    return permutation.loss(logits, batch, all_steps=True)


def _memo(variant):
    def gen(batch_size, T=100, *, generator=None, seed=None, device=None, dtype=None):
        return copying.memorization(batch_size, T, variant, generator=generator, seed=seed,
                                    device=device, dtype=dtype)  # fmt: skip

    gen.__doc__ = f"The {variant} noiseless memorisation (:func:`copying.memorization`)."
    return gen


def _memo_loss(logits, batch):
    return copying.loss(logits, batch, all_steps=False)


def _temporal(symbols):
    def gen(batch_size, T=100, *, generator=None, seed=None, device=None, dtype=None):
        return temporal_order(batch_size, T, symbols, generator=generator, seed=seed,
                              device=device, dtype=dtype)  # fmt: skip

    gen.__doc__ = f"Temporal order with {symbols} symbols (:func:`temporal_order`)."
    return gen


PROBLEMS: dict[str, Problem] = {
    p.name: p
    for p in (
        Problem("addition", addition, 2, 1, False, regression_loss, regression_correct),
        Problem(
            "multiplication", multiplication, 2, 1, False, regression_loss, regression_correct
        ),  # fmt: skip
        Problem("xor", xor.generate, 2, 1, False, xor.loss, _xor_correct),
        Problem("temporal2", _temporal(2), 8, 4, False, class_loss, class_correct),
        Problem("temporal3", _temporal(3), 8, 8, False, class_loss, class_correct),
        Problem(
            "permutation", permutation.generate, 100, 100, True, _perm_loss, permutation.is_correct
        ),  # fmt: skip
        Problem("memorization5", _memo("5bit"), 4, 3, True, _memo_loss, copying.is_correct),
        Problem("memorization20", _memo("20bit"), 7, 6, True, _memo_loss, copying.is_correct),
    )
}


def get(name: str) -> Problem:
    """The problem called ``name``; InputError listing the names otherwise."""
    return PROBLEMS[check_choice("name", name, tuple(PROBLEMS))]
