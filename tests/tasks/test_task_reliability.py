"""Regression tests of issue 10 for the task generators (items 5, 8, 11 and 15).

Every wrong prediction shape is refused with an InputError that names the argument (no
silent broadcasting, no IndexError/RuntimeError from inside torch); every documented
parameter value works.
"""

import pytest
import torch
import torch.nn.functional as F

from rnnlab.errors import InputError, InputTypeError
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


# ------------------------------------------------------------------ item 5: no broadcasts
def test_adding_loss_refuses_three_outputs():
    b = adding.generate(4, 20, seed=0, dtype=D)
    with pytest.raises(InputError, match=r"pred: expected shape \(4, 1\)"):
        adding.loss(torch.zeros(4, 3, dtype=D), b)
    with pytest.raises(InputError, match="pred"):
        adding.is_correct(torch.zeros(4, 3, dtype=D), b)
    # the accepted layouts give the same numbers
    exact = adding.solve(b)
    full = torch.zeros(4, b.inputs.shape[1], 1, dtype=D)
    full[torch.arange(4), b.lengths - 1] = exact
    assert float(adding.loss(exact[:, 0], b)) == float(adding.loss(full, b)) == 0.0


def test_parity_loss_refuses_two_outputs_per_step():
    b = parity.generate(4, 5, per_step=True, seed=0, dtype=D)
    with pytest.raises(InputError, match=r"pred: expected shape \(4, 5, 1\)"):
        parity.loss(torch.zeros(4, 5, 2, dtype=D), b)
    with pytest.raises(InputError, match="pred"):
        parity.is_correct(torch.zeros(4, 5, 2, dtype=D), b)
    assert parity.error_rate(parity.solve(b), b) == 0.0


def test_temporal_order_refuses_five_classes_for_four():
    b = temporal_order.generate(4, 4, seed=0, dtype=D)
    assert temporal_order.num_classes(b) == 4
    five = torch.zeros(4, 5, dtype=D)
    for fn in (temporal_order.is_correct, temporal_order.loss, temporal_order.mse_loss):
        with pytest.raises(InputError, match=r"pred: expected shape \(4, 4\)"):
            fn(five, b)
    b8 = temporal_order.generate(3, 8, seed=1, dtype=D)
    assert temporal_order.num_classes(b8) == 8
    onehot = F.one_hot(temporal_order.solve(b8), 8).to(D)
    assert temporal_order.error_rate(onehot, b8) == 0.0


# ------------------------------------------------------------------ item 8: xor T = 10..19
@pytest.mark.parametrize("T", range(10, 20))
def test_xor_every_documented_length(T):
    b = xor.generate(64, T, seed=T, dtype=D)
    marker = b.inputs[..., 1]
    assert torch.equal((marker == 1).sum(1), torch.full((64,), 2))  # two marks, distinct
    first, second = (marker == 1).long().topk(2, dim=1, sorted=False).indices.sort(1).values.T
    assert bool((first >= 1).all()) and bool((second > first).all())
    assert bool((second < b.lengths - 1).all())  # both marks before the end
    assert torch.equal(xor.solve(b), b.targets) and xor.error_rate(b.targets, b) == 0.0


def test_xor_long_lengths_unchanged():
    # the window fix changes nothing from T = 20 on (the marks keep their windows)
    b = xor.generate(256, 100, seed=0)
    pos = (b.inputs[..., 1] == 1).nonzero()[:, 1].view(256, 2)
    assert int(pos[:, 0].min()) >= 1 and int(pos[:, 0].max()) <= 9
    assert int(pos[:, 1].min()) >= 15 and int(pos[:, 1].max()) <= 24


# ------------------------------------------------------------------ items 11 and 15: reber
def test_reber_solve_plain_batches():
    b = reber.generate(32, embedded=False, seed=0, dtype=D)
    sol = reber.solve(b)  # the grammar read from the inputs
    assert torch.equal(sol, reber.solve(b, embedded=False))
    assert torch.equal(sol > 0, b.legal > 0.5)
    assert reber.error_rate(sol, b) == 0.0
    e = reber.generate(32, seed=0, dtype=D)
    assert torch.equal(reber.solve(e) > 0, e.legal > 0.5)
    with pytest.raises(InputError, match="batch: step 2"):
        reber.solve(b, embedded=True)  # the wrong grammar: one line, naming the step


def test_reber_encode_and_generate_name_the_argument():
    with pytest.raises(InputError, match="strings: .*'Q'"):
        reber.encode(["BXQE"])
    with pytest.raises(InputError, match="strings: expected an embedded Reber string"):
        reber.encode(["BTXSE"])
    assert reber.encode(["BTXSE"], embedded=False).lengths.tolist() == [4]
    with pytest.raises(InputTypeError, match="strings"):
        reber.encode("BTBTXSETE")
    with pytest.raises(InputError, match="batch_size"):
        reber.generate(0)


