"""Checkpoints: one file holding everything a run needs to continue exactly.

A checkpoint is a dict saved with ``torch.save``: ``format`` and ``version`` (to recognise
it), ``kind`` (which model family, e.g. ``"lm"``), and whatever the caller adds (model,
optimizer, schedule, vocabulary, data position, RNG states, configuration). Writing is
atomic: the bytes go to a temporary file in the same folder, are flushed to disk, and
only then renamed over the target (``os.replace``), so a crash mid-write leaves the old
checkpoint intact. Loading uses ``weights_only=True`` (no arbitrary code runs) and turns
every failure into a one-line ``ValueError``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pickle
import random
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from rnnlab.errors import InputError

FORMAT = "rnnlab-checkpoint"
VERSION = 1


def _umask() -> int:
    """The process's file-creation mask (read without changing it where Linux tells it)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore at once
    os.umask(mask)
    return mask


def _remove_stale_temporaries(path: Path, before: float) -> None:
    """Delete temporary files of earlier writes of ``path`` that never finished (a
    kill -9 mid-write leaves them behind): ``.{name}.*.tmp`` older than ``before``."""
    for old in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < before:
                old.unlink()


def atomic_write(path: str | os.PathLike, write: Callable[[object], None], mode: str = "wb"):
    """Call ``write(fh)`` on a temporary file beside ``path``, fsync, then rename it over
    ``path``. On any failure the temporary file is removed and ``path`` is untouched.

    The file gets the mode any new file gets (0666 less the umask, e.g. 0644), not the
    0600 of a temporary file; temporary files that earlier, killed writes left behind
    are removed after a successful write."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        started = os.fstat(fd).st_mtime
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _remove_stale_temporaries(path, started)


def save_checkpoint(path: str | os.PathLike, kind: str, payload: dict) -> Path:
    """Write ``payload`` (plus format, version and kind) atomically to ``path``."""
    record = {"format": FORMAT, "version": VERSION, "kind": kind, **payload}
    atomic_write(path, lambda fh: torch.save(record, fh))
    return Path(path)


def load_checkpoint(path: str | os.PathLike, kind: str | None = None) -> dict:
    """Read a checkpoint; ValueError (one line) when missing, corrupt or of another kind."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"checkpoint: no such file: {str(p)!r}")
    if p.is_dir():
        raise InputError(f"checkpoint: expected a file, received a directory: {str(p)!r}")
    try:
        with warnings.catch_warnings():  # torch warns (many lines) about foreign pickles
            warnings.simplefilter("ignore")
            record = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        if isinstance(exc, pickle.UnpicklingError) and "unsupported global" in str(exc).lower():
            raise InputError(
                f"checkpoint: {str(p)!r} is not an rnnlab checkpoint: it holds pickled Python "
                "objects besides tensors and plain data, which are never loaded (weights_only)"
            ) from None
        if isinstance(exc, pickle.UnpicklingError):  # torch's text runs over many lines
            raise InputError(
                f"checkpoint: {str(p)!r} is not a readable rnnlab checkpoint (not a file that "
                "torch.save wrote, or damaged)"
            ) from None
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"checkpoint: {str(p)!r} is not a readable rnnlab checkpoint ({first[:120]})"
        ) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise InputError(f"checkpoint: {str(p)!r} is not an rnnlab checkpoint")
    if record.get("version") != VERSION:
        raise InputError(
            f"checkpoint: {str(p)!r} has format version {record.get('version')}, "
            f"this rnnlab reads version {VERSION}"
        )
    if kind is not None and record.get("kind") != kind:
        raise InputError(
            f"checkpoint: {str(p)!r} holds a {record.get('kind')!r} model, expected {kind!r}"
        )
    return record


def rng_state() -> dict:
    """The torch (CPU and CUDA), numpy and Python random states (checkpoint-friendly types)."""
    np_state = np.random.get_state()  # noqa: NPY002 (the global state is saved)
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_state(state: dict) -> None:
    """Restore the states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's random."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002
    random.seed(seed)
