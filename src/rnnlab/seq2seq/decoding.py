r"""Greedy and beam-search decoding of a :class:`~rnnlab.seq2seq.Seq2Seq`, batched.

Both step the decoder one token at a time (:meth:`Seq2Seq.decode_step`) from
``bos_index``; pad and bos are never generated. A decoding ends at eos, or after
``max_length`` steps (the hypothesis then ends there, without eos). A hypothesis of
:math:`n` steps (eos included when present) has the score

.. math::

    \mathrm{score}(y) = \frac{\sum_{t=1}^{n} \log p(y_t \mid y_{<t}, x)}{lp(n)}, \qquad
    lp(n) = \left(\frac{5 + n}{6}\right)^{\alpha}

(GNMT, Wu et al. 2016; :math:`\alpha` = ``length_penalty``, 0: raw log-probability).

Beam search keeps ``K`` live hypotheses per source, all sources in one (B K) batch.
Each step scores every extension of every live hypothesis, keeps the best 2K; those of
the best K that end in eos are finished (fairseq's rule, so that K = 1 is greedy
search), and the best K that do not stay alive. A source is done when it has ``n_best``
finished hypotheses and none alive can still beat them: the best live raw score
:math:`s` bounds every continuation by :math:`s / lp(\text{max\_length})` (log
probabilities only fall, and :math:`lp` grows). With K at least the number of
continuations the search is therefore exhaustive (the tests compare it with brute
force).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Hypothesis(NamedTuple):
    """One decoded output: tokens (no bos, no eos), score (see the module docstring),
    attention (n_steps, S) over the padded source (None without attention)."""

    tokens: list[int]
    score: float
    attention: Tensor | None


def length_penalty(steps: int, alpha: float) -> float:
    """GNMT's ``((5 + steps) / 6) ** alpha``."""
    return ((5.0 + steps) / 6.0) ** alpha


def log_probs(model, logits: Tensor) -> Tensor:
    """log softmax over the target vocabulary with pad and bos excluded (-inf)."""
    logp = torch.log_softmax(logits.float() if logits.dtype == torch.float16 else logits, -1)
    logp[..., model.pad_index] = float("-inf")
    logp[..., model.bos_index] = float("-inf")
    return logp


@torch.no_grad()
def greedy_search(
    model, src: Tensor, src_lengths: Tensor, max_length: int
) -> list[list[Hypothesis]]:
    """The most likely token at each step, for every source at once; one hypothesis per
    source (in a list, like :func:`beam_search`)."""
    dstate = model.encode(src, src_lengths)
    B = src.shape[0]
    prev = torch.full((B,), model.bos_index, dtype=torch.long, device=src.device)
    done = torch.zeros(B, dtype=torch.bool, device=src.device)
    scores = dstate.memory.new_zeros(B)
    tokens, attns = [], []
    for _ in range(max_length):
        logits, dstate, a = model.decode_step(prev, dstate)
        logp = log_probs(model, logits)  # (B, V)
        best = logp.argmax(-1)  # (B,)
        scores = scores + torch.where(done, 0.0, logp.gather(1, best[:, None])[:, 0])
        tokens.append(best)
        attns.append(a)
        done = done | (best == model.eos_index)
        prev = best
        if bool(done.all()):
            break
    toks = torch.stack(tokens, 1).tolist()  # (B, n)
    att = torch.stack(attns, 1) if attns[0] is not None else None  # (B, n, S)
    out = []
    for b in range(B):
        seq = toks[b]
        n = seq.index(model.eos_index) + 1 if model.eos_index in seq else len(seq)
        out.append([Hypothesis(seq[: n - (seq[n - 1] == model.eos_index)], float(scores[b]),
                               None if att is None else att[b, :n])])  # fmt: skip
    return out


