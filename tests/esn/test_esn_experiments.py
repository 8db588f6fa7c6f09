"""Quick presets of the ESN reproductions through the command line (``rnnlab reproduce``)."""

import json

import pytest

from rnnlab.cli import main


def _reproduce(name, tmp_path, capsys):
    assert main(["reproduce", name, "--quick", "--json", "--out", str(tmp_path)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_mackey_glass_quick(tmp_path, capsys):
    rec = _reproduce("mackey-glass", tmp_path, capsys)
    m = rec["metrics"]
    assert rec["success"] is True
    assert m["log10_nrmse84"] < -2.0 and m["one_step_nrmse"] < 1e-3
    assert (tmp_path / "mackey_glass_free_run.png").exists()


def test_narma10_quick(tmp_path, capsys):
    rec = _reproduce("narma10", tmp_path, capsys)
    m = rec["metrics"]
    assert rec["success"] is True
    assert m["nmse"] == pytest.approx(m["nrmse"] ** 2)
    assert m["nmse"] < 0.5 * m["nmse_linear_delay_line"]


def test_memory_capacity_quick(tmp_path, capsys):
    rec = _reproduce("memory-capacity", tmp_path, capsys)
    m = rec["metrics"]
    assert rec["success"] is True and m["bound_holds"] is True
    assert (tmp_path / "memory_capacity.png").exists()
