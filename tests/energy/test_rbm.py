"""RBM oracles: brute-force enumeration of the joint, exact gradients by autograd of the
enumerated log-likelihood, exact CD-k expectations from the Gibbs transition matrix, AIS
against exact log Z, and the training loop (metrics, checkpoints, exact resume)."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from rnnlab._threads import torch_threads
from rnnlab.energy.rbm import (
    RBM,
    binary_states,
    contrastive_divergence,
    free_energy,
    hidden_probabilities,
    log_partition_exact,
)

DT = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one intra-op thread is fastest and leaves the other core free."""
    with torch_threads(1):
        yield


def _random_rbm(D, H, scale=1.0, visible="bernoulli", seed=0):
    torch.manual_seed(seed)
    m = RBM(D, H, visible=visible, dtype=DT)
    with torch.no_grad():
        m.weight.normal_(0.0, scale)
        m.visible_bias.normal_(0.0, scale)
        m.hidden_bias.normal_(0.0, scale)
    return m


def _joint_energy(m, v, h):
    """E(v, h) for every pair: (S_v, D), (S_h, H) -> (S_v, S_h), written from the energy."""
    inter = (h @ m.weight.detach() @ v.t()).t()  # (S_v, S_h): h^T W v
    e = -inter - (h @ m.hidden_bias.detach())[None, :]
    if m.visible == "bernoulli":
        return e - (v @ m.visible_bias.detach())[:, None]
    return e + 0.5 * ((v - m.visible_bias.detach()) ** 2).sum(-1)[:, None]


def _brute_log_z(m):
    vs = binary_states(m.num_visible, 0, 2**m.num_visible, dtype=DT)
    hs = binary_states(m.num_hidden, 0, 2**m.num_hidden, dtype=DT)
    return torch.logsumexp(-_joint_energy(m, vs, hs).flatten(), 0)


@pytest.mark.parametrize("D,H", [(4, 3), (3, 5)])
def test_free_energy_conditionals_and_log_z_by_enumeration(D, H):
    m = _random_rbm(D, H)
    vs = binary_states(D, 0, 2**D, dtype=DT)
    hs = binary_states(H, 0, 2**H, dtype=DT)
    E = _joint_energy(m, vs, hs)  # (2^D, 2^H)
    # F(v) = -log sum_h exp(-E(v, h))
    assert torch.allclose(m.free_energy(vs), -torch.logsumexp(-E, 1), atol=1e-12)
    # the energy method against the same formula
    i, j = 5 % 2**D, 3
    e = m.energy(vs[i : i + 1], hs[j : j + 1])
    assert torch.allclose(e, E[i, j].reshape(1), atol=1e-12)
    # p(h_j = 1 | v) from the joint
    p_h = torch.softmax(-E, 1)  # (2^D, 2^H) p(h | v)
    assert torch.allclose(m.hidden_probabilities(vs), p_h @ hs, atol=1e-12)
    # p(v_i = 1 | h) from the joint
    p_v = torch.softmax(-E, 0)  # p(v | h)
    assert torch.allclose(m.visible_mean(hs), p_v.t() @ vs, atol=1e-12)
    # log Z: enumeration of the smaller layer against the double sum
    assert abs(m.log_partition("exact").log_z - float(_brute_log_z(m))) < 1e-10
    # p(v) sums to one
    assert abs(float(torch.logsumexp(m.log_likelihood(vs), 0))) < 1e-10


def test_gaussian_log_z_and_free_energy_by_quadrature():
    from scipy import integrate

    m = _random_rbm(1, 3, scale=0.7, visible="gaussian")
    hs = binary_states(3, 0, 8, dtype=DT)

    def unnormalised(x):
        v = torch.tensor([[x]], dtype=DT)
        return float(torch.exp(-_joint_energy(m, v, hs)).sum())

    z, _ = integrate.quad(unnormalised, -30, 30, epsabs=1e-13, limit=200)
    assert abs(m.log_partition("exact").log_z - math.log(z)) < 1e-9
    v = torch.tensor([[0.3], [-1.2]], dtype=DT)
    brute = -torch.logsumexp(-_joint_energy(m, v, hs), 1)
    assert torch.allclose(m.free_energy(v), brute, atol=1e-12)
    # E[v | h] = b + W^T h
    assert torch.allclose(m.visible_mean(hs), m.visible_bias + hs @ m.weight, atol=1e-12)


def _model_statistics(m):
    """Exact <h v^T>, <v>, <h> under the model, by enumerating v."""
    vs = binary_states(m.num_visible, 0, 2**m.num_visible, dtype=DT)
    p = torch.exp(m.log_likelihood(vs))  # (2^D,)
    ph = m.hidden_probabilities(vs)
    return (ph * p[:, None]).t() @ vs, p @ vs, p @ ph


