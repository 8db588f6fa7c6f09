r"""The temporal-order problem (Hochreiter & Schmidhuber 1997, Exp. 6;
docs/tasks.md#temporal-order).

Eight one-hot symbols ``E, B, a, b, c, d, X, Y`` (indices 0..7). A sequence is ``E``, then
random symbols from ``{a, b, c, d}``, then the trigger ``B`` at its last step. Two (6a) or
three (6b) of the random positions, one drawn uniformly in each window, carry ``X`` or
``Y`` instead; the class is the order read as a binary number with ``Y = 1``, first symbol
most significant:

- 4 classes (6a): windows :math:`t_1 \in [10, 20]`, :math:`t_2 \in [50, 60]`;
  XX, XY, YX, YY :math:`\to` Q, R, S, U (classes 0..3);
- 8 classes (6b): windows [10, 20], [33, 43], [66, 76]; XXX..YYY :math:`\to`
  Q, R, S, U, V, A, B, C (classes 0..7).

Length uniform in [100, 110]. Positions are step indices with ``E`` at step 0. Targets
are class indices ``(B,)`` read at the last step. The 1997 rule (:func:`is_correct` with
``rule="abs"``): every output's absolute error against the one-hot target is below 0.3.
``convention="hf"`` uses the windows of Martens & Sutskever's code
(docs/tasks.md#hessian-free-problems) scaled
by :math:`f = T/100`: [f, 10f], [40f, 50f] (4 classes) or [f, 10f], [30f, 40f], [50f, 60f]
(8 classes), length uniform in [100f, 110f).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rnnlab.errors import InputError
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
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

SYMBOLS = ("E", "B", "a", "b", "c", "d", "X", "Y")
INPUT_SIZE = 8
CLASS_NAMES = {4: ("Q", "R", "S", "U"), 8: ("Q", "R", "S", "U", "V", "A", "B", "C")}
WINDOWS_1997 = {4: ((10, 20), (50, 60)), 8: ((10, 20), (33, 43), (66, 76))}
THRESHOLD = 0.3


def hf_windows(T: int, classes: int) -> tuple[tuple[int, int], ...]:
    """Mark windows of the Hessian-free code for base length ``T`` (f = T/100)."""
    f = T / 100
    spans = ((1, 10), (40, 50)) if classes == 4 else ((1, 10), (30, 40), (50, 60))
    return tuple((max(1, int(a * f)), int(b * f)) for a, b in spans)


def generate(
    batch_size: int,
    classes: int = 4,
    *,
    convention: str = "1997",
    T: int = 100,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the temporal-order problem with 4 or 8 classes.

    convention: ``"1997"`` (length 100..110, the paper's windows; ``T`` ignored) or
    ``"hf"`` (windows and length scaled by ``T / 100``, T >= 100).
    Returns inputs ``(B, T, 8)``, targets ``(B,)`` long class indices.
    """
    check_range("batch_size", batch_size, 1)
    if classes not in (4, 8):
        raise InputError(f"classes: expected 4 or 8, received {classes!r}")
    check_choice("convention", convention, ("1997", "hf"))
    g = make_generator(generator, seed)
    if convention == "1997":
        windows, lo, hi = WINDOWS_1997[classes], 100, 110
    else:
        check_range("T (hf temporal order)", T, 100)
        windows, lo, hi = hf_windows(T, classes), T, int(1.1 * T) - 1
    L = randint(lo, hi, batch_size, g)
    Tmax = int(L.max())
    sym = randint(2, 5, (batch_size, Tmax), g)  # a..d
    sym[:, 0] = 0  # E
    rows = torch.arange(batch_size)
    label = torch.zeros(batch_size, dtype=torch.long)
    for a, b in windows:
        pos = randint(a, b, batch_size, g)
        bit = randint(0, 1, batch_size, g)
        sym[rows, pos] = 6 + bit  # X or Y
        label = 2 * label + bit
    sym[rows, L - 1] = 1  # trigger B
    valid = torch.arange(Tmax)[None, :] < L[:, None]
    inputs = F.one_hot(sym, INPUT_SIZE).double() * valid[..., None]  # (B, T, 8)
    return finish(inputs, label, end_mask(L, Tmax), L, device, dtype)


def num_classes(batch: TaskBatch) -> int:
    """K, the number of classes of a batch: 4 with two X/Y symbols per sequence, 8 with
    three (read from the first sequence's inputs)."""
    if batch.inputs.dim() != 3 or batch.inputs.shape[-1] != INPUT_SIZE:
        raise InputError(
            f"batch: expected inputs (B, T, {INPUT_SIZE}) of the temporal-order problem, "
            f"received shape {tuple(batch.inputs.shape)}"
        )
    marks = int((batch.inputs[0, :, 6:] > 0.5).sum())
    if marks not in (2, 3):
        raise InputError(
            f"batch: expected 2 or 3 X/Y symbols per sequence (4 or 8 classes), received {marks}"
        )
    return 2**marks


def loss(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Cross-entropy of the class at the last step; ``logits (B, K)`` or ``(B, T, K)``."""
    return F.cross_entropy(end_prediction(logits, batch, num_classes(batch)), batch.targets)


def mse_loss(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Squared error against the one-hot class at the last step (the 1997 loss)."""
    p = end_prediction(pred, batch, num_classes(batch))
    return ((p - F.one_hot(batch.targets, p.shape[-1]).to(p.dtype)) ** 2).mean()


def is_correct(
    pred: torch.Tensor, batch: TaskBatch, rule: str = "abs", threshold: float = THRESHOLD
) -> torch.Tensor:
    """Bool ``(B,)``. ``rule="abs"``: every output within ``threshold`` of the one-hot
    target (1997, outputs in [0, 1]); ``rule="argmax"``: the most active output is the
    class (for logits)."""
    check_choice("rule", rule, ("abs", "argmax"))
    threshold = check_threshold("threshold", threshold)
    p = end_prediction(pred, batch, num_classes(batch))
    if rule == "argmax":
        return p.argmax(-1) == batch.targets
    onehot = F.one_hot(batch.targets, p.shape[-1]).to(p.dtype)
    return ((p - onehot).abs() < threshold).all(-1)


def error_rate(pred, batch: TaskBatch, rule: str = "abs", threshold: float = THRESHOLD) -> float:
    """Fraction of sequences misclassified under ``rule``."""
    return _error_rate(is_correct(pred, batch, rule, threshold))


def solve(batch: TaskBatch) -> torch.Tensor:
    """The exact class, read from the inputs (the perfect solver): long ``(B,)``."""
    sym = batch.inputs.argmax(-1)  # (B, T)
    label = torch.zeros(sym.shape[0], dtype=torch.long, device=sym.device)
    xy = (sym >= 6) & (batch.inputs.sum(-1) > 0)
    for b in range(sym.shape[0]):
        for s in sym[b][xy[b]].tolist():
            label[b] = 2 * label[b] + (s - 6)
    return label
