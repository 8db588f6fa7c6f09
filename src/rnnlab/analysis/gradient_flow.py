r"""Gradient flow through time, measured with autograd for any recurrent layer.

For a layer with state :math:`s_t` (``h_t``, or ``(h_t, c_t)`` for an LSTM) and output
:math:`h_t`, backpropagation through time multiplies Jacobians,

.. math::

    \frac{\partial h_T}{\partial s_t} = \frac{\partial h_T}{\partial s_{T-1}}
    \prod_{k=t+1}^{T-1} \frac{\partial s_k}{\partial s_{k-1}},

so its norm shrinks or grows geometrically in :math:`T - t` unless the product is kept
near the identity (the LSTM's constant error carousel). Here the layer is run one step
at a time, ``layer(x[:, t:t+1], state)``, and a zero perturbation :math:`\epsilon_t` is
added to the state after each step; :math:`\partial(\cdot)/\partial\epsilon_t =
\partial(\cdot)/\partial s_t` exactly. Any layer with the call shape
``outputs, state = layer(x, state)`` works (rnnlab.nn layers, torch.nn with
``batch_first=True``), unidirectional and single-layer or stacked.

Symbols: B batch, T time, F input features, H hidden units, S state size (H, or 2H for
an LSTM's concatenated ``(h, c)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from rnnlab._validation import check_rank, check_tensor
from rnnlab.errors import InputError


class StepGradients(NamedTuple):
    """Per-step gradient norms of a loss, averaged over the batch.

    state: ``(T,)``, :math:`\\|\\partial L / \\partial s_t\\|` (the BPTT adjoint of the
        state after step t).
    input: ``(T,)``, :math:`\\|\\partial L / \\partial x_t\\|`.
    """

    state: torch.Tensor
    input: torch.Tensor


def _flatten(state) -> list[torch.Tensor]:
    return list(state) if isinstance(state, (tuple, list)) else [state]


def _rebuild(like, parts: list[torch.Tensor]):
    return tuple(parts) if isinstance(like, (tuple, list)) else parts[0]


def run_with_state_probes(
    layer: nn.Module, x: torch.Tensor, state=None
) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """Run ``layer`` step by step over ``x (B, T, F)`` and add a zero probe (requiring
    grad) to every state tensor after every step.

    Returns ``outputs (B, T, H)`` and ``probes[t]``, the list of probe tensors of step t
    (one per state tensor, each shaped like it: ``(num_layers, B, H)``); gradients with
    respect to the probes are gradients with respect to the states.
    """
    check_tensor("x", x)
    check_rank("x", x, (3,), "(B, T, F)")
    if getattr(layer, "bidirectional", False):
        raise InputError("layer: expected a unidirectional layer, received bidirectional=True")
    outs, probes = [], []
    for t in range(x.shape[1]):
        out, state = layer(x[:, t : t + 1], state)  # (B, 1, H)
        parts = _flatten(state)
        eps = [torch.zeros_like(p, requires_grad=True) for p in parts]
        state = _rebuild(state, [p + e for p, e in zip(parts, eps)])
        # the step's output is h of the last layer: rebuild it from the probed state so
        # that d(output_t)/d(probe_t) is the identity, as in the unrolled network
        h_last = _flatten(state)[0][-1]  # (B, H)
        if out.shape[-1] == h_last.shape[-1]:
            out = h_last.unsqueeze(1)
        outs.append(out)
        probes.append(eps)
    return torch.cat(outs, 1), probes  # (B, T, H)


def hidden_jacobian_norms(
    layer: nn.Module, x: torch.Tensor, state=None, *, ord: str = "fro"
) -> torch.Tensor:
    r"""Norms of :math:`\partial h_T / \partial s_t` for every step t, ``(B, T)``.

    ``h_T`` is the last layer's final output, ``s_t`` the whole state after step t
    (all layers; for an LSTM ``h`` and ``c`` side by side). The full Jacobian is built
    with one backward pass per output unit (H passes), so keep H modest.

    ord: ``"fro"`` (Frobenius) or ``"2"`` (spectral norm, the largest singular value).
    At ``t = T - 1`` the Jacobian contains the identity block of ``h_T`` itself.
    """
    if ord not in ("fro", "2"):
        raise InputError(f"ord: expected 'fro' or '2', received {ord!r}")
    with torch.enable_grad():
        outputs, probes = run_with_state_probes(layer, x, state)
        hT = outputs[:, -1]  # (B, H)
        B, H = hT.shape
        T = len(probes)
        flat = [e for step in probes for e in step]
        rows = []
        for k in range(H):
            grads = torch.autograd.grad(
                hT[:, k].sum(), flat, retain_graph=k < H - 1, allow_unused=True
            )
            per_step = []
            n_parts = len(probes[0])
            for t in range(T):
                g = grads[t * n_parts : (t + 1) * n_parts]
                # each (layers, B, H) -> (B, layers * H); concatenated over state parts
                g = [torch.zeros_like(p) if gi is None else gi for gi, p in zip(g, probes[t])]
                per_step.append(torch.cat([gi.transpose(0, 1).reshape(B, -1) for gi in g], 1))
            rows.append(torch.stack(per_step, 1))  # (B, T, S)
        J = torch.stack(rows, 2)  # (B, T, H, S): row k = d h_T[k] / d s_t
    if ord == "fro":
        return J.flatten(2).norm(dim=-1).detach()
    return torch.linalg.matrix_norm(J, ord=2).detach()


def loss_gradient_by_step(
    layer: nn.Module,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    state=None,
) -> StepGradients:
    r"""How much each time step receives of the loss gradient.

    ``loss_fn(outputs (B, T, H)) -> scalar`` (e.g. a linear head and an MSE at the end).
    Returns the batch-mean norms of :math:`\partial L/\partial s_t` and
    :math:`\partial L/\partial x_t` for every t (one backward pass).
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        outputs, probes = run_with_state_probes(layer, x, state)
        loss = loss_fn(outputs)
        flat = [e for step in probes for e in step]
        grads = torch.autograd.grad(loss, [x, *flat], allow_unused=True)
    gx, gs = grads[0], grads[1:]
    n_parts = len(probes[0])
    B = x.shape[0]
    state_norms = []
    for t in range(len(probes)):
        g = [
            torch.zeros_like(p) if gi is None else gi
            for gi, p in zip(gs[t * n_parts : (t + 1) * n_parts], probes[t])
        ]
        v = torch.cat([gi.transpose(0, 1).reshape(B, -1) for gi in g], 1)  # (B, S)
        state_norms.append(v.norm(dim=-1).mean())
    return StepGradients(torch.stack(state_norms).detach(), gx.norm(dim=-1).mean(0).detach())
