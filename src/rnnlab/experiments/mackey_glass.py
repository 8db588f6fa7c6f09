"""``rnnlab reproduce mackey-glass``: Jaeger & Haas (2004), "Harnessing nonlinearity:
predicting chaotic systems and saving energy in wireless communication" (Science 304).

A 1,000-unit echo state network with 1% connectivity, output feedback and no external
input (a random bias per unit stands for their constant bias input) is trained by teacher
forcing on 3,000 steps of the tau = 17 Mackey-Glass series (the first 1,000 discarded),
squashed by s = tanh(x - 1); then it runs free, feeding back its own output, for 84
steps. NRMSE_84 = sqrt(mean over trials of (x_pred(84) - x(84))^2) / std(x), with the
squash undone; the paper reports about 10^-4.2 (docs/tasks.md marks the number unconfirmed).
Each trial uses another reservoir seed and another stretch of the series.

Our setup, where the paper is not followed exactly or is not confirmed: reservoir weights
standard normal on the 1% mask scaled to spectral radius 0.95 (the paper: about 0.8);
feedback weights uniform in [-1, 1]; bias uniform in [-0.2, 0.2]; Gaussian state noise of
std 3e-8 while harvesting states; a tiny ridge, 1e-11 (plain least squares is singular on
these states and falls back to the least-norm solution, which drifts more in free run);
float64 throughout. The series is integrated by RK4 with step 0.1 and sampled
once per time unit (:func:`rnnlab.tasks.mackey_glass.mackey_glass`). The noise level,
spectral radius, feedback and bias scalings were chosen by a small search (6 trials each,
reservoir seeds 0-5: the first six trials of seed 0; noise and ridge then on 12 trials,
reservoir seeds 0-11, and checked on 20 held-out reservoir seeds 100-119: log10 NRMSE_84
-4.33 on the 12, -4.04 on the 20 held out, median trial -4.41).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from rnnlab._threads import torch_threads
from rnnlab.esn import EchoStateNetwork, nrmse
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register
from rnnlab.tasks.mackey_glass import mackey_glass, squash, unsquash

PUBLISHED_LOG10_NRMSE84 = -4.2  # Jaeger & Haas 2004 [U]
HORIZON = 84


def _trial(x: torch.Tensor, N: int, seed: int, offset: int, n_train: int, washout: int):
    """One trial: fit on x[offset : offset + n_train], run free for 300 steps."""
    s = squash(x)[:, None]  # (T, 1)
    esn = EchoStateNetwork(
        0, N, 1, spectral_radius=0.95, connectivity=0.01 if N >= 500 else 10 / N,
        feedback=True, feedback_scaling=1.0, bias_scaling=0.2, noise=3e-8, ridge=1e-11,
        seed=seed, dtype=torch.float64,
    )  # fmt: skip
    train = s[offset : offset + n_train]
    esn.fit(None, train, washout=washout)
    end_state = esn.state_
    free = unsquash(esn.generate(300)[0, :, 0])  # (300,)
    true = x[offset + n_train : offset + n_train + 300]
    # one-step prediction on the same continuation: teacher-forced states, readout
    esn.state_ = end_state
    X = esn.states(torch.zeros(300, 0, dtype=torch.float64), targets=s[offset + n_train :][:300])
    one_step = unsquash(esn.readout(X).detach()[:, 0])
    return free, true, one_step


@register(
    "mackey-glass", "Jaeger & Haas 2004: ESN free run on Mackey-Glass tau=17, NRMSE_84", trials=2
)
def run(config: ExperimentConfig) -> ExperimentResult:
    N, trials = (300, 3) if config.quick else (1000, 10)
    n_train, washout = 3000, 1000
    x = mackey_glass(n_train + 300 + 100 * trials)
    sigma = float(x.std())
    errs84, one_step_err, curves = [], [], None
    with torch_threads(1):
        for k in range(trials):
            seed = 1000 * config.seed + k
            free, true, one = _trial(x, N, seed, 100 * k, n_train, washout)
            errs84.append(float(free[HORIZON - 1] - true[HORIZON - 1]) ** 2)
            one_step_err.append(nrmse(one, true))
            if curves is None:
                curves = (x[100 * k + n_train - 200 : 100 * k + n_train], free, true)
    nrmse84 = math.sqrt(sum(errs84) / trials) / sigma
    log84 = math.log10(nrmse84)
    per_trial = [math.log10(max(math.sqrt(e) / sigma, 1e-300)) for e in errs84]
    one_step = sum(one_step_err) / trials
    threshold = -2.0 if config.quick else -3.0
    success = log84 < threshold
    metrics = {
        "nrmse84": nrmse84,
        "log10_nrmse84": log84,
        "log10_nrmse84_per_trial": per_trial,
        "one_step_nrmse": one_step,
        "trials": trials,
        "reservoir_size": N,
    }
    lines = [
        "# mackey-glass: free-running prediction of Mackey-Glass tau = 17 (Jaeger & Haas 2004)",
        "",
        f"Preset: {'quick' if config.quick else 'full'}, seed {config.seed}; {N} units, "
        f"{trials} trials; teacher forcing on {n_train} steps ({washout} discarded), then "
        f"{HORIZON} free-running steps. See the module docstring for the setup.",
        "",
        "| quantity | this run | published |",
        "|---|---|---|",
        f"| log10 NRMSE_84 (over {trials} trials) | {log84:.2f} | about "
        f"{PUBLISHED_LOG10_NRMSE84} (1,000 units, 100 trials) |",
        f"| median trial log10 NRMSE_84 | {sorted(per_trial)[trials // 2]:.2f} | - |",
        f"| one-step NRMSE (teacher-forced, 300 steps) | {one_step:.2e} | - |",
        "",
        f"Success rule (ours): log10 NRMSE_84 < {threshold} "
        f"({'met' if success else 'NOT met'}). The error at step 84 is dominated by the few "
        "trials whose free run drifts (the root mean square over trials), and it depends "
        "strongly on the harvesting noise and the ridge (spectral radius 0.8: noise std "
        "1e-5 gave about 10^-1.9, 1e-6 10^-2.5, 1e-7 10^-3.4 over 5-6 trials of our search; "
        "radius 0.95, noise 1e-7, ridge 0: 10^-3.8; noise 3e-8, ridge 1e-11: 10^-4.33 on "
        "the 12 trials searched, 10^-4.04 on 20 held-out reservoir seeds).",
    ]
    plots = _plot(config.out, curves)
    return ExperimentResult(
        experiment="mackey-glass",
        success=success,
        metrics=metrics,
        published={"log10_nrmse84": PUBLISHED_LOG10_NRMSE84},
        report="\n".join(lines) + "\n",
        plots=plots,
    )


def _plot(out: Path, curves) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    past, free, true = curves
    t_past = torch.arange(-len(past), 0)
    t_free = torch.arange(len(free))
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    ax.plot(t_past, past, "k-", lw=1, label="training series (end)")
    ax.plot(t_free, true, "k-", lw=2, alpha=0.4, label="true continuation")
    ax.plot(t_free, free, "r--", lw=1, label="ESN free run")
    ax.axvline(HORIZON - 1, color="grey", ls=":")
    ax.set_ylabel("x")
    ax.legend(fontsize=8)
    ax2.semilogy(t_free, (free - true).abs().clamp_min(1e-12), "r-")
    ax2.axvline(HORIZON - 1, color="grey", ls=":", label="step 84")
    ax2.set_xlabel("steps after the training sequence")
    ax2.set_ylabel("|error|")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    path = out / "mackey_glass_free_run.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
