"""A small seeded trainer shared by the task reproductions (``lstm_tasks``).

One loop: draw a batch from the task generator, run the model, take the loss, step the
optimiser (optionally clipping the gradient norm), count the training sequences seen,
and every ``eval_every`` sequences call ``evaluate``; stop when it reports success or
when the sequence budget is spent. The paper's online protocol (one sequence per update)
is replaced by mini-batches, so the sequence counts are comparable to the papers' only
as orders of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from rnnlab.errors import InputError


@dataclass
class TrainLog:
    """What one training run did.

    sequences: training sequences seen when it stopped.
    updates: optimiser steps taken.
    success: whether ``evaluate`` reported success before the budget ran out.
    history: one dict per evaluation: ``sequences``, ``loss`` (mean training loss since
        the previous evaluation) and the metrics ``evaluate`` returned.
    best_score: the highest ``score`` ``evaluate`` returned (``-inf`` if none).
    best_sequences: sequences seen at that evaluation.
    """

    sequences: int = 0
    updates: int = 0
    success: bool = False
    history: list[dict] = field(default_factory=list)
    best_score: float = -math.inf
    best_sequences: int = 0


@dataclass
class Evaluation:
    """What ``evaluate(model)`` returns: metrics to log, whether the success rule holds
    (training stops), and an optional score (higher is better) for keeping the best
    model."""

    metrics: dict
    done: bool = False
    score: float | None = None


class TaskBatches:
    """Endless batches ``sample(batch_size, generator)`` from one seeded generator; its
    ``state_dict`` is the generator's state, so a resumed run draws the same batches."""

    def __init__(self, sample: Callable[[int, torch.Generator], object], batch_size: int, seed):
        self.sample, self.batch_size = sample, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        return self

    def __next__(self):
        return self.sample(self.batch_size, self.generator)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def train_task(
    model: nn.Module,
    sample: Callable[[int, torch.Generator], object],
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    evaluate: Callable[[nn.Module], Evaluation],
    *,
    batch_size: int,
    max_sequences: int,
    eval_every: int,
    lr: float = 1e-2,
    lr_end: float | None = None,
    optimiser: str = "adam",
    momentum: float = 0.9,
    clip: float | None = None,
    seed: int = 0,
    keep_best: bool = False,
    on_batch: Callable[[nn.Module, object, float], None] | None = None,
) -> TrainLog:
    """Train ``model`` with :class:`rnnlab.train.Trainer` on batches ``sample(batch_size,
    generator)`` until ``evaluate`` says done or ``max_sequences`` training sequences
    have been seen.

    loss_fn(model, batch) -> scalar loss. evaluate(model) -> :class:`Evaluation`, called
    every ``eval_every`` sequences (in eval mode, without gradients) and once at the end.
    lr_end: when given, the learning rate decays geometrically from ``lr`` to ``lr_end``
    over ``max_sequences``. optimiser: ``"adam"`` or ``"sgd"`` (with ``momentum``).
    clip: max gradient norm.
    keep_best: restore the parameters of the best-scoring evaluation at the end (when
    training did not succeed). on_batch(model, batch, loss): a hook after each update.
    """
    from rnnlab.train import StepOutput, TrainConfig, Trainer
    from rnnlab.train import loop as train_loop

    if optimiser not in ("adam", "sgd"):
        raise InputError(f"optimiser: expected 'adam' or 'sgd', received {optimiser!r}")
    for name, v in (("batch_size", batch_size), ("max_sequences", max_sequences),
                    ("eval_every", eval_every)):  # fmt: skip
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"{name}: expected an integer >= 1, received {v!r}")
    params = [p for p in model.parameters() if p.requires_grad]
    if optimiser == "adam":
        opt = torch.optim.Adam(params, lr=lr)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum)
    schedule = None
    if lr_end is not None:  # lr (lr_end / lr)^(sequences / max_sequences) before each update
        ratio = lr_end / lr
        schedule = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda u: ratio ** min(1.0, u * batch_size / max_sequences)
        )
    scores: list[float | None] = []

    def eval_fn(m):
        ev = evaluate(m)
        scores.append(ev.score)
        # lower is better for the loop: the negated score (None: nothing to compare)
        return train_loop.Evaluation(
            None if ev.score is None else -float(ev.score), ev.metrics, ev.done
        )

    trainer = Trainer(
        model,
        opt,
        TaskBatches(sample, batch_size, seed),
        lambda m, b, carry: StepOutput(loss_fn(m, b), items=batch_size),
        TrainConfig(
            examples=max_sequences,
            eval_every_examples=eval_every,
            clip_norm=clip,
            keep_best=keep_best,
            progress=False,
            log_every=10**9,
        ),
        schedule=schedule,
        eval_fn=eval_fn,
        after_step=on_batch,
    )
    result = trainer.fit()
    log = TrainLog(sequences=trainer.items, updates=trainer.step)
    log.success = result.stopped == "done" or bool(
        trainer.last_evaluation is not None and trainer.last_evaluation.done
    )
    for record, score in zip(trainer.history, scores):
        log.history.append(
            {"sequences": record["items"], "loss": record["train_loss"],
             **{k: v for k, v in record.items() if k not in _LOOP_KEYS}}
        )  # fmt: skip
        if score is not None and score > log.best_score:
            log.best_score, log.best_sequences = float(score), record["items"]
    model.eval()
    return log


