"""CTC training and decoding speed: rnnlab's :class:`~rnnlab.labelling.CTCRecogniser` with
:func:`rnnlab.ctc.ctc_loss` against a plain PyTorch BLSTM with ``torch.nn.CTCLoss``.

Training: one step (forward, loss, backward, Adam update) on the same batch of B random
sequences of T frames (F = 13 features, 10 labels plus the blank, transcripts of T / 20
labels), both models of the same size (one bidirectional LSTM layer of H units per
direction, a linear output layer), alternating runs, one torch thread; frames/s = B T /
seconds per step. rnnlab's side includes its input checks (the targets, the lengths, the
too-short check, the normalisation warning's logsumexp).

Decoding: seconds per sequence of greedy decoding and of prefix beam search at several
beam widths on the trained-for-zero-steps model's output (the time depends on the beam
and the alphabet, not on the weights).
"""

from __future__ import annotations

import time

import torch
from torch import nn

from rnnlab._threads import torch_threads
from rnnlab.ctc import greedy_decode, prefix_beam_search
from rnnlab.labelling import CTCRecogniser


class _PlainBLSTM(nn.Module):
    def __init__(self, F: int, H: int, C: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(F, H, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * H, C)

    def forward(self, x):
        h, _ = self.lstm(x)
        return torch.log_softmax(self.out(h), -1)


def _batch(B: int, T: int, F: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, F, generator=g)
    S = max(1, T // 20)
    targets = [torch.randint(0, 10, (S,), generator=g).tolist() for _ in range(B)]
    return x, torch.full((B,), T, dtype=torch.long), targets


def main(quick: bool = False) -> dict:
    """Print and return the training frames/s ratio and the beam-search decoding times."""
    B, T, F, H = (4, 60, 13, 16) if quick else (16, 200, 13, 64)
    rounds = 3 if quick else 7
    with torch_threads(1):
        torch.manual_seed(0)
        ours = CTCRecogniser(F, 10, hidden_size=H)
        plain = _PlainBLSTM(F, H, 11)
        weights = {"lstm." + k: v for k, v in ours.stack.state_dict().items()}
        weights |= {"out." + k: v for k, v in ours.readout.state_dict().items()}
        plain.load_state_dict(weights)  # torch.nn.LSTM's names and layout
        x, lengths, targets = _batch(B, T, F)
        padded = torch.tensor([[v + 1 for v in t] for t in targets])
        tl = torch.full((B,), padded.shape[1], dtype=torch.long)
        ctc = nn.CTCLoss()
        opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3)
        opt_plain = torch.optim.Adam(plain.parameters(), lr=1e-3)
        with torch.no_grad():  # same loss on the same weights: the comparison is like for like
            a = float(ours.loss(x, targets, lengths))
            b = float(ctc(plain(x).transpose(0, 1), padded, lengths, tl))

        def step_ours():
            opt_ours.zero_grad()
            ours.loss(x, targets, lengths).backward()
            opt_ours.step()

        def step_plain():
            opt_plain.zero_grad()
            ctc(plain(x).transpose(0, 1), padded, lengths, tl).backward()
            opt_plain.step()

        times = {"rnnlab": [], "torch": []}
        step_ours(), step_plain()  # warm-up
        for _ in range(rounds):  # alternating runs
            for name, fn in (("rnnlab", step_ours), ("torch", step_plain)):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        fps = {k: B * T / v for k, v in med.items()}
        ratio = fps["rnnlab"] / fps["torch"]

        with torch.no_grad():
            lp = ours(x, lengths)
        dec = {}
        greedy_decode(lp, lengths)  # warm-up
        t0 = time.perf_counter()
        greedy_decode(lp, lengths)
        dec["greedy"] = (time.perf_counter() - t0) / B
        for beam in (1, 4, 16) if not quick else (1, 4):
            t0 = time.perf_counter()
            prefix_beam_search(lp, lengths, beam)
            dec[f"beam {beam}"] = (time.perf_counter() - t0) / B
    print(f"CTC training step, BLSTM H={H}, B={B}, T={T}, F={F}, 11 classes, 1 thread")
    print(f"{'':<28}{'frames/s':>12}{'s/step':>10}")
    for k in ("rnnlab", "torch"):
        label = "rnnlab CTCRecogniser" if k == "rnnlab" else "torch LSTM + nn.CTCLoss"
        print(f"{label:<28}{fps[k]:>12.0f}{med[k]:>10.4f}")
    print(f"ratio rnnlab / torch: {ratio:.2f}x (loss agreement {abs(a - b):.2e})")
    print(f"decoding, seconds per sequence of T={T} frames:")
    for k, v in dec.items():
        print(f"  {k:<10}{v:.5f}")
    return {
        "frames_per_second": fps,
        "seconds_per_step": med,
        "ratio": ratio,
        "loss_difference": abs(a - b),
        "decode_seconds_per_sequence": dec,
        "B": B, "T": T, "H": H,
    }  # fmt: skip
