"""Char LM, rnnlab training stack vs a plain torch.nn.LSTM loop: benchmarks/lm.py [--quick]."""

import sys

from rnnlab.bench.lm import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
