"""Dirichlet priors (MAP re-estimation) of HMM.fit: one M-step against the closed form
from brute-force expected counts (every path enumerated), several against hmmlearn's
CategoricalHMM with the same startprob_prior / transmat_prior / emissionprob_prior."""

import itertools
import warnings

import numpy as np
import pytest
import torch

from rnnlab.classic import HMM, ConvergenceWarning
from rnnlab.errors import InputError

F64 = torch.float64
PI = torch.tensor([0.6, 0.4], dtype=F64)
A = torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=F64)
B = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.3, 0.6]], dtype=F64)
SEQS = [[0, 2, 2, 1, 0], [2, 2, 0, 1]]
# concentrations: > 1 (pseudocounts), = 1 (none) and < 1 (towards zero, clamped at 0)
A0 = torch.tensor([3.0, 0.6], dtype=F64)
AA = torch.tensor([[1.0, 2.5], [0.4, 1.7]], dtype=F64)
AB = torch.tensor([[2.0, 1.0, 0.3], [1.2, 4.0, 0.9]], dtype=F64)


def _expected_counts(pi, a, b, seqs):
    """Posterior expected start, transition and emission counts by enumerating paths."""
    K, M = b.shape
    n0, nA, nB = (
        torch.zeros(K, dtype=F64),
        torch.zeros(K, K, dtype=F64),
        torch.zeros(K, M, dtype=F64),
    )
    for s in seqs:
        paths = list(itertools.product(range(K), repeat=len(s)))
        w = torch.stack(
            [
                pi[z[0]]
                * torch.prod(torch.stack([a[z[t - 1], z[t]] for t in range(1, len(s))]))
                * torch.prod(torch.stack([b[z[t], s[t]] for t in range(len(s))]))
                for z in paths
            ]
        )
        w = w / w.sum()
        for wz, z in zip(w, paths):
            n0[z[0]] += wz
            for t in range(len(s)):
                nB[z[t], s[t]] += wz
                if t:
                    nA[z[t - 1], z[t]] += wz
    return n0, nA, nB


def _map(n, alpha):
    c = (n + alpha - 1).clamp_min(0)
    return c / c.sum(-1, keepdim=True)


def _model():
    return HMM.from_params(initial_probs=PI, transition_matrix=A, emission_probs=B)


def _padded():
    x = torch.tensor([SEQS[0], SEQS[1] + [0]])
    return x, torch.tensor([5, 4])


def test_one_map_step_equals_the_closed_form_from_enumerated_posteriors():
    n0, nA, nB = _expected_counts(PI, A, B, SEQS)
    x, lengths = _padded()
    m = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m.fit(
            x,
            lengths,
            n_iter=1,
            tol=0.0,
            rtol=0.0,
            initial_prior=A0,
            transition_prior=AA,
            emission_prior=AB,
        )
    torch.testing.assert_close(m.initial_probs.detach(), _map(n0, A0), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(m.transition_matrix.detach(), _map(nA, AA), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(m.emission_probs.detach(), _map(nB, AB), rtol=1e-12, atol=1e-14)
    # the recorded objective: log p(x) + sum (alpha - 1) log p, at the start parameters
    lp0 = sum(float(((a - 1) * p.log()).sum()) for a, p in ((A0, PI), (AA, A), (AB, B)))
    assert m.history_[0] == pytest.approx(_model().score(x, lengths) + lp0, rel=1e-12)


def test_a_prior_of_ones_is_maximum_likelihood():
    x, lengths = _padded()
    ml, mp = _model(), _model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ml.fit(x, lengths, n_iter=3, tol=0.0, rtol=0.0, pseudocount=0.0)
        mp.fit(
            x,
            lengths,
            n_iter=3,
            tol=0.0,
            rtol=0.0,
            transition_prior=1.0,
            initial_prior=1,
            emission_prior=np.ones(3),  # broadcast over the states
        )
    for name in ("initial_probs", "transition_matrix", "emission_probs"):
        torch.testing.assert_close(getattr(mp, name), getattr(ml, name), rtol=1e-12, atol=0)
    assert mp.history_ == pytest.approx(ml.history_, rel=1e-14)


def test_map_fit_agrees_with_hmmlearn_categorical_hmm():
    hmm = pytest.importorskip("hmmlearn.hmm")
    g = torch.Generator().manual_seed(3)
    truth = _model()
    x = truth.sample(6, 50, generator=g).observations  # (6, 50)
    X = x.reshape(-1, 1).numpy()
    lens = [50] * 6
    ref = hmm.CategoricalHMM(
        2,
        startprob_prior=A0.numpy(),
        transmat_prior=AA.numpy(),
        emissionprob_prior=AB.numpy(),
        n_iter=6,
        tol=-np.inf,
        init_params="",
        params="ste",
    )
    ref.n_features = 3
    ref.startprob_, ref.transmat_, ref.emissionprob_ = PI.numpy(), A.numpy(), B.numpy()
    ref.fit(X, lens)
    ours = _model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours.fit(
            x,
            n_iter=6,
            tol=0.0,
            rtol=0.0,
            initial_prior=A0,
            transition_prior=AA,
            emission_prior=AB,
        )
    for mine, theirs in (
        (ours.initial_probs, ref.startprob_),
        (ours.transition_matrix, ref.transmat_),
        (ours.emission_probs, ref.emissionprob_),
    ):
        torch.testing.assert_close(mine.detach(), torch.as_tensor(theirs), rtol=1e-9, atol=1e-12)
    assert ours.score(x) == pytest.approx(ref.score(X, lens), rel=1e-10)


def test_map_objective_rises_and_structural_zeros_stay():
    a = torch.tensor([[0.9, 0.1], [0.0, 1.0]], dtype=F64)  # left-right: 1 -> 0 impossible
    m = HMM.from_params(initial_probs=PI, transition_matrix=a, emission_probs=B)
    x = torch.randint(0, 3, (5, 40), generator=torch.Generator().manual_seed(1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # no decrease, converges
        m.fit(x, n_iter=500, transition_prior=3.0, emission_prior=2.0, initial_prior=1.5)
    h = m.history_
    assert all(b >= a - 1e-10 * abs(a) for a, b in zip(h, h[1:]))
    assert float(m.transition_matrix.detach()[1, 0]) == 0.0


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"transition_prior": 0.0}, "transition_prior"),
        ({"initial_prior": [1.0, -2.0]}, "initial_prior"),
        ({"emission_prior": torch.ones(2, 4)}, "emission_prior"),
        ({"transition_prior": float("nan")}, "transition_prior"),
    ],
)
def test_bad_priors_are_refused(kw, match):
    x, lengths = _padded()
    with pytest.raises(InputError, match=match):
        _model().fit(x, lengths, n_iter=1, **kw)


def test_emission_prior_needs_categorical_emissions():
    m = HMM.from_params(
        initial_probs=PI,
        transition_matrix=A,
        means=torch.zeros(2, 1, dtype=F64),
        covs=torch.ones(2, 1, dtype=F64),
    )
    with pytest.raises(InputError, match="emission_prior"):
        m.fit(torch.randn(2, 10, 1, dtype=F64), emission_prior=2.0)
