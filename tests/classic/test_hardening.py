"""Regression tests of issues 9 and 10 for the classical models (each numbered item a
test) and property-based tests of their public entry points: every generated input gives
either a ValueError/TypeError naming the argument or the oracle's answer (brute-force
enumeration of HMM paths, the dense joint Gaussian of the LDS, hmmlearn, pykalman)."""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_lds import condition, dense_joint, random_model

from rnnlab.analysis.kmeans import kmeans
from rnnlab.classic import HMM, ConvergenceWarning, LinearAR, LinearDynamicalSystem, NeuralAR
from rnnlab.classic.hmm import concatenated_to_batch, forward_filter
from rnnlab.errors import InputError

F64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore::rnnlab.classic.ConvergenceWarning")

# a few dozen examples per property in the default run, many more under -m slow
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------- brute-force oracle


def brute_force(log_pi, log_A, log_b):
    """log p(x), posterior marginals (T, K) and the best path's log-probability by
    enumerating all K^T paths (float64)."""
    T, K = log_b.shape
    scores, paths = [], []
    for z in itertools.product(range(K), repeat=T):
        s = log_pi[z[0]] + log_b[0, z[0]]
        for t in range(1, T):
            s = s + log_A[z[t - 1], z[t]] + log_b[t, z[t]]
        scores.append(s)
        paths.append(z)
    scores = torch.stack(scores)
    ll = torch.logsumexp(scores, 0)
    post = torch.zeros(T, K, dtype=F64)
    if torch.isfinite(ll):
        w = (scores - ll).exp()
        for z, wz in zip(paths, w):
            for t in range(T):
                post[t, z[t]] += wz
    return ll, post, scores.max()


def _reachability_model(dtype, sigma):
    """State 0 is reachable, state 1 is not (pi_1 = 0, A_01 = 0) but explains x = sigma."""
    return HMM.from_params(
        initial_probs=torch.tensor([1.0, 0.0], dtype=dtype),
        transition_matrix=torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=dtype),
        means=torch.tensor([[0.0], [sigma]], dtype=dtype),
        covs=torch.ones(2, 1, dtype=dtype),
    )


# ------------------------------------------------------------- issue 10, item 1


@pytest.mark.parametrize("dtype, sigma", [(torch.float32, 13.0), (torch.float64, 35.0)])
def test_outlier_only_an_unreachable_state_explains_is_finite(dtype, sigma):
    m = _reachability_model(dtype, sigma)
    x = torch.tensor([[sigma], [0.1], [-0.4], [0.2]], dtype=dtype)
    pi = m.log_initial_probs.detach().double()
    A = m.log_transition_matrix.detach().double()
    log_b = torch.distributions.Normal(torch.tensor([0.0, sigma], dtype=F64), 1.0).log_prob(
        x.double()
    )
    ll_ref, post_ref, _ = brute_force(pi, A, log_b)
    assert math.isfinite(float(ll_ref))
    ll = m.log_likelihood(x).detach()
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    assert float(ll) == pytest.approx(float(ll_ref), rel=tol)
    ll_s, post = m.score_samples(x)
    torch.testing.assert_close(post.double(), post_ref, atol=tol, rtol=0)
    nxt = m.predict_next(x)
    assert torch.isfinite(nxt).all() and float(nxt.sum()) == pytest.approx(1.0, abs=tol)
    # the gradient (expected statistics) is finite too
    m.means.requires_grad_(True)
    m.log_likelihood(x).backward()
    assert torch.isfinite(m.means.grad).all()
    # batched with an ordinary sequence: each row as alone
    xb = torch.stack([x, torch.zeros_like(x)])
    torch.testing.assert_close(m.log_likelihood(xb)[0].detach(), ll.detach())


def test_categorical_emission_of_1e_300_is_not_minus_inf():
    m = HMM.from_params(
        initial_probs=torch.tensor([1.0, 0.0], dtype=F64),
        transition_matrix=torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=F64),
        emission_probs=torch.tensor([[1 - 1e-300, 1e-300], [0.0, 1.0]], dtype=F64),
    )
    ll = m.score(torch.tensor([1, 0, 0]))
    assert ll == pytest.approx(math.log(1e-300), rel=1e-12)  # -690.78


def test_impossible_observation_gives_minus_inf_not_nan():
    m = HMM.from_params(
        initial_probs=torch.tensor([1.0, 0.0], dtype=F64),
        transition_matrix=torch.tensor([[1.0, 0.0], [0.5, 0.5]], dtype=F64),
        emission_probs=torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=F64),
    )
    x = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 0]])
    ll = m.log_likelihood(x)
    assert float(ll[0]) == -math.inf and float(ll[1]) == pytest.approx(0.0)
    post = m.posterior(x)
    assert not post.isnan().any() and (post[0] == 0).all()
    assert torch.equal(post[1], torch.tensor([[1.0, 0.0]] * 4, dtype=F64))
    nxt = m.predict_next(x)
    assert not nxt.isnan().any() and (nxt[0] == 0).all()
    res = forward_filter(m.log_initial_probs, m.log_transition_matrix, torch.zeros(1, 3, 2))
    assert torch.isfinite(res.log_likelihood).all()
    with pytest.raises(InputError, match="x: log-likelihood is -inf"):
        m.fit(x, fixed=("emissions",))


