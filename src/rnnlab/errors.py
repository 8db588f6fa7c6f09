"""rnnlab's exception types.

Bad input from a user raises :class:`InputError` (a :class:`ValueError`) or, for a value
of the wrong type, :class:`InputTypeError` (both a :class:`ValueError` and a
:class:`TypeError`, so ``except TypeError`` keeps working). The message names the
argument, what was expected and what was received. The ``rnnlab`` command turns these
(and :class:`OSError`) into one line on stderr and exit status 2; any other exception is
a bug and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: the message names the argument, what was expected and what was received."""


class InputTypeError(InputError, TypeError):
    """Bad input of the wrong type (a tensor expected, a float where an int belongs, ...)."""


class UsageError(InputError):
    """Bad input from the command line (a flag, a missing name)."""


__all__ = ["InputError", "InputTypeError", "UsageError"]
