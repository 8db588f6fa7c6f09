"""The one loop over layers, directions and time that every recurrent layer shares.

A recurrent family (``lstm.py``, ``gru.py``, ``srn.py``, ...) supplies the math of one
step and a hand-written BPTT kernel for its recurrence; :class:`RecurrentLayer` owns
everything else: hyperparameters, input checks, unbatched input, ``lengths``, the
reverse direction, stacking with dropout and residual connections, learned initial
states, recurrent dropout masks and the choice of engine.

How a layer runs (for layer ``k`` and direction ``d``)::

    xp = project(inp)                       # (B, T, G): all input projections, one matmul
    ys, state_T = recurrence(xp, state_0)   # engine: loop | bptt (| fused, whole stack)
    out = cat(ys over directions)           # (B, T, D*H)
    out = dropout(out) [+ inp if residual]  # between layers

The reverse direction runs the same recurrence on each sequence reversed *within its own
length*, then reverses the outputs back. Every engine receives only prefix masks: step
``t`` of sequence ``b`` is valid iff ``t < lengths[b]``.
"""

from __future__ import annotations

import math

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
from rnnlab.errors import InputError, InputTypeError

ENGINES = ("auto", "fused", "bptt", "loop", "rtrl")

State = tuple[Tensor, ...]  # one (B, size) tensor per state variable (h, or h and c)


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


