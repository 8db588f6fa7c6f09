r"""Learning to execute (Zaremba & Sutskever 2014): small Python programs, read one
character at a time, whose printed value is the target.

A program of difficulty (``length``, ``nesting``) composes ``nesting`` operations, each
applied to the expression built so far and to fresh leaves:

==================  =================================================================
``pair``            ``(e+b)`` or ``(e-b)`` (either operand order)
``smallmul``        ``(e*k)``, :math:`k \sim U\{1..4\,\mathrm{length}\}`
``assign``          ``v=e`` on its own line, then ``(v+b)`` or ``(v-b)``
``if``              ``(c if e>b else d)`` (the expression in one of the three places)
``for``             ``v=e`` then ``for x in range(k):v+=b`` (or ``-=``), then ``v``,
                    :math:`k \sim U\{1..4\,\mathrm{length}\}`
``identity``        ``e``
==================  =================================================================

Leaves :math:`b, c, d` and the innermost expression are uniform integers in
:math:`1..10^{\mathrm{length}}` (the paper's range, so length = number of digits, with
:math:`10^{\mathrm{length}}` itself once in a while). The program ends with
``print(e)``; lines are joined with newlines. The target is the printed value followed by
``"."``. The addition task is ``print(a+b)`` with two ``length``-digit numbers.

Programs go to train, validation or test by the MD5 hash of their text mod 3 (0, 1, 2),
so the three sets are disjoint. Curricula (:class:`Curriculum`) choose the difficulty of
each training example: baseline (always the target), naive (from (1, 1) up, raising
the length, then the nesting with the length back at 1, when the validation accuracy
passes 95% or stops improving), mix (length and nesting uniform up to the target) and
combined (a mix example with probability 1/5, else a naive one).
"""

from __future__ import annotations

import hashlib
import random

from rnnlab._validation import check_positive_int
from rnnlab.errors import InputError

OPERATIONS = ("pair", "smallmul", "assign", "if", "for", "identity")
SPLITS = {"train": 0, "validation": 1, "test": 2}
CURRICULA = ("baseline", "naive", "mix", "combined")
VARIABLES = "abcdefghijklmnopqrstuvwyz"  # x is the loop variable


def split_of(source: str) -> str:
    """ "train", "validation" or "test": the MD5 hash of the program text mod 3."""
    h = int(hashlib.md5(source.encode()).hexdigest(), 16) % 3
    return ("train", "validation", "test")[h]


def _leaf(rng: random.Random, length: int) -> int:
    return rng.randint(1, 10**length)


def program(rng: random.Random, length: int, nesting: int) -> tuple[str, str]:
    """One (source, target) program of difficulty (length, nesting)."""
    check_positive_int("length", length)
    check_positive_int("nesting", nesting)
    names = list(VARIABLES)
    rng.shuffle(names)
    lines: list[str] = []
    v = _leaf(rng, length)
    e = str(v)
    for _ in range(nesting):
        op = rng.choice(OPERATIONS)
        b = _leaf(rng, length)
        if op == "pair":
            plus = rng.random() < 0.5
            if rng.random() < 0.5:
                e, v = f"({e}{'+' if plus else '-'}{b})", v + b if plus else v - b
            else:
                e, v = f"({b}{'+' if plus else '-'}{e})", b + v if plus else b - v
        elif op == "smallmul":
            k = rng.randint(1, 4 * length)
            e, v = (f"({e}*{k})", v * k) if rng.random() < 0.5 else (f"({k}*{e})", v * k)
        elif op == "assign":
            name = names.pop()
            lines.append(f"{name}={e}")
            plus = rng.random() < 0.5
            e, v = f"({name}{'+' if plus else '-'}{b})", v + b if plus else v - b
        elif op == "if":
            c, d = _leaf(rng, length), _leaf(rng, length)
            where = rng.randrange(3)
            if where == 0:  # the expression is compared
                e, v = f"({c} if {e}>{b} else {d})", c if v > b else d
            elif where == 1:
                a = _leaf(rng, length)
                e, v = f"({e} if {a}>{b} else {d})", v if a > b else d
            else:
                a = _leaf(rng, length)
                e, v = f"({c} if {a}>{b} else {e})", c if a > b else v
        elif op == "for":
            name = names.pop()
            k = rng.randint(1, 4 * length)
            plus = rng.random() < 0.5
            lines += [f"{name}={e}", f"for x in range({k}):{name}{'+' if plus else '-'}={b}"]
            e, v = name, v + k * b if plus else v - k * b
        # identity: e stays as it is
    lines.append(f"print({e})")
    return "\n".join(lines), f"{v}."


