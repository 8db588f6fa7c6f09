"""The compiled engine (C++ loops of the LSTM BPTT kernel) equals the loop engine, and
its fallback: without the extension, engine='compiled' refuses with the reason and
engine='auto' never needs it.

The extension is built by `make` when it installs (about 60-100 s of gcc on a loaded 2-core
machine, once; later processes load the cached build), so these tests run by default; they
skip, saying why, where it cannot be built."""

import itertools

import pytest
import torch

from rnnlab.engines import ENGINES, compiled
from rnnlab.errors import InputError
from rnnlab.nn import GRU, LSTM
from rnnlab.nn.lstm import LSTMRecurrence

DT = torch.float64
OPTIONS = [
    dict(forget_gate=fg, peepholes=pe, layer_norm=ln, proj_size=pr)
    for fg, pe, ln, pr in itertools.product([True, False], [False, True], [False, True], [0, 2])
]


def _grads(layer, x, state, lengths, seed=0):
    torch.manual_seed(seed)  # the same recurrent-dropout masks for every engine
    y, (h, c) = layer(x, state, lengths)
    g = torch.Generator().manual_seed(seed + 1)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in (y, h, c))
    grads = torch.autograd.grad(loss, [x, *state, *layer.parameters()], allow_unused=True)
    return [y, h, c, *grads]


def test_fallback_without_the_extension(monkeypatch):
    """No compiler (simulated): the engine says why, engine='compiled' raises InputError
    naming it, and 'auto' still runs (it does not depend on the extension)."""
    monkeypatch.setattr(compiled, "_state", {"error": "no compiler (simulated)"})
    layer = LSTM(2, 3, peepholes=True)
    assert "no compiler (simulated)" in ENGINES["compiled"].why_not(layer)
    assert compiled.status().startswith("bptt (Python loops): no compiler")
    layer.engine = "compiled"
    with pytest.raises(InputError, match="engine='compiled'.*no compiler"):
        layer(torch.randn(1, 4, 2))
    layer.engine = "auto"
    assert layer.resolved_engine() == "bptt"


def test_turned_off_by_environment(monkeypatch):
    monkeypatch.setattr(compiled, "_state", {})
    monkeypatch.setenv("RNNLAB_COMPILED", "0")
    assert compiled.load() is None
    assert "RNNLAB_COMPILED=0" in compiled.status()


def test_cells_without_compiled_loops_are_refused():
    assert "GRUCell has no compiled kernel" in ENGINES["compiled"].why_not(GRU(2, 3))


def _module():
    module = compiled.load()
    if module is None:
        pytest.skip(f"the C++ extension could not be built: {compiled.status()}")
    return module


@pytest.mark.parametrize("opts", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_compiled_equals_loop(opts):
    """Outputs, final states and every gradient equal the loop engine to 1e-10 (float64):
    two layers, bidirectional, residual, recurrent dropout, ragged and full lengths."""
    _module()
    torch.manual_seed(0)
    layer = LSTM(3, 4, 2, bidirectional=True, residual=True, recurrent_dropout=0.25, dtype=DT,
                 **opts)  # fmt: skip
    x = torch.randn(3, 6, 3, dtype=DT, requires_grad=True)
    state = tuple(torch.randn(4, 3, n, dtype=DT, requires_grad=True) for n in layer.state_sizes)
    for lengths in (torch.tensor([6, 2, 5]), None):
        res = {}
        for engine in ("loop", "compiled"):
            layer.engine = engine
            res[engine] = _grads(layer, x, state, lengths)
        for u, v in zip(res["loop"], res["compiled"]):
            torch.testing.assert_close(u, v, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("opts", OPTIONS[::3], ids=[str(o) for o in OPTIONS[::3]])
def test_compiled_kernel_gradcheck(opts):
    """gradcheck of LSTMRecurrence with the C++ loops, with lengths and a dropout mask."""
    module = _module()
    torch.manual_seed(0)
    cell = LSTM(2, 3, dtype=DT, **opts).cells[0]
    B, T = 2, 4
    xp = cell.project(torch.randn(B, T, 2, dtype=DT)).detach().requires_grad_()
    P, H = cell.state_sizes
    h0 = torch.randn(B, P, dtype=DT, requires_grad=True)
    c0 = torch.randn(B, H, dtype=DT, requires_grad=True)
    w_hh, w_hr, peep, ln = cell._weights()
    params = [w_hh.detach().requires_grad_()]
    extra = [w_hr, *(peep or (None,) * 3), *(ln or (None,) * 3)]
    extra = [None if t is None else t.detach().requires_grad_() for t in extra]
    rmask = torch.tensor([[2.0] * P, [0.0] + [2.0] * (P - 1)], dtype=DT)

    def f(xp, h0, c0, w_hh, *extra):
        return LSTMRecurrence.apply(
            xp,
            h0,
            c0,
            w_hh,
            *extra,
            torch.tensor([4, 2]),
            rmask,
            cell.forget_gate,
            cell.eps,
            module,
        )

    inputs = [xp, h0, c0, *params, *extra]
    assert torch.autograd.gradcheck(f, inputs)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("forget_gate", [True, False])
def test_compiled_kernel_gradcheck_input_layer_norm(bias, forget_gate):
    """gradcheck of LSTMRecurrence with the input projections' layer norm inside the C++
    step (the compiled engine's CPU path): raw W_ih x_t in, gamma_ih and beta_ih given, their
    gradients (and the raw projections') from the fused backward step; and the same values
    as the kernel fed the Python-normalised projections."""
    module = _module()
    torch.manual_seed(0)
    cell = LSTM(2, 3, layer_norm=True, bias=bias, forget_gate=forget_gate, dtype=DT).cells[0]
    with torch.no_grad():
        for p in cell.parameters():
            p.add_(0.2 * torch.randn_like(p))
    B, T = 2, 4
    x = torch.randn(B, T, 2, dtype=DT)
    xp = cell.project(x, loops=module).detach().requires_grad_()  # raw, time-major view
    assert xp.transpose(0, 1).is_contiguous()
    P, H = cell.state_sizes
    h0 = torch.randn(B, P, dtype=DT, requires_grad=True)
    c0 = torch.randn(B, H, dtype=DT, requires_grad=True)
    w_hh, _, _, ln = cell._weights()
    perm = cell.gate_perm
    g_ih = cell.layer_norm_ih.index_select(0, perm).detach().requires_grad_()
    b_ih = (cell.bias_ih + cell.bias_hh).index_select(0, perm) if bias else None
    b_ih = None if b_ih is None else b_ih.detach().requires_grad_()
    w_hh = w_hh.detach().requires_grad_()
    ln = [t.detach().requires_grad_() for t in ln]
    rmask = torch.tensor([[2.0] * P, [0.0] + [2.0] * (P - 1)], dtype=DT)
    lengths = torch.tensor([4, 2])

    def f(xp, h0, c0, w_hh, g_hh, g_c, b_c, g_ih, *b_ih):
        b = b_ih[0] if b_ih else None
        return LSTMRecurrence.apply(
            xp, h0, c0, w_hh, None, None, None, None, g_hh, g_c, b_c, lengths, rmask,
            cell.forget_gate, cell.eps, module, g_ih, b,
        )  # fmt: skip

    inputs = [xp, h0, c0, w_hh, *ln, g_ih] + ([b_ih] if bias else [])
    assert torch.autograd.gradcheck(f, inputs)
    normed = torch.nn.functional.layer_norm(xp, (xp.shape[-1],), g_ih, b_ih, cell.eps)
    ref = LSTMRecurrence.apply(
        normed, h0, c0, w_hh, None, None, None, None, *ln, lengths, rmask, cell.forget_gate,
        cell.eps, module,
    )  # fmt: skip
    for u, v in zip(f(*inputs), ref):
        torch.testing.assert_close(u, v, atol=1e-12, rtol=1e-10)


def test_compiled_truncated_bptt_equals_loop():
    """Chunk by chunk with the detached state carried over: the same as the loop engine."""
    _module()
    torch.manual_seed(0)
    layer = LSTM(2, 3, peepholes=True, dtype=DT)
    x = torch.randn(2, 9, 2, dtype=DT)
    out = {}
    for engine in ("loop", "compiled"):
        layer.engine, state, ys = engine, None, []
        layer.zero_grad()
        for chunk in x.split(3, dim=1):
            y, state = layer(chunk, state)
            y.sum().backward()
            state = tuple(s.detach() for s in state)
            ys.append(y.detach())
        out[engine] = [torch.cat(ys, 1), *state, *(p.grad.clone() for p in layer.parameters())]
    for u, v in zip(out["loop"], out["compiled"]):
        torch.testing.assert_close(u, v, atol=1e-10, rtol=1e-8)


def test_compiled_activation_memory_is_linear_in_T_B_H():
    """The same saved tensors as bptt: O(T B H)."""
    _module()
    B, F, H = 3, 2, 8
    layer = LSTM(F, H, engine="compiled")
    sizes = {}
    for T in (10, 20):
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel()
            return t

        x = torch.randn(B, T, F, requires_grad=True)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            layer(x)[0].sum()
        sizes[T] = total
    params = sum(p.numel() for p in layer.parameters())
    assert sizes[20] - sizes[10] <= 9 * 10 * B * H + 10 * B * F
    assert sizes[10] <= 9 * 11 * B * H + 10 * B * F + 2 * params


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fused_activations_equal_torch(dtype):
    """The fused step's own exp, sigmoid and tanh (csrc/lstm.cpp) against torch's, over
    [-100, 100] and at the extremes: one step with W_hh = 0 and c_0 = 0 leaves the gate
    activations in A (o, i, f = sigmoid, g = tanh) and phi = tanh(i * g)."""
    module = _module()
    grid = torch.cat([torch.linspace(-100, 100, 19996), torch.tensor([-1e4, 1e4, 0.0, 1e-30])])
    H = 40  # the vector loop and its remainder (16 or 8 lanes)
    grid = grid.to(dtype).view(-1, H)  # (B, H)
    B = grid.shape[0]
    A = grid.repeat(1, 4).view(1, B, 4 * H).clone()  # (T, B, G) = (1, B, 4H)
    Hs, Cs = torch.zeros(2, B, H, dtype=dtype), torch.zeros(2, B, H, dtype=dtype)
    Phi = torch.empty(1, B, H, dtype=dtype)
    w_hh = torch.zeros(4 * H, H, dtype=dtype)
    none = (None,) * 3
    module.lstm_forward(
        A, Hs, Cs, Phi, None, *none, w_hh, None, *none, *none, None, True, 1e-5, *none, None
    )
    eps = torch.finfo(dtype).eps
    o, i, f, g = A[0].view(B, 4, H).unbind(1)
    sig, tanh = torch.sigmoid(grid), torch.tanh(grid)
    for gate in (o, i, f):
        torch.testing.assert_close(gate, sig, rtol=4 * eps, atol=1e-30)
    torch.testing.assert_close(g, tanh, rtol=4 * eps, atol=1e-30)
    torch.testing.assert_close(Cs[1], sig * tanh, rtol=4 * eps, atol=1e-30)
    torch.testing.assert_close(Phi[0], torch.tanh(Cs[1]), rtol=4 * eps, atol=1e-30)
    torch.testing.assert_close(Hs[1], o * Phi[0], rtol=eps, atol=1e-30)  # denormals: 0


@pytest.mark.parametrize("opts", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_compiled_float32_is_as_accurate_as_bptt(opts):
    """float32, the benchmark's dtype (the tests above are float64): outputs and every
    gradient of the compiled engine are as close to the float64 loop engine as those of the
    Python bptt kernel in float32, with ragged lengths, both directions and (without layer
    norm, which float32 conditions badly there) weights large enough to saturate the gates."""
    _module()
    torch.manual_seed(0)
    layer = LSTM(3, 8, 2, bidirectional=True, **opts)
    with torch.no_grad():
        for p in layer.parameters():
            p.mul_(1.0 if opts["layer_norm"] else 8.0)
    x = 4 * torch.randn(5, 12, 3)
    state = tuple(torch.randn(4, 5, n) for n in layer.state_sizes)
    lengths = torch.tensor([12, 3, 7, 12, 1])
    weights = None

    def grads(dtype, engine):
        nonlocal weights
        layer.to(dtype).engine = engine
        xs = [t.to(dtype).requires_grad_() for t in (x, *state)]
        y, (h, c) = layer(xs[0], tuple(xs[1:]), lengths)
        if weights is None:
            weights = [torch.randn(t.shape) for t in (y, h, c)]
        loss = sum((t * w.to(dtype)).sum() for t, w in zip((y, h, c), weights))
        g = torch.autograd.grad(loss, [*xs, *layer.parameters()])
        return [t.detach().double() for t in (y, h, c, *g)]

    ref = grads(torch.float64, "loop")
    err = {}
    for engine in ("bptt", "compiled"):
        out = grads(torch.float32, engine)
        err[engine] = max(float((u - r).abs().max() / r.abs().max()) for u, r in zip(out, ref))
    assert err["compiled"] <= 4 * err["bptt"] + 1e-5, err


class _AtenLoops:
    """The extension with its fused steps refused: the forward sees a non-contiguous A and
    the fused backward is declined, so the ATen loops run (the path CUDA takes)."""

    def __init__(self, module):
        self.m = module

    def lstm_forward(self, A, *rest):
        A2 = torch.empty(A.shape[0], A.shape[2], A.shape[1], dtype=A.dtype).transpose(1, 2)
        A2.copy_(A)  # same values, not contiguous: not fusable
        self.m.lstm_forward(A2, *rest)
        A.copy_(A2)

    def lstm_backward_fused(self, *args):
        return None

    def lstm_backward(self, *args):
        return self.m.lstm_backward(*args)


@pytest.mark.parametrize("opts", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_fused_steps_equal_the_aten_loops(opts):
    """The fused CPU steps and the ATen loops (CUDA's path, otherwise unused on CPU) give
    the same outputs and gradients (float64, 1e-12), with lengths and a dropout mask."""
    _fused_vs_aten(opts, 5)


@pytest.mark.parametrize("H", [20, 37])
@pytest.mark.parametrize("fg", [True, False])
def test_fused_layer_norm_rows_with_remainders(H, fg):
    """Layer norm's row sums run in one vector's worth of partial sums (16 floats, 8
    doubles) and a remainder: rows of H = 20, 37 and G = 3H, 4H (not multiples of 16 or
    8) give the ATen loops' numbers."""
    _fused_vs_aten(dict(forget_gate=fg, layer_norm=True), H)


def _fused_vs_aten(opts, H):
    module = _module()
    torch.manual_seed(0)
    cell = LSTM(3, H, dtype=DT, **opts).cells[0]
    B, T = 3, 7
    xp = cell.project(torch.randn(B, T, 3, dtype=DT)).detach().requires_grad_()
    P, H = cell.state_sizes
    h0 = torch.randn(B, P, dtype=DT, requires_grad=True)
    c0 = torch.randn(B, H, dtype=DT, requires_grad=True)
    w_hh, w_hr, peep, ln = cell._weights()
    extra = [w_hh, w_hr, *(peep or (None,) * 3), *(ln or (None,) * 3)]
    extra = [None if t is None else t.detach().requires_grad_() for t in extra]
    rmask = (torch.rand(B, P, dtype=DT) > 0.3).to(DT) / 0.7
    inputs = [t for t in (xp, h0, c0, *extra) if t is not None]
    res = []
    for loops in (module, _AtenLoops(module)):
        ys, hT, cT = LSTMRecurrence.apply(
            xp, h0, c0, *extra, torch.tensor([7, 2, 5]), rmask, cell.forget_gate, cell.eps, loops
        )
        g = torch.Generator().manual_seed(1)
        loss = sum((t * torch.randn(t.shape, generator=g, dtype=DT)).sum() for t in (ys, hT, cT))
        res.append([ys, hT, cT, *torch.autograd.grad(loss, inputs)])
    for u, v in zip(*res):
        torch.testing.assert_close(u, v, atol=1e-12, rtol=1e-10)
