r"""Gated recurrent unit (Cho et al. 2014), in torch.nn's "reset after" form.

.. math::

    r_t &= \sigma(W_{ir} x_t + b_{ir} + W_{hr} \tilde h_{t-1} + b_{hr}) \\
    z_t &= \sigma(W_{iz} x_t + b_{iz} + W_{hz} \tilde h_{t-1} + b_{hz}) \\
    n_t &= \tanh\big(W_{in} x_t + b_{in} + r_t \odot (W_{hn} \tilde h_{t-1} + b_{hn})\big) \\
    h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}

=================  ===========================================================
symbol             meaning
=================  ===========================================================
:math:`r, z`       reset and update gates, (B, H)
:math:`n_t`        candidate state, (B, H)
:math:`\tilde h`   :math:`r^{drop} \odot h_{t-1}`, the state seen by the recurrent
                   weights (recurrent dropout; :math:`h_{t-1}` itself otherwise)
=================  ===========================================================

The reset gate multiplies :math:`W_{hn} h_{t-1} + b_{hn}` *after* the matrix product
(torch.nn and cuDNN's convention; Cho et al. apply it before), so weights interchange with
torch.nn.GRU. Write :math:`q_t = W_{hh} \tilde h_{t-1} + b_{hh}` (gates r, z, n).
The adjoint recursion (:class:`GRURecurrence`):

.. math::

    \bar a^n_t &= \bar h_t \odot (1 - z_t)(1 - n_t^2), \quad
    \bar a^z_t = \bar h_t \odot (h_{t-1} - n_t)\, z_t (1 - z_t), \quad
    \bar a^r_t = \bar a^n_t \odot q^n_t \odot r_t (1 - r_t) \\
    \bar q_t &= (\bar a^r_t, \bar a^z_t, r_t \odot \bar a^n_t), \qquad
    \bar h_{t-1} \mathrel{+}= \bar h_t \odot z_t + r^{drop} \odot (W_{hh}^\top \bar q_t)

with :math:`\bar W_{hh} = \sum_t \bar q_t^\top \tilde h_{t-1}`,
:math:`\bar b_{hh} = \sum_t \bar q_t`, and :math:`\bar a_t` going back through the
input projection.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab._validation import check_positive_int
from rnnlab.engines.bptt import (
    batch_first_outputs,
    carry_back,
    gather_last,
    inject_final_grad,
    recurrent_input,
    refuse_double_backward,
    steps,
)
from rnnlab.nn.cell import Cell, empty_parameter, input_projection
from rnnlab.nn.recurrent import Recurrent, uniform_


def gru_step(
    xp_t: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, rmask: Tensor | None = None
) -> Tensor:
    """One GRU step; ``xp_t`` (B, 3H) = W_ih x_t + b_ih, gates (r, z, n)."""
    H = h.shape[-1]
    hin = h if rmask is None else h * rmask
    q = hin @ w_hh.t()  # (B, 3H)
    if b_hh is not None:
        q = q + b_hh
    rz = torch.sigmoid(xp_t[:, : 2 * H] + q[:, : 2 * H])
    r, z = rz[:, :H], rz[:, H:]
    n = torch.tanh(xp_t[:, 2 * H :] + r * q[:, 2 * H :])
    return (1 - z) * n + z * h


class GRURecurrence(torch.autograd.Function):
    """Hand-written BPTT for one GRU layer and direction.

    forward(xp (B, T, 3H), h0 (B, H), w_hh (3H, H), b_hh (3H,) or None, lengths, rmask)
    -> (ys (B, T, H), h_T).
    """

    @staticmethod
    def forward(ctx, xp, h0, w_hh, b_hh, lengths, rmask):
        B, T, G = xp.shape
        H = G // 3
        xpt = xp.transpose(0, 1).contiguous()  # (T, B, 3H): contiguous rows
        Hs = xp.new_empty(T + 1, B, H)  # h_0 .. h_T
        Q = xp.new_empty(T, B, G)  # W_hh h~ + b_hh
        RZ = xp.new_empty(T, B, 2 * H)  # gates r, z
        N = xp.new_empty(T, B, H)  # candidates n
        Hs[0] = h0
        w_t = w_hh.t()
        bias = b_hh if b_hh is not None else xp.new_zeros(G)
        # per-step views, made once (indexing inside the loop costs more than the math)
        hs, qs, rzs, ns = steps(Hs), steps(Q), steps(RZ), steps(N)
        x_rz, x_n = steps(xpt, 0, 2 * H), steps(xpt, 2 * H)
        q_rz, q_n, rs, zs = steps(Q, 0, 2 * H), steps(Q, 2 * H), steps(RZ, 0, H), steps(RZ, H)
        for t in range(T):
            h = hs[t]
            hin = h if rmask is None else h * rmask
            torch.addmm(bias, hin, w_t, out=qs[t])
            torch.add(x_rz[t], q_rz[t], out=rzs[t]).sigmoid_()
            torch.addcmul(x_n[t], rs[t], q_n[t], out=ns[t]).tanh_()
            torch.lerp(ns[t], h, zs[t], out=hs[t + 1])  # n + z (h - n)
        ys = batch_first_outputs(Hs, lengths)  # (B, T, H)
        ctx.save_for_backward(Hs, Q, RZ, N, w_hh, lengths, rmask)
        ctx.has_bias = b_hh is not None
        return ys, gather_last(Hs, lengths)

    @staticmethod
    def backward(ctx, dys, dhT):
        refuse_double_backward("GRURecurrence")
        Hs, Q, RZ, N, w_hh, lengths, rmask = ctx.saved_tensors
        T, B, G = Q.shape
        H = G // 3
        dY = dys.transpose(0, 1).clone(memory_format=torch.contiguous_format)  # (T, B, H)
        inject_final_grad(dY, dhT, lengths)
        r, z = RZ[..., :H], RZ[..., H:]
        # da = dh * K (gates r, z, n of the input projection); dq = dh * Kq
        K_n = (1 - z) * (1 - N * N)
        K = torch.stack([K_n * Q[..., 2 * H :] * r * (1 - r), (Hs[:-1] - N) * z * (1 - z), K_n], 2)
        Kq = K.clone()
        Kq[:, :, 2] *= r  # (T, B, 3, H)
        dA = K.view(T, B, G)  # overwritten in place: dA[t] = dh_t * K[t]
        dQ = Kq.view(T, B, G)
        dys_, zs = steps(dY), steps(z)
        dAs = [d.view(B, 3, H) for d in steps(dA)]
        dQf = steps(dQ)
        dQs = [d.view(B, 3, H) for d in dQf]
        for t in range(T - 1, -1, -1):
            dh = dys_[t]
            dAs[t].mul_(dh.unsqueeze(1))
            dQs[t].mul_(dh.unsqueeze(1))
            if t > 0:
                carry_back(dys_[t - 1], dQf[t], w_hh, rmask)
                dys_[t - 1].addcmul_(dh, zs[t])
        dh0 = dQ[0] @ w_hh if rmask is None else (dQ[0] @ w_hh) * rmask
        hin = recurrent_input(Hs, rmask)
        dh0 += dY[0] * z[0]
        d_w_hh = dQ.reshape(T * B, G).t() @ hin.reshape(T * B, H)
        d_b_hh = dQ.sum((0, 1)) if ctx.has_bias else None
        return dA.transpose(0, 1), dh0, d_w_hh, d_b_hh, None, None


class GRUCell(Cell):
    """One GRU layer and direction (see the module docstring); torch.nn.GRU's parameters
    ``weight_ih`` (3H, F), ``weight_hh`` (3H, H), ``bias_ih``, ``bias_hh`` (3H,), gates
    r, z, n. Recurrent dropout masks h_{t-1} where the recurrent weights see it, not in
    the interpolation :math:`z_t h_{t-1}`."""

    fused_mode = "gru"

    def __init__(
        self, input_size: int, hidden_size: int, *, bias: bool = True, device=None, dtype=None
    ) -> None:
        check_positive_int("input_size", input_size)
        H = check_positive_int("hidden_size", hidden_size)
        super().__init__(state_sizes=(H,), output_size=H)
        self.input_size, self.hidden_size, self.bias = input_size, H, bool(bias)
        f = {"device": device, "dtype": dtype}
        self.weight_ih = empty_parameter((3 * H, input_size), **f)
        self.weight_hh = empty_parameter((3 * H, H), **f)
        if self.bias:
            self.bias_ih = empty_parameter((3 * H,), **f)
            self.bias_hh = empty_parameter((3 * H,), **f)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's initialisation, U(-1/sqrt(H), 1/sqrt(H))."""
        uniform_(self.parameters(), self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"

    def project(self, x: Tensor) -> Tensor:
        return input_projection(x, self.weight_ih, getattr(self, "bias_ih", None))  # (B, T, 3H)

    def step(self, x_t, state):
        return self.masked_step(x_t, state, None)

    def masked_step(self, x_t, state, masks):
        mask = None if masks is None else masks[0]
        h = gru_step(x_t, state[0], self.weight_hh, getattr(self, "bias_hh", None), mask)
        return h, (h,)

    def recurrence(self, xp, state, lengths, masks):
        mask = None if masks is None else masks[0]
        b_hh = getattr(self, "bias_hh", None)
        ys, h = GRURecurrence.apply(xp, state[0], self.weight_hh, b_hh, lengths, mask)
        return ys, (h,)


class GRU(Recurrent):
    r"""A stack of GRU layers (see the module docstring); torch.nn.GRU's parameters.

    Args: as :class:`rnnlab.nn.LSTM` (input_size, hidden_size, num_layers, bias,
    bidirectional, residual, dropout, recurrent_dropout, learn_initial_state, engine).

    Shapes: input (B, T, F) or (T, F); state h_0 (L * D, B, H); outputs (B, T, D * H).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        bidirectional: bool = False,
        residual: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        learn_initial_state: bool = False,
        engine: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        check_positive_int("hidden_size", hidden_size)

        def make_cell(n: int) -> GRUCell:
            return GRUCell(n, hidden_size, bias=bias, device=device, dtype=dtype)

        super().__init__(
            make_cell, input_size, num_layers, bidirectional=bidirectional, residual=residual,
            dropout=dropout, recurrent_dropout=recurrent_dropout,
            learn_initial_state=learn_initial_state, engine=engine,
        )  # fmt: skip
        self.hidden_size, self.bias = hidden_size, bool(bias)
