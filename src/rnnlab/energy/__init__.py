"""Associative memories and energy-based models: Hopfield networks (classical and modern),
the Ising model with its Monte Carlo samplers and exact results, Boltzmann machines,
restricted and deep Boltzmann machines.

Each model file holds pure tensor kernels (energies, update rules, samplers) beside one
readable ``nn.Module`` class whose docstring states the energy and the update rule.
"""

from rnnlab.energy.boltzmann import BoltzmannGradient, BoltzmannMachine
from rnnlab.energy.dbm import DBM
from rnnlab.energy.hopfield import Hopfield, RecallResult
from rnnlab.energy.ising import (
    CRITICAL_TEMPERATURE,
    IsingEstimate,
    IsingModel,
    IsingObservables,
    IsingRun,
    Measurement,
    estimate_observables,
    onsager_energy,
    onsager_magnetization,
)
from rnnlab.energy.modern_hopfield import HopfieldLayer, ModernHopfield
from rnnlab.energy.rbm import RBM, CDResult, PartitionEstimate

__all__ = [
    "CRITICAL_TEMPERATURE",
    "DBM",
    "RBM",
    "BoltzmannGradient",
    "BoltzmannMachine",
    "CDResult",
    "Hopfield",
    "HopfieldLayer",
    "IsingEstimate",
    "IsingModel",
    "IsingObservables",
    "IsingRun",
    "Measurement",
    "ModernHopfield",
    "PartitionEstimate",
    "RecallResult",
    "estimate_observables",
    "onsager_energy",
    "onsager_magnetization",
]
