r"""Long short-term memory: the forget-gate LSTM, the 1997 cell, peepholes, layer norm.

One step of the cell (Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000;
Gers & Schmidhuber 2001; Ba, Kiros & Hinton 2016):

.. math::

    a_t &= W_{ih} x_t + b_{ih} + b_{hh} + W_{hh} (r \odot h_{t-1})  \\
    i_t &= \sigma(a^i_t + p_i \odot c_{t-1}) \qquad
    f_t  = \sigma(a^f_t + p_f \odot c_{t-1}) \qquad
    g_t  = \tanh(a^g_t) \\
    c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
    o_t &= \sigma(a^o_t + p_o \odot c_t) \\
    h_t &= W_{hr} \big(o_t \odot \tanh(c_t)\big)

==================  =============================================================
symbol              meaning
==================  =============================================================
:math:`x_t`         input at step t, (B, F)
:math:`h_t`         output / recurrent state, (B, P); P = proj_size or H
:math:`c_t`         cell state ("constant error carousel"), (B, H)
:math:`i, f, o`     input, forget and output gates, (B, H)
:math:`g_t`         cell input, (B, H)
:math:`p_i,p_f,p_o` peephole weights (``peepholes=True``), diagonal, (H,)
:math:`r`           recurrent-dropout mask, one per sequence, (B, P)
:math:`W_{hr}`      projection (``proj_size > 0``), identity otherwise
==================  =============================================================

Options:

- ``forget_gate=False``: the 1997 cell. No forget gate (:math:`c_t = c_{t-1} + i_t g_t`),
  cell input squashed to [-2, 2] by :math:`g(a) = 4\sigma(a) - 2` and cell output to
  [-1, 1] by :math:`h(c) = 2\sigma(c) - 1` (H&S 1997, §4 and appendix A.1).
- ``layer_norm=True`` (Ba et al. 2016, §3.1): :math:`a_t = LN(W_{ih}x_t; \gamma_{ih}) +
  LN(W_{hh} h_{t-1}; \gamma_{hh}) + b` and :math:`h_t = o_t \odot \tanh(LN(c_t;
  \gamma_c, \beta_c))`.

The adjoint recursion (the BPTT kernel :class:`LSTMRecurrence`). Write
:math:`\bar{u} = \partial L / \partial u`, :math:`m_t = o_t \odot \phi_t`,
:math:`\phi_t = \tanh(\hat c_t)`; going backward from :math:`t = T`, with
:math:`\bar h_t` = (gradient from the output at t) + (carry from step t+1):

.. math::

    \bar m_t &= W_{hr}^\top \bar h_t, \qquad
    \bar a^o_t = \bar m_t \odot \phi_t \odot o_t (1 - o_t) \\
    \bar c_t &\mathrel{+}= \bar m_t \odot o_t \odot (1 - \phi_t^2) + \bar a^o_t \odot p_o \\
    \bar a^i_t &= \bar c_t \odot g_t \odot i_t(1-i_t), \quad
    \bar a^f_t = \bar c_t \odot c_{t-1} \odot f_t(1-f_t), \quad
    \bar a^g_t = \bar c_t \odot i_t \odot (1 - g_t^2) \\
    \bar c_{t-1} &= \bar c_t \odot f_t + \bar a^i_t \odot p_i + \bar a^f_t \odot p_f, \qquad
    \bar h_{t-1} \mathrel{+}= r \odot (W_{hh}^\top \bar a_t)

and the weight gradients are sums over time, each one matrix multiply at the end:
:math:`\bar W_{hh} = \sum_t \bar a_t^\top (r \odot h_{t-1})`,
:math:`\bar W_{hr} = \sum_t \bar h_t^\top m_t`. The input projections'
gradient :math:`\bar a_t` goes back through the one matmul that made them.

Parameters of the plain configuration are named and laid out as torch.nn.LSTM's
(``weight_ih_l0`` (4H, F) with gates in the order i, f, g, o; ``weight_hr_l0``), so a
``state_dict`` moves between the two in both directions. The 1997 cell stores (3H, ·)
with gates i, g, o. Internally the gates are reordered to (o, i, f, g) so that the
sigmoids and the cell-state-driven gates are each one contiguous block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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
from rnnlab.errors import InputError
from rnnlab.nn.cell import Cell, empty_parameter, input_projection
from rnnlab.nn.recurrent import Recurrent, uniform_

_STORED = {True: "ifgo", False: "igo"}  # gate order of the stored parameters
_INTERNAL = {True: "oifg", False: "oig"}  # gate order inside the kernels


def _gate_perm(forget_gate: bool, H: int, device) -> Tensor:
    """Row indices that take the stored gate order to the internal one."""
    stored, internal = _STORED[forget_gate], _INTERNAL[forget_gate]
    idx = [torch.arange(H) + stored.index(g) * H for g in internal]
    return torch.cat(idx).to(device)


# ------------------------------------------------------------------------- one step
def lstm_step(
    xp_t: Tensor,
    h: Tensor,
    c: Tensor,
    w_hh: Tensor,
    w_hr: Tensor | None = None,
    peepholes: tuple[Tensor, Tensor | None, Tensor] | None = None,
    ln: tuple[Tensor, Tensor, Tensor] | None = None,
    forget_gate: bool = True,
    rmask: Tensor | None = None,
    eps: float = 1e-5,
) -> tuple[Tensor, Tensor]:
    """One LSTM step in plain autograd ops (the loop engine; the specification).

    ``xp_t`` (B, G) is the input projection with both biases, gates in internal order
    (o, i, f, g) or (o, i, g) for the 1997 cell; ``w_hh`` (G, P) in the same order.
    ``peepholes`` = (p_i, p_f, p_o); ``ln`` = (gamma_hh, gamma_c, beta_c).
    Returns (h_t, c_t).
    """
    H = c.shape[-1]
    hin = h if rmask is None else h * rmask
    rec = hin @ w_hh.t()  # (B, G)
    if ln is not None:
        rec = F.layer_norm(rec, rec.shape[-1:], ln[0], None, eps)
    a = xp_t + rec
    a_o, a_i = a[:, :H], a[:, H : 2 * H]
    a_g = a[:, -H:]
    if peepholes is not None:
        a_i = a_i + peepholes[0] * c
    i = torch.sigmoid(a_i)
    if forget_gate:
        a_f = a[:, 2 * H : 3 * H]
        if peepholes is not None:
            a_f = a_f + peepholes[1] * c
        g = torch.tanh(a_g)
        c = torch.sigmoid(a_f) * c + i * g
    else:  # 1997: g in [-2, 2], no forget gate
        c = c + i * (4 * torch.sigmoid(a_g) - 2)
    if peepholes is not None:
        a_o = a_o + peepholes[2] * c
    o = torch.sigmoid(a_o)
    chat = c if ln is None else F.layer_norm(c, (H,), ln[1], ln[2], eps)
    phi = torch.tanh(chat) if forget_gate else 2 * torch.sigmoid(chat) - 1
    m = o * phi
    h = m if w_hr is None else m @ w_hr.t()
    return h, c


# ------------------------------------------------------------------------- BPTT kernel
def _ln_backward(dy: Tensor, z: Tensor, rstd: Tensor, gamma: Tensor) -> Tensor:
    """Gradient w.r.t. u of y = gamma * (u - mean(u)) * rstd + beta (last dimension)."""
    dz = dy * gamma
    return rstd * (dz - dz.mean(-1, keepdim=True) - z * (dz * z).mean(-1, keepdim=True))


class LSTMRecurrence(torch.autograd.Function):
    """Hand-written BPTT over a whole sequence for one layer and direction.

    forward(xp (B, T, G), h0 (B, P), c0 (B, H), w_hh (G, P), w_hr, p_i, p_f, p_o,
    g_hh, g_c, b_c, lengths, rmask, forget_gate, eps, loops, g_ih, b_ih) -> (ys (B, T, P), h_T,
    c_T).

    ``g_ih`` given (the compiled engine's fused CPU path only): ``xp`` holds the raw input
    projections W_ih x_t, and LN(W_ih x_t; g_ih) + b_ih is applied per step inside the C++
    loops (its adjoint and the gain and bias gradients in the backward step), so no
    separate layer_norm pass nor its (T, B, G) buffers are made.

    Steps past a sequence's length are computed and discarded: outputs there are zero,
    the final state is gathered at ``lengths``, and the backward pass starts each
    sequence's adjoint at its own last step (the gradient past it is exactly zero).
    Activation memory: O(T B H).
    """

    @staticmethod
    def forward(
        ctx,
        xp,
        h0,
        c0,
        w_hh,
        w_hr,
        p_i,
        p_f,
        p_o,
        g_hh,
        g_c,
        b_c,
        lengths,
        rmask,
        fg,
        eps,
        loops=None,
        g_ih=None,
        b_ih=None,
    ):
        B, T, G = xp.shape
        H, P = c0.shape[-1], h0.shape[-1]
        peep, ln = p_i is not None, g_hh is not None
        Hs = xp.new_empty(T + 1, B, P)  # h_0 .. h_T
        Cs = xp.new_empty(T + 1, B, H)  # c_0 .. c_T
        # gate pre-activations, then activations (o, i, f, g), in place: starts as a
        # time-major copy of the input projections, the recurrent term is added per step
        # (with g_ih: written inside the C++ step from the raw projections X)
        ln_in = g_ih is not None
        if ln_in:
            A = xp.new_empty(T, B, G)
            X = xp.transpose(0, 1)  # (T, B, G), contiguous: the raw W_ih x_t
            if loops is None or not X.is_contiguous():
                raise RuntimeError("LSTMRecurrence: g_ih needs the C++ loops and time-major xp")
        else:
            A = xp.transpose(0, 1).clone(memory_format=torch.contiguous_format)  # (T, B, G)
        stats_x = xp.new_empty(2, T, B, 1) if ln_in else None  # mean, rstd of X
        Phi = xp.new_empty(T, B, H)  # phi(c_hat_t)
        M = xp.new_empty(T, B, H) if w_hr is not None else None  # o * phi before W_hr
        U = xp.new_empty(T, B, G) if ln else None  # recurrent projections before LN
        stats_h = xp.new_empty(2, T, B, 1) if ln else None  # mean, rstd of U
        stats_c = xp.new_empty(2, T, B, 1) if ln else None  # mean, rstd of c_t
        Hs[0], Cs[0] = h0, c0
        ctx.loops = loops
        if loops is not None:  # the same loop in C++ (rnnlab.engines.compiled)
            loops.lstm_forward(
                A, Hs, Cs, Phi, M, U, stats_h, stats_c, w_hh, w_hr, p_i, p_f, p_o, g_hh, g_c,
                b_c, rmask, fg, eps, X if ln_in else None, stats_x, g_ih, b_ih,
            )  # fmt: skip
        else:
            w_hh_t = w_hh.t()
            # per-step views, made once: indexing inside the loop costs more than the math
            hs, cs, As, phis = steps(Hs), steps(Cs), steps(A), steps(Phi)
            a_o, a_i, a_f, a_g = (steps(A, k * H, (k + 1) * H) for k in (0, 1, 2, G // H - 1))
            a_sig = steps(A, H, G - H) if peep else steps(A, 0, G - H)  # sigmoid block
            us = steps(U) if ln else None
            ms = steps(M) if M is not None else None
            for t in range(T):
                c, cn, a = cs[t], cs[t + 1], As[t]
                hin = hs[t] if rmask is None else hs[t] * rmask
                if ln:
                    torch.mm(hin, w_hh_t, out=us[t])
                    rec, mean, rstd = torch.native_layer_norm(us[t], (G,), g_hh, None, eps)
                    stats_h[0, t], stats_h[1, t] = mean, rstd
                    a.add_(rec)
                else:
                    a.addmm_(hin, w_hh_t)
                if peep:
                    a_i[t].addcmul_(p_i, c)
                    if fg:
                        a_f[t].addcmul_(p_f, c)
                a_sig[t].sigmoid_()
                g = a_g[t]
                if fg:
                    g.tanh_()
                    torch.mul(a_f[t], c, out=cn)
                    cn.addcmul_(a_i[t], g)
                else:
                    g.sigmoid_().mul_(4).sub_(2)
                    torch.addcmul(c, a_i[t], g, out=cn)
                o = a_o[t]
                if peep:
                    o.addcmul_(p_o, cn).sigmoid_()
                chat = cn
                if ln:
                    chat, mean, rstd = torch.native_layer_norm(cn, (H,), g_c, b_c, eps)
                    stats_c[0, t], stats_c[1, t] = mean, rstd
                if fg:
                    torch.tanh(chat, out=phis[t])
                else:
                    torch.sigmoid(chat, out=phis[t]).mul_(2).sub_(1)
                if ms is None:
                    torch.mul(o, phis[t], out=hs[t + 1])
                else:
                    torch.mul(o, phis[t], out=ms[t])
                    torch.mm(ms[t], w_hr.t(), out=hs[t + 1])
        ys = batch_first_outputs(Hs, lengths)  # (B, T, H)
        ctx.save_for_backward(
            Hs, Cs, A, Phi, M, U, stats_h, stats_c, w_hh, w_hr, p_i, p_f, p_o, g_hh, g_c,
            b_c, lengths, rmask, xp if ln_in else None, stats_x, g_ih, b_ih,
        )  # fmt: skip
        ctx.fg, ctx.eps = fg, eps
        return ys, gather_last(Hs, lengths), gather_last(Cs, lengths)

    @staticmethod
    def backward(ctx, dys, dhT, dcT):
        refuse_double_backward("LSTMRecurrence")
        (Hs, Cs, A, Phi, M, U, stats_h, stats_c, w_hh, w_hr, p_i, p_f, p_o, g_hh, g_c, b_c,
         lengths, rmask, xp, stats_x, g_ih, b_ih) = ctx.saved_tensors  # fmt: skip
        fg = ctx.fg
        T, B, G = A.shape
        H, P = Cs.shape[-1], Hs.shape[-1]
        peep, ln = p_i is not None, g_hh is not None
        nc = G // H - 1  # gates driven by dc: (i, f, g) or (i, g)
        # dY[t]: total gradient w.r.t. h_t (output at t, final state, carry from t+1)
        dY = dys.transpose(0, 1).clone(memory_format=torch.contiguous_format)
        inject_final_grad(dY, dhT, lengths)
        # dc_T enters at each sequence's own last step
        dc = A.new_zeros(B, H)
        ends: dict[int, Tensor] = {}
        if lengths is None:
            dc += dcT
        else:
            last = lengths - 1
            ends = {t: (last == t).nonzero().squeeze(1) for t in last.unique().tolist()}

        dA = A.new_empty(T, B, G)
        dU = A.new_empty(T, B, G) if ln else dA
        dh0 = None
        d_ghh = d_gc = d_bc = None
        ln_in = g_ih is not None  # the input projections' layer norm inside the C++ step
        # dL/d(W_ih x_t), written over dA unless the peepholes' gradients need dA after
        dX = (A.new_empty(T, B, G) if peep else dA) if ln_in else None
        d_gih = A.new_empty(G) if ln_in else None
        d_bih = A.new_empty(G) if b_ih is not None else None
        if ctx.loops is not None:
            none = dc.new_empty(0, dtype=torch.long)  # per-step index lists of the ends
            ends_list = [ends.get(t, none) for t in range(T)] if ends else []
            # C++ with the pointwise step fused: the factors below (and the layer-norm
            # gains' gradients) are made per element inside it (None: the buffers do not
            # qualify, e.g. CUDA; then the ATen loop below runs)
            gains = (A.new_empty(G), A.new_empty(H), A.new_empty(H)) if ln else (None,) * 3
            dh0 = ctx.loops.lstm_backward_fused(
                dY, dA, dU if ln else None, dc, dcT, ends_list, A, Phi, Cs, U, stats_h,
                stats_c, *gains, w_hh, w_hr, p_i, p_f, p_o, g_hh, g_c, rmask, fg,
                xp.transpose(0, 1) if ln_in else None, stats_x, g_ih, dX, d_gih, d_bih,
            )  # fmt: skip
            if dh0 is not None:
                d_ghh, d_gc, d_bc = gains
        if dh0 is None and ln_in:
            raise RuntimeError("LSTMRecurrence: g_ih needs the fused C++ backward step")
        if dh0 is None:
            if ln:
                Zh = (U - stats_h[0]) * stats_h[1]  # normalised recurrent projections
                Zc = (Cs[1:] - stats_c[0]) * stats_c[1]
                dChat = A.new_empty(T, B, H)
            # factors of the adjoint, for all steps at once (T, B, ·)
            o, i, g = A[..., :H], A[..., H : 2 * H], A[..., G - H :]
            dphi = 1 - Phi * Phi if fg else (1 - Phi * Phi) / 2  # d phi / d c_hat
            K_o = Phi * o * (1 - o)  # da_o = dm * K_o
            K_c = o * dphi  # dc_hat = dm * K_c
            dg = 1 - g * g if fg else (4 - g * g) / 4  # tanh' or (4 sigma - 2)'
            K3 = A.new_empty(T, B, nc, H)  # da_{i,f,g} = dc * K_{i,f,g}
            torch.mul(g, i * (1 - i), out=K3[:, :, 0])
            if fg:
                f = A[..., 2 * H : 3 * H]
                torch.mul(Cs[:-1], f * (1 - f), out=K3[:, :, 1])
            torch.mul(i, dg, out=K3[:, :, -1])
            dys_, dAs = steps(dY), steps(dA)
            dUs = steps(dU) if ln else dAs
            da_o = steps(dA, 0, H)
            if peep:  # the peepholes' own gradient paths
                da_i, da_f = steps(dA, H, 2 * H), steps(dA, 2 * H, 3 * H)
            da_c = [d.view(B, nc, H) for d in steps(dA, H, G)]  # gates driven by dc
            K_os, K_cs, K3s, fs = steps(K_o), steps(K_c), steps(K3), steps(A, 2 * H, 3 * H)
            if ctx.loops is not None:  # the same loop in C++ (rnnlab.engines.compiled)
                dh0 = ctx.loops.lstm_backward(
                    dY, dA, dU if ln else None, dChat if ln else None, dc, dcT,
                    ends_list, A, K_o, K_c, K3, Zh if ln else None,
                    Zc if ln else None, stats_h, stats_c, w_hh, w_hr, p_i, p_f, p_o, g_hh, g_c,
                    rmask, fg,
                )  # fmt: skip
            for t in range(T - 1 if ctx.loops is None else -1, -1, -1):
                if t in ends:
                    idx = ends[t]
                    dc[idx] += dcT[idx]
                dm = dys_[t] if w_hr is None else dys_[t] @ w_hr  # (B, H)
                torch.mul(dm, K_os[t], out=da_o[t])
                if ln:
                    torch.mul(dm, K_cs[t], out=dChat[t])
                    dc += _ln_backward(dChat[t], Zc[t], stats_c[1, t], g_c)
                else:
                    dc.addcmul_(dm, K_cs[t])
                if peep:
                    dc.addcmul_(da_o[t], p_o)
                torch.mul(dc.unsqueeze(1), K3s[t], out=da_c[t])
                if fg:
                    dc.mul_(fs[t])
                if peep:
                    dc.addcmul_(da_i[t], p_i)
                    if fg:
                        dc.addcmul_(da_f[t], p_f)
                du = dAs[t]
                if ln:
                    du = dUs[t]
                    du.copy_(_ln_backward(dAs[t], Zh[t], stats_h[1, t], g_hh))
                if t > 0:
                    carry_back(dys_[t - 1], du, w_hh, rmask)
                else:
                    dh0 = du @ w_hh if rmask is None else (du @ w_hh) * rmask
        # weight gradients: one matmul (or one reduction) each, summed over time and batch
        hin = recurrent_input(Hs, rmask)  # (T, B, P)
        d_w_hh = dU.reshape(T * B, G).t() @ hin.reshape(T * B, P)
        d_w_hr = None if w_hr is None else dY.reshape(T * B, P).t() @ M.reshape(T * B, H)
        d_pi = d_pf = d_po = None
        if peep:
            d_pi = (dA[..., H : 2 * H] * Cs[:-1]).sum((0, 1))
            d_po = (dA[..., :H] * Cs[1:]).sum((0, 1))
            if fg:
                d_pf = (dA[..., 2 * H : 3 * H] * Cs[:-1]).sum((0, 1))
        if ln and d_ghh is None:
            d_ghh = (dA * Zh).sum((0, 1))
            d_gc = (dChat * Zc).sum((0, 1))
            d_bc = dChat.sum((0, 1))
        return (
            (dX if ln_in else dA).transpose(0, 1), dh0, dc, d_w_hh, d_w_hr, d_pi, d_pf, d_po,
            d_ghh, d_gc, d_bc, None, None, None, None, None, d_gih, d_bih,
        )  # fmt: skip


# ------------------------------------------------------------------------- the cell
class LSTMCell(Cell):
    """One LSTM layer and direction (see the module docstring for the recurrence).

    Args:
        input_size: F.  hidden_size: H, cells.
        bias, forget_gate, peepholes, layer_norm, forget_bias, proj_size: as in
        :class:`LSTM`.

    Parameters (torch.nn.LSTM's names and layouts, gates i, f, g, o; the 1997 cell i, g,
    o): ``weight_ih`` (G, F), ``weight_hh`` (G, P), ``bias_ih``, ``bias_hh`` (G,),
    ``weight_hr`` (P, H); peepholes ``weight_ci``, ``weight_cf``, ``weight_co`` (H,);
    layer norm ``layer_norm_ih``, ``layer_norm_hh`` (G,), ``layer_norm_c_weight``,
    ``layer_norm_c_bias`` (H,). State (h, c) of sizes (P, H).
    """

    fused_mode = "lstm"

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        bias: bool = True,
        forget_gate: bool = True,
        peepholes: bool = False,
        layer_norm: bool = False,
        forget_bias: float | None = None,
        proj_size: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        check_positive_int("input_size", input_size)
        H = check_positive_int("hidden_size", hidden_size)
        if (
            isinstance(proj_size, bool)
            or not isinstance(proj_size, int)
            or not (0 <= proj_size < hidden_size)
        ):
            raise InputError(
                f"proj_size: expected an integer in [0, hidden_size = {hidden_size}), "
                f"received {proj_size!r}"
            )
        if forget_bias is not None and not forget_gate:
            raise InputError("forget_bias: the 1997 cell (forget_gate=False) has no forget gate")
        P = proj_size or H
        super().__init__(state_sizes=(P, H), output_size=P)
        self.input_size, self.hidden_size, self.proj_size = input_size, H, proj_size
        self.bias, self.forget_gate = bool(bias), bool(forget_gate)
        self.peepholes, self.layer_norm = bool(peepholes), bool(layer_norm)
        self.forget_bias, self.eps = forget_bias, 1e-5
        G = self.num_gates * H
        f = {"device": device, "dtype": dtype}
        self.weight_ih = empty_parameter((G, input_size), **f)
        self.weight_hh = empty_parameter((G, P), **f)
        if self.bias:
            self.bias_ih, self.bias_hh = empty_parameter((G,), **f), empty_parameter((G,), **f)
        if proj_size:
            self.weight_hr = empty_parameter((P, H), **f)
        if self.peepholes:
            self.weight_ci = empty_parameter((H,), **f)
            if self.forget_gate:
                self.weight_cf = empty_parameter((H,), **f)
            self.weight_co = empty_parameter((H,), **f)
        if self.layer_norm:
            self.layer_norm_ih, self.layer_norm_hh = (empty_parameter((G,), **f) for _ in "ih")
            self.layer_norm_c_weight = empty_parameter((H,), **f)
            self.layer_norm_c_bias = empty_parameter((H,), **f)
        self.register_buffer("gate_perm", _gate_perm(self.forget_gate, H, device), persistent=False)
        self.reset_parameters()

    @property
    def num_gates(self) -> int:
        return 4 if self.forget_gate else 3

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: U(-1/sqrt(H), 1/sqrt(H)); LN gains 1, LN biases 0;
        ``forget_bias`` in b_ih's forget gate (b_hh's 0)."""
        H = self.hidden_size
        uniform_(self.parameters(), H)
        with torch.no_grad():
            if self.layer_norm:
                for name in ("layer_norm_ih", "layer_norm_hh", "layer_norm_c_weight"):
                    getattr(self, name).fill_(1.0)
                self.layer_norm_c_bias.zero_()
            if self.forget_bias is not None and self.bias:
                self.bias_ih[H : 2 * H] = self.forget_bias
                self.bias_hh[H : 2 * H] = 0.0

    def fused_unsupported(self) -> str | None:
        for opt, on in (
            ("forget_gate=False", not self.forget_gate),
            ("peepholes", self.peepholes),
            ("layer_norm", self.layer_norm),
        ):
            if on:
                return opt
        return None

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name in ("peepholes", "layer_norm"):
            if getattr(self, name):
                s += f", {name}=True"
        if not self.forget_gate:
            s += ", forget_gate=False"
        return s + (f", proj_size={self.proj_size}" if self.proj_size else "")

    def _ln_in_loops(self, x: Tensor, loops) -> bool:
        """Whether the C++ loops apply the input projections' layer norm themselves (the
        compiled engine's fused path: CPU float or double)."""
        return (
            loops is not None
            and self.layer_norm
            and x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float64)
        )

    def project(self, x: Tensor, loops=None) -> Tensor:
        """All input projections at once, gates in internal order: (B, T, G).

        With ``loops`` (the compiled engine) and layer norm on CPU float/double: the raw
        W_ih x_t (a time-major view), normalised and biased inside the C++ loops."""
        perm = self.gate_perm
        w_ih = self.weight_ih.index_select(0, perm)
        raw = self._ln_in_loops(x, loops)
        b = (self.bias_ih + self.bias_hh).index_select(0, perm) if self.bias and not raw else None
        if not self.layer_norm:
            return input_projection(x, w_ih, b)  # (B, T, G)
        # LN(W_ih x; gamma_ih) + b in one call (the biases are layer_norm's beta), on the
        # time-major (T*B, G) rows before the (B, T, G) view: layer_norm and its backward
        # then see contiguous memory (on the transposed view each made 1-2 copies of it)
        B, T, _ = x.shape
        u = input_projection(x, w_ih).transpose(0, 1).reshape(T * B, -1)  # a view
        if not raw:
            g = self.layer_norm_ih.index_select(0, perm)
            u = F.layer_norm(u, (w_ih.shape[0],), g, b, self.eps)
        return u.view(T, B, -1).transpose(0, 1)  # (B, T, G)

    def _weights(self):
        w_hh = self.weight_hh.index_select(0, self.gate_perm)
        peep = ln = None
        if self.peepholes:
            peep = (self.weight_ci, getattr(self, "weight_cf", None), self.weight_co)
        if self.layer_norm:
            ln = (
                self.layer_norm_hh.index_select(0, self.gate_perm),
                self.layer_norm_c_weight,
                self.layer_norm_c_bias,
            )
        return w_hh, getattr(self, "weight_hr", None), peep, ln

    def step(self, x_t, state):
        w_hh, w_hr, peep, ln = self._weights()
        h, c = lstm_step(x_t, *state, w_hh, w_hr, peep, ln, self.forget_gate, None, self.eps)
        return h, (h, c)

    has_compiled_loops = True  # rnnlab.engines.compiled runs LSTMRecurrence's loops in C++

    def recurrence(self, xp, state, lengths, masks, loops=None):
        w_hh, w_hr, peep, ln = self._weights()
        peep = peep or (None, None, None)
        ln = ln or (None, None, None)
        mask = None if masks is None else masks[0]
        ln_in = (None, None)  # project(x, loops) left the input layer norm to the loops
        if self._ln_in_loops(xp, loops):
            perm = self.gate_perm
            b = (self.bias_ih + self.bias_hh).index_select(0, perm) if self.bias else None
            ln_in = (self.layer_norm_ih.index_select(0, perm), b)
        ys, h, c = LSTMRecurrence.apply(
            xp, *state, w_hh, w_hr, *peep, *ln, lengths, mask, self.forget_gate, self.eps, loops,
            *ln_in,
        )  # fmt: skip
        return ys, (h, c)


