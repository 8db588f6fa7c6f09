"""ESN vs reservoirpy on Mackey-Glass one-step: python benchmarks/esn.py [--quick]."""

import sys

from rnnlab.bench.esn import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
