"""Optional compiled loops through Numba (``pip install rnnlab[fast]``).

Some recurrences are a long loop over time of small operations (an HMM with a few states,
a Kalman filter with a small state, a small reservoir): there each PyTorch or NumPy call
costs more than its arithmetic. Where Numba is installed, those loops run compiled; the
PyTorch/NumPy code stays the reference and the fallback, and tests check the two agree.

``RNNLAB_NUMBA=0`` turns the compiled loops off (for comparison, or where Numba
misbehaves). :func:`jit` is the one decorator the package uses: it returns ``None``
instead of a compiled function when Numba is unavailable or turned off, so callers write
``if kernel is not None``.
"""

from __future__ import annotations

import os
from collections.abc import Callable


def available() -> bool:
    """Whether compiled loops run: Numba imports and ``RNNLAB_NUMBA`` is not ``0``."""
    if os.environ.get("RNNLAB_NUMBA", "1") == "0":
        return False
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def jit(**options) -> Callable[[Callable], Callable | None]:
    """``numba.njit(cache=True, **options)``, or a decorator giving None without Numba.

    Compiled on first call (about a second per function and argument types) and cached
    beside the module, so later processes load it at once."""

    def wrap(fn: Callable) -> Callable | None:
        if not available():
            return None
        import numba

        return numba.njit(cache=True, **options)(fn)

    return wrap


def status() -> str:
    """'numba <version>' or why the compiled loops are off."""
    if os.environ.get("RNNLAB_NUMBA", "1") == "0":
        return "off (RNNLAB_NUMBA=0)"
    try:
        import numba
    except ImportError:
        return "off (numba is not installed: pip install rnnlab[fast])"
    return f"numba {numba.__version__}"
