"""Forward + backward time of rnnlab's recurrent engines against torch.nn.LSTM / GRU.

For each (B, T, F, H) and each row of :data:`ROWS` (a cell configuration on one engine),
the row and its reference torch kernel are timed alternately, ``repeat`` pairs, and the
ratio printed is the median of the pairwise ratios (lower is faster; 1.00x = torch's
speed). A row is one line: ``(label, reference, factory(F, H) -> layer, engine)``;
reference "lstm" or "gru" (torch.nn.LSTM / torch.nn.GRU of the same F, H).
"""

from __future__ import annotations

import statistics
import time

import torch

from rnnlab._threads import torch_threads
from rnnlab.errors import InputError
from rnnlab.nn import GRU, LSTM, Cell, MultiplicativeRNN, Recurrent

SIZES = ((32, 100, 2, 64), (32, 1000, 2, 64), (64, 128, 64, 512))
QUICK_SIZES = ((8, 50, 2, 16),)


class ScaledSRNCell(Cell):
    """The README's custom cell (a step and nothing else): h_t = tanh(W_ih x_t + alpha W_hh h)."""

    def __init__(self, input_size: int, hidden_size: int, alpha: float = 0.5) -> None:
        super().__init__(state_sizes=(hidden_size,), output_size=hidden_size)
        self.alpha = alpha
        self.weight_ih = torch.nn.Parameter(0.3 * torch.randn(hidden_size, input_size))
        self.weight_hh = torch.nn.Parameter(0.3 * torch.randn(hidden_size, hidden_size))

    def project(self, x):
        return x @ self.weight_ih.t()

    def step(self, x_t, state):
        h = torch.tanh(x_t + self.alpha * state[0] @ self.weight_hh.t())
        return h, (h,)


def _readme_cell(f: int, h: int) -> Recurrent:
    return Recurrent(lambda n: ScaledSRNCell(n, h), input_size=f)


ROWS = [
    ("LSTM auto", "lstm", lambda f, h: LSTM(f, h), "auto"),
    ("LSTM bptt", "lstm", lambda f, h: LSTM(f, h), "bptt"),
    ("LSTM compiled", "lstm", lambda f, h: LSTM(f, h), "compiled"),
    ("peephole bptt", "lstm", lambda f, h: LSTM(f, h, peepholes=True), "bptt"),
    ("peephole compiled", "lstm", lambda f, h: LSTM(f, h, peepholes=True), "compiled"),
    ("layer-norm bptt", "lstm", lambda f, h: LSTM(f, h, layer_norm=True), "bptt"),
    ("layer-norm compiled", "lstm", lambda f, h: LSTM(f, h, layer_norm=True), "compiled"),
    ("1997 cell bptt", "lstm", lambda f, h: LSTM(f, h, forget_gate=False), "bptt"),
    ("1997 cell compiled", "lstm", lambda f, h: LSTM(f, h, forget_gate=False), "compiled"),
    ("GRU rec-dropout bptt", "gru", lambda f, h: GRU(f, h, recurrent_dropout=0.25), "bptt"),
    ("mRNN bptt", "gru", lambda f, h: MultiplicativeRNN(f, h), "bptt"),
    # cells defined by their step alone: the generic engine (compiled step and vjp)
    ("README cell loop", "lstm", _readme_cell, "loop"),
    ("README cell generic", "lstm", _readme_cell, "generic"),
    ("LSTM step generic", "lstm", lambda f, h: LSTM(f, h), "generic"),
]


def _fwd_bwd(layer, x, device):
    def run():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        y, _ = layer(x)
        y.sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return run


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(
    quick: bool = False, threads: int = 1, device: str = "cpu", repeat: int | None = None
) -> dict:
    """Run the benchmark, print the table, return {size: {row: {"ms", "ratio"}}}.

    ``device="cuda"``: the same table on the GPU (torch's kernels are then cuDNN).
    One thread by default: with two OpenMP threads on two cores, any other process on the
    machine stalls torch's thread barrier and the timings swing by 10x."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device: 'cuda' requested but CUDA is not available")
    with torch_threads(threads):
        return _run(quick, dev, repeat or (2 if quick else 5))


def _run(quick: bool, device: torch.device, repeat: int) -> dict:
    torch.manual_seed(0)
    record = {}
    header = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{torch.get_num_threads()} threads"
    )
    print(f"forward+backward, median of {repeat} alternated pairs, torch {torch.__version__}, "
          f"{header}")  # fmt: skip
    print(f"{'size':<22} {'row':<22} {'ms':>9}  ratio to torch (nearest kernel)")
    for B, T, F, H in QUICK_SIZES if quick else SIZES:
        key = f"B={B} T={T} F={F} H={H}"
        x = torch.randn(B, T, F, device=device, requires_grad=True)
        refs = {
            "lstm": torch.nn.LSTM(F, H, batch_first=True, device=device),
            "gru": torch.nn.GRU(F, H, batch_first=True, device=device),
        }
        record[key] = {}
        for label, ref_name, factory, engine in ROWS:
            layer = factory(F, H).to(device)
            layer.engine = engine
            try:
                layer.resolved_engine()
            except InputError as e:
                print(f"{key:<22} {label:<22} skipped: {e}")
                continue
            ours, ref = _fwd_bwd(layer, x, device), _fwd_bwd(refs[ref_name], x, device)
            ours(), ref()  # warm-up (and the compiled engine's build or load)
            pairs = [(_seconds(ref), _seconds(ours)) for _ in range(repeat)]
            ratio = statistics.median(o / r for r, o in pairs)
            ms = statistics.median(o for _, o in pairs) * 1e3
            record[key][label] = {"ms": ms, "ratio": ratio, "reference": ref_name}
            print(f"{key:<22} {label:<22} {ms:9.1f}  {ratio:5.2f}x torch.nn.{ref_name.upper()}")
    return record
