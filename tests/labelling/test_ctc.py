"""CTC oracles: the loss is the brute-force sum over all alignments, its gradient equals
finite differences, prefix beam search with a wide beam is the exhaustive most probable
labelling, and edit distance matches a hand-checked table."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch

from rnnlab.ctc import (
    ctc_loss,
    edit_distance,
    greedy_decode,
    label_error_rate,
    min_input_length,
    prefix_beam_search,
)
from rnnlab.errors import InputError


def collapse(path, blank=0):
    out, prev = [], None
    for k in path:
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return tuple(out)


def labelling_log_probs(lp: torch.Tensor, blank=0) -> dict:
    """Every labelling of one (T, C) input with its log-probability, by enumerating all
    C^T paths."""
    T, C = lp.shape
    totals: dict = {}
    for path in itertools.product(range(C), repeat=T):
        p = float(sum(lp[t, k] for t, k in enumerate(path)))
        lab = collapse(path, blank)
        old = totals.get(lab, -math.inf)
        m = max(old, p)
        totals[lab] = m + math.log(math.exp(old - m) + math.exp(p - m))
    return totals


def random_log_probs(B, T, C, seed=0, peak=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(peak * torch.randn(B, T, C, generator=g, dtype=torch.float64), -1)


@pytest.mark.parametrize("blank", [0, 2])
def test_loss_equals_brute_force_sum_over_alignments(blank):
    lp = random_log_probs(3, 5, 3, seed=1)
    targets = [[1, 1], [2 if blank != 2 else 1, 1, 0 if blank != 0 else 2], []]
    losses = ctc_loss(lp, targets, [5, 4, 3], blank=blank, reduction="none")
    for b, t in enumerate(targets):
        T = [5, 4, 3][b]
        want = -labelling_log_probs(lp[b, :T], blank)[tuple(t)]
        assert losses[b].item() == pytest.approx(want, abs=1e-9)


def test_reductions_and_padded_tensor_targets():
    lp = random_log_probs(2, 6, 4, seed=2)
    none = ctc_loss(lp, [[1, 2, 3], [3]], [6, 5], reduction="none")
    padded = torch.tensor([[1, 2, 3], [3, 0, 0]])
    mean = ctc_loss(lp, padded, torch.tensor([6, 5]), torch.tensor([3, 1]))
    total = ctc_loss(lp, padded, [6, 5], [3, 1], reduction="sum")
    assert mean.item() == pytest.approx(((none[0] / 3 + none[1] / 1) / 2).item(), abs=1e-12)
    assert total.item() == pytest.approx(none.sum().item(), abs=1e-12)


def test_gradient_equals_finite_differences():
    logits = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)

    def f(z):
        return ctc_loss(torch.log_softmax(z, -1), [[1, 2], [2, 2]], [5, 4], reduction="sum")

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-6, check_batched_grad=False)


def test_wide_beam_is_exhaustive_best_labelling():
    for seed in range(4):
        lp = random_log_probs(1, 4, 3, seed=10 + seed, peak=1.5)
        table = labelling_log_probs(lp[0])
        best = max(table, key=table.get)
        labels, scores = prefix_beam_search(lp, [4], beam_size=100)
        assert tuple(labels[0]) == best
        assert scores[0].item() == pytest.approx(table[best], abs=1e-9)
        # the total over alignments is also exp(-CTC loss) of that labelling
        loss = ctc_loss(lp, [list(best)], [4], reduction="none") if best else None
        if loss is not None:
            assert -loss[0].item() == pytest.approx(table[best], abs=1e-9)


def test_beam_of_one_on_peaked_distribution_is_greedy():
    lp = random_log_probs(4, 12, 5, seed=3, peak=8.0)
    lengths = [12, 9, 7, 12]
    greedy = greedy_decode(lp, lengths)
    beam, _ = prefix_beam_search(lp, lengths, beam_size=1)
    assert beam == greedy


def test_greedy_collapses_by_hand():
    path = [0, 1, 1, 0, 1, 2, 2, 0, 0, 2]
    lp = torch.log_softmax(10 * torch.nn.functional.one_hot(torch.tensor(path), 3).double(), -1)
    assert greedy_decode(lp[None], [10]) == [[1, 1, 2, 2]]
    assert greedy_decode(lp[None], [3]) == [[1]]


def test_top_k_with_all_labels_changes_nothing():
    lp = random_log_probs(2, 8, 6, seed=4)
    a = prefix_beam_search(lp, [8, 6], beam_size=4)
    b = prefix_beam_search(lp, [8, 6], beam_size=4, top_k=5)
    assert a[0] == b[0] and torch.equal(a[1], b[1])


@pytest.mark.parametrize(
    ("a", "b", "d"),
    [
        ("", "", 0),
        ("abc", "", 3),
        ("", "ab", 2),
        ("kitten", "sitting", 3),  # k->s, e->i, +g
        ("flaw", "lawn", 2),  # -f, +n
        ("intention", "execution", 5),
        ("abc", "abc", 0),
        ("abc", "acb", 2),
        ([1, 2, 3, 4], [1, 3, 4], 1),
    ],
)
def test_edit_distance_table(a, b, d):
    assert edit_distance(a, b) == d
    assert edit_distance(b, a) == d


def test_label_error_rate():
    assert label_error_rate([[1, 2], [3]], [[1, 2, 3], [3]]) == pytest.approx(1 / 4)
    with pytest.raises(InputError, match="references"):
        label_error_rate([[]], [[]])
    with pytest.raises(InputError, match="hypotheses"):
        label_error_rate([[1]], [[1], [2]])


def test_min_input_length_counts_repeats():
    assert min_input_length([1, 1, 2, 2, 2]) == 8
    assert min_input_length([]) == 0


def test_too_short_input_names_the_sequence():
    lp = random_log_probs(2, 4, 3)
    with pytest.raises(InputError, match="sequence 1 has 3 frames.*4 needed"):
        ctc_loss(lp, [[1, 2], [1, 1, 2]], [4, 3])


def test_bad_inputs():
    lp = random_log_probs(2, 4, 3)
    with pytest.raises(InputError, match="targets: sequence 0 contains the blank"):
        ctc_loss(lp, [[0, 1], [1]], [4, 4])
    with pytest.raises(InputError, match="outside"):
        ctc_loss(lp, [[3], [1]], [4, 4])
    with pytest.raises(InputError, match=r"input_lengths: expected shape \(2,\)"):
        ctc_loss(lp, [[1], [1]], [4])
    with pytest.raises(InputError, match="target_lengths"):
        ctc_loss(lp, [[1], []], [4, 4], allow_empty=False)
    with pytest.raises(InputError, match="log_probs: expected a 3-D"):
        ctc_loss(lp[0], [[1]], [4])
    with pytest.raises(InputError, match="beam_size"):
        prefix_beam_search(lp, [4, 4], beam_size=0)
    with pytest.raises(InputError, match="lengths: expected values"):
        greedy_decode(lp, [5, 4])
    with pytest.raises(InputError, match="blank"):
        greedy_decode(lp, [4, 4], blank=3)


def test_unnormalised_log_probs_warn_and_lengths_on_any_form():
    lp = random_log_probs(2, 4, 3)
    with pytest.warns(UserWarning, match="normalised"):
        ctc_loss(lp + 1.0, [[1], [2]], [4, 4])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = ctc_loss(lp, [[1], [2]], (4, 3))
        b = ctc_loss(lp, [[1], [2]], torch.tensor([4, 3], dtype=torch.int32))
    assert a.item() == b.item()


def test_matches_torch_ctc_loss():
    lp = random_log_probs(3, 7, 5, seed=5).float()
    targets = torch.tensor([[1, 2, 2], [4, 0, 0], [3, 1, 0]])
    ours = ctc_loss(lp, targets, [7, 6, 5], [3, 1, 2], reduction="none")
    ref = torch.nn.CTCLoss(reduction="none")(lp.transpose(0, 1), targets, (7, 6, 5), (3, 1, 2))
    torch.testing.assert_close(ours, ref)
