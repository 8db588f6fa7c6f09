"""Property-based tests (hypothesis) of the trainer's configuration: every drawn
:class:`TrainConfig` either raises an InputError naming one of its invalid fields, or
trains a toy model exactly as configured (steps run, metric lines, evaluations and
checkpoints counted by a brute-force reading of the rules)."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from rnnlab.errors import InputError
from rnnlab.train import StepOutput, TrainConfig, Trainer


def both(fast: int, slow: int, **strategies):
    """The property as two tests: ``fast`` examples (default run), ``slow`` (marked slow)."""

    def deco(fn):
        common = dict(
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        quick = settings(max_examples=fast, derandomize=True, **common)(given(**strategies)(fn))
        many = settings(max_examples=slow, **common)(given(**strategies)(fn))
        return quick, pytest.mark.slow(many)

    return deco


WRONG = st.sampled_from([-1, 2.5, "3", True, float("nan"), None])
COUNT = st.one_of(st.integers(-2, 5), WRONG)
POSITIVE = st.one_of(st.none(), st.sampled_from([0.5, 1.0, 0.0, -1.0, float("nan"), "1", True]))


def _int(v, lo):
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def _num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _invalid(kw) -> set[str]:
    """The fields the documented contract refuses, written out independently."""
    bad = set()
    if kw["steps"] is None and kw["minutes"] is None:
        bad.add("training needs a budget")
    if kw["steps"] is not None and not _int(kw["steps"], 0):
        bad.add("steps")
    if kw["minutes"] is not None and not (_num(kw["minutes"]) and kw["minutes"] > 0):
        bad.add("minutes")
    for name in ("clip_norm", "clip_value"):
        if kw[name] is not None and not (_num(kw[name]) and kw[name] > 0):
            bad.add(name)
    for name, lo in (("eval_every", 0), ("checkpoint_every", 0), ("log_every", 1)):
        if not _int(kw[name], lo):
            bad.add(name)
    if not _int(kw["max_bad_steps"], 1):
        bad.add("max_bad_steps")
    if kw["patience"] is not None and not _int(kw["patience"], 1):
        bad.add("patience")
    return bad


class _Batches:
    def __init__(self):
        self.i = 0

    def __next__(self):
        self.i += 1
        x = torch.randn(4, 2, generator=torch.Generator().manual_seed(self.i))
        return x, x.sum(-1)


def _config(
    tmp_path_factory, steps, minutes, clip_norm, clip_value, eval_every, ckpt, log, bad, pat
):
    kw = dict(
        steps=steps,
        minutes=minutes,
        clip_norm=clip_norm,
        clip_value=clip_value,
        eval_every=eval_every,
        checkpoint_every=ckpt,
        log_every=log,
        max_bad_steps=bad,
        patience=pat,
        progress=False,
    )
    invalid = _invalid(kw)
    if invalid:
        with pytest.raises(InputError) as exc:
            TrainConfig(**kw)
        assert any(str(exc.value).startswith(name) for name in invalid), (invalid, exc.value)
        return
    cfg = TrainConfig(**kw)
    if steps is None:
        return  # a time budget: not run here
    folder = tmp_path_factory.mktemp("cfg")
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    saves = []
    # improves once, then never again (and the final, reported evaluation after fit)
    evals = itertools.chain([1.0, 0.5, 0.7, 0.8, 0.9, 0.95], itertools.repeat(0.99))

    def loss_fn(m, batch, carry):
        x, y = batch
        return StepOutput(((m(x).squeeze(-1) - y) ** 2).mean(), len(x))

    trainer = Trainer(
        model,
        torch.optim.SGD(model.parameters(), lr=0.01),
        _Batches(),
        loss_fn,
        cfg,
        eval_fn=lambda m: next(evals),
        checkpoint=folder / "c.pt",
        metrics=folder / "m.jsonl",
    )
    orig = trainer.save
    trainer.save = lambda *a: saves.append(trainer.step) or orig(*a)
    result = trainer.fit()
    # brute force: walk the steps by the documented rules
    want_evals, want_saves, since, best, stop = [], [], 0, math.inf, steps
    values = iter([1.0, 0.5, 0.7, 0.8, 0.9, 0.95])
    for t in range(1, steps + 1):
        evaluated = bool(eval_every) and t % eval_every == 0
        if evaluated:
            v = next(values)
            want_evals.append(t)
            since, best = (0, v) if v < best else (since + 1, best)
        if (ckpt and t % ckpt == 0) or (evaluated and not ckpt):
            want_saves.append(t)
        if pat is not None and since >= pat:
            stop = t
            break
    records = [json.loads(x) for x in (folder / "m.jsonl").read_text().splitlines()]
    assert result.steps == stop
    assert result.stopped == ("early_stopping" if stop < steps else "steps")
    assert [r["step"] for r in records if "loss" in r] == [
        t for t in range(1, stop + 1) if t % log == 0
    ]
    assert [r["step"] for r in records if "val_loss" in r] == want_evals
    assert saves == [*want_saves, stop]  # and the final checkpoint


test_train_config, test_train_config_slow = both(
    60,
    2000,
    steps=st.one_of(st.none(), st.integers(0, 6), WRONG),
    minutes=st.one_of(st.none(), st.sampled_from([10.0, 0.0, -1.0, float("nan"), "2"])),
    clip_norm=POSITIVE,
    clip_value=POSITIVE,
    eval_every=COUNT,
    ckpt=COUNT,
    log=COUNT,
    bad=COUNT,
    pat=st.one_of(st.none(), COUNT),
)(_config)
