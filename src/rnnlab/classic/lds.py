r"""Linear dynamical systems: Kalman filter, Rauch-Tung-Striebel smoother, EM.

Functional core (pure tensor kernels, batched over sequences) beside one model class:

- :func:`kalman_filter` -> :class:`FilterResult` (filtered means, covariances and the
  log-likelihood of every sequence);
- :func:`rts_smoother` -> :class:`SmootherResult` (smoothed means and covariances);
- ``_predict`` / ``_condition_on``: one time-update and one measurement-update step;
- :class:`LinearDynamicalSystem`: the ``nn.Module`` with ``fit`` (EM), ``score``,
  ``predict``, ``forecast``, ``sample`` and a differentiable ``forward``.

Speed: the covariance recursion does not depend on the observed values, only on which
of them are missing. Without a mask it is therefore run once, with a batch of one, and
shared by all sequences; each time step costs a fixed handful of small batched tensor
operations whatever the number of sequences. The smoother gains are computed for all
time steps in one batched Cholesky solve after the filter.

References: Kalman (1960); Rauch, Tung & Striebel (1965); Shumway & Stoffer (1982) and
Ghahramani & Hinton (1996) for EM; Shumway & Stoffer, *Time Series Analysis and Its
Applications* (2017), section 6.4, for missing observations; Bucy & Joseph (1968) for the
Joseph-form update.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from rnnlab._validation import check_lengths, check_positive_int, check_rank
from rnnlab.classic import _loops
from rnnlab.classic._em import as_generator, run_em
from rnnlab.errors import InputError, InputTypeError

_LOG_2PI = math.log(2.0 * math.pi)

PARAMETER_NAMES = (
    "transition_matrix",
    "emission_matrix",
    "transition_cov",
    "emission_cov",
    "initial_mean",
    "initial_cov",
    "input_matrix",
    "feedthrough_matrix",
)
COV_NAMES = ("transition_cov", "emission_cov", "initial_cov")
OFFSET_NAMES = ("transition_offset", "observation_offset")


class LDSParams(NamedTuple):
    r"""The parameters of a linear dynamical system, as plain tensors.

    transition_matrix :math:`A` (S, S); emission_matrix :math:`C` (D, S);
    transition_cov :math:`Q` (S, S); emission_cov :math:`R` (D, D);
    initial_mean :math:`\mu_0` (S,); initial_cov :math:`\Sigma_0` (S, S);
    input_matrix :math:`B` (S, U); feedthrough_matrix :math:`D` (D, U) (U may be 0).
    """

    transition_matrix: Tensor
    emission_matrix: Tensor
    transition_cov: Tensor
    emission_cov: Tensor
    initial_mean: Tensor
    initial_cov: Tensor
    input_matrix: Tensor
    feedthrough_matrix: Tensor


class FilterResult(NamedTuple):
    r"""Kalman filter output.

    means: (B, T, S) filtered means :math:`E[x_t \mid y_{0:t}]`.
    covs: (B, T, S, S) filtered covariances :math:`\mathrm{Cov}[x_t \mid y_{0:t}]`.
    log_likelihood: (B,) :math:`\log p(y_{0:T-1})` of each sequence (observed entries only).
    """

    means: Tensor
    covs: Tensor
    log_likelihood: Tensor


class SmootherResult(NamedTuple):
    r"""RTS smoother output: means (B, T, S) :math:`E[x_t \mid y_{0:T-1}]` and covs
    (B, T, S, S) :math:`\mathrm{Cov}[x_t \mid y_{0:T-1}]`."""

    means: Tensor
    covs: Tensor


class ForecastResult(NamedTuple):
    r"""Predictive distribution of future observations: means (B, H, D)
    :math:`E[y_{T+h} \mid y_{0:T-1}]` and covs (B, H, D, D), h = 0..H-1."""

    means: Tensor
    covs: Tensor


class LDSSample(NamedTuple):
    """Sampled observations (B, T, D) and hidden states (B, T, S) (the order of every
    classical model's sample: observations first, as hmmlearn's ``(X, Z)``)."""

    observations: Tensor
    states: Tensor


class _FilterTrace(NamedTuple):
    """Everything the smoother and EM need from the filter (covariances have batch Bc,
    which is 1 when shared by all sequences, else B)."""

    means: Tensor  # (B, T, S) filtered
    covs: Tensor  # (Bc, T, S, S) filtered
    pred_means: Tensor  # (B, T, S) one-step predicted, E[x_t | y_{0:t-1}]
    pred_covs: Tensor  # (Bc, T, S, S)
    log_likelihood: Tensor  # (B,)
    steady_from: int  # covariances frozen from this step on (T when never)


# --------------------------------------------------------------------------- kernels


def _symmetrize(P: Tensor) -> Tensor:
    return 0.5 * (P + P.mT)


def _predict(m: Tensor, P: Tensor, A: Tensor, Q: Tensor, bu: Tensor | None):
    r"""Time update: :math:`m^- = A m + B u_t`, :math:`P^- = A P A^\top + Q`.

    m: (B, 1, S) row vectors; P: (Bc, S, S); A, Q: (S, S) or (Bc, S, S); bu: (B, 1, S) or
    None.
    """
    if A.dim() == 2:
        A, Q = A.expand_as(P), Q.expand_as(P)
    m_pred = m @ A.mT
    if bu is not None:
        m_pred = m_pred + bu
    P_pred = torch.baddbmm(Q, torch.bmm(A, P), A.mT)
    return m_pred, P_pred


def _condition_on(
    m_pred: Tensor, P_pred: Tensor, C: Tensor, R: Tensor, y: Tensor, eye: Tensor | None = None
):
    r"""Measurement update in Joseph form with Cholesky solves.

    .. math::
        S = C P^- C^\top + R,\quad K = P^- C^\top S^{-1},\quad
        m = m^- + K (y - C m^-),\quad
        P = (I - K C) P^- (I - K C)^\top + K R K^\top

    m_pred: (B, 1, S); P_pred: (Bc, S, S); C: (Bc, D, S); R: (Bc, D, D); y: (B, 1, D) (the
    observation minus :math:`D u_t`, zero where missing; missing rows of C are zero and
    the missing block of R is the identity, so they change nothing); eye: the identity
    (Bc, S, S), made when None. Returns the filtered mean and covariance (symmetrised),
    the Cholesky factor of S (Bc, D, D), the innovation (B, 1, D) and the Cholesky info
    (Bc,).
    """
    if eye is None:
        eye = torch.eye(P_pred.shape[-1], dtype=P_pred.dtype, device=P_pred.device)
        eye = eye.expand_as(P_pred)
    CP = torch.bmm(C, P_pred)  # (Bc, D, S)
    S = torch.baddbmm(R, CP, C.mT)  # (Bc, D, D)
    L, info = torch.linalg.cholesky_ex(S)
    Kt = torch.cholesky_solve(CP, L)  # (Bc, D, S) = S^{-1} C P^- = K^T
    r = y - m_pred @ C.mT  # (B, 1, D) innovation
    m = m_pred + r @ Kt
    M = torch.baddbmm(eye, Kt.mT, C, alpha=-1.0)  # I - K C
    P = torch.baddbmm(torch.bmm(Kt.mT, torch.bmm(R, Kt)), torch.bmm(M, P_pred), M.mT)
    return m, (P + P.mT).mul_(0.5), L, r, info


def _masked_emission(C: Tensor, R: Tensor, mask: Tensor):
    """Per-step emission with missing coordinates removed: rows of C zeroed, the missing
    block of R replaced by the identity (decoupled). mask: (B, T, D) in {0, 1}."""
    Cm = mask.unsqueeze(-1) * C  # (B, T, D, S)
    Rm = mask.unsqueeze(-1) * R * mask.unsqueeze(-2) + torch.diag_embed(1.0 - mask)
    return Cm, Rm  # (B, T, D, D)


def _filter(
    params: LDSParams,
    y: Tensor,
    inputs: Tensor | None = None,
    mask: Tensor | None = None,
    steady_state: bool = True,
    burn: int = 0,
) -> _FilterTrace:
    """Kalman filter over a batch; y (B, T, D) with zeros where mask (B, T, D) is 0.

    burn: with a diffuse initial state (S dimensions), the log-likelihood leaves out the
    steps up to the one at which the observed scalars first add up to ``burn`` (the
    diffuse burn-in; statsmodels' ``loglikelihood_burn``).

    steady_state: without a mask the covariance recursion is the same for every sequence
    and converges (a Riccati recursion); once the filtered covariance changes by less than
    a few units in the last place it is frozen, and the remaining steps update only the
    means with the frozen gain, m_t = (I - K C)(A m_{t-1} + B u_t) + K (y_t - D u_t):
    one small matrix product per step. The result differs from the full recursion by
    rounding error only (tests check 1e-12). One sequence without autograd, where the
    compiled loops are available (``rnnlab[fast]``), runs the full recursion compiled
    instead (faster than the frozen-gain loop in torch).
    """
    A, C, Q, R, m0, P0, Bm, Dm = params
    batch, steps, obs_dim = y.shape
    bu = None
    if inputs is not None and inputs.shape[-1] > 0:
        bu = (inputs @ Bm.mT).unsqueeze(-2)  # (B, T, 1, S)
        y = y - inputs @ Dm.mT
    if mask is None:
        Cs, Rs = C.unsqueeze(0), R.unsqueeze(0)  # (1, D, S), (1, D, D): shared by all b
        n_obs = torch.full((batch, steps), float(obs_dim), dtype=y.dtype, device=y.device)
    else:
        y = y * mask
        Cm, Rm = _masked_emission(C, R, mask)
        n_obs = mask.sum(-1)  # (B, T)
    y_rows = y.unsqueeze(-2)  # (B, T, 1, D)
    tol = 8.0 * torch.finfo(y.dtype).eps
    check = steady_state and mask is None
    if check and batch == 1 and _loops.lds_ready(y, 1, 1):
        check = False  # one sequence: the compiled full recursion is faster than freezing

    if not check and _numpy_ok(y):  # the full recursion without autograd: numpy loop
        Cseq = Cs.unsqueeze(1) if mask is None else Cm  # (Bc, 1 or T, D, S)
        Rseq = Rs.unsqueeze(1) if mask is None else Rm
        if _loops.lds_ready(y, batch, Cseq.shape[0]):  # compiled loop (rnnlab[fast])
            try:
                out = _loops.kalman_filter_full(m0, P0, A, Q, Cseq, Rseq, y, bu, n_obs)
            except _loops.KalmanStepError as e:
                raise InputError(
                    f"emission_cov: the innovation covariance C P C^T + R is not positive "
                    f"definite at time step {e.step}; check that emission_cov and the "
                    "covariances are SPD"
                ) from None
            means, pmeans, _, covs, pcovs, _, terms = out
            if burn:
                seen = n_obs.cumsum(-1)
                before = torch.cat([torch.zeros_like(seen[:, :1]), seen[:, :-1]], -1)
                terms = terms * (before >= burn).to(terms.dtype)
            return _FilterTrace(means, covs, pmeans, pcovs, terms.sum(-1), steps)
        means, pmeans, rs, covs, pcovs, Ls = _full_recursion_numpy(m0, P0, A, Q, Cseq, Rseq, y, bu)
        z = torch.linalg.solve_triangular(Ls, rs.unsqueeze(-1), upper=False).squeeze(-1)
        logdet = 2.0 * torch.log(torch.diagonal(Ls, dim1=-2, dim2=-1)).sum(-1)  # (Bc, T)
        terms = -0.5 * (n_obs * _LOG_2PI + logdet + z.pow(2).sum(-1))  # (B, T)
        if burn:
            seen = n_obs.cumsum(-1)
            before = torch.cat([torch.zeros_like(seen[:, :1]), seen[:, :-1]], -1)
            terms = terms * (before >= burn).to(terms.dtype)
        return _FilterTrace(means, covs, pmeans, pcovs, terms.sum(-1), steps)
    m_pred = m0.expand(batch, 1, -1)  # (B, 1, S)
    P_pred = P0.expand(1 if mask is None else batch, -1, -1)  # (Bc, S, S)
    pred_m, pred_P, filt_m, filt_P, chols, innov, infos = [], [], [], [], [], [], []
    m, P = m_pred, P_pred  # overwritten at t = 0 before use
    A_b, Q_b = A.expand_as(P_pred), Q.expand_as(P_pred)  # (Bc, S, S) views
    eye = torch.eye(A.shape[0], dtype=A.dtype, device=A.device).expand_as(P_pred)
    steady_from = steps
    for t in range(steps):
        if t > 0:
            m_pred, P_pred = _predict(m, P, A_b, Q_b, None if bu is None else bu[:, t])
        if mask is not None:
            Cs, Rs = Cm[:, t], Rm[:, t]
        P_prev = P
        m, P, L, r, info = _condition_on(m_pred, P_pred, Cs, Rs, y_rows[:, t], eye)
        pred_m.append(m_pred)
        pred_P.append(P_pred)
        filt_m.append(m)
        filt_P.append(P)
        chols.append(L)
        innov.append(r)
        infos.append(info)
        if check and t > 0 and bool((P - P_prev).abs().amax() <= tol * P.abs().amax()):
            steady_from = t + 1
            break
    info = torch.stack(infos, 1)  # (Bc, T)
    if bool((info != 0).any()):
        t_bad = int((info != 0).any(0).nonzero()[0, 0])
        raise InputError(
            f"emission_cov: the innovation covariance C P C^T + R is not positive definite "
            f"at time step {t_bad}; check that emission_cov and the covariances are SPD"
        )
    means = torch.cat(filt_m, 1)  # (B, t, S)
    pmeans = torch.cat(pred_m, 1)
    rs = torch.cat(innov, 1)  # (B, t, D)
    covs, pcovs, Ls = torch.stack(filt_P, 1), torch.stack(pred_P, 1), torch.stack(chols, 1)
    n = steps - steady_from
    if n > 0:  # steady phase: frozen gain K (S, D), M = I - K C
        Kt = torch.cholesky_solve(C @ P_pred[0], L[0])  # (D, S) = K^T
        M = torch.eye(A.shape[0], dtype=A.dtype, device=A.device) - Kt.mT @ C
        FT = A.mT @ M.mT  # (S, S): m_t = m_{t-1} F^T + g_t
        y_ss = y[:, steady_from:]  # (B, n, D)
        g = y_ss @ Kt  # (B, n, S)
        if bu is not None:
            g = g + bu[:, steady_from:, 0] @ M.mT
        mt = m[:, 0]  # (B, S)
        out = []
        for i in range(n):
            mt = torch.addmm(g[:, i], mt, FT)
            out.append(mt)
        m_ss = torch.stack(out, 1)  # (B, n, S)
        prev = torch.cat([m, m_ss[:, :-1]], 1) @ A.mT  # (B, n, S) predicted means
        if bu is not None:
            prev = prev + bu[:, steady_from:, 0]
        means = torch.cat([means, m_ss], 1)
        pmeans = torch.cat([pmeans, prev], 1)
        rs = torch.cat([rs, y_ss - prev @ C.mT], 1)
        covs = torch.cat([covs, P.unsqueeze(1).expand(-1, n, -1, -1)], 1)
        pcovs = torch.cat([pcovs, P_pred.unsqueeze(1).expand(-1, n, -1, -1)], 1)
        Ls = torch.cat([Ls, L.unsqueeze(1).expand(-1, n, -1, -1)], 1)
    z = torch.linalg.solve_triangular(Ls, rs.unsqueeze(-1), upper=False).squeeze(-1)
    logdet = 2.0 * torch.log(torch.diagonal(Ls, dim1=-2, dim2=-1)).sum(-1)  # (Bc, T)
    terms = -0.5 * (n_obs * _LOG_2PI + logdet + z.pow(2).sum(-1))  # (B, T)
    if burn:  # drop the diffuse steps: those before the observed count reaches burn
        seen = n_obs.cumsum(-1)  # (B, T)
        before = torch.cat([torch.zeros_like(seen[:, :1]), seen[:, :-1]], -1)
        terms = terms * (before >= burn).to(terms.dtype)
    ll = terms.sum(-1)  # (B,)
    return _FilterTrace(means, covs, pmeans, pcovs, ll, steady_from)


def _numpy_ok(y: Tensor) -> bool:
    """The per-step loop may run in numpy (a third of torch's per-call overhead on small
    matrices): CPU, float32/float64, no autograd."""
    return (
        not torch.is_grad_enabled()
        and y.device.type == "cpu"
        and y.dtype in (torch.float32, torch.float64)
    )


def _one_sequence_recursion(An, Qn, Cn, CnT, Rn, yn, bun, m, P, out) -> int:
    """:func:`_full_recursion_numpy`'s loop for one sequence, on 2-D numpy arrays: An, Qn
    (S, S), Cn (T or 1, D, S), CnT its transpose, Rn (T or 1, D, D), yn (T, D), bun (T, S)
    or None, m (S,), P (S, S); out: the filtered and predicted means (T, S), innovations
    (T, D), filtered and predicted covariances (T, S, S) and innovation covariances
    (T, D, D), written in place. Returns the steps done (T unless a singular innovation
    covariance stopped it)."""
    fm, pm, rr, fP, pP, Sn = out
    T = yn.shape[0]
    dot = np.dot
    AT = An.T.copy()
    eye = np.eye(An.shape[0], dtype=An.dtype)
    const = Cn.shape[0] == 1
    empty = ~Cn.any(axis=(1, 2))  # (T or 1,) C = 0: every observation missing
    for t in range(T):
        if t > 0:  # time update
            m = dot(An, m)
            if bun is not None:
                m += bun[t]
            P = dot(dot(An, P), AT) + Qn
        i = 0 if const else t
        Ct, CtT, Rt = Cn[i], CnT[i], Rn[i]
        pm[t] = m
        pP[t] = P
        if empty[i]:  # no update (K = 0, r = y): the full update's numbers
            Sn[t] = Rt
            P = 0.5 * (P + P.T)
            fm[t] = m
            fP[t] = P
            rr[t] = yn[t]
            continue
        CP = dot(Ct, P)  # (D, S)
        Sm = dot(CP, CtT) + Rt  # (D, D)
        Sn[t] = Sm
        try:
            Kt = np.linalg.solve(Sm, CP)  # (D, S) = K^T
        except np.linalg.LinAlgError:  # singular: reported by the caller's check
            return t + 1
        r = yn[t] - dot(Ct, m)  # (D,)
        m = m + dot(r, Kt)
        KtT = Kt.T
        M = eye - dot(KtT, Ct)  # I - K C
        P = dot(dot(M, P), M.T) + dot(dot(KtT, Rt), Kt)
        P = 0.5 * (P + P.T)
        fm[t] = m
        fP[t] = P
        rr[t] = r
    return T


def _full_recursion_numpy(m0, P0, A, Q, Cseq, Rseq, y, bu):
    """The filter's full recursion (:func:`_predict` then :func:`_condition_on` at every
    step, Joseph form) as a numpy loop on the tensors' memory. Cseq (Bc, T or 1, D, S) and
    Rseq (Bc, T or 1, D, D): the (masked) emission of each step; y (B, T, D) with D u
    subtracted and zeros where missing; bu (B, T, 1, S) or None. Returns filtered and
    predicted means (B, T, S), innovations (B, T, D), filtered and predicted covariances
    (Bc, T, S, S) and the Cholesky factors of the innovation covariances (Bc, T, D, D)."""
    B, T, D = y.shape
    S = A.shape[0]
    Bc = Cseq.shape[0]
    dt = y.dtype
    An, Qn = A.detach().numpy(), Q.detach().numpy()
    Cn, Rn = Cseq.detach().contiguous().numpy(), Rseq.detach().contiguous().numpy()
    yn = y.detach().contiguous().numpy()
    bun = None if bu is None else bu[:, :, 0].detach().contiguous().numpy()  # (B, T, S)
    out = {
        "fm": torch.empty(B, T, S, dtype=dt),
        "pm": torch.empty(B, T, S, dtype=dt),
        "r": torch.empty(B, T, D, dtype=dt),
        "fP": torch.empty(Bc, T, S, S, dtype=dt),
        "pP": torch.empty(Bc, T, S, S, dtype=dt),
        "L": torch.empty(Bc, T, D, D, dtype=dt),
    }
    fm, pm, rr, fP, pP, Lo = (out[k].numpy() for k in ("fm", "pm", "r", "fP", "pP", "L"))
    m = np.broadcast_to(m0.detach().numpy(), (B, S)).copy()
    P = np.broadcast_to(P0.detach().numpy(), (Bc, S, S)).copy()
    eye = np.eye(S, dtype=An.dtype)
    AT = An.T.copy()
    const = Cn.shape[1] == 1
    CnT = Cn.transpose(0, 1, 3, 2).copy()  # (Bc, T or 1, S, D)
    # steps where C is zero for every sequence (every observation missing): no update
    # (K = 0, r = y), the same numbers as the full update, in 2 operations instead of 14
    empty = ~Cn.any(axis=(0, 2, 3))  # (T or 1,)
    Sn = np.empty((Bc, T, D, D), dtype=An.dtype)  # innovation covariances, factored at the end
    steps = T
    single = B == 1 and Bc == 1
    if single:  # one sequence: the same loop on 2-D arrays (np.dot: ~half matmul's cost)
        bu1 = None if bun is None else bun[0]
        out1 = (fm[0], pm[0], rr[0], fP[0], pP[0], Sn[0])
        steps = _one_sequence_recursion(An, Qn, Cn[0], CnT[0], Rn[0], yn[0], bu1, m[0], P[0], out1)
    for t in range(0 if single else T):
        if t > 0:  # time update
            m = m @ AT
            if bun is not None:
                m += bun[:, t]
            P = An @ P @ AT + Qn
        i = 0 if const else t
        Ct, CtT, Rt = Cn[:, i], CnT[:, i], Rn[:, i]  # (Bc, D, S), (Bc, S, D), (Bc, D, D)
        pm[:, t] = m
        pP[:, t] = P
        if empty[i]:
            Sn[:, t] = Rt
            r = yn[:, t]  # y - C m with C = 0
            P = 0.5 * (P + P.transpose(0, 2, 1))
            fm[:, t] = m
            fP[:, t] = P
            rr[:, t] = r
            continue
        CP = Ct @ P  # (Bc, D, S)
        Sm = CP @ CtT + Rt  # (Bc, D, D)
        Sn[:, t] = Sm
        # one LU solve a step (a third of the cost of torch's factor + solve + check); all
        # the Cholesky factors, and the positive-definiteness check, in one call after
        try:
            Kt = np.linalg.solve(Sm, CP)  # (Bc, D, S) = K^T
        except np.linalg.LinAlgError:  # singular: reported by the check below
            steps = t + 1
            break
        r = yn[:, t] - (m[:, None, :] @ CtT)[:, 0]  # (B, D)
        m = m + (r[:, None, :] @ Kt)[:, 0]
        KtT = Kt.transpose(0, 2, 1)
        M = eye - KtT @ Ct  # (Bc, S, S) I - K C
        P = M @ P @ M.transpose(0, 2, 1) + KtT @ Rt @ Kt
        P = 0.5 * (P + P.transpose(0, 2, 1))
        fm[:, t] = m
        fP[:, t] = P
        rr[:, t] = r
    Lt_all, info = torch.linalg.cholesky_ex(torch.from_numpy(Sn[:, :steps]))  # (Bc, T, D, D)
    bad = (info != 0).any(0).nonzero()
    if bad.numel() or steps < T:
        raise InputError(
            f"emission_cov: the innovation covariance C P C^T + R is not positive "
            f"definite at time step {int(bad[0]) if bad.numel() else steps - 1}; check "
            "that emission_cov and the "
            "covariances are SPD"
        )
    Lo[:] = Lt_all.numpy()
    return out["fm"], out["pm"], out["r"], out["fP"], out["pP"], out["L"]


def _smooth(params: LDSParams, trace: _FilterTrace, steady_state: bool = True):
    r"""RTS backward pass (Rauch, Tung & Striebel 1965).

    .. math::
        J_t = P_{t|t} A^\top P_{t+1|t}^{-1},\quad
        m_{t|T} = m_{t|t} + J_t (m_{t+1|T} - m_{t+1|t}),\quad
        P_{t|T} = P_{t|t} + J_t (P_{t+1|T} - P_{t+1|t}) J_t^\top

    The gains and the terms not involving the smoothed quantities are computed for all t
    in batched operations; the loop does one product for the means and two for the
    covariances per step. Where the filter ran in steady state the gains are constant and
    the backward covariance recursion converges too; it is then frozen like the filter's.
    Returns smoothed means (B, T, S), covariances (Bc, T, S, S) and lag-one
    cross-covariances :math:`\mathrm{Cov}[x_{t+1}, x_t \mid y] = P_{t+1|T} J_t^\top`
    (Bc, T-1, S, S).
    """
    A = params.transition_matrix
    mf, Pf, mp, Pp = trace.means, trace.covs, trace.pred_means, trace.pred_covs
    batch, steps, _ = mf.shape
    if steps == 1:
        return mf, Pf, Pf[:, :0]
    if trace.steady_from == steps and _loops.lds_ready(mf, batch, Pf.shape[0]):
        try:  # nothing frozen, one sequence or a small masked batch: the compiled loop
            return _loops.rts_smooth(A, mf, Pf, mp, Pp)
        except _loops.KalmanStepError:
            pass  # reported below
    Lp, info = torch.linalg.cholesky_ex(Pp[:, 1:])  # (Bc, T-1, S, S)
    if bool((info != 0).any()):
        raise InputError(
            "transition_cov: a predicted state covariance is not positive definite; "
            "the smoother needs A P A^T + Q to be SPD"
        )
    JT = torch.cholesky_solve(A @ Pf[:, :-1], Lp)  # (Bc, T-1, S, S) = J_t^T
    c = mf[:, :-1].unsqueeze(-2) - mp[:, 1:].unsqueeze(-2) @ JT  # (B, T-1, 1, S)
    E = Pf[:, :-1] - JT.mT @ Pp[:, 1:] @ JT  # (Bc, T-1, S, S)
    JT_b = _expand_covs(JT, batch)  # (B, T-1, S, S) view
    tol = 8.0 * torch.finfo(mf.dtype).eps
    # gains are constant for t >= steady_from - 1 (filter frozen after steady_from - 1)
    frozen_until = trace.steady_from - 1 if steady_state else steps
    if trace.steady_from == steps and _numpy_ok(mf):  # nothing frozen: the numpy loop
        means = torch.empty_like(mf)
        covs = torch.empty_like(Pf)
        mo, Po = means.numpy(), covs.numpy()
        cn = c[:, :, 0].contiguous().numpy()  # (B, T-1, S)
        En, Jn = E.contiguous().numpy(), JT.contiguous().numpy()  # (Bc, T-1, S, S)
        Jb = JT_b.contiguous().numpy()  # (B, T-1, S, S)
        mo[:, -1] = mf[:, -1].numpy()
        Po[:, -1] = Pf[:, -1].numpy()
        msn, Psn = mo[:, -1], Po[:, -1]
        for t in range(steps - 2, -1, -1):
            msn = cn[:, t] + (msn[:, None, :] @ Jb[:, t])[:, 0]
            Jt = Jn[:, t]
            Psn = En[:, t] + Jt.transpose(0, 2, 1) @ Psn @ Jt
            mo[:, t] = msn
            Po[:, t] = Psn
        covs = _symmetrize(covs)
        return means, covs, covs[:, 1:] @ JT
    ms = mf[:, -1:]  # (B, 1, S)
    Ps = Pf[:, -1]  # (Bc, S, S)
    out_m, out_P = [ms], [Ps]
    converged = False
    for t in range(steps - 2, -1, -1):
        ms = torch.baddbmm(c[:, t], ms, JT_b[:, t])
        if not (converged and t >= frozen_until):
            Ps_prev = Ps
            Ps = torch.baddbmm(E[:, t], JT[:, t].mT @ Ps, JT[:, t])
            if t > frozen_until and not converged:
                converged = bool((Ps - Ps_prev).abs().amax() <= tol * Ps.abs().amax())
        out_m.append(ms)
        out_P.append(Ps)
    means = torch.cat(out_m[::-1], 1)  # (B, T, S)
    covs = _symmetrize(torch.stack(out_P[::-1], 1))  # (Bc, T, S, S)
    cross = covs[:, 1:] @ JT  # (Bc, T-1, S, S)
    return means, covs, cross


@torch.no_grad()
def diffuse_log_likelihood(
    params: LDSParams,
    y: Tensor,
    inputs: Tensor | None = None,
    mask: Tensor | None = None,
    diffuse_cov: Tensor | None = None,
) -> Tensor:
    r"""Exact diffuse log-likelihood (B,) (Koopman 1997; Durbin & Koopman 2012, ch. 5),
    without autograd.

    The initial state is :math:`x_0 \sim N(\mu_0, \kappa P_\infty + P_*)` with
    :math:`\kappa \to \infty`; :math:`P_\infty` is ``diffuse_cov`` (default the identity,
    every state diffuse, and then :math:`P_* = 0`), :math:`P_*` the ``initial_cov`` of
    ``params`` otherwise. The observations are processed one scalar at a time (the
    univariate treatment of Koopman & Durbin 2000, after decorrelating each step's observed
    coordinates by the Cholesky factor of their R block). For each scalar with
    :math:`F_\infty = c P_\infty c^\top > 0` (a diffuse scalar):

    .. math::
        a \mathrel{+}= \frac{M_\infty}{F_\infty} v,\quad
        P_* \mathrel{+}= \frac{F_*}{F_\infty^2} M_\infty M_\infty^\top
          - \frac{M_* M_\infty^\top + M_\infty M_*^\top}{F_\infty},\quad
        P_\infty \mathrel{-}= \frac{M_\infty M_\infty^\top}{F_\infty}

    (:math:`M = P c^\top`, :math:`F_* = c P_* c^\top + r`, :math:`v = y - c a`), and its
    term is left out of the log-likelihood (its :math:`\log F_\infty` depends on the
    arbitrary scale of :math:`P_\infty`); otherwise the ordinary update with the term
    :math:`-\tfrac12(\log 2\pi + \log F_* + v^2/F_*)`. The time update propagates both,
    :math:`P_\infty \leftarrow A P_\infty A^\top`. Once :math:`P_\infty` vanishes (at a
    step boundary) the remaining steps are the ordinary filter (:func:`kalman_filter`)
    started from the state reached. y (B, T, D) with zeros where mask (B, T, D) is 0.
    """
    A, C, Q, R, m0, P0, Bm, Dm = (t.detach().cpu().double() for t in params)
    batch, steps, D = y.shape
    S = A.shape[0]
    yd = y.detach().cpu().double()
    if inputs is not None and inputs.shape[-1] > 0:
        u = inputs.detach().cpu().double()
        bu, yd = u @ Bm.T, yd - u @ Dm.T  # (B, T, S), (B, T, D)
    else:
        bu = None
    obs = torch.ones(batch, steps, D, dtype=torch.bool) if mask is None else mask.cpu().bool()
    Pinf0 = (
        torch.eye(S, dtype=torch.float64)
        if diffuse_cov is None
        else diffuse_cov.detach().cpu().double()
    )
    Pst0 = torch.zeros(S, S, dtype=torch.float64) if diffuse_cov is None else P0
    An, Qn, Cn, Rn = A.numpy(), Q.numpy(), C.numpy(), R.numpy()
    out = torch.zeros(batch, dtype=torch.float64)
    tol = 1e-10  # relative to the scale of P_inf (F_inf below this counts as zero)
    for b in range(batch):
        a = m0.numpy().copy()
        Pi, Ps = Pinf0.numpy().copy(), Pst0.numpy().copy()
        scale = max(float(np.abs(Pi).max()), 1e-300)
        ll = 0.0
        t = 0
        while t < steps:
            if not np.abs(Pi).max() > tol * scale:  # diffuse period over
                break
            o = obs[b, t].numpy()
            if o.any():
                Lr = np.linalg.cholesky(Rn[np.ix_(o, o)])
                Ct = np.linalg.solve(Lr, Cn[o])  # decorrelated rows, unit noise
                yt = np.linalg.solve(Lr, yd[b, t].numpy()[o])
                ll -= np.log(np.diag(Lr)).sum()  # Jacobian of the decorrelation
                for i in range(Ct.shape[0]):
                    c = Ct[i]
                    Mi, Ms = Pi @ c, Ps @ c
                    Fi, Fs = float(c @ Mi), float(c @ Ms) + 1.0
                    v = float(yt[i] - c @ a)
                    if Fi > tol * scale * max(float(c @ c), 1e-300):
                        a = a + Mi * (v / Fi)
                        Ps = (
                            Ps
                            + np.outer(Mi, Mi) * (Fs / Fi**2)
                            - (np.outer(Ms, Mi) + np.outer(Mi, Ms)) / Fi
                        )
                        Pi = Pi - np.outer(Mi, Mi) / Fi
                        ll += float(np.log(Lr[i, i]))  # the left-out term has no Jacobian
                    else:
                        a = a + Ms * (v / Fs)
                        Ps = Ps - np.outer(Ms, Ms) / Fs
                        ll -= 0.5 * (_LOG_2PI + np.log(Fs) + v * v / Fs)
                    Pi, Ps = 0.5 * (Pi + Pi.T), 0.5 * (Ps + Ps.T)
            a = An @ a + (0.0 if bu is None or t + 1 == steps else bu[b, t + 1].numpy())
            Ps = An @ Ps @ An.T + Qn
            Pi = An @ Pi @ An.T
            t += 1
        if t < steps:  # the ordinary filter from the state reached
            rest = params._replace(
                initial_mean=torch.as_tensor(a, dtype=y.dtype, device=y.device),
                initial_cov=torch.as_tensor(0.5 * (Ps + Ps.T), dtype=y.dtype, device=y.device),
            )
            sl = slice(b, b + 1)
            ll += float(
                _filter(
                    rest,
                    y[sl, t:],
                    None if inputs is None else inputs[sl, t:],
                    None if mask is None else mask[sl, t:],
                    steady_state=False,
                ).log_likelihood[0]
            )
        out[b] = ll
    return out.to(dtype=y.dtype, device=y.device)


def _expand_covs(covs: Tensor, batch: int) -> Tensor:
    return covs.expand(batch, *covs.shape[1:]) if covs.shape[0] != batch else covs


def kalman_filter(
    params: LDSParams,
    y: Tensor,
    inputs: Tensor | None = None,
    mask: Tensor | None = None,
    steady_state: bool = True,
    burn: int = 0,
) -> FilterResult:
    """Kalman filter of a batch (pure kernel, differentiable).

    y: (B, T, D) observations, zeros (not NaN) where missing; inputs: (B, T, U) or None;
    mask: (B, T, D) floating 0/1 (1 = observed) or None for fully observed.
    steady_state: freeze the gain once the covariance has converged (see ``_filter``).
    burn: leave the diffuse burn-in out of the log-likelihood (see ``_filter``).
    """
    tr = _filter(params, y, inputs, mask, steady_state, burn)
    return FilterResult(tr.means, _expand_covs(tr.covs, y.shape[0]), tr.log_likelihood)


def rts_smoother(
    params: LDSParams,
    y: Tensor,
    inputs: Tensor | None = None,
    mask: Tensor | None = None,
    steady_state: bool = True,
) -> SmootherResult:
    """Kalman filter then RTS smoother of a batch (pure kernel; arguments as
    :func:`kalman_filter`)."""
    trace = _filter(params, y, inputs, mask, steady_state)
    means, covs, _ = _smooth(params, trace, steady_state)
    return SmootherResult(means, _expand_covs(covs, y.shape[0]))


# ------------------------------------------------------------------------- validation


def _check_spd(name: str, P: Tensor) -> None:
    if not torch.isfinite(P).all():
        raise InputError(
            f"{name}: expected a finite symmetric positive definite matrix, received {P.tolist()}"
        )
    scale = float(P.abs().max()) if P.numel() else 1.0
    if not torch.allclose(P, P.mT, rtol=0.0, atol=1e-8 * max(scale, 1.0)):
        raise InputError(f"{name}: expected a symmetric matrix, received {P.tolist()}")
    if int(torch.linalg.cholesky_ex(P).info) != 0:
        eig = torch.linalg.eigvalsh(P).min().item()
        raise InputError(
            f"{name}: expected a positive definite matrix, received {P.tolist()} "
            f"(smallest eigenvalue {eig:.3g})"
        )


def _check_mask(mask: object, shape) -> Tensor:
    """A bool tensor from ``mask`` (True = observed): bool, or numbers that are all 0 or
    1; ``shape`` (when given) must match."""
    if isinstance(mask, np.ma.MaskedArray):
        raise InputTypeError("mask: expected a bool array, received a numpy masked array")
    try:
        m = mask if isinstance(mask, Tensor) else torch.as_tensor(np.asarray(mask))
    except (TypeError, ValueError) as e:
        raise InputTypeError("mask: expected a bool array (True = observed)") from e
    if m.dtype != torch.bool:
        if m.is_complex() or not bool(((m == 0) | (m == 1)).all()):
            bad = m[(m != 0) & (m != 1)].flatten()[:3].tolist()
            raise InputError(f"mask: expected bool values or 0/1 (1 = observed), received {bad}")
        m = m != 0
    if shape is not None and tuple(m.shape) != tuple(shape):
        raise InputError(f"mask: expected shape {tuple(shape)}, received {tuple(m.shape)}")
    return m


def _check_dtype(dtype: object) -> torch.dtype:
    """float32 or float64 (the linear algebra needs one of them)."""
    if dtype not in (torch.float32, torch.float64):
        raise InputTypeError(f"dtype: expected torch.float32 or torch.float64, received {dtype}")
    return dtype


def _as_float_tensor(name: str, value: object, ref: Tensor, strict: bool = False) -> Tensor:
    """``value`` as a tensor of ``ref``'s dtype and device: numpy arrays, lists and numbers
    are converted; a tensor must be floating point (converted to the model's dtype) on
    ``ref``'s device."""
    if isinstance(value, np.ma.MaskedArray):
        raise InputTypeError(
            f"{name}: a numpy masked array is only understood as observations y "
            "(its mask marks missing values)"
        )
    if isinstance(value, Tensor):
        if not value.is_floating_point():
            raise InputTypeError(
                f"{name}: expected a floating-point tensor, received dtype {value.dtype}"
            )
        if value.device != ref.device:
            raise InputTypeError(
                f"{name}: expected device {ref.device} (the model's), received {value.device}"
            )
        if strict and value.dtype != ref.dtype:
            raise InputTypeError(
                f"{name}: expected dtype {ref.dtype} (the model's), received {value.dtype}"
            )
        return value.to(ref.dtype)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as e:
        raise InputTypeError(f"{name}: expected an array of numbers") from e
    if arr.dtype.kind not in "biuf":
        raise InputTypeError(f"{name}: expected numbers, received an array of {arr.dtype}")
    return torch.as_tensor(arr.astype(np.float64), device=ref.device).to(ref.dtype)


# ---------------------------------------------------------------------------- model


class LinearDynamicalSystem(nn.Module):
    r"""Linear-Gaussian state-space model (linear dynamical system).

    .. math::
        x_0 \sim \mathcal N(\mu_0, \Sigma_0),\qquad
        x_t = A x_{t-1} + B u_t + b + w_t,\quad w_t \sim \mathcal N(0, Q)\quad (t \ge 1),

        y_t = C x_t + D u_t + d + v_t,\quad v_t \sim \mathcal N(0, R)\quad (t \ge 0).

    ======================  =========  ==========================================
    symbol                  shape      attribute
    ======================  =========  ==========================================
    :math:`A`               (S, S)     ``transition_matrix``
    :math:`B`               (S, U)     ``input_matrix``
    :math:`C`               (D, S)     ``emission_matrix``
    :math:`D`               (D, U)     ``feedthrough_matrix``
    :math:`Q`, :math:`R`    (S,S),(D,D) ``transition_cov``, ``emission_cov``
    :math:`\mu_0, \Sigma_0` (S,),(S,S) ``initial_mean``, ``initial_cov``
    :math:`b`, :math:`d`    (S,),(D,)  ``transition_offset``, ``observation_offset``
    ======================  =========  ==========================================

    The offsets (pykalman's ``transition_offsets``/``observation_offsets``, constant) are
    zero unless set; with ``offsets=True`` :meth:`fit` learns them (jointly with the
    matrices, in closed form; hold them with ``fixed=``), otherwise values set by hand
    are used everywhere and held by ``fit``.

    Observations are ``(B, T, D)`` (or unbatched ``(T, D)``), inputs ``(B, T, U)``.
    Missing observations are given by ``mask`` (``(B, T)`` for whole vectors or
    ``(B, T, D)`` per coordinate, True = observed); a partially observed vector
    conditions only on its observed coordinates. ``lengths`` (B,) marks padded steps:
    they are treated as missing, left out of EM's statistics, and zero in the outputs.

    ``forward`` is the differentiable log-likelihood (B,). ``filter``, ``smooth``,
    ``predict``, ``forecast``, ``score`` and ``sample`` are inference methods run without
    autograd. ``fit`` runs EM over many sequences; parameters may be held fixed
    (``fixed=``) and covariances kept diagonal (``diagonal_covs=``). float64 by default.
    """

    def __init__(
        self,
        state_dim: int,
        obs_dim: int,
        input_dim: int = 0,
        diffuse: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        offsets: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(diffuse, bool):
            raise InputTypeError(f"diffuse: expected True or False, received {diffuse!r}")
        if not isinstance(offsets, bool):
            raise InputTypeError(f"offsets: expected True or False, received {offsets!r}")
        self.diffuse = diffuse
        self.offsets = offsets
        check_positive_int("state_dim", state_dim)
        check_positive_int("obs_dim", obs_dim)
        check_positive_int("input_dim", input_dim, minimum=0)
        self.state_dim, self.obs_dim, self.input_dim = state_dim, obs_dim, input_dim
        kw = {"device": device, "dtype": _check_dtype(dtype or torch.float64)}
        gen = torch.Generator().manual_seed(0)
        S, D, U = state_dim, obs_dim, input_dim
        self.transition_matrix = nn.Parameter(0.9 * torch.eye(S, **kw))
        C = torch.randn(D, S, generator=gen, dtype=kw["dtype"]) / math.sqrt(S)
        self.emission_matrix = nn.Parameter(C.to(device))
        self.transition_cov = nn.Parameter(torch.eye(S, **kw))
        self.emission_cov = nn.Parameter(torch.eye(D, **kw))
        self.initial_mean = nn.Parameter(torch.zeros(S, **kw))
        self.initial_cov = nn.Parameter(torch.eye(S, **kw))
        self.input_matrix = nn.Parameter(torch.zeros(S, U, **kw))
        self.feedthrough_matrix = nn.Parameter(torch.zeros(D, U, **kw))
        self.transition_offset = nn.Parameter(torch.zeros(S, **kw))
        self.observation_offset = nn.Parameter(torch.zeros(D, **kw))
        self.history_: list[float] = []
        self.converged_ = False
        self.n_iter_ = 0

    @classmethod
    def from_params(
        cls,
        transition_matrix=None,
        emission_matrix=None,
        transition_cov=None,
        emission_cov=None,
        initial_mean=None,
        initial_cov=None,
        input_matrix=None,
        feedthrough_matrix=None,
        *,
        transition_offset=None,
        observation_offset=None,
        offsets: bool | None = None,
        diffuse: bool = False,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> LinearDynamicalSystem:
        """A model with the given parameters; covariances must be symmetric positive
        definite. Parameters not given get pykalman's defaults: identity transition,
        ``eye(D, S)`` emission, identity covariances, zero initial mean, zero input and
        feedthrough matrices. S, D and U are read from the shapes given. ``dtype`` defaults
        to that of the first floating-point tensor given, else float64; ``device`` to its
        device. ``transition_offset`` (S,) :math:`b` and ``observation_offset`` (D,)
        :math:`d` default to zero; ``offsets`` (whether :meth:`fit` learns them) defaults
        to True when either is given. ``diffuse=True``: see the class docstring."""
        values = {
            "transition_matrix": transition_matrix,
            "emission_matrix": emission_matrix,
            "transition_cov": transition_cov,
            "emission_cov": emission_cov,
            "initial_mean": initial_mean,
            "initial_cov": initial_cov,
            "input_matrix": input_matrix,
            "feedthrough_matrix": feedthrough_matrix,
            "transition_offset": transition_offset,
            "observation_offset": observation_offset,
        }
        given = {k: v for k, v in values.items() if v is not None}
        first = next((v for v in given.values() if isinstance(v, Tensor)), None)
        if dtype is None:
            dtype = first.dtype if first is not None and first.is_floating_point() else None
        if device is None and first is not None:
            device = first.device
        ref = torch.empty(0, dtype=_check_dtype(dtype or torch.float64), device=device)
        arrays = {k: _as_float_tensor(k, v, ref) for k, v in given.items()}

        def dim(names_axes, what):
            for name, axis in names_axes:
                if name in arrays:
                    a = arrays[name]
                    if a.dim() <= axis:
                        raise InputError(f"{name}: expected a matrix, received {tuple(a.shape)}")
                    return a.shape[axis]
            raise InputError(
                f"{what}: cannot be read from the parameters given; pass "
                f"{' or '.join(n for n, _ in names_axes)}"
            )

        S = dim(
            [
                ("transition_matrix", 0),
                ("transition_cov", 0),
                ("initial_mean", 0),
                ("initial_cov", 0),
                ("emission_matrix", 1),
                ("input_matrix", 0),
                ("transition_offset", 0),
            ],
            "state_dim",
        )
        D = dim(
            [
                ("emission_matrix", 0),
                ("emission_cov", 0),
                ("feedthrough_matrix", 0),
                ("observation_offset", 0),
            ],
            "obs_dim",
        )
        U = 0
        for name in ("input_matrix", "feedthrough_matrix"):
            if name in arrays:
                U = arrays[name].shape[-1] if arrays[name].dim() == 2 else -1
                if U < 0:
                    raise InputError(
                        f"{name}: expected a matrix, received {tuple(arrays[name].shape)}"
                    )
                break
        if offsets is None:
            offsets = transition_offset is not None or observation_offset is not None
        model = cls(S, D, U, diffuse=diffuse, device=device, dtype=ref.dtype, offsets=offsets)
        with torch.no_grad():
            model.emission_matrix.copy_(torch.eye(D, S, dtype=ref.dtype, device=device))
            model.transition_matrix.copy_(torch.eye(S, dtype=ref.dtype, device=device))
        model.set_params(**arrays)
        return model

    @property
    def _burn(self) -> int:
        """Scalar observations whose log-likelihood terms the diffuse burn-in drops."""
        return self.state_dim if self.diffuse else 0

    @property
    def _with_offsets(self) -> bool:
        """Whether the recursions carry the offsets (as an extra input that is always 1)."""
        if self.offsets:
            return True
        return bool(self.transition_offset.any()) or bool(self.observation_offset.any())

    def _augment(self, inputs: Tensor | None, batch: int, steps: int) -> Tensor | None:
        """Inputs as the kernels see them: with offsets, a last column of ones is appended
        (B, T, U + 1), so that b and d enter as the last columns of B and D."""
        if not self._with_offsets:
            return inputs
        ref = self.transition_matrix
        ones = torch.ones(batch, steps, 1, dtype=ref.dtype, device=ref.device)
        return ones if inputs is None else torch.cat([inputs, ones], -1)

    def _run_params(self) -> LDSParams:
        """The parameters the recursions use: with offsets, ``[B b]`` and ``[D d]`` as input
        and feedthrough matrices (see :meth:`_augment`); with ``diffuse=True`` the initial
        state is N(0, kappa I) with kappa = 1e12 times the scale of Q, R and the initial
        mean (the large-kappa limit of the exact diffuse initialisation)."""
        p = self.params
        if self._with_offsets:
            p = p._replace(
                input_matrix=torch.cat([p.input_matrix, self.transition_offset[:, None]], 1),
                feedthrough_matrix=torch.cat(
                    [p.feedthrough_matrix, self.observation_offset[:, None]], 1
                ),
            )
        if not self.diffuse:
            return p
        with torch.no_grad():
            scale = max(
                float(torch.diagonal(p.transition_cov).abs().max()),
                float(torch.diagonal(p.emission_cov).abs().max()),
                1.0,
            )
        S = self.state_dim
        eye = torch.eye(S, dtype=p.initial_cov.dtype, device=p.initial_cov.device)
        return p._replace(
            initial_mean=torch.zeros_like(p.initial_mean), initial_cov=1e12 * scale * eye
        )

    def set_params(self, **values: Tensor) -> None:
        """Overwrite parameters by name (shapes and SPD checked)."""
        shapes = self._shapes()
        for name, value in values.items():
            if name not in shapes:
                raise InputError(f"{name}: not a parameter; valid: {', '.join(shapes)}")
            value = _as_float_tensor(name, value, self.transition_matrix)
            if tuple(value.shape) != shapes[name]:
                raise InputError(
                    f"{name}: expected shape {shapes[name]}, received shape {tuple(value.shape)}"
                )
            if not bool(torch.isfinite(value).all()):
                raise InputError(f"{name}: expected finite values, received NaN or inf")
            if name in COV_NAMES:
                _check_spd(name, value)
            with torch.no_grad():
                getattr(self, name).copy_(value)

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        S, D, U = self.state_dim, self.obs_dim, self.input_dim
        return {
            "transition_matrix": (S, S),
            "emission_matrix": (D, S),
            "transition_cov": (S, S),
            "emission_cov": (D, D),
            "initial_mean": (S,),
            "initial_cov": (S, S),
            "input_matrix": (S, U),
            "feedthrough_matrix": (D, U),
            "transition_offset": (S,),
            "observation_offset": (D,),
        }

    @property
    def params(self) -> LDSParams:
        """The parameters as an :class:`LDSParams` tuple (the tensors themselves)."""
        return LDSParams(*(getattr(self, n) for n in PARAMETER_NAMES))

    # ------------------------------------------------------------------ input handling

    def _prepare(self, y, inputs=None, mask=None, lengths=None):
        """Validate and batch; returns y (NaN-free), inputs, float mask or None, lengths,
        and whether the input was unbatched."""
        ref = self.transition_matrix
        if isinstance(y, np.ma.MaskedArray):  # pykalman's idiom: masked = missing
            observed = torch.as_tensor(~np.ma.getmaskarray(y), device=ref.device)
            y = np.ma.getdata(y)
            if mask is None:
                mask = observed
            else:
                mask = _check_mask(mask, observed.shape)
                mask = mask & observed
        y = _as_float_tensor("y", y, ref, strict=True)
        if y.dim() == 1 and self.obs_dim == 1:
            y = y.unsqueeze(-1)  # (T,) -> (T, 1)
        check_rank("y", y, (2, 3), "(B, T, D) or (T, D)")
        unbatched = y.dim() == 2
        if unbatched:
            y = y.unsqueeze(0)
        if y.shape[-1] != self.obs_dim or y.shape[1] == 0:
            raise InputError(
                f"y: expected shape (B, T, {self.obs_dim}) with T >= 1, "
                f"received shape {tuple(y.shape)}"
            )
        if y.dtype != ref.dtype:
            raise InputTypeError(
                f"y: expected dtype {ref.dtype} (as the model), received {y.dtype}"
            )
        batch, steps, _ = y.shape
        if inputs is not None:
            inputs = _as_float_tensor("inputs", inputs, ref, strict=True)
            if unbatched and inputs.dim() == 2:
                inputs = inputs.unsqueeze(0)
            if inputs.shape[:2] != (batch, steps) or inputs.shape[-1] != self.input_dim:
                raise InputError(
                    f"inputs: expected shape ({batch}, {steps}, {self.input_dim}), "
                    f"received shape {tuple(inputs.shape)}"
                )
            if not torch.isfinite(inputs).all():
                raise InputError("inputs: expected finite values, received NaN or inf")
        elif self.input_dim > 0:
            raise InputError(
                f"inputs: the model has input_dim={self.input_dim}, received inputs=None"
            )
        if mask is not None:
            mask = _check_mask(mask, None).to(y.device)
            if unbatched and mask.dim() in (1, 2) and mask.shape[0] == steps:
                mask = mask.unsqueeze(0)
            ok = tuple(mask.shape) in ((batch, steps), (batch, steps, self.obs_dim))
            if not ok:
                raise InputError(
                    f"mask: expected shape ({batch}, {steps}) or ({batch}, {steps}, "
                    f"{self.obs_dim}) (as y), received shape {tuple(mask.shape)}"
                )
            if mask.dim() == 2:
                mask = mask.unsqueeze(-1).expand(batch, steps, self.obs_dim)
        if lengths is not None:
            lengths = check_lengths(lengths, batch, steps, y.device)
            valid = torch.arange(steps, device=y.device) < lengths.unsqueeze(1)  # (B, T)
            valid = valid.unsqueeze(-1).expand(batch, steps, self.obs_dim)
            mask = valid if mask is None else mask & valid
        nan = torch.isnan(y)
        if mask is None:
            if bool(nan.any()):
                b, t, d = (int(i) for i in nan.nonzero()[0])
                raise InputError(
                    f"y: contains NaN (first at batch {b}, step {t}, coordinate {d}) and no "
                    f"mask was given; pass mask=~torch.isnan(y) to treat them as missing"
                )
        else:
            if bool((nan & mask).any()):
                raise InputError("y: contains NaN where mask says observed")
            y = torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))
            if bool(mask.all()):
                mask = None
            else:
                mask = mask.to(y.dtype)
        if not torch.isfinite(y).all():
            raise InputError("y: expected finite observations, received inf")
        inputs = self._augment(inputs, batch, steps)
        return y, inputs, mask, lengths, unbatched

    @staticmethod
    def _zero_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
        if lengths is None:
            return x
        valid = torch.arange(x.shape[1], device=x.device) < lengths.unsqueeze(1)
        return x * valid.reshape(*valid.shape, *([1] * (x.dim() - 2))).to(x.dtype)

    # ---------------------------------------------------------------------- inference

    def forward(self, y, inputs=None, mask=None, lengths=None) -> Tensor:
        """Differentiable log-likelihood of each sequence: (B,), or a scalar if unbatched."""
        y, inputs, mask, lengths, unbatched = self._prepare(y, inputs, mask, lengths)
        ll = _filter(self._run_params(), y, inputs, mask, burn=self._burn).log_likelihood
        return ll[0] if unbatched else ll

    @torch.no_grad()
    def filter(self, y, inputs=None, mask=None, lengths=None) -> FilterResult:
        """Kalman filter: filtered means (B, T, S), covs (B, T, S, S), log-likelihood (B,)."""
        y, inputs, mask, lengths, unbatched = self._prepare(y, inputs, mask, lengths)
        res = kalman_filter(self._run_params(), y, inputs, mask, burn=self._burn)
        res = FilterResult(
            self._zero_padded(res.means, lengths),
            self._zero_padded(res.covs, lengths),
            res.log_likelihood,
        )
        return FilterResult(*(r[0] for r in res)) if unbatched else res

    @torch.no_grad()
    def smooth(self, y, inputs=None, mask=None, lengths=None) -> SmootherResult:
        """RTS smoother: smoothed means (B, T, S) and covs (B, T, S, S)."""
        y, inputs, mask, lengths, unbatched = self._prepare(y, inputs, mask, lengths)
        res = rts_smoother(self._run_params(), y, inputs, mask)
        res = SmootherResult(
            self._zero_padded(res.means, lengths), self._zero_padded(res.covs, lengths)
        )
        return SmootherResult(*(r[0] for r in res)) if unbatched else res

    @torch.no_grad()
    def score(self, y, inputs=None, mask=None, lengths=None) -> float:
        """Total log-likelihood of all sequences (higher is better)."""
        y, inputs, mask, lengths, _ = self._prepare(y, inputs, mask, lengths)
        p = self._run_params()
        if self.diffuse:  # the exact diffuse initialisation
            return float(diffuse_log_likelihood(p, y, inputs, mask).sum())
        return float(_filter(p, y, inputs, mask, burn=self._burn).log_likelihood.sum())

    @torch.no_grad()
    def predict(self, y, inputs=None, mask=None, lengths=None) -> Tensor:
        r"""The most likely hidden states given all observations: the smoothed means
        :math:`E[x_t \mid y_{0:T-1}]` (B, T, S) (for a linear-Gaussian model the joint
        mode of the state path equals the smoothed means). As the HMM's ``predict``."""
        return self.smooth(y, inputs, mask, lengths).means

    @torch.no_grad()
    def one_step_forecast(self, y, inputs=None, mask=None, lengths=None) -> Tensor:
        r"""One-step-ahead predicted observations :math:`E[y_t \mid y_{0:t-1}]`, same
        shape as y (entry t uses only the observations before t)."""
        y, inputs, mask, lengths, unbatched = self._prepare(y, inputs, mask, lengths)
        p = self._run_params()
        tr = _filter(p, y, inputs, mask)
        out = tr.pred_means @ p.emission_matrix.mT  # (B, T, D)
        if inputs is not None:
            out = out + inputs @ p.feedthrough_matrix.mT
        out = self._zero_padded(out, lengths)
        return out[0] if unbatched else out

    @torch.no_grad()
    def filter_update(
        self, filtered_mean, filtered_cov, observation=None, input=None
    ) -> tuple[Tensor, Tensor]:
        r"""One online step (pykalman's ``filter_update``): from the filtered state at
        t-1, :math:`(m_{t-1}, P_{t-1})` ((S,) and (S, S), or batched (B, S), (B, S, S)),
        predict step t and condition on ``observation`` y_t ((D,) or (B, D); None, or NaN
        entries, for missing). ``input``: u_t ((U,) or (B, U)) when the model has inputs.
        Returns the filtered mean and covariance at t."""
        p = self._run_params() if self._with_offsets else self.params
        ref = p.transition_matrix
        m = _as_float_tensor("filtered_mean", filtered_mean, ref, strict=True)
        P = _as_float_tensor("filtered_cov", filtered_cov, ref, strict=True)
        S, D = self.state_dim, self.obs_dim
        unbatched = m.dim() == 1
        m2, P2 = (m.unsqueeze(0), P.unsqueeze(0)) if unbatched else (m, P)
        B = m2.shape[0]
        if m2.shape != (B, S) or P2.shape != (B, S, S):
            raise InputError(
                f"filtered_mean/filtered_cov: expected shapes ({S},) and ({S}, {S}) (or "
                f"batched), received {tuple(m.shape)} and {tuple(P.shape)}"
            )
        bu = None
        du = None
        if self.input_dim or self._with_offsets:
            if self.input_dim and input is None:
                raise InputError(f"input: the model has input_dim={self.input_dim}, received None")
            u = None
            if self.input_dim:
                u = _as_float_tensor("input", input, ref, strict=True).reshape(B, self.input_dim)
            u = self._augment(None if u is None else u[:, None], B, 1)[:, 0]  # (B, U [+1])
            bu = (u @ p.input_matrix.mT).unsqueeze(1)  # (B, 1, S)
            du = u @ p.feedthrough_matrix.mT  # (B, D)
        m_pred, P_pred = _predict(m2.unsqueeze(1), P2, p.transition_matrix, p.transition_cov, bu)
        if observation is None:
            obs = torch.full((B, D), float("nan"), dtype=ref.dtype, device=ref.device)
        else:
            obs = _as_float_tensor("observation", observation, ref, strict=True).reshape(B, D)
        seen = ~torch.isnan(obs)  # (B, D)
        y = torch.where(seen, obs, torch.zeros_like(obs))
        if du is not None:
            y = y - du * seen
        mask = seen.to(ref.dtype).unsqueeze(1)  # (B, 1, D)
        Cm, Rm = _masked_emission(p.emission_matrix, p.emission_cov, mask)
        m_new, P_new, _, _, info = _condition_on(
            m_pred, P_pred, Cm[:, 0], Rm[:, 0], (y * seen).unsqueeze(1)
        )
        if bool((info != 0).any()):
            raise InputError("emission_cov: the innovation covariance is not positive definite")
        m_new = m_new[:, 0]
        return (m_new[0], P_new[0]) if unbatched else (m_new, P_new)

    @torch.no_grad()
    def forecast(self, y, steps: int, inputs=None, mask=None) -> ForecastResult:
        r"""Forecast the next ``steps`` observations after the end of y.

        Returns means (B, steps, D) and covariances (B, steps, D, D) of
        :math:`y_{T+h} \mid y_{0:T-1}`. With inputs, pass them for the observed and the
        future steps: (B, T + steps, U).
        """
        check_positive_int("steps", steps)
        y_in = y if isinstance(y, Tensor) else torch.as_tensor(y)
        T = y_in.shape[-2]
        past = None
        future = None
        if inputs is not None:
            inputs = torch.as_tensor(inputs, dtype=self.transition_matrix.dtype)
            if inputs.shape[-2] != T + steps:
                raise InputError(
                    f"inputs: expected {T + steps} steps (observed + forecast), "
                    f"received shape {tuple(inputs.shape)}"
                )
            past, future = inputs[..., :T, :], inputs[..., T:, :]
        y, past, mask, _, unbatched = self._prepare(y, past, mask)
        if future is not None and future.dim() == 2:
            future = future.unsqueeze(0)
        if self._with_offsets:
            future = self._augment(future, y.shape[0], steps)
        p = self._run_params()
        tr = _filter(p, y, past, mask)
        m = tr.means[:, -1:]  # (B, 1, S)
        P = tr.covs[:, -1]  # (Bc, S, S)
        means, covs = [], []
        for h in range(steps):
            bu = None if future is None else (future[:, h] @ p.input_matrix.mT).unsqueeze(1)
            m, P = _predict(m, P, p.transition_matrix, p.transition_cov, bu)
            ym = m @ p.emission_matrix.mT  # (B, 1, D)
            if future is not None:
                ym = ym + (future[:, h] @ p.feedthrough_matrix.mT).unsqueeze(1)
            yc = p.emission_matrix @ P @ p.emission_matrix.mT + p.emission_cov
            means.append(ym)
            covs.append(yc)
        means_t = torch.cat(means, 1)
        covs_t = _expand_covs(torch.stack(covs, 1), means_t.shape[0])
        if unbatched:
            return ForecastResult(means_t[0], covs_t[0])
        return ForecastResult(means_t, covs_t)

    @torch.no_grad()
    def sample(
        self,
        num_sequences: int,
        length: int,
        inputs: Tensor | None = None,
        generator: torch.Generator | int | None = None,
    ) -> LDSSample:
        """Draw observations (B, T, D) and states (B, T, S) from the model; ``generator``
        is a ``torch.Generator``, an int seed or None (fresh entropy)."""
        check_positive_int("num_sequences", num_sequences)
        check_positive_int("length", length)
        if self.diffuse:
            raise InputError(
                "diffuse: a diffuse initial state has no distribution to sample from; "
                "make the model with diffuse=False and set initial_mean/initial_cov"
            )
        p = self._run_params() if self._with_offsets else self.params
        dtype, device = p.transition_matrix.dtype, p.transition_matrix.device
        gen = as_generator(generator, device)
        if inputs is not None:
            inputs = _as_float_tensor("inputs", inputs, p.transition_matrix, strict=True)
        B, S, D = num_sequences, self.state_dim, self.obs_dim
        if self.input_dim and inputs is None:
            raise InputError(f"inputs: the model has input_dim={self.input_dim}, got None")
        if inputs is not None and tuple(inputs.shape) != (B, length, self.input_dim):
            raise InputError(
                f"inputs: expected shape ({B}, {length}, {self.input_dim}), "
                f"received shape {tuple(inputs.shape)}"
            )
        Lq = torch.linalg.cholesky(p.transition_cov)
        Lr = torch.linalg.cholesky(p.emission_cov)
        L0 = torch.linalg.cholesky(p.initial_cov)
        inputs = self._augment(inputs, B, length)
        w = torch.randn(B, length, S, generator=gen, dtype=dtype, device=device) @ Lq.mT
        v = torch.randn(B, length, D, generator=gen, dtype=dtype, device=device) @ Lr.mT
        x = p.initial_mean + torch.randn(B, S, generator=gen, dtype=dtype, device=device) @ L0.mT
        if inputs is not None:
            w = w + inputs @ p.input_matrix.mT
        states = [x]
        for t in range(1, length):
            x = x @ p.transition_matrix.mT + w[:, t]
            states.append(x)
        xs = torch.stack(states, 1)  # (B, T, S)
        ys = xs @ p.emission_matrix.mT + v
        if inputs is not None:
            ys = ys + inputs @ p.feedthrough_matrix.mT
        return LDSSample(ys, xs)

    # ---------------------------------------------------------------------------- EM

    def fit(
        self,
        y,
        inputs=None,
        mask=None,
        lengths=None,
        *,
        n_iter: int = 1000,
        tol: float = 1e-10,
        rtol: float = 1e-13,
        init: str = "auto",
        fixed: Collection[str] = (),
        diagonal_covs: Collection[str] = (),
        verbose: bool = False,
    ) -> LinearDynamicalSystem:
        """Expectation-maximisation over all sequences (Shumway & Stoffer 1982).

        Args:
            y, inputs, mask, lengths: the data (as :meth:`filter`).
            n_iter: maximum number of EM iterations (M-steps).
            tol, rtol: stop when the log-likelihood changes by less than
                ``tol + rtol * |L|`` (L the total log-likelihood). EM on state-space
                models converges slowly (linearly, with a rate near 1 for weakly
                identified variances): the defaults are tight so that the standard
                examples (the Nile local-level model) reach the maximum-likelihood
                estimate to four digits.
            init: ``"none"`` (start from the current parameters, continuing
                ``history_``) or ``"auto"`` (the same; the parameters are the
                constructor's defaults or those of :meth:`from_params`).
            fixed: names of parameters held at their current values (from
                ``PARAMETER_NAMES``).
            diagonal_covs: names of covariances (``transition_cov``, ``emission_cov``,
                ``initial_cov``) kept diagonal.
            verbose: print the log-likelihood of each iteration.

        ``history_`` holds the log-likelihood after each number of M-steps (the last
        entry is the returned model's), ``converged_`` and ``n_iter_`` (M-steps of this
        call) as in :meth:`rnnlab.classic.HMM.fit`. A decrease beyond rounding, or
        stopping at ``n_iter`` unconverged, gives a
        :class:`~rnnlab.classic.ConvergenceWarning`. The regression in the M-step is
        solved deterministically (minimum-norm where it is rank deficient), so identical
        fits are bitwise equal. Returns self.
        """
        if init not in ("auto", "none"):
            raise InputError(f"init: expected 'auto' or 'none', received {init!r}")
        if isinstance(fixed, str):
            fixed = (fixed,)
        if isinstance(diagonal_covs, str):
            diagonal_covs = (diagonal_covs,)
        for n in fixed:
            if n not in PARAMETER_NAMES + OFFSET_NAMES:
                raise InputError(
                    f"fixed: unknown parameter {n!r}; valid: {PARAMETER_NAMES + OFFSET_NAMES}"
                )
        for n in diagonal_covs:
            if n not in COV_NAMES:
                raise InputError(f"diagonal_covs: unknown covariance {n!r}; valid: {COV_NAMES}")
        with_off = self._with_offsets
        y, inputs, mask, lengths, _ = self._prepare(y, inputs, mask, lengths)
        held = (*fixed, "initial_mean", "initial_cov") if self.diffuse else tuple(fixed)
        if not self.offsets:  # offsets set by hand on a model without them: held
            held = (*held, *OFFSET_NAMES)

        def evaluate():
            p = self._run_params()
            tr = _filter(p, y, inputs, mask, burn=self._burn)
            return tr.log_likelihood.sum(), (p, tr)

        def update(cache):
            p, tr = cache
            new = _m_step(p, tr, y, inputs, mask, lengths, held, diagonal_covs, with_off)
            if with_off:  # the offsets are the last columns of [B b] and [D d]
                U = self.input_dim
                for mat, off in (
                    ("input_matrix", "transition_offset"),
                    ("feedthrough_matrix", "observation_offset"),
                ):
                    if mat in new:
                        new[off] = new[mat][:, U]
                        new[mat] = new[mat][:, :U]
                for name in held:
                    new.pop(name, None)
            for name, value in new.items():
                getattr(self, name).copy_(value)

        # a fit always continues the record: the parameters are the current ones
        run_em(
            self,
            evaluate,
            update,
            n_iter=n_iter,
            tol=tol,
            rtol=rtol,
            resume=True,
            dtype=self.transition_matrix.dtype,
            verbose=verbose,
        )
        return self


def _solve_rows(S_yz: Tensor, S_zz: Tensor) -> Tensor:
    r"""W = S_yz S_zz^{-1} for symmetric positive semidefinite S_zz, deterministic.

    A Cholesky solve when S_zz is well conditioned; otherwise (collinear or constant
    inputs, a state the data do not excite) the minimum-norm solution
    :math:`W = S_{yz} V \Lambda^+ V^	op` from the eigendecomposition, with eigenvalues
    below :math:`n \epsilon \lambda_{max}` treated as zero. Both are bitwise reproducible
    (``torch.linalg.lstsq`` on a rank-deficient system is not), and the minimum-norm
    solution maximises the M-step objective, so EM stays monotone."""
    n = S_zz.shape[-1]
    if n == 0:
        return S_yz.new_zeros(S_yz.shape[0], 0)
    S_zz = _symmetrize(S_zz)
    eps = torch.finfo(S_zz.dtype).eps
    evals, evecs = torch.linalg.eigh(S_zz)
    top = float(evals[-1].clamp_min(0))
    if top > 0 and float(evals[0]) > 1e3 * n * eps * top:
        L = torch.linalg.cholesky(S_zz)
        return torch.cholesky_solve(S_yz.mT, L).mT
    keep = evals > n * eps * top if top > 0 else torch.zeros_like(evals, dtype=torch.bool)
    inv = torch.where(keep, 1.0 / torch.where(keep, evals, torch.ones_like(evals)), 0.0)
    return (S_yz @ evecs) * inv @ evecs.mT


def _regress(S_yz, S_zz, W_old, fixed_cols):
    r"""Maximise over W of E[log N(y; W z, .)] with the columns ``fixed_cols`` (a list of
    bools, one per regressor) held at W_old: the free block is
    :math:`W_f = (S_{yf} - W_h S_{hf}) S_{ff}^{-1}` (h the held columns)."""
    free = [i for i, f in enumerate(fixed_cols) if not f]
    held = [i for i, f in enumerate(fixed_cols) if f]
    if not free:
        return W_old
    if not held:
        return _solve_rows(S_yz, S_zz)
    W = W_old.clone()
    Wh = W_old[:, held]
    rhs = S_yz[:, free] - Wh @ S_zz[held][:, free]
    W[:, free] = _solve_rows(rhs, S_zz[free][:, free])
    return W


def _fixed_cols(fixed, S: int, U: int, offsets: bool, part: str) -> list[bool]:
    """Which regressors [x (S), u (U, the last one the constant 1 with offsets)] have
    their coefficients held, for the dynamics (``part='transition'``) or emissions."""
    mat, inp, off = (
        ("transition_matrix", "input_matrix", "transition_offset")
        if part == "transition"
        else ("emission_matrix", "feedthrough_matrix", "observation_offset")
    )
    n_in = U - 1 if offsets else U
    cols = [mat in fixed] * S + [inp in fixed] * n_in
    if offsets:
        cols.append(off in fixed)
    return cols


def _residual_cov(S_yy, S_yz, S_zz, W, n):
    """E[(y - W z)(y - W z)^T] averaged: (S_yy - W S_zy - S_yz W^T + W S_zz W^T) / n."""
    cov = S_yy - W @ S_yz.mT - S_yz @ W.mT + W @ S_zz @ W.mT
    return _symmetrize(cov / n)


def _wouter(w: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """sum_{b,t} w[b,t] a[b,t] b[b,t]^T for w (B, T), a (B, T, I), b (B, T, J) -> (I, J)."""
    return (a * w.unsqueeze(-1)).flatten(0, 1).mT @ b.flatten(0, 1)


def _m_step(
    p: LDSParams, tr: _FilterTrace, y, inputs, mask, lengths, fixed, diagonal, offsets=False
):
    """The M-step: closed-form maximisers of the expected complete-data log-likelihood
    (Ghahramani & Hinton 1996, eqs. 12-16, with inputs as extra regressors; with
    ``offsets`` the last input is the constant 1 and the offsets are the last columns of
    the input and feedthrough matrices, estimated jointly with A, B and C, D). With
    missing coordinates the statistics of y are its posterior moments under the old
    parameters (Shumway & Stoffer 2017, section 6.4), so the step is exact EM."""
    batch, steps, D = y.shape
    S = p.transition_matrix.shape[0]
    ms, Ps, cross = _smooth(p, tr)
    Ps = _expand_covs(Ps, batch)  # (B, T, S, S)
    cross = _expand_covs(cross, batch)  # (B, T-1, S, S)
    Exx = Ps + ms.unsqueeze(-1) * ms.unsqueeze(-2)  # (B, T, S, S)
    if lengths is None:
        w = torch.ones(batch, steps, dtype=y.dtype, device=y.device)
    else:
        w = (torch.arange(steps, device=y.device) < lengths.unsqueeze(1)).to(y.dtype)
    u = inputs if inputs is not None else y.new_zeros(batch, steps, 0)
    U = u.shape[-1]
    new: dict[str, Tensor] = {}

    # initial state (eq. 16): average over sequences
    if "initial_mean" not in fixed:
        new["initial_mean"] = ms[:, 0].mean(0)
    m0 = new.get("initial_mean", p.initial_mean)
    if "initial_cov" not in fixed:
        d0 = ms[:, 0] - m0
        P0 = (Ps[:, 0] + d0.unsqueeze(-1) * d0.unsqueeze(-2)).mean(0)
        new["initial_cov"] = _symmetrize(P0)

    # dynamics: x_t = [A B] [x_{t-1}; u_t] + w_t over pairs (t-1, t) inside each sequence
    w2 = w[:, 1:]  # (B, T-1)
    n_dyn = w2.sum()
    if steps > 1 and n_dyn > 0:
        ez = torch.cat([ms[:, :-1], u[:, 1:]], -1)  # (B, T-1, S+U) E[z_t]
        Szz = _wouter(w2, ez, ez)
        Szz[:S, :S] += torch.tensordot(w2, Ps[:, :-1], dims=2)
        Sxz = _wouter(w2, ms[:, 1:], ez)
        Sxz[:, :S] += torch.tensordot(w2, cross, dims=2)
        Sxx = torch.tensordot(w2, Exx[:, 1:], dims=2)
        W_old = torch.cat([p.transition_matrix, p.input_matrix], 1)
        W = _regress(Sxz, Szz, W_old, _fixed_cols(fixed, S, U, offsets, "transition"))
        new["transition_matrix"], new["input_matrix"] = W[:, :S], W[:, S:]
        if "transition_cov" not in fixed:
            new["transition_cov"] = _residual_cov(Sxx, Sxz, Szz, W, n_dyn)

    # emissions: y_t = [C D] [x_t; u_t] + v_t
    C, R = p.emission_matrix, p.emission_cov
    if mask is None:
        Ey, Eyx_extra, Eyy_extra = y, None, None
        Hm = None
    else:
        # posterior of the missing coordinates under the old parameters:
        # y = H x + h + eps, H = (I - G M) C, h = (I - G M) D u + G M y, Cov eps = R - G R,
        # with G = R M (M R M + I - M)^{-1} M, M = diag(mask)
        Mdiag = torch.diag_embed(mask)  # (B, T, D, D)
        _, Rm = _masked_emission(C, R, mask)
        G = R @ Mdiag @ torch.linalg.solve(Rm, Mdiag)  # (B, T, D, D)
        I_GM = torch.eye(D, dtype=y.dtype, device=y.device) - G @ Mdiag
        Hm = I_GM @ C  # (B, T, D, S)
        h = (G @ y.unsqueeze(-1)).squeeze(-1)  # (B, T, D)
        if U:
            h = h + (I_GM @ (u @ p.feedthrough_matrix.mT).unsqueeze(-1)).squeeze(-1)
        Ey = (Hm @ ms.unsqueeze(-1)).squeeze(-1) + h  # (B, T, D)
        Eyx_extra = Hm @ Ps  # Cov(y, x) (B, T, D, S)
        Eyy_extra = Hm @ Ps @ Hm.mT + _symmetrize(R - G @ R)  # Cov(y) (B, T, D, D)
    ez = torch.cat([ms, u], -1)  # (B, T, S+U)
    Szz = _wouter(w, ez, ez)
    Szz[:S, :S] += torch.tensordot(w, Ps, dims=2)
    Syz = _wouter(w, Ey, ez)
    Syy = _wouter(w, Ey, Ey)
    if Hm is not None:
        Syz[:, :S] += torch.tensordot(w, Eyx_extra, dims=2)
        Syy += torch.tensordot(w, Eyy_extra, dims=2)
    W_old = torch.cat([C, p.feedthrough_matrix], 1)
    W = _regress(Syz, Szz, W_old, _fixed_cols(fixed, S, U, offsets, "observation"))
    new["emission_matrix"], new["feedthrough_matrix"] = W[:, :S], W[:, S:]
    if "emission_cov" not in fixed:
        new["emission_cov"] = _residual_cov(Syy, Syz, Szz, W, w.sum())

    for name in fixed:
        new.pop(name, None)
    for name in diagonal:
        if name in new:
            new[name] = torch.diag_embed(torch.diagonal(new[name]))
    return new
