"""Gradient clipping that reports the norm, and a finite-gradient check.

Clipping by norm rescales the whole gradient when its 2-norm exceeds a threshold
(Pascanu, Mikolov & Bengio 2013, Algorithm 1); clipping by value clamps each component
(Mikolov 2012). Either way the pre-clipping global norm is returned, so that exploding
gradients show in the training log.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.utils._foreach_utils import _has_foreach_support


def total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The global 2-norm of ``grads`` (a 0-d tensor), bit for bit
    ``torch.nn.utils.get_total_norm(grads)``: the norm of the per-tensor norms, here
    without its grouping pass when every tensor has one device and dtype (the common
    case, where that pass is most of the cost for a few small tensors)."""
    first = grads[0]
    device, dtype = first.device, first.dtype
    if all(g.device == device and g.dtype == dtype for g in grads) and _has_foreach_support(
        grads, device
    ):
        return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads, 2.0)), 2.0)
    return torch.nn.utils.get_total_norm(grads, 2.0)


def clip_gradients(
    parameters: Iterable[torch.Tensor],
    max_norm: float | None = None,
    max_value: float | None = None,
) -> torch.Tensor:
    """Clip gradients in place; return the global 2-norm measured before clipping.

    Args:
        parameters: tensors whose ``.grad`` to clip (those without a gradient are skipped).
        max_norm: rescale so that the global norm is at most this (None: no norm clipping).
        max_value: clamp each component to ``[-max_value, max_value]`` (None: none).

    Returns:
        A 0-d tensor, the norm before clipping (inf or nan when a gradient is not finite;
        the gradients are then left untouched so the caller can skip the step).
    """
    params = [p for p in parameters if p.grad is not None]
    if not params:
        return torch.zeros(())
    grads = [p.grad for p in params]
    norm = total_norm(grads)  # as clip_grad_norm_ (foreach kernels)
    if max_norm is None and max_value is None or not math.isfinite(float(norm)):
        return norm  # nothing to clip, or a non-finite gradient left for the caller to skip
    if max_norm is not None:
        # Pascanu et al. 2013: g <- g * threshold / ||g|| when ||g|| > threshold
        torch.nn.utils.clip_grads_with_norm_(params, max_norm, norm)
    if max_value is not None:
        for g in grads:
            g.clamp_(-max_value, max_value)
    return norm
