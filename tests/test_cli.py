import pytest

from rnnlab.cli import main


def test_unknown_experiment_is_one_line_and_status_2(capsys):
    assert main(["reproduce", "no-such-thing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown experiment" in err[0]


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2


def test_reproduce_seeds_report_rate_and_write_one_report_per_trial(tmp_path, capsys, monkeypatch):
    import json

    from rnnlab import experiments

    def fake(config):
        ok = config.seed % 2 == 0
        return experiments.ExperimentResult(
            "fake", ok, {"seed": config.seed}, {"seed": 0}, report=f"# trial {config.seed}\n"
        )

    registry = {"fake": experiments.Experiment("fake", "a test experiment", fake)}
    monkeypatch.setattr(experiments, "registry", lambda: registry)
    monkeypatch.setattr("rnnlab.experiments.cli.registry", lambda: registry)
    assert main(["reproduce", "--list"]) == 0
    assert "fake" in capsys.readouterr().out
    assert main(["reproduce", "fake", "--seeds", "2", "--json", "--out", str(tmp_path)]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["success"] is False and record["success_rate"] == 0.5
    assert [t["success"] for t in record["trials"]] == [True, False]
    assert (tmp_path / "seed1" / "report.md").read_text() == "# trial 1\n"
    assert main(["reproduce", "fake", "--seeds", "0"]) == 2


# ------------------------------------------------------------------ issue 10: one line, exit 2
TEXT = "the quick brown fox jumps over the lazy dog.\n" * 60
SMALL = ["--hidden", "8", "--layers", "1", "--embedding", "4", "--seq-len", "8", "--batch", "3"]
SMALL += ["--eval-every", "3", "--no-progress", "--samples", "0"]


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "tiny.txt"
    p.write_text(TEXT, encoding="utf-8")
    return str(p)


def _one_line_error(capsys, argv, *needles):
    """``rnnlab argv`` exits 2 with exactly one line on stderr holding every needle."""
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own errors
        status = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err
    return err[0]


@pytest.fixture
def run6(tmp_path, corpus, capsys):
    out = tmp_path / "run"
    assert main(["train", "lm", "--data", corpus, "--steps", "6", "--out", str(out), *SMALL]) == 0
    capsys.readouterr()
    return out / "checkpoint.pt"


def test_resume_of_another_models_weights_is_one_line(run6, tmp_path, capsys):
    import torch

    from rnnlab.train import load_checkpoint, save_checkpoint

    state = load_checkpoint(run6)
    state["model"] = {k: torch.zeros(3, 3) for k in state["model"]}  # another model's weights
    bad = tmp_path / "swapped" / "checkpoint.pt"
    save_checkpoint(bad, "lm", {k: v for k, v in state.items() if k not in ("format", "kind")})
    _one_line_error(capsys, ["train", "lm", "--resume", str(bad), "--steps", "9"], "--resume")
    _one_line_error(capsys, ["sample", str(bad)], "damaged or incompatible")


def test_resume_with_a_spent_budget_is_one_line(run6, capsys):
    line = _one_line_error(capsys, ["train", "lm", "--resume", str(run6), "--steps", "3"])
    assert "--steps: the checkpoint is at step 6" in line and "nan" not in line


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--optimizer", "adam", "--lr", "1e38"], "--lr"),
        (["--optimizer", "sgd", "--lr", "1e39"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--device", "meta"], "--device"),
        (["--device", "no-such-device"], "--device"),
        (["--patience", "-1"], "--patience"),
        (["--patience", "0"], "--patience"),
        (["--eval-every", "-1"], "--eval-every"),
        (["--dropout", "1.5"], "--dropout"),
        (["--momentum", "1"], "--momentum"),
        (["--max-vocab", "1"], "--max-vocab"),
        (["--hidden", "2.5"], "--hidden"),
    ],
)
def test_bad_training_flags_are_one_line(tmp_path, corpus, capsys, flags, needle):
    out = tmp_path / "o"
    argv = ["train", "lm", "--data", corpus, "--steps", "2", "--out", str(out), *SMALL, *flags]
    _one_line_error(capsys, argv, needle)
    assert not (out / "checkpoint.pt").exists()


def test_ctrl_c_during_start_up_imports(monkeypatch, capsys):
    import importlib

    from rnnlab import cli

    def interrupted(name, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib, "import_module", interrupted)
    assert cli.main(["train", "lm"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rnnlab: interrupted"]


def test_foreign_pickle_given_to_resume_or_sample(tmp_path, capfd):
    import pickle

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"x": ValueError("not data")}, fh)
    for argv in (["sample", str(evil)], ["train", "lm", "--resume", str(evil), "--steps", "2"]):
        assert main(argv) == 2
        err = capfd.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "not a readable rnnlab checkpoint" in err[0], err


def test_unwritable_out_is_one_line_before_training(corpus, capsys):
    import os
    import tempfile

    try:
        with tempfile.TemporaryFile(dir="/sys/kernel"):
            pytest.skip("/sys/kernel is writable here")
    except OSError:
        pass
    if not os.path.isdir("/sys/kernel"):
        pytest.skip("no /sys/kernel")
    argv = ["train", "lm", "--data", corpus, "--steps", "2", "--out", "/sys/kernel", *SMALL]
    _one_line_error(capsys, argv, "--out: cannot write into")
