r"""Elman's simple recurrent network (SRN).

The hidden layer sees the input and a copy of its own previous state, the "context
units" (Elman 1990, "Finding structure in time"):

.. math::

    h_t = \phi\big(W_{ih} x_t + b_{ih} + W_{hh} (r \odot h_{t-1}) + b_{hh}\big)

=================  =========================================================
symbol             meaning
=================  =========================================================
:math:`x_t`        input at step t, (B, F)
:math:`h_t`        hidden state, (B, H); :math:`h_{t-1}` are the context units
:math:`\phi`       tanh, logistic sigmoid or relu (``nonlinearity``)
:math:`r`          recurrent-dropout mask, one per sequence, (B, H)
=================  =========================================================

The adjoint recursion (BPTT, :class:`SRNRecurrence`): with :math:`\bar h_t` the
gradient from the output at step t plus the carry from step t+1,

.. math::

    \bar a_t = \bar h_t \odot \phi'(a_t), \qquad
    \bar h_{t-1} \mathrel{+}= r \odot (W_{hh}^\top \bar a_t), \qquad
    \bar W_{hh} = \sum_t \bar a_t^\top (r \odot h_{t-1}),

where :math:`\phi'` is read off the output: :math:`1 - h^2` (tanh), :math:`h (1 - h)`
(sigmoid), :math:`[h > 0]` (relu). Parameters of the tanh and relu SRN are named and laid
out as torch.nn.RNN's.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab._activations import ACT, ACT_, NONLINEARITIES, activation_derivative
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
from rnnlab.errors import InputError
from rnnlab.nn.cell import Cell, empty_parameter, input_projection
from rnnlab.nn.recurrent import Recurrent, uniform_


def srn_step(
    xp_t: Tensor, h: Tensor, w_hh: Tensor, nonlinearity: str = "tanh", rmask: Tensor | None = None
) -> Tensor:
    """One SRN step: phi(xp_t + W_hh (r * h)); ``xp_t`` (B, H) holds W_ih x_t and both biases."""
    hin = h if rmask is None else h * rmask
    return ACT[nonlinearity](xp_t + hin @ w_hh.t())


class SRNRecurrence(torch.autograd.Function):
    """Hand-written BPTT for one SRN layer and direction.

    forward(xp (B, T, H), h0 (B, H), w_hh (H, H), lengths, rmask, nonlinearity)
    -> (ys (B, T, H), h_T). Steps past a sequence's length are computed and discarded
    (outputs zero, final state gathered at ``lengths``; the backward pass starts each
    sequence at its own last step).
    """

    @staticmethod
    def forward(ctx, xp, h0, w_hh, lengths, rmask, nonlinearity):
        B, T, H = xp.shape
        xpt = xp.transpose(0, 1).contiguous()  # (T, B, H): contiguous rows for addmm
        Hs = xp.new_empty(T + 1, B, H)  # h_0 .. h_T
        Hs[0] = h0
        act_, w_t = ACT_[nonlinearity], w_hh.t()
        xs, hs = steps(xpt), steps(Hs)  # per-step views, made once
        for t in range(T):
            h = hs[t] if rmask is None else hs[t] * rmask
            act_(torch.addmm(xs[t], h, w_t, out=hs[t + 1]))
        ys = batch_first_outputs(Hs, lengths)  # (B, T, H)
        ctx.save_for_backward(Hs, w_hh, lengths, rmask)
        ctx.nonlinearity = nonlinearity
        return ys, gather_last(Hs, lengths)

    @staticmethod
    def backward(ctx, dys, dhT):
        refuse_double_backward("SRNRecurrence")
        Hs, w_hh, lengths, rmask = ctx.saved_tensors
        T, B, H = Hs.shape[0] - 1, Hs.shape[1], Hs.shape[2]
        dY = dys.transpose(0, 1).clone(memory_format=torch.contiguous_format)  # (T, B, H)
        inject_final_grad(dY, dhT, lengths)
        K = activation_derivative(Hs[1:], ctx.nonlinearity)  # (T, B, H)
        dA = K  # overwritten step by step: dA[t] = dY[t] * K[t]
        dAs, dys_ = steps(dA), steps(dY)
        for t in range(T - 1, -1, -1):
            dAs[t].mul_(dys_[t])
            if t > 0:
                carry_back(dys_[t - 1], dAs[t], w_hh, rmask)
        dh0 = dA[0] @ w_hh if rmask is None else (dA[0] @ w_hh) * rmask
        hin = recurrent_input(Hs, rmask)
        d_w_hh = dA.reshape(T * B, H).t() @ hin.reshape(T * B, H)
        return dA.transpose(0, 1), dh0, d_w_hh, None, None, None


class SRNCell(Cell):
    """One Elman layer and direction (see the module docstring); torch.nn.RNN's parameters
    ``weight_ih`` (H, F), ``weight_hh`` (H, H), ``bias_ih``, ``bias_hh`` (H,)."""

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        nonlinearity: str = "tanh",
        bias: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        check_positive_int("input_size", input_size)
        check_positive_int("hidden_size", hidden_size)
        super().__init__(state_sizes=(hidden_size,), output_size=hidden_size)
        if nonlinearity not in NONLINEARITIES:
            raise InputError(
                f"nonlinearity: expected one of {NONLINEARITIES}, received {nonlinearity!r}"
            )
        factory = {"device": device, "dtype": dtype}
        H = hidden_size
        self.input_size, self.hidden_size = input_size, H
        self.nonlinearity, self.bias = nonlinearity, bool(bias)
        self.fused_mode = {"tanh": "rnn_tanh", "relu": "rnn_relu"}.get(nonlinearity)
        self.weight_ih = empty_parameter((H, input_size), **factory)
        self.weight_hh = empty_parameter((H, H), **factory)
        if self.bias:
            self.bias_ih = empty_parameter((H,), **factory)
            self.bias_hh = empty_parameter((H,), **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch.nn's initialisation, U(-1/sqrt(H), 1/sqrt(H))."""
        uniform_(self.parameters(), self.hidden_size)

    def fused_unsupported(self) -> str | None:
        return None if self.fused_mode else f"nonlinearity={self.nonlinearity!r}"

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, nonlinearity={self.nonlinearity!r}"

    def project(self, x: Tensor) -> Tensor:
        b = self.bias_ih + self.bias_hh if self.bias else None
        return input_projection(x, self.weight_ih, b)  # (B, T, H)

    def step(self, x_t, state):
        h = srn_step(x_t, state[0], self.weight_hh, self.nonlinearity)
        return h, (h,)

    def recurrence(self, xp, state, lengths, masks):
        mask = None if masks is None else masks[0]
        ys, h = SRNRecurrence.apply(xp, state[0], self.weight_hh, lengths, mask, self.nonlinearity)
        return ys, (h,)

    def rtrl_parameters(self):
        """(W_ih, W_hh, b_ih + b_hh, nonlinearity) for the RTRL engine."""
        w = self.weight_ih
        b = self.bias_ih + self.bias_hh if self.bias else w.new_zeros(w.shape[0])
        return w, self.weight_hh, b, self.nonlinearity


