"""Oracles for the recurrent layers: every engine equals the loop reference, the plain
layers equal torch.nn, a hand-written reference of the cell equations, lengths semantics,
truncated BPTT, and gradcheck of the hand-written BPTT kernels."""

import itertools

import pytest
import torch

from rnnlab.nn import GRU, LSTM, SRN, MultiplicativeRNN, detach_state, make_layer
from rnnlab.nn.gru import GRURecurrence
from rnnlab.nn.lstm import LSTMRecurrence
from rnnlab.nn.mrnn import MRNNRecurrence
from rnnlab.nn.srn import SRNRecurrence

DT = torch.float64
LSTM_OPTIONS = [
    dict(forget_gate=fg, peepholes=pe, layer_norm=ln, proj_size=pr)
    for fg, pe, ln, pr in itertools.product([True, False], [False, True], [False, True], [0, 2])
]
FAMILIES = [(LSTM, o) for o in LSTM_OPTIONS] + [
    (GRU, {}),
    (SRN, {}),
    (SRN, {"nonlinearity": "sigmoid"}),
    (SRN, {"nonlinearity": "relu"}),
    (MultiplicativeRNN, {"factor_size": 5}),
]
IDS = [f"{c.__name__}-" + "-".join(f"{k}={v}" for k, v in o.items()) for c, o in FAMILIES]


def as_tuple(s):
    return s if isinstance(s, tuple) else (s,)


def run_with_grads(layer, x, state, lengths, seed=0):
    """Outputs, final state and gradients w.r.t. input, state and parameters of a random
    linear functional of outputs and final state (same functional for every engine)."""
    torch.manual_seed(seed)  # the same recurrent-dropout masks for every engine
    y, s = layer(x, state, lengths)
    s = as_tuple(s)
    g = torch.Generator().manual_seed(seed + 1)
    loss = (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum()
    loss = loss + sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in s)
    inputs = [x, *as_tuple(state), *layer.parameters()]
    return y, s, torch.autograd.grad(loss, inputs, allow_unused=True)


def assert_close_all(a, b, atol=1e-10):
    for u, v in zip(a, b):
        if u is None or v is None:
            assert u is None and v is None
        else:
            torch.testing.assert_close(u, v, atol=atol, rtol=1e-8)


@pytest.mark.parametrize(("cls", "opts"), FAMILIES, ids=IDS)
def test_bptt_equals_loop(cls, opts):
    """Outputs, final states and gradients (input, initial state, every parameter) of the
    hand-written BPTT engine equal autograd through the loop over the cell's step: two
    layers, bidirectional, residual, recurrent dropout and ragged lengths at once."""
    torch.manual_seed(0)
    layer = cls(3, 4, 2, bidirectional=True, residual=True, recurrent_dropout=0.25, dtype=DT,
                **opts)  # fmt: skip
    x = torch.randn(3, 6, 3, dtype=DT, requires_grad=True)
    state = tuple(torch.randn(4, 3, n, dtype=DT, requires_grad=True) for n in layer.state_sizes)
    state = state if len(state) > 1 else state[0]
    lengths = torch.tensor([6, 2, 5])
    results = {}
    for engine in ("loop", "bptt"):
        layer.engine = engine
        y, s, g = run_with_grads(layer, x, state, lengths)
        results[engine] = [y, *s, *g]
    assert_close_all(results["loop"], results["bptt"])


@pytest.mark.parametrize(
    ("cls", "opts"),
    [(LSTM, {}), (LSTM, {"proj_size": 2}), (GRU, {}), (SRN, {}), (SRN, {"nonlinearity": "relu"})],
)
@pytest.mark.parametrize("engine", ["loop", "bptt", "fused"])
def test_equals_torch_nn_both_ways(cls, opts, engine):
    """state_dicts move between rnnlab and torch.nn in both directions and give the same
    outputs, final states and gradients, with and without lengths."""
    torch.manual_seed(0)
    tcls = {LSTM: torch.nn.LSTM, GRU: torch.nn.GRU, SRN: torch.nn.RNN}[cls]
    ours = cls(3, 5, 2, bidirectional=True, engine=engine, dtype=DT, **opts)
    theirs = tcls(3, 5, 2, bidirectional=True, batch_first=True, dtype=DT, **opts)
    theirs.load_state_dict(ours.state_dict())  # rnnlab -> torch
    ours.load_state_dict(theirs.state_dict())  # torch -> rnnlab
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    x = torch.randn(4, 7, 3, dtype=DT, requires_grad=True)
    lengths = torch.tensor([7, 3, 1, 5])
    for lens in (None, lengths):
        y1, s1 = ours(x, lengths=lens)
        if lens is None:
            y2, s2 = theirs(x)
        else:
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                x, lens, batch_first=True, enforce_sorted=False
            )
            out, s2 = theirs(packed)
            y2, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=7)
        assert_close_all([y1, *as_tuple(s1)], [y2, *as_tuple(s2)])
        g1 = torch.autograd.grad((y1**3).sum() + as_tuple(s1)[0].sum(), [x, *ours.parameters()])
        g2 = torch.autograd.grad((y2**3).sum() + as_tuple(s2)[0].sum(), [x, *theirs.parameters()])
        assert_close_all(g1, g2)


