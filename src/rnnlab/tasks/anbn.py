r"""Context-free and context-sensitive counting languages: :math:`a^n b^n` and
:math:`a^n b^n c^n` (Gers & Schmidhuber 2001; docs/tasks.md#counting-languages).

Strings ``S a^n b^n T`` (or ``S a^n b^n c^n T``), :math:`n \ge 1`. Vocabulary
``S a b T`` (indices 0..3) or ``S a b c T`` (0..4), one-hot in and out. The net reads
every symbol but the final ``T`` and at every step predicts the **set of legal next
symbols** (multi-hot ``targets``), which is

- after ``S``: ``{a}``; after an ``a``: ``{a, b}`` (the net cannot know n yet);
- after the k-th ``b``: ``{b}`` for k < n, then ``{T}`` (:math:`a^n b^n`) or ``{c}``
  (:math:`a^n b^n c^n`); after the k-th ``c``: ``{c}`` for k < n, then ``{T}``.

A string is accepted when every output, thresholded at 0.5, equals the legal set at
every step (:func:`is_correct`). :func:`max_n_generalised` turns acceptance per n into
the largest N with every n <= N accepted.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch

from rnnlab.errors import InputError
from rnnlab.tasks._common import (
    TaskBatch,
    check_range,
    finish,
    make_generator,
    masked_bce_with_logits,
    per_step_all,
    randint,
    step_prediction,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

VOCAB_ANBN = ("S", "a", "b", "T")
VOCAB_ANBNCN = ("S", "a", "b", "c", "T")


def vocab(with_c: bool) -> tuple[str, ...]:
    """The symbols of a^n b^n (``with_c=False``) or a^n b^n c^n."""
    return VOCAB_ANBNCN if with_c else VOCAB_ANBN


def string(n: int, with_c: bool = False) -> str:
    """The string ``S a^n b^n [c^n] T``."""
    check_range("n", n, 1)
    return "S" + "a" * n + "b" * n + ("c" * n if with_c else "") + "T"


def legal_next(n: int, with_c: bool = False) -> list[frozenset[str]]:
    """The legal next symbols after each symbol but the last of ``string(n, with_c)``."""
    check_range("n", n, 1)
    end = "c" if with_c else "T"
    sets = [frozenset("a")]  # after S
    sets += [frozenset("ab")] * n  # after each a
    sets += [frozenset("b")] * (n - 1) + [frozenset(end)]  # after each b
    if with_c:
        sets += [frozenset("c")] * (n - 1) + [frozenset("T")]
    return sets


def _check_n(n) -> int:
    """An n of ``encode``: an integer >= 1 (Python, numpy or 0-d torch integer)."""
    try:
        value = operator.index(n)
    except TypeError:
        value = None
    if isinstance(n, bool) or value is None or value < 1:
        raise InputError(f"ns: expected integers >= 1, received {n!r}")
    return value


def encode(ns: Sequence[int], with_c: bool = False, *, device=None, dtype=None) -> TaskBatch:
    """One batch holding the strings for the given ``ns`` (padded to the longest).

    inputs ``(B, T, V)`` one-hot of every symbol but ``T``; targets ``(B, T, V)``
    multi-hot legal next symbols; lengths ``(k + 1) n + 1`` with k = 2 or 3.
    """
    ns = [_check_n(n) for n in ns]
    if not ns:
        raise InputError("ns: expected at least one n >= 1, received none")
    voc = vocab(with_c)
    V = len(voc)
    index = {s: i for i, s in enumerate(voc)}
    k = 3 if with_c else 2
    lengths = torch.tensor([k * n + 1 for n in ns])
    Tmax = int(lengths.max())
    inputs = torch.zeros(len(ns), Tmax, V, dtype=torch.float64)
    targets = torch.zeros(len(ns), Tmax, V, dtype=torch.float64)
    for b, n in enumerate(ns):
        s = string(n, with_c)[:-1]
        inputs[b, torch.arange(len(s)), torch.tensor([index[c] for c in s])] = 1.0
        for t, legal in enumerate(legal_next(n, with_c)):
            for c in legal:
                targets[b, t, index[c]] = 1.0
    mask = torch.arange(Tmax)[None, :] < lengths[:, None]
    return finish(inputs, targets, mask, lengths, device, dtype)


def generate(
    batch_size: int,
    n_max: int = 10,
    n_min: int = 1,
    *,
    with_c: bool = False,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> TaskBatch:
    """A batch of strings with n uniform in ``[n_min, n_max]`` (1 <= n_min <= n_max)."""
    check_range("batch_size", batch_size, 1)
    check_range("n_min", n_min, 1)
    check_range(f"n_max (at least n_min = {n_min})", n_max, n_min)
    g = make_generator(generator, seed)
    ns = randint(n_min, n_max, batch_size, g).tolist()
    return encode(ns, with_c, device=device, dtype=dtype)


def loss(logits: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Binary cross-entropy of the outputs against the legal-next sets."""
    return masked_bce_with_logits(logits, batch.targets, batch.mask)


