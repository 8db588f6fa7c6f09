"""SequenceVAE: the ELBO against a hand Monte Carlo estimate (a step-by-step decoder and
the closed-form Gaussian KL), the IWAE bound against log p(x) by quadrature over a 1-D
latent, KL annealing, generation, and bad input."""

import math

import pytest
import torch

from rnnlab.errors import InputError
from rnnlab.generative import KLAnnealing, SequenceVAE

D = torch.float64


def _tiny(latent=2, seed=0, **kw):
    torch.manual_seed(seed)
    return SequenceVAE(7, latent, hidden_size=6, embedding_size=3, dtype=D, **kw).eval()


X = torch.tensor([[4, 5, 6, 4], [6, 4, 0, 0], [5, 0, 0, 0]])
L = torch.tensor([4, 2, 1])


def _hand_log_px_z(model, x, length, z):
    """log p(x | z) of one sequence by stepping the decoder token by token."""
    tokens = [model.bos_index] + x[:length].tolist()
    targets = x[:length].tolist() + [model.eos_index]
    state, total = None, 0.0
    with torch.no_grad():
        for inp, tgt in zip(tokens, targets):
            logp, state = model.decode_step(torch.tensor([inp]), z[None], state)
            total += float(logp[0, tgt])
    return total


def test_elbo_equals_hand_monte_carlo_estimate_with_closed_form_kl():
    model = _tiny()
    S = 5
    with torch.no_grad():
        elbo, rec, kl = model.elbo(X, L, samples=S, generator=torch.Generator().manual_seed(3))
        mu, logvar = model.encode(X, L)
    eps = torch.randn((S, *mu.shape), generator=torch.Generator().manual_seed(3), dtype=D)
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    kl_closed = torch.distributions.kl_divergence(q, p).sum(-1)
    for b in range(3):
        zs = mu[b] + (0.5 * logvar[b]).exp() * eps[:, b]  # (S, Z)
        hand_rec = sum(_hand_log_px_z(model, X[b], int(L[b]), z) for z in zs) / S
        assert float(rec[b].detach()) == pytest.approx(hand_rec, abs=1e-10)
        assert float(kl[b]) == pytest.approx(float(kl_closed[b]), abs=1e-12)
        assert float(elbo[b]) == pytest.approx(hand_rec - float(kl_closed[b]), abs=1e-10)
    # the closed form agrees with a Monte Carlo estimate of E_q[log q - log p]
    z = q.sample((20000,))
    kl_mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    assert torch.allclose(kl_mc, kl_closed, atol=0.02)


def _log_px_quadrature(model, x, length):
    """log p(x) = log int p(x|z) N(z; 0, 1) dz over a 1-D latent on a fine grid."""
    z = torch.linspace(-10, 10, 2001, dtype=D)[:, None, None]  # (G, 1, 1)
    with torch.no_grad():
        log_px = model.log_likelihood(x[None, :length], torch.tensor([length]), z)[:, 0]
    log_prior = -0.5 * (z[:, 0, 0] ** 2 + math.log(2 * math.pi))
    dz = float(z[1, 0, 0] - z[0, 0, 0])
    return float(torch.logsumexp(log_px + log_prior, 0)) + math.log(dz)


def test_iwae_rises_with_k_and_stays_below_the_exact_log_likelihood():
    model = _tiny(latent=1, seed=1)
    with torch.no_grad():  # a posterior far from the true one, so the gaps are visible
        model.to_posterior.bias.copy_(torch.tensor([1.0, -2.0], dtype=D))
    g = torch.Generator().manual_seed(0)
    R = 600  # independent draws of each bound, as rows of one batch
    for b in range(3):
        x, n = X[b], int(L[b])
        exact = _log_px_quadrature(model, x, n)
        xs, ls = x[None, :n].repeat(R, 1), torch.full((R,), n)
        with torch.no_grad():
            bounds = [model.iwae(xs, ls, k=k, generator=g) for k in (1, 4, 32)]
        means = [float(v.mean()) for v in bounds]
        ses = [float(v.std()) / math.sqrt(R) for v in bounds]
        assert means[0] + 3 * ses[0] < means[1] and means[1] + 3 * ses[1] < means[2]
        assert means[2] < exact
        assert exact - means[2] < exact - means[0]
        # the ELBO (k = 1) agrees with the elbo() of the same model in expectation
        with torch.no_grad():
            elbo = float(model.elbo(xs[:1], ls[:1], samples=R, generator=g)[0])
        assert abs(elbo - means[0]) < 5 * ses[0] + 1e-9


def test_quadrature_log_likelihoods_normalise_over_short_sequences():
    """The oracle itself: p(x) over every sequence of length <= 3 of a 3-token alphabet
    is below 1 and the remaining mass (longer sequences) is what the decoder gives them."""
    model = _tiny(latent=1, seed=2)
    total = 0.0
    seqs = [[]]
    for n in range(1, 4):
        seqs += [[a] + s for a in (4, 5, 6) for s in seqs if len(s) == n - 1]
    for s in seqs:
        if s:
            total += math.exp(_log_px_quadrature(model, torch.tensor(s), len(s)))
    assert 0 < total < 1


def test_kl_annealing_ends_at_one_and_rejects_other_ends():
    sched = KLAnnealing(10)
    assert sched(0) == 0.0 and sched(5) == pytest.approx(0.5) and sched(10) == sched(99) == 1.0
    logistic = KLAnnealing(10, shape="logistic")
    assert logistic(0) < 0.01 and logistic(5) == pytest.approx(0.5) and logistic(10) == 1.0
    with pytest.raises(InputError, match="end"):
        KLAnnealing(10, end=0.5)
    with pytest.raises(InputError, match="shape"):
        KLAnnealing(10, shape="cosine")


def test_training_lowers_the_loss_and_generation_shapes():
    torch.manual_seed(0)
    model = SequenceVAE(7, 2, hidden_size=16, embedding_size=4, word_dropout=0.2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for step in range(20):
        loss, tokens, parts = model.loss(X, L, kl_weight=KLAnnealing(10)(step))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss.detach())
    assert float(loss.detach()) < first and tokens == int((L + 1).sum()) and parts["kl"] >= 0
    model.eval()
    out = model.sample(4, temperature=0.5, max_length=6)
    assert len(out) == 4 and all(len(s) <= 6 for s in out)
    path = model.interpolate(X[0], X[2, :1], steps=3, max_length=6)
    assert len(path) == 3
    n, act = model.active_units(X, L)
    assert 0 <= n <= 2 and act.shape == (2,)


def test_bad_input():
    with pytest.raises(InputError, match="latent_size"):
        SequenceVAE(7, 0)
    model = _tiny()
    with pytest.raises(InputError, match="temperature"):
        model.sample(2, temperature=0)
    with pytest.raises(InputError, match="temperature"):
        model.decode(torch.zeros(1, 2, dtype=D), temperature=-1.0)
    with pytest.raises(InputError, match="x"):
        model.elbo(torch.tensor([4, 5, 6]))  # 1-D, not (batch, time)
    with pytest.raises(InputError, match="x"):
        model.elbo(torch.tensor([[4.0, 5.0]]))
    with pytest.raises(InputError, match="x"):
        model.elbo(torch.tensor([[4, 99]]))
    with pytest.raises(InputError, match="lengths"):
        model.elbo(X, torch.tensor([5, 1, 1]))
    with pytest.raises(InputError, match="x_a"):
        model.interpolate(X, X[0])
    with pytest.raises(InputError, match="kl_weight"):
        model.loss(X, L, kl_weight=2.0)
