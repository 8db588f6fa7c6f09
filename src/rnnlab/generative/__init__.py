"""Generative models for sequences: a recurrent VAE and a recurrent GAN, with the
measures that judge their samples (docs/generative.md).

- :class:`SequenceVAE` (Bowman et al. 2016) with :class:`KLAnnealing`: ELBO, IWAE bound,
  KL per token and active units, sampling and interpolation.
- :class:`SequenceGAN` (C-RNN-GAN pattern, Mogren 2016): alternating updates as a
  ``gradients=`` hook of :class:`rnnlab.train.Trainer`.
- :func:`mmd`, :func:`discriminative_score`: sample quality against held-out real data.
"""

from rnnlab.generative.gan import SequenceGAN
from rnnlab.generative.metrics import discriminative_score, mmd
from rnnlab.generative.vae import KLAnnealing, SequenceVAE

__all__ = ["KLAnnealing", "SequenceGAN", "SequenceVAE", "discriminative_score", "mmd"]
