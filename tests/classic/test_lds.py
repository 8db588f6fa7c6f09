"""Oracles for the linear dynamical system: the dense joint Gaussian, EM monotonicity,
batched = one by one, masked = truncated, gradcheck, pykalman."""

import math

import numpy as np
import pytest
import torch

from rnnlab.classic.lds import LinearDynamicalSystem, kalman_filter, rts_smoother

DT = torch.float64
# fits deliberately stopped at n_iter warn; the tests that check the warning catch it
pytestmark = pytest.mark.filterwarnings("ignore::rnnlab.classic.ConvergenceWarning")


def random_model(S=3, D=2, U=0, seed=0):
    g = torch.Generator().manual_seed(seed)

    def spd(n):
        X = torch.randn(n, n, generator=g, dtype=DT)
        return X @ X.T / n + 0.3 * torch.eye(n, dtype=DT)

    A = torch.randn(S, S, generator=g, dtype=DT)
    A = 0.9 * A / torch.linalg.matrix_norm(A, 2)
    return LinearDynamicalSystem.from_params(
        transition_matrix=A,
        emission_matrix=torch.randn(D, S, generator=g, dtype=DT),
        transition_cov=spd(S),
        emission_cov=spd(D),
        initial_mean=torch.randn(S, generator=g, dtype=DT),
        initial_cov=spd(S),
        input_matrix=torch.randn(S, U, generator=g, dtype=DT) if U else None,
        feedthrough_matrix=torch.randn(D, U, generator=g, dtype=DT) if U else None,
    )


def dense_joint(model, T, u=None):
    """Mean and covariance of the stacked vector [x_0..x_{T-1}, y_0..y_{T-1}]."""
    p = model.params
    A, C, Q, R = p.transition_matrix, p.emission_matrix, p.transition_cov, p.emission_cov
    S, D = C.shape[1], C.shape[0]
    M = torch.zeros(T * S, T * S, dtype=DT)  # x = M eps, eps = [x_0 - mu_x0, w_1, ...]
    for t in range(T):
        for k in range(t + 1):
            M[t * S : (t + 1) * S, k * S : (k + 1) * S] = torch.linalg.matrix_power(A, t - k)
    noise = torch.block_diag(p.initial_cov, *([Q] * (T - 1)))
    cov_x = M @ noise @ M.T
    drive = torch.zeros(T, S, dtype=DT)
    drive[0] = p.initial_mean
    if u is not None:
        drive[1:] += u[1:] @ p.input_matrix.T
    mean_x = M @ drive.reshape(-1)
    Cb = torch.block_diag(*([C] * T))
    mean_y = Cb @ mean_x
    if u is not None:
        mean_y = mean_y + (u @ p.feedthrough_matrix.T).reshape(-1)
    cov_y = Cb @ cov_x @ Cb.T + torch.block_diag(*([R] * T))
    cov_xy = cov_x @ Cb.T
    return mean_x, cov_x, mean_y, cov_y, cov_xy, S, D


def condition(mean_x, cov_x, mean_y, cov_y, cov_xy, y, idx):
    """Exact Gaussian conditioning of x on the entries idx of y."""
    Syy = cov_y[idx][:, idx]
    Sxy = cov_xy[:, idx]
    r = y[idx] - mean_y[idx]
    mean = mean_x + Sxy @ torch.linalg.solve(Syy, r)
    cov = cov_x - Sxy @ torch.linalg.solve(Syy, Sxy.T)
    ll = torch.distributions.MultivariateNormal(mean_y[idx], Syy).log_prob(y[idx])
    return mean, cov, ll


