"""Sequence labelling: frame-wise labellers, CTC recognisers and the HMM connected-word
recogniser they replaced.

- :class:`SequenceLabeller`: a (bidirectional) recurrent stack with a per-frame softmax,
  trained by frame-wise cross-entropy (Graves & Schmidhuber 2005);
- :class:`CTCRecogniser`: the same stack with a blank-augmented output, trained by
  connectionist temporal classification (Graves et al. 2006; :mod:`rnnlab.ctc`);
- :class:`ConnectedWordHMM`: one HMM per word joined in a looped grammar, decoded by
  Viterbi over the composed model;
- :func:`fit`: training through the one training loop.
"""

from rnnlab.labelling.hmm_recogniser import ConnectedWordHMM, Recognition
from rnnlab.labelling.models import CTCRecogniser, FrameWindow, SequenceLabeller, model_from_config
from rnnlab.labelling.train import (
    Batches,
    Sequences,
    fit,
    frame_accuracy,
    recognition_errors,
    transcribe_all,
)

__all__ = [
    "Batches",
    "CTCRecogniser",
    "ConnectedWordHMM",
    "FrameWindow",
    "Recognition",
    "SequenceLabeller",
    "Sequences",
    "fit",
    "frame_accuracy",
    "model_from_config",
    "recognition_errors",
    "transcribe_all",
]
