"""Encoder-decoder training and decoding: rnnlab's Seq2Seq against plain PyTorch.

Training: the same architecture (embedding -> 1-layer LSTM encoder that stops at each
source's length -> LSTM decoder started from the encoder's final state -> linear
softmax, 128 units) on the same batches of 3-digit addition questions, with Adam and
norm clipping. rnnlab trains through :class:`rnnlab.train.Trainer` with
:class:`rnnlab.seq2seq.Seq2Seq`; the plain loop uses ``torch.nn.LSTM`` with
``pack_padded_sequence``. The two alternate in blocks of steps (in alternating order),
and the ratio is the median of the per-block ratios (target >= 0.9x). A second row does
the same with Luong ("general") attention on both sides.

Decoding: sentences/s of greedy and beam (5) search over 512 sources, and the decoder
step on torch's fused cell kernel against the generic ``Recurrent.step``.
"""

from __future__ import annotations

import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from rnnlab._threads import torch_threads
from rnnlab.bench import timeit
from rnnlab.seq2seq import Seq2Seq
from rnnlab.seq2seq.data import BucketBatches, Vocabulary, collate, encode_pairs
from rnnlab.tasks import seq_addition
from rnnlab.train.loop import StepOutput, TrainConfig, Trainer


class _PlainSeq2Seq(nn.Module):
    def __init__(self, vocab: int, emb: int, hidden: int, attention: bool):
        super().__init__()
        self.src_embedding = nn.Embedding(vocab, emb, padding_idx=0)
        self.tgt_embedding = nn.Embedding(vocab, emb, padding_idx=0)
        self.encoder = nn.LSTM(emb, hidden, batch_first=True)
        self.decoder = nn.LSTM(emb, hidden, batch_first=True)
        self.attention = attention
        if attention:
            self.w = nn.Linear(hidden, hidden, bias=False)
            self.combine = nn.Linear(2 * hidden, hidden, bias=False)
        self.output = nn.Linear(hidden, vocab)

    def forward(self, src, lengths, tgt_in):
        packed = pack_padded_sequence(self.src_embedding(src), lengths, batch_first=True,
                                      enforce_sorted=False)  # fmt: skip
        mem, state = self.encoder(packed)
        h, _ = self.decoder(self.tgt_embedding(tgt_in), state)  # (B, T, H)
        if self.attention:
            mem, _ = nn.utils.rnn.pad_packed_sequence(mem, batch_first=True)  # (B, S, H)
            mask = torch.arange(mem.shape[1]) < lengths[:, None]  # (B, S)
            e = h @ self.w(mem).transpose(1, 2)  # (B, T, S)
            a = torch.softmax(e.masked_fill(~mask[:, None], float("-inf")), -1)
            h = torch.tanh(self.combine(torch.cat([a @ mem, h], -1)))
        return self.output(h)  # (B, T, V)


def _loss(logits, tgt_out):
    return F.cross_entropy(logits.transpose(1, 2), tgt_out, ignore_index=0)