def reference_lstm(x, w_ih, w_hh, b, fg, peep, ln, w_hr=None, eps=1e-5):
    """The cell equations written out gate by gate in stored (i, f, g, o) / (i, g, o)
    order, independent of the kernels' internal gate order."""
    H = w_hh.shape[0] // (4 if fg else 3)
    names = "ifgo" if fg else "igo"
    B, T, _ = x.shape
    h = x.new_zeros(B, w_hh.shape[1])
    c = x.new_zeros(B, H)

    def lnorm(u, gain, bias=None):
        u = (u - u.mean(-1, keepdim=True)) / torch.sqrt(
            u.var(-1, unbiased=False, keepdim=True) + eps
        )
        return u * gain + (0 if bias is None else bias)

    outs = []
    for t in range(T):
        ax, ah = x[:, t] @ w_ih.t(), h @ w_hh.t()
        if ln:
            ax, ah = lnorm(ax, ln["ih"]), lnorm(ah, ln["hh"])
        a = ax + ah + b
        gate = {n: a[:, k * H : (k + 1) * H] for k, n in enumerate(names)}
        p = peep or {"i": 0, "f": 0, "o": 0}
        i = torch.sigmoid(gate["i"] + p["i"] * c)
        if fg:
            f = torch.sigmoid(gate["f"] + p["f"] * c)
            c = f * c + i * torch.tanh(gate["g"])
        else:
            c = c + i * (4 * torch.sigmoid(gate["g"]) - 2)  # H&S 1997: g in [-2, 2]
        o = torch.sigmoid(gate["o"] + p["o"] * c)
        cc = lnorm(c, ln["cw"], ln["cb"]) if ln else c
        m = o * (torch.tanh(cc) if fg else 2 * torch.sigmoid(cc) - 1)  # 1997: h in [-1, 1]
        h = m if w_hr is None else m @ w_hr.t()
        outs.append(h)
    return torch.stack(outs, 1)


@pytest.mark.parametrize("opts", LSTM_OPTIONS, ids=[str(o) for o in LSTM_OPTIONS])
def test_lstm_matches_written_out_equations(opts):
    torch.manual_seed(0)
    layer = LSTM(3, 4, dtype=DT, **opts)
    with torch.no_grad():
        for p in layer.parameters():
            p.uniform_(-0.8, 0.8)
    x = torch.randn(2, 5, 3, dtype=DT)
    P = lambda n: getattr(layer, f"{n}_l0", None)  # noqa: E731
    peep = None
    if opts["peepholes"]:
        peep = {"i": P("weight_ci"), "f": P("weight_cf"), "o": P("weight_co")}
    ln = None
    if opts["layer_norm"]:
        ln = {"ih": P("layer_norm_ih"), "hh": P("layer_norm_hh"),
              "cw": P("layer_norm_c_weight"), "cb": P("layer_norm_c_bias")}  # fmt: skip
    want = reference_lstm(x, P("weight_ih"), P("weight_hh"), P("bias_ih") + P("bias_hh"),
                          opts["forget_gate"], peep, ln, P("weight_hr"))  # fmt: skip
    for engine in ("loop", "bptt"):
        layer.engine = engine
        torch.testing.assert_close(layer(x)[0], want)


def test_1997_cell_squashes():
    """The 1997 cell: |h| <= 1 (h in [-1, 1]) while the cell state accumulates freely."""
    layer = LSTM(1, 2, forget_gate=False, dtype=DT)
    with torch.no_grad():
        for p in layer.parameters():
            p.fill_(3.0)
    y, (h, c) = layer(torch.ones(1, 50, 1, dtype=DT))
    assert y.abs().max() <= 1
    assert c.abs().max() > 50  # no forget gate: the carousel integrates i * g ~ 2 per step


