"""``rnnlab train labeller|ctc`` and ``rnnlab transcribe`` on .npz data: checkpoints, --json,
resume, and one-line errors for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnlab.cli import main


def write_npz(path, kind, n=24, seed=0, F=3):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(6, 10, size=n)
    X = rng.normal(size=(int(lengths.sum()), F)).astype(np.float32)
    if kind == "labeller":
        np.savez(path, X=X, lengths=lengths, labels=(X[:, 0] > 0).astype(np.int64))
    else:
        tl = rng.integers(1, 3, size=n)
        np.savez(path, X=X, lengths=lengths, targets=rng.integers(0, 3, size=int(tl.sum())),
                 target_lengths=tl)  # fmt: skip
    return path


def status(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # argparse errors exit
        return exc.code


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.parametrize("kind", ["labeller", "ctc"])
def test_train_then_transcribe_and_resume(tmp_path, capsys, kind):
    data = write_npz(tmp_path / "d.npz", kind)
    out = tmp_path / "run"
    args = ["train", kind, "--data", str(data), "--steps", "4", "--hidden", "4", "--batch", "4",
            "--eval-every", "2", "--out", str(out), "--no-progress", "--json"]  # fmt: skip
    assert main(args) == 0
    rec = last_json(capsys)
    assert rec["steps"] == 4 and rec["kind"] == kind
    resume = ["train", kind, "--data", str(data), "--steps", "6", "--resume",
              str(out / "checkpoint.pt"), "--no-progress", "--json"]  # fmt: skip
    assert main(resume) == 0
    assert last_json(capsys)["steps"] == 6
    assert main(["transcribe", str(out / "checkpoint.pt"), "--data", str(data), "--json"]) == 0
    rec = last_json(capsys)
    assert rec["sequences"] == 24
    assert ("label_error_rate" if kind == "ctc" else "frame_accuracy") in rec


def test_bad_input_is_one_line_status_2(tmp_path, capsys):
    data = write_npz(tmp_path / "d.npz", "ctc")
    other = write_npz(tmp_path / "f.npz", "ctc", F=5)
    out = tmp_path / "run"
    common = ["--steps", "2", "--hidden", "4", "--out", str(out), "--no-progress"]
    assert main(["train", "ctc", "--data", str(data), *common]) == 0
    capsys.readouterr()
    cases = [
        ["train", "labeller", "--data", str(data), *common],  # no frame labels
        ["train", "ctc", "--data", str(tmp_path / "missing.npz"), *common],
        ["train", "ctc", "--data", str(data), "--steps", "0"],
        ["transcribe", str(out / "checkpoint.pt"), "--data", str(other)],  # wrong feature size
        ["transcribe", str(out / "checkpoint.pt"), "--data", str(data), "--beam", "0"],
        ["transcribe", str(tmp_path / "nope.pt")],
    ]
    for argv in cases:
        assert status(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "error" in err, (argv, err)
    empty = tmp_path / "e.npz"
    np.savez(empty, X=np.zeros((6, 3), np.float32), lengths=[3, 3], targets=[1],
             target_lengths=[1, 0])  # fmt: skip
    assert status(["train", "ctc", "--data", str(empty), *common]) == 2
    assert "empty transcript" in capsys.readouterr().err
