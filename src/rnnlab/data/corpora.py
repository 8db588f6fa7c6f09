"""Text corpora that need no download, read as a stream of text blocks.

- ``topics`` (default): the English prose of CPython's ``pydoc_data.topics`` (~0.47 MB).
- ``stdlib``: the standard library's ``.py`` source (tests and site-packages skipped).
- a UTF-8 text file of any size (:func:`file_corpus`): read in blocks with an incremental
  decoder, so a file of hundreds of MB is never held as several copies in memory.

A :class:`Corpus` is re-iterable (``corpus.blocks()`` starts a fresh pass), because a
tokenizer's vocabulary is built in a first pass and the ids are written in a second.
Every block ends at a whitespace boundary (so word tokenizers never see a split word).
"""

from __future__ import annotations

import codecs
import os
import sys
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rnnlab.errors import InputError

BLOCK_BYTES = 1 << 22  # 4 MiB per read
CORPORA = ("topics", "stdlib")


@dataclass(frozen=True)
class Corpus:
    """A named text source.

    name: "topics", "stdlib" or "file".
    source: where it comes from (module name, directory or file path).
    size_bytes: an upper bound on the number of characters (for preallocation).
    meta: facts worth recording with results (Python version, file count, path).
    """

    name: str
    source: str
    size_bytes: int
    _blocks: Callable[[], Iterator[str]] = field(repr=False)
    meta: dict = field(default_factory=dict)

    def blocks(self) -> Iterator[str]:
        """A fresh pass over the text, in blocks that end at whitespace."""
        return self._blocks()

    def text(self) -> str:
        """The whole text as one string (for small corpora and tests)."""
        return "".join(self.blocks())


def _rechunk(pieces: Iterator[str]) -> Iterator[str]:
    """Regroup text pieces so that each yielded block ends at whitespace."""
    tail = ""
    for piece in pieces:
        text = tail + piece
        cut = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t"))
        if cut < 0:
            tail = text
            continue
        if cut + 1 > 0:
            yield text[: cut + 1]
        tail = text[cut + 1 :]
    if tail:
        yield tail


def topics_corpus() -> Corpus:
    """The English prose of ``pydoc_data.topics`` (topics sorted by name)."""
    from pydoc_data.topics import topics

    keys = sorted(topics)

    def blocks() -> Iterator[str]:
        for k in keys:
            yield topics[k].strip() + "\n\n"

    size = sum(len(topics[k]) + 2 for k in keys)
    meta = {"python": sys.version.split()[0], "topics": len(keys)}
    return Corpus("topics", "pydoc_data.topics", size, blocks, meta)


def stdlib_files(root: str | os.PathLike | None = None) -> list[Path]:
    """The standard library's ``.py`` files, sorted, without test folders or site-packages."""
    base = Path(root or sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}
    files = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return files


def stdlib_corpus(root: str | os.PathLike | None = None) -> Corpus:
    """The standard library's source code (files that are not valid UTF-8 are skipped)."""
    files = stdlib_files(root)
    if not files:
        raise InputError(f"corpus: 'stdlib' has no .py files found under {root or 'the stdlib'}")

    def blocks() -> Iterator[str]:
        def pieces() -> Iterator[str]:
            for f in files:
                try:
                    yield f.read_text(encoding="utf-8") + "\n"
                except (UnicodeDecodeError, OSError):
                    continue

        return _rechunk(pieces())

    size = sum(f.stat().st_size + 1 for f in files)
    meta = {"python": sys.version.split()[0], "files": len(files)}
    return Corpus("stdlib", str(Path(files[0]).parent), size, blocks, meta)


def check_text_file(path: str | os.PathLike, argument: str = "data") -> Path:
    """Raise ValueError unless ``path`` is an existing, non-empty, readable file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{argument}: no such file: {str(p)!r}")
    if p.is_dir():
        raise InputError(f"{argument}: expected a text file, received a directory: {str(p)!r}")
    if not p.is_file():
        raise InputError(f"{argument}: expected a regular file, received {str(p)!r}")
    if p.stat().st_size == 0:
        raise InputError(f"{argument}: the file is empty: {str(p)!r}")
    return p


def read_blocks(path: str | os.PathLike, block_bytes: int = BLOCK_BYTES) -> Iterator[str]:
    """Decode a UTF-8 file in blocks (strict: a bad byte raises ValueError with its offset)."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = 0
    with open(path, "rb") as fh:
        while True:
            raw = fh.read(block_bytes)
            final = not raw
            try:
                text = decoder.decode(raw, final=final)
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"data: {str(path)!r} is not UTF-8 text (bad byte at offset "
                    f"{offset + exc.start})"
                ) from None
            offset += len(raw)
            if text:
                yield text.lstrip("\ufeff") if offset == len(raw) else text
            if final:
                return


def file_corpus(path: str | os.PathLike, argument: str = "data") -> Corpus:
    """Any UTF-8 text file, streamed in blocks."""
    p = check_text_file(path, argument)

    def blocks() -> Iterator[str]:
        return _rechunk(read_blocks(p))

    size = p.stat().st_size
    return Corpus("file", str(p), size, blocks, {"path": str(p.resolve()), "bytes": size})


def load_corpus(corpus: str = "topics", data: str | os.PathLike | None = None) -> Corpus:
    """``data`` (a file) when given, else the named built-in corpus."""
    if data is not None:
        return file_corpus(data)
    if corpus == "topics":
        return topics_corpus()
    if corpus == "stdlib":
        return stdlib_corpus()
    raise InputError(f"corpus: expected one of {', '.join(CORPORA)}, received {corpus!r}")
