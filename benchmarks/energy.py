"""RBM training vs scikit-learn's BernoulliRBM: python benchmarks/energy.py [--quick]."""

import sys

from rnnlab.bench.energy import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