def test_learning_rule_is_the_exact_log_likelihood_gradient():
    """<h v^T>_data - <h v^T>_model (exact expectations) = d mean log p(data) / dW by
    autograd through the enumerated log Z; the CD kernel with exact model samples as the
    chain estimates it without bias (Monte Carlo error bounds)."""
    m = _random_rbm(5, 4, scale=0.8)
    data = torch.bernoulli(
        torch.full((7, 5), 0.4, dtype=DT), generator=torch.Generator().manual_seed(1)
    )
    W, b, c = m.weight, m.visible_bias, m.hidden_bias
    ll = (-free_energy(data, W, b, c, "bernoulli") - log_partition_exact(W, b, c)).mean()
    gW, gb, gc = torch.autograd.grad(ll, [W, b, c])
    with torch.no_grad():
        hv, mv, mh = _model_statistics(m)
        ph = hidden_probabilities(data, W, c)
        rule_W = ph.t() @ data / len(data) - hv
        rule_b = data.mean(0) - mv
        rule_c = ph.mean(0) - mh
    for rule, grad in ((rule_W, gW), (rule_b, gb), (rule_c, gc)):
        assert torch.allclose(rule, grad, atol=1e-12)
    # the kernel (minus the estimate), the chains' hidden states drawn exactly from the
    # marginal p(h) = exp(c^T h + sum_i softplus(b_i + (W^T h)_i)) / Z, one Gibbs step
    hs = binary_states(4, 0, 16, dtype=DT)
    with torch.no_grad():
        log_ph = hs @ c + F.softplus(hs @ W + b).sum(1) - log_partition_exact(W, b, c)
        p = torch.exp(log_ph)
    assert abs(float(p.sum()) - 1) < 1e-12
    g = torch.Generator().manual_seed(2)
    M = 200_000
    chain = hs[torch.multinomial(p, M, replacement=True, generator=g)]
    res = contrastive_divergence(
        data, W.detach(), b.detach(), c.detach(), k=1, chain=chain, generator=g
    )
    # |error| below 5 standard errors of a mean of M terms bounded in [0, 1]
    tol = 5 * 0.5 / math.sqrt(M)
    assert (res.grad_weight + gW).abs().max() < tol
    assert (res.grad_visible_bias + gb).abs().max() < tol
    assert (res.grad_hidden_bias + gc).abs().max() < tol


def _exact_cd_k(m, data, k):
    """The expectation of minus the CD-k estimate, exactly: Gibbs transition matrix on v."""
    vs = binary_states(m.num_visible, 0, 2**m.num_visible, dtype=DT)
    hs = binary_states(m.num_hidden, 0, 2**m.num_hidden, dtype=DT)
    with torch.no_grad():
        ph = m.hidden_probabilities(vs)  # (Sv, H)
        p_h_given_v = torch.exp(hs @ torch.log(ph).t() + (1 - hs) @ torch.log1p(-ph).t()).t()
        pv = m.visible_mean(hs)  # (Sh, D)
        p_v_given_h = torch.exp(vs @ torch.log(pv).t() + (1 - vs) @ torch.log1p(-pv).t()).t()
        T = p_h_given_v @ p_v_given_h  # (Sv, Sv) one block-Gibbs step v -> v'
        idx = (data * (2 ** torch.arange(m.num_visible, dtype=DT))).sum(1).long()
        start = torch.zeros(len(data), len(vs), dtype=DT)
        start[torch.arange(len(data)), idx] = 1.0
        end = (start @ torch.linalg.matrix_power(T, k)).mean(0)  # distribution of v^(k)
        neg_W = (ph * end[:, None]).t() @ vs
        pos_W = m.hidden_probabilities(data).t() @ data / len(data)
    return neg_W - pos_W


def test_cd_k_tends_to_the_exact_gradient_and_the_kernel_matches_its_expectation():
    m = _random_rbm(4, 3, scale=1.5, seed=3)
    data = binary_states(4, 0, 16, dtype=DT)[[0, 3, 5, 6, 9, 15]]
    hv, _, _ = _model_statistics(m)
    with torch.no_grad():
        exact = hv - m.hidden_probabilities(data).t() @ data / len(data)  # minus the gradient
    errs = [float((_exact_cd_k(m, data, k) - exact).abs().max()) for k in (1, 2, 5, 20, 200)]
    assert all(a > b for a, b in zip(errs, errs[1:])), errs
    assert errs[0] > 0.01 and errs[-1] < 1e-8
    # the sampled kernel's mean is the exact CD-k expectation (k = 1 and k = 3)
    g = torch.Generator().manual_seed(4)
    reps = 20_000
    big = data.repeat(reps, 1)
    for k in (1, 3):
        res = contrastive_divergence(
            big,
            m.weight.detach(),
            m.visible_bias.detach(),
            m.hidden_bias.detach(),
            k=k,
            generator=g,
        )
        assert (res.grad_weight - _exact_cd_k(m, data, k)).abs().max() < 5 * 0.5 / math.sqrt(
            len(big)
        )


