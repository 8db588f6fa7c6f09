"""The one training loop's budgets, evaluations, best model, accumulation, autocast,
closure optimizers and devices, each against a hand computation or a second run."""

import json
import math

import pytest
import torch
from torch import nn

from rnnlab.train import StepOutput, TrainConfig, Trainer
from rnnlab.train.loop import Evaluation

DT = torch.float64


def _data(n=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 3, generator=g, dtype=DT), torch.randn(4, 2, generator=g, dtype=DT))
            for _ in range(n)]  # fmt: skip


def _batches(data):
    i = 0
    while True:
        yield data[i % len(data)]
        i += 1


def _model():
    torch.manual_seed(0)
    return nn.Linear(3, 2, dtype=DT)


def mse(model, batch, carry):
    x, y = batch
    return StepOutput(((model(x) - y) ** 2).mean(), items=len(x))


def _fit(config, data=None, **kw):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, opt, _batches(data or _data()), kw.pop("loss_fn", mse), config, **kw)
    return model, trainer, trainer.fit()


def test_an_examples_budget_counts_items():
    _, trainer, result = _fit(TrainConfig(examples=30, progress=False))
    assert result.stopped == "examples" and trainer.items == 32 and trainer.step == 8


def test_evaluation_every_n_examples_and_done_stops_the_run():
    calls = []

    def eval_fn(m):
        calls.append(trainer_ref[0].items)
        return Evaluation(loss=None, metrics={"n": len(calls)}, done=len(calls) == 3)

    trainer_ref = []
    model = _model()
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), _batches(_data()), mse,
                      TrainConfig(steps=100, eval_every_examples=10, progress=False),
                      eval_fn=eval_fn)  # fmt: skip
    trainer_ref.append(trainer)
    result = trainer.fit()
    # items 4, 8, 12 (crosses 10), 16, 20 (crosses 20), 24, 28, 32 (crosses 30): done
    assert calls == [12, 20, 32] and result.stopped == "done" and trainer.step == 8
    assert [h["n"] for h in trainer.history] == [1, 2, 3]


def test_keep_best_ends_on_the_best_validated_model():
    val = _data(1, seed=5)[0]
    snapshots = []

    def eval_fn(m):
        snapshots.append({k: v.clone() for k, v in m.state_dict().items()})
        x, y = val
        return float(((m(x) - y) ** 2).mean())

    model, trainer, result = _fit(
        TrainConfig(steps=40, eval_every=4, keep_best=True, progress=False), eval_fn=eval_fn,
    )  # fmt: skip
    losses = [h.get("val_loss", h.get("final_val_loss")) for h in trainer.history][:-1]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert result.best_val_loss == losses[best]
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[best][k])


