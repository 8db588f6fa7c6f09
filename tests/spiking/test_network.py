"""The clock-driven simulator: one step per call equals the whole run, batched trials
equal trials run alone, recording intervals, Brian2's order within a step; bad input."""

import pytest
import torch

from rnnlab.spiking import LIF, STDP, Connection, Network, PoissonInput, SpikeTrain, simulate

D = torch.float64


def _song(batch_w=None, reduction="mean", n=200, seed=0, pairing="all-to-all"):
    gmax = 0.05
    lif = LIF(1, tau_m=10.0, v_rest=-74.0, v_reset=-60.0, v_threshold=-54.0, dt=0.1, dtype=D)
    rule = STDP(
        0.01 * gmax, 0.0105 * gmax, 20.0, 20.0, 0.0, gmax, reduction=reduction, pairing=pairing
    )
    g = torch.Generator().manual_seed(seed)
    w = torch.rand(n, 1, generator=g, dtype=D) * gmax
    if batch_w is not None:
        w = w.expand(batch_w, -1, -1).clone()
    return Network({"in": n}, {"out": lif}, [Connection("in", "out", w, plasticity=rule)])


def _src(batch, n=200, seed=3):
    return PoissonInput(
        torch.full((n,), 40.0, dtype=D), dt=0.1, batch_size=batch, seed=seed, block=97
    )


@pytest.mark.parametrize("pairing", ["all-to-all", "nearest"])
def test_one_step_per_call_equals_the_whole_run(pairing):
    steps = 1500
    net_a, net_b = _song(pairing=pairing), _song(pairing=pairing)
    whole = simulate(net_a, {"in": _src(2)}, steps)
    src = _src(2)
    res = simulate(net_b, {"in": src}, 1)
    spikes = [res.spikes["out"]]
    for _ in range(steps - 1):
        res = simulate(net_b, {"in": src}, 1, state=res.state)
        spikes.append(res.spikes["out"])
    assert int(whole.counts["out"].sum()) > 5  # the neuron fired, so potentiation ran
    assert torch.equal(net_a.connections[0].weight, net_b.connections[0].weight)
    assert torch.equal(whole.spikes["out"], torch.cat(spikes, 1))
    assert torch.equal(whole.state.neurons["out"].v, res.state.neurons["out"].v)
    assert not torch.equal(net_a.connections[0].weight, _song().connections[0].weight)


def test_batched_trials_equal_trials_run_alone():
    B, steps = 3, 1000
    net = _song(batch_w=B, reduction="none")
    src = _src(B)
    chunk = src.chunk(0, steps)  # (T, B, N)
    res = simulate(net, {"in": src}, steps, record=("spikes", "v"))
    for b in range(B):
        alone = _song(batch_w=1, reduction="none")
        r = simulate(alone, {"in": SpikeTrain(chunk[:, b : b + 1].transpose(0, 1))}, steps)
        assert torch.equal(r.spikes["out"][0], res.spikes["out"][b])
        torch.testing.assert_close(
            alone.connections[0].weight[0], net.connections[0].weight[b], rtol=0, atol=1e-15
        )


def test_recording_intervals_and_frozen_plasticity():
    net = _song()
    w0 = net.connections[0].weight.clone()
    res = simulate(net, {"in": _src(1)}, 1000, record=("v", "weights"), every=100)
    assert res.v["out"].shape == (1, 10, 1) and res.weights["in->out"].shape == (10, 200, 1)
    torch.testing.assert_close(res.times, torch.arange(1, 11, dtype=D) * 10.0)
    assert torch.equal(res.weights["in->out"][-1], net.connections[0].weight)
    net_f = _song()
    simulate(net_f, {"in": _src(1)}, 1000, plasticity=False)
    assert torch.equal(net_f.connections[0].weight, w0)


def test_step_order_follows_brian2():
    """A spike in step k reaches the conductance at the end of step k, so the membrane
    first moves in step k + 1; the threshold is strict (v > v_threshold)."""
    lif = LIF(1, tau_m=10.0, v_rest=-70.0, v_threshold=-54.0, v_reset=-60.0, dt=0.1, dtype=D)
    net = Network({"in": 1}, {"out": lif}, [Connection("in", "out", torch.ones(1, 1, dtype=D))])
    s = torch.zeros(5, 1, dtype=torch.bool)
    s[2] = True
    res = simulate(net, {"in": s}, 5, record=("v",))
    v = res.v["out"][0, :, 0]
    assert torch.equal(v[:3], torch.full((3,), -70.0, dtype=D)) and float(v[3]) > -70.0


def test_bad_network_input():
    rule = STDP(w_min=0.0, w_max=1.0)
    with pytest.raises(ValueError, match="weight: expected weights in"):
        Connection("a", "b", torch.full((2, 2), 1.5), plasticity=rule)
    with pytest.raises(ValueError, match="weight: expected shape \\(B, N_pre, N_post\\)"):
        Connection("a", "b", torch.zeros(2, 2), plasticity=STDP(reduction="none"))
    with pytest.raises(ValueError, match="weight: expected"):
        Network({"a": 3}, {"b": LIF(2)}, [Connection("a", "b", torch.zeros(4, 2))])
    net = _song()
    with pytest.raises(ValueError, match="inputs: expected a source for"):
        simulate(net, {}, 10)
    with pytest.raises(ValueError, match="inputs\\['in'\\]: expected 200 neurons"):
        simulate(net, {"in": torch.zeros(10, 3, dtype=torch.bool)}, 10)
    with pytest.raises(ValueError, match="inputs: expected a spike train of at least 20"):
        simulate(net, {"in": torch.zeros(10, 200, dtype=torch.bool)}, 20)
    with pytest.raises(ValueError, match="steps"):
        simulate(net, {"in": _src(1)}, 0)
    with pytest.raises(ValueError, match="dt: expected at most tau_plus"):
        Network(
            {"a": 2},
            {"b": LIF(2, dt=1.0)},
            [Connection("a", "b", torch.zeros(2, 2), plasticity=STDP(tau_plus=0.5))],
        )