@pytest.mark.parametrize("H,seed", [(10, 0), (15, 1), (20, 2)])
def test_ais_log_z_agrees_with_exact_within_its_error_bars(H, seed):
    m = _random_rbm(25, H, scale=0.3, seed=seed)
    exact = m.log_partition("exact").log_z
    est = m.log_partition(
        "ais", chains=200, num_temperatures=3000, generator=torch.Generator().manual_seed(seed)
    )
    assert est.log_z_std > 0
    assert abs(est.log_z - exact) < 3 * est.log_z_std + 1e-3, (est.log_z, exact, est.log_z_std)


def test_ais_with_base_rate_model_and_gaussian_visible_units():
    m = _random_rbm(12, 8, scale=0.3, seed=5)
    data = torch.bernoulli(torch.full((50, 12), 0.3, dtype=DT))
    exact = m.log_partition("exact").log_z
    est = m.log_partition(
        "ais",
        chains=200,
        num_temperatures=2000,
        base_data=data,
        generator=torch.Generator().manual_seed(0),
    )
    assert abs(est.log_z - exact) < 3 * est.log_z_std + 1e-3
    g = _random_rbm(6, 10, scale=0.2, visible="gaussian", seed=6)
    exact = g.log_partition("exact").log_z
    est = g.log_partition(
        "ais", chains=200, num_temperatures=2000, generator=torch.Generator().manual_seed(1)
    )
    assert abs(est.log_z - exact) < 3 * est.log_z_std + 1e-3


def test_pseudo_log_likelihood_equals_brute_force():
    m = _random_rbm(6, 4, scale=1.0, seed=7)
    vs = binary_states(6, 0, 64, dtype=DT)
    hs = binary_states(4, 0, 16, dtype=DT)
    log_pv = torch.logsumexp(-_joint_energy(m, vs, hs), 1)  # unnormalised log p(v)
    brute = torch.zeros(64, dtype=DT)
    for i in range(6):
        flipped = vs.clone()
        flipped[:, i] = 1 - flipped[:, i]
        log_pf = torch.logsumexp(-_joint_energy(m, flipped, hs), 1)
        brute += log_pv - torch.logaddexp(log_pv, log_pf)
    assert torch.allclose(m.pseudo_log_likelihood(vs), brute, atol=1e-12)


def test_pseudo_log_likelihood_is_the_expectation_of_scikit_learns_score():
    sk = pytest.importorskip("sklearn.neural_network")
    import numpy as np

    m = _random_rbm(8, 5, scale=0.8, seed=8)
    ref = sk.BernoulliRBM(n_components=5, random_state=0)
    ref.components_ = m.weight.detach().numpy().copy()
    ref.intercept_visible_ = m.visible_bias.detach().numpy().copy()
    ref.intercept_hidden_ = m.hidden_bias.detach().numpy().copy()
    ref.n_features_in_ = 8
    x = binary_states(8, 0, 256, dtype=DT)[::37]  # 7 vectors
    reps = 4000
    scores = ref.score_samples(np.repeat(x.numpy(), reps, axis=0)).reshape(len(x), reps)
    ours = m.pseudo_log_likelihood(x).numpy()
    se = scores.std(1) / math.sqrt(reps)
    assert np.all(np.abs(scores.mean(1) - ours) < 5 * se + 1e-9)


def test_gibbs_samples_follow_the_exact_distribution():
    m = _random_rbm(4, 3, scale=1.0, seed=9)
    vs = binary_states(4, 0, 16, dtype=DT)
    exact = torch.exp(m.log_likelihood(vs))
    x = m.sample(40_000, steps=30, generator=torch.Generator().manual_seed(0))
    idx = (x * (2 ** torch.arange(4, dtype=DT))).sum(1).long()
    freq = torch.bincount(idx, minlength=16).to(DT) / len(x)
    assert (freq - exact).abs().max() < 5 * math.sqrt(0.25 / len(x))


