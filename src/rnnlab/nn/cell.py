r"""The public cell API: the math of one step of one layer and direction.

A cell is an ``nn.Module`` that says how big its state is and how one step goes; the
runner (:class:`rnnlab.nn.Recurrent`) owns everything about time: lengths, the reverse
direction, stacking, dropout between layers, recurrent-dropout masks, learned initial
states and the choice of engine (flax's ``nn.RNN(cell)`` split, with torch.nn's names).

What a cell defines:

=========================  =============================================================
``state_sizes``            one size per state variable, e.g. ``(H,)`` or ``(P, H)`` for
                           the LSTM's (h, c); any number of variables
``output_size``            size of the output ``y_t`` of each step
``step(x_t, state)``       one step: ``x_t`` (B, G) the projected input of step t, state a
                           tuple of (B, size) tensors; returns ``(y_t, new_state)``
``project(x)``             optional: all input projections at once, (B, T, F) -> (B, T, G)
                           (default: the identity, so ``step`` receives x_t itself)
``recurrence(...)``        optional: a hand-written whole-sequence kernel (the ``bptt``
                           engine), ``recurrence(xp, state, lengths, masks) -> (ys,
                           state_T)``, equal to the loop over ``masked_step``
``dropout_state``          the state variables that recurrent dropout masks where they
                           enter ``step`` (default ``(0,)``: h, the recurrent input)
=========================  =============================================================

Recurrent dropout (Gal & Ghahramani 2016) needs nothing from the cell: the runner draws
one mask per sequence for each variable in ``dropout_state`` and :meth:`Cell.masked_step`
multiplies them in before calling ``step``. A cell whose step also uses :math:`h_{t-1}`
outside its recurrent matrices (the GRU's interpolation) overrides ``masked_step`` to
apply the mask only where the recurrent weights see the state.

A minimal cell (the README's example), :math:`h_t = \tanh(W x_t + \alpha U h_{t-1})`::

    class ScaledSRNCell(Cell):
        def __init__(self, input_size, hidden_size, alpha=0.5):
            super().__init__(state_sizes=(hidden_size,), output_size=hidden_size)
            self.alpha = alpha
            self.weight_ih = nn.Parameter(0.3 * torch.randn(hidden_size, input_size))
            self.weight_hh = nn.Parameter(0.3 * torch.randn(hidden_size, hidden_size))

        def project(self, x):                      # (B, T, F) -> (B, T, H)
            return x @ self.weight_ih.t()

        def step(self, x_t, state):
            h = torch.tanh(x_t + self.alpha * state[0] @ self.weight_hh.t())
            return h, (h,)

    layer = Recurrent(lambda n: ScaledSRNCell(n, 64), input_size=8, num_layers=2,
                      bidirectional=True, recurrent_dropout=0.25)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnlab._validation import check_positive_int
from rnnlab.errors import InputError, InputTypeError

State = tuple[Tensor, ...]  # one (B, size) tensor per state variable


def input_projection(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """All input projections ``x W^T + b`` in one matmul: (B, T, G).

    The result is a (B, T, G) view of time-major memory, so that each step's row block
    is contiguous for the recurrence and the kernels need no transposing copies."""
    B, T, F = x.shape
    x_tm = x.transpose(0, 1).reshape(T * B, F)  # (T*B, F)
    out = x_tm @ weight.t() if bias is None else torch.addmm(bias, x_tm, weight.t())
    return out.view(T, B, out.shape[-1]).transpose(0, 1)  # (B, T, G)


def empty_parameter(shape: tuple[int, ...], device=None, dtype=None) -> nn.Parameter:
    """An uninitialised parameter, with clear errors for a non-float ``dtype`` and for a
    size that cannot be allocated."""
    if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise InputTypeError(f"dtype: expected a floating-point torch.dtype, received {dtype!r}")
    try:
        return nn.Parameter(torch.empty(*shape, device=device, dtype=dtype))
    except (RuntimeError, MemoryError) as exc:  # the allocator's message names no argument
        n = math.prod(shape)
        raise InputError(
            f"hidden_size: a parameter of shape {tuple(shape)} ({n:,} numbers) cannot be "
            f"allocated ({str(exc).splitlines()[0][:80]})"
        ) from exc


class Cell(nn.Module):
    """One step of a recurrence for one layer and direction (see the module docstring).

    Args:
        state_sizes: the size of each state variable (at least one).
        output_size: the size of each step's output.
    """

    dropout_state: tuple[int, ...] = (0,)
    fused_mode: str | None = None  # the torch._VF kernel that computes this cell, if any

    def __init__(self, state_sizes: tuple[int, ...], output_size: int) -> None:
        super().__init__()
        sizes = tuple(state_sizes)
        if not sizes:
            raise TypeError("state_sizes: expected at least one state variable, received ()")
        for i, n in enumerate(sizes):
            check_positive_int(f"state_sizes[{i}]", n)
        self.state_sizes = sizes
        self.output_size = check_positive_int("output_size", output_size)

    @property
    def state_names(self) -> tuple[str, ...]:
        """Names of the initial state variables in error messages (h_0, c_0 for two)."""
        n = len(self.state_sizes)
        return ("h_0", "c_0")[:n] if n <= 2 else tuple(f"state[{i}]" for i in range(n))

    def project(self, x: Tensor) -> Tensor:
        """All input projections at once, (B, T, F) -> (B, T, G); the identity here."""
        return x

    def step(self, x_t: Tensor, state: State) -> tuple[Tensor, State]:
        """One step: ``x_t`` (B, G), ``state`` a tuple of (B, size) -> (y_t, new state)."""
        raise NotImplementedError(f"{type(self).__name__} must define step(x_t, state)")

    def masked_step(self, x_t: Tensor, state: State, masks: State | None) -> tuple[Tensor, State]:
        """``step`` with the recurrent-dropout masks (one per ``dropout_state`` variable)
        multiplied into the state variables they drop."""
        if masks is not None:
            state = list(state)
            for i, m in zip(self.dropout_state, masks):
                state[i] = state[i] * m
            state = tuple(state)
        return self.step(x_t, state)

    recurrence = None  # a hand-written whole-sequence kernel, where the family has one

    @property
    def has_recurrence(self) -> bool:
        return self.recurrence is not None

    def fused_unsupported(self) -> str | None:
        """Why torch's fused kernel cannot compute this cell (None: it can)."""
        return None if self.fused_mode is not None else f"{type(self).__name__} has no kernel"

    def initial_state(self, batch_size: int, like: Tensor) -> State:
        """Zeros, (B, size) per state variable, with ``like``'s dtype and device."""
        return tuple(like.new_zeros(batch_size, n) for n in self.state_sizes)

    def extra_repr(self) -> str:
        return f"state_sizes={self.state_sizes}, output_size={self.output_size}"


__all__ = ["Cell", "State", "empty_parameter", "input_projection"]