def test_posterior_overflow_of_unreachable_state_is_recomputed_exactly():
    # every frame at 9 sigma: the unreachable state's scaled backward messages grow by
    # e^40 a step and overflow after a few dozen steps in the fast recursion
    m = _reachability_model(F64, 9.0)
    x = torch.full((60, 1), 9.0, dtype=F64)
    ll, post = m.score_samples(x)
    assert torch.isfinite(ll) and torch.equal(post[:, 1], torch.zeros(60, dtype=F64))
    expected = -60 * (0.5 * 81 + 0.5 * math.log(2 * math.pi))
    assert float(ll) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------- issue 10, item 6


def test_float32_row_sums_are_checked_whatever_the_number_of_symbols():
    B = torch.full((2, 1000), 1.31 / 1000, dtype=torch.float32)
    with pytest.raises(InputError, match="emission_probs: expected rows summing to 1"):
        HMM.from_params(
            initial_probs=torch.tensor([0.5, 0.5]),
            transition_matrix=torch.full((2, 2), 0.5),
            emission_probs=B,
        )
    ok = torch.softmax(torch.randn(2, 1000), -1)  # float32 rounding of real rows passes
    HMM.from_params(
        initial_probs=torch.tensor([0.5, 0.5]),
        transition_matrix=torch.full((2, 2), 0.5),
        emission_probs=ok,
    )


def test_lds_nan_parameter_and_fractional_mask_and_float_lags_are_refused():
    model = random_model(S=2, D=2)
    A = torch.eye(2, dtype=F64)
    A[0, 1] = math.nan
    with pytest.raises(InputError, match="transition_matrix: expected finite"):
        model.set_params(transition_matrix=A)
    y = model.sample(1, 5, generator=0).observations
    mask = torch.ones(1, 5)
    mask[0, 2] = 0.5
    with pytest.raises(InputError, match="mask: expected bool values or 0/1"):
        model.score(y, mask=mask)
    # 0/1 numbers are read as observed/missing
    m01 = torch.ones(1, 5)
    m01[0, 2] = 0
    assert model.score(y, mask=m01) == model.score(y, mask=m01.bool())
    with pytest.raises(InputError, match="lags: expected distinct integers"):
        LinearAR(lags=[1.5, 2.7])


# ------------------------------------------------------------- issue 10, item 12


def test_lds_bad_masks_inputs_and_dtypes_name_the_argument():
    model = random_model(S=2, D=2, U=1)
    u = torch.randn(2, 6, 1, dtype=F64)
    y = model.sample(2, 6, inputs=u, generator=1).observations
    for bad in (torch.ones(3, 6, dtype=torch.bool), torch.ones(2, 5, 2, dtype=torch.bool)):
        with pytest.raises(InputError, match="mask: expected shape"):
            model.score(y, inputs=u, mask=bad)
    for bad_u in (u.float(), u.long()):
        with pytest.raises(TypeError, match="inputs: expected"):
            model.score(y, inputs=bad_u)
    with pytest.raises(TypeError, match="y: expected dtype torch.float64"):
        model.score(y.float(), inputs=u)
    for dtype in (torch.int64, torch.float16):
        with pytest.raises(TypeError, match="dtype: expected torch.float32 or torch.float64"):
            LinearDynamicalSystem(2, 2, dtype=dtype)
    # numpy float32 data is converted (not a tensor: no silent cast of the user's tensor)
    s = model.score(y.numpy().astype(np.float32).astype(np.float64), inputs=u.numpy())
    assert s == pytest.approx(model.score(y, inputs=u))


# ------------------------------------------------------------- issue 10, item 15


def test_neural_ar_linear_ar_and_hmm_argument_checks():
    nar = NeuralAR(order=2, vocab_size=4, embedding_dim=3, hidden_size=5)
    x = torch.randint(0, 4, (3, 20))
    with pytest.raises(InputError, match="lr: expected a finite number > 0"):
        nar.fit(x, epochs=1, lr=-1e-3)
    with pytest.raises(TypeError, match="context: expected integer token ids"):
        nar.sample(1, 3, context=torch.zeros(1, 2))
    with pytest.raises(InputError, match="context: expected token ids in 0..3"):
        nar.sample(1, 3, context=torch.tensor([[0, 9]]))
    with pytest.raises(InputError, match="y: the residuals"):
        LinearAR(order=2).fit(torch.full((50,), 3.0, dtype=F64))
    hmm = HMM(2, num_symbols=3)
    with pytest.raises(TypeError, match="generator: expected a torch.Generator, an int seed"):
        hmm.fit(torch.randint(0, 3, (2, 10)), generator="a")


# ------------------------------------------------------------- issue 9: silent results


def test_numpy_masked_array_equals_explicit_mask():
    model = random_model(S=2, D=2)
    y = model.sample(2, 8, generator=2).observations
    miss = torch.rand(2, 8, 2, generator=torch.Generator().manual_seed(0)) < 0.3
    ym = np.ma.masked_array(y.numpy(), mask=miss.numpy())
    ym.data[miss.numpy()] = 1e9  # garbage under the mask must not matter
    assert model.score(ym) == pytest.approx(model.score(y, mask=~miss), rel=1e-14)
    torch.testing.assert_close(model.smooth(ym).means, model.smooth(y, mask=~miss).means)


