r"""Sequence labellers: a recurrent stack with a per-frame softmax, trained frame-wise
(:class:`SequenceLabeller`, Graves & Schmidhuber 2005) or with CTC (:class:`CTCRecogniser`,
Graves et al. 2006).

Both read ``x`` (B, T, F) with ``lengths`` (B,) through any rnnlab stack
(:func:`rnnlab.nn.make_layer`; bidirectional by default, so the output at frame :math:`t`
sees :math:`x_{1:T}`), or through :class:`FrameWindow` (an MLP on a window of frames, the
non-recurrent baseline of Graves & Schmidhuber 2005), then a linear layer per frame:

.. math::

    h_t = [\overrightarrow{h}_t; \overleftarrow{h}_t], \qquad
    y_t = \mathrm{softmax}(W h_t + b)

====================  ===========================================================
symbol                meaning
====================  ===========================================================
:math:`B, T, F`       batch, frames, input features
:math:`H`             hidden units per direction
:math:`K`             classes (labeller) or labels (recogniser; plus the blank)
====================  ===========================================================

:class:`SequenceLabeller` minimises the frame-wise cross-entropy
:math:`-\frac{1}{\sum_b T_b}\sum_{b,t} \log y_t(z_{b,t})`; :class:`CTCRecogniser` has
:math:`K + 1` outputs (class 0 the blank, label :math:`l` at class :math:`l + 1`) and
minimises :func:`rnnlab.ctc.ctc_loss`. Both rebuild from :meth:`config` (what the
checkpoint stores beside the state dict).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab._validation import check_rank, check_tensor
from rnnlab.ctc import ctc_loss, greedy_decode, prefix_beam_search
from rnnlab.errors import InputError
from rnnlab.nn import CELLS, make_layer

__all__ = ["FrameWindow", "SequenceLabeller", "CTCRecogniser", "STACKS"]

STACKS = (*CELLS, "mlp")


class FrameWindow(nn.Module):
    r"""An MLP on a window of frames: the input at frame :math:`t` is
    :math:`[x_{t-w}; \dots; x_{t+w}]` (zeros outside the sequence), then ``num_layers``
    tanh layers of ``hidden_size``. Same ``forward(x, lengths) -> (outputs, None)`` as a
    recurrent layer; ``window`` is :math:`w`."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, window: int = 4):
        super().__init__()
        self.window = int(window)
        sizes = [input_size * (2 * self.window + 1)] + [hidden_size] * num_layers
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.output_size = hidden_size

    def forward(self, x: Tensor, lengths: Tensor | None = None):
        B, T, Fdim = x.shape
        if lengths is not None:  # zero past each length, so windows never see padding
            mask = torch.arange(T, device=x.device)[None, :] < lengths[:, None]  # (B, T)
            x = x * mask[..., None]
        w = self.window
        padded = F.pad(x, (0, 0, w, w))  # (B, T + 2w, F)
        h = padded.unfold(1, 2 * w + 1, 1)  # (B, T, F, 2w+1)
        h = h.permute(0, 1, 3, 2).reshape(B, T, -1)  # (B, T, (2w+1) F), frames in order
        for layer in self.layers:
            h = torch.tanh(layer(h))
        return h, None


class _Labelling(nn.Module):
    """The shared body: a stack and a per-frame linear layer."""

    def __init__(
        self,
        input_size: int,
        num_outputs: int,
        *,
        hidden_size: int,
        num_layers: int,
        cell: str,
        bidirectional: bool,
        dropout: float,
        window: int,
    ) -> None:
        super().__init__()
        if cell not in STACKS:
            raise InputError(f"cell: expected one of {', '.join(STACKS)}, received {cell!r}")
        self.input_size = int(input_size)
        self._config = {
            "input_size": int(input_size),
            "hidden_size": int(hidden_size),
            "num_layers": int(num_layers),
            "cell": cell,
            "bidirectional": bool(bidirectional) and cell != "mlp",
            "dropout": float(dropout),
            "window": int(window),
        }
        if cell == "mlp":
            self.stack = FrameWindow(input_size, hidden_size, num_layers, window)
            width = hidden_size
        else:
            options = {"bidirectional": bool(bidirectional)}
            if num_layers > 1:
                options["dropout"] = float(dropout)
            self.stack = make_layer(cell, input_size, hidden_size, num_layers, **options)
            width = (2 if bidirectional else 1) * self.stack.output_size
        self.readout = nn.Linear(width, num_outputs)

    def _check_x(self, x: object, lengths) -> tuple[Tensor, Tensor]:
        check_tensor("x", x)
        check_rank("x", x, (3,), "(B, T, F): batch, frames, features")
        if x.shape[-1] != self.input_size:
            raise InputError(
                f"x: expected {self.input_size} features per frame (the model's input_size), "
                f"received shape {tuple(x.shape)}"
            )
        from rnnlab._validation import check_lengths

        B, T = x.shape[:2]
        if lengths is None:
            lengths = torch.full((B,), T, dtype=torch.long)
        return x, check_lengths(lengths, B, T, x.device)

    def logits(self, x: Tensor, lengths=None) -> Tensor:
        """(B, T, K') unnormalised scores per frame (zero-input past each length)."""
        x, lengths = self._check_x(x, lengths)
        h, _ = self.stack(x, lengths=lengths)  # (B, T, D H)
        return self.readout(h)

    def config(self) -> dict:
        """The constructor's arguments (what a checkpoint stores to rebuild the model)."""
        return dict(self._config, num_classes=self.num_classes)


