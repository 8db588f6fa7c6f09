r"""The encoder-decoder (Sutskever, Vinyals & Le 2014; Cho et al. 2014) with optional
attention (Bahdanau et al. 2015; Luong et al. 2015) over any rnnlab recurrent cell.

.. math::

    m_{1..S}, s_0 &= \mathrm{Encoder}(E_x x_{1..S})
        \qquad\text{(both directions stop at } L_b\text{)} \\
    h_t, s_t &= \mathrm{Decoder}([E_y y_{t-1}; \tilde h_{t-1}], s_{t-1})
        \qquad\text{(input feeding; } \tilde h_0 = 0\text{)} \\
    c_t, a_t &= \mathrm{Attention}(h_t, m_{1..S}),
        \qquad \tilde h_t = \tanh(W_c [c_t; h_t]) \\
    p(y_t \mid y_{<t}, x) &= \mathrm{softmax}(W_o \tilde h_t + b_o)

=====================  ==============================================================
:math:`x, y`           source (B, S) and target (B, T) token ids, padded with pad_index
:math:`L_b`            ``src_lengths[b]``; :math:`a_{ts} = 0` exactly for :math:`s \ge L_b`
:math:`m_s`            (B, S, H) encoder outputs (both directions concatenated, H/2 each)
:math:`s_t`            decoder state; :math:`s_0` the encoder's final state (per layer,
                       directions concatenated)
:math:`h_t`            (B, H) decoder top-layer output; without attention
                       :math:`\tilde h_t = h_t` and there is no input feeding
=====================  ==============================================================

Teacher forcing (``forward``) feeds the true previous tokens :math:`y_{t-1}`, starting
from ``bos_index``. Without input feeding the decoder runs over the whole target at once
on the layer's fastest engine and attention is one batched matrix product; with it the
decoder steps. Decoding (``translate``) steps one token at a time through
:meth:`Seq2Seq.decode_step`; for the plain LSTM, GRU and tanh SRN the step uses torch's
fused cell kernels on the layer's own weights.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab._validation import check_positive_int, check_probability, check_tensor
from rnnlab.errors import InputError, InputTypeError
from rnnlab.nn import make_layer
from rnnlab.nn.recurrent import reverse_padded
from rnnlab.seq2seq.attention import ATTENTIONS, Attention


class DecoderState(NamedTuple):
    """Everything a decoder step needs, batch on dim 0 (dim 1 for ``state``).

    memory: (B, S, H) encoder outputs. keys: (B, S, K) attention keys (or None).
    mask: (B, S) True at valid source positions. state: tuple of (L, B, H) tensors.
    feed: (B, H) the previous attentional output (input feeding), or None.
    """

    memory: Tensor
    keys: Tensor | None
    mask: Tensor
    state: tuple[Tensor, ...]
    feed: Tensor | None

    def select(self, index: Tensor) -> DecoderState:
        """The rows ``index`` (LongTensor) of every tensor (beam search's reordering)."""
        return DecoderState(
            self.memory.index_select(0, index),
            None if self.keys is None else self.keys.index_select(0, index),
            self.mask.index_select(0, index),
            tuple(s.index_select(1, index) for s in self.state),
            None if self.feed is None else self.feed.index_select(0, index),
        )


class Translation(NamedTuple):
    """What :meth:`Seq2Seq.translate` returns, one entry per source.

    tokens: list of token-id lists (no bos, no eos); with ``n_best > 1`` a list of
        ``n_best`` such lists per source, best first.
    scores: log-probabilities of the outputs (length-normalised for beam search), (B,)
        or (B, n_best).
    attention: per source, a (len(tokens), L_b) tensor of weights over the source
        positions in their original order (None without attention).
    """

    tokens: list
    scores: Tensor
    attention: list | None


_FAST_STEPS = {"lstm": torch.lstm_cell, "gru": torch.gru_cell, "rnn_tanh": torch.rnn_tanh_cell}


def _as_tuple(state) -> tuple[Tensor, ...]:
    return (state,) if isinstance(state, Tensor) else tuple(state)


class Seq2Seq(nn.Module):
    """An RNN encoder-decoder, with or without attention (see the module docstring).

    Args:
        src_vocab_size, tgt_vocab_size: V_x, V_y, including the special tokens.
        cell: a name of :data:`rnnlab.nn.CELLS` for both encoder and decoder.
        hidden_size: H, the decoder's size (and the encoder's, H/2 per direction when
            bidirectional).
        num_layers: stacked layers, the same in encoder and decoder.
        embedding_size: E, token embeddings of source and target.
        attention: None, "bahdanau", "luong-dot" or "luong-general".
        bidirectional_encoder: read the source in both directions.
        reverse_source: reverse each source within its length before reading it
            (Sutskever et al. 2014).
        input_feeding: feed the previous attentional output to the decoder (Luong et
            al. 2015); only with attention.
        dropout: on embeddings, between layers and before the output layer.
        pad_index, bos_index, eos_index: the special target (and source pad) ids.
        max_source_length: longer sources are refused (None: any length).
    """

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 1,
        embedding_size: int = 64,
        attention: str | None = None,
        bidirectional_encoder: bool = False,
        reverse_source: bool = False,
        input_feeding: bool = True,
        dropout: float = 0.0,
        pad_index: int = 0,
        bos_index: int = 1,
        eos_index: int = 2,
        max_source_length: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.src_vocab_size = check_positive_int("src_vocab_size", src_vocab_size)
        self.tgt_vocab_size = check_positive_int("tgt_vocab_size", tgt_vocab_size, 2)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.embedding_size = check_positive_int("embedding_size", embedding_size)
        if attention is not None and attention not in ATTENTIONS:
            raise InputError(
                f"attention: expected one of {ATTENTIONS} or None, received {attention!r}"
            )
        for name, idx in (("pad_index", pad_index), ("bos_index", bos_index),
                          ("eos_index", eos_index)):  # fmt: skip
            check_positive_int(name, idx, 0)
            if idx >= tgt_vocab_size:
                raise InputError(f"{name}: expected an id < tgt_vocab_size = {tgt_vocab_size}, "
                                 f"received {idx}")  # fmt: skip
        if len({pad_index, bos_index, eos_index}) != 3:
            raise InputError(
                f"pad_index, bos_index, eos_index: expected three different ids, received "
                f"{pad_index}, {bos_index}, {eos_index}"
            )
        if bidirectional_encoder and hidden_size % 2:
            raise InputError(
                f"hidden_size: a bidirectional encoder needs an even size (H/2 per direction), "
                f"received {hidden_size}"
            )
        if max_source_length is not None:
            check_positive_int("max_source_length", max_source_length)
        self.cell = cell
        self.attention_kind = attention
        self.bidirectional_encoder = bool(bidirectional_encoder)
        self.reverse_source = bool(reverse_source)
        self.input_feeding = bool(input_feeding) and attention is not None
        self.dropout = check_probability("dropout", dropout)
        self.pad_index, self.bos_index, self.eos_index = pad_index, bos_index, eos_index
        self.max_source_length = max_source_length
        f = {"device": device, "dtype": dtype}
        H, E, L = hidden_size, embedding_size, num_layers
        between = {"dropout": dropout} if L > 1 else {}
        self.src_embedding = nn.Embedding(src_vocab_size, E, padding_idx=pad_index, **f)
        self.tgt_embedding = nn.Embedding(tgt_vocab_size, E, padding_idx=pad_index, **f)
        self.encoder = make_layer(cell, E, H // 2 if bidirectional_encoder else H, L,
                                  bidirectional=self.bidirectional_encoder, **between)  # fmt: skip
        self.decoder = make_layer(cell, E + (H if self.input_feeding else 0), H, L, **between)
        if device is not None or dtype is not None:
            self.encoder.to(**{k: v for k, v in f.items() if v is not None})
            self.decoder.to(**{k: v for k, v in f.items() if v is not None})
        if self.encoder.output_size * self.encoder.num_directions != self.decoder.output_size:
            raise InputError(f"cell: {cell!r} gives encoder and decoder outputs of different sizes")
        if attention is not None:
            self.attention = Attention(attention, H, H, **f)
            self.combine = nn.Linear(2 * H, H, bias=False, **f)
        else:
            self.attention = None
        self.generator = nn.Linear(H, tgt_vocab_size, **f)
        self.drop = nn.Dropout(dropout)

    # ------------------------------------------------------------------ checks
    def _check_source(self, src: object, src_lengths: object) -> tuple[Tensor, Tensor]:
        src = check_tensor("src", src)
        if src.dim() != 2 or src.is_floating_point() or src.is_complex():
            raise InputError(
                f"src: expected a 2-D integer tensor (B, S) of token ids, received "
                f"{src.dtype} of shape {tuple(src.shape)}"
            )
        B, S = src.shape
        if B == 0 or S == 0:
            raise InputError(f"src: expected at least one source token, received shape {(B, S)}")
        src_lengths = check_tensor("src_lengths", src_lengths)
        if src_lengths.shape != (B,) or src_lengths.is_floating_point():
            raise InputError(
                f"src_lengths: expected {B} integer lengths (one per source), received "
                f"{src_lengths.dtype} of shape {tuple(src_lengths.shape)}"
            )
        src_lengths = src_lengths.to(device=src.device, dtype=torch.long)
        if int(src_lengths.min()) < 1:
            b = int(src_lengths.argmin())
            raise InputError(f"src: source {b} is empty (src_lengths[{b}] = 0)")
        if int(src_lengths.max()) > S:
            raise InputError(
                f"src_lengths: expected values <= S = {S} (the padded width), received "
                f"{int(src_lengths.max())}"
            )
        if self.max_source_length is not None and int(src_lengths.max()) > self.max_source_length:
            raise InputError(
                f"src: sources of at most {self.max_source_length} tokens "
                f"(max_source_length), received one of {int(src_lengths.max())}"
            )
        valid = torch.arange(S, device=src.device) < src_lengths.unsqueeze(1)  # (B, S)
        bad = valid & ((src < 0) | (src >= self.src_vocab_size))
        if bool(bad.any()):
            raise InputError(
                f"src: token ids must lie in [0, {self.src_vocab_size}) (src_vocab_size), "
                f"received {int(src[bad][0])}"
            )
        return src, src_lengths

    def _check_target(self, tgt_in: object, B: int) -> Tensor:
        tgt_in = check_tensor("tgt_in", tgt_in)
        if tgt_in.dim() != 2 or tgt_in.is_floating_point() or tgt_in.is_complex():
            raise InputError(
                f"tgt_in: expected a 2-D integer tensor (B, T) of token ids, received "
                f"{tgt_in.dtype} of shape {tuple(tgt_in.shape)}"
            )
        if tgt_in.shape[0] != B:
            raise InputError(
                f"tgt_in: expected {B} target rows (one per source), received {tgt_in.shape[0]}"
            )
        if tgt_in.shape[1] == 0:
            raise InputError("tgt_in: expected at least one target step (bos), received T = 0")
        if bool(((tgt_in < 0) | (tgt_in >= self.tgt_vocab_size)).any()):
            raise InputError(
                f"tgt_in: token ids must lie in [0, {self.tgt_vocab_size}) (tgt_vocab_size)"
            )
        return tgt_in

    # ------------------------------------------------------------------ encoder
    def encode(self, src: Tensor, src_lengths: Tensor) -> DecoderState:
        """Read the sources: the decoder's starting point (memory, mask, s_0, feed 0)."""
        src, src_lengths = self._check_source(src, src_lengths)
        B, S = src.shape
        if self.reverse_source:
            src = reverse_padded(src, src_lengths)
        x = self.drop(self.src_embedding(src))  # (B, S, E)
        memory, final = self.encoder(x, lengths=src_lengths)  # (B, S, H), zero past L_b
        state = _as_tuple(final)  # (L * D, B, H/D) each
        if self.bidirectional_encoder:
            L = self.num_layers
            state = tuple(
                s.view(L, 2, B, s.shape[-1]).transpose(1, 2).reshape(L, B, 2 * s.shape[-1])
                for s in state
            )  # (L, B, H): forward and reverse of each layer side by side
        mask = torch.arange(S, device=src.device) < src_lengths.unsqueeze(1)  # (B, S)
        keys = self.attention.keys(memory) if self.attention is not None else None
        feed = memory.new_zeros(B, self.hidden_size) if self.input_feeding else None
        return DecoderState(memory, keys, mask, state, feed)

    # ------------------------------------------------------------------ decoder
    def _output(self, h: Tensor, memory: Tensor, keys: Tensor, mask: Tensor):
        """Attentional output and weights for decoder outputs h (B, T, H)."""
        if self.attention is None:
            return h, None
        c, a = self.attention(h, memory, keys, mask)  # (B, T, H), (B, T, S)
        return torch.tanh(self.combine(torch.cat([c, h], dim=-1))), a  # (B, T, H)

    def _fast_cell(self):
        """torch's fused cell function for the decoder's cells, or None (cached per
        training mode and engine setting: it is asked at every decoder step)."""
        key = (self.decoder.training, self.decoder.engine)
        cached = self.__dict__.get("_fast_cache")
        if cached is None or cached[0] != key:
            cached = (key, self._find_fast_cell())
            self.__dict__["_fast_cache"] = cached
        return cached[1]

    def _find_fast_cell(self):
        layer = self.decoder
        if layer.engine not in ("auto", "fused") or layer.resolved_engine() != "fused":
            return None
        mode = layer.cells[0].fused_mode
        if mode not in _FAST_STEPS or layer.residual or getattr(layer.cells[0], "proj_size", 0):
            return None
        if not all(hasattr(layer, f"bias_ih_l{k}") for k in range(layer.num_layers)):
            return None
        return _FAST_STEPS[mode]

    def _decoder_step(self, x: Tensor, state: tuple[Tensor, ...]):
        """One step of the decoder stack: x (B, F) -> (y (B, H), new state)."""
        fn = self._fast_cell()
        if fn is None:
            y, new = self.decoder.step(x, self.decoder._wrap_state(state))
            return y, _as_tuple(new)
        layer, inp, parts = self.decoder, x, []
        for k in range(layer.num_layers):
            w = [
                getattr(layer, f"{n}_l{k}")
                for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            ]
            if len(state) == 2:  # LSTM (h, c)
                h, c = fn(inp, (state[0][k], state[1][k]), *w)
                parts.append((h, c))
            else:
                h = fn(inp, state[0][k], *w)
                parts.append((h,))
            inp = layer.between_layers(h, inp, k)
        return inp, tuple(torch.stack(p) for p in zip(*parts))

    def decode_step(self, tokens: Tensor, dstate: DecoderState):
        """One decoder step from the previous tokens (B,): (logits (B, V), new state,
        attention weights (B, S) or None)."""
        emb = self.drop(self.tgt_embedding(tokens))  # (B, E)
        x = emb if dstate.feed is None else torch.cat([emb, dstate.feed], dim=-1)
        y, state = self._decoder_step(x, dstate.state)  # (B, H)
        out, a = self._output(y.unsqueeze(1), dstate.memory, dstate.keys, dstate.mask)
        out = out[:, 0]  # (B, H)
        logits = self.generator(self.drop(out))  # (B, V)
        new = dstate._replace(state=state, feed=out if self.input_feeding else None)
        return logits, new, None if a is None else a[:, 0]

    def forward(
        self,
        src: Tensor,
        src_lengths: Tensor,
        tgt_in: Tensor,
        *,
        sampling_probability: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Teacher-forced logits (B, T, V) of the next target tokens.

        ``tgt_in`` (B, T) starts with bos_index. ``sampling_probability`` > 0 is
        scheduled sampling (Bengio et al. 2015): at each step t >= 1 each sequence reads,
        with that probability, the model's own most likely previous token instead of the
        true one (no gradient flows through the choice)."""
        p = sampling_probability
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise InputError(f"sampling_probability: expected a number in [0, 1], received {p!r}")
        dstate = self.encode(src, src_lengths)
        tgt_in = self._check_target(tgt_in, src.shape[0])
        if p == 0.0 and not self.input_feeding:
            emb = self.drop(self.tgt_embedding(tgt_in))  # (B, T, E)
            h, _ = self.decoder(emb, self.decoder._wrap_state(dstate.state))  # (B, T, H)
            out, _ = self._output(h, dstate.memory, dstate.keys, dstate.mask)
            return self.generator(self.drop(out))  # (B, T, V)
        logits = []
        prev = tgt_in[:, 0]
        for t in range(tgt_in.shape[1]):
            if t > 0:
                prev = tgt_in[:, t]
                if p > 0:
                    coin = torch.rand(prev.shape, generator=generator, device=prev.device) < p
                    prev = torch.where(coin, logits[-1].detach().argmax(-1), prev)
            lg, dstate, _ = self.decode_step(prev, dstate)
            logits.append(lg)
        return torch.stack(logits, dim=1)  # (B, T, V)

    def loss(self, src, src_lengths, tgt_in, tgt_out, **options) -> tuple[Tensor, int]:
        """Mean cross-entropy over the non-pad tokens of ``tgt_out`` and their count."""
        logits = self(src, src_lengths, tgt_in, **options)
        if tgt_out.shape != tgt_in.shape:
            raise InputError(
                f"tgt_out: expected the shape of tgt_in {tuple(tgt_in.shape)}, received "
                f"{tuple(tgt_out.shape)}"
            )
        n = int((tgt_out != self.pad_index).sum())
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
            ignore_index=self.pad_index, reduction="sum",
        )  # fmt: skip
        return loss / max(n, 1), n

    # ------------------------------------------------------------------ decoding
    @torch.no_grad()
    def translate(
        self,
        src: Tensor,
        src_lengths: Tensor,
        beam_size: int = 1,
        max_length: int = 100,
        length_penalty: float = 0.0,
        n_best: int = 1,
    ) -> Translation:
        """Decode each source: greedy for ``beam_size = 1``, else beam search (batched
        over the batch) with the GNMT length penalty ``((5 + |y|) / 6) ** length_penalty``.
        ``max_length`` bounds the decoding steps (a hypothesis that reaches it without
        eos ends there). See :class:`Translation`."""
        from rnnlab.seq2seq.decoding import beam_search, greedy_search

        if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
            raise InputError(f"beam_size: expected an integer >= 1, received {beam_size!r}")
        check_positive_int("max_length", max_length)
        check_positive_int("n_best", n_best)
        if n_best > beam_size:
            raise InputError(f"n_best: expected at most beam_size = {beam_size}, received {n_best}")
        if not isinstance(length_penalty, (int, float)) or not length_penalty >= 0:
            raise InputTypeError(
                f"length_penalty: expected a number >= 0, received {length_penalty!r}"
            )
        was = self.training
        self.eval()
        try:
            if beam_size == 1:
                hyps = greedy_search(self, src, src_lengths, max_length)
            else:
                hyps = beam_search(self, src, src_lengths, beam_size, max_length,
                                   length_penalty, n_best)  # fmt: skip
        finally:
            self.train(was)
        lengths = torch.as_tensor(src_lengths).tolist()
        tokens, scores, attn = [], [], []
        for b, nb in enumerate(hyps):
            nb = nb[:n_best]
            tokens.append([h.tokens for h in nb] if n_best > 1 else nb[0].tokens)
            scores.append([h.score for h in nb] if n_best > 1 else nb[0].score)
            if self.attention is not None:
                a = nb[0].attention[: len(nb[0].tokens), : lengths[b]]
                if self.reverse_source:  # weights over the source in its original order
                    a = a.flip(-1)
                attn.append(a)
        return Translation(tokens, torch.tensor(scores), attn if self.attention else None)

    def extra_repr(self) -> str:
        return (
            f"cell={self.cell!r}, attention={self.attention_kind!r}, "
            f"reverse_source={self.reverse_source}, input_feeding={self.input_feeding}"
        )


__all__ = ["DecoderState", "Seq2Seq", "Translation"]
