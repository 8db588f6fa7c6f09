"""The compiled loops (rnnlab[fast], classic/_loops.py) equal the torch/numpy recursions
they replace: the HMM forward, backward, smoothing and Viterbi passes, the full (masked)
Kalman filter and the RTS smoother, to 1e-10 in float64; and the models' results (score,
posteriors, Viterbi paths, EM histories) are the same with RNNLAB_NUMBA=0 (a subprocess)
as with Numba on. The reference in-process is the same code with the dispatch switched
off (``hmm_ready``/``lds_ready`` patched to False)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from rnnlab.classic import HMM, _loops
from rnnlab.classic import hmm as H
from rnnlab.classic.lds import LDSParams, LinearDynamicalSystem, kalman_filter, rts_smoother
from rnnlab.errors import InputError

F64, F32 = torch.float64, torch.float32
pytestmark = [
    pytest.mark.skipif(_loops._hmm_forward_kernel is None, reason="Numba off or missing"),
    pytest.mark.filterwarnings("ignore::rnnlab.classic.ConvergenceWarning"),
]


@pytest.fixture
def reference(monkeypatch):
    """A context in which the kernels are switched off (the torch/numpy reference)."""

    class Off:
        def __enter__(self):
            monkeypatch.setattr(_loops, "hmm_ready", lambda x: False)
            monkeypatch.setattr(_loops, "lds_ready", lambda *a: False)

        def __exit__(self, *exc):
            monkeypatch.undo()

    return Off()


def _close(a, b, tol=1e-10):
    if a is None or b is None:
        assert a is None and b is None
        return
    torch.testing.assert_close(a, b, rtol=tol, atol=tol, equal_nan=True)


def _hmm_problem(T, B, K, dtype=F64, seed=0, zeros=False):
    g = torch.Generator().manual_seed(seed)
    A = torch.rand(K, K, generator=g, dtype=F64) + 0.05
    if zeros and K > 1:  # a left-right topology: structural zeros below the diagonal
        A = torch.triu(A)
    A = A / A.sum(1, keepdim=True)
    pi = torch.rand(K, generator=g, dtype=F64) + 0.05
    pi = pi / pi.sum()
    log_b = torch.randn(T, B, K, generator=g, dtype=F64) * 3.0
    if zeros and K > 2:
        log_b[T // 2, :, 1] = -math.inf  # an emission impossible in one state
    return pi.log().to(dtype), A.log().to(dtype), log_b.to(dtype)


HMM_CASES = [(1, 1, 2), (2, 1, 1), (17, 3, 5), (600, 1, 2), (300, 2, 4), (50, 4, 3)]


@pytest.mark.parametrize("T, B, K", HMM_CASES)
@pytest.mark.parametrize("zeros", [False, True])
def test_hmm_kernels_equal_the_numpy_loops(T, B, K, zeros, reference):
    log_pi, log_A, log_b = _hmm_problem(T, B, K, seed=T + B + K, zeros=zeros)
    assert _loops.hmm_ready(log_b)
    lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(1))
    lengths[0] = T
    mask_tm = (torch.arange(T)[:, None] < lengths[None, :]) if B > 1 else None
    if mask_tm is not None:
        log_b = log_b.masked_fill(~mask_tm[..., None], 0.0)  # 0 at padding, as _prepare_log_b
    weights = torch.rand(B, dtype=F64, generator=torch.Generator().manual_seed(2)) + 0.5
    fast = _loops.hmm_forward(log_pi, log_A, log_b)
    with reference:
        ref = H._forward_seq(log_pi, log_A, log_b)
        beta_ref = H._backward_tm(log_A, ref[2])
        smooth_ref = [
            H._smooth_seq(log_A, ref[2], mask_tm, ref[0], w, per_seq, trans)
            for w, per_seq, trans in (
                (None, True, True),
                (weights, False, True),
                (None, True, False),
            )
        ]
    for a, b in zip(fast, ref):
        _close(a, b)
    _close(_loops.hmm_backward(log_A, ref[2]), beta_ref)
    for (w, per_seq, trans), (g_ref, x_ref) in zip(
        ((None, True, True), (weights, False, True), (None, True, False)), smooth_ref
    ):
        g, x = _loops.hmm_smooth(log_A, ref[2], mask_tm, ref[0], w, per_seq, trans)
        _close(g, g_ref)
        if x is not None:  # counts are sums over up to T steps
            torch.testing.assert_close(x, x_ref, rtol=1e-10, atol=1e-10 * T)


@pytest.mark.parametrize("T, B, K", HMM_CASES)
def test_hmm_kernels_in_float32(T, B, K, reference):
    log_pi, log_A, log_b = _hmm_problem(T, B, K, dtype=F32, seed=5)
    fast = _loops.hmm_forward(log_pi, log_A, log_b)
    with reference:
        ref = H._forward_seq(log_pi, log_A, log_b)
        g_ref, x_ref = H._smooth_seq(log_A, ref[2], None, ref[0])
    for a, b in zip(fast, ref):
        assert a.dtype == F32
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    g, x = _loops.hmm_smooth(log_A, ref[2], None, ref[0])
    torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(x, x_ref, rtol=1e-4, atol=1e-4 * T)


@pytest.mark.parametrize("T, B, K", HMM_CASES)
def test_viterbi_kernel_equals_the_torch_paths(T, B, K, reference):
    log_pi, log_A, log_b = _hmm_problem(T, B, K, seed=11, zeros=True)
    log_e = log_b.transpose(0, 1).contiguous()  # (B, T, K)
    lengths = torch.randint(1, T + 1, (B,), generator=torch.Generator().manual_seed(3))
    fast = H.viterbi(log_pi, log_A, log_e, lengths)
    with reference:
        ref = H.viterbi(log_pi, log_A, log_e, lengths)
    assert torch.equal(fast.paths, ref.paths)
    assert torch.equal(fast.log_probs, ref.log_probs)  # the same additions in the same order


def test_viterbi_ties_go_to_the_lowest_state_as_in_torch(reference):
    K, T = 3, 6
    log_pi = torch.full((K,), -math.log(K), dtype=F64)
    log_A = torch.full((K, K), -math.log(K), dtype=F64)
    log_e = torch.zeros(2, T, K, dtype=F64)  # every path equally likely
    log_e[1, 3, 2] = 1.0
    fast = H.viterbi(log_pi, log_A, log_e)
    with reference:
        ref = H.viterbi(log_pi, log_A, log_e)
    assert torch.equal(fast.paths, ref.paths)
    assert fast.paths[0].tolist() == [0] * T
    assert fast.paths[1].tolist() == [0, 0, 0, 2, 0, 0]


def _gaussian_hmm(K=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.rand(K, K, generator=g, dtype=F64) + torch.eye(K, dtype=F64) * K
    return HMM.from_params(
        initial_probs=torch.full((K,), 1.0 / K, dtype=F64),
        transition_matrix=A / A.sum(1, keepdim=True),
        means=torch.linspace(-2, 2, K, dtype=F64)[:, None],
        covs=torch.ones(K, 1, dtype=F64),
        covariance="diag",
    )


@pytest.mark.parametrize("T", [1, 2, 300, 3000])
def test_hmm_model_results_equal_with_and_without_kernels(T, reference):
    x = _gaussian_hmm(seed=T).sample(1, T, generator=T).observations
    out = []
    for off in (False, True):
        if off:
            reference.__enter__()
        m = _gaussian_hmm(seed=T)
        ll, post = m.score_samples(x)
        vit = m.viterbi(x)
        m.fit(x, n_iter=4, init="none", tol=0.0, rtol=0.0)
        out.append((ll, post, vit.paths, vit.log_probs, torch.tensor(m.history_)))
        if off:
            reference.__exit__()
    for a, b in zip(*out):
        if a.dtype == torch.long:
            assert torch.equal(a, b)
        else:
            _close(a, b)


def test_hmm_padded_batch_and_impossible_sequences_equal_with_and_without_kernels(reference):
    K, M = 3, 4
    h = HMM.from_params(
        initial_probs=torch.tensor([1.0, 0.0, 0.0], dtype=F64),
        transition_matrix=torch.tensor(
            [[0.8, 0.2, 0.0], [0.0, 0.7, 0.3], [0.0, 0.0, 1.0]], dtype=F64
        ),
        emission_probs=torch.tensor(
            [[0.5, 0.5, 0.0, 0.0], [0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.5, 0.5]], dtype=F64
        ),
    )
    assert h.num_states == K and h.num_symbols == M
    x = torch.tensor([[0, 1, 2, 3, 3, 2], [3, 0, 1, 1, 0, 0], [0, 0, 1, 2, 0, 0]])
    lengths = torch.tensor([6, 6, 4])  # the second is impossible (3 first)
    fast = (h.log_likelihood(x, lengths).detach(), h.posterior(x, lengths), h.viterbi(x, lengths))
    with reference:
        ref = (
            h.log_likelihood(x, lengths).detach(),
            h.posterior(x, lengths),
            h.viterbi(x, lengths),
        )
    assert fast[0][1] == -math.inf
    _close(fast[0], ref[0])
    _close(fast[1], ref[1])
    assert torch.equal(fast[2].paths, ref[2].paths)
    _close(fast[2].log_probs, ref[2].log_probs)


# ------------------------------------------------------------------------------- Kalman


def _lds(S=3, D=2, U=0, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)

    def spd(n):
        X = torch.randn(n, n, generator=g, dtype=F64)
        return X @ X.T / n + 0.3 * torch.eye(n, dtype=F64)

    A = torch.randn(S, S, generator=g, dtype=F64)
    m = LinearDynamicalSystem.from_params(
        transition_matrix=0.9 * A / torch.linalg.matrix_norm(A, 2),
        emission_matrix=torch.randn(D, S, generator=g, dtype=F64),
        transition_cov=spd(S),
        emission_cov=spd(D),
        initial_mean=torch.randn(S, generator=g, dtype=F64),
        initial_cov=spd(S),
        input_matrix=torch.randn(S, U, generator=g, dtype=F64) if U else None,
        feedthrough_matrix=torch.randn(D, U, generator=g, dtype=F64) if U else None,
    )
    return m.to(dtype)


def _mask(B, T, D, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, T, D, generator=g) > 0.25
    mask[:, 0] = False  # the first step missing
    mask[:, -1] = False  # and the last
    if T > 12:
        mask[:, 5:11] = False  # a run of fully missing steps
        mask[0, 12:, 0] = False  # one coordinate missing from there on
    return mask


@pytest.mark.parametrize(
    "B, T, S, D, U",
    [(1, 1, 2, 1, 0), (1, 40, 3, 2, 0), (1, 300, 4, 2, 1), (3, 60, 2, 3, 1), (2, 25, 1, 1, 0)],
)
def test_kalman_kernels_equal_the_numpy_loop_under_masks(B, T, S, D, U, reference):
    model = _lds(S, D, U, seed=T + S)
    u = torch.randn(B, T, U, dtype=F64, generator=torch.Generator().manual_seed(7)) if U else None
    y = model.sample(B, T, inputs=u, generator=T).observations
    mask = _mask(B, T, D, seed=T).to(F64)
    y = y * mask
    p = model.params
    with torch.no_grad():
        assert _loops.lds_ready(y, B, B)
        res = [
            kalman_filter(p, y, u, mask=mask, steady_state=False, burn=3),
            rts_smoother(p, y, u, mask=mask, steady_state=False),
            kalman_filter(p, y, u, steady_state=False),  # no mask: one covariance sequence
            rts_smoother(p, y, u),
        ]
        with reference:
            ref = [
                kalman_filter(p, y, u, mask=mask, steady_state=False, burn=3),
                rts_smoother(p, y, u, mask=mask, steady_state=False),
                kalman_filter(p, y, u, steady_state=False),
                rts_smoother(p, y, u),
            ]
    for r1, r2 in zip(res, ref):
        for a, b in zip(r1, r2):
            _close(a, b)
    # the torch recursion (taken with autograd on) agrees too
    torch_f = kalman_filter(p, y, u, mask=mask, steady_state=False, burn=3)
    for a, b in zip(res[0], torch_f):
        _close(a, b.detach())


def test_kalman_kernel_em_statistics_equal_the_numpy_loop(reference):
    model = _lds(3, 2, 1, seed=4)
    u = torch.randn(1, 200, 1, dtype=F64, generator=torch.Generator().manual_seed(8))
    y = model.sample(1, 200, inputs=u, generator=9).observations
    mask = _mask(1, 200, 2, seed=10)
    fits = []
    for off in (False, True):
        if off:
            reference.__enter__()
        m = _lds(3, 2, 1, seed=4)
        m.fit(y, inputs=u, mask=mask, n_iter=5, tol=0.0, rtol=0.0)
        m2 = _lds(3, 2, 1, seed=4)
        m2.fit(y[0], inputs=u[0], n_iter=5, tol=0.0, rtol=0.0)  # unmasked, one sequence
        fits.append((torch.tensor(m.history_), *m.params, torch.tensor(m2.history_), *m2.params))
        if off:
            reference.__exit__()
    for a, b in zip(*fits):
        _close(a, b)


def test_kalman_kernels_in_float32(reference):
    model = _lds(3, 2, seed=2, dtype=F32)
    y = model.sample(1, 100, generator=3).observations
    mask = _mask(1, 100, 2, seed=4)
    with torch.no_grad():
        f, s = model.filter(y, mask=mask), model.smooth(y, mask=mask)
        with reference:
            fr, sr = model.filter(y, mask=mask), model.smooth(y, mask=mask)
    for a, b in zip((*f, *s), (*fr, *sr)):
        assert a.dtype == F32
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_kalman_kernel_reports_non_positive_definite_covariances_as_the_numpy_loop(reference):
    p = _lds(2, 2, seed=1).params
    y = torch.zeros(1, 10, 2, dtype=F64)
    mask = torch.ones(1, 10, 2, dtype=F64)
    mask[0, 3] = 0.0
    bad_r = p._replace(emission_cov=-torch.eye(2, dtype=F64))
    msgs = []
    for off in (False, True):
        if off:
            reference.__enter__()
        with torch.no_grad(), pytest.raises(InputError) as e:
            kalman_filter(bad_r, y, mask=mask, steady_state=False)
        msgs.append(str(e.value))
        # a predicted covariance that is not positive definite (Q negative, R large)
        bad_q = LDSParams(
            torch.zeros(2, 2, dtype=F64),
            p.emission_matrix,
            -0.1 * torch.eye(2, dtype=F64),
            10.0 * torch.eye(2, dtype=F64),
            p.initial_mean,
            p.initial_cov,
            p.input_matrix,
            p.feedthrough_matrix,
        )
        with torch.no_grad(), pytest.raises(InputError, match="transition_cov"):
            rts_smoother(bad_q, y, mask=mask, steady_state=False)
        if off:
            reference.__exit__()
    assert msgs[0] == msgs[1]
    assert "time step 0" in msgs[0]


# ------------------------------------------------------- the switch: RNNLAB_NUMBA=0


_SCRIPT = r"""
import json, sys, warnings
import torch
warnings.simplefilter("ignore")
from rnnlab.classic import HMM, LinearDynamicalSystem, _loops
F64 = torch.float64
g = torch.Generator().manual_seed(0)
h = HMM(2, emission="gaussian", obs_dim=1, covariance="diag", dtype=F64)
x = torch.randn(1, 1500, 1, generator=g, dtype=F64)
x = x + 2.0 * (torch.rand(1, 1500, 1, generator=g) > 0.5)
h.fit(x, n_iter=6, tol=0.0, rtol=0.0)
ll, post = h.score_samples(x)
lds = LinearDynamicalSystem(2, 1, dtype=F64)
y = torch.cumsum(torch.randn(1, 300, 1, generator=g, dtype=F64), 1)
mask = torch.rand(1, 300, generator=g) > 0.2
lds.fit(y, mask=mask, n_iter=6, tol=0.0, rtol=0.0)
sm = lds.smooth(y, mask=mask)
json.dump({
    "kernels": _loops._hmm_forward_kernel is not None,
    "hmm_history": h.history_, "hmm_ll": ll.tolist(), "hmm_post": post.flatten().tolist(),
    "hmm_path": h.predict(x).flatten().tolist(),
    "lds_history": lds.history_, "lds_means": sm.means.flatten().tolist(),
    "lds_score": lds.score(y, mask=mask),
}, sys.stdout)
"""


def test_results_equal_with_rnnlab_numba_off():
    runs = {}
    for flag in ("0", "1"):
        env = {**os.environ, "RNNLAB_NUMBA": flag}
        out = subprocess.run(
            [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        runs[flag] = json.loads(out.stdout)
    off, on = runs["0"], runs["1"]
    assert not off["kernels"] and on["kernels"]
    assert off["hmm_path"] == on["hmm_path"]
    for key in ("hmm_history", "hmm_ll", "hmm_post", "lds_history", "lds_means"):
        torch.testing.assert_close(
            torch.tensor(on[key]), torch.tensor(off[key]), rtol=1e-10, atol=1e-10
        )
    assert math.isclose(on["lds_score"], off["lds_score"], rel_tol=1e-12)
