"""Property-based tests of the recurrent layers (hypothesis): for any configuration and
input, every engine equals the loop engine (outputs, final state, every gradient, in
float64), and any bad argument gives an InputError that names it. A few dozen examples
in the default run; many more under ``make test-slow``."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnlab.engines import ENGINES
from rnnlab.errors import InputError
from rnnlab.nn import make_layer

DT = torch.float64
COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
FAST = settings(max_examples=30, derandomize=True, **COMMON)
SLOW = settings(max_examples=400, **COMMON)

configs = st.fixed_dictionaries(
    {
        "cell": st.sampled_from(
            ["lstm", "lstm1997", "lstm-peephole", "gru", "srn", "srn-relu", "srn-sigmoid", "mrnn"]
        ),
        "num_layers": st.integers(1, 2),
        "bidirectional": st.booleans(),
        "residual": st.booleans(),
        "recurrent_dropout": st.sampled_from([0.0, 0.3]),
        "B": st.integers(1, 4),
        "T": st.integers(1, 6),
        "F": st.integers(1, 3),
        "H": st.integers(1, 4),
        "ragged": st.booleans(),
        "seed": st.integers(0, 2**16),
    }
)


def _engines_agree(c):
    torch.manual_seed(c["seed"])
    F, H = c["F"], c["H"]
    layer = make_layer(
        c["cell"], F, H, c["num_layers"], bidirectional=c["bidirectional"],
        residual=c["residual"], recurrent_dropout=c["recurrent_dropout"], dtype=DT,
    )  # fmt: skip
    g = torch.Generator().manual_seed(c["seed"])
    x = torch.randn(c["B"], c["T"], F, generator=g, dtype=DT, requires_grad=True)
    lengths = torch.randint(1, c["T"] + 1, (c["B"],), generator=g) if c["ragged"] else None
    results = {}
    engines = ["loop", "bptt", "auto"]
    if ENGINES["fused"].why_not(layer) is None:
        engines.append("fused")
    for engine in engines:
        layer.engine = engine
        layer.zero_grad()
        x.grad = None
        torch.manual_seed(c["seed"] + 1)  # the same recurrent-dropout masks
        y, state = layer(x, lengths=lengths)
        state = state if isinstance(state, tuple) else (state,)
        w = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=DT)
        ((y * w).sum() + sum(s.sum() for s in state)).backward()
        results[engine] = [y, *state, x.grad, *(p.grad for p in layer.parameters())]
    for engine in engines[1:]:
        for a, b in zip(results["loop"], results[engine]):
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("profile", [FAST, pytest.param(SLOW, marks=pytest.mark.slow)])
def test_every_engine_equals_the_loop_engine(profile):
    profile(given(c=configs)(_engines_agree))()


bad_calls = st.sampled_from(
    [
        ("input_size", lambda: make_layer("lstm", 0, 3)),
        ("hidden_size", lambda: make_layer("gru", 2, -1)),
        ("num_layers", lambda: make_layer("srn", 2, 3, 0)),
        ("dropout", lambda: make_layer("lstm", 2, 3, 2, dropout=1.5)),
        ("recurrent_dropout", lambda: make_layer("lstm", 2, 3, recurrent_dropout=-0.1)),
        ("engine", lambda: make_layer("lstm", 2, 3, engine="fast")),
        ("cell", lambda: make_layer("transformer", 2, 3)),
        ("proj_size", lambda: make_layer("lstm", 2, 3, proj_size=3)),
        ("nonlinearity", lambda: make_layer("srn", 2, 3, nonlinearity="gelu")),
        ("factor_size", lambda: make_layer("mrnn", 2, 3, factor_size=0)),
    ]
)
bad_inputs = st.sampled_from(
    [
        ("input", lambda m: m(torch.randn(2, 3, 5))),
        ("input", lambda m: m(torch.randn(2, 3, 4, 1))),
        ("input", lambda m: m(torch.randn(2, 0, 4))),
        ("input", lambda m: m(torch.ones(2, 3, 4, dtype=torch.int64))),
        ("input", lambda m: m([[1.0] * 4])),
        ("lengths", lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([4, 1]))),
        ("lengths", lambda m: m(torch.randn(2, 3, 4), lengths=torch.tensor([0, 1]))),
        ("lengths", lambda m: m(torch.randn(2, 3, 4), lengths=[1, 2, 3])),
        ("lengths", lambda m: m(torch.randn(3, 4), lengths=torch.tensor([3]))),
        ("state", lambda m: m(torch.randn(2, 3, 4), torch.zeros(1, 2, 6))),
        ("state", lambda m: m(torch.randn(2, 3, 4), (torch.zeros(1, 2, 6),) * 3)),
        ("state h_0", lambda m: m(torch.randn(2, 3, 4), (torch.zeros(1, 3, 6),) * 2)),
        ("x_t", lambda m: m.step(torch.randn(2, 5))),
    ]
)


def _names_the_argument(call, inp):
    name, fn = call
    with pytest.raises(InputError, match=f"^{name}"):
        fn()
    name, fn = inp
    layer = make_layer("lstm", 4, 6)
    with pytest.raises(InputError, match=f"^{name}"):
        fn(layer)


def test_bad_arguments_name_themselves():
    FAST(given(call=bad_calls, inp=bad_inputs)(_names_the_argument))()
