r"""Compiled per-step loops of the HMM and the Kalman filter (Numba, ``rnnlab[fast]``).

A long sequence with a few hidden states (an HMM with K = 2, a Kalman filter with a state
of 4) costs far more in per-call overhead of PyTorch or NumPy than in arithmetic: each
step is a handful of operations on vectors of length K. Here the same recursions run as
one compiled loop over time (and over the sequences of a small batch). They compute the
same quantities, in the same order of operations up to the summation order inside a
step, as the reference code they replace, which stays the fallback:

- :func:`hmm_forward`: :func:`rnnlab.classic.hmm._forward_seq`, the scaled forward pass
  (Rabiner 1989, eqs. 91-92a),
  :math:`\hat\alpha_t = \tilde b_t \odot (\hat\alpha_{t-1} A) / c_t`;
- :func:`hmm_backward`: ``_backward_tm``,
  :math:`\hat\beta_t = A (\tilde b_{t+1} \odot \hat\beta_{t+1}) / c_{t+1}`;
- :func:`hmm_smooth`: ``_smooth_seq``, posteriors :math:`\gamma_t \propto \hat\alpha_t
  \odot \hat\beta_t` and expected transitions :math:`\sum_t \xi_t(i, j)` with
  :math:`\xi_t(i,j) = \hat\alpha_{t-1}(i) A_{ij} \tilde b_t(j) \hat\beta_t(j) / c_t`;
- :func:`hmm_viterbi`: :func:`rnnlab.classic.hmm.viterbi`, ties to the lowest index;
- :func:`kalman_filter_full`: ``lds._full_recursion_numpy`` (predict, then the
  Joseph-form update, at every step, with per-step masked emissions), with the Cholesky
  factor of the innovation covariance :math:`S_t = C_t P_t^- C_t^\top + R_t` computed in
  the loop, :math:`K_t^\top = S_t^{-1} C_t P_t^-` by two triangular solves, and the
  log-likelihood terms :math:`-\tfrac12 (n_t \log 2\pi + \log\det S_t +
  \lVert L_t^{-1} r_t \rVert^2)`;
- :func:`rts_smooth`: ``lds._smooth``'s unfrozen path (Rauch, Tung & Striebel 1965),
  :math:`J_t^\top = (P_{t+1|t})^{-1} A P_{t|t}`, smoothed means, covariances and the
  lag-one cross-covariances :math:`P_{t+1|T} J_t^\top`.

Each wrapper takes and returns tensors (CPU, float32 or float64, no autograd). The
``*_ready`` predicates say when the kernels run: Numba importable, ``RNNLAB_NUMBA`` not
``0`` (see :mod:`rnnlab._numba`), CPU float tensors. Arithmetic uses IEEE semantics
(``error_model="numpy"``): a zero normaliser gives the same NaN/-inf as the reference,
which the callers' exact log-space fallbacks detect.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from rnnlab._numba import jit

_LOG_2PI = math.log(2.0 * math.pi)

# the HMM kernels loop over the sequences of a batch inside the compiled code; above this
# many multiply-adds a step (B K^2) the batched NumPy loop (one BLAS call a step) is as fast
HMM_MAX_WORK = 1024
# the Kalman kernels loop over sequences too (each with its own covariances under a mask)
LDS_MAX_BATCH = 64


# ---------------------------------------------------------------------------- HMM kernels


@jit(error_model="numpy")
def _hmm_forward_kernel(pi, A, log_b, tiny, alpha, log_norm, bc):  # pragma: no cover
    T, B, K = log_b.shape
    e = np.empty(K, dtype=log_b.dtype)
    for b in range(B):
        for t in range(T):
            m = log_b[t, b, 0]
            for k in range(1, K):
                if log_b[t, b, k] > m:
                    m = log_b[t, b, k]
            if not np.isfinite(m):
                m = 0.0
            for k in range(K):
                v = np.exp(log_b[t, b, k] - m)
                e[k] = 0.0 if v < tiny else v
            c = 0.0
            if t == 0:
                for k in range(K):
                    a = e[k] * pi[k]
                    alpha[0, b, k] = a
                    c += a
            else:
                for k in range(K):
                    a = 0.0
                    for i in range(K):
                        a += alpha[t - 1, b, i] * A[i, k]
                    a *= e[k]
                    alpha[t, b, k] = a
                    c += a
            for k in range(K):
                alpha[t, b, k] = alpha[t, b, k] / c
                bc[t, b, k] = e[k] / c
            log_norm[t, b] = np.log(c) + m


@jit(error_model="numpy")
def _hmm_backward_kernel(A, bc, beta):  # pragma: no cover
    T, B, K = bc.shape
    tmp = np.empty(K, dtype=bc.dtype)
    for b in range(B):
        for k in range(K):
            beta[T - 1, b, k] = 1.0
        for t in range(T - 2, -1, -1):
            for j in range(K):
                tmp[j] = beta[t + 1, b, j] * bc[t + 1, b, j]
            for i in range(K):
                s = 0.0
                for j in range(K):
                    s += tmp[j] * A[i, j]
                beta[t, b, i] = s


@jit(error_model="numpy")
def _hmm_smooth_kernel(A, bc, alpha, lengths, weights, transitions, gamma, xi):  # pragma: no cover
    T, B, K = bc.shape
    _hmm_backward_kernel(A, bc, gamma)  # beta, turned into gamma in place below
    u = np.empty(K, dtype=bc.dtype)
    acc = np.zeros((K, K), dtype=bc.dtype)
    for b in range(B):
        n = lengths[b]
        z = 0.0
        for k in range(K):
            z += alpha[0, b, k] * gamma[0, b, k]
        if transitions:
            acc[:, :] = 0.0
            for t in range(1, n):  # sum_t alpha_{t-1} (x) (bc_t beta_t)
                for j in range(K):
                    u[j] = bc[t, b, j] * gamma[t, b, j]
                for i in range(K):
                    a = alpha[t - 1, b, i]
                    for j in range(K):
                        acc[i, j] += a * u[j]
            scale = weights[b] / z
            for i in range(K):
                for j in range(K):
                    xi[b, i, j] = acc[i, j] * scale * A[i, j]
        for t in range(T):
            if t >= n:
                for k in range(K):
                    gamma[t, b, k] = 0.0
                continue
            s = 0.0
            for k in range(K):
                g = gamma[t, b, k] * alpha[t, b, k]
                gamma[t, b, k] = g
                s += g
            for k in range(K):
                gamma[t, b, k] = gamma[t, b, k] / s


@jit(error_model="numpy")
def _hmm_viterbi_kernel(log_pi, log_A, log_b, lengths, paths, log_probs):  # pragma: no cover
    T, B, K = log_b.shape
    delta = np.empty((T, K), dtype=log_b.dtype)
    psi = np.zeros((T, K), dtype=np.int64)
    for b in range(B):
        for k in range(K):
            delta[0, k] = log_pi[k] + log_b[0, b, k]
        for t in range(1, T):
            for j in range(K):
                best = delta[t - 1, 0] + log_A[0, j]
                arg = 0
                for i in range(1, K):
                    s = delta[t - 1, i] + log_A[i, j]
                    if s > best:
                        best = s
                        arg = i
                delta[t, j] = best + log_b[t, b, j]
                psi[t, j] = arg
        n = lengths[b]
        best = delta[n - 1, 0]
        state = 0
        for k in range(1, K):
            if delta[n - 1, k] > best:
                best = delta[n - 1, k]
                state = k
        log_probs[b] = best
        for t in range(T - 1, n - 1, -1):
            paths[t, b] = 0
        paths[n - 1, b] = state
        for t in range(n - 1, 0, -1):
            state = psi[t, state]
            paths[t - 1, b] = state


# ---------------------------------------------------------------------------- HMM wrappers


def hmm_ready(x: Tensor) -> bool:
    """Whether the HMM kernels run on ``x`` (T, B, K): compiled loops available, CPU
    float32/float64, and at most :data:`HMM_MAX_WORK` multiply-adds a step."""
    if _hmm_forward_kernel is None:
        return False
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64):
        return False
    _, B, K = x.shape
    return B * K * K <= HMM_MAX_WORK


def _np(x: Tensor) -> np.ndarray:
    return x.detach().contiguous().numpy()


def hmm_forward(log_pi: Tensor, log_A: Tensor, log_b: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`rnnlab.classic.hmm._forward_seq` compiled: filtered distributions (T, B, K),
    log normalisers (T, B), scaled emissions over the normalisers (T, B, K)."""
    T, B, K = log_b.shape
    dt = log_b.dtype
    alpha = torch.empty(T, B, K, dtype=dt)
    bc = torch.empty(T, B, K, dtype=dt)
    log_norm = torch.empty(T, B, dtype=dt)
    tiny = torch.finfo(dt).tiny
    _hmm_forward_kernel(
        _np(log_pi.exp()),
        _np(log_A.exp()),
        _np(log_b),
        tiny,
        alpha.numpy(),
        log_norm.numpy(),
        bc.numpy(),
    )
    return alpha, log_norm, bc


