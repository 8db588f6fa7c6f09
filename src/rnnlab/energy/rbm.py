r"""Restricted Boltzmann machines: contrastive divergence, PCD, exact and AIS partition
functions, pseudo-likelihood.

An RBM is a bipartite Boltzmann machine: visible units :math:`v \in \{0,1\}^D` (or real,
Gaussian units) and hidden units :math:`h \in \{0,1\}^H`, with no connections inside a
layer, so that each layer is conditionally independent given the other (Smolensky 1986;
Hinton 2002). Energies:

.. math::

    E(v, h) &= -h^\top W v - b^\top v - c^\top h
        \qquad\text{(Bernoulli visible units)}\\
    E(v, h) &= \tfrac12 \lVert v - b \rVert^2 - h^\top W v - c^\top h
        \qquad\text{(Gaussian visible units, unit variance)}\\
    p(v, h) &= e^{-E(v, h)} / Z, \qquad
    F(v) = -\log \textstyle\sum_h e^{-E(v, h)}
        = -b^\top v - \sum_j \operatorname{softplus}(c_j + W_j v)
        \quad(\text{Bernoulli; } +\tfrac12\lVert v-b\rVert^2 \text{ in place of }
        -b^\top v \text{ for Gaussian})

Conditionals: :math:`p(h_j = 1 \mid v) = \sigma(c_j + W_j v)`;
:math:`p(v_i = 1 \mid h) = \sigma(b_i + (W^\top h)_i)` (Bernoulli) or
:math:`v \mid h \sim \mathcal N(b + W^\top h, I)` (Gaussian).

===================  ==================================================================
symbol               meaning
===================  ==================================================================
:math:`D, H`         numbers of visible and hidden units
:math:`W`            ``weight``, (H, D)
:math:`b, c`         ``visible_bias`` (D,), ``hidden_bias`` (H,)
:math:`B`            batch (number of data vectors or chains)
:math:`k`            Gibbs steps of CD-k
:math:`\beta_k`      inverse temperatures of annealed importance sampling
===================  ==================================================================

Learning. The log-likelihood gradient is a difference of a data and a model expectation,
:math:`\partial \log p(v) / \partial W = \langle h v^\top \rangle_{\text{data}}
- \langle h v^\top \rangle_{\text{model}}` (with :math:`h` replaced by
:math:`p(h \mid v)`). CD-k (Hinton 2002) replaces the model expectation by that after
:math:`k` Gibbs steps started at the data; PCD (Tieleman 2008) by that of persistent
chains carried from step to step. :func:`contrastive_divergence` is the kernel; it
returns minus the estimate (the direction to descend), which :meth:`RBM.fit` writes into
``.grad`` and hands to ``torch.optim.SGD`` through :class:`rnnlab.train.Trainer`.

Evaluation. :func:`log_partition_exact` enumerates the smaller layer (at most 20 units);
:func:`log_partition_ais` is annealed importance sampling from a model with no weights
(Salakhutdinov & Murray 2008, §3-4), with the standard error of :math:`\log \hat Z`.
:func:`pseudo_log_likelihood` is :math:`\sum_i \log p(v_i \mid v_{-i})` over all units
(Besag 1975). scikit-learn's ``BernoulliRBM.score_samples`` returns :math:`D \log
p(v_i \mid v_{-i})` for one random unit :math:`i`: an unbiased one-unit estimate of this
sum, which its issue 23179 discusses as a normalisation question; this module computes
the sum exactly.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab._validation import check_positive_int, check_tensor, describe
from rnnlab.energy import _rbm_loops
from rnnlab.errors import InputError, InputTypeError

__all__ = [
    "RBM",
    "CDResult",
    "PartitionEstimate",
    "binary_states",
    "free_energy",
    "hidden_probabilities",
    "visible_mean",
    "sample_visible",
    "gibbs_chain",
    "contrastive_divergence",
    "log_partition_exact",
    "log_partition_ais",
    "ais_schedule",
    "pseudo_log_likelihood",
    "MAX_ENUMERATED_UNITS",
]

VISIBLE_TYPES = ("bernoulli", "gaussian")
MAX_ENUMERATED_UNITS = 20  # 2^20 ~ 1e6 states, enumerated in chunks
_CHUNK_BITS = 14  # states per enumeration chunk: 2^14
_LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------------------
# Typed outputs
# ----------------------------------------------------------------------------------------


class CDResult(NamedTuple):
    r"""One contrastive-divergence estimate (minus the log-likelihood gradient).

    grad_weight: (H, D) :math:`\langle h v^\top\rangle_{\text{chain}} - \langle h
        v^\top\rangle_{\text{data}}`, with :math:`h` replaced by :math:`p(h \mid v)`,
        averaged over the batch.
    grad_visible_bias: (D,) :math:`\langle v \rangle_{\text{chain}} - \langle v
        \rangle_{\text{data}}`.
    grad_hidden_bias: (H,) :math:`\langle p(h \mid v) \rangle_{\text{chain}} - \langle
        p(h \mid v)\rangle_{\text{data}}`.
    chain: CD: (B, D) the negative particles :math:`v^{(k)}`; PCD: (chains, H) the next
        persistent state, the hidden sample :math:`\tilde h \sim p(h \mid v^{(k)})`.
    reconstruction_error: 0-d, mean squared difference between the data and its
        reconstruction :math:`\mathbb E[v \mid h^{(0)}]`, with :math:`h^{(0)}` drawn from
        :math:`p(h \mid v^{(0)})` (CD: the chain's first step) or set to
        :math:`p(h = 1 \mid v^{(0)})` (PCD, where no chain starts at the data); what
        training reports. None where PCD was asked not to measure it (``monitor=False``).
    """

    grad_weight: Tensor
    grad_visible_bias: Tensor
    grad_hidden_bias: Tensor
    chain: Tensor
    reconstruction_error: Tensor | None


class PartitionEstimate(NamedTuple):
    r"""An estimate of :math:`\log Z`.

    log_z: the estimate (exact enumeration, or AIS: :math:`\log Z_0 + \log \frac1M
        \sum_m w_m`).
    log_z_std: its standard error (0 when exact): by the delta method,
        :math:`\operatorname{sd}(w) / (\sqrt M\, \bar w)` with :math:`w_m` the importance
        weights.
    log_weights: (M,) AIS log importance weights :math:`\log w_m` (None when exact).
    method: ``"exact"`` or ``"ais"``.
    """

    log_z: float
    log_z_std: float
    log_weights: Tensor | None
    method: str


# ----------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------


def binary_states(n: int, start: int, stop: int, *, dtype=None, device=None) -> Tensor:
    """Rows ``start .. stop-1`` of the enumeration of ``{0, 1}^n``: (stop - start, n), row r
    the binary digits of r (unit 0 the least significant)."""
    idx = torch.arange(start, stop, device=device)  # (S,)
    bits = torch.arange(n, device=device)  # (n,)
    return ((idx[:, None] >> bits[None, :]) & 1).to(dtype or torch.get_default_dtype())


def _logsumexp_over_states(n: int, fn, *, dtype, device) -> Tensor:
    """:math:`\\log \\sum_{s \\in \\{0,1\\}^n} e^{fn(s)}`, enumerated in chunks (0-d)."""
    total = 2**n
    step = 2 ** min(n, _CHUNK_BITS)
    parts = [
        torch.logsumexp(
            fn(binary_states(n, s, min(s + step, total), dtype=dtype, device=device)), 0
        )
        for s in range(0, total, step)
    ]
    return torch.logsumexp(torch.stack(parts), 0)


def sample_bernoulli(p: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Binary draws with ``P(1) = p``, as ``u < p`` for uniform ``u`` (same dtype as ``p``;
    several times faster than ``torch.bernoulli`` on CPU)."""
    u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
    return u.lt_(p)


def hidden_probabilities(v: Tensor, weight: Tensor, hidden_bias: Tensor) -> Tensor:
    r""":math:`p(h_j = 1 \mid v) = \sigma(c_j + W_j v)`: (B, D) -> (B, H)."""
    return torch.sigmoid(torch.addmm(hidden_bias, v, weight.t()))


def visible_mean(h: Tensor, weight: Tensor, visible_bias: Tensor, visible: str) -> Tensor:
    r""":math:`\mathbb E[v \mid h]`: :math:`\sigma(b + W^\top h)` (Bernoulli) or
    :math:`b + W^\top h` (Gaussian): (B, H) -> (B, D)."""
    a = torch.addmm(visible_bias, h, weight)  # (B, D)
    return torch.sigmoid(a) if visible == "bernoulli" else a


def sample_visible(mean: Tensor, visible: str, generator: torch.Generator | None) -> Tensor:
    """A sample of the visible layer given its conditional mean (Bernoulli or unit-variance
    Gaussian)."""
    if visible == "bernoulli":
        return sample_bernoulli(mean, generator=generator)
    return mean + torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)


