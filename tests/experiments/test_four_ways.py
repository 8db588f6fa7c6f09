"""``rnnlab reproduce four-ways --quick``: every method runs, reports its row, and the
learning-curve figure is written (slow: about 25 s on one core)."""

import json

import pytest

from rnnlab.cli import main


@pytest.mark.slow
def test_four_ways_quick(tmp_path, capsys):
    assert main(["reproduce", "four-ways", "--quick", "--json", "--out", str(tmp_path)]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    m = rec["metrics"]
    for key in ("lstm", "hf", "esn", "echo_state", "plain"):
        assert 0 <= m[f"{key}_wrong"] <= m["test_sequences"]
        assert m[f"{key}_sequences"] > 0
    assert m["hf_steps"] >= 1
    # at T = 10 the LSTM and HF both learn well below predicting the mean
    assert m["lstm_test_mse"] < 0.2 * m["constant_baseline_mse"]
    assert m["hf_test_mse"] < 0.5 * m["constant_baseline_mse"]
    assert (tmp_path / "four_ways_learning_curves.png").exists()
    assert (
        "Hessian-free" in (tmp_path / "report.md").read_text()
        or "HF" in (tmp_path / "report.md").read_text()
    )
