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

Both the step and its vector-Jacobian product are compiled with ``torch.compile``
(inductor; the vjp's graph is traced through AOTAutograd), once per cell and input
shape, so the elementwise work of each step is one generated C++ (or Triton) kernel.
Past a sequence's length the step is the identity on the state and its output is zero
(the ``torch.where`` of the loop engine, inside the compiled step), and the
recurrent-dropout masks enter through ``Cell.masked_step``: the numbers are the loop
engine's.

Compilation needs a C++ compiler and costs tens of seconds per cell and shape (measured
20-80 s on the project's loaded 2-core machine); where it is unavailable or fails, or
``RNNLAB_NO_COMPILE=1`` is set, the engine warns once and runs the ``loop`` engine. The
uncompiled vjp path (``GenericEngine(compile=False)``, used by the tests) gives the same
numbers but is slower than ``loop``. ``engine="auto"`` does not choose this engine: see
docs/design.md for the measurements behind that choice.
"""

from __future__ import annotations

import os
import shutil
import types
import warnings
import weakref

import torch
from torch import Tensor, nn
from torch.func import functional_call, vjp

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
    """The step and its vjp for one cell, compiled or eager."""

    def __init__(self, cell, compile: bool) -> None:
        module = _Steps(cell)
        self.names = [n for n, _ in module.named_parameters()]
        names = self.names

        def step(params, x_t, state, masks, valid):
            return functional_call(module, dict(zip(names, params)), (x_t, state, masks, valid))

        def step_vjp(params, x_t, state, masks, valid, gy, gs):
            def f(p, x, s):
                return functional_call(module, dict(zip(names, p)), (x, s, masks, valid))

            _, pull = vjp(f, params, x_t, state)
            return pull((gy, gs))  # (d params, d x_t, d state_{t-1})

        self.eager_vjp = step_vjp
        if compile:  # fresh code objects: dynamo's recompile limit counts per code object
            step = torch.compile(_fresh(step), fullgraph=True)
            step_vjp = torch.compile(_fresh(step_vjp), fullgraph=True)
        self.step, self.step_vjp = step, step_vjp
        self.compiled = compile
        self.failed: str | None = None


def _fresh(fn):
    """``fn`` with its own copy of its code object, so that each cell's compiled step is
    cached apart from every other cell's (not one code object recompiled per cell)."""
    return types.FunctionType(
        fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )


class _GenericRecurrence(torch.autograd.Function):
    """The whole sequence of one layer-direction: (xp, *state_0, *params) -> (ys, *state_T)."""

    @staticmethod
    def forward(ctx, kernels, lengths, masks, n_state, xp, *rest):
        state, params = tuple(rest[:n_state]), tuple(rest[n_state:])
        T = xp.shape[1]
        saved, ys = [], []
        for t in range(T):
            valid = None if lengths is None else (lengths > t).unsqueeze(1)  # (B, 1)
            saved.extend(state)
            y, state = kernels.step(params, xp[:, t], state, masks, valid)
            ys.append(y)
        ctx.kernels, ctx.lengths, ctx.masks, ctx.n_state = kernels, lengths, masks, n_state
        ctx.save_for_backward(xp, *saved, *params)
        return (torch.stack(ys, dim=1), *state)  # (B, T, H_out), state_T

    @staticmethod
    def backward(ctx, gys, *g_final):
        if torch.is_grad_enabled():  # create_graph=True: this backward is not differentiable
            raise RuntimeError(
                "engine='generic' has no second derivative (create_graph=True); run the "
                "layer with engine='loop' for double backward"
            )
        kernels, lengths, masks, n = ctx.kernels, ctx.lengths, ctx.masks, ctx.n_state
        xp, *rest = ctx.saved_tensors
        T = xp.shape[1]
        states, params = rest[: n * T], tuple(rest[n * T :])
        gs = tuple(g_final)  # autograd materialises missing gradients as zeros
        g_params = [torch.zeros_like(p) for p in params]
        g_xp = torch.empty_like(xp)  # (B, T, G)
        step_vjp = kernels.step_vjp
        for t in range(T - 1, -1, -1):
            valid = None if lengths is None else (lengths > t).unsqueeze(1)  # (B, 1)
            args = (params, xp[:, t], tuple(states[t * n : (t + 1) * n]), masks, valid)
            try:
                dp, dx, gs = step_vjp(*args, gys[:, t], gs)
            except Exception as exc:  # a compiler that failed on the backward graph only
                if not kernels.compiled or step_vjp is kernels.eager_vjp:
                    raise
                _warn_fallback(f"compiling the step's vjp failed ({_first_line(exc)})", "vjp")
                step_vjp = kernels.step_vjp = kernels.eager_vjp
                dp, dx, gs = step_vjp(*args, gys[:, t], gs)
            for acc, d in zip(g_params, dp):
                acc.add_(d)
            g_xp[:, t] = dx
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
        params = [p for _, p in _Steps(cell).named_parameters()]
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
