"""rnnlab: recurrent neural networks and the classical sequence models they grew out of.

Subpackages (import what you need; nothing heavy is imported here):

- :mod:`rnnlab.nn`: recurrent cells and layers (SRN, FullyRecurrent, LSTM, GRU, ...)
- :mod:`rnnlab.engines`: how a layer runs over time (loop, bptt, fused, rtrl)
- :mod:`rnnlab.classic`: autoregression, NPLM, linear dynamical systems, HMMs
- :mod:`rnnlab.train`: the training loop, checkpoints, language models, generation
- :mod:`rnnlab.tasks`: the field's benchmark tasks with their success criteria
- :mod:`rnnlab.analysis`: gradient-flow diagnostics
- :mod:`rnnlab.generative`: a recurrent VAE and a recurrent GAN for sequences
- :mod:`rnnlab.experiments`: named reproductions of published results
"""

__version__ = "0.1.0"
