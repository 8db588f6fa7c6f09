r"""The ``compiled`` engine: the ``bptt`` kernels with their time loops in C++.

The hand-written BPTT kernels pay Python's cost for every tensor operation of every step;
at small sizes that cost, not the arithmetic, is the time. This engine runs the same
kernels (the same buffers and saved tensors) with the two loops over time compiled, and on
CPU (float, double) each step's pointwise work fused into one vectorised loop between the
matmuls, which stay BLAS calls (elsewhere the same ATen operations as the Python loops, in
the same order). The numbers equal ``bptt``'s to a few ulp. ``csrc/lstm.cpp`` (in one
extension with ``csrc/reservoir.cpp``, the echo state network's loop, and ``csrc/vm.h``,
their shared vectorisable math) is built on first use by ``torch.utils.cpp_extension.load``
(a C++ compiler and ninja needed) and cached in torch's extension directory
(``TORCH_EXTENSIONS_DIR``, by default ``~/.cache/torch_extensions``), so later processes
load it in well under a second.

Families: the LSTM (every option: the 1997 cell, peepholes, layer norm, projection,
recurrent dropout). Other cells report why not and run on ``bptt`` under ``auto``.

``auto`` picks this engine on the CPU for these cells, so the first LSTM without a torch
kernel in a fresh environment builds it (about a minute on two cores; a line on stderr
says so); ``make`` builds it when it installs (it calls :func:`status`).
Where no compiler exists or the build fails, :func:`load` returns None once, warns with
the reason (``RNNLAB_COMPILED=0`` turns the engine off without trying), and ``auto`` falls
back to ``bptt``: the reason is in :func:`status`.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

from torch import Tensor

_NAME = "rnnlab_loops"  # one extension: the LSTM loops and the reservoir loop
_SOURCES = [Path(__file__).with_name("csrc") / f for f in ("lstm.cpp", "reservoir.cpp")]
_lock = threading.Lock()
_state: dict = {}  # "module" or "error", once tried


def load():
    """The compiled extension module, building it on first use; None if it cannot be built."""
    if "module" in _state or "error" in _state:
        return _state.get("module")
    with _lock:
        if "module" in _state or "error" in _state:
            return _state.get("module")
        if os.environ.get("RNNLAB_COMPILED", "1") == "0":
            _state["error"] = "turned off by RNNLAB_COMPILED=0"
            return None
        try:
            from torch.utils.cpp_extension import load as cpp_load

            _say_if_building()
            _state["module"] = cpp_load(
                name=_NAME,
                sources=[str(s) for s in _SOURCES],
                # -O3 vectorises the fused pointwise loops; -fno-trapping-math (as torch
                # itself is built) lets their selects be vector blends. No -march: the
                # loops are built per x86-64 level inside (target_clones), so the cached
                # build stays portable.
                extra_cflags=["-O3", "-fno-trapping-math"],
                verbose=False,
            )
        except Exception as e:  # no compiler, no ninja, a build error: fall back
            lines = str(e).strip().splitlines() or [""]
            first = next((x for x in lines if "error" in x.lower()), lines[-1])
            _state["error"] = f"{type(e).__name__}: {first.strip()}"
            warnings.warn(
                "rnnlab: the compiled engine could not be built, the Python bptt kernels run "
                f"instead ({_state['error']})",
                RuntimeWarning,
                stacklevel=3,
            )
    return _state.get("module")


def _say_if_building() -> None:
    """One line on stderr when the build is not cached yet (a minute without output)."""
    try:  # torch's private helper, as cpp_extension.load itself uses it
        from torch.utils.cpp_extension import _get_build_directory

        where = Path(_get_build_directory(_NAME, verbose=False))
    except Exception:
        return
    if not (where / f"{_NAME}.so").exists():
        print(
            "rnnlab: building the compiled loops (LSTM, reservoir) once (about a minute), "
            f"cached in {where}",
            file=sys.stderr,
            flush=True,
        )


def status() -> str:
    """Which LSTM kernel runs: 'compiled (C++ loops)' or 'bptt (Python loops): <why>'."""
    if load() is not None:
        return "compiled (C++ loops)"
    return f"bptt (Python loops): {_state['error']}"


class CompiledEngine:
    """Each layer-direction runs its cell's BPTT kernel with the loops in C++."""

    name = "compiled"

    def why_not(self, layer) -> str | None:
        for cell in layer.cells:
            if not getattr(cell, "has_compiled_loops", False):
                return f"{type(cell).__name__} has no compiled kernel"
        if load() is None:
            return f"the C++ extension is not available ({_state['error']})"
        return None

    def run(self, layer, x: Tensor, state, lengths):
        module = load()

        def recurrence(cell, xp, s0, lengths, masks):
            return cell.recurrence(xp, s0, lengths, masks, loops=module)

        def project(cell, src):  # the LSTM's input layer norm may then run in the loops
            return cell.project(src, loops=module)

        return layer.run_stack(x, state, lengths, recurrence, project)
