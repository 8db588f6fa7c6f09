r"""The embedded Reber grammar (Hochreiter & Schmidhuber 1997, Exp. 1;
docs/tasks.md#embedded-reber-grammar) and the continual embedded Reber stream (Gers,
Schmidhuber & Cummins 2000; docs/tasks.md#continual-embedded-reber).

Symbols ``B T S X P V E`` (indices 0..6, one-hot). The Reber grammar is the automaton
(after the initial ``B``; each branch taken with probability 1/2)::

    state 0: T -> 1, P -> 2        state 3: X -> 2, S -> 5
    state 1: S -> 1, X -> 3        state 4: P -> 3, V -> 5
    state 2: T -> 2, V -> 4        state 5: E -> end

An embedded Reber string is ``B``, then ``T`` or ``P``, then a Reber string, then the
same ``T`` or ``P`` again, then ``E``; remembering that symbol over the inner string is the
long-lag part (shortest lag 9). The continual stream concatenates embedded strings
without any reset or marker.

A :class:`ReberBatch` holds the one-hot inputs (all but the last symbol of each string),
the next symbol (``targets``, ``(B, T, 7)`` one-hot) and the grammar's set of legal next
symbols (``legal``, ``(B, T, 7)`` multi-hot). Success rules:

- :func:`is_correct` (1997): at every step the outputs of the legal next symbols are the
  most active (each above every illegal one);
- :func:`is_correct_threshold`: every output thresholded at 0.5 equals ``legal``;
- :func:`continual_step_correct` (Gers et al. 2000): every output's squared error
  against ``legal`` below 0.49, per step; :func:`symbols_until_error` counts the correctly
  predicted symbols of a stream before its first error.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from rnnlab.errors import InputError, InputTypeError
from rnnlab.tasks._common import (
    check_range,
    float_dtype,
    make_generator,
    masked_bce_with_logits,
    masked_cross_entropy,
    per_step_all,
    step_prediction,
)
from rnnlab.tasks._common import (
    error_rate as _error_rate,
)

SYMBOLS = "BTSXPVE"
INDEX = {s: i for i, s in enumerate(SYMBOLS)}
V = len(SYMBOLS)
# Reber automaton after the initial B: state -> ((symbol, next state), ...); None = end
GRAMMAR: dict[int, tuple[tuple[str, int | None], ...]] = {
    0: (("T", 1), ("P", 2)),
    1: (("S", 1), ("X", 3)),
    2: (("T", 2), ("V", 4)),
    3: (("X", 2), ("S", 5)),
    4: (("P", 3), ("V", 5)),
    5: (("E", None),),
}


class ReberBatch(NamedTuple):
    """inputs ``(B, T, 7)``; targets ``(B, T, 7)`` one-hot next symbol; mask ``(B, T)``;
    lengths ``(B,)``; legal ``(B, T, 7)`` multi-hot legal next symbols."""

    inputs: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    legal: torch.Tensor


def _coin(g: torch.Generator) -> int:
    return int(torch.randint(0, 2, (1,), generator=g))


def sample_reber(g: torch.Generator) -> str:
    """One Reber string, ``B ... E``."""
    out, state = ["B"], 0
    while state is not None:
        sym, state = GRAMMAR[state][_coin(g) if len(GRAMMAR[state]) > 1 else 0]
        out.append(sym)
    return "".join(out)


def sample_embedded(g: torch.Generator) -> str:
    """One embedded Reber string ``B (T|P) <Reber string> (T|P) E``."""
    branch = "TP"[_coin(g)]
    return "B" + branch + sample_reber(g) + branch + "E"


def sample_strings(
    n: int,
    *,
    embedded: bool = True,
    exclude: Iterable[str] = (),
    generator: torch.Generator | None = None,
    seed: int | None = None,
) -> list[str]:
    """``n`` strings of the (embedded) grammar, none of them in ``exclude`` (use it to keep
    a test set separate from the training set)."""
    check_range("n", n, 1)
    g = make_generator(generator, seed)
    exclude = set(exclude)
    draw = sample_embedded if embedded else sample_reber
    out: list[str] = []
    tries = 0
    while len(out) < n:
        s = draw(g)
        tries += 1
        if s not in exclude:
            out.append(s)
        elif tries > 1000 * n:
            raise InputError("exclude: it holds nearly every string the grammar produces")
    return out


def _inner_legal(s: str) -> list[frozenset[str]] | None:
    """Legal-next sets after each symbol of a plain Reber string, or None if invalid."""
    if len(s) < 2 or s[0] != "B":
        return None
    sets = [frozenset(sym for sym, _ in GRAMMAR[0])]
    state: int | None = 0
    for ch in s[1:]:
        if state is None:
            return None
        moves = dict(GRAMMAR[state])
        if ch not in moves:
            return None
        state = moves[ch]
        sets.append(frozenset(sym for sym, _ in GRAMMAR[state]) if state is not None else None)
    if state is not None:
        return None
    return sets


def legal_next(string: str, embedded: bool = True) -> list[frozenset[str]]:
    """The legal next symbols after each symbol of ``string`` (one set per symbol). The
    set after the final ``E`` is ``{"B"}``: what follows in a continual stream.
    ValueError when the string is not in the grammar."""
    if not isinstance(string, str):
        raise InputTypeError(f"string: expected a str, received {string!r}")
    if embedded:
        ok = len(string) >= 9 and string[0] == "B" and string[1] in "TP"
        ok = ok and string[-2] == string[1] and string[-1] == "E"
        inner = _inner_legal(string[2:-2]) if ok else None
        if inner is None:
            raise InputError(f"string: expected an embedded Reber string, received {string!r}")
        branch = string[1]
        # after B: T|P; after the branch: B; inner sets; after inner E: the branch; then E
        sets = [frozenset("TP"), frozenset("B"), *inner[:-1], frozenset(branch), frozenset("E")]
    else:
        inner = _inner_legal(string)
        if inner is None:
            raise InputError(f"string: expected a Reber string, received {string!r}")
        sets = inner[:-1]
    return [*sets, frozenset("B")]


def is_valid(string: str, embedded: bool = True) -> bool:
    """Whether ``string`` belongs to the (embedded) Reber grammar."""
    try:
        legal_next(string, embedded)
    except ValueError:
        return False
    return True


def _multi_hot(sets: Sequence[frozenset[str]]) -> torch.Tensor:
    out = torch.zeros(len(sets), V, dtype=torch.float64)
    for t, s in enumerate(sets):
        for ch in s:
            out[t, INDEX[ch]] = 1.0
    return out


def encode(strings: Sequence[str], *, embedded: bool = True, device=None, dtype=None):
    """One :class:`ReberBatch` from whole strings: the net reads every symbol but the last
    and predicts the next one at every step (all steps scored)."""
    if isinstance(strings, str) or not isinstance(strings, Sequence):
        raise InputTypeError(f"strings: expected a list of strings, received {strings!r}")
    if not strings:
        raise InputError("strings: expected at least one string, received none")
    grammar = "an embedded Reber string" if embedded else "a Reber string"
    for s in strings:
        if not isinstance(s, str):
            raise InputTypeError(f"strings: expected {grammar}, received {s!r}")
        bad = sorted(set(s) - set(SYMBOLS))
        if bad:
            raise InputError(
                f"strings: expected {grammar} over the symbols {SYMBOLS}, received {s!r} "
                f"(unknown symbol(s) {', '.join(map(repr, bad))})"
            )
        if not is_valid(s, embedded):
            raise InputError(f"strings: expected {grammar}, received {s!r}")
    B = len(strings)
    Tmax = max(len(s) for s in strings) - 1
    inputs = torch.zeros(B, Tmax, V, dtype=torch.float64)
    targets = torch.zeros(B, Tmax, V, dtype=torch.float64)
    legal = torch.zeros(B, Tmax, V, dtype=torch.float64)
    lengths = torch.tensor([len(s) - 1 for s in strings])
    for b, s in enumerate(strings):
        idx = torch.tensor([INDEX[c] for c in s])
        n = len(s) - 1
        inputs[b, :n] = F.one_hot(idx[:-1], V).double()
        targets[b, :n] = F.one_hot(idx[1:], V).double()
        legal[b, :n] = _multi_hot(legal_next(s, embedded)[:-1])
    mask = torch.arange(Tmax)[None, :] < lengths[:, None]
    dtype = float_dtype(dtype)
    return ReberBatch(
        inputs.to(device=device, dtype=dtype),
        targets.to(device=device, dtype=dtype),
        mask.to(device),
        lengths.to(device),
        legal.to(device=device, dtype=dtype),
    )


def generate(
    batch_size: int,
    *,
    embedded: bool = True,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> ReberBatch:
    """A batch of freshly drawn (embedded) Reber strings, padded to the longest."""
    check_range("batch_size", batch_size, 1)
    strings = sample_strings(batch_size, embedded=embedded, generator=generator, seed=seed)
    return encode(strings, embedded=embedded, device=device, dtype=dtype)


def stream(
    batch_size: int,
    length: int,
    *,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    device=None,
    dtype=None,
) -> ReberBatch:
    """``batch_size`` continual embedded-Reber streams of ``length`` steps each (strings
    concatenated, no reset; the first string starts at step 0). Every step is scored.
    For longer streams, call again with the same generator and carry the net's state:
    each call starts at a string boundary."""
    check_range("batch_size", batch_size, 1)
    check_range("length", length, 1)
    g = make_generator(generator, seed)
    inputs = torch.zeros(batch_size, length, V, dtype=torch.float64)
    targets = torch.zeros_like(inputs)
    legal = torch.zeros_like(inputs)
    for b in range(batch_size):
        syms, sets = "", []
        while len(syms) < length + 1:
            s = sample_embedded(g)
            syms += s
            sets += legal_next(s)
        idx = torch.tensor([INDEX[c] for c in syms[: length + 1]])
        inputs[b] = F.one_hot(idx[:-1], V).double()
        targets[b] = F.one_hot(idx[1:], V).double()
        legal[b] = _multi_hot(sets[:length])
    dtype = float_dtype(dtype)
    return ReberBatch(
        inputs.to(device=device, dtype=dtype),
        targets.to(device=device, dtype=dtype),
        torch.ones(batch_size, length, dtype=torch.bool, device=device),
        torch.full((batch_size,), length, dtype=torch.long, device=device),
        legal.to(device=device, dtype=dtype),
    )


def _check_pred(pred: torch.Tensor, batch: ReberBatch, name: str) -> torch.Tensor:
    return step_prediction(pred, batch, V, name)


def loss(logits: torch.Tensor, batch: ReberBatch) -> torch.Tensor:
    """Cross-entropy of the next symbol (the 1997 target) over the scored steps."""
    logits = _check_pred(logits, batch, "logits")
    return masked_cross_entropy(logits, batch.targets.argmax(-1), batch.mask)


def legal_loss(logits: torch.Tensor, batch: ReberBatch) -> torch.Tensor:
    """Binary cross-entropy against the legal-next-symbol set (the continual-stream and
    a^n b^n style target); ``logits (B, T, 7)``."""
    logits = _check_pred(logits, batch, "logits")
    return masked_bce_with_logits(logits, batch.legal, batch.mask)


def step_correct(pred: torch.Tensor, batch: ReberBatch) -> torch.Tensor:
    """Bool ``(B, T)``: every legal next symbol's output above every illegal one's."""
    pred = _check_pred(pred, batch, "pred")
    legal = batch.legal > 0.5
    lo = torch.where(legal, pred, torch.full_like(pred, float("inf"))).amin(-1)
    hi = torch.where(legal, torch.full_like(pred, float("-inf")), pred).amax(-1)
    return lo > hi


def is_correct(pred: torch.Tensor, batch: ReberBatch) -> torch.Tensor:
    """Bool ``(B,)``, the 1997 rule: at every scored step the legal next symbols' outputs
    are the most active. Works on logits or probabilities (monotone)."""
    return per_step_all(step_correct(pred, batch), batch.mask)


def is_correct_threshold(
    probs: torch.Tensor, batch: ReberBatch, threshold: float = 0.5
) -> torch.Tensor:
    """Bool ``(B,)``: every output thresholded at ``threshold`` equals the legal set."""
    probs = _check_pred(probs, batch, "probs")
    ok = ((probs > threshold) == (batch.legal > 0.5)).all(-1)
    return per_step_all(ok, batch.mask)


def continual_step_correct(
    probs: torch.Tensor, batch: ReberBatch, max_sq_error: float = 0.49
) -> torch.Tensor:
    """Bool ``(B, T)``, Gers et al. (2000): every output's squared error against the
    legal-next set below ``max_sq_error``."""
    probs = _check_pred(probs, batch, "probs")
    return (((probs - batch.legal) ** 2) < max_sq_error).all(-1)


def symbols_until_error(step_ok: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Long ``(B,)``: correctly predicted steps before the first error (the whole scored
    length when there is none)."""
    if not isinstance(step_ok, torch.Tensor) or step_ok.dim() != 2:
        raise InputError(f"step_ok: expected a (B, T) bool tensor, received {step_ok!r}")
    step_ok = step_ok.bool()
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.shape != step_ok.shape:
            raise InputError(
                f"mask: expected shape {tuple(step_ok.shape)} (as step_ok), received "
                f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else mask!r}"
            )
        step_ok = step_ok | ~mask.bool()
    bad = ~step_ok
    T = step_ok.shape[1]
    none = torch.full((bad.shape[0],), T, dtype=torch.long, device=bad.device)
    return torch.where(bad.any(1), bad.long().argmax(1), none)


