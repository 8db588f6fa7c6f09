r"""Deep Boltzmann machines (Salakhutdinov & Hinton 2009): a stack of binary layers with
undirected connections between neighbouring layers only.

.. math::

    E(x) = -\sum_{l=0}^{L-1} x_{l+1}^\top W_l x_l - \sum_{l=0}^{L} b_l^\top x_l,
    \qquad x_0 = v,\; x_1 = h^{(1)}, \dots, x_L = h^{(L)},

so each layer is conditionally independent given its two neighbours,
:math:`p(x_{l,j} = 1 \mid x_{l-1}, x_{l+1}) = \sigma(b_{l,j} + (W_{l-1} x_{l-1})_j +
(W_l^\top x_{l+1})_j)`, and the even layers are independent given the odd ones (the
block-Gibbs sampler alternates the two).

Learning (S&H 2009, §2-3):

- **greedy pretraining** of one RBM per pair of layers by CD-1 with the *doubled input*:
  a layer that has two neighbours in the DBM receives twice the input from the one
  neighbour present in its RBM (the bottom RBM's hidden units get :math:`2 W_0 v`, the top
  RBM's visible units :math:`2 W_{L-1}^\top x_L`, a middle RBM doubles both ways), so the
  composed model does not double-count evidence; a layer shared by two RBMs takes the
  mean of their biases;
- **data-dependent statistics** from the mean-field posterior :math:`q(h \mid v) =
  \prod \mu^{x}(1-\mu)^{1-x}`, the fixed point of :math:`\mu_l = \sigma(b_l + W_{l-1}
  \mu_{l-1} + W_l^\top \mu_{l+1})` (:math:`\mu_0 = v`), started from a bottom-up pass
  with doubled weights;
- **model statistics** from persistent Gibbs chains (PCD), so that
  :math:`\Delta W_l \propto \langle \mu_{l+1} \mu_l^\top\rangle_{\text{data}} - \langle
  x_{l+1} x_l^\top \rangle_{\text{chains}}`.

Evaluation: the variational lower bound :math:`\log p(v) \ge \mathbb E_q[-E(v, h)] +
\mathcal H(q) - \log Z`, with :math:`\log Z` exact (enumerating one parity of layers,
the other summed out analytically; at most 20 units) or by AIS over the even layers with
the odd ones summed out, annealing all weights from 0 to 1 (S&H 2009, §4).

===================  ==================================================================
symbol               meaning
===================  ==================================================================
:math:`L`            number of hidden layers (at least 2)
:math:`W_l`          ``weights[l]``, (n_{l+1}, n_l)
:math:`b_l`          ``biases[l]``, (n_l,)
:math:`\mu_l`        mean-field posterior means of hidden layer l
===================  ==================================================================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab._validation import check_positive_int
from rnnlab.energy.rbm import (
    MAX_ENUMERATED_UNITS,
    EpochBatches,
    PartitionEstimate,
    _check_data,
    _logsumexp_over_states,
    ais_schedule,
    sample_bernoulli,
)
from rnnlab.errors import InputError

__all__ = [
    "DBM",
    "dbm_energy",
    "layer_input",
    "mean_field",
    "gibbs_step",
    "variational_bound",
    "dbm_log_partition_exact",
    "dbm_log_partition_ais",
]


# ----------------------------------------------------------------------------------------
# Kernels (states: a list of (B, n_l) tensors, layer 0 visible)
# ----------------------------------------------------------------------------------------


def dbm_energy(states: Sequence[Tensor], weights: Sequence[Tensor], biases: Sequence[Tensor]):
    r""":math:`E(x)`: per-layer states (B, n_l) -> (B,)."""
    e = -sum(x @ b for x, b in zip(states, biases))
    for l, W in enumerate(weights):
        e = e - ((states[l + 1] @ W) * states[l]).sum(-1)
    return e


def layer_input(
    states: Sequence[Tensor],
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    l: int,
    scale: float = 1.0,
) -> Tensor:
    r""":math:`b_l + \beta (W_{l-1} x_{l-1} + W_l^\top x_{l+1})` (B, n_l): the total input
    of layer ``l`` from its neighbours (``scale`` = :math:`\beta` anneals the weights)."""
    a = 0.0
    if l > 0:
        a = states[l - 1] @ weights[l - 1].t()
    if l < len(weights):
        a = a + states[l + 1] @ weights[l]
    return biases[l] + scale * a


def mean_field(
    v: Tensor,
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    iterations: int = 30,
    tol: float = 1e-6,
) -> list[Tensor]:
    r"""Mean-field posterior means :math:`[v, \mu_1, \dots, \mu_L]`: the bottom-up
    initialisation (weights doubled below the top layer), then up to ``iterations``
    sweeps of :math:`\mu_l \leftarrow \sigma(b_l + W_{l-1}\mu_{l-1} + W_l^\top
    \mu_{l+1})` bottom to top (each update is coordinate ascent on the bound, so the
    bound never decreases), stopping when no mean moves by more than ``tol``."""
    L = len(weights)
    mu = [v]
    for l in range(L):
        factor = 2.0 if l + 1 < L else 1.0
        mu.append(torch.sigmoid(biases[l + 1] + factor * (mu[l] @ weights[l].t())))
    for _ in range(iterations):
        change = 0.0
        for l in range(1, L + 1):
            new = torch.sigmoid(layer_input(mu, weights, biases, l))
            change = max(change, float((new - mu[l]).abs().max()))
            mu[l] = new
        if change < tol:
            break
    return mu


def gibbs_step(
    states: Sequence[Tensor],
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    *,
    scale: float = 1.0,
    clamp_visible: bool = False,
    generator: torch.Generator | None = None,
) -> list[Tensor]:
    """One block-Gibbs step: every odd layer given the even ones, then every even layer
    (the visible one too unless ``clamp_visible``) given the odd ones."""
    x = list(states)
    for parity in (1, 0):
        for l in range(parity, len(x), 2):
            if l == 0 and clamp_visible:
                continue
            x[l] = sample_bernoulli(
                torch.sigmoid(layer_input(x, weights, biases, l, scale)), generator
            )
    return x


def _entropy(mu: Tensor) -> Tensor:
    """Entropy of independent Bernoulli(mu) units, summed over the last axis."""
    return -(torch.xlogy(mu, mu) + torch.xlogy(1 - mu, 1 - mu)).sum(-1)


def variational_bound(
    mu: Sequence[Tensor], weights: Sequence[Tensor], biases: Sequence[Tensor], log_z: float
) -> Tensor:
    r""":math:`\mathbb E_q[-E(v, h)] + \mathcal H(q) - \log Z` for the factorised
    :math:`q` with means ``mu`` = :math:`[v, \mu_1, \dots]` (neighbouring layers are
    independent under q, so :math:`\mathbb E_q[-E]` is :math:`-E(\mu)`): (B,)."""
    return -dbm_energy(mu, weights, biases) + sum(_entropy(m) for m in mu[1:]) - log_z


def _parity_log_marginal(
    states: dict[int, Tensor], weights, biases, parity: int, num_layers: int, scale: float = 1.0
) -> Tensor:
    r""":math:`\log p^*_\beta` of the layers of one parity (given in ``states``), the other
    parity summed out: :math:`\sum_{l} b_l^\top x_l + \sum_{l'} \sum_j
    \operatorname{softplus}(b_{l',j} + \beta\,(\text{input from the neighbours}))`."""
    out = sum(states[l] @ biases[l] for l in range(parity, num_layers, 2))
    full = [states.get(l) for l in range(num_layers)]
    for l in range(1 - parity, num_layers, 2):
        a = 0.0
        if l > 0:
            a = full[l - 1] @ weights[l - 1].t()
        if l < num_layers - 1:
            a = a + full[l + 1] @ weights[l]
        out = out + F.softplus(biases[l] + scale * a).sum(-1)
    return out


def dbm_log_partition_exact(weights: Sequence[Tensor], biases: Sequence[Tensor]) -> Tensor:
    """:math:`\\log Z` by enumerating the parity of layers with fewer units (at most 20),
    the other summed out (differentiable, 0-d)."""
    sizes = [b.shape[0] for b in biases]
    n_even, n_odd = sum(sizes[0::2]), sum(sizes[1::2])
    parity = 0 if n_even <= n_odd else 1
    n = min(n_even, n_odd)
    if n > MAX_ENUMERATED_UNITS:
        raise InputError(
            f"log_partition: exact enumeration handles at most {MAX_ENUMERATED_UNITS} units in "
            f"the even or the odd layers, received layer_sizes={sizes} ({n_even} even, "
            f"{n_odd} odd; use method='ais')"
        )
    layers = list(range(parity, len(sizes), 2))

    def term(s: Tensor) -> Tensor:  # (S, n) -> (S,)
        parts = torch.split(s, [sizes[l] for l in layers], dim=1)
        return _parity_log_marginal(dict(zip(layers, parts)), weights, biases, parity, len(sizes))

    return _logsumexp_over_states(n, term, dtype=biases[0].dtype, device=biases[0].device)


def dbm_log_partition_ais(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    *,
    chains: int = 100,
    num_temperatures: int = 14500,
    generator: torch.Generator | None = None,
) -> PartitionEstimate:
    r"""AIS from independent units with the DBM's biases (all weights times
    :math:`\beta`, from 0 to 1) on the even layers, odd layers summed out:
    :math:`\log w \mathrel{+}= \log p^*_{\beta_k}(x_{\text{even}}) - \log
    p^*_{\beta_{k-1}}(x_{\text{even}})`, then one block-Gibbs step at :math:`\beta_k`;
    :math:`\log Z_0 = \sum_{l, j} \operatorname{softplus}(b_{l,j})`."""
    check_positive_int("chains", chains)
    n_layers = len(biases)
    dtype, device = biases[0].dtype, biases[0].device
    betas = ais_schedule(num_temperatures, dtype=dtype, device=device)
    with torch.no_grad():
        x = [
            sample_bernoulli(torch.sigmoid(b).expand(chains, b.shape[0]), generator) for b in biases
        ]
        log_z0 = float(sum(F.softplus(b).sum() for b in biases))
        log_w = torch.zeros(chains, dtype=dtype, device=device)
        prev = 0.0
        even = range(0, n_layers, 2)
        for beta in betas[1:].tolist():
            states = {l: x[l] for l in even}
            log_w += _parity_log_marginal(states, weights, biases, 0, n_layers, beta)
            log_w -= _parity_log_marginal(states, weights, biases, 0, n_layers, prev)
            x = gibbs_step(x, weights, biases, scale=beta, generator=generator)
            prev = beta
        log_mean_w = torch.logsumexp(log_w, 0) - math.log(chains)
        r = torch.exp(log_w - log_w.max())
        std = float(r.std() / (r.mean() * math.sqrt(chains))) if chains > 1 else math.inf
    return PartitionEstimate(log_z0 + float(log_mean_w), std, log_w, "ais")


def _cd1_doubled(x0, W, b_low, b_high, up, down, generator):
    """Minus the CD-1 estimate for an RBM whose hidden units get ``up`` times and whose
    visible units get ``down`` times the input (the doubled-input pretraining RBMs)."""
    h0 = torch.sigmoid(torch.addmm(b_high, x0, W.t(), alpha=up))  # (B, n_high)
    x1 = sample_bernoulli(
        torch.sigmoid(torch.addmm(b_low, sample_bernoulli(h0, generator), W, alpha=down)),
        generator,
    )
    h1 = torch.sigmoid(torch.addmm(b_high, x1, W.t(), alpha=up))
    n = x0.shape[0]
    grad_w = torch.addmm(h1.t() @ x1, h0.t(), x0, beta=1.0 / n, alpha=-1.0 / n)
    return grad_w, x1.mean(0) - x0.mean(0), h1.mean(0) - h0.mean(0), F.mse_loss(x1, x0)


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------


class DBM(nn.Module):
    r"""Deep Boltzmann machine with binary units in every layer (energy, inference and
    learning in the module docstring).

    Args:
        layer_sizes: ``[num_visible, hidden_1, ..., hidden_L]`` with L >= 2.

    Parameters: ``weights[l]`` (n_{l+1}, n_l), :math:`\mathcal N(0, 0.01^2)`;
    ``biases[l]`` (n_l,), zero.
    """

    def __init__(self, layer_sizes: Sequence[int], *, device=None, dtype=None):
        super().__init__()
        sizes = list(layer_sizes) if isinstance(layer_sizes, (list, tuple)) else None
        if sizes is None or len(sizes) < 3:
            raise InputError(
                "layer_sizes: expected a list [num_visible, hidden_1, hidden_2, ...] with at "
                f"least two hidden layers, received {layer_sizes!r}"
            )
        for i, n in enumerate(sizes):
            check_positive_int(f"layer_sizes[{i}]", n)
        self.layer_sizes = sizes
        kw = {"device": device, "dtype": dtype}
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.randn(b, a, **kw) * 0.01) for a, b in zip(sizes, sizes[1:])]
        )
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(n, **kw)) for n in sizes])

    def extra_repr(self) -> str:
        return f"layer_sizes={self.layer_sizes}"

    @property
    def num_visible(self) -> int:
        return self.layer_sizes[0]

    def _w(self) -> list[Tensor]:
        return [w.detach() for w in self.weights]

    def _b(self) -> list[Tensor]:
        return [b.detach() for b in self.biases]

    def _data(self, name: str, data, binary: bool = False) -> Tensor:
        return _check_data(name, data, self.num_visible, self.biases[0], "bernoulli", binary)

    # -------------------------------------------------------------- inference
    def energy(self, states: Sequence[Tensor]) -> Tensor:
        """:math:`E(x)` of per-layer states [(B, n_0), ..., (B, n_L)] -> (B,)."""
        if len(states) != len(self.layer_sizes):
            raise InputError(
                f"states: expected {len(self.layer_sizes)} layers, received {len(states)}"
            )
        return dbm_energy(states, list(self.weights), list(self.biases))

    @torch.no_grad()
    def mean_field(self, data: Tensor, iterations: int = 30, tol: float = 1e-6) -> list[Tensor]:
        r"""Mean-field posterior means :math:`[v, \mu_1, \dots, \mu_L]` for ``data`` (B, D)."""
        check_positive_int("iterations", iterations)
        return mean_field(self._data("data", data), self._w(), self._b(), iterations, tol)

    def transform(self, data: Tensor) -> Tensor:
        """The mean-field means of every hidden layer, concatenated, as features."""
        return torch.cat(self.mean_field(data)[1:], 1)

    @torch.no_grad()
    def sample(
        self, num: int, steps: int = 1000, *, generator: torch.Generator | None = None
    ) -> list[Tensor]:
        """Per-layer states after ``steps`` block-Gibbs steps from uniform random states."""
        check_positive_int("num", num)
        check_positive_int("steps", steps)
        dt, dev = self.biases[0].dtype, self.biases[0].device
        x = [
            sample_bernoulli(torch.full((num, n), 0.5, dtype=dt, device=dev), generator)
            for n in self.layer_sizes
        ]
        for _ in range(steps):
            x = gibbs_step(x, self._w(), self._b(), generator=generator)
        return x

    # ------------------------------------------------------------ likelihood
    def log_partition(
        self,
        method: str = "exact",
        *,
        chains: int = 100,
        num_temperatures: int = 14500,
        generator: torch.Generator | None = None,
    ) -> PartitionEstimate:
        """:math:`\\log Z` exactly (at most 20 units in one parity of layers) or by AIS."""
        with torch.no_grad():
            if method == "exact":
                return PartitionEstimate(
                    float(dbm_log_partition_exact(self._w(), self._b())), 0.0, None, "exact"
                )
            if method == "ais":
                return dbm_log_partition_ais(
                    self._w(),
                    self._b(),
                    chains=chains,
                    num_temperatures=num_temperatures,
                    generator=generator,
                )
        raise InputError(f"method: expected 'exact' or 'ais', received {method!r}")

    def lower_bound(
        self, data: Tensor, log_z: float | PartitionEstimate, iterations: int = 30
    ) -> Tensor:
        r"""The variational lower bound on :math:`\log p(v)` (B,) nats, with the mean-field
        posterior and the given :math:`\log Z`."""
        v = self._data("data", data, binary=True)
        lz = log_z.log_z if isinstance(log_z, PartitionEstimate) else float(log_z)
        with torch.no_grad():
            mu = mean_field(v, self._w(), self._b(), iterations)
            return variational_bound(mu, self._w(), self._b(), lz)

    def log_likelihood(self, data: Tensor, log_z: float | PartitionEstimate | None = None):
        r"""Exact :math:`\log p(v)` (B,) by enumerating the hidden even layers (odd ones
        summed out; at most 20 units) — for small models and tests."""
        v = self._data("data", data, binary=True)
        sizes = self.layer_sizes
        even_hidden = list(range(2, len(sizes), 2))
        n = sum(sizes[l] for l in even_hidden)
        if n > MAX_ENUMERATED_UNITS:
            raise InputError(
                f"log_likelihood: exact enumeration handles at most {MAX_ENUMERATED_UNITS} "
                f"units in the even hidden layers, received layer_sizes={sizes}"
            )
        if log_z is None:
            log_z = self.log_partition("exact")
        lz = log_z.log_z if isinstance(log_z, PartitionEstimate) else float(log_z)
        W, b = self._w(), self._b()
        B = v.shape[0]
        with torch.no_grad():

            def term(s):  # (S, n) -> (S * B,) with v broadcast
                S = s.shape[0]
                parts = torch.split(s, [sizes[l] for l in even_hidden], dim=1)
                states = {0: v.repeat(S, 1)}
                states.update({l: p.repeat_interleave(B, 0) for l, p in zip(even_hidden, parts)})
                return _parity_log_marginal(states, W, b, 0, len(sizes)).reshape(S, B)

            return _logsumexp_over_states(n, term, dtype=v.dtype, device=v.device) - lz

    # --------------------------------------------------------------- learning
    def pretrain(
        self,
        data: Tensor,
        epochs: int = 10,
        *,
        lr: float = 0.05,
        momentum: float = 0.5,
        weight_decay: float = 0.0,
        batch_size: int = 20,
        seed: int = 0,
        progress: bool = False,
    ) -> DBM:
        """Greedy layer-wise pretraining with the doubled input (module docstring): one
        CD-1 RBM per pair of layers, each trained through :class:`rnnlab.train.Trainer`
        on the (doubled-input) hidden probabilities of the one below. Returns self."""
        from rnnlab.train.loop import StepOutput

        x = self._data("data", data)
        L = len(self.weights)
        rbm_biases = []
        for l in range(L):
            up = 2.0 if l + 1 < L else 1.0
            down = 2.0 if l > 0 else 1.0
            W = self.weights[l]
            b_low = nn.Parameter(self.biases[l].detach().clone())
            b_high = nn.Parameter(self.biases[l + 1].detach().clone())
            rbm = nn.ParameterDict({"weight": W, "b_low": b_low, "b_high": b_high})

            def gradients(m, batch, carry, up=up, down=down):
                with torch.no_grad():
                    gw, gl, gh, err = _cd1_doubled(
                        batch, m["weight"], m["b_low"], m["b_high"], up, down, self._gen
                    )
                m["weight"].grad, m["b_low"].grad, m["b_high"].grad = gw, gl, gh
                return StepOutput(err, len(batch))

            self._train(
                rbm,
                x,
                gradients,
                epochs,
                lr,
                momentum,
                weight_decay,
                batch_size,
                seed + l,
                progress,
                weight_params=[W],
            )
            rbm_biases.append((b_low.detach(), b_high.detach()))
            with torch.no_grad():
                x = torch.sigmoid(torch.addmm(b_high, x, W.t(), alpha=up))
        with torch.no_grad():
            self.biases[0].copy_(rbm_biases[0][0])
            for l in range(1, L):
                self.biases[l].copy_(0.5 * (rbm_biases[l - 1][1] + rbm_biases[l][0]))
            self.biases[L].copy_(rbm_biases[L - 1][1])
        return self

    def _train(
        self,
        module,
        data,
        gradients,
        epochs,
        lr,
        momentum,
        weight_decay,
        batch_size,
        seed,
        progress,
        weight_params,
        checkpoint=None,
        metrics=None,
        resume=None,
        kind="dbm",
        lr_decay=False,
    ):
        from rnnlab.train.checkpoint import load_checkpoint
        from rnnlab.train.loop import TrainConfig, Trainer

        check_positive_int("epochs", epochs)
        check_positive_int("batch_size", batch_size)
        if not isinstance(lr, (int, float)) or not lr > 0:
            raise InputError(f"lr: expected a positive number, received {lr!r}")
        n = data.shape[0]
        if n == 0:
            raise InputError("data: expected at least one row, received shape (0, D)")
        self._gen = torch.Generator(device=data.device).manual_seed(seed)
        ids = {id(p) for p in weight_params}
        others = [p for p in module.parameters() if id(p) not in ids]
        optimizer = torch.optim.SGD(
            [
                {"params": list(weight_params), "weight_decay": weight_decay},
                {"params": others, "weight_decay": 0.0},
            ],
            lr=lr,
            momentum=momentum,
        )
        per_epoch = math.ceil(n / batch_size)
        steps = epochs * per_epoch
        schedule = None
        if lr_decay:  # linearly to zero over the run
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: max(0.0, 1.0 - step / steps)
            )
        trainer = Trainer(
            module,
            optimizer,
            EpochBatches(data, batch_size, self._gen),
            None,
            TrainConfig(steps=steps, progress=progress, log_every=per_epoch),
            gradients=gradients,
            schedule=schedule,
            checkpoint=checkpoint,
            metrics=metrics,
            kind=kind,
            extra={"options": {"layer_sizes": self.layer_sizes}},
        )
        if resume is not None:
            trainer.load_state_dict(load_checkpoint(resume, kind))
        return trainer.fit()

    def fit(
        self,
        data: Tensor,
        epochs: int = 10,
        *,
        pretrain_epochs: int | None = 10,
        lr: float = 0.01,
        momentum: float = 0.5,
        weight_decay: float = 0.0,
        batch_size: int = 20,
        chains: int = 100,
        gibbs_steps: int = 1,
        mean_field_iterations: int = 10,
        lr_decay: bool = False,
        seed: int = 0,
        progress: bool = False,
        checkpoint: str | Path | None = None,
        metrics: str | Path | None = None,
        resume: str | Path | None = None,
    ) -> DBM:
        r"""Greedy pretraining (``pretrain_epochs``; None skips it), then ``epochs`` of
        joint training through :class:`rnnlab.train.Trainer`: mean-field data statistics
        (``mean_field_iterations``) and PCD model statistics from ``chains`` persistent
        chains advanced ``gibbs_steps`` block-Gibbs steps per update (carried by the loop,
        so checkpointed). The reported loss is the squared error of the mean-field
        reconstruction :math:`\sigma(b_0 + W_0^\top \mu_1)` of the data; ``lr_decay``
        lowers the learning rate linearly to zero over the joint phase. ``checkpoint``,
        ``metrics`` and ``resume`` apply to the joint phase. Returns self."""
        from rnnlab.train.loop import StepOutput

        check_positive_int("chains", chains)
        check_positive_int("gibbs_steps", gibbs_steps)
        check_positive_int("mean_field_iterations", mean_field_iterations)
        v = self._data("data", data)
        if pretrain_epochs is not None and resume is None:
            self.pretrain(v, pretrain_epochs, batch_size=batch_size, seed=seed, progress=progress)
        n = v.shape[0]

        def gradients(model: DBM, batch: Tensor, carry):
            W = [w.detach() for w in model.weights]
            b = [p.detach() for p in model.biases]
            with torch.no_grad():
                mu = mean_field(batch, W, b, mean_field_iterations, tol=0.0)
                if carry is None:  # chains start at training vectors and their posterior
                    idx = torch.randint(n, (chains,), generator=self._gen, device=v.device)
                    start = mean_field(v.index_select(0, idx), W, b, 5, tol=0.0)
                    carry = [sample_bernoulli(m, self._gen) for m in start]
                x = list(carry)
                for _ in range(gibbs_steps):
                    x = gibbs_step(x, W, b, generator=self._gen)
                B, M = batch.shape[0], chains
                for l, w in enumerate(model.weights):
                    w.grad = torch.addmm(
                        x[l + 1].t() @ x[l], mu[l + 1].t(), mu[l], beta=1.0 / M, alpha=-1.0 / B
                    )
                for l, p in enumerate(model.biases):
                    p.grad = x[l].mean(0) - mu[l].mean(0)
                recon = torch.sigmoid(torch.addmm(b[0], mu[1], W[0]))
            return StepOutput(F.mse_loss(recon, batch), B, tuple(x))

        self.fit_result_ = self._train(
            self,
            v,
            gradients,
            epochs,
            lr,
            momentum,
            weight_decay,
            batch_size,
            seed,
            progress,
            weight_params=list(self.weights),
            checkpoint=checkpoint,
            metrics=metrics,
            resume=resume,
            lr_decay=lr_decay,
        )
        self.eval()
        return self
