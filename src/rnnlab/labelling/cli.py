"""``rnnlab train labeller``, ``rnnlab train ctc`` and ``rnnlab transcribe CKPT``.

Data (``--data``): ``digits`` (the connected spoken digits of
:mod:`rnnlab.data.connected_digits`: the training strings to train on, the test strings to
transcribe), or an ``.npz`` file with ``X`` (all frames, (N, F)), ``lengths`` (frames per
sequence) and, for a labeller, ``labels`` (one class per frame, (N,)) or, for a
recogniser, ``targets`` (all transcripts' labels concatenated) with ``target_lengths``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

from rnnlab.errors import InputError
from rnnlab.output import print_json


def add_train_parser(tsub) -> None:
    """Register ``train labeller`` and ``train ctc``."""
    for kind, text in (("labeller", "frame-wise sequence labeller (cross-entropy per frame)"),
                       ("ctc", "CTC recogniser (label strings without alignments)")):  # fmt: skip
        p = tsub.add_parser(kind, help=text, description=f"Train a {text}. " + __doc__.split(
            "\n\n")[1].replace("\n", " "))  # fmt: skip
        p.add_argument("--data", default="digits", help="'digits' or an .npz file (digits)")
        p.add_argument("--cell", default="lstm", help="lstm, gru, srn, ... or mlp (lstm)")
        p.add_argument("--hidden", type=int, default=64, help="units per direction (64)")
        p.add_argument("--layers", type=int, default=1, help="stacked layers (1)")
        p.add_argument("--unidirectional", action="store_true", help="forward direction only")
        p.add_argument("--window", type=int, default=4, help="mlp: frames each side (4)")
        p.add_argument("--batch", type=int, default=16, help="sequences per step (16)")
        p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (3e-3)")
        p.add_argument("--steps", type=int, default=None, help="train until this step")
        p.add_argument("--minutes", type=float, default=None, help="or for this long (2)")
        p.add_argument("--eval-every", type=int, default=100, help="steps between evals")
        p.add_argument("--seed", type=int, default=0, help="random seed (0)")
        p.add_argument("--out", default=None, help=f"output folder (runs/{kind}-<time>)")
        p.add_argument("--resume", default=None, help="checkpoint to continue")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")
        p.add_argument("--json", action="store_true", help="print one JSON record last")
        p.set_defaults(handler=_train, kind=kind)


def add_parser(sub) -> None:
    """Register ``transcribe``."""
    p = sub.add_parser("transcribe", help="label or transcribe sequences with a checkpoint")
    p.add_argument("checkpoint", help="a labeller or ctc checkpoint (rnnlab train labeller|ctc)")
    p.add_argument("--data", default="digits", help="'digits' (test strings) or an .npz file")
    p.add_argument("--beam", type=int, default=1, help="CTC prefix beam width (1: greedy)")
    p.add_argument("--limit", type=int, default=None, help="only the first N sequences")
    p.add_argument("--show", type=int, default=5, help="print this many transcriptions (5)")
    p.add_argument("--json", action="store_true", help="print one JSON record last")
    p.set_defaults(handler=_transcribe)


def load_npz(path: str, kind: str):
    """Sequences from an .npz file (module docstring), checked."""
    from rnnlab.labelling import Sequences

    p = Path(path)
    if not p.is_file():
        raise InputError(f"data: no such file: {path!r} (expected 'digits' or an .npz file)")
    try:
        z = np.load(p, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"data: {path!r} is not a readable .npz file ({exc})") from None
    for key in ("X", "lengths"):
        if key not in z:
            raise InputError(f"data: {path!r} has no {key!r} array (keys: {sorted(z.keys())})")
    X, lengths = np.asarray(z["X"], dtype=np.float32), np.asarray(z["lengths"])
    if X.ndim != 2 or lengths.ndim != 1 or (lengths < 1).any() or lengths.sum() != len(X):
        raise InputError(
            f"data: expected X (N, F) and lengths (B,) >= 1 summing to N, received X "
            f"{X.shape}, lengths {lengths.shape} summing to {int(lengths.sum())}"
        )
    if not np.isfinite(X).all():
        raise InputError(f"data: {path!r}: X has non-finite values")
    ends = np.cumsum(lengths)
    feats = [X[e - n : e] for e, n in zip(ends, lengths)]
    labels = transcripts = None
    if "labels" in z:
        lab = np.asarray(z["labels"]).astype(np.int64)
        if lab.shape != (len(X),):
            raise InputError(f"data: labels: expected shape ({len(X)},), received {lab.shape}")
        labels = [lab[e - n : e] for e, n in zip(ends, lengths)]
    if "targets" in z:
        tg, tl = np.asarray(z["targets"]).astype(np.int64), np.asarray(z.get("target_lengths"))
        if tl.ndim != 1 or len(tl) != len(lengths) or tl.sum() != len(tg):
            raise InputError(
                "data: target_lengths: expected one per sequence summing to len(targets), "
                f"received shape {tl.shape}"
            )
        te = np.cumsum(tl)
        transcripts = [tg[e - n : e].tolist() for e, n in zip(te, tl)]
    return Sequences(feats, labels, transcripts)


def _digits(split: str):
    from rnnlab.data.connected_digits import load_connected_digits
    from rnnlab.labelling import Sequences

    try:
        train, test, _ = load_connected_digits()
    except FileNotFoundError as exc:
        raise InputError(f"data: {exc}") from None
    s = train if split == "train" else test
    return Sequences(s.features, s.frame_labels, s.transcripts)


def _train(args: argparse.Namespace) -> int:
    from rnnlab._threads import torch_threads
    from rnnlab.labelling import CTCRecogniser, SequenceLabeller, fit, model_from_config
    from rnnlab.labelling.models import STACKS
    from rnnlab.train import load_checkpoint
    from rnnlab.train.distributed import init_from_env
    from rnnlab.train.loop import TrainingDiverged

    if args.steps is None and args.minutes is None:
        args.minutes = 2.0
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps: expected an integer >= 1, received {args.steps}")
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        raise InputError(f"--minutes: expected a positive number, received {args.minutes}")
    for flag, v in (("--hidden", args.hidden), ("--layers", args.layers),
                    ("--batch", args.batch)):  # fmt: skip
        if v < 1:
            raise InputError(f"{flag}: expected an integer >= 1, received {v}")
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise InputError(f"--lr: expected a positive number, received {args.lr}")
    if args.cell not in STACKS:
        raise InputError(f"--cell: expected one of {', '.join(STACKS)}, received {args.cell!r}")
    data = _digits("train") if args.data == "digits" else load_npz(args.data, args.kind)
    if args.kind == "labeller" and data.frame_labels is None:
        raise InputError(
            f"data: {args.data!r} has no frame labels ('labels'), needed by a labeller"
        )
    if args.kind == "ctc" and data.transcripts is None:
        raise InputError(f"data: {args.data!r} has no transcripts ('targets'), needed by ctc")
    if args.kind == "ctc" and any(len(t) == 0 for t in data.transcripts):
        b = next(i for i, t in enumerate(data.transcripts) if len(t) == 0)
        raise InputError(f"data: sequence {b} has an empty transcript (not allowed for training)")
    F = data.features[0].shape[1]
    if args.kind == "labeller":
        num_classes = int(max(int(x.max()) for x in data.frame_labels)) + 1
        if min(int(x.min()) for x in data.frame_labels) < 0:
            raise InputError("data: labels: expected classes >= 0, received a negative label")
    else:
        num_classes = int(max(max(t) for t in data.transcripts)) + 1
        if min(min(t) for t in data.transcripts) < 0:
            raise InputError("data: targets: expected labels >= 0, received a negative label")
    resume = None
    if args.resume:
        ckpt = load_checkpoint(args.resume, kind=args.kind)
        model = model_from_config(args.kind, ckpt["config"])
        if model.input_size != F:
            raise InputError(f"data: the checkpoint reads {model.input_size} features per frame,"
                             f" the data has {F}")  # fmt: skip
        resume = ckpt
        out = Path(args.out) if args.out else Path(args.resume).parent
    else:
        cls = SequenceLabeller if args.kind == "labeller" else CTCRecogniser
        import torch

        torch.manual_seed(args.seed)  # --seed fixes the initial weights too
        model = cls(F, num_classes, hidden_size=args.hidden, num_layers=args.layers,
                    cell=args.cell, bidirectional=not args.unidirectional,
                    window=args.window)  # fmt: skip
        out = (
            Path(args.out)
            if args.out
            else Path("runs") / f"{args.kind}-{time.strftime('%Y%m%d-%H%M%S')}"
        )
    out.mkdir(parents=True, exist_ok=True)
    # under torchrun: join the process group; the Trainer shards every batch across ranks
    rank = init_from_env().rank
    # hold out a tenth of the sequences for the evaluations
    n_valid = max(1, len(data) // 10) if len(data) > 1 else 0
    valid = data.take(range(n_valid)) if n_valid else None
    train = data.take(range(n_valid, len(data))) if n_valid else data
    with torch_threads(1):
        try:
            record = fit(
                model, train, steps=args.steps if args.steps else 10**9, minutes=args.minutes,
                batch_size=args.batch, lr=args.lr, valid=valid, eval_every=args.eval_every,
                checkpoint=out / "checkpoint.pt", metrics=out / "metrics.jsonl",
                progress=not args.no_progress, seed=args.seed, resume=resume,
                extra={"data": args.data},
            )  # fmt: skip
        except TrainingDiverged as exc:
            print(f"rnnlab train {args.kind}: {exc}", file=sys.stderr)
            return 1
    res = record["result"]
    if rank != 0:  # under torchrun: rank 0 reports for the whole job
        return 130 if res.stopped == "interrupted" else 0
    last = record["history"][-1] if record["history"] else {}
    summary = {
        "kind": args.kind,
        "checkpoint": str(out / "checkpoint.pt"),
        "steps": res.steps,
        "train_loss": res.train_loss,
        "stopped": res.stopped,
        "seconds": record["seconds"],
        **{k: v for k, v in last.items() if k not in ("step", "seconds", "error")},
        "config": model.config(),
    }
    for k, v in summary.items():
        if k != "config":
            print(f"{k:>20}: {v}")
    if args.json:
        print_json(summary)
    return 130 if res.stopped == "interrupted" else 0


def _transcribe(args: argparse.Namespace) -> int:
    from rnnlab._threads import torch_threads
    from rnnlab.labelling import (
        frame_accuracy,
        model_from_config,
        recognition_errors,
        transcribe_all,
    )
    from rnnlab.train import load_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    kind = ckpt.get("kind")
    if kind not in ("labeller", "ctc"):
        raise InputError(f"checkpoint: expected a labeller or ctc checkpoint, received a "
                         f"{kind!r} checkpoint")  # fmt: skip
    if args.beam < 1:
        raise InputError(f"--beam: expected an integer >= 1, received {args.beam}")
    model = model_from_config(kind, ckpt["config"])
    model.load_state_dict(ckpt["model"])
    model.eval()
    data = _digits("test") if args.data == "digits" else load_npz(args.data, kind)
    if args.limit is not None:
        if args.limit < 1:
            raise InputError(f"--limit: expected an integer >= 1, received {args.limit}")
        data = data.take(range(min(args.limit, len(data))))
    F = data.features[0].shape[1]
    if F != model.input_size:
        raise InputError(f"data: expected {model.input_size} features per frame (the "
                         f"checkpoint's), received {F}")  # fmt: skip
    record: dict = {"kind": kind, "sequences": len(data)}
    with torch_threads(1):
        if kind == "ctc":
            hyps = transcribe_all(model, data, beam_size=args.beam)
            record["transcripts"] = hyps
            for i in range(min(args.show, len(hyps))):
                ref = f"  (reference {data.transcripts[i]})" if data.transcripts else ""
                print(f"{i}: {hyps[i]}{ref}")
            if data.transcripts is not None:
                record.update(recognition_errors(hyps, data.transcripts))
        else:
            preds = []
            for i in range(len(data)):
                x, lengths, _ = data.take([i]).padded()
                preds.append(model.predict(x, lengths)[0].tolist())
            record["frame_labels"] = preds
            for i in range(min(args.show, len(preds))):
                print(f"{i}: {preds[i][:40]}{' ...' if len(preds[i]) > 40 else ''}")
            if data.frame_labels is not None:
                record["frame_accuracy"] = frame_accuracy(model, data)
    for k in ("label_error_rate", "string_error_rate", "frame_accuracy"):
        if k in record:
            print(f"{k}: {record[k]:.4f}")
    if args.json:
        print_json(record)
    return 0
