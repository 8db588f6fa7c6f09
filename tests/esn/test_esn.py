"""Oracle tests of the echo state network: closed-form ridge, streaming = whole,
chunked = whole, spectral radius, echo state property, the SRN step, RLS and FORCE."""

from __future__ import annotations

import copy
import importlib.util
import io
import math

import pytest
import torch

from rnnlab.engines import compiled
from rnnlab.errors import InputError
from rnnlab.esn import (
    RLS,
    EchoStateNetwork,
    ESNState,
    nrmse,
    reservoir,
    ridge_solve,
    spectral_radius,
)
from rnnlab.esn.reservoir import recurrent_operator, run_reservoir

_COMPILED = reservoir._drive_dense

f64 = torch.float64


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _esn(**kw) -> EchoStateNetwork:
    args = dict(input_size=2, reservoir_size=60, output_size=3, seed=0, dtype=f64)
    args.update(kw)
    return EchoStateNetwork(**args)


def _data(B=3, T=120, F=2, O=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(B, T, F, generator=g, dtype=f64)
    # targets: a nonlinear function of the recent inputs, so the fit is non-trivial
    y = torch.stack(
        [torch.roll(u[..., 0], k, 1) * (1 + 0.5 * u[..., 1]) for k in range(1, O + 1)], -1
    )
    return u, y


def _closed_form(X: torch.Tensor, Y: torch.Tensor, ridge: float):
    """Ridge with an unpenalised intercept by torch.linalg.lstsq on the augmented system
    [X 1; sqrt(ridge) I 0] w = [Y; 0]."""
    N, H = X.shape
    Z = torch.cat([X, torch.ones(N, 1, dtype=f64)], 1)
    reg = torch.cat([math.sqrt(ridge) * torch.eye(H, dtype=f64), torch.zeros(H, 1, dtype=f64)], 1)
    A = torch.cat([Z, reg], 0)
    rhs = torch.cat([Y, torch.zeros(H, Y.shape[1], dtype=f64)], 0)
    w = torch.linalg.lstsq(A, rhs, driver="gelsd").solution  # (H + 1, O)
    return w[:-1].t(), w[-1]


# ----------------------------------------------------------------- readout


@pytest.mark.parametrize("ridge", [1e-6, 1e-2, 10.0])
def test_readout_equals_closed_form_ridge(ridge):
    esn = _esn(ridge=ridge, leak_rate=0.7, bias_scaling=0.3)
    u, y = _data()
    washout = 10
    esn.fit(u, y, washout=washout)
    X = esn.states(u, state=torch.zeros(3, 60, dtype=f64))[:, washout:].reshape(-1, 60)
    W, b = _closed_form(X, y[:, washout:].reshape(-1, 3), ridge)
    torch.testing.assert_close(esn.readout.weight, W, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(esn.readout.bias, b, rtol=1e-7, atol=1e-7)


def test_streaming_equals_all_at_once_and_lengths():
    u, y = _data(B=4, T=100)
    lengths = torch.tensor([100, 70, 55, 90])
    whole = _esn().fit(u, y, washout=5, lengths=lengths)
    stream = _esn()
    stream.reset_fit()
    for b in range(4):  # one sequence at a time, each cut to its length
        L = int(lengths[b])
        stream.reset_state()
        stream.partial_fit(u[b : b + 1, :L], y[b : b + 1, :L], washout=5, solve=b == 3)
    torch.testing.assert_close(stream.readout.weight, whole.readout.weight, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(stream.readout.bias, whole.readout.bias, rtol=1e-9, atol=1e-9)


def test_chunked_driving_equals_whole_driving():
    esn = _esn(leak_rate=0.4, feedback=True, bias_scaling=0.2)
    u, y = _data(B=2, T=150)
    whole = esn.fit(u, y, washout=20)
    W_whole = whole.readout.weight.clone()
    s_whole = esn.states(u, targets=y, state=ESNState(torch.zeros(2, 60, dtype=f64),
                                                      torch.zeros(2, 3, dtype=f64)))  # fmt: skip
    # chunks of a long sequence: the held state (reservoir and last teacher output) carries
    esn.reset_fit()
    esn.reset_state()
    for i, lo in enumerate(range(0, 150, 40)):
        esn.partial_fit(u[:, lo : lo + 40], y[:, lo : lo + 40], washout=20 if i == 0 else 0)
    torch.testing.assert_close(esn.readout.weight, W_whole, rtol=1e-9, atol=1e-10)
    esn.reset_state()
    parts = [esn.states(u[:, lo : lo + 37], targets=y[:, lo : lo + 37]) for lo in range(0, 150, 37)]
    torch.testing.assert_close(torch.cat(parts, 1), s_whole, rtol=0, atol=1e-13)
    # and predict in closed loop, chunked = whole
    esn.reset_state()
    p_whole = esn.predict(u)
    esn.reset_state()
    p_chunks = torch.cat([esn.predict(u[:, lo : lo + 50]) for lo in range(0, 150, 50)], 1)
    torch.testing.assert_close(p_chunks, p_whole, rtol=0, atol=1e-13)


def test_sparse_and_dense_recurrence_agree():
    torch.manual_seed(0)
    W = torch.randn(500, 500, dtype=f64) * (torch.rand(500, 500) < 0.05)
    W *= 0.9 / spectral_radius(W)
    d = torch.randn(2, 30, 500, dtype=f64)
    x0 = torch.zeros(2, 500, dtype=f64)
    dense = run_reservoir(d, x0, recurrent_operator(W, sparse=False), 0.3)
    sparse = run_reservoir(d, x0, recurrent_operator(W, sparse=True), 0.3)
    one = run_reservoir(d[:1], x0[:1], recurrent_operator(W, sparse=True), 0.3)
    torch.testing.assert_close(sparse, dense, rtol=0, atol=1e-12)
    torch.testing.assert_close(one, dense[:1], rtol=0, atol=1e-12)


@pytest.mark.skipif(reservoir._drive_dense is None, reason="Numba not installed")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("activation, leak", [("tanh", 0.3), ("tanh", 1.0), ("identity", 0.5)])
def test_compiled_loop_equals_torch_loop(monkeypatch, dtype, activation, leak):
    """One sequence through a small dense reservoir: the Numba loop = the PyTorch loop."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(60, 60, generator=g, dtype=f64) * 0.1
    d = torch.randn(1, 40, 60, generator=g, dtype=f64).to(dtype)
    x0 = torch.randn(1, 60, generator=g, dtype=f64).to(dtype)
    recur = recurrent_operator(W.to(dtype), sparse=False)
    compiled = run_reservoir(d, x0, recur, leak, activation)
    monkeypatch.setattr(reservoir, "_drive_dense", None)
    reference = run_reservoir(d, x0, recur, leak, activation)
    tol = 1e-13 if dtype == f64 else 1e-5
    torch.testing.assert_close(compiled, reference, rtol=0, atol=tol)
    # and the model through it: fit and predict on one sequence
    u = torch.rand(1, 200, 1, generator=g, dtype=f64)
    y = torch.sin(torch.cumsum(u, 1))
    states, preds = [], []
    for kernel in (reservoir._drive_dense, _COMPILED):
        monkeypatch.setattr(reservoir, "_drive_dense", kernel)
        esn = EchoStateNetwork(1, 80, 1, leak_rate=leak, activation=activation, seed=3, dtype=f64)
        states.append(esn.states(u))
        preds.append(esn.fit(u, y, washout=20).predict(u))
    torch.testing.assert_close(states[0], states[1], rtol=0, atol=1e-13)
    # the ridge solve (ridge 1e-6) amplifies differences in the last bits of the states
    torch.testing.assert_close(preds[0], preds[1], rtol=0, atol=1e-7)


@pytest.mark.skipif(compiled.load() is None, reason="no C++ compiler for the compiled loops")
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("activation, leak", [("tanh", 0.3), ("tanh", 1.0), ("identity", 0.5)])
def test_cpp_sparse_loop_equals_torch_loop(monkeypatch, dtype, activation, leak):
    """One sequence through a sparse reservoir: the C++ loop (csrc/reservoir.cpp) = the
    PyTorch loop (torch's CSR addmv, tanh_, lerp), and a fit through either agrees."""
    g = torch.Generator().manual_seed(1)
    H = 450  # rows with 0 to ~30 nonzeros: the loop's remainders and empty rows
    W = torch.randn(H, H, generator=g, dtype=f64) * (torch.rand(H, H, generator=g) < 0.03)
    W[7] = 0
    W *= 0.95 / spectral_radius(W)
    d = torch.randn(1, 60, H, generator=g, dtype=f64).to(dtype)
    x0 = torch.randn(1, H, generator=g, dtype=f64).to(dtype)
    recur = recurrent_operator(W.to(dtype), sparse=True)
    fast = run_reservoir(d, x0, recur, leak, activation)
    monkeypatch.setattr(compiled, "load", lambda: None)
    reference = run_reservoir(d, x0, recur, leak, activation)
    tol = 1e-13 if dtype == f64 else 1e-5
    torch.testing.assert_close(fast, reference, rtol=0, atol=tol)
    monkeypatch.undo()
    u = torch.rand(1, 300, 1, generator=g, dtype=f64)
    y = torch.sin(torch.cumsum(u, 1))
    states, preds = [], []
    for off in (False, True):
        if off:
            monkeypatch.setattr(compiled, "load", lambda: None)
        esn = EchoStateNetwork(
            1, 500, 1, leak_rate=leak, activation=activation, ridge=1e-3, seed=3, dtype=f64
        )
        states.append(esn.states(u))
        preds.append(esn.fit(u, y, washout=20).predict(u))
    torch.testing.assert_close(states[0], states[1], rtol=0, atol=1e-13)
    torch.testing.assert_close(preds[0], preds[1], rtol=0, atol=1e-9)


# ----------------------------------------------------------------- reservoir


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.3])
def test_spectral_radius_is_as_requested(rho):
    esn = _esn(reservoir_size=300, spectral_radius=rho, connectivity=0.05)
    eig = torch.linalg.eigvals(esn.weight_hh).abs().max()
    assert abs(float(eig) - rho) < 1e-10


def test_iterative_spectral_radius_is_close_to_exact():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(1200, 1200, generator=g, dtype=f64) * (
        torch.rand(1200, 1200, generator=g) < 0.02
    )
    exact = spectral_radius(W, exact=True)
    approx = spectral_radius(W, exact=False)
    assert abs(approx - exact) / exact < 0.01, (approx, exact)
    # a dominant complex pair (a rotation block): the growth rate still converges
    R = torch.zeros(50, 50, dtype=f64)
    R[:2, :2] = 1.3 * torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=f64)
    R[2:, 2:] = 0.5 * torch.eye(48, dtype=f64)
    assert spectral_radius(R, exact=False) == pytest.approx(1.3, rel=1e-3)


def test_seeded_and_reproducible():
    a, b, c = _esn(seed=5), _esn(seed=5), _esn(seed=6)
    for name in ("weight_hh", "weight_ih", "bias", "weight_fb"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.weight_hh, c.weight_hh)
    # float32 reservoir = the float64 one rounded
    d = _esn(seed=5, dtype=torch.float32)
    torch.testing.assert_close(d.weight_hh, a.weight_hh.float(), rtol=0, atol=0)
    assert abs(float((a.weight_hh != 0).double().mean()) - 0.1) < 0.02  # connectivity


def test_echo_state_property_two_initial_states_converge():
    esn = _esn(reservoir_size=200, spectral_radius=0.95, leak_rate=0.5)
    u = torch.rand(1, 600, 2, dtype=f64) * 2 - 1
    g = torch.Generator().manual_seed(0)
    x1 = torch.rand(1, 200, generator=g, dtype=f64) * 2 - 1
    x2 = -x1
    s1 = esn.states(u, state=x1)
    s2 = esn.states(u, state=x2)
    gap = (s1 - s2).norm(dim=-1)[0]
    assert float(gap[0]) > 1.0
    assert float(gap[-1]) < 1e-8 * float(gap[0])


def test_reservoir_step_equals_srn_cell_step():
    from rnnlab.nn import SRN

    esn = _esn(reservoir_size=40, bias_scaling=0.5, input_scaling=0.7)
    u, _ = _data(B=3, T=25)
    x0 = torch.rand(3, 40, dtype=f64) - 0.5
    states = esn.states(u, state=x0)
    srn = SRN(2, 40, engine="loop", dtype=f64)
    srn.load_state_dict(
        {
            "weight_ih_l0": esn.weight_ih,
            "weight_hh_l0": esn.weight_hh,
            "bias_ih_l0": esn.bias,
            "bias_hh_l0": torch.zeros(40, dtype=f64),
        }
    )
    with torch.no_grad():
        out, h = srn(u, x0[None])
    torch.testing.assert_close(states, out, rtol=0, atol=1e-13)
    assert not torch.is_inference(states)  # usable in the user's autograd graphs
    # the export does the same
    exported = esn.to_srn(engine="loop")
    with torch.no_grad():
        out2, _ = exported(u, x0[None])
    torch.testing.assert_close(out2, out, rtol=0, atol=0)
    with pytest.warns(UserWarning, match="leak"):
        _esn(leak_rate=0.5).to_srn()


def test_identity_activation_is_a_linear_system():
    esn = _esn(activation="identity", leak_rate=0.6, reservoir_size=30)
    u, _ = _data(B=1, T=40)
    X = esn.states(u, state=torch.zeros(1, 30, dtype=f64))[0]
    A = 0.4 * torch.eye(30, dtype=f64) + 0.6 * esn.weight_hh
    x = torch.zeros(30, dtype=f64)
    for t in range(40):
        x = A @ x + 0.6 * (esn.weight_ih @ u[0, t] + esn.bias)
        torch.testing.assert_close(X[t], x, rtol=0, atol=1e-12)


# ----------------------------------------------------------------- online


def test_rls_converges_to_the_ridge_solution():
    esn = _esn(reservoir_size=40, output_size=2, ridge=0.5)
    u, y = _data(B=1, T=400, O=2)
    delta = 0.5
    esn.fit_online(u, y, washout=20, method="rls", delta=delta)
    X = esn.states(u, state=torch.zeros(1, 40, dtype=f64))[0, 20:]
    Z = torch.cat([X, torch.ones(len(X), 1, dtype=f64)], 1)
    w = torch.linalg.solve(Z.t() @ Z + delta * torch.eye(41, dtype=f64), Z.t() @ y[0, 20:])
    torch.testing.assert_close(esn.readout.weight, w[:-1].t(), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(esn.readout.bias, w[-1], rtol=1e-6, atol=1e-8)
    # and the RLS kernel alone, with forgetting 1, tracks the exact solution at every step
    rls = RLS(3, 1, delta=2.0)
    g = torch.Generator().manual_seed(0)
    Zs = torch.randn(50, 3, generator=g, dtype=f64)
    ys = Zs @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=f64) + 0.1
    for n in range(50):
        rls.update(Zs[n], ys[n])
    G = Zs.t() @ Zs + 2.0 * torch.eye(3, dtype=f64)
    torch.testing.assert_close(rls.weight, torch.linalg.solve(G, Zs.t() @ ys).t())


def test_force_learns_a_sine_wave_in_free_run():
    T, period = 3000, 50
    t = torch.arange(T + 500, dtype=f64)
    target = (0.5 * torch.sin(2 * math.pi * t / period))[:, None]  # (T, 1)
    esn = EchoStateNetwork(
        0, 300, 1, spectral_radius=1.2, leak_rate=0.3, feedback=True, bias_scaling=0.2,
        seed=2, dtype=f64,
    )  # fmt: skip
    esn.fit_online(None, target[:T], washout=100, method="force", delta=1.0)
    free = esn.generate(500)[0]  # (1, 500, 1): batched when neither warmup nor inputs
    err = nrmse(free, target[T:])
    assert err < 0.1, err


# ----------------------------------------------------------------- modes


def test_generate_equals_the_closed_loop_written_out():
    """generate() after fit = the recurrence stepped by hand with the network's weights,
    starting from the state at the end of the training sequence (the last teacher output
    fed back first); a warmup gives the same as fitting's teacher-forced run."""
    esn = EchoStateNetwork(
        0, 50, 1, spectral_radius=0.8, leak_rate=0.6, feedback=True, bias_scaling=0.2,
        seed=0, dtype=f64,
    )  # fmt: skip
    t = torch.arange(300, dtype=f64)
    y = (torch.sin(0.2 * t) * torch.cos(0.031 * t))[:, None]  # (T, 1)
    esn.fit(None, y, washout=50)
    x, yp = esn.state_.x[0].clone(), y[-1].clone()
    assert torch.equal(esn.state_.y[0], yp)
    gen = esn.generate(40)[0]
    W, W_fb, b = esn.weight_hh, esn.weight_fb, esn.bias
    W_out, b_out = esn.readout.weight.detach(), esn.readout.bias.detach()
    for k in range(40):
        x = 0.4 * x + 0.6 * torch.tanh(W @ x + W_fb @ yp + b)
        yp = W_out @ x + b_out
        torch.testing.assert_close(gen[k], yp, rtol=0, atol=1e-12)
    esn.reset_state()
    a = esn.generate(30, warmup=y)
    esn.reset_state()
    esn.states(torch.zeros(300, 0, dtype=f64), targets=y)
    b = esn.generate(30)[0]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    torch.testing.assert_close(a[:1], gen[:1], rtol=0, atol=1e-13)


def test_state_dict_round_trip():
    esn = _esn(feedback=True, leak_rate=0.5)
    u, y = _data()
    esn.fit(u, y, washout=10)
    buf = io.BytesIO()
    torch.save(esn.state_dict(), buf)
    buf.seek(0)
    other = _esn(feedback=True, leak_rate=0.5, seed=99)
    other.load_state_dict(torch.load(buf))
    esn.reset_state()
    torch.testing.assert_close(other.predict(u), esn.predict(u), rtol=0, atol=0)
    clone = copy.deepcopy(esn)
    torch.testing.assert_close(clone.readout.weight, esn.readout.weight)


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"spectral_radius": 0.0}, "spectral_radius"),
        ({"spectral_radius": -1.0}, "spectral_radius"),
        ({"leak_rate": 0.0}, "leak_rate"),
        ({"leak_rate": 1.5}, "leak_rate"),
        ({"connectivity": 0.0}, "connectivity"),
        ({"connectivity": 1.2}, "connectivity"),
        ({"input_connectivity": 0.0}, "input_connectivity"),
        ({"activation": "relu"}, "activation"),
        ({"ridge": -1.0}, "ridge"),
    ],
)
def test_bad_hyperparameters(kw, word):
    with pytest.raises(InputError, match=word):
        _esn(**kw)


