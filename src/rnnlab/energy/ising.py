r"""The Ising model: Monte Carlo samplers batched over chains, exact enumeration for small
systems, estimators with autocorrelation-aware error bars, and Onsager's and Yang's exact
results for the infinite square lattice.

.. math::

    H(s) = -\sum_{\langle ij \rangle} J_{ij} s_i s_j - \mu \sum_j h_j s_j
         = -\tfrac12 s^\top J s - \mu\, h^\top s, \qquad
    p(s) = e^{-H(s)/T} / Z

Samplers (one sweep = every spin offered one update; on lattices the spins are updated a
colour class at a time, a checkerboard for bipartite lattices, so that the spins updated
together never interact; all chains at once). With the local field
:math:`\phi_i = \sum_j J_{ij} s_j + \mu h_i` and :math:`\Delta H_i = 2 s_i \phi_i`:

- ``metropolis`` (Metropolis et al. 1953): flip :math:`s_i` with probability
  :math:`\min(1, e^{-\Delta H_i / T})` (1/2 when :math:`\Delta H_i = 0`, which keeps the
  checkerboard sweep ergodic on small lattices);
- ``heat_bath`` (Glauber 1963): set :math:`s_i = +1` with probability
  :math:`\sigma(2 \phi_i / T)`;
- ``wolff`` (Wolff 1989): grow a cluster from a random seed spin, adding each aligned
  neighbour through a bond with probability :math:`1 - e^{-2 J_{ij} / T}`, and flip it
  (ferromagnetic couplings, no field). A Wolff "sweep" is one cluster flip.

==============  ==============================================================
symbol          meaning
==============  ==============================================================
N               number of spins (``num_spins``)
C               number of independent chains
s               spins, (C, N) inside, (C, *shape) for lattices; entries in {-1, +1}
J               symmetric couplings with a zero diagonal, (N, N)
h, mu           fields (N,) and the magnetic moment (scalar)
T               temperature (k_B = 1); beta = 1 / T
e, m            energy H/N and magnetisation sum(s)/N per spin
==============  ==============================================================

Exact results for the infinite square lattice with coupling J (k_B = 1): the critical
temperature :math:`T_c = 2J / \ln(1 + \sqrt2)`; Onsager's (1944) energy per spin

.. math::

    e(T) = -J \coth(2\beta J) \Big[1 + \tfrac{2}{\pi}\big(2\tanh^2(2\beta J) - 1\big)
        K(k)\Big], \qquad k = \frac{2 \sinh(2\beta J)}{\cosh^2(2\beta J)}

(K the complete elliptic integral of the first kind, modulus k), and Yang's (1952)
spontaneous magnetisation :math:`m(T) = (1 - \sinh^{-4}(2\beta J))^{1/8}` below
:math:`T_c`, 0 above.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from rnnlab._validation import check_positive_int, check_rank, check_tensor, describe
from rnnlab.errors import InputError

CRITICAL_TEMPERATURE = 2.0 / math.log(1.0 + math.sqrt(2.0))
"""T_c = 2 / ln(1 + sqrt 2) ~ 2.269 of the square lattice with J = 1 (Onsager 1944)."""

METHODS = ("metropolis", "heat_bath", "wolff")
MAX_EXACT_SPINS = 16


# --------------------------------------------------------------------------- exact results


def _elliptic_k(k: np.ndarray) -> np.ndarray:
    """Complete elliptic integral of the first kind K(k) (modulus k) by the
    arithmetic-geometric mean: K = pi / (2 AGM(1, sqrt(1 - k^2)))."""
    a = np.ones_like(k)
    b = np.sqrt(np.clip(1.0 - k * k, 0.0, None))
    for _ in range(60):
        a, b = (a + b) / 2.0, np.sqrt(a * b)
    with np.errstate(divide="ignore"):
        return np.pi / (2.0 * a)  # a = b = AGM at convergence; inf at k = 1


def _as_temperature_array(temperature) -> tuple[np.ndarray, bool]:
    scalar = isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
    t = np.asarray(
        temperature.detach().cpu().numpy()
        if isinstance(temperature, torch.Tensor)
        else temperature,
        dtype=np.float64,
    )
    if t.size == 0 or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise InputError(
            f"temperature: expected a temperature > 0 (or several), received {temperature!r}"
        )
    return t, scalar


def _like_input(values: np.ndarray, temperature, scalar: bool):
    if scalar:
        return float(values)
    if isinstance(temperature, torch.Tensor):
        return torch.as_tensor(values, dtype=torch.float64)
    return values


def onsager_energy(temperature, coupling: float = 1.0):
    """Onsager's exact energy per spin of the infinite square lattice at ``temperature``
    (a float, an array or a tensor; returned in the same form)."""
    t, scalar = _as_temperature_array(temperature)
    two_bj = 2.0 * coupling / t
    k = np.minimum(2.0 * np.sinh(two_bj) / np.cosh(two_bj) ** 2, 1.0)
    bracket_coef = 2.0 * np.tanh(two_bj) ** 2 - 1.0
    kk = _elliptic_k(k)
    # at T_c, k = 1 and K diverges logarithmically while its coefficient vanishes linearly
    term = np.where(k < 1.0, bracket_coef * np.where(np.isfinite(kk), kk, 0.0), 0.0)
    e = -coupling / np.tanh(two_bj) * (1.0 + 2.0 / np.pi * term)
    return _like_input(e, temperature, scalar)


def onsager_magnetization(temperature, coupling: float = 1.0):
    """Yang's exact spontaneous magnetisation per spin of the infinite square lattice:
    (1 - sinh(2J/T)^-4)^(1/8) below T_c, 0 above."""
    t, scalar = _as_temperature_array(temperature)
    x = 1.0 - np.sinh(2.0 * coupling / t) ** -4.0
    m = np.where(x > 0, np.clip(x, 0.0, None) ** 0.125, 0.0)
    return _like_input(m, temperature, scalar)


# --------------------------------------------------------------------------- results


class IsingRun(NamedTuple):
    """A Monte Carlo run.

    energy: (C, sweeps) energy per spin H(s)/N after every recorded sweep.
    magnetization: (C, sweeps) magnetisation per spin sum(s)/N after every recorded sweep.
    states: (C, *shape) the final spins.
    """

    energy: torch.Tensor
    magnetization: torch.Tensor
    states: torch.Tensor


class IsingObservables(NamedTuple):
    """Thermal averages per spin (exact).

    energy: <H>/N. abs_magnetization: <|M|>/N with M = sum_i s_i.
    specific_heat: (<H^2> - <H>^2) / (N T^2).
    susceptibility: (<M^2> - <M>^2) / (N T) (= d<M>/dh / N, the response to a field;
    <M> = 0 without a field).
    """

    energy: float | torch.Tensor
    abs_magnetization: float | torch.Tensor
    specific_heat: float | torch.Tensor
    susceptibility: float | torch.Tensor


class Measurement(NamedTuple):
    """A Monte Carlo estimate with its standard error (autocorrelation accounted for)."""

    value: float
    error: float


class IsingEstimate(NamedTuple):
    """Observables per spin estimated from a run, each a :class:`Measurement`, defined as in
    :class:`IsingObservables`, plus the Binder cumulant U = 1 - <m^4> / (3 <m^2>^2).

    tau: the largest integrated autocorrelation time (in sweeps) of e, |m| and m^2.
    block_size: the length of the blocks of the jackknife (a few tau).
    samples: sweeps used per chain; chains: independent chains pooled.
    """

    energy: Measurement
    abs_magnetization: Measurement
    specific_heat: Measurement
    susceptibility: Measurement
    binder: Measurement
    tau: float
    block_size: int
    samples: int
    chains: int


# --------------------------------------------------------------------------- estimators


def integrated_autocorrelation_time(x: torch.Tensor, window: float = 5.0) -> float:
    """Integrated autocorrelation time tau = 1/2 + sum_{t>=1} rho(t) of the series ``x``
    (C, T) (the autocorrelation averaged over the C chains), with Sokal's automatic window
    (the smallest W with W >= window * tau(W)). The variance of a mean of T correlated
    samples is 2 tau var / T. A constant series gives 0.5."""
    x = x.detach().to(torch.float64)
    x = x.reshape(-1, x.shape[-1])
    C, T = x.shape
    d = x - x.mean(-1, keepdim=True)
    n = 1 << (2 * T - 1).bit_length()
    f = torch.fft.rfft(d, n=n)
    acov = torch.fft.irfft(f * f.conj(), n=n)[:, :T].mean(0) / T  # (T,), biased estimator
    if float(acov[0]) <= 1e-300:
        return 0.5
    rho = acov / acov[0]
    taus = 0.5 + torch.cumsum(rho[1:], 0)  # tau(W) for W = 1..T-1
    for w in range(1, T):
        if w >= window * float(taus[w - 1]):
            return max(float(taus[w - 1]), 0.5)
    return max(float(taus[-1]), 0.5)


def estimate_observables(
    energy: torch.Tensor,
    magnetization: torch.Tensor,
    temperature: float,
    num_spins: int,
    block_size: int | None = None,
    symmetric: bool = False,
) -> IsingEstimate:
    """Estimates per spin with jackknife errors over blocks of ``block_size`` sweeps
    (default: 6 tau, at most a sixteenth of the run), pooling the chains.

    symmetric: the model has no field, so <M> = 0 exactly and the susceptibility is
    estimated as <M^2> / (N T). (A run's mean of M is not 0 when the chains rarely reverse
    their magnetisation, and subtracting it would make the estimate depend on how often
    they do.)

    energy, magnetization: (C, T) per spin, as in :class:`IsingRun`, T >= 16; every chain
    at ``temperature``. A RuntimeWarning says when T < 50 tau (error bars unreliable)."""
    check_tensor("energy", energy)
    check_tensor("magnetization", magnetization)
    check_rank("energy", energy, (2,), "(chains, sweeps)")
    if magnetization.shape != energy.shape:
        raise InputError(
            f"magnetization: expected the shape of energy {tuple(energy.shape)}, received "
            f"{tuple(magnetization.shape)}"
        )
    t, _ = _as_temperature_array(temperature)
    if t.size != 1:
        raise InputError(f"temperature: expected one temperature, received {temperature!r}")
    T_ = float(t)
    C, S = energy.shape
    if S < 16:
        raise InputError(f"energy: expected at least 16 sweeps per chain, received {S}")
    e = energy.detach().to(torch.float64)
    m = magnetization.detach().to(torch.float64)
    tau = max(
        integrated_autocorrelation_time(e),
        integrated_autocorrelation_time(m.abs()),
        integrated_autocorrelation_time(m * m),
    )
    if block_size is None:
        block_size = max(1, min(math.ceil(6 * tau), S // 16))
        if S // block_size < 16 or S < 50 * tau:
            warnings.warn(
                f"estimate_observables: {S} sweeps per chain for an autocorrelation time of "
                f"{tau:.1f} sweeps; the error bars are unreliable (run longer)",
                RuntimeWarning,
                stacklevel=2,
            )
    else:
        block_size = check_positive_int("block_size", block_size)
    nb = S // block_size
    if nb * C < 2:
        raise InputError(
            f"block_size: expected at most {S * C // 2} so that there are 2 blocks or more, "
            f"received {block_size}"
        )
    used = nb * block_size

    def blocks(x: torch.Tensor) -> torch.Tensor:
        return x[:, S - used :].reshape(C, nb, block_size).mean(-1).reshape(-1)  # (C nb,)

    N = float(num_spins)
    series = {
        "e": blocks(e),
        "e2": blocks(e * e),
        "am": blocks(m.abs()),
        "m": blocks(m),
        "m2": blocks(m * m),
        "m4": blocks(m**4),
    }

    def derived(mu: dict[str, torch.Tensor]) -> torch.Tensor:  # each entry (K,) or scalar
        return torch.stack(
            [
                mu["e"],
                mu["am"],
                N * (mu["e2"] - mu["e"] ** 2) / T_**2,
                N * (mu["m2"] - (0.0 if symmetric else mu["m"] ** 2)) / T_,
                1.0 - mu["m4"] / (3.0 * mu["m2"] ** 2),
            ]
        )

    K = nb * C
    total = {k: v.sum() for k, v in series.items()}
    full = derived({k: v / K for k, v in total.items()})  # (5,)
    loo = derived({k: (total[k] - v) / (K - 1) for k, v in series.items()})  # (5, K)
    err = torch.sqrt((K - 1) / K * ((loo - loo.mean(-1, keepdim=True)) ** 2).sum(-1))
    full = torch.nan_to_num(full)
    err = torch.nan_to_num(err)
    vals = [Measurement(float(v), float(s)) for v, s in zip(full, err)]
    return IsingEstimate(*vals, tau=tau, block_size=block_size, samples=S, chains=C)


# --------------------------------------------------------------------------- kernels


def local_field(
    s: torch.Tensor, neighbors: torch.Tensor, bonds: torch.Tensor, field: torch.Tensor
) -> torch.Tensor:
    """phi_i = sum_j J_ij s_j + mu h_i from the neighbour table.

    s: (C, N); neighbors: (N, D) int64 indices in [0, N] (N = no neighbour); bonds: (N, D)
    couplings J_i,neighbors[i, d] (0 for padding); field: (N,) = mu h. Returns (C, N)."""
    padded = torch.nn.functional.pad(s, (0, 1))  # (C, N + 1): the padding spin is 0
    return (padded[:, neighbors] * bonds).sum(-1) + field  # (C, N, D) -> (C, N)


def metropolis_flips(
    s: torch.Tensor, phi: torch.Tensor, beta: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """Metropolis: which spins flip, u_i < a(Delta H_i) with Delta H_i = 2 s_i phi_i and
    a = min(1, exp(-beta Delta H)), except a(0) = 1/2. s, phi, u: (C, ...) spins, local
    fields and uniforms of spins that do not interact; beta: (C, 1, ...) broadcastable.
    Returns a bool tensor like s.

    Any a(0) in (0, 1] keeps detailed balance; with a(0) = 1 a checkerboard sweep flips
    every zero-field spin deterministically and is not ergodic on small lattices (on the
    2x2 torus or a ring it cycles between zero-energy states for ever)."""
    x = phi * s  # Delta H / 2
    a = torch.exp(x * (-2.0 * beta))
    return u < torch.where(x == 0, 0.5, a)


def heat_bath_flips(
    s: torch.Tensor, phi: torch.Tensor, beta: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """Heat bath: the new spin is +1 with probability sigmoid(2 beta phi_i); returns where it
    differs from s (shapes as :func:`metropolis_flips`)."""
    return (u < torch.sigmoid(phi * (2.0 * beta))) != (s > 0)


def wolff_update(
    s: torch.Tensor,
    neighbors: torch.Tensor,
    bonds: torch.Tensor,
    beta: torch.Tensor,
    seeds: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One Wolff cluster flip per chain, grown from ``seeds`` (C,) in parallel waves: every
    bond from a new cluster spin to an aligned spin outside the cluster is tried once,
    with probability 1 - exp(-2 beta J_ij). Returns (new spins (C, N), cluster sizes (C,))."""
    C, N = s.shape
    rows = torch.arange(C, device=s.device)
    p_bond = -torch.expm1(-2.0 * beta[:, :, None] * bonds)  # (C, N, D)
    sigma = s[rows, seeds][:, None]  # (C, 1) the seed's spin
    aligned = torch.nn.functional.pad(s == sigma, (0, 1))  # (C, N + 1), padding not aligned
    cluster = torch.zeros(C, N + 1, dtype=torch.bool, device=s.device)
    cluster[rows, seeds] = True
    frontier = cluster.clone()
    flat = neighbors.reshape(1, -1).expand(C, -1)  # (C, N D)
    while bool(frontier.any()):
        u = torch.rand(p_bond.shape, generator=generator, device=s.device, dtype=s.dtype)
        free = (aligned & ~cluster)[:, neighbors]  # (C, N, D) neighbour aligned, not in cluster
        tried = frontier[:, :N, None] & free & (u < p_bond)  # (C, N, D)
        hits = torch.zeros(C, N + 1, device=s.device, dtype=s.dtype)
        hits.scatter_add_(1, flat, tried.reshape(C, -1).to(s.dtype))
        frontier = (hits > 0) & ~cluster
        frontier[:, N] = False
        cluster |= frontier
    flip = cluster[:, :N]
    return torch.where(flip, -s, s), flip.sum(-1)


