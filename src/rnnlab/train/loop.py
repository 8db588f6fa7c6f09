"""The one training loop: a model, a batch iterator and a loss function.

:class:`Trainer` runs ``loss_fn(model, batch, carry) -> StepOutput`` on batches drawn from
an iterator, backpropagates, clips (reporting the gradient norm), steps the optimizer and
the learning-rate schedule, and carries ``StepOutput.carry`` (e.g. the recurrent state in
truncated BPTT) detached to the next call. It evaluates, stops early, logs metrics to a
JSONL file, shows a tqdm progress bar, and saves checkpoints that continue the run
exactly (model, optimizer, schedule, data position, carried state, RNG states and the
caller's extra fields, e.g. the vocabulary and configuration).

Any model fits: a recurrent language model (carry = state), a feed-forward NPLM, a task
experiment (carry = None), or a model whose update is not ``loss.backward()``
(``gradients=``: contrastive divergence writes the gradients itself; an optimizer with
``takes_closure = True``, such as Hessian-free, gets ``step(closure)``). The batch
iterator only needs ``__next__`` and, for exact resume, ``state_dict()`` /
``load_state_dict()``.

Budgets: steps, examples (the sum of ``StepOutput.items``: tokens, sequences) and
minutes, whichever ends first. Evaluation every so many steps or examples;
``eval_fn`` returns the validation loss or an :class:`Evaluation` (loss, metrics, and
``done`` when the goal is met); early stopping by ``patience``; ``keep_best`` ends on
the best validated model. Also: ``device`` placement of the model and every batch,
gradient accumulation, autocast (mixed precision), and the process rank under
``torch.distributed`` (only rank 0 prints, logs and writes checkpoints).

Safety: a non-finite loss or gradient is never trained on (the step is skipped, reported,
and the carried state reset); after ``max_bad_steps`` consecutive failures the loop raises
:class:`TrainingDiverged` without writing, so the last good checkpoint stays intact.
SIGINT (Ctrl-C) and SIGTERM finish the current step, save a checkpoint and stop.

Per-step cost: besides the model's own work a step costs tens of microseconds (a few
small models, e.g. an RBM, take little more per step). A plain ``torch.optim.SGD`` is
stepped by :func:`rnnlab.optim.sgd.sgd_step`, the same update bit for bit without torch's
per-call profiling and hook machinery (it defers to ``step()`` when hooks, a subclass, a
profiler or a GPU are involved); ``zero_grad`` sets the gradients to None directly;
the gradient norm (logged, and the non-finite check) is computed every step by one
foreach kernel, except for a ``gradients`` hook that declares ``finite_gradients``
(then only when clipping or logging); the progress bar's numbers are formatted at its
refresh rate.

Example (any model; ``carry`` is None when nothing is carried between batches)::

    def loss_fn(model, batch, carry):
        x, y = batch
        return StepOutput(F.mse_loss(model(x), y), items=len(x))

    trainer = Trainer(model, torch.optim.Adam(model.parameters()), batches, loss_fn,
                      TrainConfig(steps=1000, clip_norm=1.0, eval_every=100),
                      eval_fn=lambda m: float(F.mse_loss(m(x_val), y_val)),
                      checkpoint="runs/x/checkpoint.pt", metrics="runs/x/metrics.jsonl")
    result = trainer.fit()  # TrainResult; trainer.fit() again after raising steps continues
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from rnnlab.errors import InputError
from rnnlab.optim.clipping import clip_gradients
from rnnlab.optim.sgd import sgd_step
from rnnlab.train import distributed
from rnnlab.train.checkpoint import rng_state, save_checkpoint, set_rng_state


class StepOutput(NamedTuple):
    """What a loss function returns for one batch.

    loss: 0-d tensor, the mean loss to minimise (nats per item for a language model); a
        ``gradients`` hook, whose loss is a report only, may give None on the steps where
        :meth:`Trainer.loss_wanted` is False (not measured: nothing logged or averaged).
    items: how many items (tokens) the mean is over (for tokens/s and averages).
    carry: state handed to the next batch (detached by the loop), or None.
    """

    loss: torch.Tensor | None
    items: int
    carry: Any = None
    outputs: Any = None  # the network's outputs before the loss (for curvature methods)


class Evaluation(NamedTuple):
    """What an ``eval_fn`` may return instead of a plain validation loss.

    loss: the validation loss, lower is better (best model, patience, plateau schedule);
        None when there is nothing to compare.
    metrics: more numbers to log (JSON-serialisable).
    done: the goal is met (e.g. a paper's success rule): training stops here.
    """

    loss: float | None
    metrics: dict = {}
    done: bool = False


LossFn = Callable[[nn.Module, Any, Any], StepOutput]
# a step that is not loss.backward(): it writes every parameter's .grad itself (contrastive
# divergence, the Boltzmann learning rule) and returns what to report
GradientsFn = Callable[[nn.Module, Any, Any], StepOutput]
EvalFn = Callable[[nn.Module], "float | Evaluation"]


class TrainingDiverged(RuntimeError):
    """Raised after too many consecutive non-finite losses or gradients."""


@dataclass
class TrainConfig:
    """How long and how carefully to train.

    steps: stop when the step counter reaches this (counted across resumes).
    examples: stop when this many items (``StepOutput.items``) have been trained on.
    minutes: stop after this much wall-clock time in this session.
    clip_norm: clip the global gradient norm to this (None: no norm clipping).
    clip_value: clamp each gradient component to +-this (None: none).
    eval_every: evaluate every this many steps (0: only at the end).
    eval_every_examples: evaluate each time the examples seen cross a multiple of this.
    keep_best: end on the model of the lowest validation loss seen (kept in memory and in
        the checkpoint), unless an evaluation reported ``done``.
    accumulate: batches whose gradients are summed (each loss divided by this) per step.
    autocast: "bfloat16" or "float16" runs the loss function under ``torch.autocast``
        (float16 with a gradient scaler); None: full precision.
    patience: stop after this many evaluations without improvement (None: never).
    max_bad_steps: consecutive non-finite steps tolerated before giving up.
    log_every: steps between metric lines in the JSONL log.
    checkpoint_every: steps between checkpoints (0: at evaluations and at the end).
    progress: show a tqdm progress bar (stderr).
    """

    steps: int | None = None
    examples: int | None = None
    minutes: float | None = None
    clip_norm: float | None = None
    clip_value: float | None = None
    eval_every: int = 0
    patience: int | None = None
    max_bad_steps: int = 5
    log_every: int = 10
    checkpoint_every: int = 0
    progress: bool = True
    eval_every_examples: int = 0
    keep_best: bool = False
    accumulate: int = 1
    autocast: str | None = None

    def __post_init__(self):
        if self.steps is None and self.minutes is None and self.examples is None:
            raise InputError("training needs a budget: steps, examples or minutes")

        def is_int(v) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        def is_number(v) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool)

        if self.steps is not None and not (is_int(self.steps) and self.steps >= 0):
            raise InputError(f"steps: expected an integer >= 0, received {self.steps!r}")
        if self.minutes is not None and not (is_number(self.minutes) and self.minutes > 0):
            raise InputError(f"minutes: expected a positive number, received {self.minutes!r}")
        for name in ("clip_norm", "clip_value"):
            v = getattr(self, name)
            if v is not None and not (is_number(v) and v > 0):
                raise InputError(f"{name}: expected a positive number or None, received {v!r}")
        # (name, minimum): 0 means "only at evaluations / the end" for the two *_every
        if self.examples is not None and not (is_int(self.examples) and self.examples >= 1):
            raise InputError(f"examples: expected an integer >= 1, received {self.examples!r}")
        if self.autocast not in (None, "bfloat16", "float16"):
            raise InputError(
                f"autocast: expected None, 'bfloat16' or 'float16', received {self.autocast!r}"
            )
        if not isinstance(self.keep_best, bool):
            raise InputError(f"keep_best: expected True or False, received {self.keep_best!r}")
        for name, low in (
            ("eval_every", 0),
            ("eval_every_examples", 0),
            ("accumulate", 1),
            ("checkpoint_every", 0),
            ("log_every", 1),
            ("max_bad_steps", 1),
        ):
            v = getattr(self, name)
            if not (is_int(v) and v >= low):
                raise InputError(f"{name}: expected an integer >= {low}, received {v!r}")
        if self.patience is not None and not (is_int(self.patience) and self.patience >= 1):
            raise InputError(
                f"patience: expected an integer >= 1 (evaluations) or None, "
                f"received {self.patience!r}"
            )
        if not isinstance(self.progress, bool):
            raise InputError(f"progress: expected True or False, received {self.progress!r}")


@dataclass
class TrainResult:
    """Summary of a :meth:`Trainer.fit` call (losses in nats per item)."""

    steps: int
    train_loss: float
    val_loss: float | None
    best_val_loss: float | None
    tokens_per_second: float
    seconds: float
    stopped: str  # "steps", "examples", "time", "done", "early_stopping", "interrupted"
    skipped_steps: int
    checkpoint: str | None


class _LossModule(nn.Module):
    """``loss_fn(model, batch, carry)`` as a module's forward, for DistributedDataParallel."""

    def __init__(self, model: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch: Any, carry: Any) -> StepOutput:
        return self.loss_fn(self.model, batch, carry)


def _add_grads(previous: dict, model: nn.Module, n: int) -> dict:
    """After a ``gradients`` hook wrote this batch's ``.grad``: divide it by ``n`` and add
    the running sum of the batches before it (``previous``); returns the new sums."""
    out = {}
    for p in model.parameters():
        g = p.grad
        if g is not None:
            g.div_(n)
            if previous.get(p) is not None:
                g.add_(previous[p])
        out[p] = g
    return out


def detach_carry(carry: Any) -> Any:
    """The same nested structure with every tensor detached (truncated BPTT)."""
    if isinstance(carry, torch.Tensor):
        return carry.detach()
    if isinstance(carry, (tuple, list)):
        return type(carry)(detach_carry(c) for c in carry)
    return carry


def to_device(batch: Any, device: torch.device) -> Any:
    """The same batch (tensors, tuples, named tuples, lists, dicts) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(b, device) for b in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


class Trainer:
    """Train ``model`` by ``loss_fn`` on ``batches`` (see the module docstring).

    Args:
        model: the module to train.
        optimizer: a torch optimizer over ``model``'s parameters.
        batches: an endless iterator of batches (``state_dict``/``load_state_dict``
            optional: without them a resumed run does not continue at the same data).
        loss_fn: ``loss_fn(model, batch, carry) -> StepOutput``; the loop backpropagates
            its loss. None when ``gradients`` is given.
        gradients: for updates that are not ``loss.backward()`` (contrastive divergence,
            the Boltzmann machine's learning rule): ``gradients(model, batch, carry) ->
            StepOutput`` writes each parameter's ``.grad`` (the direction to descend, i.e.
            minus the log-likelihood gradient estimate) and returns the loss to report
            (e.g. reconstruction error). The loop zeroes the gradients before the call,
            then clips, checks them for non-finite values, steps the optimizer and the
            schedule exactly as for ``loss_fn``. A hook whose gradients are finite
            whenever its loss is (an RBM's under PCD: means of values in [0, 1]) may say
            so with an attribute ``finite_gradients = True``: the loop then computes the
            gradient norm only where it is used (clipping, the steps it logs) and relies
            on the loss check alone on the other steps. A hook whose loss costs work of its
            own may compute it only where :meth:`loss_wanted` says it is used and return
            ``StepOutput(None, ...)`` elsewhere; such a step is taken unchecked unless the
            gradient norm is computed (declare ``finite_gradients`` only if that is safe).
        config: :class:`TrainConfig`.
        schedule: a ``torch.optim.lr_scheduler`` (ReduceLROnPlateau is stepped with the
            validation loss, every other schedule once per step), or None.
        eval_fn: ``eval_fn(model) -> mean validation loss`` or an :class:`Evaluation`
            (run in eval mode, no grad).
        checkpoint: path of the checkpoint file to write (None: never write).
        metrics: path of the JSONL metrics log (appended), or None.
        kind: the checkpoint's model kind (e.g. "lm").
        extra: more fields for the checkpoint (configuration, vocabulary, ...).
        device: move the model there, and every batch before ``loss_fn`` (None: leave
            both where they are).
        loss_unit: (name, factor) the progress bar and messages show losses in, e.g.
            ("bits/char", 1 / ln 2); the log and the result stay in the loss's own unit.
        after_step: ``after_step(model, batch, loss)`` after every update that was taken
            (an observer: a stopping rule that watches the training batches, a plot); loss
            is NaN where a ``gradients`` hook did not measure it.
        shard_batches: under torch.distributed (:mod:`rnnlab.train.distributed`), give
            each rank its slice of every batch along dimension 0, so that the global batch
            is the one-process batch; False when the iterator already yields this rank's
            share. The model is wrapped in DistributedDataParallel for ``loss_fn`` (a
            ``gradients`` hook gets the plain model; its gradients are averaged).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches: Iterator,
        loss_fn: LossFn | None,
        config: TrainConfig,
        *,
        gradients: GradientsFn | None = None,
        schedule: Any = None,
        eval_fn: EvalFn | None = None,
        checkpoint: str | Path | None = None,
        metrics: str | Path | None = None,
        kind: str = "model",
        extra: dict | None = None,
        device: str | torch.device | None = None,
        loss_unit: tuple[str, float] = ("loss", 1.0),
        after_step: Callable[[nn.Module, Any, float], None] | None = None,
        shard_batches: bool = True,
    ):
        self.device = None if device is None else torch.device(device)
        if self.device is not None:
            model.to(self.device)
        self.model = model
        self._params = list(model.parameters())  # listed again at each fit()
        self.optimizer = optimizer
        self.batches = batches
        if (loss_fn is None) == (gradients is None):
            raise InputError("Trainer: expected exactly one of loss_fn and gradients")
        self.loss_fn = loss_fn
        self.gradients = gradients
        self.config = config
        self.schedule = schedule
        self.eval_fn = eval_fn
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.metrics = Path(metrics) if metrics is not None else None
        self.kind = kind
        self.extra = dict(extra or {})
        self.step = 0
        self.items = 0
        self.carry: Any = None
        self.best_val: float | None = None
        self.evals_since_best = 0
        self.skipped = 0
        self.best_state: dict | None = None  # keep_best: the best validated parameters
        self.history: list[dict] = []  # one record per evaluation
        self.last_evaluation: Evaluation | None = None
        self.loss_unit = loss_unit
        self.after_step = after_step
        self.rank, self.world_size = distributed.world()
        self.shard_batches = bool(shard_batches)
        # each rank trains on 1/world_size of every batch: items count the global batch
        self._share = self.world_size if self.shard_batches else 1
        # in a process group, loss_fn runs inside DistributedDataParallel's forward (so any
        # loss_fn, one calling model.loss(...) too, has its gradients all-reduced) and still
        # receives the plain model
        self._ddp: nn.parallel.DistributedDataParallel | None = None
        if self.world_size > 1 and loss_fn is not None:
            ids = (
                [self.device.index]
                if self.device is not None and self.device.type == "cuda"
                else None
            )
            self._ddp = nn.parallel.DistributedDataParallel(
                _LossModule(model, loss_fn), device_ids=ids
            )
        self._stop_signal: str | None = None
        self._scaler = None
        if config.autocast == "float16":
            self._scaler = torch.amp.GradScaler(self._device_type(), init_scale=2.0**10)

    # ----------------------------------------------------------------- state
    def state_dict(self) -> dict:
        """Everything needed to continue exactly (plus ``extra``)."""
        data = self.batches.state_dict() if hasattr(self.batches, "state_dict") else None
        return {
            **self.extra,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            # a gradients hook with state of its own (a GAN's discriminator optimizer)
            "gradients": self.gradients.state_dict()
            if hasattr(self.gradients, "state_dict")
            else None,
            "data": data,
            "carry": self.carry,
            "best_model": self.best_state,
            "rng": rng_state(),
            # under torch.distributed: every rank's RNG and carried state (rank order)
            "world_size": self.world_size,
            "ranks": distributed.gather({"rng": rng_state(), "carry": self.carry})
            if self.world_size > 1
            else None,
            "trainer": {
                "step": self.step,
                "items": self.items,
                "best_val": self.best_val,
                "evals_since_best": self.evals_since_best,
                "skipped": self.skipped,
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from :meth:`state_dict` output (e.g. a loaded checkpoint)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None and state.get("schedule") is not None:
            self.schedule.load_state_dict(state["schedule"])
        if hasattr(self.gradients, "load_state_dict") and state.get("gradients") is not None:
            self.gradients.load_state_dict(state["gradients"])
        if state.get("data") is not None and hasattr(self.batches, "load_state_dict"):
            self.batches.load_state_dict(state["data"])
        saved_world = int(state.get("world_size") or 1)
        if saved_world != self.world_size:
            raise InputError(
                f"resume: the checkpoint was written by {saved_world} process(es) and this run "
                f"has {self.world_size}; resume with the same number of processes"
            )
        self.carry = state.get("carry")
        if state.get("ranks"):
            self.carry = state["ranks"][self.rank]["carry"]
        self.best_state = state.get("best_model")
        t = state["trainer"]
        self.step, self.items = int(t["step"]), int(t["items"])
        self.best_val, self.evals_since_best = t["best_val"], int(t["evals_since_best"])
        self.skipped = int(t["skipped"])
        if state.get("ranks"):
            set_rng_state(state["ranks"][self.rank]["rng"])
        elif state.get("rng") is not None:
            set_rng_state(state["rng"])

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write a checkpoint atomically (to ``path`` or the configured file)."""
        path = Path(path) if path is not None else self.checkpoint
        if path is None:
            return None
        state = self.state_dict()  # on every rank: it gathers their RNG and carried states
        return save_checkpoint(path, self.kind, state) if self.rank == 0 else path

    # ------------------------------------------------------------- helpers
    def _log(self, record: dict) -> None:
        if self.metrics is not None and self.rank == 0:
            self.metrics.parent.mkdir(parents=True, exist_ok=True)
            with open(self.metrics, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def _device_type(self) -> str:
        if self.device is not None:
            return self.device.type
        p = next(iter(self.model.parameters()), None)
        return "cpu" if p is None else p.device.type

    def evaluate(self) -> float | None:
        """Run ``eval_fn`` (eval mode, no gradients); return the validation loss and keep
        the whole :class:`Evaluation` in ``last_evaluation``."""
        if self.eval_fn is None:
            return None
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                ev = self.eval_fn(self.model)
        finally:
            self.model.train(was_training)
        if not isinstance(ev, Evaluation):
            ev = Evaluation(float(ev))
        elif ev.loss is not None:
            ev = ev._replace(loss=float(ev.loss))
        self.last_evaluation = ev
        return ev.loss

    def _show(self, loss: float) -> str:
        name, factor = self.loss_unit
        return f"{loss * factor:.4f} {name}" if name != "loss" else f"{loss:.4f}"

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._stop_signal is not None and signum == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C: stop now
            self._stop_signal = signal.Signals(signum).name

        return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

    def _forward(self, batch: Any) -> StepOutput:
        """The loss function (or gradients hook) on one batch, on the device, autocast."""
        if self.world_size > 1 and self.shard_batches:
            batch = distributed.shard(batch, self.rank, self.world_size)
        if self.device is not None:
            batch = to_device(batch, self.device)
        if self._ddp is not None and self.gradients is None:
            fn = lambda model, batch, carry: self._ddp(batch, carry)  # noqa: E731
        else:
            fn = self.gradients or self.loss_fn
        if self.config.autocast is None:
            return fn(self.model, batch, self.carry)
        dtype = getattr(torch, self.config.autocast)
        with torch.autocast(self._device_type(), dtype=dtype):
            return fn(self.model, batch, self.carry)

    def _train_step(self, batches: list) -> tuple[float | None, float | None]:
        """One step over ``batches`` (``accumulate`` of them); returns (loss, grad norm),
        or (None, None) / (None, norm) when skipped as non-finite."""
        cfg = self.config
        self._zero_grad()
        if getattr(self.optimizer, "takes_closure", False):
            return self._closure_step(batches[0])
        losses, self.last_items, n = [], 0, len(batches)
        accumulated: dict = {}  # a gradients hook's running sums over the batches
        for i, batch in enumerate(batches):
            if self.gradients is not None and i > 0:  # the hook writes .grad afresh
                for p in self._params:
                    p.grad = None
            # DDP all-reduces in the backward of a forward run outside no_sync: the last batch
            sync = i == n - 1 or self._ddp is None or self.gradients is not None
            with contextlib.nullcontext() if sync else self._ddp.no_sync():
                out = self._forward(batch)
                loss = out.loss
                self.last_items += int(out.items) * self._share
                if loss is None and self.gradients is not None:
                    value = None  # not measured this step (see StepOutput)
                else:
                    # every rank takes or skips the step together: one NaN skips it for all
                    value = float(loss.detach())  # one synchronisation: check and report
                    if self._any_rank(not math.isfinite(value)):
                        return self._skip(None)
                if self.gradients is None:
                    scaled = loss / n if n > 1 else loss
                    scaled = self._scaler.scale(scaled) if self._scaler else scaled
                    scaled.backward()
            if self.gradients is not None:  # the hook wrote this batch's gradient: average
                if n > 1:
                    accumulated = _add_grads(accumulated, self.model, n)
            self.carry = detach_carry(out.carry)
            losses.append(value)
        if self.gradients is not None and self.world_size > 1:
            distributed.average_gradients(self._params)
        if self._scaler is not None:
            self._scaler.unscale_(self.optimizer)
        if (
            cfg.clip_norm is None
            and cfg.clip_value is None
            and self._scaler is None
            and getattr(self.gradients, "finite_gradients", False)
            and (self.step + 1) % cfg.log_every
        ):
            norm = math.nan  # not needed: not clipped, not logged, finite by the hook's word
        else:
            # the norm is reported, and a non-finite one skips the step (a gradient with
            # inf or NaN, or one whose norm overflows its dtype)
            norm = float(clip_gradients(self._params, cfg.clip_norm, cfg.clip_value))
            if not math.isfinite(norm):
                if self._scaler is not None:
                    self._scaler.update()  # a lower scale next time
                return self._skip(norm)
        if self._scaler is not None:
            self._scaler.step(self.optimizer)
            self._scaler.update()
        elif type(self.optimizer) is torch.optim.SGD:
            sgd_step(self.optimizer)  # the same update, without torch's per-call machinery
        else:
            self.optimizer.step()
        self._schedule_step()
        measured = [x for x in losses if x is not None]
        return (sum(measured) / len(measured) if measured else math.nan), norm

    def loss_wanted(self) -> bool:
        """Whether the coming step's loss is used: the step is logged (every ``log_every``)
        or is the last of a run of ``steps`` (see ``StepOutput`` for hooks that skip it)."""
        cfg, coming = self.config, self.step + 1
        return coming % cfg.log_every == 0 or (cfg.steps is not None and coming >= cfg.steps)

    def _closure_step(self, batch: Any) -> tuple[float | None, float | None]:
        """``optimizer.step(closure)``: the closure recomputes the loss and the outputs,
        ``(loss, outputs)``, as often as the optimizer needs (Hessian-free)."""
        last: list[StepOutput] = []

        def closure():
            out = self._forward(batch)
            last[:] = [out]
            return out.loss, out.outputs

        self.optimizer.step(closure)
        out = last[-1]
        self.last_items = int(out.items) * self._share
        loss = float(out.loss.detach())
        if not math.isfinite(loss):
            return self._skip(None)
        self._schedule_step()
        self.carry = detach_carry(out.carry)
        return loss, math.nan

    def _skip(self, norm: float | None) -> tuple[None, float | None]:
        """A non-finite step: no gradient kept, the carried state reset."""
        self._zero_grad()
        self.carry = None
        return None, norm

    def _zero_grad(self) -> None:
        """``optimizer.zero_grad(set_to_none=True)``: every optimized parameter's ``.grad``
        set to None; done here directly (the same effect, without torch's per-call profiler
        annotation) unless the optimizer defines its own ``zero_grad``."""
        opt = self.optimizer
        if type(opt).zero_grad is not torch.optim.Optimizer.zero_grad or "zero_grad" in vars(opt):
            opt.zero_grad(set_to_none=True)
            return
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = None

    def _any_rank(self, flag: bool) -> bool:
        """``flag`` on any rank (an all-reduce only in a process group)."""
        return bool(flag) if self.world_size == 1 else distributed.any_true(flag)

    def _schedule_step(self) -> None:
        if self.schedule is not None and not isinstance(
            self.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau
        ):
            self.schedule.step()

    def _say(self, bar, message: str) -> None:
        if self.rank == 0:
            bar.write(message, file=sys.stderr)

    def _record(self, since_eval: list[float], final: bool = False) -> dict:
        """Log the evaluation just made, with the mean training loss since the last one."""
        ev = self.last_evaluation
        record = {
            "step": self.step,
            "items": self.items,
            "train_loss": sum(since_eval) / len(since_eval) if since_eval else math.nan,
            "final_val_loss" if final else "val_loss": ev.loss,
            **ev.metrics,
        }
        self.history.append(record)
        self._log(record)
        return record

    def _evaluate_now(self, since_eval: list[float], bar) -> float | None:
        """An evaluation during training: log it, step a plateau schedule, track the best."""
        val = self.evaluate()
        self._record(since_eval)
        if val is not None:
            if self.config.progress:
                self._say(bar, f"step {self.step}: validation {self._show(val)}")
            if isinstance(self.schedule, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.schedule.step(val)
            if self.best_val is None or val < self.best_val:
                self.best_val, self.evals_since_best = val, 0
                if self.config.keep_best:
                    self.best_state = {
                        k: v.detach().clone() for k, v in self.model.state_dict().items()
                    }
            else:
                self.evals_since_best += 1
        return val

    def _unhealthy(self, bad_run: int, val: float | None) -> str | None:
        """Why the current state must not be saved as a good checkpoint, or None."""
        if bad_run:
            return f"{bad_run} consecutive step(s) skipped as non-finite"
        if val is not None and not math.isfinite(val):
            return f"validation loss {val}"
        if not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            return "non-finite parameters"
        return None

    # ----------------------------------------------------------------- fit
    def fit(self) -> TrainResult:
        """Train until a budget (steps, examples, time) is spent, an evaluation says
        ``done``, early stopping, or a signal."""
        from tqdm.auto import tqdm

        cfg = self.config
        budget_s = cfg.minutes * 60.0 if cfg.minutes is not None else math.inf
        start = time.perf_counter()
        train_seconds = 0.0
        session_items = 0
        recent: deque[float] = deque(maxlen=20)
        bad_run = 0
        stopped = "steps"
        val = None
        since_eval: list[float] = []  # training losses since the last evaluation
        last_ckpt = str(self.checkpoint) if self.checkpoint and self.checkpoint.exists() else None
        show = cfg.progress and self.rank == 0
        if cfg.steps is not None:
            bar = tqdm(
                total=cfg.steps,
                initial=self.step,
                disable=not show,
                unit="step",
                file=sys.stderr,
                dynamic_ncols=True,
            )
        else:
            bar = tqdm(
                total=round(budget_s) if math.isfinite(budget_s) else None,
                disable=not show,
                unit="s",
                file=sys.stderr,
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s [{elapsed}{postfix}]",
            )
        old_handlers = self._install_signals()
        self._stop_signal = None
        self.model.train()
        self._params = list(self.model.parameters())  # walked every step: listed once
        name, factor = self.loss_unit
        postfix_at = -math.inf  # the progress bar's numbers change at its refresh rate
        tps = 0.0
        try:
            while True:
                if cfg.steps is not None and self.step >= cfg.steps:
                    stopped = "steps"
                    break
                if cfg.examples is not None and self.items >= cfg.examples:
                    stopped = "examples"
                    break
                if self._any_rank(time.perf_counter() - start >= budget_s):
                    stopped = "time"
                    break
                t0 = time.perf_counter()
                items_before = self.items
                drawn = [next(self.batches) for _ in range(cfg.accumulate)]
                loss, norm = self._train_step(drawn)
                dt = time.perf_counter() - t0
                train_seconds += dt
                self.step += 1
                if loss is None:
                    self.skipped += 1
                    bad_run += 1
                    what = "loss" if norm is None else "gradient norm"
                    msg = f"step {self.step}: non-finite {what}; step skipped"
                    self._say(bar, f"warning: {msg}")
                    self._log({"step": self.step, "skipped": msg})
                    if bad_run >= cfg.max_bad_steps:
                        where = (
                            f"; last good checkpoint: {last_ckpt}"
                            if last_ckpt
                            else "; no checkpoint of a healthy state was written"
                        )
                        raise TrainingDiverged(
                            f"training stopped: {bad_run} consecutive steps with a non-finite "
                            f"loss or gradient (try a lower --lr or --clip){where}"
                        )
                else:
                    self.items += self.last_items
                    session_items += self.last_items
                    if not math.isnan(loss):  # NaN: taken, its loss not measured
                        bad_run = 0  # a run of bad steps ends at a measured good one
                        recent.append(loss)
                        since_eval.append(loss)
                    if self.after_step is not None:
                        self.after_step(self.model, drawn[-1], loss)
                tps = session_items / train_seconds if train_seconds > 0 else 0.0
                if show:
                    if cfg.steps is not None:
                        bar.update(1)
                    elif math.isfinite(budget_s):
                        bar.n = min(time.perf_counter() - start, budget_s)
                    if recent and t0 >= postfix_at:
                        postfix_at = t0 + bar.mininterval
                        bar.set_postfix(
                            {name: f"{recent[-1] * factor:.3f}", "items/s": f"{tps:,.0f}"},
                            refresh=False,
                        )
                if loss is not None and self.step % cfg.log_every == 0:
                    self._log(
                        {
                            "step": self.step,
                            "loss": None if math.isnan(loss) else loss,
                            "grad_norm": norm,
                            "lr": self.optimizer.param_groups[0]["lr"],
                            "tokens_per_second": tps,
                            "seconds": time.perf_counter() - start,
                        }
                    )
                E = cfg.eval_every_examples
                evaluated = bool(self.eval_fn) and bool(
                    (cfg.eval_every and self.step % cfg.eval_every == 0)
                    or (E and items_before // E != self.items // E)
                )
                if evaluated:
                    val = self._evaluate_now(since_eval, bar)
                    since_eval = []
                    if self.last_evaluation.done:
                        stopped = "done"
                want_ckpt = (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0) or (
                    evaluated and not cfg.checkpoint_every
                )
                if want_ckpt and self.checkpoint is not None:
                    # only a healthy state is saved (and may be called good): never one
                    # inside a streak of skipped steps, with non-finite parameters or a
                    # non-finite validation loss at this step
                    sick = self._unhealthy(bad_run, val if evaluated else None)
                    if sick is None:
                        last_ckpt = str(self.save())
                    else:
                        self._say(bar, f"warning: step {self.step}: no checkpoint written ({sick})")
                if stopped == "done":
                    break
                if self._any_rank(self._stop_signal is not None):
                    self._stop_signal = self._stop_signal or "a signal to another process"
                    stopped = "interrupted"
                    self._say(bar, f"{self._stop_signal}: saving a checkpoint and stopping")
                    break
                if cfg.patience is not None and self.evals_since_best >= cfg.patience:
                    stopped = "early_stopping"
                    break
        finally:
            if show and recent:  # the last numbers, in the bar's final line
                bar.set_postfix(
                    {name: f"{recent[-1] * factor:.3f}", "items/s": f"{tps:,.0f}"}, refresh=False
                )
            bar.close()
            for sig, old in old_handlers.items():
                signal.signal(sig, old)
        if self.checkpoint is not None:
            sick = self._unhealthy(bad_run, None)
            if sick is None:
                last_ckpt = str(self.save())
            else:
                kept = f"; the last good one is {last_ckpt}" if last_ckpt else ""
                print(f"warning: final checkpoint not written ({sick}){kept}", file=sys.stderr)
        if stopped != "done" and self.eval_fn is not None:
            # the stopping step's figure (also after an interrupt: the state just saved);
            # reported only: never feeds the schedule or the best model (exact resume)
            val = self.evaluate()
            self._record(since_eval, final=True)
        ev = self.last_evaluation
        if cfg.keep_best and self.best_state is not None and not (ev is not None and ev.done):
            self.model.load_state_dict(self.best_state)
        return TrainResult(
            steps=self.step,
            train_loss=distributed.mean(sum(recent) / len(recent) if recent else math.nan),
            val_loss=val,
            best_val_loss=self.best_val,
            tokens_per_second=session_items / train_seconds if train_seconds > 0 else 0.0,
            seconds=time.perf_counter() - start,
            stopped=stopped,
            skipped_steps=self.skipped,
            checkpoint=last_ckpt,
        )