def test_filter_smoother_loglik_equal_dense_joint_gaussian():
    T, U = 5, 2
    model = random_model(S=3, D=2, U=U)
    u = torch.randn(T, U, dtype=DT)
    y = model.sample(1, T, inputs=u[None], generator=1).observations[0]
    mx, cx, my, cy, cxy, S, D = dense_joint(model, T, u)
    filt = model.filter(y, inputs=u)
    smooth = model.smooth(y, inputs=u)
    for t in range(T):
        idx = torch.arange((t + 1) * D)
        m, c, _ = condition(mx, cx, my, cy, cxy, y.reshape(-1), idx)
        sl = slice(t * S, (t + 1) * S)
        torch.testing.assert_close(filt.means[t], m[sl], rtol=0, atol=1e-10)
        torch.testing.assert_close(filt.covs[t], c[sl, sl], rtol=0, atol=1e-10)
    m, c, ll = condition(mx, cx, my, cy, cxy, y.reshape(-1), torch.arange(T * D))
    torch.testing.assert_close(smooth.means, m.reshape(T, S), rtol=0, atol=1e-10)
    for t in range(T):
        sl = slice(t * S, (t + 1) * S)
        torch.testing.assert_close(smooth.covs[t], c[sl, sl], rtol=0, atol=1e-10)
    torch.testing.assert_close(filt.log_likelihood, ll, rtol=0, atol=1e-10)
    torch.testing.assert_close(model(y, inputs=u), ll, rtol=0, atol=1e-10)


def test_partial_mask_equals_dense_conditional_on_observed_coordinates():
    T = 4
    model = random_model(S=2, D=3, seed=2)
    y = model.sample(1, T, generator=3).observations[0]
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 0], [0, 1, 1]], dtype=torch.bool)
    y_nan = y.masked_fill(~mask, float("nan"))
    mx, cx, my, cy, cxy, S, D = dense_joint(model, T)
    idx = mask.reshape(-1).nonzero().squeeze(1)
    m, c, ll = condition(mx, cx, my, cy, cxy, y.reshape(-1), idx)
    smooth = model.smooth(y_nan, mask=mask)
    filt = model.filter(y_nan, mask=mask)
    torch.testing.assert_close(smooth.means, m.reshape(T, S), rtol=0, atol=1e-10)
    torch.testing.assert_close(smooth.covs[1], c[S : 2 * S, S : 2 * S], rtol=0, atol=1e-10)
    torch.testing.assert_close(filt.log_likelihood, ll, rtol=0, atol=1e-10)
    # filtered at t = 2 conditions on the observed entries of steps 0..2
    idx2 = mask[:3].reshape(-1).nonzero().squeeze(1)
    m2, _, _ = condition(mx, cx, my, cy, cxy, y.reshape(-1), idx2)
    torch.testing.assert_close(filt.means[2], m2[2 * S : 3 * S], rtol=0, atol=1e-10)


def test_batched_equals_one_by_one_and_masked_equals_truncated():
    model = random_model(S=3, D=2, seed=4)
    y = model.sample(4, 12, generator=5).observations
    lengths = torch.tensor([12, 7, 3, 10])
    mask = torch.arange(12)[None] < lengths[:, None]  # (B, T): whole vectors
    batched_f = model.filter(y, mask=mask)
    batched_s = model.smooth(y, mask=mask)
    by_len = model.filter(y, lengths=lengths)
    torch.testing.assert_close(by_len.log_likelihood, batched_f.log_likelihood)
    for b, n in enumerate(lengths.tolist()):
        f = model.filter(y[b, :n])
        s = model.smooth(y[b, :n])
        torch.testing.assert_close(batched_f.means[b, :n], f.means, rtol=0, atol=1e-12)
        torch.testing.assert_close(batched_f.covs[b, :n], f.covs, rtol=0, atol=1e-12)
        torch.testing.assert_close(
            batched_f.log_likelihood[b], f.log_likelihood, atol=1e-10, rtol=0
        )
        torch.testing.assert_close(batched_s.means[b, :n], s.means, rtol=0, atol=1e-12)
        torch.testing.assert_close(batched_s.covs[b, :n], s.covs, rtol=0, atol=1e-12)
        assert (by_len.means[b, n:] == 0).all()
    # fully observed batch (shared covariances) equals one by one
    full = model.smooth(y)
    for b in range(4):
        torch.testing.assert_close(full.means[b], model.smooth(y[b]).means, rtol=0, atol=1e-12)


def test_kernels_match_model_methods():
    model = random_model()
    y = model.sample(2, 6, generator=0).observations
    torch.testing.assert_close(kalman_filter(model.params, y).means, model.filter(y).means)
    torch.testing.assert_close(rts_smoother(model.params, y).covs, model.smooth(y).covs)


