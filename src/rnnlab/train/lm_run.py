"""Language-model jobs behind ``rnnlab train lm``, ``rnnlab eval`` and ``rnnlab sample``.

:func:`train_lm` reads a corpus, builds (or restores) the tokenizer, cuts the token
stream into a training part and a validation part (the last ``val_fraction``), trains a
:class:`~rnnlab.train.lm.LanguageModel` with truncated BPTT over B parallel streams, and
leaves ``checkpoint.pt``, ``metrics.jsonl`` and ``loss.png`` in the output folder.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from rnnlab._threads import ThreadTuner
from rnnlab.data.corpora import Corpus, load_corpus
from rnnlab.data.streams import StreamBatcher
from rnnlab.data.tokenizers import Tokenizer, make_tokenizer, tokenizer_from_dict
from rnnlab.errors import InputError
from rnnlab.optim.schedules import (
    OPTIMIZERS,
    SCHEDULES,
    CosineSchedule,
    make_optimizer,
    make_schedule,
)
from rnnlab.train.checkpoint import load_checkpoint, seed_everything
from rnnlab.train.distributed import init_from_env
from rnnlab.train.generate import beam_search, sample
from rnnlab.train.lm import (
    LanguageModel,
    LMConfig,
    evaluate_lm,
    lm_loss,
    metric_name,
    metric_value,
)
from rnnlab.train.loop import StepOutput, TrainConfig, Trainer, TrainResult
from rnnlab.train.metrics import plot_losses

KIND = "lm"
UNKNOWN_ID = 0  # id of the tokenizers' <unk>
MAX_THREADS = 1024  # torch.set_num_threads(100_000) kills the process (SIGSEGV)
CHECKPOINT = "checkpoint.pt"
# fraction of unknown tokens above which a vocabulary "does not fit" the data
UNKNOWN_LIMIT = {"char": 0.01, "word": 0.25}
# the validation split is the last val_fraction of the tokens, at most this many (so that
# periodic evaluation stays cheap on a corpus of hundreds of MB)
MAX_VAL_TOKENS = 1_000_000


SEED_RANGE = "[-2**63, 2**64 - 1]"  # what torch's generators accept


PRECISIONS = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}  # -> TrainConfig.autocast


def _is_seed(seed) -> bool:
    return isinstance(seed, int) and not isinstance(seed, bool) and -(2**63) <= seed < 2**64


@dataclass(frozen=True)
class LMTrainOptions:
    """Everything that defines an LM training run besides its budget (saved in checkpoints).

    Architecture: level, cell, hidden, layers, embedding, dropout. Data: corpus, data
    (a file path or None), val_fraction, max_vocab (word level). Optimisation: seq_len,
    batch, optimizer, lr, momentum, clip (norm), clip_value, schedule, eval_every,
    patience, seed, device, precision ("fp32", or "bf16" / "fp16" mixed precision through
    autocast; fp16 with a gradient scaler, on CUDA only).
    """

    level: str = "char"
    cell: str = "lstm"
    hidden: int = 192
    layers: int = 2
    embedding: int = 64
    dropout: float = 0.2
    corpus: str = "topics"
    data: str | None = None
    val_fraction: float = 0.05
    max_vocab: int = 10000
    seq_len: int = 100
    batch: int = 32
    optimizer: str = "adam"
    lr: float = 3e-3
    momentum: float = 0.9
    clip: float | None = 5.0
    clip_value: float | None = None
    schedule: str = "plateau"
    eval_every: int = 100
    patience: int | None = None
    seed: int = 0
    device: str = "cpu"
    precision: str = "fp32"

    def __post_init__(self):
        from rnnlab._validation import check_positive_int

        check_positive_int("seq_len", self.seq_len)
        check_positive_int("batch", self.batch)
        check_positive_int("hidden", self.hidden)
        check_positive_int("layers", self.layers)
        check_positive_int("embedding", self.embedding, 0)
        check_positive_int("eval_every", self.eval_every, 0)
        check_positive_int("max_vocab", self.max_vocab, 2)
        if self.patience is not None:
            check_positive_int("patience", self.patience, 1)
        if not _is_seed(self.seed):
            raise InputError(f"seed: expected an integer in {SEED_RANGE}, received {self.seed!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(
                f"optimizer: expected one of {', '.join(OPTIMIZERS)}, received {self.optimizer!r}"
            )
        if self.schedule not in SCHEDULES:
            raise InputError(
                f"schedule: expected one of {', '.join(SCHEDULES)}, received {self.schedule!r}"
            )
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout: expected a number in [0, 1), received {self.dropout!r}")
        if not isinstance(self.momentum, (int, float)) or not 0.0 <= self.momentum < 1.0:
            raise InputError(f"momentum: expected a number in [0, 1), received {self.momentum!r}")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            raise InputError(f"lr: expected a positive number, received {self.lr!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise InputError(
                f"val_fraction: expected a number in (0, 1), received {self.val_fraction!r}"
            )
        if self.precision not in PRECISIONS:
            raise InputError(
                f"precision: expected one of {', '.join(PRECISIONS)}, received {self.precision!r}"
            )
        for name in ("clip", "clip_value"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise InputError(f"{name}: expected a positive number, received {v!r}")

    # fields a resumed run must keep (they define the model, the data or its layout)
    FIXED = (
        "level",
        "cell",
        "hidden",
        "layers",
        "embedding",
        "dropout",
        "corpus",
        "data",
        "val_fraction",
        "max_vocab",
        "seq_len",
        "batch",
        # the optimizer's and the schedule's saved states only fit their own kind
        "optimizer",
        "schedule",
    )


@dataclass
class LMData:
    """The tokenized corpus: tokenizer, training and validation id streams."""

    tokenizer: Tokenizer
    train: torch.Tensor
    val: torch.Tensor
    corpus: Corpus
    unknown: int


def _describe_unknown(tokenizer: Tokenizer, corpus: Corpus, limit: int = 5) -> str:
    bad: list[str] = []
    for block in corpus.blocks():
        for s in tokenizer.unknown_symbols(block):
            if s not in bad:
                bad.append(s)
        if len(bad) >= limit:
            break
    return ", ".join(repr(s) for s in bad[:limit])


def prepare_data(opts: LMTrainOptions, tokenizer: Tokenizer | None = None) -> LMData:
    """Read and tokenize the corpus (fitting the vocabulary unless ``tokenizer`` is given),
    and split off the last ``val_fraction`` (at most ``MAX_VAL_TOKENS``) as validation."""
    corpus = load_corpus(opts.corpus, opts.data)
    fitted = tokenizer is None
    if fitted:
        tokenizer = make_tokenizer(opts.level, max_size=opts.max_vocab).fit(corpus.blocks())
    enc = tokenizer.encode_blocks(corpus.blocks(), corpus.size_bytes)
    n = enc.ids.numel()
    if n == 0:
        raise InputError(f"data: {corpus.source!r} holds no {opts.level} tokens")
    if not fitted:
        check_vocabulary_fits(tokenizer, corpus, enc.unknown, n)
    n_val = max(2, min(int(n * opts.val_fraction), MAX_VAL_TOKENS))
    if n - n_val < opts.batch + 1:
        raise InputError(
            f"data: {corpus.source!r} has {n} tokens, too few for --batch {opts.batch} plus a "
            f"validation split of {n_val} (use a smaller --batch or more text)"
        )
    return LMData(tokenizer, enc.ids[: n - n_val], enc.ids[n - n_val :], corpus, enc.unknown)


def check_vocabulary_fits(tokenizer: Tokenizer, corpus: Corpus, unknown: int, n: int) -> None:
    """ValueError when too many tokens of the data are outside the checkpoint's vocabulary."""
    limit = UNKNOWN_LIMIT[tokenizer.level]
    if n and unknown / n > limit:
        raise InputError(
            f"the checkpoint's vocabulary does not fit the data: {unknown / n:.1%} of the "
            f"{tokenizer.level} tokens of {corpus.source!r} are outside its "
            f"{tokenizer.vocab_size}-token vocabulary (limit {limit:.0%}; e.g. "
            f"{_describe_unknown(tokenizer, corpus)})"
        )


