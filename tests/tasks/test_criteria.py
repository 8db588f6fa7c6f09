"""Each success criterion accepts an exact solver and rejects a trivial one."""

import torch
import torch.nn.functional as F

from rnnlab.tasks import (
    ST3,
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


def _full(pred_end, batch):
    """Spread an end prediction (B, O) over a (B, T, O) output, garbage elsewhere."""
    B, T, _ = batch.inputs.shape
    out = torch.full((B, T, pred_end.shape[-1]), 7.0, dtype=D)
    out[torch.arange(B), batch.lengths - 1] = pred_end
    return out


def test_adding_1997():
    b = adding.generate(512, T=100, seed=0, dtype=D)
    exact = adding.solve(b, "1997")
    assert torch.allclose(exact, b.targets)
    assert adding.error_rate(exact, b) == 0.0
    assert adding.error_rate(_full(exact, b), b) == 0.0  # reads step lengths - 1
    assert adding.error_rate(exact + 0.039, b) == 0.0
    assert adding.error_rate(exact + 0.041, b) == 1.0
    const = torch.full_like(exact, 0.5)  # the mean
    assert adding.error_rate(const, b) > 0.7
    assert float(adding.loss(exact, b)) == 0.0


def test_adding_modern_and_multiplication():
    b = adding.generate(512, T=60, convention="modern", seed=0, dtype=D)
    exact = adding.solve(b, "modern")
    assert torch.allclose(exact, b.targets) and adding.error_rate(exact, b) == 0.0
    assert adding.error_rate(torch.ones_like(exact), b) > 0.9
    m = adding.multiplication(512, T=100, seed=0, dtype=D)
    exact = adding.solve(m, "multiplication")
    assert torch.allclose(exact, m.targets) and adding.error_rate(exact, m) == 0.0
    assert adding.error_rate(torch.full_like(exact, 0.25), m) > 0.7
    # hidden first-pair marks: the target is X_2 alone
    hidden = (m.inputs[..., 1] == 1).sum(1) == 1
    assert hidden.any()


def test_temporal_order():
    for k in (4, 8):
        b = temporal_order.generate(256, k, seed=k, dtype=D)
        cls = temporal_order.solve(b)
        assert torch.equal(cls, b.targets)
        onehot = F.one_hot(cls, k).to(D)
        assert temporal_order.error_rate(onehot * 0.75 + 0.1, b) == 0.0  # ABS(0.3)
        assert temporal_order.error_rate(onehot * 0.6 + 0.1, b) == 1.0
        assert temporal_order.error_rate(onehot, b, rule="argmax") == 0.0
        const = torch.full((256, k), 1.0 / k, dtype=D)
        assert temporal_order.error_rate(const, b) == 1.0
        assert temporal_order.error_rate(F.one_hot(torch.zeros_like(cls), k).to(D), b) > 0.6


def test_two_sequence():
    for v in ("3a", "3b", "3c"):
        b = two_sequence.generate(512, 100, 3, variant=v, seed=0, dtype=D)
        exact = two_sequence.solve(b, 3, v)
        assert two_sequence.error_rate(exact, b) == 0.0
        assert two_sequence.mean_abs_clean_error(exact, b) < 1e-12
        assert two_sequence.error_rate(torch.full_like(exact, 0.5), b) == 1.0
    b = two_sequence.generate(4000, 100, 1, variant="3c", seed=0, dtype=D)
    assert abs(float((b.targets - b.clean_targets).std()) - 0.32) < 0.02


def test_long_lag():
    for gen in (long_lag.generate_2a, long_lag.generate_2b):
        b = gen(64, 30, seed=0, dtype=D)
        exact = long_lag.solve_2ab(b)
        assert bool(long_lag.is_correct_2ab(exact, b).all())
        assert float(long_lag.loss_2ab(exact, b)) == 0.0 or gen is long_lag.generate_2b
        # a solver that forgets the first symbol gets the last step wrong half the time
        forget = exact.clone()
        forget[:, -1] = 0.5 * (F.one_hot(torch.tensor(29), 31) + F.one_hot(torch.tensor(30), 31))
        assert not bool(long_lag.is_correct_2ab(forget, b).any())
    b = long_lag.generate_2c(256, 40, 20, seed=0, dtype=D)
    exact = long_lag.solve_2c(b)
    assert torch.equal(exact, b.targets) and bool(long_lag.is_correct_2c(exact, b).all())
    assert not bool(long_lag.is_correct_2c(torch.full_like(exact, 0.5), b).any())


def test_xor_permutation():
    b = xor.generate(512, 100, seed=0, dtype=D)
    exact = xor.solve(b)
    assert torch.equal(exact, b.targets) and xor.error_rate(exact, b) == 0.0
    assert 0.3 < xor.error_rate(torch.zeros_like(exact), b) < 0.7
    p = permutation.generate(256, 50, seed=0, dtype=D)
    logits = permutation.solve(p)
    assert permutation.error_rate(logits, p) == 0.0
    assert float(permutation.loss(logits, p)) < 1e-6
    always0 = torch.zeros_like(logits)
    always0[..., 0] = 1.0
    assert 0.3 < permutation.error_rate(always0, p) < 0.7


def test_reber_oracle_and_threshold_rules():
    b = reber.generate(256, seed=0, dtype=D)
    probs = reber.solve(b)  # an independent automaton pass
    assert torch.equal(probs > 0, b.legal > 0.5)
    assert reber.error_rate(probs, b) == 0.0
    # the grammar's own sets, thresholded, pass the 0.5 and continual rules
    assert bool(reber.is_correct_threshold(b.legal, b).all())
    assert bool(reber.continual_step_correct(b.legal, b).all())
    # frequency-of-symbol predictor (no memory) fails
    const = torch.full_like(probs, 1 / 7)
    assert reber.error_rate(const, b) == 1.0
    # a net that forgets the branch: both T and P look legal before the final E
    forget = probs.clone()
    tp = [reber.INDEX["T"], reber.INDEX["P"]]
    close = (b.legal[..., tp].sum(-1) == 1) & (b.inputs[..., reber.INDEX["E"]] == 1)
    forget[close] = 0.0
    forget[..., tp] = torch.where(close[..., None], 0.5, forget[..., tp])
    assert reber.error_rate(forget, b) == 1.0
    # a Reber net that is correct inside the inner string but fails at the end
    assert float(reber.loss(torch.log(probs.clamp_min(1e-9)), b)) > 0


def test_reber_stream():
    s = reber.stream(3, 500, seed=0, dtype=D)
    probs = reber.solve(s)
    assert torch.equal(probs > 0, s.legal > 0.5)
    ok = reber.continual_step_correct(s.legal, s)
    assert torch.equal(reber.symbols_until_error(ok), torch.full((3,), 500))
    wrong = s.legal.clone()
    wrong[1, 123] = 1 - wrong[1, 123]
    counts = reber.symbols_until_error(reber.continual_step_correct(wrong, s))
    assert counts.tolist() == [500, 123, 500]
    # wherever the grammar allows only B, the stream continues with B
    sym = s.inputs.argmax(-1)
    only_b = (s.legal[..., reber.INDEX["B"]] == 1) & (s.legal.sum(-1) == 1)
    assert (sym[:, 1:][only_b[:, :-1]] == reber.INDEX["B"]).all()
    assert int((sym == reber.INDEX["E"]).sum()) > 30


def test_anbn():
    for with_c in (False, True):
        b = anbn.generate(128, 20, with_c=with_c, seed=0, dtype=D)
        counter = anbn.solve(b, with_c)
        assert torch.equal(counter, b.targets * b.mask[..., None])
        assert anbn.error_rate(counter, b) == 0.0
        assert anbn.error_rate(counter * 0.4 + 0.3, b) == 0.0  # 0.7 / 0.3 still right side
        # a net that cannot count: always {a, b} after a, {b, T} after b
        nocount = counter.clone()
        idx_b, idx_end = 2, len(anbn.vocab(with_c)) - 1
        after_b = b.inputs[..., idx_b] == 1
        nocount[after_b] = 0.0
        nocount[..., idx_b] = torch.where(after_b, 1.0, nocount[..., idx_b])
        nocount[..., idx_end] = torch.where(after_b, 1.0, nocount[..., idx_end])
        assert anbn.error_rate(nocount, b) == 1.0
        assert anbn.error_rate(torch.full_like(counter, 0.5), b) == 1.0
    # generalisation bookkeeping
    ns = list(range(1, 31))
    g = anbn.encode(ns, with_c=True, dtype=D)
    acc = anbn.is_correct(anbn.solve(g, True), g)
    assert anbn.max_n_generalised(acc) == 30
    acc[12] = False
    assert anbn.max_n_generalised(acc) == 12
    assert anbn.max_n_generalised([False, True]) == 0
    assert anbn.string(2, True) == "SaabbccT"


def test_parity():
    for per_step in (False, True):
        b = parity.generate(512, 5, 60, per_step=per_step, seed=0, dtype=D)
        exact = parity.solve(b)
        assert parity.error_rate(exact, b) == 0.0
        assert parity.error_rate(0.8 * exact + 0.1, b) == 0.0
        assert parity.error_rate(torch.full_like(exact, 0.0), b) > 0.45
    # exact parity by counting, on 0/1 strings too
    b = parity.generate(256, 10, encoding="01", seed=3, dtype=D)
    odd = (b.inputs[..., 0].sum(1) % 2)[:, None]
    assert torch.equal(odd, b.targets) and torch.equal(parity.solve(b), b.targets)


def test_binary_addition():
    b = binary_addition.encode([13, 255, 0, 170], [7, 1, 0, 85], 8, dtype=D)
    assert binary_addition.decode_sum(b.targets) == [20, 256, 0, 255]
    assert b.inputs.shape == (4, 11, 2)
    rnd = binary_addition.generate(512, 64, seed=0, dtype=D)
    a_int = binary_addition.from_bits(rnd.inputs[:, :64, 0])
    b_int = binary_addition.from_bits(rnd.inputs[:, :64, 1])
    assert binary_addition.decode_sum(rnd.targets) == [x + y for x, y in zip(a_int, b_int)]
    exact = binary_addition.solve(rnd)
    assert binary_addition.error_rate(exact, rnd) == 0.0
    # XOR without carry (a memoryless net) is wrong on almost every 64-bit sum
    nocarry = torch.zeros_like(exact)
    nocarry[:, 2:, 0] = (rnd.inputs[:, :-2, 0] != rnd.inputs[:, :-2, 1]).to(D)
    assert binary_addition.error_rate(nocarry, rnd) > 0.99
    assert binary_addition.error_rate(torch.zeros_like(exact), rnd) == 1.0
    st = binary_addition.carry_states(rnd.inputs)
    assert set(st.unique().tolist()) == {0, 1, 2, 3}


def test_copy_and_memorization():
    b = copying.generate(128, 50, seed=0, dtype=D)
    assert b.inputs.shape == (128, 70, 10)
    logits = copying.solve(b)
    assert copying.error_rate(logits, b) == 0.0 and copying.symbol_accuracy(logits, b) == 1.0
    assert float(copying.loss(logits, b)) < 1e-6
    # the memoryless baseline: blanks, then uniform over a0..a7
    base = torch.full((128, 70, 9), -30.0, dtype=D)
    base[:, :60, 8] = 0.0
    base[:, 60:, :8] = 0.0
    assert abs(float(copying.loss(base, b)) - copying.copy_baseline(50)) < 1e-9
    assert copying.error_rate(base, b) == 1.0
    for variant, n in (("5bit", 5), ("20bit", 10)):
        m = copying.memorization(32, 100, variant, all_patterns=variant == "5bit", seed=0, dtype=D)
        lg = copying.solve(m)
        assert copying.error_rate(lg, m) == 0.0
        assert int(m.mask.sum(1)[0]) == n
        assert (m.inputs[:, 100 - n - 1].argmax(-1) == m.inputs.shape[-1] - 1).all()
        blank = torch.zeros_like(lg)
        blank[..., -1] = 1.0
        assert copying.error_rate(blank, m) == 1.0
    m = copying.memorization(32, 60, "5bit", all_patterns=True)
    assert len({tuple(r) for r in m.targets[:, -5:].tolist()}) == 32


def test_toy_nets():
    b = toy.sum_inputs(64, 20, seed=0, dtype=D)
    exact = toy.linear_sum_net(b.inputs)
    assert toy.error_rate(exact, b, toy.SUM_TOLERANCE) == 0.0
    assert toy.error_rate(toy.linear_sum_net(b.inputs, w=0.8), b, toy.SUM_TOLERANCE) > 0.9
    assert toy.error_rate(torch.zeros_like(exact), b, toy.SUM_TOLERANCE) > 0.9
    c = toy.larger_total(256, 20, seed=0, dtype=D)
    out = toy.comparison_net(c.inputs)
    assert toy.error_rate(out, c, toy.THRESHOLD) == 0.0
    assert 0.3 < toy.error_rate(torch.zeros(256, 1, dtype=D), c, toy.THRESHOLD) < 0.7
    last = toy.larger_total(256, 20, per_step=True, seed=0, dtype=D)
    assert toy.error_rate(out, last, toy.THRESHOLD) == 0.0


def test_st3_rule():
    st3 = ST3(beta=0.01, window=10)
    assert not st3.update(torch.full((9,), 0.001), torch.ones(9, dtype=torch.bool))
    assert st3.update(torch.full((1,), 0.001), torch.ones(1, dtype=torch.bool))
    assert not st3.update(torch.tensor([0.5]), torch.tensor([False]))  # one wrong
    assert not st3.update(torch.full((9,), 0.001), torch.ones(9, dtype=torch.bool))
    assert st3.update(torch.full((1,), 0.001), torch.ones(1, dtype=torch.bool))
    big = ST3(beta=0.01, window=4)
    assert not big.update(torch.full((4,), 0.02), torch.ones(4, dtype=torch.bool))
    assert big.seen == 4
