"""The fused PCD kernel draws what the step-by-step formulation draws."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rnnlab.energy.rbm import RBM, contrastive_divergence, gibbs_chain, sample_bernoulli


def _pcd_reference(v, W, b, c, k, chain, g):
    """PCD-k written out: each layer's uniforms drawn separately, F.mse_loss."""
    n, m = v.shape[0], chain.shape[0]
    p = torch.sigmoid(torch.addmm(c, torch.cat((v, chain)), W.t()))
    h0, ph = p[:n], p[n:]
    q = torch.sigmoid(torch.addmm(b, torch.cat((h0, sample_bernoulli(ph, g))), W))
    recon, vk = q[:n], sample_bernoulli(q[n:], g)
    if k > 1:
        vk, hk = gibbs_chain(vk, W, b, c, "bernoulli", k - 1, g)
    else:
        hk = torch.sigmoid(torch.addmm(c, vk, W.t()))
    grad_w = torch.addmm(hk.t() @ vk, h0.t(), v, beta=1.0 / m, alpha=-1.0 / n)
    grad_b = torch.add(vk.sum(0).mul_(1.0 / m), v.sum(0), alpha=-1.0 / n)
    grad_c = torch.add(hk.sum(0).mul_(1.0 / m), h0.sum(0), alpha=-1.0 / n)
    return grad_w, grad_b, grad_c, vk, F.mse_loss(recon, v)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,m,k", [(20, 20, 1), (17, 20, 1), (5, 3, 2)])
def test_pcd_kernel_equals_the_written_out_steps_bit_for_bit(dtype, n, m, k):
    g = torch.Generator().manual_seed(0)
    D, H = 12, 9
    W = torch.randn(H, D, generator=g, dtype=dtype)
    b, c = torch.randn(D, generator=g, dtype=dtype), torch.randn(H, generator=g, dtype=dtype)
    v = (torch.rand(n, D, generator=g) < 0.4).to(dtype)
    ga, gb = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    chain_a = chain_b = (torch.rand(m, D, generator=g) < 0.5).to(dtype)
    for _ in range(5):  # chained steps: the generators stay in step
        got = contrastive_divergence(v, W, b, c, "bernoulli", k, chain_a, ga)
        ref = _pcd_reference(v, W, b, c, k, chain_b, gb)
        for x, y in zip(got, ref):
            assert torch.equal(x, y)
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
        res = m.cd_step(v, chain=v[:3], generator=g)
        assert torch.isnan(res.reconstruction_error)
    from rnnlab.train import TrainingDiverged

    with pytest.raises(TrainingDiverged):
        m.fit(v, epochs=10, batch_size=4, persistent=persistent)
