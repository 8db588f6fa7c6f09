"""The ``generic`` engine (a cell from its step alone) equals the ``loop`` engine: outputs
and every gradient to 1e-10 in float64 for every family and option, gradcheck of its
autograd function, lengths, both directions, recurrent dropout, truncated BPTT and
activation memory O(T B H).

The default tests run the engine's function with the eager vjp of the step (the same code
as the compiled engine without the compiler); the tests marked slow compile it."""

import pytest
import torch
from test_layers import (
    FAMILIES,
    IDS,
    as_tuple,
    assert_close_all,
    run_with_grads,
    saved_activation_numel,
)
from torch import nn

from rnnlab.engines import ENGINES
from rnnlab.engines.generic import (
    GenericEngine,
    _constants,
    _GenericRecurrence,
    _Kernels,
    compiler_unavailable,
)
from rnnlab.nn import Cell, Recurrent, detach_state, make_layer

DT = torch.float64


class ScaledSRNCell(Cell):  # the README's custom cell, h_t = tanh(W x_t + alpha U h_{t-1})
    def __init__(self, input_size, hidden_size, alpha=0.5, dtype=None):
        super().__init__(state_sizes=(hidden_size,), output_size=hidden_size)
        self.alpha = alpha
        self.weight_ih = nn.Parameter(0.3 * torch.randn(hidden_size, input_size, dtype=dtype))
        self.weight_hh = nn.Parameter(0.3 * torch.randn(hidden_size, hidden_size, dtype=dtype))

    def project(self, x):  # (B, T, F) -> (B, T, H)
        return x @ self.weight_ih.t()

    def step(self, x_t, state):
        h = torch.tanh(x_t + self.alpha * state[0] @ self.weight_hh.t())
        return h, (h,)


class ThreeStateCell(Cell):  # three state variables of different sizes, one unused by y
    def __init__(self, input_size, hidden_size, dtype=None):
        super().__init__(state_sizes=(hidden_size, 2 * hidden_size, 1), output_size=hidden_size)
        H = hidden_size
        self.w = nn.Parameter(0.3 * torch.randn(H, input_size + H, dtype=dtype))
        self.u = nn.Parameter(0.3 * torch.randn(2 * H, H, dtype=dtype))

    def step(self, x_t, state):
        h, m, z = state
        h = torch.tanh(torch.cat([x_t, h], -1) @ self.w.t() + m[:, : h.shape[1]] * z)
        m = torch.sigmoid(h @ self.u.t()) * m
        return h, (h, m, z + h.mean(-1, keepdim=True))


@pytest.fixture
def eager(monkeypatch):
    """The registered ``generic`` engine, running its function without the compiler."""
    monkeypatch.setitem(ENGINES, "generic", GenericEngine(compile=False))


def custom_layers():
    torch.manual_seed(0)
    yield Recurrent(
        lambda n: ScaledSRNCell(n, 4, dtype=DT),
        input_size=3,
        num_layers=2,
        bidirectional=True,
        recurrent_dropout=0.25,
    )
    yield Recurrent(lambda n: ThreeStateCell(n, 3, dtype=DT), input_size=3, num_layers=2)


def initial_state(layer, B):
    """A random initial state that requires grad, in the layer's layout."""
    D = layer.num_directions * layer.num_layers
    s = tuple(torch.randn(D, B, n, dtype=DT, requires_grad=True) for n in layer.state_sizes)
    return s if len(s) > 1 else s[0]


def _compare(layer, x, state=None, lengths=None):
    results = {}
    for engine in ("loop", "generic"):
        layer.engine = engine
        y, s, g = run_with_grads(layer, x, state, lengths)
        results[engine] = [y, *s, *g]
    assert_close_all(results["generic"], results["loop"])


@pytest.mark.parametrize(("cls", "opts"), FAMILIES, ids=IDS)
def test_generic_equals_loop_every_family(eager, cls, opts):
    """Every built-in cell, run from its step alone, with lengths, both directions, two
    layers and recurrent dropout: outputs, final state and all gradients equal loop."""
    torch.manual_seed(0)
    layer = cls(3, 4, 2, bidirectional=True, recurrent_dropout=0.3, dtype=DT, **opts)
    x = torch.randn(3, 5, 3, dtype=DT, requires_grad=True)
    _compare(layer.train(), x, initial_state(layer, 3), torch.tensor([5, 2, 4]))


@pytest.mark.parametrize("lengths", [None, torch.tensor([6, 1, 3])])
def test_generic_equals_loop_custom_cells(eager, lengths):
    for layer in custom_layers():
        x = torch.randn(3, 6, 3, dtype=DT, requires_grad=True)
        _compare(layer.train(), x, initial_state(layer, 3), lengths)


def test_gradcheck_generic_function():
    """gradcheck of the engine's autograd function itself (lengths and a dropout mask)."""
    torch.manual_seed(0)
    cell = ThreeStateCell(2, 3, dtype=DT)
    kernels = _Kernels(cell, compile=False)
    params = [p for p in cell.parameters()]
    g = torch.Generator().manual_seed(1)
    xp, h, m, z = (
        torch.randn(s, generator=g, dtype=DT).requires_grad_()
        for s in ((2, 4, 2), (2, 3), (2, 6), (2, 1))
    )
    lengths = torch.tensor([4, 2])
    masks = (torch.tensor([[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]], dtype=DT),)

    def f(xp, h, m, z, *ps):
        return _GenericRecurrence.apply(kernels, lengths, masks, 3, xp, h, m, z, *ps)

    assert torch.autograd.gradcheck(f, [xp, h, m, z, *params])


