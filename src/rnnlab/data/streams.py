"""Batching a long token stream for truncated backpropagation through time.

As in char-rnn (Karpathy 2015) and Zaremba et al. (2014): the corpus of N tokens is cut
into B contiguous streams of L = (N - 1) // B tokens each, stream b holding tokens
``b*L .. b*L + L - 1`` and its targets the next tokens. Consecutive chunks of T steps are
served in order, so that the recurrent state at the end of chunk k (row b) is the right
initial state for chunk k + 1 (row b): the training loop carries it, detached, between
chunks. At the start of each pass over the data (``reset``) the state starts from zero.

The streams are views of the token tensor (no copy); a chunk is converted to int64 only
when it is served.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch

from rnnlab._validation import check_positive_int
from rnnlab.errors import InputError


class StreamBatch(NamedTuple):
    """One chunk of the B parallel streams.

    inputs: (B, T) int64 token ids.
    targets: (B, T) int64, the next token of each input.
    reset: True at the first chunk of a pass (start the recurrent state from zero).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    reset: bool


def stream_layout(tokens: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (B, L) input and target views of a 1-D token tensor (char-rnn layout)."""
    check_positive_int("batch_size", batch_size)
    n = tokens.numel()
    length = (n - 1) // batch_size
    if length < 1:
        raise InputError(
            f"data: expected at least batch_size + 1 = {batch_size + 1} tokens, received {n} "
            "(use a smaller batch or more text)"
        )
    inputs = tokens[: batch_size * length].view(batch_size, length)  # (B, L)
    targets = tokens[1 : batch_size * length + 1].view(batch_size, length)  # (B, L)
    return inputs, targets


class StreamBatcher:
    """Endless iterator of :class:`StreamBatch` chunks over B parallel streams.

    Args:
        tokens: 1-D integer tensor of token ids.
        batch_size: B, the number of parallel streams.
        seq_len: T, the truncation length (the last chunk of a pass may be shorter).
        passes: stop after this many passes (None: endless; evaluation uses 1).

    ``position`` (next chunk) and ``epoch`` (completed passes) are the data position saved
    in checkpoints (:meth:`state_dict`).
    """

    def __init__(
        self, tokens: torch.Tensor, batch_size: int, seq_len: int, passes: int | None = None
    ):
        check_positive_int("seq_len", seq_len)
        if tokens.dim() != 1:
            raise InputError(f"tokens: expected a 1-D tensor, received shape {tuple(tokens.shape)}")
        self.inputs, self.targets = stream_layout(tokens, batch_size)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.passes = passes
        self.stream_length = self.inputs.shape[1]
        self.chunks_per_pass = math.ceil(self.stream_length / seq_len)
        self.position = 0
        self.epoch = 0

    @property
    def tokens_per_pass(self) -> int:
        """B * L, the number of predicted tokens in one pass."""
        return self.batch_size * self.stream_length

    def __iter__(self) -> Iterator[StreamBatch]:
        return self

    def __next__(self) -> StreamBatch:
        if self.passes is not None and self.epoch >= self.passes:
            raise StopIteration
        start = self.position * self.seq_len
        stop = min(start + self.seq_len, self.stream_length)
        batch = StreamBatch(
            self.inputs[:, start:stop].long(),  # (B, T)
            self.targets[:, start:stop].long(),  # (B, T)
            self.position == 0,
        )
        self.position += 1
        if self.position == self.chunks_per_pass:
            self.position = 0
            self.epoch += 1
        return batch

    def state_dict(self) -> dict:
        """The data position: next chunk and completed passes."""
        return {
            "position": self.position,
            "epoch": self.epoch,
            "batch_size": self.batch_size,
            "seq_len": self.seq_len,
            "stream_length": self.stream_length,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from a saved data position (the layout must be the same)."""
        for key in ("batch_size", "seq_len", "stream_length"):
            if state.get(key) != getattr(self, key):
                raise InputError(
                    f"data position: the checkpoint has {key}={state.get(key)}, this data "
                    f"has {key}={getattr(self, key)} (different data, batch or seq_len)"
                )
        self.position = int(state["position"])
        self.epoch = int(state["epoch"])
