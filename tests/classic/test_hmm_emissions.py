"""HMM emission components (rnnlab.classic.emissions) and multinomial emissions.

Oracles: hmmlearn's MultinomialHMM (score, decode, predict_proba, EM steps, BIC) with the
same parameters in float64; brute force over all K^T paths for the log-likelihood and the
expected counts of one M-step; the categorical model, which a multinomial with one trial a
step must equal. The component refactor keeps the state_dict keys of before, and loads
them as well as the prefixed names."""

from __future__ import annotations

import itertools
import logging
import math

import numpy as np
import pytest
import torch

from rnnlab.classic import HMM
from rnnlab.classic.emissions import FAMILIES, Emissions, multinomial_log_prob
from rnnlab.errors import InputError, InputTypeError

F64 = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore::rnnlab.classic.ConvergenceWarning")
hmm = pytest.importorskip("hmmlearn.hmm")
logging.getLogger("hmmlearn").setLevel(logging.ERROR)  # MultinomialHMM's change notice

K, M, N_TRIALS = 3, 4, 6


def _params(seed=0, K=K, M=M):
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K) * 2, K) + np.eye(K)
    A /= A.sum(1, keepdims=True)
    B = rng.dirichlet(np.ones(M), K)
    return pi, A, B


def _data(B, lengths, n_trials=N_TRIALS, seed=1):
    """Concatenated counts (sum(lengths), M), each row drawn from a random state's row."""
    rng = np.random.default_rng(seed)
    rows = [rng.multinomial(n_trials, B[rng.integers(len(B))]) for _ in range(sum(lengths))]
    return np.array(rows, dtype=np.int64)


def _ours(pi, A, B, n_trials=N_TRIALS):
    return HMM.from_params(
        initial_probs=pi,
        transition_matrix=A,
        emission_probs=B,
        emission="multinomial",
        n_trials=n_trials,
        dtype=F64,
    )


def _theirs(pi, A, B, n_trials=N_TRIALS, **kw):
    ref = hmm.MultinomialHMM(len(pi), n_trials=n_trials, **kw)
    ref.startprob_, ref.transmat_, ref.emissionprob_ = pi, A, B
    return ref


# ---------------------------------------------------------------- against hmmlearn


@pytest.mark.parametrize("n_trials", [N_TRIALS, None])
def test_multinomial_score_decode_posteriors_equal_hmmlearn(n_trials):
    pi, A, B = _params()
    lengths = [7, 5, 9]
    X = _data(B, lengths)
    if n_trials is None:  # each step its own number of trials (hmmlearn's default)
        X[::3, 0] += 2
    ours = _ours(pi, A, B, n_trials)  # hmmlearn takes the per-step totals as an array
    theirs = _theirs(pi, A, B, X.sum(1) if n_trials is None else n_trials)
    assert ours.score(X, lengths) == pytest.approx(theirs.score(X, lengths), rel=0, abs=1e-9)
    log_prob, path = theirs.decode(X, lengths)
    vit = ours.viterbi(X, lengths)
    assert float(vit.log_probs.sum()) == pytest.approx(log_prob, abs=1e-9)
    mask = torch.arange(max(lengths)) < torch.tensor(lengths)[:, None]
    assert vit.paths[mask].tolist() == path.tolist()
    post = ours.posterior(X, lengths)[mask].numpy()
    np.testing.assert_allclose(post, theirs.predict_proba(X, lengths), rtol=0, atol=1e-10)
    assert ours.bic(X, lengths) == pytest.approx(theirs.bic(X, lengths), abs=1e-8)


def test_multinomial_em_steps_equal_hmmlearn():
    pi, A, B = _params(2)
    lengths = [12, 8, 10]
    X = _data(_params(3)[2], lengths, seed=4)
    theirs = _theirs(pi, A, B, n_iter=4, tol=-np.inf, init_params="", params="ste")
    theirs.fit(X, lengths)
    ours = _ours(pi, A, B).fit(X, lengths, n_iter=4, tol=0, rtol=0, pseudocount=0.0)
    for got, want in (
        (ours.initial_probs, theirs.startprob_),
        (ours.transition_matrix, theirs.transmat_),
        (ours.emission_probs, theirs.emissionprob_),
    ):
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=0, atol=1e-8)
    np.testing.assert_allclose(ours.history_[:4], theirs.monitor_.history, rtol=0, atol=1e-8)


