r"""Binary addition, one column per step (Hinton, CSC321 lecture 6 / Coursera 7c;
docs/tasks.md#binary-addition).

Two n-bit numbers are fed least significant bit first, one bit of each per step
(inputs ``(B, T, 2)``). One more column of zeros lets the final carry out, and two more
steps of zeros let the net answer late: :math:`T = n + 3`. At step :math:`t \ge 2` the
target is the sum bit of column :math:`t - 2` (the column input **two steps earlier**),
so the ``n + 1`` sum bits come out at steps ``2 .. n + 2``; steps 0 and 1 are not scored.
A sequence is correct when every scored output is on the right side of 0.5.

The carry automaton that solves it has 4 states, (carry, last sum bit) in
{0, 1} x {0, 1}; :func:`carry_states` returns its state after each column.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from rnnlab._validation import check_tensor
from rnnlab.errors import InputError
from rnnlab.tasks._common import (
    TaskBatch,
    check_range,
    check_threshold,
    finish,
    make_generator,
    masked_mse,
    per_step_all,
    randint,
    step_prediction,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

DELAY = 2
INPUT_SIZE = 2
OUTPUT_SIZE = 1
THRESHOLD = 0.5


def to_bits(values: Sequence[int], n_bits: int) -> torch.Tensor:
    """Long ``(B, n_bits)``: the binary digits of each value, least significant first."""
    check_range("n_bits", n_bits, 1, 62)
    values = list(values)
    try:
        ints = [operator.index(x) for x in values]  # ints, numpy or 0-d torch integers
    except TypeError:
        ints = None
    if ints is None or any(isinstance(x, bool) for x in values):
        raise InputError(f"values: expected integers, received {values!r}")
    v = torch.as_tensor(ints, dtype=torch.long)
    if (v < 0).any() or (v >= 2**n_bits).any():
        raise InputError(f"values: expected integers in [0, 2**{n_bits}), received {v.tolist()}")
    return (v[:, None] >> torch.arange(n_bits)) & 1


def from_bits(bits: torch.Tensor) -> list[int]:
    """Integers from ``(B, n)`` bits, least significant first (exact, Python ints)."""
    return [sum(int(b) << i for i, b in enumerate(row)) for row in bits.round().long().tolist()]


def encode_bits(a_bits: torch.Tensor, b_bits: torch.Tensor, *, device=None, dtype=None):
    """One batch from two ``(B, n)`` 0/1 tensors (least significant bit first)."""
    if a_bits.shape != b_bits.shape or a_bits.dim() != 2:
        raise InputError(
            f"a_bits, b_bits: expected two (B, n) tensors of one shape, received "
            f"{tuple(a_bits.shape)} and {tuple(b_bits.shape)}"
        )
    B, n = a_bits.shape
    T = n + 1 + DELAY
    inputs = torch.zeros(B, T, 2, dtype=torch.float64)
    inputs[:, :n, 0] = a_bits.double()
    inputs[:, :n, 1] = b_bits.double()
    sum_bits = _add(a_bits.long(), b_bits.long())  # (B, n + 1)
    targets = torch.zeros(B, T, 1, dtype=torch.float64)
    targets[:, DELAY:, 0] = sum_bits.double()
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[:, DELAY:] = True
    return finish(inputs, targets, mask, torch.full((B,), T), device, dtype)


def _add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Sum bits ``(B, n + 1)`` by the carry rule (the school algorithm)."""
    carry = torch.zeros_like(a[:, 0])
    out = []
    for i in range(a.shape[1]):
        s = a[:, i] + b[:, i] + carry
        out.append(s % 2)
        carry = s // 2
    out.append(carry)
    return torch.stack(out, 1)


def generate(
    batch_size: int,
    n_bits: int = 8,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """Random pairs of ``n_bits``-bit numbers (uniform bits): inputs ``(B, n + 3, 2)``,
    targets ``(B, n + 3, 1)`` (the sum bits, delayed by 2), mask from step 2 on."""
    check_range("batch_size", batch_size, 1)
    check_range("n_bits", n_bits, 1)
    g = make_generator(generator, seed)
    a = randint(0, 1, (batch_size, n_bits), g)
    b = randint(0, 1, (batch_size, n_bits), g)
    return encode_bits(a, b, device=device, dtype=dtype)


def encode(a: Sequence[int], b: Sequence[int], n_bits: int, *, device=None, dtype=None):
    """One batch for the integer pairs ``a[i] + b[i]``, each below ``2**n_bits``."""
    check_range("n_bits", n_bits, 1)
    return encode_bits(to_bits(a, n_bits), to_bits(b, n_bits), device=device, dtype=dtype)


def decode_sum(pred: torch.Tensor) -> list[int]:
    """The integers a net's outputs ``(B, n + 3, 1)`` spell (outputs thresholded at 0.5)."""
    check_tensor("pred", pred)
    if pred.dim() != 3 or pred.shape[1] <= DELAY or pred.shape[2] != OUTPUT_SIZE:
        raise InputError(
            f"pred: expected shape (B, n + 3, 1) with n >= 1, received shape {tuple(pred.shape)}"
        )
    return from_bits((pred[:, DELAY:, 0] > 0.5).long())


def loss(pred: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Mean squared error over the scored steps (outputs in [0, 1])."""
    pred = step_prediction(pred, batch, OUTPUT_SIZE)
    return masked_mse(pred, batch.targets, batch.mask)


def is_correct(pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD):
    """Bool ``(B,)``: every sum bit within ``threshold`` of its target."""
    threshold = check_threshold("threshold", threshold)
    pred = step_prediction(pred, batch, OUTPUT_SIZE)
    ok = ((pred - batch.targets).abs() < threshold).all(-1)
    return per_step_all(ok, batch.mask)


def error_rate(pred: torch.Tensor, batch: TaskBatch, threshold: float = THRESHOLD) -> float:
    """Fraction of sums with at least one wrong bit."""
    return _error_rate(is_correct(pred, batch, threshold))


def carry_states(inputs: torch.Tensor) -> torch.Tensor:
    """The carry automaton's state after each step, long ``(B, T)``: ``2 * carry + s``
    where ``s`` is the sum bit of the column just read and ``carry`` the carry it
    produced (the 4 states of the lecture's net)."""
    a, b = inputs[..., 0].round().long(), inputs[..., 1].round().long()
    carry = torch.zeros_like(a[:, 0])
    states = []
    for t in range(a.shape[1]):
        s = a[:, t] + b[:, t] + carry
        carry = s // 2
        states.append(2 * carry + s % 2)
    return torch.stack(states, 1)


def solve(batch: TaskBatch) -> torch.Tensor:
    """The carry automaton's output, delayed by 2 steps: ``(B, T, 1)`` 0/1."""
    st = carry_states(batch.inputs)
    out = torch.zeros_like(batch.targets)
    out[:, DELAY:, 0] = (st[:, :-DELAY] % 2).to(out.dtype)
    return out