def test_em_never_decreases_likelihood_and_respects_fixed_and_diagonal():
    truth = random_model(S=2, D=3, U=1, seed=6)
    u = torch.randn(5, 30, 1, dtype=DT)
    y = truth.sample(5, 30, inputs=u, generator=7).observations
    mask = torch.rand(5, 30, 3) > 0.2
    model = LinearDynamicalSystem(2, 3, 1)
    C0 = model.emission_matrix.detach().clone()
    model.fit(
        y,
        inputs=u,
        mask=mask,
        n_iter=25,
        tol=0.0,
        fixed=("emission_matrix",),
        diagonal_covs=("emission_cov",),
    )
    h = np.array(model.history_)
    assert len(h) == 26 and model.n_iter_ == 25
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:])), np.diff(h)
    assert h[-1] > h[0]
    torch.testing.assert_close(model.emission_matrix.detach(), C0)
    R = model.emission_cov.detach()
    torch.testing.assert_close(R, torch.diag_embed(torch.diagonal(R)))
    # the recorded likelihood is the model's own
    model2 = LinearDynamicalSystem(2, 3, 1).fit(y, inputs=u, n_iter=8, tol=0.0)
    assert np.all(np.diff(model2.history_) >= -1e-9 * np.abs(model2.history_[1:]))


def test_gradcheck_log_likelihood():
    model = random_model(S=2, D=2, seed=8)
    y = model.sample(2, 5, generator=9).observations
    mask = torch.ones(2, 5, 2, dtype=torch.bool)
    mask[0, 2, 1] = False
    p = model.params

    def ll(A, C, Q):
        params = p._replace(transition_matrix=A, emission_matrix=C, transition_cov=0.5 * (Q + Q.T))
        return kalman_filter(params, y * mask, mask=mask.to(DT)).log_likelihood

    args = tuple(
        t.detach().clone().requires_grad_(True)
        for t in (p.transition_matrix, p.emission_matrix, p.transition_cov)
    )
    assert torch.autograd.gradcheck(ll, args)


def test_forecast_and_predict_are_consistent():
    model = random_model(S=2, D=2, seed=10)
    y = model.sample(3, 8, generator=11).observations
    fc = model.forecast(y[:, :7], steps=2)
    pred = model.one_step_forecast(y)
    torch.testing.assert_close(fc.means[:, 0], pred[:, 7], rtol=0, atol=1e-12)
    # the one-step forecast covariance is the innovation covariance C P C^T + R
    f = model.filter(y[:, :7])
    p = model.params
    P = p.transition_matrix @ f.covs[:, -1] @ p.transition_matrix.T + p.transition_cov
    S = p.emission_matrix @ P @ p.emission_matrix.T + p.emission_cov
    torch.testing.assert_close(fc.covs[:, 0], S)


def test_sample_moments_match_model():
    model = random_model(S=2, D=1, seed=12)
    s = model.sample(4000, 3, generator=0)
    mx, cx, my, cy, *_ = dense_joint(model, 3)
    emp = s.observations.reshape(4000, -1)
    torch.testing.assert_close(emp.mean(0), my, rtol=0, atol=0.15)
    torch.testing.assert_close(torch.cov(emp.T), cy, rtol=0.1, atol=0.15)


def test_bad_input_names_argument():
    model = random_model()
    y = torch.randn(5, 2, dtype=DT)
    with pytest.raises(ValueError, match="y: contains NaN"):
        model.filter(y.index_put((torch.tensor([1]),), torch.tensor(float("nan"), dtype=DT)))
    with pytest.raises(ValueError, match="y: expected shape"):
        model.filter(torch.randn(5, 3, dtype=DT))
    with pytest.raises(ValueError, match="emission_cov: expected a symmetric"):
        model.set_params(emission_cov=torch.tensor([[1.0, 0.5], [0.0, 1.0]], dtype=DT))
    with pytest.raises(ValueError, match="transition_cov: expected a positive definite"):
        model.set_params(transition_cov=-torch.eye(3, dtype=DT))
    with pytest.raises(ValueError, match="mask: expected shape"):
        model.filter(y, mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="fixed: unknown parameter"):
        model.fit(y, fixed=("A",))


