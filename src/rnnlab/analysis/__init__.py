"""Diagnostics of why recurrent networks are hard to train: gradient flow through time
(:mod:`gradient_flow`), the scalar example (:mod:`scalar`), iterated maps and attractors
(:mod:`attractors`), and their figures (:mod:`plots`)."""

from rnnlab.analysis import attractors, gradient_flow, scalar
from rnnlab.analysis.gradient_flow import (
    StepGradients,
    hidden_jacobian_norms,
    loss_gradient_by_step,
    run_with_state_probes,
)

__all__ = [
    "StepGradients",
    "attractors",
    "gradient_flow",
    "hidden_jacobian_norms",
    "loss_gradient_by_step",
    "run_with_state_probes",
    "scalar",
]