_LOOP_KEYS = ("step", "items", "train_loss", "val_loss", "final_val_loss")


def train_until_consolidated(
    model: nn.Module,
    sample: Callable[[int, torch.Generator], object],
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    check: Callable[[nn.Module], bool],
    *,
    batch_size: int,
    max_steps: int,
    consolidate: int,
    lr: float,
    seed: int,
    every: int = 50,
) -> tuple[int, bool]:
    """Adam with :class:`rnnlab.train.Trainer` until ``check(model)`` (run every
    ``every`` steps) has held at every check for ``consolidate`` steps, so that the
    hidden states saturate (binary addition, parity). Returns (sequences seen, solved)."""
    from rnnlab.train import StepOutput, TrainConfig, Trainer
    from rnnlab.train import loop as train_loop

    first_ok: list[int | None] = [None]  # the step since which every check has held
    checked: dict[int, bool] = {}

    def eval_fn(m):
        step = trainer.step
        if step not in checked:  # the final evaluation may repeat the last check
            checked[step] = ok = bool(check(m))
            first_ok[0] = (first_ok[0] or step) if ok else None
        done = checked[step] and step >= first_ok[0] + consolidate
        return train_loop.Evaluation(None, {"ok": checked[step]}, done)

    trainer = Trainer(
        model,
        torch.optim.Adam(model.parameters(), lr=lr),
        TaskBatches(sample, batch_size, seed),
        lambda m, b, carry: StepOutput(loss_fn(m, b), items=batch_size),
        TrainConfig(steps=max_steps, eval_every=every, progress=False, log_every=10**9),
        eval_fn=eval_fn,
    )
    trainer.fit()
    model.eval()
    ev = trainer.last_evaluation
    return trainer.items, bool(ev is not None and ev.done and trainer.step % every == 0)


def plot_curves(
    path,
    curves: dict[str, tuple[list[float], list[float]]],
    *,
    xlabel: str = "training sequences",
    ylabel: str = "",
    title: str = "",
    logy: bool = False,
    hline: float | None = None,
    hlabel: str = "",
):
    """Write a line plot of ``{label: (x, y)}`` to ``path`` and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, (x, y) in curves.items():
        ax.plot(x, y, marker=".", label=label)
    if hline is not None:
        ax.axhline(hline, color="k", ls="--", lw=0.8, label=hlabel or None)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def table(rows: list[tuple], head: tuple[str, ...]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


class RecurrentNet(nn.Module):
    """A recurrent layer and a linear read-out: of the final state (``per_step=False``,
    ``(B, O)``) or of every step (``(B, T, O)``). ``shortcut``: the read-out also sees
    the current input (input-to-output connections, per-step read-out only)."""

    def __init__(
        self, rnn: nn.Module, out_size: int, *, per_step: bool = False, shortcut: bool = False
    ):
        super().__init__()
        if shortcut and not per_step:
            raise InputError("shortcut: valid only with per_step=True")
        self.rnn = rnn
        self.per_step = per_step
        self.shortcut = shortcut
        hidden = getattr(rnn, "output_size", None) or rnn.hidden_size
        self.head = nn.Linear(hidden + (rnn.input_size if shortcut else 0), out_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        out, state = self.rnn(x, lengths=lengths)  # (B, T, H)
        if self.per_step:
            if self.shortcut:
                out = torch.cat([out, x], dim=-1)  # (B, T, H + F)
            return self.head(out)  # (B, T, O)
        h = state[0] if isinstance(state, tuple) else state  # (L*D, B, H)
        return self.head(h[-1])  # (B, O)


def init_1997(lstm: nn.Module, *, scale: float, input_gate_bias=(), output_gate_bias=()):
    """The 1997 initialisation (docs/tasks.md#lstm-1997-conventions) of a one-layer
    1997-cell ``rnnlab.nn.LSTM``:
    weights U[-scale, scale]; input- and output-gate biases set per cell from the given
    lists (cycled over the cells; gates i, g, o); other biases U[-scale, scale]."""
    H = lstm.hidden_size
    with torch.no_grad():
        for p in lstm.parameters():
            p.uniform_(-scale, scale)
        for values, off in ((input_gate_bias, 0), (output_gate_bias, 2 * H)):
            if values:
                b = torch.tensor([values[k % len(values)] for k in range(H)], dtype=torch.float64)
                lstm.bias_ih_l0[off : off + H] = b.to(lstm.bias_ih_l0.dtype)
                lstm.bias_hh_l0[off : off + H] = 0.0
    return lstm