def test_bad_calls():
    esn = _esn()
    u, y = _data(T=30)
    with pytest.raises(InputError, match="washout.*30.*received washout=30"):
        esn.fit(u, y, washout=30)
    with pytest.raises(InputError, match="generate.*feedback"):
        esn.generate(10)
    bad = u.clone()
    bad[0, 3, 1] = float("nan")
    with pytest.raises(InputError, match="inputs: expected finite values, received 1 NaN"):
        esn.fit(bad, y)
    bad_y = y.clone()
    bad_y[1, 2, 0] = float("nan")
    with pytest.raises(InputError, match="targets: expected finite"):
        esn.fit(u, bad_y)
    with pytest.raises(InputError, match="inputs: expected shape"):
        esn.predict(torch.zeros(3, 5, 7, dtype=f64))


@pytest.mark.skipif(importlib.util.find_spec("reservoirpy") is None, reason="needs reservoirpy")
def test_same_weights_as_reservoirpy_give_the_same_states_and_readout():
    import numpy as np
    from reservoirpy.nodes import Reservoir, Ridge

    esn = _esn(reservoir_size=80, output_size=1, leak_rate=0.3, bias_scaling=0.4, ridge=1e-3)
    u, y = _data(B=1, T=300, O=1)
    ref = Reservoir(
        W=esn.weight_hh.numpy(), Win=esn.weight_ih.numpy(), bias=esn.bias.numpy(), lr=0.3
    )
    S = ref.run(u[0].numpy())
    ours = esn.states(u, state=torch.zeros(1, 80, dtype=f64))[0]
    np.testing.assert_allclose(ours.numpy(), S, rtol=0, atol=1e-12)
    ro = Ridge(ridge=1e-3).fit(S, y[0].numpy(), warmup=30)
    esn.fit(u, y, washout=30)
    np.testing.assert_allclose(esn.readout.weight.detach().numpy(), ro.Wout.T, atol=1e-8)
    np.testing.assert_allclose(esn.readout.bias.detach().numpy(), ro.bias.ravel(), atol=1e-8)


