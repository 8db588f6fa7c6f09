"""Ising samplers' spin updates per second vs NumPy: python benchmarks/ising.py [--quick]."""

import sys

from rnnlab.bench.ising import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
