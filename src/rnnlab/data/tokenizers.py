"""Character- and word-level tokenizers with a saved vocabulary and an unknown token.

A tokenizer maps text to integer ids ``0 .. V-1`` and back. Id 0 is always the unknown
token ``<unk>`` (decoded as U+FFFD for characters). The vocabulary is built from the
training text (:meth:`fit`, which accepts a stream of text blocks so that a corpus of
hundreds of MB never has to be held as one string) and saved with :meth:`to_dict` /
restored with :func:`tokenizer_from_dict`, e.g. inside a checkpoint.

Encoding of a long stream (:meth:`encode_blocks`) fills one preallocated compact array
(``uint8`` when ``V <= 256``, else ``int32``): one byte per character for typical text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch

from rnnlab.errors import InputError

UNK = "<unk>"
_BMP = 0x10000  # code points below this are looked up in a dense table
_WORD_RE = re.compile(r"\w+|[^\w\s]|\n")


def _code_points(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as a uint32 array (N,)."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


class Encoded(NamedTuple):
    """A token stream: ``ids`` (LongTensor-compatible ``(N,)``) and the unknown count."""

    ids: torch.Tensor
    unknown: int


def compact_dtype(vocab_size: int) -> np.dtype:
    """The smallest numpy dtype that stores ids ``< vocab_size`` (uint8 or int32)."""
    return np.dtype(np.uint8) if vocab_size <= 256 else np.dtype(np.int32)


class _Stream:
    """Accumulates encoded blocks into one growing preallocated array."""

    def __init__(self, dtype: np.dtype, capacity: int):
        self.buf = np.empty(max(int(capacity), 1024), dtype=dtype)
        self.n = 0
        self.unknown = 0

    def add(self, ids: np.ndarray, unknown: int) -> None:
        need = self.n + len(ids)
        if need > len(self.buf):  # grow geometrically (only when the capacity hint was low)
            new = np.empty(max(need, 2 * len(self.buf)), dtype=self.buf.dtype)
            new[: self.n] = self.buf[: self.n]
            self.buf = new
        self.buf[self.n : need] = ids
        self.n = need
        self.unknown += unknown

    def result(self) -> Encoded:
        buf = self.buf[: self.n]
        if len(self.buf) > 2 * self.n + 1024:  # shrink a much too large hint
            buf = buf.copy()
        return Encoded(torch.from_numpy(buf), self.unknown)


class CharTokenizer:
    """One token per Unicode character; ``tokens[0]`` is ``<unk>``.

    Args:
        tokens: the vocabulary (``tokens[0] == "<unk>"``, then single characters), or None
            for an empty tokenizer to :meth:`fit`.
    """

    level = "char"

    def __init__(self, tokens: list[str] | None = None):
        self._set([UNK] if tokens is None else tokens)

    def _set(self, tokens: list[str]) -> None:
        if not tokens or tokens[0] != UNK or any(len(t) != 1 for t in tokens[1:]):
            raise InputError(
                "tokens: expected ['<unk>', c1, c2, ...] with single characters, "
                f"received {tokens[:5]!r}..."
            )
        codes = np.array([ord(t) for t in tokens[1:]], dtype=np.uint32)
        if len(codes) > 1 and not np.all(np.diff(codes.astype(np.int64)) > 0):
            raise InputError("tokens: expected characters in increasing code-point order")
        self.tokens = list(tokens)
        self._codes = codes
        # dense lookup for the Basic Multilingual Plane: code point -> id (0 = unknown)
        self._table = np.zeros(_BMP, dtype=np.int32)
        bmp = codes < _BMP
        self._table[codes[bmp]] = np.flatnonzero(bmp) + 1

    @property
    def vocab_size(self) -> int:
        """V, the number of tokens including ``<unk>``."""
        return len(self.tokens)

    def fit(self, blocks: Iterable[str]) -> CharTokenizer:
        """Build the vocabulary from every character in ``blocks``; returns self."""
        present = np.zeros(_BMP, dtype=bool)
        astral: set[int] = set()
        for block in blocks:
            codes = _code_points(block)  # (N,)
            small = codes < _BMP
            present[codes[small]] = True
            if not small.all():
                astral.update(np.unique(codes[~small]).tolist())
        found = np.flatnonzero(present).tolist() + sorted(astral)
        self._set([UNK, *map(chr, found)])
        return self

    def _encode_np(self, text: str) -> tuple[np.ndarray, int]:
        codes = _code_points(text)  # (N,)
        ids = self._table[np.minimum(codes, _BMP - 1)]  # (N,)
        astral = np.flatnonzero(codes >= _BMP)
        if astral.size:  # characters outside the BMP: binary search in the sorted codes
            ids[astral] = 0
            c = codes[astral]
            if len(self._codes):
                pos = np.minimum(np.searchsorted(self._codes, c), len(self._codes) - 1)
                ids[astral] = np.where(self._codes[pos] == c, pos + 1, 0)
        return ids, int((ids == 0).sum())

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of ``text`` (unknown characters -> 0)."""
        return self._encode_np(text)[0].tolist()

    def unknown_symbols(self, text: str) -> list[str]:
        """The distinct characters of ``text`` that are not in the vocabulary."""
        return sorted({c for c, i in zip(text, self.encode(text)) if i == 0})

    def encode_blocks(self, blocks: Iterable[str], capacity: int = 0) -> Encoded:
        """Encode a stream of text blocks into one compact tensor ``(N,)``.

        ``capacity`` is a size hint (e.g. the file's size in bytes, an upper bound on its
        number of characters) so that the array is allocated once.
        """
        out = _Stream(compact_dtype(self.vocab_size), capacity)
        for block in blocks:
            ids, unk = self._encode_np(block)
            out.add(ids, unk)
        return out.result()

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` (``<unk>`` decodes as U+FFFD)."""
        return "".join("\ufffd" if i == 0 else self.tokens[i] for i in map(int, ids))

    def to_dict(self) -> dict:
        """A JSON/checkpoint-friendly description of the vocabulary."""
        return {"level": self.level, "tokens": list(self.tokens)}


class WordTokenizer:
    """Words, single punctuation marks and newlines (regex ``\\w+|[^\\w\\s]|\\n``).

    The vocabulary keeps the ``max_size - 1`` most frequent tokens seen at least
    ``min_count`` times (ties broken alphabetically); the rest map to ``<unk>``.
    Decoding joins tokens with single spaces (newlines without spaces around them).
    """

    level = "word"

    def __init__(
        self, tokens: list[str] | None = None, *, max_size: int = 10000, min_count: int = 1
    ):
        if max_size < 2:
            raise InputError(f"max_size: expected an integer >= 2, received {max_size!r}")
        self.max_size = max_size
        self.min_count = min_count
        self.tokens: list[str] = [UNK]
        self._index: dict[str, int] = {}
        if tokens is not None:
            self._set(tokens)

    def _set(self, tokens: list[str]) -> None:
        if not tokens or tokens[0] != UNK:
            raise InputError(f"tokens: expected ['<unk>', ...], received {tokens[:5]!r}...")
        self.tokens = list(tokens)
        self._index = {t: i for i, t in enumerate(tokens) if i > 0}

    @property
    def vocab_size(self) -> int:
        """V, the number of tokens including ``<unk>``."""
        return len(self.tokens)

    @staticmethod
    def split(text: str) -> list[str]:
        """The tokens of ``text``."""
        return _WORD_RE.findall(text)

    def fit(self, blocks: Iterable[str]) -> WordTokenizer:
        """Count tokens over ``blocks`` (split on whitespace boundaries) and keep the top."""
        counts: Counter[str] = Counter()
        for block in blocks:
            counts.update(self.split(block))
        kept = [(-c, t) for t, c in counts.items() if c >= self.min_count and t != UNK]
        kept.sort()
        self._set([UNK] + [t for _, t in kept[: self.max_size - 1]])
        return self

    def encode(self, text: str) -> list[int]:
        """Ids of the tokens of ``text`` (unknown tokens -> 0)."""
        get = self._index.get
        return [get(t, 0) for t in self.split(text)]

    def unknown_symbols(self, text: str) -> list[str]:
        """The distinct tokens of ``text`` that are not in the vocabulary."""
        return sorted({t for t in self.split(text) if t not in self._index})

    def encode_blocks(self, blocks: Iterable[str], capacity: int = 0) -> Encoded:
        """Encode a stream of text blocks (cut at whitespace) into one tensor ``(N,)``."""
        out = _Stream(compact_dtype(self.vocab_size), capacity // 4)
        for block in blocks:
            ids = np.asarray(self.encode(block), dtype=np.int64)
            out.add(ids, int((ids == 0).sum()))
        return out.result()

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: tokens joined by spaces, newlines kept."""
        out: list[str] = []
        for i in map(int, ids):
            t = self.tokens[i]
            if t == "\n" or (out and out[-1] == "\n"):
                out.append(t)
            else:
                out.append((" " if out else "") + t)
        return "".join(out)

    def to_dict(self) -> dict:
        """A JSON/checkpoint-friendly description of the vocabulary."""
        return {"level": self.level, "tokens": list(self.tokens)}


Tokenizer = CharTokenizer | WordTokenizer


def make_tokenizer(level: str, *, max_size: int = 10000) -> Tokenizer:
    """An empty tokenizer of ``level`` ("char" or "word") to :meth:`fit`."""
    if level == "char":
        return CharTokenizer()
    if level == "word":
        return WordTokenizer(max_size=max_size)
    raise InputError(f"level: expected 'char' or 'word', received {level!r}")


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """Restore a tokenizer saved with ``to_dict``."""
    if not isinstance(d, dict) or "level" not in d or "tokens" not in d:
        raise InputError(f"vocabulary: expected a dict with 'level' and 'tokens', received {d!r}")
    if d["level"] == "char":
        return CharTokenizer(list(d["tokens"]))
    if d["level"] == "word":
        return WordTokenizer(list(d["tokens"]), max_size=max(len(d["tokens"]), 2))
    raise InputError(f"vocabulary level: expected 'char' or 'word', received {d['level']!r}")
