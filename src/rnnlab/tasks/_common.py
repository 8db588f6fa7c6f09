"""Shared pieces of the task generators: the batch type, seeding, losses and the
success rules of Hochreiter & Schmidhuber (1997) (ABS, ST3).

Layout conventions, common to every task in :mod:`rnnlab.tasks`:

- ``inputs``: float ``(B, T, F)``, zero past each sequence's length.
- ``mask``: bool ``(B, T)``, True at the steps whose outputs are scored.
- ``lengths``: long ``(B,)``, the valid steps of each sequence (``T`` for fixed-length tasks).
- ``targets``: either *per step*, ``(B, T, O)`` float or ``(B, T)`` long class indices,
  read where ``mask`` is True; or *end of sequence*, ``(B, O)`` float or ``(B,)`` long,
  scored at step ``lengths - 1`` (``mask`` is then True there only).

For end-of-sequence tasks the loss and success functions accept the network's output
either already reduced to ``(B, O)`` or for every step ``(B, T, O)``; in the latter case
they read step ``lengths - 1`` (:func:`final_step`).
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple

import torch
import torch.nn.functional as F

from rnnlab._validation import check_tensor, describe
from rnnlab.errors import InputError, InputTypeError


class TaskBatch(NamedTuple):
    """One batch of a task.

    inputs: ``(B, T, F)`` float, zero past ``lengths``.
    targets: per step ``(B, T, O)`` / ``(B, T)`` long, or end-of-sequence ``(B, O)`` / ``(B,)``.
    mask: ``(B, T)`` bool, the scored steps.
    lengths: ``(B,)`` long, valid steps per sequence.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor


# --------------------------------------------------------------------------- seeding


def make_generator(generator: torch.Generator | None = None, seed: int | None = None):
    """The CPU random generator a task draws from.

    ``generator`` wins when given (its state advances, so successive calls differ);
    otherwise a fresh generator seeded with ``seed``; otherwise torch's global generator.
    """
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise InputTypeError(
                f"generator: expected a torch.Generator, received {describe(generator)}"
            )
        if generator.device.type != "cpu":
            raise InputError(
                f"generator: expected a CPU generator (data are drawn on the CPU, then moved), "
                f"received one on {generator.device}"
            )
        return generator
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InputTypeError(f"seed: expected an int or None, received {describe(seed)}")
        return torch.Generator().manual_seed(seed)
    return torch.default_generator


def randint(lo: int, hi: int, size, g: torch.Generator) -> torch.Tensor:
    """Integers uniform in ``[lo, hi]`` (both ends included), long tensor of ``size``."""
    return torch.randint(lo, hi + 1, size if isinstance(size, tuple) else (size,), generator=g)


def uniform(lo: float, hi: float, size, g: torch.Generator) -> torch.Tensor:
    """Float64 values uniform in ``[lo, hi)``."""
    return lo + (hi - lo) * torch.rand(size, generator=g, dtype=torch.float64)


def float_dtype(dtype: torch.dtype | None) -> torch.dtype:
    """The float dtype of a batch (torch's default when None)."""
    dtype = dtype or torch.get_default_dtype()
    if not dtype.is_floating_point:
        raise InputTypeError(f"dtype: expected a floating-point dtype, received {dtype}")
    return dtype


def finish(inputs, targets, mask, lengths, device, dtype) -> TaskBatch:
    """Cast to ``dtype`` (floats) and move everything to ``device``."""
    dtype = float_dtype(dtype)
    t = targets.to(device=device, dtype=dtype) if targets.is_floating_point() else targets
    return TaskBatch(
        inputs.to(device=device, dtype=dtype),
        t.to(device=device),
        mask.to(device=device),
        lengths.to(device=device, dtype=torch.long),
    )


def end_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """``(B, T)`` bool, True at step ``lengths - 1`` of each row."""
    steps = torch.arange(T, device=lengths.device)
    return steps[None, :] == (lengths[:, None] - 1)


def valid_mask(lengths: torch.Tensor, T: int) -> torch.Tensor:
    """``(B, T)`` bool, True at the valid steps ``t < lengths``."""
    return torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]


# the largest size or count any task accepts (sizes beyond it overflow torch's indices)
MAX_SIZE = 2**31 - 1


