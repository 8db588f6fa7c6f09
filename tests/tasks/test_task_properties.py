"""Property-based tests (hypothesis) of the task generators and their scoring functions.

Each drawn input either raises an InputError whose message starts with the name of the
offending argument, or gives a result equal to an oracle: the task's exact ``solve()``,
the targets, or a brute-force Python loop over sequences and steps. The default run
draws a few examples per property (derandomised, so CI is repeatable); the copies marked
``slow`` (``make test-slow``) draw many more.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlab.errors import InputError
from rnnlab.tasks import (
    adding,
    anbn,
    binary_addition,
    copying,
    long_lag,
    parity,
    permutation,
    reber,
    temporal_order,
    toy,
    two_sequence,
    xor,
)

D = torch.float64


def both(fast: int, slow: int, **strategies):
    """The property as two tests: ``fast`` examples (default run) and ``slow`` examples
    (marked slow)."""

    def deco(fn):
        common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
        quick = settings(max_examples=fast, derandomize=True, **common)(given(**strategies)(fn))
        many = settings(max_examples=slow, **common)(given(**strategies)(fn))
        return quick, pytest.mark.slow(many)

    return deco


# an argument: mostly small integers (valid or not), sometimes a value of the wrong type
ARG = st.one_of(st.integers(-3, 24), st.sampled_from([1.5, "3", None, True, float("nan"), 2**70]))


def _is_int(v, lo, hi=2**31 - 1):
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _spec(name, a, b):
    """The first invalid argument of generator ``name`` called with (a, b), or None: the
    documented contract, written out independently of the code."""
    if not _is_int(a, 1):
        return "batch_size"
    rules = {
        "adding": ("T", _is_int(b, 10)),
        "adding_modern": ("T", _is_int(b, 2)),
        "multiplication": ("T", _is_int(b, 10)),
        "xor": ("T", _is_int(b, 10)),
        "parity": ("min_length", _is_int(b, 1)),
        "binary_addition": ("n_bits", _is_int(b, 1)),
        "copying": ("T", _is_int(b, 1)),
        "permutation": ("T", _is_int(b, 3)),
        "long_lag_2a": ("p", _is_int(b, 2)),
        "long_lag_2b": ("p", _is_int(b, 2)),
        "long_lag_2c": ("q", _is_int(b, 0)),
        "anbn": ("n_max", _is_int(b, 1)),
        "two_sequence": ("T", _is_int(b, 4)),  # N = 3
        "toy_sum": ("T", _is_int(b, 1)),
        "toy_larger": ("T", _is_int(b, 1)),
        "reber": (None, True),
        "memorization": ("T", _is_int(b, 11)),
    }
    arg, ok = rules[name]
    return None if ok else arg


def _call(name, a, b, seed):
    kw = dict(seed=seed, dtype=D)
    return {
        "adding": lambda: adding.generate(a, b, **kw),
        "adding_modern": lambda: adding.generate(a, b, convention="modern", **kw),
        "multiplication": lambda: adding.multiplication(a, b, **kw),
        "xor": lambda: xor.generate(a, b, **kw),
        "parity": lambda: parity.generate(a, b, per_step=seed % 2 == 0, **kw),
        "binary_addition": lambda: binary_addition.generate(a, b, **kw),
        "copying": lambda: copying.generate(a, b, **kw),
        "permutation": lambda: permutation.generate(a, b, **kw),
        "long_lag_2a": lambda: long_lag.generate_2a(a, b, **kw),
        "long_lag_2b": lambda: long_lag.generate_2b(a, b, **kw),
        "long_lag_2c": lambda: long_lag.generate_2c(a, b, 3, **kw),
        "anbn": lambda: anbn.generate(a, b, **kw),
        "two_sequence": lambda: two_sequence.generate(a, b, 3, **kw),
        "toy_sum": lambda: toy.sum_inputs(a, b, **kw),
        "toy_larger": lambda: toy.larger_total(a, b, **kw),
        "reber": lambda: reber.generate(a, embedded=seed % 2 == 0, **kw),
        "memorization": lambda: copying.memorization(a, b, "5bit", **kw),
    }[name]()


def _check_oracle(name, batch, seed):
    """The exact solver reproduces the targets and passes the task's own rule."""
    if name in ("adding", "adding_modern", "multiplication"):
        conv = {"adding": "1997", "adding_modern": "modern"}.get(name, "multiplication")
        exact = adding.solve(batch, conv)
        assert torch.allclose(exact, batch.targets, atol=1e-12)
        assert adding.error_rate(exact, batch) == 0.0
    elif name == "xor":
        assert (
            torch.equal(xor.solve(batch), batch.targets)
            and xor.error_rate(batch.targets, batch) == 0
        )
    elif name == "parity":
        exact = parity.solve(batch)
        assert torch.equal(exact, batch.targets) and parity.error_rate(exact, batch) == 0.0
    elif name == "binary_addition":
        exact = binary_addition.solve(batch)
        assert torch.equal(exact, batch.targets)
        a = binary_addition.from_bits(batch.inputs[:, :-3, 0])
        b = binary_addition.from_bits(batch.inputs[:, :-3, 1])
        assert binary_addition.decode_sum(exact) == [x + y for x, y in zip(a, b)]
    elif name in ("copying", "memorization"):
        logits = copying.solve(batch)
        assert copying.error_rate(logits, batch) == 0.0
    elif name == "permutation":
        assert permutation.error_rate(permutation.solve(batch), batch) == 0.0
    elif name in ("long_lag_2a", "long_lag_2b"):
        exact = long_lag.solve_2ab(batch)
        assert long_lag.error_rate(long_lag.is_correct_2ab(exact, batch)) == 0.0
    elif name == "long_lag_2c":
        exact = long_lag.solve_2c(batch)
        assert torch.equal(exact, batch.targets)
    elif name == "anbn":
        assert torch.equal(anbn.solve(batch), batch.targets)
    elif name == "two_sequence":
        exact = two_sequence.solve(batch, 3, "3a")
        assert two_sequence.error_rate(exact, batch) == 0.0
    elif name == "toy_sum":
        assert torch.allclose(toy.linear_sum_net(batch.inputs), batch.targets)
    elif name == "toy_larger":
        exact = toy.comparison_net(batch.inputs)[:, -1]
        assert torch.equal(exact, batch.targets)
    elif name == "reber":
        sol = reber.solve(batch)
        assert torch.equal(sol > 0, batch.legal > 0.5) and reber.error_rate(sol, batch) == 0.0
    # shared layout: zero inputs past each length, mask only inside it
    B, T = batch.inputs.shape[:2]
    valid = torch.arange(T)[None, :] < batch.lengths[:, None]
    assert not bool((batch.mask & ~valid).any())
    assert bool((batch.inputs[~valid] == 0).all())