@torch.no_grad()
def beam_search(
    model,
    src: Tensor,
    src_lengths: Tensor,
    beam_size: int,
    max_length: int,
    alpha: float = 0.0,
    n_best: int = 1,
) -> list[list[Hypothesis]]:
    """Beam search for every source at once (see the module docstring); per source, its
    finished hypotheses, best first (at least ``n_best`` where that many exist)."""
    K = beam_size
    dstate = model.encode(src, src_lengths)
    B, S = src.shape
    dev = src.device
    dstate = dstate.select(torch.arange(B, device=dev).repeat_interleave(K))  # (B K) rows
    alive = dstate.memory.new_full((B, K), float("-inf"))
    alive[:, 0] = 0.0  # one live hypothesis to start from
    alive_tokens = torch.zeros(B, K, 0, dtype=torch.long, device=dev)  # (B, K, t)
    alive_attn = dstate.memory.new_zeros(B, K, 0, S) if model.attention is not None else None
    prev = torch.full((B * K,), model.bos_index, dtype=torch.long, device=dev)
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    done = torch.zeros(B, dtype=torch.bool, device=dev)
    lp_max = length_penalty(max_length, alpha)
    rows = torch.arange(B, device=dev)[:, None]  # (B, 1)
    for t in range(1, max_length + 1):
        logits, dstate, a = model.decode_step(prev, dstate)
        logp = log_probs(model, logits)
        V = logp.shape[-1]
        cand = alive.unsqueeze(-1) + logp.view(B, K, V)  # (B, K, V)
        cand = cand.masked_fill(done.view(B, 1, 1), float("-inf"))
        n = min(2 * K, K * V)
        top, idx = cand.view(B, K * V).topk(n, dim=1)  # (B, n), best first
        beam, tok = idx // V, idx % V  # (B, n)
        step_attn = None if a is None else a.view(B, K, S)
        last = t == max_length
        head = slice(0, min(K, n))
        ends = (tok[:, head] == model.eos_index) | last
        ends &= torch.isfinite(top[:, head])
        lp = length_penalty(t, alpha)
        for b, j in ends.nonzero().tolist():
            k = int(beam[b, j])
            seq = alive_tokens[b, k].tolist()
            if int(tok[b, j]) != model.eos_index:
                seq.append(int(tok[b, j]))
            att = None
            if alive_attn is not None:
                att = torch.cat([alive_attn[b, k], step_attn[b, k].unsqueeze(0)], 0)  # (t, S)
            finished[b].append(Hypothesis(seq, float(top[b, j]) / lp, att))
        if last:
            break
        # the best K candidates that do not end: ranks of the non-eos ones come first
        pos = torch.arange(n, device=dev).expand(B, n)
        is_eos = tok == model.eos_index
        sel = torch.where(is_eos, pos + n, pos).topk(K, dim=1, largest=False).indices
        sel = sel.sort(dim=1).values  # (B, K), in score order
        alive = top.gather(1, sel).masked_fill(is_eos.gather(1, sel), float("-inf"))
        origin = beam.gather(1, sel)  # (B, K) which live hypothesis each extends
        new_tok = tok.gather(1, sel)  # (B, K)
        alive_tokens = torch.cat([alive_tokens[rows, origin], new_tok.unsqueeze(-1)], -1)
        if alive_attn is not None:
            alive_attn = torch.cat(
                [alive_attn[rows, origin], step_attn[rows, origin].unsqueeze(2)], 2
            )
        dstate = dstate.select((rows * K + origin).view(-1))
        prev = new_tok.view(-1)
        bound = alive.max(1).values / lp_max  # (B,) no live continuation scores above it
        for b in (~done).nonzero()[:, 0].tolist():
            fb = finished[b]
            if not bool(torch.isfinite(bound[b])):
                done[b] = True
            elif len(fb) >= n_best:
                kth = sorted((h.score for h in fb), reverse=True)[n_best - 1]
                done[b] = kth >= float(bound[b])
        if bool(done.all()):
            break
    return [sorted(f, key=lambda h: -h.score) for f in finished]


__all__ = ["Hypothesis", "beam_search", "greedy_search", "length_penalty", "log_probs"]
