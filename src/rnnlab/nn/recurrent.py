"""The runner: a stack of cells over time (:class:`Recurrent`).

Every recurrent layer of rnnlab is a :class:`Recurrent` over cells (:class:`rnnlab.nn.Cell`)
made by ``make_cell(input_size)``, one for each layer and direction. The runner owns
hyperparameters, input checks, unbatched input, ``lengths``, the reverse direction,
stacking with dropout and residual connections, learned initial states, recurrent
dropout masks and the choice of engine. How it runs (layer ``k``, direction ``d``)::

    xp = cell.project(inp)                  # (B, T, G): all input projections at once
    ys, state_T = engine(cell, xp, state_0) # loop | bptt (| fused, whole stack)
    out = cat(ys over directions)           # (B, T, D * H_out)
    out = dropout(out) [+ inp if residual]  # between layers

The reverse direction runs the same recurrence on each sequence reversed *within its own
length*, then reverses the outputs back. Engines see only prefix masks: step ``t`` of
sequence ``b`` is valid iff ``t < lengths[b]``; the padding of the input is zeroed
first, so nothing past a length reaches any output or gradient.

Parameters: each cell's parameter ``name`` is the layer's ``{name}_l{k}`` (and
``{name}_l{k}_reverse`` for the reverse direction; dots of nested modules become ``_``),
torch.nn's naming, so the plain LSTM, GRU and SRN exchange ``state_dict`` with
torch.nn in both directions. The cells hold the same tensors; the runner re-points them
before every call, so ``.to()``, ``load_state_dict(assign=True)`` and
``torch.func.functional_call`` all reach the cells.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnlab._validation import (
    check_lengths,
    check_positive_int,
    check_probability,
    check_tensor,
    describe,
)
from rnnlab.engines import ENGINE_NAMES, ENGINES
from rnnlab.engines.fused import flat_weights, flatten_for_cudnn
from rnnlab.errors import InputError, InputTypeError
from rnnlab.nn.cell import Cell, State


def _autocast(x: Tensor) -> bool:
    """Whether autocast (mixed precision) is on for ``x``'s device type."""
    return torch.is_autocast_enabled(x.device.type)


