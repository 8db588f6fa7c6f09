r"""Addition as sequence to sequence: ``"535+61"`` -> ``"596"``, characters in, characters out.

The setup of Keras' ``addition_rnn`` example (after Zaremba & Sutskever 2014): each
operand has a uniform number of digits in 1..L, then uniform digits (leading zeros
dropped); questions are unique up to the order of the operands; one 128-unit LSTM
encoder-decoder reaches 99% exact-match accuracy on 3-digit sums from 50,000 examples.
Optionally the source is reversed (the reversed question ``"16+535"`` read backwards;
Sutskever et al. 2014), which shortens the distance between a digit and the digits of
the sum that depend on it.

Unlike the Keras example, sources are not padded to a fixed width with spaces: the
encoder reads variable-length sources with ``lengths``. Train and test questions are
disjoint (:func:`split`).
"""

from __future__ import annotations

import random

from rnnlab._validation import check_positive_int
from rnnlab.errors import InputError

ALPHABET = "0123456789+"


def _number(rng: random.Random, digits: int) -> int:
    return int("".join(rng.choice("0123456789") for _ in range(rng.randint(1, digits))))


def question(a: int, b: int, reverse: bool = False) -> tuple[str, str]:
    """The pair ``("a+b", "a+b's sum")``, the source reversed if ``reverse``."""
    src = f"{a}+{b}"
    return (src[::-1] if reverse else src), str(a + b)


def pairs(n: int, digits: int, seed: int = 0, reverse: bool = False) -> list[tuple[str, str]]:
    """``n`` distinct questions (operand order ignored) with operands of 1..``digits``
    digits; refuses ``n`` above the number of distinct questions."""
    check_positive_int("n", n)
    check_positive_int("digits", digits)
    top = 10**digits
    if n > top * (top + 1) // 2:
        raise InputError(
            f"n: at most {top * (top + 1) // 2} distinct questions with {digits} digits, "
            f"received {n}"
        )
    rng, seen, out = random.Random(seed), set(), []
    while len(out) < n:
        a, b = _number(rng, digits), _number(rng, digits)
        key = (min(a, b), max(a, b))
        if key in seen:
            continue
        seen.add(key)
        out.append(question(a, b, reverse))
    return out


def split(n_train: int, n_test: int, digits: int, seed: int = 0, reverse: bool = False):
    """Disjoint (train, test) question lists (the first ``n_train`` of one draw, then
    the next ``n_test``)."""
    check_positive_int("n_test", n_test)
    both = pairs(n_train + n_test, digits, seed, reverse)
    return both[:n_train], both[n_train:]


__all__ = ["ALPHABET", "pairs", "question", "split"]
