r"""Hidden Markov models: forward-backward, Viterbi, Baum-Welch, batched over sequences.

The functional core (pure tensor kernels, batch-first ``(B, T, K)`` in and out):

- :func:`categorical_log_prob`, :func:`multinomial_log_prob`, :func:`poisson_log_prob`,
  :func:`gaussian_log_prob`, :func:`diag_gaussian_log_prob`, :func:`gmm_log_prob`: emission
  log-probabilities :math:`\log p(x_t \mid z_t = k)` (defined with the emission components
  in :mod:`rnnlab.classic.emissions`, which call them, and importable from here);
- :func:`forward_filter`: the scaled forward pass (Rabiner 1989, §V.A) returning
  :class:`ForwardResult`;
- :func:`backward_smoother`: the scaled backward pass, posterior marginals and expected
  transition counts (:class:`SmootherResult`);
- :func:`viterbi`: the most probable state path in log space (:class:`ViterbiResult`).

and one model class, :class:`HMM`, an ``nn.Module`` whose ``forward`` is the
differentiable log-likelihood, with ``fit`` (Baum-Welch), ``score``, ``predict``,
``sample`` and ``predict_next``. Its emission family is a component (``HMM.emissions``):
the model has no per-family code.

How the forward pass stays stable and fast. Each step is one ``(B, K) x (K, K)`` matrix
multiply in probability space followed by a normalisation (Rabiner 1989, eqs. 91-92a):
the emission probabilities are first divided by their per-step maximum over states (so
:math:`0 \le \tilde b_t \le 1` and one state has :math:`\tilde b_t = 1`), and the filtered
distribution is renormalised every step, so nothing underflows however long the sequence
(T = 100,000 is tested). The log-likelihood is the sum of the logs of the normalisers.
Padding past a sequence's length is handled without branching: there the emission is set
to 1, which leaves a row-stochastic recursion untouched, and the normalisers are masked.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from rnnlab._validation import check_lengths, check_positive_int, check_tensor, describe
from rnnlab.classic import _loops
from rnnlab.classic._em import as_generator, check_nonnegative, run_em
from rnnlab.classic.emissions import (
    COVARIANCES,
    FAMILIES,
    _dirichlet_rows,
    categorical_log_prob,
    check_stochastic,
    diag_gaussian_log_prob,
    gaussian_log_prob,
    gmm_log_prob,
    multinomial_log_prob,
    normalized_log,
    poisson_log_prob,
)
from rnnlab.errors import InputError, InputTypeError

__all__ = [
    "HMM",
    "ForwardResult",
    "SmootherResult",
    "ViterbiResult",
    "HMMSample",
    "categorical_log_prob",
    "multinomial_log_prob",
    "poisson_log_prob",
    "gaussian_log_prob",
    "diag_gaussian_log_prob",
    "gmm_log_prob",
    "forward_filter",
    "backward_smoother",
    "viterbi",
    "concatenated_to_batch",
]

# ----------------------------------------------------------------------------------------
# Typed outputs
# ----------------------------------------------------------------------------------------


class ForwardResult(NamedTuple):
    r"""The forward pass.

    log_alpha: (B, T, K) :math:`\log \alpha_t(k) = \log p(x_{1:t}, z_t = k)`.
    log_likelihood: (B,) :math:`\log p(x_{1:T_b})`, each sequence up to its own length.
    filtered: (B, T, K) :math:`p(z_t = k \mid x_{1:t})` (rows sum to 1).
    log_normalizers: (B, T) :math:`\log p(x_t \mid x_{1:t-1})`; their sum is the
        log-likelihood.

    Entries past a sequence's length are zero.
    """

    log_alpha: Tensor
    log_likelihood: Tensor
    filtered: Tensor
    log_normalizers: Tensor


class SmootherResult(NamedTuple):
    r"""The backward pass.

    posterior: (B, T, K) :math:`\gamma_t(k) = p(z_t = k \mid x_{1:T})`.
    expected_transitions: (B, K, K)
        :math:`\sum_{t=2}^{T_b} \xi_t(i, j) = \sum_t p(z_{t-1} = i, z_t = j \mid x_{1:T})`.
    log_beta: (B, T, K) :math:`\log \beta_t(k) = \log p(x_{t+1:T} \mid z_t = k)`.

    Entries past a sequence's length are zero.
    """

    posterior: Tensor
    expected_transitions: Tensor
    log_beta: Tensor


class ViterbiResult(NamedTuple):
    r"""The most probable state path.

    paths: (B, T) :math:`\arg\max_{z_{1:T}} p(z_{1:T}, x_{1:T})` (0 past the length).
    log_probs: (B,) :math:`\max_{z_{1:T}} \log p(z_{1:T}, x_{1:T})`.
    """

    paths: Tensor
    log_probs: Tensor


class HMMSample(NamedTuple):
    """Sampled sequences: observations (N, T) symbols or (N, T, D) vectors; states (N, T)."""

    observations: Tensor
    states: Tensor


# ----------------------------------------------------------------------------------------
# Forward-backward and Viterbi (time-major internals, batch-first wrappers)
# ----------------------------------------------------------------------------------------


def _mask_from_lengths(lengths: Tensor | None, B: int, T: int, device) -> Tensor | None:
    """(B, T) bool, True at valid positions; None when there is no padding."""
    if lengths is None:
        return None
    return torch.arange(T, device=device) < lengths.to(device)[:, None]


def _masked(mask: Tensor | None, x: Tensor) -> Tensor:
    """``x`` with zeros where ``mask`` (broadcast over trailing dims) is False."""
    if mask is None:
        return x
    while mask.dim() < x.dim():
        mask = mask.unsqueeze(-1)
    return torch.where(mask, x, torch.zeros_like(x))


def _valid(mask: Tensor | None, x: Tensor) -> Tensor:
    """The entries of ``x`` (B, T, ...) at valid positions, (N, ...) in batch-major order."""
    return x.reshape(-1, *x.shape[2:]) if mask is None else x[mask]


def _scaled_emissions(log_b: Tensor) -> tuple[Tensor, Tensor]:
    r""":math:`\tilde b_t = \exp(\log b_t - m_t)` (T, B, K) with :math:`m_t = \max_k \log b_t(k)`
    (T, B), so :math:`0 \le \tilde b_t \le 1`. Subnormal values (below ``tiny``) are set to
    0: they would make every later multiply slow. (A wider flush would be wrong: a tiny
    emission can carry the likelihood when the other states' priors are as tiny.)"""
    m = log_b.amax(-1, keepdim=True)  # (T, B, 1)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    b = (log_b - m).exp_()
    b.masked_fill_(b < torch.finfo(b.dtype).tiny, 0.0)
    return b, m.squeeze(-1)


def _forward_tm(
    log_pi: Tensor, log_A: Tensor, log_b: Tensor, suffix: bool = False
) -> tuple[Tensor, ...]:
    """The scaled forward pass (:func:`_forward_seq` or, for long sequences in small
    batches, the same quantities from the associative scan :func:`_forward_scan`). With
    ``suffix``, a fourth result: the scan's backward messages for :func:`_smooth_scan`
    (None from the sequential pass)."""
    T, B, K = log_b.shape
    if _loops.hmm_ready(log_b):  # the compiled loop (rnnlab[fast]) before the scan
        out = _loops.hmm_forward(log_pi, log_A, log_b)
    elif _use_scan(T, B, K):
        return _forward_scan(log_pi, log_A, log_b, suffix)
    else:
        out = _forward_seq(log_pi, log_A, log_b)
    return (*out, None) if suffix else out


def _forward_seq(log_pi: Tensor, log_A: Tensor, log_b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""Scaled forward pass, time-major, no autograd. ``log_b`` (T, B, K) with 0 at padding.

    Returns the filtered distributions :math:`\hat\alpha_t` (T, B, K), the log normalisers
    :math:`\log c_t + m_t = \log p(x_t \mid x_{1:t-1})` (T, B), and the scaled emissions
    :math:`\tilde b_t / c_t` (T, B, K) that the backward pass needs (Rabiner 1989,
    eqs. 91-92a): :math:`\hat\alpha_t = \tilde b_t \odot (\hat\alpha_{t-1} A) / c_t`.
    """
    T, B, K = log_b.shape
    b, m = _scaled_emissions(log_b)  # (T, B, K), (T, B)
    A = log_A.exp()
    alpha = torch.empty_like(b)  # (T, B, K)
    c = torch.empty(T, B, 1, dtype=b.dtype, device=b.device)
    torch.mul(b[0], log_pi.exp(), out=alpha[0])
    torch.sum(alpha[0], 1, keepdim=True, out=c[0])
    alpha[0].div_(c[0])
    if _use_numpy(b):  # the same loop in numpy: a third of torch's per-call overhead on CPU
        al, An, bn, cn = alpha.numpy(), A.detach().numpy(), b.numpy(), c.numpy()
        with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 marks the fallback
            for t in range(1, T):  # one matmul + three elementwise ops a step
                a_t, c_t = al[t], cn[t]
                np.matmul(al[t - 1], An, out=a_t)
                np.multiply(a_t, bn[t], out=a_t)
                np.add.reduce(a_t, 1, keepdims=True, out=c_t)
                np.divide(a_t, c_t, out=a_t)
    else:
        al, bl, cl = alpha.unbind(0), b.unbind(0), c.unbind(0)  # per-step views made once
        for t in range(1, T):
            a_t = al[t]
            torch.mm(al[t - 1], A, out=a_t)
            a_t.mul_(bl[t])
            torch.sum(a_t, 1, keepdim=True, out=cl[t])
            a_t.div_(cl[t])
    bc = b.div_(c)  # (T, B, K) b_t / c_t, in place
    return alpha, c.log_().squeeze(-1) + m, bc


def _use_numpy(x: Tensor) -> bool:
    """Run the per-step loops in numpy (CPU float32/float64 only, on the same memory)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _backward_tm(log_A: Tensor, bc: Tensor) -> Tensor:
    r"""Scaled backward pass (Rabiner 1989, eq. 92b), time-major:
    :math:`\hat\beta_t = A (\tilde b_{t+1} \odot \hat\beta_{t+1}) / c_{t+1}`,
    :math:`\hat\beta_T = 1`, from ``bc`` :math:`= \tilde b_t / c_t` (T, B, K). Returns
    :math:`\hat\beta` (T, B, K); :math:`\gamma_t \propto \hat\alpha_t \odot \hat\beta_t`.
    """
    T, B, K = bc.shape
    if _loops.hmm_ready(bc):
        return _loops.hmm_backward(log_A, bc)
    At = log_A.exp().t().contiguous()
    beta = torch.empty_like(bc)
    beta[T - 1] = 1.0
    tmp = torch.empty(B, K, dtype=bc.dtype, device=bc.device)
    if _use_numpy(bc):
        be, bcn, Atn, tmpn = beta.numpy(), bc.numpy(), At.detach().numpy(), tmp.numpy()
        with np.errstate(over="ignore", invalid="ignore"):  # overflow marks the fallback
            for t in range(T - 2, -1, -1):  # one elementwise op + one matmul a step
                np.multiply(be[t + 1], bcn[t + 1], out=tmpn)
                np.matmul(tmpn, Atn, out=be[t])
    else:
        bl, bcl = beta.unbind(0), bc.unbind(0)
        for t in range(T - 2, -1, -1):
            torch.mul(bl[t + 1], bcl[t + 1], out=tmp)
            torch.mm(tmp, At, out=bl[t])
    return beta


def _smooth_tm(*args, **kwargs) -> tuple[Tensor, Tensor | None]:
    """Posteriors and expected transitions (:func:`_smooth_seq` or :func:`_smooth_scan`,
    chosen as in :func:`_forward_tm`)."""
    T, B, K = args[1].shape  # bc
    if _loops.hmm_ready(args[1]):
        kwargs.pop("beta", None)
        return _loops.hmm_smooth(*args, **kwargs)
    if _use_scan(T, B, K):
        return _smooth_scan(*args, **kwargs)
    kwargs.pop("beta", None)  # the scan's messages: the sequential pass makes its own
    return _smooth_seq(*args, **kwargs)


# Temporal parallelisation (Sarkka & Garcia-Fernandez 2021; dynamax's parallel HMM
# filter): with M_t = A diag(b_t), the forward messages are prefix products
# alpha_t = (pi * b_1) M_2 ... M_t and the backward messages suffix products
# beta_t = M_{t+1} ... M_T 1. An associative scan computes all of them in log2(T) rounds
# of batched K x K matrix products (Hillis & Steele 1986) instead of T Python steps; each
# partial product is divided by its largest entry, its log kept aside, so nothing under-
# or overflows. Sequences whose messages still vanish go to the exact log-space fallback
# like those of the sequential kernels.

SCAN_MIN_STEPS = 256  # below this the sequential loop is as fast
SCAN_MAX_WORK = 64  # B * K^2 per step above which the batched loop wins


def _use_scan(T: int, B: int, K: int) -> bool:
    """The associative scan for long sequences in small batches."""
    return T >= SCAN_MIN_STEPS and B * K * K <= SCAN_MAX_WORK


def _normalized_product(X: Tensor, Y: Tensor, sx: Tensor, sy: Tensor) -> tuple[Tensor, Tensor]:
    """``X @ Y`` divided by its largest entry, and its log scale ``sx + sy + log max``."""
    P = torch.matmul(X, Y)  # (N, B, K, K)
    mx = P.flatten(-2).amax(-1)  # (N, B)
    P.div_(mx[..., None, None])
    return P, mx.log_().add_(sx).add_(sy)


def _prefix_products(M: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """Prefix products of normalised matrices ``M`` (T, B, K, K) with log scales ``s``
    (T, B), by pairwise reduction (Blelloch 1990; O(T) products in 2 log2(T) rounds):
    the prefixes of the pair products give the odd entries, one more product the even."""
    T = M.shape[0]
    if T == 1:
        return M, s
    h = T // 2
    pairs, sp = _normalized_product(
        M[0 : 2 * h : 2], M[1 : 2 * h : 2], s[0 : 2 * h : 2], s[1 : 2 * h : 2]
    )
    R, sr = _prefix_products(pairs, sp)  # R[i] = M_0 .. M_{2i+1}
    P = torch.empty_like(M)
    sc = torch.empty_like(s)
    P[1 : 2 * h : 2] = R
    sc[1 : 2 * h : 2] = sr
    P[0], sc[0] = M[0], s[0]
    n_even = (T - 1) // 2  # even entries 2, 4, ..: R[i - 1] @ M[2i]
    if n_even:
        E, se = _normalized_product(
            R[:n_even], M[2 : 2 * n_even + 1 : 2], sr[:n_even], s[2 : 2 * n_even + 1 : 2]
        )
        P[2 : 2 * n_even + 1 : 2] = E
        sc[2 : 2 * n_even + 1 : 2] = se
    return P, sc


def _scan_products(M: Tensor, reverse: bool = False) -> tuple[Tensor, Tensor]:
    r"""Prefix products :math:`P_t = M_0 M_1 \cdots M_t` (or, with ``reverse``, suffix
    products :math:`M_t M_{t+1} \cdots M_{T-1}`) of ``M`` (T, B, K, K), as normalised
    matrices (largest entry 1) and their log scales (T, B): :math:`P_t = e^{s_t} \tilde P_t`.
    Suffix products are the transposed prefix products of the reversed, transposed
    sequence."""
    if reverse:
        P, s = _scan_products(M.flip(0).mT)
        return P.flip(0).mT, s.flip(0)
    mx = M.flatten(-2).amax(-1)  # (T, B)
    return _prefix_products(M / mx[..., None, None], mx.log())


def _forward_scan(
    log_pi: Tensor, log_A: Tensor, log_b: Tensor, suffix: bool = False
) -> tuple[Tensor, ...]:
    r""":func:`_forward_seq`'s results from prefix products (see above). With ``suffix``,
    also the backward messages :math:`\beta_t \propto M_{t+1} \cdots M_T 1` (T, B, K), up
    to a factor per step, from the same scan: the suffix products of :math:`M_t` are the
    transposed prefix products of the reversed, transposed sequence, so both run as one
    scan over a batch of 2B (the Python cost of one scan, not two). :math:`M_t` uses
    :math:`\tilde b_t`, not :math:`\tilde b_t / c_t`; the two differ by a scalar per step,
    which the per-step normalisation of :math:`\gamma_t` and :math:`\xi_t` removes."""
    T, B, K = log_b.shape
    b, m = _scaled_emissions(log_b)  # (T, B, K), (T, B)
    A = log_A.exp()
    v0 = b[0] * log_pi.exp()  # (B, K) alpha_1 up to e^{m_1}
    alpha = torch.empty_like(b)
    lp = torch.empty(T, B, dtype=b.dtype, device=b.device)  # log p(x_{1:t}) - sum m
    s0 = v0.sum(-1)
    alpha[0] = v0 / s0.unsqueeze(-1)
    lp[0] = s0.log()
    beta = torch.ones_like(b) if suffix else None  # (T, B, K) up to a factor per step
    if T > 1:
        M = A * b[1:].unsqueeze(-2)  # (T-1, B, K, K) A diag(b_t)
        if suffix:  # prefix and suffix products in one scan over 2B sequences
            P2, sc2 = _scan_products(torch.cat([M, M.flip(0).mT], 1))  # (T-1, 2B, K, K)
            P, sc = P2[:, :B], sc2[:, :B]
            ones = b.new_ones(K)  # sums over K as products: torch's sum over a short
            # last dimension costs ~15 ns an element, a matrix-vector product ~1
            beta[:-1] = (ones @ P2[:, B:]).flip(0)  # (T-1, B, K) Q_{t+1} 1, Q transposed back
        else:
            P, sc = _scan_products(M)
        a = (alpha[0].unsqueeze(1).unsqueeze(0) @ P).squeeze(-2)  # (T-1, B, K)
        tot = a @ b.new_ones(K)  # (T-1, B) a.sum(-1)
        alpha[1:] = a / tot.unsqueeze(-1)
        lp[1:] = tot.log() + sc + lp[0]
    log_c = torch.cat([lp[:1], lp[1:] - lp[:-1]], 0)  # (T, B) log c_t
    bc = b / log_c.exp().unsqueeze(-1)
    if suffix:
        return alpha, log_c + m, bc, beta
    return alpha, log_c + m, bc


def _smooth_scan(
    log_A: Tensor,
    bc: Tensor,
    mask_tm: Tensor | None,
    alpha: Tensor,
    weights: Tensor | None = None,
    per_sequence: bool = True,
    transitions: bool = True,
    beta: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    r""":func:`_smooth_seq`'s results from suffix products: the backward messages are
    needed only up to a factor per step, since :math:`\gamma_t` and :math:`\xi_t` are
    normalised per step (:math:`\sum_{ij} \xi_t(i, j) = 1`). ``beta`` (T, B, K): those
    messages already computed (by :func:`_forward_scan` with ``suffix``)."""
    T, B, K = bc.shape
    A = log_A.exp()
    if beta is None:
        beta = torch.ones_like(bc)  # (T, B, K) up to a factor per step
        if T > 1:
            M = A * bc[1:].unsqueeze(-2)  # (T-1, B, K, K) A diag(bc_t), t = 2..T
            Q, _ = _scan_products(M, reverse=True)  # Q_t = M_t ... M_T
            beta[:-1] = Q @ bc.new_ones(K)  # (T-1, B, K) Q_{t+1} 1
    ones = bc.new_ones(K)  # sums over K as products (see _forward_scan)
    gamma = alpha * beta
    gamma = gamma / (gamma @ ones).unsqueeze(-1)
    if mask_tm is not None:
        gamma = gamma.masked_fill(~mask_tm.unsqueeze(-1), 0.0)
    if not transitions:
        return gamma, None
    if T == 1:
        xi = alpha.new_zeros(B, K, K)
        return gamma, (xi if per_sequence else xi.sum(0))
    u = bc[1:] * beta[1:]  # (T-1, B, K)
    # xi_t(i, j) = alpha_{t-1}(i) A_ij u_t(j) / z_t, z_t = (alpha_{t-1} A) . u_t
    z = (torch.matmul(alpha[:-1], A) * u) @ ones  # (T-1, B)
    w = z.reciprocal()
    if mask_tm is not None:
        w = w.masked_fill(~mask_tm[1:], 0.0)
    if weights is not None:
        w = w * weights
    aw = alpha[:-1] * w.unsqueeze(-1)  # (T-1, B, K)
    if per_sequence:
        xi = torch.bmm(aw.permute(1, 2, 0), u.transpose(0, 1)) * A  # (B, K, K)
    else:
        xi = (aw.reshape(-1, K).t() @ u.reshape(-1, K)) * A  # (K, K)
    return gamma, xi


def _smooth_seq(
    log_A: Tensor,
    bc: Tensor,
    mask_tm: Tensor | None,
    alpha: Tensor,
    weights: Tensor | None = None,
    per_sequence: bool = True,
    transitions: bool = True,
) -> tuple[Tensor, Tensor | None]:
    r"""Posteriors :math:`\gamma` (T, B, K) and expected transition counts, per sequence
    (B, K, K) or, with ``per_sequence=False``, summed over sequences with ``weights`` (B,)
    (K, K). :math:`\xi_t(i,j) = \hat\alpha_{t-1}(i) A_{ij} \tilde b_t(j) \hat\beta_t(j) / c_t`
    (Rabiner 1989, eq. 37 with the scaled variables). ``bc`` and ``alpha`` are not
    modified."""
    beta = _backward_tm(log_A, bc)
    u = None
    if transitions:
        u = torch.mul(bc[1:], beta[1:])  # (T-1, B, K)
        # per-sequence normaliser sum_k alpha_0 beta_0 (1 up to rounding)
        z = (alpha[0] * beta[0]).sum(-1)  # (B,)
    gamma = beta.mul_(alpha)  # (T, B, K), in place
    gamma.div_(gamma.sum(-1, keepdim=True))  # sums to 1 analytically; remove rounding
    if mask_tm is not None:
        gamma.masked_fill_(~mask_tm.unsqueeze(-1), 0.0)
    if not transitions:
        return gamma, None
    scale = z.reciprocal() if weights is None else weights / z  # (B,)
    u.mul_(scale[:, None])
    if mask_tm is not None:
        u.masked_fill_(~mask_tm[1:].unsqueeze(-1), 0.0)
    A = log_A.exp()
    if per_sequence:
        xi = torch.bmm(alpha[:-1].permute(1, 2, 0), u.transpose(0, 1)) * A  # (B, K, K)
    else:
        T1, B, K = u.shape
        xi = (alpha[:-1].reshape(T1 * B, K).t() @ u.reshape(T1 * B, K)) * A  # (K, K)
    return gamma, xi


# Exact log-space fallback. The scaled recursions above are exact unless the scaled
# emissions of every state that the filter can reach underflow to zero (an outlier that
# only an unreachable state explains: float32 beyond about 13 sigma) or the scaled
# backward messages of an unreachable state overflow. Those sequences, and those only,
# are detected after the fast pass (a non-finite normaliser or posterior) and recomputed
# here with log-sum-exp messages, which neither underflow nor overflow. A sequence that
# is impossible under every state gets log-likelihood -inf and an all-zero posterior.


def _log_forward_tm(log_pi: Tensor, log_A: Tensor, log_b: Tensor) -> Tensor:
    r"""Unnormalised :math:`\log \alpha_t(k) = \log p(x_{1:t}, z_t = k)` (T, B, K) by
    :math:`\log \alpha_t(j) = \log b_t(j) + \mathrm{LSE}_i(\log \alpha_{t-1}(i) +
    \log A_{ij})` (Rabiner 1989, eq. 20 in log space). ``log_b`` (T, B, K), 0 at padding."""
    la = torch.empty_like(log_b)
    la[0] = log_pi + log_b[0]
    for t in range(1, log_b.shape[0]):
        la[t] = torch.logsumexp(la[t - 1].unsqueeze(-1) + log_A, dim=1) + log_b[t]
    return la


def _log_normalizers(log_alpha: Tensor) -> Tensor:
    r""":math:`\log p(x_t \mid x_{1:t-1})` (T, B) from unnormalised :math:`\log\alpha`: the
    step that first makes the sequence impossible gets -inf, later steps 0 (no NaN)."""
    lse = torch.logsumexp(log_alpha, -1)  # (T, B) log p(x_{1:t})
    prev = torch.cat([torch.zeros_like(lse[:1]), lse[:-1]], 0)
    out = lse - torch.where(torch.isfinite(prev), prev, torch.zeros_like(prev))
    return torch.where(torch.isfinite(prev), out, torch.zeros_like(out))


def _log_smooth_tm(
    log_A: Tensor,
    log_b: Tensor,
    log_alpha: Tensor,
    mask_tm: Tensor | None,
    ll: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Log-space backward pass: :math:`\log \beta_t(i) = \mathrm{LSE}_j(\log A_{ij} +
    \log b_{t+1}(j) + \log \beta_{t+1}(j))` (Rabiner 1989, eq. 25), posteriors
    :math:`\gamma_t` (T, B, K), per-sequence expected transitions (B, K, K), the
    log-likelihood (B,) and :math:`\log \beta` (T, B, K). Impossible sequences
    (log-likelihood -inf) get zero posteriors and counts."""
    T, B, K = log_b.shape
    lb = torch.empty_like(log_b)
    lb[T - 1] = 0.0
    for t in range(T - 2, -1, -1):
        lb[t] = torch.logsumexp(log_A + (log_b[t + 1] + lb[t + 1]).unsqueeze(-2), dim=-1)
    if ll is None:  # log p(x) = LSE_k log alpha at each sequence's last step
        last = log_alpha[-1]
        if mask_tm is not None:
            idx = (mask_tm.sum(0).long() - 1).clamp_min(0).view(1, B, 1).expand(1, B, K)
            last = log_alpha.gather(0, idx).squeeze(0)  # (B, K)
        ll = torch.logsumexp(last, -1)  # (B,)
    ok = torch.isfinite(ll)
    llc = torch.where(ok, ll, torch.zeros_like(ll))
    gamma = (log_alpha + lb - llc[:, None]).exp()
    gamma = torch.where(ok[:, None] & torch.isfinite(gamma), gamma, torch.zeros_like(gamma))
    # xi_t(i, j) = alpha_{t-1}(i) A_ij b_t(j) beta_t(j) / p(x), summed over valid t
    lx = (
        log_alpha[:-1].unsqueeze(-1)
        + log_A
        + (log_b[1:] + lb[1:]).unsqueeze(-2)
        - llc[:, None, None]
    )  # (T-1, B, K, K)
    xi = lx.exp()
    if mask_tm is not None:
        xi = xi * mask_tm[1:, :, None, None]
    xi = xi.sum(0)
    xi = torch.where(ok[:, None, None], xi, torch.zeros_like(xi))
    if mask_tm is not None:
        gamma = gamma * mask_tm.unsqueeze(-1)
    return gamma, xi, ll, lb


def _forward(
    log_pi: Tensor, log_A: Tensor, log_b: Tensor, suffix: bool = False
) -> tuple[Tensor, ...]:
    r"""The scaled forward pass with the exact fallback: filtered :math:`\hat\alpha`
    (T, B, K), log normalisers (T, B), the scaled emissions for the backward pass
    (T, B, K), and ``bad`` (B,) bool: the sequences recomputed in log space (their
    filtered rows come from there, zero where impossible; their scaled emissions are 0).
    With ``suffix``, a fifth result: the scan's backward messages (or None), to pass to
    :func:`_smooth` as ``beta``."""
    alpha, log_norm, bc, *beta = _forward_tm(log_pi, log_A, log_b, suffix)
    bad = ~torch.isfinite(log_norm).all(0)  # (B,)
    if bool(bad.any()):
        la = _log_forward_tm(log_pi, log_A, log_b[:, bad])
        filt = torch.softmax(la, -1)
        alpha[:, bad] = torch.where(torch.isfinite(filt), filt, torch.zeros_like(filt))
        log_norm[:, bad] = _log_normalizers(la)
        bc[:, bad] = 0.0
    return (alpha, log_norm, bc, bad, *beta)


def _smooth(
    log_A: Tensor,
    log_b: Tensor,
    alpha: Tensor,
    bc: Tensor,
    mask_tm: Tensor | None,
    bad: Tensor,
    log_alpha_of,
    weights: Tensor | None = None,
    per_sequence: bool = True,
    transitions: bool = True,
    beta: Tensor | None = None,
) -> tuple[Tensor, Tensor | None]:
    """:func:`_smooth_tm` with the exact fallback: sequences flagged ``bad`` by the forward
    pass, or whose scaled backward messages overflow, are smoothed in log space.
    ``log_alpha_of(rows)`` gives their unnormalised log alphas (T, b, K). ``beta``: the
    backward messages of ``_forward(..., suffix=True)`` when it computed them, else None."""
    if not bool(bad.any()):
        gamma, xi = _smooth_tm(
            log_A, bc, mask_tm, alpha, weights, per_sequence, transitions, beta=beta
        )
        ok = bool(torch.isfinite(gamma).all()) and (xi is None or bool(torch.isfinite(xi).all()))
        if ok:
            return gamma, xi
        if per_sequence or not transitions:
            bad = ~torch.isfinite(gamma).flatten(start_dim=2).all(-1).all(0)
            if xi is not None:
                bad |= ~torch.isfinite(xi).flatten(1).all(-1)
        else:  # locate the rows from the per-sequence counts
            g1, x1 = _smooth_tm(log_A, bc, mask_tm, alpha, None, True, True, beta=beta)
            bad = ~(torch.isfinite(g1).all(-1).all(0) & torch.isfinite(x1).flatten(1).all(-1))
    T, B, K = alpha.shape
    good = ~bad
    gamma = alpha.new_zeros(T, B, K)
    xi = alpha.new_zeros(B, K, K) if (per_sequence and transitions) else None
    xi_total = alpha.new_zeros(K, K) if (transitions and not per_sequence) else None
    if bool(good.any()):
        mg = None if mask_tm is None else mask_tm[:, good]
        wg = None if weights is None else weights[good]
        bg = None if beta is None else beta[:, good]
        g, x = _smooth_tm(
            log_A, bc[:, good], mg, alpha[:, good], wg, per_sequence, transitions, beta=bg
        )
        gamma[:, good] = g
        if xi is not None:
            xi[good] = x
        elif xi_total is not None:
            xi_total += x
    mb = None if mask_tm is None else mask_tm[:, bad].to(alpha.dtype)
    g, x, _, _ = _log_smooth_tm(log_A, log_b[:, bad], log_alpha_of(bad), mb)
    gamma[:, bad] = g
    if xi is not None:
        xi[bad] = x
    elif xi_total is not None:
        w = None if weights is None else weights[bad]
        xi_total += x.sum(0) if w is None else (x * w[:, None, None]).sum(0)
    return gamma, (xi if xi is not None else xi_total)


def _prepare_log_b(log_emission: Tensor, lengths: Tensor | None) -> tuple[Tensor, Tensor]:
    """Time-major log emissions with 0 at padding, and the (T, B) mask."""
    B, T, _ = log_emission.shape
    mask = _mask_from_lengths(lengths, B, T, log_emission.device)  # (B, T) or None
    log_b = _masked(mask, log_emission).transpose(0, 1).contiguous()  # (T, B, K)
    return log_b, None if mask is None else mask.t()  # (T, B)


def _check_kernel_inputs(
    log_initial: Tensor, log_transition: Tensor, log_emission: Tensor, lengths
) -> Tensor | None:
    check_tensor("log_emission", log_emission)
    if log_emission.dim() != 3:
        raise InputError(
            f"log_emission: expected a (B, T, K) tensor, received shape {tuple(log_emission.shape)}"
        )
    B, T, K = log_emission.shape
    if T < 1:
        raise InputError("log_emission: expected at least one time step, received T = 0")
    if tuple(log_transition.shape) != (K, K):
        raise InputError(
            f"log_transition: expected shape ({K}, {K}), received {tuple(log_transition.shape)}"
        )
    if log_initial is not None and tuple(log_initial.shape) != (K,):
        raise InputError(f"log_initial: expected shape ({K},), received {tuple(log_initial.shape)}")
    if lengths is None:
        return None
    return check_lengths(lengths, B, T, log_emission.device)


def forward_filter(
    log_initial: Tensor, log_transition: Tensor, log_emission: Tensor, lengths=None
) -> ForwardResult:
    r"""Forward pass of an HMM, batched and lengths-aware.

    Args:
        log_initial: (K,) :math:`\log \pi`.
        log_transition: (K, K) :math:`\log A` (rows must be normalised).
        log_emission: (B, T, K) :math:`\log p(x_t \mid z_t = k)`.
        lengths: optional (B,) lengths; positions past them are ignored.

    Differentiable only through :class:`HMM` (``HMM.forward``); this kernel runs without
    autograd.
    """
    lengths = _check_kernel_inputs(log_initial, log_transition, log_emission, lengths)
    with torch.no_grad():
        log_b, mask_tm = _prepare_log_b(log_emission, lengths)
        alpha, log_norm, _, _ = _forward(log_initial, log_transition, log_b)
        log_norm = _masked(mask_tm, log_norm)  # (T, B)
        cum = log_norm.cumsum(0)  # (T, B) log p(x_{1:t})
        log_alpha = _masked(mask_tm, alpha.log() + cum.unsqueeze(-1))
        filtered = _masked(mask_tm, alpha)
        return ForwardResult(
            log_alpha=log_alpha.transpose(0, 1),
            log_likelihood=log_norm.sum(0),
            filtered=filtered.transpose(0, 1),
            log_normalizers=log_norm.t(),
        )


def backward_smoother(
    log_transition: Tensor, log_emission: Tensor, filter_result: ForwardResult, lengths=None
) -> SmootherResult:
    r"""Backward pass given :func:`forward_filter`'s result: posterior marginals
    :math:`\gamma_t`, expected transition counts and :math:`\log \beta_t` (see
    :class:`SmootherResult`). Same arguments and conventions as :func:`forward_filter`."""
    lengths = _check_kernel_inputs(None, log_transition, log_emission, lengths)
    with torch.no_grad():
        log_b, mask_tm = _prepare_log_b(log_emission, lengths)
        alpha = filter_result.filtered.transpose(0, 1).contiguous()  # (T, B, K)
        log_norm = filter_result.log_normalizers.t().contiguous()  # (T, B)
        ll = filter_result.log_likelihood
        bc = (log_b - log_norm.unsqueeze(-1)).exp_()  # (T, B, K) b_t / p(x_t | x_{1:t-1})
        bc.masked_fill_(bc < torch.finfo(bc.dtype).tiny, 0.0)
        bad = ~(torch.isfinite(bc).flatten(start_dim=2).all(-1).all(0) & torch.isfinite(ll))
        bc[:, bad] = 0.0
        log_alpha = filter_result.log_alpha.transpose(0, 1)  # (T, B, K)
        gamma, xi = _smooth(
            log_transition, log_b, alpha, bc, mask_tm, bad, lambda rows: log_alpha[:, rows]
        )
        beta = _backward_tm(log_transition, bc)
        # log beta_t = log beta_hat_t + sum_{s > t} log c_s
        rest = log_norm.sum(0, keepdim=True) - log_norm.cumsum(0)  # (T, B)
        log_beta = beta.log() + rest.unsqueeze(-1)
        redo = bad | ~torch.isfinite(gamma).flatten(start_dim=2).all(-1).all(0)
        redo |= ~torch.isfinite(log_beta).flatten(start_dim=2).all(-1).all(0) & torch.isfinite(ll)
        if bool(redo.any()):  # exact log-space messages for those sequences
            mb = None if mask_tm is None else mask_tm[:, redo].to(log_b.dtype)
            _, _, _, lb = _log_smooth_tm(
                log_transition, log_b[:, redo], log_alpha[:, redo], mb, ll[redo]
            )
            log_beta[:, redo] = lb
        log_beta = _masked(mask_tm, log_beta)
        return SmootherResult(
            posterior=gamma.transpose(0, 1),
            expected_transitions=xi,
            log_beta=log_beta.transpose(0, 1),
        )


def viterbi(
    log_initial: Tensor, log_transition: Tensor, log_emission: Tensor, lengths=None
) -> ViterbiResult:
    r"""Most probable state paths in log space (Rabiner 1989, eqs. 32-35), batched:
    :math:`\delta_t(j) = \max_i [\delta_{t-1}(i) + \log A_{ij}] + \log b_t(j)`, then
    backtracking through the stored arg-maxes. Ties go to the lowest state index."""
    lengths = _check_kernel_inputs(log_initial, log_transition, log_emission, lengths)
    with torch.no_grad():
        B, T, K = log_emission.shape
        log_b, mask_tm = _prepare_log_b(log_emission, lengths)
        if _loops.hmm_ready(log_b):
            return ViterbiResult(*_loops.hmm_viterbi(log_initial, log_transition, log_b, lengths))
        delta = torch.empty_like(log_b)  # (T, B, K)
        psi = torch.zeros(T, B, K, dtype=torch.long, device=log_b.device)
        torch.add(log_initial, log_b[0], out=delta[0])
        scores = torch.empty(B, K, K, dtype=log_b.dtype, device=log_b.device)
        for t in range(1, T):
            torch.add(delta[t - 1].unsqueeze(-1), log_transition, out=scores)  # (B, K, K)
            torch.max(scores, dim=1, out=(delta[t], psi[t]))
            delta[t].add_(log_b[t])
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long, device=log_b.device)
        last = delta.gather(0, (lengths - 1).view(1, B, 1).expand(1, B, K)).squeeze(0)  # (B, K)
        log_probs, state = last.max(-1)
        paths = torch.empty(T, B, dtype=torch.long, device=log_b.device)
        paths[T - 1] = state
        for t in range(T - 1, 0, -1):
            prev = psi[t].gather(1, state.unsqueeze(1)).squeeze(1)
            state = torch.where(t < lengths, prev, state)  # past the length: stay
            paths[t - 1] = state
        paths = _masked(None if mask_tm is None else mask_tm.t(), paths.t())
        return ViterbiResult(paths=paths, log_probs=log_probs)


class _LogLikelihood(torch.autograd.Function):
    r"""Log-likelihood (B,) of time-major padded emissions with the exact gradient from one
    backward pass (Fisher's identity): :math:`\partial \log p / \partial \log b_t(k) =
    \gamma_t(k)`, :math:`\partial \log p / \partial \log A_{ij} = \sum_t \xi_t(i, j)`,
    :math:`\partial \log p / \partial \log \pi_k = \gamma_1(k)`."""

    @staticmethod
    def forward(ctx, log_pi, log_A, log_b, mask_tm):
        alpha, log_norm, bc, bad = _forward(log_pi, log_A, log_b)
        ctx.save_for_backward(log_pi, log_A, log_b, bc, mask_tm, alpha, bad)
        return _masked(mask_tm, log_norm).sum(0)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        log_pi, log_A, log_b, bc, mask_tm, alpha, bad = ctx.saved_tensors
        gamma, xi = _smooth(
            log_A,
            log_b,
            alpha,
            bc,
            mask_tm,
            bad,
            lambda rows: _log_forward_tm(log_pi, log_A, log_b[:, rows]),
            weights=grad,
            per_sequence=False,
        )
        gamma.mul_(grad[:, None])  # (T, B, K)
        return gamma[0].sum(0), xi, gamma, None


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------

_EMISSIONS = tuple(FAMILIES)  # categorical, gaussian, gmm, poisson, multinomial
_COVARIANCES = COVARIANCES
_FIXABLE = ("initial_probs", "transition_matrix", "emissions")
_SIZES = ("num_symbols", "obs_dim", "num_mixtures", "n_trials")  # the components' arguments


def _flatten_emission_keys(module, state_dict, prefix, local_metadata) -> None:
    """``state_dict`` post-hook: the emission component's entries under their own names
    (``loc``, not ``emissions.loc``), the keys the HMM has always saved."""
    inner = prefix + "emissions."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner) :]] = state_dict.pop(key)


def _nest_emission_keys(module, state_dict, prefix, *args) -> None:
    """``load_state_dict`` pre-hook: flat emission keys (as saved) go to the component;
    keys already under ``emissions.`` load as they are."""
    emissions = module._modules["emissions"]
    for name in (*emissions._parameters, *emissions._buffers):
        if prefix + name in state_dict:
            state_dict[prefix + "emissions." + name] = state_dict.pop(prefix + name)


class HMM(nn.Module):
    r"""Hidden Markov model with categorical, multinomial, Gaussian, Gaussian-mixture or
    Poisson emissions.

    .. math::
        z_1 \sim \mathrm{Cat}(\pi), \quad z_t \mid z_{t-1} \sim \mathrm{Cat}(A_{z_{t-1}, :}),
        \quad x_t \mid z_t = k \sim p_k(x),

        p_k(x) = B_{k x} \;\text{(categorical)}, \quad
        \frac{n!}{\prod_m x_m!} \prod_m B_{km}^{x_m} \;\text{(multinomial)}, \quad
        \mathcal N(x \mid \mu_k, \Sigma_k) \;\text{(gaussian)}, \quad
        \sum_c w_{kc} \mathcal N(x \mid \mu_{kc}, \Sigma_{kc}) \;\text{(gmm)}, \quad
        \prod_d \mathrm{Poisson}(x_d \mid \lambda_{kd}) \;\text{(poisson)},

        \log p(x_{1:T}) = \log \sum_{z_{1:T}} \pi_{z_1} p_{z_1}(x_1)
            \prod_{t=2}^T A_{z_{t-1} z_t} p_{z_t}(x_t).

    ==============  ========================================  =====================
    symbol          meaning                                   attribute
    ==============  ========================================  =====================
    K               number of hidden states                   ``num_states``
    M               number of symbols (categorical, multin.)  ``num_symbols``
    n               trials per step (multinomial)             ``n_trials``
    D               observation dimension (gaussian, gmm,     ``obs_dim``
                    poisson)
    C               mixture components per state (gmm)        ``num_mixtures``
    :math:`\pi`     initial distribution (K,)                 ``initial_probs``
    :math:`A`       transition matrix (K, K), rows sum to 1   ``transition_matrix``
    :math:`B`       emission probabilities (K, M)             ``emission_probs``
    :math:`\mu`     means (K, D) or (K, C, D)                 ``means``
    :math:`\Sigma`  covariances (K, D, D) or (K, C, D, D)     ``covs``
    :math:`w`       mixture weights (K, C)                    ``weights``
    :math:`\lambda` Poisson rates (K, D)                      ``rates``
    ==============  ========================================  =====================

    The emission family is a component, ``self.emissions`` (one class per family in
    :mod:`rnnlab.classic.emissions`, each with its log-density, M-step, initialisation and
    sampling); the model owns the initial and transition distributions, inference and
    EM. The emission parameters are in ``state_dict`` under their own names (``loc``,
    ``emission_logits``, ...), as before the components; ``named_parameters`` lists them
    as ``emissions.loc``, .... ``load_state_dict`` takes either spelling.

    Covariances (``covariance=``): ``"full"``, ``"diag"``, ``"spherical"`` (one variance
    per state) or ``"tied"`` (one full matrix shared by all states; gaussian only).

    Parameters are stored unconstrained (logits for the probabilities, a Cholesky factor
    with log-diagonal for full covariances, log standard deviations for diagonal ones), so
    :meth:`forward` (the total log-likelihood) can be maximised by gradient descent as well
    as by :meth:`fit` (Baum-Welch). Its gradient comes from one backward pass (the
    gradient of a log-likelihood is the expected sufficient statistics); it is
    once-differentiable.

    Observations: categorical ``x`` is a LongTensor (B, T) or (T,); Gaussian and GMM ``x``
    is float (B, T, D) or (T, D) with the model's dtype; Poisson ``x`` holds counts
    (integer or float tensors); multinomial ``x`` holds counts over the M symbols,
    (B, T, M) or (T, M), non-negative integers (integer or float tensors) summing to
    ``n_trials`` at every step when that is given (else each step's total is its number
    of trials, as hmmlearn's ``MultinomialHMM``). Numpy arrays and lists are converted;
    hmmlearn's concatenated layout with ``lengths`` is accepted. ``lengths`` (B,) marks
    padding; values past a length are ignored (any value, even NaN or -1). Unbatched input
    gives unbatched output.
    """

    def __init__(
        self,
        num_states: int,
        emission: str = "categorical",
        num_symbols: int | None = None,
        obs_dim: int | None = None,
        covariance: str = "full",
        num_mixtures: int | None = None,
        n_trials: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        K = check_positive_int("num_states", num_states)
        if emission not in _EMISSIONS:
            raise InputError(f"emission: expected one of {_EMISSIONS}, received {emission!r}")
        if covariance not in _COVARIANCES:
            raise InputError(f"covariance: expected one of {_COVARIANCES}, received {covariance!r}")
        self.num_states = K
        self.emission = emission
        self.covariance = covariance
        kw = {"dtype": dtype or torch.get_default_dtype(), "device": device}
        if not kw["dtype"].is_floating_point:
            raise InputTypeError(f"dtype: expected a floating-point dtype, received {dtype}")
        self.initial_logits = nn.Parameter(torch.zeros(K, **kw))
        self.transition_logits = nn.Parameter(torch.randn(K, K, **kw) * 0.1)
        family = FAMILIES[emission]
        sizes = dict(zip(_SIZES, (num_symbols, obs_dim, num_mixtures, n_trials)))
        unused = {k: v for k, v in sizes.items() if v is not None and k not in family.arguments}
        if unused:
            got = ", ".join(f"{k}={v!r}" for k, v in unused.items())
            raise InputError(
                f"{' / '.join(unused)}: not used by {emission} emissions, received {got}"
            )
        args = {
            k: v for k, v in {**sizes, "covariance": covariance}.items() if k in family.arguments
        }
        self.emissions = family(K, **args, **kw)
        self.register_state_dict_post_hook(_flatten_emission_keys)
        self.register_load_state_dict_pre_hook(_nest_emission_keys)
        self._has_params = False  # True after from_params or fit: fit(init="auto") keeps them
        self.history_: list[float] = []
        self.converged_ = False
        self.n_iter_ = 0

    # ---------------------------------------------------------------- parameters

    @property
    def dtype(self) -> torch.dtype:
        return self.initial_logits.dtype

    @property
    def device(self) -> torch.device:
        return self.initial_logits.device

    @property
    def num_symbols(self) -> int | None:
        """M, the number of symbols (categorical, multinomial; None until fit infers it)."""
        return getattr(self.emissions, "num_symbols", None)

    @property
    def obs_dim(self) -> int | None:
        """D, the observation dimension (gaussian, gmm, poisson)."""
        return getattr(self.emissions, "obs_dim", None)

    @property
    def num_mixtures(self) -> int | None:
        """C, the mixture components per state (gmm)."""
        return getattr(self.emissions, "num_mixtures", None)

    @property
    def n_trials(self) -> int | None:
        """n, the trials per step (multinomial; None: each step's own total)."""
        return getattr(self.emissions, "n_trials", None)

    @property
    def log_initial_probs(self) -> Tensor:
        r""":math:`\log \pi` (K,)."""
        return torch.log_softmax(self.initial_logits, -1)

    @property
    def log_transition_matrix(self) -> Tensor:
        r""":math:`\log A` (K, K)."""
        return torch.log_softmax(self.transition_logits, -1)

    @property
    def initial_probs(self) -> Tensor:
        r""":math:`\pi` (K,)."""
        return torch.softmax(self.initial_logits, -1)

    @property
    def transition_matrix(self) -> Tensor:
        r""":math:`A` (K, K), :math:`A_{ij} = p(z_t = j \mid z_{t-1} = i)`."""
        return torch.softmax(self.transition_logits, -1)

    @property
    def emission_probs(self) -> Tensor:
        r""":math:`B` (K, M), :math:`B_{km} = p(x_t = m \mid z_t = k)` (categorical) or the
        probability of symbol m in each trial (multinomial)."""
        return self._emission_attribute("emission_probs")

    @property
    def means(self) -> Tensor:
        r""":math:`\mu` (K, D), or (K, C, D) for gmm."""
        return self._emission_attribute("means")

    @property
    def scale_tril(self) -> Tensor:
        r"""Lower Cholesky factors :math:`L` of the covariances, (K, D, D) or (K, C, D, D)."""
        return self._emission_attribute("scale_tril")

    @property
    def variances(self) -> Tensor:
        r"""Diagonal of :math:`\Sigma`, (K, D) or (K, C, D)."""
        return self._emission_attribute("variances")

    @property
    def covs(self) -> Tensor:
        r""":math:`\Sigma = L L^\top` (K, D, D), or (K, C, D, D) for gmm; diagonal matrices
        when ``covariance='diag'``."""
        return self._emission_attribute("covs")

    @property
    def weights(self) -> Tensor:
        r"""Mixture weights :math:`w` (K, C) (gmm)."""
        return self._emission_attribute("weights")

    @property
    def rates(self) -> Tensor:
        r"""Poisson rates :math:`\lambda` (K, D) (poisson)."""
        return self._emission_attribute("rates")

    def _emission_attribute(self, name: str):
        if not hasattr(type(self.emissions), name):
            raise _not_for(self.emission, name)
        return getattr(self.emissions, name)

    def __getattr__(self, name: str):
        # the component's raw parameters under the names they had on the model (``loc``,
        # ``emission_logits``, ...), and errors that say which emissions have an attribute
        try:
            return super().__getattr__(name)
        except AttributeError:
            emissions = self.__dict__.get("_modules", {}).get("emissions")
            if emissions is not None and name in emissions._parameters:
                return emissions._parameters[name]
            if emissions is not None and any(hasattr(c, name) for c in FAMILIES.values()):
                raise _not_for(self.emission, name) from None
            raise

    @classmethod
    def from_params(
        cls,
        *,
        initial_probs,
        transition_matrix,
        emission_probs=None,
        means=None,
        covs=None,
        weights=None,
        rates=None,
        covariance: str | None = None,
        emission: str | None = None,
        n_trials: int | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> HMM:
        """An HMM with the given parameters (validated).

        Categorical: ``emission_probs`` (K, M). Multinomial: ``emission="multinomial"``
        with ``emission_probs`` (K, M) and optionally ``n_trials``. Gaussian: ``means``
        (K, D) and ``covs`` (K, D, D) (full) or (K, D) (diagonal variances). GMM: also
        ``weights`` (K, C), with ``means`` (K, C, D) and ``covs`` (K, C, D, D) or
        (K, C, D). Poisson: ``rates`` (K, D), positive. ``emission`` defaults to what the
        arguments given say (``emission_probs``: categorical); ``covariance`` to what the
        shape of ``covs`` says. ``dtype`` defaults to the dtype of the given float tensors,
        else torch's default.
        """
        if dtype is None:  # the first float array given (tensor or numpy), else the default
            dtype = torch.get_default_dtype()
            for v in (transition_matrix, means, initial_probs):
                if isinstance(v, (Tensor, np.ndarray)) and v.dtype in (
                    torch.float32,
                    torch.float64,
                    np.float32,
                    np.float64,
                ):
                    dtype = torch.as_tensor(v).dtype
                    break
        kw = {"dtype": dtype, "device": device}

        def as_t(name, v):
            try:
                return torch.as_tensor(v, **kw).clone()
            except (TypeError, ValueError, RuntimeError) as e:
                raise InputTypeError(f"{name}: expected a tensor, received {describe(v)}") from e

        pi = as_t("initial_probs", initial_probs)
        A = as_t("transition_matrix", transition_matrix)
        if pi.dim() != 1:
            raise InputError(f"initial_probs: expected shape (K,), received {tuple(pi.shape)}")
        K = pi.shape[0]
        if tuple(A.shape) != (K, K):
            raise InputError(
                f"transition_matrix: expected shape ({K}, {K}) (K from initial_probs), "
                f"received {tuple(A.shape)}"
            )
        check_stochastic("initial_probs", pi)
        check_stochastic("transition_matrix", A)
        # choose the component from the arguments given
        gaussian = means is not None or covs is not None or weights is not None
        if emission_probs is not None and gaussian:
            raise InputError("emission_probs: give either emission_probs or means/covs")
        if rates is not None and gaussian:
            raise InputError("rates: give either rates (poisson) or means/covs")
        if emission is None:
            emission = (
                "categorical"
                if emission_probs is not None
                else "poisson"
                if rates is not None
                else "gmm"
                if weights is not None
                else "gaussian"
            )
        if emission not in _EMISSIONS:
            raise InputError(f"emission: expected one of {_EMISSIONS}, received {emission!r}")
        family = FAMILIES[emission]
        given = {
            "emission_probs": emission_probs,
            "means": means,
            "covs": covs,
            "weights": weights,
            "rates": rates,
            "covariance": covariance,
            "n_trials": n_trials,
        }
        unused = [k for k, v in given.items() if v is not None and k not in family.param_arguments]
        if unused:
            raise InputError(
                f"{' / '.join(unused)}: not used by {emission} emissions, received "
                + ", ".join(f"{k}={describe(given[k])}" for k in unused)
            )
        ctor, values = family.check_params(K, as_t, **{k: given[k] for k in family.param_arguments})
        model = cls(K, emission, **ctor, **kw)
        with torch.no_grad():
            model.emissions.set_params(**values)
            model.initial_logits.copy_(pi.log())
            model.transition_logits.copy_(A.log())
        model._has_params = True
        return model

    # ---------------------------------------------------------------- inputs

    def _prepare(
        self, x, lengths, name: str = "x", sizing: bool = False
    ) -> tuple[Tensor, Tensor | None, bool]:
        """Validate ``x`` and ``lengths``; return batched x, lengths (or None), unbatched.

        Tensors must have the model's dtype (symbols: any integer dtype); numpy arrays and
        lists are converted to it. hmmlearn's concatenated layout (all sequences stacked
        along time, ``lengths`` summing to the number of rows) is split into a padded
        batch; a ``(N, 1)`` column of symbols without ``lengths`` is refused (it would
        read as N sequences of length 1). ``sizing``: the sizes that ``fit`` infers are
        not known yet (the values are not checked against them)."""
        em = self.emissions
        symbols = em.event_dims == 0  # one symbol a step, not a vector
        x = _as_input(name, x, symbols, self.dtype, self.device)
        if not em.sized and not sizing:
            raise InputError(
                "num_symbols: not known yet (HMM made with num_symbols=None); fit the model "
                "first, which infers it from the data, or pass num_symbols"
            )
        if lengths is not None:
            concatenated = x.dim() == 1 + em.event_dims or (
                symbols and x.dim() == 2 and x.shape[1] == 1
            )
            if concatenated:
                lens = torch.as_tensor(np.asarray(lengths)).reshape(-1)
                if symbols and x.dim() == 2 and lens.numel() == x.shape[0]:
                    concatenated = False  # (B, 1): B sequences of length 1, as lengths says
                elif int(lens.sum()) == x.shape[0] and not lens.dtype.is_floating_point:
                    column = symbols and x.dim() == 2
                    x, lengths = concatenated_to_batch(x[:, 0] if column else x, lens)
                else:
                    raise InputError(
                        f"lengths: with {name} of shape {tuple(x.shape)} (one sequence, or "
                        f"hmmlearn's concatenated layout) expected lengths summing to "
                        f"{x.shape[0]}, received {lens.tolist()[:10]}"
                    )
        elif symbols and x.dim() == 2 and x.shape[1] == 1 and x.shape[0] > 1:
            raise InputError(
                f"{name}: shape {tuple(x.shape)} would read as {x.shape[0]} sequences of "
                f"length 1; pass one sequence as a (T,) vector (x[:, 0]), a batch as (B, T), "
                "or hmmlearn's concatenated column with lengths=[T_1, T_2, ...]"
            )
        x = em.check_input(name, x, self.dtype)
        unbatched = x.dim() == 1 + em.event_dims
        if x.device != self.device:
            raise InputTypeError(f"{name}: expected device {self.device}, received {x.device}")
        if unbatched:
            x = x.unsqueeze(0)
            if lengths is not None:
                raise InputError(
                    f"lengths: not used with an unbatched {name}, received {describe(lengths)}"
                )
        B, T = x.shape[:2]
        if T < 1:
            raise InputError(f"{name}: expected at least one time step, received T = 0")
        if lengths is not None:
            lengths = check_lengths(lengths, B, T, x.device)
            if bool((lengths == T).all()):
                lengths = None  # no padding: the fast path
        em.check_values(name, x, _mask_from_lengths(lengths, B, T, x.device))
        return x, lengths, unbatched

    def _emission_log_prob(self, x: Tensor, mask: Tensor | None, components: bool = False):
        """log p(x_t | z_t = k) (B, T, K), with padding replaced by a harmless value; with
        ``components``, also what the M-step needs of it (the component's
        ``log_prob_terms``)."""
        xs = _masked(mask, x)
        if components:
            return self.emissions.log_prob_terms(xs)
        return self.emissions.log_prob(xs)

    # ---------------------------------------------------------------- inference

    def forward(self, x: Tensor, lengths=None) -> Tensor:
        """Total log-likelihood :math:`\\sum_b \\log p(x^{(b)})` (differentiable, 0-d)."""
        return self.log_likelihood(x, lengths).sum()

    def log_likelihood(self, x: Tensor, lengths=None) -> Tensor:
        """Log-likelihood of each sequence, (B,) (0-d for unbatched x); differentiable."""
        x, lengths, unbatched = self._prepare(x, lengths)
        B, T = x.shape[:2]
        mask = _mask_from_lengths(lengths, B, T, x.device)
        log_b = _masked(mask, self._emission_log_prob(x, mask))  # (B, T, K)
        ll = _LogLikelihood.apply(
            self.log_initial_probs,
            self.log_transition_matrix,
            log_b.transpose(0, 1).contiguous(),  # (T, B, K)
            None if mask is None else mask.t().contiguous(),  # (T, B)
        )
        return ll[0] if unbatched else ll

    def score(self, x: Tensor, lengths=None) -> float:
        """Total log-likelihood of the sequences (a float; higher is better)."""
        with torch.no_grad():
            return float(self.log_likelihood(x, lengths).sum())

    def score_samples(self, x: Tensor, lengths=None) -> tuple[Tensor, Tensor]:
        """Log-likelihoods (B,) and posterior marginals (B, T, K) from one forward-backward
        pass (hmmlearn's ``score_samples``, batched)."""
        with torch.no_grad():
            log_b, lengths, unbatched = self._filter(x, lengths)
            lb, mask_tm = _prepare_log_b(log_b, lengths)
            log_A = self.log_transition_matrix
            log_pi = self.log_initial_probs
            alpha, log_norm, bc, bad = _forward(log_pi, log_A, lb)
            gamma, _ = _smooth(
                log_A,
                lb,
                alpha,
                bc,
                mask_tm,
                bad,
                lambda rows: _log_forward_tm(log_pi, log_A, lb[:, rows]),
                transitions=False,
            )
            ll = _masked(mask_tm, log_norm).sum(0)  # (B,)
            gamma = gamma.transpose(0, 1)  # (B, T, K)
            return (ll[0], gamma[0]) if unbatched else (ll, gamma)

    def _filter(self, x, lengths, name="x"):
        x, lengths, unbatched = self._prepare(x, lengths, name)
        B, T = x.shape[:2]
        log_b = self._emission_log_prob(x, _mask_from_lengths(lengths, B, T, x.device))
        return log_b, lengths, unbatched

    def posterior(self, x: Tensor, lengths=None) -> Tensor:
        r"""Posterior marginals :math:`p(z_t = k \mid x_{1:T})`, (B, T, K) (0 past length)."""
        return self.score_samples(x, lengths)[1]

    def viterbi(self, x: Tensor, lengths=None) -> ViterbiResult:
        """Most probable state paths (B, T) and their joint log-probabilities (B,)."""
        with torch.no_grad():
            log_b, lengths, unbatched = self._filter(x, lengths)
            res = viterbi(self.log_initial_probs, self.log_transition_matrix, log_b, lengths)
            if unbatched:
                return ViterbiResult(res.paths[0], res.log_probs[0])
            return res

    def predict(self, x: Tensor, lengths=None, algorithm: str = "viterbi") -> Tensor:
        r"""The most likely hidden states, (B, T) (0 past each length): the Viterbi path
        (``algorithm="viterbi"``, the jointly most probable path) or, with
        ``algorithm="map"``, each step's posterior arg-max :math:`\arg\max_k
        p(z_t = k \mid x_{1:T})` (maximum posterior marginals)."""
        if algorithm == "viterbi":
            return self.viterbi(x, lengths).paths
        if algorithm != "map":
            raise InputError(f"algorithm: expected 'viterbi' or 'map', received {algorithm!r}")
        return self.posterior(x, lengths).argmax(-1)

    @property
    def stationary_distribution(self) -> Tensor:
        r"""The stationary distribution :math:`\bar\pi = \bar\pi A`, (K,), from
        :math:`(I - A^\top + \mathbf 1 \mathbf 1^\top) \bar\pi = \mathbf 1` (unique for an
        irreducible chain)."""
        with torch.no_grad():
            A = self.transition_matrix
            K = A.shape[0]
            ones = torch.ones(K, K, dtype=A.dtype, device=A.device)
            M = torch.eye(K, dtype=A.dtype, device=A.device) - A.t() + ones
            return torch.linalg.solve(M, ones[:, 0])

    def predict_next(self, x: Tensor, lengths=None) -> Tensor:
        r"""Predictive distribution of the next observation after each sequence.

        The next state has :math:`p(z_{T+1} = k \mid x_{1:T}) = \sum_j
        p(z_T = j \mid x_{1:T}) A_{jk}` (``w``, (B, K)). Categorical: returns
        :math:`p(x_{T+1} = m \mid x_{1:T}) = \sum_k w_k B_{km}`, (B, M); multinomial: the
        same per-trial symbol probabilities (the expected counts are ``n_trials`` times
        them). Gaussian, GMM and Poisson: returns the state weights ``w`` (B, K); the
        predictive density is the mixture :math:`\sum_k w_k p_k(x)` with the model's
        ``means``/``covs`` (and ``weights``) or ``rates``.
        """
        with torch.no_grad():
            log_b, lengths, unbatched = self._filter(x, lengths)
            res = forward_filter(self.log_initial_probs, self.log_transition_matrix, log_b, lengths)
            B, T, K = res.filtered.shape
            last = (
                torch.full((B,), T, dtype=torch.long, device=log_b.device)
                if lengths is None
                else lengths
            )
            idx = (last - 1).view(B, 1, 1).expand(B, 1, K)
            filt = res.filtered.gather(1, idx).squeeze(1)  # (B, K)
            w = filt @ self.transition_matrix  # (B, K)
            out = self.emissions.predictive(w)
            return out[0] if unbatched else out

    # ---------------------------------------------------------------- sampling

    def sample(
        self,
        num_sequences: int,
        length: int,
        generator: torch.Generator | int | None = None,
        initial_state: int | Tensor | None = None,
    ) -> HMMSample:
        """Draw ``num_sequences`` sequences of ``length`` steps: (observations, states).
        Observations are (N, T) symbols (categorical) or (N, T, D) vectors of the model's
        dtype (counts for Poisson and multinomial, which needs ``n_trials``).

        ``generator``: a ``torch.Generator``, an int seed or None (torch's global
        generator). ``initial_state``: the state at the first step (an int, or (N,)
        states), as hmmlearn's ``currstate``; drawn from the initial distribution when
        None."""
        N = check_positive_int("num_sequences", num_sequences)
        T = check_positive_int("length", length)
        g = as_generator(generator, self.device)
        K = self.num_states
        if initial_state is not None:
            z0 = torch.as_tensor(initial_state, device=self.device)
            if z0.is_floating_point() or z0.dtype == torch.bool or z0.dim() > 1:
                raise InputTypeError(
                    f"initial_state: expected an int or ({N},) integer states, received "
                    f"{describe(initial_state)}"
                )
            z0 = z0.long().expand(N)
            if int(z0.min()) < 0 or int(z0.max()) >= K:
                raise InputError(
                    f"initial_state: expected states in 0..{K - 1}, received {z0.tolist()[:5]}"
                )
        with torch.no_grad():
            A = self.transition_matrix
            states = torch.empty(N, T, dtype=torch.long, device=self.device)
            if initial_state is None:
                states[:, 0] = torch.multinomial(
                    self.initial_probs.expand(N, -1), 1, True, generator=g
                )[:, 0]
            else:
                states[:, 0] = z0
            for t in range(1, T):
                states[:, t] = torch.multinomial(A[states[:, t - 1]], 1, generator=g)[:, 0]
            obs = self.emissions.sample(states.reshape(-1), g)  # (N*T, ...)
            return HMMSample(obs.view(N, T, *obs.shape[1:]), states)

    # ---------------------------------------------------------------- Baum-Welch

    def fit(
        self,
        x,
        lengths=None,
        *,
        n_iter: int = 100,
        tol: float = 1e-4,
        rtol: float = 1e-6,
        init: str = "auto",
        generator: torch.Generator | int | None = 0,
        fixed: Collection[str] = (),
        pseudocount: float = 1e-2,
        min_covar: float = 1e-3,
        initial_prior=None,
        transition_prior=None,
        emission_prior=None,
        verbose: bool = False,
    ) -> HMM:
        r"""Baum-Welch (EM) on a batch of sequences; returns ``self``.

        Args:
            x, lengths: the training sequences (as :meth:`log_likelihood`; hmmlearn's
                concatenated layout is accepted too).
            n_iter: maximum number of EM iterations (M-steps).
            tol, rtol: stop when the log-likelihood changes by less than
                ``tol + rtol * |L|`` (absolute and relative tolerance on the total
                log-likelihood L).
            init: names from ``("initial_probs", "transition_matrix", "emissions")`` to
                initialise (the others keep their values, as hmmlearn's ``init_params``),
                or ``"kmeans"`` (Gaussian/GMM/Poisson: the best of 10 k-means++ runs on the
                data in a canonical order, centres sorted by their first coordinate, as
                means or rates; the data covariance for every state), ``"random"``
                (Dirichlet(1) probabilities, means drawn from the data), ``"none"`` (start
                from the current parameters, continuing ``history_``) or ``"auto"``:
                ``"none"`` when the parameters were set by :meth:`from_params` or an
                earlier ``fit``, else ``"kmeans"`` (Gaussian, GMM, Poisson) or
                ``"random"`` (categorical, multinomial).
            generator: randomness of the initialisation: a ``torch.Generator``, an int
                seed (default 0: fits are reproducible) or None (fresh entropy).
            fixed: parameters held at their current values, any of ``"initial_probs"``,
                ``"transition_matrix"``, ``"emissions"``.
            pseudocount: added to every expected count of initial states, transitions,
                categorical and multinomial emissions and mixture components whose current
                probability is not zero (a Dirichlet prior with concentration
                1 + pseudocount on the free entries): no probability collapses to zero, and
                the structural zeros
                of a topology (a left-right chain) stay zero. A row with no expected mass
                (a state no sequence visits) keeps its previous value.
            initial_prior, transition_prior, emission_prior: Dirichlet concentrations
                :math:`\alpha > 0` (broadcastable to (K,), (K, K) and, categorical and
                multinomial only, (K, M)) for MAP re-estimation, hmmlearn's
                ``startprob_prior``, ``transmat_prior`` and ``emissionprob_prior``: each
                row becomes
                :math:`p_j \propto \max(n_j + \alpha_j - 1, 0)` from the expected counts
                :math:`n_j` (so :math:`\alpha - 1` are pseudocounts, and
                :math:`\alpha < 1` pushes entries to zero). A given prior replaces
                ``pseudocount`` for that parameter; structural zeros (a current probability
                of zero) stay zero. With any prior, ``history_`` records the MAP objective
                :math:`\log p(x) + \sum (\alpha - 1) \log p` (the unnormalised log
                prior density added), the quantity these updates increase.
            min_covar: variance floor, relative to the data: added to each re-estimated
                variance as ``min_covar`` times that feature's variance in the training
                data (so the fit does not depend on the units of x). A state that receives
                no posterior mass keeps its previous emission parameters.
            verbose: print the log-likelihood of each iteration.

        ``history_`` holds the total log-likelihood after each M-step count (so
        ``history_[i]`` is the score of the parameters after ``i`` M-steps, and the last
        entry the score of the returned model), ``converged_`` whether the tolerance was
        met, ``n_iter_`` the M-steps taken. A decrease beyond rounding, and stopping at
        ``n_iter`` unconverged, give a :class:`~rnnlab.classic.ConvergenceWarning`.
        Fitting more free parameters than there are scalar observations warns (the
        maximum-likelihood solution is degenerate).
        """
        check_positive_int("n_iter", n_iter)
        for name, v in (
            ("tol", tol),
            ("rtol", rtol),
            ("pseudocount", pseudocount),
            ("min_covar", min_covar),
        ):
            check_nonnegative(name, v)
        keep: tuple[str, ...] = ()  # parameters init leaves as they are
        if not isinstance(init, str):  # a selection: initialise these, keep the others
            try:
                names = tuple(init)
            except TypeError:
                names = (None,)
            if not names or any(n not in _FIXABLE for n in names):
                raise InputError(
                    f"init: expected 'auto', 'kmeans', 'random', 'none' or names from "
                    f"{_FIXABLE}, received {init!r}"
                )
            keep = tuple(n for n in _FIXABLE if n not in names)
            init = self.emissions.default_init
        elif init not in ("auto", "kmeans", "random", "none"):
            raise InputError(
                f"init: expected 'auto', 'kmeans', 'random', 'none' or names from "
                f"{_FIXABLE}, received {init!r}"
            )
        if isinstance(fixed, str):
            fixed = (fixed,)
        for name in fixed:
            if name not in _FIXABLE:
                raise InputError(f"fixed: expected names from {_FIXABLE}, received {name!r}")
        g = as_generator(generator)
        if emission_prior is not None and not self.emissions.dirichlet:
            raise InputError(
                f"emission_prior: a Dirichlet prior on categorical or multinomial emissions; "
                f"this HMM's emission is {self.emission!r}"
            )
        if not self.emissions.sized:  # num_symbols inferred from the data
            xs, ls, _ = self._prepare(x, lengths, sizing=True)
            self.emissions.set_size(_valid(_mask_from_lengths(ls, *xs.shape[:2], xs.device), xs))
        x, lengths, _ = self._prepare(x, lengths)
        B, T = x.shape[:2]
        mask = _mask_from_lengths(lengths, B, T, x.device)  # (B, T)
        K = self.num_states
        priors = {}
        for name, value, shape in (
            ("initial_prior", initial_prior, (K,)),
            ("transition_prior", transition_prior, (K, K)),
            ("emission_prior", emission_prior, None),
        ):
            if value is not None:
                shape = self.emissions.prior_shape() if shape is None else shape
                priors[name] = self._dirichlet_prior(name, value, shape)
        if init == "auto":
            init = "none" if self._has_params else self.emissions.default_init
        if init == "kmeans" and not self.emissions.kmeans:
            raise InputError(
                f"init: 'kmeans' needs vector emissions (gaussian, gmm, poisson), not "
                f"{self.emission!r}; use 'random' or 'none'"
            )
        with torch.no_grad():
            mask_tm = None if mask is None else mask.t().contiguous()  # (T, B)
            # valid observations in time-major order (that of gamma), centred once
            xv = _valid(mask_tm, x.transpose(0, 1))  # (N, ...)
            n_free = self._num_free_parameters(fixed)
            n_data = xv.numel()
            if n_free >= n_data:
                warnings.warn(
                    f"HMM.fit: {n_free} free parameters fitted to {n_data} scalar "
                    "observations: the maximum-likelihood solution is degenerate",
                    UserWarning,
                    stacklevel=2,
                )
            if init != "none":
                self._initialize(xv, init, g, (*fixed, *keep))
            stats = self.emissions.statistics(xv, min_covar)

        def evaluate():
            # E-step, forward pass: the log-likelihood of the current parameters
            log_b, comp = self._emission_log_prob(x, mask, components=True)
            lb, _ = _prepare_log_b(log_b, lengths)
            log_A = self.log_transition_matrix
            log_pi = self.log_initial_probs
            # suffix: the backward messages come from the forward scan (one scan, not two)
            alpha, log_norm, bc, bad, beta = _forward(log_pi, log_A, lb, suffix=True)
            ll = float(_masked(mask_tm, log_norm).sum())
            if priors:  # MAP-EM increases the log posterior
                ll += self._log_prior(priors)
            return ll, (log_pi, log_A, lb, alpha, bc, bad, comp, beta)

        def update(cache):
            log_pi, log_A, lb, alpha, bc, bad, comp, beta = cache
            gamma, xi = _smooth(
                log_A,
                lb,
                alpha,
                bc,
                mask_tm,
                bad,
                lambda rows: _log_forward_tm(log_pi, log_A, lb[:, rows]),
                per_sequence=False,
                beta=beta,
            )
            # M-step (Rabiner 1989, eqs. 40a-c, 52-54)
            g_v = _valid(mask_tm, gamma)  # (N, K) valid positions, time-major
            # the component's extra terms at the same positions (gmm: (N, K, C))
            comp_v = None if comp is None else _valid(mask_tm, comp.transpose(0, 1))
            self._m_step(gamma[0].sum(0), xi, g_v, xv, stats, pseudocount, comp_v, fixed, priors)

        run_em(
            self,
            evaluate,
            update,
            n_iter=n_iter,
            tol=tol,
            rtol=rtol,
            resume=init == "none",
            dtype=self.dtype,
            verbose=verbose,
        )
        self._has_params = True
        return self

    def _num_free_parameters(self, fixed: Collection[str] = ()) -> int:
        """Free scalar parameters (probabilities count one less than their number)."""
        K = self.num_states
        n = 0
        if "initial_probs" not in fixed:
            n += K - 1
        if "transition_matrix" not in fixed:
            n += K * (K - 1)
        if "emissions" not in fixed:
            n += self.emissions.num_free_parameters()
        return n

    def aic(self, x, lengths=None) -> float:
        """Akaike's information criterion :math:`2 p - 2 \\log p(x)` (p free parameters)."""
        return 2 * self._num_free_parameters() - 2 * self.score(x, lengths)

    def bic(self, x, lengths=None) -> float:
        """Bayesian information criterion :math:`p \\log N - 2 \\log p(x)`, N the number
        of observed time steps (hmmlearn's convention)."""
        xb, lb, _ = self._prepare(x, lengths)
        n = int(lb.sum()) if lb is not None else xb.shape[0] * xb.shape[1]
        return self._num_free_parameters() * math.log(n) - 2 * self.score(x, lengths)

    def _dirichlet_prior(self, name: str, value, shape: tuple[int, ...]) -> Tensor:
        """A Dirichlet concentration broadcast to ``shape``; every entry finite and > 0."""
        try:
            a = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise InputTypeError(
                f"{name}: expected a number or an array of Dirichlet concentrations, "
                f"received {describe(value)}"
            ) from e
        try:
            a = torch.broadcast_to(a, shape).clone()
        except RuntimeError as e:
            raise InputError(
                f"{name}: expected a shape broadcastable to {shape}, received {tuple(a.shape)}"
            ) from e
        if not bool(torch.isfinite(a).all()) or not bool((a > 0).all()):
            raise InputError(
                f"{name}: expected finite Dirichlet concentrations > 0, min {float(a.min()):.3g}"
            )
        return a

    def _log_prior(self, priors: dict[str, Tensor]) -> float:
        r"""Unnormalised log Dirichlet density :math:`\sum (\alpha - 1) \log p` of the current
        probabilities (entries with p = 0 contribute 0: structural or clamped zeros)."""
        total = 0.0
        for name, logits in (
            ("initial_prior", self.initial_logits),
            ("transition_prior", self.transition_logits),
        ):
            if name in priors:
                logp = torch.log_softmax(logits, -1)
                term = torch.where(torch.isfinite(logp), (priors[name] - 1) * logp, 0.0)
                total += float(term.sum())
        if "emission_prior" in priors:
            total += self.emissions.log_prior(priors["emission_prior"])
        return total

    def _m_step(self, g0, xi, gamma, xv, stats, pseudocount, comp, fixed, priors=None) -> None:
        """Re-estimate the parameters from expected counts (no autograd; Rabiner 1989,
        eqs. 40a-b here, the emissions' in their component). ``stats``: the component's
        summaries of the observations; ``comp``: its extra terms at the valid positions;
        ``priors``: Dirichlet concentrations by argument name."""
        priors = priors or {}
        if "initial_probs" not in fixed:
            self.initial_logits.copy_(
                normalized_log(g0, self.initial_logits, pseudocount, priors.get("initial_prior"))
            )
        if "transition_matrix" not in fixed:
            self.transition_logits.copy_(
                normalized_log(
                    xi, self.transition_logits, pseudocount, priors.get("transition_prior")
                )
            )
        if "emissions" not in fixed:
            prior = priors.get("emission_prior")
            self.emissions.m_step(gamma, xv, stats, comp, pseudocount, prior)

    def _initialize(self, xv: Tensor, init: str, g: torch.Generator, fixed=()) -> None:
        """Data-driven or random initial parameters (no autograd): Dirichlet(1) rows for
        ``init="random"`` (uniform for ``"kmeans"``), the component's start for the
        emissions (independent of the order of the sequences)."""
        K = self.num_states

        def dirichlet(*shape):
            return _dirichlet_rows(g, shape, self.dtype, self.device)

        if "initial_probs" not in fixed:
            self.initial_logits.copy_(dirichlet(K).log() if init == "random" else 0.0)
        if "transition_matrix" not in fixed:
            self.transition_logits.copy_(dirichlet(K, K).log() if init == "random" else 0.0)
        if "emissions" not in fixed:
            self.emissions.initialize(xv, init, g)

    def extra_repr(self) -> str:
        return f"num_states={self.num_states}, emission={self.emission!r}, " + (
            self.emissions.extra_repr()
        )

    def __repr__(self) -> str:  # one line: the component's settings are in extra_repr
        return f"{type(self).__name__}({self.extra_repr()})"


def _not_for(emission: str, name: str) -> AttributeError:
    kinds = tuple(f for f, c in FAMILIES.items() if hasattr(c, name))
    return AttributeError(f"{name}: only for emission in {kinds}, not {emission!r}")


# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------


def _as_input(name: str, x, integer: bool, dtype: torch.dtype, device) -> Tensor:
    """A tensor from ``x``: tensors pass through (checked later); numpy arrays and lists
    are converted to ``dtype`` (long for symbols) on ``device``."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple)):
        try:
            arr = np.asarray(x)
        except ValueError as e:  # ragged lists
            raise InputTypeError(
                f"{name}: expected a rectangular array; for sequences of different lengths "
                "pad them and pass lengths, or concatenate them and pass lengths "
                "(hmmlearn's layout)"
            ) from e
        if arr.dtype.kind not in "biuf":
            raise InputTypeError(f"{name}: expected numbers, received an array of {arr.dtype}")
        if integer:
            if arr.dtype.kind == "f":
                if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
                    raise InputTypeError(
                        f"{name}: expected integer symbols, received non-integer values"
                    )
            return torch.as_tensor(arr.astype(np.int64), device=device)
        return torch.as_tensor(arr, device=device).to(dtype)
    raise InputTypeError(
        f"{name}: expected a torch.Tensor, numpy array or list, received {type(x).__name__}"
    )


def concatenated_to_batch(x, lengths) -> tuple[Tensor, Tensor]:
    """hmmlearn's layout to rnnlab's: ``x`` (N, ...) with the sequences stacked along the
    first axis and ``lengths`` (B,) summing to N become a zero-padded (B, max(lengths), ...)
    batch and the lengths as a LongTensor."""
    x = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    lens = torch.as_tensor(np.asarray(lengths), dtype=torch.long).reshape(-1)
    if lens.numel() == 0 or int(lens.min()) < 1 or int(lens.sum()) != x.shape[0]:
        raise InputError(
            f"lengths: expected positive lengths summing to {x.shape[0]} (the rows of x), "
            f"received {lens.tolist()[:10]}"
        )
    T = int(lens.max())
    out = x.new_zeros(lens.numel(), T, *x.shape[1:])
    for b, part in enumerate(torch.split(x, lens.tolist())):
        out[b, : part.shape[0]] = part
    return out, lens.to(x.device)
