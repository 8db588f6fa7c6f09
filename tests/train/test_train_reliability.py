"""Regression tests of issue 10 for training, checkpoints and the language-model jobs
(items 2, 7, 11, 15, 16, 17 and 18)."""

import json
import math
import os
import signal
import stat

import pytest
import torch
from torch import nn

from rnnlab.errors import InputError
from rnnlab.optim.schedules import CosineSchedule
from rnnlab.train import (
    LMTrainOptions,
    StepOutput,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    lm_run,
    load_checkpoint,
    save_checkpoint,
    train_lm,
)
from rnnlab.train.checkpoint import atomic_write
from rnnlab.train.lm_run import eval_lm

TEXT = "the quick brown fox jumps over the lazy dog. " * 60


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT, encoding="utf-8")
    return str(p)


def _opts(corpus, **kw):
    base = dict(
        data=corpus, hidden=12, layers=1, embedding=6, seq_len=8, batch=3, eval_every=3, seed=1
    )
    base.update(kw)
    return LMTrainOptions(**base)


def _equal_states(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ item 2: cosine and resume
def test_cosine_resume_with_the_same_budget_is_bit_exact(tmp_path, corpus, monkeypatch):
    opts = _opts(corpus, schedule="cosine", optimizer="sgd", lr=0.5)
    _, straight = train_lm(opts, steps=6, out=tmp_path / "a", progress=False)
    # the same 6-step run interrupted at step 4, then resumed with its own budget
    _interrupt_at(monkeypatch, 4)
    rec, _ = train_lm(opts, steps=6, out=tmp_path / "b", progress=False)
    assert rec["stopped"] == "interrupted" and rec["steps"] == 4
    monkeypatch.undo()
    rec2, resumed = train_lm(None, steps=6, resume=rec["checkpoint"], progress=False)
    assert rec2["steps"] == 6
    assert _equal_states(straight.model.state_dict(), resumed.model.state_dict())
    assert straight.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"]


def test_cosine_resume_with_a_new_budget_follows_the_new_curve(tmp_path, corpus):
    # a 4-step run ends at the minimum; resumed to 8 steps, the rate from step 4 on is the
    # 8-step curve's (the steps already taken are not redone), never the 4-step period
    opts = _opts(corpus, schedule="cosine", optimizer="sgd", lr=0.5)
    rec, short = train_lm(opts, steps=4, out=tmp_path / "a", progress=False)
    assert short.optimizer.param_groups[0]["lr"] == 0.0
    seen = []
    orig = CosineSchedule.step

    def spy(self, *a, **k):
        orig(self, *a, **k)
        seen.append((self.last_epoch, self.optimizer.param_groups[0]["lr"]))

    CosineSchedule.step = spy
    try:
        train_lm(None, steps=8, resume=rec["checkpoint"], progress=False)
    finally:
        CosineSchedule.step = orig
    ref = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
    want = CosineSchedule(ref, 8)
    curve = {}
    for t in range(1, 9):
        ref.step()
        want.step()
        curve[t] = ref.param_groups[0]["lr"]
    seen = [(t, lr) for t, lr in seen if t > 0]  # (t = 0: the schedule's construction)
    assert [t for t, _ in seen] == [5, 6, 7, 8]
    assert all(lr == curve[t] for t, lr in seen)
    assert curve[5] > 0.0


# ------------------------------------------------------------------ item 7: divergence
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


def _toy(tmp_path, lr, steps, **cfg):
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def loss_fn(m, batch, carry):
        x, y = batch
        return StepOutput(((m(x).squeeze(-1) - y) ** 2).mean(), len(x))

    def eval_fn(m):
        x = torch.ones(4, 3)
        return float(((m(x).squeeze(-1) - x @ torch.tensor([1.0, -2.0, 0.5])) ** 2).mean())

    return Trainer(
        model,
        opt,
        _Batches(),
        loss_fn,
        TrainConfig(steps=steps, progress=False, **cfg),
        eval_fn=eval_fn,
        checkpoint=tmp_path / "c.pt",
        kind="toy",
    )


def test_divergence_never_calls_an_unhealthy_checkpoint_good(tmp_path):
    # a healthy start, then lr 1e38: every later checkpoint attempt is refused, and the
    # message names the healthy one (finite parameters, finite loss)
    t = _toy(tmp_path, 0.01, 3, eval_every=1)
    t.fit()
    good = load_checkpoint(tmp_path / "c.pt")
    assert good["trainer"]["step"] == 3
    for g in t.optimizer.param_groups:
        g["lr"] = 1e38
    t.config = TrainConfig(steps=40, eval_every=1, checkpoint_every=1, progress=False)
    with pytest.raises(TrainingDiverged, match="last good checkpoint: .*c.pt") as exc:
        t.fit()
    assert "consecutive" in str(exc.value)
    kept = load_checkpoint(tmp_path / "c.pt")
    assert kept["trainer"]["step"] == 3  # nothing written after the divergence began
    assert all(torch.isfinite(v).all() and v.abs().max() < 1e3 for v in kept["model"].values())


def test_no_checkpoint_inside_a_streak_of_skipped_steps(tmp_path, capsys):
    calls = {"n": 0}
    t = _toy(tmp_path, 0.01, 6, checkpoint_every=1, max_bad_steps=5)
    inner = t.loss_fn

    def flaky(m, batch, carry):  # steps 3..4 non-finite, then healthy again
        calls["n"] += 1
        out = inner(m, batch, carry)
        return out._replace(loss=out.loss * math.nan) if calls["n"] in (3, 4) else out

    t.loss_fn = flaky
    writes = []
    orig = t.save
    t.save = lambda *a: writes.append(t.step) or orig(*a)
    result = t.fit()
    assert writes == [1, 2, 5, 6, 6]  # none at 3, 4; then each step and the final one
    assert result.skipped_steps == 2
    assert "step 3: no checkpoint written" in capsys.readouterr().err


def test_diverged_without_a_good_checkpoint_says_so(tmp_path):
    t = _toy(tmp_path, 1e38, 20, eval_every=1)
    with pytest.raises(TrainingDiverged, match="no checkpoint of a healthy state"):
        t.fit()
    assert not (tmp_path / "c.pt").exists()


# ------------------------------------------------------------------ items 11 and 16
@pytest.mark.parametrize(
    "kw, name",
    [
        ({"log_every": 0}, "log_every"),
        ({"eval_every": -1}, "eval_every"),
        ({"checkpoint_every": -1}, "checkpoint_every"),
        ({"max_bad_steps": 0}, "max_bad_steps"),
        ({"patience": -1}, "patience"),
        ({"patience": 0}, "patience"),
        ({"steps": 2.5}, "steps"),
        ({"steps": True}, "steps"),
        ({"minutes": float("nan")}, "minutes"),
        ({"clip_norm": float("nan")}, "clip_norm"),
        ({"progress": "yes"}, "progress"),
        ({"eval_every": 1.0}, "eval_every"),
    ],
)
def test_train_config_refuses_nonsense(kw, name):
    kw = {"steps": 3, **kw}
    with pytest.raises(InputError, match=f"^{name}: expected"):
        TrainConfig(**kw)


# ------------------------------------------------------------------ item 15: foreign pickles
def test_foreign_pickle_is_one_line_and_no_warning(tmp_path, capfd):
    import collections
    import pickle

    p = tmp_path / "evil.pt"
    with open(p, "wb") as fh:
        pickle.dump({"a": collections.OrderedDict(x=object())}, fh, protocol=4)
    q = tmp_path / "evil2.pt"
    torch.save({"format": "rnnlab-checkpoint", "x": _Batches()}, q)
    with _no_warnings():
        for path, text in ((p, "not a readable"), (q, "pickled Python objects")):
            with pytest.raises(InputError, match=text) as exc:
                load_checkpoint(path)
            assert "\n" not in str(exc.value)
    assert capfd.readouterr().err == ""


class _no_warnings:
    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings(record=True)
        self.seen = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        self._cm.__exit__(*exc)
        assert not self.seen, [str(w.message) for w in self.seen]


# ------------------------------------------------------------------ item 17: checkpoint files
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_checkpoint_mode_follows_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = save_checkpoint(tmp_path / "checkpoint.pt", "toy", {"x": torch.ones(2)})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == mode == stat.S_IMODE(plain.stat().st_mode)


def test_stale_temporaries_of_killed_writes_are_removed(tmp_path):
    target = tmp_path / "checkpoint.pt"
    stale = [tmp_path / ".checkpoint.pt.abc123.tmp", tmp_path / ".checkpoint.pt.zz.tmp"]
    other = tmp_path / ".metrics.jsonl.q.tmp"  # another file's temporary: left alone
    for s in [*stale, other]:
        s.write_bytes(b"x" * 100)
        os.utime(s, (1, 1))
    save_checkpoint(target, "toy", {"x": torch.ones(2)})
    assert not any(s.exists() for s in stale) and other.exists()
    assert load_checkpoint(target)["kind"] == "toy"
    assert sorted(p.name for p in tmp_path.iterdir()) == [other.name, "checkpoint.pt"]


def test_failed_write_leaves_no_temporary(tmp_path):
    def boom(fh):
        fh.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(tmp_path / "f.bin", boom)
    assert list(tmp_path.iterdir()) == []


def test_data_is_stored_resolved_and_resume_works_elsewhere(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rec, _ = train_lm(_opts("tiny.txt"), steps=2, out="run", progress=False)
    assert rec["options"]["data"] == corpus
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["options"]["data"] == corpus
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rec2, _ = train_lm(None, steps=4, resume=str(tmp_path / "run" / "checkpoint.pt"))
    assert rec2["steps"] == 4
    # naming the same file by another spelling is not a change of --data
    rec3, _ = train_lm(
        None, steps=5, resume="../run/checkpoint.pt", overrides={"data": "../tiny.txt"}
    )
    assert rec3["steps"] == 5


def test_unwritable_out_is_refused_before_training(corpus, monkeypatch):
    # /sys/kernel refuses new files even to root (a chmod-ed folder would not)
    if (
        not os.path.isdir("/sys/kernel")
        or os.access("/sys/kernel", os.W_OK)
        and _can_write("/sys/kernel")
    ):
        pytest.skip("no unwritable folder to test with")
    calls = []
    monkeypatch.setattr(Trainer, "fit", lambda self: calls.append(1))
    with pytest.raises(InputError, match="out: cannot write into '/sys/kernel'"):
        train_lm(_opts(corpus), steps=2, out="/sys/kernel", progress=False)
    assert calls == []


def _can_write(folder) -> bool:
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


# ------------------------------------------------------------------ item 18
def _interrupt_at(monkeypatch, step):
    made = lm_run._lm_step

    def factory(device):
        inner = made(device)
        n = {"i": 0}

        def loss(model, batch, carry):
            n["i"] += 1
            if n["i"] == step:
                os.kill(os.getpid(), signal.SIGINT)
            return inner(model, batch, carry)

        return loss

    monkeypatch.setattr(lm_run, "_lm_step", factory)


def test_interrupt_reports_the_stopping_steps_validation(tmp_path, corpus, monkeypatch):
    _interrupt_at(monkeypatch, 5)
    rec, _ = train_lm(_opts(corpus), steps=20, out=tmp_path / "r", progress=False)
    assert rec["stopped"] == "interrupted" and rec["steps"] == 5
    records = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in records if "val_loss" in e]  # the periodic evaluations
    assert [e["step"] for e in evals] == [3]
    assert [e["step"] for e in records if "final_val_loss" in e] == [5]  # and at the stop
    at_stop = eval_lm(rec["checkpoint"])["loss"]  # the saved (step-5) state, independently
    assert rec["val_loss"] == pytest.approx(at_stop, rel=1e-6)
    assert rec["val_loss"] != pytest.approx(evals[0]["val_loss"], rel=1e-6)


def test_resume_with_a_spent_budget_is_refused(tmp_path, corpus):
    rec, _ = train_lm(_opts(corpus), steps=6, out=tmp_path / "r", progress=False)
    with pytest.raises(InputError, match="^steps: the checkpoint is at step 6"):
        train_lm(None, steps=3, resume=rec["checkpoint"], progress=False)
    with pytest.raises(InputError, match="^steps: the checkpoint is at step 6"):
        train_lm(None, steps=6, resume=rec["checkpoint"], progress=False)


def test_generation_never_emits_the_unknown_token(tmp_path, corpus):
    from rnnlab.train.generate import beam_search, sample
    from rnnlab.train.lm_run import generate_text, load_lm

    rec, _ = train_lm(_opts(corpus), steps=2, out=tmp_path / "r", progress=False)
    model, tok, _ = load_lm(rec["checkpoint"])
    with torch.no_grad():  # make <unk> (id 0) by far the most likely token everywhere
        _make_unknown_likely(model)
    ids = tok.encode("the")
    assert sample(model, ids, 30, greedy=True)[0] == 0  # the model does prefer it
    for kw in ({"greedy": True}, {"temperature": 1.0}, {"temperature": 2.0, "top_k": 3}):
        assert 0 not in sample(model, ids, 40, exclude=(0,), **kw)
    assert 0 not in beam_search(model, ids, 6, 3, exclude=(0,)).tokens
    for beam in (None, 1, 3):
        text = generate_text(model, tok, prime="the", length=40, beam=beam)
        assert "\ufffd" not in text


def _make_unknown_likely(model):
    last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    last.bias[0] = 50.0


@pytest.mark.parametrize("temperature", [0.0, 1e-300, 1e-40, 1e-38, 1e-20, 1e-3, 1.0, 1e6])
def test_next_token_at_any_temperature(temperature):
    # found probing `rnnlab sample --temperature 1e-300`: the scores overflowed to NaN
    from rnnlab.train.generate import next_token

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 9, generator=g) * 30
    logits[:5] = 1e30  # huge and tied
    tok = next_token(logits, temperature=temperature, generator=g, exclude=(0,))
    assert tok.shape == (64,) and bool((tok >= 1).all()) and bool((tok < 9).all())
    if temperature < torch.finfo(torch.float32).tiny:
        assert torch.equal(tok, logits[:, 1:].argmax(-1) + 1)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InputError, match="temperature"):
            next_token(logits, temperature=bad)


