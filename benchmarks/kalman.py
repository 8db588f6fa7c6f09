"""Kalman filter + RTS smoother vs pykalman (see rnnlab.bench.kalman)."""

from rnnlab.bench.kalman import main

if __name__ == "__main__":
    main()
