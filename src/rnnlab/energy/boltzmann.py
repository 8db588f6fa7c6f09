r"""Boltzmann machines (Ackley, Hinton & Sejnowski 1985): fully connected stochastic binary
units, some visible and some hidden, trained by the clamped/free-phase learning rule.

.. math::

    E(s) = -\tfrac12 s^\top W s - b^\top s, \qquad
    p(s) = e^{-E(s)/T} / Z, \qquad
    p(s_i = 1 \mid s_{-i}) = \sigma\!\Big(\big(\textstyle\sum_{j \ne i} w_{ij} s_j + b_i
    \big) / T\Big)

with :math:`s = (v, h) \in \{0, 1\}^{V + H}`, :math:`W` symmetric with zero diagonal.
(The lecture writes :math:`+\theta^\top s` with thresholds :math:`\theta = -b`.)
Learning at :math:`T = 1` climbs the log-likelihood of the visible data,

.. math::

    \frac{\partial \log p(v)}{\partial w_{ij}} = \langle s_i s_j \rangle_{\text{clamped}}
        - \langle s_i s_j \rangle_{\text{free}}, \qquad
    \frac{\partial \log p(v)}{\partial b_i} = \langle s_i \rangle_{\text{clamped}}
        - \langle s_i \rangle_{\text{free}},

the clamped phase with the visible units fixed to the data and the hidden units at
equilibrium given them, the free phase with every unit running free (Ackley et al. 1985,
eq. 9). Both expectations come from Gibbs sampling (one unit at a time, in a fresh random
order every sweep), optionally after an annealing schedule :math:`(T_1, n_1), (T_2, n_2),
\dots` that reaches equilibrium faster; on models of at most 20 units they can also be
computed exactly by enumeration (the test oracle).

===================  ==================================================================
symbol               meaning
===================  ==================================================================
:math:`V, H, N`      visible, hidden and all units (:math:`N = V + H`; visible first)
:math:`W, b`         ``weight`` (N, N) symmetric with zero diagonal, ``bias`` (N,)
:math:`T`            temperature of the sampler (learning statistics are taken at T = 1)
:math:`B`            batch (data vectors or chains)
===================  ==================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnlab._validation import check_positive_int
from rnnlab.energy.rbm import (
    MAX_ENUMERATED_UNITS,
    EpochBatches,
    _check_data,
    binary_states,
    sample_bernoulli,
)
from rnnlab.errors import InputError

__all__ = [
    "BoltzmannMachine",
    "BoltzmannGradient",
    "boltzmann_energy",
    "gibbs_sweeps",
    "check_annealing",
]


class BoltzmannGradient(NamedTuple):
    r"""Minus the learning-rule estimate (the direction to descend).

    weight: (N, N) :math:`\langle s s^\top\rangle_{\text{free}} - \langle s
        s^\top\rangle_{\text{clamped}}`, zero diagonal.
    bias: (N,) :math:`\langle s\rangle_{\text{free}} - \langle s \rangle_{\text{clamped}}`.
    free_states: (chains, N) the free-phase chains after this estimate (None when exact).
    """

    weight: Tensor
    bias: Tensor
    free_states: Tensor | None


def boltzmann_energy(s: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    r""":math:`E(s) = -\frac12 s^\top W s - b^\top s`: (B, N) -> (B,)."""
    return -0.5 * ((s @ weight) * s).sum(-1) - s @ bias


def check_annealing(annealing) -> list[tuple[float, int]]:
    """Validate an annealing schedule: a sequence of (temperature > 0, sweeps >= 1) pairs."""
    if annealing is None:
        return []
    out = []
    for item in annealing:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise InputError(f"annealing: expected (temperature, sweeps) pairs, received {item!r}")
        t, n = item
        if not isinstance(t, (int, float)) or not t > 0:
            raise InputError(f"annealing: expected a temperature > 0, received {t!r}")
        out.append((float(t), check_positive_int("annealing sweeps", n)))
    return out


def gibbs_sweeps(
    s: Tensor,
    weight: Tensor,
    bias: Tensor,
    sweeps: int,
    *,
    free: Tensor | None = None,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""``sweeps`` sweeps of single-unit Gibbs updates of the units ``free`` (a LongTensor
    of unit indices; default all), each sweep in a fresh random order, batched over the
    chains of ``s`` (B, N). Returns the new states (``s`` is not modified)."""
    s = s.clone()
    units = torch.arange(s.shape[1], device=s.device) if free is None else free
    for _ in range(sweeps):
        dev = generator.device if generator is not None else units.device
        order = units[torch.randperm(len(units), generator=generator, device=dev).to(units.device)]
        u = torch.rand(
            (len(order), s.shape[0]), generator=generator, dtype=s.dtype, device=s.device
        )
        for i, ui in zip(order.tolist(), u):
            # p(s_i = 1 | s_-i) = sigma((W_i s + b_i) / T); W_ii = 0
            a = torch.mv(s, weight[:, i]) + bias[i]  # (B,)
            s[:, i] = ui.lt_(torch.sigmoid(a / temperature))
    return s