def test_agrees_with_pykalman():
    pykalman = pytest.importorskip("pykalman")
    model = random_model(S=3, D=2, seed=13)
    y = model.sample(1, 50, generator=14).observations[0]
    p = {k: v.detach().numpy() for k, v in model.params._asdict().items()}
    kf = pykalman.KalmanFilter(
        transition_matrices=p["transition_matrix"],
        observation_matrices=p["emission_matrix"],
        transition_covariance=p["transition_cov"],
        observation_covariance=p["emission_cov"],
        initial_state_mean=p["initial_mean"],
        initial_state_covariance=p["initial_cov"],
    )
    fm, fc = kf.filter(y.numpy())
    sm, sc = kf.smooth(y.numpy())
    f, s = model.filter(y), model.smooth(y)
    np.testing.assert_allclose(f.means.numpy(), fm, rtol=0, atol=1e-8)
    np.testing.assert_allclose(f.covs.numpy(), fc, rtol=0, atol=1e-8)
    np.testing.assert_allclose(s.means.numpy(), sm, rtol=0, atol=1e-8)
    np.testing.assert_allclose(s.covs.numpy(), sc, rtol=0, atol=1e-8)
    assert math.isclose(float(f.log_likelihood), kf.loglikelihood(y.numpy()), abs_tol=1e-8)


def test_steady_state_equals_full_recursion():
    model = random_model(S=3, D=2, U=1, seed=15)
    u = torch.randn(3, 300, 1, dtype=DT)
    y = model.sample(3, 300, inputs=u, generator=16).observations
    p = model.params
    fast_f = kalman_filter(p, y, u, steady_state=True)
    full_f = kalman_filter(p, y, u, steady_state=False)
    fast_s = rts_smoother(p, y, u, steady_state=True)
    full_s = rts_smoother(p, y, u, steady_state=False)
    for a, b in zip((*fast_f, *fast_s), (*full_f, *full_s)):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_one_em_iteration_agrees_with_pykalman():
    pykalman = pytest.importorskip("pykalman")
    model = random_model(S=2, D=2, seed=17)
    y = model.sample(1, 40, generator=18).observations[0]
    p = {k: v.detach().numpy().copy() for k, v in model.params._asdict().items()}
    kf = pykalman.KalmanFilter(
        transition_matrices=p["transition_matrix"],
        observation_matrices=p["emission_matrix"],
        transition_covariance=p["transition_cov"],
        observation_covariance=p["emission_cov"],
        initial_state_mean=p["initial_mean"],
        initial_state_covariance=p["initial_cov"],
        em_vars=[
            "transition_matrices",
            "observation_matrices",
            "transition_covariance",
            "observation_covariance",
            "initial_state_mean",
            "initial_state_covariance",
        ],
    )
    kf = kf.em(y.numpy(), n_iter=1)
    pairs = {
        "transition_matrix": kf.transition_matrices,
        "emission_matrix": kf.observation_matrices,
        "transition_cov": kf.transition_covariance,
        "emission_cov": kf.observation_covariance,
        "initial_mean": kf.initial_state_mean,
        "initial_cov": kf.initial_state_covariance,
    }
    model.fit(y, n_iter=1, tol=0.0)  # one E-step and one M-step
    assert len(model.history_) == 2 and model.n_iter_ == 1
    for name, ref in pairs.items():
        np.testing.assert_allclose(getattr(model, name).detach().numpy(), ref, atol=1e-8)


def test_em_with_lengths_equals_em_on_truncated_sequences():
    truth = random_model(S=2, D=2, seed=19)
    y = truth.sample(3, 20, generator=20).observations
    lengths = torch.tensor([20, 12, 15])
    padded = LinearDynamicalSystem(2, 2).fit(y, lengths=lengths, n_iter=3, tol=0.0)
    # padded steps must not matter: other values there give the same fit
    y2 = y.clone()
    for b, n in enumerate(lengths.tolist()):
        y2[b, n:] = 1e3
    padded2 = LinearDynamicalSystem(2, 2).fit(y2, lengths=lengths, n_iter=3, tol=0.0)
    for a, b in zip(padded.params, padded2.params):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    one = LinearDynamicalSystem(2, 2).fit(y[1:2, :12], n_iter=3, tol=0.0)
    one_padded = LinearDynamicalSystem(2, 2).fit(y[1:2], lengths=lengths[1:2], n_iter=3, tol=0.0)
    for a, b in zip(one.params, one_padded.params):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
