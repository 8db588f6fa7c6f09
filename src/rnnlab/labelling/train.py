"""Training and evaluating labellers and CTC recognisers through the one training loop
(:class:`rnnlab.train.Trainer`): shuffled mini-batches padded to their longest sequence,
Adam, gradient clipping, evaluation on held-out data, checkpoints that resume exactly."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnlab.ctc import edit_distance, label_error_rate
from rnnlab.errors import InputError
from rnnlab.labelling.models import CTCRecogniser, SequenceLabeller
from rnnlab.train import StepOutput, TrainConfig, Trainer
from rnnlab.train.loop import Evaluation

__all__ = ["Sequences", "Batches", "fit", "frame_accuracy", "recognition_errors"]


@dataclass
class Sequences:
    """Labelled sequences: ``features`` (T_n, F) arrays, and per sequence the frame labels
    (T_n,) for a labeller and/or the label string for a recogniser."""

    features: list[np.ndarray]
    frame_labels: list[np.ndarray] | None = None
    transcripts: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.features)

    def take(self, idx) -> Sequences:
        idx = [int(i) for i in idx]
        return Sequences(
            [self.features[i] for i in idx],
            None if self.frame_labels is None else [self.frame_labels[i] for i in idx],
            None if self.transcripts is None else [self.transcripts[i] for i in idx],
        )

    def padded(self, dtype=torch.float32):
        """(x (B, T, F), lengths (B,), frame labels (B, T) padded with -1, or None)."""
        lengths = torch.tensor([len(f) for f in self.features])
        T, F = int(lengths.max()), self.features[0].shape[1]
        x = torch.zeros(len(self), T, F, dtype=dtype)
        lab = None
        if self.frame_labels is not None:
            lab = torch.full((len(self), T), -1, dtype=torch.long)
        for i, f in enumerate(self.features):
            x[i, : len(f)] = torch.from_numpy(np.asarray(f, dtype=np.float32)).to(dtype)
            if lab is not None:
                lab[i, : len(f)] = torch.from_numpy(np.asarray(self.frame_labels[i]))
        return x, lengths, lab


class Batches:
    """Endless shuffled mini-batches (a new permutation each epoch), resumable:
    ``state_dict`` holds the generator, the permutation and the position."""

    def __init__(self, data: Sequences, batch_size: int, seed: int = 0) -> None:
        self.data, self.batch_size = data, int(batch_size)
        self.generator = torch.Generator().manual_seed(seed)
        self.perm: list[int] = []
        self.pos = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.pos >= len(self.perm):
            self.perm = torch.randperm(len(self.data), generator=self.generator).tolist()
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        part = self.data.take(idx)
        x, lengths, lab = part.padded()
        return x, lengths, lab, part.transcripts

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.perm, self.pos = list(state["perm"]), int(state["pos"])


def _loss_fn(model, batch, carry):
    x, lengths, lab, transcripts = batch
    if isinstance(model, CTCRecogniser):
        return StepOutput(model.loss(x, transcripts, lengths), items=int(lengths.sum()))
    return StepOutput(model.loss(x, lab, lengths), items=int(lengths.sum()))


@torch.no_grad()
def frame_accuracy(model: SequenceLabeller, data: Sequences, batch_size: int = 64) -> float:
    """The fraction of frames whose most probable class is the true one."""
    if data.frame_labels is None:
        raise InputError("data: expected frame labels for frame accuracy, received none")
    was = model.training
    model.eval()
    right = total = 0
    for i in range(0, len(data), batch_size):
        x, lengths, lab = data.take(range(i, min(i + batch_size, len(data)))).padded()
        pred = model.predict(x, lengths)
        inside = lab >= 0
        right += int((pred[inside] == lab[inside]).sum())
        total += int(inside.sum())
    model.train(was)
    return right / total


@torch.no_grad()
def transcribe_all(
    model: CTCRecogniser, data: Sequences, beam_size: int = 1, batch_size: int = 64,
    top_k: int | None = None,
) -> list[list[int]]:  # fmt: skip
    """The recogniser's label string for every sequence of ``data``."""
    was = model.training
    model.eval()
    out: list[list[int]] = []
    for i in range(0, len(data), batch_size):
        x, lengths, _ = data.take(range(i, min(i + batch_size, len(data)))).padded()
        out += model.transcribe(x, lengths, beam_size=beam_size, top_k=top_k)
    model.train(was)
    return out


