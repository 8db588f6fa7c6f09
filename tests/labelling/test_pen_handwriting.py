"""The pen-trajectory generator: even pen speed, exact reconstruction of the pen path from
the (dx, dy, pen_up) steps, pen-up exactly at stroke starts, points on the font's strokes."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from rnnlab.ctc import min_input_length
from rnnlab.errors import InputError

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("HersheyFonts") is None, reason="needs the hershey-fonts package"
)


def test_scripts_font_is_cursive():
    from rnnlab.data.pen_handwriting import glyph_strokes

    a = glyph_strokes("abcdefghijklmnopqrstuvwxyz", "cursive")
    b = glyph_strokes("abcdefghijklmnopqrstuvwxyz", "scripts")
    c = glyph_strokes("abcdefghijklmnopqrstuvwxyz", "scriptc")
    assert len(a) == len(b) and all(np.array_equal(p, q) for p, q in zip(a, b))
    assert len(c) != len(a)


def test_undistorted_render_walks_the_strokes_at_even_speed():
    from rnnlab.data.pen_handwriting import glyph_strokes, render

    step = 0.05
    strokes = glyph_strokes("hello", "cursive")
    pts, up = render("hello", "cursive", None, step=step)
    assert int(up.sum()) == len(strokes) and up[0] == 1
    starts = np.flatnonzero(up)
    for k, (s, e) in enumerate(zip(starts, list(starts[1:]) + [len(pts)])):
        seg = pts[s:e]
        np.testing.assert_allclose(seg[0], strokes[k][0], atol=1e-12)  # ends kept
        np.testing.assert_allclose(seg[-1], strokes[k][-1], atol=1e-12)
        d = np.linalg.norm(np.diff(seg, axis=0), axis=1)
        assert (d <= step + 1e-9).all()  # never faster than one step; along the arc exactly
        if len(seg) > 2:  # equal arc-length spacing: the chord is at most the arc
            total = np.linalg.norm(np.diff(strokes[k], axis=0), axis=1).sum()
            assert d.max() <= total / (len(seg) - 1) + 1e-9


def test_steps_reconstruct_the_path_and_samples_are_seeded():
    from rnnlab.data.pen_handwriting import decode, encode, make_samples, to_steps

    s = make_samples(["cat", "dog", "bird"], 12, ("cursive", "scriptc"), seed=3)
    t = make_samples(["cat", "dog", "bird"], 12, ("cursive", "scriptc"), seed=3)
    assert s.texts == t.texts and all(np.array_equal(a, b) for a, b in zip(s.features, t.features))
    for f, p, text, lab in zip(s.features, s.points, s.texts, s.transcripts):
        rebuilt = p[0] + np.cumsum(f[:, :2].astype(np.float64), axis=0)
        np.testing.assert_allclose(rebuilt, p, atol=1e-4)
        assert decode(lab) == text and encode(text) == lab
        assert len(f) >= min_input_length(lab)  # CTC can always align
    np.testing.assert_array_equal(to_steps(np.zeros((2, 2)), np.array([1.0, 0]))[:, 2], [1, 0])


def test_bad_text():
    from rnnlab.data.pen_handwriting import encode, render

    with pytest.raises(InputError, match="lowercase"):
        encode("Hello")
    with pytest.raises(InputError, match="font"):
        render("a", "gothic")
