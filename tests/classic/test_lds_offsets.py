"""Transition and observation offsets of the LDS (x_t = A x_{t-1} + b + w, y_t = C x_t + d
+ v): filter/smoother/likelihood against pykalman, EM against pykalman's offset updates,
the EM fixed point against autograd (zero gradient) and a brute-force perturbation,
sampling and forecasting against closed forms, masked paths."""

import numpy as np
import pytest
import torch

from rnnlab.classic.lds import LinearDynamicalSystem

pykalman = pytest.importorskip("pykalman")

DT = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore::rnnlab.classic.ConvergenceWarning")

A = np.array([[0.9, 0.1], [0.0, 0.8]])
C = np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 1.0]])
B_OFF = np.array([0.5, -0.3])
D_OFF = np.array([1.0, 2.0, 3.0])


def true_model():
    return LinearDynamicalSystem.from_params(
        transition_matrix=A,
        emission_matrix=C,
        transition_offset=B_OFF,
        observation_offset=D_OFF,
    )


def data(seed=0, T=200):
    return true_model().sample(1, T, generator=seed).observations[0].numpy()


def peer(**kw):
    args = dict(
        transition_matrices=A,
        observation_matrices=C,
        transition_covariance=np.eye(2),
        observation_covariance=np.eye(3),
        initial_state_mean=np.zeros(2),
        initial_state_covariance=np.eye(2),
        transition_offsets=B_OFF,
        observation_offsets=D_OFF,
    )
    args.update(kw)
    return pykalman.KalmanFilter(**args)


def test_offsets_filter_smoother_loglik_match_pykalman():
    y = data()
    m, kf = true_model(), peer()
    assert m.score(y) == pytest.approx(kf.loglikelihood(y), rel=1e-12)
    np.testing.assert_allclose(m.filter(y).means.numpy(), kf.filter(y)[0], atol=1e-11)
    sm, sc = kf.smooth(y)
    res = m.smooth(y)
    np.testing.assert_allclose(res.means.numpy(), sm, atol=1e-11)
    np.testing.assert_allclose(res.covs.numpy(), sc, atol=1e-11)


def test_offsets_masked_rows_match_pykalman_and_explicit_mask():
    y = data()
    rows = np.random.RandomState(0).rand(len(y)) < 0.3
    ym = np.ma.masked_array(y, mask=np.repeat(rows[:, None], 3, 1))
    m, kf = true_model(), peer()
    assert m.score(ym) == pytest.approx(kf.loglikelihood(ym), rel=1e-12)
    np.testing.assert_allclose(m.smooth(ym).means.numpy(), kf.smooth(ym)[0], atol=1e-10)
    # an explicit per-coordinate mask gives the same as the masked array
    assert m.score(y, mask=torch.as_tensor(~rows)) == pytest.approx(m.score(ym), rel=1e-13)


def test_offsets_em_step_equals_pykalman_offset_updates():
    """With matrices and covariances held, pykalman's offset M-step is the exact joint
    maximiser, so both must agree at every iteration."""
    y = data()
    kf = peer(
        transition_offsets=np.zeros(2),
        observation_offsets=np.zeros(3),
        em_vars=["transition_offsets", "observation_offsets"],
    ).em(y, n_iter=5)
    m = LinearDynamicalSystem.from_params(transition_matrix=A, emission_matrix=C, offsets=True)
    held = ("transition_matrix", "emission_matrix", "transition_cov", "emission_cov")
    m.fit(y, n_iter=5, fixed=(*held, "initial_mean", "initial_cov"))
    np.testing.assert_allclose(
        m.transition_offset.detach().numpy(), kf.transition_offsets, atol=1e-12
    )
    np.testing.assert_allclose(
        m.observation_offset.detach().numpy(), kf.observation_offsets, atol=1e-12
    )