def reverse_padded(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of ``x`` (B, T, ...) within its own length.

    Positions past a sequence's length stay where they are, so applying the function
    twice gives ``x`` back.
    """
    if lengths is None:
        return x.flip(1)
    B, T = x.shape[:2]
    t = torch.arange(T, device=x.device).expand(B, T)  # (B, T)
    L = lengths.unsqueeze(1)  # (B, 1)
    idx = torch.where(t < L, L - 1 - t, t)  # (B, T)
    idx = idx.view(B, T, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(1, idx)


class Recurrent(nn.Module):
    """A stack of recurrent cells run over time (see the module docstring).

    Args:
        make_cell: ``make_cell(input_size) -> Cell``, called once for each layer and
            direction (layer 0 gets ``input_size``, the others ``D * output_size``).
        input_size: F, features of the input.
        num_layers: stacked layers.
        bidirectional: a second cell per layer runs over each sequence reversed (within
            its length); the outputs are concatenated, (B, T, 2 H_out).
        residual: add each stacked layer's input to its output (layers >= 1).
        dropout: dropout on the outputs of every layer but the last.
        recurrent_dropout: dropout on the recurrent input (``Cell.dropout_state``), one
            mask per sequence for all steps (Gal & Ghahramani 2016).
        learn_initial_state: the initial state is a trained parameter instead of zeros.
        engine: "auto" (fused where torch has a kernel, else on the CPU compiled where
            the cell has C++ loops, else bptt where the cell has a kernel, else loop),
            "fused", "compiled", "bptt", "generic", "loop" or "rtrl".

    ``forward(x, state=None, lengths=None) -> (outputs, final_state)``; ``step`` runs one
    step of the whole stack (generation, attention decoders).
    """

    def __init__(
        self,
        make_cell: Callable[[int], Cell],
        input_size: int,
        num_layers: int = 1,
        *,
        bidirectional: bool = False,
        residual: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        learn_initial_state: bool = False,
        engine: str = "auto",
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.bidirectional = bool(bidirectional)
        self.residual = bool(residual)
        self.dropout = check_probability("dropout", dropout)
        self.recurrent_dropout = check_probability("recurrent_dropout", recurrent_dropout)
        self.learn_initial_state = bool(learn_initial_state)
        if engine not in ENGINE_NAMES:
            raise InputError(f"engine: expected one of {ENGINE_NAMES}, received {engine!r}")
        self.engine = engine
        if self.dropout > 0 and num_layers == 1:
            warnings.warn(
                "dropout > 0 acts between stacked layers only, and num_layers = 1", stacklevel=2
            )
        # the cells live in a plain list: their parameters are registered on this module
        # under torch.nn's names ({name}_l{k}[_reverse]) and re-pointed by _sync_cells
        self._cells: list[Cell] = []
        # (module inside a cell, its attribute, this module's name for it, a parameter?)
        self._links: list[tuple[nn.Module, str, str, bool]] = []
        self._fused_weights: dict[tuple[int, int], list[Tensor]] = {}  # torch's flat lists
        D = self.num_directions
        for k in range(num_layers):
            for d in range(D):
                in_size = input_size if k == 0 else D * self._cells[0].output_size
                self._add_cell(make_cell(in_size), f"_l{k}" + ("_reverse" if d else ""))
        out = self._cells[0].output_size
        if any(c.output_size != out or c.state_sizes != self._cells[0].state_sizes
               for c in self._cells):  # fmt: skip
            raise InputError("make_cell: every layer's cell must have the same sizes")
        if self.learn_initial_state:
            ref = next(iter(self.parameters()), None)
            factory = {"device": None if ref is None else ref.device,
                       "dtype": None if ref is None else ref.dtype}  # fmt: skip
            self.initial_state = nn.ParameterList(
                nn.Parameter(torch.zeros(num_layers * D, 1, n, **factory)) for n in self.state_sizes
            )

    def _add_cell(self, cell: Cell, suffix: str) -> None:
        if not isinstance(cell, Cell):
            raise InputTypeError(
                f"make_cell: expected it to return an rnnlab.nn.Cell, received {describe(cell)}"
            )
        self._cells.append(cell)
        for is_param, named in ((True, cell.named_parameters()), (False, cell.named_buffers())):
            for path, t in named:
                owner, _, leaf = path.rpartition(".")
                mod = cell.get_submodule(owner) if owner else cell
                name = path.replace(".", "_") + suffix
                if is_param:
                    self.register_parameter(name, t)
                else:
                    persistent = leaf not in mod._non_persistent_buffers_set
                    self.register_buffer(name, t, persistent=persistent)
                self._links.append((mod, leaf, name, is_param))

    def _sync_cells(self) -> None:
        """Point every cell at this module's current tensors (they may have been replaced)."""
        for mod, leaf, name, is_param in self._links:
            store = mod._parameters if is_param else mod._buffers
            mine = self._parameters[name] if is_param else self._buffers[name]
            if store[leaf] is not mine:
                store[leaf] = mine
                self._fused_weights.clear()

    def fused_weights(self, k0: int, k1: int) -> list[Tensor]:
        """torch.nn's flat weight list of layers k0..k1-1, kept between calls (on CUDA
        its tensors are views of one cuDNN buffer: ``engines.fused.flatten_for_cudnn``)."""
        key = (k0, k1)
        if key not in self._fused_weights:
            D = self.num_directions
            self._fused_weights[key] = flat_weights(self._cells[k0 * D : k1 * D])
        return self._fused_weights[key]

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)
        self._fused_weights.clear()
        self._sync_cells()
        flatten_for_cudnn(self)
        return out

    def train(self, mode: bool = True):
        super().train(mode)
        for cell in self._cells:
            cell.train(mode)
        return self

    # ----------------------------------------------------------------- structure
    @property
    def cells(self) -> tuple[Cell, ...]:
        """The cells, layer by layer, forward direction before reverse."""
        return tuple(self._cells)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_sizes(self) -> tuple[int, ...]:
        return self._cells[0].state_sizes

    @property
    def output_size(self) -> int:
        """Size of each direction's output per step."""
        return self._cells[0].output_size

    def _wrap_state(self, state: State):
        """Public form of the state: a tensor, or a tuple (LSTM's (h, c))."""
        return state[0] if len(state) == 1 else state

    def extra_repr(self) -> str:
        s = f"{self.input_size}, num_layers={self.num_layers}"
        for name in ("bidirectional", "residual", "learn_initial_state"):
            if getattr(self, name):
                s += f", {name}=True"
        for name in ("dropout", "recurrent_dropout"):
            if getattr(self, name):
                s += f", {name}={getattr(self, name)}"
        return s + f", engine={self.engine!r}, cell={self._cells[0]!r}"

    def reset_parameters(self) -> None:
        """Each cell's own initialisation, in order; learned initial states 0."""
        for cell in self._cells:
            cell.reset_parameters()
        if self.learn_initial_state:
            for p in self.initial_state:
                nn.init.zeros_(p)

    # ----------------------------------------------------------------- engines
    def resolved_engine(self) -> str:
        """The engine this layer uses in its current mode ("fused", "compiled", "bptt",
        "loop", ...). ``auto``: torch's kernel where it has one; else on the CPU the C++
        loops where the cell has them (built once on first use, see
        :mod:`rnnlab.engines.compiled`); else the cell's Python BPTT kernel; else loop."""
        if self.engine == "auto":
            first = next(iter(self.parameters()), None)
            cpu = first is None or first.device.type == "cpu"
            for name in ("fused", "compiled", "bptt"):
                if name == "compiled" and not cpu:
                    continue  # the C++ loops are measured and tested on the CPU only
                if ENGINES[name].why_not(self) is None:
                    return name
            return "loop"
        reason = ENGINES[self.engine].why_not(self)
        if reason is not None:
            raise InputError(
                f"engine={self.engine!r}: {reason}; engine='auto' chooses one that runs"
            )
        return self.engine

    # ----------------------------------------------------------------- checks
    def _check_input(self, x: object, state, lengths) -> tuple[Tensor, State | None, Tensor | None]:
        x = check_tensor("input", x)
        F_ = self.input_size
        if x.dim() not in (2, 3):
            raise InputError(
                f"input: expected a 3-D tensor (B, T, {F_}) or an unbatched 2-D tensor "
                f"(T, {F_}), received shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise InputTypeError(f"input: expected a floating-point tensor, received {x.dtype}")
        ref = next(iter(self.parameters()), None)
        if ref is not None and (x.dtype != ref.dtype or x.device != ref.device):
            raise InputTypeError(
                f"input: expected dtype {ref.dtype} on {ref.device} (as the layer's "
                f"parameters), received {x.dtype} on {x.device}"
            )
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(0)
        if x.shape[-1] != F_:
            raise InputError(
                f"input: expected {F_} features in the last dimension (input_size), "
                f"received shape {tuple(x.shape if batched else x.shape[1:])}"
            )
        if x.shape[1] == 0:
            raise InputError("input: expected at least one time step, received T = 0")
        B, T = x.shape[:2]
        if lengths is not None:
            if not batched:
                raise InputError("lengths: only for batched (B, T, F) input")
            lengths = check_lengths(lengths, B, T, x.device)
        if state is not None:
            state = self._check_state(state, B, batched, x)
        return x, state, lengths

    def _check_state(self, state, B: int, batched: bool, x: Tensor) -> State:
        sizes, names = self.state_sizes, self._cells[0].state_names
        if len(sizes) == 1 and isinstance(state, Tensor):
            state = (state,)
        if not isinstance(state, (tuple, list)) or len(state) != len(sizes):
            want = "a tensor" if len(sizes) == 1 else f"a tuple ({', '.join(names)})"
            raise InputTypeError(f"state: expected {want}, received {describe(state)}")
        LD = self.num_layers * self.num_directions
        out = []
        for name, s, size in zip(names, state, sizes):
            s = check_tensor(f"state {name}", s)
            want = (LD, B, size) if batched else (LD, size)
            if tuple(s.shape) != want:
                raise InputError(
                    f"state {name}: expected shape {want} (num_layers * num_directions, "
                    f"{'B, ' if batched else ''}{size}), received shape {tuple(s.shape)}"
                )
            if s.dtype != x.dtype and s.is_floating_point() and _autocast(x):
                s = s.to(x.dtype)  # a state carried out of an autocast region (bf16, fp16)
            if s.dtype != x.dtype or s.device != x.device:
                raise InputTypeError(
                    f"state {name}: expected dtype {x.dtype} on {x.device} (as the input), "
                    f"received {s.dtype} on {s.device}"
                )
            out.append(s if batched else s.unsqueeze(1))
        return tuple(out)

    def init_state(self, batch_size: int):
        """The initial state for ``batch_size`` sequences in the public layout (zeros, or
        the learned initial state)."""
        check_positive_int("batch_size", batch_size)
        return self._wrap_state(self._initial_state(batch_size, next(iter(self.parameters()))))

    def _initial_state(self, B: int, like: Tensor) -> State:
        LD = self.num_layers * self.num_directions
        if self.learn_initial_state:
            return tuple(p.expand(LD, B, p.shape[-1]) for p in self.initial_state)
        return tuple(like.new_zeros(LD, B, n) for n in self.state_sizes)

    def recurrent_masks(self, batch_size: int, like: Tensor | None = None):
        """Recurrent-dropout masks for ``batch_size`` sequences, one entry per layer and
        direction (None when recurrent dropout is off or the layer is in eval mode): pass
        them to every :meth:`step` of the same sequences."""
        like = next(iter(self.parameters())) if like is None else like
        return [self._masks(cell, batch_size, like) for cell in self._cells]

    def _masks(self, cell: Cell, B: int, like: Tensor) -> State | None:
        p = self.recurrent_dropout
        if p == 0 or not self.training:
            return None
        return tuple(
            torch.bernoulli(like.new_full((B, cell.state_sizes[i]), 1 - p)) / (1 - p)
            for i in cell.dropout_state
        )

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor, state=None, lengths: Tensor | None = None):
        """Run the stack over ``x``.

        Args:
            x: (B, T, F) input, or unbatched (T, F).
            state: initial state, torch.nn's layout: (num_layers * D, B, size) per state
                variable (a tuple when there are several, LSTM's (h_0, c_0)); zeros, or
                the learned initial state, when None.
            lengths: LongTensor (B,) of valid lengths, 1 <= lengths[b] <= T.

        Returns:
            (outputs, final_state): outputs (B, T, D * H_out), zero past each length;
            final_state in the layout of ``state``, taken at each sequence's last step.
        """
        batched = not (isinstance(x, Tensor) and x.dim() == 2)
        x, state, lengths = self._check_input(x, state, lengths)
        self._sync_cells()
        B, T = x.shape[:2]
        if lengths is not None:
            if bool((lengths == T).all()):
                lengths = None
            else:  # nothing past a length may reach an output or a gradient (NaN padding)
                valid = torch.arange(T, device=x.device) < lengths.unsqueeze(1)  # (B, T)
                x = torch.where(valid.unsqueeze(-1), x, 0.0)
        if state is None:
            state = self._initial_state(B, x)
        engine = "loop" if B == 0 else self.resolved_engine()
        if engine in ("fused", "loop") or not _autocast(x):
            out, final = ENGINES[engine].run(self, x, state, lengths)
        else:  # hand-written kernels are not autocast-aware: they run in the weights' dtype
            dtype = next(iter(self.parameters())).dtype
            with torch.autocast(x.device.type, enabled=False):
                state = tuple(s.to(dtype) for s in state)
                out, final = ENGINES[engine].run(self, x.to(dtype), state, lengths)
        if not batched:
            out = out.squeeze(0)
            final = tuple(s.squeeze(1) for s in final)
        return out, self._wrap_state(final)

    def run_stack(self, x: Tensor, state: State, lengths: Tensor | None, recurrence, project=None):
        """Layer by layer and direction by direction with ``recurrence(cell, xp, state_0,
        lengths, masks) -> (ys, state_T)`` (the loop and bptt engines); ``project(cell, x)``
        in place of ``cell.project(x)`` if given (the compiled engine)."""
        D = self.num_directions
        inp, finals = x, []
        for k in range(self.num_layers):
            outs = []
            for d in range(D):
                cell = self._cells[k * D + d]
                s0 = tuple(s[k * D + d] for s in state)  # (B, size) each
                src = inp if d == 0 else reverse_padded(inp, lengths)
                xp = cell.project(src) if project is None else project(cell, src)  # (B, T, G)
                ys, sT = recurrence(cell, xp, s0, lengths, self._masks(cell, x.shape[0], x))
                outs.append(ys if d == 0 else reverse_padded(ys, lengths))
                finals.append(sT)
            out = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (B, T, D*H_out)
            inp = self.between_layers(out, inp, k)
        return inp, tuple(torch.stack(parts) for parts in zip(*finals))

    def between_layers(self, out: Tensor, inp: Tensor, k: int) -> Tensor:
        """Residual connection (layers >= 1) and dropout (all layers but the last)."""
        if self.residual and k > 0:
            out = out + inp  # both zero past the lengths
        if self.dropout > 0 and self.training and k < self.num_layers - 1:
            out = F.dropout(out, self.dropout, training=True)
        return out

    def step(self, x_t: Tensor, state=None, *, context: Tensor | None = None, masks=None):
        """One time step of the whole stack: ``x_t`` (B, F') -> (y_t (B, H_out), state).

        For generation, online use and decoders. ``context`` (B, C), e.g. an attention
        decoder's context vector, is concatenated to ``x_t`` (so ``input_size`` = F' + C).
        With recurrent dropout in training mode, pass the same ``masks`` (from
        :meth:`recurrent_masks`) at every step of a sequence. Only the shapes are checked
        here; the stack runs its cells' steps directly, with no engine dispatch.
        """
        if self.bidirectional:
            raise InputError("step: a bidirectional layer needs the whole sequence")
        x_t = check_tensor("x_t", x_t)
        if context is not None:
            x_t = torch.cat([x_t, check_tensor("context", context)], dim=-1)
        if x_t.dim() != 2 or x_t.shape[1] != self.input_size:
            extra = " (x_t and context together)" if context is not None else ""
            raise InputError(f"x_t: expected shape (B, {self.input_size}){extra}, "
                             f"received {tuple(x_t.shape)}")  # fmt: skip
        B = x_t.shape[0]
        if state is None:
            state = self._initial_state(B, x_t)
        else:
            state = self._check_state(state, B, True, x_t)
        if masks is None and self.recurrent_dropout > 0 and self.training:
            raise InputError(
                "masks: recurrent_dropout > 0 in training mode needs one mask per sequence; "
                "pass masks=layer.recurrent_masks(B) to every step of the same sequences"
            )
        self._sync_cells()
        inp, new = x_t, []
        for k, cell in enumerate(self._cells):
            s0 = tuple(s[k] for s in state)
            xp = cell.project(inp.unsqueeze(1))[:, 0]  # (B, G)
            y, s1 = cell.masked_step(xp, s0, None if masks is None else masks[k])
            inp = self.between_layers(y, inp, k)
            new.append(s1)
        return inp, self._wrap_state(tuple(torch.stack(parts) for parts in zip(*new)))


def uniform_(params, hidden_size: int) -> None:
    """torch.nn's initialisation of recurrent weights, U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size)
    for p in params:
        nn.init.uniform_(p, -bound, bound)


__all__ = ["Recurrent", "reverse_padded", "uniform_"]
