"""STDP against hand computations: one pair for every pairing scheme and rule, several
spikes (all-to-all against nearest), exact trace decay, bounds, batch reductions."""

import math

import pytest
import torch

from rnnlab.spiking import STDP

D = torch.float64
DT = 0.1


def _run(rule, pre_steps, post_steps, steps, w0, batch=1):
    """Drive the rule with spikes at the given steps; w0 (N_pre, N_post) or (B, ...)."""
    w = w0.clone()
    n_pre, n_post = w.shape[-2:]
    state = rule.initial_state(batch, n_pre, n_post, w)
    d_pre, d_post = rule.decays(DT)
    for t in range(steps):
        s_pre = torch.zeros(batch, n_pre, dtype=torch.bool)
        s_post = torch.zeros(batch, n_post, dtype=torch.bool)
        for b, i, k in pre_steps:
            s_pre[b, i] |= k == t
        for b, j, k in post_steps:
            s_post[b, j] |= k == t
        w, state = rule.step(w, state, s_pre, s_post, d_pre, d_post)
    return w, state


@pytest.mark.parametrize("pairing", ["all-to-all", "nearest"])
@pytest.mark.parametrize("lag", [-250, -37, -1, 0, 1, 37, 250])
def test_one_pair_changes_the_weight_by_the_window(pairing, lag):
    a_p, a_m, tau_p, tau_m = 0.01, 0.012, 16.8, 33.7
    rule = STDP(a_p, a_m, tau_p, tau_m, w_min=0.0, w_max=1.0, pairing=pairing)
    t_pre, t_post = 300, 300 + lag
    w, _ = _run(rule, [(0, 0, t_pre)], [(0, 0, t_post)], 700, torch.full((1, 1), 0.5, dtype=D))
    dt_ms = lag * DT
    hand = a_p * math.exp(-dt_ms / tau_p) if lag >= 0 else -a_m * math.exp(dt_ms / tau_m)
    assert float(w) - 0.5 == pytest.approx(hand, rel=1e-12, abs=1e-15)
    assert float(rule.window(dt_ms)) == pytest.approx(hand, rel=1e-6)


@pytest.mark.parametrize("bounds, rule_name", [("soft", "additive"), ("hard", "multiplicative")])
def test_weight_dependent_pair(bounds, rule_name):
    rule = STDP(0.02, 0.03, 20.0, 20.0, w_min=0.1, w_max=2.1, rule=rule_name, bounds=bounds)
    w0 = torch.full((1, 1), 0.6, dtype=D)
    w, _ = _run(rule, [(0, 0, 10)], [(0, 0, 60)], 100, w0)  # pre 5 ms before post
    f_plus = (2.1 - 0.6) / 2.0 if bounds == "soft" else 1.0
    assert float(w) == pytest.approx(0.6 + 0.02 * f_plus * math.exp(-0.25), rel=1e-12)
    w, _ = _run(rule, [(0, 0, 60)], [(0, 0, 10)], 100, w0)  # post first
    assert float(w) == pytest.approx(0.6 - 0.03 * (0.6 - 0.1) / 2.0 * math.exp(-0.25), rel=1e-12)


def test_pairing_schemes_differ_as_computed_by_hand():
    """pre at 0 and 10 ms, post at 20 ms; then post at 30 and 40 ms, pre at 50 ms."""
    a_p, a_m, tau = 0.01, 0.01, 20.0
    e = math.exp
    pre = [(0, 0, 0), (0, 0, 100), (0, 0, 500)]
    post = [(0, 0, 200), (0, 0, 300), (0, 0, 400)]
    # all-to-all: every earlier spike of the other side counts (pre at 50 ms also pairs
    # with the earlier posts; the posts at 30, 40 ms pair with both early pres)
    all_pot = sum(e(-(tp - tq) * DT / tau) for _, _, tp in post for _, _, tq in pre[:2])
    all_dep = sum(e(-(500 - tp) * DT / tau) for _, _, tp in post)
    # nearest: the trace is reset to 1, only the latest spike of the other side counts
    near_pot = e(-10 / tau) + e(-20 / tau) + e(-30 / tau)
    near_dep = e(-10 / tau)
    for pairing, pot, dep in [("all-to-all", all_pot, all_dep), ("nearest", near_pot, near_dep)]:
        rule = STDP(a_p, a_m, tau, tau, w_min=-10.0, w_max=10.0, pairing=pairing)
        w, _ = _run(rule, pre, post, 600, torch.zeros(1, 1, dtype=D))
        assert float(w) == pytest.approx(a_p * pot - a_m * dep, rel=1e-12)


