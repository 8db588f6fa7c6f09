"""Classical sequence models against their reference libraries, in one run: the Kalman
filter + RTS smoother against pykalman (:mod:`rnnlab.bench.kalman`) and the HMM
forward-backward and Baum-Welch against hmmlearn (:mod:`rnnlab.bench.hmm`). Each part
prints its own table of ratios; a missing comparison library skips its part.
"""

from __future__ import annotations


def main(quick: bool = False) -> dict:
    """Run both comparisons; returns ``{"kalman": ..., "hmm": ...}``."""
    from rnnlab.bench import hmm, kalman

    print("== Kalman filter + RTS smoother vs pykalman ==")
    kalman_results = kalman.main(quick=quick)
    print()
    print("== HMM vs hmmlearn ==")
    hmm_results = hmm.main(quick=quick)
    return {"kalman": kalman_results, "hmm": hmm_results}


if __name__ == "__main__":
    main()
