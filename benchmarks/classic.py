"""Classical models vs pykalman and hmmlearn: python benchmarks/classic.py [--quick]."""

import sys

from rnnlab.bench.classic import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
