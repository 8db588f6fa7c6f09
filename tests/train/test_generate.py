import itertools
import math

import pytest
import torch
from torch import nn

from rnnlab.train import LanguageModel, LMConfig, beam_search, filter_logits, next_token, sample
from rnnlab.train.generate import sequence_log_prob


def _model(vocab=5, hidden=8, cell="lstm", seed=0):
    torch.manual_seed(seed)
    m = LanguageModel(
        LMConfig(vocab_size=vocab, hidden_size=hidden, num_layers=2, cell=cell, embedding_size=4)
    )
    with torch.no_grad():  # sharper, more varied distributions than the default init
        for p in m.parameters():
            p.mul_(3.0)
    return m.double().eval()


def test_top_p_filter_exact_on_hand_distribution():
    probs = torch.tensor([0.15, 0.5, 0.05, 0.3], dtype=torch.float64)
    logits = probs.log()
    keep = lambda p: torch.isfinite(filter_logits(logits, top_p=p)).tolist()  # noqa: E731
    # sorted: 0.5, 0.3, 0.15, 0.05; kept while the mass before a token is < p
    assert keep(0.4) == [False, True, False, False]
    assert keep(0.7) == [False, True, False, True]
    assert keep(0.85) == [True, True, False, True]
    assert keep(0.99) == [True, True, True, True]
    kept = torch.softmax(filter_logits(logits, top_p=0.7), -1)
    assert torch.allclose(kept, torch.tensor([0, 0.625, 0, 0.375], dtype=torch.float64))
    # top-k keeps the k largest; combined filters intersect
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [False, True, False, True]
    both = filter_logits(logits, top_k=3, top_p=0.99)
    assert torch.isfinite(both).tolist() == [True, True, False, True]


def test_sampling_frequencies_follow_tempered_softmax():
    logits = torch.tensor([[1.0, 0.0, -1.0, 2.0]]).expand(40000, 4)
    g = torch.Generator().manual_seed(0)
    for t in (0.5, 2.0):
        draws = next_token(logits, temperature=t, generator=g)
        freq = torch.bincount(draws, minlength=4).double() / len(draws)
        want = torch.softmax(logits[0].double() / t, -1)
        assert torch.allclose(freq, want, atol=0.01)  # ~4 standard errors


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_top_k_1_and_zero_temperature_equal_greedy(cell):
    m = _model(cell=cell)
    greedy = sample(m, [1, 2], 30, greedy=True)
    g = torch.Generator().manual_seed(1)
    assert sample(m, [1, 2], 30, top_k=1, generator=g) == greedy
    assert sample(m, [1, 2], 30, temperature=1e-4, generator=g) == greedy
    assert sample(m, [1, 2], 30, temperature=0.0) == greedy
    assert beam_search(m, [1, 2], 30, beam=1).tokens == greedy


def test_incremental_generation_equals_rerunning_the_prefix():
    m = _model()
    prime = [3, 1, 4]
    fast = sample(m, prime, 25, temperature=1.3, generator=torch.Generator().manual_seed(5))
    # the slow oracle: re-run the whole prefix for every token, same random stream
    g = torch.Generator().manual_seed(5)
    seq = list(prime)
    for _ in range(25):
        logits, _ = m(torch.tensor([seq]))  # (1, T, V)
        seq.append(int(next_token(logits[:, -1], temperature=1.3, generator=g)))
    assert fast == seq[len(prime) :]
    # and the carried state gives the logits of the full re-run
    logits_full, _ = m(torch.tensor([seq]))
    _, state = m(torch.tensor([seq[:-1]]))
    step_logits, _ = m(torch.tensor([[seq[-1]]]), state)
    assert torch.allclose(step_logits[0, -1], logits_full[0, -1], atol=1e-12)


def test_beam_search_is_exact_with_a_wide_beam():
    m = _model(vocab=3)
    prime, length = [0], 3
    scored = {
        seq: sequence_log_prob(m, prime, list(seq))
        for seq in itertools.product(range(3), repeat=length)
    }
    best = max(scored, key=scored.get)
    result = beam_search(m, prime, length, beam=9)  # 9 = V^(length-1): exact
    assert tuple(result.tokens) == best
    assert result.log_prob == pytest.approx(scored[best], abs=1e-10)


class _Bigram(nn.Module):
    """A Markov chain as a 'language model': logits = log P[previous token]."""

    def __init__(self, transition):
        super().__init__()
        self.logp = nn.Parameter(transition.log())

    def forward(self, tokens, state=None):
        logits = self.logp[tokens]  # (B, T, V)
        return logits, tokens[:, -1].double().view(1, -1, 1)  # state: (1, B, 1)


def test_beam_search_beats_greedy_on_hand_built_chain():
    p = torch.tensor(
        [[0.0, 0.6, 0.4], [1 / 3, 1 / 3, 1 / 3], [0.95, 0.025, 0.025]], dtype=torch.float64
    ).clamp_min(1e-12)
    m = _Bigram(p)
    greedy = sample(m, [0], 2, greedy=True)
    assert greedy[0] == 1  # greedy takes 0.6 first and ends with 0.6 / 3 = 0.2
    result = beam_search(m, [0], 2, beam=2)
    assert result.tokens == [2, 0]  # 0.4 * 0.95 = 0.38, the best by brute force:
    brute = max(itertools.product(range(3), repeat=2), key=lambda s: p[0, s[0]] * p[s[0], s[1]])
    assert list(brute) == result.tokens
    assert result.log_prob == pytest.approx(math.log(0.38))
