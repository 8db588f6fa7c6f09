r"""Connectionist temporal classification (Graves et al. 2006): the loss with the checks its
users miss, greedy and prefix beam search decoding, edit distance and label error rate.

A network emits, at every frame :math:`t`, a distribution :math:`y_t` over the :math:`C`
labels plus a *blank* (index ``blank``, 0 by default). A path :math:`\pi \in \{0..C-1\}^T`
has probability :math:`\prod_t y_t(\pi_t)`; the many-to-one map :math:`\mathcal B` removes
repeated labels and then blanks (``a a - b`` -> ``a b``). The probability of a labelling
:math:`l` is the sum over its alignments (Graves et al. 2006, eq. 3):

.. math::

    p(l \mid x) = \sum_{\pi \in \mathcal B^{-1}(l)} \prod_{t=1}^{T} y_t(\pi_t),
    \qquad \mathcal L_{\mathrm{CTC}} = -\log p(l \mid x).

====================  ==========================================================
symbol                meaning
====================  ==========================================================
:math:`B, T, C`       batch, frames, output classes (labels + blank)
:math:`S`             padded target length; :math:`|l_b|` the real one
:math:`y_t(k)`        the network's probability of class :math:`k` at frame
                      :math:`t` (``log_probs`` holds :math:`\log y_t(k)`)
:math:`r(l)`          the number of adjacent equal labels in :math:`l`: an alignment
                      needs a blank between them, so :math:`T \ge |l| + r(l)`
====================  ==========================================================

Layout is batch-first like the rest of rnnlab: ``log_probs`` is ``(B, T, C)``; the
wrapper transposes for torch's kernel (``torch.nn.functional.ctc_loss``, the forward-backward
recursion of Graves et al. 2006, §4.1). That kernel's gradient is the gradient with respect
to the *logits* of a log-softmax (it assumes each frame is normalised), which is why
unnormalised ``log_probs`` get a warning here.

Decoding: :func:`greedy_decode` takes the most probable class per frame and collapses
(best path decoding, Graves et al. 2006 §3.2); :func:`prefix_beam_search` keeps, per
labelling prefix, the probability of ending in a blank and in a non-blank and extends the
``beam_size`` most probable prefixes each frame (Graves 2012 §7.5; Hannun et al. 2014).
With a beam as wide as the number of prefixes it is exact: the most probable labelling.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from rnnlab._validation import check_rank, check_tensor, describe
from rnnlab.errors import InputError, InputTypeError

__all__ = [
    "ctc_loss",
    "greedy_decode",
    "prefix_beam_search",
    "edit_distance",
    "label_error_rate",
    "min_input_length",
]

_NEG_INF = -math.inf


def min_input_length(labels: Sequence[int]) -> int:
    """The fewest frames that can emit ``labels``: :math:`|l| + r(l)`, one blank between
    each pair of equal neighbours."""
    labels = list(labels)
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def _as_lengths(name: str, lengths: object, batch_size: int, maximum: int, minimum: int):
    """Lengths given as a tensor on any device, a list or a tuple -> CPU LongTensor (B,)."""
    if isinstance(lengths, torch.Tensor):
        t = lengths.detach().cpu()
    else:
        if isinstance(lengths, (str, bytes)) or lengths is None:
            raise InputTypeError(f"{name}: expected integers, one per sequence, received "
                                 f"{describe(lengths)}")  # fmt: skip
        try:
            t = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise InputTypeError(
                f"{name}: expected integers, one per sequence, received {describe(lengths)}"
            ) from exc
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise InputTypeError(f"{name}: expected integers, received dtype {t.dtype}")
    if t.shape != (batch_size,):
        raise InputError(
            f"{name}: expected shape ({batch_size},) (one length per sequence), received "
            f"shape {tuple(t.shape)}"
        )
    t = t.long()
    if batch_size and (int(t.min()) < minimum or int(t.max()) > maximum):
        raise InputError(
            f"{name}: expected values in [{minimum}, {maximum}], received min {int(t.min())}, "
            f"max {int(t.max())}"
        )
    return t


def _check_log_probs(log_probs: object) -> Tensor:
    check_tensor("log_probs", log_probs)
    check_rank("log_probs", log_probs, (3,), "(B, T, C): batch, frames, classes")
    if not log_probs.is_floating_point():
        raise InputTypeError(
            f"log_probs: expected a floating-point tensor, received dtype {log_probs.dtype}"
        )
    if log_probs.shape[2] < 2:
        raise InputError(
            f"log_probs: expected at least 2 classes (a label and the blank), received shape "
            f"{tuple(log_probs.shape)}"
        )
    return log_probs


def _check_blank(blank: object, C: int) -> int:
    if isinstance(blank, bool) or not isinstance(blank, int) or not 0 <= blank < C:
        raise InputError(f"blank: expected an integer in [0, {C - 1}] (C = {C}), received "
                         f"{blank!r}")  # fmt: skip
    return blank


def _warn_unnormalised(log_probs: Tensor, lengths: Tensor) -> None:
    """Warn when frames inside the lengths do not sum to one (torch's gradient assumes it)."""
    with torch.no_grad():
        T = log_probs.shape[1]
        mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
        total = torch.logsumexp(log_probs.detach().float(), dim=-1).cpu()  # (B, T)
        worst = float(total[mask].abs().max()) if bool(mask.any()) else 0.0
    if not math.isfinite(worst) or worst > 1e-3:
        warnings.warn(
            "log_probs: expected log-probabilities normalised over the classes (logsumexp "
            f"0 per frame), received frames off by up to {worst:.3g}; apply log_softmax "
            "first (the CTC gradient assumes normalised frames)",
            stacklevel=3,
        )


def ctc_loss(
    log_probs: Tensor,
    targets: Tensor | Sequence[Sequence[int]],
    input_lengths: Tensor | Sequence[int],
    target_lengths: Tensor | Sequence[int] | None = None,
    blank: int = 0,
    reduction: str = "mean",
    allow_empty: bool = True,
) -> Tensor:
    r"""The CTC loss :math:`-\log p(l_b \mid x_b)` (module docstring), checked.

    Args:
        log_probs: (B, T, C) log-probabilities per frame (``log_softmax`` over C).
        targets: (B, S) padded integer labels (the padding is ignored), or a list of B
            label lists (then ``target_lengths`` may be None).
        input_lengths: (B,) frames per sequence, a tensor on any device or a list.
        target_lengths: (B,) labels per sequence; None only with list targets.
        blank: the blank's class index; a target containing it is an error.
        reduction: "mean" (each loss divided by its target length, then averaged over
            the batch: torch's convention), "sum", or "none" (the (B,) losses).
        allow_empty: accept empty transcripts (their loss is
            :math:`-\sum_t \log y_t(\mathrm{blank})`).

    An input too short for its target (fewer than :math:`|l| + r(l)` frames) raises
    :class:`~rnnlab.errors.InputError` naming the sequence, instead of torch's silent inf.
    """
    log_probs = _check_log_probs(log_probs)
    B, T, C = log_probs.shape
    blank = _check_blank(blank, C)
    if reduction not in ("mean", "sum", "none"):
        raise InputError(f"reduction: expected 'mean', 'sum' or 'none', received {reduction!r}")
    if not isinstance(targets, torch.Tensor):
        if target_lengths is not None or isinstance(targets, (str, bytes)):
            raise InputTypeError(
                "targets: expected a (B, S) integer tensor with target_lengths, or a list of "
                f"label lists without them, received {describe(targets)}"
            )
        lists = [list(map(int, t)) for t in targets]
        if len(lists) != B:
            raise InputError(f"targets: expected {B} label lists (one per sequence), received "
                             f"{len(lists)}")  # fmt: skip
        S = max((len(t) for t in lists), default=0)
        padded = torch.zeros(B, max(S, 1), dtype=torch.long)  # padding is never read
        for b, t in enumerate(lists):
            padded[b, : len(t)] = torch.tensor(t, dtype=torch.long)
        targets, target_lengths = padded, [len(t) for t in lists]
    check_rank("targets", targets, (2,), "(B, S) padded labels")
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise InputTypeError(f"targets: expected integer labels, received dtype {targets.dtype}")
    if targets.shape[0] != B:
        raise InputError(f"targets: expected {B} rows (B from log_probs), received shape "
                         f"{tuple(targets.shape)}")  # fmt: skip
    if target_lengths is None:
        raise InputError("target_lengths: expected (B,) lengths with tensor targets, received None")
    S = targets.shape[1]
    in_len = _as_lengths("input_lengths", input_lengths, B, T, 1)
    tg_len = _as_lengths("target_lengths", target_lengths, B, S, 0 if allow_empty else 1)
    tg = targets.detach().cpu().long()
    for b in range(B):
        row = tg[b, : int(tg_len[b])].tolist()
        bad = [v for v in row if not 0 <= v < C or v == blank]
        if bad:
            what = "the blank" if blank in bad else f"a class outside [0, {C - 1}]"
            raise InputError(
                f"targets: sequence {b} contains {what} ({bad[0]}); labels must be in "
                f"[0, {C - 1}] except the blank {blank}"
            )
        need = min_input_length(row)
        if int(in_len[b]) < need:
            raise InputError(
                f"input_lengths: sequence {b} has {int(in_len[b])} frames, too few for its "
                f"{len(row)} labels ({need} needed: one frame per label and a blank between "
                "each pair of repeated labels)"
            )
    _warn_unnormalised(log_probs, in_len)
    lp = log_probs.transpose(0, 1)  # (T, B, C): torch's layout
    return torch.nn.functional.ctc_loss(
        lp,
        targets.to(log_probs.device).long(),
        in_len,
        tg_len,
        blank=blank,
        reduction=reduction,
        zero_infinity=False,
    )


def _check_decode_inputs(log_probs: object, lengths: object, blank: object):
    log_probs = _check_log_probs(log_probs)
    B, T, C = log_probs.shape
    blank = _check_blank(blank, C)
    lens = _as_lengths("lengths", lengths, B, T, 1)
    return log_probs, lens, blank


def greedy_decode(log_probs: Tensor, lengths, blank: int = 0) -> list[list[int]]:
    """Best-path decoding: the most probable class per frame, repeats merged, blanks
    removed; one label list per sequence (over each sequence's own length)."""
    log_probs, lens, blank = _check_decode_inputs(log_probs, lengths, blank)
    best = log_probs.detach().argmax(-1).cpu()  # (B, T)
    out = []
    for b in range(best.shape[0]):
        path = best[b, : int(lens[b])].tolist()
        labels, prev = [], None
        for k in path:
            if k != prev and k != blank:
                labels.append(k)
            prev = k
        out.append(labels)
    return out


def _logaddexp(a: float, b: float) -> float:
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    m = a if a > b else b
    return m + math.log1p(math.exp(-abs(a - b)))


def _add(new: dict, prefix: tuple, ends_blank: bool, value: float) -> None:
    """Add the probability ``exp(value)`` to ``new[prefix]``'s blank or label-ending part."""
    entry = new.setdefault(prefix, [_NEG_INF, _NEG_INF])
    i = 0 if ends_blank else 1
    entry[i] = _logaddexp(entry[i], value)


def _beam_one(lp: np.ndarray, beam_size: int, blank: int, top_k: int | None):
    """Prefix beam search over one (T, C) array of log-probabilities."""
    # prefix -> (log p(prefix, path ends in blank), log p(prefix, path ends in a label))
    beams: dict[tuple, tuple[float, float]] = {(): (0.0, _NEG_INF)}
    C = lp.shape[1]
    labels = [k for k in range(C) if k != blank]
    for t in range(lp.shape[0]):
        row = lp[t]
        if top_k is not None and top_k < len(labels):
            order = np.argsort(-row, kind="stable")
            cand = [int(k) for k in order if k != blank][:top_k]
        else:
            cand = labels
        lb = float(row[blank])
        new: dict[tuple, list[float]] = {}

        for prefix, (pb, pnb) in beams.items():
            total = _logaddexp(pb, pnb)
            _add(new, prefix, True, total + lb)  # a blank: the prefix stays, now ending in blank
            last = prefix[-1] if prefix else None
            for k in cand:
                v = float(row[k])
                if k == last:
                    _add(new, prefix, False, pnb + v)  # a repeat merges into the same label
                    _add(new, prefix + (k,), False, pb + v)  # after a blank, a new label
                else:
                    _add(new, prefix + (k,), False, total + v)
        scored = sorted(new.items(), key=lambda kv: -_logaddexp(kv[1][0], kv[1][1]))
        beams = {p: (v[0], v[1]) for p, v in scored[:beam_size]}
    best, (pb, pnb) = max(beams.items(), key=lambda kv: _logaddexp(kv[1][0], kv[1][1]))
    return list(best), _logaddexp(pb, pnb)


def prefix_beam_search(
    log_probs: Tensor,
    lengths,
    beam_size: int,
    blank: int = 0,
    top_k: int | None = None,
) -> tuple[list[list[int]], Tensor]:
    r"""CTC prefix beam search (module docstring).

    Args:
        log_probs: (B, T, C) log-probabilities per frame.
        lengths: (B,) frames per sequence (tensor on any device, or a list).
        beam_size: prefixes kept per frame (1 is close to, not always equal to, greedy:
            it sums a prefix's alignments before choosing).
        blank: the blank's class index.
        top_k: extend each prefix only by the ``top_k`` most probable labels of the frame
            (None: by every label); a speed-up for large alphabets.

    Returns:
        (labellings, log_probs): per sequence the best labelling found, and (B,) float64
        :math:`\log p(l \mid x)` of it, summed over all its alignments (exact when no
        alignment of it was pruned; always with a beam as wide as the prefixes).
    """
    log_probs, lens, blank = _check_decode_inputs(log_probs, lengths, blank)
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise InputError(f"beam_size: expected an integer >= 1, received {beam_size!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InputError(f"top_k: expected an integer >= 1 or None, received {top_k!r}")
    arr = log_probs.detach().cpu().double().numpy()
    out, scores = [], []
    for b in range(arr.shape[0]):
        labels, score = _beam_one(arr[b, : int(lens[b])], beam_size, blank, top_k)
        out.append(labels)
        scores.append(score)
    return out, torch.tensor(scores, dtype=torch.float64)


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning
    ``a`` into ``b`` (Wagner & Fischer 1974), for any sequences of comparable items."""
    a, b = list(a), list(b)
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


def label_error_rate(hypotheses: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    r"""The label error rate: total edit distance over the total reference length,
    :math:`\sum_n \mathrm{ED}(h_n, r_n) / \sum_n |r_n|` (Graves et al. 2006, §5.1)."""
    if len(hypotheses) != len(references):
        raise InputError(f"hypotheses: expected {len(references)} (one per reference), "
                         f"received {len(hypotheses)}")  # fmt: skip
    total = sum(len(r) for r in references)
    if total == 0:
        raise InputError("references: expected at least one label in total, received only "
                         "empty references")  # fmt: skip
    return sum(edit_distance(h, r) for h, r in zip(hypotheses, references)) / total
