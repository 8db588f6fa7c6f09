r"""Recurrent language model: embedding -> recurrent stack -> softmax over the vocabulary.

.. math::

    e_t = E[x_t], \qquad (h_t, s_t) = \mathrm{RNN}(e_t, s_{t-1}), \qquad
    p(x_{t+1} \mid x_{\le t}) = \mathrm{softmax}(W h_t + b)

trained with teacher forcing on the cross-entropy
:math:`\mathcal{L} = -\frac{1}{BT}\sum_{b,t} \log p(x_{b,t+1} \mid x_{b,\le t})` (nats per
token). Reported as bits per character :math:`\mathcal{L} / \ln 2` (char level) or
perplexity :math:`e^{\mathcal{L}}` (word level).

=========  ==================================================
symbol     meaning
=========  ==================================================
x_t        token id at step t (vocabulary of V tokens)
E          (V, F) embedding table
RNN        any rnnlab recurrent stack (LSTM, GRU, SRN, ...)
s_t        recurrent state (LSTM: (h, c)), each (L, B, H)
W, b       (V, H) and (V,) output layer
=========  ==================================================
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab._validation import check_positive_int
from rnnlab.data.streams import StreamBatch, StreamBatcher
from rnnlab.errors import InputError
from rnnlab.nn import CELLS, make_layer
from rnnlab.train.distributed import world
from rnnlab.train.loop import StepOutput


@dataclass(frozen=True)
class LMConfig:
    """Architecture of a :class:`LanguageModel` (saved in checkpoints).

    level: "char" or "word". cell: recurrent cell name (:data:`CELLS`).
    vocab_size: V. embedding_size: F (0: same as hidden_size). hidden_size: H.
    num_layers: L. dropout: between layers and before the output layer.
    """

    level: str = "char"
    cell: str = "lstm"
    vocab_size: int = 128
    embedding_size: int = 0
    hidden_size: int = 256
    num_layers: int = 2
    dropout: float = 0.0

    def __post_init__(self):
        if self.level not in ("char", "word"):
            raise InputError(f"level: expected 'char' or 'word', received {self.level!r}")
        if self.cell not in CELLS:
            raise InputError(f"cell: expected one of {', '.join(CELLS)}, received {self.cell!r}")
        check_positive_int("vocab_size", self.vocab_size, 2)
        check_positive_int("hidden_size", self.hidden_size)
        check_positive_int("num_layers", self.num_layers)
        check_positive_int("embedding_size", self.embedding_size, 0)
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout: expected a number in [0, 1), received {self.dropout!r}")

    def to_dict(self) -> dict:
        """Plain dict (for checkpoints and JSON)."""
        return asdict(self)


class LMOutput(NamedTuple):
    """logits: (B, T, V) unnormalised next-token scores. state: the recurrent state."""

    logits: torch.Tensor
    state: Any


class LanguageModel(nn.Module):
    """Embedding -> recurrent stack -> linear softmax layer (see the module docstring).

    ``forward(tokens, state=None)``: tokens ``(B, T)`` or unbatched ``(T,)`` int64 ids;
    returns :class:`LMOutput` with logits at the same rank plus V.
    """

    def __init__(self, config: LMConfig, *, device=None, dtype=None):
        super().__init__()
        self.config = config
        emb = config.embedding_size or config.hidden_size
        self.embedding = nn.Embedding(config.vocab_size, emb, device=device, dtype=dtype)
        self.rnn = make_layer(
            config.cell,
            emb,
            config.hidden_size,
            config.num_layers,
            dropout=config.dropout,
            device=device,
            dtype=dtype,
        )
        self.drop = nn.Dropout(config.dropout)
        self.output = nn.Linear(config.hidden_size, config.vocab_size, device=device, dtype=dtype)

    def forward(self, tokens: torch.Tensor, state: Any = None) -> LMOutput:
        unbatched = tokens.dim() == 1
        if unbatched:
            tokens = tokens.unsqueeze(0)  # (1, T)
            state = _map_state(state, lambda s: s.unsqueeze(1))  # (L, 1, H)
        x = self.drop(self.embedding(tokens))  # (B, T, F)
        h, state = self.rnn(x, state)  # (B, T, H)
        logits = self.output(self.drop(h))  # (B, T, V)
        if unbatched:
            logits = logits.squeeze(0)  # (T, V)
            state = _map_state(state, lambda s: s.squeeze(1))  # (L, H)
        return LMOutput(logits, state)


def _map_state(state: Any, fn) -> Any:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    return type(state)(_map_state(s, fn) for s in state)


def lm_loss(model: nn.Module, batch: StreamBatch, carry: Any) -> StepOutput:
    """Teacher-forced cross-entropy (nats/token) on one TBPTT chunk, state carried."""
    state = None if batch.reset else carry
    logits, state = model(batch.inputs, state)  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch.targets.reshape(-1))
    return StepOutput(loss, batch.targets.numel(), state)


@torch.no_grad()
def evaluate_lm(
    model: nn.Module, tokens: torch.Tensor, *, batch_size: int = 16, seq_len: int = 256
) -> float:
    """Mean cross-entropy (nats/token) over a token stream, state carried between chunks.

    The stream is cut into ``min(batch_size, N - 1)`` parallel streams (the few tokens
    that do not fill a stream are left out, as in training). Under torch.distributed each
    process reads every ``world_size``-th stream and the sums are all-reduced, so every
    process returns the one-process number.
    """
    was = model.training
    model.eval()
    rank, world_size = world()
    batch_size = max(1, min(batch_size, (tokens.numel() - 1) // 2 or 1))
    batches = StreamBatcher(tokens, batch_size, seq_len, passes=1)
    sums = torch.zeros(2, dtype=torch.float64, device=tokens.device)  # loss, tokens
    state = None
    for batch in batches:
        inputs, targets = batch.inputs[rank::world_size], batch.targets[rank::world_size]
        if inputs.shape[0] == 0:
            continue
        logits, state = model(inputs, state)  # (B / world_size, T, V)
        sums[0] += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
        ).double()
        sums[1] += targets.numel()
    if world_size > 1:
        torch.distributed.all_reduce(sums)
    model.train(was)
    return float(sums[0] / sums[1])


def metric_name(level: str) -> str:
    """ "bits_per_char" for character models, "perplexity" for word models."""
    return "bits_per_char" if level == "char" else "perplexity"


def metric_value(level: str, loss_nats: float) -> float:
    """Bits per character (loss / ln 2) or perplexity (exp loss) from a loss in nats."""
    if level == "char":
        return loss_nats / math.log(2)
    return math.exp(min(loss_nats, 700.0))
