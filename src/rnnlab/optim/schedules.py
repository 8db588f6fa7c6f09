"""Optimizers and learning-rate / momentum schedules by name (for configs and the CLI).

Optimizers are PyTorch's own (``torch.optim.SGD`` with momentum or Nesterov momentum,
``RMSprop``, ``Adam``); schedules are ``torch.optim.lr_scheduler`` objects, so their state
goes into checkpoints with ``state_dict()``. ``"plateau"`` (ReduceLROnPlateau) is stepped
with the validation loss; every other schedule is stepped once per training step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from rnnlab.errors import InputError

OPTIMIZERS = ("sgd", "nesterov", "rmsprop", "adam")
SCHEDULES = ("constant", "step", "exponential", "cosine", "plateau")


def make_optimizer(
    name: str,
    parameters: Iterable[torch.nn.Parameter],
    *,
    lr: float,
    momentum: float = 0.9,
    nesterov: bool = False,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """An optimizer by name: "sgd" (momentum, optional Nesterov), "nesterov", "rmsprop", "adam".

    Args:
        lr: learning rate, > 0.
        momentum: SGD / RMSProp momentum in [0, 1).
        nesterov: Nesterov momentum for SGD (Sutskever et al. 2013).
        weight_decay: L2 penalty coefficient, >= 0.
    """
    if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise InputError(f"lr: expected a positive number, received {lr!r}")
    if not 0.0 <= momentum < 1.0:
        raise InputError(f"momentum: expected a number in [0, 1), received {momentum!r}")
    if weight_decay < 0:
        raise InputError(f"weight_decay: expected a number >= 0, received {weight_decay!r}")
    params = list(parameters)
    if name in ("sgd", "nesterov"):
        nesterov = nesterov or name == "nesterov"
        if nesterov and momentum == 0:
            raise InputError("momentum: Nesterov SGD needs momentum > 0, received 0")
        return torch.optim.SGD(
            params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            params, lr=lr, alpha=0.95, momentum=momentum, weight_decay=weight_decay
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise InputError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, received {name!r}")


def make_schedule(
    name: str,
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int | None = None,
    step_size: int = 1000,
    gamma: float = 0.5,
    patience: int = 2,
    min_lr: float = 0.0,
):
    """A learning-rate schedule by name.

    constant: no change. step: times ``gamma`` every ``step_size`` steps. exponential:
    times ``gamma ** (1 / step_size)`` each step (``gamma`` per ``step_size`` steps).
    cosine: cosine decay to ``min_lr`` over ``total_steps``. plateau: times ``gamma``
    when the validation loss has not improved for ``patience`` evaluations.
    """
    if not 0.0 < gamma <= 1.0:
        raise InputError(f"gamma: expected a number in (0, 1], received {gamma!r}")
    if name == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    if name == "exponential":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma ** (1 / step_size))
    if name == "cosine":
        if not total_steps:
            raise InputError("schedule 'cosine' needs a step budget (--steps), not --minutes")
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=total_steps, eta_min=min_lr
        )
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=gamma, patience=patience, min_lr=min_lr
        )
    raise InputError(f"schedule: expected one of {', '.join(SCHEDULES)}, received {name!r}")


def momentum_schedule(step: int, *, start: float = 0.5, final: float = 0.99, ramp: int = 250):
    """Sutskever et al. (2013) eq. 5: mu_t = min(1 - 2^(-1 - log2(floor(t / ramp) + 1)), final),
    started at ``start`` for the first ``ramp`` steps."""
    if step < ramp:
        return start
    return min(1.0 - 2.0 ** (-1.0 - math.log2(step // ramp + 1)), final)
