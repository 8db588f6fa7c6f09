"""Oracle tests of the reservoir-computing generators: Mackey-Glass against the equation
(finite differences), a finer step and its fixed point; NARMA against the recursion written
with Python floats; the memory task's delays."""

from __future__ import annotations

import pytest
import torch

from rnnlab.errors import InputError
from rnnlab.tasks.mackey_glass import mackey_glass, squash, unsquash
from rnnlab.tasks.narma import memory_task, narma


def test_mackey_glass_satisfies_the_equation():
    tau, h = 17, 0.1
    x = mackey_glass(2000, dt=h, sample=h, discard=300)  # every grid point, t >= 30
    d = int(tau / h)
    t = torch.arange(d, len(x) - 1)
    dxdt = (x[t + 1] - x[t - 1]) / (2 * h)  # central difference, O(h^2)
    xd = x[t - d]
    rhs = 0.2 * xd / (1 + xd**10) - 0.1 * x[t]
    assert float((dxdt - rhs).abs().max()) < 1e-4


def test_mackey_glass_step_convergence_and_fixed_point():
    a = mackey_glass(300, dt=0.1, discard=0)
    b = mackey_glass(300, dt=0.025, discard=0)
    assert float((a - b).abs().max()) < 2e-4
    # below tau ~ 4.5 the solution settles on x* = (beta / gamma - 1)^(1/n) = 1
    settled = mackey_glass(10, tau=2, discard=800)
    torch.testing.assert_close(settled, torch.ones(10, dtype=torch.float64), atol=1e-8, rtol=0)
    # tau = 17 is chaotic: it does not settle, and stays in the known band
    x = mackey_glass(3000)
    assert 0.2 < float(x.min()) < 0.5 and 1.2 < float(x.max()) < 1.45
    assert float(x[-500:].std()) > 0.2
    torch.testing.assert_close(unsquash(squash(x)), x)


def test_mackey_glass_bad_input():
    with pytest.raises(InputError, match="dt"):
        mackey_glass(10, dt=0.3)
    with pytest.raises(InputError, match="T"):
        mackey_glass(0)


def _narma_by_hand(u: list[float], m: int) -> list[float]:
    y = [0.0] * (len(u) + 1)
    for t in range(len(u)):
        s = sum(y[t - i] for i in range(m) if t - i >= 0)
        u_old = u[t - m + 1] if t - m + 1 >= 0 else 0.0
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * s + 1.5 * u_old * u[t] + 0.1
    return y[1:]


@pytest.mark.parametrize("order", [2, 10])
def test_narma_equals_the_recursion(order):
    b = narma(300, order=order, batch_size=3, seed=0)
    assert b.inputs.shape == (3, 300, 1) and bool(b.mask.all())
    assert 0 <= float(b.inputs.min()) and float(b.inputs.max()) < 0.5
    for i in range(3):
        ref = _narma_by_hand(b.inputs[i, :, 0].tolist(), order)
        torch.testing.assert_close(b.targets[i, :, 0], torch.tensor(ref, dtype=torch.float64))
    again = narma(300, order=order, batch_size=3, seed=0)
    assert torch.equal(again.inputs, b.inputs)


def test_memory_task_delays():
    b = memory_task(50, 7, batch_size=2, seed=3)
    u = b.inputs[..., 0]
    for k in range(1, 8):
        torch.testing.assert_close(b.targets[:, k:, k - 1], u[:, :-k])
    assert not bool(b.mask[:, :7].any()) and bool(b.mask[:, 7:].all())
    assert -0.5 <= float(u.min()) and float(u.max()) < 0.5