def _mutations():
    out = []
    for key in ("options", "config", "vocab", "data_tokens", "model", "optimizer", "trainer"):
        out.append((f"del-{key}", lambda s, k=key: s.pop(k)))
        out.append((f"{key}=7", lambda s, k=key: s.__setitem__(k, 7)))
    out.append(("data=7", lambda s: s.__setitem__("data", 7)))
    out.append(("corpus=7", lambda s: s.__setitem__("corpus", 7)))
    out.append(("vocab-tokens-empty", lambda s: s["vocab"].__setitem__("tokens", [])))
    out.append(("hidden=0", lambda s: s["options"].__setitem__("hidden", 0)))
    return out


# the mutations that gave tracebacks (KeyError/TypeError/AttributeError) before the fix
FOUND = ("del-options", "options=7", "del-vocab", "del-data_tokens", "optimizer=7", "data=7")


def test_damaged_checkpoints_give_one_line_errors(tmp_path, corpus):
    _damaged(tmp_path, corpus, [m for m in _mutations() if m[0] in FOUND])


@pytest.mark.slow
def test_damaged_checkpoints_give_one_line_errors_every_field(tmp_path, corpus):
    _damaged(tmp_path, corpus, _mutations())


def _damaged(tmp_path, corpus, mutations):
    """Resume, sample and eval of a checkpoint with one field damaged: either they work,
    or an InputError of one line (never another exception)."""
    import copy

    from rnnlab.train.lm_run import generate_text, load_lm

    rec, _ = train_lm(_opts(corpus), steps=2, out=tmp_path / "r", progress=False)
    state = load_checkpoint(rec["checkpoint"])
    body = {k: v for k, v in state.items() if k not in ("format", "version", "kind")}
    for name, mutate in mutations:
        s = copy.deepcopy(body)
        mutate(s)
        path = save_checkpoint(tmp_path / name / "checkpoint.pt", "lm", s)
        try:
            train_lm(None, steps=4, resume=path, progress=False)
        except InputError as exc:
            assert "\n" not in str(exc)
        try:
            model, tok, _ = load_lm(path)
            generate_text(model, tok, length=3)
            eval_lm(path)
        except InputError as exc:
            assert "\n" not in str(exc)


def test_seeds_torch_cannot_take_are_refused(tmp_path, corpus):
    # found probing: --seed 2**70 raised "Overflow when unpacking long long" from torch
    from rnnlab.train.lm_run import generate_text, load_lm

    for seed in (2**64, -(2**63) - 1, 2**70, 1.5, True):
        with pytest.raises(InputError, match="^seed: expected an integer in"):
            _opts(corpus, seed=seed)
    rec, _ = train_lm(_opts(corpus, seed=2**64 - 1), steps=1, out=tmp_path / "r", progress=False)
    model, tok, _ = load_lm(rec["checkpoint"])
    with pytest.raises(InputError, match="^seed: expected an integer in"):
        generate_text(model, tok, length=2, seed=2**64)
    assert generate_text(model, tok, prime="the", length=2, seed=-(2**63)).startswith("the")