def test_hmmlearn_column_layout_is_refused_or_read_as_hmmlearn_means_it():
    true = HMM.from_params(
        initial_probs=torch.tensor([0.6, 0.4], dtype=F64),
        transition_matrix=torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64),
        emission_probs=torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], dtype=F64),
    )
    x = true.sample(3, 20, generator=0).observations  # (3, 20)
    col = x.reshape(-1, 1).numpy()  # hmmlearn: X (60, 1), lengths [20, 20, 20]
    with pytest.raises(InputError, match="would read as 60 sequences of length 1"):
        true.score(col)
    assert true.score(col, [20, 20, 20]) == pytest.approx(true.score(x), rel=1e-14)
    # unequal lengths: the same as the padded batch
    lens = [7, 30, 23]
    xb, lb = concatenated_to_batch(col[:, 0], lens)
    assert true.score(col, lens) == pytest.approx(true.score(xb, lb), rel=1e-14)
    # Gaussian: (N, D) with lengths summing to N
    g = HMM.from_params(
        initial_probs=torch.tensor([0.5, 0.5], dtype=F64),
        transition_matrix=torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64),
        means=torch.tensor([[0.0], [3.0]], dtype=F64),
        covs=torch.ones(2, 1, dtype=F64),
    )
    yg = g.sample(2, 15, generator=1).observations
    assert g.score(yg.reshape(30, 1).numpy(), [15, 15]) == pytest.approx(g.score(yg), rel=1e-13)


def test_unvisited_state_with_zero_pseudocount_keeps_a_valid_row():
    # state 2 is never entered (A[:, 2] = 0 and pi_2 = 0): no expected counts at all
    m = HMM.from_params(
        initial_probs=torch.tensor([0.5, 0.5, 0.0], dtype=F64),
        transition_matrix=torch.tensor(
            [[0.8, 0.2, 0.0], [0.3, 0.7, 0.0], [0.3, 0.3, 0.4]], dtype=F64
        ),
        emission_probs=torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]], dtype=F64),
    )
    x = torch.randint(0, 2, (4, 30), generator=torch.Generator().manual_seed(0))
    m.fit(x, n_iter=5, pseudocount=0.0)
    A = m.transition_matrix.detach()
    assert torch.isfinite(A).all()
    torch.testing.assert_close(A[2], torch.tensor([0.3, 0.3, 0.4], dtype=F64))
    torch.testing.assert_close(A.sum(-1), torch.ones(3, dtype=F64))


def test_too_little_data_warns_of_a_degenerate_solution():
    m = HMM(4, "gaussian", obs_dim=3, dtype=F64)
    x = torch.randn(1, 5, 3, dtype=F64)
    with pytest.warns(UserWarning, match="free parameters fitted to 15 scalar observations"):
        m.fit(x, n_iter=2)


# ------------------------------------------------------- issue 9: reproducible fits


def _robot_like_problem():
    """A 2-state, 2-output LDS driven by collinear inputs (u_2 = 2 u_1, u_3 constant)."""
    g = torch.Generator().manual_seed(3)
    u1 = torch.randn(2, 40, 1, generator=g, dtype=F64)
    u = torch.cat([u1, 2 * u1, torch.ones_like(u1)], -1)  # rank 2 of 3
    truth = random_model(S=2, D=2, U=3, seed=4)
    y = truth.sample(2, 40, inputs=u, generator=5).observations
    return y, u


def test_lds_em_is_bitwise_reproducible_and_monotone_on_rank_deficient_inputs():
    y, u = _robot_like_problem()
    fits = [LinearDynamicalSystem(2, 2, 3).fit(y, inputs=u, n_iter=30) for _ in range(3)]
    for f in fits[1:]:
        for a, b in zip(fits[0].params, f.params):
            assert torch.equal(a, b)
        assert f.history_ == fits[0].history_
    h = np.array(fits[0].history_)
    assert (np.diff(h) >= -1e-9 * np.abs(h[1:])).all(), np.diff(h).min()


def _nile():
    import statsmodels

    path = Path(statsmodels.__file__).parent / "datasets" / "nile" / "nile.csv"
    return np.loadtxt(path, delimiter=",", skiprows=1)[:, 1]


def test_nile_diffuse_log_likelihood_at_the_published_mle():
    pytest.importorskip("statsmodels")
    y = torch.tensor(_nile(), dtype=F64)[:, None]
    m = LinearDynamicalSystem.from_params(
        transition_cov=torch.tensor([[1469.1]], dtype=F64),
        emission_cov=torch.tensor([[15099.0]], dtype=F64),
        diffuse=True,
    )
    # Durbin & Koopman (2012), section 2.10: log-likelihood -632.54 at this MLE (the first,
    # diffuse, observation left out); no hand correction needed
    assert m.score(y) == pytest.approx(-632.54, abs=0.01)
    with pytest.raises(InputError, match="diffuse: a diffuse initial state"):
        m.sample(1, 3)


