"""The generators: programs run and print their targets, splits are disjoint, curricula
draw what they say; the addition questions; the data reader and metrics."""

from __future__ import annotations

import contextlib
import io
import random
from collections import Counter

import pytest

from rnnlab.errors import InputError
from rnnlab.seq2seq.data import BucketBatches, Vocabulary, collate, encode_pairs, read_tsv
from rnnlab.seq2seq.metrics import edit_distance, error_rates, exact_match
from rnnlab.tasks import execute, seq_addition


def run_python(source: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<program>", "exec"), {})
    return out.getvalue()


@pytest.mark.parametrize("length,nesting", [(1, 1), (2, 3), (4, 2), (3, 5)])
def test_every_program_runs_and_prints_its_target(length, nesting):
    rng = random.Random(length * 10 + nesting)
    ops = Counter()
    for _ in range(300):
        src, tgt = execute.program(rng, length, nesting)
        assert tgt.endswith(".")
        assert run_python(src) == tgt[:-1] + "\n"
        ops.update(op for op in ("for x", " if ", "*", "=") if op in src)
    assert all(ops[op] > 0 for op in ("for x", " if ", "*", "="))


def test_addition_programs_have_length_digit_operands():
    rng = random.Random(0)
    for _ in range(200):
        src, tgt = execute.addition(rng, 5)
        a, b = src[len("print(") : -1].split("+")
        assert len(a) == len(b) == 5
        assert run_python(src) == tgt[:-1] + "\n"


def test_hash_split_is_disjoint_and_by_hash():
    sets = {s: execute.dataset(300, s, 1, 1, seed=3) for s in execute.SPLITS}
    texts = {s: {src for src, _ in v} for s, v in sets.items()}
    assert not texts["train"] & texts["validation"]
    assert not texts["train"] & texts["test"]
    assert not texts["validation"] & texts["test"]
    for s, v in texts.items():
        assert all(execute.split_of(src) == s for src in v)
    with pytest.raises(InputError, match="split"):
        execute.sample(random.Random(0), "dev", 1, 1)


def test_curricula_draw_what_they_say():
    rng = random.Random(0)
    n = 20000
    base = execute.Curriculum("baseline", 3, 2)
    assert {base.draw(rng) for _ in range(100)} == {(3, 2)}
    mix = Counter(execute.Curriculum("mix", 3, 2).draw(rng) for _ in range(n))
    assert set(mix) == {(a, b) for a in (1, 2, 3) for b in (1, 2)}
    assert all(abs(c / n - 1 / 6) < 0.015 for c in mix.values())
    naive = execute.Curriculum("naive", 3, 2)
    assert {naive.draw(rng) for _ in range(100)} == {(1, 1)}
    comb = Counter(execute.Curriculum("combined", 3, 2).draw(rng) for _ in range(n))
    # a mix draw with probability 1/5 (which lands on (1, 1) one time in 6)
    assert abs(comb[(1, 1)] / n - (0.8 + 0.2 / 6)) < 0.015
    assert abs(comb[(3, 2)] / n - 0.2 / 6) < 0.01


def test_naive_curriculum_advances_length_then_nesting():
    cur = execute.Curriculum("naive", 2, 2, patience=2)
    assert not cur.advance(0.5)
    assert cur.advance(0.96) and cur.level == (2, 1)
    assert cur.advance(0.99) and cur.level == (1, 2)
    assert not cur.advance(0.3)
    assert not cur.advance(0.2)  # one evaluation without improvement
    assert cur.advance(0.1) and cur.level == (2, 2)  # stalled twice
    assert cur.at_target and not cur.advance(1.0)
    state = cur.state_dict()
    other = execute.Curriculum("naive", 2, 2)
    other.load_state_dict(state)
    assert other.level == (2, 2)


def test_addition_questions_are_right_distinct_and_split():
    train, test = seq_addition.split(3000, 500, 3, seed=1)
    for src, tgt in train + test:
        a, b = src.split("+")
        assert int(a) + int(b) == int(tgt) and 1 <= len(a) <= 3
    key = {tuple(sorted(map(int, s.split("+")))) for s, _ in train}
    assert len(key) == 3000
    assert not key & {tuple(sorted(map(int, s.split("+")))) for s, _ in test}
    rev = seq_addition.pairs(50, 3, seed=1, reverse=True)
    assert [s[::-1] for s, _ in rev] == [s for s, _ in seq_addition.pairs(50, 3, seed=1)]
    with pytest.raises(InputError, match="n: at most"):
        seq_addition.pairs(100, 1)


def test_tsv_reader_vocabulary_and_batches(tmp_path):
    f = tmp_path / "p.tsv"
    f.write_text("the cat\tle chat\n\na dog\tun chien\n")
    pairs = read_tsv(f)
    assert pairs == [("the cat", "le chat"), ("a dog", "un chien")]
    sv, tv = (
        Vocabulary.build([s for s, _ in pairs], "word"),
        Vocabulary.build([t for _, t in pairs], "char"),
    )
    ex = encode_pairs(pairs, sv, tv)
    assert sv.decode(ex[0][0]) == "the cat" and tv.decode(ex[1][1]) == "un chien"
    assert Vocabulary.from_dict(tv.to_dict()).itos == tv.itos
    with pytest.raises(InputError, match="'z' is not in the vocabulary"):
        tv.encode("zz")
    b = collate(ex)
    assert b.tgt_in[0, 0] == 1 and b.tgt_out[0, len(ex[0][1])] == 2
    assert b.src_lengths.tolist() == [2, 2]
    (tmp_path / "bad.tsv").write_text("one\ttwo\nno tab here\n")
    with pytest.raises(InputError, match="line 2 .* has no tab"):
        read_tsv(tmp_path / "bad.tsv")
    (tmp_path / "empty.tsv").write_text("one\t \n")
    with pytest.raises(InputError, match="empty target"):
        read_tsv(tmp_path / "empty.tsv")


def test_bucket_batches_cover_an_epoch_and_resume():
    ex = [([3] * (1 + i % 7), [4] * (1 + i % 3)) for i in range(100)]
    it = BucketBatches(ex, 8, seed=2, pool=2)
    seen = sum(len(next(it).src) for _ in range(13))
    assert seen == 100  # 13 batches: one epoch (12 full, sizes per pool)
    state = it.state_dict()
    a = [next(it).src.tolist() for _ in range(5)]
    it2 = BucketBatches(ex, 8, seed=2, pool=2)
    it2.load_state_dict(state)
    assert [next(it2).src.tolist() for _ in range(5)] == a


def test_metrics_against_hand_counts():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], [1, 2]) == 2
    hyps = [["K", "AE", "T"], ["D", "AO"], ["AH"]]
    refs = [[["K", "AE", "T"]], [["D", "AO", "G"], ["D", "AA", "G"]], [["AH"], ["EY"]]]
    per, wer = error_rates(hyps, refs)
    assert per == pytest.approx(1 / 7) and wer == pytest.approx(1 / 3)
    assert exact_match(hyps, refs) == pytest.approx(2 / 3)
