"""``rnnlab reproduce stdp-window``: the STDP learning window from the pairing protocol.

Bi & Poo (1998) paired a presynaptic and a postsynaptic spike 60 times at 1 Hz at a fixed
interval and measured the change of the synaptic strength; plotted against the interval
it gives the learning window: potentiation when the presynaptic spike leads, depression
when it lags, each falling off with the interval. Here the protocol runs through the
simulator: one trial per interval (all trials batched, one weight per trial), a
presynaptic source on a weak plastic synapse, and a teacher source on a strong fixed
synapse that makes the LIF neuron fire at the chosen time. The measured change per
pairing is compared with the rule's own formula (:meth:`rnnlab.spiking.STDP.window`) at the
intervals realised by the neuron's spikes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rnnlab._threads import torch_threads
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register

# exponential fits to Bi & Poo's data as used in models of it (Bi & Poo 2001; van Rossum,
# Bi & Turrigiano 2000): tau+ = 16.8 ms, tau- = 33.7 ms
TAU_PLUS, TAU_MINUS = 16.8, 33.7
A_PLUS, A_MINUS = 0.005, 0.0025


def run_protocol(lags_ms: torch.Tensor, pairings: int, period_ms: float, dt: float):
    """Run the pairing protocol; returns (realised lags (ms), weight change per pairing)
    for each requested lag (one trial each)."""
    from rnnlab.spiking import LIF, STDP, Connection, Network, SpikeTrain, simulate

    B = lags_ms.numel()
    dtype = torch.float64
    lif = LIF(
        1,
        tau_m=20.0,
        v_rest=-70.0,
        v_reset=-70.0,
        v_threshold=-54.0,
        refractory=5.0,
        dt=dt,
        synapse="current",
        tau_exc=dt,
        dtype=dtype,
    )
    rule = STDP(A_PLUS, A_MINUS, TAU_PLUS, TAU_MINUS, w_min=0.0, w_max=1.0, reduction="none")
    w0 = 0.5
    pre = Connection("pre", "out", torch.full((B, 1, 1), w0, dtype=dtype), plasticity=rule)
    # a teacher spike reaches the neuron at the end of its step: the neuron fires in the
    # next step (the drive adds kappa * 2000 mV >> the 16 mV to threshold)
    teacher = Connection("teacher", "out", torch.full((1, 1), 2000.0, dtype=dtype))
    net = Network({"pre": 1, "teacher": 1}, {"out": lif}, [pre, teacher])
    lag_steps = torch.round(lags_ms / dt).long()
    period = int(round(period_ms / dt))
    offset = int(lag_steps.abs().max()) + 10
    steps = pairings * period + 2 * offset
    pre_s = torch.zeros(B, steps, 1, dtype=torch.bool)
    teach = torch.zeros(B, steps, 1, dtype=torch.bool)
    for k in range(pairings):
        t = offset + k * period
        pre_s[:, t, 0] = True
        teach[torch.arange(B), t + lag_steps - 1, 0] = True  # post spike at t + lag
    res = simulate(
        net, {"pre": SpikeTrain(pre_s), "teacher": SpikeTrain(teach)}, steps, batch_size=B
    )
    post = res.spikes["out"][:, :, 0]  # (B, T)
    realised = []
    for b in range(B):
        post_t = post[b].nonzero()[:, 0]
        pre_t = pre_s[b, :, 0].nonzero()[:, 0]
        if post_t.numel() != pairings:
            raise RuntimeError(f"trial {b}: {post_t.numel()} post spikes for {pairings} pairings")
        realised.append(float((post_t - pre_t).double().mean()) * dt)
    dw = (net.connections[0].weight[:, 0, 0] - w0) / pairings
    return torch.tensor(realised, dtype=dtype), dw, rule


@register("stdp-window", "the STDP learning window from the pairing protocol (Bi & Poo 1998)")
def run(config: ExperimentConfig) -> ExperimentResult:
    with torch_threads(1):
        dt = 0.5
        step = 10.0 if config.quick else 2.0
        lags = torch.arange(-100.0, 100.0 + 1e-9, step, dtype=torch.float64)
        pairings = 3 if config.quick else 60
        realised, dw, rule = run_protocol(lags, pairings, period_ms=1000.0, dt=dt)
    formula = rule.window(realised).double()
    err = float((dw - formula).abs().max())
    lags_ok = bool(torch.allclose(realised, torch.round(lags / dt) * dt))
    success = lags_ok and err < 1e-9 * A_PLUS
    i_max = int(dw.argmax())
    i_min = int(dw.argmin())
    metrics = {
        "intervals": lags.numel(),
        "pairings": pairings,
        "max_abs_error_vs_formula": err,
        "realised_intervals_match": lags_ok,
        "peak_potentiation": float(dw[i_max]),
        "peak_potentiation_at_ms": float(realised[i_max]),
        "peak_depression": float(dw[i_min]),
        "peak_depression_at_ms": float(realised[i_min]),
        "dw_at_+20ms": float(dw[(realised - 20).abs().argmin()]),
        "dw_at_-20ms": float(dw[(realised + 20).abs().argmin()]),
    }
    published = {"tau_plus_ms": TAU_PLUS, "tau_minus_ms": TAU_MINUS}
    report = "\n".join(
        [
            "# stdp-window: the learning window from the pairing protocol",
            "",
            f"Preset: {'quick' if config.quick else 'full'}. {pairings} pre/post pairings at "
            f"1 Hz for each interval t_post - t_pre in -100..100 ms (step {step:g} ms), one "
            f"batched trial per interval, clock step {dt} ms. The presynaptic source has a "
            "weak plastic synapse (w = 0.5, additive STDP, bounds [0, 1]); a teacher source "
            "on a strong fixed current synapse makes the LIF neuron fire at the chosen time "
            "(refractory 5 ms, so each teacher spike gives exactly one postsynaptic spike).",
            "",
            f"Rule: A+ = {A_PLUS}, A- = {A_MINUS}, tau+ = {TAU_PLUS} ms, tau- = {TAU_MINUS} ms "
            "(the time constants of exponential fits to Bi & Poo's data used in models of "
            "it; the amplitudes are ours, in weight units per pairing).",
            "",
            "| quantity | value |",
            "|---|---|",
            f"| largest difference from A+ e^(-dt/tau+) / -A- e^(dt/tau-) | {err:.2e} |",
            f"| intervals realised as requested | {'yes' if lags_ok else 'NO'} |",
            f"| peak potentiation per pairing | {metrics['peak_potentiation']:.5f} "
            f"at {metrics['peak_potentiation_at_ms']:+.1f} ms |",
            f"| peak depression per pairing | {metrics['peak_depression']:.5f} "
            f"at {metrics['peak_depression_at_ms']:+.1f} ms |",
            f"| change at +20 ms / -20 ms | {metrics['dw_at_+20ms']:.5f} / "
            f"{metrics['dw_at_-20ms']:.5f} |",
            "",
            "Pairs 1 s apart interact through the traces by e^(-1000/16.8), far below "
            "rounding, so the change per pairing is the window itself. Simultaneous spikes "
            "(interval 0) potentiate: within a step the pre trace is bumped before the "
            "post spike reads it.",
        ]
    )
    plots = _plot(config.out, realised, dw, rule)
    return ExperimentResult("stdp-window", success, metrics, published, report + "\n", plots)


def _plot(out: Path, realised, dw, rule) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fine = torch.linspace(-100, 100, 801, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(fine.numpy(), rule.window(fine).double().numpy(), "k-", lw=1, label="rule's formula")
    ax.plot(realised.numpy(), dw.numpy(), "o", ms=3, label="pairing protocol (simulated)")
    ax.axhline(0, color="0.7", lw=0.5)
    ax.axvline(0, color="0.7", lw=0.5)
    ax.set_xlabel("t_post - t_pre (ms)")
    ax.set_ylabel("weight change per pairing")
    ax.set_title("STDP learning window")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "stdp_window.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