DEVICE_TYPES = ("cpu", "cuda", "mps")


def _device(name: str) -> torch.device:
    """The torch device of ``--device``: cpu, cuda, cuda:N, mps or auto (cuda when there)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"device: expected cpu, cuda, cuda:N, mps or auto, received {name!r} ({first})"
        ) from None
    if dev.type not in DEVICE_TYPES:
        raise InputError(
            f"device: expected cpu, cuda, cuda:N, mps or auto (a device that computes), "
            f"received {name!r}"
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device: {name!r} requested but CUDA is not available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(
                f"device: {name!r} requested but there are {torch.cuda.device_count()} "
                "CUDA device(s)"
            )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device: {name!r} requested but MPS is not available")
    return dev


def _to(state: Any, device: torch.device) -> Any:
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.to(device)
    return type(state)(_to(s, device) for s in state)


def _new_run_dir(root: Path = Path("runs")) -> Path:
    stamp = time.strftime("lm-%Y%m%d-%H%M%S", time.gmtime())
    out, i = root / stamp, 2
    while out.exists():
        out, i = root / f"{stamp}-{i}", i + 1
    return out


def _check_writable(out: Path) -> None:
    """Create ``out`` and write a file into it, so that an unwritable folder is refused
    before training instead of at the first checkpoint."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise InputError(
            f"out: cannot write into {str(out)!r} ({exc.strerror or type(exc).__name__})"
        ) from None


