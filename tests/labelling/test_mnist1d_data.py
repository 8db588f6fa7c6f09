"""MNIST-1D comes from the package's generator (never a download)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("mnist1d") is None or importlib.util.find_spec("scipy") is None,
    reason="needs the mnist1d package and scipy",
)


@pytest.mark.slow  # importing the package (scipy, matplotlib) takes seconds
def test_generator_is_seeded_balanced_and_never_downloads():
    from rnnlab.experiments.mnist1d import load_mnist1d

    had_requests = "requests" in sys.modules
    data = load_mnist1d(200)
    assert data["x"].shape == (160, 40) and data["x_test"].shape == (40, 40)
    counts = np.bincount(np.concatenate([data["y"], data["y_test"]]), minlength=10)
    assert (counts == 20).all()
    np.testing.assert_array_equal(data["x"], load_mnist1d(200)["x"])  # seeded (42)
    if not had_requests and importlib.util.find_spec("requests") is None:
        assert "requests" not in sys.modules  # the stand-in is removed again


@pytest.mark.slow
def test_default_is_the_published_split():
    from rnnlab.experiments.mnist1d import load_mnist1d

    data = load_mnist1d()
    assert data["x"].shape == (4000, 40) and data["x_test"].shape == (1000, 40)
    counts = np.bincount(np.concatenate([data["y"], data["y_test"]]), minlength=10)
    assert (counts == 500).all()