def test_accumulation_equals_one_step_on_the_concatenated_batch():
    data = _data()
    merged = [
        (torch.cat([a[0], b[0]]), torch.cat([a[1], b[1]])) for a, b in zip(data[::2], data[1::2])
    ]
    m1, _, _ = _fit(TrainConfig(steps=5, accumulate=2, progress=False), data)
    m2, _, _ = _fit(TrainConfig(steps=5, progress=False), merged)
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_a_gradients_hook_accumulates_like_backprop():
    def gradients(model, batch, carry):
        x, y = batch
        with torch.no_grad():
            r = (model(x) - y) * (2 / y.numel())  # d mean((Wx + b - y)^2)
            model.weight.grad, model.bias.grad = r.t() @ x, r.sum(0)
        return StepOutput(((model(x) - y) ** 2).mean().detach(), items=len(x))

    cfg = TrainConfig(steps=5, accumulate=3, progress=False)
    m1, _, _ = _fit(cfg, loss_fn=None, gradients=gradients)
    m2, _, _ = _fit(cfg)
    for a, b in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_a_gradients_hook_may_measure_its_loss_only_where_it_is_used(tmp_path):
    """A hook that returns loss None where ``loss_wanted()`` is False: the same updates,
    the loss logged at every ``log_every`` step and averaged over the measured steps."""
    wanted, measured = [], []

    def gradients(model, batch, carry):
        x, y = batch
        with torch.no_grad():
            r = (model(x) - y) * (2 / y.numel())
            model.weight.grad, model.bias.grad = r.t() @ x, r.sum(0)
            loss = ((model(x) - y) ** 2).mean()
        wanted.append(trainer.loss_wanted())
        if wanted[-1]:
            measured.append(float(loss))
        return StepOutput(loss if wanted[-1] else None, items=len(x))

    cfg = TrainConfig(steps=10, log_every=4, progress=False)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    log = tmp_path / "m.jsonl"
    trainer = Trainer(model, opt, _batches(_data()), None, cfg, gradients=gradients, metrics=log)
    result = trainer.fit()
    assert wanted == [k in (4, 8, 10) for k in range(1, 11)]  # logged steps and the last
    assert result.skipped_steps == 0 and result.train_loss == pytest.approx(sum(measured) / 3)
    lines = [json.loads(x) for x in log.read_text().splitlines() if '"loss"' in x]
    assert [(x["step"], x["loss"]) for x in lines] == [(4, measured[0]), (8, measured[1])]
    m2, _, _ = _fit(cfg)  # the same updates as backprop, measured every step
    for a, b in zip(model.parameters(), m2.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_a_closure_optimizer_gets_the_loss_and_the_outputs():
    class LineSearch(torch.optim.Optimizer):
        """Takes a step only if the closure's loss falls (two closure calls a step)."""

        takes_closure = True

        def __init__(self, params):
            super().__init__(params, {"lr": 0.1})

        def step(self, closure):
            with torch.enable_grad():
                loss, outputs = closure()
                assert outputs.shape == (4, 2)
                params = [p for g in self.param_groups for p in g["params"]]
                grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for p, g in zip(params, grads):
                    p.sub_(0.1 * g)
                if closure()[0] > loss:
                    for p, g in zip(params, grads):
                        p.add_(0.1 * g)
            return loss

    def loss_fn(model, batch, carry):
        x, y = batch
        out = model(x)
        return StepOutput(((out - y) ** 2).mean(), items=len(x), outputs=out)

    model = _model()
    trainer = Trainer(model, LineSearch(model.parameters()), _batches(_data()), loss_fn,
                      TrainConfig(steps=6, progress=False))  # fmt: skip
    first = float(mse(model, _data()[0], None).loss.detach())
    result = trainer.fit()
    assert result.steps == 6 and math.isfinite(result.train_loss)
    assert float(mse(model, _data()[0], None).loss.detach()) < first


def test_device_and_bfloat16_autocast_train():
    model = nn.Linear(3, 2)
    data = [(x.float(), y.float()) for x, y in _data()]
    cfg = TrainConfig(steps=20, autocast="bfloat16", progress=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, opt, _batches(data), mse, cfg, device="cpu")
    before = float(mse(model, data[0], None).loss.detach())
    trainer.fit()
    assert float(mse(model, data[0], None).loss.detach()) < before
    with pytest.raises(ValueError, match="autocast: expected"):
        TrainConfig(steps=1, autocast="fp8")


def test_bf16_mixed_precision_trains_a_language_model_to_the_fp32_loss(tmp_path):
    from rnnlab.train import LMTrainOptions, train_lm

    corpus = tmp_path / "t.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    base = dict(data=str(corpus), hidden=32, layers=1, batch=8, seq_len=20, eval_every=0)
    vals = {}
    for precision in ("fp32", "bf16"):
        opts = LMTrainOptions(**base, precision=precision)
        record, _ = train_lm(opts, steps=30, out=tmp_path / precision, progress=False)
        vals[precision] = record["val_bits_per_char"]
    assert abs(vals["bf16"] - vals["fp32"]) < 0.02, vals
    with pytest.raises(ValueError, match="^precision: fp16 needs a CUDA device"):
        train_lm(LMTrainOptions(**base, precision="fp16"), steps=1, out=tmp_path / "h")
    with pytest.raises(ValueError, match="^precision: expected one of"):
        LMTrainOptions(precision="fp8")
