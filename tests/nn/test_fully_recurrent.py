"""FullyRecurrent against the W&Z equations written out, and RTRL against BPTT."""

import pytest
import torch

from rnnlab.nn import SRN, FullyRecurrent

DT = torch.float64


def williams_zipser(x, W, b, z0):
    """y_t = sigmoid(W z_{t-1} + b), z_t = (x_t, y_t): the network as W&Z write it."""
    F = x.shape[-1]
    z, ys = z0, []
    for t in range(x.shape[1]):
        y = torch.sigmoid(z @ W.t() + b)
        ys.append(y)
        z = torch.cat([x[:, t], y], dim=1)
    return torch.stack(ys, 1), z, F


@pytest.mark.parametrize("engine", ["loop", "bptt", "rtrl"])
def test_matches_equations_and_carries_state(engine):
    torch.manual_seed(0)
    net = FullyRecurrent(2, 3, output_size=1, engine=engine, dtype=DT)
    with torch.no_grad():
        net.core.bias_ih_l0.normal_()
    x = torch.randn(4, 6, 2, dtype=DT)
    z0 = torch.randn(4, 5, dtype=DT)
    b = net.core.bias_ih_l0 + net.core.bias_hh_l0
    want_y, want_z, _ = williams_zipser(x, net.weight, b, z0)
    y, z = net(x, z0)
    torch.testing.assert_close(y, want_y)
    torch.testing.assert_close(z, want_z)
    assert net.read_out(y).shape == (4, 6, 1)
    # chunked with the state carried equals whole
    y1, z1 = net(x[:, :4], z0)
    y2, z2 = net(x[:, 4:], z1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y)
    torch.testing.assert_close(z2, z)


def test_input_reaches_units_one_step_later():
    net = FullyRecurrent(1, 2, dtype=DT)
    x = torch.zeros(1, 5, 1, dtype=DT)
    x2 = x.clone()
    x2[0, 2, 0] = 5.0
    y, _ = net(x)
    y2, _ = net(x2)
    changed = (y2 - y).abs().sum(-1)[0]
    assert changed[:3].max() == 0 and changed[3] > 0


@pytest.mark.parametrize("nonlinearity", ["tanh", "sigmoid", "relu"])
def test_rtrl_gradients_equal_bptt(nonlinearity):
    """RTRL's forward-carried sensitivities give BPTT's gradients exactly."""
    torch.manual_seed(0)
    layer = SRN(3, 4, nonlinearity=nonlinearity, dtype=DT)
    x = torch.randn(3, 7, 3, dtype=DT)
    h0 = torch.randn(1, 3, 4, dtype=DT, requires_grad=True)
    lengths = torch.tensor([7, 2, 5])
    grads = {}
    for engine in ("bptt", "rtrl"):
        layer.engine = engine
        y, h = layer(x, h0, lengths)
        loss = (y**2).sum() + 3 * h.sum()
        grads[engine] = torch.autograd.grad(loss, [h0, *layer.parameters()])
    for a, b in zip(grads["bptt"], grads["rtrl"]):
        torch.testing.assert_close(a, b)


def test_unit_loss_and_errors():
    y = torch.tensor([[[0.5, 1.0]]])
    d = torch.tensor([[[1.0, 0.0]]])
    assert FullyRecurrent.unit_loss(y, d).item() == pytest.approx(0.5 * (0.25 + 1.0))
    assert FullyRecurrent.unit_loss(y, d, torch.tensor([[[1.0, 0.0]]])).item() == 0.125
    with pytest.raises(ValueError, match=r"output_size: expected an integer in \[1, num_units"):
        FullyRecurrent(2, 3, output_size=4)
    with pytest.raises(ValueError, match=r"state: expected shape \(1, 5\)"):
        FullyRecurrent(2, 3)(torch.randn(1, 4, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="engine='rtrl': one unidirectional layer"):
        SRN(2, 3, 2, engine="rtrl")(torch.randn(1, 4, 2))
    with pytest.raises(ValueError, match="input must not require grad"):
        SRN(2, 3, engine="rtrl")(torch.randn(1, 4, 2, requires_grad=True))
