"""``rnnlab reproduce reber``: the embedded Reber grammar of Hochreiter & Schmidhuber
(1997), Exp. 1 (docs/tasks.md#embedded-reber-grammar).

The setup and its deviations from the paper are :data:`SETUP` (the report quotes it).
"""

from __future__ import annotations

import time

import torch

from rnnlab._threads import torch_threads
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register
from rnnlab.experiments._task_training import (
    Evaluation,
    RecurrentNet,
    init_1997,
    plot_curves,
    table,
    train_task,
)
from rnnlab.nn import LSTM
from rnnlab.tasks import reber as task

CELLS, LR, FULL_BUDGET = 6, 1e-2, 150_000
PUBLISHED = {"success_percent": 100, "sequences": 8_440, "sequences_range": "3.8k-24.1k"}

SETUP = """\
256 training strings and 256 test strings (none of them in the training set) of the
embedded Reber grammar; the net reads one-hot symbols and predicts the next one at every
step. Success, the paper's rule: on every string of both sets, at every step, the legal
next symbols' outputs are the most active (each above every illegal one).

Net: a 1997 LSTM (no forget gate, g in [-2, 2], h in [-1, 1]) of 6 cells (the paper's 3
blocks x 2 cells, one gate set per cell), output-gate biases -1, -1, -2, -2, -3, -3,
weights U[-0.2, 0.2]; a linear layer reads the cells at every step (softmax
cross-entropy on the next symbol). Deviation: mini-batches of 16 strings drawn from the
training set, Adam (lr 1e-2, gradient-norm clip 1) instead of online gradient descent
with lr 0.1-0.5; "sequences" counts training strings presented.
"""


def _rows(batch: task.ReberBatch, idx: torch.Tensor) -> task.ReberBatch:
    """The strings ``idx`` of a padded batch, trimmed to their longest."""
    T = int(batch.lengths[idx].max())
    return task.ReberBatch(*(t[idx][:, :T] if t.dim() > 1 else t[idx] for t in batch))


def _step_accuracy(pred, batch) -> float:
    ok = task.step_correct(pred, batch) & batch.mask
    return float(ok.sum() / batch.mask.sum())


@register(
    "reber", "LSTM 1997 learns the embedded Reber grammar (all next symbols predicted)", trials=3
)
def run(config: ExperimentConfig) -> ExperimentResult:
    s = config.seed
    n_strings = 64 if config.quick else 256
    budget, eval_every = (800, 200) if config.quick else (FULL_BUDGET, 1_000)
    cells, batch, lr = CELLS, 16, LR
    g = torch.Generator().manual_seed(1_000 + s)
    train_strings = task.sample_strings(n_strings, generator=g)
    test_strings = task.sample_strings(n_strings, exclude=train_strings, generator=g)
    train, test = task.encode(train_strings), task.encode(test_strings)

    torch.manual_seed(s)
    lstm = init_1997(
        LSTM(len(task.SYMBOLS), cells, forget_gate=False),
        scale=0.2,
        output_gate_bias=(-1, -1, -2, -2, -3, -3),
    )
    net = RecurrentNet(lstm, len(task.SYMBOLS), per_step=True)

    def evaluate(m):
        p_tr, p_te = m(train.inputs, train.lengths), m(test.inputs, test.lengths)
        ok_tr, ok_te = task.is_correct(p_tr, train), task.is_correct(p_te, test)
        metrics = {
            "train_strings_correct": float(ok_tr.float().mean()),
            "test_strings_correct": float(ok_te.float().mean()),
            "test_step_accuracy": _step_accuracy(p_te, test),
        }
        return Evaluation(metrics, done=bool(ok_tr.all() and ok_te.all()))

    def sample(b, gen):
        return _rows(train, torch.randint(0, n_strings, (b,), generator=gen))

    t0 = time.perf_counter()
    with torch_threads(1):
        log = train_task(
            net,
            sample,
            lambda m, b: task.loss(m(b.inputs, b.lengths), b),
            evaluate,
            batch_size=batch,
            max_sequences=budget,
            eval_every=eval_every,
            lr=lr,
            clip=1.0,
            seed=s,
        )
    seconds = time.perf_counter() - t0
    last = log.history[-1]
    metrics = {
        "success": log.success,
        "sequences": log.sequences,
        "train_strings_correct": last["train_strings_correct"],
        "test_strings_correct": last["test_strings_correct"],
        "test_step_accuracy": last["test_step_accuracy"],
        "weights": sum(p.numel() for p in net.parameters()),
        "strings_per_set": n_strings,
        "seconds": round(seconds, 1),
    }
    xs = [h["sequences"] for h in log.history]
    plots = [
        plot_curves(
            config.out / "reber_learning_curve.png",
            {
                "train strings all right": (xs, [h["train_strings_correct"] for h in log.history]),
                "test strings all right": (xs, [h["test_strings_correct"] for h in log.history]),
                "test steps right": (xs, [h["test_step_accuracy"] for h in log.history]),
            },
            ylabel="fraction",
            title="Embedded Reber grammar, LSTM 1997 (6 cells)",
        )
    ]
    rows = [
        ("success (all symbols of both sets)", str(log.success), "100% of 30 trials (3x2, lr 0.5)"),
        ("training strings presented", f"{log.sequences:,}", "8,440 (range 3.8k-24.1k)"),
        ("test strings all right", f"{last['test_strings_correct']:.4f}", "1"),
        ("weights", str(metrics["weights"]), "276 (3 blocks x 2 cells)"),
    ]
    report = "\n\n".join(
        [
            "# reber: the embedded Reber grammar",
            SETUP.strip(),
            f"Preset: {'quick' if config.quick else 'full'} ({n_strings} strings per set, "
            f"budget {budget:,} strings), seed {s}. Wall time {seconds:.0f} s.",
            table(rows, ("", "this run", "published (1997, Table 1)")),
            "![learning curve](reber_learning_curve.png)",
        ]
    )
    return ExperimentResult("reber", log.success, metrics, PUBLISHED, report, plots)