@pytest.mark.slow
def test_nile_local_level_reaches_the_published_mle_with_default_settings():
    pytest.importorskip("statsmodels")
    y = torch.tensor(_nile(), dtype=F64)[:, None]
    t = lambda v: torch.tensor(v, dtype=F64)  # noqa: E731
    m = LinearDynamicalSystem.from_params(
        transition_cov=t([[1000.0]]), emission_cov=t([[10000.0]]), diffuse=True
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # converged, monotone
        m.fit(y, fixed=("transition_matrix", "emission_matrix"))
    assert m.converged_
    # Durbin & Koopman (2012), section 2.10: sigma2_eps 15099, sigma2_eta 1469.1
    assert float(m.emission_cov) == pytest.approx(15099, rel=1e-4)
    assert float(m.transition_cov) == pytest.approx(1469.1, rel=1e-4)
    assert m.history_[-1] == pytest.approx(-632.54, abs=0.01)


def test_filter_update_online_equals_the_batch_filter_and_from_params_defaults():
    model = random_model(S=3, D=2, U=1, seed=9)
    u = torch.randn(1, 12, 1, dtype=F64)
    y = model.sample(1, 12, inputs=u, generator=3).observations[0]
    y_nan = y.clone()
    y_nan[4] = math.nan  # a whole vector missing
    y_nan[7, 1] = math.nan  # one coordinate missing
    res = model.filter(y, inputs=u[0], mask=~torch.isnan(y_nan))
    p = model.params
    # step 0 is the measurement update of the prior; from then on filter_update
    m, P = res.means[0], res.covs[0]
    for t in range(1, 12):
        obs = None if t == 4 else y_nan[t]
        m, P = model.filter_update(m, P, obs, input=u[0, t])
        torch.testing.assert_close(m, res.means[t], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(P, res.covs[t], rtol=1e-10, atol=1e-12)
    assert p.transition_matrix.shape == (3, 3)
    d = LinearDynamicalSystem.from_params(
        emission_cov=torch.eye(2, dtype=F64) * 2, initial_mean=[0.0] * 3
    )
    torch.testing.assert_close(d.transition_matrix.detach(), torch.eye(3, dtype=F64))
    torch.testing.assert_close(d.emission_matrix.detach(), torch.eye(2, 3, dtype=F64))
    with pytest.raises(InputError, match="state_dim: cannot be read"):
        LinearDynamicalSystem.from_params(emission_cov=torch.eye(2, dtype=F64))


def test_hmm_fit_does_not_depend_on_sequence_order():
    true = HMM.from_params(
        initial_probs=torch.tensor([0.5, 0.3, 0.2], dtype=F64),
        transition_matrix=torch.tensor(
            [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], dtype=F64
        ),
        means=torch.tensor([[-3.0, 0.0], [0.0, 3.0], [3.0, 0.0]], dtype=F64),
        covs=torch.ones(3, 2, dtype=F64),
    )
    x = true.sample(12, 30, generator=0).observations
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(1))
    a = HMM(3, "gaussian", obs_dim=2, covariance="diag", dtype=F64).fit(x, n_iter=20)
    b = HMM(3, "gaussian", obs_dim=2, covariance="diag", dtype=F64).fit(x[perm], n_iter=20)
    torch.testing.assert_close(a.means, b.means, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(a.transition_matrix, b.transition_matrix, rtol=1e-9, atol=1e-9)
    assert a.score(x) == pytest.approx(b.score(x), rel=1e-12)


def test_covariance_floor_is_relative_so_the_fit_is_scale_equivariant():
    # hmmlearn issue 410: feature variances of 1e-4 .. 5e-3; an absolute floor of 1e-3
    # swamps them. With the relative floor, fitting c * x is fitting x in other units.
    true = HMM.from_params(
        initial_probs=torch.tensor([0.5, 0.5], dtype=F64),
        transition_matrix=torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=F64),
        means=torch.tensor([[0.0, 0.0], [2.0, -1.0]], dtype=F64),
        covs=torch.tensor([[1.0, 0.5], [0.8, 1.2]], dtype=F64),
    )
    x = true.sample(5, 60, generator=2).observations
    c = 0.01
    kw = {"n_iter": 30, "tol": 0.0, "rtol": 0.0}  # an absolute tol is not scale-free
    big = HMM(2, "gaussian", obs_dim=2, covariance="diag", dtype=F64).fit(x, **kw)
    small = HMM(2, "gaussian", obs_dim=2, covariance="diag", dtype=F64).fit(c * x, **kw)
    torch.testing.assert_close(small.means, c * big.means, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(small.variances, c**2 * big.variances, rtol=1e-7, atol=1e-12)
    n = x.shape[0] * x.shape[1] * x.shape[2]
    assert small.score(c * x) == pytest.approx(big.score(x) - n * math.log(c), rel=1e-9)


def test_left_right_structural_zeros_survive_the_default_pseudocount():
    A = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.6, 0.4], [0.0, 0.0, 1.0]], dtype=F64)
    m = HMM.from_params(
        initial_probs=torch.tensor([1.0, 0.0, 0.0], dtype=F64),
        transition_matrix=A,
        means=torch.tensor([[0.0], [2.0], [4.0]], dtype=F64),
        covs=torch.ones(3, 1, dtype=F64),
    )
    x = m.sample(6, 25, generator=3).observations
    m.fit(x, n_iter=10)
    A_fit = m.transition_matrix.detach()
    assert torch.equal(A_fit == 0, A == 0)
    assert (m.initial_probs.detach()[1:] == 0).all()


def test_fixed_parameters_are_held():
    m = HMM.from_params(
        initial_probs=torch.tensor([0.5, 0.5], dtype=F64),
        transition_matrix=torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64),
        emission_probs=torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=F64),
    )
    x = m.sample(4, 30, generator=4).observations
    B0 = m.emission_probs.detach().clone()
    A0 = m.transition_matrix.detach().clone()
    m.fit(x, n_iter=5, fixed=("emissions",))
    assert torch.equal(m.emission_probs.detach(), B0)
    assert not torch.equal(m.transition_matrix.detach(), A0)
    with pytest.raises(InputError, match="fixed: expected names from"):
        m.fit(x, fixed=("means",))


def test_loop_of_one_iteration_fits_warns_on_a_decrease():
    m = HMM.from_params(
        initial_probs=torch.tensor([0.5, 0.5], dtype=F64),
        transition_matrix=torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64),
        emission_probs=torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=F64),
    )
    x = m.sample(4, 30, generator=4).observations
    m.fit(x, n_iter=1)
    with pytest.warns(ConvergenceWarning, match="decreased"):
        for _ in range(3):  # a huge pseudocount: a penalised update lowers the likelihood
            m.fit(x, n_iter=1, pseudocount=1e4)


