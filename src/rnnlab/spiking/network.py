r"""Networks of spike sources, LIF populations and (plastic) connections, and the
clock-driven simulator :func:`simulate`, batched over independent trials.

One clock step of :math:`\Delta` ms, in the order of Brian2's default schedule:

1. every LIF population integrates its membrane over the step with the synaptic variables
   of the step's start, thresholds and resets (:meth:`LIF.step`); every source emits the
   spikes of the step;
2. every connection adds the weights of this step's presynaptic spikes to the synaptic
   variable it targets (``exc`` or ``inh``) of its postsynaptic population (felt from the
   next step on), with the weights of the step's start;
3. every plastic connection applies its rule (:meth:`STDP.step`) to this step's pre- and
   postsynaptic spikes.

The simulator's state (:class:`NetworkState`: membranes, synaptic variables, traces, the
step counter) is returned and can be passed back; the weights live in the connections and
are updated in place. Running n steps in one call or in n calls of one step gives the
same weights and spikes (tests/spiking/test_network.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rnnlab._validation import check_positive_int, check_tensor, describe
from rnnlab.errors import InputError, InputTypeError
from rnnlab.spiking._checks import check_choice
from rnnlab.spiking.inputs import SpikeSource, SpikeTrain
from rnnlab.spiking.neurons import LIF, LIFState
from rnnlab.spiking.stdp import STDP, STDPState


class Connection(nn.Module):
    """Synapses from population (or source) ``pre`` to LIF population ``post``.

    weight: (N_pre, N_post), shared by the trials, or (B, N_pre, N_post), one matrix per
    trial (needed by ``STDP(reduction="none")``). A presynaptic spike adds its weights to
    the ``target`` synaptic variable (``"exc"`` or ``"inh"``) of the postsynaptic neurons.
    plasticity: an :class:`STDP` rule or None (fixed weights); the initial weights must
    lie within its bounds."""

    def __init__(
        self,
        pre: str,
        post: str,
        weight: Tensor,
        target: str = "exc",
        plasticity: STDP | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__()
        check_tensor("weight", weight)
        if weight.dim() not in (2, 3) or not weight.is_floating_point():
            raise InputError(
                "weight: expected a floating-point (N_pre, N_post) or (B, N_pre, N_post) "
                f"tensor, received {describe(weight)}"
            )
        self.pre, self.post = pre, post
        self.target = check_choice("target", target, ("exc", "inh"))
        if plasticity is not None and not isinstance(plasticity, STDP):
            raise InputTypeError(
                f"plasticity: expected an STDP rule or None, received {describe(plasticity)}"
            )
        if plasticity is not None:
            plasticity.check_weight("weight", weight)
            per_trial = plasticity.reduction == "none"
            if per_trial != (weight.dim() == 3):
                want = "(B, N_pre, N_post)" if per_trial else "(N_pre, N_post)"
                raise InputError(
                    f"weight: expected shape {want} for STDP(reduction="
                    f"{plasticity.reduction!r}), received shape {tuple(weight.shape)}"
                )
        self.plasticity = plasticity
        self.name = name or f"{pre}->{post}"
        self.register_buffer("weight", weight.detach().clone())

    @property
    def n_pre(self) -> int:
        return self.weight.shape[-2]

    @property
    def n_post(self) -> int:
        return self.weight.shape[-1]

    def extra_repr(self) -> str:
        return f"{self.name}, {tuple(self.weight.shape)}, target={self.target!r}, {self.plasticity}"


@dataclass
class NetworkState:
    """neurons: LIFState per population; traces: STDPState per plastic connection (by
    name); step: clock steps run so far (sources are read from this step on)."""

    neurons: dict[str, LIFState]
    traces: dict[str, STDPState]
    step: int = 0


@dataclass
class SimulationResult:
    """What :func:`simulate` recorded.

    state: the state after the last step (pass it back to continue).
    counts: spikes per neuron over the run, (B, N) per population and source.
    spikes: bool (B, T, N) per LIF population (with ``"spikes"`` in ``record``).
    v: membrane potentials (B, T_rec, N) per population, after steps every, 2 every, ...
    weights: (T_rec, *weight.shape) per plastic connection, at the same steps.
    times: (T_rec,) the times (ms since the run's start) of those samples.
    """

    state: NetworkState
    counts: dict[str, Tensor] = field(default_factory=dict)
    spikes: dict[str, Tensor] = field(default_factory=dict)
    v: dict[str, Tensor] = field(default_factory=dict)
    weights: dict[str, Tensor] = field(default_factory=dict)
    times: Tensor | None = None


class Network(nn.Module):
    """Spike sources (name -> number of neurons), LIF populations and connections.

    All populations must share one ``dt``. Connections are applied in the given order."""

    def __init__(
        self,
        sources: Mapping[str, int],
        populations: Mapping[str, LIF],
        connections: Sequence[Connection],
    ) -> None:
        super().__init__()
        self.sources = {k: check_positive_int(f"sources[{k!r}]", v) for k, v in sources.items()}
        self.populations = nn.ModuleDict(dict(populations))
        if not self.populations:
            raise InputError("populations: expected at least one LIF population, received none")
        dts = {p.dt for p in self.populations.values()}
        if len(dts) != 1:
            raise InputError(f"populations: expected one dt for all, received {sorted(dts)}")
        self.dt = dts.pop()
        self.connections = nn.ModuleList(list(connections))
        sizes = {**self.sources, **{k: p.num_neurons for k, p in self.populations.items()}}
        names = set()
        for c in self.connections:
            if c.pre not in sizes:
                raise InputError(f"connections: pre {c.pre!r} is not a source or population")
            if c.post not in self.populations:
                raise InputError(f"connections: post {c.post!r} is not a LIF population")
            if (c.n_pre, c.n_post) != (sizes[c.pre], sizes[c.post]):
                raise InputError(
                    f"connections[{c.name!r}].weight: expected (..., {sizes[c.pre]}, "
                    f"{sizes[c.post]}), received shape {tuple(c.weight.shape)}"
                )
            if c.name in names:
                raise InputError(f"connections: name {c.name!r} used twice")
            names.add(c.name)
            if c.plasticity is not None:
                c.plasticity.decays(self.dt)  # checks dt against the trace time constants

    def connection(self, name: str) -> Connection:
        """The connection called ``name``."""
        for c in self.connections:
            if c.name == name:
                return c
        raise InputError(
            f"name: expected one of {[c.name for c in self.connections]}, received {name!r}"
        )

    def initial_state(self, batch_size: int) -> NetworkState:
        """Every population at rest, zero traces, step 0."""
        neurons = {k: p.initial_state(batch_size) for k, p in self.populations.items()}
        like = next(iter(neurons.values())).v
        traces = {
            c.name: c.plasticity.initial_state(batch_size, c.n_pre, c.n_post, like)
            for c in self.connections
            if c.plasticity is not None
        }
        return NetworkState(neurons, traces, 0)


@dataclass
class _Run:
    """The mutable state of one :func:`simulate` call."""

    neurons: dict[str, LIFState]
    traces: dict[str, STDPState]
    weights: list[Tensor]
    rules: list[STDP | None]
    decays: list[tuple[float, float] | None]
    currents: dict[str, Tensor | float]
    batch: int


def _clock_step(network: Network, run: _Run, source_spikes: Mapping[str, Tensor]) -> dict:
    """One clock step (module docstring): populations, propagation, plasticity.
    source_spikes: (B or 1, N) bool per source. Returns the spikes (B, N) of every
    population and source."""
    spikes: dict[str, Tensor] = {}
    for k, pop in network.populations.items():
        spikes[k], run.neurons[k] = pop.step(run.neurons[k], run.currents.get(k, 0.0))
    for k, s in source_spikes.items():
        spikes[k] = s.expand(run.batch, -1)  # (B, N)
    for j, c in enumerate(network.connections):
        s_pre = spikes[c.pre]
        w = run.weights[j]
        if bool(s_pre.any()):
            if w.dim() == 2:
                inc = s_pre.to(w.dtype) @ w  # (B, N_post)
            else:
                inc = torch.bmm(s_pre.to(w.dtype).unsqueeze(1), w).squeeze(1)  # (B, N_post)
            st = run.neurons[c.post]
            if c.target == "exc":
                run.neurons[c.post] = st._replace(exc=st.exc + inc)
            else:
                run.neurons[c.post] = st._replace(inh=st.inh + inc)
        rule = run.rules[j]
        if rule is not None:
            run.weights[j], run.traces[c.name] = rule.step(
                w, run.traces[c.name], s_pre, spikes[c.post], *run.decays[j]
            )
    return spikes


def _as_source(name: str, value: object, size: int) -> SpikeSource:
    if isinstance(value, Tensor):
        value = SpikeTrain(value)
    if not isinstance(value, SpikeSource):
        raise InputTypeError(
            f"inputs[{name!r}]: expected a SpikeSource or a spike tensor, "
            f"received {describe(value)}"
        )
    if value.num_neurons != size:
        raise InputError(f"inputs[{name!r}]: expected {size} neurons, received {value.num_neurons}")
    return value


def simulate(
    network: Network,
    inputs: Mapping[str, SpikeSource | Tensor],
    steps: int,
    state: NetworkState | None = None,
    batch_size: int | None = None,
    currents: Mapping[str, Tensor | float] | None = None,
    record: Sequence[str] = ("spikes",),
    every: int = 1,
    plasticity: bool = True,
    engine: str = "clock",
) -> SimulationResult:
    """Run ``network`` for ``steps`` clock steps (see the module docstring).

    inputs: a :class:`SpikeSource` (or a spike tensor (T, N) / (B, T, N)) per source name,
    read from clock step ``state.step`` on. state: from a previous call, or None to start
    at rest with ``batch_size`` trials (default: the sources' batch size, else 1).
    currents: constant drive (mV) per population, a number or (B, N). record: any of
    ``"spikes"``, ``"v"``, ``"weights"``; ``v`` and ``weights`` are sampled after every
    ``every``-th step. plasticity: False freezes every rule (weights and traces).
    engine: ``"clock"``, the step-by-step loop (the reference), or ``"window"``, the same
    steps computed a window at a time between output spikes (:mod:`rnnlab.spiking.window`;
    feedforward networks of sources into one population, recording spikes only)."""
    check_positive_int("steps", steps)
    check_positive_int("every", every)
    for r in record:
        check_choice("record", r, ("spikes", "v", "weights"))
    missing = set(network.sources) - set(inputs)
    if missing:
        raise InputError(
            f"inputs: expected a source for {sorted(missing)}, received {sorted(inputs)}"
        )
    sources = {k: _as_source(k, inputs[k], n) for k, n in network.sources.items()}
    if state is None:
        sizes = {s.batch_size for s in sources.values() if s.batch_size is not None}
        if batch_size is None:
            batch_size = sizes.pop() if len(sizes) == 1 else 1
        state = network.initial_state(batch_size)
    batch = next(iter(state.neurons.values())).v.shape[0]
    for k, s in sources.items():
        if s.batch_size not in (None, batch):
            raise InputError(f"inputs[{k!r}]: expected batch size {batch}, received {s.batch_size}")
    currents = dict(currents or {})
    for k in currents:
        if k not in network.populations:
            raise InputError(f"currents: {k!r} is not a LIF population")

    conns = list(network.connections)
    rules = [(c.plasticity if plasticity else None) for c in conns]
    like = next(iter(state.neurons.values())).v
    run = _Run(
        neurons=dict(state.neurons),
        traces=dict(state.traces),
        weights=[c.weight for c in conns],
        rules=rules,
        decays=[r.decays(network.dt) if r is not None else None for r in rules],
        currents=currents,
        batch=batch,
    )
    counts = {k: like.new_zeros(batch, p.num_neurons) for k, p in network.populations.items()}
    counts.update({k: like.new_zeros(batch, n) for k, n in network.sources.items()})
    spike_rec = {k: [] for k in network.populations} if "spikes" in record else None
    v_rec = {k: [] for k in network.populations} if "v" in record else None
    plastic_names = [c.name for c, r in zip(conns, rules) if r is not None]
    w_rec = {k: [] for k in plastic_names} if "weights" in record else None
    check_choice("engine", engine, ("clock", "window"))
    if engine == "window":
        from rnnlab.spiking.window import check_window_network, run_windows

        if v_rec is not None or w_rec is not None:
            raise InputError(
                f"record: expected only 'spikes' with engine='window', received {tuple(record)}"
            )
        check_window_network(network)
    block = 1000
    start = state.step
    for k0 in range(0, steps, block):
        n = min(block, steps - k0)
        chunks = {k: s.chunk(start + k0, n) for k, s in sources.items()}  # (n, B or 1, N)
        for k, ch in chunks.items():
            counts[k] += ch.view(torch.uint8).sum(0)  # (B or 1, N)
        if engine == "window":
            out = run_windows(network, run, chunks, n, lambda sp: _clock_step(network, run, sp))
            for k in network.populations:
                counts[k] += out[k].sum(0)
                if spike_rec is not None:
                    spike_rec[k].extend(out[k].unbind(0))
            continue
        for i in range(n):
            spikes = _clock_step(network, run, {k: ch[i] for k, ch in chunks.items()})
            for k in network.populations:
                counts[k] += spikes[k]
            if spike_rec is not None:
                for k in network.populations:
                    spike_rec[k].append(spikes[k])
            if (k0 + i + 1) % every == 0:
                if v_rec is not None:
                    for k in network.populations:
                        v_rec[k].append(run.neurons[k].v)
                if w_rec is not None:
                    for j, c in enumerate(conns):
                        if rules[j] is not None:
                            w_rec[c.name].append(run.weights[j])
    neurons, traces, weights = run.neurons, run.traces, run.weights
    for c, w in zip(conns, weights):
        c.weight = w
    new_state = NetworkState(neurons, traces, start + steps)
    n_rec = steps // every
    result = SimulationResult(
        new_state,
        counts,
        times=torch.arange(1, n_rec + 1, dtype=like.dtype) * (every * network.dt),
    )
    if spike_rec is not None:
        result.spikes = {k: torch.stack(v, 1) for k, v in spike_rec.items()}  # (B, T, N)
    if v_rec is not None:
        result.v = {k: torch.stack(v, 1) for k, v in v_rec.items()}  # (B, T_rec, N)
    if w_rec is not None:
        result.weights = {k: torch.stack(v, 0) for k, v in w_rec.items()}  # (T_rec, ...)
    return result
