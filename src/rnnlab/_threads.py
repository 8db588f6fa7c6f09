"""Run a block with a given number of torch intra-op threads, restoring the caller's."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads inside the block.

    Small networks run fastest on one thread; on a 2-core machine with anything else
    running, two OpenMP threads can be ten times slower than one."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class ThreadTuner:
    """Choose torch's number of threads from the job's own step times (``--threads auto``).

    Which is faster depends on the machine and on what else runs on it: on this project's
    2-core machine a small language model ran 1.27x faster on two threads when the machine
    was idle and 10x slower when other jobs were running (README, "Threads"). So measure:
    an ``after_step`` observer of :class:`rnnlab.train.Trainer` that, after ``warmup``
    steps, alternates the candidates step by step for ``trials`` steps each, then keeps the
    one with the lower median step time (``chosen``; ``times`` holds the measurements).
    Every step is a real training step: nothing is spent but the slower candidate's steps.
    """

    def __init__(self, candidates: tuple[int, ...] | None = None, warmup: int = 5,
                 trials: int = 6):  # fmt: skip
        cores = torch.get_num_threads()
        self.candidates = tuple(candidates or sorted({1, cores}))
        self.warmup, self.trials = warmup, trials
        self.times: dict[int, list[float]] = {n: [] for n in self.candidates}
        self.chosen: int | None = self.candidates[0] if len(self.candidates) == 1 else None
        self._calls, self._last, self._running = 0, None, torch.get_num_threads()

    def __call__(self, model, batch, loss) -> None:
        now = time.perf_counter()
        if self.chosen is not None:
            return
        k = self._calls - self.warmup  # measured steps so far
        if k > 0:
            self.times[self._running].append(now - self._last)
        if k + 1 > self.trials * len(self.candidates):
            self.chosen = min(self.candidates, key=lambda n: statistics.median(self.times[n]))
            self._set(self.chosen)
        elif k >= 0:
            self._set(self.candidates[k % len(self.candidates)])
        self._calls += 1
        self._last = time.perf_counter()

    def _set(self, n: int) -> None:
        torch.set_num_threads(n)
        self._running = n
