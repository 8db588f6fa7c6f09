"""Optimizers and schedules by name, gradient clipping that reports the norm, Hessian-free."""

from rnnlab.optim.clipping import clip_gradients
from rnnlab.optim.hessian_free import GaussNewton, HessianFree, conjugate_gradient
from rnnlab.optim.schedules import (
    OPTIMIZERS,
    SCHEDULES,
    make_optimizer,
    make_schedule,
    momentum_schedule,
    set_momentum,
)

__all__ = [
    "GaussNewton",
    "HessianFree",
    "OPTIMIZERS",
    "SCHEDULES",
    "clip_gradients",
    "conjugate_gradient",
    "make_optimizer",
    "make_schedule",
    "momentum_schedule",
    "set_momentum",
]
