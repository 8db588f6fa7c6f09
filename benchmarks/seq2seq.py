"""Seq2Seq training vs plain torch.nn and decoding speed: python benchmarks/seq2seq.py [--quick]."""

import sys

from rnnlab.bench.seq2seq import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
