r"""Spike trains: independent and correlated Poisson processes on the clock grid.

Functional core: :func:`poisson_spikes` and :func:`correlated_poisson_spikes` (whole trains,
batch-first (B, T, N)), beside the spike *sources* a simulation reads step by step:
:class:`PoissonInput` (generated in fixed blocks, so the train does not depend on how the
run is cut into calls) and :class:`SpikeTrain` (a given tensor).

A Poisson train of rate r on a grid of step :math:`\Delta` is one Bernoulli draw per bin
with :math:`p = r \Delta / 1000` (r in Hz, :math:`\Delta` in ms). Correlated inputs follow
the shared-source ("multiple interaction") construction: one mother train of rate
:math:`r / c`, each input keeping each mother spike independently with probability
:math:`c`: every input is Poisson of rate r and two inputs' bin counts have correlation
coefficient :math:`(c - p) / (1 - p) \approx c` (Kuhn, Aertsen & Rotter 2003). Song, Miller
& Abbott (2000) drove their neuron with such a correlated group beside independent inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnlab._validation import check_positive_int, check_rank, check_tensor, describe
from rnnlab.errors import InputError, InputTypeError
from rnnlab.spiking._checks import check_number, check_positive


def _steps(duration: float, dt: float) -> int:
    check_positive("dt", dt)
    check_positive("duration", duration)
    steps = int(round(duration / dt))
    if steps < 1:
        raise InputError(
            f"duration: expected at least one step of dt = {dt} ms, received {duration}"
        )
    return steps


def _check_rates(rates: object, dt: float) -> Tensor:
    if not isinstance(rates, Tensor):
        raise InputTypeError(
            f"rates: expected a torch.Tensor of rates in Hz, received {describe(rates)}"
        )
    check_rank("rates", rates, (1, 2), "(N,) or (B, N)")
    if not rates.is_floating_point():
        raise InputTypeError(
            f"rates: expected a floating-point tensor, received dtype {rates.dtype}"
        )
    if rates.numel() and float(rates.min()) < 0:
        raise InputError(f"rates: expected rates >= 0 Hz, received minimum {float(rates.min())}")
    if rates.numel() and float(rates.max()) * dt / 1000.0 > 1.0:
        raise InputError(
            f"rates: expected at most {1000.0 / dt} Hz (one spike per step of dt = {dt} ms), "
            f"received maximum {float(rates.max())}"
        )
    return rates


def _bernoulli(p: Tensor, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
    return u < p


def _bernoulli_events(p: Tensor, steps: int, generator) -> tuple[Tensor, Tensor, Tensor]:
    """The spikes of independent Bernoulli(p) processes (p (B, N) per step) over ``steps``
    steps, drawn as geometric gaps between spikes (one random number per spike rather
    than per bin): returns (step, trial, neuron) index tensors."""
    p64 = p.double()
    log_q = torch.log1p(-p64.clamp(max=1.0))  # log(1 - p); -inf at p = 1, 0 at p = 0
    mean = steps * float(p64.max()) if p64.numel() else 0.0
    draws = int(mean + 6.0 * mean**0.5 + 8)
    pos = torch.full_like(p64, -1.0)  # position of the last spike drawn
    out = []
    while True:
        u = torch.rand((draws, *p.shape), generator=generator, dtype=torch.float64, device=p.device)
        gaps = torch.floor(torch.log(u) / log_q) + 1.0  # geometric on {1, 2, ...}
        gaps = torch.where(log_q == 0, float(steps + 1), torch.nan_to_num(gaps, nan=1.0))
        t = pos + torch.cumsum(gaps, 0)  # (draws, B, N)
        out.append(t)
        pos = t[-1]
        if bool((pos >= steps).all()):
            break
    t = torch.cat(out, 0) if len(out) > 1 else out[0]
    idx = (t < steps).nonzero(as_tuple=True)
    return t[idx].long(), idx[1], idx[2]


def poisson_spikes(
    rates: Tensor, duration: float, dt: float, generator: torch.Generator | None = None
) -> Tensor:
    """Independent Poisson spike trains.

    rates: (N,) or (B, N) in Hz; duration and dt in ms. Returns a bool tensor (T, N) or
    (B, T, N) with T = round(duration / dt), True where a neuron spikes in that bin."""
    rates = _check_rates(rates, dt)
    steps = _steps(duration, dt)
    p = (rates * (dt / 1000.0)).unsqueeze(-2)  # (B?, 1, N)
    shape = (*rates.shape[:-1], steps, rates.shape[-1])
    return _bernoulli(p.expand(shape), generator)


def correlated_poisson_spikes(
    rate: float,
    correlation: float,
    num_inputs: int,
    duration: float,
    dt: float,
    batch_size: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """A group of ``num_inputs`` Poisson trains of ``rate`` Hz with pairwise correlation
    ``correlation`` (shared mother train of rate rate / c, each spike kept with probability
    c). Returns bool (T, N) or, with ``batch_size``, (B, T, N) (independent groups)."""
    rate = check_number("rate", rate)
    if rate < 0:
        raise InputError(f"rate: expected a rate >= 0 Hz, received {rate!r}")
    c = check_number("correlation", correlation)
    if not 0.0 < c <= 1.0:
        raise InputError(f"correlation: expected a number in (0, 1], received {correlation!r}")
    check_positive_int("num_inputs", num_inputs)
    steps = _steps(duration, dt)
    p_mother = rate * dt / 1000.0 / c
    if p_mother > 1.0:
        raise InputError(
            f"correlation: expected at least rate * dt / 1000 = {rate * dt / 1000.0:.4g} "
            f"(the mother train of rate rate / correlation must have at most one spike a "
            f"step), received {correlation!r}"
        )
    lead = () if batch_size is None else (check_positive_int("batch_size", batch_size),)
    mother = torch.rand((*lead, steps, 1), generator=generator) < p_mother  # (B?, T, 1)
    keep = torch.rand((*lead, steps, num_inputs), generator=generator) < c  # (B?, T, N)
    return mother & keep


class SpikeSource:
    """Something a simulation reads spikes from: ``num_neurons``, ``batch_size`` (None =
    the same spikes in every trial) and ``chunk(start, steps) -> (steps, B or 1, N)``
    bool, time-major, the spikes of clock steps start .. start + steps - 1."""

    num_neurons: int
    batch_size: int | None

    def chunk(self, start: int, steps: int) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class SpikeTrain(SpikeSource):
    """A given spike tensor as a source: (T, N) (the same in every trial) or (B, T, N)."""

    def __init__(self, spikes: Tensor) -> None:
        check_tensor("spikes", spikes)
        check_rank("spikes", spikes, (2, 3), "(T, N) or (B, T, N)")
        s = spikes if spikes.dim() == 3 else spikes.unsqueeze(0)  # (B, T, N)
        self._time_major = (s != 0).transpose(0, 1).contiguous()  # (T, B, N)
        self.batch_size = None if spikes.dim() == 2 else spikes.shape[0]
        self.num_neurons = spikes.shape[-1]
        self.steps = s.shape[1]

    def chunk(self, start: int, steps: int) -> Tensor:
        if start + steps > self.steps:
            raise InputError(
                f"inputs: expected a spike train of at least {start + steps} steps, "
                f"received {self.steps}"
            )
        return self._time_major[start : start + steps]


class PoissonInput(SpikeSource):
    """Poisson spike trains drawn lazily in blocks of ``block`` steps from ``generator``
    (seeded with ``seed`` when no generator is given), so the spikes of step t are the same
    whether a run takes one step per call or all at once. Each train is drawn as geometric
    gaps between spikes (the law of the Bernoulli process of :func:`poisson_spikes`, with
    one random number per spike instead of one per bin).

    rates: (N,) (same rates, independent draws in each of ``batch_size`` trials) or (B, N).
    correlated: optional (num_correlated, correlation): the first ``num_correlated`` inputs
    form a shared-source group (see :func:`correlated_poisson_spikes`), each trial its own
    mother train; their rate is their entry of ``rates`` (must be equal within the group)."""

    def __init__(
        self,
        rates: Tensor,
        dt: float,
        batch_size: int | None = None,
        correlated: tuple[int, float] | None = None,
        seed: int = 0,
        generator: torch.Generator | None = None,
        block: int = 1000,
    ) -> None:
        self.dt = check_positive("dt", dt)
        rates = _check_rates(rates, self.dt)
        if rates.dim() == 2:
            if batch_size is not None and batch_size != rates.shape[0]:
                raise InputError(
                    f"batch_size: expected {rates.shape[0]} (rates is (B, N)), "
                    f"received {batch_size!r}"
                )
            batch_size = rates.shape[0]
        b = 1 if batch_size is None else check_positive_int("batch_size", batch_size)
        self.batch_size = batch_size
        self.num_neurons = rates.shape[-1]
        self._p = (rates * (self.dt / 1000.0)).expand(b, self.num_neurons).contiguous()
        self.block = check_positive_int("block", block)
        self.correlated = None
        if correlated is not None:
            k, c = correlated
            check_positive_int("correlated[0]", k)
            c = check_number("correlated[1]", c)
            if k > self.num_neurons or not 0.0 < c <= 1.0:
                raise InputError(
                    f"correlated: expected (k <= {self.num_neurons}, c in (0, 1]), "
                    f"received {correlated!r}"
                )
            group = self._p[:, :k]
            if float((group - group[:, :1]).abs().max()) > 0:
                raise InputError("rates: expected equal rates within the correlated group")
            if float(group.max()) / c > 1.0:
                raise InputError(
                    f"correlated: expected c >= rate * dt / 1000 = {float(group.max()):.4g}, "
                    f"received {c!r}"
                )
            self.correlated = (k, c)
        if generator is None:
            generator = torch.Generator(device=rates.device).manual_seed(seed)
        self.generator = generator
        self._blocks: dict[int, Tensor] = {}

    def _block(self, index: int) -> Tensor:
        """Spikes of steps index * block .. (index + 1) * block - 1: (block, B, N)."""
        while len(self._blocks) <= index:
            p = self._p
            group = None
            if self.correlated is not None:
                k, c = self.correlated
                p = p.clone()
                p[:, :k] = 0.0  # the group comes from its mother train
                group = (k, c)
            step, b, n = _bernoulli_events(p, self.block, self.generator)
            s = torch.zeros(self.block, *p.shape, dtype=torch.bool, device=p.device)
            s[step, b, n] = True
            if group is not None:
                k, c = group
                step, b, _ = _bernoulli_events(self._p[:, :1] / c, self.block, self.generator)
                keep = torch.rand((step.shape[0], k), generator=self.generator, device=s.device)
                s[step, b, :k] = keep < c
            self._blocks[len(self._blocks)] = s
        return self._blocks[index]

    def chunk(self, start: int, steps: int) -> Tensor:
        first, last = start // self.block, (start + steps - 1) // self.block
        parts = [self._block(i) for i in range(first, last + 1)]
        for old in range(first - 1):  # blocks before the one read last are released
            self._blocks[old] = self._blocks[old][:0]
        s = parts[0] if len(parts) == 1 else torch.cat(parts, 0)
        offset = start - first * self.block
        if s.shape[0] < offset + steps:
            raise InputError(f"inputs: step {start} was already read and released")
        return s[offset : offset + steps]
