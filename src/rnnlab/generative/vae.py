r"""A recurrent variational autoencoder for token sequences (Bowman et al. 2016,
"Generating sentences from a continuous space"; Kingma & Welling 2013).

.. math::

    \mu, \log\sigma^2 &= W_{\mu,\sigma}\, h^{enc}_{L}, \qquad
        h^{enc}_{L} = \mathrm{LSTM}_{enc}(E x_{1..L})\ \text{(final state)} \\
    q(z \mid x) &= \mathcal N(\mu, \mathrm{diag}\,\sigma^2), \qquad
        p(z) = \mathcal N(0, I), \qquad z = \mu + \sigma \odot \epsilon \\
    s_0 &= \tanh(W_s z), \qquad
        h_t, s_t = \mathrm{LSTM}_{dec}([E \tilde y_{t-1}; z], s_{t-1}) \\
    p(y_t \mid y_{<t}, z) &= \mathrm{softmax}(W_o h_t + b_o), \qquad
        y = (x_1, \dots, x_L, \mathrm{eos}),\ \tilde y_0 = \mathrm{bos} \\
    \mathrm{ELBO}(x) &= \mathbb E_{q}[\log p(x \mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z)),
        \qquad \mathrm{KL} = \tfrac12 \textstyle\sum_j (\mu_j^2 + \sigma_j^2
        - \log\sigma_j^2 - 1) \\
    \mathcal L_k(x) &= \mathbb E\Big[\log \tfrac1k \textstyle\sum_{i=1}^k
        \frac{p(x \mid z_i)\, p(z_i)}{q(z_i \mid x)}\Big]
        \le \log p(x) \qquad\text{(IWAE, Burda et al. 2016; } \mathcal L_1 = \mathrm{ELBO})

Training minimises :math:`-(\mathbb E_q[\log p(x|z)] - \beta_t \mathrm{KL})` per token,
with the KL weight :math:`\beta_t` annealed from 0 to 1 (:class:`KLAnnealing`), and word
dropout: each decoder input token :math:`\tilde y_{t-1}` is replaced by ``unk_index``
with probability ``word_dropout``, so the decoder must lean on :math:`z`. Both are
Bowman et al.'s remedies for posterior collapse (KL -> 0, z ignored); the diagnostics are
the KL per token and the number of active units (:meth:`SequenceVAE.active_units`,
Burda et al.'s :math:`\mathrm{Cov}_x(\mathbb E_{q}[z_j]) > 0.01`).

Why not :class:`rnnlab.seq2seq.Seq2Seq`'s encoder and decoder: its decoder starts from
the encoder's final state and takes only token embeddings (plus attention) as input, so
a latent code can neither set the initial state through a learned map nor be fed at every
step; the encoder's final state would also have to be cut through a sampled bottleneck
its ``encode`` does not expose. The VAE builds the same pieces (embedding, an
:func:`rnnlab.nn.make_layer` recurrent stack, a linear output) with z in both places.

Sequences are batch-first token ids ``x`` (B, T) padded after ``lengths`` (B,), without
bos/eos (the model adds them). Every log-probability is in nats and summed over a
sequence's L + 1 predicted tokens (the eos included).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab._validation import check_lengths, check_positive_int, check_probability, describe
from rnnlab.errors import InputError, InputTypeError
from rnnlab.nn import make_layer


class KLAnnealing:
    r"""The KL weight :math:`\beta_t` at training step t: from ``start`` to 1 over
    ``warmup`` steps, then 1.

    shape "linear": :math:`\beta_t = s + (1 - s) \min(1, t / W)`; "logistic" (Bowman et
    al.): :math:`\beta_t = s + (1 - s)\,\sigma(10 (t / W - 1/2))`, set to 1 from t = W.
    ``end`` must be 1: the objective being annealed towards is the ELBO, and a schedule that
    ends elsewhere optimises another bound (a beta-VAE), which this model does not report.
    """

    def __init__(self, warmup: int, start: float = 0.0, end: float = 1.0, shape: str = "linear"):
        self.warmup = check_positive_int("warmup", warmup, 0)
        if isinstance(start, bool) or not isinstance(start, (int, float)) or not 0 <= start <= 1:
            raise InputError(f"start: expected a number in [0, 1], received {start!r}")
        if isinstance(end, bool) or not isinstance(end, (int, float)) or end != 1:
            raise InputError(
                f"end: a KL-annealing schedule must end at weight 1 (the ELBO), received {end!r}"
            )
        if shape not in ("linear", "logistic"):
            raise InputError(f"shape: expected 'linear' or 'logistic', received {shape!r}")
        self.start, self.end, self.shape = float(start), 1.0, shape

    def __call__(self, step: int) -> float:
        if self.warmup == 0 or step >= self.warmup:
            return 1.0
        u = max(step, 0) / self.warmup
        ramp = u if self.shape == "linear" else 1.0 / (1.0 + math.exp(-10.0 * (u - 0.5)))
        return self.start + (1.0 - self.start) * ramp


class SequenceVAE(nn.Module):
    """A recurrent VAE over token sequences (see the module docstring).

    Args:
        vocab_size: V, including the special tokens.
        latent_size: Z >= 1.
        hidden_size, embedding_size, num_layers: the encoder's and the decoder's sizes.
        cell: a name of :data:`rnnlab.nn.CELLS` for both.
        word_dropout: probability of replacing a decoder input token by ``unk_index``
            (training mode only).
        pad_index, bos_index, eos_index, unk_index: the special ids.
    """

    def __init__(
        self,
        vocab_size: int,
        latent_size: int = 16,
        hidden_size: int = 128,
        embedding_size: int = 32,
        num_layers: int = 1,
        cell: str = "lstm",
        word_dropout: float = 0.0,
        pad_index: int = 0,
        bos_index: int = 1,
        eos_index: int = 2,
        unk_index: int = 3,
        dtype=None,
    ) -> None:
        super().__init__()
        self.vocab_size = check_positive_int("vocab_size", vocab_size, 2)
        self.latent_size = check_positive_int("latent_size", latent_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        check_positive_int("embedding_size", embedding_size)
        self.word_dropout = check_probability("word_dropout", word_dropout)
        for name, v in (("pad_index", pad_index), ("bos_index", bos_index),
                        ("eos_index", eos_index), ("unk_index", unk_index)):  # fmt: skip
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < vocab_size:
                raise InputError(f"{name}: expected an id in [0, {vocab_size}), received {v!r}")
        self.pad_index, self.bos_index = pad_index, bos_index
        self.eos_index, self.unk_index = eos_index, unk_index
        kw = {"dtype": dtype}
        self.embedding = nn.Embedding(vocab_size, embedding_size, **kw)
        self.encoder = make_layer(cell, embedding_size, hidden_size, num_layers, **kw)
        self.decoder = make_layer(cell, embedding_size + latent_size, hidden_size, num_layers, **kw)
        self.to_posterior = nn.Linear(hidden_size, 2 * latent_size, **kw)
        n_state = 2 if cell.startswith("lstm") else 1
        self.n_state, self.num_layers = n_state, num_layers
        self.to_state = nn.Linear(latent_size, n_state * num_layers * hidden_size, **kw)
        self.output = nn.Linear(hidden_size, vocab_size, **kw)

    # ------------------------------------------------------------------ checks
    def _check(self, x: object, lengths: object) -> tuple[Tensor, Tensor]:
        if not isinstance(x, Tensor):
            raise InputTypeError(f"x: expected a LongTensor (B, T), received {describe(x)}")
        if x.dim() != 2 or x.shape[1] < 1:
            raise InputError(
                f"x: expected token ids of shape (batch, time) with time >= 1, received shape "
                f"{tuple(x.shape)}"
            )
        if x.dtype != torch.long:
            raise InputTypeError(f"x: expected dtype torch.int64 token ids, received {x.dtype}")
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
            raise InputError(f"x: expected ids in [0, {self.vocab_size}), received out of range")
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        lengths = check_lengths(lengths, x.shape[0], x.shape[1], x.device)
        return x, lengths

    # ------------------------------------------------------------------ parts
    def encode(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The posterior's mean and log-variance: (B, T), (B,) -> (B, Z), (B, Z)."""
        x, lengths = self._check(x, lengths)
        _, state = self.encoder(self.embedding(x), lengths=lengths)
        h = (state[0] if isinstance(state, tuple) else state)[-1]  # (B, H) top layer
        mu, logvar = self.to_posterior(h).chunk(2, dim=-1)
        return mu, logvar

    def _initial_state(self, z: Tensor):
        B = z.shape[0]
        s = torch.tanh(self.to_state(z)).view(B, self.n_state, self.num_layers, self.hidden_size)
        parts = tuple(s[:, i].transpose(0, 1).contiguous() for i in range(self.n_state))
        return parts if self.n_state > 1 else parts[0]  # each (L, B, H)

    def _targets(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Decoder inputs (bos, x), targets (x, eos) and their mask, all (B, T + 1)."""
        B, T = x.shape
        bos = torch.full((B, 1), self.bos_index, dtype=torch.long, device=x.device)
        inputs = torch.cat([bos, x], dim=1)
        t = torch.arange(T + 1, device=x.device)[None]  # (1, T + 1)
        pad = torch.full((B, 1), self.pad_index, dtype=torch.long, device=x.device)
        targets = torch.cat([x, pad], dim=1)
        targets = torch.where(t == lengths[:, None], self.eos_index, targets)
        mask = t <= lengths[:, None]
        return inputs, torch.where(mask, targets, self.pad_index), mask

    def log_likelihood(self, x: Tensor, lengths: Tensor | None, z: Tensor) -> Tensor:
        r""":math:`\log p(x \mid z)` by teacher forcing: x (B, T), z (..., B, Z) -> (..., B)."""
        x, lengths = self._check(x, lengths)
        if (
            not isinstance(z, Tensor)
            or z.dim() < 2
            or z.shape[-2:] != (x.shape[0], self.latent_size)
        ):
            raise InputError(
                f"z: expected shape (..., {x.shape[0]}, {self.latent_size}), received "
                f"{describe(z)}"
            )  # fmt: skip
        lead = z.shape[:-2]
        S = int(math.prod(lead)) if lead else 1
        zf = z.reshape(S * x.shape[0], self.latent_size)  # (S B, Z)
        inputs, targets, mask = self._targets(x, lengths)
        inputs, targets, mask = (a.repeat(S, 1) for a in (inputs, targets, mask))
        if self.training and self.word_dropout > 0:
            drop = torch.rand(inputs.shape, device=x.device) < self.word_dropout
            drop[:, 0] = False  # keep bos
            inputs = torch.where(drop, self.unk_index, inputs)
        emb = self.embedding(inputs)  # (S B, T + 1, E)
        T1 = emb.shape[1]
        dec_in = torch.cat([emb, zf[:, None].expand(-1, T1, -1)], dim=-1)
        h, _ = self.decoder(dec_in, self._initial_state(zf), lengths=lengths.repeat(S) + 1)
        logp = F.log_softmax(self.output(h), dim=-1)  # (S B, T + 1, V)
        tok = logp.gather(-1, targets[..., None])[..., 0] * mask
        return tok.sum(-1).view(*lead, x.shape[0])

    @staticmethod
    def kl(mu: Tensor, logvar: Tensor) -> Tensor:
        r"""Closed-form :math:`\mathrm{KL}(\mathcal N(\mu, \sigma^2) \| \mathcal N(0, I))`:
        (B, Z) -> (B,)."""
        return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(-1)

    def elbo(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        r"""(ELBO, reconstruction, KL), each (B,): reconstruction is the mean over
        ``samples`` draws :math:`z = \mu + \sigma\epsilon`, :math:`\epsilon` (samples, B, Z)
        drawn by one ``torch.randn`` call with ``generator``; KL in closed form."""
        check_positive_int("samples", samples)
        mu, logvar = self.encode(x, lengths)
        eps = torch.randn((samples, *mu.shape), generator=generator, dtype=mu.dtype,
                          device=mu.device)  # fmt: skip
        z = mu + (0.5 * logvar).exp() * eps  # (S, B, Z)
        rec = self.log_likelihood(x, lengths, z).mean(0)
        kl = self.kl(mu, logvar)
        return rec - kl, rec, kl

    def loss(
        self, x: Tensor, lengths: Tensor | None = None, kl_weight: float = 1.0
    ) -> tuple[Tensor, int, dict]:
        """The training loss: -(reconstruction - kl_weight * KL) summed over the batch and
        divided by its token count (L + 1 each); returns (loss, tokens, parts per token)."""
        if (
            isinstance(kl_weight, bool)
            or not isinstance(kl_weight, (int, float))
            or not (0 <= kl_weight <= 1)
        ):
            raise InputError(f"kl_weight: expected a number in [0, 1], received {kl_weight!r}")
        x, lengths = self._check(x, lengths)
        _, rec, kl = self.elbo(x, lengths)
        tokens = int((lengths + 1).sum())
        loss = -(rec.sum() - kl_weight * kl.sum()) / tokens
        parts = {
            "rec": float(-rec.detach().sum()) / tokens,
            "kl": float(kl.detach().sum()) / tokens,
        }
        return loss, tokens, parts

    def iwae(
        self,
        x: Tensor,
        lengths: Tensor | None = None,
        k: int = 50,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        r"""One draw of the importance-weighted bound :math:`\mathcal L_k(x)` with k
        samples from q: (B,) nats per sequence. Its expectation rises with k towards
        :math:`\log p(x)`."""
        check_positive_int("k", k)
        mu, logvar = self.encode(x, lengths)
        std = (0.5 * logvar).exp()
        eps = torch.randn((k, *mu.shape), generator=generator, dtype=mu.dtype, device=mu.device)
        z = mu + std * eps  # (k, B, Z)
        log_px = self.log_likelihood(x, lengths, z)  # (k, B)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
        log_q = -0.5 * (eps.pow(2) + math.log(2 * math.pi) + logvar).sum(-1)
        return torch.logsumexp(log_px + log_pz - log_q, dim=0) - math.log(k)

    @torch.no_grad()
    def active_units(
        self, x: Tensor, lengths: Tensor | None = None, threshold: float = 0.01
    ) -> tuple[int, Tensor]:
        r"""(count, per-unit activity :math:`\mathrm{Cov}_x(\mu_j(x))`) over the batch;
        a unit is active when its activity exceeds ``threshold``."""
        mu, _ = self.encode(x, lengths)
        act = mu.var(0, unbiased=False) if mu.shape[0] > 1 else torch.zeros_like(mu[0])
        return int((act > threshold).sum()), act

    # ------------------------------------------------------------------ generation
    def decode_step(self, tokens: Tensor, z: Tensor, state) -> tuple[Tensor, object]:
        """One decoder step: previous tokens (B,), z (B, Z), state (None: from z) ->
        log-probabilities of the next token (B, V) and the new state."""
        if state is None:
            state = self._initial_state(z)
        inp = torch.cat([self.embedding(tokens), z], dim=-1)[:, None]  # (B, 1, E + Z)
        h, state = self.decoder(inp, state)
        return F.log_softmax(self.output(h[:, 0]), dim=-1), state

    @torch.no_grad()
    def decode(
        self,
        z: Tensor,
        max_length: int = 30,
        temperature: float = 1.0,
        greedy: bool = False,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """Token lists (no bos, no eos) generated from each row of z (B, Z): greedy, or
        sampled from softmax(logits / temperature)."""
        _check_temperature(temperature)
        check_positive_int("max_length", max_length)
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.latent_size:
            raise InputError(f"z: expected shape (B, {self.latent_size}), received {describe(z)}")
        B = z.shape[0]
        tokens = torch.full((B,), self.bos_index, dtype=torch.long, device=z.device)
        out: list[list[int]] = [[] for _ in range(B)]
        done = torch.zeros(B, dtype=torch.bool, device=z.device)
        state = None
        for _ in range(max_length + 1):
            logp, state = self.decode_step(tokens, z, state)
            if greedy:
                tokens = logp.argmax(-1)
            else:
                probs = F.softmax(logp / temperature, dim=-1)
                tokens = torch.multinomial(probs, 1, generator=generator)[:, 0]
            for b in range(B):
                if not done[b] and int(tokens[b]) != self.eos_index:
                    out[b].append(int(tokens[b]))
            done |= tokens == self.eos_index
            if bool(done.all()):
                break
        return [o[:max_length] for o in out]

    @torch.no_grad()
    def sample(
        self,
        num: int,
        temperature: float = 1.0,
        max_length: int = 30,
        generator: torch.Generator | None = None,
    ) -> list[list[int]]:
        """``num`` sequences decoded from z ~ p(z) = N(0, I)."""
        check_positive_int("num", num)
        _check_temperature(temperature)
        p = self.output.weight
        z = torch.randn(num, self.latent_size, generator=generator, dtype=p.dtype, device=p.device)
        return self.decode(z, max_length, temperature, generator=generator)

    @torch.no_grad()
    def interpolate(
        self, x_a: Tensor, x_b: Tensor, steps: int = 5, max_length: int = 30
    ) -> list[list[int]]:
        """Greedy decodings along the straight line between the posterior means of two
        sequences (1-D token tensors), ``steps`` >= 2 points, ends included."""
        check_positive_int("steps", steps, 2)
        codes = []
        for name, x in (("x_a", x_a), ("x_b", x_b)):
            if not isinstance(x, Tensor) or x.dim() != 1 or x.numel() < 1:
                raise InputError(
                    f"{name}: expected a 1-D tensor of token ids (one sequence), received "
                    f"{describe(x)}"
                )
            codes.append(self.encode(x[None])[0][0])
        w = torch.linspace(0, 1, steps, dtype=codes[0].dtype, device=codes[0].device)[:, None]
        z = (1 - w) * codes[0] + w * codes[1]  # (steps, Z)
        return self.decode(z, max_length, greedy=True)

    def extra_repr(self) -> str:
        return (
            f"vocab_size={self.vocab_size}, latent_size={self.latent_size}, "
            f"hidden_size={self.hidden_size}, word_dropout={self.word_dropout}"
        )


def _check_temperature(temperature: object) -> None:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not (temperature > 0 and math.isfinite(temperature))
    ):
        raise InputError(f"temperature: expected a positive number, received {temperature!r}")


__all__ = ["KLAnnealing", "SequenceVAE"]
