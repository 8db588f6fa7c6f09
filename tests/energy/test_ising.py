"""Ising model: energies and exact enumeration against hand-built bond lists and the 1-D
closed form, every sampler's long-run averages against the enumeration within their error
bars, detailed balance of one update against the exact transition probabilities, the
estimators on a process with a known autocorrelation time, Onsager's and Yang's formulas,
and bad input."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from rnnlab._threads import torch_threads
from rnnlab.energy import (
    CRITICAL_TEMPERATURE,
    IsingModel,
    estimate_observables,
    onsager_energy,
    onsager_magnetization,
)
from rnnlab.energy.ising import (
    heat_bath_flips,
    integrated_autocorrelation_time,
    local_field,
    metropolis_flips,
    wolff_update,
)
from rnnlab.errors import InputError

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _bonds(shape, periodic):
    """Nearest-neighbour bonds (i, j) of a 2-D lattice, each once, written out by hand."""
    L0, L1 = shape
    out = []
    for x in range(L0):
        for y in range(L1):
            i = x * L1 + y
            if x + 1 < L0 or periodic:
                out.append((i, ((x + 1) % L0) * L1 + y))
            if y + 1 < L1 or periodic:
                out.append((i, x * L1 + (y + 1) % L1))
    return out


def _random_model(N, g, field=True, ferro=False):
    J = torch.randn(N, N, generator=g, dtype=F64)
    J = (J + J.T) / 2
    if ferro:
        J = J.abs()
    J.fill_diagonal_(0.0)
    h = torch.randn(N, generator=g, dtype=F64) * 0.5 if field else 0.0
    return IsingModel.from_couplings(J, field=h), J, h


def _states(N):
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=N)), dtype=F64)


# --------------------------------------------------------------------------- energies, exact


@pytest.mark.parametrize("shape,periodic", [((3, 3), True), ((2, 3), False), ((4, 4), True)])
def test_lattice_energy_matches_a_hand_built_bond_list(shape, periodic):
    g = torch.Generator().manual_seed(0)
    model = IsingModel(shape, coupling=0.7, field=0.3, periodic=periodic, moment=2.0, dtype=F64)
    s = torch.where(torch.rand(5, *shape, generator=g) < 0.5, 1.0, -1.0).to(F64)
    flat = s.reshape(5, -1)
    want = [
        -0.7 * sum(float(f[i] * f[j]) for i, j in _bonds(shape, periodic)) - 0.6 * float(f.sum())
        for f in flat
    ]
    torch.testing.assert_close(model.energy(s), torch.tensor(want, dtype=F64))
    # colour classes: a partition of the sites into independent sets
    classes = model.classes
    assert len(classes) == (2 if shape != (3, 3) else 4)
    assert bool(torch.stack(classes).sum(0).eq(1).all())
    for i, j in _bonds(shape, periodic):
        assert not any(bool(c[i] and c[j]) for c in classes)


def test_exact_enumeration_by_hand_on_a_general_model():
    g = torch.Generator().manual_seed(1)
    model, J, h = _random_model(5, g)
    T = 1.7
    S = _states(5)
    E = torch.tensor([float(-0.5 * s @ J @ s - h @ s) for s in S], dtype=F64)
    M = S.sum(-1)
    p = torch.exp(-E / T)
    p /= p.sum()
    ex = model.exact(T)
    assert ex.energy == pytest.approx(float(p @ E) / 5, rel=1e-12)
    assert ex.abs_magnetization == pytest.approx(float(p @ M.abs()) / 5, rel=1e-12)
    c = (float(p @ E**2) - float(p @ E) ** 2) / (5 * T**2)
    chi = (float(p @ M**2) - float(p @ M) ** 2) / (5 * T)
    assert ex.specific_heat == pytest.approx(c, rel=1e-10)
    assert ex.susceptibility == pytest.approx(chi, rel=1e-10)
    u = 1 - float(p @ M**4) / (3 * float(p @ M**2) ** 2)
    assert model.exact_binder(T) == pytest.approx(u, rel=1e-12)


def test_exact_enumeration_matches_the_closed_form_of_the_ring():
    # periodic chain of N spins: Z = (2 cosh K)^N + (2 sinh K)^N, K = J / T
    N, J = 12, 1.3
    model = IsingModel((N,), coupling=J, dtype=F64)
    temps = torch.tensor([0.5, 1.0, 2.0, 5.0], dtype=F64)
    ex = model.exact(temps)
    for k, T in enumerate(temps.tolist()):
        K = J / T
        lp, lm = 2 * math.cosh(K), 2 * math.sinh(K)
        Z = lp**N + lm**N
        e = -J * (lp ** (N - 1) * 2 * math.sinh(K) + lm ** (N - 1) * 2 * math.cosh(K)) / Z
        assert float(ex.energy[k]) == pytest.approx(e, rel=1e-10)


# --------------------------------------------------------------------------- long runs


def _assert_matches_exact(est, ex, binder, z_max=4.0):
    for name, want in zip(ex._fields, ex):
        got = getattr(est, name)
        assert 0 < got.error < 0.05 * max(1.0, abs(want)), (name, got)
        assert abs(got.value - want) < z_max * got.error, (name, got, want)
    assert abs(est.binder.value - binder) < z_max * est.binder.error, (est.binder, binder)


@pytest.mark.parametrize("method", ["metropolis", "heat_bath", "wolff"])
@pytest.mark.parametrize("shape,T", [((3, 3), 2.0), ((4, 4), 2.5)])
def test_long_run_averages_equal_the_enumeration(method, shape, T):
    model = IsingModel(shape, dtype=F64)
    g = torch.Generator().manual_seed(10 * len(method) + shape[0])
    sweeps = 1000 if method == "wolff" else 2000  # a cluster flip decorrelates more
    run = model.sample(T, sweeps, chains=16, method=method, burn_in=100, generator=g)
    assert run.energy.shape == (16, sweeps) and run.states.shape == (16, *shape)
    # the run's last record is the final state's
    torch.testing.assert_close(run.energy[:, -1], model.energy(run.states) / model.num_spins)
    _assert_matches_exact(model.observables(run, T), model.exact(T), model.exact_binder(T))


@pytest.mark.parametrize("method", ["metropolis", "heat_bath", "wolff"])
def test_long_run_on_an_open_lattice_equals_the_enumeration(method):
    model = IsingModel((3, 4), coupling=0.8, periodic=False, dtype=F64)
    T = 1.6
    g = torch.Generator().manual_seed(len(method))
    run = model.sample(T, 2000, chains=16, method=method, burn_in=100, generator=g)
    _assert_matches_exact(model.observables(run, T), model.exact(T), model.exact_binder(T))


@pytest.mark.parametrize("method", ["metropolis", "heat_bath", "wolff"])
@pytest.mark.parametrize("shape", [(10,), (2, 2), (2, 2, 2)])
def test_rings_and_tiny_tori_equal_the_enumeration(method, shape):
    # zero-field spins are common here: with a(0) = 1 the checkerboard Metropolis sweep
    # cycles between zero-energy states of the 2x2 torus and the ring and never mixes
    model = IsingModel(shape, dtype=F64)
    T = 2.0
    g = torch.Generator().manual_seed(len(shape) + len(method))
    run = model.sample(T, 2000, chains=8, method=method, burn_in=100, generator=g)
    _assert_matches_exact(model.observables(run, T), model.exact(T), model.exact_binder(T))


@pytest.mark.parametrize("method", ["metropolis", "heat_bath"])
def test_long_run_with_fields_and_per_chain_temperatures(method):
    g = torch.Generator().manual_seed(2)
    model, _, _ = _random_model(6, g)
    temps = torch.tensor([1.5] * 12 + [3.0] * 12, dtype=F64)
    run = model.sample(temps, 2000, chains=24, method=method, burn_in=100, generator=g)
    for part, T in ((slice(0, 12), 1.5), (slice(12, 24), 3.0)):
        est = estimate_observables(run.energy[part], run.magnetization[part], T, 6)
        _assert_matches_exact(est, model.exact(T), model.exact_binder(T))


# --------------------------------------------------------------------------- detailed balance


def _boltzmann(model, S, T):
    E = model.energy(S.reshape(len(S), *model.shape))
    p = torch.exp(-(E - E.min()) / T)
    return p / p.sum()


def _empirical(step, S, R):
    """Transition matrix of ``step`` estimated from R chains started in every state."""
    n = len(S)
    start = S.repeat_interleave(R, 0)  # (n R, N)
    end = step(start)
    codes = ((end > 0).long() * (2 ** torch.arange(S.shape[1] - 1, -1, -1))).sum(-1)
    P = torch.zeros(n, n, dtype=F64)
    P.index_put_((torch.arange(n).repeat_interleave(R), codes), torch.ones(n * R, dtype=F64), True)
    return P / R


def _check_transition(P_hat, P, pi, R):
    sd = torch.sqrt(P * (1 - P) / R) + 1e-12
    assert bool(((P_hat - P).abs() <= 5 * sd + 1e-9).all()), (P_hat - P).abs().max()
    torch.testing.assert_close(P.sum(1), torch.ones(len(P), dtype=F64))
    flow = pi[:, None] * P
    torch.testing.assert_close(flow, flow.T, rtol=0, atol=1e-12)  # detailed balance
    flow_hat = pi[:, None] * P_hat
    flow_sd = pi[:, None] * sd
    assert bool(((flow_hat - flow_hat.T).abs() <= 5 * (flow_sd + flow_sd.T)).all())


@pytest.mark.parametrize("method", ["metropolis", "heat_bath"])
def test_one_single_spin_update_satisfies_detailed_balance(method):
    g = torch.Generator().manual_seed(3)
    model, _, _ = _random_model(3, g)
    T, site, R = 1.3, 1, 4000
    S = _states(3)
    pi = _boltzmann(model, S, T)
    beta = torch.full((len(S) * R, 1), 1 / T, dtype=F64)
    flips = metropolis_flips if method == "metropolis" else heat_bath_flips

    def step(s):  # the class {site}: its spin, its local field
        phi = local_field(s, model.neighbors, model.bonds, model.field)[:, [site]]
        u = torch.rand(s.shape[0], 1, generator=g, dtype=F64)
        s = s.clone()
        s[:, [site]] = torch.where(flips(s[:, [site]], phi, beta, u), -s[:, [site]], s[:, [site]])
        return s

    P_hat = _empirical(step, S, R)
    # exact: only s_site may change; flip with min(1, e^-dE/T) or set by the heat bath
    E = model.energy(S)
    P = torch.zeros(8, 8, dtype=F64)
    for a in range(8):
        flipped = S[a].clone()
        flipped[site] *= -1
        b = int(((flipped > 0).long() * torch.tensor([4, 2, 1])).sum())
        dE = float(E[b] - E[a])
        if method == "metropolis":
            p = 0.5 if dE == 0 else min(1.0, math.exp(-dE / T))
        else:
            p = 1 / (1 + math.exp(dE / T))
        P[a, b] += p
        P[a, a] += 1 - p
    _check_transition(P_hat, P, pi, R)


def test_one_wolff_cluster_flip_satisfies_detailed_balance():
    g = torch.Generator().manual_seed(4)
    model, J, _ = _random_model(3, g, field=False, ferro=True)
    T, R = 1.1, 4000
    S = _states(3)
    pi = _boltzmann(model, S, T)
    n = len(S)
    beta = torch.full((n * R, 1), 1 / T, dtype=F64)

    def step(s):
        seeds = torch.randint(3, (s.shape[0],), generator=g)
        return wolff_update(s, model.neighbors, model.bonds, beta, seeds, g)[0]

    P_hat = _empirical(step, S, R)
    # exact: average over the seed and the 3 bonds' open/closed states
    pairs = [(0, 1), (0, 2), (1, 2)]
    P = torch.zeros(n, n, dtype=F64)
    for a in range(n):
        s = S[a]
        for seed in range(3):
            for open_ in itertools.product([False, True], repeat=3):
                w = 1.0 / 3
                for (i, j), o in zip(pairs, open_):
                    if s[i] == s[j]:  # only aligned bonds are tried
                        p = 1 - math.exp(-2 * float(J[i, j]) / T)
                        w *= p if o else 1 - p
                    elif o:
                        w = 0.0
                cluster = {seed}
                for _ in range(3):
                    for (i, j), o in zip(pairs, open_):
                        if o and (i in cluster or j in cluster):
                            cluster |= {i, j}
                new = s.clone()
                new[list(cluster)] *= -1
                b = int(((new > 0).long() * torch.tensor([4, 2, 1])).sum())
                P[a, b] += w
    _check_transition(P_hat, P, pi, R)


# --------------------------------------------------------------------------- estimators


def test_autocorrelation_time_and_error_bars_of_an_ar1_process():
    g = torch.Generator().manual_seed(5)
    phi, C, T = 0.8, 64, 4000
    x = torch.zeros(C, T, dtype=F64)
    noise = torch.randn(C, T, generator=g, dtype=F64)
    x[:, 0] = noise[:, 0] / math.sqrt(1 - phi**2)
    for t in range(1, T):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    tau_true = (1 + phi) / (2 * (1 - phi))  # 4.5 sweeps
    assert integrated_autocorrelation_time(x) == pytest.approx(tau_true, rel=0.1)
    # the error bar of one chain's mean against the spread of the 64 chains' means
    errors = [
        estimate_observables(x[c : c + 1] * 0.1, x[c : c + 1] * 0.0, 1.0, 1).energy.error
        for c in range(C)
    ]
    spread = float((x.mean(1) * 0.1).std())
    assert float(np.mean(errors)) == pytest.approx(spread, rel=0.25)


# --------------------------------------------------------------------------- Onsager, Yang


def test_onsager_energy_against_scipy_and_known_values():
    special = pytest.importorskip("scipy.special")
    T = np.linspace(0.3, 6.0, 40)
    b = 1 / T
    k = 2 * np.sinh(2 * b) / np.cosh(2 * b) ** 2
    bracket = 1 + 2 / np.pi * (2 * np.tanh(2 * b) ** 2 - 1) * special.ellipk(k**2)
    want = -1 / np.tanh(2 * b) * bracket  # scipy's ellipk takes m = k^2
    np.testing.assert_allclose(onsager_energy(T), want, rtol=1e-12, atol=1e-12)
    assert onsager_energy(CRITICAL_TEMPERATURE) == pytest.approx(-math.sqrt(2), rel=1e-12)
    assert CRITICAL_TEMPERATURE == pytest.approx(2.269185314213022, rel=1e-14)
    # high temperature: e = -2 tanh(beta) + O(beta^3); coupling J scales e and T together
    assert onsager_energy(100.0) == pytest.approx(-2 * math.tanh(0.01), rel=1e-3)
    assert onsager_energy(2.0 * 2.5, coupling=2.0) == pytest.approx(2.0 * onsager_energy(2.5))
    # a tensor in, a tensor out
    assert isinstance(onsager_energy(torch.tensor([1.0, 2.0])), torch.Tensor)


def test_yang_magnetization():
    assert onsager_magnetization(CRITICAL_TEMPERATURE + 1e-9) == 0.0
    assert onsager_magnetization(3.0) == 0.0
    assert 0 < onsager_magnetization(CRITICAL_TEMPERATURE - 1e-3) < 0.6
    for T in (0.5, 0.8, 1.0):  # low temperature: m = 1 - 2 e^{-8 beta} + O(e^{-12 beta})
        assert onsager_magnetization(T) == pytest.approx(1 - 2 * math.exp(-8 / T), abs=1e-4)
    t = np.linspace(0.5, 2.2, 20)
    assert np.all(np.diff(onsager_magnetization(t)) < 0)


def test_a_large_lattice_is_close_to_onsager():
    model = IsingModel((24, 24))
    g = torch.Generator().manual_seed(6)
    for T in (1.8, 3.0):
        run = model.sample(T, 300, chains=4, method="heat_bath", burn_in=200, generator=g,
                           initial="up")  # fmt: skip
        est = model.observables(run, T, block_size=20)
        assert est.energy.value == pytest.approx(onsager_energy(T), abs=0.01)
        if T < CRITICAL_TEMPERATURE:
            assert est.abs_magnetization.value == pytest.approx(onsager_magnetization(T), abs=0.01)


# --------------------------------------------------------------------------- bad input


def test_ising_bad_input():
    model = IsingModel((3, 3))
    with pytest.raises(InputError, match="temperature"):
        model.sample(0.0, 10)
    with pytest.raises(InputError, match="temperature"):
        model.sample(torch.tensor([1.0, -1.0]), 10, chains=2)
    with pytest.raises(InputError, match="temperature"):
        model.exact(-1.0)
    with pytest.raises(InputError, match="method"):
        model.sample(1.0, 10, method="gibbs")
    with pytest.raises(InputError, match="sweeps"):
        model.sample(1.0, 0)
    with pytest.raises(InputError, match="method: 'wolff'"):
        IsingModel((3, 3), field=0.1).sample(1.0, 10, method="wolff")
    with pytest.raises(InputError, match="exact.*16 spins.*25"):
        IsingModel((5, 5)).exact(1.0)
    with pytest.raises(InputError, match="couplings.*symmetric"):
        IsingModel.from_couplings(torch.tensor([[0.0, 1.0], [0.5, 0.0]]))
    with pytest.raises(InputError, match="couplings.*diagonal"):
        IsingModel.from_couplings(torch.eye(2))
    with pytest.raises(InputError, match="field"):
        IsingModel.from_couplings(torch.zeros(2, 2), field=torch.zeros(3))
    with pytest.raises(InputError, match="shape"):
        IsingModel((3, 0))
    with pytest.raises(InputError, match="states"):
        model.energy(torch.zeros(3, 3))
    with pytest.raises(InputError, match="onsager|temperature"):
        onsager_energy(0.0)