def project(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """All input projections ``x W^T + b`` in one matmul: (B, T, G).

    The result is a (B, T, G) view of time-major memory, so that each step's row block
    is contiguous for the recurrence and the kernels need no transposing copies."""
    B, T, F = x.shape
    x_tm = x.transpose(0, 1).reshape(T * B, F)  # (T*B, F)
    out = x_tm @ weight.t() if bias is None else torch.addmm(bias, x_tm, weight.t())
    return out.view(T, B, -1).transpose(0, 1)  # (B, T, G)


def steps(x: Tensor, lo: int | None = None, hi: int | None = None) -> tuple[Tensor, ...]:
    """Views ``x[t, ..., lo:hi]`` for every ``t`` of a time-major buffer, made in one call.

    The kernels' loops over time index their buffers through these lists: at small sizes,
    indexing a tensor inside the loop costs more than the arithmetic."""
    if lo is not None or hi is not None:
        x = x[..., lo:hi]
    return x.unbind(0)


def carry_back(dh_prev: Tensor, da: Tensor, w_hh: Tensor, rmask: Tensor | None) -> None:
    """The recurrent term of every adjoint, in place: dh_{t-1} += r * (da_t @ W_hh)."""
    if rmask is None:
        dh_prev.addmm_(da, w_hh)
    else:
        dh_prev.addcmul_(da @ w_hh, rmask)


def recurrent_input(Hs: Tensor, rmask: Tensor | None) -> Tensor:
    """The states the recurrent weights saw, r * h_{t-1} for t = 1..T: (T, B, H)."""
    return Hs[:-1] if rmask is None else Hs[:-1] * rmask


def batch_first_outputs(states: Tensor, lengths: Tensor | None) -> Tensor:
    """Outputs (B, T, H) from the states (T+1, B, H) of a kernel, zero past each length."""
    ys = states[1:].transpose(0, 1)  # (B, T, H)
    if lengths is None:
        return ys.contiguous()
    valid = torch.arange(ys.shape[1], device=ys.device) < lengths.unsqueeze(1)  # (B, T)
    return torch.where(valid.unsqueeze(-1), ys, 0.0)


def gather_last(states: Tensor, lengths: Tensor | None) -> Tensor:
    """State after each sequence's last valid step from ``states`` (T+1, B, H), time-major
    with the initial state at index 0."""
    if lengths is None:
        return states[-1].clone()
    B = states.shape[1]
    return states[lengths, torch.arange(B, device=states.device)]


def inject_final_grad(dY: Tensor, dhT: Tensor, lengths: Tensor | None) -> None:
    """Zero dY (T, B, H) past each length and add the final state's gradient at each
    sequence's last step (in place)."""
    T, B = dY.shape[:2]
    if lengths is None:
        dY[-1] += dhT
        return
    valid = torch.arange(T, device=dY.device).unsqueeze(1) < lengths  # (T, B)
    dY.mul_(valid.unsqueeze(-1))
    dY[lengths - 1, torch.arange(B, device=dY.device)] += dhT


class RecurrentLayer(nn.Module):
    """Base class of rnnlab's recurrent layers (a stack of recurrent layers).

    Subclasses define the family through these methods (all per layer ``k`` and
    direction suffix ``sfx`` in ``("", "_reverse")``):

    - ``_state_sizes() -> tuple[int, ...]``: the size of each state variable (default:
      one state of hidden_size).
    - ``_build(k, sfx, in_size, factory)``: register the parameters of one layer-direction.
    - ``_project(x, k, sfx) -> xp``: the input projection for all steps, (B, T, G).
    - ``_step(xp_t, state, k, sfx, rmask) -> (y_t, state)``: one step (the loop engine).
    - ``_recurrence(xp, state, k, sfx, lengths, rmask) -> (ys, state_T)``: the bptt engine
      (optional: a family without it runs on the loop engine).
    - ``_fused_reason() -> str | None``: why the fused engine does not apply (None: it does).
    - ``_fused_mode``: the ``torch._VF`` kernel, where torch has one (``_fused`` runs it).
    - ``_rtrl(x, state, lengths) -> (out, state)``: real-time recurrent learning, where
      the family has it (one layer).
    """

    _fused_mode: str | None = None  # torch._VF function name, where one exists

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        bidirectional: bool = False,
        residual: bool = False,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        learn_initial_state: bool = False,
        engine: str = "auto",
        output_size: int | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.input_size = check_positive_int("input_size", input_size)
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.num_layers = check_positive_int("num_layers", num_layers)
        self.bias = bool(bias)
        self.bidirectional = bool(bidirectional)
        self.residual = bool(residual)
        self.dropout = check_probability("dropout", dropout)
        self.recurrent_dropout = check_probability("recurrent_dropout", recurrent_dropout)
        self.learn_initial_state = bool(learn_initial_state)
        # size of each direction's output (LSTM with proj_size: the projection size)
        self.output_size = hidden_size if output_size is None else output_size
        if engine not in ENGINES:
            raise InputError(f"engine: expected one of {ENGINES}, received {engine!r}")
        self.engine = engine
        if self.dropout > 0 and num_layers == 1:
            import warnings

            warnings.warn(
                "dropout > 0 acts between stacked layers only, and num_layers = 1",
                stacklevel=2,
            )
        factory = {"device": device, "dtype": dtype}
        D = self.num_directions
        for k in range(num_layers):
            in_size = input_size if k == 0 else self.output_size * D
            for sfx in self._suffixes():
                self._build(k, sfx, in_size, factory)
        if self.learn_initial_state:
            self.initial_state = nn.ParameterList(
                nn.Parameter(torch.zeros(num_layers * D, 1, size, **factory))
                for size in self._state_sizes()
            )

    # ----------------------------------------------------------------- structure
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def _state_sizes(self) -> tuple[int, ...]:
        return (self.hidden_size,)

    def _wrap_state(self, state: State):
        """Public form of the state: a tensor, or a tuple (LSTM's (h, c))."""
        return state[0] if len(state) == 1 else state

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        for name in ("bidirectional", "residual", "learn_initial_state"):
            if getattr(self, name):
                s += f", {name}=True"
        for name in ("dropout", "recurrent_dropout"):
            if getattr(self, name):
                s += f", {name}={getattr(self, name)}"
        return s + f", engine={self.engine!r}"

    # ----------------------------------------------------------------- engines
    def resolved_engine(self) -> str:
        """The engine this layer will use in its current mode ("fused", "bptt", "loop")."""
        has_bptt = type(self)._recurrence is not RecurrentLayer._recurrence
        if self.engine == "auto":
            if self._fused_reason() is None:
                return "fused"
            return "bptt" if has_bptt else "loop"
        if self.engine == "bptt" and not has_bptt:
            raise InputError(f"engine='bptt': {type(self).__name__} has no BPTT kernel; use 'loop'")
        if self.engine == "fused":
            reason = self._fused_reason()
            if reason is not None:
                raise InputError(
                    f"engine='fused': torch has no fused kernel for this configuration "
                    f"({reason}); use engine='bptt' or 'auto'"
                )
        return self.engine

    def _recurrence(self, xp: Tensor, state: State, k: int, sfx: str, lengths, rmask):
        raise NotImplementedError  # a family without a BPTT kernel runs on the loop engine

    def _rtrl(self, x: Tensor, state: State, lengths: Tensor | None):
        raise InputError(f"engine='rtrl': not available for {type(self).__name__} (SRN only)")

    def _fused_reason(self) -> str | None:
        if self._fused_mode is None:
            return f"{type(self).__name__} has no fused torch kernel"
        if self.recurrent_dropout > 0 and self.training:
            return "recurrent_dropout"
        return None

    # ----------------------------------------------------------------- checks
    def _check_input(self, x: object, state, lengths) -> tuple[Tensor, State | None, bool]:
        x = check_tensor("input", x)
        if x.dim() not in (2, 3):
            raise InputError(
                f"input: expected a 3-D tensor (B, T, {self.input_size}) or an unbatched 2-D "
                f"tensor (T, {self.input_size}), received shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise InputTypeError(f"input: expected a floating-point tensor, received {x.dtype}")
        ref = next(self.parameters())
        if x.dtype != ref.dtype or x.device != ref.device:
            raise InputTypeError(
                f"input: expected dtype {ref.dtype} on {ref.device} (as the layer's "
                f"parameters), received {x.dtype} on {x.device}"
            )
        batched = x.dim() == 3
        if not batched:
            x = x.unsqueeze(0)
        if x.shape[-1] != self.input_size:
            raise InputError(
                f"input: expected {self.input_size} features in the last dimension "
                f"(input_size), received shape {tuple(x.shape if batched else x.shape[1:])}"
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
        sizes = self._state_sizes()
        names = ("h_0", "c_0")[: len(sizes)] if len(sizes) <= 2 else None
        if len(sizes) == 1 and isinstance(state, Tensor):
            state = (state,)
        if not isinstance(state, (tuple, list)) or len(state) != len(sizes):
            raise InputTypeError(
                f"state: expected {'a tensor' if len(sizes) == 1 else 'a tuple (h_0, c_0)'}, "
                f"received {describe(state)}"
            )
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
            if s.dtype != x.dtype or s.device != x.device:
                raise InputTypeError(
                    f"state {name}: expected dtype {x.dtype} on {x.device} (as input), "
                    f"received {s.dtype} on {s.device}"
                )
            out.append(s if batched else s.unsqueeze(1))
        return tuple(out)

    def init_state(self, batch_size: int):
        """The initial state for ``batch_size`` sequences in the public layout (zeros, or
        the learned initial state)."""
        check_positive_int("batch_size", batch_size)
        ref = next(self.parameters())
        return self._wrap_state(self._initial_state(batch_size, ref))

    def step(self, x_t: Tensor, state=None):
        """One time step through the whole stack: ``x_t`` (B, F) -> (y_t (B, H_out), state).

        For generation and online use; a bidirectional stack needs the whole sequence."""
        if self.bidirectional:
            raise InputError("step: a bidirectional layer needs the whole sequence")
        x_t = check_tensor("x_t", x_t)
        if x_t.dim() != 2:
            raise InputError(
                f"x_t: expected shape (B, {self.input_size}), received {tuple(x_t.shape)}"
            )
        y, state = self(x_t.unsqueeze(1), state)
        return y[:, 0], state

    def _initial_state(self, B: int, x: Tensor) -> State:
        LD = self.num_layers * self.num_directions
        if self.learn_initial_state:
            return tuple(p.expand(LD, B, p.shape[-1]) for p in self.initial_state)
        return tuple(x.new_zeros(LD, B, size) for size in self._state_sizes())

    # ----------------------------------------------------------------- forward
    def forward(self, x: Tensor, state=None, lengths: Tensor | None = None):
        """Run the stack over ``x``.

        Args:
            x: (B, T, F) input, or unbatched (T, F).
            state: initial state, torch.nn's layout: (num_layers * D, B, H) per state
                variable (LSTM: a tuple (h_0, c_0)); zeros, or the learned initial state,
                when None.
            lengths: LongTensor (B,) of valid lengths, 1 <= lengths[b] <= T.

        Returns:
            (outputs, final_state): outputs (B, T, D * H_out), zero past each length;
            final_state in the layout of ``state``, taken at each sequence's last valid step.
        """
        batched = x.dim() == 3 if isinstance(x, Tensor) else True
        x, state, lengths = self._check_input(x, state, lengths)
        B, T = x.shape[:2]
        if lengths is not None and bool((lengths == T).all()):
            lengths = None
        if state is None:
            state = self._initial_state(B, x)
        engine = self.resolved_engine()
        if engine == "fused":
            out, final = self._run_fused(x, state, lengths)
        elif engine == "rtrl":
            out, final = self._rtrl(x, state, lengths)
        else:
            out, final = self._run_stack(x, state, lengths, engine)
        if not batched:
            out = out.squeeze(0)
            final = tuple(s.squeeze(1) for s in final)
        return out, self._wrap_state(final)

    def _run_fused(self, x: Tensor, state: State, lengths: Tensor | None):
        if not self.residual:  # the whole stack in one torch call
            return self._fused(x, state, 0, self.num_layers, lengths)
        D = self.num_directions
        inp, finals = x, []
        for k in range(self.num_layers):
            layer_state = tuple(s[k * D : (k + 1) * D] for s in state)
            out, fin = self._fused(inp, layer_state, k, k + 1, lengths)
            out = self._between_layers(out, inp, k, lengths)
            finals.append(fin)
            inp = out
        return inp, tuple(torch.cat(parts) for parts in zip(*finals))

    def _run_stack(self, x: Tensor, state: State, lengths: Tensor | None, engine: str):
        D = self.num_directions
        inp = x
        finals: list[State] = []
        for k in range(self.num_layers):
            outs = []
            for d, sfx in enumerate(self._suffixes()):
                s0 = tuple(s[k * D + d] for s in state)  # (B, size) each
                rmask = self._recurrent_mask(s0[0])
                src = inp if d == 0 else reverse_padded(inp, lengths)
                xp = self._project(src, k, sfx)  # (B, T, G)
                if engine == "loop":
                    ys, sT = self._loop(xp, s0, k, sfx, lengths, rmask)
                else:
                    ys, sT = self._recurrence(xp, s0, k, sfx, lengths, rmask)
                outs.append(ys if d == 0 else reverse_padded(ys, lengths))
                finals.append(sT)
            out = outs[0] if D == 1 else torch.cat(outs, dim=-1)  # (B, T, D*H)
            inp = self._between_layers(out, inp, k, lengths)
        return inp, tuple(torch.stack(parts) for parts in zip(*finals))

    def _between_layers(self, out: Tensor, inp: Tensor, k: int, lengths) -> Tensor:
        if self.residual and k > 0:
            out = out + inp  # both (B, T, D*H); zero past the lengths
        if self.dropout > 0 and self.training and k < self.num_layers - 1:
            out = F.dropout(out, self.dropout, training=True)
        return out

    def _recurrent_mask(self, h: Tensor) -> Tensor | None:
        """One dropout mask per sequence for h_{t-1} in the recurrent input, shared by all
        time steps (Gal & Ghahramani 2016)."""
        p = self.recurrent_dropout
        if p == 0 or not self.training:
            return None
        return torch.bernoulli(torch.full_like(h, 1 - p)) / (1 - p)

    def _loop(self, xp: Tensor, s0: State, k: int, sfx: str, lengths, rmask):
        """The loop engine: autograd through a Python loop over ``_step`` (the reference)."""
        B, T = xp.shape[:2]
        state, ys = s0, []
        for t in range(T):
            y, new = self._step(xp[:, t], state, k, sfx, rmask)
            if lengths is not None:  # freeze the state and zero the output past the length
                valid = (lengths > t).unsqueeze(1)  # (B, 1)
                new = tuple(torch.where(valid, n, s) for n, s in zip(new, state))
                y = torch.where(valid, y, torch.zeros_like(y))
            ys.append(y)
            state = new
        return torch.stack(ys, dim=1), state  # (B, T, H)

    # ----------------------------------------------------------------- helpers
    def _add_params(self, k: int, sfx: str, shapes: dict, factory: dict) -> None:
        """Register ``{name}_l{k}{sfx}`` for each ``name: shape`` (uninitialised)."""
        for name, shape in shapes.items():
            setattr(self, f"{name}_l{k}{sfx}", nn.Parameter(torch.empty(*shape, **factory)))

    def reset_parameters(self) -> None:
        """torch.nn's initialisation, U(-1/sqrt(H), 1/sqrt(H)); initial states 0."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, p in self.named_parameters():
            if name.startswith("initial_state"):
                nn.init.zeros_(p)
            else:
                nn.init.uniform_(p, -bound, bound)

    def _p(self, name: str, k: int, sfx: str) -> Tensor | None:
        """The parameter ``{name}_l{k}{sfx}`` (None when absent)."""
        return getattr(self, f"{name}_l{k}{sfx}", None)

    def _fused(self, x: Tensor, state: State, k0: int, k1: int, lengths) -> tuple:
        """Layers k0..k1-1 in one call of torch's fused kernel (torch.nn's flat weights)."""
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        weights = [
            self._p(n, k, sfx)
            for k in range(k0, k1)
            for sfx in self._suffixes()
            for n in names
            if self._p(n, k, sfx) is not None
        ]
        hx = state if len(state) > 1 else state[0]
        out, final = call_fused(self._fused_mode, self, x, hx, weights, k1 - k0, lengths)
        return out, tuple(final)


def call_fused(
    mode: str,
    layer: RecurrentLayer,
    x: Tensor,
    hx: Tensor | tuple[Tensor, Tensor],
    weights: list[Tensor],
    num_layers: int,
    lengths: Tensor | None,
):
    """Run torch's fused kernel ``torch._VF.<mode>`` (oneDNN on CPU, cuDNN on GPU) over
    ``x`` (B, T, F), packing by ``lengths`` when given. Returns (out, final hx)."""
    from torch import _VF

    fn = getattr(_VF, mode)
    args = (layer.bias, num_layers, layer.dropout, layer.training, layer.bidirectional)
    if lengths is None:
        res = fn(x, hx, weights, *args, True)
        return res[0], res[1:]
    packed = nn.utils.rnn.pack_padded_sequence(
        x, lengths.cpu(), batch_first=True, enforce_sorted=False
    )
    order, unorder = packed.sorted_indices, packed.unsorted_indices
    if isinstance(hx, tuple):
        hx = tuple(h.index_select(1, order) for h in hx)
    else:
        hx = hx.index_select(1, order)
    res = fn(packed.data, packed.batch_sizes, hx, weights, *args)
    out_packed = nn.utils.rnn.PackedSequence(res[0], packed.batch_sizes, order, unorder)
    out, _ = nn.utils.rnn.pad_packed_sequence(out_packed, batch_first=True, total_length=x.shape[1])
    return out, tuple(h.index_select(1, unorder) for h in res[1:])
