import pytest

from rnnlab._threads import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    """The simulator's small per-step tensors run fastest on one thread."""
    with torch_threads(1):
        yield
