"""The SRN's nonlinearities and their derivatives written in terms of the output
(shared by the SRN's kernels and the RTRL engine)."""

from __future__ import annotations

import torch
from torch import Tensor

NONLINEARITIES = ("tanh", "sigmoid", "relu")
ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}
ACT_ = {"tanh": Tensor.tanh_, "sigmoid": Tensor.sigmoid_, "relu": Tensor.relu_}  # in place


def activation_derivative(h: Tensor, nonlinearity: str) -> Tensor:
    """phi'(a) written in terms of h = phi(a)."""
    if nonlinearity == "tanh":
        return 1 - h * h
    if nonlinearity == "sigmoid":
        return h * (1 - h)
    return (h > 0).to(h.dtype)