# ---------------------------------------------------------------- brute force


def _log_mult(x, p):
    n = int(sum(x))
    out = math.lgamma(n + 1) - sum(math.lgamma(int(v) + 1) for v in x)
    return out + sum(int(v) * math.log(q) for v, q in zip(x, p) if v)


def _enumerate(pi, A, B, x):
    """Joint probabilities of every path and the paths, for one sequence x (T, M)."""
    T = len(x)
    paths = list(itertools.product(range(len(pi)), repeat=T))
    logw = []
    for z in paths:
        lw = math.log(pi[z[0]]) + sum(math.log(A[z[t - 1], z[t]]) for t in range(1, T))
        lw += sum(_log_mult(x[t], B[z[t]]) for t in range(T))
        logw.append(lw)
    return np.array(logw), paths


def test_multinomial_log_likelihood_and_m_step_by_enumeration():
    pi, A, B = _params(5, K=2, M=3)
    seqs = [_data(B, [4], n_trials=3, seed=s) for s in (6, 7)]
    alpha = np.array([[1.5, 1.0, 2.0], [3.0, 1.2, 1.0]])  # a Dirichlet prior on B
    counts = np.zeros_like(B)
    total = 0.0
    for x in seqs:
        logw, paths = _enumerate(pi, A, B, x)
        ll = np.logaddexp.reduce(logw)
        total += ll
        w = np.exp(logw - ll)
        for wz, z in zip(w, paths):
            for t, k in enumerate(z):
                counts[k] += wz * x[t]
    model = _ours(pi, A, B, n_trials=3)
    X = np.stack(seqs)  # (2, 4, 3)
    assert model.score(X) == pytest.approx(total, rel=0, abs=1e-10)
    model.fit(X, n_iter=1, pseudocount=0.0, emission_prior=alpha)
    want = (counts + alpha - 1) / (counts + alpha - 1).sum(1, keepdims=True)
    np.testing.assert_allclose(model.emission_probs.detach().numpy(), want, rtol=0, atol=1e-12)


def test_multinomial_kernel_zero_probabilities():
    log_b = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=F64).log()
    x = torch.tensor([[2.0, 1.0, 0.0], [0.0, 1.0, 2.0]], dtype=F64)
    out = multinomial_log_prob(x, log_b)
    assert out[0, 0] == pytest.approx(math.log(3 * 0.5**3))  # 0 log 0 = 0
    assert out[1, 0] == -math.inf  # a count of an impossible symbol
    assert out[1, 1] == pytest.approx(_log_mult([0, 1, 2], [0.2, 0.3, 0.5]))


# ---------------------------------------------------------------- one trial = categorical


def test_one_trial_reduces_to_categorical():
    pi, A, B = _params(8)
    lengths = torch.tensor([20, 15])
    symbols = torch.randint(0, M, (2, 20), generator=torch.Generator().manual_seed(0))
    onehot = torch.nn.functional.one_hot(symbols, M).to(F64)  # (2, 9, M)
    cat = HMM.from_params(initial_probs=pi, transition_matrix=A, emission_probs=B, dtype=F64)
    mult = _ours(pi, A, B, n_trials=1)
    torch.testing.assert_close(
        mult.log_likelihood(onehot, lengths), cat.log_likelihood(symbols, lengths), rtol=0, atol=0
    )
    torch.testing.assert_close(mult.posterior(onehot, lengths), cat.posterior(symbols, lengths))
    torch.testing.assert_close(
        mult.predict_next(onehot, lengths), cat.predict_next(symbols, lengths)
    )
    cat.fit(symbols, lengths, n_iter=5, tol=0, rtol=0, emission_prior=1.5)
    mult.fit(onehot, lengths, n_iter=5, tol=0, rtol=0, emission_prior=1.5)
    for name in ("initial_probs", "transition_matrix", "emission_probs"):
        torch.testing.assert_close(getattr(mult, name), getattr(cat, name), rtol=0, atol=1e-12)
    np.testing.assert_allclose(mult.history_, cat.history_, rtol=0, atol=1e-10)


# ---------------------------------------------------------------- fitting, sampling


