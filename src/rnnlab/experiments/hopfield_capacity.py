"""``rnnlab reproduce hopfield-capacity``: the storage capacity of Hopfield networks.

Random patterns (independent fair +-1 units) are stored with Hebb's rule and with
Storkey's (1997) rule in a network of N units; each stored pattern is then the start of an
asynchronous recall (a fresh random order of the units each sweep, until a fixed point),
and the recall error is the fraction of bits of the end state that differ from the pattern.
Published references:

- Amit, Gutfreund & Sompolinsky (1985): for Hebbian storage in the limit N -> infinity,
  recall fails abruptly at the load alpha = P/N ~ 0.138; just below it the retrieval state
  has overlap m = 0.967 with the pattern (1.7 % of the bits wrong); above it the error
  jumps to tens of per cent.
- McEliece, Posner, Rodemich & Venkatesh (1987): a stored pattern is a fixed point (recall
  without error) with probability tending to 1 for P < N / (2 ln N) (all P of them at once
  for P < N / (4 ln N)). The check here: at least 80 % of the patterns recalled exactly
  at every P <= N / (2 ln N).
- Storkey (1997): his rule stores about N / sqrt(2 ln N) patterns.

Plus pictures: 8x8 digits from scikit-learn's bundled ``load_digits`` (read from the
installed package, nothing downloaded), binarised, stored, corrupted and recalled.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from rnnlab._threads import torch_threads
from rnnlab.energy.hopfield import Hopfield
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register

ALPHA_C = 0.138  # Amit, Gutfreund & Sompolinsky 1985
ERROR_AT_ALPHA_C = (1 - 0.967) / 2  # the retrieval state's bit error just below alpha_c
DIGITS = (0, 1, 3, 4, 7)  # the stored digit classes in the pictures


def _gaussian_tail(x: float) -> float:
    return 0.5 * math.erfc(x / math.sqrt(2.0))


def predicted_exact_recall(n: int, p: int) -> float:
    """Probability that a stored pattern is a fixed point under Hebb's rule in the Gaussian
    approximation of the crosstalk: each unit's aligned field (n - 1)/n + noise of variance
    (p - 1)(n - 1)/n^2 must stay positive, independently for the n units."""
    if p <= 1:
        return 1.0
    z = (n - 1) / math.sqrt((p - 1) * (n - 1))
    return (1.0 - _gaussian_tail(z)) ** n


def measure(n: int, loads: list[int], rule: str, trials: int, gen: torch.Generator) -> list[dict]:
    """For each number of patterns P in ``loads``: the mean bit error of recall started at
    the stored patterns, the fraction recalled exactly, and the fraction that are fixed
    points, averaged over ``trials`` networks."""
    rows = []
    for p in loads:
        err, exact, fixed, sweeps = [], [], [], []
        for _ in range(trials):
            x = torch.where(torch.rand(p, n, generator=gen, dtype=torch.float64) < 0.5, 1.0, -1.0)
            x = x.to(torch.float64)
            net = Hopfield(n, dtype=torch.float64).store(x, rule=rule)
            field = x @ net.weight.T
            fixed.append(float(((field * x) > 0).all(-1).double().mean()))
            r = net.recall(x, max_sweeps=100, generator=gen)
            wrong = (r.states != x).double().mean(-1)  # (P,)
            err.append(float(wrong.mean()))
            exact.append(float((wrong == 0).double().mean()))
            sweeps.append(float(r.sweeps.double().mean()))
        rows.append(
            {
                "patterns": p,
                "alpha": p / n,
                "bit_error": float(np.mean(err)),
                "exact_recall": float(np.mean(exact)),
                "fixed_points": float(np.mean(fixed)),
                "sweeps": float(np.mean(sweeps)),
            }
        )
    return rows


def load_binary_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits as (1797, 64) arrays in {-1, +1} (pixel > 7) and
    their labels; ImportError when scikit-learn is not installed."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return np.where(data.data > 7, 1.0, -1.0), data.target


def digit_pictures(gen: torch.Generator, flip: float) -> dict:
    """Store one prototype per class in DIGITS (the class mean, binarised), corrupt each by
    flipping a fraction ``flip`` of the pixels, recall with both rules."""
    images, labels = load_binary_digits()
    protos = np.stack([np.where(images[labels == d].mean(0) > 0, 1.0, -1.0) for d in DIGITS])
    x = torch.tensor(protos, dtype=torch.float64)  # (K, 64)
    k = max(1, round(flip * 64))
    noisy = x.clone()
    for row in noisy:
        idx = torch.randperm(64, generator=gen)[:k]
        row[idx] *= -1
    out = {"stored": x, "corrupted": noisy}
    for rule in ("hebb", "storkey"):
        net = Hopfield(64, dtype=torch.float64).store(x, rule=rule)
        out[rule] = net.recall(noisy, generator=gen).states
    return out


def _first_crossing(rows: list[dict], level: float) -> float | None:
    """The load at which the bit error first exceeds ``level`` (linear interpolation)."""
    for a, b in zip(rows, rows[1:]):
        if a["bit_error"] <= level < b["bit_error"]:
            t = (level - a["bit_error"]) / (b["bit_error"] - a["bit_error"])
            return a["alpha"] + t * (b["alpha"] - a["alpha"])
    return None


@register("hopfield-capacity", "Hebbian and Storkey Hopfield nets: recall error against load")
def run(config: ExperimentConfig) -> ExperimentResult:
    with torch_threads(1):
        return _run(config)


def _run(config: ExperimentConfig) -> ExperimentResult:
    gen = torch.Generator().manual_seed(config.seed)
    n = 100 if config.quick else 400
    trials = 1 if config.quick else 3
    alphas = [0.02, 0.06, 0.10, 0.14, 0.18, 0.24] if config.quick else [
        0.01, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12, 0.13, 0.14, 0.15, 0.16, 0.18, 0.20, 0.22,
        0.25, 0.30, 0.40, 0.50,
    ]  # fmt: skip
    loads = sorted({max(1, round(a * n)) for a in alphas})
    hebb = measure(n, loads, "hebb", trials, gen)
    storkey = measure(n, loads, "storkey", trials, gen)
    mceliece = n / (2 * math.log(n))
    storkey_capacity = n / math.sqrt(2 * math.log(n))
    for r in hebb:
        r["predicted_exact_recall"] = predicted_exact_recall(n, r["patterns"])

    below_mce = [r for r in hebb if r["patterns"] <= mceliece]
    below_ac = [r for r in hebb if r["alpha"] <= 0.10]
    above_ac = [r for r in hebb if r["alpha"] >= 0.18]
    transition = _first_crossing(hebb, 0.05)
    storkey_at = {r["alpha"]: r for r in storkey}
    hebb_at = {r["alpha"]: r for r in hebb}
    a_cmp = max(a for a in storkey_at if a <= 0.2)
    checks = {
        "hebb_error_free_below_n_over_2ln_n": min(r["exact_recall"] for r in below_mce) >= 0.8,
        "hebb_error_below_alpha_0.1_under_1pct": max(r["bit_error"] for r in below_ac) < 0.01,
        "hebb_error_above_alpha_0.18_over_5pct": min(r["bit_error"] for r in above_ac) > 0.05,
        "hebb_transition_near_0.138": transition is not None and 0.11 <= transition <= 0.19,
        "storkey_better_at_alpha_0.2": storkey_at[a_cmp]["bit_error"] < 0.01
        and hebb_at[a_cmp]["bit_error"] > 0.05,
    }
    pictures = None
    try:
        pictures = digit_pictures(gen, flip=0.1)
    except ImportError:
        pass
    if pictures is not None:
        for rule in ("hebb", "storkey"):
            exact = (pictures[rule] == pictures["stored"]).all(-1)
            pictures[f"{rule}_exact"] = int(exact.sum())
        checks["digits_storkey_at_least_hebb"] = pictures["storkey_exact"] >= pictures["hebb_exact"]
    success = all(checks.values())

    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "hopfield_capacity_rows.json"
    rows_path.write_text(json.dumps({"hebb": hebb, "storkey": storkey}, indent=1))
    just_below = max((r for r in hebb if r["alpha"] <= ALPHA_C), key=lambda r: r["alpha"])
    metrics = {
        "units": n,
        "trials": trials,
        "hebb_transition_alpha": transition,
        "hebb_bit_error_just_below_alpha_c": just_below["bit_error"],
        "hebb_min_exact_recall_up_to_mceliece": min(r["exact_recall"] for r in below_mce),
        f"hebb_bit_error_at_alpha_{a_cmp:g}": hebb_at[a_cmp]["bit_error"],
        f"storkey_bit_error_at_alpha_{a_cmp:g}": storkey_at[a_cmp]["bit_error"],
        "checks": checks,
        "rows": str(rows_path),
    }
    if pictures is not None:
        metrics["digits_exact_recalls"] = {
            "hebb": pictures["hebb_exact"],
            "storkey": pictures["storkey_exact"],
            "stored": len(DIGITS),
        }
    published = {
        "hebb_transition_alpha": ALPHA_C,
        "hebb_bit_error_just_below_alpha_c": ERROR_AT_ALPHA_C,
        "mceliece_bound_patterns": mceliece,
        "storkey_capacity_patterns": storkey_capacity,
    }
    lines = [
        "# hopfield-capacity: recall error against load",
        "",
        f"N = {n} units, random fair patterns, {trials} network(s) per load; recall starts "
        "at each stored pattern and runs asynchronously (a fresh random order each sweep) "
        f"to a fixed point. Preset: {'quick' if config.quick else 'full'}, seed {config.seed}.",
        "",
        f"Published: recall collapses at alpha_c = {ALPHA_C} (Amit, Gutfreund & Sompolinsky "
        f"1985; bit error {ERROR_AT_ALPHA_C:.3f} just below it as N -> infinity); a stored "
        f"pattern is an exact fixed point with probability -> 1 for P < N/(2 ln N) = "
        f"{mceliece:.1f} (McEliece et al. 1987; all of them at once for P < N/(4 ln N)); "
        f"Storkey's rule holds about N/sqrt(2 ln N) = {storkey_capacity:.0f} patterns.",
        "",
        "| P | alpha | Hebb bit error | Hebb exact recall | predicted exact | Hebb fixed "
        "points | Storkey bit error | Storkey exact recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for h, s in zip(hebb, storkey):
        lines.append(
            f"| {h['patterns']} | {h['alpha']:.3f} | {h['bit_error']:.4f} | "
            f"{h['exact_recall']:.2f} | {h['predicted_exact_recall']:.2f} | "
            f"{h['fixed_points']:.2f} | {s['bit_error']:.4f} | {s['exact_recall']:.2f} |"
        )
    lines += [
        "",
        "Predicted exact: the probability that a pattern is a fixed point of Hebb's rule in "
        "the Gaussian approximation of the crosstalk (independent units).",
        "",
        "Per-load numbers: hopfield_capacity_rows.json. Hebb: the load at which the bit error "
        "first exceeds 5 %: "
        + (f"alpha = {transition:.3f}" if transition is not None else "not reached")
        + f" (published: {ALPHA_C} for N -> infinity; at finite N the transition is "
        "smoothed).",
        "",
        "| check | result |",
        "|---|---|",
    ]
    lines += [f"| {k} | {'pass' if v else 'FAIL'} |" for k, v in checks.items()]
    if pictures is not None:
        lines += [
            "",
            f"Digits: the binarised class means of {', '.join(map(str, DIGITS))} (64 units, "
            "strongly correlated patterns), 10 % of the pixels flipped: recalled exactly "
            f"{pictures['hebb_exact']}/{len(DIGITS)} with Hebb, {pictures['storkey_exact']}/"
            f"{len(DIGITS)} with Storkey (see hopfield_digits.png).",
        ]
    else:
        lines += ["", "Digits: scikit-learn is not installed; no pictures."]
    plots = _plot(Path(config.out), n, hebb, storkey, mceliece, storkey_capacity, pictures)
    return ExperimentResult(
        experiment="hopfield-capacity",
        success=success,
        metrics=metrics,
        published=published,
        report="\n".join(lines) + "\n",
        plots=plots,
    )


def _plot(out: Path, n, hebb, storkey, mceliece, storkey_capacity, pictures) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return []
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    a_h = [r["alpha"] for r in hebb]
    ax.plot(a_h, [r["bit_error"] for r in hebb], "o-", label="Hebb")
    ax.plot(a_h, [r["bit_error"] for r in storkey], "s-", label="Storkey")
    ax.axvline(ALPHA_C, color="k", ls="--", lw=1, label="alpha_c = 0.138")
    ax.axvline(mceliece / n, color="g", ls=":", lw=1, label="N / (2 ln N)")
    ax.axvline(storkey_capacity / n, color="C1", ls=":", lw=1, label="N / sqrt(2 ln N)")
    ax.set_xlabel("load alpha = P / N")
    ax.set_ylabel("bit error after recall")
    ax.set_title(f"Recall from the stored patterns, N = {n}")
    ax.legend(fontsize=8)
    bx.plot(a_h, [r["exact_recall"] for r in hebb], "o-", label="Hebb, measured")
    bx.plot(a_h, [r["predicted_exact_recall"] for r in hebb], "k--", label="Hebb, predicted")
    bx.plot(a_h, [r["exact_recall"] for r in storkey], "s-", label="Storkey, measured")
    bx.axvline(mceliece / n, color="g", ls=":", lw=1, label="N / (2 ln N)")
    bx.set_xlabel("load alpha = P / N")
    bx.set_ylabel("fraction of patterns recalled exactly")
    bx.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "hopfield_capacity.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    if pictures is not None:
        cols = ("stored", "corrupted", "hebb", "storkey")
        K = pictures["stored"].shape[0]
        fig, axes = plt.subplots(len(cols), K, figsize=(1.4 * K, 1.5 * len(cols)))
        for i, name in enumerate(cols):
            for j in range(K):
                axes[i, j].imshow(pictures[name][j].reshape(8, 8).numpy(), cmap="gray_r")
                axes[i, j].set_xticks([])
                axes[i, j].set_yticks([])
            axes[i, 0].set_ylabel(name, fontsize=9)
        fig.suptitle("8x8 digits: stored, 10 % corrupted, recalled (Hebb, Storkey)")
        fig.tight_layout()
        paths.append(out / "hopfield_digits.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
