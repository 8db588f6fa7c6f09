r"""Leaky integrate-and-fire neurons, batched over independent trials.

Functional core: :func:`lif_current_step` and :func:`lif_conductance_step` (one clock
step of the membrane and the synaptic variables, pure tensors) and :func:`lif_fire`
(threshold, reset, refractory period, adaptive threshold), beside the module :class:`LIF`
that holds the parameters and the per-step propagators.

Units throughout the spiking family: time in ms, potentials in mV, rates in Hz;
conductances in units of the leak conductance (dimensionless).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnlab._validation import check_positive_int, check_shape, check_tensor
from rnnlab.errors import InputError
from rnnlab.spiking._checks import (
    check_choice,
    check_nonnegative,
    check_number,
    check_positive,
    check_time_constant,
)


class LIFState(NamedTuple):
    """State of a LIF population, every field (B, N).

    v: membrane potential (mV).
    exc, inh: excitatory and inhibitory synaptic variables: conductances (units of the leak
        conductance) with ``synapse="conductance"``, currents (mV of drive) with
        ``synapse="current"``.
    refractory: clock steps left in the refractory period (0 = integrating).
    theta: adaptive threshold increment (mV; zero without adaptation).
    """

    v: Tensor
    exc: Tensor
    inh: Tensor
    refractory: Tensor
    theta: Tensor


def _propagator(tau_syn: float, tau_m: float, dt: float) -> float:
    r"""Exact contribution to v(dt) of a synaptic current i e^{-s/tau_syn} started at 1:
    :math:`\kappa = \frac{\tau_s}{\tau_s - \tau_m}(e^{-dt/\tau_s} - e^{-dt/\tau_m})`
    (Rotter & Diesmann 1999), :math:`\frac{dt}{\tau_m} e^{-dt/\tau_m}` when the two are equal."""
    if math.isclose(tau_syn, tau_m):
        return dt / tau_m * math.exp(-dt / tau_m)
    return tau_syn / (tau_syn - tau_m) * (math.exp(-dt / tau_syn) - math.exp(-dt / tau_m))


def lif_current_step(
    v: Tensor,
    exc: Tensor,
    inh: Tensor,
    current: Tensor | float,
    *,
    v_rest: float,
    decay_m: float,
    decay_exc: float,
    decay_inh: float,
    kappa_exc: float,
    kappa_inh: float,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One exact step of the current-based membrane (constant ``current`` over the step).

    .. math::
        v(t+\Delta) - v_r = (v - v_r) e^{-\Delta/\tau_m} + I (1 - e^{-\Delta/\tau_m})
        + \kappa_e i_e - \kappa_i i_i,\qquad i_{e,i} \leftarrow i_{e,i} e^{-\Delta/\tau_{e,i}}

    v, exc, inh: (B, N). Returns (v, exc, inh) at the end of the step."""
    v_new = v_rest + (v - v_rest) * decay_m + current * (1.0 - decay_m)
    v_new = v_new + kappa_exc * exc - kappa_inh * inh
    return v_new, exc * decay_exc, inh * decay_inh


