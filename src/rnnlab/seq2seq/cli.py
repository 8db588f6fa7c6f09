"""``rnnlab train seq2seq`` and ``rnnlab translate``: encoder-decoders from the shell.

``train seq2seq`` trains on a task (``--task addition|execute|g2p``) or a TSV file of
``source<TAB>target`` lines (``--data``), through the one training loop: a progress bar,
``checkpoint.pt`` and ``metrics.jsonl`` in the output folder, ``--resume`` that
continues exactly, Ctrl-C that saves first, and ``--json`` for one record last.
``translate CKPT TEXT`` (or ``--input FILE``, one source a line) decodes with greedy or
beam search.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from rnnlab.errors import InputError
from rnnlab.nn import CELLS
from rnnlab.output import print_json
from rnnlab.seq2seq.attention import ATTENTIONS
from rnnlab.seq2seq.data import (
    BucketBatches,
    GeneratedBatches,
    Vocabulary,
    encode_pairs,
    read_tsv,
)
from rnnlab.seq2seq.model import Seq2Seq

KIND = "seq2seq"
TASKS = ("addition", "execute", "g2p")
EXECUTE_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz+-*()=:<>. \n"


@dataclass(frozen=True)
class Seq2SeqOptions:
    """Everything that defines a run besides its budget (saved in the checkpoint)."""

    task: str = "addition"
    data: str | None = None
    src_level: str = "char"
    tgt_level: str = "char"
    val_fraction: float = 0.05
    digits: int = 3
    examples: int = 50_000
    length: int = 2
    nesting: int = 1
    curriculum: str = "combined"
    program: str = "program"
    reverse: bool = False
    cell: str = "lstm"
    hidden: int = 128
    layers: int = 1
    embedding: int = 32
    attention: str | None = "luong-general"
    bidirectional: bool = False
    input_feeding: bool = True
    dropout: float = 0.0
    scheduled_sampling: float = 0.0
    batch: int = 128
    lr: float = 3e-3
    clip: float = 5.0
    eval_every: int = 200
    seed: int = 0
    max_source_length: int = 1000


def _check_options(o: Seq2SeqOptions) -> None:
    for name, low in (("digits", 1), ("examples", 2), ("length", 1), ("nesting", 1),
                      ("hidden", 1), ("layers", 1), ("embedding", 1), ("batch", 1),
                      ("eval_every", 1), ("max_source_length", 1)):  # fmt: skip
        v = getattr(o, name)
        if v < low:
            raise InputError(f"{name}: expected an integer >= {low}, received {v}")
    if not 0 < o.val_fraction < 1:
        raise InputError(f"val_fraction: expected a number in (0, 1), received {o.val_fraction}")
    if not (math.isfinite(o.lr) and o.lr > 0):
        raise InputError(f"lr: expected a positive number, received {o.lr}")
    if not (math.isfinite(o.clip) and o.clip > 0):
        raise InputError(f"clip: expected a positive number, received {o.clip}")
    if not 0 <= o.scheduled_sampling <= 1:
        raise InputError(
            f"scheduled_sampling: expected a number in [0, 1], received {o.scheduled_sampling}"
        )


class TaskData:
    """Vocabularies, the training batches and the validation pairs of a run."""

    def __init__(self, o: Seq2SeqOptions):
        self.curriculum = None
        self.references = None
        if o.data is not None:
            pairs = read_tsv(o.data)
            rng = random.Random(o.seed)
            val_idx = set(rng.sample(range(len(pairs)), max(1, round(o.val_fraction * len(pairs)))))
            train = [p for i, p in enumerate(pairs) if i not in val_idx] or pairs
            val = [p for i, p in enumerate(pairs) if i in val_idx]
            self.src_vocab = Vocabulary.build([s for s, _ in train], o.src_level)
            self.tgt_vocab = Vocabulary.build([t for _, t in train], o.tgt_level)
        elif o.task == "addition":
            from rnnlab.tasks import seq_addition

            n_val = max(1, round(o.val_fraction * o.examples))
            train, val = seq_addition.split(o.examples - n_val, n_val, o.digits, seed=o.seed)
            self.src_vocab = self.tgt_vocab = Vocabulary(seq_addition.ALPHABET)
        elif o.task == "execute":
            from rnnlab.tasks import execute

            self.src_vocab = Vocabulary(EXECUTE_ALPHABET)
            self.tgt_vocab = Vocabulary("0123456789-.")
            self.curriculum = execute.Curriculum(o.curriculum, o.length, o.nesting)
            cur = self.curriculum
            task = o.program

            def draw(rng):
                length, nesting = cur.draw(rng)
                return execute.sample(rng, "train", length, nesting, task)

            self.draw = draw
            train = None
            val = execute.dataset(500, "validation", o.length, o.nesting, task, seed=o.seed + 1)
        else:  # g2p
            from rnnlab.seq2seq import cmudict

            sets = cmudict.split(cmudict.load())
            train = cmudict.pairs(sets["train"])
            words = list(sets["validation"].items())[:1000]
            val = [(w, " ".join(prons[0])) for w, prons in words]
            self.src_vocab = Vocabulary.build([s for s, _ in train], "char")
            self.tgt_vocab = Vocabulary.build([t for _, t in train], "word")
            self.references = [[self.tgt_vocab.encode(list(p), "unk") for p in prons]
                               for _, prons in words]  # fmt: skip
        self.train_pairs = train
        self.val = encode_pairs(val, self.src_vocab, self.tgt_vocab)

    def batches(self, o: Seq2SeqOptions):
        if self.train_pairs is None:
            return GeneratedBatches(self.draw, self.src_vocab, self.tgt_vocab, o.batch,
                                    seed=o.seed, curriculum=self.curriculum)  # fmt: skip
        ex = encode_pairs(self.train_pairs, self.src_vocab, self.tgt_vocab)
        return BucketBatches(ex, o.batch, seed=o.seed)


def build_model(o: Seq2SeqOptions, src_vocab: Vocabulary, tgt_vocab: Vocabulary) -> Seq2Seq:
    return Seq2Seq(
        len(src_vocab), len(tgt_vocab), cell=o.cell, hidden_size=o.hidden, num_layers=o.layers,
        embedding_size=o.embedding, attention=o.attention,
        bidirectional_encoder=o.bidirectional, reverse_source=o.reverse,
        input_feeding=o.input_feeding, dropout=o.dropout,
        max_source_length=o.max_source_length,
    )  # fmt: skip


def train_seq2seq(options: Seq2SeqOptions | None, *, steps=None, minutes=None, out=None,
                  resume=None, progress=True, beam=1) -> dict:  # fmt: skip
    """Train (or continue) a run; returns the JSON record (see the module docstring)."""
    from rnnlab.seq2seq.run import evaluate, fit
    from rnnlab.train.checkpoint import load_checkpoint, seed_everything
    from rnnlab.train.distributed import init_from_env

    state = None
    if resume is not None:
        state = load_checkpoint(resume, KIND)
        try:
            options = Seq2SeqOptions(**state["options"])
        except (KeyError, TypeError) as exc:
            raise InputError(f"resume: {resume!r} holds no seq2seq options ({exc})") from exc
        out_dir = Path(out) if out is not None else Path(resume).parent
    else:
        options = options or Seq2SeqOptions()
        out_dir = (
            Path(out)
            if out is not None
            else Path("runs") / time.strftime("seq2seq-%Y%m%d-%H%M%S", time.gmtime())
        )
        if (out_dir / "checkpoint.pt").exists():
            raise InputError(
                f"out: {str(out_dir)!r} already holds a checkpoint; pass --resume "
                f"{out_dir / 'checkpoint.pt'} to continue it or choose another --out"
            )
    _check_options(options)
    if steps is not None and state is not None and steps <= state["trainer"]["step"]:
        raise InputError(
            f"steps: the checkpoint is at step {state['trainer']['step']} and --steps counts "
            f"across resumes; pass a larger total"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    # under torchrun: join the process group; the Trainer shards every batch across ranks
    rank = init_from_env().rank
    seed_everything(options.seed)
    data = TaskData(options)
    if state is not None:
        data.src_vocab = Vocabulary.from_dict(state["src_vocab"])
        data.tgt_vocab = Vocabulary.from_dict(state["tgt_vocab"])
    model = build_model(options, data.src_vocab, data.tgt_vocab)
    cur = data.curriculum

    on_eval = None
    if cur is not None:
        from rnnlab.seq2seq.run import curriculum_hook

        on_eval = curriculum_hook(cur, data.src_vocab, data.tgt_vocab, options.program,
                                  seed=options.seed + 2)  # fmt: skip
    extra = {"options": asdict(options), "src_vocab": data.src_vocab.to_dict(),
             "tgt_vocab": data.tgt_vocab.to_dict()}  # fmt: skip
    trainer, result = fit(
        model, data.batches(options), data.val, steps=steps, minutes=minutes, lr=options.lr,
        clip=options.clip, eval_every=options.eval_every,
        sampling_probability=options.scheduled_sampling, on_eval=on_eval,
        checkpoint=out_dir / "checkpoint.pt", metrics=out_dir / "metrics.jsonl", extra=extra,
        progress=progress, resume=state,
    )  # fmt: skip
    final = evaluate(trainer.model, data.val, references=data.references, beam_size=beam)
    final.pop("outputs")
    record = {
        "options": asdict(options),
        "steps": result.steps,
        "stopped": result.stopped,
        "seconds": result.seconds,
        "tokens_per_second": result.tokens_per_second,
        "train_loss": result.train_loss,
        "validation": final,
        "curriculum_level": list(cur.level) if cur is not None else None,
        "checkpoint": result.checkpoint,
        "rank": rank,
    }
    return record


def load_seq2seq(path) -> tuple[Seq2Seq, Vocabulary, Vocabulary, dict]:
    """The model (best or last state), vocabularies and options of a checkpoint."""
    from rnnlab.train.checkpoint import load_checkpoint

    state = load_checkpoint(path, KIND)
    try:
        o = Seq2SeqOptions(**state["options"])
        sv, tv = Vocabulary.from_dict(state["src_vocab"]), Vocabulary.from_dict(state["tgt_vocab"])
        model = build_model(o, sv, tv)
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise InputError(f"checkpoint: {str(path)!r} is not a seq2seq checkpoint ({exc})") from exc
    return model.eval(), sv, tv, asdict(o)


def translate_texts(model, src_vocab, tgt_vocab, texts, *, beam=1, max_length=None,
                    length_penalty=0.0, n_best=1) -> list:  # fmt: skip
    """Decoded texts of ``texts`` (a list; with ``n_best`` > 1, a list per text)."""
    ids = []
    for i, t in enumerate(texts):
        if not t.strip():
            raise InputError(f"text: source {i + 1} is empty")
        ids.append(src_vocab.encode(t, "error", "text"))
    out = []
    for i in range(0, len(ids), 64):
        chunk = ids[i : i + 64]
        S = max(len(s) for s in chunk)
        src = torch.zeros(len(chunk), S, dtype=torch.long)
        for b, s in enumerate(chunk):
            src[b, : len(s)] = torch.tensor(s)
        lengths = torch.tensor([len(s) for s in chunk])
        limit = max_length or 2 * S + 10
        tr = model.translate(src, lengths, beam_size=beam, max_length=limit,
                             length_penalty=length_penalty, n_best=n_best)  # fmt: skip
        for toks in tr.tokens:
            out.append(
                [tgt_vocab.decode(t) for t in toks] if n_best > 1 else tgt_vocab.decode(toks)
            )
    return out


# --------------------------------------------------------------------------- parsers
def add_train_parser(tsub) -> None:
    p = tsub.add_parser(
        "seq2seq",
        help="encoder-decoder with attention (addition, execute, g2p, or a TSV file)",
        description="Train a sequence-to-sequence model. Budget: --steps or --minutes.",
    )
    d = p.add_argument_group("data")
    src = d.add_mutually_exclusive_group()
    src.add_argument("--task", choices=TASKS, default=None, help="built-in task (addition)")
    src.add_argument("--data", default=None, help="TSV file of source<TAB>target lines")
    d.add_argument("--src-level", choices=("char", "word"), default=None, help="(char)")
    d.add_argument("--tgt-level", choices=("char", "word"), default=None, help="(char)")
    d.add_argument("--val-fraction", type=float, default=None, help="validation share (0.05)")
    d.add_argument("--digits", type=int, default=None, help="addition: digits (3)")
    d.add_argument("--examples", type=int, default=None, help="addition: questions (50000)")
    d.add_argument("--length", type=int, default=None, help="execute: digits (2)")
    d.add_argument("--nesting", type=int, default=None, help="execute: nesting (1)")
    d.add_argument("--curriculum", choices=("baseline", "naive", "mix", "combined"),
                   default=None, help="execute: curriculum (combined)")  # fmt: skip
    d.add_argument(
        "--program",
        choices=("program", "addition"),
        default=None,
        help="execute: programs, or print(a+b) of --length digits (program)",
    )
    d.add_argument("--reverse", action="store_true", default=None, help="reverse the source")
    m = p.add_argument_group("model")
    m.add_argument("--cell", choices=CELLS, default=None, help="(lstm)")
    m.add_argument("--hidden", type=int, default=None, help="hidden units (128)")
    m.add_argument("--layers", type=int, default=None, help="layers (1)")
    m.add_argument("--embedding", type=int, default=None, help="embedding size (32)")
    m.add_argument("--attention", choices=("none", *ATTENTIONS), default=None,
                   help="(luong-general)")  # fmt: skip
    m.add_argument("--bidirectional", action="store_true", default=None, help="both directions")
    m.add_argument("--no-input-feeding", dest="input_feeding", action="store_false", default=None)
    m.add_argument("--dropout", type=float, default=None, help="(0)")
    m.add_argument("--scheduled-sampling", type=float, default=None, help="probability (0)")
    m.add_argument("--max-source-length", type=int, default=None, help="(1000)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--batch", type=int, default=None, help="(128)")
    o.add_argument("--lr", type=float, default=None, help="Adam learning rate (3e-3)")
    o.add_argument("--clip", type=float, default=None, help="gradient-norm clip (5)")
    o.add_argument("--eval-every", type=int, default=None, help="steps between evals (200)")
    o.add_argument("--seed", type=int, default=None, help="(0)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, help="train until this step (counts across resume)")
    budget.add_argument("--minutes", type=float, help="train for this many minutes")
    p.add_argument("--beam", type=int, default=1, help="beam for the final evaluation (1)")
    p.add_argument("--out", default=None, help="output folder (runs/seq2seq-<time>)")
    p.add_argument("--resume", default=None, help="checkpoint to continue")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON record last")
    p.set_defaults(handler=_train)


def add_parser(sub) -> None:
    t = sub.add_parser("translate", help="decode with a seq2seq checkpoint")
    t.add_argument("checkpoint", help="checkpoint.pt of `rnnlab train seq2seq`")
    t.add_argument("text", nargs="?", default=None, help="the source text")
    t.add_argument("--input", default=None, help="a file of sources, one a line")
    t.add_argument("--beam", type=int, default=1, help="beam size (1: greedy)")
    t.add_argument("--max-length", type=int, default=None, help="decoding steps")
    t.add_argument("--length-penalty", type=float, default=0.0, help="GNMT alpha (0)")
    t.add_argument("--n-best", type=int, default=1, help="outputs per source (1)")
    t.add_argument("--json", action="store_true", help="print one JSON record last")
    t.set_defaults(handler=_translate)


def _train(args: argparse.Namespace) -> int:
    from rnnlab.train.loop import TrainingDiverged

    if args.steps is None and args.minutes is None:
        if args.resume is not None:
            raise InputError("--resume needs a budget: --steps N (total) or --minutes M")
        args.minutes = 3.0
    if args.steps is not None and args.steps < 1:
        raise InputError(f"--steps: expected an integer >= 1, received {args.steps}")
    if args.minutes is not None and not (math.isfinite(args.minutes) and args.minutes > 0):
        raise InputError(f"--minutes: expected a positive number, received {args.minutes}")
    if not 0 <= args.threads <= 1024:
        raise InputError(f"--threads: expected an integer in [0, 1024], received {args.threads}")
    if args.beam < 1:
        raise InputError(f"--beam: expected an integer >= 1, received {args.beam}")
    given = {f.name: getattr(args, f.name) for f in fields(Seq2SeqOptions)
             if getattr(args, f.name, None) is not None}  # fmt: skip
    if given.get("attention") == "none":
        given["attention"] = None
    if args.resume is not None and given:
        raise InputError(
            f"--resume: the run's options are in its checkpoint; received "
            f"{', '.join('--' + k.replace('_', '-') for k in sorted(given))}"
        )
    if args.data is not None and not Path(args.data).is_file():
        raise InputError(f"--data: {args.data!r} is not a file")
    old = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        record = train_seq2seq(
            None if args.resume else Seq2SeqOptions(**given), steps=args.steps,
            minutes=args.minutes, out=args.out, resume=args.resume,
            progress=not args.no_progress, beam=args.beam,
        )  # fmt: skip
    except TrainingDiverged as exc:
        print(f"rnnlab train seq2seq: {exc}", file=sys.stderr)
        return 1
    finally:
        torch.set_num_threads(old)
    if record["rank"] != 0:  # under torchrun: rank 0 reports for the whole job
        return 130 if record["stopped"] == "interrupted" else 0
    v = record["validation"]
    line = (f"trained {record['steps']} steps ({record['stopped']}) in {record['seconds']:.0f} s; "
            f"validation {v['loss']:.4f} nats/token, token accuracy {v['token_accuracy']:.3f}, "
            f"exact match {v['exact_greedy']:.3f} (greedy)")  # fmt: skip
    if "exact_beam" in v:
        line += f", {v['exact_beam']:.3f} (beam {args.beam})"
    print(line)
    print(f"checkpoint: {record['checkpoint'] or 'none written'}")
    if args.json:
        print_json(record)
    return 130 if record["stopped"] == "interrupted" else 0


def _translate(args: argparse.Namespace) -> int:
    if (args.text is None) == (args.input is None):
        raise InputError("text: give the source text or --input FILE (one of them)")
    if args.beam < 1:
        raise InputError(f"--beam: expected an integer >= 1, received {args.beam}")
    if args.max_length is not None and args.max_length < 1:
        raise InputError(f"--max-length: expected an integer >= 1, received {args.max_length}")
    if args.n_best < 1 or args.n_best > args.beam:
        raise InputError(f"--n-best: expected an integer in [1, --beam], received {args.n_best}")
    if not (math.isfinite(args.length_penalty) and args.length_penalty >= 0):
        raise InputError(
            f"--length-penalty: expected a number >= 0, received {args.length_penalty}"
        )
    model, sv, tv, _ = load_seq2seq(args.checkpoint)
    if args.input is not None:
        with open(args.input, encoding="utf-8") as fh:
            texts = [line.rstrip("\n") for line in fh]
        texts = [t for t in texts if t.strip()]
        if not texts:
            raise InputError(f"--input: {args.input!r} holds no sources")
    else:
        texts = [args.text.replace("\\n", "\n")]
    outputs = translate_texts(model, sv, tv, texts, beam=args.beam, max_length=args.max_length,
                              length_penalty=args.length_penalty, n_best=args.n_best)  # fmt: skip
    for o in outputs:
        print(" | ".join(o) if isinstance(o, list) else o)
    if args.json:
        print_json({"checkpoint": args.checkpoint, "sources": texts, "outputs": outputs})
    return 0


__all__ = ["Seq2SeqOptions", "add_parser", "add_train_parser", "load_seq2seq",
           "train_seq2seq", "translate_texts"]  # fmt: skip
