r"""The reservoir of an echo state network: its random weights and the loop over time.

A reservoir is a fixed, randomly connected layer of leaky-integrator units (Jaeger 2007,
"Echo state network", Scholarpedia, eq. 5; Jaeger, Lukosevicius, Popovici & Siewert
2007, "Optimization and applications of echo state networks with leaky-integrator
neurons"):

.. math::

    \tilde x_t = f\big(W_{in} u_t + W x_{t-1} + W_{fb} y_{t-1} + b + \nu_t\big), \qquad
    x_t = (1 - a)\, x_{t-1} + a\, \tilde x_t

=================  ==================================================================
symbol             meaning
=================  ==================================================================
:math:`u_t`        input at step t, (B, F)
:math:`x_t`        reservoir state, (B, H); :math:`x_0` zeros unless given
:math:`y_{t-1}`    the previous output (teacher or own prediction), (B, O)
:math:`W_{in}`     input weights (H, F); :math:`W` recurrent weights (H, H), scaled to a
                   spectral radius :math:`\rho(W)`; :math:`W_{fb}` feedback weights (H, O);
                   :math:`b` bias (H,)
:math:`f`          tanh (or the identity, for linear reservoirs)
:math:`a`          leak rate in (0, 1]; a = 1 is the plain (non-leaky) ESN
:math:`\nu_t`      state noise, Gaussian, std ``noise`` (inside the nonlinearity)
=================  ==================================================================

Everything except :math:`W x_{t-1}` (and, in closed loop, :math:`W_{fb} y_{t-1}`) is known
before the loop starts, so it is computed for all steps in one matrix multiply, the
*drive* :math:`d_t`; the loop then does one matrix-vector product, one activation and
one interpolation per step. :math:`W` runs as a sparse CSR matrix when it is large and
sparse (:func:`recurrent_operator`), as a dense one otherwise. One sequence on the CPU runs
its whole loop compiled, where the three PyTorch calls of a step cost more than their
arithmetic: through a sparse W in C++ (``engines/csrc/reservoir.cpp``, built with the
compiled LSTM loops; measured at 1,000 units: about 1.4x faster than torch's CSR addmv,
tanh_ and lerp), through a small dense one (up to :data:`COMPILED_UP_TO` units) by Numba
when it is installed (``rnnlab[fast]``; measured at 100 units: about 2x faster). Batches
run the PyTorch loop, whose (H, B) products already amortise the calls.

The spectral radius of :math:`W` is computed from its exact eigenvalues up to
:data:`EXACT_EIGENVALUES_UP_TO` units and estimated by a seeded power iteration above
(:func:`spectral_radius`, approximate: see its docstring).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from rnnlab._numba import jit
from rnnlab.errors import InputError

ACTIVATIONS = ("tanh", "identity")
EXACT_EIGENVALUES_UP_TO = 1000
SPARSE_FROM = 400  # reservoirs at least this large with connectivity <= SPARSE_DENSITY
SPARSE_DENSITY = 0.2  # run W as CSR (measured: dense is faster below, CSR above)
COMPILED_UP_TO = 150  # one sequence, dense W: the compiled loop (measured: equal at 200)


# ------------------------------------------------------------------- weights


def spectral_radius(
    W: Tensor, exact: bool | None = None, iterations: int = 300, seed: int = 0
) -> float:
    r"""The spectral radius :math:`\rho(W) = \max_i |\lambda_i(W)|` of a square matrix.

    exact: True computes all eigenvalues (``torch.linalg.eigvals`` in float64, O(H^3));
        False the power iteration below; None (default) chooses exact up to
        :data:`EXACT_EIGENVALUES_UP_TO` rows.

    The power iteration runs 8 seeded random vectors :math:`v` through
    :math:`v \leftarrow W v / \|W v\|` in float64 and returns the geometric mean growth
    :math:`\|W v\| / \|v\|` over the second half of ``iterations`` (the first half lets the
    leading eigenvalues dominate; averaging the growth over many steps copes with a
    dominant complex pair, where :math:`v` rotates instead of converging). It is an
    estimate: for random reservoirs the eigenvalues just inside the leading one are close
    to it; we measured relative errors below 0.1% on random sparse matrices of 1,000 and
    1,500 rows (tests/esn checks 1% at 1,200).
    """
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise InputError(f"W: expected a square matrix, received shape {tuple(W.shape)}")
    H = W.shape[0]
    if exact is None:
        exact = H <= EXACT_EIGENVALUES_UP_TO
    Wd = W.detach().to(torch.float64)
    if exact:
        return float(torch.linalg.eigvals(Wd.cpu()).abs().max())
    g = torch.Generator().manual_seed(seed)
    if float((Wd != 0).sum()) <= SPARSE_DENSITY * H * H:
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            Wd = Wd.to_sparse_csr()
    v = torch.randn(H, 8, generator=g, dtype=torch.float64).to(Wd.device)
    v = v / v.norm(dim=0)
    log_growth = torch.zeros(8, dtype=torch.float64, device=Wd.device)
    burn = iterations // 2
    for k in range(iterations):
        w = Wd @ v  # (H, 8)
        n = w.norm(dim=0).clamp_min(1e-300)
        if k >= burn:
            log_growth += n.log()
        v = w / n
    return float(torch.exp(log_growth / (iterations - burn)).max())


def reservoir_weights(
    reservoir_size: int,
    spectral_radius_: float,
    connectivity: float,
    generator: torch.Generator,
    dtype: torch.dtype,
) -> Tensor:
    r"""A random recurrent matrix :math:`W` (H, H) scaled to the spectral radius.

    Each entry is nonzero with probability ``connectivity`` (Bernoulli mask), nonzero
    entries are standard normal; then :math:`W \leftarrow W \rho / \rho(W)`
    (:func:`spectral_radius`). Drawn on the CPU from ``generator`` in float64, so a seed
    gives the same matrix on every device and in every dtype.
    """
    H = reservoir_size
    mask = torch.rand(H, H, generator=generator, dtype=torch.float64) < connectivity
    W = torch.randn(H, H, generator=generator, dtype=torch.float64) * mask
    rho = spectral_radius(W, seed=int(torch.randint(2**31, (1,), generator=generator)))
    if rho < 1e-12:  # so sparse that the graph has no cycle: nilpotent W
        raise InputError(
            f"connectivity: {connectivity} gives a reservoir of {H} units whose recurrent "
            f"matrix has spectral radius {rho:.1e} (no cycles); expected a larger connectivity"
        )
    return (W * (spectral_radius_ / rho)).to(dtype)


def uniform_weights(
    shape: tuple[int, ...],
    scale: float,
    connectivity: float,
    generator: torch.Generator,
    dtype: torch.dtype,
) -> Tensor:
    """Entries uniform in [-scale, scale], each kept with probability ``connectivity``."""
    w = (2 * torch.rand(shape, generator=generator, dtype=torch.float64) - 1) * scale
    if connectivity < 1.0:
        w = w * (torch.rand(shape, generator=generator, dtype=torch.float64) < connectivity)
    return w.to(dtype)


# ------------------------------------------------------------------- the loop


def recurrent_operator(W: Tensor, sparse: bool | None = None) -> Callable:
    r"""A function ``into(x, d, out)`` that writes :math:`d + W x` into ``out``.

    x: (H, B) the previous states, one column per sequence (the layout in which a CSR
    product is fastest), or (H,) for one sequence; d: the step's drive, same shape; out:
    same shape. sparse: run W as CSR with int32 indices (None: when
    H >= :data:`SPARSE_FROM` and the fraction of nonzeros is at most
    :data:`SPARSE_DENSITY`). Both give the same numbers up to the order of summation.
    """
    H = W.shape[0]
    if sparse is None:
        sparse = H >= SPARSE_FROM and float((W != 0).sum()) <= SPARSE_DENSITY * H * H
    if not sparse:

        def dense_into(x: Tensor, d: Tensor, out: Tensor) -> Tensor:
            if x.dim() == 1:
                return torch.addmv(d, W, x, out=out)  # (H,)
            return torch.addmm(d, W, x, out=out)  # (H, H) @ (H, B)

        dense_into.weight = W  # for the compiled loop of run_reservoir
        return dense_into
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        C = W.to_sparse_csr()
        Ws = torch.sparse_csr_tensor(  # int32 indices: less memory traffic per step
            C.crow_indices().to(torch.int32), C.col_indices().to(torch.int32), C.values(),
            size=C.shape,
        )  # fmt: skip

    def sparse_into(x: Tensor, d: Tensor, out: Tensor) -> Tensor:
        if x.dim() == 1:
            return torch.addmv(d, Ws, x, out=out)
        return torch.addmm(d, Ws, x, out=out)  # (H, H) CSR @ (H, B)

    sparse_into.csr = (Ws.crow_indices(), Ws.col_indices(), Ws.values())  # for the C++ loop
    return sparse_into


def _activation_(name: str) -> Callable[[Tensor], Tensor]:
    if name == "tanh":
        return torch.Tensor.tanh_
    return lambda x: x


def _time_major(drive: Tensor, x0: Tensor):
    """Per-step blocks: one sequence runs on (H,) vectors (cheaper calls), a batch on
    (H, B) columns (contiguous per step)."""
    if drive.shape[0] == 1:
        d = drive[0]  # (T, H)
        return d, x0[0], torch.empty_like(d)
    d = drive.permute(1, 2, 0).contiguous()  # (T, H, B)
    return d, x0.t().contiguous(), torch.empty_like(d)


def _batch_first(X: Tensor, B: int) -> Tensor:
    """(T, H) or (T, H, B) -> a new, ordinary (B, T, H) tensor."""
    X = X[None] if B == 1 else X.permute(2, 0, 1)
    return X.clone(memory_format=torch.contiguous_format)


def run_reservoir(
    drive: Tensor, x0: Tensor, recur: Callable, leak_rate: float, activation: str = "tanh"
) -> Tensor:
    r"""The states :math:`x_1 .. x_T` of an open-loop reservoir (no feedback of its own output).

    drive: (B, T, H), :math:`d_t = W_{in} u_t + W_{fb} y_{t-1} + b + \nu_t` with the
    feedback (if any) known in advance (teacher forcing); x0: (B, H); recur: from
    :func:`recurrent_operator`. Returns (B, T, H). No autograd (the reservoir is fixed).
    """
    B, T, H = drive.shape
    X = _run_compiled(drive, x0, recur, leak_rate, activation)
    if X is not None:
        return X
    act_ = _activation_(activation)
    a = leak_rate
    with torch.inference_mode():  # no autograd bookkeeping per call (about 20% at H = 100)
        d, x, X = _time_major(drive, x0)
        ds, Xs = d.unbind(0), X.unbind(0)  # views made once
        for t in range(len(ds)):
            h = act_(recur(x, ds[t], Xs[t]))  # f(d_t + W x_{t-1}), written into X[t]
            if a != 1.0:
                torch.lerp(x, h, a, out=h)  # (1 - a) x_{t-1} + a h
            x = h
    return _batch_first(X, B)  # (B, T, H), an ordinary tensor again


def _run_compiled(drive: Tensor, x0: Tensor, recur: Callable, leak_rate: float, activation: str):
    """run_reservoir's loop compiled, for one sequence on the CPU: the Numba loop for a small
    dense W, the C++ one (``csrc/reservoir.cpp``) for a sparse W; None where neither runs."""
    B, T, H = drive.shape
    if B != 1 or drive.device.type != "cpu" or drive.requires_grad:
        return None
    csr = getattr(recur, "csr", None)
    if csr is not None and drive.dtype in (torch.float32, torch.float64):
        from rnnlab.engines import compiled

        module = compiled.load()
        if module is not None:
            crow, col, values = csr
            X = module.reservoir_drive(
                crow, col, values.to(drive.dtype), drive[0].detach().contiguous(),
                x0[0].detach().to(drive.dtype).contiguous(), float(leak_rate),
                activation == "tanh",
            )  # fmt: skip
            return X[None]  # (1, T, H)
    W = getattr(recur, "weight", None)
    if W is not None and H <= COMPILED_UP_TO and _drive_dense is not None:
        d = drive[0].detach().contiguous()  # (T, H)
        X = torch.empty_like(d)
        w = W.detach().to(d.dtype).contiguous()
        dn = d.numpy()
        a = dn.dtype.type(leak_rate)  # the drive's dtype
        _drive_dense(w.numpy(), dn, x0[0].detach().numpy(), a, activation == "tanh", X.numpy())
        return X[None]  # (1, T, H)
    return None


@jit(fastmath={"reassoc", "contract"})  # reassociated sums: SIMD dot products
def _drive_dense(W, d, x0, a, tanh, X):  # pragma: no cover (compiled)
    """run_reservoir's loop for one sequence: X[t] = (1 - a) x + a f(d[t] + W x)."""
    T, H = d.shape
    x = x0.copy()
    for t in range(T):
        xt = X[t]
        for i in range(H):
            s = d[t, i]
            Wi = W[i]
            for j in range(H):
                s += Wi[j] * x[j]
            xt[i] = (1 - a) * x[i] + a * (np.tanh(s) if tanh else s)
        x = xt


