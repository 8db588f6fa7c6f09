import math
import os
import signal

import pytest
import torch
from torch import nn

from rnnlab.optim import clip_gradients, make_optimizer
from rnnlab.train import (
    LMTrainOptions,
    StepOutput,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    load_checkpoint,
    save_checkpoint,
    train_lm,
)
from rnnlab.train import checkpoint as ckpt_mod

TEXT = "the quick brown fox jumps over the lazy dog. " * 60


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT, encoding="utf-8")
    return str(p)


def _opts(corpus, **kw):
    base = dict(
        data=corpus,
        hidden=16,
        layers=2,
        embedding=8,
        seq_len=10,
        batch=4,
        eval_every=3,
        schedule="plateau",
        dropout=0.1,
        seed=3,
    )
    base.update(kw)
    return LMTrainOptions(**base)


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("optimizer", ["adam", "nesterov"])
def test_resume_is_bit_exact(tmp_path, corpus, optimizer):
    # dropout > 0 so that the restored RNG state matters too
    opts = _opts(corpus, optimizer=optimizer, lr=0.01 if optimizer == "adam" else 0.3)
    _, straight = train_lm(opts, steps=8, out=tmp_path / "straight", progress=False)
    rec1, _ = train_lm(opts, steps=4, out=tmp_path / "split", progress=False)
    rec2, resumed = train_lm(None, steps=8, resume=rec1["checkpoint"], progress=False)
    assert rec2["steps"] == 8 and rec2["checkpoint"] == rec1["checkpoint"]
    assert _equal_states(straight.model.state_dict(), resumed.model.state_dict())
    s_opt, r_opt = straight.optimizer.state_dict(), resumed.optimizer.state_dict()
    for k in s_opt["state"]:
        assert _equal_states(s_opt["state"][k], r_opt["state"][k])
    assert torch.equal(straight.carry[0], resumed.carry[0])
    assert straight.batches.state_dict() == resumed.batches.state_dict()


def test_seeded_runs_are_reproducible(tmp_path, corpus):
    _, a = train_lm(_opts(corpus), steps=3, out=tmp_path / "a", progress=False)
    _, b = train_lm(_opts(corpus), steps=3, out=tmp_path / "b", progress=False)
    _, c = train_lm(_opts(corpus, seed=4), steps=3, out=tmp_path / "c", progress=False)
    assert _equal_states(a.model.state_dict(), b.model.state_dict())
    assert not _equal_states(a.model.state_dict(), c.model.state_dict())


def test_out_with_checkpoint_is_never_overwritten(tmp_path, corpus):
    rec, _ = train_lm(_opts(corpus), steps=2, out=tmp_path / "r", progress=False)
    before = open(rec["checkpoint"], "rb").read()
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        train_lm(_opts(corpus), steps=2, out=tmp_path / "r", progress=False)
    assert open(rec["checkpoint"], "rb").read() == before


def test_resume_refuses_changed_architecture(tmp_path, corpus):
    rec, _ = train_lm(_opts(corpus), steps=2, out=tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="^hidden: the checkpoint was trained with 16"):
        train_lm(None, steps=4, resume=rec["checkpoint"], overrides={"hidden": 32}, progress=False)


# ---------------------------------------------------------------- generic Trainer
class _Batches:
    def __init__(self):
        self.i = 0

    def __next__(self):
        self.i += 1
        g = torch.Generator().manual_seed(self.i)
        x = torch.randn(8, 3, generator=g)
        return x, x @ torch.tensor([1.0, -2.0, 0.5])

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, s):
        self.i = s["i"]


def _regression(nan_steps=(), fail="loss"):
    calls = {"n": 0}

    def loss_fn(model, batch, carry):
        calls["n"] += 1
        x, y = batch
        loss = ((model(x).squeeze(-1) - y) ** 2).mean()
        if calls["n"] in nan_steps:
            if fail == "loss":
                loss = loss * float("nan")
            else:  # finite loss (sqrt(0) = 0 is added), infinite gradient (1 / (2 sqrt(0)))
                loss = loss + torch.sqrt(model.weight - model.weight.detach()).sum()
        return StepOutput(loss, x.shape[0], None)

    return loss_fn


def _trainer(tmp_path, loss_fn, steps=6, **cfg):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = make_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.5)
    return Trainer(
        model,
        opt,
        _Batches(),
        loss_fn,
        TrainConfig(steps=steps, progress=False, **cfg),
        checkpoint=tmp_path / "c.pt",
        metrics=tmp_path / "m.jsonl",
        kind="toy",
    )


@pytest.mark.parametrize("fail", ["loss", "grad"])
def test_nan_step_is_skipped_and_reported(tmp_path, fail):
    clean = _trainer(tmp_path / "a", _regression())
    clean.config.steps = 2
    clean.fit()
    bad = _trainer(tmp_path / "b", _regression(nan_steps=(3,), fail=fail))
    bad.config.steps = 3
    bad.fit()
    # step 3 was skipped: parameters equal those after the 2 clean steps
    assert bad.skipped == 1
    assert _equal_states(clean.model.state_dict(), bad.model.state_dict())
    assert all(torch.isfinite(p).all() for p in bad.model.parameters())
    assert "skipped" in (tmp_path / "b" / "m.jsonl").read_text()
    bad.config.steps = 6
    result = bad.fit()
    assert result.steps == 6 and result.skipped_steps == 1 and math.isfinite(result.train_loss)


