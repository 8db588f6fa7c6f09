r"""Pair-based spike-timing-dependent plasticity through traces.

Functional core: :func:`decay_traces`, :func:`bump_trace`, :func:`depress` and
:func:`potentiate` (pure tensors), beside :class:`STDP`, the rule's parameters, and its
state :class:`STDPState`.

.. math::
    x_i \leftarrow x_i e^{-\Delta/\tau_+},\quad y_j \leftarrow y_j e^{-\Delta/\tau_-}
    \quad\text{(every step, the exact decay)}

    \text{pre spike } i:\ w_{ij} \leftarrow w_{ij} - A_- f_-(w_{ij})\, y_j,\quad
    x_i \leftarrow x_i + 1 \text{ (all-to-all) or } 1 \text{ (nearest)}

    \text{post spike } j:\ w_{ij} \leftarrow w_{ij} + A_+ f_+(w_{ij})\, x_i,\quad
    y_j \leftarrow y_j + 1 \text{ or } 1

so one pre spike at t_pre and one post spike at t_post change the weight by
:math:`A_+ e^{-(t_{post}-t_{pre})/\tau_+}` when the pre spike comes first (or both in the
same step) and by :math:`-A_- e^{-(t_{pre}-t_{post})/\tau_-}` otherwise: the learning window
:meth:`STDP.window`. Within a step the order is: traces decay, pre spikes (depression,
then the pre trace), post spikes (potentiation, then the post trace): Brian2's ``on_pre``
before ``on_post``.

=========================  ==================  ============================================
symbol                     argument            meaning
=========================  ==================  ============================================
:math:`A_+, A_-`           ``a_plus/minus``    amplitudes (weight units)
:math:`\tau_+, \tau_-`     ``tau_plus/minus``  trace time constants (ms)
:math:`w_{min}, w_{max}`   ``w_min/max``       weight bounds
:math:`f_\pm`              ``rule, bounds``    weight dependence (table below)
=========================  ==================  ============================================

With :math:`\delta = w_{max} - w_{min}`:

=====================  ====================  ==========================  =============
rule, bounds           :math:`f_+(w)`        :math:`f_-(w)`              clip to bounds
=====================  ====================  ==========================  =============
additive, hard         1                     1                           yes (Song 2000)
multiplicative, hard   1                     (w - w_min) / delta         yes (van Rossum 2000)
any rule, soft         (w_max - w) / delta   (w - w_min) / delta         yes (no effect
                                                                         while A trace <= 1)
=====================  ====================  ==========================  =============

Batches: B trials run together. ``reduction="mean"`` or ``"sum"`` applies the mean or sum
over trials of the per-trial changes to one shared weight matrix (N_pre, N_post);
``reduction="none"`` keeps one matrix per trial (B, N_pre, N_post), each learning alone.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from rnnlab.errors import InputError
from rnnlab.spiking._checks import check_choice, check_nonnegative, check_number, check_positive


class STDPState(NamedTuple):
    """Traces of one plastic connection: pre (B, N_pre) and post (B, N_post)."""

    pre: Tensor
    post: Tensor


def decay_traces(state: STDPState, decay_pre: float, decay_post: float) -> STDPState:
    """The exact exponential decay over one step: x e^{-dt/tau}."""
    return STDPState(state.pre * decay_pre, state.post * decay_post)


def bump_trace(trace: Tensor, spikes: Tensor, nearest: bool) -> Tensor:
    """Add 1 at each spike (all-to-all) or set the trace to 1 (nearest neighbour)."""
    if nearest:
        return torch.where(spikes, torch.ones_like(trace), trace)
    return trace + spikes


def _pair_term(a: Tensor, b: Tensor, reduction: str) -> Tensor:
    """Sum over pairs a_bi b_bj: (N_pre, N_post) reduced over trials, or (B, N_pre, N_post)."""
    if reduction == "none":
        return a.unsqueeze(2) * b.unsqueeze(1)  # (B, N_pre, N_post)
    out = a.transpose(0, 1) @ b  # (N_pre, N_post)
    return out / a.shape[0] if reduction == "mean" else out


class STDP:
    """A pair-based STDP rule (see the module docstring for the equations and table)."""

    def __init__(
        self,
        a_plus: float = 0.005,
        a_minus: float = 0.00525,
        tau_plus: float = 20.0,
        tau_minus: float = 20.0,
        w_min: float = 0.0,
        w_max: float = 1.0,
        rule: str = "additive",
        bounds: str = "hard",
        pairing: str = "all-to-all",
        reduction: str = "mean",
    ) -> None:
        self.a_plus = check_nonnegative("a_plus", a_plus, unit="weight units")
        self.a_minus = check_nonnegative("a_minus", a_minus, unit="weight units")
        self.tau_plus = check_positive("tau_plus", tau_plus)
        self.tau_minus = check_positive("tau_minus", tau_minus)
        self.w_min = check_number("w_min", w_min)
        self.w_max = check_number("w_max", w_max)
        if self.w_max <= self.w_min:
            raise InputError(
                f"w_max: expected a value above w_min = {self.w_min}, received {w_max!r}"
            )
        self.rule = check_choice("rule", rule, ("additive", "multiplicative"))
        self.bounds = check_choice("bounds", bounds, ("hard", "soft"))
        self.pairing = check_choice("pairing", pairing, ("all-to-all", "nearest"))
        self.reduction = check_choice("reduction", reduction, ("mean", "sum", "none"))

    # -- the rule's own formula ------------------------------------------------------
    def window(self, delta_t: Tensor | float) -> Tensor:
        """The weight change of one pair at delta_t = t_post - t_pre (ms), far from the
        bounds of an additive rule: A+ e^{-dt/tau+} for dt >= 0, -A- e^{dt/tau-} below."""
        d = torch.as_tensor(delta_t)
        if not d.is_floating_point():
            d = d.to(torch.get_default_dtype())
        return torch.where(
            d >= 0,
            self.a_plus * torch.exp(-d.clamp(min=0) / self.tau_plus),
            -self.a_minus * torch.exp(d.clamp(max=0) / self.tau_minus),
        )

    # -- pieces of a clock step ---------------------------------------------------------
    def decays(self, dt: float) -> tuple[float, float]:
        """Per-step decay factors of the pre and post traces (dt must not exceed tau)."""
        for name, tau in (("tau_plus", self.tau_plus), ("tau_minus", self.tau_minus)):
            if dt > tau:
                raise InputError(
                    f"dt: expected at most {name} = {tau} ms (a step longer than the "
                    f"time constant it integrates), received {dt} ms"
                )
        return math.exp(-dt / self.tau_plus), math.exp(-dt / self.tau_minus)

    def initial_state(self, batch_size: int, n_pre: int, n_post: int, like: Tensor) -> STDPState:
        """Zero traces."""
        return STDPState(like.new_zeros(batch_size, n_pre), like.new_zeros(batch_size, n_post))

    def check_weight(self, name: str, w: Tensor) -> None:
        """ValueError when a weight lies outside [w_min, w_max]."""
        if w.numel() and (float(w.min()) < self.w_min or float(w.max()) > self.w_max):
            raise InputError(
                f"{name}: expected weights in [w_min, w_max] = [{self.w_min}, {self.w_max}], "
                f"received min {float(w.min())}, max {float(w.max())}"
            )

    def _f_plus(self, w: Tensor) -> Tensor | float:
        if self.bounds == "soft":
            return (self.w_max - w) / (self.w_max - self.w_min)
        return 1.0

    def _f_minus(self, w: Tensor) -> Tensor | float:
        if self.bounds == "soft" or self.rule == "multiplicative":
            return (w - self.w_min) / (self.w_max - self.w_min)
        return 1.0

    def depress(self, w: Tensor, pre_spikes: Tensor, post_trace: Tensor) -> Tensor:
        """w after the pre spikes of this step: w - A- f-(w) <s_pre y> (then clipped)."""
        term = _pair_term(pre_spikes.to(w.dtype), post_trace, self.reduction)
        return (w - self.a_minus * self._f_minus(w) * term).clamp_(self.w_min, self.w_max)

    def potentiate(self, w: Tensor, pre_trace: Tensor, post_spikes: Tensor) -> Tensor:
        """w after the post spikes of this step: w + A+ f+(w) <x s_post> (then clipped)."""
        term = _pair_term(pre_trace, post_spikes.to(w.dtype), self.reduction)
        return (w + self.a_plus * self._f_plus(w) * term).clamp_(self.w_min, self.w_max)

    def step(
        self,
        w: Tensor,
        state: STDPState,
        pre_spikes: Tensor,
        post_spikes: Tensor,
        decay_pre: float,
        decay_post: float,
    ) -> tuple[Tensor, STDPState]:
        """One clock step of the rule: traces decay, pre spikes, post spikes (see the
        module docstring). w: (N_pre, N_post) or (B, N_pre, N_post); spikes (B, N) bool.
        Returns the new (w, state); steps without spikes cost only the decay."""
        nearest = self.pairing == "nearest"
        x, y = state.pre * decay_pre, state.post * decay_post
        if bool(pre_spikes.any()):
            w = self.depress(w, pre_spikes, y)
            x = bump_trace(x, pre_spikes, nearest)
        if bool(post_spikes.any()):
            w = self.potentiate(w, x, post_spikes)
            y = bump_trace(y, post_spikes, nearest)
        return w, STDPState(x, y)

    def __repr__(self) -> str:
        return (
            f"STDP(a_plus={self.a_plus}, a_minus={self.a_minus}, tau_plus={self.tau_plus}, "
            f"tau_minus={self.tau_minus}, w_min={self.w_min}, w_max={self.w_max}, "
            f"rule={self.rule!r}, bounds={self.bounds!r}, pairing={self.pairing!r}, "
            f"reduction={self.reduction!r})"
        )
