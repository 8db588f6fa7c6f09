"""HMM forward-backward and Baum-Welch vs hmmlearn: python benchmarks/hmm.py [--quick]."""

import sys

from rnnlab.bench.hmm import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
