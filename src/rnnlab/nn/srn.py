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
from torch.autograd.function import once_differentiable

from rnnlab.errors import InputError
from rnnlab.nn._runner import (
    RecurrentLayer,
    batch_first_outputs,
    carry_back,
    gather_last,
    inject_final_grad,
    project,
    recurrent_input,
    steps,
)

NONLINEARITIES = ("tanh", "sigmoid", "relu")
_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}
_ACT_ = {"tanh": torch.Tensor.tanh_, "sigmoid": torch.Tensor.sigmoid_, "relu": torch.Tensor.relu_}


def activation_derivative(h: Tensor, nonlinearity: str) -> Tensor:
    """phi'(a) written in terms of h = phi(a)."""
    if nonlinearity == "tanh":
        return 1 - h * h
    if nonlinearity == "sigmoid":
        return h * (1 - h)
    return (h > 0).to(h.dtype)


def srn_step(
    xp_t: Tensor, h: Tensor, w_hh: Tensor, nonlinearity: str = "tanh", rmask: Tensor | None = None
) -> Tensor:
    """One SRN step: phi(xp_t + W_hh (r * h)); ``xp_t`` (B, H) holds W_ih x_t and both biases."""
    hin = h if rmask is None else h * rmask
    return _ACT[nonlinearity](xp_t + hin @ w_hh.t())


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
        act_, w_t = _ACT_[nonlinearity], w_hh.t()
        xs, hs = steps(xpt), steps(Hs)  # per-step views, made once
        for t in range(T):
            h = hs[t] if rmask is None else hs[t] * rmask
            act_(torch.addmm(xs[t], h, w_t, out=hs[t + 1]))
        ys = batch_first_outputs(Hs, lengths)  # (B, T, H)
        ctx.save_for_backward(Hs, w_hh, lengths, rmask)
        ctx.nonlinearity = nonlinearity
        return ys, gather_last(Hs, lengths)

    @staticmethod
    @once_differentiable
    def backward(ctx, dys, dhT):
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


class SRN(RecurrentLayer):
    r"""A stack of Elman simple recurrent layers (see the module docstring).

    Args:
        input_size: F.  hidden_size: H.  num_layers: stacked layers.
        nonlinearity: "tanh" (default), "sigmoid" (Elman's logistic units) or "relu".
        bias, bidirectional, residual, dropout, recurrent_dropout, learn_initial_state,
        engine: as in :class:`rnnlab.nn.LSTM`, plus "rtrl" (real-time recurrent learning,
            :mod:`rnnlab.engines.rtrl`) for one unidirectional layer.

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
        if nonlinearity not in NONLINEARITIES:
            raise InputError(
                f"nonlinearity: expected one of {NONLINEARITIES}, received {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearity
        self._fused_mode = {"tanh": "rnn_tanh", "relu": "rnn_relu"}.get(nonlinearity)
        super().__init__(
            input_size, hidden_size, num_layers, bias=bias, bidirectional=bidirectional,
            residual=residual, dropout=dropout, recurrent_dropout=recurrent_dropout,
            learn_initial_state=learn_initial_state, engine=engine, device=device, dtype=dtype,
        )  # fmt: skip
        self.reset_parameters()

    def _build(self, k: int, sfx: str, in_size: int, factory: dict) -> None:
        H = self.hidden_size
        shapes = {"weight_ih": (H, in_size), "weight_hh": (H, H)}
        if self.bias:
            shapes.update(bias_ih=(H,), bias_hh=(H,))
        self._add_params(k, sfx, shapes, factory)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", nonlinearity={self.nonlinearity!r}"

    def _project(self, x: Tensor, k: int, sfx: str) -> Tensor:
        b = self._p("bias_ih", k, sfx) + self._p("bias_hh", k, sfx) if self.bias else None
        return project(x, self._p("weight_ih", k, sfx), b)  # (B, T, H)

    def _step(self, xp_t, state, k, sfx, rmask):
        h = srn_step(xp_t, state[0], self._p("weight_hh", k, sfx), self.nonlinearity, rmask)
        return h, (h,)

    def _recurrence(self, xp, state, k, sfx, lengths, rmask):
        w_hh = self._p("weight_hh", k, sfx)
        ys, h = SRNRecurrence.apply(xp, state[0], w_hh, lengths, rmask, self.nonlinearity)
        return ys, (h,)

    def _rtrl(self, x, state, lengths):
        if self.num_layers != 1 or self.bidirectional or self.recurrent_dropout:
            raise InputError(
                "engine='rtrl': one unidirectional layer without recurrent_dropout only, "
                f"received num_layers={self.num_layers}, bidirectional={self.bidirectional}"
            )
        from rnnlab.engines.rtrl import rtrl

        w_ih, w_hh = self.weight_ih_l0, self.weight_hh_l0
        b = self.bias_ih_l0 + self.bias_hh_l0 if self.bias else w_ih.new_zeros(w_ih.shape[0])
        y, h = rtrl(x, state[0][0], w_ih, w_hh, b, lengths, self.nonlinearity)
        return y, (h.unsqueeze(0),)
