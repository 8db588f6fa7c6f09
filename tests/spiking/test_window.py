"""The window engine equals the clock engine (its specification): same output spikes,
same weights, traces and membranes up to rounding, for every rule, pairing, reduction and
synapse type; and it refuses networks it does not compute."""

import pytest
import torch

from rnnlab.spiking import LIF, STDP, Connection, Network, PoissonInput, simulate

D = torch.float64


def _net(synapse, rule, pairing, reduction, batch, seed=0):
    n_exc, n_inh = 300, 50
    if synapse == "conductance":
        lif = LIF(
            2,
            tau_m=10.0,
            v_rest=-74.0,
            v_reset=-60.0,
            v_threshold=-54.0,
            dt=0.1,
            synapse="conductance",
            e_inh=-80.0,
            dtype=D,
        )
        gmax, w_inh = 0.04, 0.05
    else:
        lif = LIF(
            2,
            tau_m=20.0,
            v_rest=-70.0,
            v_reset=-60.0,
            v_threshold=-54.0,
            dt=0.1,
            synapse="current",
            tau_exc=5.0,
            tau_inh=8.0,
            dtype=D,
        )
        gmax, w_inh = 1.2, 0.5
    stdp = STDP(
        0.02 * gmax,
        0.021 * gmax,
        20.0,
        25.0,
        0.0,
        gmax,
        rule="additive" if rule == "soft" else rule,
        bounds="soft" if rule == "soft" else "hard",
        pairing=pairing,
        reduction=reduction,
    )
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n_exc, 2, generator=g, dtype=D) * gmax
    if reduction == "none":
        w = w.expand(batch, -1, -1).clone()
    conns = [
        Connection("exc", "out", w, plasticity=stdp),
        Connection("inh", "out", torch.full((n_inh, 2), w_inh, dtype=D), target="inh"),
    ]
    return Network({"exc": n_exc, "inh": n_inh}, {"out": lif}, conns)


def _inputs(batch):
    exc = PoissonInput(
        torch.full((300,), 30.0, dtype=D),
        dt=0.1,
        batch_size=batch,
        correlated=(60, 0.2),
        seed=1,
        block=700,
    )
    inh = PoissonInput(torch.full((50,), 10.0, dtype=D), dt=0.1, seed=2)
    return {"exc": exc, "inh": inh}


@pytest.mark.parametrize(
    "synapse, rule, pairing, reduction",
    [
        ("conductance", "additive", "all-to-all", "mean"),
        ("conductance", "multiplicative", "nearest", "sum"),
        ("conductance", "soft", "all-to-all", "none"),
        ("current", "additive", "nearest", "none"),
        ("current", "multiplicative", "all-to-all", "mean"),
    ],
)
def test_window_engine_equals_clock_engine(synapse, rule, pairing, reduction):
    B, steps = 2, 3000
    nets = [_net(synapse, rule, pairing, reduction, B) for _ in range(2)]
    res = [
        simulate(n, _inputs(B), steps, batch_size=B, engine=e)
        for n, e in zip(nets, ["clock", "window"])
    ]
    clock, window = res
    n_spikes = int(clock.counts["out"].sum())
    assert n_spikes > 20  # the windows were cut by output spikes many times
    assert torch.equal(clock.spikes["out"], window.spikes["out"])
    torch.testing.assert_close(
        nets[1].connections[0].weight, nets[0].connections[0].weight, rtol=0, atol=1e-12
    )
    for a, b in zip(clock.state.neurons["out"], window.state.neurons["out"]):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-9)
    for a, b in zip(clock.state.traces["exc->out"], window.state.traces["exc->out"]):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-12)
    assert torch.equal(clock.counts["exc"], window.counts["exc"])


def test_window_engine_refuses_what_it_does_not_compute():
    lif = LIF(2, refractory=2.0)
    net = Network({"a": 3}, {"b": lif}, [Connection("a", "b", torch.zeros(3, 2))])
    with pytest.raises(ValueError, match="engine: expected 'clock'"):
        simulate(net, {"a": torch.zeros(5, 3, dtype=torch.bool)}, 5, engine="window")
    net = Network({"a": 3}, {"b": LIF(2)}, [Connection("a", "b", torch.zeros(3, 2))])
    with pytest.raises(ValueError, match="record: expected only 'spikes'"):
        simulate(net, {"a": torch.zeros(5, 3, dtype=torch.bool)}, 5, engine="window", record=("v",))
