"""The Song, Miller & Abbott (2000) STDP network in rnnlab and in Brian2 (benchmark only).

One conductance-based LIF neuron driven by N = 1000 Poisson inputs at 15 Hz through
additive STDP synapses, with the parameters of Brian2's own example of this network
(``examples/synapses/STDP.py``: tau_m = 10 ms, E_L = -74 mV, V_th = -54 mV, V_reset =
-60 mV, E_e = 0 mV, tau_e = 5 ms, g_max = 0.01, A+ = 0.01 g_max, A- = 1.05 A+, tau+ =
tau- = 20 ms, initial weights uniform in [0, g_max]), dt = 0.1 ms. Brian2 integrates the
membrane with its ``exponential_euler`` method, which is the step of
:func:`rnnlab.spiking.neurons.lif_conductance_step`; its traces are event-driven (exact).

Brian2 runs with its numpy code-generation target (nothing compiled) in a subprocess of
the interpreter of its own environment (``make brian2-env`` creates ``.venv-brian2``
with brian2 and numpy<2; or set ``RNNLAB_BRIAN2_PYTHON``). rnnlab runs the same network
with ``simulate(..., engine="window")`` and, for reference, the step-by-step clock engine
on a tenth of the duration. One Brian2 run, then the rnnlab run (same process tree); the
table gives wall-clock seconds of the simulation loop and the ratio. The two final
weight distributions (different random streams) are compared by their histograms, the
fractions near each bound, and the two-sample Kolmogorov-Smirnov statistic with its
p-value (a p-value above 0.05: no detectable difference).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from rnnlab._threads import torch_threads

PARAMS = {
    "N": 1000,
    "rate": 15.0,
    "tau_m": 10.0,
    "v_rest": -74.0,
    "v_threshold": -54.0,
    "v_reset": -60.0,
    "e_exc": 0.0,
    "tau_exc": 5.0,
    "gmax": 0.01,
    "a_plus": 0.01,  # times gmax
    "ratio": 1.05,
    "tau_plus": 20.0,
    "tau_minus": 20.0,
    "dt": 0.1,
}

BRIAN2_SCRIPT = r"""
import json, sys, time
import numpy as np
from brian2 import (ms, mV, Hz, second, PoissonGroup, NeuronGroup, Synapses, SpikeMonitor,
                    defaultclock, prefs, run, seed)
p = json.loads(sys.argv[1])
prefs.codegen.target = "numpy"
seed(p["seed"])
defaultclock.dt = p["dt"] * ms
taum = p["tau_m"] * ms; El = p["v_rest"] * mV; vt = p["v_threshold"] * mV
vr = p["v_reset"] * mV; Ee = p["e_exc"] * mV; taue = p["tau_exc"] * ms
taupre = p["tau_plus"] * ms; taupost = p["tau_minus"] * ms
gmax = p["gmax"]; dApre = p["a_plus"] * gmax; dApost = -dApre * p["ratio"]
inp = PoissonGroup(p["N"], rates=p["rate"] * Hz)
neuron = NeuronGroup(1, '''dv/dt = (ge * (Ee - v) + El - v) / taum : volt
dge/dt = -ge / taue : 1''', threshold="v > vt", reset="v = vr",
                     method="exponential_euler")
neuron.v = El
S = Synapses(inp, neuron, '''w : 1
dApre/dt = -Apre / taupre : 1 (event-driven)
dApost/dt = -Apost / taupost : 1 (event-driven)''',
             on_pre='''ge += w
Apre += dApre
w = clip(w + Apost, 0, gmax)''',
             on_post='''Apost += dApost
w = clip(w + Apre, 0, gmax)''')
S.connect()
S.w = "rand() * gmax"
mon = SpikeMonitor(neuron)
run(10 * ms)  # code objects created and cached before the timed run
t0 = time.perf_counter()
run(p["duration"] * ms)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "spikes": int(mon.num_spikes),
                  "weights": [float(x) for x in np.asarray(S.w[:])]}))
"""


def brian2_python() -> Path | None:
    """The interpreter of the Brian2 environment, or None when there is none."""
    env = os.environ.get("RNNLAB_BRIAN2_PYTHON")
    candidates = [Path(env)] if env else []
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidates.append(root / ".venv-brian2" / "bin" / "python")
    for c in candidates:
        if c.exists():
            return c
    return None


def run_brian2(python: Path, duration_ms: float, seed: int) -> dict:
    """Run the network in Brian2 (numpy target); returns wall_s, spikes, weights."""
    params = dict(PARAMS, duration=duration_ms, seed=seed)
    out = subprocess.run(
        [str(python), "-c", BRIAN2_SCRIPT, json.dumps(params)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    )
    if out.returncode != 0:
        raise RuntimeError(f"Brian2 run failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_rnnlab(duration_ms: float, seed: int, engine: str = "window") -> dict:
    """Run the network in rnnlab; returns wall_s, spikes, weights (float64 as Brian2)."""
    from rnnlab.spiking import LIF, STDP, Connection, Network, PoissonInput, simulate

    p = PARAMS
    dtype = torch.float64
    lif = LIF(
        1,
        tau_m=p["tau_m"],
        v_rest=p["v_rest"],
        v_reset=p["v_reset"],
        v_threshold=p["v_threshold"],
        dt=p["dt"],
        synapse="conductance",
        tau_exc=p["tau_exc"],
        e_exc=p["e_exc"],
        dtype=dtype,
    )
    gmax = p["gmax"]
    rule = STDP(
        p["a_plus"] * gmax,
        p["a_plus"] * gmax * p["ratio"],
        p["tau_plus"],
        p["tau_minus"],
        w_min=0.0,
        w_max=gmax,
    )
    g = torch.Generator().manual_seed(seed)
    w0 = torch.rand(p["N"], 1, generator=g, dtype=dtype) * gmax
    net = Network(
        {"input": p["N"]}, {"out": lif}, [Connection("input", "out", w0, plasticity=rule)]
    )
    src = PoissonInput(torch.full((p["N"],), p["rate"], dtype=dtype), dt=p["dt"], seed=seed + 1)
    steps = int(round(duration_ms / p["dt"]))
    t0 = time.perf_counter()
    res = simulate(net, {"input": src}, steps, record=(), engine=engine)
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "spikes": int(res.counts["out"].sum()),
        "weights": net.connections[0].weight[:, 0].tolist(),
    }


def ks_2samp(a: list[float], b: list[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value."""
    xa, xb = sorted(a), sorted(b)
    na, nb = len(xa), len(xb)
    grid = sorted(set(xa) | set(xb))
    import bisect

    d = max(abs(bisect.bisect_right(xa, x) / na - bisect.bisect_right(xb, x) / nb) for x in grid)
    try:
        from scipy.stats import ks_2samp as scipy_ks

        return d, float(scipy_ks(a, b).pvalue)
    except ImportError:  # pragma: no cover - the asymptotic Kolmogorov distribution
        en = math.sqrt(na * nb / (na + nb))
        lam = (en + 0.12 + 0.11 / en) * d
        p = 2 * sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
        return d, min(max(p, 0.0), 1.0)


