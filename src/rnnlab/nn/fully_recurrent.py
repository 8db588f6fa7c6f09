r"""Fully recurrent network (Williams & Zipser 1989).

Every unit feeds every unit through a one-step delay. Input units are clamped to the
input; the other N units compute. With :math:`z_t = (x_t, y_t)` the vector of all units
at step t,

.. math::

    y_t = \phi(W z_{t-1} + b) = \phi(W_x x_{t-1} + W_y y_{t-1} + b)

==================  ==========================================================
symbol              meaning
==================  ==========================================================
:math:`x_t`         the F input units, clamped to the input at step t, (B, F)
:math:`y_t`         the N computing units, (B, N); outputs are read from the
                    first ``output_size`` of them, and targets may be given for
                    any unit at any step (:meth:`FullyRecurrent.unit_loss`)
:math:`W`           (N, F + N), every unit to every computing unit
:math:`\phi`        logistic sigmoid (W&Z), tanh or relu
==================  ==========================================================

Because of the delay, an input reaches a computing unit one step later, and a unit two
links away two steps later (the binary-addition net of Hinton's lecture answers two
steps after the column is shown). The network is an SRN run over the input delayed by
one step, so it shares the SRN's engines: "bptt" (the hand-written kernel), "loop", and
"rtrl", W&Z's own real-time recurrent learning.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnlab._validation import check_lengths, check_positive_int, check_tensor
from rnnlab.errors import InputError, InputTypeError
from rnnlab.nn.srn import NONLINEARITIES, SRN


class FullyRecurrent(nn.Module):
    """Williams & Zipser's fully recurrent network (see the module docstring).

    Args:
        input_size: F, input units (clamped).
        num_units: N, computing units.
        output_size: the first ``output_size`` computing units are the output units
            (default: all N).
        nonlinearity: "sigmoid" (default, as W&Z), "tanh" or "relu".
        bias: a bias for every computing unit.
        engine: "auto" (= "bptt"), "bptt", "loop" or "rtrl".

    ``forward(x, state=None, lengths=None) -> (y, state)``: ``x`` (B, T, F) or (T, F);
    ``y`` (B, T, N) are the computing units' activations (zero past each length);
    ``state`` is :math:`z` = (x, y) of all units, (B, F + N), at each sequence's last step.
    """

    def __init__(
        self,
        input_size: int,
        num_units: int,
        output_size: int | None = None,
        *,
        nonlinearity: str = "sigmoid",
        bias: bool = True,
        engine: str = "auto",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.num_units = check_positive_int("num_units", num_units)
        output_size = num_units if output_size is None else output_size
        if not isinstance(output_size, int) or not 1 <= output_size <= num_units:
            raise InputError(
                f"output_size: expected an integer in [1, num_units = {num_units}], "
                f"received {output_size!r}"
            )
        self.output_size = output_size
        if engine not in ("auto", "bptt", "loop", "rtrl"):
            raise InputError(
                f"engine: expected one of ('auto', 'bptt', 'loop', 'rtrl'), received {engine!r}"
            )
        if nonlinearity not in NONLINEARITIES:
            raise InputError(
                f"nonlinearity: expected one of {NONLINEARITIES}, received {nonlinearity!r}"
            )
        # the computing units are an SRN over the delayed input: W = [W_x | W_y]
        self.core = SRN(
            input_size, num_units, nonlinearity=nonlinearity, bias=bias,
            engine="bptt" if engine == "auto" else engine, device=device, dtype=dtype,
        )  # fmt: skip
        self.reset_parameters()

    @property
    def engine(self) -> str:
        return self.core.engine

    @engine.setter
    def engine(self, value: str) -> None:
        self.core.engine = "bptt" if value == "auto" else value

    @property
    def weight(self) -> Tensor:
        """W, (N, F + N): column j is the connection from unit j of z = (x, y)."""
        return torch.cat([self.core.weight_ih_l0, self.core.weight_hh_l0], dim=1)

    def reset_parameters(self) -> None:
        """U(-1/sqrt(F + N), 1/sqrt(F + N)) for every weight, biases 0."""
        bound = 1.0 / math.sqrt(self.input_size + self.num_units)
        for name, p in self.core.named_parameters():
            if name.startswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -bound, bound)

    def forward(self, x: Tensor, state: Tensor | None = None, lengths: Tensor | None = None):
        F, N = self.input_size, self.num_units
        x = check_tensor("input", x)
        if x.dim() not in (2, 3):
            raise InputError(
                f"input: expected a 3-D tensor (B, T, {F}) or an unbatched 2-D tensor (T, {F}), "
                f"received shape {tuple(x.shape)}"
            )
        batched = x.dim() == 3
        if not batched:
            if lengths is not None:
                raise InputError("lengths: only for batched (B, T, F) input")
            x = x.unsqueeze(0)
            state = None if state is None else check_tensor("state", state).unsqueeze(0)
        B, T = x.shape[:2]
        if x.shape[-1] != F:
            raise InputError(
                f"input: expected {F} features in the last dimension (input_size), received "
                f"shape {tuple(x.shape if batched else x.shape[1:])}"
            )
        if T == 0:
            raise InputError("input: expected at least one time step, received T = 0")
        if lengths is not None:
            lengths = check_lengths(lengths, B, T, x.device)
        if state is not None:
            state = check_tensor("state", state)
            if state.shape != (B, F + N):
                want = (B, F + N) if batched else (F + N,)
                got = tuple(state.shape if batched else state.shape[1:])
                raise InputError(f"state: expected shape {want} (B, F + N), received {got}")
            if state.dtype != x.dtype or state.device != x.device:
                raise InputTypeError(
                    f"state: expected dtype {x.dtype} on {x.device} (as the input), received "
                    f"{state.dtype} on {state.device}"
                )
        if state is None:
            prev_x = y0 = None
        else:
            prev_x, y0 = state[:, :F], state[:, F:].unsqueeze(0).contiguous()
            if self.engine == "rtrl" and not x.requires_grad:
                prev_x = prev_x.detach()  # clamped input values: data, not a function of W
        first = x.new_zeros(B, 1, F) if prev_x is None else prev_x.unsqueeze(1)
        delayed = torch.cat([first, x[:, :-1]], dim=1)  # u_t = x_{t-1}: (B, T, F)
        y, h = self.core(delayed, y0, lengths)
        last_x = x[:, -1] if lengths is None else x[torch.arange(B), lengths - 1]
        z = torch.cat([last_x, h[0]], dim=1)  # (B, F + N)
        if not batched:
            return y[0], z[0]
        return y, z

    def read_out(self, y: Tensor) -> Tensor:
        """The output units' activations, (..., output_size)."""
        return y[..., : self.output_size]

    @staticmethod
    def unit_loss(y: Tensor, targets: Tensor, mask: Tensor | None = None) -> Tensor:
        r"""W&Z's error: :math:`\frac12 \sum_{t,k} m_{t,k} (d_{t,k} - y_{t,k})^2` over the
        units and steps that have a target (``mask`` (B, T, N), 1 where a target is given;
        all when None), summed over the batch."""
        err = (targets - y) ** 2
        if mask is not None:
            err = err * mask
        return 0.5 * err.sum()
