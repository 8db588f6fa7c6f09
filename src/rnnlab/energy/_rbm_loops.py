r"""Compiled PCD-k step for Bernoulli RBMs (Numba; None without it).

:func:`pcd_bernoulli` computes what :func:`rnnlab.energy.rbm._pcd_bernoulli` computes,
from the same uniforms (drawn by the caller, in the same order), in one compiled call
instead of about 25 PyTorch kernels: the data's mean-field reconstruction and the
chains' visible layer in one matrix product :math:`[h_0; \tilde h] W` (the chains'
state is their hidden sample), the sigmoids, draws and column sums in loops over each
row, and the weight statistic in one product over the stacked batch with signed scales,

.. math::

    \Delta W = \begin{bmatrix} -h_0 / n \\ p(h \mid v_k) / m \end{bmatrix}^\top
        \begin{bmatrix} v \\ v_k \end{bmatrix}
      = \tfrac1m p(h \mid v_k)^\top v_k - \tfrac1n h_0^\top v .

The products go to BLAS (``np.dot``). The sigmoid :math:`\sigma(a) = 1 / (1 + e^{-a})`
is computed with an exponential written in vectorisable arithmetic (Cody & Waite 1980):
with :math:`t = -a` clamped to the dtype's exponent range, :math:`n = \operatorname{round}
(t \log_2 e)` (by adding :math:`1.5 \cdot 2^{p}`, :math:`p` the mantissa bits, whose sum
holds :math:`n` in its low bits), :math:`g = (t - n\,\ell_{hi}) - n\,\ell_{lo}` with
:math:`\ell_{hi} + \ell_{lo} = \ln 2` (:math:`\ell_{hi}` exact in few bits, so
:math:`n\,\ell_{hi}` is exact), :math:`|g| \le \tfrac12 \ln 2`, and

.. math::

    e^{t} = 2^n e^{g}, \qquad e^{g} \approx \sum_{i=0}^{N} g^i / i!

(:math:`N = 7` in float32, 13 in float64: the remainder
:math:`(\ln 2 / 2)^{N+1} / (N+1)!` is below half an ulp), :math:`2^n` built from its
exponent bits. It agrees with an exact sigmoid to a few ulp; a NaN stays NaN. The results
agree with the PyTorch kernel to the rounding of its sums and sigmoids (the draws are the
same comparisons ``u < p``, so a binary state can differ only where a uniform falls within
rounding of its probability).
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np

from rnnlab._numba import jit


def _constants(dtype) -> tuple[np.ndarray, np.ndarray]:
    """The exponential's constants in ``dtype`` (float32 or float64): (floats, ints) =
    ([lo, hi, log2 e, l_hi, l_lo, magic, 1/N!, ..., 1/0!], [bits of magic, exponent
    bias, mantissa bits]) in matching widths."""
    if np.dtype(dtype) == np.float32:
        # l_hi = 0.693359375 has 9 significant bits: n * l_hi is exact for |n| < 2^15
        floats = [-87.0, 87.0, math.log2(math.e), 0.693359375, math.log(2) - 0.693359375]
        magic, order, ints = 1.5 * 2.0**23, 7, [0x4B400000, 127, 23]
        itype = np.int32
    else:
        # fdlibm's split of ln 2 (l_hi with 32 significant bits)
        floats = [-708.0, 708.0, math.log2(math.e), 6.93147180369123816490e-01]
        floats.append(1.90821492927058770002e-10)
        magic, order, ints = 1.5 * 2.0**52, 13, [0x4338000000000000, 1023, 52]
        itype = np.int64
    coef = [1.0 / math.factorial(i) for i in range(order, -1, -1)]
    return np.array([*floats, magic, *coef], dtype=dtype), np.array(ints, dtype=itype)


@jit(error_model="numpy")
def _sigmoid_row(a, bias, fc, ic, w0, w1, w2):  # pragma: no cover - compiled
    """a[j] <- sigma(a[j] + bias[j]) in place, for one row a (L,); fc, ic from
    :func:`_constants`; w0 (float), w1, w2 scratch of length >= L, w0 also read as
    integers (its int view)."""
    L = a.shape[0]
    lo, hi, log2e, l_hi, l_lo, magic = fc[0], fc[1], fc[2], fc[3], fc[4], fc[5]
    one = fc[fc.shape[0] - 1]
    wi = w0.view(ic.dtype)
    for j in range(L):
        t = -(a[j] + bias[j])
        t = lo if t < lo else t  # written so that a NaN passes through
        t = hi if t > hi else t
        y = t * log2e + magic
        w0[j] = y
        n = y - magic
        w1[j] = (t - n * l_hi) - n * l_lo
        w2[j] = fc[6]
    for i in range(7, fc.shape[0]):
        c = fc[i]
        for j in range(L):
            w2[j] = w2[j] * w1[j] + c
    mbits, ebias, shift = ic[0], ic[1], ic[2]
    for j in range(L):
        wi[j] = (wi[j] - mbits + ebias) << shift  # the bits of 2^n
    for j in range(L):
        a[j] = one / (one + w2[j] * w0[j])


@jit(error_model="numpy")
def pcd_bernoulli(v, chain, W, b, c, u, key, shift, scale, k, fc, ic, monitor):  # pragma: no cover
    """v (n, D) data, chain (m, H) the chains' hidden states, W (H, D), b (D,), c (H,),
    u (k m (D + H),) uniforms (per Gibbs step: m D for the visible layer, then m H for
    the hidden one), filled first by :func:`fill_uniform` (key, shift, scale) when
    key >= 0, used as given when key < 0; fc, ic the sigmoid's constants
    (:func:`_constants`); monitor: whether to compute the data's reconstruction error
    (else NaN). Returns grad_w (H, D), grad_b (D,), grad_c (H,), the next chain state
    (m, H), error (1,)."""
    if key >= 0:
        fill_uniform(u, key, shift, scale)
    n, D = v.shape
    m = chain.shape[0]
    H = W.shape[0]
    one = fc[fc.shape[0] - 1]
    zero = one - one
    L = max(H, D)
    w0, w1, w2 = np.empty(L, W.dtype), np.empty(L, W.dtype), np.empty(L, W.dtype)
    Wt = W.T  # (D, H), F-ordered: a transposed BLAS operand, no copy
    # ---- the data's p(h | v), then (to be monitored) [p(h | v); chain] (n + m, H)
    P = np.empty((n + m, H), W.dtype)
    np.dot(v, Wt, P[:n])
    for r in range(n):
        _sigmoid_row(P[r], c, fc, ic, w0, w1, w2)
    # ---- the data's mean-field reconstruction and the chains' visible means: one product
    Q = np.empty((n + m, D), W.dtype)
    if monitor:
        P[n:] = chain
        np.dot(P, W, Q)  # (n + m, D)
        err = 0.0
        for r in range(n):
            _sigmoid_row(Q[r], b, fc, ic, w0, w1, w2)
            for i in range(D):
                d = Q[r, i] - v[r, i]
                err += d * d
    else:
        np.dot(chain, W, Q[n:])  # (m, D)
        err = np.nan
    # ---- the data's statistic: P[:n] becomes -h0 / n, with its column sums
    inv_n, inv_m = one / n, one / m
    gc = np.zeros(H, W.dtype)
    for r in range(n):
        for j in range(H):
            p = -P[r, j] * inv_n
            P[r, j] = p
            gc[j] += p
    # ---- k Gibbs steps; the chains' hidden probabilities go to P[n:] (their statistic,
    # scaled by 1/m at the last step) and their draws to h
    X = np.empty((n + m, D), W.dtype)  # [v; v_k]
    X[:n] = v
    h = np.empty((m, H), W.dtype)
    for s in range(k):
        off = s * m * (D + H)
        if s > 0:
            np.dot(h, W, Q[n:])
        for r in range(m):
            q = Q[n + r]
            _sigmoid_row(q, b, fc, ic, w0, w1, w2)
            for i in range(D):
                X[n + r, i] = one if u[off + r * D + i] < q[i] else zero
        np.dot(X[n:], Wt, P[n:])  # (m, H)
        off += m * D
        last = s == k - 1
        for r in range(m):
            a = P[n + r]
            _sigmoid_row(a, c, fc, ic, w0, w1, w2)
            for j in range(H):
                h[r, j] = one if u[off + r * H + j] < a[j] else zero
            if last:
                for j in range(H):
                    p = a[j] * inv_m
                    a[j] = p
                    gc[j] += p
    gb = np.zeros(D, W.dtype)
    for r in range(n):
        for i in range(D):
            gb[i] -= X[r, i] * inv_n
    for r in range(m):
        for i in range(D):
            gb[i] += X[n + r, i] * inv_m
    gw = np.dot(P.T, X)  # (H, D)
    out = np.empty(1, W.dtype)
    out[0] = err / (n * D)
    return gw, gb, gc, h, out


@jit()
def fill_uniform(u, key, shift, scale):  # pragma: no cover - compiled
    """u[i] <- the i-th uniform on [0, 1) of the stream ``key`` (an int64): SplitMix64
    (Steele, Lea & Flood 2014), the output of Java's SplittableRandom, evaluated at the
    counter key + (i + 1) gamma (gamma = 0x9E3779B97F4A7C15, the golden ratio's bits):

        z <- (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;  z <- (z ^ (z >> 27)) * 0x94D049BB133111EB;
        z <- z ^ (z >> 31);  u = (z >> shift) * scale,

    the top 24 bits times 2^-24 for float32 (shift 40), 53 bits times 2^-53 for float64
    (shift 11): exact multiples of the dtype's resolution, as torch.rand draws. Each
    element depends on its counter only, so the loop vectorises (0.4 ns a number here
    against 5 ns for torch's CPU generator, which fills serially)."""
    gamma = np.uint64(0x9E3779B97F4A7C15)
    m1, m2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    s30, s27, s31 = np.uint64(30), np.uint64(27), np.uint64(31)
    z0 = np.uint64(key)
    for i in range(u.shape[0]):
        z = z0 + np.uint64(i + 1) * gamma
        z = (z ^ (z >> s30)) * m1
        z = (z ^ (z >> s27)) * m2
        z = z ^ (z >> s31)
        u[i] = (z >> shift) * scale


# Numba's np.dot calls BLAS through SciPy (scipy.linalg.cython_blas): without SciPy the
# compiled step is off and the PyTorch kernel runs
if importlib.util.find_spec("scipy") is None:  # pragma: no cover - scipy comes with the tests
    pcd_bernoulli = None
