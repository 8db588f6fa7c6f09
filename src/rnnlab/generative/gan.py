r"""A recurrent generative adversarial network for continuous-valued sequences
(Goodfellow et al. 2014; the C-RNN-GAN pattern of Mogren 2016).

.. math::

    G:\ \ &h^G_t = \mathrm{LSTM}_G([\epsilon_t; \eta], h^G_{t-1}), \quad
        \hat x_t = W_G h^G_t + b_G, \qquad \epsilon_t, \eta \sim \mathcal N(0, I)
        \ (\eta \text{ one draw per sequence}) \\
    D:\ \ &h^D_{1..T} = \mathrm{BiLSTM}_D(x_{1..T}), \quad
        \ell(x) = \tfrac1T \textstyle\sum_t (w_D^\top h^D_t + b_D)
        \quad\text{(per-step decisions averaged, as C-RNN-GAN)} \\
    L_D &= -\mathbb E_x \log\sigma(\ell(x)) - \mathbb E_\epsilon \log(1 - \sigma(\ell(G(\epsilon))))
        \\
    L_G &= -\mathbb E_\epsilon \log\sigma(\ell(G(\epsilon)))
        \qquad\text{(the non-saturating generator loss)}

Training alternates: ``d_steps`` discriminator updates on a real batch and a fresh fake
batch, then one generator update against the updated discriminator.
:meth:`SequenceGAN.update_hook` packs this into the ``gradients=`` hook of
:class:`rnnlab.train.Trainer`: the hook takes the discriminator's steps with its own
optimizer, then writes only the generator's gradients, which the Trainer's optimizer (over
``gan.generator.parameters()``) steps, clips and checks like any other update. The loss
curve of a GAN says little about the samples; evaluate with
:func:`rnnlab.generative.metrics.mmd` and
:func:`rnnlab.generative.metrics.discriminative_score`.

Sequences are batch-first, (B, T, F) float tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab._validation import check_positive_int, describe
from rnnlab.errors import InputError, InputTypeError
from rnnlab.nn import LSTM
from rnnlab.train.loop import StepOutput


class Generator(nn.Module):
    """Noise (B, T, 2N) -> sequences (B, T, F) through a stacked LSTM and a linear map.

    The first N noise values of each step are fresh per step, the last N are one draw per
    sequence repeated over time (:meth:`SequenceGAN.sample`): with per-step noise alone
    every sequence starts from the same zero state and the generator tends to one phase
    (mode collapse, seen on the sines)."""

    def __init__(self, noise_size: int, hidden_size: int, features: int, num_layers: int):
        super().__init__()
        self.rnn = LSTM(2 * noise_size, hidden_size, num_layers)
        self.out = nn.Linear(hidden_size, features)

    def forward(self, noise: Tensor) -> Tensor:
        h, _ = self.rnn(noise)
        return self.out(h)


class Discriminator(nn.Module):
    """Sequences (B, T, F) -> one logit per sequence (B,), the mean of per-step logits of
    a bidirectional LSTM."""

    def __init__(self, features: int, hidden_size: int, num_layers: int):
        super().__init__()
        self.rnn = LSTM(features, hidden_size, num_layers, bidirectional=True)
        self.out = nn.Linear(2 * hidden_size, 1)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.rnn(x)
        return self.out(h)[..., 0].mean(-1)


class SequenceGAN(nn.Module):
    """A recurrent GAN (see the module docstring).

    Args:
        features: F, values per time step.
        noise_size: N, noise values per time step fed to the generator.
        hidden_size, num_layers: the generator's and the discriminator's LSTMs.
    """

    def __init__(
        self, features: int, noise_size: int = 8, hidden_size: int = 64, num_layers: int = 1
    ) -> None:
        super().__init__()
        self.features = check_positive_int("features", features)
        self.noise_size = check_positive_int("noise_size", noise_size)
        check_positive_int("hidden_size", hidden_size)
        check_positive_int("num_layers", num_layers)
        self.generator = Generator(noise_size, hidden_size, features, num_layers)
        self.discriminator = Discriminator(features, hidden_size, num_layers)

    def _check(self, name: str, x: object) -> Tensor:
        if not isinstance(x, Tensor):
            raise InputTypeError(
                f"{name}: expected a float tensor (B, T, F), received {describe(x)}"
            )
        if x.dim() != 3 or x.shape[2] != self.features or x.shape[1] < 1 or x.shape[0] < 1:
            raise InputError(
                f"{name}: expected shape (batch, time, {self.features}), received shape "
                f"{tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise InputTypeError(f"{name}: expected a floating-point tensor, received {x.dtype}")
        return x

    def sample(self, num: int, length: int, generator: torch.Generator | None = None) -> Tensor:
        """``num`` generated sequences of ``length`` steps: (num, length, F)."""
        check_positive_int("num", num)
        check_positive_int("length", length)
        p = self.generator.out.weight
        kw = {"generator": generator, "dtype": p.dtype, "device": p.device}
        step = torch.randn(num, length, self.noise_size, **kw)  # fresh each step
        seq = torch.randn(num, 1, self.noise_size, **kw).expand(-1, length, -1)  # per sequence
        return self.generator(torch.cat([step, seq], dim=-1))

    def discriminator_loss(self, real: Tensor, fake: Tensor) -> Tensor:
        """:math:`L_D` on a real and a fake batch (the fake one is detached)."""
        self._check("real", real)
        self._check("fake", fake)
        lr, lf = self.discriminator(real), self.discriminator(fake.detach())
        return F.binary_cross_entropy_with_logits(
            lr, torch.ones_like(lr)
        ) + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf))

    def generator_loss(self, fake: Tensor) -> Tensor:
        """The non-saturating :math:`L_G` of a fake batch."""
        self._check("fake", fake)
        lf = self.discriminator(fake)
        return F.binary_cross_entropy_with_logits(lf, torch.ones_like(lf))

    def update_hook(self, d_optimizer: torch.optim.Optimizer, d_steps: int = 1) -> GANUpdate:
        """A ``gradients=`` hook for :class:`rnnlab.train.Trainer`: ``d_steps``
        discriminator updates by ``d_optimizer``, then the generator's gradient of
        :math:`L_G` written to ``.grad`` (the discriminator's left None) for the
        Trainer's optimizer over ``self.generator.parameters()``. Batches are real
        (B, T, F) tensors; the reported loss is :math:`L_G`, ``items`` the batch size.
        The hook's ``state_dict`` (the discriminator optimizer's) goes into the
        Trainer's checkpoints, so a resumed run continues exactly."""
        check_positive_int("d_steps", d_steps)
        return GANUpdate(d_optimizer, d_steps)


class GANUpdate:
    """The alternating updates of :meth:`SequenceGAN.update_hook`, with the
    discriminator optimizer's state for checkpoints."""

    def __init__(self, d_optimizer: torch.optim.Optimizer, d_steps: int):
        self.d_optimizer, self.d_steps = d_optimizer, d_steps

    def __call__(self, model: SequenceGAN, batch: Tensor, carry) -> StepOutput:
        real = model._check("batch", batch)
        B, T, _ = real.shape
        for _ in range(self.d_steps):
            self.d_optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                fake = model.sample(B, T)
            model.discriminator_loss(real, fake).backward()
            self.d_optimizer.step()
        for p in model.discriminator.parameters():
            p.grad = None
        loss_g = model.generator_loss(model.sample(B, T))
        grads = torch.autograd.grad(loss_g, list(model.generator.parameters()))
        for p, g in zip(model.generator.parameters(), grads):
            p.grad = g
        return StepOutput(loss_g.detach(), items=B)

    def state_dict(self) -> dict:
        return self.d_optimizer.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.d_optimizer.load_state_dict(state)


__all__ = ["Discriminator", "GANUpdate", "Generator", "SequenceGAN"]
