"""Boltzmann machine oracles: enumeration of every state, the learning rule against
autograd of the enumerated log-likelihood, the Gibbs sampler against the exact
distribution, and training through the loop."""

import math

import pytest
import torch

from rnnlab._threads import torch_threads
from rnnlab.energy.boltzmann import BoltzmannMachine, boltzmann_energy
from rnnlab.energy.rbm import binary_states

DT = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one intra-op thread is fastest and leaves the other core free."""
    with torch_threads(1):
        yield


def _random_bm(V, H, scale=1.0, seed=0):
    torch.manual_seed(seed)
    m = BoltzmannMachine(V, H, dtype=DT)
    with torch.no_grad():
        w = torch.triu(torch.randn(V + H, V + H, dtype=DT) * scale, 1)
        m.weight.copy_(w + w.t())
        m.bias.normal_(0.0, scale)
    return m


def test_energy_matches_the_pairwise_sum_and_log_z_enumerates():
    m = _random_bm(3, 2)
    s = binary_states(5, 0, 32, dtype=DT)
    W, b = m.weight.detach(), m.bias.detach()
    brute = torch.stack(
        [-sum(W[i, j] * x[i] * x[j] for i in range(5) for j in range(i + 1, 5)) - b @ x for x in s]
    )
    assert torch.allclose(m.energy(s), brute, atol=1e-12)
    log_z = float(torch.logsumexp(-brute, 0))
    assert abs(float(m.log_partition().detach()) - log_z) < 1e-12
    v = binary_states(3, 0, 8, dtype=DT)
    assert abs(float(torch.logsumexp(m.log_likelihood(v).detach(), 0))) < 1e-12


@pytest.mark.parametrize("H", [0, 2])
def test_learning_rule_is_the_exact_gradient_of_the_log_likelihood(H):
    """<s_i s_j>_clamped - <s_i s_j>_free by enumeration = autograd of mean log p(v); the
    sampled (Gibbs) estimate agrees within its Monte Carlo error."""
    m = _random_bm(4, H, scale=0.7, seed=1)
    g = torch.Generator().manual_seed(0)
    data = torch.bernoulli(torch.full((6, 4), 0.5, dtype=DT), generator=g)
    ll = m.log_likelihood(data).mean()
    gW, gb = torch.autograd.grad(ll, [m.weight, m.bias])
    # autograd of a symmetric parameterisation: each w_ij appears as W_ij and W_ji, and the
    # rule's gradient for the shared weight w_ij is the sum of the two entries
    gW_sym = gW + gW.t()
    gW_sym.fill_diagonal_(0.0)
    exact = m.learning_gradient(data, method="exact")
    assert torch.allclose(-exact.weight, gW_sym, atol=1e-12)
    assert torch.allclose(-exact.bias, gb, atol=1e-12)
    # Gibbs estimate: many chains, long enough to mix on 4-6 units
    reps = 3000
    est = m.learning_gradient(
        data.repeat(reps, 1), chains=20_000, clamped_sweeps=15, free_sweeps=15, generator=g
    )
    tol = 5 * 0.5 / math.sqrt(len(data) * reps) + 5 * 0.5 / math.sqrt(20_000)
    assert (est.weight - exact.weight).abs().max() < tol
    assert (est.bias - exact.bias).abs().max() < tol


def test_gibbs_sampler_with_annealing_reaches_the_exact_distribution():
    m = _random_bm(3, 2, scale=1.2, seed=2)
    s = binary_states(5, 0, 32, dtype=DT)
    exact = torch.softmax(-m.energy(s).detach(), 0)
    x = m.sample(
        30_000,
        sweeps=20,
        annealing=[(4.0, 2), (2.0, 2)],
        generator=torch.Generator().manual_seed(1),
    )
    idx = (x * (2 ** torch.arange(5, dtype=DT))).sum(1).long()
    freq = torch.bincount(idx, minlength=32).to(DT) / len(x)
    assert (freq - exact).abs().max() < 5 * math.sqrt(0.25 / len(x))


def test_clamped_gibbs_samples_the_hidden_posterior():
    m = _random_bm(2, 2, scale=1.5, seed=3)
    v = torch.tensor([[1.0, 0.0]], dtype=DT)
    start = torch.cat([v.repeat(20_000, 1), torch.zeros(20_000, 2, dtype=DT)], 1)
    out = m.gibbs(start, sweeps=20, clamp_visible=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(out[:, :2], start[:, :2])
    hs = binary_states(2, 0, 4, dtype=DT)
    full = torch.cat([v.repeat(4, 1), hs], 1)
    post = torch.softmax(-boltzmann_energy(full, m.weight.detach(), m.bias.detach()), 0)
    idx = (out[:, 2:] * torch.tensor([1.0, 2.0], dtype=DT)).sum(1).long()
    freq = torch.bincount(idx, minlength=4).to(DT) / len(out)
    assert (freq - post).abs().max() < 5 * math.sqrt(0.25 / len(out))


def test_fit_through_the_trainer_raises_the_likelihood_and_keeps_symmetry(tmp_path):
    g = torch.Generator().manual_seed(0)
    # two correlated pairs: v0 = v1 and v2 = v3 mostly
    a = torch.bernoulli(torch.full((200, 1), 0.5, dtype=DT), generator=g)
    c = torch.bernoulli(torch.full((200, 1), 0.5, dtype=DT), generator=g)
    data = torch.cat([a, a, c, c], 1)
    noise = torch.bernoulli(torch.full((200, 4), 0.05, dtype=DT), generator=g)
    data = (data + noise) % 2
    torch.manual_seed(0)
    m = BoltzmannMachine(4, 1, dtype=DT)
    before = float(m.log_likelihood(data).detach().mean())
    m.fit(
        data,
        epochs=15,
        lr=0.1,
        momentum=0.5,
        batch_size=20,
        chains=50,
        clamped_sweeps=3,
        free_sweeps=1,
        seed=0,
        metrics=tmp_path / "m.jsonl",
    )
    after = float(m.log_likelihood(data).detach().mean())
    assert after > before + 0.5, (before, after)
    W = m.weight.detach()
    assert torch.allclose(W, W.t()) and bool((W.diagonal() == 0).all())
    assert (tmp_path / "m.jsonl").exists()


def test_bad_input_names_the_argument():
    m = BoltzmannMachine(3, 1, dtype=DT)
    with pytest.raises(ValueError, match=r"data: expected values in \[0, 1\]|binary values"):
        m.fit(torch.full((4, 3), 3.0, dtype=DT))
    with pytest.raises(ValueError, match=r"visible: expected shape \(B, 3\)"):
        m.log_likelihood(torch.zeros(2, 5, dtype=DT))
    with pytest.raises(ValueError, match="temperature > 0"):
        m.sample(2, annealing=[(0.0, 1)])
    with pytest.raises(ValueError, match="temperature: expected a number > 0"):
        m.gibbs(torch.zeros(2, 4, dtype=DT), temperature=-1.0)
    with pytest.raises(ValueError, match="at most 20 units"):
        BoltzmannMachine(15, 10, dtype=DT).log_partition()
