"""Poisson spike trains: rates, the correlation of the shared-source group, block-wise
generation that does not depend on how a run is cut; bad input."""

import pytest
import torch

from rnnlab.spiking import PoissonInput, correlated_poisson_spikes, poisson_spikes


def test_poisson_rates_match():
    g = torch.Generator().manual_seed(0)
    rates = torch.tensor([[0.0, 5.0, 40.0, 200.0]]).expand(3, 4)
    s = poisson_spikes(rates, duration=20000.0, dt=0.5, generator=g)  # (3, 40000, 4)
    assert s.shape == (3, 40000, 4) and s.dtype == torch.bool
    p = rates[0] * 0.5 / 1000
    emp = s.double().mean((0, 1))
    sd = (p * (1 - p) / (3 * 40000)).sqrt()
    assert bool(((emp - p).abs() <= 5 * sd + 1e-12).all())
    assert float(emp[0]) == 0.0


@pytest.mark.parametrize("c", [0.1, 0.4])
def test_correlated_group_rate_and_correlation(c):
    g = torch.Generator().manual_seed(1)
    rate, dt = 20.0, 1.0
    s = correlated_poisson_spikes(rate, c, 40, duration=100000.0, dt=dt, generator=g).double()
    p = rate * dt / 1000
    assert float(s.mean()) == pytest.approx(p, rel=0.03)
    cc = torch.corrcoef(s.T)  # (40, 40)
    off = cc[~torch.eye(40, dtype=torch.bool)]
    assert float(off.mean()) == pytest.approx((c - p) / (1 - p), rel=0.05)
    indep = poisson_spikes(torch.full((40,), rate), 100000.0, dt, generator=g).double()
    assert abs(float(torch.corrcoef(indep.T)[0, 1:].mean())) < 0.01


def test_poisson_input_does_not_depend_on_how_the_run_is_cut():
    def make():
        return PoissonInput(
            torch.full((7,), 90.0), dt=0.5, batch_size=2, correlated=(3, 0.3), seed=5, block=64
        )

    whole = make().chunk(0, 300)  # (300, 2, 7)
    src = make()
    pieces = [src.chunk(t, 1) for t in range(300)]
    assert torch.equal(whole, torch.cat(pieces, 0))
    src = make()
    uneven = [src.chunk(0, 17), src.chunk(17, 100), src.chunk(117, 183)]
    assert torch.equal(whole, torch.cat(uneven, 0))
    # the group shares a mother train: its members spike together far more often
    s = whole.double()

    def together(cols):
        x = s[:, :, cols]  # (T, B, k)
        k = len(cols)
        return float(
            ((x.unsqueeze(-1) * x.unsqueeze(-2)).sum((0, 1)).sum() - x.sum()) / (k * (k - 1))
        )

    assert together([0, 1, 2]) > 3 * together([3, 4, 5, 6])


@pytest.mark.parametrize(
    "call, word",
    [
        (
            lambda: poisson_spikes(torch.tensor([-1.0, 2.0]), 10.0, 0.1),
            "rates: expected rates >= 0",
        ),
        (lambda: poisson_spikes(torch.tensor([20000.0]), 10.0, 0.1), "rates: expected at most"),
        (lambda: poisson_spikes(torch.ones(2, 2, 2), 10.0, 0.1), "rates: expected a 1 or 2-D"),
        (lambda: poisson_spikes([1.0, 2.0], 10.0, 0.1), "rates: expected a torch.Tensor"),
        (lambda: poisson_spikes(torch.ones(3), 10.0, -0.1), "dt: expected a number > 0"),
        (lambda: poisson_spikes(torch.ones(3), -5.0, 0.1), "duration"),
        (lambda: correlated_poisson_spikes(10.0, 1.5, 4, 10.0, 0.1), "correlation"),
        (lambda: correlated_poisson_spikes(10.0, 1e-4, 4, 10.0, 0.1), "correlation"),
    ],
)
def test_bad_input(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_poisson_input_law():
    """Gap sampling gives the Bernoulli process: rate per neuron, independence between
    steps (lag-1 correlation 0) and the group correlation (c - p) / (1 - p)."""
    rates = torch.tensor([0.0, 3.0, 30.0, 250.0, 1000.0] + [40.0] * 20)
    src = PoissonInput(rates, dt=1.0, batch_size=2, correlated=None, seed=3, block=500)
    s = src.chunk(0, 40000).double()  # (T, B, N)
    p = rates / 1000
    emp = s.mean((0, 1))
    sd = (p * (1 - p) / 80000).sqrt()
    assert bool(((emp - p).abs() <= 5 * sd + 1e-12).all())
    x = s[:, 0, 5:]
    lag1 = ((x[1:] - x.mean(0)) * (x[:-1] - x.mean(0))).mean(0) / x.var(0)
    assert float(lag1.abs().max()) < 0.03
    grp = PoissonInput(torch.full((30,), 40.0), dt=1.0, correlated=(20, 0.3), seed=4).chunk(
        0, 40000
    )
    cc = torch.corrcoef(grp[:, 0].double().T)  # (30, 30)
    inside = cc[:20, :20][~torch.eye(20, dtype=torch.bool)].mean()
    assert float(inside) == pytest.approx((0.3 - 0.04) / 0.96, rel=0.06)
    assert abs(float(cc[20:, :20].mean())) < 0.01
    assert float(grp.double().mean()) == pytest.approx(0.04, rel=0.03)