def check_range(name: str, value, lo: int, hi: int | None = None) -> int:
    """An int in ``[lo, hi]`` (``hi`` defaults to :data:`MAX_SIZE`); ValueError naming
    the valid range otherwise."""
    hi_ = MAX_SIZE if hi is None else hi
    ok = not isinstance(value, bool) and isinstance(value, int) and lo <= value <= hi_
    if not ok:
        rng = f">= {lo} (at most 2**31 - 1)" if hi is None else f"in [{lo}, {hi}]"
        raise InputError(f"{name}: expected an integer {rng}, received {value!r}")
    return value


def check_choice(name: str, value, choices) -> str:
    """One of ``choices``; ValueError listing them otherwise."""
    if value not in choices:
        raise InputError(
            f"{name}: expected one of {', '.join(map(repr, choices))}, received {value!r}"
        )
    return value


# --------------------------------------------------------------------------- scoring


def check_pred(name: str, pred: object, shape: tuple[int, ...], meaning: str = "") -> torch.Tensor:
    """``pred`` as a floating-point tensor of exactly ``shape``; InputError (naming ``name``,
    the expected and the received shape) otherwise. No silent broadcasting."""
    check_tensor(name, pred)
    if not pred.is_floating_point():
        raise InputTypeError(
            f"{name}: expected a floating-point tensor (outputs or logits), received "
            f"dtype {pred.dtype}"
        )
    if tuple(pred.shape) != tuple(shape):
        extra = f" {meaning}" if meaning else ""
        raise InputError(
            f"{name}: expected shape {tuple(shape)}{extra}, received shape {tuple(pred.shape)}"
        )
    return pred


def step_prediction(pred: object, batch, size: int, name: str = "pred") -> torch.Tensor:
    """``pred`` for a per-step task: exactly ``(B, T, size)`` for a batch of ``(B, T, F)``
    inputs; InputError otherwise."""
    B, T = batch.inputs.shape[:2]
    return check_pred(name, pred, (B, T, size), f"(B, T, O) with O = {size} outputs")


def check_threshold(name: str, value: object) -> float:
    """A positive finite number (a success threshold or tolerance)."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if not (ok and math.isfinite(value) and value > 0):
        raise InputError(f"{name}: expected a positive finite number, received {value!r}")
    return float(value)


def final_step(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The output at each sequence's last valid step: ``(B, T, O) -> (B, O)``."""
    check_tensor("outputs", outputs)
    if outputs.dim() != 3:
        raise InputError(f"outputs: expected (B, T, O), received shape {tuple(outputs.shape)}")
    if lengths.shape != (outputs.shape[0],) or (
        lengths.numel() and int(lengths.max()) > outputs.shape[1]
    ):
        raise InputError(
            f"outputs: expected (B, T, O) with B = {lengths.numel()} and T >= "
            f"{int(lengths.max()) if lengths.numel() else 0}, received shape "
            f"{tuple(outputs.shape)}"
        )
    idx = (lengths.to(outputs.device) - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[-1])
    return outputs.gather(1, idx).squeeze(1)  # (B, O)


def end_prediction(pred: object, batch: TaskBatch, size: int | None = None) -> torch.Tensor:
    """``pred`` for an end-of-sequence task as ``(B, O)``: given as ``(B, O)``, as
    ``(B, T, O)`` for every step (step ``lengths - 1`` is read; T as the inputs'), or as
    ``(B,)`` when O = 1. ``size`` is O (default: the last size of ``(B, O)`` targets).
    Any other shape raises InputError naming ``pred`` (no silent broadcasting)."""
    check_tensor("pred", pred)
    B, T = batch.inputs.shape[:2]
    if size is None:
        size = batch.targets.shape[-1] if batch.targets.dim() == 2 else None
    if size is None:
        raise InputError("pred: the number of outputs O of this task is unknown")
    if pred.dim() == 3:
        check_pred("pred", pred, (B, T, size), f"(B, T, O) with O = {size} outputs")
        return final_step(pred, batch.lengths)
    if pred.dim() == 1 and size == 1:
        pred = pred.unsqueeze(-1)
    want = f"(B, O), (B, T, O){' or (B,)' if size == 1 else ''} with B = {B}, T = {T}, O = {size}"
    if pred.dim() != 2:
        raise InputError(f"pred: expected shape {want}, received shape {tuple(pred.shape)}")
    return check_pred("pred", pred, (B, size), f"(B, O) with O = {size} outputs")


