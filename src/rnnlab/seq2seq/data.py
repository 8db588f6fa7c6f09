"""Parallel data for sequence to sequence: vocabularies, the TSV reader, batches.

- :class:`Vocabulary`: characters or whitespace-separated words, with the special tokens
  ``<pad>`` (0), ``<s>`` (1, bos), ``</s>`` (2, eos) and ``<unk>`` (3).
- :func:`read_tsv`: one ``source<TAB>target`` pair a line; a line without a tab, or with
  an empty side, is refused with its line number.
- :func:`collate`: padded tensors of a list of encoded pairs
  (:class:`Seq2SeqBatch`: ``src (B, S)``, ``src_lengths (B,)``, ``tgt_in (B, T)`` starting
  with bos, ``tgt_out (B, T)`` ending with eos).
- :class:`BucketBatches`: an endless, resumable iterator of batches of similar lengths
  (sorted within pools of 50 batches, pools and batches shuffled each epoch).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from rnnlab.errors import InputError, InputTypeError

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
LEVELS = ("char", "word")


def tokenize(text: str, level: str) -> list[str]:
    """Characters of ``text`` (level "char") or its whitespace-separated words ("word")."""
    if level == "char":
        return list(text)
    if level == "word":
        return text.split()
    raise InputError(f"level: expected one of {LEVELS}, received {level!r}")


class Vocabulary:
    """Tokens <-> ids, the four special tokens first (ids 0-3).

    Args:
        tokens: the vocabulary's ordinary tokens (duplicates and specials are dropped).
        level: "char" (decode joins with "") or "word" (joins with " ").
    """

    pad_index, bos_index, eos_index, unk_index = 0, 1, 2, 3

    def __init__(self, tokens: Iterable[str], level: str = "char") -> None:
        if level not in LEVELS:
            raise InputError(f"level: expected one of {LEVELS}, received {level!r}")
        self.level = level
        self.itos = list(SPECIALS) + [t for t in dict.fromkeys(tokens) if t not in SPECIALS]
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    @classmethod
    def build(cls, texts: Iterable[str], level: str = "char", max_size: int | None = None):
        """The tokens of ``texts``, most frequent first (ties by first appearance)."""
        counts = Counter(t for text in texts for t in tokenize(text, level))
        ranked = sorted(counts, key=lambda t: -counts[t])
        return cls(ranked[:max_size] if max_size else ranked, level)

    def __len__(self) -> int:
        return len(self.itos)

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text, self.level)

    def encode(self, text: str | Sequence[str], unknown: str = "error", name: str = "text"):
        """Ids of a text (tokenised at this level) or of a token list. ``unknown``:
        "error" refuses a token outside the vocabulary, naming it; "unk" maps it to <unk>."""
        tokens = self.tokenize(text) if isinstance(text, str) else list(text)
        ids = []
        for t in tokens:
            i = self.stoi.get(t)
            if i is None or i < 4:
                if unknown != "unk":
                    raise InputError(
                        f"{name}: token {t!r} is not in the vocabulary ({len(self)} tokens)"
                    )
                i = self.unk_index
            ids.append(i)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids`` (special tokens other than <unk> left out)."""
        words = [self.itos[i] for i in ids if i >= 3 or i == self.unk_index]
        return ("" if self.level == "char" else " ").join(words)

    def to_dict(self) -> dict:
        return {"level": self.level, "itos": self.itos}

    @classmethod
    def from_dict(cls, d: dict) -> Vocabulary:
        return cls(d["itos"][len(SPECIALS) :], d["level"])


def read_tsv(path: str | Path) -> list[tuple[str, str]]:
    """``source<TAB>target`` pairs, one a line (blank lines skipped; a third column is
    refused). Errors name the file and the line."""
    pairs = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                what = "no tab" if len(parts) == 1 else f"{len(parts) - 1} tabs"
                raise InputError(
                    f"data: line {n} of {path} has {what}; expected 'source<TAB>target'"
                )
            src, tgt = parts
            if not src.strip() or not tgt.strip():
                side = "source" if not src.strip() else "target"
                raise InputError(f"data: line {n} of {path} has an empty {side}")
            pairs.append((src, tgt))
    if not pairs:
        raise InputError(f"data: {path} holds no 'source<TAB>target' lines")
    return pairs


class Seq2SeqBatch(NamedTuple):
    """Padded batch: src (B, S), src_lengths (B,), tgt_in (B, T) = bos + y, tgt_out
    (B, T) = y + eos, all padded with 0."""

    src: Tensor
    src_lengths: Tensor
    tgt_in: Tensor
    tgt_out: Tensor