NAMES = [
    "adding",
    "adding_modern",
    "multiplication",
    "xor",
    "parity",
    "binary_addition",
    "copying",
    "permutation",
    "long_lag_2a",
    "long_lag_2b",
    "long_lag_2c",
    "anbn",
    "two_sequence",
    "toy_sum",
    "toy_larger",
    "reber",
    "memorization",
]


def _generators(name, a, b, seed):
    a = a if not _is_int(a, 1) else min(a, 5)  # keep valid batches small
    bad = _spec(name, a, b)
    if bad is not None:
        with pytest.raises(InputError) as exc:
            _call(name, a, b, seed)
        assert str(exc.value).startswith(bad), (bad, str(exc.value))
        return
    batch = _call(name, a, b, seed)
    assert batch.inputs.shape[0] == a
    _check_oracle(name, batch, seed)


test_generators, test_generators_slow = both(
    60, 3000, name=st.sampled_from(NAMES), a=ARG, b=ARG, seed=st.integers(0, 2**16)
)(_generators)


# ------------------------------------------------------------------ scoring against brute force
def _brute_end_abs(pred_end, targets, thr):
    return [all(abs(p - t) < thr for p, t in zip(pr, tg)) for pr, tg in zip(pred_end, targets)]


def _adding_scoring(B, shape_kind, seed):
    """adding.loss / is_correct: a (B, 1), (B,) or (B, T, 1) prediction gives the brute-force
    MSE and ABS(0.04) verdict; any other shape is refused naming pred."""
    g = torch.Generator().manual_seed(seed)
    batch = adding.generate(B, 12, seed=seed, dtype=D)
    T = batch.inputs.shape[1]
    exact = adding.solve(batch)
    noise = (torch.rand(B, 1, generator=g, dtype=D) - 0.5) * 0.1
    end = exact + noise
    preds = {0: end, 1: end[:, 0], 2: torch.randn(B, T, 1, generator=g, dtype=D)}
    pred = preds[shape_kind]
    if shape_kind == 2:
        pred[torch.arange(B), batch.lengths - 1] = end
    want_loss = sum((float(e) - float(t)) ** 2 for e, t in zip(end[:, 0], batch.targets[:, 0])) / B
    assert math.isclose(float(adding.loss(pred, batch)), want_loss, rel_tol=1e-9, abs_tol=1e-15)
    want = _brute_end_abs(end.tolist(), batch.targets.tolist(), 0.04)
    assert adding.is_correct(pred, batch).tolist() == want
    for wrong in (torch.zeros(B, 2, dtype=D), torch.zeros(B, T + 1, 1, dtype=D)):
        with pytest.raises(InputError, match="^pred"):
            adding.loss(wrong, batch)


