"""Data-parallel training on PyTorch's own engine, ``torch.distributed``.

Launch any training job with ``torchrun`` (one process per device: gloo on CPU, NCCL on
CUDA); :func:`init_from_env` joins the process group that torchrun describes in the
environment, and :class:`rnnlab.train.Trainer` then:

- wraps the model in ``DistributedDataParallel`` (gradients all-reduced, averaged),
- gives each rank its slice of every batch (:func:`shard`), so the global batch is what
  one process would see and the averaged gradient is the one-process gradient,
- uses ``no_sync`` for all but the last batch of a gradient accumulation,
- clips the all-reduced gradients (identical on every rank),
- skips a step on every rank together when any rank's loss is not finite,
- agrees on when to stop (time budget, signals) before every step,
- lets only rank 0 print, log and write checkpoints, which hold every rank's RNG state
  and carried state so that a run resumed with the same world size continues exactly
  (a different world size is refused with a message).

Without torchrun (no ``WORLD_SIZE`` in the environment, or 1) everything here is a no-op.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, NamedTuple

import torch
import torch.distributed as dist

from rnnlab.errors import InputError


class DistInfo(NamedTuple):
    """rank, world_size, local_rank (the device index on this machine) and device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device | None


def init_from_env(device: str | torch.device | None = None, timeout_s: float = 600) -> DistInfo:
    """Join the process group described by torchrun's environment variables (gloo on CPU,
    NCCL on CUDA) and return this process's place in it; on CUDA each process takes the
    device of its ``LOCAL_RANK``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = None if device is None else torch.device(device)
    if world_size <= 1:
        return DistInfo(0, 1, 0, dev)
    cuda = dev is not None and dev.type == "cuda"
    if cuda:
        if torch.cuda.device_count() <= local_rank:
            raise InputError(
                f"device: process {local_rank} of this machine needs cuda:{local_rank}, but "
                f"{torch.cuda.device_count()} CUDA device(s) are visible"
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)


def world() -> tuple[int, int]:
    """(rank, world_size) of this process; (0, 1) outside torch.distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(batch: Any, rank: int, world_size: int) -> Any:
    """This rank's slice of ``batch``: every tensor along dimension 0 and every list (one
    item per example, e.g. CTC transcripts) by position, through tuples, named tuples and
    dicts; the batch size must divide by the world size."""
    if world_size == 1:
        return batch
    if isinstance(batch, (torch.Tensor, list)):  # a list holds one item per example
        B = len(batch) if isinstance(batch, list) else batch.shape[0] if batch.dim() else 0
        if B % world_size:
            raise InputError(
                f"batch: {B} sequences do not divide into {world_size} processes; choose a "
                f"batch size that is a multiple of the number of processes"
            )
        n = B // world_size
        return batch[rank * n : (rank + 1) * n]
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(shard(b, rank, world_size) for b in batch))
    if isinstance(batch, tuple):
        return tuple(shard(b, rank, world_size) for b in batch)
    if isinstance(batch, dict):
        return {k: shard(v, rank, world_size) for k, v in batch.items()}
    return batch


def _collective_device() -> torch.device:
    """Where the backend's collectives take tensors (NCCL: this process's GPU)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_true(flag: bool) -> bool:
    """Whether ``flag`` holds on any rank (one all-reduce); ``flag`` itself alone."""
    if world()[1] == 1:
        return bool(flag)
    t = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean(value: float) -> float:
    """The mean of ``value`` over the ranks (``value`` itself alone)."""
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return float(t.item() / world()[1])


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` alone)."""
    rank, world_size = world()
    if world_size == 1:
        return [obj]
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def average_gradients(parameters) -> None:
    """All-reduce and average ``.grad`` of ``parameters`` (for updates that write their
    gradients themselves, which DDP does not see)."""
    world_size = world()[1]
    if world_size == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad.div_(world_size)


__all__ = [
    "DistInfo",
    "any_true",
    "average_gradients",
    "gather",
    "init_from_env",
    "mean",
    "shard",
    "world",
]
