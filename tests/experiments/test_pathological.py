"""``rnnlab reproduce pathological --quick``: both methods run on two problems through the
Trainer, every row is reported and the figure written; HF learns well past chance."""

import json

import pytest

from rnnlab.cli import main


@pytest.mark.slow
def test_pathological_quick(tmp_path, capsys):
    assert main(["reproduce", "pathological", "--quick", "--json", "--out", str(tmp_path)]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    m = rec["metrics"]
    n = m["test_sequences"]
    for name in ("addition_T10", "temporal2_T10"):
        for method in ("hf", "sgd"):
            key = f"{name}_{method}_seed0"
            assert 0 <= m[f"{key}_wrong"] <= n
            assert m[f"{key}_sequences"] > 0
    # chance: predicting the mean of x + y gives MSE Var(x + y) = 1/6; 3 of 4 classes wrong
    assert m["addition_T10_hf_seed0_test_loss"] < 0.5 / 6
    assert m["temporal2_T10_hf_seed0_wrong"] < 0.4 * n
    assert m["cells"] == 2 and 0 <= m["hf_solved"] <= 2
    assert rec["success"] == (m["hf_solved"] >= max(1, m["sgd_solved"]))
    report = (tmp_path / "report.md").read_text()
    assert "| temporal2 | 10 | HF |" in report and "Published" in report
    assert (tmp_path / "pathological_curves.png").exists()
