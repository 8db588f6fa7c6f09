"""The labelling tests run on one torch thread (small tensors, a shared 2-core machine)."""

import pytest

from rnnlab._threads import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield
