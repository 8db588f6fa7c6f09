"""The Martens & Sutskever (2011) generators: documented properties on many samples,
the scoring rules, bad input."""

import pytest
import torch

from rnnlab.errors import InputError
from rnnlab.tasks import pathological as P

N = 4000


def _marks(batch):
    """Positions of the +1 marks and of the -1 markers, per row."""
    m = batch.inputs[..., 1]
    return [torch.nonzero(r == 1).flatten().tolist() for r in m], [
        torch.nonzero(r == -1).flatten().tolist() for r in m
    ]


@pytest.mark.parametrize("T", [10, 50, 100, 200])
@pytest.mark.parametrize("name", ["addition", "multiplication"])
def test_marked_pairs_properties(name, T):
    f = T / 100
    b = P.PROBLEMS[name].generate(N, T, seed=T)
    L = b.lengths
    assert int(L.min()) >= int(100 * f) and int(L.max()) <= max(int(100 * f), int(110 * f) - 1)
    if T >= 100:  # every length of [100f, 110f) occurs
        assert set(L.tolist()) == set(range(int(100 * f), int(110 * f)))
    values = b.inputs[..., 0]
    assert float(values.min()) >= 0 and float(values.max()) < 1
    plus, minus = _marks(b)
    for i in range(0, N, 7):
        p1, p2 = plus[i]
        assert max(1, int(f)) <= p1 <= max(1, int(10 * f) - 1)
        assert p1 < p2 <= max(p1 + 1, int(50 * f) - 1) and p2 >= int(10 * f)
        assert minus[i] == [0, int(L[i]) - 3]
        x, y = float(values[i, p1]), float(values[i, p2])
        want = x + y if name == "addition" else x * y
        assert float(b.targets[i, 0]) == pytest.approx(want)
        assert float(values[i, int(L[i]) :].abs().sum()) == 0  # zero past the length
    # the mask is the last valid step
    assert torch.equal(b.mask.nonzero()[:, 1], L - 1)


def test_addition_mean_target_and_seeding():
    a = P.addition(64, 100, seed=3)
    m = P.addition(64, 100, target="mean", seed=3)
    assert torch.allclose(m.targets, a.targets / 2)
    assert torch.equal(a.inputs, P.addition(64, 100, seed=3).inputs)
    g = torch.Generator().manual_seed(0)
    assert not torch.equal(P.addition(64, 100, generator=g).inputs[:, :100],
                           P.addition(64, 100, generator=g).inputs[:, :100])  # fmt: skip


def test_regression_rule_is_greater_than_004():
    b = P.addition(5, 50, seed=0, dtype=torch.float64)
    err = torch.tensor([0.0, 0.0399, -0.0399, 0.0401, -0.05], dtype=torch.float64)[:, None]
    ok = P.regression_correct(b.targets + err, b)
    assert ok.tolist() == [True, True, True, False, False]
    prob = P.PROBLEMS["addition"]
    assert prob.error_rate(b.targets + err, b) == pytest.approx(0.4)
    # the per-step layout reads the last valid step
    full = torch.zeros(5, b.inputs.shape[1], 1, dtype=b.targets.dtype)
    full[torch.arange(5), b.lengths - 1] = b.targets
    assert prob.error_rate(full, b) == 0.0
    assert float(prob.loss(full, b)) == 0.0


@pytest.mark.parametrize("T", [10, 50, 100, 150])
@pytest.mark.parametrize("symbols", [2, 3])
def test_temporal_order_properties(symbols, T):
    f = T / 100
    b = P.temporal_order(N, T, symbols, seed=symbols + T)
    K = 2**symbols
    assert P.PROBLEMS[f"temporal{symbols}"].output_size == K
    sym = b.inputs.argmax(-1)
    windows = P.temporal_windows(T, symbols)
    spans = ((1, 10), (40, 50)) if symbols == 2 else ((1, 10), (30, 40), (50, 60))
    if T >= 100:  # the windows as published, scaled (both ends included)
        assert windows == tuple((int(a * f), int(c * f)) for a, c in spans)
    counts = torch.bincount(b.targets, minlength=K)
    assert len(counts) == K and int(counts.min()) > 0.8 * N / K  # classes balanced
    for i in range(0, N, 11):
        L = int(b.lengths[i])
        s = sym[i, :L].tolist()
        assert s[0] == 0 and s[-1] == 1 and b.inputs[i, L:].sum() == 0
        pos = [t for t, v in enumerate(s) if v >= 6]
        assert len(pos) == symbols
        label = 0
        for t, (lo, hi) in zip(pos, windows, strict=True):
            assert lo <= t <= hi
            label = 2 * label + (s[t] - 6)
        assert int(b.targets[i]) == label
        assert all(2 <= v <= 5 for t, v in enumerate(s[1:-1], 1) if t not in pos)
    logits = torch.nn.functional.one_hot(b.targets, K).to(b.inputs.dtype) * 5
    assert P.PROBLEMS[f"temporal{symbols}"].error_rate(logits, b) == 0.0
    assert P.PROBLEMS[f"temporal{symbols}"].error_rate(logits.roll(1, -1), b) == 1.0


def test_delegated_problems_keep_their_conventions():
    x = P.PROBLEMS["xor"].generate(N, 100, seed=1)
    assert int(x.lengths.min()) >= 50 and int(x.lengths.max()) <= 54
    plus, _ = _marks(x)
    assert all(1 <= p[0] <= 9 and 15 <= p[1] <= 24 for p in plus)
    bits = x.inputs[..., 0]
    want = torch.tensor([float(bits[i, p[0]] != bits[i, p[1]]) for i, p in enumerate(plus)])
    assert torch.equal(x.targets[:, 0].double(), want.double())
    perm = P.PROBLEMS["permutation"].generate(500, 100, seed=2)
    first = perm.inputs[:, 0].argmax(-1)
    assert set(first.tolist()) == {0, 1} and torch.equal(perm.targets[:, -1], first)
    assert int(perm.inputs[:, 1:].argmax(-1).min()) >= 2
    for name, n, K in (("memorization5", 5, 2), ("memorization20", 10, 5)):
        prob = P.PROBLEMS[name]
        m = prob.generate(300, 100, seed=3)
        assert m.inputs.shape[-1] == prob.input_size == K + 2
        assert torch.equal(m.targets[:, -n:], m.inputs[:, :n].argmax(-1))
        assert int(m.mask.sum(1).unique()) == n and bool(m.mask[:, -n:].all())
        assert m.inputs[:, 100 - n - 1].argmax(-1).eq(K + 1).all()  # the trigger


def test_bad_input():
    with pytest.raises(InputError, match="T"):
        P.addition(4, 9)
    with pytest.raises(InputError, match="batch_size"):
        P.multiplication(0, 100)
    with pytest.raises(InputError, match="target"):
        P.addition(4, 100, target="product")
    with pytest.raises(InputError, match="symbols"):
        P.temporal_order(4, 100, symbols=4)
    with pytest.raises(InputError, match="threshold"):
        P.regression_correct(torch.zeros(4, 1), P.addition(4, 20, seed=0), threshold=-1)
    with pytest.raises(InputError, match="name"):
        P.get("adding")
    b = P.addition(4, 20, seed=0)
    with pytest.raises(InputError, match="pred"):
        P.PROBLEMS["addition"].loss(torch.zeros(3, 1), b)
