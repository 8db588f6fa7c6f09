"""Regression tests for the recurrent-layer defects found by hostile testing (issue 10,
items 3, 4, 9, 13, 14): each was a silently wrong number, a crash on valid input or an
obscure error."""

import pytest
import torch

from rnnlab.nn import GRU, LSTM, SRN, FullyRecurrent, MultiplicativeRNN

DT = torch.float64
LAYERS = {
    "lstm": lambda: LSTM(3, 4, 2, bidirectional=True),
    "lstm-peephole": lambda: LSTM(3, 4, peepholes=True),
    "gru": lambda: GRU(3, 4, recurrent_dropout=0.2),
    "srn-sigmoid": lambda: SRN(3, 4, nonlinearity="sigmoid"),
    "mrnn": lambda: MultiplicativeRNN(3, 4),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("engine", ["loop", "bptt", "auto"])
def test_nan_in_the_padding_never_reaches_a_gradient(name, engine):
    torch.manual_seed(0)
    layer = LAYERS[name]().double()
    layer.engine = engine
    x = torch.randn(3, 6, 3, dtype=DT)
    lengths = torch.tensor([6, 2, 4])
    x_nan = x.clone()
    for b, n in enumerate(lengths.tolist()):
        x_nan[b, n:] = float("nan")
    grads = []
    for inp in (x, x_nan):
        layer.zero_grad()
        torch.manual_seed(1)  # the same recurrent-dropout mask
        y, _ = layer(inp, lengths=lengths)
        y.pow(2).sum().backward()
        grads.append([p.grad.clone() for p in layer.parameters()])
    for g_clean, g_nan in zip(*grads):
        assert torch.isfinite(g_nan).all()
        torch.testing.assert_close(g_nan, g_clean, rtol=0, atol=0)


def test_double_backward_is_exact_on_the_loop_engine_and_refused_by_bptt():
    torch.manual_seed(2)
    layer = LSTM(2, 3, peepholes=True).double()
    x = torch.randn(2, 5, 2, dtype=DT, requires_grad=True)
    layer.engine = "loop"

    def f(inp):  # linear in the outputs: the case that was silently wrong
        (g,) = torch.autograd.grad(layer(inp)[0].sum(), inp, create_graph=True)
        return (g * g).sum()

    assert torch.autograd.gradcheck(f, (x,))
    assert torch.autograd.gradgradcheck(lambda inp: layer(inp)[0].sum(), (x,))
    layer.engine = "bptt"
    with pytest.raises(RuntimeError, match="no second derivative.*engine='loop'"):
        f(x)


@pytest.mark.parametrize(
    "make",
    [
        lambda: LSTM(3, 4, peepholes=True, engine="bptt"),
        lambda: MultiplicativeRNN(3, 4, engine="bptt"),
        lambda: FullyRecurrent(3, 4),
        lambda: GRU(3, 4),
    ],
)
def test_a_batch_of_zero_sequences_gives_empty_outputs(make):
    layer = make()
    y, state = layer(torch.randn(0, 5, 3))
    assert y.shape[:2] == (0, 5)
    y.sum().backward()  # and a (zero) gradient


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: FullyRecurrent(2, 3)(torch.randn(4)), ValueError, r"input: expected a 3-D"),
        (lambda: FullyRecurrent(2, 3)(torch.randn(1, 0, 2)), ValueError, r"T = 0"),
        (lambda: FullyRecurrent(2, 3)(torch.randn(4, 2), lengths=torch.tensor([3])),
         ValueError, r"lengths: only for batched"),
        (lambda: FullyRecurrent(2, 3)(torch.randn(1, 4, 2), torch.zeros(1, 5, dtype=DT)),
         TypeError, r"state: expected dtype torch.float32"),
        (lambda: FullyRecurrent(2, 3)(torch.randn(4, 2), torch.zeros(4)), ValueError,
         r"state: expected shape \(5,\) .*received \(4,\)"),
        (lambda: LSTM(2, 3, dtype=torch.int64), TypeError, r"dtype: expected a floating-point"),
        (lambda: LSTM(2, 10**8), ValueError, r"hidden_size: a parameter of shape"),
        (lambda: MultiplicativeRNN(4, 0), ValueError, r"hidden_size: expected an integer >= 1"),
        (lambda: LSTM(2, 3)(torch.randn(2, 4, 2), lengths="53"), TypeError, r"lengths: expected"),
    ],
)  # fmt: skip
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_fully_recurrent_takes_lengths_as_a_list():
    net = FullyRecurrent(2, 3).double()
    x = torch.randn(2, 4, 2, dtype=DT)
    y1, z1 = net(x, lengths=[4, 2])
    y2, z2 = net(x, lengths=torch.tensor([4, 2]))
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(z1, z2)


@pytest.mark.parametrize("engine", ["auto", "bptt", "loop"])
@pytest.mark.parametrize("opts", [{}, {"peepholes": True}, {"layer_norm": True}])
def test_cpu_autocast_runs_every_lstm_configuration(engine, opts):
    """Under CPU bf16 autocast the hand-written kernels run in the weights' dtype (they are
    not autocast-aware: they failed on a bf16 input projection), so their result equals the
    float32 run exactly; torch's fused LSTM is used only where the processor has a bf16
    kernel (torch.nn.LSTM itself fails under autocast on processors without one)."""
    from rnnlab.engines.fused import _cpu_autocast_lstm_unsupported

    torch.manual_seed(0)
    layer = LSTM(3, 5, engine=engine, **opts)
    x = torch.randn(2, 4, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = layer(x)
        resolved = layer.resolved_engine()
    layer.engine = resolved  # the float32 run on the same engine
    ref, _ = layer(x)
    if resolved == "fused":
        assert _cpu_autocast_lstm_unsupported(layer) is None
        torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)
    elif resolved == "loop":  # autograd through torch ops: autocast applies to its matmuls
        torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)
    else:
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, ref, atol=0, rtol=0)
    out.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in layer.parameters())