# --------------------------------------------------------------------- hmmlearn oracles


@pytest.mark.parametrize("covariance", ["spherical", "diag", "full", "tied"])
def test_one_em_step_and_information_criteria_agree_with_hmmlearn(covariance):
    hmm = pytest.importorskip("hmmlearn.hmm")
    g = torch.Generator().manual_seed(5)
    K, D = 3, 2
    means = torch.randn(K, D, generator=g, dtype=F64) * 2
    var = torch.rand(K, generator=g, dtype=F64) + 0.5
    if covariance == "spherical":
        covs = var[:, None].expand(K, D).clone()
    elif covariance == "diag":
        covs = torch.rand(K, D, generator=g, dtype=F64) + 0.5
    elif covariance == "full":
        L = torch.randn(K, D, D, generator=g, dtype=F64) * 0.3
        covs = L @ L.mT + torch.eye(D, dtype=F64)
    else:  # tied: one (D, D) matrix
        L = torch.randn(D, D, generator=g, dtype=F64) * 0.3
        covs = L @ L.mT + torch.eye(D, dtype=F64)
    pi = torch.tensor([0.5, 0.3, 0.2], dtype=F64)
    A = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], dtype=F64)
    ours = HMM.from_params(
        initial_probs=pi, transition_matrix=A, means=means, covs=covs, covariance=covariance
    )
    x = ours.sample(3, 40, generator=6).observations
    X = x.reshape(-1, D).numpy()
    lens = [40] * 3
    ref = hmm.GaussianHMM(  # maximum likelihood: no floor, no covariance prior
        K, covariance_type=covariance, n_iter=1, init_params="", min_covar=0, covars_prior=0
    )
    ref.startprob_, ref.transmat_, ref.means_ = pi.numpy(), A.numpy(), means.numpy()
    ref.covars_ = var.numpy() if covariance == "spherical" else covs.numpy()
    assert ours.score(x) == pytest.approx(ref.score(X, lens), rel=1e-10)
    assert ours.aic(x) == pytest.approx(ref.aic(X, lens), rel=1e-10)
    assert ours.bic(x) == pytest.approx(ref.bic(X, lens), rel=1e-10)
    ref.fit(X, lens)
    ours.fit(x, n_iter=1, pseudocount=0.0, min_covar=0.0)
    torch.testing.assert_close(ours.means.detach().numpy(), ref.means_, rtol=1e-8, atol=1e-10)
    if covariance in ("full", "tied"):
        full = np.broadcast_to(ref._covars_, (K, D, D))
        ref_var = np.diagonal(full, axis1=-2, axis2=-1)
        torch.testing.assert_close(ours.covs.detach().numpy(), full, rtol=1e-8, atol=1e-10)
    else:
        ref_var = np.broadcast_to(np.asarray(ref._covars_).reshape(K, -1), (K, D))
    torch.testing.assert_close(ours.variances.detach().numpy(), ref_var, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(
        ours.transition_matrix.detach().numpy(), ref.transmat_, rtol=1e-8, atol=1e-10
    )


# ------------------------------------------------------------------------- properties

_probs = st.lists(st.floats(0.0, 1.0), min_size=1, max_size=4)


@st.composite
def categorical_case(draw):
    K = draw(st.integers(1, 3))
    M = draw(st.integers(1, 3))
    T = draw(st.integers(1, 4))

    def rows(n, width, zeros=True):
        out = []
        for _ in range(n):
            r = draw(
                st.lists(
                    # zeros, or at least 1e-300: the forward kernel flushes subnormal scaled
                    # emissions to 0 by design (hmm.py, the scaled emissions' docstring)
                    st.one_of(st.just(0.0), st.floats(1e-300, 1.0))
                    if zeros
                    else st.floats(0.05, 1.0),
                    min_size=width,
                    max_size=width,
                )
            )
            if sum(r) == 0:
                r[0] = 1.0
            s = sum(r)
            out.append([v / s for v in r])
        return torch.tensor(out, dtype=F64)

    pi = rows(1, K)[0]
    A = rows(K, K)
    B = rows(K, M)
    x = torch.tensor(draw(st.lists(st.integers(0, M - 1), min_size=T, max_size=T)))
    return pi, A, B, x


def _check_categorical_against_brute_force(case):
    pi, A, B, x = case
    try:
        m = HMM.from_params(initial_probs=pi, transition_matrix=A, emission_probs=B)
    except InputError as e:  # row sums off by rounding of the normalisation: named
        assert any(n in str(e) for n in ("initial_probs", "transition_matrix", "emission_probs"))
        return
    log_b = B.log().t()[x]  # (T, K)
    ll_ref, post_ref, best_ref = brute_force(pi.log(), A.log(), log_b)
    ll = m.log_likelihood(x).detach()
    assert not ll.isnan()
    if float(ll_ref) == -math.inf:
        assert float(ll) == -math.inf
    else:
        assert float(ll) == pytest.approx(float(ll_ref), rel=1e-10, abs=1e-12)
    ll2, post = m.score_samples(x)
    assert not post.isnan().any()
    torch.testing.assert_close(post, post_ref, rtol=0, atol=1e-9)
    vit = m.viterbi(x)
    if math.isfinite(float(best_ref)):
        assert float(vit.log_probs) == pytest.approx(float(best_ref), rel=1e-10, abs=1e-12)


@FAST
@given(categorical_case())
def test_property_hmm_equals_brute_force(case):
    _check_categorical_against_brute_force(case)


@pytest.mark.slow
@SLOW
@given(categorical_case())
def test_property_hmm_equals_brute_force_many(case):
    _check_categorical_against_brute_force(case)


_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.just([1, 2]),
)