test_adding_scoring, test_adding_scoring_slow = both(
    25, 1000, B=st.integers(1, 4), shape_kind=st.integers(0, 2), seed=st.integers(0, 2**16)
)(_adding_scoring)


def _temporal_order_scoring(B, classes, K, seed):
    """temporal_order: K outputs for a K-class batch give the brute-force cross-entropy and
    both rules; any other K is refused naming pred."""
    g = torch.Generator().manual_seed(seed)
    batch = temporal_order.generate(B, classes, seed=seed, dtype=D)
    logits = torch.randn(B, K, generator=g, dtype=D)
    if K != classes:
        for fn in (temporal_order.loss, temporal_order.is_correct):
            with pytest.raises(InputError, match="^pred"):
                fn(logits, batch)
        return
    y = batch.targets.tolist()
    ce = 0.0
    for b in range(B):
        row = logits[b].tolist()
        m = max(row)
        ce += -(row[y[b]] - m - math.log(sum(math.exp(v - m) for v in row)))
    assert math.isclose(float(temporal_order.loss(logits, batch)), ce / B, rel_tol=1e-9)
    arg = [max(range(K), key=lambda k: logits[b, k].item()) == y[b] for b in range(B)]
    assert temporal_order.is_correct(logits, batch, rule="argmax").tolist() == arg
    onehot = F.one_hot(batch.targets, K).tolist()
    absr = [all(abs(p - t) < 0.3 for p, t in zip(logits[b].tolist(), onehot[b])) for b in range(B)]
    assert temporal_order.is_correct(logits, batch).tolist() == absr


test_temporal_order_scoring, test_temporal_order_scoring_slow = both(
    20,
    600,
    B=st.integers(1, 3),
    classes=st.sampled_from([4, 8]),
    K=st.integers(3, 9),
    seed=st.integers(0, 2**16),
)(_temporal_order_scoring)


