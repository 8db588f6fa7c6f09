"""Oracles for the encoder-decoder: teacher forcing = stepping, masks, decoding vs brute force."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from rnnlab.errors import InputError
from rnnlab.seq2seq import Seq2Seq, beam_search, greedy_search, length_penalty
from rnnlab.seq2seq.decoding import log_probs

torch.set_num_threads(1)

ATTN = [None, "bahdanau", "luong-dot", "luong-general"]


def make(attention=None, feeding=True, cell="lstm", bidir=True, layers=2, vs=9, vt=7, seed=0,
         **kw):  # fmt: skip
    torch.manual_seed(seed)
    return Seq2Seq(vs, vt, cell=cell, hidden_size=8, num_layers=layers, embedding_size=5,
                   attention=attention, input_feeding=feeding, bidirectional_encoder=bidir,
                   dtype=torch.float64, **kw).eval()  # fmt: skip


def batch(seed=1, B=4, S=6, T=5, vs=9, vt=7):
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(3, vs, (B, S), generator=g)
    lengths = torch.randint(1, S + 1, (B,), generator=g)
    lengths[0] = S
    src = src.masked_fill(torch.arange(S) >= lengths[:, None], 0)
    tgt = torch.randint(3, vt, (B, T), generator=g)
    tgt[:, 0] = 1
    return src, lengths, tgt


@pytest.mark.parametrize("attention", ATTN)
@pytest.mark.parametrize("feeding", [True, False])
def test_teacher_forced_loss_equals_stepwise_decoding(attention, feeding):
    m = make(attention, feeding)
    src, L, tgt = batch()
    logits = m(src, L, tgt)
    dstate = m.encode(src, L)
    steps = []
    for t in range(tgt.shape[1]):
        lg, dstate, _ = m.decode_step(tgt[:, t], dstate)
        steps.append(lg)
    torch.testing.assert_close(logits, torch.stack(steps, 1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "srn"])
def test_fused_cell_step_equals_the_layer_step(cell):
    m = make("luong-general", True, cell=cell)
    assert m._fast_cell() is not None
    src, L, tgt = batch()
    fast = m(src, L, tgt)
    m._fast_cell = lambda: None  # the layer's own Recurrent.step
    torch.testing.assert_close(m(src, L, tgt), fast, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("attention", ATTN[1:])
def test_attention_sums_to_one_and_is_zero_on_padding(attention):
    m = make(attention)
    src, L, _ = batch()
    tr = m.translate(src, L, beam_size=1, max_length=4)
    dstate = m.encode(src, L)
    _, _, a = m.decode_step(torch.ones(4, dtype=torch.long), dstate)
    torch.testing.assert_close(a.sum(-1), torch.ones(4, dtype=a.dtype))
    pad = torch.arange(src.shape[1]) >= L[:, None]
    assert bool((a[pad] == 0).all())
    for b, att in enumerate(tr.attention):
        assert att.shape[1] == L[b]
        torch.testing.assert_close(att.sum(-1), torch.ones(att.shape[0], dtype=att.dtype))


@pytest.mark.parametrize("bidir", [True, False])
def test_padded_batch_encodes_as_each_sequence_alone(bidir):
    m = make("bahdanau", bidir=bidir)
    src, L, _ = batch()
    d = m.encode(src, L)
    for b in range(src.shape[0]):
        alone = m.encode(src[b : b + 1, : L[b]], L[b : b + 1])
        torch.testing.assert_close(d.memory[b, : L[b]], alone.memory[0], rtol=1e-10, atol=1e-12)
        assert bool((d.memory[b, L[b] :] == 0).all())
        for s, s1 in zip(d.state, alone.state):
            torch.testing.assert_close(s[:, b], s1[:, 0], rtol=1e-10, atol=1e-12)


def test_reverse_source_equals_reversed_input():
    m = make("bahdanau", reverse_source=True)
    plain = make("bahdanau")
    plain.load_state_dict(m.state_dict())
    src, L, tgt = batch()
    rev = torch.stack([torch.cat([src[b, : L[b]].flip(0), src[b, L[b] :]]) for b in range(4)])
    torch.testing.assert_close(m(src, L, tgt), plain(rev, L, tgt))


@pytest.mark.parametrize("attention", [None, "luong-dot"])
def test_beam_of_one_is_greedy(attention):
    m = make(attention, seed=3)
    src, L, _ = batch(seed=4)
    g = m.translate(src, L, beam_size=1, max_length=8)
    b = beam_search(m, src, L, 1, 8, 0.0)
    assert [h[0].tokens for h in b] == g.tokens
    torch.testing.assert_close(torch.tensor([h[0].score for h in b]), g.scores)


@pytest.mark.parametrize("attention", [None, "bahdanau"])
def test_batched_beam_search_equals_each_source_alone(attention):
    m = make(attention, seed=5)
    src, L, _ = batch(seed=6, B=5)
    together = beam_search(m, src, L, 4, 7, 0.6, n_best=3)
    for b in range(5):
        alone = beam_search(m, src[b : b + 1, : L[b]], L[b : b + 1], 4, 7, 0.6, n_best=3)[0]
        assert [h.tokens for h in together[b][:3]] == [h.tokens for h in alone[:3]]
        for x, y in zip(together[b][:3], alone[:3]):
            assert math.isclose(x.score, y.score, rel_tol=1e-9)


@torch.no_grad()
def brute_force(m, src, L, max_length, alpha):
    """Every output of at most max_length steps, scored by stepping the model."""
    words = [t for t in range(m.tgt_vocab_size) if t not in (m.pad_index, m.bos_index, m.eos_index)]
    out = []
    for n in range(max_length + 1):
        for seq in itertools.product(words, repeat=n):
            ends = n < max_length  # shorter outputs end with eos
            steps = list(seq) + ([m.eos_index] if ends else [])
            if not steps:
                continue
            d = m.encode(src, L)
            prev, total = torch.tensor([m.bos_index]), 0.0
            for tok in steps:
                lg, d, _ = m.decode_step(prev, d)
                total += float(log_probs(m, lg)[0, tok])
                prev = torch.tensor([tok])
            out.append((total / length_penalty(len(steps), alpha), list(seq)))
    return sorted(out, key=lambda x: -x[0])


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("attention", [None, "luong-general"])
def test_wide_beam_equals_brute_force(alpha, attention):
    m = make(attention, vt=5, seed=7, layers=1)  # 2 output words
    src, L, _ = batch(seed=8, B=2, vt=5)
    best = beam_search(m, src, L, 16, 4, alpha, n_best=4)
    for b in range(2):
        truth = brute_force(m, src[b : b + 1, : L[b]], L[b : b + 1], 4, alpha)
        assert [h.tokens for h in best[b][:4]] == [s for _, s in truth[:4]]
        for h, (score, _) in zip(best[b], truth):
            assert math.isclose(h.score, score, rel_tol=1e-9)


def test_scheduled_sampling_extremes():
    m = make("bahdanau", seed=9)
    src, L, tgt = batch(seed=10)
    torch.testing.assert_close(m(src, L, tgt, sampling_probability=0.0), m(src, L, tgt))
    # p = 1: the decoder reads its own argmax, i.e. greedy decoding (until eos)
    logits = m(src, L, tgt, sampling_probability=1.0)
    greedy = greedy_search(m, src, L, tgt.shape[1])
    for b in range(4):
        toks = greedy[b][0].tokens
        assert logits[b].argmax(-1).tolist()[: len(toks)] == toks


def test_training_reduces_the_loss_on_a_copy_task():
    torch.manual_seed(0)
    m = Seq2Seq(8, 8, hidden_size=32, embedding_size=16, attention="luong-general")
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    src = torch.randint(3, 8, (64, 4))
    L = torch.full((64,), 4)
    tgt_in = torch.cat([torch.ones(64, 1, dtype=torch.long), src], 1)
    tgt_out = torch.cat([src, torch.full((64, 1), 2)], 1)
    first = None
    for _ in range(150):
        loss, _ = m.loss(src, L, tgt_in, tgt_out)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.1 * first
    assert m.translate(src[:8], L[:8]).tokens == src[:8].tolist()


def test_bad_input_names_the_problem():
    m = make("bahdanau", max_source_length=6)
    src, L, tgt = batch()
    with pytest.raises(InputError, match="beam_size"):
        m.translate(src, L, beam_size=0)
    with pytest.raises(InputError, match="empty"):
        m.translate(src, torch.tensor([6, 0, 1, 1]))
    with pytest.raises(InputError, match="src_vocab_size"):
        m(src.masked_fill(src > 0, 50), L, tgt)
    with pytest.raises(InputError, match="tgt_in: expected 4 target rows"):
        m(src, L, tgt[:3])
    with pytest.raises(InputError, match="max_source_length"):
        m(torch.full((1, 7), 3), torch.tensor([7]), tgt[:1])
    with pytest.raises(InputError, match="attention"):
        Seq2Seq(5, 5, attention="luong")


def test_reversed_source_attention_is_reported_in_source_order():
    m = make("bahdanau", reverse_source=True)
    plain = make("bahdanau")
    plain.load_state_dict(m.state_dict())
    src, L, _ = batch()
    rev = torch.stack([torch.cat([src[b, : L[b]].flip(0), src[b, L[b] :]]) for b in range(4)])
    a, b = m.translate(src, L, beam_size=2, max_length=5), plain.translate(rev, L, 2, 5)
    assert a.tokens == b.tokens
    for x, y in zip(a.attention, b.attention):
        torch.testing.assert_close(x, y.flip(-1))