def test_ridge_solve_falls_back_when_singular():
    G = torch.zeros(3, 3, dtype=f64)
    G[2, 2] = 4.0  # no variation in the states, ridge 0
    C = torch.tensor([[0.0], [0.0], [8.0]], dtype=f64)
    with pytest.warns(RuntimeWarning, match="singular"):
        W, b = ridge_solve(G, C, 0.0)
    torch.testing.assert_close(b, torch.tensor([2.0], dtype=f64))


def test_predict_with_lengths_equals_each_sequence_alone():
    esn = _esn(leak_rate=0.5)
    u, y = _data(B=3, T=40)
    esn.fit(u, y, washout=5)
    lengths = torch.tensor([40, 25, 10])
    zeros = torch.zeros(3, 60, dtype=f64)
    out = esn.predict(u, state=zeros, lengths=lengths)
    final = esn.state_.x.clone()
    for b in range(3):
        L = int(lengths[b])
        alone = esn.predict(u[b, :L], state=zeros[b])
        torch.testing.assert_close(out[b, :L], alone, rtol=0, atol=1e-13)
        assert bool((out[b, L:] == 0).all())
        torch.testing.assert_close(final[b], esn.state_.x[0], rtol=0, atol=1e-13)


def test_srn_from_the_reservoir_starts_at_the_esn_and_momentum_improves_it():
    """Careful initialisation plus momentum (Hinton's lecture 7): the exported SRN with the
    ESN's readout as its head computes the ESN's predictions exactly, so training starts at
    the ESN's loss; SGD with momentum on all weights then lowers it."""
    esn = _esn(reservoir_size=30, output_size=1, spectral_radius=0.9, ridge=1e-3)
    u, y = _data(B=4, T=60, O=1)
    esn.fit(u, y, washout=0)
    srn, head = esn.to_srn(engine="loop"), copy.deepcopy(esn.readout)
    loss = torch.nn.functional.mse_loss
    with torch.no_grad():
        start = loss(head(srn(u)[0]), y)
    esn.reset_state()
    torch.testing.assert_close(start, loss(esn.predict(u), y), rtol=1e-10, atol=0)
    params = list(srn.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=0.002, momentum=0.9)
    for _ in range(30):
        opt.zero_grad()
        loss(head(srn(u)[0]), y).backward()
        opt.step()
    with torch.no_grad():
        assert float(loss(head(srn(u)[0]), y)) < 0.9 * float(start)


