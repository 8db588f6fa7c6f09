"""Schedules and optimizers by name: the cosine schedule in closed form and across a
resume with the same or a new budget (issue 10, item 2), and learning rates the update
cannot represent (item 10)."""

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from rnnlab.errors import InputError
from rnnlab.optim.schedules import CosineSchedule, make_optimizer, make_schedule


def both(fast: int, slow: int, **strategies):
    """The property as two tests: ``fast`` examples (default run), ``slow`` (marked slow)."""

    def deco(fn):
        common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])
        quick = settings(max_examples=fast, derandomize=True, **common)(given(**strategies)(fn))
        many = settings(max_examples=slow, **common)(given(**strategies)(fn))
        return quick, pytest.mark.slow(many)

    return deco


def _cosine(lr, min_lr, total):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    return opt, make_schedule("cosine", opt, total_steps=total, min_lr=min_lr)


def _run(opt, sch, steps):
    rates = []
    for _ in range(steps):
        opt.step()
        sch.step()
        rates.append(opt.param_groups[0]["lr"])
    return rates


def test_cosine_closed_form_and_no_second_period():
    opt, sch = _cosine(0.3, 0.01, 7)
    assert isinstance(sch, CosineSchedule)
    for t, lr in enumerate(_run(opt, sch, 12), start=1):
        want = 0.01 + (0.3 - 0.01) * 0.5 * (1 + math.cos(math.pi * min(t, 7) / 7))
        assert lr == pytest.approx(want, abs=1e-15)
    assert opt.param_groups[0]["lr"] == 0.01  # stays at the minimum after the budget


def _resume(lr, min_lr, total, stop, new_total):
    """A run with budget ``total`` stopped at ``stop`` and resumed (through state_dict, as a
    checkpoint) with budget ``new_total``: its rates equal those of an uninterrupted run
    with budget ``new_total`` from the resume step on; with the same budget, bit for bit
    over the whole run."""
    opt, sch = _cosine(lr, min_lr, total)
    first = _run(opt, sch, stop)
    saved_opt, saved_sch = opt.state_dict(), sch.state_dict()
    opt2, sch2 = _cosine(lr, min_lr, new_total)
    opt2.load_state_dict(saved_opt)
    sch2.load_state_dict(saved_sch)
    sch2.set_total_steps(new_total)
    rest = _run(opt2, sch2, max(new_total - stop, 0) + 2)
    ref_opt, ref_sch = _cosine(lr, min_lr, new_total)
    straight = _run(ref_opt, ref_sch, stop + len(rest))
    assert rest == straight[stop:]
    if new_total == total:
        assert first + rest == straight


test_cosine_resume, test_cosine_resume_slow = both(
    40,
    2000,
    lr=st.floats(1e-6, 10.0),
    min_lr=st.sampled_from([0.0, 1e-7]),
    total=st.integers(1, 60),
    stop=st.integers(0, 60),
    new_total=st.integers(1, 90),
)(_resume)


def test_cosine_new_base_rate_on_resume():
    opt, sch = _cosine(0.5, 0.0, 10)
    _run(opt, sch, 4)
    sch.set_base_lr(0.1)
    want = 0.1 * 0.5 * (1 + math.cos(math.pi * 4 / 10))
    assert opt.param_groups[0]["lr"] == pytest.approx(want, abs=1e-16)


def test_cosine_needs_a_step_budget():
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(InputError, match="--steps"):
        make_schedule("cosine", opt, total_steps=None)
    with pytest.raises(InputError, match="total_steps"):
        CosineSchedule(opt, 0)


def _lr_limits(name, lr, dtype):
    """make_optimizer accepts exactly the rates whose first step the parameters' dtype can
    represent (Adam: lr / (1 - beta1)), and that step then runs without torch's overflow
    error; every other rate is an InputError naming lr."""
    p = nn.Parameter(torch.ones(2, dtype=dtype))
    factor = 10.0 if name == "adam" else 1.0
    fits = lr * factor <= torch.finfo(dtype).max
    if not fits:
        with pytest.raises(InputError, match="^lr: expected a number <="):
            make_optimizer(name, [p], lr=lr, momentum=0.5)
        return
    opt = make_optimizer(name, [p], lr=lr, momentum=0.5)
    p.grad = torch.ones_like(p)
    opt.step()  # no RuntimeError from inside torch


test_lr_limits, test_lr_limits_slow = both(
    30,
    1000,
    name=st.sampled_from(["sgd", "nesterov", "rmsprop", "adam"]),
    lr=st.sampled_from([1e-3, 1.0, 1e30, 3e37, 3.3e38, 3.5e38, 1e39, 1e300]),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16]),
)(_lr_limits)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"lr": float("nan")}, "lr"),
        ({"lr": True}, "lr"),
        ({"lr": 0.1, "momentum": 1.0}, "momentum"),
        ({"lr": 0.1, "momentum": "0.5"}, "momentum"),
        ({"lr": 0.1, "weight_decay": float("nan")}, "weight_decay"),
    ],
)
def test_make_optimizer_refuses_nonsense(kw, name):
    with pytest.raises(InputError, match=f"^{name}"):
        make_optimizer("adam", [nn.Parameter(torch.zeros(1))], **kw)
