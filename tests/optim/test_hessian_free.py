"""Hessian-free: the Gauss-Newton product against an explicitly formed J^T H J, CG against
a direct solve, one outer step on a convex quadratic, the damping rule, bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnlab._threads import torch_threads
from rnnlab.errors import InputError
from rnnlab.nn import LSTM, SRN
from rnnlab.optim import GaussNewton, HessianFree, conjugate_gradient
from rnnlab.optim.hessian_free import SRNTangents


class _Net(nn.Module):
    def __init__(self, rnn, out):
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(rnn.hidden_size, out)

    def forward(self, x):
        seq, _ = self.rnn(x)  # (B, T, H)
        return self.head(seq[:, -1]), seq  # (B, O), (B, T, H)


def _rows(y: torch.Tensor, params) -> torch.Tensor:
    """The Jacobian of y (flattened) in the flattened parameters, one row per entry."""
    rows = []
    for e in y.reshape(-1):
        g = torch.autograd.grad(e, params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if a is None else a).reshape(-1)
                               for a, p in zip(g, params)]))  # fmt: skip
    return torch.stack(rows)  # (numel(y), P)


@pytest.mark.parametrize(
    "engine", ["loop", "fused"]
)  # torch's kernel on the CPU: twice differentiable
@pytest.mark.parametrize("cell", ["srn", "lstm"])
@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("mu", [0.0, 0.7])
def test_gauss_newton_product_equals_explicit_jt_h_j(cell, loss_name, mu, engine):
    torch.manual_seed(0)
    B, T, F_, H, O = 3, 4, 2, 3, 3
    rnn = (SRN if cell == "srn" else LSTM)(F_, H, engine=engine)
    net = _Net(rnn, O).double()
    params = list(net.parameters())
    x = torch.randn(B, T, F_, dtype=torch.float64)
    z, seq = net(x)

    def loss_of(zz):
        if loss_name == "mse":
            return F.mse_loss(zz, torch.linspace(-1, 1, B * O, dtype=zz.dtype).view(B, O))
        return F.cross_entropy(zz, torch.tensor([0, 2, 1]))

    loss = loss_of(z)
    lam = 0.3
    gn = GaussNewton(loss, z, params, hidden=seq, damping=lam, structural=mu)
    J = _rows(z, params)  # (B*O, P)
    Jh = _rows(seq, params)  # (B*T*H, P)
    HL = torch.autograd.functional.hessian(loss_of, z.detach()).reshape(B * O, B * O)
    G = J.T @ HL @ J + lam * torch.eye(J.shape[1], dtype=J.dtype)
    G = G + lam * mu * Jh.T @ Jh / B
    v = [torch.randn_like(p) for p in params]
    got = torch.cat([t.reshape(-1) for t in gn(v)])
    want = G @ torch.cat([t.reshape(-1) for t in v])
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert torch.linalg.eigvalsh(G).min() > 0  # the damped matrix CG solves is SPD


def test_gauss_newton_product_on_fused_equals_loop_with_lengths():
    """Ragged sequences (torch's kernel runs them packed): the same product as ``loop``."""
    got = {}
    for engine in ("loop", "fused"):
        torch.manual_seed(0)
        rnn = SRN(2, 5, engine=engine).double()
        head = nn.Linear(5, 1).double()
        params = [*rnn.parameters(), *head.parameters()]
        seq, state = rnn(
            torch.randn(4, 7, 2, dtype=torch.float64), lengths=torch.tensor([7, 3, 5, 1])
        )
        z = head(state[-1])
        gn = GaussNewton(
            ((z - 0.3) ** 2).mean(), z, params, hidden=seq, damping=0.5, structural=0.3
        )
        v = [
            torch.randn(p.shape, generator=torch.Generator().manual_seed(1), dtype=p.dtype)
            for p in params
        ]
        got[engine] = torch.cat([t.reshape(-1) for t in gn(v)])
    torch.testing.assert_close(got["fused"], got["loop"], rtol=0, atol=1e-13)


def test_bptt_engine_refuses_double_backward_clearly():
    torch.manual_seed(0)
    net = _Net(SRN(2, 3, engine="bptt"), 1).double()
    z, _ = net(torch.randn(2, 3, 2, dtype=torch.float64))
    with pytest.raises(RuntimeError):
        GaussNewton(F.mse_loss(z, torch.zeros_like(z)), z, list(net.parameters())).undamped(
            [torch.ones_like(p) for p in net.parameters()]
        )


@pytest.mark.parametrize("n", [1, 5, 12])
def test_cg_solves_spd_systems(n):
    g = torch.Generator().manual_seed(n)
    M = torch.randn(n, n, generator=g, dtype=torch.float64)
    A = M @ M.T + 0.1 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, generator=g, dtype=torch.float64)
    want = torch.linalg.solve(A, b)
    for precond in (None, [torch.diagonal(A).clone()]):
        x, kept, iters = conjugate_gradient(lambda v: [A @ v[0]], [b], max_iter=10 * n,
                                            tol=1e-14, preconditioner=precond)  # fmt: skip
        torch.testing.assert_close(x[0], want, rtol=1e-7, atol=1e-9)
        assert kept[-1][0] == iters and iters <= 3 * n
    # a warm start at the solution needs no progress
    x, _, _ = conjugate_gradient(lambda v: [A @ v[0]], [b], [want], max_iter=5)
    torch.testing.assert_close(x[0], want, rtol=1e-7, atol=1e-9)