def error_rate(pred: torch.Tensor, batch: ReberBatch) -> float:
    """Fraction of strings with at least one wrongly predicted step (1997 rule)."""
    return _error_rate(is_correct(pred, batch))


def solve(batch: ReberBatch, embedded: bool | None = None) -> torch.Tensor:
    """The grammar's own predictor: probabilities spread evenly over the legal set,
    ``(B, T, 7)`` (computed by an independent pass of the automaton over the inputs).

    embedded: which grammar the batch is in; None reads it from each sequence (the third
    symbol of an embedded string is always ``B``, that of a plain one never is).
    InputError when a sequence leaves the grammar.
    """
    if embedded is not None and not isinstance(embedded, bool):
        raise InputTypeError(f"embedded: expected True, False or None, received {embedded!r}")
    if batch.inputs.dim() != 3 or batch.inputs.shape[-1] != V:
        raise InputError(
            f"batch: expected inputs (B, T, {V}) of the Reber grammar, received shape "
            f"{tuple(batch.inputs.shape)}"
        )
    B, T, _ = batch.inputs.shape
    out = torch.zeros(B, T, V, dtype=batch.inputs.dtype, device=batch.inputs.device)
    sym = batch.inputs.argmax(-1)
    for b in range(B):
        s = "".join(SYMBOLS[i] for i in sym[b, : int(batch.lengths[b])].tolist())
        emb = embedded if embedded is not None else (len(s) < 3 or s[2] == "B")
        for t, ch_set in enumerate(_track_stream(s, emb)):
            for ch in ch_set:
                out[b, t, INDEX[ch]] = 1.0 / len(ch_set)
    return out