def lif_conductance_step(
    v: Tensor,
    exc: Tensor,
    inh: Tensor,
    current: Tensor | float,
    *,
    v_rest: float,
    e_exc: float,
    e_inh: float,
    dt_over_tau_m: float,
    decay_exc: float,
    decay_inh: float,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""One step of the conductance-based membrane, exact for the conductances held at
    their start-of-step values (exponential Euler); the conductances decay exactly.

    .. math::
        \tau_m \dot v = (v_r - v) + g_e (E_e - v) + g_i (E_i - v) + I,\quad
        v(t+\Delta) = v_\infty + (v - v_\infty) e^{-\Delta (1 + g_e + g_i)/\tau_m},\quad
        v_\infty = \frac{v_r + g_e E_e + g_i E_i + I}{1 + g_e + g_i}

    v, exc, inh: (B, N). Returns (v, exc, inh) at the end of the step."""
    g_tot = 1.0 + exc + inh  # (B, N)
    v_inf = (v_rest + exc * e_exc + inh * e_inh + current) / g_tot
    v_new = v_inf + (v - v_inf) * torch.exp(-dt_over_tau_m * g_tot)
    return v_new, exc * decay_exc, inh * decay_inh


def lif_fire(
    v: Tensor,
    v_free: Tensor,
    refractory: Tensor,
    theta: Tensor,
    *,
    v_threshold: float,
    v_reset: float,
    refractory_steps: int,
    theta_plus: float,
    decay_theta: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Threshold, reset and refractory bookkeeping after the membrane step.

    v_free: the potential the step integrated to; neurons still refractory keep
    ``v_reset``. A neuron spikes when its potential exceeds ``v_threshold + theta``; it is
    reset to ``v_reset`` and integrates again after ``refractory_steps`` steps. The adaptive
    threshold decays by ``decay_theta`` per step and grows by ``theta_plus`` per spike
    (Diehl & Cook 2015). Returns (spikes (B, N) bool, v, refractory, theta)."""
    free = refractory <= 0
    v_new = torch.where(free, v_free, v)
    spikes = free & (v_new > v_threshold + theta)
    v_new = torch.where(spikes, torch.full_like(v_new, v_reset), v_new)
    refr = torch.where(spikes, float(refractory_steps), (refractory - 1.0).clamp(min=0.0))
    if theta_plus:
        theta = theta * decay_theta + theta_plus * spikes.to(theta.dtype)
    return spikes, v_new, refr, theta


class LIF(nn.Module):
    r"""A population of leaky integrate-and-fire neurons, state (B, N).

    .. math::
        \tau_m \dot v = (v_r - v) + \text{input},\qquad
        v > v_\theta + \theta \Rightarrow \text{spike},\ v \leftarrow v_{reset},
        \text{clamped for } t_{ref}

    with ``synapse="current"``: input = :math:`I + i_e - i_i`, synaptic currents
    :math:`\tau_{e} \dot i_e = -i_e` jumping by the weights of arriving spikes (mV); the
    membrane step is the exact propagator of this linear system (constant I over a step).
    With ``synapse="conductance"``: input = :math:`g_e (E_e - v) + g_i (E_i - v) + I`,
    conductances in units of the leak conductance, :math:`\tau_e \dot g_e = -g_e`; the step
    is exact for the conductances frozen over the step.

    ==========================  ===================  =======================================
    symbol                      argument             meaning
    ==========================  ===================  =======================================
    :math:`\tau_m`              ``tau_m``            membrane time constant (ms)
    :math:`v_r`                 ``v_rest``           resting (leak reversal) potential (mV)
    :math:`v_{reset}`           ``v_reset``          potential after a spike (mV)
    :math:`v_\theta`            ``v_threshold``      spike threshold (mV)
    :math:`t_{ref}`             ``refractory``       refractory period (ms, rounded to steps)
    :math:`\tau_e, \tau_i`      ``tau_exc/inh``      synaptic time constants (ms)
    :math:`E_e, E_i`            ``e_exc/inh``        reversal potentials (mV, conductance)
    :math:`\theta`              ``theta_plus``       adaptive threshold jump per spike (mV)
    :math:`\tau_\theta`         ``tau_theta``        its decay time constant (ms)
    :math:`\Delta`              ``dt``               clock step (ms)
    ==========================  ===================  =======================================

    Clock step (the order of Brian2's schedule): integrate the membrane over
    :math:`[t, t+\Delta)` with the synaptic variables of time t, threshold, reset; then the
    network adds the spikes of this step to the synaptic variables (felt from the next step).
    """

    def __init__(
        self,
        num_neurons: int,
        tau_m: float = 20.0,
        v_rest: float = -70.0,
        v_reset: float = -60.0,
        v_threshold: float = -54.0,
        refractory: float = 0.0,
        dt: float = 0.1,
        synapse: str = "conductance",
        tau_exc: float = 5.0,
        tau_inh: float = 5.0,
        e_exc: float = 0.0,
        e_inh: float = -70.0,
        theta_plus: float = 0.0,
        tau_theta: float = 1e7,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.num_neurons = check_positive_int("num_neurons", num_neurons)
        self.dt = check_positive("dt", dt)
        self.tau_m = check_time_constant("tau_m", tau_m, self.dt)
        self.tau_exc = check_time_constant("tau_exc", tau_exc, self.dt)
        self.tau_inh = check_time_constant("tau_inh", tau_inh, self.dt)
        self.tau_theta = check_time_constant("tau_theta", tau_theta, self.dt)
        self.v_rest = check_number("v_rest", v_rest)
        self.v_reset = check_number("v_reset", v_reset)
        self.v_threshold = check_number("v_threshold", v_threshold)
        if self.v_reset >= self.v_threshold:
            raise InputError(
                f"v_reset: expected a value below v_threshold = {self.v_threshold} mV, "
                f"received {v_reset!r}"
            )
        self.refractory = check_nonnegative("refractory", refractory)
        self.refractory_steps = int(round(self.refractory / self.dt))
        self.synapse = check_choice("synapse", synapse, ("current", "conductance"))
        self.e_exc = check_number("e_exc", e_exc)
        self.e_inh = check_number("e_inh", e_inh)
        self.theta_plus = check_nonnegative("theta_plus", theta_plus, unit="mV")
        self.decay_m = math.exp(-self.dt / self.tau_m)
        self.decay_exc = math.exp(-self.dt / self.tau_exc)
        self.decay_inh = math.exp(-self.dt / self.tau_inh)
        self.decay_theta = math.exp(-self.dt / self.tau_theta)
        self.kappa_exc = _propagator(self.tau_exc, self.tau_m, self.dt)
        self.kappa_inh = _propagator(self.tau_inh, self.tau_m, self.dt)
        self.factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}

    def initial_state(self, batch_size: int, v: Tensor | float | None = None) -> LIFState:
        """Rest (or ``v``: a number or a (B, N) tensor), no synaptic input, not refractory."""
        check_positive_int("batch_size", batch_size)
        shape = (batch_size, self.num_neurons)
        zeros = torch.zeros(shape, **self.factory)
        if v is None:
            v0 = torch.full(shape, self.v_rest, **self.factory)
        elif isinstance(v, Tensor):
            check_shape("v", v, shape)
            v0 = v.to(**self.factory).clone()
        else:
            v0 = torch.full(shape, check_number("v", v), **self.factory)
        return LIFState(v0, zeros, zeros.clone(), zeros.clone(), zeros.clone())

    def step(self, state: LIFState, current: Tensor | float = 0.0) -> tuple[Tensor, LIFState]:
        """One clock step; ``current`` (a number or (B, N), mV of drive) is held constant over
        the step. Returns (spikes (B, N) bool, new state)."""
        if isinstance(current, Tensor):
            check_tensor("current", current)
            if current.dim() != 2 or current.shape[1] != self.num_neurons:
                check_shape("current", current, (state.v.shape[0], self.num_neurons))
        if self.synapse == "current":
            v_free, exc, inh = lif_current_step(
                state.v,
                state.exc,
                state.inh,
                current,
                v_rest=self.v_rest,
                decay_m=self.decay_m,
                decay_exc=self.decay_exc,
                decay_inh=self.decay_inh,
                kappa_exc=self.kappa_exc,
                kappa_inh=self.kappa_inh,
            )
        else:
            v_free, exc, inh = lif_conductance_step(
                state.v,
                state.exc,
                state.inh,
                current,
                v_rest=self.v_rest,
                e_exc=self.e_exc,
                e_inh=self.e_inh,
                dt_over_tau_m=self.dt / self.tau_m,
                decay_exc=self.decay_exc,
                decay_inh=self.decay_inh,
            )
        spikes, v, refr, theta = lif_fire(
            state.v,
            v_free,
            state.refractory,
            state.theta,
            v_threshold=self.v_threshold,
            v_reset=self.v_reset,
            refractory_steps=self.refractory_steps,
            theta_plus=self.theta_plus,
            decay_theta=self.decay_theta,
        )
        return spikes, LIFState(v, exc, inh, refr, theta)

    def rate(self, current: float) -> float:
        r"""Analytic firing rate (Hz) under a constant drive I (current-based, no synaptic
        input): :math:`f = 1 / (t_{ref} + \tau_m \ln\frac{v_r + I - v_{reset}}{v_r + I -
        v_\theta})` when :math:`v_r + I > v_\theta`, else 0 (the f-I curve)."""
        v_inf = self.v_rest + check_number("current", current)
        if v_inf <= self.v_threshold:
            return 0.0
        isi = self.refractory + self.tau_m * math.log(
            (v_inf - self.v_reset) / (v_inf - self.v_threshold)
        )
        return 1000.0 / isi

    def extra_repr(self) -> str:
        return (
            f"{self.num_neurons}, tau_m={self.tau_m}, v_rest={self.v_rest}, "
            f"v_reset={self.v_reset}, v_threshold={self.v_threshold}, "
            f"refractory={self.refractory}, dt={self.dt}, synapse={self.synapse!r}"
        )