def run_closed_loop(
    drive: Tensor,
    x0: Tensor,
    y0: Tensor,
    recur: Callable,
    leak_rate: float,
    activation: str,
    W_fb: Tensor,
    W_out: Tensor,
    b_out: Tensor,
) -> tuple[Tensor, Tensor]:
    r"""States and outputs of a reservoir fed back its own readout
    :math:`y_t = W_{out} x_t + b_{out}`.

    drive: (B, T, H) everything but the recurrent and feedback terms; x0: (B, H);
    y0: (B, O) the output before the first step; W_fb: (H, O); W_out: (O, H);
    b_out: (O,). Returns (states (B, T, H), outputs (B, T, O)).
    """
    B, T, _ = drive.shape
    O = W_out.shape[0]
    one = B == 1
    act_ = _activation_(activation)
    a = leak_rate
    with torch.inference_mode():
        d, x, X = _time_major(drive, x0)
        y = y0[0] if one else y0.t().contiguous()  # (O,) or (O, B)
        Y = d.new_empty((T, O) if one else (T, O, B))
        ds, Xs, Ys = d.unbind(0), X.unbind(0), Y.unbind(0)
        b_col = b_out[:, None]  # (O, 1)
        for t in range(T):
            if one:
                dt = torch.addmv(ds[t], W_fb, y)  # d_t + W_fb y_{t-1}
            else:
                dt = torch.addmm(ds[t], W_fb, y)  # (H, O) @ (O, B)
            h = act_(recur(x, dt, Xs[t]))
            if a != 1.0:
                torch.lerp(x, h, a, out=h)
            x = h
            if one:
                y = torch.addmv(b_out, W_out, x, out=Ys[t])  # (O,)
            else:
                y = torch.addmm(b_col, W_out, x, out=Ys[t])  # (O, B)
    return _batch_first(X, B), _batch_first(Y, B)


def check_leak_rate(leak_rate: object) -> float:
    """Raise ValueError unless 0 < leak_rate <= 1."""
    ok = isinstance(leak_rate, (int, float)) and not isinstance(leak_rate, bool)
    if not ok or not 0.0 < float(leak_rate) <= 1.0 or math.isnan(float(leak_rate)):
        raise InputError(f"leak_rate: expected a number in (0, 1], received {leak_rate!r}")
    return float(leak_rate)
