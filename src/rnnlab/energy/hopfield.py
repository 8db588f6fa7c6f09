r"""Hopfield networks (Hopfield 1982): binary associative memories whose stored patterns are
point attractors of an energy-decreasing update.

.. math::

    E(s) = -\tfrac12 s^\top W s + \theta^\top s, \qquad
    s_i \leftarrow \operatorname{sgn}\Big(\sum_j W_{ij} s_j - \theta_i\Big)

(a unit whose local field is exactly 0 keeps its state). With a symmetric ``W`` and a zero
diagonal, updating one unit at a time (asynchronous dynamics) never increases ``E``, so
every asynchronous trajectory ends in a fixed point; updating all units at once
(synchronous dynamics) may instead end in a cycle of period two (Bruck 1990).

Storage rules, for patterns :math:`\xi^\mu \in \{-1, +1\}^n`, :math:`\mu = 1..P`:

- Hebb: :math:`W_{ij} = \frac1n \sum_\mu \xi^\mu_i \xi^\mu_j`, :math:`W_{ii} = 0`.
  Random patterns are recalled up to a load :math:`P/n \approx 0.138` (Amit, Gutfreund &
  Sompolinsky 1985); a stored pattern is an exact fixed point with probability tending
  to 1 for :math:`P < n / (2 \ln n)`, all of them at once for :math:`P < n / (4 \ln n)`
  (McEliece et al. 1987).
- Storkey (1997), incremental and local, with a higher capacity
  (:math:`n / \sqrt{2 \ln n}`) and better behaviour on correlated patterns:

  .. math::

      W^\nu_{ij} = W^{\nu-1}_{ij} + \tfrac1n \xi^\nu_i \xi^\nu_j
          - \tfrac1n \xi^\nu_i h^\nu_{ji} - \tfrac1n h^\nu_{ij} \xi^\nu_j, \qquad
      h^\nu_{ij} = \sum_{k \ne i, j} W^{\nu-1}_{ik} \xi^\nu_k

  (the diagonal is kept at zero).

==============  =========================================================
symbol          meaning
==============  =========================================================
n               number of units (``num_units``)
s               states, (B, n), entries in {-1, +1}
W               weights (``weight``), (n, n), symmetric, zero diagonal
theta           thresholds (``threshold``), (n,)
xi^mu           the P stored patterns, (P, n)
==============  =========================================================
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import nn

from rnnlab._validation import check_positive_int, check_rank, check_tensor, describe
from rnnlab.errors import InputError

RULES = ("hebb", "storkey")
MODES = ("async", "sync")


class RecallResult(NamedTuple):
    """The end of a recall.

    states: (B, n) final states in {-1, +1}.
    sweeps: (B,) int64, the number of sweeps that changed the state (0 for a state that
        was already a fixed point).
    converged: (B,) bool, whether a fixed point was reached within ``max_sweeps``. A
        synchronous recall that ends in a two-cycle is not converged (a warning says so).
    """

    states: torch.Tensor
    sweeps: torch.Tensor
    converged: torch.Tensor


# --------------------------------------------------------------------------- kernels


def check_spins(name: str, x: object, num_units: int | None = None) -> torch.Tensor:
    """``x`` as a (B, n) floating tensor with entries in {-1, +1}; ValueError otherwise."""
    x = check_tensor(name, x)
    check_rank(name, x, (1, 2), "(n,) or (B, n)")
    if num_units is not None and x.shape[-1] != num_units:
        raise InputError(
            f"{name}: expected {num_units} units in the last dimension, received shape "
            f"{tuple(x.shape)}"
        )
    if x.numel() and not bool(((x == 1) | (x == -1)).all()):
        bad = x[(x != 1) & (x != -1)].flatten()[:3].tolist()
        raise InputError(f"{name}: expected entries in {{-1, +1}}, received values such as {bad}")
    return x


def hebb_weights(patterns: torch.Tensor) -> torch.Tensor:
    """Hebb's outer-product rule: W = (1/n) sum_mu xi^mu xi^mu^T with a zero diagonal.

    patterns: (P, n) in {-1, +1}. Returns (n, n)."""
    n = patterns.shape[-1]
    w = patterns.T @ patterns / n  # (n, n)
    w.fill_diagonal_(0.0)
    return w


def storkey_weights(patterns: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Storkey's (1997) incremental rule, one pattern after the other, from ``weight`` (zero
    when None). patterns: (P, n). Returns (n, n), symmetric with a zero diagonal."""
    n = patterns.shape[-1]
    w = (
        torch.zeros(n, n, dtype=patterns.dtype, device=patterns.device)
        if weight is None
        else weight.clone()
    )
    for xi in patterns:  # (n,)
        # h_ij = sum_{k != i, j} w_ik xi_k = (W xi)_i - w_ii xi_i - w_ij xi_j
        field = w @ xi  # (n,)
        h = field[:, None] - (w.diagonal() * xi)[:, None] - w * xi[None, :]  # (n, n)
        w = w + (torch.outer(xi, xi) - xi[:, None] * h.T - h * xi[None, :]) / n
        w.fill_diagonal_(0.0)
    return w


