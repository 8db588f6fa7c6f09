"""Echo state networks against reservoirpy (benchmark-only comparison): Mackey-Glass
one-step prediction.

Task: the tau = 17 Mackey-Glass series (RK4, one sample per time unit) squashed by
s = tanh(x - 1); input s_t, target s_{t+1}; 2,000 training steps (the first 100 left out of
the regression) and 1,000 test steps that continue the training sequence. Both libraries
get the same reservoir: rnnlab draws W (connectivity 0.1, spectral radius 0.9), W_in
(uniform in [-1, 1]) and the bias (uniform in [-0.2, 0.2]); reservoirpy's ``Reservoir``
receives them (W as a SciPy CSR matrix, its own representation of sparse reservoirs), leak
rate 0.3, and its ``Ridge(ridge=1e-6)`` readout with an unpenalised bias, as rnnlab's.

Timed, as the median of 5 alternating runs (after one warm-up round): "fit" = drive the
reservoir over the training inputs and solve the readout (reservoirpy: ``Reservoir.run``
+ ``Ridge.fit``; rnnlab: ``EchoStateNetwork.fit``); "test" = drive over the test inputs
and read out. Weight creation is not timed. One thread each: ``torch.set_num_threads(1)``,
and NumPy/SciPy's BLAS limited to one thread with threadpoolctl when it is installed.
rnnlab runs in float64 (reservoirpy's dtype) and in float32 (rnnlab's default; the readout
sums are float64 in both). The test NRMSE (norm "std") of each is printed beside the
times.

A second table: the same task as a batch of 32 sequences (32 stretches of the series, each
500 training and 250 test steps), which rnnlab drives as one (B, T, F) batch and
reservoirpy as a list of series (its ``run``/``fit`` on a list, one after the other).
"""

from __future__ import annotations

import contextlib
import time

import numpy as np
import torch

from rnnlab._threads import torch_threads
from rnnlab.esn import EchoStateNetwork, nrmse
from rnnlab.tasks.mackey_glass import mackey_glass, squash

LEAK, RHO, RIDGE, CONNECTIVITY = 0.3, 0.9, 1e-6, 0.1
N_TRAIN, N_TEST, WASHOUT = 2000, 1000, 100


def _blas_one_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _series():
    s = squash(mackey_glass(N_TRAIN + N_TEST + 1))
    u, y = s[:-1, None], s[1:, None]  # (T, 1): input s_t, target s_{t+1}
    return u[:N_TRAIN], y[:N_TRAIN], u[N_TRAIN:], y[N_TRAIN:]


