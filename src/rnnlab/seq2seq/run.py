"""Training and evaluating a :class:`Seq2Seq` through the one training loop.

:func:`fit` wraps :class:`rnnlab.train.Trainer` (Adam, norm clipping, periodic
validation, checkpoints that resume exactly); :func:`evaluate` computes the teacher-forced
loss and per-token accuracy and the exact-match accuracy of greedy (and beam) decoding.
The experiments and ``rnnlab train seq2seq`` both use them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from rnnlab.seq2seq.data import collate
from rnnlab.seq2seq.metrics import exact_match, token_accuracy
from rnnlab.seq2seq.model import Seq2Seq
from rnnlab.train.loop import Evaluation, StepOutput, TrainConfig, Trainer


@torch.no_grad()
def evaluate(
    model: Seq2Seq,
    examples: Sequence[tuple[list[int], list[int]]],
    *,
    references: Sequence[Sequence[list[int]]] | None = None,
    beam_size: int = 0,
    batch_size: int = 256,
    max_length: int | None = None,
    decode: bool = True,
) -> dict:
    """Teacher-forced loss (nats/token) and token accuracy on ``examples`` (encoded
    pairs); with ``decode``, exact-match accuracy of greedy decoding (``exact_greedy``)
    and, with ``beam_size`` > 1, of beam search (``exact_beam``), against ``references``
    (default: each example's own target). Also returns the decoded ``outputs``."""
    was = model.training
    model.eval()
    nll = right = total = 0.0
    outputs = {"greedy": [], "beam": []}
    device = next(model.parameters()).device
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        b = collate(chunk)
        src, lengths = b.src.to(device), b.src_lengths.to(device)
        logits = model(src, lengths, b.tgt_in.to(device))
        tgt = b.tgt_out.to(device)
        nll += float(F.cross_entropy(logits.transpose(1, 2), tgt, ignore_index=0, reduction="sum"))
        r, n = token_accuracy(logits, tgt)
        right, total = right + r, total + n
        if decode:
            limit = max_length or 2 * b.tgt_out.shape[1] + 5
            outputs["greedy"] += model.translate(src, lengths, max_length=limit).tokens
            if beam_size > 1:
                outputs["beam"] += model.translate(src, lengths, beam_size, limit).tokens
    model.train(was)
    refs = references if references is not None else [[t] for _, t in examples]
    out = {"loss": nll / max(total, 1), "token_accuracy": right / max(total, 1)}
    if decode:
        out["exact_greedy"] = exact_match(outputs["greedy"], refs)
        if beam_size > 1:
            out["exact_beam"] = exact_match(outputs["beam"], refs)
    out["outputs"] = outputs
    return out


def fit(
    model: Seq2Seq,
    batches,
    val_examples: Sequence[tuple[list[int], list[int]]],
    *,
    steps: int | None = None,
    minutes: float | None = None,
    lr: float = 3e-3,
    clip: float = 5.0,
    eval_every: int = 200,
    val_limit: int = 500,
    sampling_probability: float = 0.0,
    on_eval: Callable[[Seq2Seq, dict], bool] | None = None,
    checkpoint=None,
    metrics=None,
    extra: dict | None = None,
    progress: bool = False,
    device=None,
    resume: dict | None = None,
) -> tuple[Trainer, object]:
    """Train ``model`` on ``batches`` (:class:`Seq2SeqBatch` iterator) with Adam.

    Every ``eval_every`` steps the first ``val_limit`` validation pairs are scored
    (:func:`evaluate`, greedy exact match); ``on_eval(model, metrics) -> done`` may end the
    run (a goal met) or advance a curriculum. The best validation loss is kept."""
    val = list(val_examples[:val_limit])

    def loss_fn(m, batch, carry):
        loss, n = m.loss(batch.src, batch.src_lengths, batch.tgt_in, batch.tgt_out,
                         sampling_probability=sampling_probability)  # fmt: skip
        return StepOutput(loss, n)

    def eval_fn(m):
        r = evaluate(m, val, decode=True)
        r.pop("outputs")
        done = bool(on_eval(m, r)) if on_eval is not None else False
        return Evaluation(r["loss"], {k: v for k, v in r.items() if k != "loss"}, done)

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    config = TrainConfig(steps=steps, minutes=minutes, clip_norm=clip, eval_every=eval_every,
                         progress=progress, log_every=max(1, eval_every // 4))  # fmt: skip
    trainer = Trainer(model, opt, batches, loss_fn, config, eval_fn=eval_fn, checkpoint=checkpoint,
                      metrics=metrics, kind="seq2seq", extra=extra, device=device,
                      loss_unit=("nats/token", 1.0))  # fmt: skip
    if resume is not None:
        trainer.load_state_dict(resume)
    result = trainer.fit()
    return trainer, result


__all__ = ["curriculum_hook", "evaluate", "fit"]


def curriculum_hook(curriculum, src_vocab, tgt_vocab, task: str = "program", seed: int = 0,
                    n: int = 200):  # fmt: skip
    """An ``on_eval`` for :func:`fit` that reports the teacher-forced per-character
    accuracy on ``n`` validation programs at the curriculum's current level to
    ``curriculum.advance`` (the naive and combined curricula move on from it)."""
    from rnnlab.seq2seq.data import encode_pairs
    from rnnlab.tasks import execute

    def on_eval(model, metrics) -> bool:
        if not curriculum.at_target:
            length, nesting = curriculum.level
            pairs = execute.dataset(n, "validation", length, nesting, task, seed=seed)
            r = evaluate(model, encode_pairs(pairs, src_vocab, tgt_vocab), decode=False)
            curriculum.advance(r["token_accuracy"])
        return False

    return on_eval
