"""``rnnlab reproduce vae-words``: a character-level recurrent VAE (Bowman et al. 2016) on
cmudict words, against a plain recurrent language model of the same size.

Words of 3-12 letters from cmudict (:mod:`rnnlab.seq2seq.cmudict`; train / test by the
MD5 hash of the word), characters as tokens. :class:`rnnlab.generative.SequenceVAE`:
LSTM encoder and decoder, z fed to the decoder's initial state and to every step, KL
weight annealed linearly from 0 to 1 over the first half of training, word dropout 0.25.
The language model is the VAE's decoder without z (same embedding, LSTM and output
sizes). Both are trained by :class:`rnnlab.train.Trainer` with Adam for the same steps.

On held-out words: the ELBO, KL per character and active units of the VAE, its IWAE bound
(k samples) on log p(word), and the LM's exact log-likelihood, all in nats per word; the
gap IWAE - LM says how close the VAE's bound comes (Bowman et al. report the VAE's bound
slightly above or below the LM's likelihood on the Penn Treebank). Samples from the prior
and interpolations between two held-out words are shown in the report. Success rule
(ours): the IWAE bound is within 10% of the LM's log-likelihood per word and the KL is
above 0 (no total posterior collapse).
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab._threads import torch_threads
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register
from rnnlab.generative import KLAnnealing, SequenceVAE
from rnnlab.nn import LSTM
from rnnlab.seq2seq import cmudict
from rnnlab.seq2seq.data import Vocabulary
from rnnlab.train import StepOutput, TrainConfig, Trainer


class CharLM(nn.Module):
    """The VAE's decoder without z: embedding, LSTM, linear; log p(x) summed per word."""

    def __init__(self, vocab: int, hidden: int, embedding: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding)
        self.rnn = LSTM(embedding, hidden)
        self.output = nn.Linear(hidden, vocab)

    def log_likelihood(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        B, T = x.shape
        inputs = torch.cat([torch.full((B, 1), 1), x], 1)  # bos = 1
        t = torch.arange(T + 1)[None]
        targets = torch.cat([x, torch.zeros(B, 1, dtype=torch.long)], 1)
        targets = torch.where(t == lengths[:, None], 2, targets)  # eos = 2
        mask = t <= lengths[:, None]
        h, _ = self.rnn(self.embedding(inputs), lengths=lengths + 1)
        logp = F.log_softmax(self.output(h), -1).gather(-1, targets[..., None])[..., 0]
        return (logp * mask).sum(-1)


def _pad(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs])
    x = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.tensor(s)
    return x, lengths


