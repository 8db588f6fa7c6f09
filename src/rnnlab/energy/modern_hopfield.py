r"""Modern (dense, continuous) Hopfield networks (Ramsauer et al. 2020, "Hopfield Networks
is All You Need"): exponentially many continuous patterns stored in one energy whose
one-step update is the attention of transformers.

.. math::

    E(\xi) = -\operatorname{lse}(\beta, X^\top \xi) + \tfrac12 \xi^\top \xi
        + \beta^{-1} \ln N + \tfrac12 M^2, \qquad
    \operatorname{lse}(\beta, z) = \beta^{-1} \ln \sum_{i=1}^N e^{\beta z_i}

.. math::

    \xi^{\text{new}} = X \operatorname{softmax}(\beta X^\top \xi)

(Ramsauer et al. eqs. 2-3). The update is the concave-convex procedure on E, so it never
increases E (their Theorem 1) and it retrieves a well separated pattern in one step (their
Theorem 4). With queries R, keys K and values V the update reads
:math:`\operatorname{softmax}(\beta R K^\top) V`; :class:`HopfieldLayer` adds learned
projections (their eq. 10, :math:`Z = \operatorname{softmax}(\beta R W_Q W_K^\top Y^\top)
Y W_K W_V`).

==============  =========================================================
symbol          meaning
==============  =========================================================
N, d            number of stored patterns, their dimension
X               stored patterns as columns; here rows, (N, d) (``patterns``)
xi              state / query, (B, d) (or (..., S, d) in the layer form)
beta            inverse temperature
M               max_i ||x_i||, the largest pattern norm
==============  =========================================================
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rnnlab._validation import check_positive_int, check_rank, check_tensor, describe
from rnnlab.errors import InputError


def _check_beta(beta: object) -> float:
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta > 0:
        raise InputError(f"beta: expected a number > 0, received {beta!r}")
    if not math.isfinite(beta):
        raise InputError(f"beta: expected a finite number, received {beta!r}")
    return float(beta)


# --------------------------------------------------------------------------- kernels


def modern_hopfield_energy(xi: torch.Tensor, patterns: torch.Tensor, beta: float) -> torch.Tensor:
    """E(xi) (Ramsauer et al. eq. 2) for states xi (..., d) and patterns (N, d); returns (...)."""
    N = patterns.shape[0]
    scores = beta * (xi @ patterns.T)  # (..., N)
    lse = torch.logsumexp(scores, dim=-1) / beta
    big_m = patterns.norm(dim=-1).max()
    return -lse + 0.5 * (xi * xi).sum(-1) + math.log(N) / beta + 0.5 * big_m**2


def modern_hopfield_update(
    xi: torch.Tensor, patterns: torch.Tensor, beta: float, values: torch.Tensor | None = None
) -> torch.Tensor:
    """One update xi <- X softmax(beta X^T xi) (eq. 3) for xi (..., d), patterns (N, d);
    with ``values`` (N, d_v), softmax(beta xi X^T) V instead. Returns (..., d) or (..., d_v)."""
    attn = torch.softmax(beta * (xi @ patterns.transpose(-1, -2)), dim=-1)  # (..., N)
    return attn @ (patterns if values is None else values)


def hopfield_attention(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, beta: float, steps: int = 1
) -> torch.Tensor:
    """softmax(beta Q K^T) V, after ``steps - 1`` updates of the queries on the keys
    (Q <- softmax(beta Q K^T) K). queries (..., S, d), keys (..., N, d), values (..., N, d_v)
    (batch dimensions broadcast). Returns (..., S, d_v)."""
    q = queries
    for _ in range(steps - 1):
        q = torch.softmax(beta * (q @ keys.transpose(-1, -2)), dim=-1) @ keys  # (..., S, d)
    return torch.softmax(beta * (q @ keys.transpose(-1, -2)), dim=-1) @ values  # (..., S, d_v)


# --------------------------------------------------------------------------- model


class ModernHopfield(nn.Module):
    r"""A modern Hopfield network with inverse temperature ``beta`` (see the module
    docstring for the energy, the update and the symbols).

    As a memory: :meth:`store` patterns (N, d), then :meth:`energy`, :meth:`update` (one
    step) and :meth:`retrieve` (steps until the state stops moving). As a layer:
    ``forward(queries, keys=None, values=None)`` returns ``softmax(beta Q K^T) V``, after
    ``steps - 1`` updates of the queries; keys default to the stored patterns and values to
    the keys. Everything is differentiable (queries, keys, values and stored patterns).

    Example::

        memory = ModernHopfield(beta=8.0).store(patterns)  # (N, d)
        retrieved = memory.update(noisy)                    # (B, d)
    """

    def __init__(
        self,
        beta: float = 1.0,
        steps: int = 1,
        patterns: torch.Tensor | None = None,
    ):
        super().__init__()
        self.beta = _check_beta(beta)
        self.steps = check_positive_int("steps", steps)
        self.register_buffer("patterns", None)
        if patterns is not None:
            self.store(patterns)

    def extra_repr(self) -> str:
        stored = None if self.patterns is None else tuple(self.patterns.shape)
        return f"beta={self.beta}, steps={self.steps}, patterns={stored}"

    def store(self, patterns: torch.Tensor) -> ModernHopfield:
        """Store ``patterns`` (N, d) (real vectors). Returns self."""
        check_tensor("patterns", patterns)
        check_rank("patterns", patterns, (2,), "(N, d)")
        if patterns.shape[0] < 1 or not patterns.is_floating_point():
            raise InputError(
                f"patterns: expected a floating (N, d) tensor with N >= 1, received "
                f"{describe(patterns)}"
            )
        self.patterns = patterns
        return self

    def _stored(self, xi: torch.Tensor, name: str = "xi") -> torch.Tensor:
        if self.patterns is None:
            raise InputError("patterns: none stored; call store(patterns) first")
        check_tensor(name, xi)
        if xi.shape[-1] != self.patterns.shape[-1]:
            raise InputError(
                f"{name}: expected last dimension {self.patterns.shape[-1]} (the pattern "
                f"dimension), received shape {tuple(xi.shape)}"
            )
        return self.patterns

    def energy(self, xi: torch.Tensor) -> torch.Tensor:
        """E(xi) for states (..., d); returns (...)."""
        return modern_hopfield_energy(xi, self._stored(xi), self.beta)

    def update(self, xi: torch.Tensor) -> torch.Tensor:
        """One update xi <- X softmax(beta X^T xi) for states (..., d)."""
        return modern_hopfield_update(xi, self._stored(xi), self.beta)

    def retrieve(self, xi: torch.Tensor, max_steps: int = 100, tol: float = 1e-6) -> torch.Tensor:
        """Update until no state moves by more than ``tol`` (max norm) or ``max_steps``."""
        X = self._stored(xi)
        check_positive_int("max_steps", max_steps)
        for _ in range(max_steps):
            new = modern_hopfield_update(xi, X, self.beta)
            if float((new - xi).abs().max()) <= tol:
                return new
            xi = new
        return xi

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor | None = None,
        values: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """softmax(beta Q K^T) V for queries (..., S, d); keys (..., N, d) default to the
        stored patterns, values (..., N, d_v) to the keys. Returns (..., S, d_v)."""
        check_tensor("queries", queries)
        if keys is None:
            keys = self._stored(queries, "queries")
        check_tensor("keys", keys)
        if keys.shape[-1] != queries.shape[-1]:
            raise InputError(
                f"keys: expected last dimension {queries.shape[-1]} (as queries), received "
                f"shape {tuple(keys.shape)}"
            )
        values = keys if values is None else check_tensor("values", values)
        if values.shape[-2] != keys.shape[-2]:
            raise InputError(
                f"values: expected {keys.shape[-2]} rows (one per key), received shape "
                f"{tuple(values.shape)}"
            )
        return hopfield_attention(queries, keys, values, self.beta, self.steps)


class HopfieldLayer(nn.Module):
    r"""The Hopfield layer of Ramsauer et al. (2020, eq. 10) with learned projections:

    .. math::

        Z = \operatorname{softmax}\big(\beta\, (R W_Q) (Y W_K)^\top\big)\, (Y W_K) W_V

    queries R (..., S, query_size), stored patterns Y (..., N, stored_size); W_Q, W_K map
    to ``hidden_size``, W_V to ``output_size``. beta defaults to 1/sqrt(hidden_size). With
    ``num_stored``, Y is a learned parameter (N = num_stored, shared over the batch) and
    ``forward(queries)`` needs no stored patterns.
    """

    def __init__(
        self,
        query_size: int,
        stored_size: int,
        hidden_size: int,
        output_size: int | None = None,
        beta: float | None = None,
        num_stored: int | None = None,
        steps: int = 1,
        device=None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.query_size = check_positive_int("query_size", query_size)
        self.stored_size = check_positive_int("stored_size", stored_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.output_size = check_positive_int("output_size", output_size or hidden_size)
        self.beta = 1.0 / math.sqrt(hidden_size) if beta is None else _check_beta(beta)
        self.steps = check_positive_int("steps", steps)
        self.query_proj = nn.Linear(query_size, hidden_size, bias=False, **kw)
        self.key_proj = nn.Linear(stored_size, hidden_size, bias=False, **kw)
        self.value_proj = nn.Linear(hidden_size, self.output_size, bias=False, **kw)
        if num_stored is not None:
            check_positive_int("num_stored", num_stored)
            self.stored = nn.Parameter(torch.randn(num_stored, stored_size, **kw) * 0.1)
        else:
            self.register_parameter("stored", None)

    def forward(self, queries: torch.Tensor, stored: torch.Tensor | None = None) -> torch.Tensor:
        """Z for queries (..., S, query_size) and stored patterns (..., N, stored_size)
        (the learned ones when None). Returns (..., S, output_size)."""
        check_tensor("queries", queries)
        if queries.shape[-1] != self.query_size:
            raise InputError(
                f"queries: expected last dimension {self.query_size}, received shape "
                f"{tuple(queries.shape)}"
            )
        if stored is None:
            if self.stored is None:
                raise InputError("stored: expected stored patterns (the layer has no learned ones)")
            stored = self.stored
        check_tensor("stored", stored)
        if stored.shape[-1] != self.stored_size:
            raise InputError(
                f"stored: expected last dimension {self.stored_size}, received shape "
                f"{tuple(stored.shape)}"
            )
        q = self.query_proj(queries)  # (..., S, H)
        k = self.key_proj(stored)  # (..., N, H)
        return self.value_proj(hopfield_attention(q, k, k, self.beta, self.steps))
