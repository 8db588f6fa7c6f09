"""Labellers and CTC recognisers: they learn what only they can (a bidirectional labeller
reads the future, a CTC recogniser aligns by itself), through the one training loop, and
come back from their checkpoints unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.errors import InputError
from rnnlab.labelling import (
    CTCRecogniser,
    FrameWindow,
    SequenceLabeller,
    Sequences,
    fit,
    frame_accuracy,
    model_from_config,
    recognition_errors,
    transcribe_all,
)
from rnnlab.train import load_checkpoint


def lookahead_task(n, seed, lag=2):
    """Frame label = sign of the input `lag` frames later (0 past the end)."""
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for _ in range(n):
        T = int(rng.integers(8, 16))
        x = rng.normal(size=(T, 1)).astype(np.float32)
        later = np.concatenate([x[lag:, 0], np.zeros(lag, np.float32)])
        feats.append(x)
        labels.append((later > 0).astype(np.int64))
    return Sequences(feats, labels)


def symbol_task(n, seed, K=3):
    """Noisy one-hot symbols held 2-3 frames with blanks between: the transcript is the
    symbol string, the alignment unknown to the model."""
    rng = np.random.default_rng(seed)
    feats, trans = [], []
    for _ in range(n):
        labels = rng.integers(0, K, size=int(rng.integers(1, 4))).tolist()
        frames = []
        for k in labels:
            frames += [k + 1] * int(rng.integers(2, 4)) + [0] * int(rng.integers(1, 3))
        x = np.eye(K + 1, dtype=np.float32)[frames] + 0.1 * rng.normal(size=(len(frames), K + 1))
        feats.append(x.astype(np.float32))
        trans.append(labels)
    return Sequences(feats, None, trans)


def test_bidirectional_labeller_reads_the_future_unidirectional_cannot():
    train, test = lookahead_task(128, 0), lookahead_task(64, 1)
    acc = {}
    for bi in (True, False):
        model = SequenceLabeller(1, 2, hidden_size=8, bidirectional=bi)
        fit(model, train, steps=80, batch_size=16, lr=2e-2, seed=0)
        acc[bi] = frame_accuracy(model, test)
    assert acc[True] > 0.9
    assert acc[False] < 0.75  # can only guess the future sign (plus the zeros at the end)


def test_ctc_recogniser_learns_to_align_and_resumes_from_checkpoint(tmp_path):
    train, test = symbol_task(200, 0), symbol_task(50, 1)
    model = CTCRecogniser(4, 3, hidden_size=16)
    record = fit(model, train, steps=150, batch_size=16, lr=1e-2, seed=0, valid=test,
                 eval_every=75, checkpoint=tmp_path / "ckpt.pt")  # fmt: skip
    err = recognition_errors(transcribe_all(model, test), test.transcripts)
    assert err["label_error_rate"] < 0.1
    assert record["history"][-1]["label_error_rate"] == pytest.approx(err["label_error_rate"])
    beam = recognition_errors(transcribe_all(model, test, beam_size=4), test.transcripts)
    assert beam["label_error_rate"] <= err["label_error_rate"] + 0.05
    ckpt = load_checkpoint(tmp_path / "ckpt.pt", kind="ctc")
    again = model_from_config("ctc", ckpt["config"])
    again.load_state_dict(ckpt["model"])
    x, lengths, _ = test.take(range(8)).padded()
    torch.testing.assert_close(again(x, lengths), model(x, lengths))


def test_batched_with_lengths_equals_one_by_one():
    data = lookahead_task(5, 2)
    for cell in ("lstm", "srn", "mlp"):
        model = SequenceLabeller(1, 2, hidden_size=6, cell=cell, window=2).double()
        x, lengths, _ = data.padded(torch.float64)
        batched = model(x, lengths)
        for b in range(5):
            L = int(lengths[b])
            alone = model(x[b : b + 1, :L], torch.tensor([L]))
            torch.testing.assert_close(batched[b, :L], alone[0])


def test_frame_window_concatenates_neighbours():
    fw = FrameWindow(2, 3, window=1).double()
    x = torch.randn(1, 4, 2, dtype=torch.float64)
    h, _ = fw(x)
    padded = torch.cat([torch.zeros(1, 1, 2), x, torch.zeros(1, 1, 2)], 1).double()
    for t in range(4):
        window = padded[0, t : t + 3].reshape(-1)  # x_{t-1}, x_t, x_{t+1}
        torch.testing.assert_close(h[0, t], torch.tanh(fw.layers[0](window)))


def test_bad_input():
    model = CTCRecogniser(4, 3, hidden_size=4)
    x = torch.randn(2, 6, 4)
    with pytest.raises(InputError, match="x: expected 4 features"):
        model(torch.randn(2, 6, 5))
    with pytest.raises(InputError, match="targets: sequence 1 has a label outside"):
        model.loss(x, [[0], [3]])
    with pytest.raises(InputError, match="target_lengths"):  # empty transcripts refused
        model.loss(x, [[0], []])
    with pytest.raises(InputError, match="lengths"):
        model(x, torch.tensor([6]))
    with pytest.raises(InputError, match="input_lengths: sequence 0"):
        model.loss(x, [[0, 0, 0, 0], [1]], torch.tensor([6, 6]))
    lab = SequenceLabeller(4, 2, hidden_size=4)
    with pytest.raises(InputError, match="labels: expected classes"):
        lab.loss(x, torch.full((2, 6), 2))
    with pytest.raises(InputError, match="cell"):
        SequenceLabeller(4, 2, cell="transformer")
