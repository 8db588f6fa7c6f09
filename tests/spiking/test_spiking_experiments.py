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


def test_stdp_song2000_quick(tmp_path, capsys):
    rec = _reproduce("stdp-song2000", tmp_path, capsys)
    m = rec["metrics"]
    assert rec["success"] is True  # the correlated group's weights grew more than the rest
    assert m["correlated_group_near_gmax"] > m["uncorrelated_near_gmax"]
    # fixed weights: the output rate grows with the input rate
    fixed = m["output_rate_fixed_weights_hz"]
    assert fixed == sorted(fixed) and fixed[0] > 0
    assert (tmp_path / "stdp_song2000.png").exists()


def test_stdp_digits_quick(tmp_path, capsys):
    rec = _reproduce("stdp-digits", tmp_path, capsys)
    m = rec["metrics"]
    assert m["test_images"] == 32 and m["excitatory_neurons"] == 20
    assert 0.0 <= m["test_accuracy"] <= 1.0 and m["mean_spikes_per_image"] > 0
    assert (tmp_path / "stdp_digits_weights.png").exists()