# ------------------------------------------------------------------------- the layer
class LSTM(Recurrent):
    r"""A stack of LSTM layers (see the module docstring for the recurrence).

    Args:
        input_size: F, features of the input.
        hidden_size: H, cells per layer and direction.
        num_layers: stacked layers.
        bias: learn b_ih and b_hh.
        bidirectional: a second layer runs over each sequence reversed (within its
            length); outputs are concatenated, (B, T, 2 H).
        residual: add each stacked layer's input to its output (layers >= 1).
        dropout: dropout on the outputs of every layer but the last.
        recurrent_dropout: dropout on h_{t-1} in the recurrent input, one mask per
            sequence for all steps (Gal & Ghahramani 2016).
        learn_initial_state: (h_0, c_0) are trained parameters instead of zeros.
        forget_gate: False gives the 1997 cell (no forget gate, g in [-2, 2], h in [-1, 1]).
        peepholes: diagonal connections from the cell state to the gates (Gers 2001).
        layer_norm: layer normalisation of the gate inputs and the cell (Ba et al. 2016).
        forget_bias: initial value of the forget-gate bias (b_ih; b_hh starts at 0);
            None keeps torch.nn's initialisation. Gers et al. 2000 and Jozefowicz et al.
            2015 recommend a positive value such as 1.
        proj_size: P > 0 projects h_t = W_hr (o * tanh(c_t)) to P units (Sak et al. 2014).
        engine: "auto" (fused where torch has a kernel, else bptt), "fused", "bptt", "loop".

    Shapes: input (B, T, F) or (T, F); state (h_0, c_0) of shapes (L * D, B, P) and
    (L * D, B, H); outputs (B, T, D * P).
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
        forget_gate: bool = True,
        peepholes: bool = False,
        layer_norm: bool = False,
        forget_bias: float | None = None,
        proj_size: int = 0,
        engine: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        check_positive_int("hidden_size", hidden_size)

        def make_cell(n: int) -> LSTMCell:
            return LSTMCell(
                n, hidden_size, bias=bias, forget_gate=forget_gate, peepholes=peepholes,
                layer_norm=layer_norm, forget_bias=forget_bias, proj_size=proj_size,
                device=device, dtype=dtype,
            )  # fmt: skip

        super().__init__(
            make_cell, input_size, num_layers, bidirectional=bidirectional, residual=residual,
            dropout=dropout, recurrent_dropout=recurrent_dropout,
            learn_initial_state=learn_initial_state, engine=engine,
        )  # fmt: skip
        self.hidden_size, self.proj_size, self.bias = hidden_size, proj_size, bool(bias)
        self.forget_gate, self.peepholes = bool(forget_gate), bool(peepholes)
        self.layer_norm, self.forget_bias = bool(layer_norm), forget_bias

    @property
    def num_gates(self) -> int:
        return 4 if self.forget_gate else 3