def mse_loss(probs: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """Squared error of outputs in [0, 1] against the legal-next sets (Gers 2001)."""
    probs = step_prediction(probs, batch, batch.targets.shape[-1], "probs")
    m = batch.mask[..., None].to(probs.dtype)
    return (((probs - batch.targets) ** 2) * m).sum() / (m.sum() * probs.shape[-1])


def is_correct(probs: torch.Tensor, batch: TaskBatch, threshold: float = 0.5):
    """Bool ``(B,)``, the acceptance rule: every output thresholded at ``threshold``
    equals the legal set at every step. (For logits pass ``threshold=0``.)"""
    probs = step_prediction(probs, batch, batch.targets.shape[-1], "probs")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise InputError(f"threshold: expected a number, received {threshold!r}")
    ok = ((probs > threshold) == (batch.targets > 0.5)).all(-1)  # (B, T)
    return per_step_all(ok, batch.mask)


def error_rate(probs: torch.Tensor, batch: TaskBatch, threshold: float = 0.5) -> float:
    """Fraction of strings rejected."""
    return _error_rate(is_correct(probs, batch, threshold))


def max_n_generalised(accepted: Sequence[bool] | torch.Tensor, n_start: int = 1) -> int:
    """The largest N with every n in ``[n_start, N]`` accepted, given ``accepted[i]`` for
    ``n = n_start + i``; ``n_start - 1`` when the first is rejected."""
    acc = [bool(a) for a in (accepted.tolist() if torch.is_tensor(accepted) else accepted)]
    N = n_start - 1
    for a in acc:
        if not a:
            break
        N += 1
    return N


def solve(batch: TaskBatch, with_c: bool = False) -> torch.Tensor:
    """A counter automaton that reads the inputs and outputs the legal-next sets
    ``(B, T, V)`` in {0, 1} (independent of ``legal_next``: it counts a's and b's)."""
    voc = vocab(with_c)
    B, T, V = batch.inputs.shape
    out = torch.zeros(B, T, V, dtype=batch.inputs.dtype, device=batch.inputs.device)
    sym = batch.inputs.argmax(-1)
    idx = {s: i for i, s in enumerate(voc)}
    for b in range(B):
        na = nb = nc = 0
        for t in range(int(batch.lengths[b])):
            ch = voc[int(sym[b, t])]
            na += ch == "a"
            nb += ch == "b"
            nc += ch == "c"
            if ch == "S":
                legal = "a"
            elif ch == "a":
                legal = "ab"
            elif ch == "b":
                legal = "b" if nb < na else ("c" if with_c else "T")
            else:
                legal = "c" if nc < na else "T"
            for c in legal:
                out[b, t, idx[c]] = 1.0
    return out
