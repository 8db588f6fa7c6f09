r"""Metrics of sequence-to-sequence outputs.

===========================  =========================================================
``token_accuracy``           teacher forcing: fraction of target tokens (eos included)
                             whose argmax prediction is right, given the true prefix
                             (Zaremba & Sutskever 2014's per-character accuracy)
``exact_match``              fraction of outputs equal to one of their references
``error_rates``              PER = :math:`\sum_i d(\hat y_i, r_i) / \sum_i |r_i|`, with
                             :math:`r_i` the reference closest to :math:`\hat y_i` in
                             edit distance :math:`d`; WER = fraction of outputs with
                             :math:`d > 0` against every reference
===========================  =========================================================
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (unit insertions, deletions, substitutions)."""
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def exact_match(hyps: Sequence[Sequence], refs: Sequence[Sequence[Sequence]]) -> float:
    """Fraction of ``hyps[i]`` equal to one of ``refs[i]`` (a list of references)."""
    if not hyps:
        return float("nan")
    return sum(list(h) in [list(r) for r in rs] for h, rs in zip(hyps, refs)) / len(hyps)


def error_rates(
    hyps: Sequence[Sequence], refs: Sequence[Sequence[Sequence]]
) -> tuple[float, float]:
    """(PER, WER) against the closest of each output's references (module docstring)."""
    errors = length = wrong = 0
    for h, rs in zip(hyps, refs):
        d, r = min((edit_distance(h, r), len(r)) for r in rs)
        errors, length, wrong = errors + d, length + r, wrong + (d > 0)
    return errors / max(length, 1), wrong / max(len(hyps), 1)


def token_accuracy(logits: torch.Tensor, tgt_out: torch.Tensor, pad_index: int = 0):
    """(right, total) teacher-forced predictions over the non-pad positions."""
    valid = tgt_out != pad_index
    right = (logits.argmax(-1) == tgt_out) & valid
    return int(right.sum()), int(valid.sum())


__all__ = ["edit_distance", "error_rates", "exact_match", "token_accuracy"]
