"""HMM forward-backward and Baum-Welch against hmmlearn (benchmark-only comparison).

What is compared, at K = 10 states, Gaussian emissions with diagonal covariances, D = 13,
and on one long sequence with K = 2, D = 1 (where rnnlab runs the associative scan):

- forward-backward: hmmlearn ``GaussianHMM.score_samples(X, lengths)`` (emission
  log-densities, forward, backward, posteriors; its default ``implementation="log"`` and
  ``"scaling"``) against ``HMM.score_samples(x)`` (the same quantities, one batched pass);
- Baum-Welch: seconds per iteration of a 5-iteration fit (set-up shared by the 5):
  hmmlearn ``fit`` with ``n_iter=5, init_params="", tol=-inf`` (E-step plus M-step of all
  parameters, priors switched off) against ``HMM.fit(x, n_iter=5, init="none",
  pseudocount=0, min_covar=0, tol=0, rtol=0)``. The agreement check compares the
  parameters after one iteration.

Both sides get the same float64 data and parameters and one thread each
(``torch.set_num_threads(1)``; numpy/BLAS threads are left as they are). Agreement in
float64 is printed: the largest difference of log-likelihoods, posteriors and re-estimated
parameters.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from rnnlab import _numba
from rnnlab._threads import torch_threads
from rnnlab.bench import timeit
from rnnlab.classic import ConvergenceWarning
from rnnlab.classic.hmm import HMM


def _problem(B: int, T: int, K: int, D: int, seed: int):
    rng = np.random.default_rng(seed)
    A = rng.random((K, K)) + np.eye(K) * K  # sticky, like speech models
    A /= A.sum(1, keepdims=True)
    pi = rng.random(K)
    pi /= pi.sum()
    means = rng.normal(scale=2.0, size=(K, D))
    var = rng.uniform(0.5, 2.0, size=(K, D))
    # sample from the model so that posteriors are not degenerate
    z = np.empty((B, T), dtype=np.int64)
    z[:, 0] = rng.choice(K, size=B, p=pi)
    cum = A.cumsum(1)
    for t in range(1, T):
        u = rng.random(B)[:, None]
        z[:, t] = np.minimum((u > cum[z[:, t - 1]]).sum(1), K - 1)
    X = means[z] + rng.normal(size=(B, T, D)) * np.sqrt(var[z])
    return pi, A, means, var, X


def _measure(hl, B: int, T: int, K: int, D: int, repeat: int) -> dict:
    """Agreement and timings at one size."""
    pi, A, means, var, X = _problem(B, T, K, D, seed=B + T)
    Xc = X.reshape(B * T, D)
    lens = [T] * B
    x = torch.from_numpy(X)

    def make_ref(impl: str, n_iter: int = 1):
        ref = hl.GaussianHMM(
            K,
            covariance_type="diag",
            n_iter=n_iter,
            init_params="",
            params="stmc",
            implementation=impl,
            tol=-np.inf,  # run every iteration asked for
            startprob_prior=1.0,
            transmat_prior=1.0,
            means_prior=0.0,
            means_weight=0.0,
            covars_prior=0.0,
            covars_weight=1.0,
        )
        ref.n_features = D
        ref.startprob_, ref.transmat_, ref.means_, ref.covars_ = pi, A, means, var
        return ref

    def make_ours() -> HMM:
        return HMM.from_params(
            initial_probs=torch.from_numpy(pi),
            transition_matrix=torch.from_numpy(A),
            means=torch.from_numpy(means),
            covs=torch.from_numpy(var),
            covariance="diag",
        )

    ours = make_ours()
    ref = make_ref("log")
    ref_s = make_ref("scaling")
    # agreement (float64)
    ll_ref, post_ref = ref.score_samples(Xc, lens)
    ll, post = ours.score_samples(x)
    ll_diff = abs(float(ll.sum()) - ll_ref) / abs(ll_ref)  # relative: the total is ~1e6
    post_diff = float(np.abs(post.reshape(B * T, K).numpy() - post_ref).max())
    ref_fit = make_ref("log").fit(Xc, lens)
    our_fit = make_ours().fit(x, n_iter=1, init="none", pseudocount=0.0, min_covar=0.0, tol=0.0)
    par_diff = max(
        float(np.abs(our_fit.initial_probs.detach().numpy() - ref_fit.startprob_).max()),
        float(np.abs(our_fit.transition_matrix.detach().numpy() - ref_fit.transmat_).max()),
        float(np.abs(our_fit.means.detach().numpy() - ref_fit.means_).max()),
        float(np.abs(our_fit.variances.detach().numpy() - ref_fit._covars_).max()),
    )
    # timings
    t_ref = timeit(lambda: ref.score_samples(Xc, lens), repeat=repeat)
    t_ref_s = timeit(lambda: ref_s.score_samples(Xc, lens), repeat=repeat)
    t_ours = timeit(lambda: ours.score_samples(x), repeat=repeat)
    x32 = x.float()
    ours32 = make_ours().float()
    t_ours32 = timeit(lambda: ours32.score_samples(x32), repeat=repeat)
    # Baum-Welch: seconds per iteration of a 5-iteration fit (set-up included, shared by 5)
    n_em = 5

    def fit_ours():
        m = make_ours().fit(
            x, n_iter=n_em, init="none", pseudocount=0.0, min_covar=0.0, tol=0.0, rtol=0.0
        )
        assert m.n_iter_ == n_em

    t_em_ref = timeit(lambda: make_ref("log", n_em).fit(Xc, lens), repeat=repeat) / n_em
    t_em_ref_s = timeit(lambda: make_ref("scaling", n_em).fit(Xc, lens), repeat=repeat) / n_em
    t_em = timeit(fit_ours, repeat=repeat) / n_em
    return {
        "sequences": B,
        "T": T,
        "fb_hmmlearn_log_s": t_ref,
        "fb_hmmlearn_scaling_s": t_ref_s,
        "fb_rnnlab_f64_s": t_ours,
        "fb_rnnlab_f32_s": t_ours32,
        "fb_ratio_vs_log": t_ref / t_ours,
        "fb_ratio_vs_scaling": t_ref_s / t_ours,
        "em_hmmlearn_log_s": t_em_ref,
        "em_hmmlearn_scaling_s": t_em_ref_s,
        "em_rnnlab_f64_s": t_em,
        "em_ratio_vs_log": t_em_ref / t_em,
        "em_ratio_vs_scaling": t_em_ref_s / t_em,
        "max_rel_diff_loglik": ll_diff,
        "max_abs_diff_posterior": post_diff,
        "max_abs_diff_em_params": par_diff,
    }


def _single_fair(hl, T: int, repeat: int) -> dict:
    """One sequence (K = 2, D = 1): seconds per EM iteration with the set-up excluded on
    both sides ((fit with n_iter=11 - fit with n_iter=1) / 10, from given parameters:
    hmmlearn ``init_params=""``, rnnlab ``init="none"``), and a whole 10-iteration fit with
    each library's default initialisation (both k-means with 10 restarts)."""
    pi, A, means, var, X = _problem(1, T, 2, 1, seed=1 + T)
    Xc, x = X[0], torch.from_numpy(X[0])

    def ref(n: int, default_init: bool = False):
        if default_init:
            r = hl.GaussianHMM(2, covariance_type="diag", n_iter=n, tol=-np.inf, random_state=0)
        else:
            r = hl.GaussianHMM(2, covariance_type="diag", n_iter=n, init_params="", tol=-np.inf)
            r.n_features = 1
            r.startprob_, r.transmat_, r.means_, r.covars_ = pi, A, means, var
        return r.fit(Xc)

    def ours(n: int, default_init: bool = False):
        if default_init:
            m = HMM(2, emission="gaussian", obs_dim=1, covariance="diag", dtype=torch.float64)
            return m.fit(x, n_iter=n, tol=0.0, rtol=0.0)
        m = HMM.from_params(
            initial_probs=torch.from_numpy(pi),
            transition_matrix=torch.from_numpy(A),
            means=torch.from_numpy(means),
            covs=torch.from_numpy(var),
            covariance="diag",
        )
        return m.fit(x, n_iter=n, init="none", tol=0.0, rtol=0.0)

    it_ratios, fit_ratios, rows = [], [], []
    for _ in range(repeat):  # alternating, ratio per round, median over rounds
        r_it = (timeit(lambda: ref(11), repeat=3) - timeit(lambda: ref(1), repeat=3)) / 10
        o_it = (timeit(lambda: ours(11), repeat=3) - timeit(lambda: ours(1), repeat=3)) / 10
        r_fit = timeit(lambda: ref(10, True), repeat=3)
        o_fit = timeit(lambda: ours(10, True), repeat=3)
        it_ratios.append(r_it / o_it)
        fit_ratios.append(r_fit / o_fit)
        rows.append((r_it, o_it, r_fit, o_fit))
    med = [float(np.median([r[i] for r in rows])) for i in range(4)]
    return {
        "T": T,
        "iter_hmmlearn_s": med[0],
        "iter_rnnlab_s": med[1],
        "iter_ratio": float(np.median(it_ratios)),
        "fit10_hmmlearn_s": med[2],
        "fit10_rnnlab_s": med[3],
        "fit10_ratio": float(np.median(fit_ratios)),
    }


