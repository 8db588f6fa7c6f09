r"""Neural autoregression: Bengio et al. (2003)'s neural probabilistic language model and
its continuous-valued variant for time series.

Functional core: :func:`nplm_output` (the network of Bengio et al. 2003, eq. 1) and
:func:`context_windows` (the delayed inputs of every position), beside the model class
:class:`NeuralAR`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F_
from torch import Tensor, nn

from rnnlab._validation import check_lengths, check_positive_int, check_rank
from rnnlab.classic._em import as_generator
from rnnlab.errors import InputError, InputTypeError

_LOG_2PI = math.log(2.0 * math.pi)


def context_windows(x: Tensor, order: int) -> tuple[Tensor, Tensor]:
    """Contexts and targets of every position t >= order.

    x: (B, T) tokens or (B, T, F) values. Returns contexts (B, T - order, order[, F]) with
    index 0 the most recent value x_{t-1} (Bengio et al.'s order), and targets x[:, order:].
    """
    windows = x.unfold(1, order, 1)  # (B, T - order + 1, [F,] order): x_{t-order..t-1}
    if x.dim() == 3:
        windows = windows.transpose(-1, -2)  # (B, T - order + 1, order, F)
    return windows[:, :-1].flip(2), x[:, order:]


def nplm_output(
    features: Tensor,
    hidden_weight: Tensor,
    hidden_bias: Tensor,
    output_weight: Tensor,
    output_bias: Tensor,
    direct_weight: Tensor | None = None,
) -> Tensor:
    r"""Bengio et al. (2003), eq. 1: :math:`b + W x + U \tanh(d + H x)`.

    features x: (..., n E) the concatenated context; H: (Hd, n E), d: (Hd,), U: (V, Hd),
    b: (V,), W: (V, n E) or None (no direct connections). Returns (..., V).
    """
    out = F_.linear(torch.tanh(F_.linear(features, hidden_weight, hidden_bias)), output_weight)
    out = out + output_bias
    if direct_weight is not None:
        out = out + F_.linear(features, direct_weight)
    return out


class NeuralAR(nn.Module):
    r"""Neural autoregression of order n (Bengio, Ducharme, Vincent & Jauvin 2003).

    Discrete (``vocab_size=V``): the neural probabilistic language model

    .. math::
        x = [C(w_{t-1}); \dots; C(w_{t-n})],\quad
        a = b + W x + U \tanh(d + H x),\quad
        P(w_t = i \mid w_{t-n:t-1}) = \mathrm{softmax}(a)_i

    Continuous (``obs_dim=F``): the same network on the raw values
    :math:`x = [y_{t-1}; \dots; y_{t-n}]` gives the mean of
    :math:`y_t \sim \mathcal N(a, \mathrm{diag}(\sigma^2))`, with :math:`\log \sigma^2`
    learned (``learn_variance=True``) or fixed at ``noise_var``.

    ==================  ==========  ==========================================
    symbol              shape       attribute
    ==================  ==========  ==========================================
    :math:`C`           (V, E)      ``embedding.weight`` (discrete only)
    :math:`H, d`        (Hd, n E)   ``hidden.weight``, ``hidden.bias``
    :math:`U, b`        (V, Hd)     ``output.weight``, ``output.bias``
    :math:`W`           (V, n E)    ``direct.weight`` (``direct=True``)
    :math:`\log\sigma^2` (F,)       ``log_var`` (continuous only)
    ==================  ==========  ==========================================

    (E is the embedding size, or F for values; V is F for values.) Tokens are (B, T) or
    (T,); values (B, T, F) or (T, F). The likelihood is conditional on the first n
    elements of each sequence. ``fit`` trains with Adam on all windows (its own small,
    seeded loop).
    """

    def __init__(
        self,
        order: int,
        vocab_size: int | None = None,
        obs_dim: int | None = None,
        embedding_dim: int = 30,
        hidden_size: int = 50,
        direct: bool = True,
        learn_variance: bool = True,
        noise_var: float = 1.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("order", order)
        check_positive_int("hidden_size", hidden_size)
        if (vocab_size is None) == (obs_dim is None):
            raise InputError(
                f"vocab_size, obs_dim: expected exactly one of them (tokens or values), "
                f"received vocab_size={vocab_size!r}, obs_dim={obs_dim!r}"
            )
        if not noise_var > 0:
            raise InputError(f"noise_var: expected a number > 0, received {noise_var!r}")
        kw = {"device": device, "dtype": dtype}
        self.order = order
        self.discrete = vocab_size is not None
        self.vocab_size = vocab_size
        self.obs_dim = obs_dim
        if self.discrete:
            check_positive_int("vocab_size", vocab_size)
            check_positive_int("embedding_dim", embedding_dim)
            self.embedding = nn.Embedding(vocab_size, embedding_dim, **kw)
            width, out = order * embedding_dim, vocab_size
        else:
            check_positive_int("obs_dim", obs_dim)
            width, out = order * obs_dim, obs_dim
        self.hidden = nn.Linear(width, hidden_size, **kw)
        self.output = nn.Linear(hidden_size, out, **kw)
        self.direct = nn.Linear(width, out, bias=False, **kw) if direct else None
        if not self.discrete:
            log_var = torch.full((obs_dim,), math.log(noise_var), **kw)
            if learn_variance:
                self.log_var = nn.Parameter(log_var)
            else:
                self.register_buffer("log_var", log_var)
        self.history_: list[float] = []

    # ------------------------------------------------------------------ helpers

    def _prepare(self, x, lengths=None):
        ref = self.hidden.weight
        if self.discrete:
            if not isinstance(x, Tensor):
                x = torch.as_tensor(x, device=ref.device)
            check_rank("x", x, (1, 2), "(B, T) or (T,) of token ids")
            if x.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
                raise InputTypeError(f"x: expected integer token ids, received dtype {x.dtype}")
            rank = x.dim()
            x = x.long().reshape(-1, x.shape[-1])
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.vocab_size):
                raise InputError(
                    f"x: expected token ids in 0..{self.vocab_size - 1}, received min "
                    f"{int(x.min())}, max {int(x.max())}"
                )
        else:
            if not isinstance(x, Tensor):
                x = torch.as_tensor(x, dtype=ref.dtype, device=ref.device)
            check_rank("x", x, (2, 3), f"(B, T, {self.obs_dim}) or (T, {self.obs_dim})")
            rank = x.dim() - 1
            x = x.reshape(-1, *x.shape[-2:])
            if x.shape[-1] != self.obs_dim:
                raise InputError(
                    f"x: expected {self.obs_dim} features, received shape {tuple(x.shape)}"
                )
            if x.dtype != ref.dtype:
                raise InputTypeError(f"x: expected dtype {ref.dtype} (as the model), got {x.dtype}")
            if not torch.isfinite(x).all():
                raise InputError("x: expected finite values, received NaN or inf")
        if x.shape[1] <= self.order:
            raise InputError(
                f"x: expected more than order={self.order} time steps, received shape "
                f"{tuple(x.shape)}"
            )
        if lengths is not None:
            lengths = check_lengths(lengths, x.shape[0], x.shape[1], x.device)
            if int(lengths.min()) <= self.order:
                raise InputError(
                    f"lengths: expected every length > order={self.order}, received "
                    f"{lengths.tolist()}"
                )
        return x, lengths, rank

    def _check_context(self, context, shape: tuple[int, ...]) -> Tensor:
        """The sampling context as a tensor of the right dtype, shape and range."""
        ref = self.hidden.weight
        if not isinstance(context, Tensor):
            context = torch.as_tensor(context, device=ref.device)
        if tuple(context.shape) != shape:
            raise InputError(f"context: expected shape {shape}, received {tuple(context.shape)}")
        if self.discrete:
            if context.is_floating_point() or context.is_complex() or context.dtype == torch.bool:
                raise InputTypeError(
                    f"context: expected integer token ids, received dtype {context.dtype}"
                )
            context = context.long()
            if context.numel() and (
                int(context.min()) < 0 or int(context.max()) >= self.vocab_size
            ):
                raise InputError(
                    f"context: expected token ids in 0..{self.vocab_size - 1}, received min "
                    f"{int(context.min())}, max {int(context.max())}"
                )
            return context
        if not context.is_floating_point():
            raise InputTypeError(
                f"context: expected floating-point values, received dtype {context.dtype}"
            )
        if not bool(torch.isfinite(context).all()):
            raise InputError("context: expected finite values, received NaN or inf")
        return context.to(ref.dtype)

    def _features(self, context: Tensor) -> Tensor:
        """(..., n) tokens or (..., n, F) values -> (..., n E) concatenated features."""
        if self.discrete:
            context = self.embedding(context)  # (..., n, E)
        return context.flatten(-2)  # (..., n E)

    def _output(self, context: Tensor) -> Tensor:
        """Logits (..., V) or Gaussian means (..., F) of the element after ``context``."""
        return nplm_output(
            self._features(context),
            self.hidden.weight,
            self.hidden.bias,
            self.output.weight,
            self.output.bias,
            None if self.direct is None else self.direct.weight,
        )

    def _step_log_probs(self, x: Tensor) -> Tensor:
        """(B, T - n) log-probabilities of x_t given its context, t >= n."""
        ctx, tgt = context_windows(x, self.order)
        out = self._output(ctx)
        if self.discrete:
            return torch.log_softmax(out, -1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
        var = self.log_var.exp()
        return -0.5 * ((tgt - out).pow(2) / var + self.log_var + _LOG_2PI).sum(-1)

    def _valid(self, x: Tensor, lengths: Tensor | None) -> Tensor:
        t = torch.arange(self.order, x.shape[1], device=x.device)
        if lengths is None:
            return torch.ones(x.shape[0], t.numel(), dtype=torch.bool, device=x.device)
        return t < lengths.unsqueeze(1)

    # --------------------------------------------------------------------- public

    def log_probs(self, x) -> Tensor:
        """Discrete: (B, T - n, V) log P(w_t = . | context) for t = n..T-1 (unbatched:
        (T - n, V))."""
        if not self.discrete:
            raise InputTypeError("log_probs: only for a discrete model (vocab_size=...)")
        x, _, rank = self._prepare(x)
        ctx, _ = context_windows(x, self.order)
        lp = torch.log_softmax(self._output(ctx), -1)
        return lp if rank == 2 else lp[0]

    def forward(self, x, lengths=None) -> Tensor:
        """Conditional log-likelihood of each sequence given its first n elements: (B,),
        or a scalar if unbatched (differentiable)."""
        x, lengths, rank = self._prepare(x, lengths)
        ll = (self._step_log_probs(x) * self._valid(x, lengths)).sum(-1)
        return ll if rank == 2 else ll[0]

    @torch.no_grad()
    def score(self, x, lengths=None) -> float:
        """Total conditional log-likelihood (higher is better)."""
        return float(self.forward(x, lengths).sum())

    @torch.no_grad()
    def one_step_forecast(self, x, lengths=None) -> Tensor:
        """One-step-ahead predictions aligned with x: entry t is the most probable token
        (discrete; -1 for t < n) or the Gaussian mean (continuous; NaN for t < n) of x_t
        given its context."""
        x, lengths, rank = self._prepare(x, lengths)
        ctx, _ = context_windows(x, self.order)
        out = self._output(ctx)
        if self.discrete:
            pred = torch.full_like(x, -1)
            pred[:, self.order :] = out.argmax(-1)
        else:
            pred = torch.full_like(x, float("nan"))
            pred[:, self.order :] = out
        return pred if rank == 2 else pred[0]

    def fit(
        self,
        x,
        lengths=None,
        epochs: int = 100,
        lr: float = 1e-2,
        batch_size: int = 256,
        weight_decay: float = 0.0,
        generator: torch.Generator | int | None = 0,
        verbose: bool = False,
    ) -> NeuralAR:
        """Minimise the mean negative log-likelihood of all windows with Adam.

        Minibatches of ``batch_size`` windows are drawn in an order fixed by
        ``generator`` (a ``torch.Generator``, an int seed (default 0) or None), through
        the one training loop (:class:`rnnlab.train.Trainer`); ``history_`` holds the mean
        training NLL (nats per element) of every epoch. Returns self.
        """
        from rnnlab.train.loop import StepOutput, TrainConfig, Trainer

        check_positive_int("epochs", epochs)
        check_positive_int("batch_size", batch_size)
        for name, v, low in (("lr", lr, "> 0"), ("weight_decay", weight_decay, ">= 0")):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or not (v > 0 if low == "> 0" else v >= 0):
                raise InputError(f"{name}: expected a finite number {low}, received {v!r}")
        x, lengths, _ = self._prepare(x, lengths)
        ctx, tgt = context_windows(x, self.order)
        valid = self._valid(x, lengths)
        ctx, tgt = ctx[valid], tgt[valid]  # (N, n[, F]), (N[, F])
        n = tgt.shape[0]
        gen = as_generator(generator)
        per_epoch = -(-n // batch_size)

        def batches():  # a new permutation of the windows every epoch
            while True:
                perm = torch.randperm(n, generator=gen).to(tgt.device)
                yield from perm.split(batch_size)

        def loss_fn(model, idx, carry):
            out = model._output(ctx[idx])
            if model.discrete:
                loss = F_.cross_entropy(out, tgt[idx])
            else:
                var = model.log_var.exp()
                d = (tgt[idx] - out).pow(2) / var + model.log_var + _LOG_2PI
                loss = 0.5 * d.sum(-1).mean()
            return StepOutput(loss, idx.numel())

        self.history_ = []
        total = [0.0, 0]  # this epoch's summed loss, batches seen

        def after_step(model, idx, loss):
            total[0] += loss * idx.numel()
            total[1] += 1
            if total[1] == per_epoch:  # the epoch's mean NLL per window
                self.history_.append(total[0] / n)
                total[:] = [0.0, 0]
                if verbose:
                    print(f"epoch {len(self.history_) - 1}: nll {self.history_[-1]:.5f}")

        Trainer(
            self, torch.optim.Adam(self.parameters(), lr=lr, weight_decay=weight_decay),
            batches(), loss_fn, TrainConfig(steps=epochs * per_epoch, progress=False,
                                            log_every=10**9),
            after_step=after_step,
        ).fit()  # fmt: skip
        self.eval()
        return self

    @torch.no_grad()
    def sample(
        self,
        num_sequences: int,
        length: int,
        context: Tensor | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | int | None = None,
    ) -> Tensor:
        """Generate ``length`` elements after ``context`` ((B, n) token ids or (B, n, F)
        values; zeros when None): (B, length) tokens or (B, length, F) values.
        ``generator``: a ``torch.Generator``, an int seed or None (fresh entropy)."""
        check_positive_int("num_sequences", num_sequences)
        check_positive_int("length", length)
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise InputError(f"temperature: expected a number > 0, received {temperature!r}")
        ref = self.hidden.weight
        B, n = num_sequences, self.order
        shape = (B, n) if self.discrete else (B, n, self.obs_dim)
        if context is None:
            kw = {"dtype": torch.long} if self.discrete else {"dtype": ref.dtype}
            context = torch.zeros(shape, device=ref.device, **kw)
        else:
            context = self._check_context(context, shape)
        gen = as_generator(generator, ref.device)
        buf = context.clone()  # oldest first
        out = []
        for _ in range(length):
            a = self._output(buf.flip(1))  # most recent first
            if self.discrete:
                probs = torch.softmax(a / temperature, -1)
                nxt = torch.multinomial(probs, 1, generator=gen)  # (B, 1)
            else:
                std = (0.5 * self.log_var).exp() * math.sqrt(temperature)
                eps = torch.randn(a.shape, generator=gen, dtype=a.dtype, device=a.device)
                nxt = (a + std * eps).unsqueeze(1)  # (B, 1, F)
            out.append(nxt)
            buf = torch.cat([buf[:, 1:], nxt], 1)
        return torch.cat(out, 1)
