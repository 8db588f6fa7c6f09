"""Data-parallel training on torch.distributed (gloo, two CPU processes spawned here):
the same parameters as one process with the combined batch, rank-0-only writing, exact
resume, one rank's NaN skipping the step on every rank, and a failing rank ending the job."""

import gc
import json
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

from rnnlab.nn import LSTM
from rnnlab.train import StepOutput, TrainConfig, Trainer
from rnnlab.train.checkpoint import load_checkpoint

DT = torch.float64
STEPS = 6


class Net(nn.Module):
    def __init__(self, dropout=0.0):
        super().__init__()
        self.rnn = LSTM(3, 5, dtype=DT)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(5, 1, dtype=DT)

    def forward(self, x):
        return self.head(self.drop(self.rnn(x)[0]))

    def loss(self, x, y):
        return ((self(x) - y) ** 2).mean()


class Batches:
    """A fixed cycle of 8 batches of 4 sequences; the position resumes."""

    def __init__(self, nan_at=None):
        g = torch.Generator().manual_seed(0)
        self.data = [
            (
                torch.randn(4, 6, 3, generator=g, dtype=DT),
                torch.randn(4, 6, 1, generator=g, dtype=DT),
            )
            for _ in range(8)
        ]
        self.i, self.nan_at = 0, nan_at

    def __next__(self):
        x, y = self.data[self.i % 8]
        if self.nan_at is not None and self.i == self.nan_at:
            x = x.clone()
            x[-1] = float("nan")  # only the last sequence: the last rank's shard
        self.i += 1
        return x, y

    def state_dict(self):
        return {"i": self.i}

    def load_state_dict(self, s):
        self.i = s["i"]


def loss_fn(model, batch, carry):
    # the plain model, also under DDP: a model's own methods (seq2seq's and labelling's
    # model.loss) run inside DDP's forward, so their gradients are all-reduced too
    assert isinstance(model, Net)
    x, y = batch
    return StepOutput(model.loss(x, y), items=len(x))


def _count_allreduces(trainer):
    """Count DDP's gradient all-reduces (a comm hook around the default one)."""
    calls = [0]

    def hook(state, bucket):
        calls[0] += 1
        return default_hooks.allreduce_hook(state, bucket)

    trainer._ddp.register_comm_hook(None, hook)
    return calls


def train(out, steps, *, dropout=0.0, resume=None, nan_at=None, accumulate=1, ckpt=True):
    torch.manual_seed(0)
    net = Net(dropout)
    rank = dist.get_rank() if dist.is_initialized() else 0
    torch.manual_seed(100 + rank)  # each rank its own dropout stream
    trainer = Trainer(
        net, torch.optim.Adam(net.parameters(), lr=0.01), Batches(nan_at), loss_fn,
        TrainConfig(steps=steps, progress=False, log_every=1, checkpoint_every=3,
                    clip_norm=0.5, accumulate=accumulate),
        checkpoint=os.path.join(out, "checkpoint.pt") if ckpt else None,
        metrics=os.path.join(out, "metrics.jsonl"),
    )  # fmt: skip
    if resume:
        trainer.load_state_dict(load_checkpoint(resume))
    calls = _count_allreduces(trainer) if dist.is_initialized() else [0]
    result = trainer.fit()
    result.allreduces = calls[0]
    # drop DDP's reducer (it holds the Python comm hook) while the interpreter is alive:
    # destroyed at exit it can abort the process ("terminate called without an active
    # exception")
    trainer._ddp = None
    del trainer
    gc.collect()
    return net, result


def _worker(rank, world, out, kind):
    # a file rendezvous: no port to race for with other processes on the machine
    dist.init_process_group("gloo", init_method=f"file://{out}/rendezvous", rank=rank,
                            world_size=world)  # fmt: skip
    torch.set_num_threads(1)
    try:
        if kind == "fail" and rank == 1:
            raise RuntimeError("rank 1 fails on purpose")
        if kind == "resume":
            train(out + "/a", 3, dropout=0.3)
            net, _ = train(out + "/a", STEPS, dropout=0.3, resume=out + "/a/checkpoint.pt")
            straight, _ = train(out + "/b", STEPS, dropout=0.3)
            params = [net.state_dict(), straight.state_dict()]
        else:
            net, result = train(out, STEPS, nan_at=2 if kind == "nan" else None,
                                accumulate=2 if kind == "accumulate" else 1)  # fmt: skip
            params = [net.state_dict(), result.skipped_steps, result.allreduces]
        torch.save(params, f"{out}/rank{rank}.pt")
        dist.barrier()  # both done before either tears the group down
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path, kind):
    mp.spawn(_worker, args=(2, str(tmp_path), kind), nprocs=2, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]


@pytest.mark.parametrize("kind", ["plain", pytest.param("accumulate", marks=pytest.mark.slow)])
def test_two_processes_equal_one_process_with_the_combined_batch(tmp_path, kind):
    ranks = _spawn(tmp_path, kind)
    torch.set_num_threads(1)
    one, _ = train(str(tmp_path / "one"), STEPS, accumulate=2 if kind == "accumulate" else 1)
    for state, _, allreduces in ranks:
        for k, v in one.state_dict().items():
            torch.testing.assert_close(state[k], v, rtol=0, atol=1e-12)
        # one all-reduce a step (the model is one bucket): none for an accumulated batch
        assert allreduces == STEPS
    # rank 0 alone wrote the log: one line per step, and the checkpoint
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == list(range(1, STEPS + 1))
    assert load_checkpoint(tmp_path / "checkpoint.pt")["world_size"] == 2


def test_one_ranks_nan_skips_the_step_on_every_rank(tmp_path):
    (a, skipped_a, _), (b, skipped_b, _) = _spawn(tmp_path, "nan")
    assert skipped_a == skipped_b == 1
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)  # still in step


def test_a_two_process_run_resumes_exactly_and_refuses_another_world_size(tmp_path):
    ranks = _spawn(tmp_path, "resume")
    for resumed, straight in ranks:
        for k in straight:
            assert torch.equal(resumed[k], straight[k]), k
    with pytest.raises(ValueError, match="written by 2 process"):
        train(str(tmp_path / "c"), STEPS, resume=str(tmp_path / "a/checkpoint.pt"), ckpt=False)


@pytest.mark.slow
def test_a_failing_rank_ends_the_whole_job(tmp_path):
    # the failing rank's error, or its peer's lost connection: either way the job ends
    with pytest.raises(mp.ProcessRaisedException, match="fails on purpose|onnection|peer"):
        _spawn(tmp_path, "fail")
