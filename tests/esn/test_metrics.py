"""Oracle tests of the ESN metrics: NRMSE normalisations by hand, memory capacity of a
shift register (exactly known) and its bound, effective spectral radius and Lyapunov
exponent of a linear reservoir (closed form), the tangent method against two nearby
trajectories, and the three dynamics regimes."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from rnnlab.errors import InputError
from rnnlab.esn import (
    EchoStateNetwork,
    dynamics_regime,
    effective_spectral_radius,
    lyapunov_exponent,
    memory_capacity,
    nrmse,
)
from rnnlab.tasks.narma import memory_task

f64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def test_nrmse_normalisations_by_hand():
    target = torch.tensor([1.0, 3.0, 5.0, 7.0], dtype=f64)
    pred = target + torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=f64)  # RMSE 1
    std = math.sqrt(5.0)  # population std of 1, 3, 5, 7
    assert nrmse(pred, target) == pytest.approx(1 / std)
    assert nrmse(pred, target, norm="var") == pytest.approx(1 / 5.0)
    assert nrmse(pred, target, norm="range") == pytest.approx(1 / 6.0)
    mask = torch.tensor([True, True, False, False])
    assert nrmse(pred, target, mask=mask) == pytest.approx(1.0)  # std of (1, 3) is 1
    with pytest.raises(InputError, match="norm"):
        nrmse(pred, target, norm="max")


def _shift_register(H: int) -> EchoStateNetwork:
    """A linear reservoir whose state is the last H inputs: x_t = (u_t, ..., u_{t-H+1})."""
    esn = EchoStateNetwork(1, H, H + 5, activation="identity", ridge=1e-10, seed=0, dtype=f64)
    with torch.no_grad():
        esn.weight_hh.zero_()
        esn.weight_hh[1:, :-1] = torch.eye(H - 1, dtype=f64)
        esn.weight_ih.zero_()
        esn.weight_ih[0, 0] = 1.0
    return esn


def test_memory_capacity_of_a_shift_register_is_exact():
    H = 10
    esn = _shift_register(H)
    train = memory_task(1000, H + 5, seed=0)
    test = memory_task(500, H + 5, seed=1)
    esn.fit(train.inputs, train.targets, washout=H + 5)
    pred = esn.predict(test.inputs, state=torch.zeros(1, H, dtype=f64))
    mc = memory_capacity(pred, test.targets, mask=test.mask)
    # delays 1..H-1 are in the state, H.. are not
    torch.testing.assert_close(mc.per_delay[: H - 1], torch.ones(H - 1, dtype=f64), atol=1e-8,
                               rtol=0)  # fmt: skip
    assert float(mc.per_delay[H - 1 :].max()) < 0.02
    assert mc.total == pytest.approx(H - 1, abs=0.1)


def test_memory_capacity_of_a_random_reservoir_is_below_its_size():
    H, K = 20, 40
    esn = EchoStateNetwork(
        1, H, K, spectral_radius=0.95, input_scaling=0.1, ridge=1e-9, seed=1, dtype=f64
    )
    train = memory_task(4000, K, seed=0)
    test = memory_task(2000, K, seed=1)
    esn.fit(train.inputs, train.targets, washout=K)
    mc = memory_capacity(esn.predict(test.inputs), test.targets, mask=test.mask)
    assert 5 < mc.total <= H


def test_linear_reservoir_exponent_is_log_of_effective_radius():
    esn = EchoStateNetwork(
        1, 30, 1, spectral_radius=0.9, leak_rate=0.5, activation="identity", seed=3, dtype=f64
    )
    A = 0.5 * torch.eye(30, dtype=f64) + 0.5 * esn.weight_hh
    rho = float(torch.linalg.eigvals(A).abs().max())
    assert effective_spectral_radius(esn) == pytest.approx(rho, rel=1e-10)
    lam = lyapunov_exponent(esn, steps=4000, warmup=500)
    assert lam == pytest.approx(math.log(rho), abs=5e-3)


def test_tangent_exponent_matches_two_nearby_trajectories():
    esn = EchoStateNetwork(1, 100, 1, spectral_radius=2.0, seed=4, dtype=f64)
    lam = lyapunov_exponent(esn, steps=3000, warmup=300, seed=1)
    # Benettin's method with a second trajectory at distance eps, renormalised every step
    W, g = esn.weight_hh, torch.Generator().manual_seed(1)
    x = 2 * torch.rand(100, generator=g, dtype=f64) - 1
    for _ in range(300):
        x = torch.tanh(W @ x)
    eps = 1e-9
    d = torch.randn(100, generator=g, dtype=f64)
    x2 = x + eps * d / d.norm()
    total = 0.0
    for _ in range(3000):
        x, x2 = torch.tanh(W @ x), torch.tanh(W @ x2)
        sep = (x2 - x).norm()
        total += math.log(float(sep) / eps)
        x2 = x + (x2 - x) * (eps / sep)
    assert lam > 0.05  # spectral radius 2: chaotic
    assert lam == pytest.approx(total / 3000, abs=0.02)


def test_three_regimes():
    settle = EchoStateNetwork(1, 100, 1, spectral_radius=0.5, seed=0, dtype=f64)
    r = dynamics_regime(settle)
    assert r.regime == "point attractor" and r.lyapunov_exponent < 0
    chaos = EchoStateNetwork(1, 100, 1, spectral_radius=3.0, seed=0, dtype=f64)
    assert dynamics_regime(chaos).regime == "chaotic"
    # a rotation by 0.5 rad with gain 1.1: tanh bounds the growth, leaving an invariant
    # circle (quasi-periodic oscillation, exponent 0)
    osc = EchoStateNetwork(1, 2, 1, spectral_radius=1.0, connectivity=1.0, seed=0, dtype=f64)
    c, s = math.cos(0.5), math.sin(0.5)
    with torch.no_grad():
        osc.weight_hh.copy_(1.1 * torch.tensor([[c, -s], [s, c]], dtype=f64))
    r = dynamics_regime(osc, steps=4000)
    assert r.regime == "oscillating", r
    assert abs(r.lyapunov_exponent) < 1e-2
    assert r.effective_spectral_radius == pytest.approx(1.1)


@pytest.mark.skipif(importlib.util.find_spec("reservoirpy") is None, reason="needs reservoirpy")
def test_nrmse_matches_reservoirpy_where_the_normalisations_agree():
    from reservoirpy.observables import nrmse as rpy_nrmse

    g = torch.Generator().manual_seed(0)
    target = torch.randn(200, 1, generator=g, dtype=f64) * 3 + 1
    pred = target + 0.1 * torch.randn(200, 1, generator=g, dtype=f64)
    t, p = target.numpy(), pred.numpy()
    assert nrmse(pred, target, norm="range") == pytest.approx(rpy_nrmse(t, p, norm="minmax"))
    assert nrmse(pred, target, norm="var") == pytest.approx(rpy_nrmse(t, p, norm="var"))