def histogram(w: list[float], gmax: float, bins: int = 10) -> list[float]:
    """Fraction of weights in each of ``bins`` equal bins of [0, gmax]."""
    counts = [0] * bins
    for x in w:
        counts[min(bins - 1, max(0, int(x / gmax * bins)))] += 1
    return [c / len(w) for c in counts]


def main(quick: bool = False) -> dict:
    """Print and return the comparison (ratio = Brian2 seconds / rnnlab seconds)."""
    python = brian2_python()
    if python is None:
        msg = (
            "the spiking benchmark needs Brian2 in its own environment: run `make brian2-env` "
            "(creates .venv-brian2 with brian2 and numpy<2) or set RNNLAB_BRIAN2_PYTHON"
        )
        print(msg)
        return {"skipped": msg}
    duration = 10_000.0 if quick else 100_000.0
    rounds = 1  # Brian2 takes minutes per 100 s simulated: one alternation
    b_runs, r_runs = [], []
    with torch_threads(1):
        for k in range(rounds):  # alternate the two
            b_runs.append(run_brian2(python, duration, seed=k))
            r_runs.append(run_rnnlab(duration, seed=k))
        clock = run_rnnlab(duration / 10, seed=0, engine="clock")
    gmax = PARAMS["gmax"]
    t_b = sorted(r["wall_s"] for r in b_runs)[len(b_runs) // 2]
    t_r = sorted(r["wall_s"] for r in r_runs)[len(r_runs) // 2]
    wb, wr = b_runs[0]["weights"], r_runs[0]["weights"]
    d, p = ks_2samp(wb, wr)

    def near(w, lo):
        return sum((x < 0.1 * gmax) if lo else (x > 0.9 * gmax) for x in w) / len(w)

    rec = {
        "duration_s": duration / 1000,
        "brian2_numpy_s": t_b,
        "rnnlab_window_s": t_r,
        "rnnlab_clock_s_per_sim_s": clock["wall_s"] / (duration / 10_000),
        "ratio": t_b / t_r,
        "ks_statistic": d,
        "ks_pvalue": p,
        "brian2_rate_hz": b_runs[0]["spikes"] / (duration / 1000),
        "rnnlab_rate_hz": r_runs[0]["spikes"] / (duration / 1000),
        "brian2_near_0": near(wb, True),
        "brian2_near_gmax": near(wb, False),
        "rnnlab_near_0": near(wr, True),
        "rnnlab_near_gmax": near(wr, False),
        "brian2_hist": histogram(wb, gmax),
        "rnnlab_hist": histogram(wr, gmax),
    }
    print(
        f"Song et al. 2000 STDP network (N = 1000 inputs at 15 Hz, dt = 0.1 ms, "
        f"{duration / 1000:g} s simulated, 1 thread), {rounds} run(s) each, alternating"
    )
    print("ratio = Brian2 seconds / rnnlab seconds (higher is better for rnnlab)")
    head = f"{'':>24} {'seconds':>9} {'rate (Hz)':>10} {'w<0.1gmax':>10} {'w>0.9gmax':>10}"
    print(head)
    print("-" * len(head))
    print(
        f"{'Brian2 numpy target':>24} {t_b:>9.2f} {rec['brian2_rate_hz']:>10.2f} "
        f"{rec['brian2_near_0']:>10.3f} {rec['brian2_near_gmax']:>10.3f}"
    )
    print(
        f"{'rnnlab engine=window':>24} {t_r:>9.2f} {rec['rnnlab_rate_hz']:>10.2f} "
        f"{rec['rnnlab_near_0']:>10.3f} {rec['rnnlab_near_gmax']:>10.3f}"
    )
    print(f"ratio Brian2 / rnnlab: {rec['ratio']:.1f}")
    print(
        f"rnnlab engine=clock (the reference loop): {rec['rnnlab_clock_s_per_sim_s']:.2f} s "
        "per simulated second"
    )
    print(
        "final weights/gmax histograms (10 bins): Brian2 "
        + " ".join(f"{x:.2f}" for x in rec["brian2_hist"])
        + " | rnnlab "
        + " ".join(f"{x:.2f}" for x in rec["rnnlab_hist"])
    )
    print(f"Kolmogorov-Smirnov distance {d:.3f}, p-value {p:.3f}")
    sys.stdout.flush()
    return rec
