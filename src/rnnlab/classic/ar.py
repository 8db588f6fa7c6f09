r"""Linear (vector) autoregression with delay taps, fitted by least squares.

Functional core: :func:`lagged_design` (the regression matrix of delayed values) and
:func:`ar_least_squares` (closed-form, optionally ridge), beside the model class
:class:`LinearAR`.

The likelihood is the conditional one (conditional on the first ``p`` observations of
each sequence), with the noise covariance at its maximum-likelihood value
:math:`\hat\Sigma = \frac1n \sum_t e_t e_t^\top`. This is statsmodels' ``AutoReg``
convention: on the yearly sunspots AR(9) with a constant gives -1235.559128419549
(tests/classic/test_ar.py checks it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from rnnlab._validation import check_lengths, check_positive_int, check_rank
from rnnlab.classic._em import as_generator
from rnnlab.errors import InputError, InputTypeError

_LOG_2PI = math.log(2.0 * math.pi)


def lagged_design(y: Tensor, lags: Sequence[int]) -> tuple[Tensor, Tensor]:
    """Regression matrix of delayed values.

    y: (B, T, F). Returns X (B, T - p, L * F) with X[:, t - p, k F:(k + 1) F] =
    y[:, t - lags[k]] and the targets y[:, p:] (B, T - p, F), p = max(lags).
    """
    p = max(lags)
    steps = y.shape[1]
    cols = [y[:, p - lag : steps - lag] for lag in lags]  # L x (B, T - p, F)
    return torch.cat(cols, -1), y[:, p:]


def ar_least_squares(
    X: Tensor, Y: Tensor, constant: bool = True, ridge: float = 0.0
) -> tuple[Tensor, Tensor]:
    r"""Closed-form (ridge) least squares :math:`\min_W \|Y - X W - c\|^2 + \lambda \|W\|^2`.

    X: (N, K) regressors, Y: (N, F) targets. The intercept c is not penalised. Solved by
    ``torch.linalg.lstsq`` on the (ridge-augmented) system, in float64. Returns W (K, F)
    and c (F,) (zeros without a constant).
    """
    dtype = X.dtype
    X, Y = X.double(), Y.double()
    n, k = X.shape
    if constant:
        X = torch.cat([X, torch.ones(n, 1, dtype=X.dtype, device=X.device)], 1)  # (N, K + 1)
    if ridge > 0:  # augmented rows sqrt(lambda) I (not on the intercept column)
        aug = math.sqrt(ridge) * torch.eye(k, X.shape[1], dtype=X.dtype, device=X.device)
        X = torch.cat([X, aug], 0)
        Y = torch.cat([Y, Y.new_zeros(k, Y.shape[1])], 0)
    driver = "gelsd" if X.device.type == "cpu" else None
    sol = torch.linalg.lstsq(X, Y, driver=driver).solution  # (K [+1], F)
    W = sol[:k]
    c = sol[k] if constant else torch.zeros(Y.shape[1], dtype=X.dtype, device=X.device)
    return W.to(dtype), c.to(dtype)


class LinearAR(nn.Module):
    r"""Order-p vector autoregression with delay taps :math:`\ell_1 < \dots < \ell_L = p`.

    .. math::
        y_t = c + \sum_{k=1}^{L} A_k\, y_{t-\ell_k} + e_t,\qquad e_t \sim \mathcal N(0, \Sigma)

    =====================  ==========  ===========================================
    symbol                 shape       attribute
    =====================  ==========  ===========================================
    :math:`A_k`            (L, F, F)   ``coefficients`` (A_k maps y_{t-l_k} to y_t)
    :math:`c`              (F,)        ``intercept`` (zero when ``constant=False``)
    :math:`\Sigma`         (F, F)      ``noise_cov``
    :math:`\ell_k`         L ints      ``lags`` (default 1..order)
    =====================  ==========  ===========================================

    Sequences are (B, T, F), unbatched (T, F), or (T,) when F = 1. ``fit`` is closed-form
    least squares over all sequences (ridge penalty ``ridge`` on the A_k, not on c), which
    is the conditional maximum-likelihood estimate; ``forward`` is the differentiable
    conditional log-likelihood of each sequence given its first p values. float64 by
    default (a closed-form statistical fit).
    """

    def __init__(
        self,
        order: int = 1,
        obs_dim: int = 1,
        lags: Sequence[int] | None = None,
        constant: bool = True,
        ridge: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("order", order)
        check_positive_int("obs_dim", obs_dim)
        if lags is None:
            lags = range(1, order + 1)
        try:
            given = list(lags) if not isinstance(lags, (str, bytes)) else [lags]
        except TypeError as e:
            raise InputTypeError(
                f"lags: expected a sequence of distinct integers >= 1, received {lags!r}"
            ) from e
        integral = all(
            isinstance(lag, (int, np.integer)) and not isinstance(lag, bool) for lag in given
        )
        lags = sorted(int(lag) for lag in given) if integral else given
        if not integral or not lags or lags[0] < 1 or len(set(lags)) != len(lags):
            raise InputError(f"lags: expected distinct integers >= 1, received {given!r}")
        if isinstance(ridge, bool) or not isinstance(ridge, (int, float)) or not ridge >= 0:
            raise InputError(f"ridge: expected a number >= 0, received {ridge!r}")
        self.lags = tuple(lags)
        self.order = max(lags)
        self.obs_dim = obs_dim
        self.constant = constant
        self.ridge = float(ridge)
        kw = {"device": device, "dtype": dtype or torch.float64}
        self.coefficients = nn.Parameter(torch.zeros(len(lags), obs_dim, obs_dim, **kw))
        if constant:
            self.intercept = nn.Parameter(torch.zeros(obs_dim, **kw))
        else:
            self.register_buffer("intercept", torch.zeros(obs_dim, **kw))
        self.noise_cov = nn.Parameter(torch.eye(obs_dim, **kw))
        self.history_: list[float] = []

    # ------------------------------------------------------------------ helpers

    def _prepare(self, y, lengths=None, min_steps: int | None = None):
        ref = self.coefficients
        if not isinstance(y, Tensor):
            y = torch.as_tensor(y, dtype=ref.dtype, device=ref.device)
        rank = y.dim()
        if rank == 1 and self.obs_dim == 1:
            y = y.reshape(1, -1, 1)
        else:
            check_rank("y", y, (2, 3), f"(B, T, {self.obs_dim}) or (T, {self.obs_dim})")
            if rank == 2:
                y = y.unsqueeze(0)
        if y.shape[-1] != self.obs_dim:
            raise InputError(
                f"y: expected {self.obs_dim} features (last dim), received shape {tuple(y.shape)}"
            )
        if y.dtype != ref.dtype:
            raise InputTypeError(
                f"y: expected dtype {ref.dtype} (as the model), received {y.dtype}"
            )
        need = self.order + 1 if min_steps is None else min_steps
        if y.shape[1] < need:
            raise InputError(
                f"y: expected at least {need} time steps (order {self.order}), received "
                f"shape {tuple(y.shape)}"
            )
        if not torch.isfinite(y).all():
            raise InputError("y: expected finite values, received NaN or inf")
        if lengths is not None:
            lengths = check_lengths(lengths, y.shape[0], y.shape[1], y.device)
            if int(lengths.min()) < need:
                raise InputError(
                    f"lengths: expected every length >= {need} (order {self.order}), "
                    f"received {lengths.tolist()}"
                )
        return y, lengths, rank

    def _valid_rows(self, y: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, T - p) bool: which regression rows lie inside their sequence."""
        t = torch.arange(self.order, y.shape[1], device=y.device)
        if lengths is None:
            return torch.ones(y.shape[0], t.numel(), dtype=torch.bool, device=y.device)
        return t < lengths.unsqueeze(1)

    @staticmethod
    def _restore(x: Tensor, rank: int) -> Tensor:
        if rank == 3:
            return x
        x = x[0]
        return x[..., 0] if rank == 1 else x

    def _mean(self, X: Tensor) -> Tensor:
        """Conditional mean c + sum_k A_k y_{t - l_k} from the design X (..., L F)."""
        L, F = len(self.lags), self.obs_dim
        W = self.coefficients.mT.reshape(L * F, F)  # (L F, F): rows k F..: A_k^T
        return X @ W + self.intercept

    # --------------------------------------------------------------------- public

    def fit(self, y, lengths=None) -> LinearAR:
        """Closed-form (ridge) least squares over all sequences; sets ``noise_cov`` to the
        residual covariance (the MLE, divided by n). Returns self."""
        y, lengths, _ = self._prepare(y, lengths)
        X, Y = lagged_design(y, self.lags)  # (B, T - p, L F), (B, T - p, F)
        valid = self._valid_rows(y, lengths)
        X, Y = X[valid], Y[valid]  # (N, L F), (N, F)
        W, c = ar_least_squares(X, Y, constant=self.constant, ridge=self.ridge)
        L, F = len(self.lags), self.obs_dim
        with torch.no_grad():
            self.coefficients.copy_(W.reshape(L, F, F).mT)  # A_k = W_k^T
            self.intercept.copy_(c)
            resid = Y - self._mean(X)
            cov = resid.mT @ resid / resid.shape[0]
            scale = float(Y.square().mean(0).max())  # the data's magnitude
            if int(torch.linalg.cholesky_ex(cov).info) != 0 or float(
                torch.linalg.eigvalsh(cov).min()
            ) <= 1e3 * torch.finfo(cov.dtype).eps * max(scale, torch.finfo(cov.dtype).tiny):
                raise InputError(
                    "y: the residuals of the least-squares fit have a singular covariance "
                    "(a constant or exactly predictable series, or collinear features): the "
                    "likelihood is unbounded; add noise, drop features or difference the series"
                )
            self.noise_cov.copy_(cov)
        self.history_ = [self.score(y, lengths)]
        return self

    def forward(self, y, lengths=None) -> Tensor:
        r"""Conditional Gaussian log-likelihood :math:`\sum_{t \ge p} \log \mathcal
        N(y_t; \hat y_t, \Sigma)` of each sequence: (B,), or a scalar if unbatched."""
        y, lengths, rank = self._prepare(y, lengths)
        X, Y = lagged_design(y, self.lags)
        e = Y - self._mean(X)  # (B, T - p, F)
        L = torch.linalg.cholesky(self.noise_cov)
        z = torch.linalg.solve_triangular(L, e.mT, upper=False)  # (B, F, T - p)
        logdet = 2.0 * torch.log(torch.diagonal(L)).sum()
        per_step = -0.5 * (self.obs_dim * _LOG_2PI + logdet + z.pow(2).sum(-2))  # (B, T - p)
        ll = (per_step * self._valid_rows(y, lengths)).sum(-1)
        return ll if rank == 3 else ll[0]

    @torch.no_grad()
    def score(self, y, lengths=None) -> float:
        """Total conditional log-likelihood of all sequences (higher is better)."""
        return float(self.forward(y, lengths).sum())

    @torch.no_grad()
    def one_step_forecast(self, y, lengths=None) -> Tensor:
        r"""One-step-ahead predictions :math:`E[y_t \mid y_{t-\ell_1}, \dots]`, same shape
        as y; NaN for t < p (not enough history) and zero past each length."""
        y, lengths, rank = self._prepare(y, lengths)
        X, _ = lagged_design(y, self.lags)
        out = torch.full_like(y, float("nan"))
        out[:, self.order :] = self._mean(X)
        if lengths is not None:
            past = torch.arange(y.shape[1], device=y.device) >= lengths.unsqueeze(1)
            out[past] = 0.0
        return self._restore(out, rank)

    @torch.no_grad()
    def forecast(self, y, steps: int, lengths=None) -> Tensor:
        """Multi-step mean forecast of the ``steps`` values after the end of each sequence
        (the recursion fed its own predictions): (B, steps, F)."""
        check_positive_int("steps", steps)
        y, lengths, rank = self._prepare(y, lengths, min_steps=self.order)
        p = self.order
        if lengths is None:
            hist = y[:, -p:]
        else:
            idx = lengths.unsqueeze(1) - p + torch.arange(p, device=y.device)  # (B, p)
            hist = torch.gather(y, 1, idx.unsqueeze(-1).expand(-1, -1, self.obs_dim))
        out = self._roll(hist, steps, noise=None)
        return self._restore(out, rank)

    def _roll(self, hist: Tensor, steps: int, noise: Tensor | None) -> Tensor:
        """Run the recursion from history (B, p, F) for ``steps`` steps."""
        p = self.order
        buf = list(hist.unbind(1))  # p x (B, F)
        out = []
        for i in range(steps):
            x = self.intercept.expand_as(buf[-1]).clone()
            for k, lag in enumerate(self.lags):
                x = x + buf[len(buf) - lag] @ self.coefficients[k].mT
            if noise is not None:
                x = x + noise[:, i]
            buf.append(x)
            out.append(x)
            if len(buf) > p:
                buf.pop(0)
        return torch.stack(out, 1)  # (B, steps, F)

    @torch.no_grad()
    def sample(
        self,
        num_sequences: int,
        length: int,
        history: Tensor | None = None,
        generator: torch.Generator | int | None = None,
    ) -> Tensor:
        """Draw (B, length, F) from the model, started from ``history`` (B, p, F)
        (zeros when None; the history is not part of the output). ``generator``: a
        ``torch.Generator``, an int seed or None (fresh entropy)."""
        check_positive_int("num_sequences", num_sequences)
        check_positive_int("length", length)
        ref = self.coefficients
        B, F, p = num_sequences, self.obs_dim, self.order
        if history is None:
            history = torch.zeros(B, p, F, dtype=ref.dtype, device=ref.device)
        elif tuple(history.shape) != (B, p, F):
            raise InputError(
                f"history: expected shape ({B}, {p}, {F}), received {tuple(history.shape)}"
            )
        gen = as_generator(generator, ref.device)
        eps = torch.randn(B, length, F, generator=gen, dtype=ref.dtype, device=ref.device)
        noise = eps @ torch.linalg.cholesky(self.noise_cov).mT
        return self._roll(history, length, noise)
