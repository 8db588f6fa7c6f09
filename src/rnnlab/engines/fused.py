"""The ``fused`` engine: torch's own kernels (``torch._VF.lstm / gru / rnn_tanh /
rnn_relu``; oneDNN on CPU, cuDNN on GPU) for exactly the configurations they implement.

A cell opts in with ``fused_mode`` (the ``torch._VF`` function) and the parameters
``weight_ih, weight_hh[, bias_ih, bias_hh][, weight_hr]`` in torch.nn's layout; its
``fused_unsupported()`` names an option torch has no kernel for. On CUDA the stack's
weights are flattened into one cuDNN buffer, as ``torch.nn.LSTM.flatten_parameters``
does, so cuDNN does not copy them on every call.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


def flat_weights(cells) -> list[Tensor]:
    """The weights of ``cells`` in torch.nn's flat order (layer by layer, direction by
    direction; w_ih, w_hh, b_ih, b_hh, w_hr)."""
    return [c._parameters[n] for c in cells for n in WEIGHT_NAMES if n in c._parameters]


def call_fused(mode: str, x: Tensor, hx, weights, *, bias, num_layers, dropout, training,
               bidirectional, lengths: Tensor | None):  # fmt: skip
    """Run ``torch._VF.<mode>`` over ``x`` (B, T, F), packing by ``lengths`` when given.
    Returns (out (B, T, D * H_out), final hx as a tuple)."""
    from torch import _VF

    fn = getattr(_VF, mode)
    args = (bias, num_layers, dropout, training, bidirectional)
    if lengths is None:
        res = fn(x, hx, weights, *args, True)
        return res[0], tuple(res[1:])
    packed = nn.utils.rnn.pack_padded_sequence(
        x, lengths.cpu(), batch_first=True, enforce_sorted=False
    )
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    hx = tuple(h.index_select(1, order) for h in hx) if isinstance(hx, tuple) else (
        hx.index_select(1, order)
    )  # fmt: skip
    res = fn(packed.data, packed.batch_sizes, hx, weights, *args)
    out_packed = nn.utils.rnn.PackedSequence(res[0], packed.batch_sizes, order, unorder)
    out, _ = nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=x.shape[1])
    return out, tuple(h.index_select(1, unorder) for h in res[1:])


def flatten_for_cudnn(layer) -> None:
    """Make the stack's fused weights views of one contiguous cuDNN buffer (CUDA only;
    a no-op elsewhere or when cuDNN cannot take them)."""
    if FusedEngine().why_not(layer, training=False) is not None:
        return
    weights = flat_weights(layer.cells)
    first = weights[0]
    if not all(
        w.is_cuda and w.dtype == first.dtype and torch.backends.cudnn.is_acceptable(w)
        for w in weights
    ):
        return
    if len({w.data_ptr() for w in weights}) != len(weights):
        return  # aliased parameters: leave them as they are
    import torch.backends.cudnn.rnn as cudnn_rnn

    cell = layer.cells[0]
    proj = getattr(cell, "proj_size", 0)
    with torch.cuda.device_of(first), torch.no_grad():
        if torch._use_cudnn_rnn_flatten_weight():
            torch._cudnn_rnn_flatten_weight(
                weights, (4 if cell.bias else 2) + (1 if proj else 0), layer.input_size,
                cudnn_rnn.get_cudnn_mode(_CUDNN_MODE[cell.fused_mode]), cell.hidden_size, proj,
                layer.num_layers, True, layer.bidirectional,
            )  # fmt: skip


def _cpu_autocast_lstm_unsupported(layer) -> str | None:
    """Under CPU autocast torch runs the LSTM through oneDNN in the autocast dtype, which
    needs the processor's native bfloat16 / float16 support: without it torch.nn.LSTM
    fails ("could not create a primitive descriptor"), so the stack runs elsewhere."""
    first = next(iter(layer.parameters()), None)
    if first is None or first.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
        return None
    dtype = torch.get_autocast_dtype("cpu")
    supported = {
        torch.bfloat16: torch.ops.mkldnn._is_mkldnn_bf16_supported,
        torch.float16: torch.ops.mkldnn._is_mkldnn_fp16_supported,
    }.get(dtype)
    if supported is None or supported():
        return None
    return f"torch's CPU LSTM kernel has no {dtype} autocast kernel on this processor"


_CUDNN_MODE = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU"}


class FusedEngine:
    """The whole stack (or, with residual connections, each layer) in one torch call."""

    name = "fused"

    def why_not(self, layer, training: bool | None = None) -> str | None:
        training = layer.training if training is None else training
        modes = {getattr(c, "fused_mode", None) for c in layer.cells}
        if len(modes) != 1 or None in modes:
            return f"torch has no fused kernel for {type(layer.cells[0]).__name__}"
        for cell in layer.cells:
            reason = cell.fused_unsupported()
            if reason is not None:
                return f"torch has no fused kernel for {reason}"
        if layer.recurrent_dropout > 0 and training:
            return "torch has no fused kernel for recurrent_dropout in training mode"
        if modes == {"lstm"}:
            return _cpu_autocast_lstm_unsupported(layer)
        return None

    def run(self, layer, x: Tensor, state, lengths):
        D = layer.num_directions
        if not layer.residual:
            return self._layers(layer, x, state, 0, layer.num_layers, lengths)
        inp, finals = x, []
        for k in range(layer.num_layers):
            layer_state = tuple(s[k * D : (k + 1) * D] for s in state)
            out, fin = self._layers(layer, inp, layer_state, k, k + 1, lengths)
            inp = layer.between_layers(out, inp, k)
            finals.append(fin)
        return inp, tuple(torch.cat(parts) for parts in zip(*finals))

    def _layers(self, layer, x, state, k0: int, k1: int, lengths):
        D = layer.num_directions
        cells = layer.cells[k0 * D : k1 * D]
        hx = state if len(state) > 1 else state[0]
        return call_fused(
            cells[0].fused_mode, x, hx, layer.fused_weights(k0, k1), bias=cells[0].bias,
            num_layers=k1 - k0, dropout=layer.dropout, training=layer.training,
            bidirectional=layer.bidirectional, lengths=lengths,
        )  # fmt: skip
