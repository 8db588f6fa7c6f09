r"""k-means clustering (Lloyd's algorithm with k-means++ seeding and restarts).

One implementation for the whole package: the HMM's initialisation and the experiments
use it. Minimises the inertia

.. math::
    J(\mu, z) = \sum_{n=1}^{N} \lVert x_n - \mu_{z_n} \rVert^2

by alternating assignment (:math:`z_n = \arg\min_k \lVert x_n - \mu_k \rVert`) and update
(:math:`\mu_k` = mean of its points), from ``n_init`` k-means++ starts (Arthur &
Vassilvitskii 2007); the run with the lowest inertia is returned. Ties in the assignment
go to the lowest index; a cluster that loses all its points keeps its centre.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from rnnlab._validation import check_positive_int, describe
from rnnlab.errors import InputError, InputTypeError

__all__ = ["KMeansResult", "kmeans"]


class KMeansResult(NamedTuple):
    r"""centers: (k, D) :math:`\mu_k`; labels: (N,) long :math:`z_n`; inertia: float
    :math:`J` of the returned centres and labels."""

    centers: Tensor
    labels: Tensor
    inertia: float


def _as_generator(generator: object) -> torch.Generator | None:
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, int) and not isinstance(generator, bool):
        return torch.Generator().manual_seed(generator)
    raise InputTypeError(
        f"generator: expected a torch.Generator, an int seed or None, received "
        f"{describe(generator)}"
    )


def _sq_dist(x: Tensor, c: Tensor) -> Tensor:
    """Squared Euclidean distances (N, k), exact (no |x|^2 - 2 x.c + |c|^2 cancellation)."""
    return (x.unsqueeze(1) - c.unsqueeze(0)).square().sum(-1)


def _plus_plus(x: Tensor, k: int, g: torch.Generator) -> Tensor:
    """k-means++ seeding: each new centre drawn with probability proportional to the
    squared distance to the nearest centre so far."""
    N = x.shape[0]
    first = int(torch.randint(N, (1,), generator=g))
    centers = [x[first]]
    d2 = (x - x[first]).square().sum(-1)  # (N,)
    for _ in range(1, k):
        total = float(d2.sum())
        if total > 0:
            i = int(torch.multinomial(d2 / total, 1, generator=g))
        else:  # every point coincides with a centre: any point
            i = int(torch.randint(N, (1,), generator=g))
        centers.append(x[i])
        d2 = torch.minimum(d2, (x - x[i]).square().sum(-1))
    return torch.stack(centers)  # (k, D)


def _lloyd(x: Tensor, c: Tensor, n_iter: int) -> tuple[Tensor, Tensor, float]:
    k = c.shape[0]
    labels = _sq_dist(x, c).argmin(-1)  # (N,)
    for _ in range(n_iter):
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype).unsqueeze(-1)  # (k, 1)
        c = torch.where(counts > 0, sums / counts.clamp_min(1), c)
        new = _sq_dist(x, c).argmin(-1)
        if torch.equal(new, labels):
            break
        labels = new
    d2 = _sq_dist(x, c)
    inertia = float(d2.gather(1, labels[:, None]).sum())
    return c, labels, inertia


def kmeans(
    x: Tensor,
    k: int,
    *,
    n_init: int = 10,
    n_iter: int = 300,
    generator: torch.Generator | int | None = None,
) -> KMeansResult:
    """k-means of the rows of ``x`` (N, D) into ``k`` clusters, best of ``n_init`` runs.

    Args:
        x: (N, D) floating-point data (a (N,) vector is read as N points in 1-D).
        k: number of clusters, 1 <= k <= N.
        n_init: number of k-means++ starts; the run with the lowest inertia wins.
        n_iter: maximum Lloyd iterations of each run (stops early when no label changes).
        generator: a ``torch.Generator`` (CPU), an int seed, or None (torch's global
            generator).

    Returns :class:`KMeansResult` ``(centers (k, D), labels (N,), inertia)``.
    """
    if not isinstance(x, Tensor):
        raise InputTypeError(f"x: expected a torch.Tensor, received {describe(x)}")
    if not x.is_floating_point():
        raise InputTypeError(f"x: expected a floating-point tensor, received dtype {x.dtype}")
    if x.dim() == 1:
        x = x.unsqueeze(-1)
    if x.dim() != 2:
        raise InputError(f"x: expected an (N, D) tensor, received shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise InputError("x: expected finite values, received NaN or inf")
    check_positive_int("k", k)
    check_positive_int("n_init", n_init)
    check_positive_int("n_iter", n_iter, minimum=0)
    if k > x.shape[0]:
        raise InputError(f"k: expected at most N = {x.shape[0]} clusters, received {k}")
    g = _as_generator(generator)
    best = None
    for _ in range(n_init):
        c0 = _plus_plus(x.cpu(), k, g).to(x.device)
        c, labels, inertia = _lloyd(x, c0, n_iter)
        if best is None or inertia < best[2]:
            best = (c, labels, inertia)
    return KMeansResult(*best)
