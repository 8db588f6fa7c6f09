"""The ``loop`` engine: autograd through a Python loop over the cell's step.

The readable reference and the specification every other engine is tested against. Past
a sequence's length the state is frozen and the output is zero.
"""

from __future__ import annotations

import torch
from torch import Tensor


def loop(cell, xp: Tensor, state: tuple[Tensor, ...], lengths: Tensor | None, masks):
    """Run ``cell.masked_step`` over the projected inputs ``xp`` (B, T, G): (ys, state_T)."""
    ys = []
    for t in range(xp.shape[1]):
        y, new = cell.masked_step(xp[:, t], state, masks)
        if lengths is not None:  # freeze the state and zero the output past the length
            valid = (lengths > t).unsqueeze(1)  # (B, 1)
            new = tuple(torch.where(valid, n, s) for n, s in zip(new, state))
            y = torch.where(valid, y, torch.zeros_like(y))
        ys.append(y)
        state = tuple(new)
    return torch.stack(ys, dim=1), state  # (B, T, H_out)


class LoopEngine:
    """Every cell runs on it (a cell needs only ``step``)."""

    name = "loop"

    def why_not(self, layer) -> str | None:
        return None

    def run(self, layer, x: Tensor, state, lengths):
        return layer.run_stack(x, state, lengths, loop)
