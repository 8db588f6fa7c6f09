"""Online "cursive handwriting" made from the Hershey vector fonts: words and short phrases
rendered as pen trajectories, for CTC recognition (Graves et al. 2009 read real online
handwriting, the IAM-OnDB whiteboard notes; this is **synthetic**: font strokes with random
distortions, not people's handwriting).

Source: the ``hershey-fonts`` package (MIT; pure Python, the glyph strokes ship inside it),
fonts ``cursive``, ``scriptc`` and ``scripts``. In the package ``scripts`` has exactly the
same strokes as ``cursive`` (checked in the tests), so there are two distinct script
styles: ``cursive`` (single-stroke script) and ``scriptc`` (complex script, more and
shorter strokes).

Text: words of 2-8 lowercase letters from the default corpus (the English prose of
``pydoc_data.topics``), and two-word phrases of them with a space; the alphabet is the 26
lowercase letters and the space (labels 0-25 and 26).

A sample: the font's strokes for the text (cap height about 1), then per sample a random
affine distortion (slant, scale with aspect jitter, rotation), a baseline drift (a slow sine
of x added to y), then each stroke resampled to an even pen speed (points every ``step``
along the stroke) and Gaussian jitter added to every point. The network reads per step
``(dx, dy, pen_up)``: the pen's move since the previous point, and 1 on the step that jumps
with the pen lifted to the start of a new stroke (0 while writing). Everything is a function
of the seed.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from rnnlab.errors import InputError

__all__ = ["ALPHABET", "FONTS", "PenSamples", "corpus_words", "render", "make_samples",
           "encode", "decode"]  # fmt: skip

ALPHABET = "abcdefghijklmnopqrstuvwxyz "
FONTS = ("cursive", "scriptc", "scripts")


def encode(text: str) -> list[int]:
    """Label indices of ``text`` (lowercase letters and spaces only)."""
    bad = sorted(set(text) - set(ALPHABET))
    if bad:
        raise InputError(f"text: expected lowercase letters and spaces, received {bad!r}")
    return [ALPHABET.index(c) for c in text]


def decode(labels: list[int]) -> str:
    """The text of label indices."""
    return "".join(ALPHABET[k] for k in labels)


def corpus_words(min_len: int = 2, max_len: int = 8) -> list[str]:
    """The distinct lowercase words of the default corpus, in order of first appearance."""
    from rnnlab.data.corpora import topics_corpus

    text = "".join(topics_corpus().blocks())
    seen: dict[str, None] = {}
    for w in re.findall(r"[A-Za-z]+", text):
        if w.islower() and min_len <= len(w) <= max_len:
            seen.setdefault(w, None)
    return list(seen)


_FONT_CACHE: dict = {}


def _font(name: str):
    if name not in FONTS:
        raise InputError(f"font: expected one of {', '.join(FONTS)}, received {name!r}")
    if name not in _FONT_CACHE:
        try:
            from HersheyFonts import HersheyFonts
        except ImportError as exc:
            raise ModuleNotFoundError(
                "pen handwriting needs the 'hershey-fonts' package: pip install hershey-fonts"
            ) from exc
        f = HersheyFonts()
        f.load_default_font(name)
        f.normalize_rendering(1.0)
        _FONT_CACHE[name] = f
    return _FONT_CACHE[name]


def glyph_strokes(text: str, font: str) -> list[np.ndarray]:
    """The font's strokes for ``text``: a list of (n_i, 2) polylines, y up."""
    return [np.asarray(s, dtype=np.float64) for s in _font(font).strokes_for_text(text)
            if len(s) > 0]  # fmt: skip


def _resample(stroke: np.ndarray, step: float) -> np.ndarray:
    """Points every ``step`` along the polyline (both ends kept): an even pen speed."""
    seg = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    total = arc[-1]
    if total <= 0:
        return stroke[:1]
    n = max(2, int(math.ceil(total / step)) + 1)
    s = np.linspace(0.0, total, n)
    return np.stack([np.interp(s, arc, stroke[:, 0]), np.interp(s, arc, stroke[:, 1])], 1)


def render(
    text: str,
    font: str,
    rng: np.random.Generator | None = None,
    *,
    step: float = 0.08,
    slant: float = 0.3,
    scale: float = 0.15,
    rotation: float = 0.08,
    drift: float = 0.05,
    jitter: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """(points (N, 2), pen_up (N,)): ``text`` written in ``font`` with random distortions
    (module docstring; ``rng`` None: none). ``slant`` is the largest shear, ``scale`` and
    ``rotation`` (radians) the largest relative scale change and angle, ``drift`` the
    baseline's sine amplitude, ``jitter`` the noise's standard deviation."""
    strokes = glyph_strokes(text, font)
    if not strokes:
        raise InputError(f"text: nothing to write for {text!r}")
    if rng is not None:
        sh = rng.uniform(-slant, slant)
        sx = 1 + rng.uniform(-scale, scale)
        sy = sx * (1 + rng.uniform(-scale / 2, scale / 2))
        a = rng.uniform(-rotation, rotation)
        R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        M = R @ np.array([[sx, sh * sy], [0.0, sy]])  # shear x by y, then rotate
        amp, freq, phase = rng.uniform(0, drift), rng.uniform(0.2, 0.6), rng.uniform(0, 6.3)
        out = []
        for s in strokes:
            p = s @ M.T
            p[:, 1] += amp * np.sin(freq * p[:, 0] + phase)  # baseline drift
            out.append(p)
        strokes = out
    pts, up = [], []
    for s in strokes:
        r = _resample(s, step)
        if rng is not None and jitter > 0:
            r = r + rng.normal(scale=jitter, size=r.shape)
        pts.append(r)
        up.append(np.r_[1.0, np.zeros(len(r) - 1)])  # the first point: reached pen up
    return np.concatenate(pts), np.concatenate(up)


def to_steps(points: np.ndarray, pen_up: np.ndarray) -> np.ndarray:
    """(N, 3) network input ``(dx, dy, pen_up)``; the first step moves from the first point
    to itself (dx = dy = 0) with the pen up."""
    d = np.diff(points, axis=0, prepend=points[:1])
    return np.concatenate([d, pen_up[:, None]], 1).astype(np.float32)


@dataclass
class PenSamples:
    """features: per sample (T_n, 3) ``(dx, dy, pen_up)``; points: (T_n, 2) pen positions;
    texts: the written strings; transcripts: their labels; fonts: the font of each."""

    features: list[np.ndarray]
    points: list[np.ndarray]
    texts: list[str]
    transcripts: list[list[int]]
    fonts: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def make_samples(
    words: list[str],
    n: int,
    fonts: tuple[str, ...] = ("cursive",),
    *,
    phrase_fraction: float = 0.2,
    seed: int = 0,
    distort: bool = True,
    step: float = 0.08,
) -> PenSamples:
    """``n`` samples of words (or, with probability ``phrase_fraction``, two-word phrases)
    drawn from ``words``, each in a font drawn from ``fonts``, distorted per sample."""
    if not words:
        raise InputError("words: expected at least one word, received none")
    rng = np.random.default_rng(seed)
    out = PenSamples([], [], [], [], [])
    for _ in range(n):
        text = words[int(rng.integers(len(words)))]
        if rng.random() < phrase_fraction:
            text += " " + words[int(rng.integers(len(words)))]
        font = fonts[int(rng.integers(len(fonts)))]
        pts, up = render(text, font, rng if distort else None, step=step)
        out.features.append(to_steps(pts, up))
        out.points.append(pts.astype(np.float32))
        out.texts.append(text)
        out.transcripts.append(encode(text))
        out.fonts.append(font)
    return out
