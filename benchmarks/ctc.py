"""CTC training frames/s vs torch BLSTM + nn.CTCLoss, and beam search decoding time."""

import sys

from rnnlab.bench.ctc import main

if __name__ == "__main__":
    main(quick="--quick" in sys.argv)