def _measure(rpy_nodes, N: int, repeat: int) -> dict:
    import scipy.sparse as sp

    Reservoir, Ridge = rpy_nodes
    u_tr, y_tr, u_te, y_te = _series()
    ours = EchoStateNetwork(
        1, N, 1, spectral_radius=RHO, leak_rate=LEAK, input_scaling=1.0, bias_scaling=0.2,
        connectivity=CONNECTIVITY, ridge=RIDGE, seed=N, dtype=torch.float64,
    )  # fmt: skip
    ours32 = EchoStateNetwork(
        1, N, 1, spectral_radius=RHO, leak_rate=LEAK, input_scaling=1.0, bias_scaling=0.2,
        connectivity=CONNECTIVITY, ridge=RIDGE, seed=N, dtype=torch.float32,
    )  # fmt: skip
    W = sp.csr_matrix(ours.weight_hh.numpy())
    W_in, b = ours.weight_ih.numpy(), ours.bias.numpy()
    U_tr, Y_tr, U_te = u_tr.numpy(), y_tr.numpy(), u_te.numpy()
    u_tr32, y_tr32, u_te32 = u_tr.float(), y_tr.float(), u_te.float()

    def rpy_run():
        res = Reservoir(W=W, Win=W_in, bias=b, lr=LEAK)
        ro = Ridge(ridge=RIDGE)
        t0 = time.perf_counter()
        S = res.run(U_tr)
        ro.fit(S, Y_tr, warmup=WASHOUT)
        t1 = time.perf_counter()
        pred = ro.run(res.run(U_te))
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, pred

    def ours_run(esn, u, y, ut):
        t0 = time.perf_counter()
        esn.fit(u, y, washout=WASHOUT)
        t1 = time.perf_counter()
        pred = esn.predict(ut)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, pred

    runs = {"rpy": [], "f64": [], "f32": []}
    preds = {}
    for k in range(repeat + 1):  # alternating; the first round warms up
        for name, fn in (
            ("rpy", rpy_run),
            ("f64", lambda: ours_run(ours, u_tr, y_tr, u_te)),
            ("f32", lambda: ours_run(ours32, u_tr32, y_tr32, u_te32)),
        ):
            t_fit, t_test, pred = fn()
            if k:
                runs[name].append((t_fit, t_test))
            preds[name] = pred

    def med(name, i):
        v = sorted(r[i] for r in runs[name])
        return v[len(v) // 2]

    err = {
        "rpy": nrmse(torch.from_numpy(np.asarray(preds["rpy"])), y_te),
        "f64": nrmse(preds["f64"], y_te),
        "f32": nrmse(preds["f32"].double(), y_te),
    }
    row = {"N": N}
    for name in runs:
        row[f"fit_{name}_s"], row[f"test_{name}_s"] = med(name, 0), med(name, 1)
        row[f"nrmse_{name}"] = err[name]
    for name in ("f64", "f32"):
        row[f"fit_ratio_{name}"] = row["fit_rpy_s"] / row[f"fit_{name}_s"]
        row[f"test_ratio_{name}"] = row["test_rpy_s"] / row[f"test_{name}_s"]
        total_rpy = row["fit_rpy_s"] + row["test_rpy_s"]
        row[f"total_ratio_{name}"] = total_rpy / (row[f"fit_{name}_s"] + row[f"test_{name}_s"])
    row["max_abs_diff_pred_f64"] = float(
        np.abs(np.asarray(preds["rpy"]) - preds["f64"].numpy()).max()
    )
    return row


def _measure_batch(rpy_nodes, N: int, B: int, repeat: int) -> dict:
    import scipy.sparse as sp

    Reservoir, Ridge = rpy_nodes
    T_tr, T_te = 500, 250
    s = squash(mackey_glass(B * 50 + T_tr + T_te + 1))
    seqs = torch.stack([s[50 * b : 50 * b + T_tr + T_te + 1] for b in range(B)])  # (B, T + 1)
    u, y = seqs[:, :-1, None], seqs[:, 1:, None]  # (B, T, 1)
    u_tr, y_tr, u_te, y_te = u[:, :T_tr], y[:, :T_tr], u[:, T_tr:], y[:, T_tr:]
    esn = EchoStateNetwork(
        1, N, 1, spectral_radius=RHO, leak_rate=LEAK, input_scaling=1.0, bias_scaling=0.2,
        connectivity=CONNECTIVITY, ridge=RIDGE, seed=N, dtype=torch.float32,
    )  # fmt: skip
    W = sp.csr_matrix(esn.weight_hh.double().numpy())
    W_in, bias = esn.weight_ih.double().numpy(), esn.bias.double().numpy()
    U_tr = [a.numpy() for a in u_tr]
    Y_tr = [a.numpy() for a in y_tr]
    U_te = [a.numpy() for a in u_te]
    u_tr32, y_tr32, u_te32 = u_tr.float(), y_tr.float(), u_te.float()

    def rpy_run():
        res = Reservoir(W=W, Win=W_in, bias=bias, lr=LEAK)
        ro = Ridge(ridge=RIDGE)
        t0 = time.perf_counter()
        S = res.run(U_tr)  # list in: one series after the other, from one state
        ro.fit(S, Y_tr, warmup=WASHOUT)
        t1 = time.perf_counter()
        pred = np.stack([ro.run(p) for p in res.run(U_te)])
        return t1 - t0, time.perf_counter() - t1, pred

    def ours_run():
        t0 = time.perf_counter()
        esn.fit(u_tr32, y_tr32, washout=WASHOUT)
        t1 = time.perf_counter()
        pred = esn.predict(u_te32)
        return t1 - t0, time.perf_counter() - t1, pred

    runs: dict[str, list] = {"rpy": [], "f32": []}
    preds = {}
    for k in range(repeat + 1):
        for name, fn in (("rpy", rpy_run), ("f32", ours_run)):
            t_fit, t_test, pred = fn()
            if k:
                runs[name].append(t_fit + t_test)
            preds[name] = pred

    def med(name):
        v = sorted(runs[name])
        return v[len(v) // 2]

    return {
        "N": N,
        "B": B,
        "total_rpy_s": med("rpy"),
        "total_f32_s": med("f32"),
        "ratio_f32": med("rpy") / med("f32"),
        # scored after 100 test steps: reservoirpy starts every test series from the state
        # its previous run ended in (the last training series), rnnlab each from its own
        "nrmse_rpy": nrmse(torch.from_numpy(preds["rpy"])[:, 100:], y_te[:, 100:]),
        "nrmse_f32": nrmse(preds["f32"].double()[:, 100:], y_te[:, 100:]),
    }


def main(quick: bool = False) -> dict:
    """Print and return the timing table (ratios reservoirpy / rnnlab, measured in this run)."""
    try:
        from reservoirpy.nodes import Reservoir, Ridge
    except ImportError as e:  # benchmark-only dependency
        raise ImportError("the esn benchmark needs reservoirpy: pip install reservoirpy") from e

    sizes = [100, 300] if quick else [100, 1000, 3000]
    repeat = 1 if quick else 5
    with torch_threads(1), _blas_one_thread():
        rows = [_measure((Reservoir, Ridge), N, repeat) for N in sizes]
        batch_rows = [
            _measure_batch((Reservoir, Ridge), N, 32, repeat)
            for N in ([100] if quick else [100, 1000])
        ]
    print(
        "ESN, Mackey-Glass one-step (2,000 train / 1,000 test steps, leak 0.3, radius 0.9, "
        "ridge 1e-6, connectivity 0.1), same weights, 1 thread"
    )
    print("ratio = reservoirpy seconds / rnnlab seconds (higher is better for rnnlab)")
    head = (
        f"{'N':>5} {'rpy fit':>8} {'f64 fit':>8} {'f32 fit':>8} {'rpy test':>9} "
        f"{'f64 test':>9} {'f32 test':>9} {'x f64':>6} {'x f32':>6} "
        f"{'NRMSE rpy':>10} {'NRMSE f64':>10} {'NRMSE f32':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['N']:>5} {r['fit_rpy_s']:>8.3f} {r['fit_f64_s']:>8.3f} {r['fit_f32_s']:>8.3f} "
            f"{r['test_rpy_s']:>9.3f} {r['test_f64_s']:>9.3f} {r['test_f32_s']:>9.3f} "
            f"{r['total_ratio_f64']:>6.2f} {r['total_ratio_f32']:>6.2f} "
            f"{r['nrmse_rpy']:>10.2e} {r['nrmse_f64']:>10.2e} {r['nrmse_f32']:>10.2e}"
        )
    print("x f64 / x f32: (fit + test) time ratio. Same weights: max |prediction difference| "
          "reservoirpy vs rnnlab float64: "
          + ", ".join(f"N={r['N']}: {r['max_abs_diff_pred_f64']:.1e}" for r in rows))  # fmt: skip
    print()
    print(
        "Batch of 32 sequences (500 train / 250 test steps each, NRMSE after 100 test steps), "
        "rnnlab float32, 1 thread; seconds = fit + test"
    )
    head = (
        f"{'N':>5} {'reservoirpy s':>13} {'rnnlab s':>9} {'ratio':>6} {'NRMSE rpy':>10} "
        f"{'NRMSE ours':>10}"
    )
    print(head)
    print("-" * len(head))
    for r in batch_rows:
        print(
            f"{r['N']:>5} {r['total_rpy_s']:>13.3f} {r['total_f32_s']:>9.3f} "
            f"{r['ratio_f32']:>6.2f} {r['nrmse_rpy']:>10.2e} {r['nrmse_f32']:>10.2e}"
        )
    return {"rows": rows, "batch_rows": batch_rows}
