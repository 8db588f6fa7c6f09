"""--threads auto: the tuner keeps the thread count whose steps ran faster."""

import pytest
import torch

import rnnlab._threads as threads
from rnnlab._threads import ThreadTuner


@pytest.mark.parametrize("faster", [1, 2])
def test_tuner_alternates_then_keeps_the_faster_count(monkeypatch, faster):
    clock = [0.0]
    set_to = []
    monkeypatch.setattr(threads.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(threads.torch, "set_num_threads", set_to.append)
    tuner = ThreadTuner(candidates=(1, 2), warmup=2, trials=3)
    running = 1
    for _ in range(20):  # a step takes 1 s on the faster count, 3 s on the other
        clock[0] += 1.0 if running == faster else 3.0
        tuner(None, None, 0.0)
        running = set_to[-1] if set_to else running
    assert tuner.chosen == faster and set_to[-1] == faster
    assert set_to[:6] == [1, 2, 1, 2, 1, 2]  # alternated, one step each, after the warm-up
    assert tuner.times == {1: [1.0 if faster == 1 else 3.0] * 3,
                           2: [1.0 if faster == 2 else 3.0] * 3}  # fmt: skip
    assert len(set_to) == 7  # then left alone


def test_one_candidate_needs_no_measurement():
    before = torch.get_num_threads()
    tuner = ThreadTuner(candidates=(1,))
    assert tuner.chosen == 1
    tuner(None, None, 0.0)
    assert torch.get_num_threads() == before
