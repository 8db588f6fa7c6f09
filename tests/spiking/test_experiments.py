"""Quick presets of the spiking reproductions through the command line."""

import json

from rnnlab.cli import main


def _reproduce(name, tmp_path, capsys):
    assert main(["reproduce", name, "--quick", "--json", "--out", str(tmp_path)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_stdp_window_quick(tmp_path, capsys):
    rec = _reproduce("stdp-window", tmp_path, capsys)
    m = rec["metrics"]
    assert rec["success"] is True
    assert m["realised_intervals_match"] is True and m["max_abs_error_vs_formula"] < 1e-12
    assert m["peak_potentiation_at_ms"] == 0.0 and m["peak_depression"] < 0
    assert (tmp_path / "stdp_window.png").exists()
