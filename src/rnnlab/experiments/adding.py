"""``rnnlab reproduce adding``: the adding problem of Hochreiter & Schmidhuber (1997),
Exp. 4 (docs/tasks.md#adding-1997-convention), T = 100, 1997 convention.

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
from rnnlab.nn import LSTM, SRN
from rnnlab.tasks import ST3
from rnnlab.tasks import adding as task

PUBLISHED = {"lstm_sequences": 74_000, "lstm_wrong": 1, "test_sequences": 2560}

SETUP = """\
A 1997 LSTM (no forget gate, g in [-2, 2], h in [-1, 1]; 4 cells, the paper's 2 blocks x
2 cells with one gate set per cell, input-gate biases -3, -3, -6, -6, weights
U[-0.1, 0.1]) reads (value, marker) pairs and a linear unit reads its final output.
Deviation from the paper: mini-batches of 32 with Adam (lr 1e-2, gradient-norm clip 1)
instead of online gradient descent with lr 0.5; training stops when fewer than 0.5% of
1,024 held-out validation sequences are wrong (the paper's ST3(0.01) on the training
stream is tracked and reported too), then the net is tested on 2,560 fresh sequences
(correct: |error| < 0.04). An Elman SRN (8 tanh units, more weights than the LSTM) gets
the same optimiser and the same number of training sequences.
"""


def _nets(seed: int, cells: int, srn_hidden: int):
    torch.manual_seed(seed)
    lstm = init_1997(LSTM(2, cells, forget_gate=False), scale=0.1, input_gate_bias=(-3, -3, -6, -6))
    srn = SRN(2, srn_hidden)
    return RecurrentNet(lstm, 1), RecurrentNet(srn, 1)


def _train(net, T, seed, budget, val, batch, lr, stop_wrong, eval_every, st3=None):
    def evaluate(m):
        p = m(val.inputs, val.lengths)
        wrong = task.error_rate(p, val)
        return Evaluation({"val_wrong": wrong, "val_mse": float(task.loss(p, val))},
                          done=stop_wrong is not None and wrong < stop_wrong)  # fmt: skip

    def on_batch(m, b, _loss):
        if st3 is not None and st3.fired is None:
            with torch.no_grad():
                err = (m(b.inputs, b.lengths) - b.targets).squeeze(-1)
            if st3.rule.update(err**2, err.abs() < task.THRESHOLD):
                st3.fired = st3.rule.seen

    return train_task(
        net,
        lambda b, g: task.generate(b, T, generator=g),
        lambda m, b: task.loss(m(b.inputs, b.lengths), b),
        evaluate,
        batch_size=batch,
        max_sequences=budget,
        eval_every=eval_every,
        lr=lr,
        clip=1.0,
        seed=seed,
        on_batch=on_batch if st3 is not None else None,
    )


class _ST3Tracker:
    def __init__(self):
        self.rule = ST3(0.01)
        self.fired = None


@register("adding", "LSTM 1997 adding problem, T=100 (<1% wrong of 2560); SRN fails", trials=3)
def run(config: ExperimentConfig) -> ExperimentResult:
    if config.quick:
        T, budget, n_test, eval_every, track_st3 = 20, 3_000, 512, 1_000, False
    else:
        T, budget, n_test, eval_every, track_st3 = 100, 200_000, 2560, 5_000, True
    batch, lr, cells, srn_hidden = 32, 1e-2, 4, 8
    s = config.seed
    val = task.generate(256 if config.quick else 1024, T, seed=10_000 + s)
    test = task.generate(n_test, T, seed=20_000 + s)
    lstm, srn = _nets(s, cells, srn_hidden)
    t0 = time.perf_counter()
    with torch_threads(1):
        st3 = _ST3Tracker() if track_st3 else None
        log_l = _train(lstm, T, s, budget, val, batch, lr, 0.005, eval_every, st3)
        # the SRN: same optimiser, same number of training sequences
        log_s = _train(srn, T, s + 1, log_l.sequences, val, batch, lr, None, eval_every)
        with torch.no_grad():
            res = {}
            for name, net in (("lstm", lstm), ("srn", srn)):
                p = net(test.inputs, test.lengths)
                res[name] = (
                    int((~task.is_correct(p, test)).sum()),
                    float(task.loss(p, test)),
                )
    seconds = time.perf_counter() - t0
    baseline = float(((test.targets - test.targets.mean()) ** 2).mean())
    limit = 0.01 * n_test
    success = res["lstm"][0] < limit and res["srn"][0] >= limit
    metrics = {
        "T": T,
        "test_sequences": n_test,
        "lstm_sequences": log_l.sequences,
        "lstm_wrong": res["lstm"][0],
        "lstm_wrong_percent": 100.0 * res["lstm"][0] / n_test,
        "lstm_test_mse": res["lstm"][1],
        "lstm_weights": sum(p.numel() for p in lstm.parameters()),
        "st3_fired_at": st3.fired if st3 is not None else None,
        "srn_sequences": log_s.sequences,
        "srn_wrong": res["srn"][0],
        "srn_wrong_percent": 100.0 * res["srn"][0] / n_test,
        "srn_test_mse": res["srn"][1],
        "srn_weights": sum(p.numel() for p in srn.parameters()),
        "constant_baseline_mse": baseline,
        "seconds": round(seconds, 1),
    }
    plots = [
        plot_curves(
            config.out / "adding_learning_curve.png",
            {
                "LSTM 1997 (4 cells)": (
                    [h["sequences"] for h in log_l.history],
                    [100 * h["val_wrong"] for h in log_l.history],
                ),
                f"SRN ({srn_hidden} tanh)": (
                    [h["sequences"] for h in log_s.history],
                    [100 * h["val_wrong"] for h in log_s.history],
                ),
            },
            ylabel="% wrong (|error| >= 0.04), validation",
            title=f"Adding problem, T = {T}",
            hline=1.0,
            hlabel="1% (success)",
        )
    ]
    rows = [
        ("LSTM 1997, sequences seen", f"{log_l.sequences:,}", "74,000 (online, lr 0.5)"),
        ("LSTM 1997, wrong of test", f"{res['lstm'][0]} / {n_test}", "1 / 2560"),
        ("LSTM 1997, test MSE", f"{res['lstm'][1]:.2e}", "-"),
        ("SRN, same sequences, wrong", f"{res['srn'][0]} / {n_test}", "fails (BPTT/RTRL)"),
        ("SRN, test MSE", f"{res['srn'][1]:.2e}", "-"),
        ("predict the mean, MSE", f"{baseline:.2e}", "-"),
    ]
    report = "\n\n".join(
        [
            "# adding: the 1997 adding problem",
            SETUP.strip(),
            f"Preset: {'quick' if config.quick else 'full'} (T = {T}, budget {budget:,} "
            f"sequences), seed {s}. ST3(0.01) on the training stream fired at: "
            f"{metrics['st3_fired_at'] or 'not within the run'}. Wall time {seconds:.0f} s.",
            table(rows, ("", "this run", "published (1997)")),
            f"Success (LSTM < 1% wrong, SRN >= 1% wrong): **{success}**.",
            "![learning curve](adding_learning_curve.png)",
        ]
    )
    return ExperimentResult("adding", success, metrics, PUBLISHED, report, plots)
