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
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise InputError(f"lr: expected a positive number, received {lr!r}")
    if not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
        raise InputError(f"momentum: expected a number in [0, 1), received {momentum!r}")
    if not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise InputError(f"weight_decay: expected a number >= 0, received {weight_decay!r}")
    if name not in OPTIMIZERS:
        raise InputError(f"optimizer: expected one of {', '.join(OPTIMIZERS)}, received {name!r}")
    params = list(parameters)
    _check_lr_representable(name, lr, params)
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


# Adam's first step moves a parameter by lr / (1 - beta1) (bias correction, beta1 = 0.9)
_FIRST_STEP_FACTOR = {"adam": 1.0 / (1.0 - 0.9)}


def _check_lr_representable(name: str, lr: float, params) -> None:
    """InputError when the optimizer's step size overflows the parameters' dtype (torch
    then fails inside the update with "value cannot be converted ... without overflow")."""
    dtypes = {p.dtype for p in params if isinstance(p, torch.Tensor) and p.is_floating_point()}
    if not dtypes:
        return
    smallest = min((torch.finfo(d).max, d) for d in dtypes)
    step = lr * _FIRST_STEP_FACTOR.get(name, 1.0)
    if step > smallest[0]:
        limit = smallest[0] / _FIRST_STEP_FACTOR.get(name, 1.0)
        raise InputError(
            f"lr: expected a number <= {limit:.3g} for {name} on {smallest[1]} parameters "
            f"(a step of lr{' / (1 - beta1)' if name == 'adam' else ''} must be representable), "
            f"received {lr!r}"
        )


class CosineSchedule(torch.optim.lr_scheduler.LRScheduler):
    r"""Cosine decay over a step budget, in closed form:

    .. math::

        \eta_t = \eta_{min} + (\eta_0 - \eta_{min})\,
        \tfrac12\bigl(1 + \cos(\pi \min(t, N) / N)\bigr)

    (:math:`\eta_0` the base learning rate, :math:`N` = ``total_steps``, :math:`t` the step).
    Unlike ``CosineAnnealingLR`` it stays at :math:`\eta_{min}` after step N instead of
    rising again, and the rate depends only on (t, N), never on the history: a resumed run
    with the same budget follows the same curve bit for bit, and :meth:`set_total_steps`
    moves a resumed run onto the curve of a new budget (from the resume step on, the rate
    is exactly that of an uninterrupted run with the new budget).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int, min_lr: float = 0.0):
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise InputError(f"total_steps: expected an integer >= 1, received {total_steps!r}")
        self.total_steps = total_steps
        self.min_lr = float(min_lr)
        super().__init__(optimizer)

    def _rates(self) -> list[float]:
        t = min(max(self.last_epoch, 0), self.total_steps)
        c = 0.5 * (1.0 + math.cos(math.pi * t / self.total_steps))
        return [self.min_lr + (base - self.min_lr) * c for base in self.base_lrs]

    def get_lr(self) -> list[float]:  # called by step()
        return self._rates()

    def set_total_steps(self, total_steps: int) -> None:
        """Move onto the curve of a new budget at the current step (on resume)."""
        if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
            raise InputError(f"total_steps: expected an integer >= 1, received {total_steps!r}")
        self.total_steps = total_steps
        self._apply()

    def set_base_lr(self, lr: float) -> None:
        r"""A new base rate :math:`\eta_0` (``--lr`` given on resume), applied at once."""
        self.base_lrs = [float(lr) for _ in self.base_lrs]
        self._apply()

    def _apply(self) -> None:
        rates = self._rates()
        for group, lr in zip(self.optimizer.param_groups, rates):
            group["lr"] = lr
        self._last_lr = rates


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
    cosine: cosine decay to ``min_lr`` over ``total_steps`` (:class:`CosineSchedule`).
    plateau: times ``gamma`` when the validation loss has not improved for ``patience``
    evaluations.

    Across a resume: step, exponential and plateau depend only on the step (and the
    validation history, saved in the checkpoint), so a resumed run continues exactly.
    Cosine depends on the budget: resumed with the same ``total_steps`` it continues
    exactly; resumed with a new one (:meth:`CosineSchedule.set_total_steps`), the steps
    already taken stay as they were and from the resume step on the rate is the new
    budget's curve.
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
        return CosineSchedule(optimizer, total_steps, min_lr=min_lr)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=gamma, patience=patience, min_lr=min_lr
        )
    raise InputError(f"schedule: expected one of {', '.join(SCHEDULES)}, received {name!r}")


def momentum_schedule(step: int, *, start: float = 0.5, final: float = 0.99, ramp: int = 250):
    """Sutskever et al. (2013) eq. 5: mu_t = min(1 - 2^(-1 - log2(floor(t / ramp) + 1)), final),
    started at ``start`` for the first ``ramp`` steps (eq. 5 gives 0.5 there).

    ``final`` is mu_max (the paper tries 0.9, 0.99, 0.995, 0.999). Use it with classical or
    Nesterov momentum (``torch.optim.SGD(..., nesterov=True)``) by setting the momentum
    before each step: ``set_momentum(opt, momentum_schedule(t))``.
    """
    if step < ramp:
        return start
    return min(1.0 - 2.0 ** (-1.0 - math.log2(step // ramp + 1)), final)


def set_momentum(optimizer: torch.optim.Optimizer, momentum: float) -> float:
    """Set ``momentum`` in every parameter group of a momentum optimizer (SGD, RMSprop);
    returns it. For :func:`momentum_schedule`."""
    if not isinstance(momentum, (int, float)) or not 0.0 <= momentum < 1.0:
        raise InputError(f"momentum: expected a number in [0, 1), received {momentum!r}")
    for group in optimizer.param_groups:
        if "momentum" not in group:
            raise InputError(
                f"optimizer: expected one with momentum, received {type(optimizer).__name__}"
            )
        group["momentum"] = float(momentum)
    return float(momentum)
