"""RBM training against scikit-learn's ``BernoulliRBM`` (benchmark-only comparison).

Both sides run the same algorithm on the same data: persistent contrastive divergence
with one Gibbs step and as many persistent chains as the batch size (scikit-learn's
"stochastic maximum likelihood"), learning rate 0.1 on the batch-mean gradient, no
momentum, no weight decay, minibatches in the data's order, 10 epochs, float32, on the
1,797 binarised 8x8 digits of ``sklearn.datasets.load_digits``. The columns:

- ``sklearn``: seconds per epoch of ``BernoulliRBM(n_iter=10).fit(X)``;
- ``rnnlab``: seconds per epoch of ``RBM.fit(x, epochs=10, k=1, persistent=True, ...)``,
  which trains through :class:`rnnlab.train.Trainer` (progress, metrics, checkpoints);
- ``kernel``: the same updates written as a bare loop over
  :func:`rnnlab.energy.rbm.contrastive_divergence` (no training loop), which shows what
  the loop's per-step bookkeeping costs at small sizes.

The runs alternate (sklearn, rnnlab, kernel, sklearn, ...) and the median is reported;
torch and numpy's BLAS both get one thread (``threadpoolctl``). Quality: the exact
pseudo-log-likelihood (sum over the 64 pixels, mean over the images) of both trained
models, computed by rnnlab's formula for both (scikit-learn's ``score_samples`` is a
one-random-pixel estimate of the same quantity, printed beside it), as the mean and its
standard error over seeds 0-4 (0-1 with ``quick``): one seed's value moves by about a
nat from seed to seed, more than the two libraries differ.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import torch

from rnnlab._threads import torch_threads
from rnnlab.energy.rbm import (
    RBM,
    contrastive_divergence,
    hidden_probabilities,
    sample_bernoulli,
)

LR = 0.1


def _data() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().data > 7).astype(np.float32)


def _ours(x: torch.Tensor, hidden: int, batch: int, epochs: int, seed: int = 0) -> RBM:
    torch.manual_seed(seed)
    model = RBM(x.shape[1], hidden)
    model.fit(
        x, epochs=epochs, k=1, persistent=True, lr=LR, batch_size=batch, shuffle=False, seed=seed
    )
    return model


def _kernel(x: torch.Tensor, hidden: int, batch: int, epochs: int) -> RBM:
    """The same PCD-1 updates as a bare loop (no Trainer, no reconstruction error)."""
    torch.manual_seed(0)
    model = RBM(x.shape[1], hidden)
    W, b, c = (p.detach() for p in (model.weight, model.visible_bias, model.hidden_bias))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        p = hidden_probabilities(x[torch.randint(len(x), (batch,), generator=g)], W, c)
        chain = sample_bernoulli(p, g)  # the chains' hidden states, as RBM.fit starts them
        for _ in range(epochs):
            for i in range(0, len(x), batch):
                r = contrastive_divergence(
                    x[i : i + batch], W, b, c, "bernoulli", 1, chain, g, monitor=False
                )
                W.sub_(r.grad_weight, alpha=LR)
                b.sub_(r.grad_visible_bias, alpha=LR)
                c.sub_(r.grad_hidden_bias, alpha=LR)
                chain = r.chain
    return model


def _sklearn(sk, X: np.ndarray, hidden: int, batch: int, epochs: int, seed: int = 0):
    return sk.BernoulliRBM(
        n_components=hidden, batch_size=batch, n_iter=epochs, learning_rate=LR, random_state=seed
    ).fit(X)


def _as_rbm(ref) -> RBM:
    m = RBM(ref.components_.shape[1], ref.components_.shape[0])
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(ref.components_)))
        m.visible_bias.copy_(torch.from_numpy(ref.intercept_visible_))
        m.hidden_bias.copy_(torch.from_numpy(ref.intercept_hidden_))
    return m


def _mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values)
    return float(a.mean()), float(a.std(ddof=1) / np.sqrt(len(a)))


def _measure(sk, X, hidden, batch, epochs, repeat, seeds) -> dict:
    x = torch.from_numpy(X)
    runs = {
        "sklearn": lambda: _sklearn(sk, X, hidden, batch, epochs),
        "rnnlab": lambda: _ours(x, hidden, batch, epochs),
        "kernel": lambda: _kernel(x, hidden, batch, epochs),
    }
    for fn in runs.values():  # warm-up (first-call imports, allocator)
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    last = {}
    for _ in range(repeat):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: sorted(v)[len(v) // 2] / epochs for k, v in times.items()}
    ref = last["sklearn"]
    # seed 0's models are the last timed ones; the other seeds are trained for this only
    pll: dict[str, list] = {"sklearn": [_as_rbm(ref)], "rnnlab": [last["rnnlab"]]}
    for seed in range(1, seeds):
        pll["sklearn"].append(_as_rbm(_sklearn(sk, X, hidden, batch, epochs, seed)))
        pll["rnnlab"].append(_ours(x, hidden, batch, epochs, seed))
    pll = {k: _mean_se([float(m.pseudo_log_likelihood(x).mean()) for m in v])
           for k, v in pll.items()}  # fmt: skip
    return {
        "hidden": hidden,
        "batch": batch,
        "epochs": epochs,
        "steps_per_epoch": math.ceil(len(X) / batch),
        "sklearn_s_per_epoch": med["sklearn"],
        "rnnlab_s_per_epoch": med["rnnlab"],
        "kernel_s_per_epoch": med["kernel"],
        "ratio_rnnlab": med["sklearn"] / med["rnnlab"],
        "ratio_kernel": med["sklearn"] / med["kernel"],
        "pll_sklearn": pll["sklearn"][0],
        "pll_sklearn_se": pll["sklearn"][1],
        "pll_rnnlab": pll["rnnlab"][0],
        "pll_rnnlab_se": pll["rnnlab"][1],
        "pll_seeds": seeds,
        "sklearn_score_samples": float(ref.score_samples(X).mean()),
    }


def main(quick: bool = False) -> dict:
    """Print and return the table (ratio = sklearn seconds / rnnlab seconds per epoch)."""
    try:
        from sklearn import neural_network as sk
    except ImportError as e:  # benchmark-only dependency
        raise ImportError(
            "the energy benchmark needs scikit-learn: pip install scikit-learn"
        ) from e
    try:
        from threadpoolctl import threadpool_limits

        blas_one = threadpool_limits(1)
    except ImportError:  # pragma: no cover
        blas_one = contextlib.nullcontext()
    X = _data()
    sizes = [(100, 20), (500, 100)]
    repeat = 2 if quick else 5
    epochs = 2 if quick else 10
    with torch_threads(1), blas_one:
        rows = [_measure(sk, X, h, b, epochs, repeat, 2 if quick else 5) for h, b in sizes]
    print(
        f"RBM PCD-1 training on 1,797 binarised digits (64 pixels), {epochs} epochs, float32, "
        "1 thread each"
    )
    print("ratio = sklearn seconds / rnnlab seconds per epoch (higher is better for rnnlab)")
    head = (
        f"{'hidden':>6} {'batch':>5} {'sklearn s':>10} {'rnnlab s':>9} {'ratio':>6} "
        f"{'kernel s':>9} {'ratio':>6} {'PLL sklearn':>13} {'PLL rnnlab':>13}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['hidden']:>6} {r['batch']:>5} {r['sklearn_s_per_epoch']:>10.4f} "
            f"{r['rnnlab_s_per_epoch']:>9.4f} {r['ratio_rnnlab']:>6.2f} "
            f"{r['kernel_s_per_epoch']:>9.4f} {r['ratio_kernel']:>6.2f} "
            f"{r['pll_sklearn']:>7.2f}+-{r['pll_sklearn_se']:<4.2f} "
            f"{r['pll_rnnlab']:>7.2f}+-{r['pll_rnnlab_se']:<4.2f}"
        )
    print(
        f"PLL: exact pseudo-log-likelihood, nats per image (sum over pixels), mean +- standard "
        f"error over {rows[0]['pll_seeds']} seeds; scikit-learn's own score_samples (one random "
        "pixel x 64, seed 0): "
        + ", ".join(f"{r['hidden']}: {r['sklearn_score_samples']:.2f}" for r in rows)
    )
    return {"rows": rows}
