"""``rnnlab train lm``, ``rnnlab sample``, ``rnnlab eval``: language models from the shell."""

from __future__ import annotations

import argparse
import importlib
import math
import sys

from rnnlab.errors import InputError
from rnnlab.optim.schedules import OPTIMIZERS, SCHEDULES
from rnnlab.output import print_json
from rnnlab.train.lm import CELLS

# other model families' ``rnnlab train NAME``: each module defines add_train_parser(tsub)
TRAIN_MODELS: tuple[str, ...] = ("rnnlab.seq2seq.cli", "rnnlab.labelling.cli")


def add_parser(sub) -> None:
    """Register ``train`` (with ``lm`` and the families of :data:`TRAIN_MODELS`),
    ``sample`` and ``eval``."""
    train = sub.add_parser("train", help="train a model (train lm: a language model)")
    tsub = train.add_subparsers(dest="model", required=True, parser_class=type(train))
    for module in TRAIN_MODELS:
        importlib.import_module(module).add_train_parser(tsub)
    lm = tsub.add_parser(
        "lm",
        help="character- or word-level recurrent language model",
        description="Train a recurrent language model with truncated BPTT. Budget: --steps "
        "or --minutes. Default data: the English prose of pydoc_data.topics.",
    )
    g = lm.add_argument_group("model")
    g.add_argument("--level", choices=("char", "word"), default=None, help="tokens (char)")
    g.add_argument("--cell", choices=CELLS, default=None, help="recurrent cell (lstm)")
    g.add_argument("--hidden", type=int, default=None, help="hidden units per layer (192)")
    g.add_argument("--layers", type=int, default=None, help="recurrent layers (2)")
    g.add_argument("--embedding", type=int, default=None, help="embedding size (64)")
    g.add_argument("--dropout", type=float, default=None, help="dropout (0.2)")
    d = lm.add_argument_group("data")
    src = d.add_mutually_exclusive_group()
    src.add_argument(
        "--corpus",
        choices=("topics", "stdlib"),
        default=None,
        help="built-in corpus (topics: pydoc_data.topics prose)",
    )
    src.add_argument("--data", default=None, help="a UTF-8 text file to train on")
    d.add_argument("--val-fraction", type=float, default=None, help="validation split (0.05)")
    d.add_argument("--max-vocab", type=int, default=None, help="word vocabulary size (10000)")
    o = lm.add_argument_group("optimisation")
    o.add_argument("--seq-len", type=int, default=None, help="BPTT truncation length (100)")
    o.add_argument("--batch", type=int, default=None, help="parallel streams (32)")
    o.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help="(adam)")
    o.add_argument("--lr", type=float, default=None, help="learning rate (3e-3)")
    o.add_argument("--momentum", type=float, default=None, help="SGD/RMSProp momentum (0.9)")
    o.add_argument("--clip", type=float, default=None, help="clip the gradient norm (5)")
    o.add_argument("--clip-value", type=float, default=None, help="clip each component")
    o.add_argument("--schedule", choices=SCHEDULES, default=None, help="lr schedule (plateau)")
    o.add_argument("--eval-every", type=int, default=None, help="steps between evals (100)")
    o.add_argument("--patience", type=int, default=None, help="early stopping, in evals")
    o.add_argument("--seed", type=int, default=None, help="random seed (0)")
    o.add_argument("--device", default=None, help="cpu, cuda or auto (cpu)")
    o.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default=None,
        help="mixed precision by autocast (fp32; fp16 on CUDA, with a gradient scaler)",
    )
    budget = lm.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="train until this step (counts across resume)")
    budget.add_argument("--minutes", type=float, help="train for this many minutes")
    lm.add_argument("--out", default=None, help="output folder (default: runs/lm-<time>)")
    lm.add_argument("--resume", default=None, help="checkpoint to continue")
    lm.add_argument(
        "--threads",
        type=_threads_arg,
        default="auto",
        help="torch CPU threads: auto (default: 1 or all cores, whichever runs the first "
        "steps faster), N, or 0 (torch's default, all cores)",
    )
    lm.add_argument("--samples", type=int, default=300, help="length of the printed samples")
    lm.add_argument("--no-progress", action="store_true", help="no progress bar")
    lm.add_argument("--json", action="store_true", help="print one JSON record last")
    lm.set_defaults(handler=_train_lm)

    s = sub.add_parser("sample", help="generate text from a language-model checkpoint")
    s.add_argument("checkpoint", help="checkpoint.pt of `rnnlab train lm`")
    s.add_argument("--prime", default=None, help="text to start from (default: 'The')")
    s.add_argument("--temperature", type=float, default=1.0, help="softmax temperature (1)")
    s.add_argument("--top-k", type=int, default=None, help="sample among the k most likely")
    s.add_argument("--top-p", type=float, default=None, help="nucleus sampling mass")
    s.add_argument("--length", type=int, default=300, help="tokens to generate (300)")
    s.add_argument("--seed", type=int, default=0, help="random seed (0)")
    s.add_argument("--greedy", action="store_true", help="always the most likely token")
    s.add_argument("--beam", type=int, default=None, help="beam search with this width")
    s.add_argument("--json", action="store_true", help="print one JSON record last")
    s.set_defaults(handler=_sample)

    e = sub.add_parser("eval", help="bits/char or perplexity of a language-model checkpoint")
    e.add_argument("checkpoint", help="checkpoint.pt of `rnnlab train lm`")
    e.add_argument("--data", default=None, help="UTF-8 text file (default: its validation split)")
    e.add_argument("--json", action="store_true", help="print one JSON record last")
    e.set_defaults(handler=_eval)


