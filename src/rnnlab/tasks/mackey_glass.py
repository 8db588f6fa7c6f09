r"""The Mackey-Glass delay differential equation (Mackey & Glass 1977), the time-series
benchmark of reservoir computing (Jaeger & Haas 2004 use tau = 17):

.. math::

    \frac{dx}{dt} = \beta \frac{x(t - \tau)}{1 + x(t - \tau)^n} - \gamma\, x(t)

=================  ==================================================================
symbol             meaning (defaults: the standard chaotic setup)
=================  ==================================================================
:math:`\tau`       delay, 17 (chaotic; below about 4.5 the solution settles to a fixed
                   point, near 17 it is a low-dimensional chaotic attractor)
:math:`\beta`      0.2;  :math:`\gamma` 0.1;  :math:`n` 10
:math:`x(t)`       history :math:`x(t) = x_0` for :math:`t \le 0`, :math:`x_0 = 1.2`
=================  ==================================================================

Integration: classical Runge-Kutta of order 4 with step ``dt`` = 0.1 time units (tau/dt
must be an integer: the delayed values are then grid values, and the half-step values
:math:`x(t - \tau + dt/2)` of RK4 come from the cubic through the four neighbouring grid
values, :math:`(-x_{k-1} + 9 x_k + 9 x_{k+1} - x_{k+2}) / 16`, accurate to
:math:`O(dt^4)` like the rest of the step). The
series is sampled once per ``sample`` time units (1 by default: one sample per time unit,
Jaeger & Haas' sampling), after discarding the first ``discard`` samples (the transient
from the constant history). The tests check the integration against a finer step, the
fixed point :math:`x^* = (\beta/\gamma - 1)^{1/n}` for small :math:`\tau`, and the
equation itself by finite differences.

:func:`squash` / :func:`unsquash` are the map :math:`s = \tanh(x - 1)` that ESN papers
apply before training (values in about (-0.5, 0.4)); errors are reported on :math:`x`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from rnnlab._validation import check_positive_int
from rnnlab.errors import InputError


def mackey_glass(
    T: int,
    tau: float = 17,
    beta: float = 0.2,
    gamma: float = 0.1,
    n: float = 10,
    x0: float = 1.2,
    dt: float = 0.1,
    sample: float = 1.0,
    discard: int = 1000,
) -> Tensor:
    """``T`` samples (float64, shape (T,)) of the Mackey-Glass series, one per ``sample``
    time units, after ``discard`` samples of transient (see the module docstring)."""
    check_positive_int("T", T)
    check_positive_int("discard", discard, minimum=0)
    for name, v in (("tau", tau), ("dt", dt), ("sample", sample)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v > 0:
            raise InputError(f"{name}: expected a number > 0, received {v!r}")
    d = tau / dt
    if abs(d - round(d)) > 1e-9:
        raise InputError(
            f"dt: expected a step that divides tau = {tau} (tau/dt an integer), received {dt}"
        )
    per = sample / dt
    if abs(per - round(per)) > 1e-9:
        raise InputError(
            f"sample: expected a multiple of dt = {dt}, received {sample} (sample/dt = {per})"
        )
    d, per = int(round(d)), int(round(per))
    n_steps = (T + discard - 1) * per + 1  # grid points from t = 0 on
    if d < 2:
        raise InputError(f"dt: expected at most tau / 2 = {tau / 2:g}, received {dt}")
    x = [float(x0)] * (d + 2)  # the history on the grid t = -tau - dt .. 0; x[-1] = x(0)
    x.extend([0.0] * (n_steps - 1))

    def f(xt: float, xd: float) -> float:
        return beta * xd / (1.0 + xd**n) - gamma * xt

    h = float(dt)
    for k in range(d + 1, d + n_steps):  # x[k] = x(t), x[k - d] = x(t - tau)
        xt, xd0, xd1 = x[k], x[k - d], x[k - d + 1]
        xdm = (9.0 * (xd0 + xd1) - x[k - d - 1] - x[k - d + 2]) / 16.0  # x(t - tau + dt/2)
        k1 = f(xt, xd0)
        k2 = f(xt + 0.5 * h * k1, xdm)
        k3 = f(xt + 0.5 * h * k2, xdm)
        k4 = f(xt + h * k3, xd1)
        x[k + 1] = xt + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if not math.isfinite(x[k + 1]):
            raise InputError(f"mackey_glass: the integration diverged at t = {(k - d) * h:g}")
    grid = torch.tensor(x[d + 1 :], dtype=torch.float64)  # t = 0, dt, 2 dt, ...
    return grid[::per][discard : discard + T].clone()


def squash(x: Tensor) -> Tensor:
    """s = tanh(x - 1): the Mackey-Glass series mapped into (-1, 1) for a tanh reservoir."""
    return torch.tanh(x - 1.0)


def unsquash(s: Tensor) -> Tensor:
    """The inverse of :func:`squash`: x = 1 + atanh(s)."""
    return 1.0 + torch.atanh(s)
