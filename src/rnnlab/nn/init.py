r"""Initialisers for recurrent weight matrices (in place, like ``torch.nn.init``).

=======================  ============================================================
initialiser              what it gives
=======================  ============================================================
:func:`echo_state_`      sparse Gaussian, ``connections`` nonzero weights per row
                         (incoming to each unit), rescaled to spectral radius
                         :math:`\rho(W)` = ``spectral_radius`` (Jaeger 2001; Sutskever,
                         Martens, Dahl & Hinton 2013 use 15 connections and 1.1)
:func:`identity_`        :math:`W = s I` (IRNN, Le, Jaitly & Hinton 2015: ReLU units,
                         :math:`W_{hh} = I`, biases 0)
:func:`orthogonal_`      :math:`W^\top W = g^2 I` (Saxe et al. 2014), from the QR of a
                         Gaussian matrix, signs fixed so it is Haar distributed
:func:`sparse_`          Martens (2010): ``connections`` nonzero N(0, ``std``\ :sup:`2`)
                         weights per row, the rest 0
=======================  ============================================================

A weight of shape (H_out, H_in) maps the previous layer (or state) to H_out units, so
"incoming weights of a unit" are one row. ``generator`` makes each draw reproducible.
For a stacked recurrent weight (torch's ``weight_hh_l0`` of an LSTM, (4H, H)), apply the
initialiser to each (H, H) block: ``for blk in w.detach().view(4, H, H): orthogonal_(blk)``.

Example (Sutskever et al. 2013: a tanh RNN with echo-state recurrent weights)::

    from rnnlab.nn import SRN
    from rnnlab.nn.init import echo_state_, sparse_
    rnn = SRN(2, 100)
    echo_state_(rnn.weight_hh_l0, spectral_radius=1.1, connections=15)
    sparse_(rnn.weight_ih_l0, connections=15, std=0.1)
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab.errors import InputError, InputTypeError

__all__ = ["echo_state_", "identity_", "orthogonal_", "sparse_", "spectral_radius"]


def _check_matrix(name: str, w) -> None:
    if not isinstance(w, Tensor):
        raise InputTypeError(f"{name}: expected a tensor, received {type(w).__name__}")
    if w.dim() != 2:
        raise InputError(f"{name}: expected a 2-d weight (H_out, H_in), received shape "
                         f"{tuple(w.shape)}")  # fmt: skip


def _check_connections(connections, fan_in: int) -> int:
    if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
        raise InputError(f"connections: expected an integer >= 1, received {connections!r}")
    if connections > fan_in:
        raise InputError(
            f"connections: expected at most the {fan_in} inputs of each unit, received "
            f"{connections}"
        )
    return connections


def _positive(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise InputError(f"{name}: expected a number > 0, received {v!r}")
    return float(v)


def spectral_radius(w: Tensor) -> float:
    """The largest eigenvalue modulus of a square matrix (computed in float64)."""
    _check_matrix("w", w)
    if w.shape[0] != w.shape[1]:
        raise InputError(f"w: expected a square matrix, received shape {tuple(w.shape)}")
    return float(torch.linalg.eigvals(w.detach().to("cpu", torch.float64)).abs().max())


def _sparse_gaussian(shape, connections: int, std: float, generator) -> Tensor:
    """(H_out, H_in) float64 with ``connections`` N(0, std^2) entries per row."""
    rows, cols = shape
    keys = torch.rand(rows, cols, generator=generator, dtype=torch.float64)
    idx = keys.argsort(dim=1)[:, :connections]  # (H_out, connections): a random subset
    values = std * torch.randn(rows, connections, generator=generator, dtype=torch.float64)
    out = torch.zeros(rows, cols, dtype=torch.float64)
    return out.scatter_(1, idx, values)


@torch.no_grad()
def sparse_(w: Tensor, connections: int = 15, std: float = 1.0, *, generator=None) -> Tensor:
    """Martens (2010) sparse initialisation: each unit (row) gets ``connections`` nonzero
    weights drawn from N(0, std^2) at random positions, the rest are 0. Returns ``w``."""
    _check_matrix("w", w)
    _check_connections(connections, w.shape[1])
    std = _positive("std", std)
    w.copy_(_sparse_gaussian(w.shape, connections, std, generator).to(w.dtype))
    return w


@torch.no_grad()
def echo_state_(
    w: Tensor,
    spectral_radius: float = 1.1,
    connections: int | None = 15,
    *,
    generator=None,
) -> Tensor:
    """Echo-state initialisation of a square recurrent weight: sparse Gaussian with
    ``connections`` nonzero weights per row (None: dense, or all when the matrix is
    smaller), rescaled so its spectral radius is ``spectral_radius``. Returns ``w``."""
    _check_matrix("w", w)
    if w.shape[0] != w.shape[1]:
        raise InputError(f"w: expected a square recurrent weight, received shape "
                         f"{tuple(w.shape)}")  # fmt: skip
    target = _positive("spectral_radius", spectral_radius)
    n = w.shape[1]
    k = n if connections is None else min(_check_connections(connections, 10**12), n)
    for _ in range(100):  # a sparse draw can be nilpotent (radius 0) on tiny matrices
        m = _sparse_gaussian(w.shape, k, 1.0, generator)
        radius = float(torch.linalg.eigvals(m).abs().max())
        if radius > 1e-8:
            break
    else:
        raise InputError(f"connections: {k} per unit gives a nilpotent matrix; use more")
    w.copy_((m * (target / radius)).to(w.dtype))
    return w


@torch.no_grad()
def identity_(w: Tensor, scale: float = 1.0) -> Tensor:
    """IRNN (Le et al. 2015): ``w`` = scale * I (square). Returns ``w``."""
    _check_matrix("w", w)
    if w.shape[0] != w.shape[1]:
        raise InputError(f"w: expected a square recurrent weight, received shape "
                         f"{tuple(w.shape)}")  # fmt: skip
    scale = _positive("scale", scale)
    w.copy_(scale * torch.eye(w.shape[0], dtype=w.dtype, device=w.device))
    return w


@torch.no_grad()
def orthogonal_(w: Tensor, gain: float = 1.0, *, generator=None) -> Tensor:
    """A (semi-)orthogonal matrix times ``gain``: rows orthonormal when H_out <= H_in,
    columns otherwise; Q of the QR of a Gaussian matrix with R's diagonal made positive
    (so Q is Haar distributed; Mezzadri 2007). Returns ``w``."""
    _check_matrix("w", w)
    gain = _positive("gain", gain)
    rows, cols = w.shape
    a = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)  # q: (max, min), orthonormal columns
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(()))
    q = q if rows >= cols else q.T  # (rows, cols)
    w.copy_((gain * q).to(w.dtype))
    return w