def _threads_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected auto or an integer, received {text!r}"
        ) from None


def _train_lm(args: argparse.Namespace) -> int:
    from rnnlab.train.lm_run import LMTrainOptions, generate_text, option_names, train_lm
    from rnnlab.train.loop import TrainingDiverged

    if args.steps is None and args.minutes is None:
        args.minutes = 3.0 if args.resume is None else None
        if args.minutes is None:
            raise InputError("--resume needs a budget: --steps N (total) or --minutes M")
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps: expected an integer >= 1, received {args.steps}")
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        raise InputError(f"--minutes: expected a positive number, received {args.minutes}")
    from rnnlab.train.lm_run import MAX_THREADS

    if (
        args.threads != "auto" and not 0 <= args.threads <= MAX_THREADS
    ):  # torch crashes (SIGSEGV) on ~100,000
        raise InputError(
            f"--threads: expected auto or an integer in [0, {MAX_THREADS}], received {args.threads}"
        )
    if args.samples < 0:
        raise InputError(f"--samples: expected an integer >= 0, received {args.samples}")
    given = {k: getattr(args, k) for k in option_names() if getattr(args, k, None) is not None}
    options = None if args.resume else LMTrainOptions(**given)
    try:
        record, trainer = train_lm(
            options,
            steps=args.steps,
            minutes=args.minutes,
            out=args.out,
            resume=args.resume,
            overrides=given if args.resume else None,
            progress=not args.no_progress,
            threads=args.threads,
        )
    except TrainingDiverged as exc:
        print(f"rnnlab train lm: {exc}", file=sys.stderr)
        return 1
    if trainer.rank != 0:  # under torchrun: rank 0 reports for the whole job
        return 130 if record["stopped"] == "interrupted" else 0
    level = record["options"]["level"]
    metric = "bits_per_char" if level == "char" else "perplexity"
    unit = "bits/char" if level == "char" else "perplexity"
    val = record[f"val_{metric}"]
    train = record[f"train_{metric}"]
    # no finite training loss in this session (every step skipped): say so, never "nan"
    shown = f"{train:.3f} {unit}" if math.isfinite(train) else "n/a (no step trained)"
    print(
        f"trained {record['steps']} steps ({record['stopped']}) in {record['seconds']:.0f} s, "
        f"{record['tokens_per_second']:,.0f} tokens/s on {record['threads']} thread(s); "
        f"train {shown}" + (f", validation {val:.3f} {unit}" if val is not None else "")
    )
    if record["checkpoint"]:
        print(f"checkpoint: {record['checkpoint']}")
    else:  # the state never became healthy enough to save (see the warnings above)
        print("checkpoint: none written")
    if record["loss_plot"]:
        print(f"loss plot:  {record['loss_plot']}")
    samples = {}
    if args.samples and record["stopped"] != "interrupted":
        model, tok = trainer.model, trainer.extra["vocab"]
        from rnnlab.data.tokenizers import tokenizer_from_dict

        tokenizer = tokenizer_from_dict(tok)
        length = args.samples if level == "char" else max(1, args.samples // 5)
        for temperature in (0.5, 1.0):
            text = generate_text(
                model,
                tokenizer,
                length=length,
                temperature=temperature,
                seed=record["options"]["seed"],
            )
            samples[str(temperature)] = text
            print(f"\n--- sample, temperature {temperature} ---\n{text}")
    record["samples"] = samples
    if args.json:
        print_json(record)
    return 130 if record["stopped"] == "interrupted" else 0


def _sample(args: argparse.Namespace) -> int:
    from rnnlab.train.lm_run import generate_text, load_lm

    if args.length < 0:
        raise InputError(f"--length: expected an integer >= 0, received {args.length}")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise InputError(f"--temperature: expected a number >= 0, received {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise InputError(f"--top-k: expected an integer >= 1, received {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise InputError(f"--top-p: expected a number in (0, 1], received {args.top_p}")
    if args.beam is not None and args.beam < 1:
        raise InputError(f"--beam: expected an integer >= 1, received {args.beam}")
    model, tokenizer, _ = load_lm(args.checkpoint)
    text = generate_text(
        model,
        tokenizer,
        prime=args.prime,
        length=args.length,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        greedy=args.greedy,
        beam=args.beam,
        seed=args.seed,
    )
    print(text)
    if args.json:
        print_json({"text": text, "checkpoint": args.checkpoint})
    return 0


def _eval(args: argparse.Namespace) -> int:
    from rnnlab.train.lm_run import eval_lm

    record = eval_lm(args.checkpoint, args.data)
    key = "bits_per_char" if "bits_per_char" in record else "perplexity"
    unit = "bits/char" if key == "bits_per_char" else "perplexity"
    print(f"{record[key]:.4f} {unit} on {record['data']} ({record['tokens']:,} tokens)")
    if args.json:
        print_json(record)
    return 0
