"""Argument checks of the spiking family: every message names the argument, what was
expected and what was received."""

from __future__ import annotations

import math

from rnnlab._validation import describe
from rnnlab.errors import InputError, InputTypeError


def check_number(name: str, value: object) -> float:
    """A finite real number (bool excluded)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"{name}: expected a number, received {describe(value)}")
    if not math.isfinite(float(value)):
        raise InputError(f"{name}: expected a finite number, received {value!r}")
    return float(value)


def check_positive(name: str, value: object, unit: str = "ms") -> float:
    """A finite number > 0."""
    v = check_number(name, value)
    if v <= 0:
        raise InputError(f"{name}: expected a number > 0 ({unit}), received {value!r}")
    return v


def check_nonnegative(name: str, value: object, unit: str = "ms") -> float:
    """A finite number >= 0."""
    v = check_number(name, value)
    if v < 0:
        raise InputError(f"{name}: expected a number >= 0 ({unit}), received {value!r}")
    return v


def check_time_constant(name: str, tau: object, dt: float) -> float:
    """A time constant > 0 that is not shorter than the step ``dt`` integrating it."""
    t = check_positive(name, tau)
    if dt > t:
        raise InputError(
            f"dt: expected at most {name} = {t} ms (a step longer than the time constant "
            f"it integrates), received {dt} ms"
        )
    return t


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """One of ``choices``."""
    if value not in choices:
        want = ", ".join(repr(c) for c in choices)
        raise InputError(f"{name}: expected one of {want}, received {value!r}")
    return value  # type: ignore[return-value]
