"""``rnnlab reproduce g2p``: spelling to sound on cmudict, with and without attention.

Words go to train / validation / test by the MD5 hash of the word
(:mod:`rnnlab.seq2seq.cmudict`); stress is stripped and each word's alternative
pronunciations are all references. A bidirectional LSTM encoder (64 units per direction)
and an LSTM decoder of 128 units read letters and write phonemes; one model with Luong
attention, one without, same budget (a subset of the training words, minutes of Adam).
Metrics on held-out words, greedy decoding: phoneme error rate (edit distance to the
closest reference / its length) and word error rate (any error against every reference).

Reference only, not comparable (other splits, full training sets, days of training):
Sequitur-style joint n-gram models and LSTM encoder-decoders report about 24% WER
(and about 6% PER) on their CMUdict splits.
"""

from __future__ import annotations

import random
import time

import torch

from rnnlab._threads import torch_threads
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register
from rnnlab.seq2seq import Seq2Seq, cmudict
from rnnlab.seq2seq.data import BucketBatches, Vocabulary, encode_pairs
from rnnlab.seq2seq.metrics import error_rates
from rnnlab.seq2seq.run import evaluate, fit


@register("g2p", "cmudict grapheme-to-phoneme: PER and WER with and without attention")
def run(config: ExperimentConfig) -> ExperimentResult:
    if config.quick:
        n_train, n_test, steps, hidden, batch = 2000, 100, 60, 32, 64
    else:
        n_train, n_test, steps, hidden, batch = 40_000, 1000, 1500, 128, 128
    sets = cmudict.split(cmudict.load())
    rng = random.Random(config.seed)
    train = cmudict.pairs(sets["train"])
    rng.shuffle(train)
    train = train[:n_train]
    test_words = sorted(sets["test"].items())[:n_test]
    src_vocab = Vocabulary.build([w for w, _ in train], "char")
    tgt_vocab = Vocabulary.build([p for _, p in train], "word")
    train_ex = encode_pairs(train, src_vocab, tgt_vocab)
    test_ex = encode_pairs([(w, " ".join(p[0])) for w, p in test_words], src_vocab, tgt_vocab)
    refs = [[tgt_vocab.encode(list(p), "unk") for p in prons] for _, prons in test_words]
    metrics, rows = {}, []
    with torch_threads(1):
        for name, attention in (("attention", "luong-general"), ("no_attention", None)):
            torch.manual_seed(config.seed)
            model = Seq2Seq(len(src_vocab), len(tgt_vocab), hidden_size=hidden, embedding_size=32,
                            attention=attention, bidirectional_encoder=True,
                            input_feeding=False)  # fmt: skip
            t0 = time.perf_counter()
            fit(model, BucketBatches(train_ex, batch, seed=config.seed), test_ex[:200],
                steps=steps, lr=5e-3, eval_every=steps)  # fmt: skip
            r = evaluate(model, test_ex, references=refs)
            per, wer = error_rates(r["outputs"]["greedy"], refs)
            metrics[f"per_{name}"], metrics[f"wer_{name}"] = per, wer
            rows.append((name, per, wer, r["token_accuracy"], time.perf_counter() - t0))
    metrics.update({"train_pairs": len(train), "test_words": len(test_words), "steps": steps})
    if config.quick:
        success = min(r[1] for r in rows) < 1.0
    else:
        success = (
            metrics["wer_attention"] < metrics["wer_no_attention"]
            and metrics["per_attention"] < 0.25
        )
    table = "\n".join(f"| {n} | {p:.3f} | {w:.3f} | {a:.3f} | {s:.0f} |" for n, p, w, a, s in rows)
    report = f"""# g2p

cmudict, stress stripped; {len(train)} training pairs (a subset of the train split),
{len(test_words)} held-out test words (hash split), all pronunciations of a word as
references. Bidirectional LSTM encoder, LSTM decoder ({hidden} units), {steps} Adam
steps of {batch}. Success rule: attention lowers the WER, and its PER is below 25%.

| model | PER | WER | per-phoneme accuracy, teacher forced | seconds |
|---|---|---|---|---|
{table}

Not comparable (other splits, the full training set, long training): about 24% WER for
Sequitur-style joint n-grams and LSTM encoder-decoders on their CMUdict splits.
"""
    published = {} if config.quick else {"wer_attention": 0.24}
    return ExperimentResult("g2p", success, metrics, published, report)