def _check_out(out: Path, resume: Path | None) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"out: expected a folder, received a file: {str(out)!r}")
    ckpt = out / CHECKPOINT
    if ckpt.exists() and (resume is None or ckpt.resolve() != resume.resolve()):
        raise InputError(
            f"out: {str(out)!r} already holds a checkpoint; pass --resume {ckpt} to continue "
            "it, or choose another --out (nothing was overwritten)"
        )


# the fields a resumable language-model checkpoint holds, with their types
RESUME_FIELDS = {
    "options": dict,
    "config": dict,
    "vocab": dict,
    "data_tokens": int,
    "model": dict,
    "optimizer": dict,
    "trainer": dict,
}


def _check_resume_fields(state: dict, path) -> None:
    """InputError naming the first missing or mistyped field of a checkpoint."""
    for key, kind in RESUME_FIELDS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            got = "missing" if key not in state else f"a {type(state[key]).__name__}"
            raise InputError(
                f"checkpoint: {str(path)!r} is damaged or incompatible (field {key!r}: expected "
                f"a {kind.__name__}, found {got})"
            )


def _resolve_data(overrides: dict | None) -> dict | None:
    """``overrides`` with a ``data`` path made absolute (as checkpoints store it)."""
    if not overrides or overrides.get("data") is None:
        return overrides
    return {**overrides, "data": str(Path(overrides["data"]).expanduser().resolve())}


def _lm_step(device: torch.device):
    def step(model, batch, carry) -> StepOutput:
        if device.type != "cpu":
            batch = batch._replace(
                inputs=batch.inputs.to(device, non_blocking=True),
                targets=batch.targets.to(device, non_blocking=True),
            )
        return lm_loss(model, batch, carry)

    return step