def _check_fit_arguments(name, value):
    m = HMM(2, num_symbols=3, dtype=F64)
    x = torch.randint(0, 3, (2, 8), generator=torch.Generator().manual_seed(0))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m.fit(x, **{name: value})
    except (ValueError, TypeError) as e:
        assert str(e).startswith(name + ":"), (name, value, e)
        return
    assert torch.isfinite(m.transition_matrix).all()


@FAST
@given(st.sampled_from(["n_iter", "tol", "rtol", "pseudocount", "generator", "init"]), _junk)
def test_property_hmm_fit_arguments_are_named_or_accepted(name, value):
    _check_fit_arguments(name, value)


@pytest.mark.slow
@SLOW
@given(st.sampled_from(["n_iter", "tol", "rtol", "pseudocount", "generator", "init"]), _junk)
def test_property_hmm_fit_arguments_many(name, value):
    _check_fit_arguments(name, value)


@st.composite
def lds_case(draw):
    S = draw(st.integers(1, 2))
    D = draw(st.integers(1, 2))
    T = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 10_000))
    mask = draw(
        st.lists(st.sampled_from([0, 1, 1, 1, 0.5, 2, True, False]), min_size=T * D, max_size=T * D)
    )
    return S, D, T, seed, mask


def _check_lds_against_dense(case):
    S, D, T, seed, mask = case
    model = random_model(S=S, D=D, seed=seed)
    y = model.sample(1, T, generator=seed).observations[0]  # (T, D)
    m = torch.tensor([float(v) for v in mask], dtype=F64).reshape(T, D)
    try:
        ll = model.score(y, mask=m)
    except ValueError as e:
        assert str(e).startswith("mask:"), e
        assert ((m != 0) & (m != 1)).any()
        return
    assert ((m == 0) | (m == 1)).all()
    idx = torch.nonzero(m.reshape(-1) == 1).flatten()
    if idx.numel() == 0:
        assert ll == pytest.approx(0.0, abs=1e-12)
        return
    mean_x, cov_x, mean_y, cov_y, cov_xy, _, _ = dense_joint(model, T)
    _, _, ll_ref = condition(mean_x, cov_x, mean_y, cov_y, cov_xy, y.reshape(-1), idx)
    assert ll == pytest.approx(float(ll_ref), rel=1e-9, abs=1e-9)


@FAST
@given(lds_case())
def test_property_lds_equals_dense_joint_gaussian(case):
    _check_lds_against_dense(case)


@pytest.mark.slow
@SLOW
@given(lds_case())
def test_property_lds_equals_dense_joint_gaussian_many(case):
    _check_lds_against_dense(case)


@FAST
@given(st.integers(1, 5), st.integers(1, 40), st.integers(0, 1000))
def test_property_kmeans_inertia_matches_labels_and_is_locally_optimal(k, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g, dtype=F64)
    if k > n:
        with pytest.raises(InputError, match="k: expected at most"):
            kmeans(x, k, generator=seed)
        return
    res = kmeans(x, k, n_init=3, generator=seed)
    d2 = torch.cdist(x, res.centers).square()
    assert torch.equal(res.labels, d2.argmin(1)) or torch.allclose(
        d2.gather(1, res.labels[:, None]).squeeze(1), d2.min(1).values
    )
    assert res.inertia == pytest.approx(float(d2.min(1).values.sum()), rel=1e-12, abs=1e-12)


# ------------------------------------------------------------------- HMM features


def test_map_decoding_stationary_distribution_initial_state_and_inferred_symbols():
    A = torch.tensor([[0.9, 0.1, 0.0], [0.05, 0.9, 0.05], [0.2, 0.0, 0.8]], dtype=F64)
    B = torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]], dtype=F64)
    m = HMM.from_params(
        initial_probs=torch.tensor([0.2, 0.3, 0.5], dtype=F64),
        transition_matrix=A,
        emission_probs=B,
    )
    x = torch.tensor([0, 0, 1, 2, 2, 1])
    log_b = B.log().t()[x]
    _, post_ref, _ = brute_force(m.log_initial_probs, m.log_transition_matrix, log_b)
    assert torch.equal(m.predict(x, algorithm="map"), post_ref.argmax(-1))
    with pytest.raises(InputError, match="algorithm: expected 'viterbi' or 'map'"):
        m.predict(x, algorithm="posterior")
    pi = m.stationary_distribution
    torch.testing.assert_close(pi, torch.linalg.matrix_power(A, 2000)[0], rtol=0, atol=1e-12)
    s = m.sample(50, 4, generator=0, initial_state=2)
    assert (s.states[:, 0] == 2).all()
    with pytest.raises(InputError, match="initial_state: expected states in 0..2"):
        m.sample(2, 4, initial_state=5)
    # num_symbols inferred from the data by fit
    h = HMM(2, "categorical", dtype=F64)
    with pytest.raises(InputError, match="num_symbols: not known yet"):
        h.score(x)
    h.fit(torch.tensor([[0, 1, 4, 1], [2, 3, 9, 9]]), lengths=[4, 2], n_iter=3)
    assert h.num_symbols == 5 and h.emission_probs.shape == (2, 5)


# -------------------------------------------------------------- associative scan


