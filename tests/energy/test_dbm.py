"""DBM oracles: enumeration of every configuration of a tiny DBM (log Z, log p(v), the
posterior), the mean-field fixed point, the bound's gap equal to KL(q || p(h | v)), AIS
against exact log Z, and training through the loop."""

import pytest
import torch

from rnnlab._threads import torch_threads
from rnnlab.energy.dbm import DBM, dbm_energy
from rnnlab.energy.rbm import binary_states

DT = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: one intra-op thread is fastest and leaves the other core free."""
    with torch_threads(1):
        yield


def _random_dbm(sizes, scale=1.0, seed=0):
    torch.manual_seed(seed)
    m = DBM(sizes, dtype=DT)
    with torch.no_grad():
        for w in m.weights:
            w.normal_(0.0, scale)
        for b in m.biases:
            b.normal_(0.0, scale)
    return m


def _all_configurations(sizes):
    """Every joint configuration as per-layer tensors (S, n_l)."""
    total = sum(sizes)
    s = binary_states(total, 0, 2**total, dtype=DT)
    return list(torch.split(s, sizes, dim=1))


def test_log_z_and_log_likelihood_by_full_enumeration():
    sizes = [3, 2, 3]
    m = _random_dbm(sizes, seed=1)
    x = _all_configurations(sizes)
    e = dbm_energy(x, m._w(), m._b())
    log_z = float(torch.logsumexp(-e, 0))
    assert abs(m.log_partition("exact").log_z - log_z) < 1e-12
    # log p(v) = log sum_h exp(-E(v, h)) - log Z
    idx = (x[0] * torch.tensor([1.0, 2.0, 4.0], dtype=DT)).sum(1).long()
    brute = torch.stack([torch.logsumexp(-e[idx == k], 0) for k in range(8)]) - log_z
    vs = binary_states(3, 0, 8, dtype=DT)
    assert torch.allclose(m.log_likelihood(vs), brute, atol=1e-12)
    # three hidden layers too (odd parity enumerated)
    m3 = _random_dbm([2, 3, 2, 2], seed=2)
    x3 = _all_configurations([2, 3, 2, 2])
    lz3 = float(torch.logsumexp(-dbm_energy(x3, m3._w(), m3._b()), 0))
    assert abs(m3.log_partition("exact").log_z - lz3) < 1e-12


def test_mean_field_fixed_point_satisfies_its_equations():
    m = _random_dbm([6, 5, 4], scale=0.8, seed=3)
    v = torch.bernoulli(torch.full((9, 6), 0.5, dtype=DT))
    mu = m.mean_field(v, iterations=500, tol=1e-13)
    W, b = m._w(), m._b()
    assert torch.allclose(mu[1], torch.sigmoid(b[1] + v @ W[0].t() + mu[2] @ W[1]), atol=1e-10)
    assert torch.allclose(mu[2], torch.sigmoid(b[2] + mu[1] @ W[1].t()), atol=1e-10)


def test_bound_is_below_log_likelihood_with_the_gap_equal_to_kl():
    sizes = [4, 3, 2]
    m = _random_dbm(sizes, scale=1.0, seed=4)
    vs = binary_states(4, 0, 16, dtype=DT)
    lz = m.log_partition("exact")
    bound = m.lower_bound(vs, lz, iterations=200)
    exact = m.log_likelihood(vs, lz)
    assert bool((bound <= exact + 1e-12).all())
    # log p(v) - bound = KL(q || p(h | v)), enumerated
    mu = m.mean_field(vs, iterations=200, tol=1e-14)
    hs = binary_states(5, 0, 32, dtype=DT)
    h1, h2 = hs[:, :3], hs[:, 3:]
    for i in range(16):
        v = vs[i : i + 1].expand(32, -1)
        e = dbm_energy([v, h1, h2], m._w(), m._b())
        log_post = -e - torch.logsumexp(-e, 0)
        log_q = (torch.xlogy(h1, mu[1][i]) + torch.xlogy(1 - h1, 1 - mu[1][i])).sum(1) + (
            torch.xlogy(h2, mu[2][i]) + torch.xlogy(1 - h2, 1 - mu[2][i])
        ).sum(1)
        kl = float((log_q.exp() * (log_q - log_post)).sum())
        assert abs(float(exact[i] - bound[i]) - kl) < 1e-9


def test_ais_log_z_agrees_with_exact():
    m = _random_dbm([16, 10, 8], scale=0.3, seed=5)
    exact = m.log_partition("exact").log_z  # odd layer: 10 units enumerated
    est = m.log_partition(
        "ais", chains=200, num_temperatures=2000, generator=torch.Generator().manual_seed(0)
    )
    assert est.log_z_std > 0
    assert abs(est.log_z - exact) < 3 * est.log_z_std + 1e-3, (est.log_z, exact, est.log_z_std)


def test_gibbs_samples_follow_the_exact_distribution():
    sizes = [2, 2, 2]
    m = _random_dbm(sizes, scale=1.0, seed=6)
    x = _all_configurations(sizes)
    p = torch.softmax(-dbm_energy(x, m._w(), m._b()), 0)
    pv = torch.zeros(4, dtype=DT).index_add_(
        0, (x[0] * torch.tensor([1.0, 2.0], dtype=DT)).sum(1).long(), p
    )
    s = m.sample(20_000, steps=30, generator=torch.Generator().manual_seed(1))
    freq = torch.bincount((s[0] * torch.tensor([1.0, 2.0], dtype=DT)).sum(1).long(), minlength=4)
    assert (freq.to(DT) / 20_000 - pv).abs().max() < 5 * (0.25 / 20_000) ** 0.5


def test_pretraining_and_joint_training_raise_the_likelihood(tmp_path):
    g = torch.Generator().manual_seed(0)
    protos = torch.tensor(
        [[1, 1, 1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1], [1, 0, 1, 0, 1, 0, 1, 0]], dtype=DT
    )
    data = (
        protos[torch.randint(3, (240,), generator=g)]
        + torch.bernoulli(torch.full((240, 8), 0.05, dtype=DT), generator=g)
    ) % 2
    torch.manual_seed(0)
    m = DBM([8, 6, 4], dtype=DT)
    before = float(m.log_likelihood(data).mean())
    m.pretrain(data, epochs=10, lr=0.1, batch_size=20)
    pre = float(m.log_likelihood(data).mean())
    m.fit(
        data,
        epochs=20,
        pretrain_epochs=None,
        lr=0.05,
        batch_size=20,
        chains=50,
        metrics=tmp_path / "m.jsonl",
        checkpoint=tmp_path / "c.pt",
    )
    after = float(m.log_likelihood(data).mean())
    assert pre > before + 1.0 and after > before + 1.0, (before, pre, after)
    assert (tmp_path / "c.pt").exists()
    # the bound with exact log Z lies below the exact log-likelihood on the trained model
    lz = m.log_partition("exact")
    assert bool((m.lower_bound(data[:20], lz) <= m.log_likelihood(data[:20], lz) + 1e-9).all())


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="at least two hidden layers"):
        DBM([4, 3])
    with pytest.raises(ValueError, match=r"layer_sizes\[1\]: expected an integer >= 1"):
        DBM([4, 0, 3])
    m = DBM([4, 3, 2], dtype=DT)
    with pytest.raises(ValueError, match=r"data: expected values in \[0, 1\]"):
        m.fit(torch.full((3, 4), -1.0, dtype=DT))
    with pytest.raises(ValueError, match="at most 20 units"):
        DBM([30, 25, 30], dtype=DT).log_partition("exact")


def test_dbm_digits_quick_preset_checks_ais_and_the_bound(tmp_path):
    pytest.importorskip("sklearn")
    from rnnlab.experiments import ExperimentConfig, get

    res = get("dbm-digits").run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    m = res.metrics
    assert m["ais_validated"] and m["bound_below_exact_ll"]
    assert m["small_test_bound_exact_log_z"] <= m["small_test_ll_exact"]
    assert "lower bound" in res.report and all(p.exists() for p in res.plots)