def test_multinomial_fit_infers_symbols_and_increases_the_likelihood():
    pi, A, B = _params(9)
    true = _ours(pi, A, B)
    sample = true.sample(6, 40, generator=0)
    x = sample.observations
    assert x.shape == (6, 40, M) and bool((x.sum(-1) == N_TRIALS).all())
    model = HMM(K, "multinomial", dtype=F64)  # num_symbols and n_trials from the data
    model.fit(x, n_iter=30, generator=1)
    assert model.num_symbols == M and model.n_trials is None
    assert all(b >= a - 1e-9 for a, b in zip(model.history_, model.history_[1:]))
    assert model.score(x) >= true.score(x) - 1.0  # EM reaches the generating model's fit
    with pytest.raises(InputError, match="n_trials: sampling multinomial emissions"):
        model.sample(1, 3)


def test_multinomial_sample_frequencies():
    B = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    model = _ours([1.0, 0.0], np.eye(2), B, n_trials=4)
    s = model.sample(50, 100, generator=3, initial_state=1)
    assert bool((s.states == 1).all())
    freq = s.observations.sum((0, 1)) / (50 * 100 * 4)
    torch.testing.assert_close(freq, torch.tensor(B[1]), rtol=0, atol=0.01)
    assert torch.equal(model.sample(2, 5, generator=7).observations,
                       model.sample(2, 5, generator=7).observations)  # fmt: skip


def test_multinomial_gradient():
    pi, A, B = _params(10, K=2, M=3)
    model = _ours(pi, A, B, n_trials=2)
    x = torch.tensor(_data(B, [5], n_trials=2)).to(F64)
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())

    def f(*ps):
        return torch.func.functional_call(model, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, params)


