r"""The ``generic`` engine: any cell, defined by its step alone, through compiled steps.

A cell with no hand-written kernel has only ``step``. This engine runs it as one
``torch.autograd.Function`` over the whole sequence of one layer and direction, with no
autograd graph per step:

- forward: under ``no_grad``, :math:`(y_t, s_t) = \mathrm{step}(x_t, s_{t-1})` for
  :math:`t = 1..T`, keeping only the states :math:`s_0..s_{T-1}` (activation memory
  :math:`O(T B H)`, the states and the projected inputs);
- backward: for :math:`t = T..1`, recompute the step from the saved :math:`s_{t-1}` and
  pull the cotangents back through it with ``torch.func.vjp``,

  .. math::

     (\bar\theta_t, \bar x_t, \bar s_{t-1}) = \mathrm{vjp}_{\mathrm{step}}(\theta, x_t,
     s_{t-1})(\bar y_t, \bar s_t), \qquad \bar\theta = \textstyle\sum_t \bar\theta_t .

Both the step and its vector-Jacobian product are traced to ATen graphs (``make_fx``,
the vjp traced through ``torch.func``) and compiled by inductor, once per cell, input
layout and value of the cell's Python constants, so the elementwise work of each step is
one generated C++ (or Triton) kernel. The compiled code is called directly inside the
loop: the layout is checked once per sequence instead of by ``torch.compile``'s guards on
every call, which halved the cost of a call (48 to 23 us at B = 32, H = 64).
Past a sequence's length the step is the identity on the state and its output is zero
(the ``torch.where`` of the loop engine, inside the compiled step), and the
recurrent-dropout masks enter through ``Cell.masked_step``: the numbers are the loop
engine's. A step must be a deterministic function of its inputs, parameters and buffers
(randomness enters through the masks), as for any engine that recomputes steps.

Compilation needs a C++ compiler and costs seconds per function, cell and layout (3.4 s
for the README cell's vjp on the project's 2-core machine); where it is unavailable or
fails, or ``RNNLAB_NO_COMPILE=1`` is set, the engine warns once and runs the ``loop`` engine. The
uncompiled vjp path (``GenericEngine(compile=False)``, used by the tests) gives the same
numbers but is slower than ``loop``. ``engine="auto"`` does not choose this engine: see
docs/design.md for the measurements behind that choice.
"""

from __future__ import annotations

import os
import shutil
import warnings
import weakref

import torch
import torch._inductor
from torch import Tensor, nn
from torch.func import functional_call, vjp
from torch.fx.experimental.proxy_tensor import make_fx
from torch.utils._pytree import tree_flatten, tree_unflatten

from rnnlab.engines.loop import loop


class _Steps(nn.Module):
    """``cell.masked_step`` with the length mask, as a module ``functional_call`` can
    re-parametrise (its parameters are the cell's, named ``cell.<name>``)."""

    def __init__(self, cell) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x_t: Tensor, state, masks, valid):
        y, new = self.cell.masked_step(x_t, state, masks)
        if valid is not None:  # (B, 1): freeze the state and zero the output past the length
            new = tuple(torch.where(valid, n, s) for n, s in zip(new, state))
            y = torch.where(valid, y, torch.zeros_like(y))
        return y, tuple(new)