def test_fit_through_the_trainer_improves_the_likelihood_and_resumes_exactly(tmp_path):
    g = torch.Generator().manual_seed(0)
    protos = torch.tensor(
        [[1, 1, 1, 0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]], dtype=DT
    )
    pick = torch.randint(2, (300,), generator=g)
    flips = torch.bernoulli(torch.full((300, 10), 0.05, dtype=DT), generator=g)
    data = (protos[pick] + flips) % 2
    torch.manual_seed(0)
    m = RBM(10, 6, dtype=DT)
    before = float(m.log_likelihood(data).mean())
    m.fit(data, epochs=30, k=1, lr=0.1, momentum=0.5, batch_size=20, seed=0)
    after = float(m.log_likelihood(data).mean())
    assert after > before + 2.0, (before, after)
    # PCD with a checkpoint: 4 + 4 epochs resumed equal 8 straight
    kw = dict(
        k=1,
        persistent=True,
        chains=13,
        lr=0.05,
        momentum=0.9,
        weight_decay=1e-4,
        batch_size=32,
        seed=3,
    )
    torch.manual_seed(1)
    straight = RBM(10, 6, dtype=DT)
    init = {k: v.clone() for k, v in straight.state_dict().items()}
    straight.fit(data, epochs=8, **kw)
    split = RBM(10, 6, dtype=DT)
    split.load_state_dict(init)
    ckpt, log = tmp_path / "rbm.pt", tmp_path / "metrics.jsonl"
    split.fit(data, epochs=4, checkpoint=ckpt, metrics=log, **kw)
    resumed = RBM(10, 6, dtype=DT)
    resumed.fit(data, epochs=8, checkpoint=ckpt, metrics=log, resume=ckpt, **kw)
    for k in init:
        assert torch.equal(straight.state_dict()[k], resumed.state_dict()[k]), k
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == list(range(10, 81, 10))
    assert straight.fit_result_.steps == 80 and resumed.fit_result_.steps == 80


def test_transform_is_the_hidden_probabilities_and_sample_shapes():
    m = _random_rbm(5, 3)
    x = binary_states(5, 0, 32, dtype=DT)
    assert torch.equal(m.transform(x), m.hidden_probabilities(x).detach())
    s = m.sample(4, steps=2, mean=True)
    assert s.shape == (4, 5) and bool(((s > 0) & (s < 1)).all())


def test_bad_input_names_the_argument():
    m = RBM(4, 3, dtype=DT)
    with pytest.raises(ValueError, match=r"data: expected values in \[0, 1\]"):
        m.fit(torch.full((5, 4), 2.0, dtype=DT))
    with pytest.raises(ValueError, match=r"data: expected shape \(B, 4\)"):
        m.fit(torch.zeros(5, 3, dtype=DT))
    with pytest.raises(ValueError, match="k: expected an integer >= 1, received 0"):
        m.fit(torch.zeros(5, 4, dtype=DT), k=0)
    with pytest.raises(ValueError, match=r"binary values in \{0, 1\}"):
        m.log_likelihood(torch.full((2, 4), 0.5, dtype=DT))
    with pytest.raises(ValueError, match="at most 20 units"):
        RBM(30, 25, dtype=DT).log_partition("exact")
    with pytest.raises(ValueError, match="visible: expected one of"):
        RBM(4, 3, visible="poisson")
    with pytest.raises(ValueError, match="method: expected 'exact' or 'ais'"):
        m.log_partition("mcmc")
    with pytest.raises(TypeError, match="data: expected dtype torch.float64"):
        m.fit(torch.zeros(5, 4, dtype=torch.float32))
    with pytest.raises(ValueError, match="lr: expected a positive number"):
        m.fit(torch.zeros(5, 4, dtype=DT), lr=0)


def test_rbm_digits_quick_preset_writes_report_and_plots(tmp_path):
    pytest.importorskip("sklearn")
    from rnnlab.experiments import ExperimentConfig, get

    res = get("rbm-digits").run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    assert res.metrics["ais_validated"]  # AIS within 3 sigma of the exact log Z, every model
    rows = res.metrics["rows"]
    assert {r["method"] for r in rows} == {"CD-1", "CD-10", "PCD"}
    for r in rows:
        assert abs(r["test_ll_ais"] - r["test_ll_exact"]) < 0.1
    assert "not comparable" in res.report and "| CD-10 |" in res.report
    assert all(p.exists() for p in res.plots) and len(res.plots) == 2


def test_gaussian_rbm_fit_raises_the_exact_log_likelihood():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[2.0, -1.0, 0.0], [-2.0, 1.0, 1.0]], dtype=DT)
    data = centres[torch.randint(2, (200,), generator=g)] + 0.5 * torch.randn(
        200, 3, dtype=DT, generator=g
    )
    torch.manual_seed(0)
    m = RBM(3, 4, visible="gaussian", dtype=DT)
    before = float(m.log_likelihood(data).mean())
    m.fit(data, epochs=20, k=1, lr=0.02, momentum=0.5, batch_size=20, seed=0)
    after = float(m.log_likelihood(data).mean())
    assert after > before + 0.5, (before, after)