def _gradcheck_inputs(*shapes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [0.5 * torch.randn(s, generator=g, dtype=DT).requires_grad_() for s in shapes]


@pytest.mark.parametrize("opts", LSTM_OPTIONS, ids=[str(o) for o in LSTM_OPTIONS])
def test_gradcheck_lstm_kernel(opts):
    B, T, H = 2, 4, 3
    P = opts["proj_size"] or H
    G = (4 if opts["forget_gate"] else 3) * H
    xp, h0, c0, w_hh = _gradcheck_inputs((B, T, G), (B, P), (B, H), (G, P))
    w_hr = _gradcheck_inputs((P, H), seed=1)[0] if opts["proj_size"] else None
    peep = _gradcheck_inputs((H,), (H,), (H,), seed=2) if opts["peepholes"] else [None] * 3
    if not opts["forget_gate"]:
        peep[1] = None
    ln = [None] * 3
    if opts["layer_norm"]:
        ln = [1 + t for t in _gradcheck_inputs((G,), (H,), (H,), seed=3)]
        ln = [t.detach().requires_grad_() for t in ln]
    lengths = torch.tensor([4, 2])
    rmask = torch.tensor([[2.0, 0.0, 2.0][:P], [0.0, 2.0, 2.0][:P]], dtype=DT)

    def f(*args):
        return LSTMRecurrence.apply(*args, lengths, rmask, opts["forget_gate"], 1e-5)

    args = [xp, h0, c0, w_hh, w_hr, *peep, *ln]
    # fast mode: checks random projections of the Jacobian (the full check takes minutes)
    assert torch.autograd.gradcheck(f, args, fast_mode=opts["layer_norm"])


@pytest.mark.parametrize("lengths", [None, torch.tensor([4, 1])])
def test_gradcheck_gru_and_srn_kernels(lengths):
    B, T, H = 2, 4, 3
    rmask = torch.tensor([[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]], dtype=DT)
    xp, h0, w_hh, b_hh = _gradcheck_inputs((B, T, 3 * H), (B, H), (3 * H, H), (3 * H,))
    for rm in (None, rmask):
        assert torch.autograd.gradcheck(
            lambda *a, rm=rm: GRURecurrence.apply(*a, lengths, rm), [xp, h0, w_hh, b_hh]
        )
    xp, h0, w_hh = _gradcheck_inputs((B, T, H), (B, H), (H, H))
    for act in ("tanh", "sigmoid", "relu"):
        assert torch.autograd.gradcheck(
            lambda *a, act=act: SRNRecurrence.apply(*a, lengths, rmask, act), [xp, h0, w_hh]
        )


@pytest.mark.parametrize("cell", ["lstm", "lstm1997", "gru", "srn", "mrnn"])
@pytest.mark.parametrize("engine", ["loop", "bptt", "auto"])
def test_lengths_semantics(cell, engine):
    """Outputs past each length are zero, the final state is the state at the last valid
    step, and a padded batch equals each sequence run alone (both directions)."""
    torch.manual_seed(0)
    layer = make_layer(cell, 3, 4, 2, bidirectional=True, engine=engine, dtype=DT)
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


@pytest.mark.parametrize("engine", ["loop", "bptt", "fused"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "srn"])
def test_truncated_bptt_chunks_equal_whole(cell, engine):
    """Carrying the (detached) state across chunks gives the whole sequence's forward."""
    torch.manual_seed(0)
    layer = make_layer(cell, 2, 3, 2, engine=engine, dtype=DT)
    x = torch.randn(2, 12, 2, dtype=DT)
    whole, s_whole = layer(x)
    state, parts = None, []
    for chunk in x.split(5, dim=1):
        y, state = layer(chunk, state)
        state = detach_state(state)
        parts.append(y)
    torch.testing.assert_close(torch.cat(parts, 1), whole)
    for u, v in zip(as_tuple(state), as_tuple(s_whole)):
        torch.testing.assert_close(u, v)


@pytest.mark.parametrize("engine", ["loop", "bptt", "fused"])
def test_unbatched_input_keeps_rank(engine):
    layer = LSTM(3, 4, 2, engine=engine, dtype=DT)
    x = torch.randn(6, 3, dtype=DT)
    y, (h, c) = layer(x)
    yb, (hb, cb) = layer(x.unsqueeze(0))
    assert y.shape == (6, 4) and h.shape == (2, 4) and c.shape == (2, 4)
    torch.testing.assert_close(y, yb[0])
    torch.testing.assert_close(h, hb[:, 0])
    y2, _ = layer(x, (h, c))  # an unbatched state is accepted too
    assert y2.shape == (6, 4)


@pytest.mark.parametrize("engine", ["bptt", "fused"])
def test_learned_initial_state(engine):
    """The learned initial state is the state used when none is given, and it trains."""
    torch.manual_seed(0)
    layer = GRU(2, 3, 2, learn_initial_state=True, engine=engine, dtype=DT)
    with torch.no_grad():
        layer.initial_state[0].normal_()
    x = torch.randn(4, 5, 2, dtype=DT)
    y, _ = layer(x)
    y_explicit, _ = layer(x, layer.initial_state[0].expand(2, 4, 3).clone())
    torch.testing.assert_close(y, y_explicit)
    y.sum().backward()
    assert layer.initial_state[0].grad.abs().sum() > 0


def test_residual_stack_is_sum_of_layers():
    torch.manual_seed(0)
    stack = SRN(3, 3, 3, residual=True, dtype=DT)
    singles = [SRN(3, 3, dtype=DT) for _ in range(3)]
    for k, s in enumerate(singles):
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(s, f"{n}_l0").data.copy_(getattr(stack, f"{n}_l{k}"))
    x = torch.randn(2, 4, 3, dtype=DT)
    want = singles[0](x)[0]
    for s in singles[1:]:
        want = s(want)[0] + want
    for engine in ("loop", "bptt", "fused"):
        stack.engine = engine
        torch.testing.assert_close(stack(x)[0], want)


def test_dropout_between_layers_only_in_training():
    torch.manual_seed(0)
    layer = LSTM(3, 8, 2, dropout=0.5, dtype=DT)
    x = torch.randn(2, 4, 3, dtype=DT)
    layer.eval()
    y1, y2 = layer(x)[0], layer(x)[0]
    torch.testing.assert_close(y1, y2)
    layer.train()
    assert not torch.allclose(layer(x)[0], y1)


def test_forget_bias_initialisation():
    layer = LSTM(2, 3, forget_bias=1.0)
    torch.testing.assert_close(layer.bias_ih_l0[3:6], torch.ones(3))
    torch.testing.assert_close(layer.bias_hh_l0[3:6], torch.zeros(3))


def test_auto_engine_choice():
    assert LSTM(2, 3).resolved_engine() == "fused"
    from rnnlab.engines import compiled

    lstm_kernel = "compiled" if compiled.load() is not None else "bptt"
    assert LSTM(2, 3, peepholes=True).resolved_engine() == lstm_kernel
    assert LSTM(2, 3, layer_norm=True, forget_gate=False).resolved_engine() == lstm_kernel
    assert SRN(2, 3, nonlinearity="sigmoid").resolved_engine() == "bptt"
    layer = GRU(2, 3, recurrent_dropout=0.1)
    assert layer.resolved_engine() == "bptt"
    assert layer.eval().resolved_engine() == "fused"
    with pytest.raises(ValueError, match="no fused kernel.*layer_norm"):
        LSTM(2, 3, layer_norm=True, engine="fused")(torch.randn(1, 2, 2))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda m: m(torch.randn(2, 3, 4, 5)), ValueError, r"input: expected a 3-D tensor"),
        (lambda m: m(torch.randn(2, 3, 5)), ValueError, r"expected 4 features.*\(2, 3, 5\)"),
        (lambda m: m(torch.randn(2, 3, 4).double()), TypeError,
         r"input: expected dtype torch.float32.*received torch.float64"),
        (lambda m: m([[1.0]]), TypeError, r"input: expected a torch.Tensor"),
        (lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([3, 4])), ValueError,
         r"lengths: expected values in \[1, 3\].*max 4"),
        (lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([3])), ValueError,
         r"lengths: expected shape \(2,\)"),
        (lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([3.0, 1.0])), TypeError,
         r"lengths: expected an integer tensor"),
        (lambda m: m(torch.randn(2, 3, 4), torch.zeros(1, 2, 6)), TypeError,
         r"state: expected a tuple \(h_0, c_0\)"),
        (lambda m: m(torch.randn(2, 3, 4), (torch.zeros(1, 2, 6), torch.zeros(2, 2, 6))),
         ValueError, r"state c_0: expected shape \(1, 2, 6\).*\(2, 2, 6\)"),
        (lambda m: m(torch.randn(2, 0, 4)), ValueError, r"at least one time step"),
    ],
)  # fmt: skip
def test_bad_input_errors_name_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call(LSTM(4, 6))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(hidden_size=0), r"hidden_size: expected an integer >= 1, received 0"),
        (dict(dropout=1.5), r"dropout: expected a number in \[0, 1\)"),
        (dict(engine="magic"), r"engine: expected one of"),
        (dict(proj_size=6), r"proj_size: expected an integer in \[0, hidden_size = 6\)"),
    ],
)
def test_bad_hyperparameters(kwargs, match):
    args = dict(input_size=4, hidden_size=6) | kwargs
    with pytest.raises(ValueError, match=match):
        LSTM(**args)
    with pytest.raises(ValueError, match="cell: expected one of"):
        make_layer("transformer", 2, 3)


