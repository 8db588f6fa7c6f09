"""LIF neurons against closed forms: the membrane under constant drive, the f-I curve,
conductance input, the exact synaptic-current propagator, refractoriness; bad input."""

import math

import pytest
import torch

from rnnlab.spiking import LIF, Connection, Network, SpikeTrain, simulate

D = torch.float64


def _run_current(lif, current, steps, v0=None):
    st = lif.initial_state(1, v=v0)
    vs, spikes = [], []
    for _ in range(steps):
        s, st = lif.step(st, current)
        vs.append(float(st.v[0, 0]))
        spikes.append(bool(s[0, 0]))
    return vs, spikes


def test_membrane_under_constant_current_is_the_closed_form():
    lif = LIF(
        1,
        tau_m=20.0,
        v_rest=-70.0,
        v_threshold=100.0,
        v_reset=-80.0,
        dt=0.1,
        synapse="current",
        dtype=D,
    )
    vs, _ = _run_current(lif, 12.0, 2000, v0=-75.0)
    for k in (0, 9, 199, 1999):
        t = (k + 1) * 0.1
        exact = -70.0 + 12.0 * (1 - math.exp(-t / 20.0)) + (-75.0 + 70.0) * math.exp(-t / 20.0)
        assert vs[k] == pytest.approx(exact, abs=1e-11)


@pytest.mark.parametrize("refractory", [0.0, 2.0])
@pytest.mark.parametrize("drive", [16.5, 20.0, 35.0])
def test_firing_rate_is_the_f_i_curve(drive, refractory):
    dt, tau = 0.1, 20.0
    lif = LIF(
        1,
        tau_m=tau,
        v_rest=-70.0,
        v_reset=-65.0,
        v_threshold=-54.0,
        refractory=refractory,
        dt=dt,
        synapse="current",
        dtype=D,
    )
    _, spikes = _run_current(lif, drive, 4000)
    times = [k for k, s in enumerate(spikes) if s]
    isis = {b - a for a, b in zip(times, times[1:])}
    # on the grid: refractory steps, then the first step at which v crosses threshold
    t_cross = tau * math.log((-70 + drive + 65) / (-70 + drive + 54))
    assert isis == {round(refractory / dt) + math.ceil(t_cross / dt)}
    isi_ms = isis.pop() * dt
    analytic = lif.rate(drive)
    assert analytic == pytest.approx(1000 / (refractory + t_cross), rel=1e-12)
    assert abs(1000 / isi_ms - analytic) <= analytic * dt / isi_ms + 1e-9  # grid quantisation
    assert lif.rate(15.0) == 0.0  # v_inf below threshold: silent
    _, silent = _run_current(lif, 15.9, 3000)
    assert not any(silent)


def test_conductance_membrane_with_constant_conductance():
    lif = LIF(
        1,
        tau_m=10.0,
        v_rest=-74.0,
        v_threshold=100.0,
        v_reset=-80.0,
        dt=0.1,
        synapse="conductance",
        tau_exc=1e12,
        e_exc=0.0,
        dtype=D,
    )
    st = lif.initial_state(1)
    st = st._replace(exc=torch.full_like(st.exc, 0.5))
    for _ in range(300):
        _, st = lif.step(st)
    v_inf = (-74.0 + 0.5 * 0.0) / 1.5
    exact = v_inf + (-74.0 - v_inf) * math.exp(-30.0 * 1.5 / 10.0)
    assert float(st.v) == pytest.approx(exact, abs=1e-6)


@pytest.mark.parametrize("tau_syn", [5.0, 20.0])
def test_one_input_spike_gives_the_exact_psp(tau_syn):
    """Current synapse: v - v_rest = w tau_s/(tau_s - tau_m) (e^{-t/tau_s} - e^{-t/tau_m})."""
    dt, tau_m, w = 0.1, 20.0, 3.0
    lif = LIF(
        1,
        tau_m=tau_m,
        v_threshold=100.0,
        v_reset=-80.0,
        dt=dt,
        synapse="current",
        tau_exc=tau_syn,
        dtype=D,
    )
    net = Network(
        {"in": 1}, {"out": lif}, [Connection("in", "out", torch.full((1, 1), w, dtype=D))]
    )
    spikes = torch.zeros(300, 1, dtype=torch.bool)
    spikes[0] = True
    res = simulate(net, {"in": SpikeTrain(spikes)}, 300, record=("v",))
    v = res.v["out"][0, :, 0]
    for k in (0, 1, 50, 299):
        s = k * dt  # the spike reaches the synapse at the end of step 0
        if tau_syn == tau_m:
            psp = w * s / tau_m * math.exp(-s / tau_m)
        else:
            psp = w * tau_syn / (tau_syn - tau_m) * (math.exp(-s / tau_syn) - math.exp(-s / tau_m))
        assert float(v[k]) == pytest.approx(-70.0 + psp, abs=1e-11)


def test_refractory_clamps_for_the_stated_steps():
    lif = LIF(
        1,
        v_rest=-70.0,
        v_reset=-65.0,
        v_threshold=-54.0,
        refractory=1.0,
        dt=0.1,
        synapse="current",
        dtype=D,
    )
    st = lif.initial_state(1, v=-54.2)
    s, st = lif.step(st, 100.0)
    assert bool(s) and float(st.v) == -65.0
    for _ in range(10):  # 1 ms = 10 steps clamped
        s, st = lif.step(st, 100.0)
        assert not bool(s) and float(st.v) == -65.0
    _, st = lif.step(st, 100.0)
    assert float(st.v) > -65.0


def test_adaptive_threshold_grows_per_spike_and_decays():
    lif = LIF(1, dt=0.5, synapse="current", theta_plus=0.1, tau_theta=100.0, dtype=D)
    st = lif.initial_state(1, v=-53.0)
    s, st = lif.step(st, 0.0)
    assert bool(s) and float(st.theta) == pytest.approx(0.1)
    for _ in range(10):
        _, st = lif.step(st, 0.0)
    assert float(st.theta) == pytest.approx(0.1 * math.exp(-5.0 / 100.0), rel=1e-12)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"tau_m": -1.0}, "tau_m"),
        ({"dt": -0.1}, "dt"),
        ({"dt": 30.0}, "dt"),
        ({"tau_exc": 0.05}, "dt"),
        ({"refractory": -1.0}, "refractory"),
        ({"v_reset": -50.0}, "v_reset"),
        ({"synapse": "delta"}, "synapse"),
    ],
)
def test_bad_parameters_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LIF(3, **kwargs)


def test_bad_state_shape():
    lif = LIF(3)
    with pytest.raises(ValueError, match="v: expected shape"):
        lif.initial_state(2, v=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="current"):
        lif.step(lif.initial_state(2), torch.zeros(2, 5))