@register("vae-words", "Bowman et al. 2016: character VAE on cmudict words vs a same-size LM")
def run(config: ExperimentConfig) -> ExperimentResult:
    if config.quick:
        n_train, n_test, steps, hidden, latent, batch, k = 400, 40, 15, 16, 4, 32, 5
    else:
        n_train, n_test, steps, hidden, latent, batch, k = 20_000, 500, 2000, 64, 8, 64, 50
    sets = cmudict.split(cmudict.load())
    keep = lambda ws: sorted(w for w in ws if 3 <= len(w) <= 12 and "'" not in w)  # noqa: E731
    rng = random.Random(config.seed)
    train_words = keep(sets["train"])
    rng.shuffle(train_words)
    train_words = train_words[:n_train]
    test_words = keep(sets["test"])
    rng.shuffle(test_words)
    test_words = test_words[:n_test]
    vocab = Vocabulary.build(train_words, "char")
    train = [vocab.encode(w, "unk") for w in train_words]
    test_x, test_l = _pad([vocab.encode(w, "unk") for w in test_words])
    g = torch.Generator().manual_seed(config.seed)

    def batches():
        while True:
            idx = torch.randint(len(train), (batch,), generator=g).tolist()
            yield _pad([train[i] for i in idx])

    anneal = KLAnnealing(steps // 2)
    cfg = TrainConfig(steps=steps, clip_norm=5.0, progress=False)
    with torch_threads(1):
        torch.manual_seed(config.seed)
        vae = SequenceVAE(len(vocab), latent, hidden, 16, word_dropout=0.25)
        trainer = Trainer(vae, torch.optim.Adam(vae.parameters(), lr=3e-3), batches(),
                          lambda m, b, c: StepOutput(*m.loss(*b, anneal(trainer.step))[:2]),
                          cfg)  # fmt: skip
        trainer.fit()
        torch.manual_seed(config.seed)
        lm = CharLM(len(vocab), hidden, 16)

        def lm_loss(m, b, c):
            x, lengths = b
            tokens = int((lengths + 1).sum())
            return StepOutput(-m.log_likelihood(x, lengths).sum() / tokens, tokens)

        Trainer(lm, torch.optim.Adam(lm.parameters(), lr=3e-3), batches(), lm_loss, cfg).fit()
        vae.eval()
        lm.eval()
        with torch.no_grad():
            eg = torch.Generator().manual_seed(config.seed + 1)
            elbo, rec, kl = vae.elbo(test_x, test_l, samples=10, generator=eg)
            iwae = vae.iwae(test_x, test_l, k=k, generator=eg)
            lm_ll = lm.log_likelihood(test_x, test_l)
            active, _ = vae.active_units(test_x, test_l)
            samples = [vocab.decode(s) for s in vae.sample(8, 1.0, 14, generator=eg)]
            a, b = test_x[0, : test_l[0]], test_x[1, : test_l[1]]
            path = [vocab.decode(s) for s in vae.interpolate(a, b, steps=6, max_length=14)]
    chars = float((test_l + 1).sum())
    m = {
        "elbo_per_word": float(elbo.mean()),
        "iwae_per_word": float(iwae.mean()),
        "lm_loglik_per_word": float(lm_ll.mean()),
        "kl_per_char": float(kl.sum()) / chars,
        "reconstruction_per_char": float(-rec.sum()) / chars,
        "iwae_nats_per_char": float(-iwae.sum()) / chars,
        "lm_nats_per_char": float(-lm_ll.sum()) / chars,
        "active_units": active,
        "latent_size": latent,
        "iwae_k": k,
        "steps": steps,
        "train_words": len(train),
        "test_words": len(test_words),
    }
    m["gap_iwae_minus_lm_per_word"] = m["iwae_per_word"] - m["lm_loglik_per_word"]
    success = (
        abs(m["gap_iwae_minus_lm_per_word"]) < 0.1 * abs(m["lm_loglik_per_word"])
        and m["kl_per_char"] > 0
    )
    report = f"""# vae-words

Preset: {"quick" if config.quick else "full"}, seed {config.seed}. {len(train)} training
and {len(test_words)} held-out cmudict words (3-12 letters), characters as tokens;
SequenceVAE and a language model of the same size ({hidden}-unit LSTMs, embedding 16,
latent {latent}), {steps} Adam steps of {batch} words each, KL weight annealed over
{steps // 2} steps, word dropout 0.25. Held-out, nats per word (the eos included; the
ELBO averaged over 10 draws of z):

| quantity | value |
|---|---|
| VAE ELBO | {m["elbo_per_word"]:.3f} |
| VAE IWAE bound (k = {k}) | {m["iwae_per_word"]:.3f} |
| LM log-likelihood | {m["lm_loglik_per_word"]:.3f} |
| IWAE - LM | {m["gap_iwae_minus_lm_per_word"]:+.3f} |
| KL per character | {m["kl_per_char"]:.4f} |
| active units | {active} of {latent} |

Samples from the prior (temperature 1): {", ".join(repr(s) for s in samples)}

Interpolation from {test_words[0]!r} to {test_words[1]!r} (posterior means, greedy):
{" -> ".join(repr(s) for s in path)}

Success rule (ours): |IWAE - LM| below 10% of the LM's log-likelihood per word and KL > 0
({"met" if success else "NOT met"}).
"""
    return ExperimentResult("vae-words", success, m, {}, report)