def saved_activation_numel(layer, x):
    """Elements autograd keeps for the backward pass of one forward (parameters excluded)."""
    params = {p.data_ptr() for p in layer.parameters()}
    total = 0

    def pack(t):
        nonlocal total
        if t.data_ptr() not in params:
            total += t.numel()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(x)[0].sum()
    return total


@pytest.mark.parametrize("cell", ["lstm", "gru", "srn"])
def test_bptt_activation_memory_is_linear_in_T_B_H(cell):
    """The BPTT kernels keep O(T B H) activations: a few numbers per unit and step."""
    B, F, H = 3, 2, 8
    layer = make_layer(cell, F, H, engine="bptt")
    per_unit_step = {"lstm": 9, "gru": 7, "srn": 2}[cell]  # buffers kept, in units of T*B*H
    sizes = {}
    for T in (10, 20):
        x = torch.randn(B, T, F, requires_grad=True)
        sizes[T] = saved_activation_numel(layer, x)
        assert sizes[T] <= per_unit_step * (T + 1) * B * H + B * T * F
    assert sizes[20] - sizes[10] <= per_unit_step * 10 * B * H + 10 * B * F


@pytest.mark.parametrize("cell", ["lstm", "gru", "srn"])
def test_step_by_step_equals_sequence(cell):
    torch.manual_seed(0)
    layer = make_layer(cell, 2, 3, 2, learn_initial_state=True, dtype=DT)
    x = torch.randn(4, 6, 2, dtype=DT)
    y, s = layer(x)
    state = layer.init_state(4)
    for t in range(6):
        y_t, state = layer.step(x[:, t], state)
        torch.testing.assert_close(y_t, y[:, t])
    for u, v in zip(as_tuple(state), as_tuple(s)):
        torch.testing.assert_close(u, v)