def test_traces_decay_exactly():
    rule = STDP(tau_plus=7.0, tau_minus=13.0, w_min=-1e9, w_max=1e9)
    _, st = _run(rule, [(0, 0, 0)], [(0, 0, 0)], 1001, torch.zeros(1, 1, dtype=D))
    assert float(st.pre) == pytest.approx(math.exp(-100.0 / 7.0), rel=1e-12)
    assert float(st.post) == pytest.approx(math.exp(-100.0 / 13.0), rel=1e-12)
    euler = (1 - DT / 7.0) ** 1000  # what an Euler trace would give: measurably different
    assert abs(float(st.pre) - euler) / euler > 1e-3


@pytest.mark.parametrize(
    "rule_name, bounds", [("additive", "hard"), ("multiplicative", "hard"), ("additive", "soft")]
)
def test_bounds_hold_under_heavy_spiking(rule_name, bounds):
    g = torch.Generator().manual_seed(0)
    rule = STDP(0.3, 0.3, 20.0, 20.0, w_min=-0.5, w_max=0.5, rule=rule_name, bounds=bounds)
    w = torch.rand(30, 4, generator=g, dtype=D) - 0.5
    st = rule.initial_state(3, 30, 4, w)
    d = rule.decays(DT)
    for _ in range(400):
        s_pre = torch.rand(3, 30, generator=g) < 0.2
        s_post = torch.rand(3, 4, generator=g) < 0.2
        w, st = rule.step(w, st, s_pre, s_post, *d)
        assert float(w.min()) >= -0.5 and float(w.max()) <= 0.5
    assert float(w.max()) - float(w.min()) > 0.1  # it did move


def test_batch_reductions_do_what_they_say():
    """Additive, far from the bounds (so the changes add): mean = mean of the trials
    run alone, sum = their sum, none = each trial alone."""
    g = torch.Generator().manual_seed(1)
    B, n_pre, n_post, steps = 4, 5, 3, 300
    pre = torch.rand(steps, B, n_pre, generator=g) < 0.05
    post = torch.rand(steps, B, n_post, generator=g) < 0.05
    w0 = torch.rand(n_pre, n_post, generator=g, dtype=D)

    def run(reduction, w, b=None):
        rule = STDP(0.01, 0.012, 20.0, 20.0, w_min=-100.0, w_max=100.0, reduction=reduction)
        sl = slice(None) if b is None else slice(b, b + 1)
        st = rule.initial_state(pre[:, sl].shape[1], n_pre, n_post, w)
        for t in range(steps):
            w, st = rule.step(w, st, pre[t, sl], post[t, sl], *rule.decays(DT))
        return w

    alone = torch.stack([run("sum", w0, b) for b in range(B)])  # (B, n_pre, n_post)
    torch.testing.assert_close(run("mean", w0), w0 + (alone - w0).mean(0), rtol=0, atol=1e-13)
    torch.testing.assert_close(run("sum", w0), w0 + (alone - w0).sum(0), rtol=0, atol=1e-13)
    per_trial = run("none", w0.expand(B, -1, -1).clone())
    torch.testing.assert_close(per_trial, alone, rtol=0, atol=1e-13)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"tau_plus": -5.0}, "tau_plus"),
        ({"tau_minus": 0.0}, "tau_minus"),
        ({"a_plus": -0.1}, "a_plus"),
        ({"w_min": 1.0, "w_max": 0.5}, "w_max"),
        ({"pairing": "triplet"}, "pairing"),
        ({"reduction": "max"}, "reduction"),
    ],
)
def test_bad_rule_parameters(kwargs, word):
    with pytest.raises(ValueError, match=word):
        STDP(**kwargs)


def test_dt_longer_than_trace_tau_is_refused():
    with pytest.raises(ValueError, match="dt: expected at most tau_plus"):
        STDP(tau_plus=0.5).decays(1.0)