def hopfield_energy(
    weight: torch.Tensor, threshold: torch.Tensor, states: torch.Tensor
) -> torch.Tensor:
    """E(s) = -1/2 s^T W s + theta^T s for each row of ``states`` (B, n); returns (B,)."""
    return -0.5 * ((states @ weight) * states).sum(-1) + states @ threshold


def _sign_keep(field: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """sgn(field), keeping ``old`` where the field is exactly 0."""
    return torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, old)).to(old.dtype)


def async_update(
    weight: torch.Tensor, threshold: torch.Tensor, states: torch.Tensor, units: torch.Tensor
) -> torch.Tensor:
    """One asynchronous step: unit ``units[b]`` of chain b takes the sign of its local field.

    states: (B, n); units: (B,) int64. Returns the new states (a new tensor)."""
    rows = torch.arange(states.shape[0], device=states.device)
    field = (weight[units] * states).sum(-1) - threshold[units]  # (B,)
    new = states.clone()
    new[rows, units] = _sign_keep(field, states[rows, units])
    return new


def async_sweep(
    weight: torch.Tensor, threshold: torch.Tensor, states: torch.Tensor, order: torch.Tensor
) -> torch.Tensor:
    """One asynchronous sweep: chain b updates its units one at a time in the order
    ``order[b]`` (B, n), a permutation of all n units. Returns the new states."""
    rows = torch.arange(states.shape[0], device=states.device)
    s = states.clone()
    for k in range(order.shape[1]):
        units = order[:, k]  # (B,)
        field = (weight[units] * s).sum(-1) - threshold[units]  # (B,)
        s[rows, units] = _sign_keep(field, s[rows, units])
    return s