def test_repeated_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, _regression(nan_steps=range(3, 100)), steps=50, max_bad_steps=4)
    trainer.save()
    before = (tmp_path / "c.pt").read_bytes()
    with pytest.raises(TrainingDiverged, match="4 consecutive"):
        trainer.fit()
    assert (tmp_path / "c.pt").read_bytes() == before
    assert load_checkpoint(tmp_path / "c.pt", "toy")["trainer"]["step"] == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_saves_checkpoint_and_stops(tmp_path, sig):
    inner = _regression()

    def loss_fn(model, batch, carry):
        out = inner(model, batch, carry)
        if trainer.step == 2:  # during the third step
            os.kill(os.getpid(), sig)
        return out

    trainer = _trainer(tmp_path, loss_fn, steps=100)
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    result = trainer.fit()
    assert result.stopped == "interrupted" and result.steps == 3
    assert load_checkpoint(result.checkpoint, "toy")["trainer"]["step"] == 3
    # the caller's handlers are restored (SIG_IGN under a background shell, not always the default)
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers


def test_early_stopping(tmp_path):
    vals = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    trainer = _trainer(tmp_path, _regression(), steps=100, eval_every=2, patience=2)
    trainer.eval_fn = lambda m: next(vals)
    result = trainer.fit()
    assert result.stopped == "early_stopping" and result.steps == 8
    assert result.best_val_loss == 0.5


def test_atomic_checkpoint_survives_failure_mid_write(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, "toy", {"x": torch.arange(3)})
    before = path.read_bytes()
    real_save = torch.save

    def broken_save(obj, fh):
        real_save(obj, fh)
        fh.truncate(10)  # half-written file...
        raise OSError("disk full")  # ...then the failure

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, "toy", {"x": torch.arange(1000)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left
    assert torch.equal(load_checkpoint(path, "toy")["x"], torch.arange(3))


def test_load_checkpoint_errors(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable"):
        load_checkpoint(bad)
    save_checkpoint(tmp_path / "t.pt", "toy", {})
    with pytest.raises(ValueError, match="holds a 'toy' model, expected 'lm'"):
        load_checkpoint(tmp_path / "t.pt", "lm")
    with pytest.raises(ValueError, match="no such file"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"a": 1}, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="not an rnnlab checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_clip_gradients_reports_norm_and_clips():
    w = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    w.grad = torch.tensor([3.0, 4.0, 0.0, 0.0], dtype=torch.float64)
    norm = clip_gradients([w], max_norm=1.0)
    assert float(norm) == pytest.approx(5.0)
    assert torch.allclose(w.grad, torch.tensor([0.6, 0.8, 0, 0], dtype=torch.float64), atol=1e-6)
    w.grad = torch.tensor([3.0, -4.0, 0.5, 0.0], dtype=torch.float64)
    norm = clip_gradients([w], max_value=1.0)
    assert float(norm) == pytest.approx(math.sqrt(25.25))
    assert w.grad.tolist() == [1.0, -1.0, 0.5, 0.0]
    w.grad = torch.tensor([1.0, float("nan"), 0, 0], dtype=torch.float64)
    assert not torch.isfinite(clip_gradients([w], max_norm=1.0))


def test_plateau_schedule_decays_lr_when_validation_stalls(tmp_path):
    from rnnlab.optim import make_schedule

    trainer = _trainer(tmp_path, _regression(), steps=12, eval_every=2)
    trainer.schedule = make_schedule("plateau", trainer.optimizer, gamma=0.5, patience=1)
    trainer.eval_fn = lambda m: 1.0  # never improves after the first evaluation
    trainer.fit()
    # evaluations at steps 2..12: best at 2, then 5 without improvement; patience 1 ->
    # the lr halves on every second stalled evaluation: 0.1 -> 0.05 -> 0.025
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


def test_momentum_schedule_follows_sutskever_2013():
    from rnnlab.optim import momentum_schedule

    assert momentum_schedule(0) == 0.5 and momentum_schedule(249) == 0.5
    assert momentum_schedule(250) == pytest.approx(0.75)
    assert momentum_schedule(750) == pytest.approx(0.875)
    assert momentum_schedule(10**9) == 0.99


def test_gradients_hook_equals_backprop_of_the_same_loss():
    """An update that writes .grad itself (as contrastive divergence does) trains exactly
    as loss.backward() of a loss with that gradient: 0.5 ||W x - y||^2 by hand."""
    torch.manual_seed(0)
    xs, ys = torch.randn(20, 8, 3, dtype=torch.float64), torch.randn(20, 8, 2, dtype=torch.float64)

    def batches():
        i = 0
        while True:
            yield xs[i % 20], ys[i % 20]
            i += 1

    def loss_fn(model, batch, carry):
        x, y = batch
        return StepOutput(0.5 * ((x @ model.weight.t() - y) ** 2).sum(), items=len(x))

    def gradients(model, batch, carry):
        x, y = batch
        with torch.no_grad():
            r = x @ model.weight.t() - y  # (N, 2)
            model.weight.grad = r.t() @ x  # d/dW 0.5 ||W x - y||^2
        return StepOutput(0.5 * (r**2).sum(), items=len(x))

    finals = []
    for kw in ({"loss_fn": loss_fn}, {"loss_fn": None, "gradients": gradients}):
        model = nn.Linear(3, 2, bias=False).double()
        nn.init.constant_(model.weight, 0.1)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        cfg = TrainConfig(steps=30, clip_norm=5.0, progress=False)
        trainer = Trainer(model, opt, batches(), config=cfg, **kw)
        result = trainer.fit()
        finals.append((model.weight.detach().clone(), result.train_loss))
    assert torch.equal(finals[0][0], finals[1][0])
    assert finals[0][1] == finals[1][1]


def test_trainer_needs_exactly_one_of_loss_fn_and_gradients():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="exactly one of loss_fn and gradients"):
        Trainer(model, opt, iter([]), None, TrainConfig(steps=1))
