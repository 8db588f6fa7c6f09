"""Generation from a language model: sampling (temperature, top-k, top-p), greedy
decoding and beam search, with the recurrent state carried across generated tokens.

The model is any module with ``model(tokens (B, T), state) -> (logits (B, T, V), state)``
whose state tensors have the batch on dimension 1 (``(L, B, H)``, as rnnlab and torch.nn
recurrent layers). The priming text is run once; each new token then costs one step of
the network from the carried state (O(1) work per token, the prefix is never re-run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from rnnlab.errors import InputError


def filter_logits(
    logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Set to -inf every logit outside the top ``k`` and outside the nucleus ``p``.

    top-k keeps the k largest logits (ties at the k-th value are all kept). top-p
    (Holtzman et al. 2020) keeps the smallest set of most probable tokens whose
    probability sum reaches ``p``: token i is kept when the mass of the tokens more
    probable than it is below ``p``. The most probable token is always kept.

    logits: (..., V). Returns a new tensor of the same shape.
    """
    out = logits.clone()
    if top_k is not None:
        if top_k < 1:
            raise InputError(f"top_k: expected an integer >= 1, received {top_k!r}")
        k = min(top_k, out.shape[-1])
        kth = torch.topk(out, k, dim=-1).values[..., -1:]  # (..., 1)
        out = out.masked_fill(out < kth, -math.inf)
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise InputError(f"top_p: expected a number in (0, 1], received {top_p!r}")
        probs = torch.softmax(out, dim=-1)
        sorted_p, order = torch.sort(probs, dim=-1, descending=True)  # (..., V)
        mass_before = torch.cumsum(sorted_p, dim=-1) - sorted_p  # mass of more probable ones
        drop_sorted = mass_before >= top_p
        drop_sorted[..., 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, -math.inf)
    return out


def exclude_tokens(logits: torch.Tensor, exclude: Sequence[int]) -> torch.Tensor:
    """``logits`` (..., V) with the ids in ``exclude`` set to -inf (never generated, e.g.
    the unknown token); InputError when an id is out of range or nothing would remain."""
    if not exclude:
        return logits
    V = logits.shape[-1]
    ids = sorted({int(i) for i in exclude})
    if ids[0] < 0 or ids[-1] >= V:
        raise InputError(f"exclude: expected token ids in [0, {V}), received {ids}")
    if len(ids) >= V:
        raise InputError(f"exclude: would exclude all {V} tokens of the vocabulary")
    out = logits.clone()
    out[..., ids] = -math.inf
    return out


def next_token(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    exclude: Sequence[int] = (),
) -> torch.Tensor:
    """Choose the next token from ``logits`` (B, V): argmax when greedy or temperature 0,
    else a draw from softmax(filtered logits / temperature); never a token of
    ``exclude``. Returns (B,) int64."""
    if temperature < 0:
        raise InputError(f"temperature: expected a number >= 0, received {temperature!r}")
    logits = exclude_tokens(logits, exclude)
    # below float32's smallest normal number the temperature is 0 in the arithmetic below:
    # take the limit T -> 0, the argmax
    if greedy or temperature < torch.finfo(torch.float32).tiny:
        return logits.argmax(dim=-1)
    if not math.isfinite(temperature):
        raise InputError(f"temperature: expected a finite number >= 0, received {temperature!r}")
    x = logits.float()
    # shifted so that the largest score is 0: a tiny temperature then sends the others to
    # -inf (the argmax) instead of overflowing every score to inf (NaN probabilities)
    x = x - x.amax(dim=-1, keepdim=True)
    scores = filter_logits(x / temperature, top_k=top_k, top_p=top_p)
    probs = torch.softmax(scores, dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def sample(
    model: nn.Module,
    prime: list[int],
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    exclude: Sequence[int] = (),
) -> list[int]:
    """Generate ``length`` tokens after the ids ``prime`` (at least one), carrying the state;
    the ids in ``exclude`` (e.g. the unknown token) are never generated.

    Returns the generated ids (without the prime).
    """
    if not prime:
        raise InputError("prime: expected at least one token to start from, received none")
    if length < 0:
        raise InputError(f"length: expected an integer >= 0, received {length!r}")
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.tensor([prime], dtype=torch.long, device=device)  # (1, T)
    logits, state = model(x, None)  # (1, T, V): the prefix runs once
    out: list[int] = []
    for _ in range(length):
        tok = next_token(
            logits[:, -1],
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            greedy=greedy,
            generator=generator,
            exclude=exclude,
        )  # (1,)
        out.append(int(tok))
        logits, state = model(tok.view(1, 1), state)  # (1, 1, V): one step from the state
    model.train(was)
    return out


class BeamResult(NamedTuple):
    """tokens: the best continuation (ids, without the prime). log_prob: its total
    log-probability (natural log) given the prime."""

    tokens: list[int]
    log_prob: float


def _select(state: Any, index: torch.Tensor) -> Any:
    """Reorder the batch dimension (dim 1) of every state tensor."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.index_select(1, index)
    return type(state)(_select(s, index) for s in state)


@torch.no_grad()
def beam_search(
    model: nn.Module, prime: list[int], length: int, beam: int = 4, exclude: Sequence[int] = ()
) -> BeamResult:
    """The most probable continuation of exactly ``length`` tokens found by beam search.

    Keeps the ``beam`` highest-scoring partial sequences (sum of log-probabilities), each
    with its own carried state; with ``beam = 1`` this is greedy decoding, and with
    ``beam >= V ** (length - 1)`` it is exact. Continuations holding a token of
    ``exclude`` are not considered (the model's probabilities are not renormalised).
    """
    if not prime:
        raise InputError("prime: expected at least one token to start from, received none")
    if beam < 1:
        raise InputError(f"beam: expected an integer >= 1, received {beam!r}")
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    logits, state = model(torch.tensor([prime], dtype=torch.long, device=device), None)
    logp = exclude_tokens(torch.log_softmax(logits[:, -1].double(), dim=-1), exclude)  # (1, V)
    scores = torch.zeros(1, dtype=torch.float64, device=device)  # (K,) beams so far
    seqs = torch.zeros(1, 0, dtype=torch.long, device=device)  # (K, t)
    vocab = logp.shape[-1]
    for _ in range(length):
        total = (scores[:, None] + logp).reshape(-1)  # (K * V,)
        k = min(beam, total.numel())
        top, flat = torch.topk(total, k)  # (k,)
        parent, tok = flat // vocab, flat % vocab
        seqs = torch.cat([seqs[parent], tok[:, None]], dim=1)  # (k, t + 1)
        scores = top
        state = _select(state, parent)
        logits, state = model(tok[:, None], state)  # (k, 1, V)
        logp = exclude_tokens(torch.log_softmax(logits[:, -1].double(), dim=-1), exclude)
    model.train(was)
    best = int(torch.argmax(scores))
    return BeamResult(seqs[best].tolist(), float(scores[best]))


@torch.no_grad()
def sequence_log_prob(model: nn.Module, prime: list[int], tokens: list[int]) -> float:
    """log p(tokens | prime) by running the whole sequence once (an oracle for tests)."""
    device = next(model.parameters()).device
    ids = torch.tensor([prime + tokens], dtype=torch.long, device=device)  # (1, T)
    logits, _ = model(ids[:, :-1], None)  # (1, T - 1, V)
    logp = torch.log_softmax(logits.double(), dim=-1)[0]  # (T - 1, V)
    n = len(prime)
    return float(sum(logp[n - 1 + i, t] for i, t in enumerate(tokens)))
