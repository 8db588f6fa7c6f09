r"""Iterated maps: why gradients vanish inside a basin of attraction and explode at its
boundary (Pascanu, Mikolov & Bengio 2013; Bengio, Simard & Frasconi 1994).

Running an RNN without input iterates a map :math:`h_{t+1} = f(h_t)`; backpropagation
multiplies its derivatives, :math:`\partial h_T / \partial h_0 = \prod_{t<T} f'(h_t)`.
Near an attracting fixed point or cycle the product shrinks geometrically (vanishing
gradient); a starting point on the boundary between two basins sits on a repelling
point where :math:`|f'| > 1`, so the product grows geometrically (exploding gradient):
the final state, as a function of :math:`h_0` or of a parameter, has a cliff there.

- :func:`logistic_map`: :math:`f(x) = r x (1 - x)`, ``r = 3.5`` (an attracting 4-cycle);
- :func:`bistable_rnn`: one tanh unit :math:`h_{t+1} = \tanh(w h_t + b)` with ``w = 2``:
  two point attractors :math:`\pm h^*` (:math:`h^* \approx 0.9575` for ``b = 0``)
  separated by the repelling point 0, where :math:`f'(0) = w = 2`;
- :func:`clipping_demo`: gradient descent on the bias ``b`` of the bistable unit, with
  and without gradient-norm clipping, across the cliff.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from rnnlab._validation import check_positive_int

LOGISTIC_R = 3.5


def logistic_map(x: torch.Tensor, r: float = LOGISTIC_R) -> torch.Tensor:
    """One step of the logistic map ``r x (1 - x)``."""
    return r * x * (1 - x)


def bistable_rnn(h: torch.Tensor, w: float | torch.Tensor = 2.0, b: float | torch.Tensor = 0.0):
    """One step of the one-unit tanh RNN ``tanh(w h + b)`` (no input)."""
    return torch.tanh(w * h + b)


def iterate(f, x0: torch.Tensor, T: int) -> torch.Tensor:
    """The orbit ``x_0, f(x_0), ..., f^T(x_0)``, shape ``(T + 1, *x0.shape)``."""
    check_positive_int("T", T)
    xs = [x0]
    for _ in range(T):
        xs.append(f(xs[-1]))
    return torch.stack(xs)


def orbit_gradient(f, x0: torch.Tensor, T: int) -> torch.Tensor:
    r""":math:`\partial x_T / \partial x_0` by autograd, elementwise over ``x0``."""
    with torch.enable_grad():
        x0 = x0.detach().clone().requires_grad_(True)
        xT = iterate(f, x0, T)[-1]
        (g,) = torch.autograd.grad(xT.sum(), x0)
    return g


def logistic_gradient_closed_form(x0: torch.Tensor, T: int, r: float = LOGISTIC_R):
    r""":math:`\prod_{t<T} f'(x_t)` with :math:`f'(x) = r (1 - 2x)` along the orbit."""
    xs = iterate(lambda x: logistic_map(x, r), x0, T)[:-1]
    return (r * (1 - 2 * xs)).prod(0)


def bistable_gradient_closed_form(h0: torch.Tensor, T: int, w: float = 2.0, b: float = 0.0):
    r""":math:`\prod_{t<T} w (1 - h_{t+1}^2)` along the orbit of the tanh unit."""
    hs = iterate(lambda h: bistable_rnn(h, w, b), h0, T)[1:]
    return (w * (1 - hs**2)).prod(0)


def fixed_point(w: float = 2.0, b: float = 0.0, h: float = 1.0, iters: int = 200) -> float:
    """An attracting fixed point of ``tanh(w h + b)``, by iteration from ``h``."""
    for _ in range(iters):
        h = math.tanh(w * h + b)
    return h


def logistic_cycle(r: float = LOGISTIC_R, x0: float = 0.3, burn: int = 2000) -> list[float]:
    """The attracting cycle of the logistic map (4 points for r = 3.5), sorted."""
    x = x0
    for _ in range(burn):
        x = r * x * (1 - x)
    cyc = []
    for _ in range(64):
        x = r * x * (1 - x)
        if all(abs(x - c) > 1e-9 for c in cyc):
            cyc.append(x)
    return sorted(cyc)


def cycle_multiplier(r: float = LOGISTIC_R) -> float:
    r"""The derivative of :math:`f^p` over one period of the attracting cycle,
    :math:`\prod_{c} f'(c)`; its magnitude below 1 makes the cycle attracting, and
    :math:`|\partial x_T/\partial x_0|` decays like its ``T/p``-th power."""
    return math.prod(r * (1 - 2 * c) for c in logistic_cycle(r))


class ClipTrajectory(NamedTuple):
    """Gradient descent on ``b`` with or without clipping.

    b: ``(steps + 1,)`` parameter values; loss: ``(steps + 1,)``; grad: ``(steps,)`` the raw
    (unclipped) gradients; max_jump: the largest ``|b_{k+1} - b_k|``.
    """

    b: torch.Tensor
    loss: torch.Tensor
    grad: torch.Tensor
    max_jump: float


def bistable_loss(
    b: torch.Tensor, *, T: int = 30, w: float = 2.0, h0: float = 0.0, target: float = 0.5
):
    """``(h_T - target)^2`` for the bistable unit started at ``h0``, as a function of ``b``
    (elementwise). For ``h0 = 0`` the cliff is at ``b = 0``: the start lies on the basin
    boundary."""
    h = torch.full_like(b, h0)
    for _ in range(T):
        h = bistable_rnn(h, w, b)
    return (h - target) ** 2


def clipping_demo(
    b0: float = 0.1,
    *,
    lr: float = 0.01,
    steps: int = 400,
    max_norm: float | None = None,
    T: int = 10,
    w: float = 2.0,
    target: float = 0.5,
) -> ClipTrajectory:
    """Gradient descent on ``b`` for :func:`bistable_loss` (float64). Starting in the
    positive basin, the loss slopes towards the cliff at ``b = 0``; the gradient there is
    of order :math:`w^T`, and one unclipped step throws ``b`` far away, while a clipped
    step (``max_norm``) moves at most ``lr * max_norm``. Thrown into a saturated region,
    the unclipped run then sees vanishing gradients and stalls at a high loss."""
    b = torch.tensor(b0, dtype=torch.float64)
    bs, losses, grads = [b.clone()], [], []
    for _ in range(steps):
        bb = b.clone().requires_grad_(True)
        loss = bistable_loss(bb, T=T, w=w, target=target)
        (g,) = torch.autograd.grad(loss, bb)
        losses.append(loss.detach())
        grads.append(g)
        step = g
        if max_norm is not None and g.abs() > max_norm:
            step = g * (max_norm / g.abs())  # Pascanu et al. 2013, Algorithm 1
        b = b - lr * step
        bs.append(b.clone())
    losses.append(bistable_loss(b, T=T, w=w, target=target))
    bs_t = torch.stack(bs)
    return ClipTrajectory(
        bs_t, torch.stack(losses), torch.stack(grads), float((bs_t[1:] - bs_t[:-1]).abs().max())
    )
