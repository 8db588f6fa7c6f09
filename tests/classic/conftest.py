"""The classical models' tests run on one torch thread: their tensors are small, and on a
shared 2-core machine two OpenMP threads can be ten to twenty times slower than one."""

import pytest

from rnnlab._threads import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield
