"""The command line's training jobs under torchrun (two gloo processes on this CPU): the
parameters equal a one-process run on the same global batch, and only rank 0 reports."""

import os
import subprocess
import sys

import pytest
import torch

from rnnlab.train.checkpoint import load_checkpoint
from rnnlab.train.distributed import shard

JOBS = {
    "ctc": ["train", "ctc", "--steps", "3", "--batch", "4", "--hidden", "8"],
    "seq2seq": ["train", "seq2seq", "--steps", "3", "--batch", "8", "--hidden", "16"],
}


def _run(args, out, nproc):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launch = [sys.executable, "-m", "rnnlab"]
    if nproc > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                  f"--nproc_per_node={nproc}", "-m", "rnnlab"]  # fmt: skip
    cmd = [*launch, *args, "--out", str(out), "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.parametrize("job", sorted(JOBS))
def test_two_processes_under_torchrun_equal_one_process(tmp_path, job):
    one = _run(JOBS[job], tmp_path / "one", 1)
    two = _run(JOBS[job], tmp_path / "two", 2)
    # rank 0 alone printed its report: the same lines as one process prints
    assert len(two.splitlines()) == len(one.splitlines())
    a = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    assert b["world_size"] == 2
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-4, atol=1e-5)


def test_shard_slices_tensors_and_per_example_lists():
    batch = (torch.arange(8).view(4, 2), torch.tensor([3, 2, 2, 1]), [[1], [2, 3], [4], [5, 6]])
    x, lengths, transcripts = shard(batch, 1, 2)
    assert x.tolist() == [[4, 5], [6, 7]] and lengths.tolist() == [2, 1]
    assert transcripts == [[4], [5, 6]]  # the list is cut by example, not element-wise
    with pytest.raises(ValueError, match="do not divide into 3 processes"):
        shard(batch, 0, 3)
