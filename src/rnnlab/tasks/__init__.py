"""Generators of the classic sequence-learning benchmark tasks, each with its loss and
its success criterion (docs/tasks.md).

Every generator is seeded (``generator=`` a CPU ``torch.Generator``, or ``seed=``),
batched, draws fresh data on each call, and returns a typed named tuple whose first four
fields are ``inputs (B, T, F)``, ``targets``, ``mask (B, T)`` (the scored steps) and
``lengths (B,)`` (:class:`TaskBatch`; see :mod:`rnnlab.tasks._common` for the layout).
Each task module provides ``loss(pred, batch)``, ``is_correct(pred, batch) -> (B,) bool``
(the paper's rule), ``error_rate(pred, batch)`` and ``solve(batch)`` (an exact solver
that the tests use as an oracle).

Modules: :mod:`adding` (1997 and modern adding, multiplication), :mod:`temporal_order`,
:mod:`two_sequence`, :mod:`long_lag` (2a/2b/2c), :mod:`xor`, :mod:`permutation`,
:mod:`reber` (embedded Reber, continual stream), :mod:`anbn` (a^n b^n, a^n b^n c^n),
:mod:`parity`, :mod:`binary_addition`, :mod:`copying` (uRNN copy, memorisation),
:mod:`toy` (the lecture toy nets), :mod:`mackey_glass`, :mod:`narma` (NARMA and the
memory-capacity task, for echo state networks).
"""

from rnnlab.tasks import (
    adding,
    anbn,
    binary_addition,
    copying,
    long_lag,
    mackey_glass,
    narma,
    parity,
    pathological,
    permutation,
    reber,
    temporal_order,
    toy,
    two_sequence,
    xor,
)
from rnnlab.tasks._common import (
    ST3,
    TaskBatch,
    abs_correct,
    end_prediction,
    error_rate,
    final_step,
    make_generator,
    masked_bce_with_logits,
    masked_cross_entropy,
    masked_mse,
)
from rnnlab.tasks.reber import ReberBatch
from rnnlab.tasks.two_sequence import TwoSequenceBatch

__all__ = [
    "ST3",
    "ReberBatch",
    "TaskBatch",
    "TwoSequenceBatch",
    "abs_correct",
    "adding",
    "anbn",
    "binary_addition",
    "copying",
    "end_prediction",
    "error_rate",
    "final_step",
    "long_lag",
    "mackey_glass",
    "make_generator",
    "masked_bce_with_logits",
    "masked_cross_entropy",
    "masked_mse",
    "narma",
    "parity",
    "pathological",
    "permutation",
    "reber",
    "temporal_order",
    "toy",
    "two_sequence",
    "xor",
]
