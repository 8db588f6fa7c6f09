"""How a recurrent layer runs over time. Every engine gives the same numbers.

- ``loop``: autograd through a Python loop over the cell's step
  (:meth:`rnnlab.nn.RecurrentLayer._loop`); the readable reference and the
  specification of the others.
- ``bptt``: a hand-written backpropagation-through-time kernel per cell family, one
  ``torch.autograd.Function`` over the whole sequence, next to the cell it
  differentiates (:class:`rnnlab.nn.lstm.LSTMRecurrence`, :class:`rnnlab.nn.gru.GRURecurrence`,
  :class:`rnnlab.nn.srn.SRNRecurrence`). The input projections of all steps are one
  matmul before it, the recurrent weight gradients one matmul after its backward loop.
- ``fused``: torch's own kernels (``torch._VF.lstm / gru / rnn_tanh / rnn_relu``; oneDNN
  on CPU, cuDNN on GPU) for exactly the configurations they implement
  (:func:`rnnlab.nn._runner.call_fused`).
- ``auto`` (default): ``fused`` where it applies, else ``bptt``.
- ``rtrl``: real-time recurrent learning (:mod:`rnnlab.engines.rtrl`), exact gradients
  carried forward in time, for small single-layer networks.

Truncated BPTT needs no engine of its own: run the layer chunk by chunk, passing the
final state of one chunk, detached (:func:`rnnlab.nn.detach_state`), as the initial
state of the next.
"""

from rnnlab.nn._runner import ENGINES

__all__ = ["ENGINES"]
