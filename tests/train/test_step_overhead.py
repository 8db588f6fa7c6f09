"""The training loop's cheaper per-step paths give what the general ones give."""

from __future__ import annotations

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
