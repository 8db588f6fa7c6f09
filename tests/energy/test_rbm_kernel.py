"""The fused PCD kernels draw what the step-by-step formulation draws."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnlab.energy import rbm as rbm_module
from rnnlab.energy.rbm import RBM, contrastive_divergence, sample_bernoulli


def _pcd_reference(v, W, b, c, k, chain, g):
    """PCD-k written out from the chains' hidden states: each layer's uniforms drawn
    separately (visible, then hidden, each Gibbs step), F.mse_loss."""
    n, m = v.shape[0], chain.shape[0]
    h0 = torch.sigmoid(v @ W.t() + c)
    recon = torch.sigmoid(h0 @ W + b)
    h = chain
    for _ in range(k):
        vk = sample_bernoulli(torch.sigmoid(h @ W + b), g)
        hk = torch.sigmoid(vk @ W.t() + c)
        h = sample_bernoulli(hk, g)
    grad_w = hk.t() @ vk / m - h0.t() @ v / n
    grad_b = vk.sum(0) / m - v.sum(0) / n
    grad_c = hk.sum(0) / m - h0.sum(0) / n
    return grad_w, grad_b, grad_c, h, F.mse_loss(recon, v)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("n,m,k", [(20, 20, 1), (17, 20, 1), (5, 3, 2)])
def test_pcd_kernel_equals_the_written_out_steps(dtype, tol, n, m, k):
    g = torch.Generator().manual_seed(0)
    D, H = 12, 9
    W = torch.randn(H, D, generator=g, dtype=dtype)
    b, c = torch.randn(D, generator=g, dtype=dtype), torch.randn(H, generator=g, dtype=dtype)
    v = (torch.rand(n, D, generator=g) < 0.4).to(dtype)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    chain_a = chain_b = (torch.rand(m, H, generator=g) < 0.5).to(dtype)
    for _ in range(5):  # chained steps: the generators stay in step
        got = contrastive_divergence(v, W, b, c, "bernoulli", k, chain_a, ga)
        ref = _pcd_reference(v, W, b, c, k, chain_b, gb)
        for x, y in zip(got, ref):  # the same draws; sums in another order
            assert x.shape == y.shape and x.dtype == y.dtype
            assert (x - y).abs().max() <= tol
        assert torch.equal(got.chain, ref[3])
        chain_a, chain_b = got.chain, ref[3]
    assert torch.equal(ga.get_state(), gb.get_state())


def test_fit_is_reproducible_by_seed():
    x = (torch.rand(90, 10, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        runs.append(RBM(10, 6).fit(x, epochs=2, persistent=True, momentum=0.5, batch_size=16))
    for p, q in zip(runs[0].parameters(), runs[1].parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("which", ["weight", "visible_bias", "hidden_bias"])
@pytest.mark.parametrize("persistent", [True, False])
def test_a_nan_parameter_stops_the_fit(which, persistent):
    # PCD declares finite_gradients: the loop relies on its reported error being NaN then
    g = torch.Generator().manual_seed(0)
    m = RBM(6, 4)
    v = (torch.rand(8, 6, generator=g) < 0.5).float()
    with torch.no_grad():
        getattr(m, which).view(-1)[1] = float("nan")
    if persistent:
        res = m.cd_step(v, chain=(torch.rand(3, 4, generator=g) < 0.5).float(), generator=g)
        assert torch.isnan(res.reconstruction_error)
    from rnnlab.train import TrainingDiverged

    with pytest.raises(TrainingDiverged):
        m.fit(v, epochs=10, batch_size=4, persistent=persistent)


# ---------------------------------------------------------------------------------------
# The compiled (Numba) PCD step: the same estimate from the same draws
# ---------------------------------------------------------------------------------------

compiled = pytest.mark.skipif(
    rbm_module._rbm_loops.pcd_bernoulli is None, reason="numba is not installed or is off"
)


@compiled
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("n,m,k", [(20, 20, 1), (17, 20, 1), (5, 3, 2), (40, 30, 3)])
def test_compiled_pcd_equals_the_torch_kernel(dtype, tol, n, m, k):
    g = torch.Generator().manual_seed(0)
    D, H = 12, 9
    W = torch.randn(H, D, generator=g, dtype=dtype)
    b, c = torch.randn(D, generator=g, dtype=dtype), torch.randn(H, generator=g, dtype=dtype)
    v = (torch.rand(n, D, generator=g) < 0.4).to(dtype)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    chain_a = chain_b = (torch.rand(m, H, generator=g) < 0.5).to(dtype)
    for _ in range(5):  # chained steps: the same uniforms, the same binary states
        with torch.no_grad():
            got = contrastive_divergence(v, W, b, c, "bernoulli", k, chain_a, ga)
        ref = _pcd_reference(v, W, b, c, k, chain_b, gb)
        for x, y in zip(got, ref):
            assert x.shape == y.shape and x.dtype == y.dtype
            assert (x - y).abs().max() <= tol
        assert torch.equal(got.chain, ref[3])
        chain_a, chain_b = got.chain, ref[3]
    assert torch.equal(ga.get_state(), gb.get_state())
    # the steps above went the compiled way (under no_grad; with autograd on, torch's)
    with torch.no_grad():
        assert rbm_module._compiled_pcd_applies(v, W, b, c, chain_a)
    assert not rbm_module._compiled_pcd_applies(v, W, b, c, chain_a)


@compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_sigmoid_is_accurate_and_keeps_nan(dtype):
    a = np.concatenate(
        [np.linspace(-120, 120, 4001), [-1e4, 1e4, -np.inf, np.inf, 0.0, np.nan]]
    ).astype(dtype)
    bias = np.zeros_like(a)
    bias[:7] = 0.25
    fc, ic = rbm_module._rbm_loops._constants(dtype)
    w = [np.empty(len(a), dtype) for _ in range(3)]
    got = a.copy()
    rbm_module._rbm_loops._sigmoid_row(got, bias, fc, ic, *w)
    x = a.astype(np.float64) + bias
    with np.errstate(over="ignore"):
        exact = 1.0 / (1.0 + np.exp(-x))
    finite = ~np.isnan(x)
    eps = np.finfo(dtype).eps
    # a few ulps relative (down to the clamp's 1e-38 floor in float32, 1e-307 in float64)
    floor = 1e-37 if dtype == np.float32 else 1e-306
    assert np.all(np.abs(got[finite] - exact[finite]) <= 4 * eps * exact[finite] + floor)
    assert np.isnan(got[-1])


@compiled
def test_fit_with_the_compiled_step_equals_the_torch_step_given_its_uniforms(monkeypatch):
    # the compiled step's own stream replaced by torch's draws: then the two fits agree
    monkeypatch.setattr(
        rbm_module._CompiledPCDStep, "draw", lambda self, g: (self.u.uniform_(generator=g), -1)[1]
    )
    x = (torch.rand(90, 10, generator=torch.Generator().manual_seed(0)) < 0.5).double()
    runs = []
    for use_compiled in (True, False):
        if not use_compiled:
            monkeypatch.setattr(rbm_module._rbm_loops, "pcd_bernoulli", None)
        torch.manual_seed(0)
        m = RBM(10, 6, dtype=torch.float64)
        runs.append(m.fit(x, epochs=3, persistent=True, batch_size=16, chains=7))
    for p, q in zip(runs[0].parameters(), runs[1].parameters()):
        assert (p - q).abs().max() < 1e-12


def _splitmix64(key: int, count: int) -> list[int]:
    """SplitMix64 in Python integers (Steele, Lea & Flood 2014): the oracle."""
    mask, out = (1 << 64) - 1, []
    for i in range(1, count + 1):
        z = (key + i * 0x9E3779B97F4A7C15) & mask
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


@compiled
@pytest.mark.parametrize("dtype,shift", [(np.float32, 40), (np.float64, 11)])
def test_fit_uniforms_are_splitmix64_and_uniform(dtype, shift):
    fill = rbm_module._rbm_loops.fill_uniform
    scale = dtype(2.0 ** (shift - 64))
    key = 0x3A6F_11C0_9D2E_4B57
    u = np.empty(1000, dtype)
    fill(u, key, np.uint64(shift), scale)
    want = np.array([(z >> shift) * 2.0 ** (shift - 64) for z in _splitmix64(key, 1000)])
    assert np.array_equal(u.astype(np.float64), want)  # bit for bit, exact multiples
    n = 400_000
    big, other = np.empty(n, dtype), np.empty(n, dtype)
    fill(big, key, np.uint64(shift), scale)
    fill(other, key + 1, np.uint64(shift), scale)  # a neighbouring key: another stream
    assert big.min() >= 0 and big.max() < 1
    se = 1 / np.sqrt(n)
    assert abs(big.mean() - 0.5) < 4 * se * np.sqrt(1 / 12)
    # the sample variance's standard error sqrt((mu_4 - sigma^4) / n), mu_4 - sigma^4 = 1/180
    assert abs(big.var() - 1 / 12) < 4 * se * np.sqrt(1 / 180)
    ks = np.abs(np.sort(big) - (np.arange(1, n + 1) - 0.5) / n).max()
    assert ks < 1.63 * se  # Kolmogorov-Smirnov at the 1% level
    for a, b in ((big[1:], big[:-1]), (big, other)):  # lag-1 and cross-stream correlation
        assert abs(np.corrcoef(a, b)[0, 1]) < 4 * se


@compiled
def test_compiled_fit_draws_every_number_from_the_seed():
    x = (torch.rand(64, 12, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    fits = []
    for seed in (0, 0, 1):
        torch.manual_seed(0)
        fits.append(RBM(12, 8).fit(x, epochs=2, persistent=True, batch_size=16, seed=seed))
    assert torch.equal(fits[0].weight, fits[1].weight)
    assert not torch.equal(fits[0].weight, fits[2].weight)


def test_cd_step_rejects_a_chain_of_visible_states():
    m = RBM(6, 4)
    v = torch.zeros(8, 6)
    with pytest.raises(
        ValueError, match=r"chain: expected the chains' hidden states, shape \(chains, 4\)"
    ):
        m.cd_step(v, chain=v[:3])


@pytest.mark.parametrize("path", ["general", "fused", "compiled"])
def test_pcd_without_its_monitor_takes_the_same_step(monkeypatch, path):
    """monitor=False drops only the reconstruction error: the same gradients, the same
    next chain state and the same draws from the generator, in every PCD kernel."""
    if path == "compiled" and rbm_module._rbm_loops.pcd_bernoulli is None:
        pytest.skip("numba is not installed or is off")
    if path == "fused":
        monkeypatch.setattr(rbm_module._rbm_loops, "pcd_bernoulli", None)
    visible = "gaussian" if path == "general" else "bernoulli"
    g = torch.Generator().manual_seed(0)
    D, H, n, m = 12, 9, 7, 5
    W = torch.randn(H, D, generator=g, dtype=torch.float64)
    b = torch.randn(D, generator=g, dtype=torch.float64)
    c = torch.randn(H, generator=g, dtype=torch.float64)
    v = (torch.rand(n, D, generator=g) < 0.4).double()
    chain = (torch.rand(m, H, generator=g) < 0.5).double()
    results, states = [], []
    for monitor in (True, False):
        gen = torch.Generator().manual_seed(3)
        with torch.no_grad():
            results.append(contrastive_divergence(v, W, b, c, visible, 2, chain, gen, monitor))
        states.append(gen.get_state())
    on, off = results
    assert on.reconstruction_error is not None and off.reconstruction_error is None
    for x, y in zip(on[:3], off[:3]):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-13)
    assert torch.equal(on.chain, off.chain) and torch.equal(*states)


def test_pcd_fit_measures_its_error_on_the_logged_steps_only(monkeypatch, tmp_path):
    """PCD's reconstruction error is measured on each epoch's last batch and the last step:
    the fit equals one that measures it every step, and the log holds every epoch's."""
    from rnnlab.train.loop import Trainer

    g = torch.Generator().manual_seed(0)
    v = (torch.rand(40, 10, generator=g) < 0.4).float()
    fits, calls = [], []
    for every_step in (False, True):
        if every_step:
            monkeypatch.setattr(Trainer, "loss_wanted", lambda self: True)
        spy = rbm_module._CompiledPCDStep.__call__

        def counting(self, *a, _spy=spy):
            calls.append(a[3] if len(a) > 3 else True)
            return _spy(self, *a)

        monkeypatch.setattr(rbm_module._CompiledPCDStep, "__call__", counting)
        log = tmp_path / f"m{every_step}.jsonl"
        torch.manual_seed(0)
        m = RBM(10, 6, dtype=torch.float32)
        fits.append(m.fit(v, epochs=3, batch_size=8, persistent=True, metrics=log, seed=2))
        lines = [x for x in log.read_text().splitlines() if '"loss"' in x]
        assert len(lines) == 3 and all('"loss": null' not in x for x in lines)
        monkeypatch.undo()
    if rbm_module._rbm_loops.pcd_bernoulli is not None:
        assert calls == [k % 5 == 4 for k in range(15)] + [True] * 15
    for a, b in zip(fits[0].parameters(), fits[1].parameters()):
        assert torch.equal(a, b)
    assert math.isfinite(fits[0].fit_result_.train_loss)
