"""The shared EM loop (rnnlab.classic._em.run_em): the order of evaluate/update, the
record it leaves on the model, resumption and its warnings, on a one-parameter model
whose EM map is known in closed form."""

import math
import warnings

import pytest
import torch

from rnnlab.classic import HMM, ConvergenceWarning
from rnnlab.classic._em import run_em
from rnnlab.errors import InputError


class _Halving:
    """theta -> theta / 2 each M-step; 'log-likelihood' -theta^2 rises towards 0."""

    def __init__(self, theta=1.0):
        self.theta = theta
        self.calls = []

    def evaluate(self):
        self.calls.append("e")
        return -(self.theta**2), self.theta

    def update(self, cache):
        assert cache == self.theta  # the cache of the evaluation just made
        self.calls.append("m")
        self.theta = cache / 2


def test_run_em_order_record_and_stopping_rule():
    m = _Halving()
    mon = run_em(m, m.evaluate, m.update, n_iter=100, tol=1e-6, rtol=0.0)
    # history_[i] = -(2^-i)^2 = -4^-i; stops at the first i with 3 * 4^-i < 1e-6
    stop = next(i for i in range(1, 100) if 3 * 4.0**-i < 1e-6)
    assert m.history_ == [-(4.0**-i) for i in range(stop + 1)]
    assert m.converged_ and mon.converged
    assert m.n_iter_ == stop  # M-steps taken; the last evaluation only scores
    assert m.calls == ["e", "m"] * stop + ["e"]


def test_run_em_iteration_limit_warns_and_resumes():
    m = _Halving()
    with pytest.warns(ConvergenceWarning, match="iteration limit"):
        run_em(m, m.evaluate, m.update, n_iter=2, tol=0.0, rtol=0.0)
    assert m.n_iter_ == 2 and not m.converged_ and len(m.history_) == 3
    with pytest.warns(ConvergenceWarning, match="iteration limit"):
        run_em(m, m.evaluate, m.update, n_iter=1, tol=0.0, rtol=0.0, resume=True)
    assert m.history_ == [-(4.0**-i) for i in range(4)]  # continued, not restarted


def test_run_em_warns_on_a_decrease_across_resumed_calls():
    class Worse(_Halving):
        def update(self, cache):
            self.theta = cache * 2

    m = Worse()
    m.history_ = []
    with pytest.warns(ConvergenceWarning, match="decreased"):
        run_em(m, m.evaluate, m.update, n_iter=1, tol=0.0, rtol=0.0, resume=True)


def test_run_em_rejects_bad_settings_and_nonfinite_scores():
    m = _Halving()
    with pytest.raises(InputError, match="n_iter"):
        run_em(m, m.evaluate, m.update, n_iter=0, tol=0.0, rtol=0.0)
    with pytest.raises(InputError, match="tol"):
        run_em(m, m.evaluate, m.update, n_iter=3, tol=-1.0, rtol=0.0)
    m.theta = math.inf
    with pytest.raises(InputError, match="log-likelihood"):
        run_em(m, m.evaluate, m.update, n_iter=3, tol=0.0, rtol=0.0)


def test_hmm_fit_runs_on_the_driver_and_warns_at_the_caller():
    torch.manual_seed(0)
    x = torch.randint(0, 3, (4, 30))
    model = HMM(2, emission="categorical", num_symbols=3)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model.fit(x, n_iter=2, tol=0.0, rtol=0.0)
    hits = [r for r in w if issubclass(r.category, ConvergenceWarning)]
    assert hits and all(r.filename == __file__ for r in hits)
    assert model.n_iter_ == 2 and len(model.history_) == 3
    assert all(b >= a - 1e-9 * abs(a) for a, b in zip(model.history_, model.history_[1:]))
    with pytest.raises(InputError, match="n_iter"):
        HMM(2, emission="categorical", num_symbols=3).fit(x, n_iter=0)
