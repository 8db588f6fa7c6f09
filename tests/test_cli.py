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
        (["--threads", "100000"], "--threads"),  # torch.set_num_threads(100000): SIGSEGV
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


# ------------------------------------------------------------------ property: argument parsing
def _cli_property(flags, steps):
    """``rnnlab train lm`` with drawn flag values: exit 2 with one stderr line naming an
    invalid flag, or the job receives exactly the parsed values (the job itself is replaced:
    only parsing and option checks run here)."""
    import io
    import math as m
    import types
    from contextlib import redirect_stderr

    from rnnlab.train import lm_run

    def parse(kind, text):
        try:
            return kind(text)
        except ValueError:
            return None

    valid_rules = {
        "--hidden": (int, lambda v: v >= 1),
        "--layers": (int, lambda v: v >= 1),
        "--seq-len": (int, lambda v: v >= 1),
        "--batch": (int, lambda v: v >= 1),
        "--embedding": (int, lambda v: v >= 0),
        "--eval-every": (int, lambda v: v >= 0),
        "--max-vocab": (int, lambda v: v >= 2),
        "--patience": (int, lambda v: v >= 1),
        "--seed": (int, lambda v: -(2**63) <= v < 2**64),
        "--lr": (float, lambda v: m.isfinite(v) and v > 0),
        "--dropout": (float, lambda v: 0 <= v < 1),
        "--val-fraction": (float, lambda v: 0 < v < 1),
        "--momentum": (float, lambda v: 0 <= v < 1),
        "--clip": (float, lambda v: v > 0),
        "--clip-value": (float, lambda v: v > 0),
        "--threads": (int, lambda v: 0 <= v <= 1024),
        "--samples": (int, lambda v: v == 0),  # > 0 would sample from the stub
    }
    argv = ["train", "lm", "--no-progress", "--samples", "0", "--steps", steps]
    invalid, parsed = set(), {}
    for flag, text in flags.items():
        if flag == "--samples" and (parse(int, text) or 0) > 0:
            text = "0"  # samples would be drawn from the stub's model
        argv += [flag, text]
        kind, ok = valid_rules[flag]
        value = parse(kind, text)
        if value is None or not ok(value):
            invalid.add(flag)
        parsed[flag] = value
    s = parse(int, steps)
    if s is None or s < 1:
        invalid.add("--steps")
    seen = {}

    def stub(options, **kw):
        seen.update(options=options, **kw)
        record = {"options": {"level": "char", "seed": 0}, "steps": 1, "stopped": "steps"}
        record.update(seconds=0.0, tokens_per_second=0.0, threads=1, checkpoint="c", loss_plot=None)
        record.update(train_bits_per_char=1.0, val_bits_per_char=1.0)
        return record, types.SimpleNamespace(rank=0)

    real = lm_run.train_lm
    lm_run.train_lm = stub
    err = io.StringIO()
    try:
        with redirect_stderr(err), contextlib_redirect_stdout():
            try:
                status = main(argv)
            except SystemExit as exc:
                status = exc.code
    finally:
        lm_run.train_lm = real
    lines = err.getvalue().strip().splitlines()
    if invalid:
        assert status == 2 and len(lines) == 1, (argv, lines)
        assert any(flag in lines[0] for flag in invalid), (invalid, lines)
        assert not seen
        return
    assert status == 0, (argv, lines)
    opts = seen["options"]
    assert seen["steps"] == s
    for flag, value in parsed.items():
        if flag in ("--threads", "--samples"):
            continue
        got = getattr(opts, flag[2:].replace("-", "_"))
        assert got == value or (isinstance(value, float) and m.isnan(value)), (flag, got, value)


def contextlib_redirect_stdout():
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())


_FLAGS = [
    "--hidden",
    "--layers",
    "--seq-len",
    "--batch",
    "--embedding",
    "--eval-every",
    "--max-vocab",
    "--patience",
    "--seed",
    "--lr",
    "--dropout",
    "--val-fraction",
    "--momentum",
    "--clip",
    "--clip-value",
    "--threads",
    "--samples",
]
_VALUES = ["0", "1", "3", "-1", "2.5", "1e-3", "nan", "inf", "abc", "0.5", "1e38", "-0.0"]
_VALUES += ["100000", "99999999999999999999999"]


