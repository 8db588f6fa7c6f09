"""Forward + backward time of rnnlab's recurrent engines against torch.nn.LSTM.

Prints, for each (B, T, F, H), the milliseconds of torch.nn.LSTM and each rnnlab engine
and their ratio to torch.nn.LSTM measured in the same run (lower is faster).
"""

from __future__ import annotations

import torch

from rnnlab._threads import torch_threads
from rnnlab.bench import timeit
from rnnlab.errors import InputError
from rnnlab.nn import LSTM

SIZES = ((32, 100, 2, 64), (32, 1000, 2, 64), (64, 128, 64, 512))
QUICK_SIZES = ((8, 50, 2, 16),)


def _fwd_bwd(layer, x):
    def run():
        x.grad = None
        layer.zero_grad(set_to_none=True)
        y, _ = layer(x)
        y.sum().backward()
        _sync(x.device)

    return run


def main(quick: bool = False, threads: int = 1, device: str = "cpu") -> dict:
    """Run the benchmark, print the table, return {size: {engine: ms, ratio: ...}}.

    ``device="cuda"``: the same table on the GPU (torch.nn.LSTM is then cuDNN).

    One thread by default: with two OpenMP threads on two cores, any other process on the
    machine stalls torch's thread barrier and the timings swing by 10x."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device: 'cuda' requested but CUDA is not available")
    with torch_threads(threads):
        return _run(quick, dev)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run(quick: bool, device: torch.device) -> dict:
    torch.manual_seed(0)
    rows, record = [], {}
    repeat = 2 if quick else 5
    for B, T, F, H in QUICK_SIZES if quick else SIZES:
        x = torch.randn(B, T, F, device=device, requires_grad=True)
        ref = torch.nn.LSTM(F, H, batch_first=True, device=device)
        times = {"torch.nn.LSTM": timeit(_fwd_bwd(ref, x), repeat=repeat)}
        ours = LSTM(F, H, device=device)
        ours.load_state_dict(ref.state_dict())
        for engine in ("auto", "bptt", "loop"):
            if engine == "loop" and T * H > 64_000 and not quick:
                continue  # minutes; the T = 1000 row is the one that matters
            ours.engine = engine
            slow = engine == "loop" and not quick  # tens of seconds a run: once is enough
            times[f"rnnlab {engine}"] = timeit(
                _fwd_bwd(ours, x), repeat=1 if slow else repeat, warmup=0 if slow else 1
            )
        base = times["torch.nn.LSTM"]
        key = f"B={B} T={T} F={F} H={H}"
        record[key] = {name: {"ms": t * 1e3, "ratio": t / base} for name, t in times.items()}
        if "rnnlab loop" in times:
            record[key]["bptt_speedup_over_loop"] = times["rnnlab loop"] / times["rnnlab bptt"]
        for name, t in times.items():
            rows.append((key, name, f"{t * 1e3:9.1f}", f"{t / base:5.2f}x"))
    print(
        f"forward+backward, median of {repeat}, torch {torch.__version__}, "
        + (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else f"{torch.get_num_threads()} threads"
        )
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'size':<{width}}  {'engine':<15} {'ms':>9}  ratio to torch.nn.LSTM")
    for r in rows:
        print(f"{r[0]:<{width}}  {r[1]:<15} {r[2]}  {r[3]}")
    return record
