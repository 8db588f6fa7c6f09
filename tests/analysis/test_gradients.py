"""Gradient diagnostics against closed forms and a second implementation."""

import math

import pytest
import torch

from rnnlab.analysis import attractors as A
from rnnlab.analysis import scalar
from rnnlab.analysis.gradient_flow import hidden_jacobian_norms, loss_gradient_by_step

D = torch.float64


@pytest.mark.parametrize("w, published", [(1.1, 117.4), (0.9, 0.00515)])
def test_scalar_example(w, published):
    exact = scalar.analytic_gain(w, 50)
    assert exact == pytest.approx(w**50, rel=1e-15)
    assert exact == pytest.approx(published, rel=1e-3)  # the lecture's rounded numbers
    assert scalar.measured_gain(w, 50) == pytest.approx(exact, rel=1e-12)
    assert scalar.measured_gain(w, 50, layer="srn") == pytest.approx(exact, rel=1e-12)


def test_jacobian_norms_linear_unit():
    """One ReLU unit on a positive trajectory is linear: ||dh_T/dh_t|| = w^(T-1-t)."""
    from rnnlab.nn import SRN

    net = SRN(1, 1, nonlinearity="relu", bias=False, dtype=D)
    with torch.no_grad():
        net.weight_hh_l0.fill_(0.9)
        net.weight_ih_l0.fill_(0.5)
    x = torch.rand(3, 12, 1, dtype=D, generator=torch.Generator().manual_seed(0))
    n = hidden_jacobian_norms(net, x)
    want = 0.9 ** torch.arange(11, -1, -1, dtype=D)
    assert torch.allclose(n, want.expand(3, -1), rtol=1e-12)


def _tanh_jacobian_product(layer, x):
    """dh_T/dh_t by multiplying the step Jacobians diag(1 - h^2) W_hh by hand."""
    W_ih, W_hh = layer.weight_ih_l0, layer.weight_hh_l0
    bias = layer.bias_ih_l0 + layer.bias_hh_l0
    B, T, _ = x.shape
    H = W_hh.shape[0]
    h = torch.zeros(B, H, dtype=D)
    hs = []
    for t in range(T):
        h = torch.tanh(x[:, t] @ W_ih.T + h @ W_hh.T + bias)
        hs.append(h)
    J = torch.eye(H, dtype=D).expand(B, H, H)
    norms = [J.flatten(1).norm(dim=1)]
    for t in range(T - 1, 0, -1):  # dh_T/dh_{t-1} = dh_T/dh_t diag(1 - h_t^2) W_hh
        J = J @ (torch.diag_embed(1 - hs[t] ** 2) @ W_hh)
        norms.append(J.flatten(1).norm(dim=1))
    return torch.stack(norms[::-1], 1)  # (B, T)


@pytest.mark.parametrize("make", ["rnnlab", "torch"])
def test_jacobian_norms_tanh_srn(make):
    torch.manual_seed(0)
    if make == "rnnlab":
        from rnnlab.nn import SRN

        layer = SRN(3, 5, dtype=D)
    else:
        layer = torch.nn.RNN(3, 5, batch_first=True, dtype=D)
    with torch.no_grad():
        layer.weight_hh_l0.mul_(3.0)  # make it interesting: neither tiny nor huge
    x = torch.randn(2, 15, 3, dtype=D)
    got = hidden_jacobian_norms(layer, x)
    assert torch.allclose(got, _tanh_jacobian_product(layer, x), rtol=1e-10)
    spec = hidden_jacobian_norms(layer, x, ord="2")
    assert (spec <= got + 1e-12).all() and (spec >= got / math.sqrt(5) - 1e-12).all()


