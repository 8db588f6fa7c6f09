"""What the EM fits of the classical models share: one convergence monitor, one warning
class, one EM loop (:func:`run_em`), and one way to turn ``generator=`` arguments into a
``torch.Generator``.

The monitor records the log-likelihood of the parameters before every M-step and after
the last one (``history_[i]`` is the score after ``i`` M-steps), stops when the gain falls
below ``tol + rtol * |L|`` (absolute and relative tolerance on the total log-likelihood
L), and warns (:class:`ConvergenceWarning`) on any decrease beyond rounding and when the
iteration limit is reached unconverged. A warm-started fit (``init='none'``) continues the
previous fit's record, so a user who loops ``fit(n_iter=1)`` is warned of a decrease too.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import torch

from rnnlab._validation import check_positive_int, describe
from rnnlab.errors import InputError, InputTypeError

__all__ = ["ConvergenceWarning", "EMMonitor", "as_generator", "run_em"]


class ConvergenceWarning(UserWarning):
    """EM stopped at its iteration limit before converging, or its likelihood fell."""


def as_generator(generator: object, device=None) -> torch.Generator | None:
    """What to pass as torch's ``generator=``: a Generator (used as is), a new one seeded
    with an int, or None for torch's global generator (seeded by ``torch.manual_seed``)."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    g = torch.Generator(device=device if device is not None else "cpu")
    if isinstance(generator, int) and not isinstance(generator, bool):
        g.manual_seed(generator)
    else:
        raise InputTypeError(
            f"generator: expected a torch.Generator, an int seed or None, received "
            f"{describe(generator)}"
        )
    return g


def check_nonnegative(name: str, value: object) -> float:
    """ValueError unless ``value`` is a finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise InputError(f"{name}: expected a number >= 0, received {value!r}")
    if not math.isfinite(value):
        raise InputError(f"{name}: expected a finite number, received {value!r}")
    return float(value)


class EMMonitor:
    """Convergence bookkeeping of one EM run (see the module docstring)."""

    def __init__(
        self,
        owner: str,
        n_iter: int,
        tol: float,
        rtol: float,
        history: list[float] | None = None,
        dtype: torch.dtype = torch.float64,
        stacklevel: int = 3,
    ) -> None:
        self.owner = owner
        self.stacklevel = stacklevel  # warnings point at the caller of fit
        self.n_iter = check_positive_int("n_iter", n_iter)
        self.tol = check_nonnegative("tol", tol)
        self.rtol = check_nonnegative("rtol", rtol)
        self.history: list[float] = list(history or [])
        self._resumed = bool(self.history)  # a warm start continues the previous record
        self.converged = False
        self.n_steps = 0
        # rounding of a sum of N log terms: a few ulps of the largest magnitude
        self._noise = 64 * torch.finfo(dtype).eps

    def report(self, ll: float) -> bool:
        """Record the log-likelihood of the current parameters; True when EM should stop
        (converged). Warns on a decrease beyond rounding."""
        if not math.isfinite(ll):
            raise InputError(
                f"x: log-likelihood is {ll} under the current parameters "
                "(an observation impossible under every state, or parameters out of range)"
            )
        prev = self.history[-1] if self.history else None
        if self._resumed:  # the score of the parameters the previous fit returned
            self._resumed = False
            if abs(ll - prev) <= self._noise * max(abs(ll), 1.0):
                return False  # already recorded
            self.history.append(ll)  # changed in between (set by hand): a new start
            return False
        self.history.append(ll)
        if prev is None:
            return False
        delta = ll - prev
        if delta < -self._noise * max(abs(ll), abs(prev), 1.0):
            warnings.warn(
                f"{self.owner}.fit: log-likelihood decreased from {prev:.10g} to {ll:.10g} "
                f"after M-step {len(self.history) - 1}",
                ConvergenceWarning,
                stacklevel=self.stacklevel,
            )
        if abs(delta) < self.tol + self.rtol * abs(ll):
            self.converged = True
        return self.converged

    def finish(self) -> None:
        """Warn when the iteration limit was reached unconverged."""
        if not self.converged:
            gain = self.history[-1] - self.history[-2] if len(self.history) > 1 else math.nan
            warnings.warn(
                f"{self.owner}.fit: stopped at the iteration limit n_iter={self.n_iter} "
                f"before converging (last gain {gain:.3g}, tol={self.tol:g}, "
                f"rtol={self.rtol:g}); raise n_iter or loosen tol/rtol",
                ConvergenceWarning,
                stacklevel=self.stacklevel,
            )


class _HasEMRecord(Protocol):
    history_: list[float]
    converged_: bool
    n_iter_: int


def run_em(
    model: _HasEMRecord,
    evaluate: Callable[[], tuple[float, Any]],
    update: Callable[[Any], None],
    *,
    n_iter: int,
    tol: float,
    rtol: float,
    resume: bool = False,
    dtype: torch.dtype = torch.float64,
    verbose: bool = False,
    owner: str | None = None,
) -> EMMonitor:
    r"""The EM loop every classical model's ``fit`` runs (HMM, LDS).

    Alternates ``evaluate`` and ``update`` under :func:`torch.no_grad`:

    .. code-block:: text

        for i = 0, 1, ..., n_iter:
            L_i, cache = evaluate()          # log p(x | theta_i) and what the E-step needs
            stop if converged (monitor) or i == n_iter
            update(cache)                    # rest of the E-step, then theta_{i+1} = M-step

    so ``n_iter`` bounds the M-steps and the score of the returned parameters is always
    recorded (``history_[i] = L_i``). ``evaluate`` must not change the parameters;
    ``update`` changes them in place. Splitting the E-step this way lets a model skip the
    backward pass (smoothing) on the last, scoring-only evaluation.

    Args:
        model: gets ``history_`` (list of L_i), ``converged_`` and ``n_iter_`` (M-steps
            taken), set once the loop ends, also when it raises.
        evaluate: ``() -> (log_likelihood, cache)`` for the current parameters.
        update: ``(cache) -> None``: re-estimates the parameters in place.
        n_iter, tol, rtol: the iteration limit and the stopping rule
            :math:`|L_i - L_{i-1}| < \mathrm{tol} + \mathrm{rtol}\,|L_i|` (see
            :class:`EMMonitor`).
        resume: continue ``model.history_`` (a warm start, ``init='none'``), so a decrease
            across repeated ``fit(n_iter=1)`` calls is warned of too.
        dtype: the parameters' dtype (sets the rounding allowance for "decrease").
        verbose: print ``L_i`` at each iteration.
        owner: the name in warnings (default: the model's class name).

    Returns the :class:`EMMonitor` (its ``history``, ``converged``, ``n_steps``). Warns
    :class:`ConvergenceWarning` on a decrease and when ``n_iter`` is reached unconverged.
    """
    name = owner or type(model).__name__
    previous = list(getattr(model, "history_", None) or []) if resume else None
    monitor = EMMonitor(name, n_iter, tol, rtol, previous, dtype, stacklevel=4)
    try:
        with torch.no_grad():
            for it in range(monitor.n_iter + 1):
                ll, cache = evaluate()
                ll = float(ll)
                if verbose:
                    print(f"{name} EM iteration {it}: log-likelihood {ll:.6f}")
                if monitor.report(ll) or it == monitor.n_iter:
                    break
                update(cache)
                monitor.n_steps = it + 1
    finally:
        model.history_ = monitor.history
        model.converged_ = monitor.converged
        model.n_iter_ = monitor.n_steps
    if not monitor.converged:
        monitor.finish()
    return monitor
