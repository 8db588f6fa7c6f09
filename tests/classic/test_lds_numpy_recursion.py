"""The numpy loop of the full Kalman recursion (no autograd: masks, steady_state=False)
equals the torch recursion (taken with autograd on), also on steps where every
observation is missing (the loop skips their update) and where only some are."""

import pytest
import torch

from rnnlab.classic.lds import LinearDynamicalSystem, kalman_filter

F64 = torch.float64


def _model() -> LinearDynamicalSystem:
    g = torch.Generator().manual_seed(3)
    A = torch.randn(3, 3, generator=g, dtype=F64)
    Q = torch.randn(3, 3, generator=g, dtype=F64)
    R = torch.randn(2, 2, generator=g, dtype=F64)
    return LinearDynamicalSystem.from_params(
        transition_matrix=0.9 * A / torch.linalg.matrix_norm(A, 2),
        emission_matrix=torch.randn(2, 3, generator=g, dtype=F64),
        transition_cov=Q @ Q.T / 3 + 0.1 * torch.eye(3, dtype=F64),
        emission_cov=R @ R.T / 2 + 0.1 * torch.eye(2, dtype=F64),
        initial_mean=torch.zeros(3, dtype=F64),
        initial_cov=torch.eye(3, dtype=F64),
    )


@pytest.mark.parametrize("batch", [1, 2])  # 1: the one-sequence (2-D) loop
def test_numpy_loop_equals_torch_recursion_with_missing_steps(batch):
    model = _model()
    y = model.sample(batch, 60, generator=1).observations  # (B, 60, 2)
    g = torch.Generator().manual_seed(4)
    mask = (torch.rand(batch, 60, 2, generator=g) > 0.3).to(F64)
    mask[:, 10:15] = 0.0  # every observation of every sequence missing: the skipped steps
    mask[0, 20:25, 0] = 0.0  # one coordinate of one sequence missing
    mask[:, 59] = 0.0  # the last step too
    y = y * mask
    p = model.params
    with torch.no_grad():
        fast = kalman_filter(p, y, mask=mask, steady_state=False)  # numpy loop
    assert torch.is_grad_enabled()
    slow = kalman_filter(p, y, mask=mask, steady_state=False)  # torch recursion
    for a, b in zip(fast, slow):
        torch.testing.assert_close(a, b.detach(), rtol=1e-10, atol=1e-12)
    # the skipped steps are a pure prediction: filtered = predicted moments
    A, Q = p.transition_matrix, p.transition_cov
    m9, P9 = fast.means[:, 9], fast.covs[:, 9]
    torch.testing.assert_close(fast.means[:, 10], m9 @ A.T, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.covs[:, 10], A @ P9 @ A.T + Q, rtol=1e-12, atol=1e-12)