def _track_stream(prefix: str, embedded: bool = True) -> list[frozenset[str]]:
    """Legal-next sets along a (possibly partial, possibly concatenated) (embedded) Reber
    symbol sequence, by running the automaton symbol by symbol."""
    sets: list[frozenset[str]] = []
    phase, branch, state = "start", "", 0
    for t, ch in enumerate(prefix):
        if phase == "start":  # read outer B
            expect = frozenset("B")
        elif phase == "branch":
            expect = frozenset("TP")
        elif phase == "inner_b":
            expect = frozenset("B")
        elif phase == "inner":
            expect = frozenset(sym for sym, _ in GRAMMAR[state])
        elif phase == "close":
            expect = frozenset(branch)
        else:
            expect = frozenset("E")
        if ch not in expect:
            grammar = "embedded Reber grammar" if embedded else "Reber grammar"
            raise InputError(
                f"batch: step {t} reads {ch!r} where the {grammar} allows "
                f"{'/'.join(sorted(expect))} (sequence {prefix[: t + 1]!r}...)"
            )
        if phase == "start":
            if embedded:
                phase, nxt = "branch", frozenset("TP")
            else:
                phase, state, nxt = "inner", 0, frozenset(sym for sym, _ in GRAMMAR[0])
        elif phase == "branch":
            branch, phase, nxt = ch, "inner_b", frozenset("B")
        elif phase == "inner_b":
            phase, state, nxt = "inner", 0, frozenset(sym for sym, _ in GRAMMAR[0])
        elif phase == "inner":
            state = dict(GRAMMAR[state])[ch]
            if state is None and embedded:
                phase, nxt = "close", frozenset(branch)
            elif state is None:
                phase, nxt = "start", frozenset("B")
            else:
                nxt = frozenset(sym for sym, _ in GRAMMAR[state])
        elif phase == "close":
            phase, nxt = "end", frozenset("E")
        else:  # read outer E
            phase, nxt = "start", frozenset("B")
        sets.append(nxt)
    return sets
