r"""Copy and memorisation tasks.

**uRNN copy task** (Arjovsky, Shah & Bengio 2016; docs/tasks.md#copy-and-memorisation). Symbols
``a0 .. a9`` (inputs one-hot, 10): 10 data symbols uniform over ``a0..a7``, then
:math:`T - 1` blanks ``a8``, the delimiter ``a9``, then 10 blanks; length :math:`T + 20`.
Targets ``(B, T + 20)`` long over 9 classes (``a0..a8``): :math:`T + 10` blanks, then the
10 data symbols; cross-entropy at every step. The memoryless strategy (blanks, then a
uniform guess over 8 symbols) scores :math:`10 \ln 8 / (T + 20)` nats per step
(:func:`copy_baseline`).

**Noiseless memorisation** (Martens & Sutskever 2011, from Sutskever's code;
docs/tasks.md#copy-and-memorisation).
``num_chars`` data symbols from an alphabet of ``K`` sit at the start; a trigger
appears ``num_chars + 1`` steps before the end; blanks fill the rest; the net must output
the data during the last ``num_chars`` steps. ``"5bit"``: 5 binary symbols (K = 2; the 32
patterns make a batch with ``all_patterns=True``); ``"20bit"``: 10 symbols, K = 5.
Inputs one-hot over ``K + 2`` (data, blank = K, trigger = K + 1); targets ``(B, T)`` long
over ``K + 1`` (data, blank = K), blank everywhere but the last ``num_chars`` steps;
``mask`` marks those last steps (the scored ones).

A sequence is correct when the most active output equals the target at every scored
step.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from rnnlab.errors import InputError
from rnnlab.tasks._common import (
    TaskBatch,
    check_choice,
    check_range,
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

COPY_SYMBOLS = 8
COPY_LENGTH = 10
COPY_INPUT_SIZE = 10
COPY_OUTPUT_SIZE = 9
BLANK = 8
DELIMITER = 9
MEMORIZATION = {"5bit": (5, 2), "20bit": (10, 5)}  # name -> (num_chars, alphabet)


def copy_baseline(T: int) -> float:
    """Cross-entropy (nats per step) of the memoryless strategy: 10 ln 8 / (T + 20)."""
    return COPY_LENGTH * math.log(COPY_SYMBOLS) / (T + 2 * COPY_LENGTH)


def generate(
    batch_size: int,
    T: int = 100,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the uRNN copy task with delay ``T`` (T >= 1): inputs ``(B, T + 20, 10)``,
    targets ``(B, T + 20)`` long, every step scored."""
    check_range("batch_size", batch_size, 1)
    check_range("T", T, 1)
    g = make_generator(generator, seed)
    n = COPY_LENGTH
    L = T + 2 * n
    data = randint(0, COPY_SYMBOLS - 1, (batch_size, n), g)
    seq = torch.full((batch_size, L), BLANK, dtype=torch.long)
    seq[:, :n] = data
    seq[:, n + T - 1] = DELIMITER
    targets = torch.full((batch_size, L), BLANK, dtype=torch.long)
    targets[:, -n:] = data
    inputs = F.one_hot(seq, COPY_INPUT_SIZE).double()  # (B, T + 20, 10)
    mask = torch.ones(batch_size, L, dtype=torch.bool)
    return finish(inputs, targets, mask, torch.full((batch_size,), L), device, dtype)


def memorization(
    batch_size: int,
    T: int = 100,
    variant: str = "5bit",
    *,
    all_patterns: bool = False,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of the noiseless memorisation task (T >= 2 * num_chars + 1).

    all_patterns: for ``"5bit"``, return the 32 possible patterns (batch_size must be 32).
    """
    check_range("batch_size", batch_size, 1)
    check_choice("variant", variant, tuple(MEMORIZATION))
    n, K = MEMORIZATION[variant]
    check_range(
        f"T (memorisation {variant}: data, trigger and answer need {2 * n + 1})", T, 2 * n + 1
    )
    if all_patterns:
        if variant != "5bit" or batch_size != 2**n:
            raise InputError(
                f"all_patterns: valid only with variant '5bit' and batch_size {2**n}, "
                f"received variant {variant!r}, batch_size {batch_size}"
            )
        data = torch.tensor(list(itertools.product(range(K), repeat=n)))
    else:
        data = randint(0, K - 1, (batch_size, n), make_generator(generator, seed))
    blank, trigger = K, K + 1
    seq = torch.full((batch_size, T), blank, dtype=torch.long)
    seq[:, :n] = data
    seq[:, T - n - 1] = trigger
    targets = torch.full((batch_size, T), blank, dtype=torch.long)
    targets[:, T - n :] = data
    mask = torch.zeros(batch_size, T, dtype=torch.bool)
    mask[:, T - n :] = True
    inputs = F.one_hot(seq, K + 2).double()  # (B, T, K + 2)
    return finish(inputs, targets, mask, torch.full((batch_size,), T), device, dtype)


def loss(logits: torch.Tensor, batch: TaskBatch, all_steps: bool = True) -> torch.Tensor:
    """Mean cross-entropy (nats per step) over every step (``all_steps``, the uRNN
    protocol) or over the scored steps only."""
    logits = step_prediction(logits, batch, batch.inputs.shape[-1] - 1, "logits")
    mask = torch.ones_like(batch.mask) if all_steps else batch.mask
    return masked_cross_entropy(logits, batch.targets, mask)


def is_correct(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Bool ``(B,)``: the most active output is the target at every scored step."""
    logits = step_prediction(logits, batch, batch.inputs.shape[-1] - 1, "logits")
    return per_step_all(logits.argmax(-1) == batch.targets, batch.mask)


def error_rate(logits: torch.Tensor, batch: TaskBatch) -> float:
    """Fraction of sequences with a wrong symbol."""
    return _error_rate(is_correct(logits, batch))


def symbol_accuracy(logits: torch.Tensor, batch: TaskBatch, data_only: bool = True) -> float:
    """Fraction of correctly predicted symbols (over the data steps: the last 10 of the
    copy task, the scored ones of memorisation; or every step)."""
    logits = step_prediction(logits, batch, batch.inputs.shape[-1] - 1, "logits")
    mask = batch.mask.clone()
    if data_only and bool(mask.all()):  # copy task: the data are the last 10 steps
        mask[:, :-COPY_LENGTH] = False
    ok = (logits.argmax(-1) == batch.targets) & mask
    return float(ok.sum() / mask.sum())


def solve(batch: TaskBatch, num_chars: int | None = None) -> torch.Tensor:
    """The perfect solver's logits: a tape that stores the leading data symbols and
    replays them in the last ``num_chars`` steps (10 for the copy task), blanks before."""
    B, T, Fin = batch.inputs.shape
    if num_chars is not None:
        check_range(f"num_chars (at most T / 2 = {T // 2})", num_chars, 1, T // 2)
    copy_task = Fin == COPY_INPUT_SIZE and num_chars is None
    n = COPY_LENGTH if copy_task else (num_chars or int(batch.mask[0].sum()))
    V = COPY_OUTPUT_SIZE if copy_task else Fin - 1
    blank = V - 1
    sym = batch.inputs.argmax(-1)
    logits = torch.full((B, T, V), -10.0, dtype=batch.inputs.dtype, device=batch.inputs.device)
    logits[:, :, blank] = 10.0
    rows = torch.arange(B, device=sym.device)
    for i in range(n):
        logits[:, T - n + i, blank] = -10.0
        logits[rows, T - n + i, sym[:, i]] = 10.0
    return logits