def main(quick: bool = False) -> dict:
    """Print and return the timing table (ratios hmmlearn / rnnlab, measured in this run)."""
    try:
        from hmmlearn import hmm as hl
    except ImportError as e:  # benchmark-only dependency
        raise ImportError("the hmm benchmark needs hmmlearn: pip install hmmlearn") from e

    K, D = 10, 13
    sizes = [(50, 100), (200, 1000)] if not quick else [(50, 100), (50, 200)]
    single = [1000, 10000] if not quick else [1000]  # one long sequence, K = 2, D = 1
    repeat = 5 if not quick else 2
    with torch_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fixed-length fits, on purpose
        rows = [_measure(hl, B, T, K, D, repeat) for B, T in sizes]
        rows1 = [_measure(hl, 1, T, 2, 1, repeat) for T in single]
        fair = [_single_fair(hl, T, repeat) for T in single]
    print(f"compiled loops (rnnlab[fast]): {_numba.status()}")
    _print_rows(rows, "HMM (K=10, Gaussian diag, D=13, float64, 1 torch thread) vs hmmlearn")
    _print_rows(rows1, "One long sequence (K=2, Gaussian, D=1, float64, 1 torch thread)")
    print("One long sequence, set-up excluded: EM s/iter = (fit(11) - fit(1)) / 10; and a")
    print("whole fit(n_iter=10) with each library's default initialisation (ratio hmmlearn/rnnlab,")
    print("median of per-round ratios)")
    for r in fair:
        print(
            f"  T={r['T']:>6}: EM/iter hmmlearn {r['iter_hmmlearn_s'] * 1e3:.2f} ms, rnnlab "
            f"{r['iter_rnnlab_s'] * 1e3:.2f} ms, x{r['iter_ratio']:.2f}; fit(10) hmmlearn "
            f"{r['fit10_hmmlearn_s'] * 1e3:.1f} ms, rnnlab {r['fit10_rnnlab_s'] * 1e3:.1f} ms, "
            f"x{r['fit10_ratio']:.2f}"
        )
    return {"rows": rows, "single_sequence_rows": rows1, "single_sequence_fair": fair}


