r"""The ``window`` engine of :func:`~rnnlab.spiking.simulate`: the clock steps of a
feedforward network (spike sources into one LIF population) computed a window of K steps
at a time, exactly, between output spikes.

While no output neuron spikes, every quantity of a step is known in closed form from the
input spikes of the window (S_k, k = 0..K-1) and the state at its start:

- post traces :math:`y_k = y_0 d_-^{k+1}` (no post spikes), so the depression of step k is
  :math:`D_k = \langle S_k\, y_k \rangle` (reduced over trials like the rule);
- weights before step k: additive rules :math:`w_k = \max(w_{min}, w_0 - A_- \sum_{j<k}
  D_j)` (a monotone decrease with a floor), weight-dependent depression
  :math:`w_k - w_{min} = (w_0 - w_{min}) \prod_{j<k} \max(0, 1 - A_- D_j / \delta)`;
- synaptic inputs :math:`u_k = S_k w_k` and conductances (or currents)
  :math:`g_k = d^k g_0 + \sum_{j<k} d^{k-1-j} u_j` (one lower-triangular matrix product);
- the membrane :math:`v_{k+1} = a_k v_k + b_k` (the step of :class:`LIF` is affine in v),
  solved by :math:`v_{k+1} = P_k (v_0 + \sum_{j\le k} b_j / P_j)`,
  :math:`P_k = \prod_{j \le k} a_j` (a cumulative sum of logarithms).

The first step m at which some membrane crosses threshold ends the window: steps
0..m-1 are committed (pre traces advanced in closed form too), step m runs through the
clock engine's own step (spikes, reset, potentiation), and the next window starts after
it. The result equals the clock engine's up to rounding (tests/spiking/test_window.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping

import torch
from torch import Tensor

from rnnlab.errors import InputError
from rnnlab.spiking.neurons import LIFState


def check_window_network(network) -> None:
    """ValueError unless ``network`` is sources into one LIF population without
    refractory period or adaptive threshold (what the window engine computes)."""
    if len(network.populations) != 1:
        raise InputError(
            "engine: expected 'clock' for networks of several populations ('window' runs "
            f"one population), received 'window' with {list(network.populations)}"
        )
    ((name, pop),) = network.populations.items()
    if pop.refractory_steps or pop.theta_plus:
        raise InputError(
            "engine: expected 'clock' for neurons with a refractory period or an adaptive "
            "threshold, received 'window'"
        )
    for c in network.connections:
        if c.pre not in network.sources:
            raise InputError(
                f"engine: expected 'clock' for recurrent connections ({c.name}), received 'window'"
            )


@functools.lru_cache(maxsize=16)
def _filter_matrix(steps: int, decay: float, dtype, device) -> tuple[Tensor, Tensor]:
    """L (K + 1, K) with L[k, j] = decay^(k - 1 - j) for j < k, and decay^k (K + 1,)."""
    k = torch.arange(steps + 1, dtype=torch.float64)
    j = torch.arange(steps, dtype=torch.float64)
    expo = k[:, None] - 1.0 - j[None, :]
    L = torch.where(expo >= 0, decay ** expo.clamp(min=0), torch.zeros(()))
    return L.to(dtype=dtype, device=device), (decay**k).to(dtype=dtype, device=device)


def _filter(U: Tensor, g0: Tensor, decay: float) -> Tensor:
    """g_k = d^k g0 + sum_{j<k} d^(k-1-j) U_j for k = 0..K: (K + 1, B, N)."""
    K = U.shape[0]
    size = 1 << max(K - 1, 1).bit_length()  # a power of two >= K: few cached matrices
    L, powers = _filter_matrix(size, decay, U.dtype, U.device)
    L, powers = L[: K + 1, :K], powers[: K + 1]  # L[k, j] depends on k - j only
    G = (L @ U.reshape(K, -1)).reshape(K + 1, *U.shape[1:])  # (K + 1, B, N)
    return G + powers[:, None, None] * g0


def _events(chunk: Tensor, batch: int) -> tuple[Tensor, Tensor, Tensor]:
    """Input spikes (T, B or 1, P) as events (step, trial, input), sorted by step."""
    s = chunk.expand(-1, batch, -1) if chunk.shape[1] != batch else chunk
    k, b, p = s.nonzero(as_tuple=True)
    return k, b, p


def _segment_exclusive_cumsum(values: Tensor, segment: Tensor) -> Tensor:
    """For rows sorted by ``segment``: the sum of the earlier rows of the same segment."""
    cs = torch.cat([torch.zeros_like(values[:1]), torch.cumsum(values, 0)], 0)  # (G + 1, N)
    _, counts = torch.unique_consecutive(segment, return_counts=True)
    starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)  # (G,)
    return cs[:-1] - cs[starts]


def _window(network, run, events: Mapping[str, tuple[Tensor, Tensor, Tensor]], K: int) -> int:
    """Compute K steps from the run's state, given the input events of the window (steps
    counted from its start); commit the steps before the first output spike (all K when
    there is none) and return how many were committed."""
    ((name, pop),) = network.populations.items()
    st: LIFState = run.neurons[name]
    B, N = st.v.shape
    dtype = st.v.dtype
    U = {"exc": st.v.new_zeros(K * B, N), "inh": st.v.new_zeros(K * B, N)}  # (K B, N)
    plastic = []
    for j, c in enumerate(network.connections):
        k, b, p = events[c.pre]
        row = k * B + b  # (E,) row of U each event adds to
        w0, rule = run.weights[j], run.rules[j]
        P = c.n_pre
        syn = p if w0.dim() == 2 else b * P + p  # (E,) the weight row of each event
        w_flat = w0.reshape(-1, N)  # (P or B P, N)
        if rule is None:
            U[c.target].index_add_(0, row, w_flat[syn])
            continue
        d_pre, d_post = run.decays[j]
        y = run.traces[c.name].post[b] * (d_post ** (k + 1).to(dtype))[:, None]  # (E, N)
        if rule.reduction == "mean":
            y = y / B
        # one group per (synapse row, step): events of different trials on a shared
        # weight in the same step see the weight of the step's start
        key, inv = torch.unique(syn * K + k, return_inverse=True)  # sorted by row, then step
        g_syn, g_step = key // K, key % K
        d = y.new_zeros(key.shape[0], N).index_add_(0, inv, y)  # (G, N) D of each group
        weight_dependent = rule.bounds == "soft" or rule.rule == "multiplicative"
        if weight_dependent:
            delta = rule.w_max - rule.w_min
            tiny = torch.finfo(dtype).tiny
            d = torch.log((1.0 - rule.a_minus * d / delta).clamp(min=tiny))  # log factors
            before = rule.w_min + (w_flat[g_syn] - rule.w_min) * torch.exp(
                _segment_exclusive_cumsum(d, g_syn)
            )
        else:
            before = (w_flat[g_syn] - rule.a_minus * _segment_exclusive_cumsum(d, g_syn)).clamp(
                rule.w_min, rule.w_max
            )
        U[c.target].index_add_(0, row, before[inv])
        plastic.append((j, c, k, b, p, d, g_syn, g_step, weight_dependent, d_pre, d_post))
    Ge = _filter(U["exc"].view(K, B, N), st.exc, pop.decay_exc)  # (K + 1, B, N)
    Gi = _filter(U["inh"].view(K, B, N), st.inh, pop.decay_inh)
    ge, gi = Ge[:K], Gi[:K]  # at the start of step k
    current = run.currents.get(name, 0.0)
    if pop.synapse == "conductance":
        g_tot = 1.0 + ge + gi
        log_a = -(pop.dt / pop.tau_m) * g_tot  # (K, B, N)
        v_inf = (pop.v_rest + ge * pop.e_exc + gi * pop.e_inh + current) / g_tot
        b_k = v_inf * (1.0 - torch.exp(log_a))
    else:
        log_a = torch.full_like(ge, math.log(pop.decay_m))
        b_k = (pop.v_rest + current) * (1.0 - pop.decay_m) + pop.kappa_exc * ge
        b_k = b_k - pop.kappa_inh * gi
    log_p = torch.cumsum(log_a, 0)  # log P_k
    V = torch.exp(log_p) * (st.v + torch.cumsum(b_k * torch.exp(-log_p), 0))  # after step k
    crossed = (V > pop.v_threshold).reshape(K, -1).any(1)  # (K,)
    m = int(crossed.to(torch.int8).argmax()) if bool(crossed.any()) else K
    if m == 0:
        return 0
    run.neurons[name] = st._replace(v=V[m - 1], exc=Ge[m], inh=Gi[m])
    for j, c, k, b, p, d, g_syn, g_step, weight_dependent, d_pre, d_post in plastic:
        rule = c.plasticity
        w0 = run.weights[j]
        w_flat = w0.reshape(-1, w0.shape[-1])
        done = g_step < m
        total = torch.zeros_like(w_flat).index_add_(0, g_syn[done], d[done])
        if weight_dependent:
            w = rule.w_min + (w_flat - rule.w_min) * torch.exp(total)
        else:
            w = (w_flat - rule.a_minus * total).clamp(rule.w_min, rule.w_max)
        run.weights[j] = w.view_as(w0)
        tr = run.traces[c.name]
        ev = k < m
        k, b, p = k[ev], b[ev], p[ev]
        flat = b * c.n_pre + p  # (E,) index into the (B, P) trace
        x = (tr.pre * d_pre**m).reshape(-1)
        if c.plasticity.pairing == "nearest":
            last = torch.full_like(x, -1, dtype=torch.long).scatter_reduce_(
                0, flat, k, reduce="amax"
            )
            x = torch.where(last >= 0, d_pre ** (m - 1 - last).to(dtype), x)
        else:
            x = x.index_add(0, flat, d_pre ** (m - 1 - k).to(dtype))
        run.traces[c.name] = tr._replace(pre=x.view_as(tr.pre), post=tr.post * d_post**m)
    return m


MAX_WINDOW = 512  # steps; the (K + 1, K) filter matrix stays small


def run_windows(
    network, run, chunks: Mapping[str, Tensor], steps: int, clock_step: Callable
) -> dict[str, Tensor]:
    """Run ``steps`` steps from ``chunks`` (time-major (steps, B or 1, N) per source) by
    windows. Returns the population's spikes (steps, B, N) bool."""
    ((name, pop),) = network.populations.items()
    out = torch.zeros(
        steps, run.batch, pop.num_neurons, dtype=torch.bool, device=run.neurons[name].v.device
    )
    events = {s: _events(ch, run.batch) for s, ch in chunks.items()}
    k_max = MAX_WINDOW
    K = k_max
    i = 0
    while i < steps:
        k = min(K, steps - i)
        window = {}
        for s, (ks, bs, ps) in events.items():
            lo, hi = torch.searchsorted(ks, torch.tensor([i, i + k], device=ks.device)).tolist()
            window[s] = (ks[lo:hi] - i, bs[lo:hi], ps[lo:hi])
        m = _window(network, run, window, k)
        i += m
        if m < k:  # step i has an output spike: the clock engine runs it
            spikes = clock_step({s: ch[i] for s, ch in chunks.items()})
            out[i] = spikes[name]
            i += 1
            K = max(16, min(k_max, 1 << (2 * m + 1).bit_length()))  # ~2x the last interval
        else:
            K = min(k_max, 2 * K)
    return {name: out}
