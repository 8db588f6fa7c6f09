"""Hopfield networks, classical and modern: storage rules against their formulas written out
by hand, the energy as a Lyapunov function of asynchronous recall, fixed points below
capacity, Storkey against Hebb, the two-cycle of synchronous recall, Ramsauer et al.'s
update as the gradient of lse and as attention, and bad input."""

from __future__ import annotations

import pytest
import torch

from rnnlab._threads import torch_threads
from rnnlab.energy import Hopfield, HopfieldLayer, ModernHopfield
from rnnlab.energy.hopfield import (
    async_sweep,
    async_update,
    hebb_weights,
    hopfield_energy,
    storkey_weights,
)
from rnnlab.energy.modern_hopfield import modern_hopfield_energy, modern_hopfield_update
from rnnlab.errors import InputError

F64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _patterns(P, n, g, bias=0.5):
    return torch.where(torch.rand(P, n, generator=g, dtype=F64) < bias, 1.0, -1.0).to(F64)


def _random_net(n, g):
    w = torch.randn(n, n, generator=g, dtype=F64)
    w = (w + w.T) / 2
    w.fill_diagonal_(0.0)
    return w, torch.randn(n, generator=g, dtype=F64) * 0.5


# --------------------------------------------------------------------------- storage


def test_hebb_rule_is_the_outer_product_sum_with_zero_diagonal():
    g = torch.Generator().manual_seed(0)
    X = _patterns(4, 7, g)
    w = hebb_weights(X)
    for i in range(7):
        for j in range(7):
            want = 0.0 if i == j else sum(float(X[m, i] * X[m, j]) for m in range(4)) / 7
            assert float(w[i, j]) == pytest.approx(want, abs=1e-12)


