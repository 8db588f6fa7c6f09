"""Sequence to sequence: RNN encoder-decoders with attention, greedy and beam decoding,
parallel-data reading (``rnnlab train seq2seq``, ``rnnlab translate``).

:class:`Seq2Seq` is the model (any rnnlab cell; attention None, "bahdanau", "luong-dot"
or "luong-general"); :mod:`rnnlab.seq2seq.decoding` holds greedy and beam search;
:mod:`rnnlab.seq2seq.data` the vocabularies, the TSV reader and length-bucketed batches.
"""

from __future__ import annotations

from rnnlab.seq2seq.attention import ATTENTIONS, Attention, masked_softmax
from rnnlab.seq2seq.decoding import Hypothesis, beam_search, greedy_search, length_penalty
from rnnlab.seq2seq.model import DecoderState, Seq2Seq, Translation

__all__ = [
    "ATTENTIONS",
    "Attention",
    "DecoderState",
    "Hypothesis",
    "Seq2Seq",
    "Translation",
    "beam_search",
    "greedy_search",
    "length_penalty",
    "masked_softmax",
]
