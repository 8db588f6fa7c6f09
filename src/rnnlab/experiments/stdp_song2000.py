"""``rnnlab reproduce stdp-song2000``: competitive Hebbian learning through STDP (Song,
Miller & Abbott 2000).

One conductance-based LIF neuron receives N = 1000 excitatory Poisson inputs through
additive STDP synapses with hard bounds [0, g_max] and a depression slightly stronger
than potentiation (A- tau- = 1.05 A+ tau+). Song et al. found that the weights become
bimodal (most near 0 or near g_max), that the output rate stays regulated when the input
rates change (unlike with fixed weights), and that a group of correlated inputs wins the
competition against uncorrelated ones.

Parameters: those of Brian2's example of this network (``examples/synapses/STDP.py``,
the anchor of ``rnnlab bench spiking``): tau_m = 10 ms, E_L = -74 mV, V_th = -54 mV,
V_reset = -60 mV, E_e = 0, tau_e = 5 ms, g_max = 0.01, A+ = 0.01 g_max (Song: 0.005),
A-/A+ = 1.05, tau+- = 20 ms, initial weights uniform in [0, g_max], no inhibitory inputs
(Song: 200 at 10 Hz); dt = 0.1 ms, ``engine="window"``. Trials are batched with one weight
vector each (``reduction="none"``):

1. rate regulation and bimodality: input rates 15, 20, 30 and 40 Hz, one trial each; the
   output rate over the last 10% of the run is compared with the rate of the same neuron
   with the initial (fixed) weights;
2. competition: 15 Hz inputs, the first 200 of them one shared-source group with pairwise
   correlation c = 0.1 (``PoissonInput(correlated=(200, 0.1))``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from rnnlab._threads import torch_threads
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register

GMAX = 0.01
RATES = (15.0, 20.0, 30.0, 40.0)
N_INPUTS, N_GROUP, CORRELATION = 1000, 200, 0.1


def _network(batch: int, a_plus: float, seed: int):
    from rnnlab.spiking import LIF, STDP, Connection, Network

    lif = LIF(
        1,
        tau_m=10.0,
        v_rest=-74.0,
        v_reset=-60.0,
        v_threshold=-54.0,
        dt=0.1,
        synapse="conductance",
        tau_exc=5.0,
        e_exc=0.0,
    )
    rule = STDP(
        a_plus * GMAX,
        1.05 * a_plus * GMAX,
        20.0,
        20.0,
        w_min=0.0,
        w_max=GMAX,
        reduction="none",
    )
    g = torch.Generator().manual_seed(seed)
    w0 = torch.rand(1, N_INPUTS, 1, generator=g).expand(batch, -1, -1).contiguous() * GMAX
    return Network(
        {"input": N_INPUTS}, {"out": lif}, [Connection("input", "out", w0, plasticity=rule)]
    )


def _run(net, source, steps: int, tail: int):
    """Run ``steps`` steps; returns the output rates (Hz) over the last ``tail`` steps."""
    from rnnlab.spiking import simulate

    res = simulate(net, {"input": source}, steps - tail, record=(), engine="window")
    res = simulate(net, {"input": source}, tail, state=res.state, record=(), engine="window")
    return res.counts["out"][:, 0] / (tail * 0.1e-3)


@register(
    "stdp-song2000",
    "STDP: bimodal weights, rate regulation, correlated group wins (Song 2000)",
    trials=2,
)
def run(config: ExperimentConfig) -> ExperimentResult:
    from rnnlab.spiking import PoissonInput, simulate

    quick = config.quick
    seconds = 1.0 if quick else 150.0
    control = 0.5 if quick else 5.0  # seconds with the initial weights fixed
    seconds_corr = 5.0 if quick else 100.0
    a_plus = 0.05 if quick else 0.01
    steps, steps_corr = int(seconds * 1e4), int(seconds_corr * 1e4)
    s = 100 * config.seed
    with torch_threads(1):
        B = len(RATES)
        rates = torch.tensor(RATES)[:, None].expand(B, N_INPUTS).contiguous()  # (B, N)
        net = _network(B, a_plus, s)
        w_init = net.connections[0].weight.clone()
        out_rate = _run(net, PoissonInput(rates, dt=0.1, seed=s + 1), steps, steps // 10)
        w = net.connections[0].weight[:, :, 0] / GMAX  # (B, N)
        fixed = _network(B, a_plus, s)
        res = simulate(
            fixed,
            {"input": PoissonInput(rates, dt=0.1, seed=s + 2)},
            int(control * 1e4),
            record=(),
            plasticity=False,
            engine="window",
        )
        fixed_rate = res.counts["out"][:, 0] / control
        assert torch.equal(fixed.connections[0].weight, w_init)
        corr_net = _network(1, a_plus, s + 3)
        src = PoissonInput(
            torch.full((N_INPUTS,), RATES[0]),
            dt=0.1,
            correlated=(N_GROUP, CORRELATION),
            seed=s + 4,
            batch_size=1,
        )
        corr_rate = _run(corr_net, src, steps_corr, steps_corr // 10)
        wc = corr_net.connections[0].weight[0, :, 0] / GMAX  # (N,)
    near0 = (w < 0.1).double().mean(1)  # (B,)
    near1 = (w > 0.9).double().mean(1)
    outer = ((w < 0.25) | (w > 0.75)).double().mean(1)  # 0.5 for the uniform start
    group_top = float((wc[:N_GROUP] > 0.9).double().mean())
    rest_top = float((wc[N_GROUP:] > 0.9).double().mean())
    spread_stdp = float(out_rate[-1] / out_rate[0])
    spread_fixed = float(fixed_rate[-1] / fixed_rate[0])
    bimodal = float(outer[0])
    regulated = spread_stdp < 0.5 * spread_fixed
    wins = group_top > 0.8 and rest_top < 0.2
    if quick:
        success = float(wc[:N_GROUP].mean()) > float(wc[N_GROUP:].mean())
    else:
        success = bimodal > 0.7 and regulated and wins
    metrics = {
        "seconds_simulated": seconds,
        "input_rates_hz": list(RATES),
        "output_rate_stdp_hz": [round(float(r), 2) for r in out_rate],
        "output_rate_fixed_weights_hz": [round(float(r), 2) for r in fixed_rate],
        "output_rate_ratio_40_15_stdp": spread_stdp,
        "output_rate_ratio_40_15_fixed": spread_fixed,
        "fraction_near_0": [round(float(x), 3) for x in near0],
        "fraction_near_gmax": [round(float(x), 3) for x in near1],
        "fraction_outer_quarters": [round(float(x), 3) for x in outer],
        "fraction_outer_quarters_at_15hz": bimodal,
        "correlated_group_near_gmax": group_top,
        "uncorrelated_near_gmax": rest_top,
        "correlated_run_output_rate_hz": float(corr_rate[0]),
    }
    published = {"weights": "bimodal", "output_rate": "regulated", "correlated_group": "wins"}
    rows = [
        f"| {r:g} | {float(o):.1f} | {float(f):.1f} | {float(a):.3f} | {float(b):.3f} | "
        f"{float(q):.3f} |"
        for r, o, f, a, b, q in zip(RATES, out_rate, fixed_rate, near0, near1, outer)
    ]
    lines = [
        "# stdp-song2000: bimodal weights, rate regulation, competition (Song et al. 2000)",
        "",
        f"Preset: {'quick' if quick else 'full'}, seed {config.seed}. {N_INPUTS} Poisson "
        f"inputs, additive STDP A+ = {a_plus:g} g_max, A-/A+ = 1.05; {seconds:g} s simulated "
        f"per input rate (4 trials in one batched run), {seconds_corr:g} s for the "
        "correlated group.",
        "",
        "| input rate (Hz) | output rate, STDP, last 10% (Hz) | output rate, initial "
        "weights fixed (Hz) | w < 0.1 g_max | w > 0.9 g_max | w < 0.25 or > 0.75 g_max |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Output rate 40 Hz / 15 Hz inputs: {spread_stdp:.2f} with STDP, {spread_fixed:.2f} "
        f"with the initial weights fixed (input ratio 2.67): "
        f"{'regulated' if regulated else 'NOT regulated'} (rule: STDP ratio below half the "
        "fixed ratio).",
        "",
        f"Correlated group ({N_GROUP} inputs, c = {CORRELATION}) against {N_INPUTS - N_GROUP} "
        f"uncorrelated, all at {RATES[0]:g} Hz: {group_top:.3f} of the group and "
        f"{rest_top:.3f} of the others end above 0.9 g_max "
        f"({'the group wins' if wins else 'no clear winner'}).",
        "",
        "Success rule (full preset): at 15 Hz more than 70% of the weights in the outer "
        "quarters of [0, g_max] (50% at the uniform start); regulated output rate; more than "
        "80% of the group and less than 20% of the others above 0.9 g_max. The fraction "
        "within 10% of a bound levels off near 0.5 at 15 Hz (0.51 after 200 and 250 s in "
        "our runs): with A+ = 0.01 g_max the weights keep diffusing between the bounds. "
        "Song et al. used A+ = 0.005 and 200 inhibitory inputs; the twice larger A+ of "
        "Brian2's example halves the time to equilibrium, which is still longer than this "
        "run for the higher input rates (their weights are still moving).",
    ]
    plots = _plot(config.out, w, wc, out_rate, fixed_rate)
    return ExperimentResult(
        "stdp-song2000", success, metrics, published, "\n".join(lines) + "\n", plots
    )


def _plot(out: Path, w, wc, out_rate, fixed_rate) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    bins = torch.linspace(0, 1, 21).numpy()
    for r, row in zip(RATES, w):
        axes[0].hist(row.numpy(), bins=bins, histtype="step", label=f"{r:g} Hz")
    axes[0].set_xlabel("w / g_max")
    axes[0].set_ylabel("synapses")
    axes[0].set_title("final weights")
    axes[0].legend(fontsize=7)
    axes[1].plot(RATES, out_rate.numpy(), "o-", label="STDP")
    axes[1].plot(RATES, fixed_rate.numpy(), "s--", label="initial weights fixed")
    axes[1].set_xlabel("input rate (Hz)")
    axes[1].set_ylabel("output rate (Hz)")
    axes[1].set_title("rate regulation")
    axes[1].legend(fontsize=7)
    axes[2].hist(wc[:N_GROUP].numpy(), bins=bins, alpha=0.6, label="correlated group")
    axes[2].hist(wc[N_GROUP:].numpy(), bins=bins, alpha=0.6, label="uncorrelated")
    axes[2].set_xlabel("w / g_max")
    axes[2].set_title("competition")
    axes[2].legend(fontsize=7)
    fig.tight_layout()
    path = out / "stdp_song2000.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