def collate(examples: Sequence[tuple[list[int], list[int]]]) -> Seq2SeqBatch:
    """Pad a list of (source ids, target ids) pairs (no bos/eos in them)."""
    if not examples:
        raise InputError("examples: expected at least one pair, received none")
    B = len(examples)
    S = max(len(s) for s, _ in examples)
    T = max(len(t) for _, t in examples) + 1
    src = torch.zeros(B, S, dtype=torch.long)
    tgt_in = torch.zeros(B, T, dtype=torch.long)
    tgt_out = torch.zeros(B, T, dtype=torch.long)
    for b, (s, t) in enumerate(examples):
        if not s:
            raise InputError(f"examples: source {b} is empty")
        src[b, : len(s)] = torch.tensor(s)
        tgt_in[b, : len(t) + 1] = torch.tensor([BOS_ID, *t])
        tgt_out[b, : len(t) + 1] = torch.tensor([*t, EOS_ID])
    lengths = torch.tensor([len(s) for s, _ in examples])
    return Seq2SeqBatch(src, lengths, tgt_in, tgt_out)


BOS_ID, EOS_ID = Vocabulary.bos_index, Vocabulary.eos_index


def encode_pairs(pairs, src_vocab: Vocabulary, tgt_vocab: Vocabulary, unknown: str = "unk"):
    """(source ids, target ids) of text pairs."""
    return [
        (src_vocab.encode(s, unknown, "source"), tgt_vocab.encode(t, unknown, "target"))
        for s, t in pairs
    ]


class BucketBatches:
    """Endless batches of encoded pairs with similar source lengths (resumable).

    Each epoch shuffles the examples, sorts pools of ``50 * batch_size`` of them by
    (source, target) length, cuts the pools into batches and shuffles the batches. The
    order is a function of (seed, epoch), so ``state_dict`` is just (epoch, position).
    """

    def __init__(self, examples, batch_size: int, seed: int = 0, pool: int = 50) -> None:
        if not examples:
            raise InputError("examples: expected at least one training pair, received none")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputTypeError(f"batch_size: expected an integer >= 1, received {batch_size!r}")
        self.examples, self.batch_size, self.seed, self.pool = examples, batch_size, seed, pool
        self.epoch, self.position = 0, 0
        self._order = self._epoch_batches(0)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        idx = list(range(len(self.examples)))
        rng.shuffle(idx)
        size = self.pool * self.batch_size
        batches = []
        for p in range(0, len(idx), size):
            chunk = sorted(idx[p : p + size], key=lambda i: (len(self.examples[i][0]),
                                                             len(self.examples[i][1])))  # fmt: skip
            batches += [
                chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
            ]
        rng.shuffle(batches)
        return batches

    def __iter__(self):
        return self

    def __next__(self) -> Seq2SeqBatch:
        if self.position >= len(self._order):
            self.epoch += 1
            self.position = 0
            self._order = self._epoch_batches(self.epoch)
        batch = self._order[self.position]
        self.position += 1
        return collate([self.examples[i] for i in batch])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._epoch_batches(self.epoch)


class GeneratedBatches:
    """Endless batches drawn fresh from a generator (resumable).

    ``draw(rng) -> (source text, target text)`` with ``rng`` a ``random.Random``; the
    generator's state is this iterator's state. An optional ``curriculum`` object with
    ``state_dict``/``load_state_dict`` is saved along with it."""

    def __init__(self, draw: Callable[[random.Random], tuple[str, str]], src_vocab, tgt_vocab,
                 batch_size: int, seed: int = 0, curriculum=None) -> None:  # fmt: skip
        self.draw, self.src_vocab, self.tgt_vocab = draw, src_vocab, tgt_vocab
        self.batch_size, self.curriculum = batch_size, curriculum
        self.rng = random.Random(seed)

    def __iter__(self):
        return self

    def __next__(self) -> Seq2SeqBatch:
        pairs = [self.draw(self.rng) for _ in range(self.batch_size)]
        return collate(encode_pairs(pairs, self.src_vocab, self.tgt_vocab))

    def state_dict(self) -> dict:
        cur = self.curriculum.state_dict() if self.curriculum is not None else None
        return {"rng": self.rng.getstate(), "curriculum": cur}

    def load_state_dict(self, state: dict) -> None:
        rng = state["rng"]
        self.rng.setstate((rng[0], tuple(rng[1]), rng[2]))
        if self.curriculum is not None and state.get("curriculum") is not None:
            self.curriculum.load_state_dict(state["curriculum"])


__all__ = [
    "SPECIALS",
    "BucketBatches",
    "GeneratedBatches",
    "Seq2SeqBatch",
    "Vocabulary",
    "collate",
    "encode_pairs",
    "read_tsv",
    "tokenize",
]
