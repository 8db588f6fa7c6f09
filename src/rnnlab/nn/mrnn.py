r"""Multiplicative RNN (Sutskever, Martens & Hinton 2011, "Generating text with recurrent
neural networks", §3).

The input chooses the recurrent weight matrix: :math:`W_{hh}^{(x_t)} = W_{hf}\,
\mathrm{diag}(W_{fx} x_t)\, W_{fh}`, factored through F' factors so that each input
character gets its own transition without a tensor of V matrices:

.. math::

    f_t &= (W_{fx} x_t) \odot (W_{fh} \tilde h_{t-1}) \\
    h_t &= \tanh(W_{hf} f_t + W_{hx} x_t + b_h)

=================  ===========================================================
symbol             meaning
=================  ===========================================================
:math:`x_t`        input at step t, (B, F)
:math:`f_t`        factors, (B, F'); F' = ``factor_size`` (default H)
:math:`h_t`        hidden state, (B, H)
:math:`\tilde h`   :math:`r \odot h_{t-1}` with a recurrent-dropout mask r, else h
=================  ===========================================================

The adjoint recursion (:class:`MRNNRecurrence`), with :math:`\bar h_t` the gradient from
the output at t plus the carry from t+1 and :math:`u_t = W_{fh} \tilde h_{t-1}`:

.. math::

    \bar a_t = \bar h_t \odot (1 - h_t^2), \quad
    \bar f_t = W_{hf}^\top \bar a_t, \quad
    \bar u_t = \bar f_t \odot (W_{fx} x_t), \quad
    \bar h_{t-1} \mathrel{+}= r \odot W_{fh}^\top \bar u_t

and, each one matmul over all steps at the end, :math:`\bar W_{hf} = \sum_t \bar a_t^\top
f_t`, :math:`\bar W_{fh} = \sum_t \bar u_t^\top \tilde h_{t-1}`; the input projections get
:math:`\bar a_t` and :math:`\bar f_t \odot u_t`.
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


def mrnn_step(
    xp_t: Tensor, h: Tensor, w_fh: Tensor, w_hf: Tensor, rmask: Tensor | None = None
) -> Tensor:
    """One step; ``xp_t`` (B, H + F') = (W_hx x_t + b_h, W_fx x_t)."""
    H = h.shape[-1]
    hin = h if rmask is None else h * rmask
    f = xp_t[:, H:] * (hin @ w_fh.t())  # (B, F')
    return torch.tanh(xp_t[:, :H] + f @ w_hf.t())


class MRNNRecurrence(torch.autograd.Function):
    """Hand-written BPTT for one multiplicative-RNN layer and direction.

    forward(xp (B, T, H + F'), h0 (B, H), w_fh (F', H), w_hf (H, F'), lengths, rmask)
    -> (ys (B, T, H), h_T).
    """

    @staticmethod
    def forward(ctx, xp, h0, w_fh, w_hf, lengths, rmask):
        B, T, _ = xp.shape
        H, Fc = h0.shape[-1], w_fh.shape[0]
        xpt = xp.transpose(0, 1).contiguous()  # (T, B, H + F'): contiguous rows
        Hs = xp.new_empty(T + 1, B, H)  # h_0 .. h_T
        U = xp.new_empty(T, B, Fc)  # W_fh h~_{t-1}
        Fs = xp.new_empty(T, B, Fc)  # factors f_t
        Hs[0] = h0
        xs_h, xs_f, hs, us, fs = steps(xpt, 0, H), steps(xpt, H), steps(Hs), steps(U), steps(Fs)
        w_fh_t, w_hf_t = w_fh.t(), w_hf.t()
        for t in range(T):
            hin = hs[t] if rmask is None else hs[t] * rmask
            torch.mm(hin, w_fh_t, out=us[t])
            torch.mul(xs_f[t], us[t], out=fs[t])
            torch.addmm(xs_h[t], fs[t], w_hf_t, out=hs[t + 1]).tanh_()
        ys = batch_first_outputs(Hs, lengths)  # (B, T, H)
        ctx.save_for_backward(xp, Hs, U, Fs, w_fh, w_hf, lengths, rmask)
        return ys, gather_last(Hs, lengths)

    @staticmethod
    def backward(ctx, dys, dhT):
        refuse_double_backward("MRNNRecurrence")
        xp, Hs, U, Fs, w_fh, w_hf, lengths, rmask = ctx.saved_tensors
        T, B, H = Hs.shape[0] - 1, Hs.shape[1], Hs.shape[2]
        Fc = U.shape[-1]
        dY = dys.transpose(0, 1).clone(memory_format=torch.contiguous_format)  # (T, B, H)
        inject_final_grad(dY, dhT, lengths)
        dA = 1 - Hs[1:] * Hs[1:]  # tanh'; overwritten in place: dA[t] = dh_t * (1 - h_t^2)
        dF = dA.new_empty(T, B, Fc)
        dU = dA.new_empty(T, B, Fc)
        x_f = steps(xp.transpose(0, 1), H)  # W_fx x_t, (B, F') each
        dAs, dFs, dUs, dys_ = steps(dA), steps(dF), steps(dU), steps(dY)
        for t in range(T - 1, -1, -1):
            dAs[t].mul_(dys_[t])
            torch.mm(dAs[t], w_hf, out=dFs[t])
            torch.mul(dFs[t], x_f[t], out=dUs[t])
            if t > 0:
                carry_back(dys_[t - 1], dUs[t], w_fh, rmask)
        dh0 = dU[0] @ w_fh if rmask is None else (dU[0] @ w_fh) * rmask
        hin = recurrent_input(Hs, rmask)
        d_w_hf = dA.reshape(T * B, H).t() @ Fs.reshape(T * B, Fc)
        d_w_fh = dU.reshape(T * B, Fc).t() @ hin.reshape(T * B, H)
        dxp = torch.cat([dA, dF * U], dim=-1).transpose(0, 1)  # (B, T, H + F')
        return dxp, dh0, d_w_fh, d_w_hf, None, None


class MultiplicativeRNNCell(Cell):
    """One multiplicative RNN layer and direction (see the module docstring).

    Parameters: ``weight_hx`` (H, F), ``weight_fx`` (F', F), ``weight_fh`` (F', H),
    ``weight_hf`` (H, F'), ``bias_h`` (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        factor_size: int | None = None,
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        check_positive_int("input_size", input_size)
        H = check_positive_int("hidden_size", hidden_size)
        Fc = check_positive_int("factor_size", H if factor_size is None else factor_size)
        super().__init__(state_sizes=(H,), output_size=H)
        self.input_size, self.hidden_size, self.factor_size = input_size, H, Fc
        self.bias = bool(bias)
        f = {"device": device, "dtype": dtype}
        self.weight_hx = empty_parameter((H, input_size), **f)
        self.weight_fx = empty_parameter((Fc, input_size), **f)
        self.weight_fh = empty_parameter((Fc, H), **f)
        self.weight_hf = empty_parameter((H, Fc), **f)
        if self.bias:
            self.bias_h = empty_parameter((H,), **f)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) for every parameter (torch.nn's recurrent default)."""
        uniform_(self.parameters(), self.hidden_size)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, factor_size={self.factor_size}"

    def project(self, x: Tensor) -> Tensor:
        w = torch.cat([self.weight_hx, self.weight_fx])
        b = None
        if self.bias:  # the factors have no bias
            b = torch.cat([self.bias_h, w.new_zeros(self.factor_size)])
        return input_projection(x, w, b)  # (B, T, H + F')

    def step(self, x_t, state):
        h = mrnn_step(x_t, state[0], self.weight_fh, self.weight_hf)
        return h, (h,)

    def recurrence(self, xp, state, lengths, masks):
        mask = None if masks is None else masks[0]
        ys, h = MRNNRecurrence.apply(xp, state[0], self.weight_fh, self.weight_hf, lengths, mask)
        return ys, (h,)


class MultiplicativeRNN(Recurrent):
    r"""A stack of multiplicative RNN layers (see the module docstring).

    Args:
        input_size: F.  hidden_size: H.  num_layers: stacked layers.
        factor_size: F', the number of factors (default H).
        bias, bidirectional, residual, dropout, recurrent_dropout, learn_initial_state,
        engine ("auto" = "bptt", "bptt", "loop"): as in :class:`rnnlab.nn.LSTM`.

    Parameters per layer: ``weight_hx_l{k}`` (H, F), ``weight_fx_l{k}`` (F', F),
    ``weight_fh_l{k}`` (F', H), ``weight_hf_l{k}`` (H, F'), ``bias_h_l{k}`` (H,).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        factor_size: int | None = None,
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

        def make_cell(n: int) -> MultiplicativeRNNCell:
            return MultiplicativeRNNCell(n, hidden_size, factor_size=factor_size, bias=bias,
                                         device=device, dtype=dtype)  # fmt: skip

        super().__init__(
            make_cell, input_size, num_layers, bidirectional=bidirectional, residual=residual,
            dropout=dropout, recurrent_dropout=recurrent_dropout,
            learn_initial_state=learn_initial_state, engine=engine,
        )  # fmt: skip
        self.hidden_size, self.bias = hidden_size, bool(bias)
        self.factor_size = self.cells[0].factor_size
