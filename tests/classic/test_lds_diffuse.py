"""Exact diffuse initialisation (Koopman 1997; Durbin & Koopman 2012, ch. 5): the Nile
local-level log-likelihood in closed form, and the large-kappa limit (computed in
float64 with the ordinary filter, its diffuse scalars' terms left out) converging to the
exact value for a 2-D state and for a step that is only partly diffuse."""

from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.classic.lds import LinearDynamicalSystem, diffuse_log_likelihood

DT = torch.float64


def _nile():
    statsmodels = pytest.importorskip("statsmodels")
    path = Path(statsmodels.__file__).parent / "datasets" / "nile" / "nile.csv"
    return np.loadtxt(path, delimiter=",", skiprows=1)[:, 1]


def _large_kappa(A, C, Q, R, y, kappa, n_diffuse):
    """Univariate Kalman filter (diagonal R) from N(0, kappa I), the first n_diffuse
    scalar terms left out: a float64 oracle whose limit is the exact diffuse value."""
    S = A.shape[0]
    a, P = np.zeros(S), kappa * np.eye(S)
    ll, k = 0.0, 0
    for t in range(len(y)):
        for i in range(C.shape[0]):
            c = C[i]
            F = c @ P @ c + R[i, i]
            v = y[t, i] - c @ a
            K = P @ c / F
            a, P = a + K * v, P - np.outer(K, P @ c)
            if k >= n_diffuse:
                ll -= 0.5 * (np.log(2 * np.pi) + np.log(F) + v * v / F)
            k += 1
        a, P = A @ a, A @ P @ A.T + Q
    return ll


def test_nile_exact_diffuse_log_likelihood():
    y = _nile()
    m = LinearDynamicalSystem.from_params(
        transition_cov=[[1469.1]], emission_cov=[[15099.0]], diffuse=True
    )
    # closed form of the local level: a_2 = y_1, P_2 = s_eps + s_eta, then the filter
    e, h = 15099.0, 1469.1
    a, P, want = y[0], e + h, 0.0
    for t in range(1, len(y)):
        F, v = P + e, y[t] - a
        want -= 0.5 * (np.log(2 * np.pi) + np.log(F) + v * v / F)
        a, P = a + P / F * v, P * (1 - P / F) + h
    got = m.score(y[:, None])
    assert got == pytest.approx(want, abs=1e-9)
    assert got == pytest.approx(-632.54, abs=0.01)  # Durbin & Koopman (2012), 2.10


@pytest.mark.parametrize("case", ["trend", "partly_diffuse_step"])
def test_exact_diffuse_is_the_large_kappa_limit(case):
    g = np.random.RandomState(3)
    if case == "trend":  # local linear trend: 2 diffuse states, 1 observation a step
        A = np.array([[1.0, 1.0], [0.0, 1.0]])
        C = np.array([[1.0, 0.0]])
        Q, R = np.diag([0.3, 0.05]), np.array([[0.7]])
        n_diffuse = 2
    else:  # 1 state, 2 observations: the first scalar is diffuse, the second is not
        A, C = np.array([[0.95]]), np.array([[1.0], [0.5]])
        Q, R = np.array([[0.2]]), np.diag([0.4, 0.9])
        n_diffuse = 1
    y = g.randn(40, C.shape[0]).cumsum(0)
    m = LinearDynamicalSystem.from_params(
        transition_matrix=A, emission_matrix=C, transition_cov=Q, emission_cov=R, diffuse=True
    )
    exact = m.score(y)
    errs = [abs(_large_kappa(A, C, Q, R, y, k, n_diffuse) - exact) for k in (1e3, 1e4, 1e5)]
    assert errs[2] < errs[1] < errs[0]  # converges to the exact value
    assert 5.0 < errs[1] / errs[2] < 20.0  # at the rate 1/kappa
    assert errs[2] < 1e-4


def test_exact_diffuse_with_mask_equals_the_truncated_problem():
    """A step missing entirely leaves the exact diffuse likelihood as if it were absent
    from the sequence only through the dynamics: check against the large-kappa filter
    with the same mask (its diffuse scalars' terms left out)."""
    A, C = np.array([[0.9]]), np.array([[1.0]])
    Q, R = np.array([[0.5]]), np.array([[1.0]])
    y = np.random.RandomState(0).randn(30, 1)
    mask = np.ones(30, dtype=bool)
    mask[:3] = False  # the diffuse period starts at step 3
    m = LinearDynamicalSystem.from_params(
        transition_matrix=A, emission_matrix=C, transition_cov=Q, emission_cov=R, diffuse=True
    )
    exact = m.score(y, mask=mask)
    # with the first three steps missing, the state at step 3 is still diffuse: the
    # same as the diffuse problem on y[3:]
    assert exact == pytest.approx(m.score(y[3:]), abs=1e-10)
    p = m.params
    direct = diffuse_log_likelihood(p, torch.as_tensor(y[None]), None, None)
    assert float(direct[0]) == pytest.approx(m.score(y), abs=1e-12)