def test_cg_relative_progress_stops_early():
    # a badly conditioned diagonal system: the quadratic stops improving long before n
    n = 400
    d = torch.logspace(-6, 0, n, dtype=torch.float64)
    b = torch.ones(n, dtype=torch.float64)
    _, _, iters = conjugate_gradient(lambda v: [d * v[0]], [b], max_iter=n, tol=5e-2)
    assert 10 < iters < n


def test_one_outer_step_solves_a_convex_quadratic():
    torch.manual_seed(1)
    lin = nn.Linear(4, 3).double()
    x = torch.randn(20, 4, dtype=torch.float64)
    y = torch.randn(20, 3, dtype=torch.float64)
    opt = HessianFree(lin.parameters(), damping=1e-10, cg_max_iter=50, cg_tol=1e-12)

    def closure():
        z = lin(x)
        return 0.5 * ((z - y) ** 2).sum(), z

    opt.step(closure)
    X = torch.cat([x, torch.ones(20, 1, dtype=torch.float64)], 1)  # least squares, closed form
    W = torch.linalg.lstsq(X, y).solution  # (5, 3)
    torch.testing.assert_close(lin.weight.detach(), W[:4].T, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(lin.bias.detach(), W[4], rtol=1e-6, atol=1e-8)
    assert opt.last_step["rho"] == pytest.approx(1.0, abs=1e-6)


def test_damping_falls_after_a_good_step_and_rises_after_a_bad_one():
    torch.manual_seed(2)
    w = nn.Parameter(torch.tensor([0.5], dtype=torch.float64))

    def quadratic():  # the Gauss-Newton model is exact: rho = 1
        return (w - 2.0).pow(2).sum(), w

    opt = HessianFree([w], damping=1.0)
    opt.step(quadratic)
    assert opt.param_groups[0]["damping"] == pytest.approx(2 / 3)

    def steep():  # quartic loss seen through a linear output: the model overshoots badly
        z = w * 1.0
        return (z - 2.0).pow(2).sum() + 50.0 * (w - 2.0).pow(4).sum(), z

    w.data.fill_(-3.0)
    opt = HessianFree([w], damping=1e-3, line_search=False)
    opt.step(steep)
    assert opt.last_step["rho"] < 0.25
    assert opt.param_groups[0]["damping"] == pytest.approx(1.5e-3)


def test_hf_trains_a_small_rnn_with_structural_damping_through_the_trainer(tmp_path):
    from rnnlab.train import StepOutput, TrainConfig, Trainer

    torch.manual_seed(3)
    net = _Net(SRN(1, 6, engine="loop"), 1)
    x = torch.randn(32, 4, 1)
    y = x.sum(1)  # (64, 1): the sum of the inputs

    def loss_fn(m, batch, carry):
        z, seq = m(batch[0])
        return StepOutput(F.mse_loss(z, batch[1]), items=len(batch[0]), outputs=(z, seq))

    opt = HessianFree(net.parameters(), damping=1.0, structural_damping=0.3, cg_max_iter=20)
    with torch.no_grad():
        first = float(F.mse_loss(net(x)[0], y))
    trainer = Trainer(net, opt, iter(lambda: (x, y), None), loss_fn,
                      TrainConfig(steps=8, progress=False, log_every=10**9),
                      checkpoint=tmp_path / "c.pt")  # fmt: skip
    with torch_threads(1):
        trainer.fit()
    with torch.no_grad():
        last = float(F.mse_loss(net(x)[0], y))
    assert last < 0.05 * first
    saved = torch.load(tmp_path / "c.pt", weights_only=False)["optimizer"]
    assert saved["param_groups"][0]["hf_steps"] == 8
    assert all("direction" in s for s in saved["state"].values())


def test_curvature_minibatch_is_used_for_the_products():
    torch.manual_seed(4)
    lin = nn.Linear(3, 1).double()
    x = torch.randn(40, 3, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)
    calls = []

    def curvature():
        calls.append(1)
        z = lin(x[:10])
        return F.mse_loss(z, y[:10]), z

    def closure():
        z = lin(x)
        return F.mse_loss(z, y), {"outputs": z, "curvature": curvature}

    lam = 1e-3
    opt = HessianFree(lin.parameters(), damping=lam, cg_tol=1e-12, adapt_damping=False)
    theta = torch.cat([lin.weight.detach().reshape(-1), lin.bias.detach()])  # (4,)
    Xa = torch.cat([x, torch.ones(40, 1, dtype=torch.float64)], 1)  # (40, 4)
    g = 2 / 40 * Xa.T @ (Xa @ theta - y[:, 0])  # the gradient on all 40 rows
    G_sub = 2 / 10 * Xa[:10].T @ Xa[:10]  # the curvature of the first 10
    want = theta - torch.linalg.solve(G_sub + lam * torch.eye(4, dtype=torch.float64), g)
    opt.step(closure)
    assert calls == [1]
    # the CG solution (kept as the next warm start) solves (G_sub + lambda I) p = -g
    got = torch.cat([opt.state[p]["direction"].reshape(-1) for p in lin.parameters()])
    torch.testing.assert_close(got, want - theta, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"damping": 0.0}, "damping"), ({"damping": -1.0}, "damping"),
     ({"cg_max_iter": 0}, "cg_max_iter"), ({"cg_tol": 0.0}, "cg_tol"),
     ({"lr": 0}, "lr"), ({"structural_damping": -0.1}, "structural_damping"),
     ({"cg_decay": 1.5}, "cg_decay")],
)  # fmt: skip
def test_bad_settings_name_the_argument(kwargs, name):
    with pytest.raises(InputError, match=name):
        HessianFree([nn.Parameter(torch.zeros(2))], **kwargs)


