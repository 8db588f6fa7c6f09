"""Kalman filter + RTS smoother vs pykalman: python benchmarks/kalman.py [--quick]."""

import sys

from rnnlab.bench.kalman import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