class _Kernels:
    """The step and its vjp for one cell, compiled or eager.

    Compiled: each function is traced to an ATen graph over flat tensors
    (``make_fx``) and compiled by inductor (``torch._inductor.compile``), once per layout of
    its inputs (shapes, strides, dtypes, devices) and per value of the cell's Python
    constants (attributes such as ``alpha``, and ``training``). The layout is checked once
    per sequence; inside the loop the compiled code is called directly, without
    ``torch.compile``'s per-call guards (measured at (32, 64): 23 us a call against 48 us).
    """

    def __init__(self, cell, compile: bool) -> None:
        module = self.module = _Steps(cell)
        names = self.names = [n for n, _ in module.named_parameters()]

        def step(params, x_t, state, masks, valid):
            return functional_call(module, dict(zip(names, params)), (x_t, state, masks, valid))

        def step_vjp(params, x_t, state, masks, valid, gy, gs):
            def f(p, x, s):
                return functional_call(module, dict(zip(names, p)), (x, s, masks, valid))

            _, pull = vjp(f, params, x_t, state)
            return pull((gy, gs))  # (d params, d x_t, d state_{t-1})

        self.eager = {"step": step, "vjp": step_vjp}
        self.compiled = compile
        self.failed: str | None = None
        self._traced: dict = {}  # (kind, layout, constants) -> compiled flat function

    def parameters(self) -> list[Tensor]:
        """The cell's parameters, in the order of ``names``."""
        return [p for _, p in self.module.named_parameters()]

    def function(self, kind: str, args: tuple, compiled: bool = True):
        """``kind`` ("step" or "vjp") as a function of ``args``' flattened tensors, for their
        layout: the eager function, or its compiled trace (traced on first use)."""
        fn = self.eager[kind]
        leaves, spec = tree_flatten(args)  # None leaves (no masks, no lengths) stay put
        where = [i for i, leaf in enumerate(leaves) if isinstance(leaf, Tensor)]
        tensors = [leaves[i] for i in where]

        def flat_fn(*flat):
            full = list(leaves)
            for i, t in zip(where, flat):
                full[i] = t
            return tree_flatten(fn(*tree_unflatten(full, spec)))[0]

        autocast = torch.is_autocast_enabled(tensors[0].device.type)
        if not (compiled and self.compiled) or autocast:
            return lambda flat: flat_fn(*flat)
        layout = tuple((t.shape, t.stride(), t.dtype, t.device) for t in tensors)
        key = (kind, spec, layout, _constants(self.module))
        call = self._traced.get(key)
        if call is None:
            with torch.no_grad():
                graph = make_fx(flat_fn)(*tensors)
                compiled_fn = torch._inductor.compile(graph, tensors)
            call = self._traced[key] = lambda flat: compiled_fn(*flat)
        return call


def _constants(module: nn.Module) -> tuple:
    """What a trace bakes in besides the parameters: ``training``, the plain attributes of
    every submodule and the version of every buffer (a change of any means a new trace, as
    a guard of ``torch.compile`` would)."""
    plain = (bool, int, float, str, type(None))
    return tuple(
        (
            m.training,
            tuple((k, v) for k, v in vars(m).items() if isinstance(v, plain)),
            tuple(b._version for b in m.buffers(recurse=False)),
        )
        for m in module.modules()
    )