def test_bad_closures_and_frozen_parameters():
    frozen = torch.zeros(2)
    with pytest.raises(InputError, match="params"):
        HessianFree([nn.Parameter(torch.zeros(1)), frozen])
    w = nn.Parameter(torch.zeros(2))
    opt = HessianFree([w])
    with pytest.raises(InputError, match="closure"):
        opt.step()
    with pytest.raises(InputError, match="closure"):
        opt.step(lambda: (None, w * 1))
    with pytest.raises(InputError, match="closure"):
        opt.step(lambda: (w * w).sum())
    with pytest.raises(InputError, match="outputs"):
        opt.step(lambda: ((w * w).sum(), None))
    opt = HessianFree([w], structural_damping=0.5)
    with pytest.raises(InputError, match="structural_damping"):
        opt.step(lambda: ((w * w).sum(), w * 1))


def test_state_dict_round_trip_continues_identically():
    torch.manual_seed(5)

    def make():
        torch.manual_seed(5)
        return nn.Linear(3, 2).double()

    x = torch.randn(30, 3, dtype=torch.float64)
    y = torch.tanh(torch.randn(30, 2, dtype=torch.float64))

    def closure_for(m):
        def closure():
            z = torch.tanh(m(x))
            return F.mse_loss(z, y), z

        return closure

    a = make()
    oa = HessianFree(a.parameters(), damping=0.5, cg_max_iter=5)
    for _ in range(2):
        oa.step(closure_for(a))
    b = make()
    b.load_state_dict(a.state_dict())
    ob = HessianFree(b.parameters(), damping=0.5, cg_max_iter=5)
    ob.load_state_dict(oa.state_dict())
    la, lb = float(oa.step(closure_for(a))), float(ob.step(closure_for(b)))
    assert math.isclose(la, lb, rel_tol=1e-12)
    assert ob.param_groups[0]["damping"] == oa.param_groups[0]["damping"]


# -- the explicit R-op of the tanh SRN (SRNTangents) ---------------------------------------