class SRN(Recurrent):
    r"""A stack of Elman simple recurrent layers (see the module docstring).

    Args:
        input_size: F.  hidden_size: H.  num_layers: stacked layers.
        nonlinearity: "tanh" (default), "sigmoid" (Elman's logistic units) or "relu".
        bias, bidirectional, residual, dropout, recurrent_dropout, learn_initial_state,
        engine: as in :class:`rnnlab.nn.Recurrent`, plus "rtrl" (real-time recurrent
            learning, :mod:`rnnlab.engines.rtrl`) for one unidirectional layer.

    Shapes: input (B, T, F) or (T, F); state h_0 (L * D, B, H); outputs (B, T, D * H).
    The tanh and relu SRN use torch.nn.RNN's parameter names and its fused kernel.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        nonlinearity: str = "tanh",
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

        def make_cell(n: int) -> SRNCell:
            return SRNCell(n, hidden_size, nonlinearity=nonlinearity, bias=bias,
                           device=device, dtype=dtype)  # fmt: skip

        super().__init__(
            make_cell, input_size, num_layers, bidirectional=bidirectional, residual=residual,
            dropout=dropout, recurrent_dropout=recurrent_dropout,
            learn_initial_state=learn_initial_state, engine=engine,
        )  # fmt: skip
        self.hidden_size, self.nonlinearity, self.bias = hidden_size, nonlinearity, bool(bias)
