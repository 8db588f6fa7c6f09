"""Quick presets of ``rnnlab reproduce binary-addition`` and ``parity``, and the random
guessing kernel against a hand-built parity net."""

import json

import torch

from rnnlab.cli import main
from rnnlab.experiments.parity import a1_forward
from rnnlab.tasks import parity


def _reproduce(name, tmp_path, capsys):
    assert main(["reproduce", name, "--quick", "--json", "--out", str(tmp_path)]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_binary_addition_quick(tmp_path, capsys):
    rec = _reproduce("binary-addition", tmp_path, capsys)
    m = rec["metrics"]
    assert rec["success"] is True
    assert m["test_bits"] == 64 and m["test_error_rate"] == 0.0
    assert m["test_sums_correct"] == m["test_sums"]
    assert m["cluster_purity"] >= 0.99 and m["transitions_match_automaton"] is True
    assert (tmp_path / "hidden_states.png").exists()
    assert "carry" in (tmp_path / "report.md").read_text()


def test_parity_quick(tmp_path, capsys):
    rec = _reproduce("parity", tmp_path, capsys)
    m = rec["metrics"]
    assert m["test_error_rate_len100"] == 0.0
    assert m["guess_solutions"] in (0, 1)
    assert m["guessed_nets_correct_on_1000_test"] == m["guess_solutions"]
    assert (tmp_path / "parity.png").exists()


def test_a1_hand_built_parity_net():
    """Hidden unit = AND(input is +1, previous output); output = XOR via the hidden unit:
    the guessing kernel runs it as the exact parity automaton."""
    W = torch.tensor(
        [
            [[10.0, 0.0, 20.0, -25.0], [10.0, -40.0, 20.0, -5.0]],  # a solver
            [[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 20.0]],  # always 1
        ]
    )
    b = parity.generate(300, 50, 80, seed=0)
    y = a1_forward(W, b.inputs[..., 0])  # (2, N)
    correct = (y > 0.5) == (b.targets[:, 0] > 0.5)[None]
    assert bool(correct[0].all())
    assert 0.3 < float(correct[1].float().mean()) < 0.7
