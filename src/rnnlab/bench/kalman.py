"""Kalman filter + RTS smoother vs pykalman (float64), ratios measured in one run.

Cases: one sequence of T = 1,000 and 100 sequences of T = 200 (pykalman loops over the
sequences; rnnlab runs them as one batch), and the first again with rnnlab's steady-state
gain switched off (the full covariance recursion at every step, the path masks take).
State dimension 4, observation dimension 2. The max-abs difference of the smoothed means
and covariances is printed next to the speed-up. The last case has 20% of the observations
missing (a numpy masked array for pykalman, ``mask=`` for rnnlab).
"""

from __future__ import annotations

import numpy as np
import torch

from rnnlab import _numba
from rnnlab._threads import torch_threads
from rnnlab.bench import timeit
from rnnlab.classic.lds import LinearDynamicalSystem, rts_smoother


def _model(state_dim: int, obs_dim: int, seed: int = 0) -> LinearDynamicalSystem:
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    A = torch.randn(state_dim, state_dim, generator=g, dtype=dt)
    A = 0.95 * A / torch.linalg.matrix_norm(A, 2)
    Q = torch.randn(state_dim, state_dim, generator=g, dtype=dt)
    R = torch.randn(obs_dim, obs_dim, generator=g, dtype=dt)
    return LinearDynamicalSystem.from_params(
        transition_matrix=A,
        emission_matrix=torch.randn(obs_dim, state_dim, generator=g, dtype=dt),
        transition_cov=Q @ Q.T / state_dim + 0.1 * torch.eye(state_dim, dtype=dt),
        emission_cov=R @ R.T / obs_dim + 0.1 * torch.eye(obs_dim, dtype=dt),
        initial_mean=torch.zeros(state_dim, dtype=dt),
        initial_cov=torch.eye(state_dim, dtype=dt),
    )


def main(quick: bool = False) -> dict:
    """Print and return the speed-ups over pykalman (filter + smoother), one torch thread."""
    with torch_threads(1):
        return _main(quick)


def _main(quick: bool) -> dict:
    try:
        from pykalman import KalmanFilter
    except ImportError:
        print("kalman: pykalman is not installed (pip install pykalman); skipped")
        return {"skipped": "pykalman not installed"}
    model = _model(4, 2)
    p = {k: v.detach().numpy() for k, v in model.params._asdict().items()}
    kf = KalmanFilter(
        transition_matrices=p["transition_matrix"],
        observation_matrices=p["emission_matrix"],
        transition_covariance=p["transition_cov"],
        observation_covariance=p["emission_cov"],
        initial_state_mean=p["initial_mean"],
        initial_state_covariance=p["initial_cov"],
    )
    # the third case switches the steady-state gain off: the full covariance recursion at
    # every step, as with missing observations (masks)
    cases = [("1 x T=1000", 1, 1000, True), ("100 x T=200", 100, 200, True)]
    cases.append(("1 x T=1000 *", 1, 1000, False))
    cases.append(("1 x T=1000 m", 1, 1000, "mask"))
    if quick:
        cases = [("1 x T=200", 1, 200, True), ("20 x T=100", 20, 100, True)]
        cases.append(("1 x T=200 m", 1, 200, "mask"))
    repeat = 2 if quick else 3
    results = {}
    print(f"compiled loops (rnnlab[fast]): {_numba.status()}")
    print(f"{'case':<16}{'pykalman s':>12}{'rnnlab s':>11}{'speed-up':>10}{'max |diff|':>12}")
    for name, batch, steps, steady in cases:
        y = model.sample(batch, steps, generator=1).observations
        y_np = y.numpy()
        mask = None
        if steady == "mask":  # 20% of the observation vectors missing
            g = torch.Generator().manual_seed(2)
            mask = torch.rand(batch, steps, generator=g) > 0.2
            y_np = np.ma.masked_array(y_np, mask=~mask[..., None].expand_as(y).numpy())

        def run_pk(y_np=y_np):
            return [kf.smooth(seq) for seq in y_np]

        def run_ours(y=y, steady=steady, mask=mask):
            if mask is not None:
                return model.smooth(y, mask=mask)
            if steady:
                return model.smooth(y)
            with torch.no_grad():
                return rts_smoother(model.params, y, steady_state=False)

        t_pk = timeit(run_pk, repeat=repeat, warmup=0 if not quick else 0)
        t_ours = timeit(run_ours, repeat=repeat)
        ours = run_ours()
        ref = run_pk()
        diff = max(
            max(np.abs(ours.means[b].numpy() - ref[b][0]).max() for b in range(batch)),
            max(np.abs(ours.covs[b].numpy() - ref[b][1]).max() for b in range(batch)),
        )
        ratio = t_pk / t_ours
        results[name] = {
            "pykalman_s": t_pk,
            "rnnlab_s": t_ours,
            "speedup": ratio,
            "max_abs_diff": float(diff),
        }
        print(f"{name:<16}{t_pk:>12.4f}{t_ours:>11.4f}{ratio:>9.1f}x{diff:>12.2e}")
    if not quick:
        print("* steady_state=False: the full covariance recursion at every step (the path")
        print("  taken with missing-observation masks)")
    print("m: 20% of the observations missing (pykalman: a numpy masked array; rnnlab: mask=)")
    return results


if __name__ == "__main__":
    main()
