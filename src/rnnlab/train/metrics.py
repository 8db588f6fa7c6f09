"""The JSONL metrics log and the loss-curve plot."""

from __future__ import annotations

import json
import math
from pathlib import Path

from rnnlab.train.checkpoint import atomic_write


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a JSONL metrics log (a truncated last line is ignored)."""
    records = []
    p = Path(path)
    if not p.exists():
        return records
    for line in p.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_losses(
    metrics: str | Path,
    out: str | Path,
    *,
    scale: float = 1.0,
    ylabel: str = "loss (nats)",
    title: str = "",
) -> Path:
    """Plot training and validation loss (times ``scale``) against the step; write a PNG
    atomically to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics)
    train = [(r["step"], r["loss"] * scale) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"] * scale) for r in records if "val_loss" in r]
    final = [(r["step"], r["final_val_loss"] * scale) for r in records if "final_val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train), lw=1, alpha=0.8, label="train (per batch)")
    if val:
        ax.plot(*zip(*val), "o-", lw=2, label="validation")
    if final:
        ax.plot(*zip(*final[-1:]), "s", ms=8, color="C1", label="validation (final)")
    finite = [v for _, v in train + val + final if math.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) * 0.95, min(max(finite), 3 * min(finite)) * 1.05)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out = Path(out)
    atomic_write(out, lambda fh: fig.savefig(fh, format="png"))
    plt.close(fig)
    return out
