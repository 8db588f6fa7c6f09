"""The momentum schedule of Sutskever et al. (2013), eq. 5, closed form, and its use with
classical and Nesterov momentum (torch.optim.SGD) against hand-written updates."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlab.optim import momentum_schedule, set_momentum


@pytest.mark.parametrize("t", [0, 1, 249, 250, 499, 500, 749, 750, 1000, 3999, 10**6])
def test_schedule_is_eq5(t):
    want = min(1 - 2 ** (-1 - math.log2(t // 250 + 1)), 0.99)
    assert momentum_schedule(t) == pytest.approx(want)
    assert momentum_schedule(t, final=0.9) == pytest.approx(min(want, 0.9))


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_with_the_schedule_matches_the_update_rule(nesterov):
    # f(w) = 0.5 * w^T A w: gradient A w
    A = torch.tensor([[3.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.5, nesterov=nesterov)
    ref, v, lr = w.detach().clone(), torch.zeros(2, dtype=torch.float64), 0.1
    for t in range(0, 1200, 100):  # the schedule evaluated at t = 0, 100, ..., 1100
        mu = set_momentum(opt, momentum_schedule(t, ramp=250))
        opt.zero_grad()
        (0.5 * w @ A @ w).backward()
        opt.step()
        g = A @ ref
        v = mu * v + g  # torch's (Sutskever-equivalent) form of both momenta
        ref = ref - lr * ((g + mu * v) if nesterov else v)
        torch.testing.assert_close(w.detach(), ref)
        assert opt.param_groups[0]["momentum"] == mu
