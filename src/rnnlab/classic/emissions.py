r"""HMM emission components: one class per family of :math:`p(x_t \mid z_t = k)`.

An :class:`~rnnlab.classic.hmm.HMM` is an initial distribution, a transition matrix and
one emission component (one class per family, as in dynamax's
``hidden_markov_model/models``). Each component is an ``nn.Module`` that holds its
parameters (stored unconstrained, so that the model's log-likelihood can be maximised by
gradient descent) and supplies what the model needs of an emission family:

- ``log_prob(x)`` (..., K): the log-density, through the public kernels of this file
  (:func:`categorical_log_prob`, :func:`multinomial_log_prob`, :func:`poisson_log_prob`,
  :func:`gaussian_log_prob`, :func:`diag_gaussian_log_prob`, :func:`gmm_log_prob`);
- ``m_step(gamma, x, stats, terms, pseudocount, prior)``: re-estimation from the posterior
  state marginals :math:`\gamma_t(k)` of the valid steps (Rabiner 1989, eqs. 40c, 52-54);
- ``initialize(x, init, generator)``, ``sample(states, generator)``,
  ``num_free_parameters()``;
- ``check_input``/``check_values`` (the observations this family takes) and
  ``check_params``/``set_params`` (the pieces of ``HMM.from_params``).

==================================  ===============================  ======================
component                           :math:`p_k(x)`                   parameters
==================================  ===============================  ======================
:class:`CategoricalEmissions`       :math:`B_{kx}`                   ``emission_probs``
:class:`MultinomialEmissions`       :math:`\binom{n}{x_1 \ldots x_M}
                                    \prod_m B_{km}^{x_m}`            ``emission_probs``
:class:`PoissonEmissions`           :math:`\prod_d \mathrm{Poisson}
                                    (x_d \mid \lambda_{kd})`         ``rates``
:class:`GaussianEmissions`          :math:`\mathcal N(x \mid \mu_k,
                                    \Sigma_k)`                       ``means``, ``covs``
:class:`GaussianMixtureEmissions`   :math:`\sum_c w_{kc} \mathcal N
                                    (x \mid \mu_{kc}, \Sigma_{kc})`  ``weights`` too
==================================  ===============================  ======================

A new emission family is one new class here and one entry in :data:`FAMILIES`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab._validation import check_positive_int, describe
from rnnlab.analysis.kmeans import kmeans
from rnnlab.errors import InputError, InputTypeError

__all__ = [
    "Emissions",
    "CategoricalEmissions",
    "MultinomialEmissions",
    "PoissonEmissions",
    "GaussianEmissions",
    "GaussianMixtureEmissions",
    "FAMILIES",
    "categorical_log_prob",
    "multinomial_log_prob",
    "poisson_log_prob",
    "gaussian_log_prob",
    "diag_gaussian_log_prob",
    "gmm_log_prob",
]

_LOG_2PI = math.log(2.0 * math.pi)
COVARIANCES = ("full", "diag", "spherical", "tied")
_DIAGONAL = ("diag", "spherical")  # stored as log standard deviations


# ----------------------------------------------------------------------------------------
# Emission log-probabilities (the kernels the components call)
# ----------------------------------------------------------------------------------------


def categorical_log_prob(x: Tensor, log_emission_probs: Tensor) -> Tensor:
    r""":math:`\log B_{k, x_t}` for symbols ``x`` (any shape, long) and ``log_emission_probs``
    (K, M); returns ``x.shape + (K,)``."""
    return F.embedding(x, log_emission_probs.t())  # (..., K)


def multinomial_log_prob(x: Tensor, log_emission_probs: Tensor) -> Tensor:
    r""":math:`\log \mathrm{Mult}(x \mid n, B_k) = \log n! - \sum_m \log x_m! +
    \sum_m x_m \log B_{km}` for counts ``x`` (..., M) (float), :math:`n = \sum_m x_m` (each
    row its own number of trials, as hmmlearn's ``MultinomialHMM``), and
    ``log_emission_probs`` (K, M); returns (..., K). A zero probability with a zero count
    contributes nothing (:math:`0 \log 0 = 0`), with a positive count :math:`-\infty`."""
    log_coef = torch.lgamma(x.sum(-1) + 1) - torch.lgamma(x + 1).sum(-1)  # (...,)
    finite = torch.isfinite(log_emission_probs)  # (K, M)
    if bool(finite.all()):
        out = x @ log_emission_probs.t()  # (..., K)
    else:
        zero = torch.zeros_like(log_emission_probs)
        out = x @ torch.where(finite, log_emission_probs, zero).t()  # (..., K)
        hits = x @ (~finite).to(x.dtype).t()  # (..., K) counts of impossible symbols
        out = out.masked_fill(hits > 0, -math.inf)
    return out + log_coef.unsqueeze(-1)


def poisson_log_prob(x: Tensor, log_rates: Tensor) -> Tensor:
    r""":math:`\sum_d x_d \log \lambda_{kd} - \lambda_{kd} - \log x_d!` for counts ``x``
    (..., D) (float) and ``log_rates`` (K, D); returns (..., K)."""
    return x @ log_rates.t() - log_rates.exp().sum(-1) - torch.lgamma(x + 1).sum(-1, keepdim=True)


def gaussian_log_prob(x: Tensor, means: Tensor, scale_tril: Tensor) -> Tensor:
    r""":math:`\log \mathcal N(x \mid \mu_k, L_k L_k^\top)` for ``x`` (..., D), ``means``
    (K, D) and lower Cholesky factors ``scale_tril`` (K, D, D); returns (..., K).

    One matrix multiply: with :math:`P_k = L_k^{-1}`, the whitened residual is
    :math:`P_k x - P_k \mu_k` for all k at once (data centred on the mean of the means
    first, which the Mahalanobis distance does not see but rounding does).
    """
    K, D = means.shape
    center = means.mean(0).detach()  # (D,)
    eye = torch.eye(D, dtype=means.dtype, device=means.device)
    prec_tril = torch.linalg.solve_triangular(scale_tril, eye.expand(K, D, D), upper=False)
    xc = (x - center).reshape(-1, D)  # (N, D)
    y = xc @ prec_tril.reshape(K * D, D).t()  # (N, K*D)
    mu_w = (prec_tril @ (means - center).unsqueeze(-1)).squeeze(-1)  # (K, D)
    maha = (y.view(-1, K, D) - mu_w).square().sum(-1)  # (N, K)
    half_logdet = torch.diagonal(scale_tril, dim1=-2, dim2=-1).log().sum(-1)  # (K,)
    out = -0.5 * maha - half_logdet - 0.5 * D * _LOG_2PI
    return out.reshape(*x.shape[:-1], K)


def diag_gaussian_log_prob(x: Tensor, means: Tensor, variances: Tensor) -> Tensor:
    r""":math:`\log \mathcal N(x \mid \mu_k, \mathrm{diag}(\sigma_k^2))` for ``x`` (..., D),
    ``means`` and ``variances`` (K, D); returns (..., K).

    The quadratic form is expanded into two ``(N, D) x (D, K)`` matrix multiplies,
    :math:`\sum_d x_d^2/\sigma_{kd}^2 - 2 x_d \mu_{kd}/\sigma_{kd}^2 + \mu_{kd}^2/\sigma_{kd}^2`,
    on data centred on the mean of the means.
    """
    K, D = means.shape
    center = means.mean(0).detach()  # (D,)
    prec = variances.reciprocal()  # (K, D)
    mc = means - center
    xc = (x - center).reshape(-1, D)  # (N, D)
    const = -0.5 * ((mc.square() * prec).sum(-1) + variances.log().sum(-1) + D * _LOG_2PI)
    # -0.5 * maha + const as two accumulating matrix multiplies: (N, D) x (D, K)
    out = torch.addmm(const, xc.square(), (-0.5 * prec).t())  # (N, K)
    out.addmm_(xc, (mc * prec).t())  # in place (autograd records it)
    return out.reshape(*x.shape[:-1], K)


def gmm_log_prob(
    x: Tensor,
    log_weights: Tensor,
    means: Tensor,
    covs: Tensor,
    diagonal: bool = False,
    return_components: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    r""":math:`\log \sum_c w_{kc} \mathcal N(x \mid \mu_{kc}, \Sigma_{kc})` for ``x`` (..., D),
    ``log_weights`` (K, C), ``means`` (K, C, D) and ``covs`` either lower Cholesky factors
    (K, C, D, D) or, with ``diagonal=True``, variances (K, C, D). Returns (..., K), and with
    ``return_components`` also the per-component terms (..., K, C)."""
    K, C, D = means.shape
    flat_means = means.reshape(K * C, D)
    if diagonal:
        comp = diag_gaussian_log_prob(x, flat_means, covs.reshape(K * C, D))
    else:
        comp = gaussian_log_prob(x, flat_means, covs.reshape(K * C, D, D))
    comp = comp.unflatten(-1, (K, C)) + log_weights  # (..., K, C)
    out = torch.logsumexp(comp, dim=-1)  # (..., K)
    return (out, comp) if return_components else out


# ----------------------------------------------------------------------------------------
# The components
# ----------------------------------------------------------------------------------------


class Emissions(nn.Module):
    r"""Base of the emission components: :math:`p(x_t \mid z_t = k)` for K states.

    Class attributes a family sets: ``name`` (the ``HMM(emission=...)`` string),
    ``arguments`` (the ``HMM`` constructor arguments it takes), ``param_arguments`` (those
    of ``HMM.from_params``), ``event_dims`` (0: one symbol a step, 1: a vector a step),
    ``default_init`` (``"kmeans"`` or ``"random"``), ``kmeans`` (whether ``init="kmeans"``
    applies) and ``dirichlet`` (whether ``fit(emission_prior=...)`` applies)."""

    name = ""
    arguments: tuple[str, ...] = ()
    param_arguments: tuple[str, ...] = ()
    event_dims = 1
    default_init = "kmeans"
    kmeans = True
    dirichlet = False

    def __init__(self, num_states: int) -> None:
        super().__init__()
        self.num_states = num_states

    @property
    def sized(self) -> bool:
        """Whether the sizes are known (a categorical ``num_symbols`` may wait for fit)."""
        return True

    # ------------------------------------------------------------ inputs

    def check_input(self, name: str, x: Tensor, dtype: torch.dtype) -> Tensor:
        """``x`` of this family's dtype and rank (converted where harmless), else an error."""
        raise NotImplementedError

    def check_values(self, name: str, x: Tensor, mask: Tensor | None) -> None:
        """An error naming the first invalid observation (batched ``x``, ``mask`` (B, T))."""
        if bool(torch.isfinite(x).all()):
            return
        if (where := _first_bad(~torch.isfinite(x).all(-1), mask)) is not None:
            b, t = where
            raise InputError(
                f"{name}: expected finite observations, received {x[b, t].tolist()} at "
                f"sequence {b}, time {t} (missing values are not supported)"
            )

    # ------------------------------------------------------------ density

    def log_prob(self, x: Tensor) -> Tensor:
        r""":math:`\log p(x \mid z = k)` (..., K) for observations ``x`` (..., event)."""
        raise NotImplementedError

    def log_prob_terms(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """``log_prob(x)`` and what the M-step needs of it besides (per-component terms
        (..., K, C) for mixtures), or None."""
        return self.log_prob(x), None

    # ------------------------------------------------------------ fitting

    def set_size(self, x: Tensor) -> None:
        """Infer the sizes not given from the valid observations ``x`` (N, ...)."""

    def statistics(self, x: Tensor, min_covar: float):
        """What the M-step needs of the valid observations ``x`` (N, ...), computed once a
        fit (``min_covar``: the relative variance floor)."""
        return None

    def m_step(
        self,
        gamma: Tensor,
        x: Tensor,
        stats,
        terms: Tensor | None,
        pseudocount: float,
        prior: Tensor | None = None,
    ) -> None:
        r"""Re-estimate the parameters (no autograd) from the posteriors ``gamma`` (N, K)
        of the valid observations ``x`` (N, ...) (both in the same order), ``stats`` from
        :meth:`statistics`, ``terms`` the valid rows of :meth:`log_prob_terms`' second
        result, ``pseudocount`` and a Dirichlet ``prior`` (see ``HMM.fit``). A state with
        no posterior mass keeps its parameters."""
        raise NotImplementedError

    def initialize(self, x: Tensor, init: str, generator: torch.Generator) -> None:
        """Start values from the valid observations ``x`` (N, ...) (no autograd);
        ``init``: ``"kmeans"`` or ``"random"``."""
        raise NotImplementedError

    def prior_shape(self) -> tuple[int, ...]:
        """Shape of a Dirichlet ``emission_prior``."""
        raise NotImplementedError

    def log_prior(self, prior: Tensor) -> float:
        r"""Unnormalised log Dirichlet density :math:`\sum (\alpha - 1) \log p`."""
        return 0.0

    def num_free_parameters(self) -> int:
        """Free scalar parameters (probabilities count one less than their number)."""
        raise NotImplementedError

    # ------------------------------------------------------------ generation

    def sample(self, states: Tensor, generator: torch.Generator | None) -> Tensor:
        """One observation per state in ``states`` (N,): (N,) symbols or (N, event...)."""
        raise NotImplementedError

    def predictive(self, w: Tensor) -> Tensor:
        """The predictive distribution's summary given next-state weights ``w`` (B, K):
        ``w`` itself unless the family has a closed form."""
        return w

    # ------------------------------------------------------------ from_params

    @classmethod
    def check_params(cls, K: int, as_t, **given) -> tuple[dict, dict]:
        """Validate the ``HMM.from_params`` arguments of this family (``as_t`` converts to
        a tensor); return the ``HMM`` constructor arguments and the values for
        :meth:`set_params`."""
        raise NotImplementedError

    def set_params(self, **values) -> None:
        """Store validated parameter values (no autograd)."""
        raise NotImplementedError


def _first_bad(bad: Tensor, mask: Tensor | None) -> tuple[int, int] | None:
    """(sequence, time) of the first flagged observation that is not padding, or None.
    bad, mask: (B, T)."""
    if mask is not None:
        bad = bad & mask
    if not bool(bad.any()):
        return None
    b, t = (int(i) for i in bad.nonzero()[0])
    return b, t


def _dirichlet_rows(g: torch.Generator, shape, dtype, device) -> Tensor:
    """Dirichlet(1) rows via normalised exponentials, drawn on the CPU from ``g``."""
    e = -torch.rand(*shape, generator=g, dtype=dtype).clamp_min(1e-12).log()
    return (e / e.sum(-1, keepdim=True)).to(device)


def _check_vectors(name: str, x: Tensor, D: int, dtype: torch.dtype, counts: bool) -> Tensor:
    """Float (B, T, D) or (T, D) of the model's dtype; integer ``counts`` are converted."""
    if counts and not (x.is_floating_point() or x.is_complex()):
        if x.dtype == torch.bool:
            raise InputTypeError(f"{name}: expected counts, received dtype torch.bool")
        x = x.to(dtype)  # integer counts
    if not x.is_floating_point():
        raise InputTypeError(f"{name}: expected a float tensor, received {x.dtype}")
    if x.dim() not in (2, 3) or x.shape[-1] != D:
        raise InputError(
            f"{name}: expected shape (B, T, {D}) or (T, {D}), received {tuple(x.shape)}"
        )
    if x.dtype != dtype:
        raise InputTypeError(f"{name}: expected dtype {dtype} (the model's), received {x.dtype}")
    return x


class CategoricalEmissions(Emissions):
    r"""One symbol of M a step: :math:`p_k(x) = B_{kx}`, ``emission_probs`` :math:`B`
    (K, M), stored as logits. ``num_symbols=None``: M is inferred by ``fit`` (the largest
    symbol seen, plus one)."""

    name = "categorical"
    arguments = ("num_symbols",)
    param_arguments = ("emission_probs",)
    event_dims = 0
    default_init = "random"
    kmeans = False
    dirichlet = True

    def __init__(self, num_states: int, num_symbols: int | None = None, *, dtype, device) -> None:
        super().__init__(num_states)
        K = num_states
        if num_symbols is None:  # inferred by fit from the data
            self.num_symbols = None
            self.emission_logits = nn.Parameter(torch.zeros(K, 0, dtype=dtype, device=device))
        else:
            self.num_symbols = check_positive_int("num_symbols", num_symbols)
            self.emission_logits = nn.Parameter(
                torch.randn(K, num_symbols, dtype=dtype, device=device) * 0.1
            )

    @property
    def sized(self) -> bool:
        return self.num_symbols is not None

    @property
    def emission_probs(self) -> Tensor:
        r""":math:`B` (K, M), :math:`B_{km} = p(x_t = m \mid z_t = k)`."""
        return torch.softmax(self.emission_logits, -1)

    def check_input(self, name: str, x: Tensor, dtype: torch.dtype) -> Tensor:
        if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
            raise InputTypeError(
                f"{name}: expected an integer (long) tensor of symbols, received {x.dtype}"
            )
        if x.dim() not in (1, 2):
            raise InputError(
                f"{name}: expected (B, T) or (T,) symbols, received shape {tuple(x.shape)}"
            )
        return x

    def check_values(self, name: str, x: Tensor, mask: Tensor | None) -> None:
        M = self.num_symbols
        if M is None or (x.numel() and int(x.min()) >= 0 and int(x.max()) < M):
            return  # M is None while fit infers it
        if (where := _first_bad((x < 0) | (x >= M), mask)) is not None:
            b, t = where
            raise InputError(
                f"{name}: expected symbols in 0..{M - 1}, received {int(x[b, t])} at "
                f"sequence {b}, time {t}"
            )

    def log_prob(self, x: Tensor) -> Tensor:
        return categorical_log_prob(x.long(), torch.log_softmax(self.emission_logits, -1))

    def set_size(self, x: Tensor) -> None:
        self._resize(int(x.max()) + 1)

    def _resize(self, M: int) -> None:
        p = self.emission_logits
        self.num_symbols = M
        self.emission_logits = nn.Parameter(
            torch.zeros(self.num_states, M, dtype=p.dtype, device=p.device)
        )

    def _counts(self, gamma: Tensor, x: Tensor) -> Tensor:
        r"""Expected symbol counts :math:`\sum_t \gamma_t(k) [x_t = m]` (K, M)."""
        counts = torch.zeros(
            self.num_states, self.num_symbols, dtype=gamma.dtype, device=gamma.device
        )
        counts.index_add_(1, x.long(), gamma.t())  # (K, M)
        return counts

    def m_step(self, gamma, x, stats, terms, pseudocount, prior=None) -> None:
        counts = self._counts(gamma, x)  # (K, M), Rabiner 1989, eq. 40c
        self.emission_logits.copy_(normalized_log(counts, self.emission_logits, pseudocount, prior))

    def initialize(self, x: Tensor, init: str, generator: torch.Generator) -> None:
        p = self.emission_logits
        shape = (self.num_states, self.num_symbols)
        self.emission_logits.copy_(_dirichlet_rows(generator, shape, p.dtype, p.device).log())

    def prior_shape(self) -> tuple[int, ...]:
        return (self.num_states, self.num_symbols or 0)

    def log_prior(self, prior: Tensor) -> float:
        logp = torch.log_softmax(self.emission_logits, -1)
        return float(torch.where(torch.isfinite(logp), (prior - 1) * logp, 0.0).sum())

    def num_free_parameters(self) -> int:
        return self.num_states * (self.num_symbols - 1)

    def sample(self, states: Tensor, generator) -> Tensor:
        return torch.multinomial(self.emission_probs[states], 1, generator=generator)[:, 0]

    def predictive(self, w: Tensor) -> Tensor:
        r""":math:`p(x_{T+1} = m \mid x_{1:T}) = \sum_k w_k B_{km}`, (B, M)."""
        return w @ self.emission_probs

    @classmethod
    def check_params(cls, K: int, as_t, emission_probs=None, **given) -> tuple[dict, dict]:
        if emission_probs is None:
            raise InputError(
                f"emission_probs: expected ({K}, M) probabilities for {cls.name} emissions, "
                "received None"
            )
        B = as_t("emission_probs", emission_probs)
        if B.dim() != 2 or B.shape[0] != K:
            raise InputError(f"emission_probs: expected shape ({K}, M), received {tuple(B.shape)}")
        check_stochastic("emission_probs", B)
        return {"num_symbols": B.shape[1]}, {"emission_probs": B}

    def set_params(self, emission_probs: Tensor) -> None:
        self.emission_logits.copy_(emission_probs.log())

    def extra_repr(self) -> str:
        return f"num_symbols={self.num_symbols}"


class MultinomialEmissions(CategoricalEmissions):
    r"""Counts of M symbols a step, :math:`x_t \in \mathbb N^M` with :math:`\sum_m x_{tm}
    = n` trials (hmmlearn's ``MultinomialHMM``):

    .. math::
        p_k(x) = \frac{n!}{\prod_m x_m!} \prod_m B_{km}^{x_m}, \qquad
        \hat B_{km} \propto \sum_t \gamma_t(k)\, x_{tm} \;\text{(M-step)}.

    ``emission_probs`` :math:`B` (K, M) as for categorical emissions (logits, Dirichlet
    pseudocounts and priors alike); with one trial a step it is the categorical model of
    the one-hot counts. ``n_trials``: the number of trials every step must have (checked;
    needed by ``sample``), or None: each step's total is its own n (hmmlearn's default).
    ``num_symbols=None``: M is read from the data by ``fit``."""

    name = "multinomial"
    arguments = ("num_symbols", "n_trials")
    param_arguments = ("emission_probs", "n_trials")
    event_dims = 1

    def __init__(
        self,
        num_states: int,
        num_symbols: int | None = None,
        n_trials: int | None = None,
        *,
        dtype,
        device,
    ) -> None:
        super().__init__(num_states, num_symbols, dtype=dtype, device=device)
        self.n_trials = None if n_trials is None else check_positive_int("n_trials", n_trials)

    def check_input(self, name: str, x: Tensor, dtype: torch.dtype) -> Tensor:
        if x.dtype == torch.bool or x.is_complex():
            raise InputTypeError(f"{name}: expected counts, received dtype {x.dtype}")
        if not x.is_floating_point():
            x = x.to(dtype)  # integer counts
        M = self.num_symbols
        if x.dim() not in (2, 3) or (M is not None and x.shape[-1] != M):
            want = "M" if M is None else M
            raise InputError(
                f"{name}: expected counts of shape (B, T, {want}) or (T, {want}), received "
                f"{tuple(x.shape)}"
            )
        if x.dtype != dtype:
            raise InputTypeError(
                f"{name}: expected dtype {dtype} (the model's), received {x.dtype}"
            )
        return x

    def check_values(self, name: str, x: Tensor, mask: Tensor | None) -> None:
        ok = torch.isfinite(x) & (x >= 0) & (x == x.round())  # (B, T, M)
        if (where := _first_bad(~ok.all(-1), mask)) is not None:
            b, t = where
            raise InputError(
                f"{name}: expected non-negative integer counts, received {x[b, t].tolist()} "
                f"at sequence {b}, time {t}"
            )
        if self.n_trials is None:
            return
        totals = x.sum(-1)  # (B, T)
        if (where := _first_bad(totals != self.n_trials, mask)) is not None:
            b, t = where
            raise InputError(
                f"{name}: expected counts summing to n_trials = {self.n_trials} at every "
                f"step, received a total of {float(totals[b, t]):g} at sequence {b}, time {t}"
            )

    def log_prob(self, x: Tensor) -> Tensor:
        return multinomial_log_prob(x, torch.log_softmax(self.emission_logits, -1))

    def set_size(self, x: Tensor) -> None:
        self._resize(x.shape[-1])

    def _counts(self, gamma: Tensor, x: Tensor) -> Tensor:
        r"""Expected symbol counts :math:`\sum_t \gamma_t(k)\, x_{tm}` (K, M)."""
        return gamma.t() @ x

    def sample(self, states: Tensor, generator) -> Tensor:
        n = self.n_trials
        if n is None:
            raise InputError(
                "n_trials: sampling multinomial emissions needs the number of trials a step; "
                "give HMM(..., n_trials=n) or from_params(..., n_trials=n)"
            )
        p = self.emission_probs
        draws = torch.multinomial(p[states], n, replacement=True, generator=generator)  # (N, n)
        counts = torch.zeros(states.shape[0], p.shape[1], dtype=p.dtype, device=p.device)
        return counts.scatter_add_(1, draws, torch.ones_like(draws, dtype=p.dtype))  # (N, M)

    def predictive(self, w: Tensor) -> Tensor:
        r"""The next step's symbol probabilities per trial :math:`\sum_k w_k B_{km}`, (B, M)
        (the expected counts are n times these)."""
        return w @ self.emission_probs

    @classmethod
    def check_params(cls, K: int, as_t, emission_probs=None, n_trials=None, **given):
        ctor, values = super().check_params(K, as_t, emission_probs=emission_probs)
        return {**ctor, "n_trials": n_trials}, values

    def extra_repr(self) -> str:
        return f"num_symbols={self.num_symbols}, n_trials={self.n_trials}"


def _initial_centers(
    x: Tensor, K: int, init: str, g: torch.Generator, dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """Start centres (K, D), the data covariance (D, D) (plus 1e-3 of its mean variance)
    and the observations they come from (at most 20,000 of ``x`` (N, D), on the CPU).
    ``init="kmeans"``: the best of 10 k-means++ runs, centres sorted by their first
    coordinate; else observations drawn at random, jittered. Independent of the order of
    the sequences: the observations are first sorted lexicographically."""
    N, D = x.shape
    kw = {"dtype": dtype}
    xc = x.cpu()
    order = np.lexsort(xc.t().flip(0).numpy())  # rows sorted lexicographically
    xc = xc[torch.from_numpy(order)]
    if N > 20000:  # k-means on a subsample
        xc = xc[torch.randperm(N, generator=g)[:20000]]
    cov = torch.atleast_2d(torch.cov(xc.t())) if xc.shape[0] > 1 else torch.eye(D, **kw)
    cov = cov + 1e-3 * torch.eye(D, **kw) * cov.diagonal().mean().clamp_min(1e-12)
    if init == "kmeans" and xc.shape[0] >= K:
        centers = kmeans(xc, K, n_init=10, generator=g).centers  # (K, D)
        centers = centers[torch.argsort(centers[:, 0], stable=True)]
    else:
        centers = xc[torch.randint(xc.shape[0], (K,), generator=g)]
        centers = centers + 1e-3 * cov.diagonal().sqrt() * torch.randn(K, D, generator=g, **kw)
    return centers, cov, xc


class PoissonEmissions(Emissions):
    r"""Counts (B, T, D), independent Poisson per feature: :math:`p_k(x) = \prod_d
    \lambda_{kd}^{x_d} e^{-\lambda_{kd}} / x_d!`, ``rates`` :math:`\lambda` (K, D), stored
    as logs. M-step: :math:`\hat\lambda_k = \sum_t \gamma_t(k) x_t / \sum_t \gamma_t(k)`
    (hmmlearn's ``PoissonHMM``)."""

    name = "poisson"
    arguments = ("obs_dim",)
    param_arguments = ("rates",)

    def __init__(self, num_states: int, obs_dim: int | None = None, *, dtype, device) -> None:
        super().__init__(num_states)
        D = self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.log_rate = nn.Parameter(torch.zeros(num_states, D, dtype=dtype, device=device))

    @property
    def rates(self) -> Tensor:
        r"""Poisson rates :math:`\lambda` (K, D)."""
        return self.log_rate.exp()

    def check_input(self, name: str, x: Tensor, dtype: torch.dtype) -> Tensor:
        return _check_vectors(name, x, self.obs_dim, dtype, counts=True)

    def log_prob(self, x: Tensor) -> Tensor:
        return poisson_log_prob(x, self.log_rate)

    def statistics(self, x: Tensor, min_covar: float):
        if bool((x < 0).any()) or not bool((x == x.round()).all()):
            raise InputError(f"x: expected non-negative integer counts, min {float(x.min()):.3g}")
        return None

    def m_step(self, gamma, x, stats, terms, pseudocount, prior=None) -> None:
        nk = gamma.sum(0)  # (K,)
        alive = nk > 1e-10 * max(1.0, float(nk.sum()))
        rate = (gamma.t() @ x) / nk.clamp_min(torch.finfo(x.dtype).tiny)[:, None]
        floor = 1e-10 * x.mean(0).clamp_min(1.0)  # a zero rate would make log 0
        new = rate.clamp_min(0) + floor
        self.log_rate.copy_(torch.where(alive[:, None], new.log(), self.log_rate))

    def initialize(self, x: Tensor, init: str, generator: torch.Generator) -> None:
        centers, _, xc = _initial_centers(x, self.num_states, init, generator, self.log_rate.dtype)
        floor = 1e-3 * xc.mean(0).clamp_min(1e-3)
        self.log_rate.copy_((centers.clamp_min(0) + floor).log().to(self.log_rate.device))

    def num_free_parameters(self) -> int:
        return self.num_states * self.obs_dim

    def sample(self, states: Tensor, generator) -> Tensor:
        return torch.poisson(self.rates[states], generator=generator)  # (N, D)

    @classmethod
    def check_params(cls, K: int, as_t, rates=None, **given) -> tuple[dict, dict]:
        lam = as_t("rates", rates)
        if lam.dim() != 2 or lam.shape[0] != K:
            raise InputError(f"rates: expected shape ({K}, D), received {tuple(lam.shape)}")
        if not bool(torch.isfinite(lam).all()) or bool((lam <= 0).any()):
            raise InputError(
                f"rates: expected positive finite rates, received min {float(lam.min()):.3g}"
            )
        return {"obs_dim": lam.shape[1]}, {"rates": lam}

    def set_params(self, rates: Tensor) -> None:
        self.log_rate.copy_(rates.log())

    def extra_repr(self) -> str:
        return f"obs_dim={self.obs_dim}"


class GaussianEmissions(Emissions):
    r""":math:`p_k(x) = \mathcal N(x \mid \mu_k, \Sigma_k)`, ``means`` :math:`\mu` (K, D),
    ``covs`` :math:`\Sigma` (K, D, D) of one of four ``covariance`` types: ``"full"``
    (lower Cholesky factors with log-diagonal stored), ``"diag"`` (log standard deviations
    per feature), ``"spherical"`` (one per state) or ``"tied"`` (one full matrix for all
    states). M-step (Rabiner 1989, eqs. 53-54): posterior-weighted means and covariances
    plus the variance floor; ``"tied"`` pools :math:`\sum_k n_k \Sigma_k / N` (hmmlearn)."""

    name = "gaussian"
    arguments = ("obs_dim", "covariance")
    param_arguments = ("means", "covs", "covariance")

    def __init__(
        self,
        num_states: int,
        obs_dim: int | None = None,
        covariance: str = "full",
        num_mixtures: int | None = None,
        *,
        dtype,
        device,
    ) -> None:
        super().__init__(num_states)
        kw = {"dtype": dtype, "device": device}
        D = self.obs_dim = check_positive_int("obs_dim", obs_dim)
        self.covariance = covariance
        lead = (num_states,)
        self.num_mixtures = None
        if num_mixtures is not None:  # the mixture subclass: C components a state
            C = self.num_mixtures = check_positive_int("num_mixtures", num_mixtures)
            lead = (num_states, C)
            self.mixture_logits = nn.Parameter(torch.zeros(*lead, **kw))
        self.loc = nn.Parameter(torch.randn(*lead, D, **kw))
        if covariance == "tied" and num_mixtures is not None:
            raise InputError("covariance: 'tied' is for emission='gaussian', received 'gmm'")
        if covariance == "full":  # lower triangle free, diagonal stored as its log
            self.scale_tril_raw = nn.Parameter(torch.zeros(*lead, D, D, **kw))
        elif covariance == "tied":  # one covariance shared by all states
            self.scale_tril_raw = nn.Parameter(torch.zeros(D, D, **kw))
        else:  # log standard deviations, one per feature (diag) or per state
            width = D if covariance == "diag" else 1
            self.log_scale = nn.Parameter(torch.zeros(*lead, width, **kw))

    # ------------------------------------------------------------ parameters

    @property
    def means(self) -> Tensor:
        r""":math:`\mu` (K, D), or (K, C, D) for mixtures."""
        return self.loc

    @property
    def scale_tril(self) -> Tensor:
        r"""Lower Cholesky factors :math:`L` of the covariances, (K, D, D) or (K, C, D, D)."""
        if self.covariance in _DIAGONAL:
            return torch.diag_embed(self.log_scale.exp().expand(*self.loc.shape))
        raw = self.scale_tril_raw
        L = raw.tril(-1) + torch.diag_embed(torch.diagonal(raw, dim1=-2, dim2=-1).exp())
        return L.expand(*self.loc.shape, self.obs_dim) if self.covariance == "tied" else L

    @property
    def variances(self) -> Tensor:
        r"""Diagonal of :math:`\Sigma`, (K, D) or (K, C, D)."""
        if self.covariance in _DIAGONAL:
            return (2.0 * self.log_scale).exp().expand(*self.loc.shape)
        return torch.diagonal(self.covs, dim1=-2, dim2=-1)

    @property
    def covs(self) -> Tensor:
        r""":math:`\Sigma = L L^\top` (K, D, D), or (K, C, D, D) for mixtures; diagonal
        matrices when ``covariance`` is ``'diag'`` or ``'spherical'``."""
        if self.covariance in _DIAGONAL:
            return torch.diag_embed(self.variances)
        L = self.scale_tril
        return L @ L.transpose(-1, -2)

    def set_covs(self, S: Tensor, L: Tensor | None = None) -> None:
        """Store covariances ``S`` (..., D, D) (no autograd; ``L``: their Cholesky factors
        when known)."""
        if self.covariance == "tied":  # the states' (equal) covariances: store one
            S = S.reshape(-1, *S.shape[-2:])[0]
            L = None if L is None else L.reshape(-1, *L.shape[-2:])[0]
        if self.covariance in _DIAGONAL:
            v = torch.diagonal(S, dim1=-2, dim2=-1)
            if self.covariance == "spherical":
                v = v.mean(-1, keepdim=True)
            self.log_scale.copy_(0.5 * v.log())
        else:
            L = torch.linalg.cholesky(S) if L is None else L
            raw = L.tril(-1) + torch.diag_embed(torch.diagonal(L, dim1=-2, dim2=-1).log())
            self.scale_tril_raw.copy_(raw)

    # ------------------------------------------------------------ density

    def check_input(self, name: str, x: Tensor, dtype: torch.dtype) -> Tensor:
        return _check_vectors(name, x, self.obs_dim, dtype, counts=False)

    def log_prob(self, x: Tensor) -> Tensor:
        if self.covariance in _DIAGONAL:
            return diag_gaussian_log_prob(x, self.loc, self.variances)
        return gaussian_log_prob(x, self.loc, self.scale_tril)

    # ------------------------------------------------------------ fitting

    def statistics(self, x: Tensor, min_covar: float):
        """The observations centred on their mean (which limits cancellation), their
        squares (diagonal types), the centre and the variance floor: ``min_covar`` times
        each feature's variance in the data (D,)."""
        center = x.mean(0)
        xc = x - center
        xsq = xc.square() if self.covariance in _DIAGONAL else None
        var = xc.square().mean(0) if xc.shape[0] > 1 else torch.ones_like(center)
        floor = min_covar * torch.where(var > 0, var, torch.ones_like(var))  # (D,)
        return xc, xsq, center, floor

    def m_step(self, gamma, x, stats, terms, pseudocount, prior=None) -> None:
        self._update_moments(gamma, stats)

    def _update_moments(self, resp: Tensor, stats) -> None:
        """Means and covariances from responsibilities ``resp`` (N, J), J = K (times C)."""
        xc, xsq, center, floor = stats
        means, covs, alive = weighted_moments(resp, xc, xsq, center, floor, self.covariance)
        lead = self.loc.shape[:-1]
        means = means.view(*lead, -1)
        covs = covs.view(*lead, *covs.shape[1:])
        alive = alive.view(lead)
        self.loc.copy_(torch.where(alive.unsqueeze(-1), means, self.loc))
        if self.covariance in _DIAGONAL:
            new = 0.5 * covs.log()
            self.log_scale.copy_(torch.where(alive.unsqueeze(-1), new, self.log_scale))
        elif self.covariance == "tied":  # pooled over the states (hmmlearn's tied M-step)
            if bool(alive.any()):
                self.set_covs(covs[0])
        else:
            self.set_covs(torch.where(alive[..., None, None], covs, self.covs))

    def initialize(self, x: Tensor, init: str, generator: torch.Generator) -> None:
        """Means from k-means (or random observations), the data covariance for every
        state (its diagonal, or mean variance, for the diagonal types)."""
        centers, cov = self._initial_means(x, init, generator)
        D = self.obs_dim
        self.loc.copy_(centers.to(self.loc.device))
        full = cov.expand(*self.loc.shape[:-1], D, D).to(self.loc.device)
        if self.covariance == "diag":
            full = torch.diag_embed(torch.diagonal(full, dim1=-2, dim2=-1))
        elif self.covariance == "spherical":
            v = torch.diagonal(full, dim1=-2, dim2=-1).mean(-1, keepdim=True)
            full = torch.diag_embed(v.expand(*v.shape[:-1], D))
        self.set_covs(full.contiguous())

    def _initial_means(self, x, init, g) -> tuple[Tensor, Tensor]:
        centers, cov, _ = _initial_centers(x, self.num_states, init, g, self.loc.dtype)
        return centers, cov

    def num_free_parameters(self) -> int:
        D = self.obs_dim
        J = self.num_states * (self.num_mixtures or 1)
        cov = {"full": D * (D + 1) // 2, "diag": D, "spherical": 1, "tied": 0}[self.covariance]
        return J * (D + cov) + (D * (D + 1) // 2 if self.covariance == "tied" else 0)

    # ------------------------------------------------------------ generation

    def sample(self, states: Tensor, generator) -> Tensor:
        mu, L = self._pick(states, generator)  # (N, D), (N, D, D)
        p = self.loc
        eps = torch.randn(
            states.shape[0], self.obs_dim, 1, dtype=p.dtype, device=p.device, generator=generator
        )
        return mu + (L @ eps).squeeze(-1)  # (N, D)

    def _pick(self, states: Tensor, generator) -> tuple[Tensor, Tensor]:
        """The mean and Cholesky factor of each draw's Gaussian."""
        return self.loc[states], self.scale_tril[states]

    # ------------------------------------------------------------ from_params

    @classmethod
    def check_params(
        cls, K: int, as_t, means=None, covs=None, covariance=None, weights=None, **given
    ) -> tuple[dict, dict]:
        if means is None or covs is None:
            raise InputError(
                "means/covs: expected emission_probs (categorical) or means and covs "
                f"(gaussian), received means={describe(means)}, covs={describe(covs)}"
            )
        mu = as_t("means", means)
        S = as_t("covs", covs)
        gmm = weights is not None
        lead = 2 if gmm else 1
        if mu.dim() != lead + 1 or mu.shape[0] != K:
            want = f"({K}, C, D)" if gmm else f"({K}, D)"
            raise InputError(f"means: expected shape {want}, received {tuple(mu.shape)}")
        D = mu.shape[-1]
        if covariance is None:
            covariance = "diag" if S.dim() == lead + 1 else "full"
        if covariance not in COVARIANCES:
            raise InputError(f"covariance: expected one of {COVARIANCES}, received {covariance!r}")
        full_shape = (*mu.shape, D)
        if covariance == "tied" and tuple(S.shape) == (D, D):  # the shared matrix
            S = S.expand(full_shape).clone()
        if tuple(S.shape) == tuple(mu.shape):  # variances given
            variances = S
            if (variances <= 0).any() or not torch.isfinite(variances).all():
                raise InputError(
                    f"covs: expected positive variances, received min {variances.min():.3g}"
                )
            S = torch.diag_embed(variances)
        elif tuple(S.shape) != full_shape:
            raise InputError(
                f"covs: expected shape {full_shape} or {tuple(mu.shape)}, received {tuple(S.shape)}"
            )
        L = check_spd("covs", S)
        if covariance == "tied":
            spread = (S - S[:1]).abs().max()
            if spread > 1e-12 * S.abs().max():
                raise InputError(
                    "covs: covariance='tied' needs the same matrix for every state, "
                    f"received differences up to {float(spread):.3g}"
                )
        elif covariance != "full":
            diag = torch.diagonal(S, dim1=-2, dim2=-1)
            off = S - torch.diag_embed(diag)
            if off.abs().max() > 0:
                raise InputError(
                    f"covs: covariance={covariance!r} needs diagonal matrices, received "
                    f"off-diagonal entries up to {off.abs().max():.3g}"
                )
            spread = (diag - diag[..., :1]).abs().max()
            if covariance == "spherical" and spread > 1e-12 * diag.abs().max():
                raise InputError(
                    "covs: covariance='spherical' needs equal variances within each "
                    f"state, received a spread of {float(spread):.3g}"
                )
        ctor = {"obs_dim": D, "covariance": covariance}
        return ctor, {"means": mu, "covs": S, "scale_tril": L}

    def set_params(self, means: Tensor, covs: Tensor, scale_tril: Tensor | None = None) -> None:
        self.loc.copy_(means)
        self.set_covs(covs, scale_tril)

    def extra_repr(self) -> str:
        return f"obs_dim={self.obs_dim}, covariance={self.covariance!r}"


class GaussianMixtureEmissions(GaussianEmissions):
    r""":math:`p_k(x) = \sum_c w_{kc} \mathcal N(x \mid \mu_{kc}, \Sigma_{kc})` with C
    components a state: ``weights`` :math:`w` (K, C) (logits), ``means`` (K, C, D),
    ``covs`` (K, C, D, D) of covariance type ``"full"``, ``"diag"`` or ``"spherical"``.
    M-step: the component responsibilities within each state times :math:`\gamma_t(k)`
    weight the moments (Rabiner 1989, eqs. 52-54); the weights get ``pseudocount``."""

    name = "gmm"
    arguments = ("obs_dim", "covariance", "num_mixtures")
    param_arguments = ("means", "covs", "covariance", "weights")

    @property
    def weights(self) -> Tensor:
        r"""Mixture weights :math:`w` (K, C)."""
        return torch.softmax(self.mixture_logits, -1)

    def __init__(
        self,
        num_states: int,
        obs_dim: int | None = None,
        covariance: str = "full",
        num_mixtures: int | None = None,
        *,
        dtype,
        device,
    ) -> None:
        check_positive_int("num_mixtures", num_mixtures)
        super().__init__(num_states, obs_dim, covariance, num_mixtures, dtype=dtype, device=device)

    def log_prob(self, x: Tensor) -> Tensor:
        return self._mixture(x, False)

    def log_prob_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self._mixture(x, True)

    def _mixture(self, x: Tensor, components: bool):
        log_w = torch.log_softmax(self.mixture_logits, -1)
        diag = self.covariance in _DIAGONAL
        scale = self.variances if diag else self.scale_tril
        return gmm_log_prob(x, log_w, self.loc, scale, diag, return_components=components)

    def m_step(self, gamma, x, stats, terms, pseudocount, prior=None) -> None:
        K, C = self.mixture_logits.shape
        # responsibilities of the components within each state, times gamma
        r = torch.softmax(terms, -1) * gamma.unsqueeze(-1)  # (N, K, C)
        resp = r.reshape(-1, K * C)  # (N, K*C)
        nc = resp.sum(0).view(K, C)
        self.mixture_logits.copy_(normalized_log(nc, self.mixture_logits, pseudocount))
        self._update_moments(resp, stats)

    def _initial_means(self, x, init, g) -> tuple[Tensor, Tensor]:
        """The state centres, jittered by half a standard deviation per component."""
        centers, cov = super()._initial_means(x, init, g)
        K, C, D = self.loc.shape
        sd = cov.diagonal().sqrt()
        jitter = 0.5 * sd * torch.randn(K, C, D, generator=g, dtype=self.loc.dtype)
        self.mixture_logits.fill_(0.0)
        return centers.unsqueeze(1) + jitter, cov  # (K, C, D)

    def num_free_parameters(self) -> int:
        return super().num_free_parameters() + self.num_states * (self.num_mixtures - 1)

    def _pick(self, states: Tensor, generator) -> tuple[Tensor, Tensor]:
        c = torch.multinomial(self.weights[states], 1, generator=generator)[:, 0]  # (N,)
        return self.loc[states, c], self.scale_tril[states, c]

    @classmethod
    def check_params(cls, K: int, as_t, weights=None, **given) -> tuple[dict, dict]:
        if weights is None:
            raise InputError(f"weights: expected ({K}, C) mixture weights, received None")
        ctor, values = super().check_params(K, as_t, weights=weights, **given)
        mu = values["means"]
        w = as_t("weights", weights)
        C = mu.shape[1]
        if tuple(w.shape) != (K, C):
            raise InputError(f"weights: expected shape ({K}, {C}), received {tuple(w.shape)}")
        check_stochastic("weights", w)
        return {**ctor, "num_mixtures": C}, {**values, "weights": w}

    def set_params(self, means, covs, scale_tril=None, weights=None) -> None:
        super().set_params(means, covs, scale_tril)
        self.mixture_logits.copy_(weights.log())

    def extra_repr(self) -> str:
        return super().extra_repr() + f", num_mixtures={self.num_mixtures}"


FAMILIES: dict[str, type[Emissions]] = {
    c.name: c
    for c in (
        CategoricalEmissions,
        GaussianEmissions,
        GaussianMixtureEmissions,
        PoissonEmissions,
        MultinomialEmissions,
    )
}
"""The emission components by their ``HMM(emission=...)`` names."""


# ----------------------------------------------------------------------------------------
# Helpers shared with the model
# ----------------------------------------------------------------------------------------


def check_stochastic(name: str, p: Tensor) -> None:
    """ValueError unless ``p`` has finite, non-negative entries and rows summing to 1."""
    if not torch.isfinite(p).all() or (p < 0).any():
        raise InputError(
            f"{name}: expected non-negative finite probabilities, received min "
            f"{float(p.nan_to_num(nan=-1.0).min()):.3g}"
        )
    sums = p.sum(-1)
    eps = torch.finfo(p.dtype).eps  # rounding of a sum of M terms grows like M eps
    tol = max(math.sqrt(eps), 1e-6) + 4 * p.shape[-1] * eps  # 1e-6: float32-made rows
    bad = (sums - 1).abs() > tol
    if bad.any():
        idx = bad.nonzero()[0].tolist()
        where = f" (row {idx[0]})" if p.dim() > 1 else ""
        raise InputError(
            f"{name}: expected rows summing to 1 (within {tol:.2g}), received a sum of "
            f"{float(sums[tuple(idx)]):.10g}{where}"
        )


def check_spd(name: str, S: Tensor) -> Tensor:
    """ValueError unless every matrix in ``S`` (..., D, D) is symmetric positive definite;
    returns the Cholesky factors."""
    if not torch.isfinite(S).all():
        raise InputError(f"{name}: expected finite covariances, received non-finite entries")
    asym = (S - S.transpose(-1, -2)).abs().amax()
    scale = S.abs().amax().clamp_min(1e-300)
    if asym > math.sqrt(torch.finfo(S.dtype).eps) * scale:
        raise InputError(
            f"{name}: expected symmetric matrices, received an asymmetry of {float(asym):.3g}"
        )
    S = 0.5 * (S + S.transpose(-1, -2))
    L, info = torch.linalg.cholesky_ex(S)
    if (info != 0).any():
        idx = tuple((info != 0).nonzero()[0].tolist())
        eig = torch.linalg.eigvalsh(S[idx]).min()
        raise InputError(
            f"{name}: expected positive definite matrices, received one (index {list(idx)}) "
            f"with smallest eigenvalue {float(eig):.3g}"
        )
    return L


def normalized_log(
    counts: Tensor, old_logits: Tensor, pseudocount: float, prior: Tensor | None = None
) -> Tensor:
    r"""Log of the normalised rows of ``counts + pseudocount`` (or, given a Dirichlet
    concentration ``prior`` :math:`\alpha`, of :math:`\max(n + \alpha - 1, 0)`: the MAP
    estimate) where the old probability is non-zero (structural zeros stay zero); a row
    with no mass keeps its old values."""
    free = torch.isfinite(old_logits)  # log 0 = -inf marks a structural zero
    extra = counts + pseudocount if prior is None else (counts + prior - 1).clamp_min(0)
    c = torch.where(free, extra, torch.zeros_like(counts))
    c = c / c.amax(-1, keepdim=True).clamp_min(torch.finfo(c.dtype).tiny)  # no overflow
    tot = c.sum(-1, keepdim=True)
    new = (c / tot.clamp_min(torch.finfo(c.dtype).tiny)).log()
    old = torch.log_softmax(old_logits, -1)
    return torch.where(tot > 0, new, old)


def weighted_moments(
    resp: Tensor,
    xc: Tensor,
    xsq: Tensor | None,
    center: Tensor,
    floor: Tensor | float,
    covariance: str = "full",
) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted means (J, D), covariances ((J, D) variances for 'diag', (J, 1) for
    'spherical', else (J, D, D)) and a mask of the components with mass, from
    responsibilities ``resp`` (N, J), observations centred on ``center`` ``xc`` (N, D)
    (centring limits cancellation) and their squares ``xsq`` (N, D). ``floor`` (D,) or a
    number is added to the variances."""
    N, D = xc.shape
    nk = resp.sum(0)  # (J,)
    alive = nk > 1e-10 * max(1.0, float(nk.sum()))
    denom = nk.clamp_min(torch.finfo(xc.dtype).tiny).unsqueeze(-1)
    rt = resp.t()  # (J, N)
    mc = (rt @ xc) / denom  # (J, D)
    floor = torch.as_tensor(floor, dtype=xc.dtype, device=xc.device).expand(D)
    if covariance in _DIAGONAL:
        var = ((rt @ xsq) / denom - mc.square()).clamp_min(0) + floor  # (J, D)
        covs = var.mean(-1, keepdim=True) if covariance == "spherical" else var
    else:
        outer = (xc.unsqueeze(-1) * xc.unsqueeze(-2)).reshape(N, D * D)  # (N, D*D)
        second = (rt @ outer).view(-1, D, D) / denom.unsqueeze(-1)  # (J, D, D)
        covs = second - mc.unsqueeze(-1) * mc.unsqueeze(-2)
        covs = 0.5 * (covs + covs.transpose(-1, -2))
        if covariance == "tied":  # sum_k n_k Sigma_k / N, the same for every state
            pooled = (nk[:, None, None] * covs).sum(0) / nk.sum().clamp_min(1e-300)
            covs = pooled.expand_as(covs)
        covs = covs + torch.diag(floor)
    return mc + center, covs, alive