def lattice_neighbor_sum(s: torch.Tensor, periodic: bool) -> torch.Tensor:
    """sum of the 2d nearest neighbours of every site of spins s (C, *shape) on a
    hypercubic lattice (open boundaries: missing neighbours count 0). Returns (C, *shape)."""
    if periodic:
        total = torch.roll(s, 1, 1) + torch.roll(s, -1, 1)
        for axis in range(2, s.dim()):
            total += torch.roll(s, 1, axis) + torch.roll(s, -1, axis)
        return total
    total = torch.zeros_like(s)
    for axis in range(1, s.dim()):
        n = s.shape[axis]
        total.narrow(axis, 1, n - 1).add_(s.narrow(axis, 0, n - 1))
        total.narrow(axis, 0, n - 1).add_(s.narrow(axis, 1, n - 1))
    return total


def wolff_update_lattice(
    s: torch.Tensor,
    coupling: float,
    periodic: bool,
    beta: torch.Tensor,
    seeds: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`wolff_update` on a hypercubic lattice, s (C, *shape), by rolls: the bond from
    each site to its + neighbour along each axis is drawn once (open with probability
    1 - exp(-2 beta J) between spins aligned with the seed's), then the seed's cluster grows
    through open bonds until it stops. Returns (new spins, cluster sizes (C,))."""
    C = s.shape[0]
    rows = torch.arange(C, device=s.device)
    flat = s.reshape(C, -1)
    sigma = flat[rows, seeds].reshape((C,) + (1,) * (s.dim() - 1))  # (C, 1, ..., 1)
    like = s == sigma  # (C, *shape)
    p = -torch.expm1(-2.0 * beta.reshape(sigma.shape) * coupling)  # (C, 1, ..., 1)
    bonds = []
    for axis in range(1, s.dim()):
        u = torch.rand(s.shape, generator=generator, device=s.device, dtype=s.dtype)
        b = like & torch.roll(like, -1, axis) & (u < p)  # bond (i, i + e_axis)
        if not periodic:
            b.narrow(axis, s.shape[axis] - 1, 1).zero_()
        bonds.append(b)
    cluster = torch.zeros(C, flat.shape[1], dtype=torch.bool, device=s.device)
    cluster[rows, seeds] = True
    cluster = cluster.reshape(s.shape)
    while True:
        new = cluster.clone()
        for axis, b in zip(range(1, s.dim()), bonds):
            new |= torch.roll(cluster & b, 1, axis)  # i -> i + e_axis
            new |= torch.roll(cluster, -1, axis) & b  # i + e_axis -> i
        if torch.equal(new, cluster):
            break
        cluster = new
    return torch.where(cluster, -s, s), cluster.reshape(C, -1).sum(-1)


# --------------------------------------------------------------------------- model


def _lattice_tables(shape: tuple[int, ...], periodic: bool, coupling: float):
    """Neighbour table (N, 2d) and bonds of a d-dimensional hypercubic lattice, row-major.
    Missing neighbours (open boundaries) point at the padding index N with bond 0."""
    N = math.prod(shape)
    idx = torch.arange(N).reshape(shape)
    cols, bonds = [], []
    for axis in range(len(shape)):
        for shift in (1, -1):
            nb = torch.roll(idx, shifts=-shift, dims=axis)  # neighbour at +shift along axis
            b = torch.full(shape, float(coupling), dtype=torch.float64)
            if not periodic:
                edge = [slice(None)] * len(shape)
                edge[axis] = -1 if shift == 1 else 0
                nb[tuple(edge)] = N
                b[tuple(edge)] = 0.0
            cols.append(nb.reshape(-1))
            bonds.append(b.reshape(-1))
    return torch.stack(cols, 1), torch.stack(bonds, 1)


def _matrix_tables(J: torch.Tensor):
    """Neighbour table of the nonzero entries of J, rows padded with index N and bond 0."""
    N = J.shape[0]
    nz = J != 0
    D = max(int(nz.sum(1).max()), 1)
    neighbors = torch.full((N, D), N, dtype=torch.long)
    bonds = torch.zeros(N, D, dtype=J.dtype)
    for i in range(N):
        js = torch.nonzero(nz[i]).flatten()
        neighbors[i, : js.numel()] = js
        bonds[i, : js.numel()] = J[i, js]
    return neighbors, bonds


def _greedy_colouring(neighbors: torch.Tensor) -> torch.Tensor:
    """Colours (N,) int64 of a greedy colouring in index order, whose classes are independent
    sets: the checkerboard on bipartite lattices (row-major order), three colours on odd
    periodic sides."""
    N = neighbors.shape[0]
    colour = [-1] * N
    nb = neighbors.tolist()
    for i in range(N):
        used = {colour[j] for j in nb[i] if j < N and colour[j] >= 0}
        c = 0
        while c in used:
            c += 1
        colour[i] = c
    return torch.tensor(colour)


class IsingModel(nn.Module):
    r"""The Ising model :math:`H(s) = -\sum_{\langle ij\rangle} J_{ij} s_i s_j - \mu
    \sum_j h_j s_j` with spins :math:`s_i \in \{-1, +1\}` (see the module docstring for the
    samplers and the symbols).

    ``IsingModel(shape=(L, L), coupling=1.0, field=0.0, periodic=True)`` is the hypercubic
    lattice of that shape (any dimension) with nearest-neighbour coupling J and a uniform
    field h; on a periodic side of length 2 the two neighbours coincide and the bond counts
    twice. :meth:`from_couplings` builds the general model from a symmetric coupling matrix
    with a zero diagonal and per-spin fields.

    Buffers: ``neighbors`` (N, D) and ``bonds`` (N, D), the coupling graph as a neighbour
    table (index N = none); ``field`` (N,) = mu h; ``colour`` (N,), whose classes
    (independent sets, :attr:`classes`) are updated together.
    """

    def __init__(
        self,
        shape: Sequence[int] = (8, 8),
        coupling: float = 1.0,
        field: float = 0.0,
        periodic: bool = True,
        moment: float = 1.0,
        dtype: torch.dtype | None = None,
        device=None,
    ):
        super().__init__()
        if isinstance(shape, int):
            shape = (shape,)
        shape = tuple(shape)
        if not shape or not all(isinstance(n, int) and n >= (2 if periodic else 1) for n in shape):
            raise InputError(
                f"shape: expected a tuple of side lengths >= {2 if periodic else 1}, received "
                f"{shape!r}"
            )
        for name, v in (("coupling", coupling), ("field", field), ("moment", moment)):
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputError(f"{name}: expected a finite number, received {v!r}")
        neighbors, bonds = _lattice_tables(shape, periodic, float(coupling))
        h = torch.full((math.prod(shape),), float(field) * float(moment), dtype=torch.float64)
        self._setup(shape, neighbors, bonds, h, dtype, device)
        self.coupling, self.periodic = float(coupling), periodic
        self.lattice = True

    @classmethod
    def from_couplings(
        cls,
        couplings: torch.Tensor,
        field: torch.Tensor | float = 0.0,
        moment: float = 1.0,
        dtype: torch.dtype | None = None,
    ) -> IsingModel:
        """The general model: ``couplings`` J (N, N) symmetric with a zero diagonal, ``field``
        h (N,) or a number; H(s) = -1/2 s^T J s - moment h^T s."""
        J = check_tensor("couplings", couplings)
        check_rank("couplings", J, (2,), "(N, N)")
        if J.shape[0] != J.shape[1] or J.shape[0] < 1:
            raise InputError(
                f"couplings: expected a square (N, N) matrix, received {tuple(J.shape)}"
            )
        Jd = J.detach().to(torch.float64).cpu()
        if not torch.allclose(Jd, Jd.T, rtol=1e-6, atol=1e-12):
            raise InputError(
                "couplings: expected a symmetric matrix, received one with max |J - J^T| = "
                f"{float((Jd - Jd.T).abs().max()):.3g}"
            )
        if bool((Jd.diagonal() != 0).any()):
            raise InputError(
                "couplings: expected a zero diagonal (no self-coupling), received diagonal "
                f"{Jd.diagonal()[:4].tolist()}"
            )
        N = J.shape[0]
        if isinstance(field, torch.Tensor):
            h = field.detach().to(torch.float64).cpu()
            if h.shape != (N,):
                raise InputError(f"field: expected shape ({N},), received {tuple(h.shape)}")
        elif isinstance(field, (int, float)):
            h = torch.full((N,), float(field), dtype=torch.float64)
        else:
            raise InputError(
                f"field: expected a tensor of shape ({N},) or a number, received {describe(field)}"
            )
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        neighbors, bonds = _matrix_tables(Jd)
        self._setup((N,), neighbors, bonds, h * float(moment), dtype or J.dtype, J.device)
        self.coupling, self.periodic = None, False
        self.lattice = False
        return self

    def _setup(self, shape, neighbors, bonds, h, dtype, device) -> None:
        dtype = dtype or torch.get_default_dtype()
        self.shape = shape
        self.num_spins = math.prod(shape)
        self.register_buffer("neighbors", neighbors.to(device))
        self.register_buffer("bonds", bonds.to(dtype=dtype, device=device))
        self.register_buffer("field", h.to(dtype=dtype, device=device))
        self.register_buffer("colour", _greedy_colouring(neighbors).to(device))

    def extra_repr(self) -> str:
        kind = f"shape={self.shape}, coupling={self.coupling}, periodic={self.periodic}"
        return kind if self.lattice else f"num_spins={self.num_spins}"

    @property
    def classes(self) -> list[torch.Tensor]:
        """The colour classes as (N,) bool masks, updated one after the other in a sweep."""
        cached = getattr(self, "_classes", None)
        if cached is None or cached[0].device != self.colour.device:
            cached = [self.colour == c for c in range(int(self.colour.max()) + 1)]
            self._classes = cached
        return cached

    # ----------------------------------------------------------------- energies

    def coupling_matrix(self) -> torch.Tensor:
        """J as a dense (N, N) matrix (a periodic side of 2 gives a doubled bond)."""
        N = self.num_spins
        J = torch.zeros(N, N + 1, dtype=self.bonds.dtype, device=self.bonds.device)
        J.scatter_add_(1, self.neighbors, self.bonds)
        return J[:, :N]

    def _flat(self, states: torch.Tensor) -> torch.Tensor:
        check_tensor("states", states)
        n = len(self.shape)
        if tuple(states.shape[-n:]) != self.shape or states.dim() not in (n, n + 1):
            raise InputError(
                f"states: expected shape {self.shape} or (C, *{self.shape}), received "
                f"{tuple(states.shape)}"
            )
        if not bool(((states == 1) | (states == -1)).all()):
            raise InputError("states: expected entries in {-1, +1}")
        return states.reshape(-1, self.num_spins).to(self.bonds.dtype)

    def _local_field(self, s: torch.Tensor, field: torch.Tensor | None) -> torch.Tensor:
        """phi = J s (+ field) for flat spins (C, N): rolls on lattices, the table otherwise."""
        if self.lattice:
            C = s.shape[0]
            nb = lattice_neighbor_sum(s.reshape(C, *self.shape), self.periodic).reshape(C, -1)
            phi = self.coupling * nb
            return phi if field is None else phi + field
        zero = torch.zeros_like(self.field)
        return local_field(s, self.neighbors, self.bonds, zero if field is None else field)

    def _energy_flat(self, s: torch.Tensor) -> torch.Tensor:
        pair = self._local_field(s, None)
        return -0.5 * (s * pair).sum(-1) - s @ self.field  # (C,)

    def energy(self, states: torch.Tensor) -> torch.Tensor:
        """Total energy H(s) of states (C, *shape) -> (C,) (or *shape -> a scalar)."""
        e = self._energy_flat(self._flat(states))
        return e if states.dim() > len(self.shape) else e[0]

    # ----------------------------------------------------------------- sampling

    def _beta(self, temperature, chains: int) -> torch.Tensor:
        if isinstance(temperature, torch.Tensor):
            t = temperature.detach().to(dtype=self.bonds.dtype, device=self.bonds.device)
            if t.dim() == 0:
                t = t.expand(chains)
            if t.shape != (chains,):
                raise InputError(
                    f"temperature: expected a number or shape ({chains},) (one per chain), "
                    f"received shape {tuple(t.shape)}"
                )
        elif isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
            t = torch.full((chains,), float(temperature), dtype=self.bonds.dtype,
                           device=self.bonds.device)  # fmt: skip
        else:
            raise InputError(
                f"temperature: expected a number > 0, received {describe(temperature)}"
            )
        if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
            raise InputError(f"temperature: expected values > 0, received {t.min().item()!r}")
        return (1.0 / t)[:, None]  # (C, 1)

    def _class_tables(self):
        """Per colour class: (sites (n,), neighbours (n, D), bonds (n, D) or None when all
        bonds are equal, fields (n,) or None when zero); cached per device and dtype."""
        key = (self.bonds.device, self.bonds.dtype, self.bonds._version, self.field._version)
        if getattr(self, "_tables_key", None) != key:
            uniform = bool((self.bonds == self.bonds[0, 0]).all()) and not self._padded()
            no_field = not bool((self.field != 0).any())
            self._has_field = not no_field
            tables = []
            for mask in self.classes:
                idx = torch.nonzero(mask).flatten()
                tables.append((idx, self.neighbors[idx], None if uniform else self.bonds[idx],
                               None if no_field else self.field[idx]))  # fmt: skip
            self._tables, self._tables_key = tables, key
            self._uniform_bond = float(self.bonds[0, 0])
        return self._tables

    def _padded(self) -> bool:
        return bool((self.neighbors == self.num_spins).any())

    def _site_sweep(self, s, beta, method, generator, energy, magnet):
        """One sweep of single-spin updates, a colour class at a time, in place on s (C, N);
        updates the total energies and magnetisations (C,) in place: within a class no two
        spins interact, so Delta H = -sum_i Delta s_i phi_i and Delta M = sum_i Delta s_i."""
        flips = metropolis_flips if method == "metropolis" else heat_bath_flips
        classes = self.classes
        if self.lattice and len(classes) == 2:  # bipartite lattice: checkerboard by rolls
            C = s.shape[0]
            x = s.view(C, *self.shape)
            u = torch.rand(x.shape, generator=generator, device=s.device, dtype=s.dtype)
            b = beta.view((C,) + (1,) * len(self.shape))
            self._class_tables()  # refreshes the cached field check
            field = self.field.view(self.shape) if self._has_field else None
            for mask in classes:  # each site uses its uniform once per sweep
                phi = lattice_neighbor_sum(x, self.periodic)
                if self.coupling != 1.0:
                    phi = phi * self.coupling
                if field is not None:
                    phi = phi + field
                fx = x * (flips(x, phi, b, u) & mask.view(self.shape))  # s_i where i flips
                energy += 2.0 * (fx * phi).flatten(1).sum(-1)  # Delta H = 2 sum s_i phi_i
                magnet -= 2.0 * fx.flatten(1).sum(-1)
                x.add_(fx, alpha=-2.0)
            return
        for idx, nbr, bonds, field in self._class_tables():
            src = torch.nn.functional.pad(s, (0, 1)) if bonds is not None else s  # (C, N + 1)
            nb = src[:, nbr]  # (C, n, D)
            phi = nb.sum(-1) * self._uniform_bond if bonds is None else (nb * bonds).sum(-1)
            if field is not None:
                phi = phi + field
            old = s[:, idx]  # (C, n)
            u = torch.rand(old.shape, generator=generator, device=s.device, dtype=s.dtype)
            fx = old * flips(old, phi, beta, u)  # s_i where i flips, else 0
            s[:, idx] = old - 2.0 * fx
            energy += 2.0 * (fx * phi).sum(-1)
            magnet -= 2.0 * fx.sum(-1)

    def sweep(
        self,
        s: torch.Tensor,
        beta: torch.Tensor,
        method: str = "metropolis",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """One sweep of ``method`` on flat spins s (C, N) at inverse temperatures beta (C, 1);
        returns the new spins (s is not modified)."""
        C = s.shape[0]
        if method == "wolff":
            seeds = torch.randint(self.num_spins, (C,), generator=generator, device=s.device)
            if self.lattice:
                new, _ = wolff_update_lattice(s.reshape(C, *self.shape), self.coupling,
                                              self.periodic, beta, seeds, generator)  # fmt: skip
                return new.reshape(C, -1)
            return wolff_update(s, self.neighbors, self.bonds, beta, seeds, generator)[0]
        s = s.clone()
        e = torch.zeros(C, dtype=s.dtype, device=s.device)
        self._site_sweep(s, beta, method, generator, e, torch.zeros_like(e))
        return s

    @torch.no_grad()
    def sample(
        self,
        temperature: float | torch.Tensor,
        sweeps: int,
        chains: int = 1,
        method: str = "metropolis",
        burn_in: int = 0,
        generator: torch.Generator | None = None,
        initial: torch.Tensor | str = "random",
    ) -> IsingRun:
        """Run ``chains`` independent chains for ``burn_in`` unrecorded and ``sweeps`` recorded
        sweeps of ``method`` ("metropolis", "heat_bath" or "wolff").

        temperature: a number, or a tensor (chains,) with one temperature per chain.
        initial: "random" (independent fair spins), "up" (all +1) or the spins (chains,
        *shape). Returns :class:`IsingRun` with the energy and magnetisation per spin after
        every recorded sweep."""
        check_positive_int("sweeps", sweeps)
        check_positive_int("chains", chains)
        check_positive_int("burn_in", burn_in, minimum=0)
        if method not in METHODS:
            raise InputError(f"method: expected one of {', '.join(METHODS)}, received {method!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise InputError(
                f"generator: expected a torch.Generator, received {describe(generator)}"
            )
        if method == "wolff":
            if bool((self.field != 0).any()) or bool((self.bonds < 0).any()):
                raise InputError(
                    "method: 'wolff' needs ferromagnetic couplings (J >= 0) and no field; "
                    "use 'metropolis' or 'heat_bath' for this model"
                )
        beta = self._beta(temperature, chains)
        dtype, device = self.bonds.dtype, self.bonds.device
        if isinstance(initial, torch.Tensor):
            s = self._flat(initial).clone()
            if s.shape[0] != chains:
                raise InputError(
                    f"initial: expected {chains} chains, received {tuple(initial.shape)}"
                )
        elif initial == "random":
            s = torch.randint(0, 2, (chains, self.num_spins), generator=generator, device=device)
            s = (2 * s - 1).to(dtype)
        elif initial == "up":
            s = torch.ones(chains, self.num_spins, dtype=dtype, device=device)
        else:
            raise InputError(f"initial: expected 'random', 'up' or a tensor, received {initial!r}")
        for _ in range(burn_in):
            s = self.sweep(s, beta, method, generator)
        energy = torch.empty(chains, sweeps, dtype=dtype, device=device)
        magnet = torch.empty(chains, sweeps, dtype=dtype, device=device)
        N = self.num_spins
        if method == "wolff":
            for t in range(sweeps):
                s = self.sweep(s, beta, method, generator)
                energy[:, t] = self._energy_flat(s) / N
                magnet[:, t] = s.mean(-1)
        else:  # single-spin updates keep running totals, recomputed every 64 sweeps
            acc = torch.float64 if device.type == "cpu" else dtype
            for t in range(sweeps):
                if t % 64 == 0:
                    e_tot = self._energy_flat(s).to(acc)
                    m_tot = s.sum(-1).to(acc)
                self._site_sweep(s, beta, method, generator, e_tot, m_tot)
                energy[:, t] = e_tot / N
                magnet[:, t] = m_tot / N
        return IsingRun(energy, magnet, s.reshape(chains, *self.shape))

    def observables(self, run: IsingRun, temperature: float, block_size: int | None = None):
        """:func:`estimate_observables` of a run whose chains are all at ``temperature``
        (with ``symmetric=True`` when the model has no field)."""
        symmetric = not bool((self.field != 0).any())
        return estimate_observables(
            run.energy, run.magnetization, temperature, self.num_spins, block_size, symmetric
        )

    # ----------------------------------------------------------------- exact

    def _enumerate(self) -> tuple[torch.Tensor, torch.Tensor]:
        N = self.num_spins
        if N > MAX_EXACT_SPINS:
            raise InputError(
                f"exact: expected at most {MAX_EXACT_SPINS} spins for enumeration, received a "
                f"model with {N}"
            )
        codes = torch.arange(2**N, device=self.bonds.device)
        bits = (codes[:, None] >> torch.arange(N, device=codes.device)) & 1  # (2^N, N)
        s = (2 * bits - 1).to(torch.float64)
        model64 = (self.neighbors, self.bonds.to(torch.float64), self.field.to(torch.float64))
        pair = local_field(s, model64[0], model64[1], torch.zeros_like(model64[2]))
        E = -0.5 * (s * pair).sum(-1) - s @ model64[2]  # (2^N,)
        return E, s.sum(-1)  # energies and total magnetisations

    def _moments(self, temperature):
        t, scalar = _as_temperature_array(temperature)
        E, M = self._enumerate()
        tt = torch.as_tensor(t, dtype=torch.float64, device=E.device).reshape(-1, 1)  # (K, 1)
        logw = -E[None, :] / tt  # (K, 2^N)
        p = torch.softmax(logw, dim=-1)
        return p, E, M, tt[:, 0], scalar

    def exact(self, temperature) -> IsingObservables:
        """Exact thermal averages per spin by enumerating all 2^N states (N <= 16), at a
        temperature (floats returned) or several (float64 tensors returned)."""
        p, E, M, t, scalar = self._moments(temperature)
        N = self.num_spins
        e1, e2 = p @ E, p @ E**2
        m1, m2, am = p @ M, p @ M**2, p @ M.abs()
        out = (e1 / N, am / N, (e2 - e1**2) / (N * t**2), (m2 - m1**2) / (N * t))
        return IsingObservables(*[float(x[0]) if scalar else x for x in out])

    def exact_binder(self, temperature):
        """Exact Binder cumulant 1 - <m^4> / (3 <m^2>^2) by enumeration (N <= 16)."""
        p, _, M, _, scalar = self._moments(temperature)
        u = 1.0 - (p @ M**4) / (3.0 * (p @ M**2) ** 2)
        return float(u[0]) if scalar else u