def test_lstm_state_gradient_matches_full_sequence_autograd():
    """Step-by-step probing equals autograd through the whole-sequence call."""
    from rnnlab.nn import LSTM

    torch.manual_seed(0)
    layer = LSTM(2, 4, num_layers=2, dtype=D)
    head = torch.nn.Linear(4, 1, dtype=D)
    x = torch.randn(3, 9, 2, dtype=D)

    def loss_fn(out):
        return (head(out[:, -1]) ** 2).mean()

    sg = loss_gradient_by_step(layer, x, loss_fn)
    xx = x.clone().requires_grad_(True)
    out, _ = layer(xx)
    (gx,) = torch.autograd.grad(loss_fn(out), xx)
    assert torch.allclose(sg.input, gx.norm(dim=-1).mean(0), rtol=1e-10)
    assert sg.state.shape == (9,)
    # the gradient reaching the last state is the head's, through h only (c is unused)
    assert float(sg.state[-1]) > 0


def test_lstm1997_carries_gradient_srn_does_not():
    from rnnlab.nn import LSTM, SRN
    from rnnlab.tasks import adding

    torch.manual_seed(0)
    b = adding.generate(4, T=60, convention="modern", seed=0, dtype=D)
    srn = hidden_jacobian_norms(SRN(2, 8, dtype=D), b.inputs).mean(0)
    cec = hidden_jacobian_norms(LSTM(2, 8, forget_gate=False, dtype=D), b.inputs).mean(0)
    assert float(srn[0]) < 1e-6 and float(cec[0]) > 1e-2


def test_logistic_map_gradients():
    x0 = torch.linspace(0.01, 0.99, 50, dtype=D)
    for T in (1, 7, 40):
        assert torch.allclose(
            A.orbit_gradient(A.logistic_map, x0, T),
            A.logistic_gradient_closed_form(x0, T),
            rtol=1e-9,
            atol=1e-300,
        )
    cyc = A.logistic_cycle()
    assert len(cyc) == 4  # r = 3.5: the attracting 4-cycle
    for c in cyc:  # each point returns after 4 steps
        x = c
        for _ in range(4):
            x = 3.5 * x * (1 - x)
        assert x == pytest.approx(c, abs=1e-9)
    m = A.cycle_multiplier()
    assert abs(m) < 1
    # inside the basin the gradient decays like |multiplier|^(T/4)
    g = A.orbit_gradient(A.logistic_map, torch.tensor(0.3, dtype=D), 400)
    g2 = A.orbit_gradient(A.logistic_map, torch.tensor(0.3, dtype=D), 440)
    assert float((g2 / g).abs()) == pytest.approx(abs(m) ** 10, rel=1e-6)


def test_bistable_rnn_vanishes_inside_explodes_at_boundary():
    T = 30
    h0 = torch.tensor([-0.7, -0.2, 0.0, 0.3, 0.9], dtype=D)
    auto = A.orbit_gradient(A.bistable_rnn, h0, T)
    assert torch.allclose(auto, A.bistable_gradient_closed_form(h0, T), rtol=1e-9)
    assert float(auto[2]) == 2.0**T  # on the boundary: f'(0)^T exactly
    hstar = A.fixed_point()
    assert hstar == pytest.approx(math.tanh(2 * hstar), abs=1e-15)
    rate = 2 * (1 - hstar**2)
    assert rate < 1
    for i in (0, 1, 3, 4):
        assert float(auto[i].abs()) < 1e-3  # vanishing inside each basin
    # deep inside, the decay rate is f'(h*) per step
    r = A.orbit_gradient(A.bistable_rnn, h0[4:], 60) / A.orbit_gradient(A.bistable_rnn, h0[4:], 50)
    assert float(r) == pytest.approx(rate**10, rel=1e-9)


def test_clipping_keeps_steps_bounded_and_reaches_lower_loss():
    plain = A.clipping_demo()
    clipped = A.clipping_demo(max_norm=0.1)
    assert clipped.max_jump <= 0.01 * 0.1 + 1e-15
    assert plain.max_jump > 50 * clipped.max_jump
    assert float(plain.grad.abs().max()) > 10  # it met the cliff
    # the unclipped run is thrown onto a plateau; the clipped one stays near the minimum
    assert float(clipped.loss[-50:].max()) < float(plain.loss.min())
    assert float(plain.loss[-1]) > 10 * float(clipped.loss[-1])