def _reber_scoring(B, flip, seed):
    """reber.is_correct (1997 rule) against a brute-force check of every scored step; the
    exact solver with ``flip`` outputs perturbed is judged step by step."""
    g = torch.Generator().manual_seed(seed)
    batch = reber.generate(B, embedded=seed % 3 != 0, seed=seed, dtype=D)
    pred = reber.solve(batch) + 0.01 * torch.rand(batch.legal.shape, generator=g, dtype=D)
    _, T, V = pred.shape
    for _ in range(flip):
        b, t = int(torch.randint(B, (1,), generator=g)), int(torch.randint(T, (1,), generator=g))
        pred[b, t, int(torch.randint(V, (1,), generator=g))] = float(torch.rand(1, generator=g))
    want = []
    for b in range(B):
        ok = True
        for t in range(int(batch.lengths[b])):
            legal = [v for v in range(V) if batch.legal[b, t, v] > 0.5]
            illegal = [v for v in range(V) if batch.legal[b, t, v] <= 0.5]
            lo = min(pred[b, t, v].item() for v in legal)
            hi = max((pred[b, t, v].item() for v in illegal), default=-math.inf)
            ok = ok and lo > hi
        want.append(ok)
    assert reber.is_correct(pred, batch).tolist() == want
    with pytest.raises(InputError, match="^pred"):
        reber.is_correct(pred[..., :6], batch)


test_reber_scoring, test_reber_scoring_slow = both(
    20, 600, B=st.integers(1, 3), flip=st.integers(0, 3), seed=st.integers(0, 2**16)
)(_reber_scoring)


def _copy_scoring(B, T, V, seed):
    """copying.loss / is_correct with V outputs: brute-force mean cross-entropy and the
    per-step argmax rule when V = 9; any other V is refused naming logits."""
    g = torch.Generator().manual_seed(seed)
    batch = copying.generate(B, T, seed=seed, dtype=D)
    L = batch.inputs.shape[1]
    logits = torch.randn(B, L, V, generator=g, dtype=D)
    if V != copying.COPY_OUTPUT_SIZE:
        with pytest.raises(InputError, match="^logits"):
            copying.loss(logits, batch)
        return
    total = 0.0
    for b in range(B):
        for t in range(L):
            row = logits[b, t].tolist()
            m = max(row)
            lse = m + math.log(sum(math.exp(v - m) for v in row))
            total += lse - row[int(batch.targets[b, t])]
    assert math.isclose(float(copying.loss(logits, batch)), total / (B * L), rel_tol=1e-9)
    want = [all(logits[b, t].argmax() == batch.targets[b, t] for t in range(L)) for b in range(B)]
    assert copying.is_correct(logits, batch).tolist() == want


test_copy_scoring, test_copy_scoring_slow = both(
    15,
    400,
    B=st.integers(1, 3),
    T=st.integers(1, 6),
    V=st.integers(8, 10),
    seed=st.integers(0, 2**16),
)(_copy_scoring)


def _parity_scoring(B, n, per_step, seed):
    """parity (running or final): brute-force MSE over the scored steps and the 0.5 rule."""
    g = torch.Generator().manual_seed(seed)
    batch = parity.generate(B, 1, n, per_step=per_step, seed=seed, dtype=D)
    T = batch.inputs.shape[1]
    pred = torch.rand(B, T, 1, generator=g, dtype=D)
    L = batch.lengths.tolist()
    if per_step:
        err = [
            (pred[b, t, 0].item() - batch.targets[b, t, 0].item()) ** 2
            for b in range(B)
            for t in range(L[b])
        ]
        want_loss = sum(err) / len(err)
        ok = [
            all(
                abs(pred[b, t, 0].item() - batch.targets[b, t, 0].item()) < 0.5 for t in range(L[b])
            )
            for b in range(B)
        ]
    else:
        ends = [pred[b, L[b] - 1, 0].item() for b in range(B)]
        want_loss = sum((e - batch.targets[b, 0].item()) ** 2 for b, e in enumerate(ends)) / B
        ok = [abs(e - batch.targets[b, 0].item()) < 0.5 for b, e in enumerate(ends)]
    assert math.isclose(float(parity.loss(pred, batch)), want_loss, rel_tol=1e-9)
    assert parity.is_correct(pred, batch).tolist() == ok
    with pytest.raises(InputError, match="^pred"):
        parity.loss(pred.expand(B, T, 2), batch)


test_parity_scoring, test_parity_scoring_slow = both(
    20,
    600,
    B=st.integers(1, 4),
    n=st.integers(1, 7),
    per_step=st.booleans(),
    seed=st.integers(0, 2**16),
)(_parity_scoring)
