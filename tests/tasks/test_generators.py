"""Seeding, shapes and bad input for every task generator."""

import pytest
import torch

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

GENERATORS = {
    "adding-1997": lambda **k: adding.generate(16, T=40, **k),
    "adding-modern": lambda **k: adding.generate(16, T=40, convention="modern", **k),
    "multiplication": lambda **k: adding.multiplication(16, T=40, **k),
    "temporal-4": lambda **k: temporal_order.generate(16, 4, **k),
    "temporal-8": lambda **k: temporal_order.generate(16, 8, **k),
    "temporal-hf": lambda **k: temporal_order.generate(16, 4, convention="hf", T=200, **k),
    "two-sequence-3b": lambda **k: two_sequence.generate(16, 50, 3, variant="3b", **k),
    "two-sequence-3c": lambda **k: two_sequence.generate(16, 50, 1, variant="3c", **k),
    "long-lag-2a": lambda **k: long_lag.generate_2a(16, 20, **k),
    "long-lag-2b": lambda **k: long_lag.generate_2b(16, 20, **k),
    "long-lag-2c": lambda **k: long_lag.generate_2c(16, 30, 20, **k),
    "xor": lambda **k: xor.generate(16, 100, **k),
    "permutation": lambda **k: permutation.generate(16, 30, **k),
    "reber": lambda **k: reber.generate(16, **k),
    "reber-stream": lambda **k: reber.stream(4, 200, **k),
    "anbn": lambda **k: anbn.generate(16, 10, **k),
    "anbncn": lambda **k: anbn.generate(16, 10, with_c=True, **k),
    "parity": lambda **k: parity.generate(16, 5, 20, **k),
    "parity-steps": lambda **k: parity.generate(16, 5, 20, per_step=True, **k),
    "binary-addition": lambda **k: binary_addition.generate(16, 8, **k),
    "copy": lambda **k: copying.generate(16, 30, **k),
    "memorization-20bit": lambda **k: copying.memorization(16, 50, "20bit", **k),
    "toy-sum": lambda **k: toy.sum_inputs(16, 10, **k),
    "toy-larger": lambda **k: toy.larger_total(16, 10, **k),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_seeding_and_layout(name):
    gen = GENERATORS[name]
    a, b, c = gen(seed=1), gen(seed=1), gen(seed=2)
    for x, y in zip(a, b):
        assert torch.equal(x, y)  # same seed, same data
    assert not torch.equal(a.inputs, c.inputs) or not torch.equal(a.targets, c.targets)
    g = torch.Generator().manual_seed(1)
    d, e = gen(generator=g), gen(generator=g)  # a generator advances
    assert torch.equal(d.inputs, a.inputs)
    assert not torch.equal(d.inputs, e.inputs) or not torch.equal(d.targets, e.targets)

    B, T, _ = a.inputs.shape
    assert a.inputs.dtype == torch.get_default_dtype()
    assert a.mask.shape == (B, T) and a.mask.dtype == torch.bool
    assert a.lengths.shape == (B,) and int(a.lengths.max()) == T
    assert a.targets.shape[0] == B
    # nothing scored and no input past a sequence's length
    past = torch.arange(T)[None, :] >= a.lengths[:, None]
    assert not (a.mask & past).any()
    assert (a.inputs[past] == 0).all()
    if a.targets.dim() <= 2 and a.targets.shape[:2] != (B, T):  # end-of-sequence task
        assert torch.equal(a.mask.sum(1), torch.ones(B, dtype=torch.long))
        assert bool(a.mask[torch.arange(B), a.lengths - 1].all())
    f64 = gen(seed=1, dtype=torch.float64) if "stream" not in name else None
    if f64 is not None:
        assert f64.inputs.dtype == torch.float64


def test_adding_1997_markers():
    bat = adding.generate(2000, T=100, seed=0)
    marker = bat.inputs[..., 1]
    L = bat.lengths
    assert int(L.min()) >= 100 and int(L.max()) <= 110
    assert (marker[:, 0] == -1).all()
    assert (marker[torch.arange(2000), L - 1] == -1).all()
    ones = (marker == 1).nonzero()
    n_marks = (marker == 1).sum(1)
    # two marks, except where pair 1 was marked (hidden by the -1, X_1 := 0)
    assert set(n_marks.tolist()) <= {1, 2}
    assert 0 < int((n_marks == 1).sum()) < 2000 * 0.2
    assert int(ones[:, 1].max()) <= 100 // 2 - 2  # both marks in the first T/2 - 1 pairs
    first = torch.stack([(marker[b] == 1).nonzero().min() for b in range(2000)])
    assert int(first.min()) >= 0 and (first < 10).float().mean() > 0.5
    assert float(bat.inputs[..., 0].min()) >= -1 and float(bat.inputs[..., 0].max()) <= 1
    assert float(bat.targets.min()) >= 0 and float(bat.targets.max()) <= 1


def test_modern_adding_baseline_mse():
    bat = adding.generate(20000, T=50, convention="modern", seed=0, dtype=torch.float64)
    mse = float(((bat.targets - 1.0) ** 2).mean())
    assert abs(mse - adding.BASELINE_MSE) < 0.006
    assert abs(adding.BASELINE_MSE - 0.167) < 1e-3
    m = bat.inputs[..., 1]
    assert (m[:, :25].sum(1) == 1).all() and (m[:, 25:].sum(1) == 1).all()


def test_temporal_order_positions():
    bat = temporal_order.generate(500, 8, seed=0)
    sym = bat.inputs.argmax(-1)
    xy = (sym >= 6).nonzero()
    pos = xy[:, 1].view(500, 3)
    for k, (a, b) in enumerate(temporal_order.WINDOWS_1997[8]):
        assert int(pos[:, k].min()) >= a and int(pos[:, k].max()) <= b
    assert (sym[:, 0] == 0).all() and (sym[torch.arange(500), bat.lengths - 1] == 1).all()
    assert set(bat.targets.tolist()) == set(range(8))


def test_long_lag_2c_length():
    bat = long_lag.generate_2c(2000, q=50, p=20, seed=0)
    # b, x|y, q distractors, geometric(0.9) extra ones (mean 9), e
    assert abs(float(bat.lengths.double().mean()) - (50 + 3 + 9)) < 0.6
    assert int(bat.lengths.min()) == 53


def test_reber_strings_are_grammatical_and_distinct_sets():
    train = reber.sample_strings(256, seed=0)
    test = reber.sample_strings(256, seed=1, exclude=set(train))
    assert all(reber.is_valid(s) for s in train + test)
    assert not set(train) & set(test)
    assert min(len(s) for s in train) >= 9
    assert not reber.is_valid("BTBTXSETT") and not reber.is_valid("BTBTXSEPE")
    assert reber.is_valid("BTBTXSETE")


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: adding.generate(4, T=9), "T .*>= 10"),
        (lambda: adding.generate(4, T=1, convention="modern"), "T .*>= 2"),
        (lambda: adding.generate(4, convention="1998"), "'1997', 'modern'"),
        (lambda: adding.generate(0), "batch_size"),
        (lambda: adding.multiplication(4, T=5), "T"),
        (lambda: temporal_order.generate(4, 3), "4 or 8"),
        (lambda: temporal_order.generate(4, 4, convention="hf", T=50), "T .*>= 100"),
        (lambda: two_sequence.generate(4, 3, 3), "at least N"),
        (lambda: two_sequence.generate(4, 10, 0), "N"),
        (lambda: long_lag.generate_2a(4, 1), "p"),
        (lambda: xor.generate(4, 5), "T"),
        (lambda: permutation.generate(4, 2), "T"),
        (lambda: anbn.generate(4, 10, 0), "n_min"),
        (lambda: anbn.encode([3, 0]), "ns: expected"),
        (lambda: anbn.generate(4, 2, 5), "n_max"),
        (lambda: parity.generate(4, 0), "min_length"),
        (lambda: parity.generate(4, 5, 3), "max_length"),
        (lambda: binary_addition.generate(4, 0), "n_bits"),
        (lambda: binary_addition.encode([8], [1], 3), r"\[0, 2\*\*3\)"),
        (lambda: copying.generate(4, 0), "T"),
        (lambda: copying.memorization(4, 20, "20bit"), "21"),
        (lambda: copying.memorization(4, 50, "6bit"), "'5bit', '20bit'"),
        (lambda: copying.memorization(4, 50, "5bit", all_patterns=True), "32"),
        (lambda: toy.sum_inputs(4, 0), "T"),
        (lambda: reber.legal_next("BTXSE"), "embedded Reber"),
    ],
)
def test_bad_parameters(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_generator_and_seed():
    with pytest.raises(TypeError, match="generator"):
        adding.generate(4, generator=3)
    with pytest.raises(TypeError, match="seed"):
        adding.generate(4, seed=1.5)