def test_noise_is_seeded_and_input_noise_is_noise_on_the_inputs():
    u, y = _data(B=2, T=80)
    a = _esn(noise=1e-2, input_noise=0.1, feedback=True, feedback_noise=0.05).fit(u, y)
    w1 = a.readout.weight.detach().clone()
    a.fit(u, y)  # a second fit draws the same noise
    torch.testing.assert_close(a.readout.weight, w1, rtol=0, atol=0)
    b = _esn(noise=1e-2, input_noise=0.1, feedback=True, feedback_noise=0.05).fit(u, y)
    torch.testing.assert_close(b.readout.weight, w1, rtol=0, atol=0)
    clean = _esn(feedback=True).fit(u, y)
    assert float((clean.readout.weight.detach() - w1).abs().max()) > 1e-3
    # input noise only: the same as a noiseless fit on u + 0.1 * eps, eps from the noise seed
    noisy = _esn(input_noise=0.1)
    noisy.fit(u, y)
    eps = torch.randn(u.shape, generator=torch.Generator().manual_seed(noisy._noise_seed),
                      dtype=f64)  # fmt: skip
    ref = _esn().fit(u + 0.1 * eps, y)
    torch.testing.assert_close(noisy.readout.weight, ref.readout.weight, rtol=1e-10, atol=1e-10)


