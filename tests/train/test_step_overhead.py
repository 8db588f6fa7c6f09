"""The training loop's cheaper per-step paths give what the general ones give."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch
import torch.nn.functional as F

from rnnlab.optim.clipping import total_norm
from rnnlab.train.loop import StepOutput, TrainConfig, Trainer


def test_total_norm_is_torch_get_total_norm_bit_for_bit():
    rng = random.Random(0)
    dtypes = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
    for _ in range(300):
        shapes = [
            tuple(rng.randint(1, 40) for _ in range(rng.randint(0, 3)))
            for _ in range(rng.randint(1, 5))
        ]
        dtype = rng.choice(dtypes)
        grads = [torch.randn(s, dtype=dtype) * 10 ** rng.uniform(-20, 20) for s in shapes]
        if rng.random() < 0.2:  # mixed dtypes: torch's grouping path
            grads[0] = grads[0].double()
        if rng.random() < 0.1:
            grads[-1].view(-1)[0] = rng.choice([float("nan"), float("inf")])
        ref, got = torch.nn.utils.get_total_norm(grads, 2.0), total_norm(grads)
        assert got.dtype == ref.dtype
        assert torch.equal(got, ref) or (ref.isnan() and got.isnan()), (ref, got)


class _CountingSGD(torch.optim.SGD):
    calls = 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        type(self).calls += 1
        super().zero_grad(set_to_none)


def _linear_run(optimizer_cls, progress=False, steps=7):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = optimizer_cls(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(1)

    class Batches:
        def __next__(self):
            return torch.randn(4, 3, generator=g), torch.randn(4, 2, generator=g)

    losses = []
    trainer = Trainer(
        model,
        opt,
        Batches(),
        lambda m, b, c: StepOutput(F.mse_loss(m(b[0]), b[1]), 4),
        TrainConfig(steps=steps, progress=progress),
        after_step=lambda m, b, loss: losses.append(loss),
    )
    trainer.fit()
    return model, losses


def test_an_optimizers_own_zero_grad_is_called_and_results_are_unchanged():
    _CountingSGD.calls = 0
    a, _ = _linear_run(_CountingSGD)
    assert _CountingSGD.calls == 7  # once per step
    b, _ = _linear_run(torch.optim.SGD)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize("steps", [1, 30])
def test_the_progress_bar_ends_on_the_last_loss(capsys, steps):
    _, losses = _linear_run(torch.optim.SGD, progress=True, steps=steps)
    err = capsys.readouterr().err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert f"loss={losses[-1]:.3f}" in last, last
    assert f"{steps}/{steps}" in last


def _hook_run(tmp_path, name, finite: bool, nan_at=(), **config):
    """A gradients hook (the gradient of a quadratic, written by hand) through the loop."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    g = torch.Generator().manual_seed(1)
    calls = []

    class Batches:
        def __next__(self):
            return torch.randn(4, 3, generator=g)

    def hook(m, x, carry):
        calls.append(1)
        with torch.no_grad():
            m.weight.grad = 2 * (m.weight - x[:2, :])
            m.bias.grad = 2 * m.bias + x[0, :2]
        loss = (m.weight - x[:2, :]).pow(2).sum().detach()
        return StepOutput(loss * math.nan if len(calls) in nan_at else loss, 4)

    hook.finite_gradients = finite
    metrics = tmp_path / f"{name}.jsonl"
    trainer = Trainer(
        model,
        opt,
        Batches(),
        None,
        TrainConfig(steps=12, progress=False, log_every=4, **config),
        gradients=hook,
        metrics=metrics,
    )
    result = trainer.fit()
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    for line in lines:
        line.pop("seconds", None), line.pop("tokens_per_second", None)
    return model, lines, result


@pytest.mark.parametrize(
    "config", [{}, {"clip_norm": 0.5}, {"clip_value": 0.05}], ids=["plain", "norm", "value"]
)
def test_a_hook_with_finite_gradients_trains_and_logs_the_same(tmp_path, config):
    a, log_a, res_a = _hook_run(tmp_path, "a", True, **config)
    b, log_b, res_b = _hook_run(tmp_path, "b", False, **config)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    assert log_a == log_b and [r["step"] for r in log_a] == [4, 8, 12]
    assert all(math.isfinite(r["grad_norm"]) for r in log_a)
    assert res_a.train_loss == res_b.train_loss


def test_a_hook_with_finite_gradients_still_skips_a_non_finite_loss(tmp_path):
    _, log, result = _hook_run(tmp_path, "nan", True, nan_at=(3, 7))
    assert result.skipped_steps == 2
    assert [r["step"] for r in log if "skipped" in r] == [3, 7]
