"""The quick preset of ``rnnlab reproduce gradients``."""

import json

from rnnlab.cli import main


def test_gradients_quick(tmp_path, capsys):
    assert main(["reproduce", "gradients", "--quick", "--json", "--out", str(tmp_path)]) == 0
    rec = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rec["experiment"] == "gradients" and rec["success"] is True
    m = rec["metrics"]
    assert abs(m["scalar_w1.1_autograd_srn"] - 117.4) < 0.01
    assert abs(m["scalar_w0.9_autograd_linear"] - 0.00515) < 5e-6
    assert m["bistable_boundary_grad"] == 2.0**30
    for name in ("gradient_flow_adding", "logistic_map", "two_attractors", "clipping"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    assert "gradients" in (tmp_path / "report.md").read_text()