def _training_row(attention: bool, steps: int, block: int) -> dict:
    vocab = Vocabulary(seq_addition.ALPHABET)
    train = encode_pairs(seq_addition.pairs(20_000, 3, seed=0), vocab, vocab)
    torch.manual_seed(0)
    kind = "luong-general" if attention else None
    model = Seq2Seq(len(vocab), len(vocab), hidden_size=128, embedding_size=32, attention=kind,
                    input_feeding=False)  # fmt: skip
    plain = _PlainSeq2Seq(len(vocab), 32, 128, attention)

    def loss_fn(m, b, carry):
        loss, n = m.loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out)
        return StepOutput(loss, n)

    trainer = Trainer(model, torch.optim.Adam(model.parameters(), 1e-3),
                      BucketBatches(train, 128, seed=1), loss_fn,
                      TrainConfig(steps=0, clip_norm=5.0, progress=False))  # fmt: skip
    plain_opt = torch.optim.Adam(plain.parameters(), 1e-3)
    plain_batches = BucketBatches(train, 128, seed=1)

    def run_rnnlab():
        trainer.config.steps += block
        trainer.fit()

    def run_plain():
        for _ in range(block):
            b = next(plain_batches)
            loss = _loss(plain(b.src, b.src_lengths, b.tgt_in), b.tgt_out)
            plain_opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(plain.parameters(), 5.0)
            plain_opt.step()

    ratios, t_r, t_p = [], 0.0, 0.0
    run_rnnlab()
    run_plain()  # warm-up
    for i in range(steps // block):
        order = (run_rnnlab, run_plain) if i % 2 == 0 else (run_plain, run_rnnlab)
        times = {}
        for fn in order:
            t0 = time.perf_counter()
            fn()
            times[fn] = time.perf_counter() - t0
        t_r, t_p = t_r + times[run_rnnlab], t_p + times[run_plain]
        ratios.append(times[run_plain] / times[run_rnnlab])
    tokens = sum(len(t) + 1 for _, t in train) / len(train) * 128 * block * len(ratios)
    return {"rnnlab_tokens_per_s": tokens / t_r, "plain_tokens_per_s": tokens / t_p,
            "ratio": statistics.median(ratios)}  # fmt: skip


def _decoding(n: int) -> dict:
    vocab = Vocabulary(seq_addition.ALPHABET)
    torch.manual_seed(0)
    model = Seq2Seq(len(vocab), len(vocab), hidden_size=128, embedding_size=32,
                    attention="luong-general").eval()  # fmt: skip
    b = collate(encode_pairs(seq_addition.pairs(n, 3, seed=5), vocab, vocab))
    out = {}
    for name, beam in (("greedy", 1), ("beam5", 5)):
        t = timeit(lambda beam=beam: model.translate(b.src, b.src_lengths, beam, 6), repeat=3)
        out[f"{name}_sentences_per_s"] = n / t
    fast = model._fast_cell
    for rows in (n, 8):  # many sources (compute-bound), few (per-step overhead)
        ratios = []

        def decode(rows=rows):
            model.translate(b.src[:rows], b.src_lengths[:rows], 5, 6)

        for _ in range(3):  # alternating: the fused cell step, then the generic step
            t_fast = timeit(decode, repeat=5, warmup=1)
            model._fast_cell = lambda: None  # the generic Recurrent.step
            t_generic = timeit(decode, repeat=5, warmup=1)
            model._fast_cell = fast
            ratios.append(t_generic / t_fast)
        out[f"fused_step_speedup_{rows}_sources"] = statistics.median(ratios)
    return out


def main(quick: bool = False) -> dict:
    """Print the table and return the measurements."""
    steps, block, n = (20, 10, 128) if quick else (200, 20, 512)
    with torch_threads(1):
        rows = {"plain": _training_row(False, steps, block),
                "attention": _training_row(True, steps, block)}  # fmt: skip
        dec = _decoding(n)
    print("training (3-digit addition, batch 128, H = 128), tokens/s:")
    print(f"{'model':<10} {'rnnlab':>10} {'torch.nn':>10} {'ratio':>7}")
    for name, r in rows.items():
        print(f"{name:<10} {r['rnnlab_tokens_per_s']:>10,.0f} {r['plain_tokens_per_s']:>10,.0f} "
              f"{r['ratio']:>6.2f}x")  # fmt: skip
    print(
        f"decoding {n} sources (attention): greedy {dec['greedy_sentences_per_s']:,.0f} "
        f"sentences/s, beam 5 {dec['beam5_sentences_per_s']:,.0f} sentences/s"
    )
    print(
        f"beam 5 with the fused cell step against the generic Recurrent.step: "
        f"{dec[f'fused_step_speedup_{n}_sources']:.2f}x ({n} sources), "
        f"{dec['fused_step_speedup_8_sources']:.2f}x (8 sources)"
    )
    return {"training": rows, "decoding": dec}


__all__ = ["main"]