def hmm_backward(log_A: Tensor, bc: Tensor) -> Tensor:
    """``_backward_tm`` compiled: the scaled backward messages (T, B, K)."""
    beta = torch.empty(bc.shape, dtype=bc.dtype)
    _hmm_backward_kernel(_np(log_A.exp()), _np(bc), beta.numpy())
    return beta


def hmm_smooth(
    log_A: Tensor,
    bc: Tensor,
    mask_tm: Tensor | None,
    alpha: Tensor,
    weights: Tensor | None = None,
    per_sequence: bool = True,
    transitions: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """``_smooth_seq`` compiled (same arguments and results): posteriors (T, B, K) and
    expected transitions (B, K, K), or summed over sequences with ``weights`` (K, K)."""
    T, B, K = bc.shape
    dt = bc.dtype
    if mask_tm is None:
        lengths = np.full(B, T, dtype=np.int64)
    else:  # the mask of padded sequences: a prefix of each column
        lengths = mask_tm.sum(0).to(torch.int64).numpy()
    w = np.ones(B, dtype=np.float64) if weights is None else _np(weights.to(torch.float64))
    gamma = torch.empty(T, B, K, dtype=dt)
    xi = torch.zeros(B, K, K, dtype=dt)
    _hmm_smooth_kernel(
        _np(log_A.exp()), _np(bc), _np(alpha), lengths, w, transitions, gamma.numpy(), xi.numpy()
    )
    if not transitions:
        return gamma, None
    return gamma, (xi if per_sequence else xi.sum(0))


def hmm_viterbi(
    log_pi: Tensor, log_A: Tensor, log_b: Tensor, lengths: Tensor | None
) -> tuple[Tensor, Tensor]:
    """Viterbi compiled: paths (B, T) (0 past each length) and log-probabilities (B,), from
    time-major ``log_b`` (T, B, K) with 0 at padding."""
    T, B, K = log_b.shape
    n = np.full(B, T, dtype=np.int64) if lengths is None else _np(lengths.to(torch.int64))
    paths = torch.empty(T, B, dtype=torch.long)
    log_probs = torch.empty(B, dtype=log_b.dtype)
    _hmm_viterbi_kernel(_np(log_pi), _np(log_A), _np(log_b), n, paths.numpy(), log_probs.numpy())
    return paths.t(), log_probs


# ---------------------------------------------------------------------------- LDS kernels


@jit(error_model="numpy")
def _cholesky(S, L):  # pragma: no cover
    """Lower Cholesky factor of S into L; False when S is not positive definite."""
    n = S.shape[0]
    for j in range(n):
        d = S[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if not d > 0.0:  # also NaN
            return False
        d = np.sqrt(d)
        L[j, j] = d
        for i in range(j + 1, n):
            s = S[i, j]
            for k in range(j):
                s -= L[i, k] * L[j, k]
            L[i, j] = s / d
        for i in range(j):
            L[i, j] = 0.0
    return True


@jit(error_model="numpy")
def _chol_solve(L, X):  # pragma: no cover
    """X <- (L L^T)^{-1} X in place (X (n, m)): forward then back substitution."""
    n, m = X.shape
    for c in range(m):
        for i in range(n):
            s = X[i, c]
            for k in range(i):
                s -= L[i, k] * X[k, c]
            X[i, c] = s / L[i, i]
        for i in range(n - 1, -1, -1):
            s = X[i, c]
            for k in range(i + 1, n):
                s -= L[k, i] * X[k, c]
            X[i, c] = s / L[i, i]


@jit(error_model="numpy")
def _matmul(X, Y, out, C=None, alpha=1.0):  # pragma: no cover
    """out = X Y, or C + alpha X Y: each entry's sum accumulated in float64 and rounded once
    (X, Y may be transposed views)."""
    for i in range(X.shape[0]):
        for j in range(Y.shape[1]):
            s = 0.0
            for k in range(X.shape[1]):
                s += X[i, k] * Y[k, j]
            out[i, j] = s if C is None else C[i, j] + alpha * s


@jit(error_model="numpy")
def _kalman_kernel(
    m0, P0, A, Q, C, R, y, bu, has_bu, n_obs, fm, pm, rr, fP, pP, Lo, terms, log2pi
):  # pragma: no cover
    B, T, D = y.shape
    S = A.shape[0]
    Bc = C.shape[0]
    Tc = C.shape[1]
    dt = y.dtype
    m = np.empty(S, dtype=dt)
    mt = np.empty(S, dtype=dt)
    P = np.empty((S, S), dtype=dt)
    AP = np.empty((S, S), dtype=dt)
    CP = np.empty((D, S), dtype=dt)
    Sm = np.empty((D, D), dtype=dt)
    Kt = np.empty((D, S), dtype=dt)
    M = np.empty((S, S), dtype=dt)
    MP = np.empty((S, S), dtype=dt)
    KR = np.empty((S, D), dtype=dt)
    eye = np.eye(S, dtype=dt)
    r = np.empty(D, dtype=dt)
    zv = np.empty(D, dtype=dt)
    for b in range(B):
        cb = b if Bc == B else 0
        for i in range(S):
            m[i] = m0[i]
            for j in range(S):
                P[i, j] = P0[i, j]
        for t in range(T):
            if t > 0:  # time update: m = A m + B u, P = A P A^T + Q
                for i in range(S):
                    s = 0.0
                    for k in range(S):
                        s += A[i, k] * m[k]
                    mt[i] = s + bu[b, t, i] if has_bu else s
                for i in range(S):
                    m[i] = mt[i]
                _matmul(A, P, AP)
                _matmul(AP, A.T, P, Q)
            ci = 0 if Tc == 1 else t
            Ct = C[cb, ci]
            Rt = R[cb, ci]
            for i in range(S):
                pm[b, t, i] = m[i]
                for j in range(S):
                    pP[cb, t, i, j] = P[i, j]
            empty = True
            for i in range(D):
                for j in range(S):
                    if Ct[i, j] != 0.0:
                        empty = False
            L = Lo[cb, t]
            if empty:  # every observation missing: no update (K = 0, r = y)
                if not _cholesky(Rt, L):
                    return t
                for i in range(S):
                    for j in range(S):
                        MP[i, j] = 0.5 * (P[i, j] + P[j, i])
                for i in range(S):
                    for j in range(S):
                        P[i, j] = MP[i, j]
                for i in range(D):
                    r[i] = y[b, t, i]
            else:
                _matmul(Ct, P, CP)  # CP = C P, S = CP C^T + R
                Kt[:, :] = CP
                _matmul(CP, Ct.T, Sm, Rt)
                if not _cholesky(Sm, L):
                    return t
                _chol_solve(L, Kt)  # (D, S) K^T = S^{-1} C P
                for i in range(D):  # innovation r = y - C m
                    s = 0.0
                    for k in range(S):
                        s += Ct[i, k] * m[k]
                    r[i] = y[b, t, i] - s
                for j in range(S):  # m = m + r K^T
                    s = 0.0
                    for i in range(D):
                        s += r[i] * Kt[i, j]
                    m[j] += s
                _matmul(Kt.T, Ct, M, eye, -1.0)  # M = I - K C
                _matmul(M, P, MP)
                _matmul(Kt.T, Rt, KR)  # K R
                for i in range(S):  # P = M P M^T + K R K^T (both sums before one rounding)
                    for j in range(S):
                        s = 0.0
                        for k in range(S):
                            s += MP[i, k] * M[j, k]
                        s2 = 0.0
                        for k in range(D):
                            s2 += KR[i, k] * Kt[k, j]
                        AP[i, j] = s + s2
                for i in range(S):
                    for j in range(S):
                        P[i, j] = 0.5 * (AP[i, j] + AP[j, i])
            for i in range(S):
                fm[b, t, i] = m[i]
                for j in range(S):
                    fP[cb, t, i, j] = P[i, j]
            logdet = 0.0
            quad = 0.0
            for i in range(D):  # z = L^{-1} r
                rr[b, t, i] = r[i]
                s = r[i]
                for k in range(i):
                    s -= L[i, k] * zv[k]
                zv[i] = s / L[i, i]
                quad += zv[i] * zv[i]
                logdet += np.log(L[i, i])
            terms[b, t] = -0.5 * (n_obs[b, t] * log2pi + 2.0 * logdet + quad)
    return -1


@jit(error_model="numpy")
def _rts_kernel(A, mf, Pf, mp, Pp, means, covs, cross, JT):  # pragma: no cover
    B, T, S = mf.shape
    Bc = Pf.shape[0]
    dt = mf.dtype
    Lp = np.empty((S, S), dtype=dt)
    J = np.empty((S, S), dtype=dt)
    E = np.empty((S, S), dtype=dt)
    W = np.empty((S, S), dtype=dt)
    c = np.empty(S, dtype=dt)
    for b in range(B):
        cb = b if Bc == B else 0
        for i in range(S):
            means[b, T - 1, i] = mf[b, T - 1, i]
            for j in range(S):
                covs[cb, T - 1, i, j] = Pf[cb, T - 1, i, j]
        for t in range(T - 2, -1, -1):
            if not _cholesky(Pp[cb, t + 1], Lp):
                return t + 1
            _matmul(A, Pf[cb, t], J)  # J^T = Pp^{-1} A Pf
            _chol_solve(Lp, J)
            for j in range(S):  # c = mf - mp J^T
                s = 0.0
                for k in range(S):
                    s += mp[b, t + 1, k] * J[k, j]
                c[j] = mf[b, t, j] - s
            _matmul(Pp[cb, t + 1], J, W)  # W = Pp J^T
            _matmul(J.T, W, E, Pf[cb, t], -1.0)  # E = Pf - J Pp J^T
            for j in range(S):  # ms_t = c + ms_{t+1} J^T
                s = 0.0
                for k in range(S):
                    s += means[b, t + 1, k] * J[k, j]
                means[b, t, j] = c[j] + s
            _matmul(covs[cb, t + 1], J, W)  # Ps_t = E + J Ps_{t+1} J^T
            _matmul(J.T, W, covs[cb, t], E)
            for i in range(S):
                for j in range(S):
                    JT[cb, t, i, j] = J[i, j]
        for t in range(T):  # symmetrise, then the cross-covariances Ps_{t+1} J_t^T
            for i in range(S):
                for j in range(i + 1, S):
                    v = 0.5 * (covs[cb, t, i, j] + covs[cb, t, j, i])
                    covs[cb, t, i, j] = v
                    covs[cb, t, j, i] = v
        for t in range(T - 1):
            for i in range(S):
                for j in range(S):
                    s = 0.0
                    for k in range(S):
                        s += covs[cb, t + 1, i, k] * JT[cb, t, k, j]
                    cross[cb, t, i, j] = s
    return -1


# ---------------------------------------------------------------------------- LDS wrappers


def lds_ready(y: Tensor, batch: int, cov_batch: int) -> bool:
    """Whether the Kalman kernels run: compiled loops available, CPU float32/float64, no
    autograd, one sequence or a small batch in which every sequence has its own
    covariances (a mask), at most :data:`LDS_MAX_BATCH` sequences."""
    if _kalman_kernel is None or torch.is_grad_enabled():
        return False
    if y.device.type != "cpu" or y.dtype not in (torch.float32, torch.float64):
        return False
    return batch <= LDS_MAX_BATCH and (cov_batch == batch or batch == 1)


class KalmanStepError(Exception):
    """A step whose innovation (or, in the smoother, predicted) covariance is not
    positive definite; ``step`` is its time index. Callers turn it into InputError."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


def kalman_filter_full(
    m0: Tensor,
    P0: Tensor,
    A: Tensor,
    Q: Tensor,
    Cseq: Tensor,
    Rseq: Tensor,
    y: Tensor,
    bu: Tensor | None,
    n_obs: Tensor,
) -> tuple[Tensor, ...]:
    """``lds._full_recursion_numpy`` compiled, with the log-likelihood terms. Cseq
    (Bc, T or 1, D, S), Rseq (Bc, T or 1, D, D); y (B, T, D) with D u subtracted and zeros
    where missing; bu (B, T, 1, S) or None; n_obs (B, T) observed coordinates per step.
    Returns filtered and predicted means (B, T, S), innovations (B, T, D), filtered and
    predicted covariances (Bc, T, S, S), Cholesky factors of the innovation covariances
    (Bc, T, D, D) and the log-likelihood terms (B, T). Raises :class:`KalmanStepError`."""
    B, T, D = y.shape
    S = A.shape[0]
    Bc = Cseq.shape[0]
    dt = y.dtype
    fm, pm = torch.empty(B, T, S, dtype=dt), torch.empty(B, T, S, dtype=dt)
    rr = torch.empty(B, T, D, dtype=dt)
    fP, pP = torch.empty(Bc, T, S, S, dtype=dt), torch.empty(Bc, T, S, S, dtype=dt)
    Lo = torch.zeros(Bc, T, D, D, dtype=dt)
    terms = torch.empty(B, T, dtype=dt)
    has_bu = bu is not None
    bun = _np(bu[:, :, 0]) if has_bu else np.zeros((1, 1, S), dtype=_np(y).dtype)
    bad = _kalman_kernel(
        _np(m0),
        _np(P0),
        _np(A),
        _np(Q),
        _np(Cseq),
        _np(Rseq),
        _np(y),
        bun,
        has_bu,
        _np(n_obs.to(dt)),
        fm.numpy(),
        pm.numpy(),
        rr.numpy(),
        fP.numpy(),
        pP.numpy(),
        Lo.numpy(),
        terms.numpy(),
        _LOG_2PI,
    )
    if bad >= 0:
        raise KalmanStepError(int(bad))
    return fm, pm, rr, fP, pP, Lo, terms


def rts_smooth(A: Tensor, mf: Tensor, Pf: Tensor, mp: Tensor, Pp: Tensor):
    """``lds._smooth``'s unfrozen path compiled: smoothed means (B, T, S), covariances
    (Bc, T, S, S) and lag-one cross-covariances (Bc, T-1, S, S). Raises
    :class:`KalmanStepError` where a predicted covariance is not positive definite."""
    B, T, S = mf.shape
    Bc = Pf.shape[0]
    dt = mf.dtype
    means = torch.empty(B, T, S, dtype=dt)
    covs = torch.empty(Bc, T, S, S, dtype=dt)
    cross = torch.empty(Bc, T - 1, S, S, dtype=dt)
    JT = np.empty((Bc, max(T - 1, 0), S, S), dtype=_np(mf).dtype)
    bad = _rts_kernel(
        _np(A), _np(mf), _np(Pf), _np(mp), _np(Pp), means.numpy(), covs.numpy(), cross.numpy(), JT
    )
    if bad >= 0:
        raise KalmanStepError(int(bad))
    return means, covs, cross