def recognition_errors(hypotheses: list[list], references: list[list]) -> dict:
    """Label error rate (edit distance / reference labels) and string error rate (the
    fraction of sequences not recognised exactly)."""
    wrong = sum(edit_distance(h, r) > 0 for h, r in zip(hypotheses, references))
    return {
        "label_error_rate": label_error_rate(hypotheses, references),
        "string_error_rate": wrong / len(references),
    }


def fit(
    model: SequenceLabeller | CTCRecogniser,
    train: Sequences,
    *,
    steps: int,
    batch_size: int = 16,
    lr: float = 3e-3,
    clip_norm: float = 1.0,
    valid: Sequences | None = None,
    eval_every: int = 0,
    keep_best: bool = False,
    minutes: float | None = None,
    checkpoint: str | Path | None = None,
    metrics: str | Path | None = None,
    extra: dict | None = None,
    progress: bool = False,
    seed: int = 0,
    target: float | None = None,
    device: str | None = None,
    resume: dict | None = None,
) -> dict:
    """Train ``model`` on ``train`` with Adam through :class:`~rnnlab.train.Trainer`.

    ``valid`` is evaluated every ``eval_every`` steps: frame error (labeller) or greedy
    label error rate (recogniser) as the validation loss; ``target``: stop once the
    validation error is at or below it. Returns a record: the Trainer's result, the
    evaluation history, seconds, and steps to reach ``target`` (None if never).
    """
    if isinstance(model, CTCRecogniser) and train.transcripts is None:
        raise InputError("train: a CTC recogniser needs transcripts, received none")
    if isinstance(model, SequenceLabeller) and train.frame_labels is None:
        raise InputError("train: a labeller needs frame labels, received none")
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    batches = Batches(train, batch_size, seed)
    history: list[dict] = []
    start = time.perf_counter()
    trainer_ref: list[Trainer] = []

    def eval_fn(m):
        if isinstance(m, CTCRecogniser):
            err = recognition_errors(transcribe_all(m, valid), valid.transcripts)
            value = err["label_error_rate"]
        else:
            value = 1.0 - frame_accuracy(m, valid)
            err = {"frame_error": value}
        step = trainer_ref[0].step if trainer_ref else None
        history.append(
            {"step": step, "seconds": time.perf_counter() - start, "error": value, **err}
        )
        return Evaluation(value, err, done=target is not None and value <= target)

    trainer = Trainer(
        model, opt, batches, _loss_fn,
        TrainConfig(steps=steps, minutes=minutes, clip_norm=clip_norm, eval_every=eval_every,
                    keep_best=keep_best, progress=progress, log_every=max(1, steps // 50)),
        eval_fn=eval_fn if valid is not None else None,
        checkpoint=checkpoint, metrics=metrics, kind=model.kind,
        extra={"config": model.config(), **(extra or {})}, device=device,
        loss_unit=("nats/frame" if isinstance(model, SequenceLabeller) else "nats/label", 1.0),
    )  # fmt: skip
    trainer_ref.append(trainer)
    if resume is not None:
        trainer.load_state_dict(resume)
    result = trainer.fit()
    seconds = time.perf_counter() - start
    reached = None
    if target is not None:
        reached = next((h["step"] for h in history if h["error"] <= target), None)
    return {"result": result, "history": history, "seconds": seconds, "steps_to_target": reached}
