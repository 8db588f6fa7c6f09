r"""The lecture's scalar example of vanishing and exploding gradients.

A linear recurrent unit :math:`h_t = w\,h_{t-1} + x_t` has
:math:`\partial h_T / \partial h_0 = w^T`: over :math:`T = 50` steps, :math:`w = 1.1`
gives :math:`1.1^{50} \approx 117.4` and :math:`w = 0.9` gives
:math:`0.9^{50} \approx 0.00515` (:data:`PUBLISHED`). :func:`measured_gain` measures the
same number by autograd on a one-unit RNN; the tests compare both.
"""

from __future__ import annotations

import torch

from rnnlab._validation import check_positive_int
from rnnlab.errors import InputError

PUBLISHED = {1.1: 117.4, 0.9: 0.00515}  # T = 50


def analytic_gain(w: float, T: int) -> float:
    r"""Closed form :math:`\partial h_T / \partial h_0 = w^T`."""
    check_positive_int("T", T)
    return float(w) ** T


def linear_rnn(w: torch.Tensor, h0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    r"""Run :math:`h_t = w h_{t-1} + x_t` over ``x (T,)``; returns the states ``(T,)``."""
    h, out = h0, []
    for t in range(x.shape[0]):
        h = w * h + x[t]
        out.append(h)
    return torch.stack(out)


def measured_gain(w: float, T: int, *, layer: str = "linear") -> float:
    r""":math:`\partial h_T / \partial h_0` by autograd (float64).

    layer: ``"linear"`` (:func:`linear_rnn`) or ``"srn"``: ``rnnlab.nn.SRN`` with one
    ReLU unit, no bias, ``W_hh = w`` and zero input, started from :math:`h_0 = 1`; ReLU is
    the identity on its positive trajectory, so the unit is linear there.
    """
    check_positive_int("T", T)
    if layer not in ("linear", "srn"):
        raise InputError(f"layer: expected 'linear' or 'srn', received {layer!r}")
    h0 = torch.ones((), dtype=torch.float64, requires_grad=True)
    if layer == "linear":
        hT = linear_rnn(
            torch.tensor(w, dtype=torch.float64), h0, torch.zeros(T, dtype=torch.float64)
        )[-1]
    else:
        from rnnlab.nn import SRN

        net = SRN(1, 1, nonlinearity="relu", bias=False, dtype=torch.float64)
        with torch.no_grad():
            net.weight_hh_l0.fill_(w)
            net.weight_ih_l0.zero_()
        _, hn = net(torch.zeros(1, T, 1, dtype=torch.float64), h0.view(1, 1, 1))
        hT = hn.sum()
    (g,) = torch.autograd.grad(hT, h0)
    return float(g)
