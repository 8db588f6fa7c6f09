"""``rnnlab reproduce ising``: the 2-D Ising model on the square lattice (J = 1, no field,
periodic boundaries) against its exact solution.

1. Energy per spin and |m| against temperature (heat-bath checkerboard sweeps, one batched
   run with one temperature per chain) next to Onsager's (1944) exact energy and Yang's
   (1952) spontaneous magnetisation of the infinite lattice.
2. The specific heat per spin from the energy fluctuations, with its peak near T_c.
3. T_c from the crossing of the Binder cumulants U_L = 1 - <m^4> / (3 <m^2>^2) of two
   lattice sizes (Binder 1981), sampled with Wolff cluster flips; the error comes from a
   parametric bootstrap of the two curves' jackknife errors.

Error bars are jackknife errors over blocks of a few integrated autocorrelation times.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from rnnlab._threads import torch_threads
from rnnlab.energy.ising import (
    CRITICAL_TEMPERATURE,
    IsingModel,
    estimate_observables,
    onsager_energy,
    onsager_magnetization,
)
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register


def _scan(L, temps, chains, sweeps, burn_in, method, gen, initial="up"):
    """One batched run, ``chains`` chains per temperature; estimates per temperature."""
    model = IsingModel((L, L))
    t = torch.tensor(temps, dtype=torch.float32).repeat_interleave(chains)
    run = model.sample(t, sweeps, chains=len(t), method=method, burn_in=burn_in,
                       generator=gen, initial=initial)  # fmt: skip
    rows, unreliable = [], []
    for k, T in enumerate(temps):
        part = slice(k * chains, (k + 1) * chains)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = estimate_observables(
                run.energy[part], run.magnetization[part], T, L * L, symmetric=True
            )
        if caught:
            unreliable.append(T)
        rows.append({"T": T, "est": est})
    return rows, unreliable


def binder_crossing(temps, u_small, err_small, u_large, err_large, gen: np.random.Generator,
                    draws: int = 2000):  # fmt: skip
    """Temperature where D = U_large - U_small changes sign: the straight line through the
    two temperatures that bracket the first sign change (D is curved, so wider fits are
    biased), with half the central 68 % range of ``draws`` parametric bootstrap replicas."""
    t = np.asarray(temps, dtype=np.float64)
    d = np.asarray(u_large) - np.asarray(u_small)
    s = np.sqrt(np.asarray(err_small) ** 2 + np.asarray(err_large) ** 2)
    change = np.nonzero(np.diff(np.sign(d)) != 0)[0]
    k = int(change[0]) if change.size else int(np.argmin(np.abs(d)))
    k = min(k, len(t) - 2)

    def root(y):
        return t[k] + (t[k + 1] - t[k]) * y[k] / (y[k] - y[k + 1])

    best = root(d)
    reps = [root(d + s * gen.standard_normal(len(t))) for _ in range(draws)]
    lo, hi = np.percentile(reps, [15.87, 84.13])  # robust: replicas with nearly equal D
    return float(best), float((hi - lo) / 2)  # at both ends have a heavy-tailed root


@register("ising", "2-D Ising model: Onsager/Yang curves, specific heat, Binder-crossing T_c")
def run(config: ExperimentConfig) -> ExperimentResult:
    with torch_threads(1):
        return _run(config)


def _run(config: ExperimentConfig) -> ExperimentResult:
    gen = torch.Generator().manual_seed(config.seed)
    q = config.quick
    Tc = CRITICAL_TEMPERATURE
    # 1-2: curves on one lattice
    L_curve = 8 if q else 32
    temps = [round(x, 3) for x in np.linspace(1.0, 4.0, 7 if q else 21)]
    temps = sorted(set(temps) | ({2.2, 2.3, 2.4} if not q else set()))
    curve, unreliable = _scan(L_curve, temps, 1 if q else 2, 300 if q else 3000,
                              100 if q else 500, "heat_bath", gen)  # fmt: skip
    # 3: Binder cumulants of three sizes near T_c; crossings of consecutive sizes
    sizes = (4, 8) if q else (8, 16, 32)
    b_temps = (
        [round(x, 3) for x in np.linspace(2.15, 2.39, 5)]
        if q
        else [round(x, 3) for x in np.linspace(2.20, 2.32, 7)]
    )
    binder = {}
    for L in sizes:
        binder[L], unrel = _scan(L, b_temps, 4 if q else 6, 400 if q else 2000,
                                 50 if q else 200, "wolff", gen)  # fmt: skip
        unreliable += [f"L={L}, T={T}" for T in unrel]
    us = [[r["est"].binder.value for r in binder[L]] for L in sizes]
    es = [[r["est"].binder.error for r in binder[L]] for L in sizes]
    rng = np.random.default_rng(config.seed)
    crossings = [
        binder_crossing(b_temps, us[k], es[k], us[k + 1], es[k + 1], rng)
        for k in range(len(sizes) - 1)
    ]
    tc_est, tc_err = crossings[-1]  # the largest pair of sizes

    e_exact = onsager_energy(np.array(temps))
    m_exact = onsager_magnetization(np.array(temps))
    far = [i for i, T in enumerate(temps) if abs(T - Tc) > 0.3]
    low = [i for i, T in enumerate(temps) if T <= 2.0]
    e_dev = [abs(curve[i]["est"].energy.value - e_exact[i]) for i in far]
    e_tol = [max(0.01, 4 * curve[i]["est"].energy.error) for i in far]
    m_dev = [abs(curve[i]["est"].abs_magnetization.value - m_exact[i]) for i in low]
    m_tol = [max(0.01, 4 * curve[i]["est"].abs_magnetization.error) for i in low]
    c_vals = [r["est"].specific_heat.value for r in curve]
    t_peak = temps[int(np.argmax(c_vals))]
    checks = {
        "energy_matches_onsager_away_from_tc": all(d <= t for d, t in zip(e_dev, e_tol)),
        "abs_m_matches_yang_below_2": all(d <= t for d, t in zip(m_dev, m_tol)),
        "specific_heat_peak_near_tc": Tc - 0.1 <= t_peak <= Tc + 0.2,
        "binder_crossing_at_tc": abs(tc_est - Tc) <= max(3 * tc_err, 0.005 * Tc) and tc_err < 0.05,
    }
    success = all(checks.values())
    metrics = {
        "curve_lattice": L_curve,
        "binder_lattices": list(sizes),
        "tc_binder_crossing": tc_est,
        "tc_binder_crossing_error": tc_err,
        "binder_crossings": {
            f"{sizes[k]}-{sizes[k + 1]}": {"tc": c[0], "error": c[1]}
            for k, c in enumerate(crossings)
        },
        "specific_heat_peak_temperature": t_peak,
        "max_energy_deviation_away_from_tc": max(e_dev) if e_dev else None,
        "max_abs_m_deviation_below_2": max(m_dev) if m_dev else None,
        "checks": checks,
        "unreliable_error_bars": [str(x) for x in unreliable],
    }
    published = {"tc_binder_crossing": Tc, "specific_heat_peak_temperature": Tc}
    lines = [
        "# ising: the 2-D square-lattice Ising model against its exact solution",
        "",
        f"Preset: {'quick' if q else 'full'}, seed {config.seed}. J = 1, no field, periodic "
        f"boundaries, k_B = 1. Exact T_c = 2/ln(1+sqrt 2) = {Tc:.6f}.",
        "",
        f"## Energy and |m| per spin, {L_curve}x{L_curve}, heat-bath checkerboard sweeps",
        "",
        "| T | e | Onsager e | abs m | Yang m | C | chi = <M^2>/(N T) | tau (sweeps) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(curve):
        e = r["est"]
        lines.append(
            f"| {r['T']:.3f} | {e.energy.value:.4f} +- {e.energy.error:.4f} | {e_exact[i]:.4f} | "
            f"{e.abs_magnetization.value:.4f} +- {e.abs_magnetization.error:.4f} | "
            f"{m_exact[i]:.4f} | {e.specific_heat.value:.3f} +- {e.specific_heat.error:.3f} | "
            f"{e.susceptibility.value:.3g} | {e.tau:.1f} |"
        )
    lines += [
        "",
        f"Specific heat peak on this grid: T = {t_peak:.3f} (T_c = {Tc:.3f}; on a finite "
        "lattice the peak is rounded and shifted by O(1/L), Ferdinand & Fisher 1969).",
        "",
        f"## Binder cumulants, L = {', '.join(map(str, sizes))}, Wolff cluster flips",
        "",
        "| T | " + " | ".join(f"U_{L}" for L in sizes) + " |",
        "|---" * (len(sizes) + 1) + "|",
    ]
    for k, T in enumerate(b_temps):
        cells = " | ".join(f"{us[i][k]:.4f} +- {es[i][k]:.4f}" for i in range(len(sizes)))
        lines.append(f"| {T:.3f} | {cells} |")
    lines += [
        "",
        "Crossings (straight line through the two temperatures that bracket the sign change "
        "of U_L' - U_L, error from a parametric bootstrap of both curves):",
        "",
    ]
    for k, (tc_k, err_k) in enumerate(crossings):
        lines.append(
            f"- L = {sizes[k]} and {sizes[k + 1]}: T_c = {tc_k:.4f} +- {err_k:.4f} (deviation "
            f"{tc_k - Tc:+.4f}, {abs(tc_k - Tc) / max(err_k, 1e-12):.1f} sigma)"
        )
    lines += [
        "",
        f"Estimate: the crossing of the two largest sizes, T_c = {tc_est:.4f} +- {tc_err:.4f} "
        f"(exact {Tc:.4f}). Small lattices cross slightly away from T_c (corrections to "
        "scaling); the check allows 3 sigma or 0.5 % of T_c, whichever is larger.",
        "",
        "| check | result |",
        "|---|---|",
    ]
    lines += [f"| {k} | {'pass' if v else 'FAIL'} |" for k, v in checks.items()]
    if unreliable:
        lines += [
            "",
            "Runs shorter than 50 autocorrelation times (error bars less reliable): "
            + ", ".join(str(x) for x in unreliable)
            + ". Near T_c the heat-bath sweeps slow down critically (tau grows like L^2.2).",
        ]
    plots = _plot(Path(config.out), L_curve, curve, temps, sizes, b_temps, us, es, tc_est, tc_err)
    return ExperimentResult(
        experiment="ising",
        success=success,
        metrics=metrics,
        published=published,
        report="\n".join(lines) + "\n",
        plots=plots,
    )


def _plot(out, L_curve, curve, temps, sizes, b_temps, us, es, tc_est, tc_err) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return []
    out.mkdir(parents=True, exist_ok=True)
    Tc = CRITICAL_TEMPERATURE
    fine = np.linspace(min(temps), max(temps), 400)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    ax = axes[0]
    ax.plot(fine, onsager_energy(fine), "k-", lw=1, label="Onsager (infinite lattice)")
    ax.errorbar(temps, [r["est"].energy.value for r in curve],
                yerr=[r["est"].energy.error for r in curve], fmt="o", ms=4,
                label=f"{L_curve}x{L_curve} heat bath")  # fmt: skip
    ax.set_xlabel("T")
    ax.set_ylabel("energy per spin")
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot(fine, onsager_magnetization(fine), "k-", lw=1, label="Yang (infinite lattice)")
    ax.errorbar(temps, [r["est"].abs_magnetization.value for r in curve],
                yerr=[r["est"].abs_magnetization.error for r in curve], fmt="o", ms=4,
                label=f"{L_curve}x{L_curve} <|m|>")  # fmt: skip
    ax.set_xlabel("T")
    ax.set_ylabel("|m| per spin")
    ax.legend(fontsize=8)
    ax = axes[2]
    ax.errorbar(temps, [r["est"].specific_heat.value for r in curve],
                yerr=[r["est"].specific_heat.error for r in curve], fmt="o-", ms=4)  # fmt: skip
    ax.axvline(Tc, color="k", ls="--", lw=1, label="T_c")
    ax.set_xlabel("T")
    ax.set_ylabel("specific heat per spin")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = [out / "ising_curves.png"]
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for L, u, e in zip(sizes, us, es):
        ax.errorbar(b_temps, u, yerr=e, fmt="o-", ms=4, label=f"L = {L}")
    ax.axvline(Tc, color="k", ls="--", lw=1, label="exact T_c")
    ax.axvspan(tc_est - tc_err, tc_est + tc_err, color="C2", alpha=0.3, label="crossing +- 1 sd")
    ax.set_xlabel("T")
    ax.set_ylabel("Binder cumulant U")
    ax.set_title(f"Binder crossing: T_c = {tc_est:.4f} +- {tc_err:.4f}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(out / "ising_binder.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    return paths