def test_storkey_rule_matches_the_formula_written_with_loops():
    g = torch.Generator().manual_seed(1)
    P, n = 4, 6
    X = _patterns(P, n, g)
    w = [[0.0] * n for _ in range(n)]
    for mu in range(P):
        xi = X[mu].tolist()

        def h(i, j, w=w, xi=xi):  # h_ij = sum_{k != i, j} w_ik xi_k
            return sum(w[i][k] * xi[k] for k in range(n) if k not in (i, j))

        new = [
            [
                0.0 if i == j else w[i][j] + (xi[i] * xi[j] - xi[i] * h(j, i) - h(i, j) * xi[j]) / n
                for j in range(n)
            ]
            for i in range(n)
        ]
        w = new
    got = storkey_weights(X)
    torch.testing.assert_close(got, torch.tensor(w, dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(got, got.T)


# --------------------------------------------------------------------------- dynamics


def test_async_updates_never_increase_the_energy_at_any_step():
    g = torch.Generator().manual_seed(2)
    for trial in range(10):
        n, B = 12 + 2 * trial, 16
        if trial % 2:
            w, theta = _random_net(n, g)
        else:  # a Hebbian net beyond capacity (many spurious minima)
            w, theta = hebb_weights(_patterns(n // 2, n, g)), torch.zeros(n, dtype=F64)
        s = _patterns(B, n, g)
        e = hopfield_energy(w, theta, s)
        for _ in range(3 * n):
            units = torch.randint(n, (B,), generator=g)
            s = async_update(w, theta, s, units)
            e_new = hopfield_energy(w, theta, s)
            assert bool((e_new <= e + 1e-12).all())
            e = e_new


def test_async_sweep_updates_every_unit_in_the_given_order():
    g = torch.Generator().manual_seed(3)
    n, B = 9, 5
    w, theta = _random_net(n, g)
    s0 = _patterns(B, n, g)
    order = torch.rand(B, n, generator=g).argsort(1)
    got = async_sweep(w, theta, s0, order)
    for b in range(B):  # the reference: one unit at a time, in order, by hand
        s = s0[b].tolist()
        for i in order[b].tolist():
            f = sum(float(w[i, j]) * s[j] for j in range(n)) - float(theta[i])
            s[i] = 1.0 if f > 0 else (-1.0 if f < 0 else s[i])
        assert got[b].tolist() == s


def test_one_async_sweep_of_recall_visits_all_units():
    # no weights: every unit must go to -sgn(theta) in the first sweep, whatever the order
    n = 50
    net = Hopfield(n, dtype=F64)
    g = torch.Generator().manual_seed(4)
    net.threshold.copy_(torch.randn(n, generator=g, dtype=F64))
    s = _patterns(8, n, g)
    r = net.recall(s, max_sweeps=1, generator=g)
    assert bool((r.states == -torch.sign(net.threshold)).all())


def test_recall_is_seeded_and_lowers_the_energy_to_a_fixed_point():
    g = torch.Generator().manual_seed(5)
    n = 64
    net = Hopfield(n, dtype=F64).store(_patterns(12, n, g))
    s = _patterns(20, n, g)
    r1 = net.recall(s, generator=torch.Generator().manual_seed(9))
    r2 = net.recall(s, generator=torch.Generator().manual_seed(9))
    assert torch.equal(r1.states, r2.states) and torch.equal(r1.sweeps, r2.sweeps)
    assert bool(r1.converged.all())
    assert bool((net.energy(r1.states) <= net.energy(s) + 1e-12).all())
    # a fixed point: every unit is aligned with its local field (or the field is zero)
    field = r1.states @ net.weight.T - net.threshold
    assert bool((field * r1.states >= 0).all())


@pytest.mark.parametrize("rule", ["hebb", "storkey"])
def test_stored_patterns_are_fixed_points_below_capacity(rule):
    g = torch.Generator().manual_seed(6)
    n, P = 200, 8  # P = 8 < n / (2 ln n) = 18.9
    X = _patterns(P, n, g)
    net = Hopfield(n, dtype=F64).store(X, rule=rule)
    for mode in ("async", "sync"):
        r = net.recall(X, mode=mode, generator=g)
        assert torch.equal(r.states, X)
        assert bool(r.converged.all()) and int(r.sweeps.max()) == 0
    noisy = torch.where(torch.rand(P, n, generator=g, dtype=F64) < 0.15, -X, X)
    r = net.recall(noisy, generator=g)
    assert torch.equal(r.states, X)


def test_storkey_beats_hebb_on_correlated_patterns():
    g = torch.Generator().manual_seed(7)
    n, P = 100, 10
    stable = {"hebb": 0, "storkey": 0}
    for _ in range(5):
        X = _patterns(P, n, g, bias=0.7)  # correlated: every pattern leans to +1
        for rule in stable:
            r = Hopfield(n, dtype=F64).store(X, rule=rule).recall(X, generator=g)
            stable[rule] += int((r.states == X).all(-1).sum())
    assert stable["storkey"] >= 45  # of 50
    assert stable["hebb"] <= 25


def test_sync_recall_reports_a_two_cycle():
    net = Hopfield(2, dtype=F64)
    net.weight.copy_(torch.tensor([[0.0, -1.0], [-1.0, 0.0]], dtype=F64))
    s = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=F64)
    with pytest.warns(RuntimeWarning, match="two-cycle"):
        r = net.recall(s, mode="sync")
    assert r.converged.tolist() == [False, True]
    assert r.states[0].tolist() in ([1.0, 1.0], [-1.0, -1.0])
    r = net.recall(s, mode="async", generator=torch.Generator().manual_seed(0))
    assert bool(r.converged.all()) and r.states[0].tolist() in ([1.0, -1.0], [-1.0, 1.0])


def test_unbatched_states_keep_their_rank():
    g = torch.Generator().manual_seed(8)
    X = _patterns(3, 30, g)
    net = Hopfield(30, dtype=F64).store(X)
    r = net.recall(X[0])
    assert r.states.shape == (30,) and r.converged.dim() == 0 and torch.equal(r.states, X[0])
    assert net.energy(X[0]).dim() == 0
    assert float(net.energy(X[0])) == pytest.approx(float(net.energy(X)[0]))


def test_hopfield_bad_input():
    net = Hopfield(4)
    with pytest.raises(InputError, match="patterns.*-1, \\+1"):
        net.store(torch.tensor([[1.0, 0.0, 1.0, -1.0]]))
    with pytest.raises(InputError, match="patterns.*4 units"):
        net.store(torch.ones(2, 5))
    with pytest.raises(InputError, match="rule"):
        net.store(torch.ones(1, 4), rule="oja")
    with pytest.raises(InputError, match="mode"):
        net.recall(torch.ones(1, 4), mode="parallel")
    with pytest.raises(InputError, match="max_sweeps"):
        net.recall(torch.ones(1, 4), max_sweeps=0)
    with pytest.raises(InputError, match="states"):
        net.energy(torch.full((2, 4), 0.5))
    with pytest.raises(InputError, match="num_units"):
        Hopfield(0)


# --------------------------------------------------------------------------- modern


def test_modern_update_is_the_gradient_of_lse():
    g = torch.Generator().manual_seed(10)
    X = torch.randn(7, 5, generator=g, dtype=F64)
    xi = torch.randn(4, 5, generator=g, dtype=F64, requires_grad=True)
    beta = 2.5
    lse = (torch.logsumexp(beta * xi @ X.T, -1) / beta).sum()
    (grad,) = torch.autograd.grad(lse, xi)
    torch.testing.assert_close(modern_hopfield_update(xi.detach(), X, beta), grad)
    # and the energy is that of Ramsauer et al. eq. 2, term by term
    e = modern_hopfield_energy(xi.detach(), X, beta)
    want = (
        -torch.logsumexp(beta * xi.detach() @ X.T, -1) / beta
        + 0.5 * (xi.detach() ** 2).sum(-1)
        + torch.log(torch.tensor(7.0, dtype=F64)) / beta
        + 0.5 * X.norm(dim=-1).max() ** 2
    )
    torch.testing.assert_close(e, want)


def test_modern_update_never_increases_the_energy():
    g = torch.Generator().manual_seed(11)
    for trial in range(30):
        N, d = 3 + trial % 7, 2 + trial % 5
        beta = 0.2 + 0.3 * trial
        mem = ModernHopfield(beta=beta).store(torch.randn(N, d, generator=g, dtype=F64) * 2)
        xi = torch.randn(10, d, generator=g, dtype=F64) * 3
        for _ in range(5):
            new = mem.update(xi)
            assert bool((mem.energy(new) <= mem.energy(xi) + 1e-10).all())
            xi = new
        assert bool((mem.energy(xi) >= -1e-10).all())  # E >= 0 (Ramsauer et al., Lemma A1)


def test_modern_hopfield_retrieves_separated_patterns_in_one_step():
    g = torch.Generator().manual_seed(12)
    N, d = 200, 64  # far more patterns than a classical net of 64 units could hold
    X = torch.nn.functional.normalize(torch.randn(N, d, generator=g, dtype=F64), dim=-1) * 4
    mem = ModernHopfield(beta=4.0).store(X)
    noisy = X + 0.5 * torch.randn(N, d, generator=g, dtype=F64)
    out = mem.update(noisy)
    err = (out - X).norm(dim=-1) / X.norm(dim=-1)
    assert float(err.max()) < 1e-3
    torch.testing.assert_close(mem.retrieve(noisy), out, atol=1e-3, rtol=0)


def test_modern_hopfield_forward_is_attention():
    g = torch.Generator().manual_seed(13)
    q = torch.randn(2, 5, 8, generator=g, dtype=F64)
    k = torch.randn(2, 7, 8, generator=g, dtype=F64)
    v = torch.randn(2, 7, 3, generator=g, dtype=F64)
    layer = ModernHopfield(beta=0.7)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.7)
    torch.testing.assert_close(layer(q, k, v), want)
    # two steps: the queries first move on the keys
    q2 = torch.softmax(0.7 * q @ k.transpose(-1, -2), -1) @ k
    want2 = torch.softmax(0.7 * q2 @ k.transpose(-1, -2), -1) @ v
    torch.testing.assert_close(ModernHopfield(beta=0.7, steps=2)(q, k, v), want2)
    # stored patterns serve as keys and values
    mem = ModernHopfield(beta=0.7).store(k[0])
    torch.testing.assert_close(mem(q[0]), mem.update(q[0]))


def test_hopfield_layer_formula_and_gradcheck():
    torch.manual_seed(14)
    layer = HopfieldLayer(4, 3, 5, output_size=2, dtype=F64)
    R = torch.randn(2, 6, 4, dtype=F64, requires_grad=True)
    Y = torch.randn(2, 7, 3, dtype=F64, requires_grad=True)
    wq, wk, wv = layer.query_proj.weight.T, layer.key_proj.weight.T, layer.value_proj.weight.T
    beta = 1 / 5**0.5
    want = torch.softmax(beta * (R @ wq) @ (Y @ wk).transpose(-1, -2), -1) @ (Y @ wk) @ wv
    torch.testing.assert_close(layer(R, Y), want)  # Ramsauer et al. eq. 10
    assert torch.autograd.gradcheck(lambda r, y: layer(r, y), (R, Y))
    learned = HopfieldLayer(4, 3, 5, num_stored=9, dtype=F64)
    out = learned(R)
    out.sum().backward()
    assert out.shape == (2, 6, 5) and learned.stored.grad is not None


def test_modern_hopfield_bad_input():
    with pytest.raises(InputError, match="beta"):
        ModernHopfield(beta=0.0)
    with pytest.raises(InputError, match="patterns"):
        ModernHopfield().update(torch.randn(2, 3))
    mem = ModernHopfield().store(torch.randn(4, 3))
    with pytest.raises(InputError, match="xi.*3"):
        mem.energy(torch.randn(2, 5))
    with pytest.raises(InputError, match="values"):
        mem(torch.randn(2, 3), torch.randn(4, 3), torch.randn(5, 2))
    with pytest.raises(InputError, match="queries"):
        HopfieldLayer(4, 3, 5)(torch.randn(2, 3), torch.randn(4, 3))
