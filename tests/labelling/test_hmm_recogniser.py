"""The composed HMM's one-pass Viterbi equals brute force over all segmentations into words
and all state paths within each word."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from rnnlab.classic.hmm import HMM
from rnnlab.errors import InputError
from rnnlab.labelling.hmm_recogniser import ConnectedWordHMM, emission_log_probs


def random_hmm(K, D, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.softmax(torch.randn(K, K, generator=g, dtype=torch.float64), -1)
    pi = torch.softmax(torch.randn(K, generator=g, dtype=torch.float64), -1)
    means = torch.randn(K, D, generator=g, dtype=torch.float64)
    var = 0.5 + torch.rand(K, D, generator=g, dtype=torch.float64)
    return HMM.from_params(initial_probs=pi, transition_matrix=A, means=means, covs=var)


def compositions(T):
    """All ways to cut T frames into consecutive non-empty segments: lists of lengths."""
    for cuts in itertools.product([0, 1], repeat=T - 1):
        lens, n = [], 1
        for c in cuts:
            if c:
                lens.append(n)
                n = 1
            else:
                n += 1
        lens.append(n)
        yield lens


def best_segment(hmm, exit_p, log_b, W, penalty):
    """max over state paths of one word on its frames (log_b (L, K)), entry and exit in."""
    K = hmm.num_states
    A, pi = hmm.transition_matrix.detach(), hmm.initial_probs.detach()
    best = -math.inf
    for path in itertools.product(range(K), repeat=log_b.shape[0]):
        s = math.log(pi[path[0]]) - math.log(W) + penalty + float(log_b[0, path[0]])
        for t in range(1, len(path)):
            j, k = path[t - 1], path[t]
            s += math.log((1 - exit_p[j]) * A[j, k]) + float(log_b[t, k])
        s += math.log(exit_p[path[-1]])
        best = max(best, s)
    return best


@torch.no_grad()
def brute_force(models, exits, x, penalties):
    W = len(models)
    log_bs = [emission_log_probs(m, x) for m in models]  # each (T, K)
    best, best_words = -math.inf, None
    T = x.shape[0]
    for lens in compositions(T):
        for words in itertools.product(range(W), repeat=len(lens)):
            s, t = 0.0, 0
            for w, n in zip(words, lens):
                s += best_segment(models[w], exits[w], log_bs[w][t : t + n], W, penalties[w])
                t += n
            if s > best:
                best, best_words = s, (words, lens)
    return best, best_words


@pytest.mark.parametrize("with_silence", [False, True])
def test_viterbi_equals_brute_force_over_segmentations(with_silence):
    D, T = 2, 5
    words = [random_hmm(2, D, 1), random_hmm(2, D, 2)]
    exits = [torch.tensor([0.3, 0.6], dtype=torch.float64),
             torch.tensor([0.5, 0.2], dtype=torch.float64)]  # fmt: skip
    kw, models, ex, pens = {}, list(words), list(exits), [-0.7, -0.7]
    if with_silence:
        sil = random_hmm(1, D, 3)
        sil_e = torch.tensor([0.4], dtype=torch.float64)
        kw = {"silence": sil, "silence_exit": sil_e}
        models.append(sil)
        ex.append(sil_e)
        pens.append(0.0)
    rec = ConnectedWordHMM(words, exits, word_penalty=-0.7, **kw)
    for seed in range(3):
        x = torch.randn(2, T, D, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64) * 1.5  # fmt: skip
        out = rec.decode(x, torch.tensor([T, T - 1]))
        for b, L in enumerate([T, T - 1]):
            want, (w_seq, lens) = brute_force(models, ex, x[b, :L], pens)
            assert out[b].log_prob == pytest.approx(want, abs=1e-9)
            silence = len(models) - 1 if with_silence else None
            assert out[b].words == [w for w in w_seq if w != silence]
            got_lens = [e - s for _, s, e in out[b].segments]
            assert got_lens == lens


def test_emission_log_probs_equal_torch_distributions():
    """The HMM's own log-density against torch.distributions, Gaussian and mixture."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, dtype=torch.float64)
    for emission, kw in (("gaussian", {}), ("gmm", {"num_mixtures": 2})):
        hmm = HMM(3, emission, obs_dim=3, dtype=torch.float64, **kw)
        hmm.fit(torch.randn(4, 20, 3, dtype=torch.float64), n_iter=2)
        dist = torch.distributions.MultivariateNormal(hmm.means, covariance_matrix=hmm.covs)
        if emission == "gaussian":
            want = dist.log_prob(x[..., None, :])  # (B, T, K)
        else:
            comp = dist.log_prob(x[..., None, None, :])  # (B, T, K, C)
            want = torch.logsumexp(comp + hmm.weights.log(), -1)
        torch.testing.assert_close(emission_log_probs(hmm, x), want, rtol=0, atol=1e-10)


def test_a_word_can_follow_itself():
    # one word of one state that always emits near 0, exit prob 0.5: a long input of that
    # word is decoded as one word or as repeats by the penalty's sign
    hmm = HMM.from_params(initial_probs=torch.tensor([1.0], dtype=torch.float64),
                          transition_matrix=torch.tensor([[1.0]], dtype=torch.float64),
                          means=torch.zeros(1, 1, dtype=torch.float64),
                          covs=torch.ones(1, 1, dtype=torch.float64))  # fmt: skip
    e = torch.tensor([0.5], dtype=torch.float64)
    x = torch.zeros(1, 4, 1, dtype=torch.float64)
    assert ConnectedWordHMM([hmm], [e], word_penalty=+1.0).decode(x)[0].words == [0, 0, 0, 0]
    assert ConnectedWordHMM([hmm], [e], word_penalty=-1.0).decode(x)[0].words == [0]
    again = ConnectedWordHMM([hmm], [e], word_penalty=-1.0).with_word_penalty(1.0)
    assert again.decode(x)[0].words == [0, 0, 0, 0]


def test_bad_input():
    rec = ConnectedWordHMM([random_hmm(2, 2, 0)], [torch.tensor([0.5, 0.5], dtype=torch.float64)])
    with pytest.raises(InputError, match="x: expected 2 features"):
        rec.decode(torch.zeros(1, 3, 4))
    with pytest.raises(InputError, match="exit_probs"):
        ConnectedWordHMM([random_hmm(2, 2, 0)], [torch.tensor([0.5], dtype=torch.float64)])
