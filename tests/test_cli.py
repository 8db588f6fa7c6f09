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
