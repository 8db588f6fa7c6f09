"""Training loop, checkpoints, language models and generation.

- :class:`Trainer` / :class:`TrainConfig`: the one training loop (model + batch iterator +
  loss function), with clipping, schedules, TBPTT carry, evaluation, early stopping,
  metrics, checkpoints that resume exactly, NaN guards and signal handling.
- :class:`LanguageModel`: embedding -> recurrent stack -> softmax; :func:`train_lm`,
  :func:`eval_lm` and generation (:func:`sample`, :func:`beam_search`).
"""

from rnnlab.train.checkpoint import load_checkpoint, save_checkpoint, seed_everything
from rnnlab.train.generate import BeamResult, beam_search, filter_logits, next_token, sample
from rnnlab.train.lm import LanguageModel, LMConfig, LMOutput, evaluate_lm, lm_loss
from rnnlab.train.lm_run import LMTrainOptions, eval_lm, load_lm, train_lm
from rnnlab.train.loop import (
    StepOutput,
    TrainConfig,
    Trainer,
    TrainingDiverged,
    TrainResult,
    detach_carry,
)

__all__ = [
    "BeamResult",
    "LMConfig",
    "LMOutput",
    "LMTrainOptions",
    "LanguageModel",
    "StepOutput",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "beam_search",
    "detach_carry",
    "eval_lm",
    "evaluate_lm",
    "filter_logits",
    "lm_loss",
    "load_checkpoint",
    "load_lm",
    "next_token",
    "sample",
    "save_checkpoint",
    "seed_everything",
    "train_lm",
]