class _GenericRecurrence(torch.autograd.Function):
    """The whole sequence of one layer-direction: (xp, *state_0, *params) -> (ys, *state_T)."""

    @staticmethod
    def forward(ctx, kernels, lengths, masks, n_state, xp, *rest):
        state = tuple(s.contiguous() for s in rest[:n_state])
        params = list(rest[n_state:])
        T = xp.shape[1]
        xs = xp.transpose(0, 1).contiguous()  # (T, B, G): every step's slice laid out alike
        mask_leaves = [m for m in tree_flatten(masks)[0] if isinstance(m, Tensor)]
        valids = [None if lengths is None else (lengths > t).unsqueeze(1) for t in range(T)]
        step = None
        saved, ys = [], []
        for t in range(T):
            if step is None:  # the layout of the first step is every step's
                step = kernels.function("step", (params, xs[t], state, masks, valids[t]))
            saved.extend(state)
            valid = [] if valids[t] is None else [valids[t]]
            out = step([*params, xs[t], *state, *mask_leaves, *valid])
            ys.append(out[0])
            state = tuple(out[1:])
        ctx.kernels, ctx.masks, ctx.n_state, ctx.valids = kernels, masks, n_state, valids
        ctx.save_for_backward(xs, *saved, *params)
        return (torch.stack(ys, dim=1), *state)  # (B, T, H_out), state_T

    @staticmethod
    def backward(ctx, gys, *g_final):
        if torch.is_grad_enabled():  # create_graph=True: this backward is not differentiable
            raise RuntimeError(
                "engine='generic' has no second derivative (create_graph=True); run the "
                "layer with engine='loop' for double backward"
            )
        kernels, masks, n, valids = ctx.kernels, ctx.masks, ctx.n_state, ctx.valids
        xs, *rest = ctx.saved_tensors
        T = xs.shape[0]
        states, params = rest[: n * T], list(rest[n * T :])
        P = len(params)
        gs = tuple(g.contiguous() for g in g_final)  # autograd materialises missing ones
        gys = gys.transpose(0, 1).contiguous()  # (T, B, H_out)
        mask_leaves = [m for m in tree_flatten(masks)[0] if isinstance(m, Tensor)]
        g_params = [torch.zeros_like(p) for p in params]
        g_xs = torch.empty_like(xs)  # (T, B, G)
        pull = None
        for t in range(T - 1, -1, -1):
            state = tuple(states[t * n : (t + 1) * n])
            if pull is None:
                args = (params, xs[t], state, masks, valids[t], gys[t], gs)
                try:
                    pull = kernels.function("vjp", args)
                except Exception as exc:  # a compiler that fails on the backward graph only
                    if not kernels.compiled:
                        raise
                    _warn_fallback(f"compiling the step's vjp failed ({_first_line(exc)})", "vjp")
                    pull = kernels.function("vjp", args, compiled=False)
            valid = [] if valids[t] is None else [valids[t]]
            out = pull([*params, xs[t], *state, *mask_leaves, *valid, gys[t], *gs])
            for acc, d in zip(g_params, out[:P]):
                acc.add_(d)
            g_xs[t] = out[P]
            gs = tuple(out[P + 1 :])
        g_xp = g_xs.transpose(0, 1)  # (B, T, G)
        return (None, None, None, None, g_xp, *gs, *g_params)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]


def _warn_fallback(reason: str, runs: str) -> None:
    warnings.warn(
        f"engine='generic': {reason}; running the {runs} engine instead (same numbers, slower)"
        if runs == "loop"
        else f"engine='generic': {reason}; running the uncompiled vjp of the step (same numbers, "
        "slower)",
        RuntimeWarning,
        stacklevel=4,
    )


def compiler_unavailable() -> str | None:
    """Why ``torch.compile`` cannot run here (None: it can, as far as can be told)."""
    if os.environ.get("RNNLAB_NO_COMPILE", "") not in ("", "0"):
        return "RNNLAB_NO_COMPILE is set"
    cxx = os.environ.get("CXX", "g++")
    if shutil.which(cxx) is None and shutil.which("c++") is None:
        return f"no C++ compiler ({cxx!r}) for torch.compile"
    return None


class GenericEngine:
    """Any cell: its step and the step's vjp compiled, no autograd graph per step.

    Args:
        compile: compile the step and its vjp with ``torch.compile`` (the registered
            engine); False runs the same function with the eager vjp (for tests)."""

    name = "generic"

    def __init__(self, compile: bool = True) -> None:
        self.compile = compile
        self._kernels: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._warned = False

    def why_not(self, layer) -> str | None:
        return None  # every cell has a step

    def run(self, layer, x: Tensor, state, lengths):
        if self.compile and (reason := compiler_unavailable()) is not None:
            if not self._warned:
                self._warned = True
                _warn_fallback(reason, "loop")
            return layer.run_stack(x, state, lengths, loop)
        return layer.run_stack(x, state, lengths, self._recurrence)

    def _recurrence(self, cell, xp: Tensor, state, lengths, masks):
        kernels = self._kernels.get(cell)
        if kernels is None:
            kernels = self._kernels[cell] = _Kernels(cell, self.compile)
        if kernels.failed is not None:
            return loop(cell, xp, state, lengths, masks)
        params = kernels.parameters()
        try:
            out = _GenericRecurrence.apply(kernels, lengths, masks, len(state), xp, *state, *params)
        except Exception as exc:
            if not kernels.compiled:
                raise
            kernels.failed = _first_line(exc)  # compilation failed: this cell runs on loop
            _warn_fallback(
                f"compiling {type(cell).__name__}'s step failed ({kernels.failed})", "loop"
            )
            return loop(cell, xp, state, lengths, masks)
        return out[0], tuple(out[1:])