def _srn_problem(engine, per_step, ragged, loss_name, seed=0):
    """A one-layer tanh SRN with a linear read-out in float64; (params, loss_of, z, seq,
    x, lengths, rnn, head)."""
    torch.manual_seed(seed)
    B, T, F_, H, O = 4, 6, 2, 3, 3
    rnn = SRN(F_, H, engine=engine).double()
    head = nn.Linear(H, O).double()
    params = [*rnn.parameters(), *head.parameters()]
    x = torch.randn(B, T, F_, dtype=torch.float64)
    lengths = torch.tensor([6, 2, 4, 1]) if ragged else None
    seq, state = rnn(x, lengths=lengths)  # (B, T, H)
    z = head(seq) if per_step else head(state[-1])  # (B, T, O) or (B, O)
    target = torch.linspace(-1, 1, z.numel(), dtype=z.dtype).view(z.shape)
    classes = torch.arange(z.numel() // O) % O

    def loss_of(zz):
        if loss_name == "mse":
            return F.mse_loss(zz, target)
        return F.cross_entropy(zz.reshape(-1, O), classes)

    return params, loss_of, z, seq, x, lengths, rnn, head


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy"])
@pytest.mark.parametrize("mu", [0.0, 0.7])
@pytest.mark.parametrize("per_step", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
def test_srn_tangents_product_equals_explicit_jt_h_j(loss_name, mu, per_step, ragged):
    """The fast path (the SRN's R-op, then J^T by the bptt kernel's backward) against
    G + lambda I + lambda mu J_h^T J_h / B formed from explicit Jacobians."""
    params, loss_of, z, seq, x, lengths, rnn, head = _srn_problem(
        "bptt", per_step, ragged, loss_name
    )
    lam = 0.3
    jvp = SRNTangents(rnn, head, x, seq, lengths, per_step=per_step)
    gn = GaussNewton(loss_of(z), z, params, hidden=seq, damping=lam, structural=mu, jvp=jvp)
    J, Jh = _rows(z, params), _rows(seq, params)  # (numel z, P), (B*T*H, P)
    n = z.numel()
    HL = torch.autograd.functional.hessian(loss_of, z.detach()).reshape(n, n)
    G = J.T @ HL @ J + lam * torch.eye(J.shape[1], dtype=J.dtype)
    G = G + lam * mu * Jh.T @ Jh / seq.shape[0]
    v = [torch.randn_like(p) for p in params]
    vflat = torch.cat([t.reshape(-1) for t in v])
    got = torch.cat([t.reshape(-1) for t in gn(v)])
    torch.testing.assert_close(got, G @ vflat, rtol=1e-10, atol=1e-12)
    # the R-op itself: J v and J_h v
    jz, jh = jvp(dict(zip(params, v)))
    torch.testing.assert_close(jz.reshape(-1), J @ vflat, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(jh.reshape(-1), Jh @ vflat, rtol=1e-10, atol=1e-12)
    if ragged:  # zero past each length, as the layer's outputs
        past = torch.arange(seq.shape[1]) >= lengths.unsqueeze(1)  # (B, T)
        assert bool((jh[past] == 0).all())


@pytest.mark.parametrize("per_step", [False, True])
@pytest.mark.parametrize("mu", [0.0, 0.4])
def test_srn_tangents_product_equals_the_generic_double_backward_product(per_step, mu):
    """bptt + explicit R-op against loop + double backward (the generic path), ragged."""
    got = {}
    for engine in ("loop", "bptt"):
        params, loss_of, z, seq, x, lengths, rnn, head = _srn_problem(
            engine, per_step, True, "cross_entropy", seed=3
        )
        jvp = (
            SRNTangents(rnn, head, x, seq, lengths, per_step=per_step) if engine == "bptt" else None
        )
        gn = GaussNewton(loss_of(z), z, params, hidden=seq, damping=0.5, structural=mu, jvp=jvp)
        g = torch.Generator().manual_seed(1)
        v = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
        got[engine] = (torch.cat([t.reshape(-1) for t in gn(v)]),
                       torch.cat([t.reshape(-1) for t in gn.undamped(v)]))  # fmt: skip
    for a, b in zip(got["bptt"], got["loop"]):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        assert float(b.abs().max()) > 1e-3  # not a comparison of zeros


def test_srn_tangents_skips_parameters_without_a_tangent():
    """A parameter the optimiser does not train (not in the tangents) contributes zero."""
    params, loss_of, z, seq, x, lengths, rnn, head = _srn_problem("bptt", False, True, "mse")
    jvp = SRNTangents(rnn, head, x, seq, lengths)
    v = {p: torch.randn_like(p) for p in params}
    full = jvp(v)
    v_no_u = dict(v)
    del v_no_u[rnn.weight_hh_l0]
    part = jvp(v_no_u)
    with_zero = jvp({**v, rnn.weight_hh_l0: torch.zeros_like(rnn.weight_hh_l0)})
    for a, b in zip(part, with_zero):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(part[0], full[0])


def test_hf_step_with_the_explicit_r_op_equals_the_generic_step():
    """Two outer steps (curvature minibatch, structural damping, ragged lengths): the
    same losses, damping, CG iterations and parameters in float64. (At most 8 CG
    iterations: run on to 15-17, past convergence on this small net, CG amplifies the
    paths' 1e-16 differences to 1e-8 in the second step's loss.)"""
    from rnnlab.nn.init import echo_state_

    g = torch.Generator().manual_seed(7)
    x = torch.randn(12, 9, 2, dtype=torch.float64, generator=g)
    lengths = torch.randint(3, 10, (12,), generator=g)
    y = torch.rand(12, 1, dtype=torch.float64, generator=g)
    runs = {}
    for engine in ("loop", "bptt"):
        torch.manual_seed(0)
        rnn = SRN(2, 6, engine=engine).double()
        echo_state_(rnn.weight_hh_l0, spectral_radius=1.1, connections=3,
                    generator=torch.Generator().manual_seed(1))  # fmt: skip
        head = nn.Linear(6, 1).double()
        params = [*rnn.parameters(), *head.parameters()]
        opt = HessianFree(params, damping=1.0, structural_damping=0.3, cg_max_iter=8)

        def forward(rows, rnn=rnn, head=head, engine=engine):
            seq, state = rnn(x[:rows], lengths=lengths[:rows])
            z = head(state[-1])
            out = {"outputs": z, "hidden": seq}
            if engine == "bptt":
                out["jvp"] = SRNTangents(rnn, head, x[:rows], seq, lengths[:rows])
            return F.mse_loss(z, y[:rows]), out

        def closure(forward=forward):
            loss, out = forward(12)
            out["curvature"] = lambda: forward(5)
            return loss, out

        steps = []
        for _ in range(2):
            opt.step(closure)
            steps.append(dict(opt.last_step))
        runs[engine] = (steps, torch.cat([p.detach().reshape(-1) for p in params]))
    for a, b in zip(runs["bptt"][0], runs["loop"][0]):
        assert a["cg_iterations"] == b["cg_iterations"] > 1
        assert a["chosen_iteration"] == b["chosen_iteration"]
        assert a["damping"] == b["damping"] and a["step_size"] == b["step_size"]
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-10)
        assert math.isclose(a["rho"], b["rho"], rel_tol=1e-8)
    assert runs["loop"][0][-1]["loss"] < runs["loop"][0][0]["loss_before"]
    torch.testing.assert_close(runs["bptt"][1], runs["loop"][1], rtol=1e-9, atol=1e-11)


def test_srn_tangents_bad_input_names_the_argument():
    with pytest.raises(InputError, match="rnn"):
        SRNTangents(LSTM(2, 3), nn.Linear(3, 1), torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))
    for kwargs in ({"num_layers": 2}, {"bidirectional": True}, {"nonlinearity": "relu"},
                   {"learn_initial_state": True}):  # fmt: skip
        with pytest.raises(InputError, match="rnn"):
            SRNTangents(SRN(2, 3, **kwargs), nn.Linear(3, 1), torch.zeros(1, 2, 2),
                        torch.zeros(1, 2, 3))  # fmt: skip
    with pytest.raises(InputError, match="readout"):
        SRNTangents(SRN(2, 3), nn.GRU(3, 1), torch.zeros(1, 2, 2), torch.zeros(1, 2, 3))
    with pytest.raises(InputError, match="x, seq"):
        SRNTangents(SRN(2, 3), nn.Linear(3, 1), torch.zeros(1, 2, 2), torch.zeros(1, 3, 3))
    # a product of the wrong shape, and a jvp that is not callable, through the optimiser
    w = nn.Parameter(torch.ones(2))
    opt = HessianFree([w])

    def closure_with(jvp):
        def closure():
            z = w * 1.0
            return (z * z).sum(), {"outputs": z, "jvp": jvp}

        return closure

    with pytest.raises(InputError, match="jvp"):
        opt.step(closure_with(lambda t: (torch.ones(3), None)))
    with pytest.raises(InputError, match="jvp"):
        opt.step(closure_with(3))