class SequenceLabeller(_Labelling):
    """Frame-wise classifier: a label for every frame (module docstring).

    Args:
        input_size: F, features per frame.
        num_classes: K, the frame classes.
        hidden_size: H per direction (for "mlp", units per layer).
        num_layers: stacked layers.
        cell: one of :data:`STACKS` (rnnlab's cells, or "mlp" for :class:`FrameWindow`).
        bidirectional: read the sequence both ways (ignored for "mlp").
        dropout: between stacked layers.
        window: w, frames each side for "mlp".
    """

    kind = "labeller"

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        *,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        window: int = 4,
    ) -> None:
        if num_classes < 2:
            raise InputError(f"num_classes: expected an integer >= 2, received {num_classes!r}")
        self.num_classes = int(num_classes)
        super().__init__(
            input_size, num_classes, hidden_size=hidden_size, num_layers=num_layers, cell=cell,
            bidirectional=bidirectional, dropout=dropout, window=window,
        )  # fmt: skip

    def forward(self, x: Tensor, lengths=None) -> Tensor:
        """(B, T, K) log-probabilities per frame."""
        return torch.log_softmax(self.logits(x, lengths), -1)

    def loss(self, x: Tensor, labels: Tensor, lengths=None) -> Tensor:
        """Mean frame-wise cross-entropy over the frames inside the lengths (nats/frame).
        ``labels`` (B, T) holds the class per frame (any value past the lengths)."""
        check_tensor("labels", labels)
        if labels.shape != x.shape[:2]:
            raise InputError(
                f"labels: expected shape {tuple(x.shape[:2])} (B, T of x), received "
                f"{tuple(labels.shape)}"
            )
        x, lengths = self._check_x(x, lengths)
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        inside = labels[mask]
        if inside.numel() and (int(inside.min()) < 0 or int(inside.max()) >= self.num_classes):
            raise InputError(
                f"labels: expected classes in [0, {self.num_classes - 1}] inside the lengths, "
                f"received min {int(inside.min())}, max {int(inside.max())}"
            )
        logits = self.logits(x, lengths)
        return F.cross_entropy(logits[mask], inside)

    @torch.no_grad()
    def predict(self, x: Tensor, lengths=None) -> Tensor:
        """(B, T) the most probable class per frame; -1 past each length."""
        x, lengths = self._check_x(x, lengths)
        pred = self.logits(x, lengths).argmax(-1)
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        return pred.masked_fill(~mask, -1)


class CTCRecogniser(_Labelling):
    """A labeller with a blank-augmented output trained by CTC: reads a sequence and
    writes its label string (module docstring). Arguments as :class:`SequenceLabeller`;
    ``num_classes`` is the number of labels (the blank is added as class 0)."""

    kind = "ctc"
    blank = 0

    def __init__(
        self,
        input_size: int,
        num_classes: int,
        *,
        hidden_size: int = 64,
        num_layers: int = 1,
        cell: str = "lstm",
        bidirectional: bool = True,
        dropout: float = 0.0,
        window: int = 4,
    ) -> None:
        if num_classes < 1:
            raise InputError(f"num_classes: expected an integer >= 1, received {num_classes!r}")
        self.num_classes = int(num_classes)
        super().__init__(
            input_size, num_classes + 1, hidden_size=hidden_size, num_layers=num_layers,
            cell=cell, bidirectional=bidirectional, dropout=dropout, window=window,
        )  # fmt: skip

    def forward(self, x: Tensor, lengths=None) -> Tensor:
        """(B, T, K + 1) log-probabilities per frame, the blank at class 0."""
        return torch.log_softmax(self.logits(x, lengths), -1)

    def loss(self, x: Tensor, targets: list[list[int]], lengths=None) -> Tensor:
        """CTC loss (mean over the batch of the loss per target label) of the label
        strings ``targets`` (labels 0..K-1)."""
        x, lengths = self._check_x(x, lengths)
        if isinstance(targets, torch.Tensor) or len(targets) != x.shape[0]:
            raise InputError(
                f"targets: expected {x.shape[0]} label lists (one per sequence), received "
                f"{len(targets) if not isinstance(targets, torch.Tensor) else 'a tensor'}"
            )
        shifted = []
        for b, t in enumerate(targets):
            t = [int(v) for v in t]
            if any(not 0 <= v < self.num_classes for v in t):
                raise InputError(
                    f"targets: sequence {b} has a label outside [0, {self.num_classes - 1}] ({t})"
                )
            shifted.append([v + 1 for v in t])
        return ctc_loss(self(x, lengths), shifted, lengths.cpu(), allow_empty=False)

    @torch.no_grad()
    def transcribe(
        self, x: Tensor, lengths=None, beam_size: int = 1, top_k: int | None = None
    ) -> list[list[int]]:
        """The label string of each sequence: best path (``beam_size`` 1) or prefix beam
        search; labels 0..K-1."""
        x, lengths = self._check_x(x, lengths)
        lp = self(x, lengths)
        if beam_size == 1:
            out = greedy_decode(lp, lengths.cpu())
        else:
            out, _ = prefix_beam_search(lp, lengths.cpu(), beam_size, top_k=top_k)
        return [[k - 1 for k in labels] for labels in out]


def model_from_config(kind: str, config: dict) -> SequenceLabeller | CTCRecogniser:
    """Rebuild a labeller or recogniser from :meth:`config` (e.g. from a checkpoint)."""
    cls = {"labeller": SequenceLabeller, "ctc": CTCRecogniser}.get(kind)
    if cls is None:
        raise InputError(f"kind: expected 'labeller' or 'ctc', received {kind!r}")
    config = dict(config)
    return cls(config.pop("input_size"), config.pop("num_classes"), **config)