class BoltzmannMachine(nn.Module):
    r"""A Boltzmann machine with ``num_visible`` visible and ``num_hidden`` hidden binary
    units, fully connected (energy, sampler and learning rule in the module docstring).

    Parameters: ``weight`` (N, N), symmetric with zero diagonal, initialised
    :math:`\mathcal N(0, 0.01^2)` symmetrised; ``bias`` (N,), zero. The learning rule's
    gradient is symmetric with zero diagonal, so SGD (with momentum and weight decay)
    keeps the weights so.
    """

    def __init__(self, num_visible: int, num_hidden: int = 0, *, device=None, dtype=None):
        super().__init__()
        check_positive_int("num_visible", num_visible)
        check_positive_int("num_hidden", num_hidden, minimum=0)
        self.num_visible, self.num_hidden = num_visible, num_hidden
        n = num_visible + num_hidden
        w = torch.randn(n, n, device=device, dtype=dtype) * 0.01
        w = torch.triu(w, 1)
        self.weight = nn.Parameter(w + w.t())
        self.bias = nn.Parameter(torch.zeros(n, device=device, dtype=dtype))

    @property
    def num_units(self) -> int:
        """N = V + H."""
        return self.num_visible + self.num_hidden

    def extra_repr(self) -> str:
        return f"num_visible={self.num_visible}, num_hidden={self.num_hidden}"

    def _states(self, name: str, s) -> Tensor:
        return _check_data(name, s, self.num_units, self.weight, "bernoulli", binary=True)

    def _visible(self, name: str, v, binary: bool = True) -> Tensor:
        return _check_data(name, v, self.num_visible, self.weight, "bernoulli", binary=binary)

    def energy(self, states: Tensor) -> Tensor:
        r""":math:`E(s)` of full states (B, N) -> (B,)."""
        return boltzmann_energy(self._states("states", states), self.weight, self.bias)

    @torch.no_grad()
    def gibbs(
        self,
        states: Tensor,
        sweeps: int = 1,
        *,
        clamp_visible: bool = False,
        temperature: float = 1.0,
        annealing: Sequence[tuple[float, int]] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Run the annealing schedule (if any), then ``sweeps`` sweeps at ``temperature``
        from ``states`` (B, N); with ``clamp_visible`` only the hidden units change."""
        s = self._states("states", states)
        check_positive_int("sweeps", sweeps)
        if not isinstance(temperature, (int, float)) or not temperature > 0:
            raise InputError(f"temperature: expected a number > 0, received {temperature!r}")
        return self._run(
            s, sweeps, clamp_visible, check_annealing(annealing), generator, temperature
        )

    def _run(self, s, sweeps, clamp, schedule, generator, temperature=1.0) -> Tensor:
        free = None
        if clamp:
            if self.num_hidden == 0:
                return s
            free = torch.arange(self.num_visible, self.num_units, device=s.device)
        W, b = self.weight.detach(), self.bias.detach()
        for t, n in schedule:
            s = gibbs_sweeps(s, W, b, n, free=free, temperature=t, generator=generator)
        return gibbs_sweeps(
            s, W, b, sweeps, free=free, temperature=temperature, generator=generator
        )

    @torch.no_grad()
    def sample(
        self,
        num: int,
        sweeps: int = 100,
        *,
        annealing: Sequence[tuple[float, int]] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """``num`` full states (num, N) after the annealing schedule and ``sweeps`` sweeps at
        T = 1 from uniform random states."""
        check_positive_int("num", num)
        check_positive_int("sweeps", sweeps)
        half = torch.full(
            (num, self.num_units), 0.5, dtype=self.weight.dtype, device=self.weight.device
        )
        return self._run(
            sample_bernoulli(half, generator), sweeps, False, check_annealing(annealing), generator
        )

    # ----------------------------------------------------------- enumeration
    def _check_enumerable(self, n: int, what: str) -> None:
        if n > MAX_ENUMERATED_UNITS:
            raise InputError(
                f"{what}: exact enumeration handles at most {MAX_ENUMERATED_UNITS} units, "
                f"received a machine with {n} (num_visible={self.num_visible}, "
                f"num_hidden={self.num_hidden})"
            )

    def _all_states(self) -> Tensor:
        return binary_states(
            self.num_units, 0, 2**self.num_units, dtype=self.weight.dtype, device=self.weight.device
        )

    def log_partition(self) -> Tensor:
        r""":math:`\log Z = \log \sum_s e^{-E(s)}` by enumeration (at most 20 units;
        differentiable, 0-d)."""
        self._check_enumerable(self.num_units, "log_partition")
        return torch.logsumexp(-boltzmann_energy(self._all_states(), self.weight, self.bias), 0)

    def _clamped_energies(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """Full states (B, 2^H, N) with v clamped and every hidden configuration, and their
        energies (B, 2^H)."""
        hs = binary_states(self.num_hidden, 0, 2**self.num_hidden, dtype=v.dtype, device=v.device)
        full = torch.cat(
            [v[:, None, :].expand(-1, hs.shape[0], -1), hs[None].expand(v.shape[0], -1, -1)], -1
        )  # (B, 2^H, N)
        e = boltzmann_energy(full.reshape(-1, self.num_units), self.weight, self.bias)
        return full, e.reshape(v.shape[0], -1)

    def log_likelihood(self, visible: Tensor) -> Tensor:
        r""":math:`\log p(v) = \log \sum_h e^{-E(v, h)} - \log Z` by enumeration: (B, V) ->
        (B,) (differentiable)."""
        v = self._visible("visible", visible)
        self._check_enumerable(self.num_units, "log_likelihood")
        _, e = self._clamped_energies(v)
        return torch.logsumexp(-e, 1) - self.log_partition()

    # --------------------------------------------------------------- learning
    @torch.no_grad()
    def learning_gradient(
        self,
        visible: Tensor,
        *,
        method: str = "gibbs",
        free_states: Tensor | None = None,
        chains: int = 100,
        clamped_sweeps: int = 10,
        free_sweeps: int = 10,
        annealing: Sequence[tuple[float, int]] | None = None,
        generator: torch.Generator | None = None,
    ) -> BoltzmannGradient:
        r"""Minus the learning rule's estimate of :math:`\nabla \log p(v)`, averaged over
        the batch ``visible`` (B, V).

        ``method="gibbs"``: the clamped phase runs ``clamped_sweeps`` sweeps of the hidden
        units from random states for each data vector; the free phase runs
        ``free_sweeps`` sweeps of ``free_states`` (the persistent chains, (chains, N)) or,
        when None, of ``chains`` fresh random chains; the annealing schedule, if any, runs
        first in both phases. ``method="exact"``: both expectations by enumeration (at
        most 20 units)."""
        v = self._visible("visible", visible)
        W, b = self.weight, self.bias
        if method == "exact":
            self._check_enumerable(self.num_units, "learning_gradient")
            full, e = self._clamped_energies(v)
            q = torch.softmax(-e, 1)  # (B, 2^H) p(h | v)
            clamped_ss = torch.einsum("bk,bki,bkj->ij", q, full, full) / v.shape[0]
            clamped_s = torch.einsum("bk,bki->i", q, full) / v.shape[0]
            s = self._all_states()
            p = torch.softmax(-boltzmann_energy(s, W, b), 0)
            free_ss, free_s = (s * p[:, None]).t() @ s, p @ s
            new_states = None
        elif method == "gibbs":
            schedule = check_annealing(annealing)
            check_positive_int("clamped_sweeps", clamped_sweeps)
            check_positive_int("free_sweeps", free_sweeps)
            B, H = v.shape[0], self.num_hidden
            kw = {"dtype": W.dtype, "device": W.device}
            h0 = sample_bernoulli(torch.full((B, H), 0.5, **kw), generator)
            clamped = self._run(torch.cat([v, h0], 1), clamped_sweeps, True, schedule, generator)
            if free_states is None:
                half = torch.full((check_positive_int("chains", chains), self.num_units), 0.5, **kw)
                free_states = sample_bernoulli(half, generator)
            else:
                free_states = self._states("free_states", free_states)
            new_states = self._run(free_states, free_sweeps, False, schedule, generator)
            clamped_ss, clamped_s = clamped.t() @ clamped / B, clamped.mean(0)
            m = new_states.shape[0]
            free_ss, free_s = new_states.t() @ new_states / m, new_states.mean(0)
        else:
            raise InputError(f"method: expected 'gibbs' or 'exact', received {method!r}")
        grad_w = free_ss - clamped_ss
        grad_w.fill_diagonal_(0.0)
        return BoltzmannGradient(grad_w, free_s - clamped_s, new_states)

    def fit(
        self,
        data: Tensor,
        epochs: int = 10,
        *,
        lr: float = 0.05,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int = 20,
        chains: int = 100,
        persistent: bool = True,
        clamped_sweeps: int = 10,
        free_sweeps: int = 1,
        annealing: Sequence[tuple[float, int]] | None = None,
        seed: int = 0,
        progress: bool = False,
        checkpoint: str | Path | None = None,
        metrics: str | Path | None = None,
        resume: str | Path | None = None,
    ) -> BoltzmannMachine:
        r"""Train by the Boltzmann learning rule through :class:`rnnlab.train.Trainer`
        (``gradients`` hook, ``torch.optim.SGD``; weight decay on the weights only).

        Every minibatch: the clamped phase for each data vector, and the free phase on
        ``chains`` chains, persistent across steps (carried by the loop, so checkpointed)
        when ``persistent`` (then ``free_sweeps`` = 1 is usually enough, as in PCD), fresh
        from random states otherwise (then use several sweeps or an annealing schedule,
        as Ackley et al. did). The reported loss is the mean over the batch of
        :math:`E(s_{\text{clamped}})` minus the mean energy of the free chains (its
        gradient at fixed states is the rule's estimate). ``fit_result_`` holds the loop's result.
        Returns self."""
        from rnnlab.train.checkpoint import load_checkpoint
        from rnnlab.train.loop import StepOutput, TrainConfig, Trainer

        check_positive_int("epochs", epochs)
        check_positive_int("batch_size", batch_size)
        check_positive_int("chains", chains)
        check_positive_int("clamped_sweeps", clamped_sweeps)
        check_positive_int("free_sweeps", free_sweeps)
        schedule = check_annealing(annealing)
        if not isinstance(lr, (int, float)) or not lr > 0:
            raise InputError(f"lr: expected a positive number, received {lr!r}")
        v = self._visible("data", data)
        n = v.shape[0]
        if n == 0:
            raise InputError("data: expected at least one row, received shape (0, V)")
        generator = torch.Generator(device=v.device).manual_seed(seed)
        batches = EpochBatches(v, batch_size, generator)
        optimizer = torch.optim.SGD(
            [
                {"params": [self.weight], "weight_decay": weight_decay},
                {"params": [self.bias], "weight_decay": 0.0},
            ],
            lr=lr,
            momentum=momentum,
        )

        def gradients(model: BoltzmannMachine, batch: Tensor, carry):
            g = model.learning_gradient(
                batch,
                free_states=carry if persistent else None,
                chains=chains,
                clamped_sweeps=clamped_sweeps,
                free_sweeps=free_sweeps,
                annealing=schedule,
                generator=generator,
            )
            model.weight.grad, model.bias.grad = g.weight, g.bias
            with torch.no_grad():
                # <s s^T> terms give the energy gap: E = -1/2 sum W * <ss> - b . <s>
                gap = -(0.5 * (model.weight * -g.weight).sum() + model.bias @ -g.bias)
            return StepOutput(gap, len(batch), g.free_states if persistent else None)

        steps_per_epoch = math.ceil(n / batch_size)
        trainer = Trainer(
            self,
            optimizer,
            batches,
            None,
            TrainConfig(
                steps=epochs * steps_per_epoch, progress=progress, log_every=steps_per_epoch
            ),
            gradients=gradients,
            checkpoint=checkpoint,
            metrics=metrics,
            kind="boltzmann-machine",
            extra={"options": {"num_visible": self.num_visible, "num_hidden": self.num_hidden}},
        )
        if resume is not None:
            trainer.load_state_dict(load_checkpoint(resume, "boltzmann-machine"))
        self.fit_result_ = trainer.fit()
        self.eval()
        return self
