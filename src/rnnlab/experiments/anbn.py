"""``rnnlab reproduce anbn`` and ``anbncn``: counting languages learnt by LSTM with
forget gates and peepholes (Gers & Schmidhuber 2001; TASKS.md §7).

Strings ``S a^n b^n T`` (``S a^n b^n c^n T``); at every step the net predicts the set of
legal next symbols, each output thresholded at 0.5 (logit 0). A string is accepted when
every prediction is right; ``max_n_generalised`` is the largest N with every n <= N
accepted, tested in batched chunks of n (one forward pass per chunk, with lengths).

Net: ``rnnlab.nn.LSTM(peepholes=True)`` (forget gates and peepholes, the 2001 cell) with
a few cells, a linear read-out of every step, sigmoid outputs with binary cross-entropy
against the legal-next sets. Deviations from the paper: Adam (lr 1e-2, batches of 32,
gradient-norm clip 1) instead of SGD with momentum 0.99 and lr 1e-5; one net per cell
instead of blocks; a few restarts, and the checkpoint kept is the one that accepts the
longest prefix of a validation range of n beyond the training range (the paper also
reports its best net); only the training range of n is ever used to compute gradients.
"""

from __future__ import annotations

import time

import torch

from rnnlab.experiments import ExperimentConfig, ExperimentResult, register
from rnnlab.experiments._task_training import (
    Evaluation,
    RecurrentNet,
    plot_curves,
    table,
    threads,
    train_task,
)
from rnnlab.nn import LSTM
from rnnlab.tasks import anbn as task


def max_n_generalised(net, with_c: bool, limit: int, chunk: int = 100) -> int:
    """The largest N <= ``limit`` with every n in 1..N accepted (chunks of ``chunk`` n
    per forward pass; stops at the first chunk with a rejection)."""
    N = 0
    with torch.no_grad():
        for lo in range(1, limit + 1, chunk):
            ns = list(range(lo, min(lo + chunk, limit + 1)))
            batch = task.encode(ns, with_c)
            ok = task.is_correct(net(batch.inputs, batch.lengths), batch, threshold=0.0)
            N = task.max_n_generalised(ok, n_start=lo)
            if N < ns[-1]:
                break
    return N


def _setup(quick: bool, with_c: bool) -> dict:
    if with_c:
        if quick:
            return dict(cells=3, n_train=5, val=20, test=40, budget=1_000, restarts=1)
        return dict(cells=3, n_train=10, val=60, test=500, budget=64_000, restarts=2)
    if quick:
        return dict(cells=2, n_train=10, val=30, test=60, budget=1_000, restarts=1)
    return dict(cells=2, n_train=10, val=150, test=1000, budget=64_000, restarts=3)


def _run(config: ExperimentConfig, with_c: bool) -> ExperimentResult:
    name = "anbncn" if with_c else "anbn"
    lang = "a^n b^n c^n" if with_c else "a^n b^n"
    p = _setup(config.quick, with_c)
    V = len(task.vocab(with_c))
    val = task.encode(list(range(1, p["val"] + 1)), with_c)
    t0 = time.perf_counter()
    trials = []  # (val score, test N, sequences, history, net)
    with threads(1):
        for r in range(p["restarts"]):
            seed = 1_000 * config.seed + r
            torch.manual_seed(seed)
            net = RecurrentNet(LSTM(V, p["cells"], peepholes=True), V, per_step=True)

            def evaluate(m):
                ok = task.is_correct(m(val.inputs, val.lengths), val, threshold=0.0)
                n = task.max_n_generalised(ok)
                train_ok = n >= p["n_train"]
                return Evaluation({"val_max_n": n}, done=n >= p["val"], score=n + train_ok)

            log = train_task(
                net,
                lambda b, g: task.generate(b, p["n_train"], with_c=with_c, generator=g),
                lambda m, b: task.loss(m(b.inputs, b.lengths), b),
                evaluate,
                batch_size=32,
                max_sequences=p["budget"],
                eval_every=1_600 if not config.quick else 500,
                lr=1e-2,
                clip=1.0,
                seed=seed,
                keep_best=True,
            )
            N = max_n_generalised(net, with_c, p["test"])
            trials.append((log, N, net))
            if N >= p["test"]:
                break
    seconds = time.perf_counter() - t0
    best_log, best_N, _ = max(trials, key=lambda t: t[1])
    sequences = sum(t[0].sequences for t in trials)
    if with_c:
        published = {"n_train_max": 50, "max_n_generalised": 500}
        need = 2 * p["n_train"]
    else:
        published = {"n_train_max": 10, "max_n_generalised": 1000}
        need = 100 if not config.quick else p["n_train"]
    success = best_N >= need
    metrics = {
        "n_train_max": p["n_train"],
        "max_n_generalised": best_N,
        "max_n_tested": p["test"],
        "sequences": sequences,
        "restarts": len(trials),
        "max_n_per_restart": [t[1] for t in trials],
        "cells": p["cells"],
        "weights": sum(q.numel() for q in trials[0][2].parameters()),
        "seconds": round(seconds, 1),
    }
    curves = {
        f"restart {i}": (
            [h["sequences"] for h in t[0].history],
            [h["val_max_n"] for h in t[0].history],
        )
        for i, t in enumerate(trials)
    }
    plots = [
        plot_curves(
            config.out / f"{name}_learning_curve.png",
            curves,
            ylabel=f"largest N accepted (validation, n <= {p['val']})",
            title=f"{lang}, LSTM with peepholes ({p['cells']} cells)",
            hline=p["n_train"],
            hlabel="training range",
        )
    ]
    rows = [
        ("trained on n", f"1..{p['n_train']}", f"1..{published['n_train_max']}"),
        ("largest N, all n <= N accepted", str(best_N), f"{published['max_n_generalised']} [U]"),
        ("n tested up to", str(p["test"]), "-"),
        ("training sequences (all restarts)", f"{sequences:,}", "-"),
        ("restarts (N each)", str(metrics["max_n_per_restart"]), "best net of several"),
    ]
    report = "\n\n".join(
        [
            f"# {name}: {lang} with LSTM (forget gates, peepholes)",
            (__doc__ or "").split("\n\n", 1)[1].strip(),
            f"Preset: {'quick' if config.quick else 'full'}, seed {config.seed}, "
            f"{p['cells']} cells, validation n <= {p['val']}. Success: N >= {need}. "
            f"Wall time {seconds:.0f} s.",
            table(rows, ("", "this run", "published (Gers & Schmidhuber 2001)")),
            f"Success: **{success}**.",
            f"![learning curve]({name}_learning_curve.png)",
        ]
    )
    return ExperimentResult(name, success, metrics, published, report, plots)


@register("anbn", "LSTM (peepholes) learns a^n b^n on n<=10, generalises (max_n_generalised)")
def run_anbn(config: ExperimentConfig) -> ExperimentResult:
    return _run(config, with_c=False)


@register("anbncn", "LSTM (peepholes) learns a^n b^n c^n, generalisation beyond training n")
def run_anbncn(config: ExperimentConfig) -> ExperimentResult:
    return _run(config, with_c=True)