def _both_cli(fast, slow):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    strategies = dict(
        flags=st.dictionaries(st.sampled_from(_FLAGS), st.sampled_from(_VALUES), max_size=4),
        steps=st.sampled_from(["1", "5", "0", "-2", "x", "1.5"]),
    )
    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    quick = settings(max_examples=fast, derandomize=True, **common)(
        given(**strategies)(_cli_property)
    )
    many = settings(max_examples=slow, **common)(given(**strategies)(_cli_property))
    return quick, pytest.mark.slow(many)


test_train_lm_argument_parsing, test_train_lm_argument_parsing_slow = _both_cli(80, 3000)


def test_divergence_exits_1_without_calling_a_sick_checkpoint_good(tmp_path, corpus, capsys):
    out = tmp_path / "d"
    argv = ["train", "lm", "--data", corpus, "--steps", "20", "--out", str(out), *SMALL]
    argv += ["--optimizer", "sgd", "--lr", "1e38", "--eval-every", "1"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("rnnlab train lm: training stopped: 5 consecutive steps")
    assert err[-1].endswith("no checkpoint of a healthy state was written")
    assert "no checkpoint written (validation loss inf)" in err[1]
    assert not (out / "checkpoint.pt").exists()


def _sample_property(flags):
    """``rnnlab sample`` with drawn flag values on a tiny model: exit 2 with one stderr line
    naming an invalid flag, or exactly the text the library gives for the parsed values."""
    import contextlib
    import io
    import math as m

    import torch

    from rnnlab.data.tokenizers import CharTokenizer
    from rnnlab.train import lm_run
    from rnnlab.train.lm import LanguageModel, LMConfig

    torch.manual_seed(0)
    tok = CharTokenizer(["<unk>", "a", "b", "c", "d"])
    model = LanguageModel(LMConfig(vocab_size=5, embedding_size=3, hidden_size=4, num_layers=1))
    model.eval()

    def parse(kind, text):
        try:
            return kind(text)
        except ValueError:
            return None

    rules = {
        "--length": (int, lambda v: v >= 0, "length"),
        "--temperature": (float, lambda v: m.isfinite(v) and v >= 0, "temperature"),
        "--top-k": (int, lambda v: v >= 1, "top_k"),
        "--top-p": (float, lambda v: 0 < v <= 1, "top_p"),
        "--beam": (int, lambda v: v >= 1, "beam"),
        "--seed": (int, lambda v: -(2**63) <= v < 2**64, "seed"),
    }
    argv, invalid, kwargs = ["sample", "ckpt.pt", "--length", "4"], set(), {"length": 4}
    for flag, text in flags.items():
        argv += [flag, text]
        kind, ok, name = rules[flag]
        value = parse(kind, text)
        if value is None or not ok(value):
            invalid.add(flag)
        kwargs[name] = value
    real = lm_run.load_lm
    lm_run.load_lm = lambda path, device="cpu": (model, tok, {})
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = main(argv)
            except SystemExit as exc:
                status = exc.code
    finally:
        lm_run.load_lm = real
    lines = err.getvalue().strip().splitlines()
    if invalid:
        assert status == 2 and len(lines) == 1, (argv, lines)
        assert any(flag in lines[0] for flag in invalid), (invalid, lines)
        return
    assert status == 0, (argv, lines)
    assert out.getvalue() == lm_run.generate_text(model, tok, **kwargs) + "\n"


def _both_sample(fast, slow):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = {
        "--length": ["0", "3", "-1", "x", "2.5"],
        "--temperature": ["0", "1e-300", "0.7", "-1", "nan", "inf", "x"],
        "--top-k": ["1", "2", "9", "0", "-3", "x"],
        "--top-p": ["0.5", "1", "0", "1.5", "nan", "1e-300"],
        "--beam": ["1", "3", "0", "x"],
        "--seed": ["0", "-5", "99999999999999999999999", "x"],
    }
    flags = st.fixed_dictionaries({}, optional={k: st.sampled_from(v) for k, v in values.items()})
    common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    quick = settings(max_examples=fast, derandomize=True, **common)(
        given(flags=flags)(_sample_property)
    )
    many = settings(max_examples=slow, **common)(given(flags=flags)(_sample_property))
    return quick, pytest.mark.slow(many)


test_sample_argument_parsing, test_sample_argument_parsing_slow = _both_sample(40, 1500)
