"""Optimizers and schedules by name, gradient clipping that reports the norm."""

from rnnlab.optim.clipping import clip_gradients
from rnnlab.optim.schedules import (
    OPTIMIZERS,
    SCHEDULES,
    make_optimizer,
    make_schedule,
    momentum_schedule,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "clip_gradients",
    "make_optimizer",
    "make_schedule",
    "momentum_schedule",
]