def addition(rng: random.Random, length: int) -> tuple[str, str]:
    """``print(a+b)`` with two ``length``-digit numbers, and its target."""
    check_positive_int("length", length)
    lo, hi = 10 ** (length - 1), 10**length - 1
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    return f"print({a}+{b})", f"{a + b}."


def sample(rng: random.Random, split: str, length: int, nesting: int = 1, task: str = "program"):
    """A program of ``task`` ("program" or "addition") that belongs to ``split``."""
    if split not in SPLITS:
        raise InputError(f"split: expected one of {tuple(SPLITS)}, received {split!r}")
    if task not in ("program", "addition"):
        raise InputError(f"task: expected 'program' or 'addition', received {task!r}")
    while True:
        src, tgt = program(rng, length, nesting) if task == "program" else addition(rng, length)
        if split_of(src) == split:
            return src, tgt


def dataset(n: int, split: str, length: int, nesting: int = 1, task: str = "program",
            seed: int = 0) -> list[tuple[str, str]]:  # fmt: skip
    """``n`` programs of one split and difficulty (a fixed validation or test set)."""
    rng = random.Random(seed)
    return [sample(rng, split, length, nesting, task) for _ in range(check_positive_int("n", n))]


class Curriculum:
    """Chooses (length, nesting) for each training example (module docstring).

    Args:
        name: "baseline", "naive", "mix" or "combined".
        length, nesting: the target difficulty.
        threshold: validation accuracy that advances the naive level.
        patience: evaluations without improvement that also advance it ("stalls").
    """

    def __init__(self, name: str, length: int, nesting: int = 1, threshold: float = 0.95,
                 patience: int = 3) -> None:  # fmt: skip
        if name not in CURRICULA:
            raise InputError(f"curriculum: expected one of {CURRICULA}, received {name!r}")
        self.name = name
        self.target = (check_positive_int("length", length), check_positive_int("nesting", nesting))
        self.threshold, self.patience = threshold, patience
        self.level = (1, 1)
        self.best, self.stalled = -1.0, 0

    def draw(self, rng: random.Random) -> tuple[int, int]:
        """The difficulty of the next training example."""
        L, N = self.target
        if self.name == "baseline":
            return self.target
        if self.name == "mix" or (self.name == "combined" and rng.random() < 0.2):
            return rng.randint(1, L), rng.randint(1, N)
        return self.level

    @property
    def at_target(self) -> bool:
        return self.name in ("baseline", "mix") or self.level == self.target

    def advance(self, accuracy: float) -> bool:
        """Report the validation accuracy at :attr:`level`; raise the naive level when it
        passes the threshold or has stalled. Returns whether the level changed."""
        if self.at_target:
            return False
        if accuracy > self.best:
            self.best, self.stalled = accuracy, 0
        else:
            self.stalled += 1
        if accuracy <= self.threshold and self.stalled < self.patience:
            return False
        length, nesting = self.level
        if length < self.target[0]:
            self.level = (length + 1, nesting)
        else:
            self.level = (1, nesting + 1)
        self.best, self.stalled = -1.0, 0
        return True

    def state_dict(self) -> dict:
        return {"level": list(self.level), "best": self.best, "stalled": self.stalled}

    def load_state_dict(self, state: dict) -> None:
        self.level = tuple(state["level"])
        self.best, self.stalled = float(state["best"]), int(state["stalled"])


__all__ = [
    "CURRICULA",
    "OPERATIONS",
    "Curriculum",
    "addition",
    "dataset",
    "program",
    "sample",
    "split_of",
]
