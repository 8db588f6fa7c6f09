"""Echo state networks (reservoir computing): a fixed random reservoir, a trained readout.

:class:`EchoStateNetwork` is the model (:mod:`rnnlab.esn.esn`); the reservoir's weights and
loop are in :mod:`rnnlab.esn.reservoir`, the readouts (streamed ridge regression, RLS,
FORCE) in :mod:`rnnlab.esn.readouts`, and the metrics (NRMSE with an explicit
normalisation, memory capacity, effective spectral radius, Lyapunov exponent, dynamics
regime) in :mod:`rnnlab.esn.metrics`. docs/esn.md is the user guide.
"""

from rnnlab.esn.esn import EchoStateNetwork, ESNState
from rnnlab.esn.metrics import (
    DynamicsRegime,
    MemoryCapacity,
    dynamics_regime,
    effective_spectral_radius,
    lyapunov_exponent,
    memory_capacity,
    nrmse,
)
from rnnlab.esn.readouts import RLS, RidgeAccumulator, ridge_solve
from rnnlab.esn.reservoir import spectral_radius

__all__ = [
    "RLS",
    "DynamicsRegime",
    "ESNState",
    "EchoStateNetwork",
    "MemoryCapacity",
    "RidgeAccumulator",
    "dynamics_regime",
    "effective_spectral_radius",
    "lyapunov_exponent",
    "memory_capacity",
    "nrmse",
    "ridge_solve",
    "spectral_radius",
]
