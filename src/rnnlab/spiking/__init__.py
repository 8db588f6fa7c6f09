"""Spiking neurons and spike-timing-dependent plasticity.

- :mod:`~rnnlab.spiking.neurons`: :class:`LIF` leaky integrate-and-fire populations
  (current- or conductance-based input, exact exponential integration of the membrane),
  batched (B, N) state :class:`LIFState`;
- :mod:`~rnnlab.spiking.inputs`: :func:`poisson_spikes`, :func:`correlated_poisson_spikes`
  and the sources a run reads, :class:`PoissonInput`, :class:`SpikeTrain`;
- :mod:`~rnnlab.spiking.stdp`: :class:`STDP`, pair-based plasticity through exactly
  decaying traces (additive or multiplicative, hard or soft bounds, all-to-all or nearest
  pairing, mean / sum / per-trial reduction over the batch);
- :mod:`~rnnlab.spiking.network`: :class:`Network`, :class:`Connection` and the
  clock-driven :func:`simulate`.

Units: ms, mV, Hz; conductances in units of the leak conductance.
"""

from rnnlab.spiking.inputs import (
    PoissonInput,
    SpikeSource,
    SpikeTrain,
    correlated_poisson_spikes,
    poisson_spikes,
)
from rnnlab.spiking.network import Connection, Network, NetworkState, SimulationResult, simulate
from rnnlab.spiking.neurons import LIF, LIFState
from rnnlab.spiking.stdp import STDP, STDPState

__all__ = [
    "LIF",
    "STDP",
    "Connection",
    "LIFState",
    "Network",
    "NetworkState",
    "PoissonInput",
    "STDPState",
    "SimulationResult",
    "SpikeSource",
    "SpikeTrain",
    "correlated_poisson_spikes",
    "poisson_spikes",
    "simulate",
]
