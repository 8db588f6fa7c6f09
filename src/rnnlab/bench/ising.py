"""Ising samplers: spin updates per second of each of rnnlab's samplers against what a user
would otherwise write, NumPy.

What is compared, on the periodic L x L square lattice (J = 1, no field) at T_c:

- Metropolis and heat bath: ``IsingModel.sample`` (checkerboard sweeps batched over
  chains, energy and magnetisation recorded after every sweep, float32) against a NumPy
  checkerboard sweep with ``np.roll`` (the vectorised textbook version, float64, nothing
  recorded), on the same number of chains;
- Wolff: ``IsingModel.sample(method="wolff")`` against the textbook sequential cluster
  growth with a stack in Python/NumPy, one chain each, and rnnlab batched over chains.

A spin update is one spin offered one update (N per sweep and chain); for Wolff it is one
spin flipped in a cluster (cluster sizes summed). Runs alternate between the two sides
and the median of the repeats is reported; one torch thread.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from rnnlab._threads import torch_threads
from rnnlab.energy.ising import CRITICAL_TEMPERATURE, IsingModel


def numpy_checkerboard_sweep(s: np.ndarray, beta: float, rng, method: str) -> np.ndarray:
    """One checkerboard sweep of s (C, L, L) in NumPy (the reference implementation)."""
    L = s.shape[-1]
    parity = (np.add.outer(np.arange(L), np.arange(L)) % 2).astype(bool)
    for mask in (parity, ~parity):
        nb = np.roll(s, 1, 1) + np.roll(s, -1, 1) + np.roll(s, 1, 2) + np.roll(s, -1, 2)
        u = rng.random(s.shape)
        if method == "metropolis":
            flip = (u < np.exp(-2.0 * beta * s * nb)) & mask
            s = np.where(flip, -s, s)
        else:
            up = u < 1.0 / (1.0 + np.exp(-2.0 * beta * nb))
            s = np.where(mask, np.where(up, 1.0, -1.0), s)
    return s


def numpy_wolff_step(s: np.ndarray, beta: float, rng) -> int:
    """One sequential Wolff cluster flip of s (L, L) in place; returns the cluster size."""
    L = s.shape[0]
    p = 1.0 - np.exp(-2.0 * beta)
    i, j = int(rng.integers(L)), int(rng.integers(L))
    sigma = s[i, j]
    s[i, j] = -sigma
    stack, size = [(i, j)], 1
    while stack:
        i, j = stack.pop()
        for a, b in (((i + 1) % L, j), ((i - 1) % L, j), (i, (j + 1) % L), (i, (j - 1) % L)):
            if s[a, b] == sigma and rng.random() < p:
                s[a, b] = -sigma
                stack.append((a, b))
                size += 1
    return size


def _ours(L: int, chains: int, method: str, sweeps: int, seed: int) -> tuple[float, int]:
    model = IsingModel((L, L))
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    run = model.sample(CRITICAL_TEMPERATURE, sweeps, chains=chains, method=method,
                       generator=g, initial="up")  # fmt: skip
    dt = time.perf_counter() - t0
    if method == "wolff":  # |Delta M| = 2 x the cluster size; the first flip from all up
        m = torch.cat([torch.ones(chains, 1), run.magnetization], 1)
        updates = int(round(float((m.diff(dim=1).abs() * L * L / 2).sum())))
    else:
        updates = L * L * chains * sweeps
    return dt, updates


def _theirs(L: int, chains: int, method: str, sweeps: int, seed: int) -> tuple[float, int]:
    rng = np.random.default_rng(seed)
    beta = 1.0 / CRITICAL_TEMPERATURE
    if method == "wolff":
        s = np.ones((L, L))
        t0 = time.perf_counter()
        updates = sum(numpy_wolff_step(s, beta, rng) for _ in range(sweeps))
        return time.perf_counter() - t0, updates
    s = np.ones((chains, L, L))
    t0 = time.perf_counter()
    for _ in range(sweeps):
        s = numpy_checkerboard_sweep(s, beta, rng, method)
    return time.perf_counter() - t0, L * L * chains * sweeps


def _measure(L, chains, method, sweeps, repeat) -> dict:
    ours, theirs = [], []
    for k in range(repeat):  # alternate the two sides
        dt, n = _ours(L, chains, method, sweeps, seed=k)
        ours.append(n / dt)
        if method != "wolff" or chains == 1:
            dt, n = _theirs(L, chains, method, sweeps, seed=k)
            theirs.append(n / dt)
    ours.sort()
    theirs.sort()
    row = {"L": L, "chains": chains, "method": method, "sweeps": sweeps,
           "rnnlab_updates_per_s": ours[len(ours) // 2]}  # fmt: skip
    if theirs:
        row["numpy_updates_per_s"] = theirs[len(theirs) // 2]
        row["ratio"] = row["rnnlab_updates_per_s"] / row["numpy_updates_per_s"]
    return row


def main(quick: bool = False) -> dict:
    """Print and return spin updates per second (rnnlab and NumPy, measured in this run)."""
    repeat = 2 if quick else 5
    cases = [
        (16, 1, "metropolis", 200),
        (64, 1, "metropolis", 100),
        (64, 64, "metropolis", 20),
        (64, 1, "heat_bath", 100),
        (64, 64, "heat_bath", 20),
        (16, 1, "wolff", 200),
        (64, 1, "wolff", 40),
        (64, 64, "wolff", 10),
    ]
    if quick:
        cases = [(L, C, m, max(2, s // 10)) for L, C, m, s in cases if L == 16 or C == 1]
    with torch_threads(1):
        rows = [_measure(L, C, m, s, repeat) for L, C, m, s in cases]
    print("Ising samplers at T_c, periodic L x L, 1 torch thread: spin updates per second")
    print("ratio = rnnlab / NumPy (higher is better for rnnlab)")
    head = f"{'sampler':<11} {'L':>4} {'chains':>6} {'rnnlab':>10} {'NumPy':>10} {'ratio':>6}"
    print(head)
    print("-" * len(head))
    for r in rows:
        theirs = f"{r['numpy_updates_per_s'] / 1e6:>9.2f}M" if "ratio" in r else f"{'-':>10}"
        ratio = f"{r['ratio']:>6.1f}" if "ratio" in r else f"{'-':>6}"
        print(
            f"{r['method']:<11} {r['L']:>4} {r['chains']:>6} "
            f"{r['rnnlab_updates_per_s'] / 1e6:>9.2f}M {theirs} {ratio}"
        )
    print("NumPy side: checkerboard np.roll sweeps (float64) on the same chains; for Wolff the")
    print("sequential stack-based cluster growth of one chain (no batched NumPy version).")
    return {"rows": rows}
