r"""Readouts of an echo state network: ridge regression (streamed), RLS and FORCE.

Ridge regression (Tikhonov) of targets on reservoir states, with an intercept that is not
penalised (as scikit-learn's ``Ridge`` and reservoirpy's ``Ridge(fit_bias=True)``):

.. math::

    \min_{W_{out}, b_{out}} \sum_{t} \|y_t - W_{out} x_t - b_{out}\|^2
        + \lambda \|W_{out}\|_F^2 .

With :math:`z_t = (x_t, 1)` the augmented state and :math:`\Lambda = \lambda\,
\mathrm{diag}(1, \ldots, 1, 0)`, the solution is :math:`[W_{out}, b_{out}]^\top =
(Z^\top Z + \Lambda)^{-1} Z^\top Y`, which needs only the sums :math:`G = Z^\top Z`
(H+1, H+1) and :math:`C = Z^\top Y` (H+1, O). These are accumulated in float64 over any
number of batches, sequences or chunks (:class:`RidgeAccumulator`), so the fit of
arbitrarily long data needs memory for one chunk of states only; the normal equations are
solved by Cholesky.

=================  ==================================================================
symbol             meaning
=================  ==================================================================
:math:`x_t`        reservoir state (H,) at a step used for training (after the washout)
:math:`y_t`        target (O,)
:math:`\lambda`    ridge (``ridge``), >= 0
=================  ==================================================================

Recursive least squares (:class:`RLS`; Haykin, "Adaptive filter theory", §9) updates
:math:`W` after every sample with :math:`P \approx (Z^\top Z + \delta I)^{-1}`:

.. math::

    k = \frac{P z}{\mu + z^\top P z}, \quad e = W z - y, \quad
    W \leftarrow W - e k^\top, \quad P \leftarrow (P - k z^\top P) / \mu ,

with :math:`P_0 = I / \delta`, :math:`W_0 = 0` and forgetting factor :math:`\mu`
(1: none). With :math:`\mu = 1` it is exactly the ridge solution with penalty
:math:`\delta` on all of :math:`z` (bias included) after every sample. FORCE learning
(Sussillo & Abbott 2009, "Generating coherent patterns of activity from chaotic neural
networks") is RLS applied while the network runs on its own fed-back output.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor


class RidgeAccumulator:
    """Running sums :math:`G = Z^T Z`, :math:`C = Z^T Y` and the row count, in float64.

    ``add(states, targets)`` takes (N, H) states and (N, O) targets (the rows used for
    training); ``solve(ridge)`` returns ``(W_out (O, H), b_out (O,))`` in float64.
    """

    def __init__(self, n_features: int, n_outputs: int, device=None) -> None:
        f64 = {"dtype": torch.float64, "device": device}
        self.gram = torch.zeros(n_features + 1, n_features + 1, **f64)  # G
        self.cross = torch.zeros(n_features + 1, n_outputs, **f64)  # C
        self.count = 0

    def add(self, states: Tensor, targets: Tensor) -> None:
        """Add rows: states (N, H), targets (N, O)."""
        if states.shape[0] == 0:
            return
        x = states.to(torch.float64)
        y = targets.to(torch.float64)
        H = x.shape[1]
        s = x.sum(0)  # (H,) the cross terms with the constant 1
        _add_gram(self.gram[:H, :H], x)  # (H, H) += x^T x
        self.gram[H, :H] += s
        self.gram[:H, H] += s
        self.gram[H, H] += x.shape[0]
        self.cross[:H] += x.t() @ y  # (H, O)
        self.cross[H] += y.sum(0)
        self.count += x.shape[0]

    def solve(self, ridge: float) -> tuple[Tensor, Tensor]:
        """The ridge readout from the sums so far (intercept not penalised)."""
        return ridge_solve(self.gram, self.cross, ridge)


def _add_gram(G: Tensor, x: Tensor) -> None:
    """G += x^T x, computing only the triangle on and above the diagonal (half the
    multiply-adds of one ``x.t() @ x``) and copying the rest by symmetry: on the CPU by
    NumPy's ``x.T @ x``, a BLAS ``syrk`` (measured with OpenBLAS on AMD EPYC: 1.8x faster
    than torch's MKL ``mm`` at 1,000 features), elsewhere by :func:`_add_gram_blocked`."""
    if x.device.type != "cpu":
        return _add_gram_blocked(G, x)
    xn = np.ascontiguousarray(x.numpy())  # (N, H)
    G.numpy().__iadd__(xn.T @ xn)  # NumPy recognises a matrix times its own transpose