def train_lm(
    options: LMTrainOptions | None = None,
    *,
    steps: int | None = None,
    minutes: float | None = None,
    out: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    overrides: dict | None = None,
    progress: bool = True,
    threads: int | str | None = None,
) -> tuple[dict, Trainer]:
    """Train (or continue) a language model; returns the JSON record and the trainer.

    Args:
        options: the run's options (None: defaults; ignored on resume except ``overrides``).
        steps / minutes: budget (steps count across resumes; minutes this session).
        out: output folder (default: a new ``runs/lm-<UTC time>``; on resume the
            checkpoint's folder). A folder that already holds a checkpoint is refused
            unless it is the one being resumed.
        resume: a checkpoint to continue.
        overrides: options given explicitly on resume; those in ``FIXED`` must equal the
            checkpoint's, the others (lr, clip, eval_every, ...) replace them.
    """
    if steps is None and minutes is None:
        raise InputError("give a budget: --steps N or --minutes M")
    if steps is not None and steps < 1:
        raise InputError(f"steps: expected an integer >= 1, received {steps!r}")
    if minutes is not None and not minutes > 0:
        raise InputError(f"minutes: expected a positive number, received {minutes!r}")
    if (
        threads != "auto"
        and threads is not None
        and not (
            isinstance(threads, int)
            and not isinstance(threads, bool)
            and 0 <= threads <= MAX_THREADS
        )
    ):
        raise InputError(
            f"threads: expected 'auto' or an integer in [0, {MAX_THREADS}], received {threads!r}"
        )
    tuner = ThreadTuner() if threads == "auto" else None  # 1 or all cores, by step times
    if threads and tuner is None:
        torch.set_num_threads(threads)
    state = None
    resume_path = Path(resume) if resume is not None else None
    if resume_path is not None:
        state = load_checkpoint(resume_path, KIND)
        _check_resume_fields(state, resume_path)
        try:
            saved = LMTrainOptions(**state["options"])
            done = int(state["trainer"]["step"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                f"resume: {str(resume_path)!r} is damaged or incompatible (options: {exc})"
            ) from None
        if steps is not None and steps <= done:
            raise InputError(
                f"steps: the checkpoint is at step {done} and the step budget counts across "
                f"resumes, so nothing is left to train with {steps} (give more than {done})"
            )
        overrides = _resolve_data(overrides)
        for key, value in (overrides or {}).items():
            if key == "data" and value is not None and saved.data is not None:
                if Path(value) == Path(saved.data).resolve():
                    continue
            if key in LMTrainOptions.FIXED and value != getattr(saved, key):
                raise InputError(
                    f"{key}: the checkpoint was trained with "
                    f"{getattr(saved, key)!r}, received {value!r} (it cannot change on resume)"
                )
        opts = replace(saved, **(overrides or {}))
        out_dir = Path(out) if out is not None else resume_path.parent
    else:
        opts = replace(options or LMTrainOptions(), **(_resolve_data(overrides) or {}))
        if opts.data is not None:  # stored resolved: a resume from elsewhere finds it
            opts = replace(opts, data=str(Path(opts.data).expanduser().resolve()))
        out_dir = Path(out) if out is not None else _new_run_dir()
    _check_out(out_dir, resume_path)
    device = _device(opts.device)
    # under torchrun: join the process group (gloo on CPU, NCCL with one GPU a process)
    dist_info = init_from_env(device)
    device = dist_info.device or device
    if opts.precision == "fp16" and device.type != "cuda":
        raise InputError(
            f"precision: fp16 needs a CUDA device (torch's CPU recurrent kernels have no "
            f"float16), received device {str(device)!r}; use bf16 on the CPU"
        )
    seed_everything(opts.seed)

    tokenizer = tokenizer_from_dict(state["vocab"]) if state is not None else None
    data = prepare_data(opts, tokenizer)
    if state is not None and state["data_tokens"] != data.train.numel() + data.val.numel():
        raise InputError(
            f"resume: the checkpoint was trained on {state['data_tokens']} tokens, the data "
            f"{data.corpus.source!r} now has {data.train.numel() + data.val.numel()}"
        )
    config = LMConfig(
        level=opts.level,
        cell=opts.cell,
        vocab_size=data.tokenizer.vocab_size,
        embedding_size=opts.embedding,
        hidden_size=opts.hidden,
        num_layers=opts.layers,
        dropout=opts.dropout,
    )
    model = LanguageModel(config, device=device)
    optimizer = make_optimizer(
        opts.optimizer, model.parameters(), lr=opts.lr, momentum=opts.momentum
    )
    schedule = (
        None
        if opts.schedule == "constant"
        else make_schedule(opts.schedule, optimizer, total_steps=steps)
    )
    batches = StreamBatcher(data.train, opts.batch, opts.seq_len)
    val_tokens = data.val.to(device)

    def eval_fn(m):  # sharded across processes and reduced under torch.distributed
        return evaluate_lm(m, val_tokens, batch_size=16, seq_len=256)

    extra = {
        "options": asdict(opts),
        "config": config.to_dict(),
        "vocab": data.tokenizer.to_dict(),
        "corpus": {"name": data.corpus.name, "source": data.corpus.source, **data.corpus.meta},
        "data_tokens": data.train.numel() + data.val.numel(),
    }
    trainer = Trainer(
        model,
        optimizer,
        batches,
        _lm_step(device),
        TrainConfig(
            steps=steps,
            minutes=minutes,
            clip_norm=opts.clip,
            clip_value=opts.clip_value,
            eval_every=opts.eval_every,
            patience=opts.patience,
            progress=progress,
            autocast=PRECISIONS[opts.precision],
        ),
        schedule=schedule,
        eval_fn=eval_fn,
        checkpoint=out_dir / CHECKPOINT,
        metrics=out_dir / "metrics.jsonl",
        kind=KIND,
        extra=extra,
        loss_unit=("bits/char", 1 / math.log(2)) if opts.level == "char" else ("nats/word", 1.0),
        after_step=tuner,
    )
    if state is not None:
        new_lr = opts.lr != LMTrainOptions(**state["options"]).lr
        try:
            if new_lr:
                for group in state["optimizer"]["param_groups"]:
                    group["lr"] = opts.lr
            trainer.load_state_dict(state)
            trainer.carry = _to(trainer.carry, device)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(
                f"resume: {str(resume_path)!r} holds a state that does not fit its own "
                f"configuration (another model's weights?): {first[:160]}"
            ) from None
        if isinstance(schedule, CosineSchedule):
            # the schedule is a function of (step, budget): continue on this run's budget
            if new_lr:
                schedule.set_base_lr(opts.lr)
            schedule.set_total_steps(steps)
    _check_writable(out_dir)
    result = trainer.fit()
    plot = None
    try:
        if dist_info.rank != 0:  # rank 0 alone writes
            raise OSError("not rank 0")
        level = opts.level
        plot = plot_losses(
            out_dir / "metrics.jsonl",
            out_dir / "loss.png",
            scale=1 / math.log(2) if level == "char" else 1.0,
            ylabel="bits/char" if level == "char" else "loss (nats/word)",
            title=f"{level}-level {opts.cell.upper()} {opts.layers}x{opts.hidden} on "
            f"{data.corpus.name}",
        )
    except (OSError, ValueError):  # a plot is never worth losing the run over
        plot = None
    record = _record(result, opts, data, plot)
    record["thread_step_seconds"] = None if tuner is None else tuner.times
    return record, trainer


def _record(result: TrainResult, opts: LMTrainOptions, data: LMData, plot) -> dict:
    name = metric_name(opts.level)
    rec = {
        "steps": result.steps,
        "train_loss": result.train_loss,
        f"train_{name}": metric_value(opts.level, result.train_loss),
        f"val_{name}": (
            metric_value(opts.level, result.val_loss) if result.val_loss is not None else None
        ),
        "val_loss": result.val_loss,
        "tokens_per_second": result.tokens_per_second,
        "threads": torch.get_num_threads(),
        "seconds": result.seconds,
        "stopped": result.stopped,
        "skipped_steps": result.skipped_steps,
        "checkpoint": result.checkpoint,
        "loss_plot": str(plot) if plot else None,
        "vocab_size": data.tokenizer.vocab_size,
        "train_tokens": data.train.numel(),
        "val_tokens": data.val.numel(),
        "corpus": data.corpus.name,
        "python": data.corpus.meta.get("python"),
        "options": asdict(opts),
    }
    return rec


# ------------------------------------------------------------------ loading / using a model
def load_lm(path: str | os.PathLike, device: str = "cpu") -> tuple[LanguageModel, Tokenizer, dict]:
    """Model (eval mode), tokenizer and the raw checkpoint of a trained language model."""
    state = load_checkpoint(path, KIND)
    try:
        config = LMConfig(**state["config"])
        tokenizer = tokenizer_from_dict(state["vocab"])
        model = LanguageModel(config, device=_device(device))
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"checkpoint: {str(path)!r} is damaged or incompatible ({first})"
        ) from None
    model.eval()
    return model, tokenizer, state


