"""Recurrent cells and layers.

A :class:`Cell` is the math of one step of one layer and direction; :class:`Recurrent`
runs cells over time (lengths, directions, stacking, dropout, learned initial states,
engines). Every layer runs batch-first ``(B, T, F)`` input (or unbatched ``(T, F)``),
takes an optional initial ``state`` and ``lengths``, and returns ``(outputs,
final_state)``. How the loop over time runs is the layer's ``engine``
(:mod:`rnnlab.engines`): "loop" (autograd through the step, the reference), "bptt"
(hand-written backpropagation through time), "fused" (torch's kernels), "rtrl", or
"auto" (fused where it applies, else bptt, else loop).
"""

from __future__ import annotations

from torch import Tensor

from rnnlab.engines import ENGINE_NAMES as ENGINES
from rnnlab.errors import InputError
from rnnlab.nn import init  # the initialisers: rnnlab.nn.init.echo_state_, ...
from rnnlab.nn.cell import Cell, input_projection
from rnnlab.nn.fully_recurrent import FullyRecurrent
from rnnlab.nn.gru import GRU, GRUCell
from rnnlab.nn.lstm import LSTM, LSTMCell
from rnnlab.nn.mrnn import MultiplicativeRNN, MultiplicativeRNNCell
from rnnlab.nn.recurrent import Recurrent
from rnnlab.nn.srn import SRN, SRNCell

CELLS = ("lstm", "lstm1997", "lstm-peephole", "gru", "srn", "srn-relu", "srn-sigmoid", "mrnn")


def make_layer(
    cell: str, input_size: int, hidden_size: int, num_layers: int = 1, **options
) -> Recurrent:
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
    "Cell",
    "FullyRecurrent",
    "GRUCell",
    "LSTMCell",
    "MultiplicativeRNN",
    "MultiplicativeRNNCell",
    "Recurrent",
    "SRNCell",
    "detach_state",
    "init",
    "input_projection",
    "make_layer",
]