def test_mrnn_matches_written_out_equations_and_gradcheck():
    """Sutskever et al. 2011, eq. 3: h_t = tanh(W_hf diag(W_fx x_t) W_fh h_{t-1} + W_hx x_t
    + b_h), each input choosing its own transition matrix."""
    torch.manual_seed(0)
    layer = MultiplicativeRNN(3, 4, factor_size=5, dtype=DT)
    x = torch.randn(2, 6, 3, dtype=DT)
    P = lambda n: getattr(layer, f"{n}_l0")  # noqa: E731
    h, want = torch.zeros(2, 4, dtype=DT), []
    for t in range(6):
        W_x = P("weight_hf") @ torch.diag_embed(x[:, t] @ P("weight_fx").t()) @ P("weight_fh")
        h = torch.tanh((W_x @ h.unsqueeze(-1)).squeeze(-1) + x[:, t] @ P("weight_hx").t()
                       + P("bias_h"))  # fmt: skip
        want.append(h)
    for engine in ("loop", "bptt"):
        layer.engine = engine
        torch.testing.assert_close(layer(x)[0], torch.stack(want, 1))
    xp, h0, w_fh, w_hf = _gradcheck_inputs((2, 4, 3 + 5), (2, 3), (5, 3), (3, 5))
    rmask = torch.tensor([[2.0, 0.0, 2.0], [0.0, 2.0, 2.0]], dtype=DT)
    for lengths, rm in ((None, None), (torch.tensor([4, 2]), rmask)):
        assert torch.autograd.gradcheck(
            lambda *a, ln=lengths, rm=rm: MRNNRecurrence.apply(*a, ln, rm), [xp, h0, w_fh, w_hf]
        )
