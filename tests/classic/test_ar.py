"""Oracles for LinearAR: numpy lstsq, statsmodels' published log-likelihood, the ridge
normal equations, the Gaussian density, zero score at the MLE."""

import importlib.util
import os

import numpy as np
import pytest
import torch

from rnnlab.classic.ar import LinearAR, lagged_design

DT = torch.float64


def sunspots() -> np.ndarray | None:
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "datasets/sunspots/sunspots.csv")
    if not os.path.exists(path):
        return None
    return np.loadtxt(path, delimiter=",", skiprows=1)[:, 1]


def test_statsmodels_ar9_loglikelihood_on_sunspots():
    y = sunspots()
    if y is None:
        pytest.skip(
            "statsmodels' sunspots.csv is not installed (pip install --no-deps statsmodels)"
        )
    model = LinearAR(order=9, constant=True).fit(torch.tensor(y))
    # statsmodels AutoReg(sunspots, 9, trend="c").fit().llf (statsmodels' own test value)
    assert abs(model.score(torch.tensor(y)) - (-1235.559128419549)) < 1e-6


def test_closed_form_equals_numpy_lstsq_with_lags_and_lengths():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 40, 2)).cumsum(1) * 0.1 + rng.normal(size=(3, 40, 2))
    lengths = [40, 25, 31]
    lags = (1, 3)
    model = LinearAR(obs_dim=2, lags=lags).fit(torch.tensor(y), lengths=torch.tensor(lengths))
    rows, targets = [], []
    for b, n in enumerate(lengths):
        for t in range(3, n):
            rows.append(np.concatenate([y[b, t - 1], y[b, t - 3], [1.0]]))
            targets.append(y[b, t])
    X, Y = np.array(rows), np.array(targets)
    sol = np.linalg.lstsq(X, Y, rcond=None)[0]
    np.testing.assert_allclose(model.coefficients[0].detach().numpy(), sol[0:2].T, atol=1e-10)
    np.testing.assert_allclose(model.coefficients[1].detach().numpy(), sol[2:4].T, atol=1e-10)
    np.testing.assert_allclose(model.intercept.detach().numpy(), sol[4], atol=1e-10)
    resid = Y - X @ sol
    sigma = resid.T @ resid / len(Y)
    np.testing.assert_allclose(model.noise_cov.detach().numpy(), sigma, atol=1e-10)
    # log-likelihood = sum of Gaussian log-densities of the residuals
    from scipy.stats import multivariate_normal

    ll = multivariate_normal(np.zeros(2), sigma).logpdf(resid).sum()
    total = model(torch.tensor(y), lengths=torch.tensor(lengths)).sum().item()
    assert abs(total - ll) < 1e-8


def test_ridge_solves_penalised_normal_equations():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(60,))
    lam = 3.0
    model = LinearAR(order=2, ridge=lam).fit(torch.tensor(y))
    X = np.column_stack([y[1:-1], y[:-2], np.ones(58)])
    P = np.diag([lam, lam, 0.0])
    sol = np.linalg.solve(X.T @ X + P, X.T @ y[2:])
    got = np.r_[model.coefficients.detach().numpy().ravel(), model.intercept.item()]
    np.testing.assert_allclose(got, sol, atol=1e-10)


def test_score_is_zero_at_the_mle_and_forecast_follows_the_recursion():
    rng = np.random.default_rng(2)
    y = torch.tensor(rng.normal(size=(2, 50, 2)))
    model = LinearAR(order=2, obs_dim=2).fit(y)
    ll = model(y).sum()
    grads = torch.autograd.grad(ll, [model.coefficients, model.intercept, model.noise_cov])
    for g in grads:
        assert g.abs().max() < 1e-8
    fc = model.forecast(y, steps=3)
    A1, A2 = model.coefficients.detach()
    c = model.intercept.detach()
    hist = [y[:, -2], y[:, -1]]
    for h in range(3):
        nxt = c + hist[-1] @ A1.T + hist[-2] @ A2.T
        torch.testing.assert_close(fc[:, h], nxt)
        hist.append(nxt)
    pred = model.one_step_forecast(y)
    assert torch.isnan(pred[:, :2]).all()
    torch.testing.assert_close(pred[:, 2:], c + y[:, 1:-1] @ A1.T + y[:, :-2] @ A2.T)
    X, Yt = lagged_design(y, (1, 2))
    assert X.shape == (2, 48, 4) and torch.equal(Yt, y[:, 2:])


def test_sample_then_fit_recovers_coefficients():
    model = LinearAR(order=2)
    with torch.no_grad():
        model.coefficients.copy_(torch.tensor([[[0.5]], [[-0.3]]], dtype=DT))
        model.intercept.fill_(1.0)
        model.noise_cov.fill_(0.25)
    y = model.sample(20, 500, generator=0)
    fitted = LinearAR(order=2).fit(y)
    torch.testing.assert_close(fitted.coefficients, model.coefficients, atol=0.03, rtol=0)
    torch.testing.assert_close(fitted.noise_cov, model.noise_cov, atol=0.02, rtol=0)


def test_bad_input():
    with pytest.raises(ValueError, match="lags"):
        LinearAR(lags=(0, 1))
    model = LinearAR(order=3)
    with pytest.raises(ValueError, match="y: expected at least 4 time steps"):
        model.fit(torch.zeros(3, dtype=DT))
    with pytest.raises(ValueError, match="y: expected finite"):
        model.fit(torch.tensor([1.0, float("nan"), 2, 3, 4], dtype=DT))


def test_sunspots_experiment_quick_preset(tmp_path):
    if sunspots() is None:
        pytest.skip("statsmodels' sunspots.csv is not installed")
    from rnnlab.experiments import ExperimentConfig, get

    res = get("sunspots").run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    m = res.metrics
    assert m["ar9_loglik_abs_err"] < 1e-6
    # the linear models are deterministic; they must beat persistence on the held-out years
    assert m["rmse_linearar"] < m["rmse_persistence"]
    assert m["rmse_lds"] < m["rmse_persistence"]
    assert all(np.isfinite(v) for k, v in m.items() if k.startswith("rmse_"))
    assert "| LinearAR(9) |" in res.report and res.plots[0].exists()
