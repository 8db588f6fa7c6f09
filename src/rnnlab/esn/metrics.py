r"""Metrics of reservoir computing: errors with an explicit normalisation, memory capacity,
and the dynamics regime of a reservoir.

Normalised root-mean-square error (``norm`` names the denominator; Jaeger's NRMSE is
"std"):

.. math::

    \mathrm{NRMSE} = \frac{\sqrt{\tfrac1n \sum (\hat y - y)^2}}{s}, \qquad
    s = \sigma(y)\ (\text{"std"}),\ \sigma^2(y)\ (\text{"var"}),\
    \max y - \min y\ (\text{"range"}).

"var" is what reservoirpy's ``nrmse(norm="var")`` computes (RMSE over a variance: not
scale-free, a pitfall); the NMSE of the NARMA literature is :math:`\mathrm{NRMSE}^2` with
"std".

Memory capacity (Jaeger 2001, "Short term memory in echo state networks", GMD report
152): with readouts :math:`y_k(t)` trained to recall the input :math:`u_{t-k}`,

.. math::

    MC = \sum_{k=1}^{K} r^2\big(u_{t-k}, y_k(t)\big) \le H

for i.i.d. inputs (:math:`r` the correlation coefficient over the test steps; the bound
holds for linear reservoirs and in practice for tanh ones).

Dynamics: the effective spectral radius of the leaky reservoir linearised at 0,
:math:`\rho((1-a) I + a W)` (Jaeger et al. 2007, §3), and the maximal Lyapunov exponent of
the reservoir map (Benettin's method: a tangent vector :math:`v` propagated by the
Jacobian :math:`J_t = (1-a) I + a\, \mathrm{diag}(f'(p_t))\, (W + W_{fb} W_{out})`, with
:math:`p_t` the pre-activation and the feedback term only in closed loop, renormalised at
every step; :math:`\lambda = \frac1T \sum_t \log \|J_t v_{t-1}\|`). :math:`\lambda > 0`:
chaotic; :math:`\lambda < 0` and the state settles: a point attractor; otherwise an
oscillation (a periodic or quasi-periodic attractor) - the regimes Hinton's lecture 7
lists for what RNNs can do.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from rnnlab._validation import check_positive_int, check_tensor
from rnnlab.errors import InputError

NORMS = ("std", "var", "range")


def _pair(pred: Tensor, target: Tensor, mask: Tensor | None):
    check_tensor("pred", pred)
    check_tensor("target", target)
    if pred.shape != target.shape:
        raise InputError(
            f"pred: expected the shape of target {tuple(target.shape)}, received "
            f"{tuple(pred.shape)}"
        )
    p, t = pred.to(torch.float64), target.to(torch.float64)
    if mask is not None:
        check_tensor("mask", mask)
        if mask.shape != pred.shape[: mask.dim()]:
            raise InputError(
                f"mask: expected a leading part of the shape {tuple(pred.shape)}, received "
                f"{tuple(mask.shape)}"
            )
        m = mask.to(torch.bool)
        p, t = p[m], t[m]
    return p, t


def nrmse(pred: Tensor, target: Tensor, norm: str = "std", mask: Tensor | None = None) -> float:
    """Normalised RMSE over all entries (where ``mask`` is True), normalised by the target's
    standard deviation ("std", Jaeger's), variance ("var") or range ("range")."""
    if norm not in NORMS:
        raise InputError(f"norm: expected one of {NORMS}, received {norm!r}")
    p, t = _pair(pred, target, mask)
    rmse = torch.sqrt(torch.mean((p - t) ** 2))
    if norm == "std":
        s = t.std(unbiased=False)
    elif norm == "var":
        s = t.var(unbiased=False)
    else:
        s = t.max() - t.min()
    return float(rmse / s)


class MemoryCapacity(NamedTuple):
    """total: :math:`\\sum_k r_k^2`.  per_delay: (K,) :math:`r_k^2` for delays 1..K."""

    total: float
    per_delay: Tensor


def memory_capacity(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> MemoryCapacity:
    """Jaeger's memory capacity from readout outputs and delayed inputs.

    pred, target: (..., K), the last axis the delay k = 1..K (target[..., k-1] is
    u_{t-k}, as :func:`rnnlab.tasks.narma.memory_task` makes it); mask: the scored steps.
    """
    p, t = _pair(pred, target, mask)
    K = p.shape[-1]
    p, t = p.reshape(-1, K), t.reshape(-1, K)
    pc, tc = p - p.mean(0), t - t.mean(0)
    r2 = (pc * tc).sum(0) ** 2 / ((pc * pc).sum(0) * (tc * tc).sum(0)).clamp_min(1e-300)
    return MemoryCapacity(float(r2.sum()), r2)


def effective_spectral_radius(esn) -> float:
    r""":math:`\rho((1 - a) I + a W)`: the spectral radius of the leaky reservoir's Jacobian
    at the origin (exact eigenvalues up to 1,000 units, else the power iteration of
    :func:`rnnlab.esn.spectral_radius`)."""
    from rnnlab.esn.reservoir import spectral_radius

    W = esn.weight_hh.detach().to(torch.float64)
    a = esn.leak_rate
    J = a * W
    J.diagonal().add_(1 - a)
    return spectral_radius(J)


def lyapunov_exponent(
    esn, inputs: Tensor | None = None, steps: int = 1000, warmup: int = 200,
    closed_loop: bool = False, seed: int = 0,
) -> float:  # fmt: skip
    r"""Estimate of the maximal Lyapunov exponent (per step, natural log) of the reservoir.

    inputs: (T, F) driving inputs (T >= warmup + steps), or None: the autonomous reservoir
    (zero input, bias only) started from a seeded random state with entries in [-1, 1].
    closed_loop: include the output feedback through the trained readout (the generative
    system; needs feedback). The first ``warmup`` steps move onto the attractor and are not
    averaged. Runs in float64. An estimate: its error shrinks like 1/sqrt(steps) for
    chaotic, like 1/steps for regular dynamics.
    """
    traj = _trajectory(esn, inputs, steps, warmup, closed_loop, seed)
    return traj.lyapunov


class _Trajectory(NamedTuple):
    lyapunov: float
    last_step: float  # ||x_T - x_{T-1}|| / (1 + ||x_T||)
    amplitude: float  # max |x_t| over the averaged steps


def _trajectory(esn, inputs, steps, warmup, closed_loop, seed) -> _Trajectory:
    check_positive_int("steps", steps)
    check_positive_int("warmup", warmup, minimum=0)
    if closed_loop and not esn.feedback:
        raise InputError("closed_loop: expected an ESN built with feedback=True")
    T = warmup + steps
    f64 = torch.float64
    W = esn.weight_hh.detach().to(f64)
    H = W.shape[0]
    b = esn.bias.detach().to(f64)
    a = esn.leak_rate
    if inputs is not None:
        check_tensor("inputs", inputs)
        if inputs.dim() != 2 or inputs.shape[0] < T or inputs.shape[1] != esn.input_size:
            raise InputError(
                f"inputs: expected shape (>= {T}, {esn.input_size}) (warmup + steps), "
                f"received {tuple(inputs.shape)}"
            )
        drive = inputs[:T].to(W) @ esn.weight_ih.detach().to(f64).t() + b  # (T, H)
    else:
        drive = b.expand(T, H)
    if closed_loop:
        W_fb = esn.weight_fb.detach().to(f64)
        W_out = esn.readout.weight.detach().to(f64)
        b_out = esn.readout.bias.detach().to(f64)
        W_eff = W + W_fb @ W_out  # (H, H): x -> W x + W_fb (W_out x + b_out)
        drive = drive + W_fb @ b_out
    else:
        W_eff = W
    g = torch.Generator().manual_seed(seed)
    x = (2 * torch.rand(H, generator=g, dtype=f64) - 1).to(W.device)
    v = torch.randn(H, generator=g, dtype=f64).to(W.device)
    v = v / v.norm()
    tanh = esn.activation == "tanh"
    log_sum, amp, x_prev = 0.0, 0.0, x
    for t in range(T):
        p = drive[t] + W_eff @ x
        h = torch.tanh(p) if tanh else p
        x_prev, x = x, (1 - a) * x + a * h
        dfp = (1 - h * h) if tanh else torch.ones_like(h)
        v = (1 - a) * v + a * dfp * (W_eff @ v)  # J_t v
        n = v.norm()
        if t >= warmup:
            log_sum += float(torch.log(n.clamp_min(1e-300)))
            amp = max(amp, float(x.abs().max()))
        v = v / n.clamp_min(1e-300)
    last = float((x - x_prev).norm() / (1 + x.norm()))
    return _Trajectory(log_sum / steps, last, amp)


class DynamicsRegime(NamedTuple):
    """effective_spectral_radius: :math:`\\rho((1-a) I + a W)`.  lyapunov_exponent: the
    maximal exponent's estimate.  regime: "point attractor", "oscillating" or "chaotic"."""

    effective_spectral_radius: float
    lyapunov_exponent: float
    regime: str


def dynamics_regime(
    esn, inputs: Tensor | None = None, steps: int = 2000, warmup: int = 500,
    closed_loop: bool = False, tol: float = 1e-2, seed: int = 0,
) -> DynamicsRegime:  # fmt: skip
    """Classify the reservoir's (autonomous, or input-driven) dynamics.

    "chaotic": Lyapunov exponent > ``tol``; "point attractor": exponent <= ``tol`` and the
    state stops moving (relative last step below 1e-6; with inputs, the driven state is
    instead a function of the input history - the echo state property - and the regime
    reads "point attractor" when the exponent is < -tol); otherwise "oscillating".
    """
    traj = _trajectory(esn, inputs, steps, warmup, closed_loop, seed)
    lam = traj.lyapunov
    if lam > tol:
        regime = "chaotic"
    elif (inputs is None and traj.last_step < 1e-6) or (inputs is not None and lam < -tol):
        regime = "point attractor"
    else:
        regime = "oscillating"
    return DynamicsRegime(effective_spectral_radius(esn), lam, regime)
