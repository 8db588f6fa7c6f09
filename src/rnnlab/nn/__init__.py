"""Recurrent cells and layers.

Every layer runs batch-first ``(B, T, F)`` input (or unbatched ``(T, F)``), takes an
optional initial ``state`` and ``lengths``, and returns ``(outputs, final_state)``.
How the loop over time runs is the layer's ``engine``: "loop" (autograd through the
step, the reference), "bptt" (hand-written backpropagation through time), "fused"
(torch's kernels) or "auto" (fused where it applies, else bptt).
"""

from __future__ import annotations

from torch import Tensor

from rnnlab.errors import InputError
from rnnlab.nn._runner import ENGINES, RecurrentLayer
from rnnlab.nn.fully_recurrent import FullyRecurrent
from rnnlab.nn.gru import GRU
from rnnlab.nn.lstm import LSTM
from rnnlab.nn.mrnn import MultiplicativeRNN
from rnnlab.nn.srn import SRN

CELLS = ("lstm", "lstm1997", "lstm-peephole", "gru", "srn", "srn-relu", "srn-sigmoid", "mrnn")


def make_layer(
    cell: str, input_size: int, hidden_size: int, num_layers: int = 1, **options
) -> RecurrentLayer:
    """A recurrent stack by name: one of :data:`CELLS`; ``options`` go to the layer.

    "lstm1997" is ``LSTM(forget_gate=False)``, "lstm-peephole" ``LSTM(peepholes=True)``,
    "srn-relu" and "srn-sigmoid" set the SRN's nonlinearity, "mrnn" is the multiplicative RNN.
    """
    presets = {
        "lstm": (LSTM, {}),
        "lstm1997": (LSTM, {"forget_gate": False}),
        "lstm-peephole": (LSTM, {"peepholes": True}),
        "gru": (GRU, {}),
        "srn": (SRN, {}),
        "srn-relu": (SRN, {"nonlinearity": "relu"}),
        "srn-sigmoid": (SRN, {"nonlinearity": "sigmoid"}),
        "mrnn": (MultiplicativeRNN, {}),
    }
    if cell not in presets:
        raise InputError(f"cell: expected one of {', '.join(CELLS)}, received {cell!r}")
    cls, preset = presets[cell]
    return cls(input_size, hidden_size, num_layers, **preset, **options)


def detach_state(state):
    """The same state with every tensor detached: carry it across chunks for truncated
    BPTT (gradients stop at the chunk boundary, values flow on)."""
    if state is None:
        return None
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


__all__ = [
    "CELLS",
    "ENGINES",
    "GRU",
    "LSTM",
    "SRN",
    "FullyRecurrent",
    "MultiplicativeRNN",
    "RecurrentLayer",
    "detach_state",
    "make_layer",
]
