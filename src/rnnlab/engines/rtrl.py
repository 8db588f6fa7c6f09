r"""Real-time recurrent learning (Williams & Zipser 1989): exact gradients, forward in time.

For a single recurrent layer :math:`h_t = \phi(a_t)`, :math:`a_t = W_{ih} u_t + W_{hh}
h_{t-1} + b`, RTRL carries the sensitivity of the state to every parameter,
:math:`P_t = \partial h_t / \partial \theta` with :math:`\theta = (W_{ih}, W_{hh}, b)`,
forward alongside the state (W&Z 1989, eq. 12):

.. math::

    P_t[k, (k', j)] = \phi'(a_{t,k}) \Big( \sum_l W_{hh}[k, l]\, P_{t-1}[l, (k', j)]
                      + \delta_{k k'} z_{t, j} \Big), \qquad z_t = (u_t, h_{t-1}, 1),

and :math:`Q_t = \partial h_t / \partial h_0 = \phi'(a_t) \odot W_{hh} Q_{t-1}`,
:math:`Q_0 = I`. The gradient of any loss is then :math:`\sum_t \bar h_t^\top P_t`,
available at every step without a backward pass through time: this is what lets a net
learn online, one step at a time. The cost is :math:`O(H^4)` per step and
:math:`O(H^3)` memory (per sequence), against BPTT's :math:`O(H^2)` and :math:`O(TH)`,
which is why RTRL is for small networks.

:class:`RTRLRecurrence` is an engine: its forward pass carries :math:`P_t` and
:math:`Q_t`, and its "backward" only contracts them with the output gradients, so it
gives exactly BPTT's gradients (the tests check this). The input itself gets no
gradient (RTRL has no backward pass to carry one), so it must not require grad.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rnnlab._activations import ACT, activation_derivative
from rnnlab.engines.bptt import batch_first_outputs, gather_last, inject_final_grad
from rnnlab.errors import InputError


class RTRLRecurrence(torch.autograd.Function):
    """forward(u (B, T, F), h0 (B, H), w_ih (H, F), w_hh (H, H), b (H,), lengths,
    nonlinearity) -> (ys (B, T, H), h_T); gradients for h0, w_ih, w_hh, b by RTRL."""

    @staticmethod
    def forward(ctx, u, h0, w_ih, w_hh, b, lengths, nonlinearity):
        B, T, F = u.shape
        H = h0.shape[-1]
        M = F + H + 1  # z_t = (u_t, h_{t-1}, 1)
        act = ACT[nonlinearity]
        P = u.new_zeros(B, H, H, M)  # dh_t[k] / dtheta[k', j]
        Q = torch.eye(H, dtype=u.dtype, device=u.device).expand(B, H, H).clone()  # dh_t/dh_0
        Ps = u.new_empty(T, B, H, H * M)
        Qs = u.new_empty(T, B, H, H)
        Hs = u.new_empty(T + 1, B, H)
        Hs[0] = h0
        ones = u.new_ones(B, 1)
        for t in range(T):
            h = Hs[t]
            z = torch.cat([u[:, t], h, ones], dim=1)  # (B, M)
            Hs[t + 1] = act(u[:, t] @ w_ih.t() + h @ w_hh.t() + b)
            dphi = activation_derivative(Hs[t + 1], nonlinearity).unsqueeze(-1)  # (B, H, 1)
            # recurrent part: sum_l W_hh[k, l] P_{t-1}[l, .]
            P = torch.matmul(w_hh, P.reshape(B, H, H * M)).reshape(B, H, H, M)
            P.diagonal(dim1=1, dim2=2).add_(z.unsqueeze(-1))  # + delta_{k k'} z_j
            P.mul_(dphi.unsqueeze(-1))
            Q = dphi * torch.matmul(w_hh, Q)
            Ps[t], Qs[t] = P.reshape(B, H, H * M), Q
        ys = batch_first_outputs(Hs, lengths)  # (B, T, H)
        ctx.save_for_backward(Ps, Qs, lengths)
        ctx.sizes = (F, H, M)
        return ys, gather_last(Hs, lengths)

    @staticmethod
    @once_differentiable
    def backward(ctx, dys, dhT):
        Ps, Qs, lengths = ctx.saved_tensors
        F, H, M = ctx.sizes
        dY = dys.transpose(0, 1).clone(memory_format=torch.contiguous_format)  # (T, B, H)
        inject_final_grad(dY, dhT, lengths)
        d_theta = torch.einsum("tbk,tbkm->m", dY, Ps).reshape(H, M)  # (H, F + H + 1)
        dh0 = torch.einsum("tbk,tbkl->bl", dY, Qs)
        if ctx.needs_input_grad[0]:
            raise RuntimeError(
                "engine='rtrl' gives parameter gradients only: the input must not require grad"
            )
        return None, dh0, d_theta[:, :F], d_theta[:, F : F + H], d_theta[:, -1], None, None


def rtrl(
    u: Tensor,
    h0: Tensor,
    w_ih: Tensor,
    w_hh: Tensor,
    b: Tensor,
    lengths: Tensor | None = None,
    nonlinearity: str = "tanh",
) -> tuple[Tensor, Tensor]:
    """Run one recurrent layer with RTRL gradients; see :class:`RTRLRecurrence`."""
    if u.requires_grad:
        raise InputError(
            "input: engine='rtrl' gives parameter gradients only, so the input must not "
            "require grad (use engine='bptt' inside a stack)"
        )
    return RTRLRecurrence.apply(u, h0, w_ih, w_hh, b, lengths, nonlinearity)


class RTRLEngine:
    """One unidirectional layer whose cell gives ``rtrl_parameters() -> (w_ih, w_hh, b,
    nonlinearity)`` (the SRN), without recurrent dropout."""

    name = "rtrl"

    def why_not(self, layer) -> str | None:
        cell = layer.cells[0]
        if not hasattr(cell, "rtrl_parameters"):
            return f"{type(cell).__name__} has no RTRL form (the SRN has)"
        if layer.num_layers != 1 or layer.bidirectional or layer.recurrent_dropout:
            return (
                "one unidirectional layer without recurrent_dropout only, received "
                f"num_layers={layer.num_layers}, bidirectional={layer.bidirectional}, "
                f"recurrent_dropout={layer.recurrent_dropout}"
            )
        return None

    def run(self, layer, x: Tensor, state, lengths):
        w_ih, w_hh, b, nonlinearity = layer.cells[0].rtrl_parameters()
        y, h = rtrl(x, state[0][0], w_ih, w_hh, b, lengths, nonlinearity)
        return y, (h.unsqueeze(0),)
