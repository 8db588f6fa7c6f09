"""``rnnlab reproduce gan-sines``: a recurrent GAN (C-RNN-GAN pattern, Mogren 2016) on sine
waves of random frequency and phase, and on Mackey-Glass windows as a harder case.

Data: x_t = sin(2 pi f t + phi), t = 0..T-1, f ~ U[0.04, 0.12] cycles per step, phi ~
U[0, 2 pi); and windows of T steps of the tau = 17 Mackey-Glass series
(:func:`rnnlab.tasks.mackey_glass.mackey_glass`, one sample per time unit), standardised,
training windows from the first 70% of the series, held-out ones from the rest.

Model: :class:`rnnlab.generative.SequenceGAN` (LSTM generator, bidirectional LSTM
discriminator), trained by :class:`rnnlab.train.Trainer` with the alternating updates as
its ``gradients=`` hook, Adam (2e-3, betas 0.5/0.999) for both networks. Evaluation
against a held-out real set: the squared MMD (Gaussian kernels, median heuristic) and the
discriminative score |held-out accuracy - 1/2| of a fresh GRU classifier; the same for a
trivial baseline (Gaussian noise with the training data's per-step mean and variance) and,
as the floor, for a second real set. Success rule (ours): on both data sets the GAN's MMD
and discriminative score are below the baseline's. No published numbers are comparable.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from rnnlab._threads import torch_threads
from rnnlab.experiments import ExperimentConfig, ExperimentResult, register
from rnnlab.generative import SequenceGAN, discriminative_score, mmd
from rnnlab.tasks.mackey_glass import mackey_glass
from rnnlab.train import TrainConfig, Trainer


def sines(n: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` sine waves (n, length, 1) of random frequency in [0.04, 0.12] and phase."""
    f = 0.04 + 0.08 * torch.rand(n, 1, generator=generator)
    phi = 2 * math.pi * torch.rand(n, 1, generator=generator)
    t = torch.arange(length, dtype=torch.float32)[None]
    return torch.sin(2 * math.pi * f * t + phi)[..., None]


def mackey_glass_windows(n_train: int, n_test: int, length: int, generator: torch.Generator):
    """Standardised windows (n, length, 1): training ones from the first 70% of a 6,000-step
    series, held-out ones (two sets) from the last 30%."""
    x = mackey_glass(6000).float()
    x = (x - x.mean()) / x.std()
    cut = int(0.7 * len(x))

    def windows(lo, hi, n):
        start = torch.randint(lo, hi - length, (n,), generator=generator)
        return torch.stack([x[s : s + length] for s in start.tolist()])[..., None]

    return windows(0, cut, n_train), windows(cut, len(x), n_test), windows(cut, len(x), n_test)


def _train_gan(train: torch.Tensor, steps: int, hidden: int, batch: int, seed: int):
    torch.manual_seed(seed)
    gan = SequenceGAN(1, noise_size=4, hidden_size=hidden)
    d_opt = torch.optim.Adam(gan.discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    g_opt = torch.optim.Adam(gan.generator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    g = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            yield train[torch.randint(len(train), (batch,), generator=g)]

    Trainer(gan, g_opt, batches(), None, TrainConfig(steps=steps, clip_norm=5.0, progress=False),
            gradients=gan.update_hook(d_opt, d_steps=1)).fit()  # fmt: skip
    return gan


def _evaluate(gan, train, test, floor, steps_clf, seed):
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        fake = gan.sample(len(test), test.shape[1], generator=g)
    mean, std = train.mean(0), train.std(0)
    noise = mean + std * torch.randn(test.shape, generator=g)
    out = {}
    for name, s in (("gan", fake), ("noise", noise), ("real", floor)):
        out[f"mmd_{name}"] = mmd(s, test)
        out[f"disc_{name}"] = discriminative_score(test, s, steps=steps_clf, seed=seed)
    return out, fake


@register("gan-sines", "recurrent GAN on random sines and Mackey-Glass: MMD, discriminative score")
def run(config: ExperimentConfig) -> ExperimentResult:
    if config.quick:
        n_train, n_test, length, steps, hidden, batch, clf = 256, 64, 12, 20, 8, 32, 20
    else:
        n_train, n_test, length, steps, hidden, batch, clf = 2000, 300, 24, 1000, 24, 64, 200
    g = torch.Generator().manual_seed(config.seed)
    metrics, figures = {}, {}
    with torch_threads(1):
        sets = {
            "sines": (
                sines(n_train, length, g),
                sines(n_test, length, g),
                sines(n_test, length, g),
            ),
            "mackey_glass": mackey_glass_windows(n_train, n_test, length, g),
        }
        for name, (train, test, floor) in sets.items():
            gan = _train_gan(train, steps, hidden, batch, config.seed)
            m, fake = _evaluate(gan, train, test, floor, clf, config.seed)
            metrics.update({f"{name}_{k}": v for k, v in m.items()})
            figures[name] = (test[:6], fake[:6])
    success = all(
        metrics[f"{n}_mmd_gan"] < metrics[f"{n}_mmd_noise"]
        and metrics[f"{n}_disc_gan"] < metrics[f"{n}_disc_noise"]
        for n in sets
    )
    metrics.update({"steps": steps, "train_sequences": n_train, "test_sequences": n_test,
                    "length": length})  # fmt: skip
    rows = "\n".join(
        f"| {n} | {metrics[f'{n}_mmd_gan']:.4f} | {metrics[f'{n}_mmd_noise']:.4f} | "
        f"{metrics[f'{n}_mmd_real']:.4f} | {metrics[f'{n}_disc_gan']:.3f} | "
        f"{metrics[f'{n}_disc_noise']:.3f} | {metrics[f'{n}_disc_real']:.3f} |"
        for n in sets
    )
    report = f"""# gan-sines

Preset: {"quick" if config.quick else "full"}, seed {config.seed}. {n_train} training and
{n_test} held-out sequences of {length} steps per data set; SequenceGAN with {hidden}-unit
LSTMs, {steps} alternating steps of {batch} (one discriminator update, then one generator
update). Against the held-out set: squared MMD (lower is better) and the discriminative
score |accuracy - 1/2| of a GRU classifier trained on half of each set ({clf} steps; 0 is
indistinguishable). "noise": Gaussian noise with the training data's per-step mean and
variance; "real": a second held-out real set (the floor).

| data | MMD^2 GAN | MMD^2 noise | MMD^2 real | disc. GAN | disc. noise | disc. real |
|---|---|---|---|---|---|---|
{rows}

Success rule (ours): on both data sets the GAN beats the noise baseline on both measures
({"met" if success else "NOT met"}).
"""
    return ExperimentResult("gan-sines", success, metrics, {}, report, _plot(config.out, figures))


def _plot(out: Path, figures) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return []
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(9, 5), sharex=True)
    for col, (name, (real, fake)) in enumerate(figures.items()):
        for row, (label, s) in enumerate((("held-out real", real), ("generated", fake))):
            ax = axes[row, col]
            for seq in s:
                ax.plot(seq[:, 0].numpy(), lw=1)
            ax.set_title(f"{name}: {label}", fontsize=9)
    fig.tight_layout()
    path = out / "gan_sines_samples.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]
