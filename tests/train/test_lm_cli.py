import json
import math

import pytest
import torch

from rnnlab.cli import main
from rnnlab.train import LMTrainOptions, load_lm, save_checkpoint, train_lm

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 60
SMALL = [
    "--hidden",
    "16",
    "--layers",
    "1",
    "--embedding",
    "8",
    "--seq-len",
    "10",
    "--batch",
    "4",
    "--eval-every",
    "3",
    "--no-progress",
    "--samples",
    "20",
]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT, encoding="utf-8")
    return str(p)


def _run(capsys, argv):
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _last_json(out):
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def trained(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    status, stdout, _ = _run(
        capsys,
        ["train", "lm", "--data", corpus, "--steps", "6", "--out", str(out), "--json", *SMALL],
    )
    assert status == 0
    return _last_json(stdout), out


def test_train_eval_sample_end_to_end(trained, corpus, capsys):
    rec, out = trained
    assert rec["steps"] == 6 and rec["stopped"] == "steps"
    for key in ("train_loss", "val_bits_per_char", "tokens_per_second", "checkpoint"):
        assert rec[key] is not None
    assert rec["checkpoint"] == str(out / "checkpoint.pt")
    assert (out / "loss.png").stat().st_size > 1000
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert any("val_loss" in json.loads(line) for line in lines)
    assert set(rec["samples"]) == {"0.5", "1.0"}

    status, stdout, _ = _run(capsys, ["eval", rec["checkpoint"], "--json"])
    ev = _last_json(stdout)
    assert status == 0 and ev["bits_per_char"] == pytest.approx(rec["val_bits_per_char"])
    status, stdout, _ = _run(capsys, ["eval", rec["checkpoint"], "--data", corpus, "--json"])
    assert status == 0 and 0 < _last_json(stdout)["bits_per_char"] < 8

    for extra in ([], ["--greedy"], ["--beam", "3"], ["--top-k", "3", "--top-p", "0.9"]):
        status, stdout, _ = _run(
            capsys,
            ["sample", rec["checkpoint"], "--prime", "the ", "--length", "15", "--json", *extra],
        )
        text = _last_json(stdout)["text"]
        assert status == 0 and text.startswith("the ") and len(text) == 19

    # resume through the command line continues to the new total
    status, stdout, _ = _run(
        capsys,
        [
            "train",
            "lm",
            "--resume",
            rec["checkpoint"],
            "--steps",
            "9",
            "--json",
            "--no-progress",
            "--samples",
            "0",
        ],
    )
    assert status == 0 and _last_json(stdout)["steps"] == 9


def test_word_level_reports_perplexity(tmp_path, corpus, capsys):
    status, stdout, _ = _run(
        capsys,
        [
            "train",
            "lm",
            "--level",
            "word",
            "--data",
            corpus,
            "--steps",
            "4",
            "--out",
            str(tmp_path / "w"),
            "--json",
            *SMALL,
        ],
    )
    rec = _last_json(stdout)
    assert status == 0 and rec["vocab_size"] == 11 and 1 < rec["val_perplexity"] < 11
    status, stdout, _ = _run(capsys, ["eval", rec["checkpoint"], "--json"])
    assert status == 0 and "perplexity" in _last_json(stdout)


def _bad(capsys, argv, message):
    status, _, err = _run(capsys, argv)
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1 and message in lines[0], lines
    assert "Traceback" not in err


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: _write(d / "e.txt", b""), "empty"),
        (lambda d: _write(d / "l.txt", b"caf\xe9 " * 20), "not UTF-8"),
        (lambda d: d, "directory"),
        (lambda d: d / "missing.txt", "no such file"),
        (lambda d: _write(d / "s.txt", b"ab"), "too few"),
    ],
)
def test_bad_data_files_exit_2(tmp_path, capsys, setup, message):
    path = setup(tmp_path)
    _bad(
        capsys,
        ["train", "lm", "--data", str(path), "--steps", "2", "--out", str(tmp_path / "o"), *SMALL],
        message,
    )
    assert not (tmp_path / "o" / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hidden", "0"], "--hidden"),
        (["--seq-len", "0"], "--seq-len"),
        (["--lr", "-0.1"], "--lr"),
        (["--batch", "0"], "--batch"),
        (["--clip", "-1"], "--clip"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_nonsense_hyperparameters_exit_2(tmp_path, corpus, capsys, flags, message):
    argv = ["train", "lm", "--data", corpus, "--steps", "2", "--out", str(tmp_path / "o"), *SMALL]
    for i in range(0, len(flags), 2):  # later flags win in argparse
        argv += flags[i : i + 2]
    _bad(capsys, argv, message)


def test_bad_checkpoints_and_primes_exit_2(trained, tmp_path, capsys):
    rec, out = trained
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(open(rec["checkpoint"], "rb").read()[:300])
    other = tmp_path / "other.pt"
    save_checkpoint(other, "hmm", {"model": {}})
    for cmd in (["eval"], ["sample"]):
        _bad(capsys, [*cmd, str(corrupt)], "not a readable")
        _bad(capsys, [*cmd, str(other)], "holds a 'hmm' model")
        _bad(capsys, [*cmd, str(tmp_path / "nope.pt")], "no such file")
        _bad(capsys, [*cmd, str(tmp_path)], "directory")
    _bad(capsys, ["train", "lm", "--resume", str(corrupt), "--steps", "3"], "not a readable")
    _bad(capsys, ["sample", rec["checkpoint"], "--prime", "Zebra"], "outside the model's vocab")
    _bad(capsys, ["sample", rec["checkpoint"], "--top-p", "1.5"], "--top-p")
    greek = tmp_path / "greek.txt"
    greek.write_text("αβγδε ζηθ " * 50, encoding="utf-8")
    _bad(capsys, ["eval", rec["checkpoint"], "--data", str(greek)], "does not fit")


def test_out_holding_a_checkpoint_is_refused_and_untouched(trained, corpus, capsys):
    rec, out = trained
    before = open(rec["checkpoint"], "rb").read()
    plot = (out / "loss.png").read_bytes()
    _bad(
        capsys,
        ["train", "lm", "--data", corpus, "--steps", "2", "--out", str(out), *SMALL],
        "already holds a checkpoint",
    )
    assert open(rec["checkpoint"], "rb").read() == before
    assert (out / "loss.png").read_bytes() == plot


def test_a_tiny_lm_learns_a_repeating_text(tmp_path):
    path = tmp_path / "rep.txt"
    path.write_text("abcdefghij" * 300, encoding="utf-8")
    opts = LMTrainOptions(
        data=str(path),
        hidden=32,
        layers=1,
        embedding=8,
        seq_len=20,
        batch=8,
        lr=0.02,
        eval_every=0,
        schedule="constant",
    )
    rec, _ = train_lm(opts, steps=120, out=tmp_path / "r", progress=False)
    # the text is deterministic after one character: entropy 0 (uniform would be log2 11)
    assert rec["val_bits_per_char"] < 0.05 < math.log2(11)
    model, tok, _ = load_lm(rec["checkpoint"])
    from rnnlab.train.lm_run import generate_text

    assert generate_text(model, tok, prime="abc", length=17, greedy=True) == "abcdefghij" * 2
    assert torch.isfinite(torch.tensor(rec["train_loss"]))