def _print_rows(rows: list[dict], title: str) -> None:
    print(title)
    print("ratio = hmmlearn seconds / rnnlab seconds (higher is better for rnnlab)")
    head = (
        f"{'B x T':>11} {'task':<17} {'hmmlearn log':>12} {'hmmlearn scal':>13} "
        f"{'rnnlab':>9} {'x vs log':>8} {'x vs scal':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        bt = f"{r['sequences']} x {r['T']}"
        print(
            f"{bt:>11} {'forward-backward':<17} {r['fb_hmmlearn_log_s']:>12.4f} "
            f"{r['fb_hmmlearn_scaling_s']:>13.4f} {r['fb_rnnlab_f64_s']:>9.4f} "
            f"{r['fb_ratio_vs_log']:>8.2f} {r['fb_ratio_vs_scaling']:>9.2f}"
        )
        print(
            f"{bt:>11} {'Baum-Welch/iter':<17} {r['em_hmmlearn_log_s']:>12.4f} "
            f"{r['em_hmmlearn_scaling_s']:>13.4f} {r['em_rnnlab_f64_s']:>9.4f} "
            f"{r['em_ratio_vs_log']:>8.2f} {r['em_ratio_vs_scaling']:>9.2f}"
        )
    print(
        "float32 forward-backward (rnnlab): "
        + ", ".join(f"{r['sequences']} x {r['T']}: {r['fb_rnnlab_f32_s']:.4f} s" for r in rows)
    )
    print(
        "float64 agreement with hmmlearn (max difference): "
        + "; ".join(
            f"{r['sequences']} x {r['T']}: total loglik {r['max_rel_diff_loglik']:.1e} (relative), "
            f"posterior "
            f"{r['max_abs_diff_posterior']:.1e}, EM params {r['max_abs_diff_em_params']:.1e}"
            for r in rows
        )
    )