@pytest.mark.parametrize("cell", ["lstm1997", "gru", "srn", "mrnn"])
def test_generic_lengths_and_truncation(eager, cell):
    """A padded batch equals each sequence alone, and chunks with the detached state carried
    equal the whole sequence."""
    torch.manual_seed(0)
    layer = make_layer(cell, 3, 4, 2, bidirectional=True, engine="generic", dtype=DT)
    lengths = torch.tensor([5, 2, 4])
    x = torch.randn(3, 5, 3, dtype=DT)
    x_garbage = x.clone()
    for b, n in enumerate(lengths):
        x_garbage[b, n:] = 1e3  # padding content must not matter
    y, s = layer(x_garbage, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        assert (y[b, n:] == 0).all()
        yb, sb = layer(x[b : b + 1, :n])
        torch.testing.assert_close(y[b : b + 1, :n], yb)
        for u, v in zip(as_tuple(s), as_tuple(sb)):
            torch.testing.assert_close(u[:, b : b + 1], v)
    layer = make_layer(cell, 3, 4, 2, engine="generic", dtype=DT)  # one direction: causal
    whole, s_whole = layer(x)
    state, parts = None, []
    for chunk in x.split(2, dim=1):
        yc, state = layer(chunk, state)
        state = detach_state(state)
        parts.append(yc)
    torch.testing.assert_close(torch.cat(parts, 1), whole)
    for u, v in zip(as_tuple(state), as_tuple(s_whole)):
        torch.testing.assert_close(u, v)


def test_generic_activation_memory_is_linear_in_T_B_H(eager):
    """The engine keeps the states and the projected inputs: (state + G) numbers per step."""
    B, F, H = 3, 2, 8
    layer = make_layer("lstm", F, H, engine="generic")
    sizes = {}
    for T in (10, 20):
        x = torch.randn(B, T, F, requires_grad=True)
        sizes[T] = saved_activation_numel(layer, x)
        # h, c and the 4H projected gates per step, and the input
        assert sizes[T] <= 7 * (T + 1) * B * H + B * T * F
    assert sizes[20] - sizes[10] <= 7 * 10 * B * H + 10 * B * F


def test_generic_refuses_double_backward(eager):
    layer = Recurrent(lambda n: ScaledSRNCell(n, 4, dtype=DT), input_size=3, engine="generic")
    x = torch.randn(2, 3, 3, dtype=DT, requires_grad=True)
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad(layer(x)[0].sum(), x, create_graph=True)


def test_without_compiler_warns_and_runs_loop(monkeypatch):
    monkeypatch.setenv("RNNLAB_NO_COMPILE", "1")
    monkeypatch.setitem(ENGINES, "generic", GenericEngine())
    torch.manual_seed(0)
    layer = Recurrent(lambda n: ScaledSRNCell(n, 4, dtype=DT), input_size=3, engine="generic")
    x = torch.randn(2, 5, 3, dtype=DT)
    with pytest.warns(RuntimeWarning, match="RNNLAB_NO_COMPILE is set; running the loop"):
        y, _ = layer(x)
    layer.engine = "loop"
    torch.testing.assert_close(y, layer(x)[0], atol=0, rtol=0)


def test_auto_does_not_choose_generic():
    layer = Recurrent(lambda n: ScaledSRNCell(n, 4), input_size=3)
    assert layer.resolved_engine() == "loop"


def test_trace_key_sees_what_a_trace_bakes_in():
    """A compiled trace is reused only while the cell's Python constants, training flag
    and buffers are unchanged (what torch.compile's guards would check)."""
    cell = ScaledSRNCell(3, 4, dtype=DT)
    cell.register_buffer("scale", torch.ones(4, dtype=DT))
    key = _constants(cell)
    assert _constants(cell) == key
    cell.alpha = 0.7
    assert _constants(cell) != key
    cell.alpha = 0.5
    cell.eval()
    assert _constants(cell) != key
    cell.train()
    cell.scale.mul_(2.0)  # in place: the buffer's version moves
    assert _constants(cell) != key


@pytest.mark.slow
def test_compiled_generic_equals_loop():
    """The compiled step and vjp (make_fx traces compiled by inductor) give the loop
    engine's numbers for the README's cell and the LSTM cell run from its step, also after
    a constant of the cell changes and for a new batch size (tens of seconds: compiles)."""
    if (reason := compiler_unavailable()) is not None:
        pytest.skip(reason)
    readme = next(custom_layers())
    lengths = torch.tensor([6, 1, 3])
    for layer in [readme, make_layer("lstm", 3, 4, 1, engine="generic", dtype=DT)]:
        x = torch.randn(3, 6, 3, dtype=DT, requires_grad=True)
        _compare(layer.train(), x, initial_state(layer, 3), lengths)
    for cell in readme.cells:
        cell.alpha = 0.9  # same shapes: a new trace, not the old one with alpha 0.5 baked in
    _compare(readme, x, initial_state(readme, 3), lengths)
    x = torch.randn(2, 5, 3, dtype=DT, requires_grad=True)  # a new batch size and length
    _compare(readme, x, initial_state(readme, 2))
