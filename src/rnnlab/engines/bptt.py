r"""The ``bptt`` engine, and the helpers its hand-written kernels share.

A cell with a hand-written backpropagation-through-time kernel defines
``Cell.recurrence(xp, state, lengths, masks) -> (ys, state_T)``: one
``torch.autograd.Function`` over the whole sequence of one layer and direction (the
adjoint recursion is written out in each family's docstring). The input projections of
all steps are one matmul before it; the kernel's backward loop touches only what the
adjoint needs, and the recurrent weight gradients are one matmul after it. Activation
memory is O(T B H).

Conventions of the helpers below: a kernel keeps its states time-major, ``(T + 1, B, H)``
with the initial state at index 0, and every sequence is a prefix of the padded batch
(step ``t`` of sequence ``b`` is valid iff ``t < lengths[b]``). Steps past a length are
computed and discarded: outputs there are zero, the final state is gathered at each
length, and the backward pass starts each sequence's adjoint at its own last step.
"""

from __future__ import annotations

import torch
from torch import Tensor


def steps(x: Tensor, lo: int | None = None, hi: int | None = None) -> tuple[Tensor, ...]:
    """Views ``x[t, ..., lo:hi]`` for every ``t`` of a time-major buffer, made in one call.

    The kernels' loops over time index their buffers through these lists: at small sizes,
    indexing a tensor inside the loop costs more than the arithmetic."""
    if lo is not None or hi is not None:
        x = x[..., lo:hi]
    return x.unbind(0)


def carry_back(dh_prev: Tensor, da: Tensor, w_hh: Tensor, mask: Tensor | None) -> None:
    """The recurrent term of every adjoint, in place: dh_{t-1} += r * (da_t @ W_hh)."""
    if mask is None:
        dh_prev.addmm_(da, w_hh)
    else:
        dh_prev.addcmul_(da @ w_hh, mask)


def recurrent_input(Hs: Tensor, mask: Tensor | None) -> Tensor:
    """The states the recurrent weights saw, r * h_{t-1} for t = 1..T: (T, B, H)."""
    return Hs[:-1] if mask is None else Hs[:-1] * mask


def batch_first_outputs(states: Tensor, lengths: Tensor | None) -> Tensor:
    """Outputs (B, T, H) from the states (T+1, B, H) of a kernel, zero past each length."""
    ys = states[1:].transpose(0, 1)  # (B, T, H)
    if lengths is None:
        return ys.contiguous()
    valid = torch.arange(ys.shape[1], device=ys.device) < lengths.unsqueeze(1)  # (B, T)
    return torch.where(valid.unsqueeze(-1), ys, 0.0)


def gather_last(states: Tensor, lengths: Tensor | None) -> Tensor:
    """State after each sequence's last valid step from ``states`` (T+1, B, H)."""
    if lengths is None:
        return states[-1].clone()
    B = states.shape[1]
    return states[lengths, torch.arange(B, device=states.device)]


def inject_final_grad(dY: Tensor, dhT: Tensor, lengths: Tensor | None) -> None:
    """Zero dY (T, B, H) past each length and add the final state's gradient at each
    sequence's last step (in place)."""
    T, B = dY.shape[:2]
    if lengths is None:
        dY[-1] += dhT
        return
    valid = torch.arange(T, device=dY.device).unsqueeze(1) < lengths  # (T, B)
    dY.mul_(valid.unsqueeze(-1))
    dY[lengths - 1, torch.arange(B, device=dY.device)] += dhT


def refuse_double_backward(kernel: str) -> None:
    """The kernels' backward passes are not differentiable themselves: say so instead of
    returning a wrong second derivative (called first in every kernel's backward; autograd
    runs a backward pass with gradients enabled only when ``create_graph=True``)."""
    if torch.is_grad_enabled():
        raise RuntimeError(
            f"{kernel}: the hand-written BPTT kernel has no second derivative "
            "(create_graph=True); run the layer with engine='loop' for double backward"
        )


class BPTTEngine:
    """Each layer-direction runs its cell's hand-written kernel ``Cell.recurrence``."""

    name = "bptt"

    def why_not(self, layer) -> str | None:
        for cell in layer.cells:
            if not cell.has_recurrence:
                return f"{type(cell).__name__} has no hand-written BPTT kernel"
        return None

    def run(self, layer, x: Tensor, state, lengths):
        return layer.run_stack(x, state, lengths, _recurrence)


def _recurrence(cell, xp, state, lengths, masks):
    return cell.recurrence(xp, state, lengths, masks)
