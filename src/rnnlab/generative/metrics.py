r"""Sample-quality measures for generated sequences: the maximum mean discrepancy and a
held-out discriminative score.

.. math::

    \mathrm{MMD}^2_b(X, Y) = \frac1{m^2}\sum_{i,j} k(x_i, x_j)
        + \frac1{n^2}\sum_{i,j} k(y_i, y_j) - \frac2{mn}\sum_{i,j} k(x_i, y_j),
    \qquad k(a, b) = \frac1{|\Sigma|}\sum_{s \in \Sigma} e^{-\|a - b\|^2 / (2 s^2)}

(Gretton et al. 2012, the biased V-statistic: 0 exactly when X and Y are the same set,
never negative). Each sequence (T, F) is one vector of T F values. ``bandwidths`` None
uses the median heuristic: s = the median pairwise distance of the pooled sets, times
1/2, 1 and 2.

The discriminative score (Yoon et al. 2019's "TimeGAN" protocol): a fresh recurrent
classifier is trained to tell real from generated sequences on one half of each set and
tested on the other half; the score is |accuracy - 1/2| (0: indistinguishable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab._validation import check_positive_int, describe
from rnnlab.errors import InputError, InputTypeError
from rnnlab.nn import GRU
from rnnlab.train.loop import StepOutput, TrainConfig, Trainer


def _check_set(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise InputTypeError(f"{name}: expected a float tensor (N, T, F), received {describe(x)}")
    if x.dim() != 3 or x.shape[0] < 1:
        raise InputError(f"{name}: expected shape (N, T, F), received shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputTypeError(f"{name}: expected a floating-point tensor, received {x.dtype}")
    return x


def _check_pair(x: object, y: object) -> tuple[Tensor, Tensor]:
    x, y = _check_set("x", x), _check_set("y", y)
    if x.shape[1:] != y.shape[1:]:
        raise InputError(
            f"y: expected sequences of the shape of x's, (*, {x.shape[1]}, {x.shape[2]}), "
            f"received shape {tuple(y.shape)}"
        )
    return x, y


def mmd(x: Tensor, y: Tensor, bandwidths: list[float] | None = None) -> float:
    """The biased squared MMD between two sets of sequences (N, T, F) and (M, T, F)."""
    x, y = _check_pair(x, y)
    a = x.reshape(x.shape[0], -1).double()
    b = y.reshape(y.shape[0], -1).to(a)
    z = torch.cat([a, b])
    d2 = torch.cdist(z, z).pow(2)  # (N + M, N + M)
    if bandwidths is None:
        off = d2[~torch.eye(len(z), dtype=torch.bool)]
        med = float(off.sqrt().median()) if off.numel() else 1.0
        med = med if med > 0 else 1.0
        bandwidths = [0.5 * med, med, 2 * med]
    if not bandwidths or any(
        isinstance(s, bool) or not isinstance(s, (int, float)) or s <= 0 for s in bandwidths
    ):
        raise InputError(f"bandwidths: expected positive numbers, received {bandwidths!r}")
    k = sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths) / len(bandwidths)
    n = a.shape[0]
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    value = kxx.mean() + kyy.mean() - 2 * kxy.mean()
    return max(float(value), 0.0)


class _Classifier(nn.Module):
    def __init__(self, features: int, hidden: int):
        super().__init__()
        self.rnn = GRU(features, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        _, h = self.rnn(x)
        return self.out(h[-1])[:, 0]  # (B,)


def discriminative_score(
    real: Tensor,
    fake: Tensor,
    hidden_size: int = 16,
    steps: int = 300,
    batch_size: int = 64,
    seed: int = 0,
) -> float:
    """|held-out accuracy - 1/2| of a GRU classifier trained (by the project's Trainer,
    Adam 1e-2) to tell ``real`` from ``fake`` (N, T, F) on the first half of each set and
    tested on the second half (the sets are shuffled with ``seed`` first)."""
    real, fake = _check_pair(real, fake)
    check_positive_int("hidden_size", hidden_size)
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    if real.shape[0] < 4 or fake.shape[0] < 4:
        raise InputError(
            f"real, fake: expected at least 4 sequences each, received {real.shape[0]} and "
            f"{fake.shape[0]}"
        )
    g = torch.Generator().manual_seed(seed)
    real = real[torch.randperm(real.shape[0], generator=g)].float().detach()
    fake = fake[torch.randperm(fake.shape[0], generator=g)].float().detach()
    hr, hf = real.shape[0] // 2, fake.shape[0] // 2
    x_train = torch.cat([real[:hr], fake[:hf]])
    y_train = torch.cat([torch.ones(hr), torch.zeros(hf)])
    x_test = torch.cat([real[hr:], fake[hf:]])
    y_test = torch.cat([torch.ones(real.shape[0] - hr), torch.zeros(fake.shape[0] - hf)])
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _Classifier(real.shape[2], hidden_size)

        def batches():
            while True:
                idx = torch.randint(len(x_train), (min(batch_size, len(x_train)),), generator=g)
                yield x_train[idx], y_train[idx]

        def loss_fn(m, batch, carry):
            x, y = batch
            return StepOutput(F.binary_cross_entropy_with_logits(m(x), y), items=len(x))

        Trainer(model, torch.optim.Adam(model.parameters(), lr=1e-2), batches(), loss_fn,
                TrainConfig(steps=steps, clip_norm=1.0, progress=False)).fit()  # fmt: skip
        with torch.no_grad():
            acc = float(((model(x_test) > 0).float() == y_test).float().mean())
    return abs(acc - 0.5)


__all__ = ["discriminative_score", "mmd"]
