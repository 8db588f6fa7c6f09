"""Character LM: rnnlab's training stack against a plain PyTorch loop (torch.nn.LSTM).

Both train the same architecture (embedding -> 2-layer LSTM -> linear softmax) on the same
data (pydoc_data.topics, char level, the last 5% held out) for the same number of steps
with the same optimizer (Adam), clipping and truncated-BPTT batching (B parallel streams,
state carried and detached). rnnlab runs through :class:`rnnlab.train.Trainer` with
:class:`rnnlab.train.LanguageModel` and :class:`rnnlab.data.StreamBatcher`; the plain loop
is written here from scratch with ``torch.nn`` only. The two alternate in blocks of steps
(in alternating order) so that a changing machine load hits both alike; the
throughput ratio is the median of the per-block ratios. Reported: validation bits/char of each
(measured by the same plain evaluation), their difference (target: rnnlab <= plain +
0.02) and the training-throughput ratio (target: rnnlab >= 0.9x the plain loop).
"""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab._threads import torch_threads


class _PlainLM(nn.Module):
    def __init__(self, vocab: int, emb: int, hidden: int, layers: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, emb)
        self.rnn = nn.LSTM(emb, hidden, layers, batch_first=True)
        self.output = nn.Linear(hidden, vocab)

    def forward(self, x, state=None):
        h, state = self.rnn(self.embedding(x), state)  # (B, T, H)
        return self.output(h), state  # (B, T, V)


@torch.no_grad()
def _plain_eval(model: nn.Module, ids: torch.Tensor, batch: int = 16, seq: int = 256) -> float:
    """Bits/char of ``model`` on ``ids`` (B contiguous streams, state carried)."""
    model.eval()
    n = (ids.numel() - 1) // batch
    x = ids[: batch * n].view(batch, n).long()  # (B, L)
    y = ids[1 : batch * n + 1].view(batch, n).long()  # (B, L)
    total, state = 0.0, None
    for i in range(0, n, seq):
        logits, state = model(x[:, i : i + seq], state)  # (B, T, V)
        total += float(
            F.cross_entropy(logits.flatten(0, 1), y[:, i : i + seq].flatten(), reduction="sum")
        )
    model.train()
    return total / (batch * n) / math.log(2)


def _plain_trainer(train_ids, vocab, *, emb, hidden, layers, batch, seq, lr, clip, seed):
    """A generator that runs one plain training step per ``next()``, yielding seconds."""
    torch.manual_seed(seed)
    model = _PlainLM(vocab, emb, hidden, layers)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = (train_ids.numel() - 1) // batch
    x = train_ids[: batch * n].view(batch, n)  # (B, L) char-rnn streams
    y = train_ids[1 : batch * n + 1].view(batch, n)  # (B, L)
    chunks = math.ceil(n / seq)

    def steps():
        state, k = None, 0
        while True:
            t0 = time.perf_counter()
            if k == 0:
                state = None
            xb = x[:, k * seq : (k + 1) * seq].long()  # (B, T)
            yb = y[:, k * seq : (k + 1) * seq].long()  # (B, T)
            logits, state = model(xb, state)
            loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten())
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            state = tuple(s.detach() for s in state)
            k = (k + 1) % chunks
            yield time.perf_counter() - t0, yb.numel()

    return model, steps()


def main(quick: bool = False) -> dict:
    """Train both for the same steps; print and return bits/char and throughput."""
    with torch_threads(1):  # as `rnnlab train lm` (its --threads default)
        return _main(quick)


