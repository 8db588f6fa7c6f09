"""Song 2000 STDP network, rnnlab vs Brian2 (numpy): python benchmarks/spiking.py [--quick]."""

import sys

from rnnlab.bench.spiking import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
