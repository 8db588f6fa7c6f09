"""Benchmark: rnnlab's recurrent engines against torch.nn.LSTM (rnnlab bench engines)."""

from rnnlab.bench.engines import main

if __name__ == "__main__":
    main()