def eval_lm(path: str | os.PathLike, data: str | os.PathLike | None = None) -> dict:
    """Bits/char (char) or perplexity (word) of a checkpoint on a file, or on the
    validation split of its own corpus when ``data`` is None."""
    model, tokenizer, state = load_lm(path)
    level = tokenizer.level
    if data is None:
        try:
            opts = LMTrainOptions(**state["options"])
            corpus_source = state["corpus"]["source"]
        except (KeyError, TypeError) as exc:
            raise InputError(
                f"checkpoint: {str(path)!r} is damaged or incompatible (options: {exc})"
            ) from None
        ids = prepare_data(opts, tokenizer).val
        source, unknown = f"validation split of {corpus_source}", 0
    else:
        corpus = load_corpus(data=data)
        enc = tokenizer.encode_blocks(corpus.blocks(), corpus.size_bytes)
        if enc.ids.numel() < 2:
            raise InputError(f"data: {str(data)!r} holds fewer than 2 {level} tokens")
        check_vocabulary_fits(tokenizer, corpus, enc.unknown, enc.ids.numel())
        ids, source, unknown = enc.ids, str(data), enc.unknown
    loss = evaluate_lm(model, ids, batch_size=16, seq_len=256)
    name = metric_name(level)
    return {
        name: metric_value(level, loss),
        "loss": loss,
        "tokens": ids.numel(),
        "unknown_tokens": unknown,
        "data": source,
        "checkpoint": str(path),
    }