# ------------------------------------------------------------------ item 15: prediction shapes
def _cases():
    ba = binary_addition.generate(3, 4, seed=0, dtype=D)
    cp = copying.generate(3, 5, seed=0, dtype=D)
    pm = permutation.generate(3, 6, 5, seed=0, dtype=D)
    l2a = long_lag.generate_2a(3, 5, seed=0, dtype=D)
    l2c = long_lag.generate_2c(3, 4, 3, seed=0, dtype=D)
    an = anbn.generate(3, 3, seed=0, dtype=D)
    rb = reber.generate(3, seed=0, dtype=D)
    ts = two_sequence.generate(3, 10, 2, seed=0, dtype=D)
    ty = toy.sum_inputs(3, 4, seed=0, dtype=D)

    def bad(batch, extra=1):
        B, T = batch.inputs.shape[:2]
        return [torch.zeros(B, T + extra, 1, dtype=D), torch.zeros(B + 1, dtype=D), torch.zeros(())]

    return [
        ("binary_addition.loss", lambda p: binary_addition.loss(p, ba), bad(ba)),
        ("binary_addition.is_correct", lambda p: binary_addition.is_correct(p, ba), bad(ba)),
        (
            "copying.loss",
            lambda p: copying.loss(p, cp),
            bad(cp) + [torch.zeros(3, 25, 10, dtype=D)],
        ),
        ("copying.is_correct", lambda p: copying.is_correct(p, cp), bad(cp)),
        ("copying.symbol_accuracy", lambda p: copying.symbol_accuracy(p, cp), bad(cp)),
        ("permutation.loss", lambda p: permutation.loss(p, pm), bad(pm)),
        ("permutation.is_correct", lambda p: permutation.is_correct(p, pm), bad(pm)),
        ("long_lag.loss_2ab", lambda p: long_lag.loss_2ab(p, l2a), bad(l2a)),
        ("long_lag.is_correct_2ab", lambda p: long_lag.is_correct_2ab(p, l2a), bad(l2a)),
        ("long_lag.is_correct_2c", lambda p: long_lag.is_correct_2c(p, l2c), bad(l2c)),
        ("anbn.loss", lambda p: anbn.loss(p, an), bad(an)),
        ("anbn.is_correct", lambda p: anbn.is_correct(p, an), bad(an)),
        ("anbn.mse_loss", lambda p: anbn.mse_loss(p, an), bad(an)),
        ("reber.loss", lambda p: reber.loss(p, rb), bad(rb)),
        ("reber.is_correct", lambda p: reber.is_correct(p, rb), bad(rb)),
        ("reber.continual_step_correct", lambda p: reber.continual_step_correct(p, rb), bad(rb)),
        ("two_sequence.loss", lambda p: two_sequence.loss(p, ts), bad(ts)),
        ("toy.loss", lambda p: toy.loss(p, ty), bad(ty)),
        ("toy.is_correct", lambda p: toy.is_correct(p, ty, 0.05), bad(ty)),
    ]


@pytest.mark.parametrize("name, call, preds", _cases(), ids=[c[0] for c in _cases()])
def test_wrong_prediction_shapes_name_the_argument(name, call, preds):
    for p in preds:
        with pytest.raises(InputError, match=r"^(pred|logits|probs): expected"):
            call(p)
    with pytest.raises(InputTypeError, match=r"^(pred|logits|probs|outputs)"):
        call([[0.0]])


def test_integer_predictions_and_bad_thresholds_are_refused():
    b = adding.generate(4, 20, seed=0)
    with pytest.raises(InputTypeError, match="pred: expected a floating-point"):
        adding.loss(torch.zeros(4, 1, dtype=torch.long), b)
    for bad in (0, -0.1, float("nan"), float("inf"), "0.04", True):
        with pytest.raises(InputError, match="threshold"):
            adding.is_correct(adding.solve(b), b, threshold=bad)


def test_anbn_encode_refuses_non_integers():
    with pytest.raises(InputError, match="ns: expected integers >= 1, received 1.5"):
        anbn.encode([2, 1.5])
    assert anbn.encode([torch.tensor(2)]).lengths.tolist() == [5]


def test_adding_1997_first_mark_never_hidden_on_the_last_pair():
    # found by the property tests: at T = 10 the first mark could fall on pair 9, the last
    # pair of a length-10 sequence, whose marker is -1: counted in the target, invisible
    for conv, gen in (("1997", adding.generate), ("multiplication", adding.multiplication)):
        b = gen(2000, 10, seed=4, dtype=D)
        assert torch.allclose(adding.solve(b, conv), b.targets, atol=1e-12)