def _add_gram_blocked(G: Tensor, x: Tensor, block: int = 256) -> None:
    """G += x^T x by blocks of ``block`` columns on and above the diagonal."""
    H = x.shape[1]
    if H <= block:
        G += x.t() @ x
        return
    for i in range(0, H, block):
        upper = x[:, i : i + block].t() @ x[:, i:]  # (b, H - i)
        G[i : i + block, i:] += upper
        G[i + block :, i : i + block] += upper[:, block:].t()


def ridge_solve(gram: Tensor, cross: Tensor, ridge: float) -> tuple[Tensor, Tensor]:
    r"""Solve :math:`(G + \Lambda) w = C` by Cholesky; :math:`\Lambda` = ridge on all but the
    last (intercept) row. Returns (W_out (O, H), b_out (O,)).

    If the system is singular (ridge 0 with collinear states) the least-norm solution of
    ``torch.linalg.lstsq`` is used instead, with a warning.
    """
    n = gram.shape[0]
    A = gram.clone()
    A.diagonal()[: n - 1] += ridge
    L = _cholesky(A)
    if L is not None:  # L L^T w = C by two triangular solves (measured on the CPU at 3,001
        # rows: 25x faster than torch.cholesky_solve)
        z = torch.linalg.solve_triangular(L, cross, upper=False)
        w = torch.linalg.solve_triangular(L.mT, z, upper=True)  # (H + 1, O)
    else:
        warnings.warn(
            "ridge readout: the normal equations are singular (ridge too small for these "
            "states); using the least-squares solution of least norm",
            RuntimeWarning,
            stacklevel=3,
        )
        w = torch.linalg.lstsq(A.cpu(), cross.cpu(), driver="gelsd").solution.to(A.device)
    return w[:-1].t().contiguous(), w[-1].clone()


def _cholesky(A: Tensor) -> Tensor | None:
    """The lower Cholesky factor of A, or None if A is not positive definite. On the CPU
    first by NumPy's LAPACK (measured with OpenBLAS on AMD EPYC: 1.7x faster than torch's
    MKL at 1,001 rows); where that finds A indefinite, by torch, as everywhere else: on a
    numerically semidefinite system (a tiny ridge) MKL's factorisation can still succeed,
    and the readouts documented for such setups (``mackey-glass``, ridge 1e-11) are its."""
    if A.device.type == "cpu":
        try:
            return torch.from_numpy(np.linalg.cholesky(A.numpy()))
        except np.linalg.LinAlgError:
            pass
    L, info = torch.linalg.cholesky_ex(A)
    return L if int(info) == 0 else None


class RLS:
    r"""Recursive least squares for a linear readout :math:`y = W z` (see the module docstring).

    n_features: length of z (the caller appends a constant 1 for an intercept).
    n_outputs: O.  delta: :math:`\delta`, the initial :math:`P = I/\delta` (a ridge
    :math:`\delta` on all weights).  forgetting: :math:`\mu \in (0, 1]`.
    Works in float64.
    """

    def __init__(
        self, n_features: int, n_outputs: int, delta: float = 1.0, forgetting: float = 1.0,
        device=None,
    ) -> None:  # fmt: skip
        f64 = {"dtype": torch.float64, "device": device}
        self.P = torch.eye(n_features, **f64) / delta  # (n, n)
        self.weight = torch.zeros(n_outputs, n_features, **f64)  # (O, n)
        self.forgetting = forgetting

    def update(self, z: Tensor, y: Tensor) -> Tensor:
        """One sample: z (n,), y (O,). Returns the a-priori error W z - y (before the update)."""
        z = z.to(torch.float64)
        Pz = self.P @ z  # (n,)
        k = Pz / (self.forgetting + z @ Pz)  # gain (n,)
        e = self.weight @ z - y.to(torch.float64)  # (O,)
        self.weight -= torch.outer(e, k)
        self.P -= torch.outer(k, Pz)  # P - k z^T P (P symmetric)
        if self.forgetting != 1.0:
            self.P /= self.forgetting
        return e