def _main(quick: bool) -> dict:
    from rnnlab.data import CharTokenizer, StreamBatcher, topics_corpus
    from rnnlab.optim import make_optimizer
    from rnnlab.train import LanguageModel, LMConfig, TrainConfig, Trainer, lm_loss

    emb, hidden, layers, batch, seq, lr, clip, seed = 64, 128, 2, 32, 100, 3e-3, 5.0, 0
    steps, block = (20, 5) if quick else (400, 20)
    if quick:
        hidden = 64
    corpus = topics_corpus()
    tok = CharTokenizer().fit(corpus.blocks())
    ids = tok.encode_blocks(corpus.blocks(), corpus.size_bytes).ids
    n_val = int(ids.numel() * 0.05)
    train_ids, val_ids = ids[:-n_val], ids[-n_val:]
    vocab = tok.vocab_size

    torch.manual_seed(seed)
    model = LanguageModel(
        LMConfig(vocab_size=vocab, embedding_size=emb, hidden_size=hidden, num_layers=layers)
    )
    trainer = Trainer(
        model,
        make_optimizer("adam", model.parameters(), lr=lr),
        StreamBatcher(train_ids, batch, seq),
        lm_loss,
        TrainConfig(steps=0, clip_norm=clip, progress=False),
    )
    plain, plain_steps = _plain_trainer(
        train_ids,
        vocab,
        emb=emb,
        hidden=hidden,
        layers=layers,
        batch=batch,
        seq=seq,
        lr=lr,
        clip=clip,
        seed=seed,
    )
    t_rnnlab = t_plain = 0.0
    tok_rnnlab = tok_plain = 0
    ratios = []  # per block: plain seconds / rnnlab seconds = rnnlab / plain throughput

    def rnnlab_block(done):
        trainer.config.steps = done
        t0 = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - t0

    def plain_block():
        return sum(next(plain_steps)[0] for _ in range(block))

    for i, done in enumerate(range(block, steps + 1, block)):
        if i % 2 == 0:  # alternate the order (ABBA) so that drifting load cancels
            tr, tp = rnnlab_block(done), plain_block()
        else:
            tp, tr = plain_block(), rnnlab_block(done)
        t_rnnlab, t_plain = t_rnnlab + tr, t_plain + tp
        tok_rnnlab, tok_plain = tok_rnnlab + block * batch * seq, tok_plain + block * batch * seq
        ratios.append(tp / tr)
    bpc_r, bpc_p = _plain_eval(trainer.model, val_ids), _plain_eval(plain, val_ids)
    rec = {
        "steps": steps,
        "hidden": hidden,
        "layers": layers,
        "batch": batch,
        "seq_len": seq,
        "rnnlab_val_bits_per_char": bpc_r,
        "plain_val_bits_per_char": bpc_p,
        "bits_per_char_difference": bpc_r - bpc_p,
        "rnnlab_tokens_per_second": tok_rnnlab / t_rnnlab,
        "plain_tokens_per_second": tok_plain / t_plain,
        "throughput_ratio": sorted(ratios)[len(ratios) // 2],  # median over blocks
        "throughput_ratio_total": (tok_rnnlab / t_rnnlab) / (tok_plain / t_plain),
        "recurrent_layer": f"{type(model.rnn).__module__}.{type(model.rnn).__name__}",
    }
    rec["quality_ok"] = rec["bits_per_char_difference"] <= 0.02
    rec["speed_ok"] = rec["throughput_ratio"] >= 0.9
    print(
        f"char LM on pydoc_data.topics: 2x{hidden} LSTM, batch {batch}, seq {seq}, "
        f"{steps} steps, 1 thread ({rec['recurrent_layer']})"
    )
    print(f"{'':10s} {'val bits/char':>14s} {'tokens/s':>10s}")
    print(f"{'rnnlab':10s} {bpc_r:14.4f} {rec['rnnlab_tokens_per_second']:10,.0f}")
    print(f"{'plain':10s} {bpc_p:14.4f} {rec['plain_tokens_per_second']:10,.0f}")
    print(
        f"difference {rec['bits_per_char_difference']:+.4f} bits/char (target <= +0.02); "
        f"throughput ratio {rec['throughput_ratio']:.3f}x (median of {len(ratios)} blocks; "
        f"overall {rec['throughput_ratio_total']:.3f}x; target >= 0.9)"
    )
    return rec
