"""Run a block with a given number of torch intra-op threads, restoring the caller's."""

from __future__ import annotations

import contextlib
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