def free_energy(
    v: Tensor, weight: Tensor, visible_bias: Tensor, hidden_bias: Tensor, visible: str
) -> Tensor:
    r""":math:`F(v) = -\log \sum_h e^{-E(v,h)}`: (B, D) -> (B,) (see the module docstring)."""
    hidden_term = F.softplus(torch.addmm(hidden_bias, v, weight.t())).sum(-1)  # (B,)
    if visible == "bernoulli":
        return -(v @ visible_bias) - hidden_term
    return 0.5 * (v - visible_bias).pow(2).sum(-1) - hidden_term


def gibbs_chain(
    v: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    visible: str,
    steps: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    r"""``steps`` block-Gibbs steps :math:`h \sim p(h \mid v)`, :math:`v \sim p(v \mid h)`
    from ``v`` (B, D); returns the final :math:`v` and :math:`p(h = 1 \mid v)` (B, H)."""
    for _ in range(steps):
        h = sample_bernoulli(hidden_probabilities(v, weight, hidden_bias), generator=generator)
        v = sample_visible(visible_mean(h, weight, visible_bias, visible), visible, generator)
    return v, hidden_probabilities(v, weight, hidden_bias)


def contrastive_divergence(
    v_data: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    visible: str = "bernoulli",
    k: int = 1,
    chain: Tensor | None = None,
    generator: torch.Generator | None = None,
    monitor: bool = True,
) -> CDResult:
    r"""CD-k (Hinton 2002) or, given ``chain``, PCD-k (Tieleman 2008): minus the
    log-likelihood gradient estimate

    .. math::

        -\widehat{\nabla_W \log p} = \langle p(h\mid v^{(k)})\, v^{(k)\top}\rangle
            - \langle p(h \mid v^{(0)})\, v^{(0)\top} \rangle,

    where :math:`v^{(0)}` is the data (B, D) and :math:`v^{(k)}` is reached by ``k``
    Gibbs steps from the data (CD: :math:`h \sim p(h \mid v)`, then
    :math:`v \sim p(v \mid h)`) or from the persistent chains (PCD, any number of
    chains; their mean replaces the batch mean). A PCD chain's state is its hidden sample
    ``chain`` (chains, H), as scikit-learn's ``h_samples_``: each of the ``k`` steps draws
    :math:`v \sim p(v \mid \tilde h)`, then :math:`\tilde h \sim p(h \mid v)`, all at
    the current parameters; the last step's :math:`p(h \mid v^{(k)})` is the statistic
    and its draw the next state (``CDResult.chain``), so the hidden layer is computed once
    a step, not twice as when the state is visible. Sampled (not mean-field) visible
    states keep the estimate unbiased for the chain's distribution.

    ``monitor=False`` skips PCD's reconstruction error (a product of the data's hidden
    probabilities with W that the estimate does not use: a sixth of a step's multiply-adds
    when the batch and the chains are of one size); CD's is free and always measured.
    """
    if chain is not None and visible == "bernoulli":
        args = (v_data, weight, visible_bias, hidden_bias, k, chain, generator, monitor)
        if _compiled_pcd_applies(v_data, weight, visible_bias, hidden_bias, chain):
            return _pcd_bernoulli_compiled(*args)
        return _pcd_bernoulli(*args)
    h0 = hidden_probabilities(v_data, weight, hidden_bias)  # (B, H)
    if chain is None:
        # the chain starts at the data; its first reconstruction is the one reported
        recon = visible_mean(sample_bernoulli(h0, generator), weight, visible_bias, visible)
        vk = sample_visible(recon, visible, generator)  # (B, D)
        vk, hk = gibbs_chain(vk, weight, visible_bias, hidden_bias, visible, k - 1, generator)
    else:
        # PCD: the data's reconstruction is reported only, so take it mean-field (no draw)
        recon = visible_mean(h0, weight, visible_bias, visible) if monitor else None
        h = chain
        for _ in range(k):
            vk = sample_visible(visible_mean(h, weight, visible_bias, visible), visible, generator)
            hk = hidden_probabilities(vk, weight, hidden_bias)  # (m, H)
            h = sample_bernoulli(hk, generator)
    n, m = v_data.shape[0], vk.shape[0]
    # (H, D): <h v^T>_chain - <h v^T>_data in two matrix multiplies
    grad_w = torch.addmm(hk.t() @ vk, h0.t(), v_data, beta=1.0 / m, alpha=-1.0 / n)
    grad_b = vk.mean(0) - v_data.mean(0)
    grad_c = hk.mean(0) - h0.mean(0)
    error = None if recon is None else F.mse_loss(recon, v_data)
    return CDResult(grad_w, grad_b, grad_c, vk if chain is None else h, error)


def _pcd_bernoulli(
    v_data: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    k: int,
    chain: Tensor,
    generator: torch.Generator | None,
    monitor: bool = True,
) -> CDResult:
    r"""PCD-k for Bernoulli units with fewer kernel calls (the same estimate and the same
    random draws, in the same order, as the general path): the data's mean-field
    reconstruction and the chains' first visible layer in one matrix multiply
    :math:`[p(h \mid v); \tilde h]\, W`, sigmoids and comparisons in place; on the CPU
    each Gibbs step's uniforms in one call (torch's CPU generator fills serially, so one
    draw of ``m (D + H)`` numbers is the draw of ``m D`` followed by that of ``m H``)."""
    n, m = v_data.shape[0], chain.shape[0]
    H, D = weight.shape
    wt = weight.t()
    cpu = weight.device.type == "cpu"
    h0 = torch.addmm(hidden_bias, v_data, wt).sigmoid_()  # (n, H)
    if monitor:
        q = torch.addmm(visible_bias, torch.cat((h0, chain)), weight).sigmoid_()  # (n + m, D)
        recon, pv = q[:n], q[n:]
    else:
        recon, pv = None, torch.addmm(visible_bias, chain, weight).sigmoid_()  # (m, D)
    h = chain
    for step in range(k):
        if step > 0:
            pv = torch.addmm(visible_bias, h, weight).sigmoid_()  # (m, D)
        if cpu:
            u = torch.rand(m * (D + H), generator=generator, dtype=pv.dtype)
            uv, uh = u[: m * D].view(m, D), u[m * D :].view(m, H)
        else:
            uv = torch.rand(pv.shape, generator=generator, dtype=pv.dtype, device=pv.device)
        vk = uv.lt_(pv)  # (m, D) the visible sample u < p, in the uniforms' memory
        hk = torch.addmm(hidden_bias, vk, wt).sigmoid_()  # (m, H)
        if not cpu:
            uh = torch.rand(hk.shape, generator=generator, dtype=hk.dtype, device=hk.device)
        h = uh.lt_(hk)  # (m, H) the next state
    grad_w = torch.addmm(hk.t() @ vk, h0.t(), v_data, beta=1.0 / m, alpha=-1.0 / n)  # (H, D)
    # sums times 1/count: float32 ``mean`` over rows costs several kernels on CPU
    grad_b = torch.add(vk.sum(0).mul_(1.0 / m), v_data.sum(0), alpha=-1.0 / n)  # (D,)
    grad_c = torch.add(hk.sum(0).mul_(1.0 / m), h0.sum(0), alpha=-1.0 / n)  # (H,)
    # F.mse_loss's own kernels (difference, square, mean) without its Python checks
    error = None if recon is None else torch.sub(recon, v_data).pow_(2).mean()
    return CDResult(grad_w, grad_b, grad_c, h, error)


_COMPILED_DTYPES = (torch.float32, torch.float64)


def _compiled_pcd_applies(v, weight, visible_bias, hidden_bias, chain) -> bool:
    """Whether :func:`_pcd_bernoulli_compiled` runs: Numba available, every tensor on the
    CPU, of one float dtype (float32 or float64), and no autograd graph to record."""
    if _rbm_loops.pcd_bernoulli is None or torch.is_grad_enabled():
        return False
    dt = weight.dtype
    if dt not in _COMPILED_DTYPES:
        return False
    for t in (v, weight, visible_bias, hidden_bias, chain):
        if t.dtype != dt or t.device.type != "cpu" or t.is_sparse:
            return False
    return True


_SIGMOID_CONSTANTS: dict = {}


def _sigmoid_constants(dtype: torch.dtype):
    """The compiled sigmoid's constants for ``dtype``, made once."""
    if dtype not in _SIGMOID_CONSTANTS:
        _SIGMOID_CONSTANTS[dtype] = _rbm_loops._constants(
            torch.empty((), dtype=dtype).numpy().dtype
        )
    return _SIGMOID_CONSTANTS[dtype]


def _pcd_bernoulli_compiled(
    v_data: Tensor,
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    k: int,
    chain: Tensor,
    generator: torch.Generator | None,
    monitor: bool = True,
) -> CDResult:
    """:func:`_pcd_bernoulli` in one compiled call (:mod:`rnnlab.energy._rbm_loops`): the
    same estimate from the same uniforms, drawn here by torch's generator in one call of
    ``k m (D + H)`` numbers (the CPU generator fills serially, so this is the reference's
    sequence of per-layer draws), equal to it up to the rounding of sums."""
    m = chain.shape[0]
    H, D = weight.shape
    u = torch.rand(k * m * (D + H), generator=generator, dtype=weight.dtype).numpy()

    def arr(t: Tensor):
        return t.detach().contiguous().numpy()

    gw, gb, gc, h, err = _rbm_loops.pcd_bernoulli(
        arr(v_data),
        arr(chain),
        arr(weight),
        arr(visible_bias),
        arr(hidden_bias),
        u,
        -1,  # the uniforms as given
        np.uint64(0),
        u.dtype.type(0),
        k,
        *_sigmoid_constants(weight.dtype),
        monitor,
    )
    f = torch.from_numpy
    return CDResult(f(gw), f(gb), f(gc), f(h), f(err.reshape(())) if monitor else None)


def _blas_threads(n: int):
    """A context limiting the BLAS libraries' threads (the compiled step's products run on
    SciPy's OpenBLAS, which ``torch.set_num_threads`` does not reach) to ``n``, torch's own
    count, through threadpoolctl where it is installed (otherwise nothing)."""
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (Numba's BLAS: loaded, to be limited)
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()

    return threadpool_limits(limits=n, user_api="blas")


class _CompiledPCDStep:
    """The compiled PCD-k step for :meth:`RBM.fit`'s loop: the same call as
    :func:`_pcd_bernoulli_compiled`, with the parameters' NumPy views (which share their
    memory, so the optimizer's in-place updates show), the sigmoid's constants and the
    uniforms' buffer made once instead of every step (a step at 100 hidden units and a
    batch of 20 costs tens of microseconds, which the per-call conversions matter to).

    Its uniforms come from a counter-based stream (:func:`_rbm_loops.fill_uniform`,
    SplitMix64) keyed by one 63-bit integer drawn from the fit's torch generator each
    step: all randomness still flows from that generator (so a seed reproduces a fit and
    a checkpoint resumes it exactly), at a thirteenth of the cost of torch's CPU
    generator, which drew a quarter of a step's time at 500 hidden units. The draws are
    not torch's, so a fit with the compiled step differs from the PyTorch step's fit by
    its random numbers (tests: equal given the same uniforms; the stream's moments,
    Kolmogorov-Smirnov distance and correlations)."""

    def __init__(self, model: RBM, k: int, chains: int):
        self.params = model._params()
        self.ptrs = tuple(p.data_ptr() for p in self.params)
        self.arrays = [p.detach().numpy() for p in self.params]
        self.k, self.chains = k, chains
        self.constants = _sigmoid_constants(model.weight.dtype)
        H, D = model.weight.shape
        self.u = torch.empty(k * chains * (D + H), dtype=model.weight.dtype)
        self.u_array = self.u.numpy()
        self.key = torch.empty((), dtype=torch.int64)
        if model.weight.dtype == torch.float32:  # the top 24 bits, or 53, as torch.rand
            self.bits = (np.uint64(40), np.float32(2.0**-24))
        else:
            self.bits = (np.uint64(11), np.float64(2.0**-53))

    def draw(self, generator: torch.Generator) -> int:
        """The step's key, from ``generator``: the kernel fills ``self.u`` with its stream
        (a key < 0 would leave ``self.u`` as it is)."""
        self.key.random_(generator=generator)  # uniform on [0, 2^63)
        return int(self.key)

    @staticmethod
    def applies(model: RBM, v: Tensor, chains: int) -> bool:
        c = model.hidden_bias
        return chains > 0 and _compiled_pcd_applies(v, *model._params(), c.expand(chains, -1))

    def __call__(
        self, batch: Tensor, chain: Tensor, generator: torch.Generator, monitor: bool = True
    ) -> CDResult:
        W, b, c = self.params
        if (
            (W.data_ptr(), b.data_ptr(), c.data_ptr()) != self.ptrs
            or len(chain) != self.chains
            or batch.requires_grad
            or chain.requires_grad
            or batch.device != chain.device  # (the parameters were seen on the CPU)
            or chain.device.type != "cpu"
        ):  # moved parameters, another chain count or device: the general dispatch
            with torch.no_grad():
                return contrastive_divergence(
                    batch, W, b, c, "bernoulli", self.k, chain, generator, monitor
                )
        key = self.draw(generator)
        gw, gb, gc, h, err = _rbm_loops.pcd_bernoulli(
            batch.contiguous().numpy(),
            chain.contiguous().numpy(),
            *self.arrays,
            self.u_array,
            key,
            *self.bits,
            self.k,
            *self.constants,
            monitor,
        )
        f = torch.from_numpy
        return CDResult(f(gw), f(gb), f(gc), f(h), f(err.reshape(())) if monitor else None)


def log_partition_exact(
    weight: Tensor, visible_bias: Tensor, hidden_bias: Tensor, visible: str = "bernoulli"
) -> Tensor:
    r""":math:`\log Z` by enumerating the smaller layer (differentiable, 0-d).

    Bernoulli, over :math:`h`: :math:`\log\sum_h \exp(c^\top h + \sum_i
    \operatorname{softplus}(b_i + (W^\top h)_i))`; over :math:`v`: :math:`\log\sum_v
    e^{-F(v)}`. Gaussian (always over :math:`h`, the visible integral in closed form):
    :math:`\frac D2 \log 2\pi + \log\sum_h \exp(c^\top h + b^\top W^\top h + \frac12
    \lVert W^\top h\rVert^2)`.
    """
    H, D = weight.shape
    over_hidden = visible == "gaussian" or H <= D
    n = H if over_hidden else D
    if n > MAX_ENUMERATED_UNITS:
        which = "num_hidden" if over_hidden else "the smaller layer"
        raise InputError(
            f"log_partition: exact enumeration handles at most {MAX_ENUMERATED_UNITS} units "
            f"in {which}, received num_visible={D}, num_hidden={H} (use method='ais')"
        )
    kw = {"dtype": weight.dtype, "device": weight.device}
    if visible == "gaussian":

        def term(h):  # (S, H) -> (S,)
            wh = h @ weight  # (S, D)
            return h @ hidden_bias + wh @ visible_bias + 0.5 * wh.pow(2).sum(-1)

        return 0.5 * D * _LOG_2PI + _logsumexp_over_states(H, term, **kw)
    if over_hidden:
        return _logsumexp_over_states(
            H, lambda h: h @ hidden_bias + F.softplus(h @ weight + visible_bias).sum(-1), **kw
        )
    return _logsumexp_over_states(
        D, lambda v: -free_energy(v, weight, visible_bias, hidden_bias, visible), **kw
    )


def ais_schedule(num_temperatures: int, *, dtype=None, device=None) -> Tensor:
    r"""Inverse temperatures :math:`0 = \beta_0 < \dots < \beta_K = 1`: Salakhutdinov &
    Murray's spacing (2008, §4: steps of 1e-3 up to 0.5, 1e-4 up to 0.9, 1e-4 up to 1),
    scaled to ``num_temperatures`` = K."""
    K = check_positive_int("num_temperatures", num_temperatures, minimum=3)
    n1 = max(1, round(K * 500 / 14500))
    n2 = max(1, round(K * 4000 / 14500))
    n3 = max(1, K - n1 - n2)
    kw = {"dtype": dtype or torch.float64, "device": device}
    return torch.cat(
        [
            torch.linspace(0.0, 0.5, n1 + 1, **kw)[:-1],
            torch.linspace(0.5, 0.9, n2 + 1, **kw)[:-1],
            torch.linspace(0.9, 1.0, n3 + 1, **kw),
        ]
    )


def log_partition_ais(
    weight: Tensor,
    visible_bias: Tensor,
    hidden_bias: Tensor,
    visible: str = "bernoulli",
    *,
    chains: int = 100,
    num_temperatures: int = 14500,
    base_visible_bias: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> PartitionEstimate:
    r"""Annealed importance sampling (Neal 2001; Salakhutdinov & Murray 2008).

    Intermediate distributions from a model with no weights to the RBM,

    .. math::

        p^*_\beta(v) = \exp\!\big(((1-\beta) b_A + \beta b)^\top v\big)
            \prod_j \big(1 + e^{\beta (c_j + W_j v)}\big)

    (Bernoulli; Gaussian: :math:`e^{-\frac12\lVert v - b\rVert^2} \prod_j (1 + e^{\beta
    (c_j + W_j v)})`), with :math:`\log Z_0 = \sum_i \operatorname{softplus}(b_{A,i}) + H
    \log 2` (Gaussian: :math:`\frac D2\log 2\pi + H \log 2`). Each chain starts with an
    exact sample of :math:`p_0`, accumulates :math:`\log w \mathrel{+}= \log
    p^*_{\beta_k}(v) - \log p^*_{\beta_{k-1}}(v)` and moves by one Gibbs step that leaves
    :math:`p_{\beta_k}` invariant. ``base_visible_bias`` is :math:`b_A` (default: the
    RBM's own :math:`b`; the base-rate model of the data, :math:`\operatorname{logit}`
    of the pixel means, is Salakhutdinov & Murray's choice).
    """
    check_positive_int("chains", chains)
    H, D = weight.shape
    gaussian = visible == "gaussian"
    b_a = visible_bias if base_visible_bias is None or gaussian else base_visible_bias
    betas = ais_schedule(num_temperatures, dtype=weight.dtype, device=weight.device)
    with torch.no_grad():
        shape = (chains, D)
        if gaussian:
            noise = torch.randn(
                shape, generator=generator, dtype=weight.dtype, device=weight.device
            )
            v = visible_bias + noise
            log_z0 = 0.5 * D * _LOG_2PI + H * math.log(2.0)
        else:
            v = sample_bernoulli(torch.sigmoid(b_a).expand(shape), generator=generator)
            log_z0 = float(F.softplus(b_a).sum()) + H * math.log(2.0)
        log_w = torch.zeros(chains, dtype=weight.dtype, device=weight.device)
        prev = 0.0
        for beta in betas[1:].tolist():
            a = torch.addmm(hidden_bias, v, weight.t())  # (M, H)
            # log p*_beta(v) - log p*_prev(v): the visible terms differ only in the bias mix
            log_w += F.softplus(beta * a).sum(-1) - F.softplus(prev * a).sum(-1)
            if not gaussian:
                log_w += (beta - prev) * (v @ (visible_bias - b_a))
            h = sample_bernoulli(torch.sigmoid(beta * a), generator=generator)
            if gaussian:
                mean = torch.addmm(visible_bias, h, weight, alpha=beta)
            else:
                mean = torch.sigmoid(
                    torch.addmm(b_a + beta * (visible_bias - b_a), h, weight, alpha=beta)
                )
            v = sample_visible(mean, visible, generator)
            prev = beta
        log_mean_w = torch.logsumexp(log_w, 0) - math.log(chains)
        r = torch.exp(log_w - log_w.max())
        std = float(r.std() / (r.mean() * math.sqrt(chains))) if chains > 1 else math.inf
    return PartitionEstimate(log_z0 + float(log_mean_w), std, log_w, "ais")


def pseudo_log_likelihood(
    v: Tensor, weight: Tensor, visible_bias: Tensor, hidden_bias: Tensor, chunk: int = 256
) -> Tensor:
    r""":math:`\sum_i \log p(v_i \mid v_{-i}) = \sum_i \log \sigma(F(\tilde v^{(i)}) -
    F(v))` (Bernoulli units; :math:`\tilde v^{(i)}` is :math:`v` with unit :math:`i`
    flipped): (B, D) -> (B,). All D flips at once: flipping :math:`i` moves the hidden
    inputs by :math:`(1 - 2v_i) W_{:,i}`."""
    out = []
    for s in range(0, v.shape[0], chunk):
        x = v[s : s + chunk]  # (b, D)
        a = torch.addmm(hidden_bias, x, weight.t())  # (b, H)
        sign = 1.0 - 2.0 * x  # (b, D): +1 where a 0 flips to 1
        a_flip = a[:, None, :] + sign[:, :, None] * weight.t()[None]  # (b, D, H)
        # F(flip_i) - F(v) = -b_i sign_i - sum_j [softplus(a_flip_ij) - softplus(a_j)]
        delta = -visible_bias * sign - (
            F.softplus(a_flip).sum(-1) - F.softplus(a).sum(-1)[:, None]
        )  # (b, D)
        out.append(F.logsigmoid(delta).sum(-1))
    return torch.cat(out) if out else v.new_zeros(0)


# ----------------------------------------------------------------------------------------
# Batches for the training loop
# ----------------------------------------------------------------------------------------


class EpochBatches:
    """Endless minibatches of the rows of ``data``, reshuffled every epoch by ``generator``
    (the same generator drives the Gibbs sampling, so its state is saved here too and a
    resumed run continues exactly). The shuffled rows are gathered once an epoch (one copy
    of the data), so each batch is a view (a gather per batch cost about 5% of a step at
    100 hidden units)."""

    def __init__(self, data: Tensor, batch_size: int, generator: torch.Generator, shuffle=True):
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self.shuffle = shuffle
        self.epoch, self.position = 0, 0
        self._new_order()

    def _new_order(self) -> None:
        n = self.data.shape[0]
        if self.shuffle:
            g = self.generator
            self.order = torch.randperm(n, generator=g, device=g.device).to(self.data.device)
        else:
            self.order = torch.arange(n, device=self.data.device)
        self._rows = self.data.index_select(0, self.order) if self.shuffle else self.data

    def __iter__(self):
        return self

    def __next__(self) -> Tensor:
        if self.position >= self.data.shape[0]:
            self.epoch, self.position = self.epoch + 1, 0
            self._new_order()
        start, self.position = self.position, self.position + self.batch_size
        return self._rows[start : self.position]

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "position": self.position,
            "order": self.order.cpu(),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self.order = state["order"].to(self.data.device)
        self._rows = self.data.index_select(0, self.order) if self.shuffle else self.data
        self.generator.set_state(state["generator"])


def _check_data(name: str, data, num_visible: int, ref: Tensor, visible: str, binary=False):
    """(B, D) data of the model's dtype and device; Bernoulli data in [0, 1] (or {0, 1})."""
    check_tensor(name, data)
    if data.dim() == 1:
        data = data[None]
    if data.dim() != 2 or data.shape[1] != num_visible:
        raise InputError(
            f"{name}: expected shape (B, {num_visible}) (num_visible = {num_visible}), "
            f"received shape {tuple(data.shape)}"
        )
    if not data.is_floating_point():
        raise InputTypeError(f"{name}: expected a floating-point tensor, received {describe(data)}")
    if data.dtype != ref.dtype or data.device != ref.device:
        raise InputTypeError(
            f"{name}: expected dtype {ref.dtype} on {ref.device} (as the model), received "
            f"{data.dtype} on {data.device}"
        )
    if not bool(torch.isfinite(data).all()):
        raise InputError(f"{name}: expected finite values, received NaN or inf")
    if visible == "bernoulli" and data.numel():
        if binary and not bool(((data == 0) | (data == 1)).all()):
            raise InputError(
                f"{name}: expected binary values in {{0, 1}} for Bernoulli visible units, "
                f"received values in [{float(data.min()):g}, {float(data.max()):g}] "
                "that are not all 0 or 1"
            )
        lo, hi = float(data.min()), float(data.max())
        if lo < 0 or hi > 1:
            raise InputError(
                f"{name}: expected values in [0, 1] for Bernoulli visible units, received "
                f"values in [{lo:g}, {hi:g}]"
            )
    return data


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------


class RBM(nn.Module):
    r"""Restricted Boltzmann machine with Bernoulli hidden units and Bernoulli or
    unit-variance Gaussian visible units (energy, conditionals and learning rule in the
    module docstring).

    Args:
        num_visible: D.
        num_hidden: H.
        visible: ``"bernoulli"`` (binary data, or probabilities in [0, 1] for training) or
            ``"gaussian"`` (real data, standardised: the variance is fixed at 1).

    Parameters: ``weight`` (H, D), initialised :math:`\mathcal N(0, 0.01^2)` (Hinton 2010,
    §8); ``visible_bias`` (D,) and ``hidden_bias`` (H,), zero.
    """

    def __init__(
        self,
        num_visible: int,
        num_hidden: int,
        visible: str = "bernoulli",
        *,
        device=None,
        dtype=None,
    ):
        super().__init__()
        check_positive_int("num_visible", num_visible)
        check_positive_int("num_hidden", num_hidden)
        if visible not in VISIBLE_TYPES:
            raise InputError(
                f"visible: expected one of {', '.join(map(repr, VISIBLE_TYPES))}, "
                f"received {visible!r}"
            )
        self.num_visible, self.num_hidden, self.visible = num_visible, num_hidden, visible
        kw = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.randn(num_hidden, num_visible, **kw) * 0.01)
        self.visible_bias = nn.Parameter(torch.zeros(num_visible, **kw))
        self.hidden_bias = nn.Parameter(torch.zeros(num_hidden, **kw))

    def extra_repr(self) -> str:
        return (
            f"num_visible={self.num_visible}, num_hidden={self.num_hidden}, "
            f"visible={self.visible!r}"
        )

    def _params(self) -> tuple[Tensor, Tensor, Tensor]:
        return self.weight, self.visible_bias, self.hidden_bias

    def _data(self, name: str, data, binary: bool = False) -> Tensor:
        return _check_data(name, data, self.num_visible, self.weight, self.visible, binary)

    # ------------------------------------------------------------------ energies
    def energy(self, visible: Tensor, hidden: Tensor) -> Tensor:
        r""":math:`E(v, h)`: (B, D), (B, H) -> (B,)."""
        v = self._data("visible", visible)
        check_tensor("hidden", hidden)
        h = hidden[None] if hidden.dim() == 1 else hidden
        if h.shape != (v.shape[0], self.num_hidden):
            raise InputError(
                f"hidden: expected shape ({v.shape[0]}, {self.num_hidden}), received "
                f"{tuple(hidden.shape)}"
            )
        W, b, c = self._params()
        inter = ((h @ W) * v).sum(-1) + h @ c  # (B,)
        if self.visible == "bernoulli":
            return -inter - v @ b
        return 0.5 * (v - b).pow(2).sum(-1) - inter

    def free_energy(self, visible: Tensor) -> Tensor:
        r""":math:`F(v) = -\log\sum_h e^{-E(v,h)}`: (B, D) -> (B,)."""
        return free_energy(self._data("visible", visible), *self._params(), self.visible)

    def forward(self, visible: Tensor) -> Tensor:
        """The free energy (so that autograd of ``F(data).mean() - F(samples).mean()``
        gives the CD gradient)."""
        return self.free_energy(visible)

    # ------------------------------------------------------------- conditionals
    def hidden_probabilities(self, visible: Tensor) -> Tensor:
        r""":math:`p(h = 1 \mid v)`: (B, D) -> (B, H)."""
        return hidden_probabilities(self._data("visible", visible), self.weight, self.hidden_bias)

    def visible_mean(self, hidden: Tensor) -> Tensor:
        r""":math:`\mathbb E[v \mid h]`: (B, H) -> (B, D)."""
        check_tensor("hidden", hidden)
        return visible_mean(hidden, self.weight, self.visible_bias, self.visible)

    def transform(self, data: Tensor) -> Tensor:
        r"""Hidden probabilities :math:`p(h = 1 \mid v)` as features: (B, D) -> (B, H)."""
        with torch.no_grad():
            return self.hidden_probabilities(data)

    @torch.no_grad()
    def gibbs(
        self, visible: Tensor, steps: int = 1, generator: torch.Generator | None = None
    ) -> Tensor:
        """``steps`` block-Gibbs steps from ``visible`` (B, D); returns the new visible states."""
        check_positive_int("steps", steps)
        v = self._data("visible", visible)
        return gibbs_chain(v, *self._params(), self.visible, steps, generator)[0]

    @torch.no_grad()
    def sample(
        self,
        num: int,
        steps: int = 1000,
        *,
        generator: torch.Generator | None = None,
        init: Tensor | None = None,
        mean: bool = False,
    ) -> Tensor:
        r"""``num`` samples after ``steps`` Gibbs steps from ``init`` (default: uniform
        random binary vectors, or standard normal for Gaussian units): (num, D). With
        ``mean=True`` the last step returns :math:`\mathbb E[v \mid h]` instead of a draw
        (smoother pictures)."""
        check_positive_int("num", num)
        check_positive_int("steps", steps)
        W, b, c = self._params()
        if init is None:
            shape = (num, self.num_visible)
            kw = {"dtype": W.dtype, "device": W.device, "generator": generator}
            v = (
                sample_bernoulli(
                    torch.full(shape, 0.5, dtype=W.dtype, device=W.device), generator=generator
                )
                if self.visible == "bernoulli"
                else torch.randn(shape, **kw)
            )
        else:
            v = self._data("init", init)
        v, _ = gibbs_chain(v, W, b, c, self.visible, steps - 1, generator)
        h = sample_bernoulli(hidden_probabilities(v, W, c), generator=generator)
        m = visible_mean(h, W, b, self.visible)
        return m if mean else sample_visible(m, self.visible, generator)

    # ----------------------------------------------------------- likelihoods
    def log_partition(
        self,
        method: str = "exact",
        *,
        chains: int = 100,
        num_temperatures: int = 14500,
        base_data: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> PartitionEstimate:
        r""":math:`\log Z` exactly (enumerating the smaller layer, at most 20 units) or by
        annealed importance sampling (``chains`` runs over ``num_temperatures``
        temperatures; ``base_data`` sets the base model's visible biases to the logits of
        its unit means, Salakhutdinov & Murray 2008, clipped to mean in [1e-3, 1 - 1e-3])."""
        W, b, c = self._params()
        with torch.no_grad():
            if method == "exact":
                lz = log_partition_exact(W, b, c, self.visible)
                return PartitionEstimate(float(lz), 0.0, None, "exact")
            if method == "ais":
                base = None
                if base_data is not None and self.visible == "bernoulli":
                    p = self._data("base_data", base_data).mean(0).clamp(1e-3, 1 - 1e-3)
                    base = torch.log(p) - torch.log1p(-p)
                return log_partition_ais(
                    W,
                    b,
                    c,
                    self.visible,
                    chains=chains,
                    num_temperatures=num_temperatures,
                    base_visible_bias=base,
                    generator=generator,
                )
        raise InputError(f"method: expected 'exact' or 'ais', received {method!r}")

    def log_likelihood(
        self, data: Tensor, log_z: float | PartitionEstimate | None = None, **ais
    ) -> Tensor:
        r""":math:`\log p(v) = -F(v) - \log Z`: (B, D) -> (B,) nats. ``log_z`` is reused when
        given; otherwise it is computed exactly when the smaller layer has at most 20 units
        and by AIS (keyword arguments of :meth:`log_partition`) otherwise."""
        v = self._data("data", data, binary=True)
        if log_z is None:
            small = (
                self.num_hidden
                if self.visible == "gaussian"
                else min(self.num_hidden, self.num_visible)
            )
            method = "exact" if small <= MAX_ENUMERATED_UNITS else "ais"
            log_z = self.log_partition(method, **ais)
        lz = log_z.log_z if isinstance(log_z, PartitionEstimate) else float(log_z)
        with torch.no_grad():
            return -free_energy(v, *self._params(), self.visible) - lz

    def pseudo_log_likelihood(self, data: Tensor) -> Tensor:
        r""":math:`\sum_i \log p(v_i \mid v_{-i})` over all D units (binary data, Bernoulli
        visible units): (B, D) -> (B,). Divide by D for scikit-learn's per-unit scale."""
        if self.visible != "bernoulli":
            raise InputError(
                "pseudo_log_likelihood: defined here for Bernoulli visible units, the model "
                f"has visible={self.visible!r}"
            )
        v = self._data("data", data, binary=True)
        with torch.no_grad():
            return pseudo_log_likelihood(v, *self._params())

    # ---------------------------------------------------------------- training
    def cd_step(
        self,
        data: Tensor,
        k: int = 1,
        chain: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> CDResult:
        """One CD-k (or PCD-k, given ``chain``: the chains' hidden states, (chains, H))
        estimate at the current parameters, written nowhere (see
        :func:`contrastive_divergence`)."""
        check_positive_int("k", k)
        v = self._data("data", data)
        if chain is not None:
            check_tensor("chain", chain)
            if chain.dim() != 2 or chain.shape[1] != self.num_hidden:
                raise InputError(
                    f"chain: expected the chains' hidden states, shape (chains, "
                    f"{self.num_hidden}), received shape {tuple(chain.shape)}"
                )
        with torch.no_grad():
            return contrastive_divergence(v, *self._params(), self.visible, k, chain, generator)

    def fit(
        self,
        data: Tensor,
        epochs: int = 10,
        k: int = 1,
        persistent: bool = False,
        *,
        chains: int | None = None,
        lr: float = 0.1,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        batch_size: int = 20,
        lr_decay: bool = False,
        seed: int = 0,
        shuffle: bool = True,
        progress: bool = False,
        checkpoint: str | Path | None = None,
        metrics: str | Path | None = None,
        resume: str | Path | None = None,
    ) -> RBM:
        r"""Train by CD-k, or PCD-k with ``persistent=True``, through the project's training
        loop (:class:`rnnlab.train.Trainer` with a ``gradients`` hook), with
        ``torch.optim.SGD(lr, momentum)``; ``weight_decay`` (L2) applies to the weights
        only, not the biases (Hinton 2010, §10); ``lr_decay`` lowers the learning rate
        linearly to zero over the run (Tieleman 2008, §4; a schedule of the loop, so it
        resumes exactly).

        ``epochs`` passes over ``data`` (B, D) in minibatches of ``batch_size`` (reshuffled
        every epoch when ``shuffle``); PCD keeps ``chains`` persistent chains (default
        ``batch_size``), whose states are hidden samples (see
        :func:`contrastive_divergence`), started from random training vectors and carried
        by the loop (so they are checkpointed). ``seed`` fixes the shuffling and every
        Gibbs draw. The loss the loop reports is the one-step reconstruction error (mean
        squared); under PCD it is measured only on the steps the loop logs (each epoch's
        last batch) and the last step, as the estimate does not use it and it costs a
        sixth of a step's multiply-adds (CD's comes free with the chain's first step).
        ``checkpoint`` / ``metrics`` are file paths for the loop; ``resume`` a checkpoint
        to continue (with the same data and arguments; ``epochs`` may grow).
        ``fit_result_`` holds the loop's :class:`~rnnlab.train.TrainResult`. Returns self.
        """
        from rnnlab.train.checkpoint import load_checkpoint
        from rnnlab.train.loop import StepOutput, TrainConfig, Trainer

        check_positive_int("epochs", epochs)
        check_positive_int("k", k)
        check_positive_int("batch_size", batch_size)
        for name, val in (("lr", lr), ("momentum", momentum), ("weight_decay", weight_decay)):
            if not isinstance(val, (int, float)) or val < 0 or (name == "lr" and val == 0):
                want = "a positive number" if name == "lr" else "a number >= 0"
                raise InputError(f"{name}: expected {want}, received {val!r}")
        v = self._data("data", data)
        n = v.shape[0]
        if n == 0:
            raise InputError("data: expected at least one row, received shape (0, D)")
        num_chains = batch_size if chains is None else check_positive_int("chains", chains)
        generator = torch.Generator(device=v.device).manual_seed(seed)
        batches = EpochBatches(v, batch_size, generator, shuffle=shuffle)
        optimizer = torch.optim.SGD(
            [
                {"params": [self.weight], "weight_decay": weight_decay},
                {"params": [self.visible_bias, self.hidden_bias], "weight_decay": 0.0},
            ],
            lr=lr,
            momentum=momentum,
        )
        visible_type = self.visible
        compiled = None
        if persistent and visible_type == "bernoulli":
            with torch.no_grad():
                if _CompiledPCDStep.applies(self, v, num_chains):
                    compiled = _CompiledPCDStep(self, k, num_chains)

        def gradients(model: RBM, batch: Tensor, carry):
            W, b, c = model.weight, model.visible_bias, model.hidden_bias
            monitor = not persistent or trainer.loss_wanted()  # PCD's costs a product
            chain = None
            if persistent:
                chain = carry
                if chain is None:  # start (or restart after a skipped step) at training rows
                    idx = torch.randint(n, (num_chains,), generator=generator, device=v.device)
                    with torch.no_grad():  # the state: a hidden sample given those rows
                        p = hidden_probabilities(v.index_select(0, idx), W, c)
                        chain = sample_bernoulli(p, generator)
            if compiled is not None and batch.dtype == W.dtype:
                res = compiled(batch, chain, generator, monitor)  # no autograd: NumPy views
            else:
                with torch.no_grad():
                    res = contrastive_divergence(
                        batch, W, b, c, visible_type, k, chain, generator, monitor
                    )
            W.grad, b.grad, c.grad = res.grad_weight, res.grad_visible_bias, res.grad_hidden_bias
            return StepOutput(
                res.reconstruction_error, len(batch), res.chain if persistent else None
            )

        # PCD with Bernoulli units: the gradients are differences of means of values in
        # [0, 1], bounded while the parameters are finite (bounded steps of a finite lr
        # keep them so, from data checked to lie in [0, 1]), so the loop computes the
        # gradient norm only for the steps it logs, where the mean-field reconstruction
        # error, NaN if a parameter is, is measured and checked too (CD reports the error of
        # a sampled reconstruction, which a NaN hidden bias does not reach)
        gradients.finite_gradients = visible_type == "bernoulli" and persistent

        steps = epochs * math.ceil(n / batch_size)
        schedule = None
        if lr_decay:
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: max(0.0, 1.0 - step / steps)
            )
        trainer = Trainer(
            self,
            optimizer,
            batches,
            None,
            TrainConfig(
                steps=steps, progress=progress, log_every=max(1, math.ceil(n / batch_size))
            ),
            gradients=gradients,
            schedule=schedule,
            checkpoint=checkpoint,
            metrics=metrics,
            kind="rbm",
            extra={
                "options": {
                    "num_visible": self.num_visible,
                    "num_hidden": self.num_hidden,
                    "visible": self.visible,
                    "k": k,
                    "persistent": persistent,
                    "chains": num_chains,
                    "batch_size": batch_size,
                    "seed": seed,
                }
            },
        )
        if resume is not None:
            trainer.load_state_dict(load_checkpoint(resume, "rbm"))
        with _blas_threads(torch.get_num_threads()) if compiled else contextlib.nullcontext():
            self.fit_result_ = trainer.fit()
        self.eval()
        return self