def test_float32_agrees_with_float64():
    u, y = _data(B=2, T=100)
    e64 = _esn(leak_rate=0.5, ridge=1e-3).fit(u, y, washout=10)
    e32 = _esn(leak_rate=0.5, ridge=1e-3, dtype=torch.float32).fit(u.float(), y.float(), washout=10)
    e64.reset_state()
    e32.reset_state()
    p64, p32 = e64.predict(u), e32.predict(u.float())
    assert p32.dtype == torch.float32
    torch.testing.assert_close(p32.double(), p64, rtol=0, atol=1e-4)


def test_generate_with_external_inputs_and_warmup_equals_the_loop_written_out():
    esn = _esn(input_size=1, output_size=2, feedback=True, leak_rate=0.8, bias_scaling=0.1)
    g = torch.Generator().manual_seed(7)
    warm = torch.randn(2, 15, 2, generator=g, dtype=f64) * 0.5  # (B, Tw, O)
    u = torch.randn(2, 25, 1, generator=g, dtype=f64)  # (B, Tw + steps, F)
    with torch.no_grad():
        esn.readout.weight.copy_(0.1 * torch.randn(2, 60, generator=g, dtype=f64))
        esn.readout.bias.fill_(0.05)
    esn.reset_state()
    out = esn.generate(10, warmup=warm, inputs=u)
    W, W_in, W_fb, b = esn.weight_hh, esn.weight_ih, esn.weight_fb, esn.bias
    W_out, b_out = esn.readout.weight.detach(), esn.readout.bias.detach()
    for s in range(2):
        x, y = torch.zeros(60, dtype=f64), torch.zeros(2, dtype=f64)
        for t in range(25):
            x = 0.2 * x + 0.8 * torch.tanh(W_in @ u[s, t] + W @ x + W_fb @ y + b)
            y = warm[s, t] if t < 15 else W_out @ x + b_out  # teacher, then its own output
            if t >= 15:
                torch.testing.assert_close(out[s, t - 15], y, rtol=0, atol=1e-12)


def test_gram_equals_the_full_product():
    """Both ways of G += x^T x (NumPy's syrk on the CPU, torch blocks elsewhere), into a
    strided view as the accumulator uses it."""
    from rnnlab.esn.readouts import _add_gram, _add_gram_blocked

    x = torch.randn(37, 700, dtype=f64)
    for add in (_add_gram, lambda G, x: _add_gram_blocked(G, x, block=256)):
        G = torch.ones(701, 701, dtype=f64)
        add(G[:700, :700], x)  # blocks of 256, 256, 188: on and above the diagonal
        torch.testing.assert_close(G[:700, :700], 1 + x.t() @ x, rtol=1e-12, atol=1e-12)
        assert bool((G[700] == 1).all()) and bool((G[:, 700] == 1).all())
