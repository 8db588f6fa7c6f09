"""How a recurrent stack runs over time. Every engine gives the same numbers.

- ``loop`` (:mod:`rnnlab.engines.loop`): autograd through a Python loop over the cell's
  ``step``; the readable reference and the specification of the others. Every cell runs
  on it.
- ``bptt`` (:mod:`rnnlab.engines.bptt`): the cell's hand-written backpropagation-through-
  time kernel (``Cell.recurrence``, one ``torch.autograd.Function`` over the whole
  sequence, next to the cell it differentiates).
- ``fused`` (:mod:`rnnlab.engines.fused`): torch's own kernels (oneDNN on CPU, cuDNN on
  GPU) for exactly the configurations they implement.
- ``compiled`` (:mod:`rnnlab.engines.compiled`): the ``bptt`` kernels with their loops over
  time in C++ (a torch extension built on first use and cached); the LSTM family.
- ``generic`` (:mod:`rnnlab.engines.generic`): any cell from its step alone, the step and
  its vjp compiled with ``torch.compile``, no autograd graph per step (``loop`` where no
  compiler exists).
- ``rtrl`` (:mod:`rnnlab.engines.rtrl`): real-time recurrent learning, exact gradients
  carried forward in time, for one small SRN layer.
- ``auto`` (the default): ``fused`` where it applies, else (on the CPU) ``compiled`` where
  the cell has C++ loops and the extension builds, else ``bptt`` where the cell has a
  kernel, else ``loop``.

An engine is an object with ``why_not(layer) -> str | None`` (None: it can run this layer
in its current mode; otherwise the reason) and ``run(layer, x, state, lengths) ->
(outputs, final_state)``. Truncated BPTT needs no engine of its own: run the layer chunk
by chunk, passing the detached final state of one chunk as the initial state of the next.
"""

from __future__ import annotations

from rnnlab.engines.bptt import BPTTEngine
from rnnlab.engines.compiled import CompiledEngine
from rnnlab.engines.fused import FusedEngine
from rnnlab.engines.generic import GenericEngine
from rnnlab.engines.loop import LoopEngine
from rnnlab.engines.rtrl import RTRLEngine

# by name; "auto" is resolved by rnnlab.nn.Recurrent.resolved_engine
ENGINES = {
    e.name: e
    for e in (
        FusedEngine(),
        BPTTEngine(),
        CompiledEngine(),
        LoopEngine(),
        RTRLEngine(),
        GenericEngine(),
    )
}
ENGINE_NAMES = ("auto", *ENGINES)

__all__ = ["ENGINES", "ENGINE_NAMES"]