@pytest.mark.slow
def test_offsets_full_em_reaches_pykalman_likelihood_and_beats_no_offsets():
    y = data()
    kf = peer(transition_offsets=np.zeros(2), observation_offsets=np.zeros(3), em_vars="all").em(
        y, n_iter=200
    )
    m = LinearDynamicalSystem.from_params(transition_matrix=A, emission_matrix=C, offsets=True)
    m.fit(y, n_iter=200)
    h = np.array(m.history_)
    assert (np.diff(h) >= -1e-9 * abs(h[-1])).all()  # monotone
    # joint M-step: at least as high as pykalman's coordinate-wise updates
    assert m.score(y) >= kf.loglikelihood(y) - 1e-6
    plain = LinearDynamicalSystem.from_params(transition_matrix=A, emission_matrix=C)
    assert m.score(y) > plain.fit(y, n_iter=200).score(y) + 10.0


@pytest.mark.slow
def test_offsets_em_fixed_point_is_stationary_and_a_maximum():
    """Tiny problem: at convergence the autograd gradient w.r.t. the offsets vanishes and
    every perturbation of them lowers the log-likelihood (brute force)."""
    y = data(T=60)[:, :1]
    m = LinearDynamicalSystem.from_params(
        transition_matrix=[[0.7]], emission_matrix=[[1.0]], offsets=True
    )
    m.fit(y, n_iter=3000, tol=1e-12, rtol=0.0)
    m.zero_grad()
    ll = m(torch.as_tensor(y))
    ll.backward()
    for name in ("transition_offset", "observation_offset"):
        assert abs(float(getattr(m, name).grad)) < 1e-4 * max(1.0, abs(float(ll.detach())))
    best = m.score(y)
    for name in ("transition_offset", "observation_offset"):
        base = getattr(m, name).detach().clone()
        for step in (-1e-2, 1e-2):
            m.set_params(**{name: base + step})
            assert m.score(y) < best
        m.set_params(**{name: base})


def test_offsets_fixed_are_held_and_hand_set_offsets_are_used_but_not_learned():
    y = data()
    m = LinearDynamicalSystem.from_params(
        transition_matrix=A, emission_matrix=C, transition_offset=B_OFF, observation_offset=D_OFF
    )
    m.fit(y, n_iter=5, fixed=("observation_offset",))
    np.testing.assert_array_equal(m.observation_offset.detach().numpy(), D_OFF)
    assert not np.array_equal(m.transition_offset.detach().numpy(), B_OFF)
    h = LinearDynamicalSystem.from_params(transition_matrix=A, emission_matrix=C, offsets=False)
    h.set_params(observation_offset=D_OFF)
    assert h.score(y) == pytest.approx(peer(transition_offsets=np.zeros(2)).loglikelihood(y))
    h.fit(y, n_iter=3)
    np.testing.assert_array_equal(h.observation_offset.detach().numpy(), D_OFF)
    np.testing.assert_array_equal(h.transition_offset.detach().numpy(), np.zeros(2))


def test_offsets_sampling_and_forecast_means():
    m = true_model()
    # stationary mean of x: (I - A)^{-1} b; of y: C x + d
    mx = np.linalg.solve(np.eye(2) - A, B_OFF)
    s = m.sample(4000, 60, generator=1)
    emp = s.observations[:, -1].mean(0).numpy()
    np.testing.assert_allclose(emp, C @ mx + D_OFF, atol=0.12)
    y = data()
    f = m.forecast(y, 3)
    fm = m.filter(y).means[-1].numpy()
    x = fm
    for h in range(3):
        x = A @ x + B_OFF
        np.testing.assert_allclose(f.means[h].numpy(), C @ x + D_OFF, atol=1e-12)
    # online update equals the batch filter
    mean, cov = m.filter_update(m.filter(y[:-1]).means[-1], m.filter(y[:-1]).covs[-1], y[-1])
    np.testing.assert_allclose(mean.numpy(), fm, atol=1e-12)
    # one-step forecast at t = 1: C (A m_0 + b) + d
    osf = m.one_step_forecast(y)[1].numpy()
    m0 = m.filter(y).means[0].numpy()
    np.testing.assert_allclose(osf, C @ (A @ m0 + B_OFF) + D_OFF, atol=1e-12)