def test_multinomial_bad_inputs():
    pi, A, B = _params()
    model = _ours(pi, A, B)
    good = np.array([[6, 0, 0, 0], [1, 2, 3, 0]])
    assert math.isfinite(model.score(good))
    with pytest.raises(InputError, match=r"x: expected non-negative integer counts.*time 1"):
        model.score(np.array([[6, 0, 0, 0], [7, -1, 0, 0]]))
    with pytest.raises(InputError, match="x: expected non-negative integer counts"):
        model.score(np.array([[5.5, 0.5, 0, 0]]))
    with pytest.raises(InputError, match=r"n_trials = 6 .*total of 5 at sequence 0, time 1"):
        model.score(np.array([[6, 0, 0, 0], [1, 1, 3, 0]]))
    with pytest.raises(InputError, match=r"x: expected counts of shape \(B, T, 4\)"):
        model.score(np.ones((3, 3)))
    with pytest.raises(InputTypeError, match="x: expected counts"):
        model.score(torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(InputError, match=r"integer counts, received \[nan"):
        model.score(torch.tensor([[math.nan, 0, 0, 6]], dtype=F64))
    padded = torch.tensor([[[6, 0, 0, 0], [-1, 9, 0, 0]]], dtype=F64)  # padding: ignored
    assert math.isfinite(model.score(padded, torch.tensor([1])))
    with pytest.raises(InputError, match="n_trials: expected an integer >= 1"):
        HMM(2, "multinomial", n_trials=0)
    with pytest.raises(InputError, match="n_trials: not used by gaussian emissions"):
        HMM(2, "gaussian", obs_dim=2, n_trials=3)
    with pytest.raises(InputError, match="obs_dim: not used by multinomial emissions"):
        HMM(2, "multinomial", obs_dim=2)
    with pytest.raises(InputError, match="emission_probs: expected"):
        HMM.from_params(initial_probs=pi, transition_matrix=A, emission="multinomial")
    with pytest.raises(InputError, match="n_trials: not used by categorical emissions"):
        HMM.from_params(initial_probs=pi, transition_matrix=A, emission_probs=B, n_trials=2)
    with pytest.raises(InputError, match="init: 'kmeans' needs vector emissions"):
        model.fit(good, init="kmeans")


# ---------------------------------------------------------------- the components


_CASES = {
    "categorical": (dict(num_symbols=3), ["emission_logits"]),
    "multinomial": (dict(num_symbols=3, n_trials=2), ["emission_logits"]),
    "poisson": (dict(obs_dim=2), ["log_rate"]),
    "gaussian-full": (dict(obs_dim=2), ["loc", "scale_tril_raw"]),
    "gaussian-tied": (dict(obs_dim=2, covariance="tied"), ["loc", "scale_tril_raw"]),
    "gaussian-diag": (dict(obs_dim=2, covariance="diag"), ["loc", "log_scale"]),
    "gaussian-spherical": (dict(obs_dim=2, covariance="spherical"), ["loc", "log_scale"]),
    "gmm-full": (dict(obs_dim=2, num_mixtures=2), ["mixture_logits", "loc", "scale_tril_raw"]),
    "gmm-diag": (
        dict(obs_dim=2, num_mixtures=2, covariance="diag"),
        ["mixture_logits", "loc", "log_scale"],
    ),
}


def _model(case, seed=0):
    torch.manual_seed(seed)
    kw, _ = _CASES[case]
    model = HMM(3, case.split("-")[0], dtype=F64, **kw)
    with torch.no_grad():  # every parameter distinct from the defaults
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


def _obs(model):
    return model.sample(2, 4, generator=0).observations


@pytest.mark.parametrize("case", list(_CASES))
def test_state_dict_keys_are_those_of_before_and_load_both_spellings(case):
    model = _model(case)
    keys = ["initial_logits", "transition_logits", *_CASES[case][1]]
    assert list(model.state_dict()) == keys
    assert isinstance(model.emissions, FAMILIES[model.emission])
    for name in _CASES[case][1]:  # the raw parameters are reachable on the model as before
        assert getattr(model, name) is model.emissions._parameters[name]
    x = _obs(model)
    want = model.log_likelihood(x)
    for state in (model.state_dict(), dict(model.named_parameters())):  # flat, prefixed
        other = _model(case, seed=1)
        assert not torch.equal(other.log_likelihood(x), want)
        other.load_state_dict(state)
        torch.testing.assert_close(other.log_likelihood(x), want, rtol=0, atol=0)
    # nested in a container, the keys keep their place under the container's prefix
    outer = torch.nn.ModuleList([_model(case), model])
    assert list(outer.state_dict())[len(keys) :] == [f"1.{k}" for k in keys]
    fresh = torch.nn.ModuleList([_model(case, 2), _model(case, 3)])
    fresh.load_state_dict(outer.state_dict())
    torch.testing.assert_close(fresh[1].log_likelihood(x), want, rtol=0, atol=0)


def test_load_state_dict_still_refuses_other_families():
    gauss = _model("gaussian-full")
    with pytest.raises(RuntimeError, match="Unexpected key.*emission_logits"):
        gauss.load_state_dict(_model("categorical").state_dict())
    missing = gauss.load_state_dict({"initial_logits": torch.zeros(3, dtype=F64)}, strict=False)
    assert "emissions.loc" in missing.missing_keys


def test_emission_attributes_say_which_families_have_them():
    model = _model("gaussian-full")
    with pytest.raises(AttributeError, match=r"rates: only for emission in \('poisson',\)"):
        _ = model.rates
    with pytest.raises(AttributeError, match="emission_probs: only for emission in"):
        _ = model.emission_probs
    assert _model("multinomial").emission_probs.shape == (3, 3)
    assert repr(_model("gmm-diag")) == (
        "HMM(num_states=3, emission='gmm', obs_dim=2, covariance='diag', num_mixtures=2)"
    )


@pytest.mark.parametrize("case", list(_CASES))
def test_the_model_scores_with_the_components_public_kernel(case):
    model = _model(case)
    x = _obs(model)
    with torch.no_grad():
        log_b = model.emissions.log_prob(x)  # (B, T, K)
    want = torch.stack(
        [torch.logsumexp(_path_scores(model, log_b[b]), 0) for b in range(x.shape[0])]
    )
    torch.testing.assert_close(model.log_likelihood(x).detach(), want, rtol=0, atol=1e-10)
    assert isinstance(model.emissions, Emissions)


def _path_scores(model, log_b):
    """log p(z, x) of all K^T paths of one sequence from its emission log-probs (T, K)."""
    T, Kk = log_b.shape
    log_pi, log_A = model.log_initial_probs.detach(), model.log_transition_matrix.detach()
    out = []
    for z in itertools.product(range(Kk), repeat=T):
        s = log_pi[z[0]] + sum(log_A[z[t - 1], z[t]] for t in range(1, T))
        out.append(s + sum(log_b[t, z[t]] for t in range(T)))
    return torch.stack(out)