@pytest.mark.parametrize("K", [1, 2, 3])
def test_associative_scan_equals_the_sequential_recursion(monkeypatch, K):
    import rnnlab.classic.hmm as hmm_module

    g = torch.Generator().manual_seed(K)
    m = HMM.from_params(
        initial_probs=torch.softmax(torch.randn(K, generator=g, dtype=F64), 0),
        transition_matrix=torch.softmax(2 * torch.randn(K, K, generator=g, dtype=F64), -1),
        means=2 * torch.randn(K, 2, generator=g, dtype=F64),
        covs=torch.ones(K, 2, dtype=F64),
    )
    x = m.sample(2, 700, generator=K).observations
    lens = torch.tensor([700, 513])

    def run():
        ll, post = m.score_samples(x, lens)
        fit = HMM.from_params(
            initial_probs=m.initial_probs.detach(),
            transition_matrix=m.transition_matrix.detach(),
            means=m.means.detach(),
            covs=m.variances.detach(),
        ).fit(x, lens, n_iter=2, tol=0.0, rtol=0.0)
        return ll, post, fit.transition_matrix.detach(), fit.means.detach()

    monkeypatch.setattr(hmm_module, "SCAN_MIN_STEPS", 2)
    monkeypatch.setattr(hmm_module, "SCAN_MAX_WORK", 10**9)
    scan = run()
    monkeypatch.setattr(hmm_module, "SCAN_MIN_STEPS", 10**9)
    seq = run()
    for a, b in zip(scan, seq):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_associative_scan_falls_back_exactly_on_an_outlier(monkeypatch):
    import rnnlab.classic.hmm as hmm_module

    monkeypatch.setattr(hmm_module, "SCAN_MIN_STEPS", 2)
    m = _reachability_model(torch.float32, 13.0)
    x = torch.tensor([[13.0], [0.1], [-0.4], [0.2]])
    log_b = torch.distributions.Normal(torch.tensor([0.0, 13.0], dtype=F64), 1.0).log_prob(
        x.double()
    )
    pi, A = m.log_initial_probs.detach().double(), m.log_transition_matrix.detach().double()
    ll_ref, post_ref, _ = brute_force(pi, A, log_b)
    ll, post = m.score_samples(x)
    assert float(ll) == pytest.approx(float(ll_ref), rel=1e-4)
    torch.testing.assert_close(post.double(), post_ref, atol=1e-4, rtol=0)


def test_found_by_the_properties_tiny_prior_times_tiny_emission_and_huge_pseudocount():
    # both states contribute 2.1e-290: flushing "negligible" scaled emissions lost one
    tiny = 2.1152e-290
    m = HMM.from_params(
        initial_probs=torch.tensor([tiny, 1.0], dtype=F64),
        transition_matrix=torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=F64),
        emission_probs=torch.tensor([[1.0, 0.0], [tiny, 1.0]], dtype=F64),
    )
    assert m.score(torch.tensor([0])) == pytest.approx(math.log(2 * tiny), rel=1e-12)
    # a pseudocount near the float64 maximum: the normalisation must not overflow
    h = HMM(2, num_symbols=3, dtype=F64)
    x = torch.randint(0, 3, (2, 8), generator=torch.Generator().manual_seed(0))
    h.fit(x, n_iter=2, pseudocount=5.99e307)
    torch.testing.assert_close(h.emission_probs, torch.full((2, 3), 1 / 3, dtype=F64))


# ------------------------------------------- argument properties of the other models