def encode_prime(tokenizer: Tokenizer, prime: str) -> list[int]:
    """Ids of a priming text; ValueError naming the symbols outside the vocabulary."""
    if prime == "":
        raise InputError("prime: expected a non-empty text")
    bad = tokenizer.unknown_symbols(prime)
    if bad:
        shown = ", ".join(repr(s) for s in bad[:5])
        raise InputError(
            f"prime: {len(bad)} {tokenizer.level} symbol(s) outside the model's vocabulary: {shown}"
        )
    ids = tokenizer.encode(prime)
    if not ids:
        raise InputError(f"prime: {prime!r} holds no {tokenizer.level} tokens")
    return ids


def default_prime(tokenizer: Tokenizer) -> str:
    """ "The" when the vocabulary can spell it, else the first real token."""
    if not tokenizer.unknown_symbols("The"):
        return "The"
    return tokenizer.tokens[1] if tokenizer.vocab_size > 1 else ""


def generate_text(
    model: LanguageModel,
    tokenizer: Tokenizer,
    *,
    prime: str | None = None,
    length: int = 300,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    beam: int | None = None,
    seed: int = 0,
) -> str:
    """Prime text followed by ``length`` generated tokens."""
    if not _is_seed(seed):
        raise InputError(f"seed: expected an integer in {SEED_RANGE}, received {seed!r}")
    prime = default_prime(tokenizer) if prime is None else prime
    ids = encode_prime(tokenizer, prime)
    never = (UNKNOWN_ID,)  # the unknown token stands for no text: never generate it
    if beam is not None and beam > 1:
        new = beam_search(model, ids, length, beam, exclude=never).tokens
    else:
        gen = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        new = sample(
            model,
            ids,
            length,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            greedy=greedy or beam == 1,
            generator=gen,
            exclude=never,
        )
    return tokenizer.decode(ids + new)


def option_names() -> list[str]:
    """The names of :class:`LMTrainOptions` fields."""
    return [f.name for f in fields(LMTrainOptions)]