def abs_correct(pred: torch.Tensor, targets: torch.Tensor, beta: float) -> torch.Tensor:
    """ABS(beta), Hochreiter & Schmidhuber (1997), §5: a sequence is correct when every
    output's absolute error is below ``beta``. ``pred, targets: (B, O)`` -> bool ``(B,)``."""
    if pred.shape != targets.shape:
        raise InputError(
            f"pred: expected shape {tuple(targets.shape)} (as targets), "
            f"received {tuple(pred.shape)}"
        )
    return ((pred - targets).abs() < beta).all(dim=-1)


def masked_mse(pred: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the scored steps (per-step ``(B, T, O)`` layout)."""
    check_pred("pred", pred, tuple(targets.shape), "(as targets)")
    m = mask.unsqueeze(-1).to(pred.dtype)
    n = (mask.sum() * pred.shape[-1]).clamp_min(1)
    return (((pred - targets) ** 2) * m).sum() / n


def masked_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean cross-entropy (nats) over the scored steps; ``logits (B, T, V)``,
    ``targets (B, T)`` long."""
    check_tensor("logits", logits)
    if logits.dim() != 3 or tuple(logits.shape[:2]) != tuple(targets.shape):
        raise InputError(
            f"logits: expected shape (B, T, V) with (B, T) = {tuple(targets.shape)}, received "
            f"shape {tuple(logits.shape)}"
        )
    check_pred("logits", logits, tuple(logits.shape))  # floating point
    if targets.numel() and int(targets.max()) >= logits.shape[-1]:
        raise InputError(
            f"logits: expected at least {int(targets.max()) + 1} classes (the largest target "
            f"is {int(targets.max())}), received shape {tuple(logits.shape)}"
        )
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none"
    )
    m = mask.reshape(-1).to(ce.dtype)
    return (ce * m).sum() / m.sum().clamp_min(1)


def masked_bce_with_logits(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean binary cross-entropy (nats per output) over the scored steps; for multi-hot
    targets such as legal-next-symbol sets. ``logits, targets: (B, T, O)``."""
    check_pred("logits", logits, tuple(targets.shape), "(as targets)")
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    m = mask.unsqueeze(-1).to(bce.dtype)
    return (bce * m).sum() / (mask.sum() * logits.shape[-1]).clamp_min(1)


def per_step_all(ok: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A sequence is correct when ``ok`` holds at all its scored steps: ``(B, T) -> (B,)``."""
    return (ok | ~mask).all(dim=1)


def error_rate(correct: torch.Tensor) -> float:
    """Fraction of sequences judged wrong."""
    return float(1.0 - correct.float().mean()) if correct.numel() else 0.0


class ST3:
    """The stopping rule ST3(beta) of Hochreiter & Schmidhuber (1997), §5: stop once the
    mean training error is below ``beta`` and the last ``window`` training sequences were
    all correct.

    "Mean training error" is read here as the mean of the per-sequence errors passed to
    :meth:`update` over the same window (the paper does not define the averaging span).
    Feed it every training sequence (or batch, row by row) in order::

        st3 = ST3(beta=0.01)
        if st3.update(errors, correct):  # errors (B,) float, correct (B,) bool
            ...  # stop training and test
    """

    def __init__(self, beta: float, window: int = 2000):
        if not beta > 0:
            raise InputError(f"beta: expected a positive number, received {beta!r}")
        self.beta = float(beta)
        self.window = check_range("window", window, 1)
        self._errors: deque[float] = deque(maxlen=window)
        self._correct: deque[bool] = deque(maxlen=window)
        self.seen = 0

    def update(self, errors: torch.Tensor, correct: torch.Tensor) -> bool:
        """Record sequences (in order); True when the rule says stop."""
        errors = torch.as_tensor(errors).detach().reshape(-1).double().cpu().tolist()
        correct = torch.as_tensor(correct).detach().reshape(-1).bool().cpu().tolist()
        if len(errors) != len(correct):
            raise InputError(
                f"errors and correct: expected the same length, received {len(errors)} "
                f"and {len(correct)}"
            )
        self._errors.extend(errors)
        self._correct.extend(correct)
        self.seen += len(errors)
        return self.satisfied

    @property
    def satisfied(self) -> bool:
        """Whether the rule holds now."""
        full = len(self._correct) == self.window
        return full and all(self._correct) and sum(self._errors) / len(self._errors) < self.beta