def _call_named(name, fn):
    """Either a ValueError/TypeError whose message starts with the argument's name, or a
    result without NaN."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn()
    except (ValueError, TypeError) as e:
        assert str(e).startswith(name + ":") or str(e).startswith(name.split("=")[0]), (
            name,
            e,
        )
        return None
    return out


def _check_other_arguments(which, value):
    y = torch.randn(2, 12, 1, dtype=F64, generator=torch.Generator().manual_seed(0))
    if which == "LinearAR.lags":
        m = _call_named("lags", lambda: LinearAR(lags=value))
        if m is not None:
            assert all(isinstance(lag, int) and lag >= 1 for lag in m.lags)
    elif which == "LinearAR.ridge":
        m = _call_named("ridge", lambda: LinearAR(order=2, ridge=value))
        if m is not None:
            m.fit(y)
            assert math.isfinite(m.score(y))
    elif which == "LDS.n_iter":
        m = random_model(S=1, D=1)
        out = _call_named("n_iter", lambda: m.fit(y, n_iter=value))
        if out is not None:
            assert math.isfinite(out.history_[-1])
    elif which == "LDS.tol":
        m = random_model(S=1, D=1)
        out = _call_named("tol", lambda: m.fit(y, n_iter=2, tol=value))
        if out is not None:
            assert math.isfinite(out.history_[-1])
    elif which == "LDS.sample.generator":
        m = random_model(S=1, D=1)
        out = _call_named("generator", lambda: m.sample(1, 3, generator=value))
        if out is not None:
            assert torch.isfinite(out.observations).all()
    elif which == "NeuralAR.lr":
        m = NeuralAR(order=2, obs_dim=1, hidden_size=3, dtype=F64)
        out = _call_named("lr", lambda: m.fit(y, epochs=1, lr=value))
        if out is not None:
            assert math.isfinite(out.history_[-1])


_which = st.sampled_from(
    [
        "LinearAR.lags",
        "LinearAR.ridge",
        "LDS.n_iter",
        "LDS.tol",
        "LDS.sample.generator",
        "NeuralAR.lr",
    ]
)
_values = st.one_of(
    _junk,
    st.lists(st.one_of(st.integers(-2, 4), st.floats(-2, 4)), max_size=3),
    st.floats(1e-6, 10),
)


@FAST
@given(_which, _values)
def test_property_other_models_arguments_are_named_or_accepted(which, value):
    _check_other_arguments(which, value)


@pytest.mark.slow
@SLOW
@given(_which, _values)
def test_property_other_models_arguments_many(which, value):
    _check_other_arguments(which, value)


def test_poisson_emissions_agree_with_hmmlearn():
    hmm = pytest.importorskip("hmmlearn.hmm")
    pi = torch.tensor([0.6, 0.4], dtype=F64)
    A = torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64)
    lam = torch.tensor([[1.0, 5.0], [6.0, 0.5]], dtype=F64)
    ours = HMM.from_params(initial_probs=pi, transition_matrix=A, rates=lam)
    x = ours.sample(3, 30, generator=0).observations  # (3, 30, 2) counts
    assert (x == x.round()).all() and (x >= 0).all()
    X = x.reshape(-1, 2).numpy().astype(np.int64)
    lens = [30] * 3
    ref = hmm.PoissonHMM(2, n_iter=1, init_params="")
    ref.startprob_, ref.transmat_, ref.lambdas_ = pi.numpy(), A.numpy(), lam.numpy()
    assert ours.score(x.long()) == pytest.approx(ref.score(X, lens), rel=1e-10)
    assert ours.aic(x) == pytest.approx(ref.aic(X, lens), rel=1e-10)
    ref.fit(X, lens)
    ours.fit(x, n_iter=1, pseudocount=0.0)
    torch.testing.assert_close(ours.rates.detach().numpy(), ref.lambdas_, rtol=1e-8, atol=1e-10)
    # from scratch: k-means start, converges, recovers the rates up to the state order
    fresh = HMM(2, "poisson", obs_dim=2, dtype=F64).fit(ours.sample(20, 50, generator=1)[0])
    assert fresh.converged_
    est = fresh.rates.detach()
    est = est[est[:, 0].argsort()]
    torch.testing.assert_close(est, lam[lam[:, 0].argsort()], rtol=0.15, atol=0.15)
    with pytest.raises(InputError, match="x: expected non-negative integer counts"):
        fresh.fit(torch.full((1, 5, 2), -1.0, dtype=F64))


def test_float64_numpy_into_a_float32_hmm_and_short_error_messages():
    m = HMM.from_params(
        initial_probs=torch.tensor([0.5, 0.5]),
        transition_matrix=torch.tensor([[0.9, 0.1], [0.2, 0.8]]),
        means=torch.tensor([[0.0], [2.0]]),
        covs=torch.ones(2, 1),
    )
    x64 = np.random.default_rng(0).normal(size=(3, 40, 1))  # float64 numpy
    assert m.score(x64) == pytest.approx(m.score(torch.from_numpy(x64).float()), rel=1e-6)
    assert m.score(x64.tolist()) == pytest.approx(m.score(x64), rel=1e-6)
    with pytest.raises(TypeError, match="x: expected dtype torch.float32") as e:
        m.score(torch.from_numpy(x64))  # a tensor is not cast silently
    assert len(str(e.value)) < 200  # names the problem, does not print the data
    with pytest.raises(TypeError, match="x: expected numbers") as e:
        m.score(np.array([["a"] * 1000]))
    assert len(str(e.value)) < 200


def test_numpy_loops_of_the_full_kalman_recursion_equal_the_torch_loops():
    from rnnlab.classic.lds import kalman_filter, rts_smoother

    m = random_model(S=3, D=2, U=1, seed=3)
    u = torch.randn(2, 40, 1, dtype=F64, generator=torch.Generator().manual_seed(0))
    y = m.sample(2, 40, inputs=u, generator=1).observations
    mask = (torch.rand(2, 40, 2, generator=torch.Generator().manual_seed(1)) > 0.3).double()
    p = m.params
    for kw in ({"mask": mask}, {"mask": None, "steady_state": False}):
        yy = y * mask if kw["mask"] is not None else y
        with torch.enable_grad():  # autograd on: the torch loops
            f_t, s_t = kalman_filter(p, yy, u, **kw), rts_smoother(p, yy, u, **kw)
        with torch.no_grad():  # autograd off: the numpy loops
            f_n, s_n = kalman_filter(p, yy, u, **kw), rts_smoother(p, yy, u, **kw)
        for a, b in [*zip(f_t, f_n), *zip(s_t, s_n)]:
            torch.testing.assert_close(a.detach(), b, rtol=1e-12, atol=1e-12)


def test_selective_initialisation_keeps_the_parameters_not_named():
    m = HMM.from_params(
        initial_probs=torch.tensor([0.5, 0.5], dtype=F64),
        transition_matrix=torch.tensor([[0.9, 0.1], [0.2, 0.8]], dtype=F64),
        means=torch.tensor([[0.0], [3.0]], dtype=F64),
        covs=torch.ones(2, 1, dtype=F64),
    )
    x = m.sample(4, 30, generator=0).observations
    means0 = m.means.detach().clone()
    uniform = HMM.from_params(
        initial_probs=torch.full((2,), 0.5, dtype=F64),
        transition_matrix=torch.full((2, 2), 0.5, dtype=F64),
        means=means0,
        covs=m.variances.detach(),
    )
    # the k-means start sets pi and A uniform; the emissions are kept (and held)
    m.fit(x, init=("initial_probs", "transition_matrix"), n_iter=1, fixed=("emissions",))
    assert m.history_[0] == pytest.approx(uniform.score(x), rel=1e-12)
    assert torch.equal(m.means.detach(), means0)
    with pytest.raises(InputError, match="init: expected 'auto', 'kmeans'"):
        m.fit(x, init=("means",))
