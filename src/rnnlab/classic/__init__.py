"""Classical sequence models: linear and neural autoregression, linear dynamical systems
(Kalman filter, RTS smoother, EM) and hidden Markov models.

Each model file holds pure tensor kernels beside one ``nn.Module`` class whose
``forward`` is the differentiable log-likelihood, with ``fit``, ``score``, ``predict`` and
``sample``.
"""

from rnnlab.classic._em import ConvergenceWarning
from rnnlab.classic.ar import LinearAR
from rnnlab.classic.hmm import HMM
from rnnlab.classic.lds import (
    FilterResult,
    LinearDynamicalSystem,
    SmootherResult,
    kalman_filter,
    rts_smoother,
)
from rnnlab.classic.nplm import NeuralAR

__all__ = [
    "HMM",
    "ConvergenceWarning",
    "FilterResult",
    "LinearAR",
    "LinearDynamicalSystem",
    "NeuralAR",
    "SmootherResult",
    "kalman_filter",
    "rts_smoother",
]
