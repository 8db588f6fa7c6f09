r"""Attention over the encoder's outputs (Bahdanau et al. 2015; Luong et al. 2015).

At decoder step :math:`t` the query :math:`q_t` (the decoder's top-layer output) scores
every encoder output :math:`m_s`; the weights are a softmax over the *valid* source
positions only, and the context is their weighted mean:

.. math::

    e_{ts} = \mathrm{score}(q_t, m_s), \qquad
    a_{ts} = \frac{[s < L_b] \exp e_{ts}}{\sum_{s'} [s' < L_b] \exp e_{ts'}}, \qquad
    c_t = \sum_s a_{ts} m_s

=================  ==========================================================
:math:`q_t`        (B, H) decoder output at step t (the query)
:math:`m_s`        (B, S, M) encoder outputs ("memory"), S source positions
:math:`L_b`        source length of sequence b; :math:`a_{ts} = 0` exactly for s >= L_b
``bahdanau``       :math:`v^\top \tanh(W_q q_t + W_m m_s)` (additive, "mlp" in OpenNMT)
``luong-dot``      :math:`q_t^\top m_s` (needs M = H)
``luong-general``  :math:`q_t^\top W m_s`
=================  ==========================================================

All three use the current decoder output as the query and are followed by Luong's
attentional layer :math:`\tilde h_t = \tanh(W_c [c_t; q_t])` in the model (OpenNMT-py's
arrangement); Bahdanau's original reads :math:`h_{t-1}` instead.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rnnlab.errors import InputError

ATTENTIONS = ("bahdanau", "luong-dot", "luong-general")


def masked_softmax(scores: Tensor, mask: Tensor) -> Tensor:
    """Softmax over the last axis where ``mask`` is True; exactly 0 elsewhere.

    scores (..., S), mask broadcastable to it (at least one True per row)."""
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1).masked_fill(~mask, 0.0)


class Attention(nn.Module):
    """Global attention of a query over a memory (see the module docstring).

    Args:
        kind: "bahdanau", "luong-dot" or "luong-general".
        query_size: H, size of the decoder output.
        memory_size: M, size of each encoder output.
    """

    def __init__(self, kind: str, query_size: int, memory_size: int, device=None, dtype=None):
        super().__init__()
        if kind not in ATTENTIONS:
            raise InputError(f"attention: expected one of {ATTENTIONS} or None, received {kind!r}")
        if kind == "luong-dot" and query_size != memory_size:
            raise InputError(
                f"attention: 'luong-dot' needs the encoder output size ({memory_size}) to "
                f"equal the decoder's ({query_size})"
            )
        self.kind = kind
        f = {"device": device, "dtype": dtype}
        if kind == "bahdanau":
            self.query_proj = nn.Linear(query_size, query_size, bias=True, **f)
            self.memory_proj = nn.Linear(memory_size, query_size, bias=False, **f)
            self.v = nn.Linear(query_size, 1, bias=False, **f)
        elif kind == "luong-general":
            self.weight = nn.Linear(memory_size, query_size, bias=False, **f)

    def keys(self, memory: Tensor) -> Tensor:
        """What the scores compare the query with, computed once per source: (B, S, K)."""
        if self.kind == "bahdanau":
            return self.memory_proj(memory)  # (B, S, H)
        if self.kind == "luong-general":
            return self.weight(memory)  # (B, S, H)
        return memory

    def scores(self, query: Tensor, keys: Tensor) -> Tensor:
        """e (B, T, S) for queries (B, T, H) against keys (B, S, K)."""
        if self.kind == "bahdanau":
            q = self.query_proj(query)  # (B, T, H)
            return self.v(torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)  # (B, T, S)
        return query @ keys.transpose(1, 2)  # (B, T, S)

    def forward(self, query: Tensor, memory: Tensor, keys: Tensor, mask: Tensor):
        """Context and weights for queries (B, T, H): returns (c (B, T, M), a (B, T, S)).

        ``mask`` (B, S) is True at valid source positions."""
        a = masked_softmax(self.scores(query, keys), mask.unsqueeze(1))  # (B, T, S)
        return a @ memory, a  # (B, T, M), (B, T, S)


__all__ = ["ATTENTIONS", "Attention", "masked_softmax"]