def sync_step(weight: torch.Tensor, threshold: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
    """One synchronous step: every unit takes the sign of its local field at once."""
    return _sign_keep(states @ weight.T - threshold, states)


# --------------------------------------------------------------------------- model


class Hopfield(nn.Module):
    r"""A Hopfield network of ``num_units`` binary units with states in {-1, +1}.

    Energy :math:`E(s) = -\frac12 s^\top W s + \theta^\top s`; update
    :math:`s_i \leftarrow \operatorname{sgn}(\sum_j W_{ij} s_j - \theta_i)` (a zero field
    keeps the state). See the module docstring for the storage rules and the symbols.

    Buffers: ``weight`` (n, n) and ``threshold`` (n,), both zero until :meth:`store`.

    Example::

        net = Hopfield(100)
        net.store(patterns)                      # (P, 100) in {-1, +1}
        result = net.recall(noisy, mode="async")  # RecallResult(states, sweeps, converged)
    """

    def __init__(self, num_units: int, dtype: torch.dtype | None = None, device=None):
        super().__init__()
        self.num_units = check_positive_int("num_units", num_units)
        dtype = dtype or torch.get_default_dtype()
        self.register_buffer(
            "weight", torch.zeros(num_units, num_units, dtype=dtype, device=device)
        )
        self.register_buffer("threshold", torch.zeros(num_units, dtype=dtype, device=device))

    def extra_repr(self) -> str:
        return f"num_units={self.num_units}"

    def store(self, patterns: torch.Tensor, rule: str = "hebb") -> Hopfield:
        """Set the weights from ``patterns`` (P, n) in {-1, +1} by ``rule``: "hebb" or
        "storkey". Replaces what was stored before. Returns self."""
        patterns = check_spins("patterns", patterns, self.num_units)
        if patterns.dim() == 1:
            patterns = patterns[None]  # (1, n)
        if rule not in RULES:
            raise InputError(f"rule: expected one of {', '.join(RULES)}, received {rule!r}")
        p = patterns.to(self.weight)
        w = hebb_weights(p) if rule == "hebb" else storkey_weights(p)
        self.weight.copy_(w)
        return self

    def energy(self, states: torch.Tensor) -> torch.Tensor:
        """E(s) for states (B, n) -> (B,), or (n,) -> a scalar."""
        s = check_spins("states", states, self.num_units).to(self.weight)
        e = hopfield_energy(self.weight, self.threshold, s.reshape(-1, self.num_units))
        return e if states.dim() == 2 else e[0]

    @torch.no_grad()
    def recall(
        self,
        states: torch.Tensor,
        mode: str = "async",
        max_sweeps: int = 100,
        generator: torch.Generator | None = None,
    ) -> RecallResult:
        """Run the dynamics from ``states`` (B, n) (or (n,)) until a fixed point or
        ``max_sweeps`` sweeps.

        mode: "async" visits all n units in a fresh random permutation each sweep (one per
        chain, drawn from ``generator``); "sync" updates all units at once and stops early
        at a two-cycle, with a warning. Returns :class:`RecallResult` (at the input's rank).
        """
        s = check_spins("states", states, self.num_units).to(self.weight)
        if mode not in MODES:
            raise InputError(f"mode: expected one of {', '.join(MODES)}, received {mode!r}")
        check_positive_int("max_sweeps", max_sweeps)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise InputError(
                f"generator: expected a torch.Generator, received {describe(generator)}"
            )
        unbatched = s.dim() == 1
        s = s.reshape(-1, self.num_units).clone()  # (B, n)
        B, n = s.shape
        sweeps = torch.zeros(B, dtype=torch.long, device=s.device)
        converged = torch.zeros(B, dtype=torch.bool, device=s.device)
        cycling = torch.zeros(B, dtype=torch.bool, device=s.device)
        prev = None
        for _ in range(max_sweeps):
            done = converged | cycling
            if bool(done.all()):
                break
            if mode == "async":
                u = torch.rand(B, n, generator=generator, device=generator.device if generator
                               is not None else "cpu").to(s.device)  # fmt: skip
                order = u.argsort(dim=1)  # (B, n): a fresh permutation per chain
                new = async_sweep(self.weight, self.threshold, s, order)
            else:
                new = sync_step(self.weight, self.threshold, s)
            new = torch.where(done[:, None], s, new)  # finished chains stay where they are
            changed = (new != s).any(-1)  # (B,)
            sweeps += changed.long()
            converged |= ~changed & ~done
            if mode == "sync" and prev is not None:
                cycling |= changed & (new == prev).all(-1)  # s_{t+1} = s_{t-1} != s_t
            prev, s = s, new
        if bool(cycling.any()):
            warnings.warn(
                f"recall: {int(cycling.sum())} of {B} states ended in a two-cycle of the "
                "synchronous dynamics (not a fixed point; converged is False for them); "
                "asynchronous recall always reaches a fixed point",
                RuntimeWarning,
                stacklevel=2,
            )
        if unbatched:
            return RecallResult(s[0], sweeps[0], converged[0])
        return RecallResult(s, sweeps, converged)
