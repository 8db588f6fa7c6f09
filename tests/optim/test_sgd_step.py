"""sgd_step is torch.optim.SGD.step bit for bit, and defers to it where it might differ."""

from __future__ import annotations

import itertools

import pytest
import torch

from rnnlab.optim.sgd import sgd_step


def _problem(dtype):
    g = torch.Generator().manual_seed(0)
    params = [
        torch.nn.Parameter(torch.randn(5, 4, generator=g, dtype=dtype)),
        torch.nn.Parameter(torch.randn(4, generator=g, dtype=dtype)),
        torch.nn.Parameter(torch.randn(3, generator=g, dtype=dtype)),  # never gets a gradient
    ]
    grads = [[torch.randn(p.shape, generator=g, dtype=dtype) for p in params[:2]] for _ in range(4)]
    return params, grads


def _run(options, dtype, fast: bool):
    params, grads = _problem(dtype)
    opt = torch.optim.SGD(
        [{"params": params[:1], "weight_decay": 0.0}, {"params": params[1:]}], **options
    )
    for step_grads in grads:
        for p, gr in zip(params, step_grads):
            p.grad = gr.clone()
        sgd_step(opt) if fast else opt.step()
        opt.param_groups[0]["lr"] *= 0.5  # a schedule between steps
    return params, opt


OPTIONS = [
    dict(lr=lr, momentum=mu, dampening=tau, weight_decay=wd, nesterov=nest, maximize=mx)
    for lr, mu, tau, wd, nest, mx in itertools.product(
        [0.1], [0.0, 0.9], [0.0, 0.3], [0.0, 1e-2], [False, True], [False, True]
    )
    if not (nest and (mu == 0 or tau != 0))  # torch refuses Nesterov without momentum
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_sgd_step_is_torch_sgd_step_bit_for_bit(options, dtype):
    ref_params, ref_opt = _run(options, dtype, fast=False)
    got_params, got_opt = _run(options, dtype, fast=True)
    for p, q in zip(ref_params, got_params):
        assert torch.equal(p, q)
    ref_state, got_state = ref_opt.state_dict(), got_opt.state_dict()
    assert ref_state["param_groups"] == got_state["param_groups"]
    assert ref_state["state"].keys() == got_state["state"].keys()
    for k in ref_state["state"]:
        for name, v in ref_state["state"][k].items():
            assert torch.equal(v, got_state["state"][k][name])


def test_hooks_subclasses_and_the_profiler_go_through_torch_step():
    params, _ = _problem(torch.float32)
    opt = torch.optim.SGD(params, lr=0.1)
    calls = []
    handle = opt.register_step_post_hook(lambda *a: calls.append(1))
    params[0].grad = torch.ones_like(params[0])
    sgd_step(opt)
    assert calls == [1]  # the hook ran: torch's step was used
    handle.remove()

    class MySGD(torch.optim.SGD):
        steps = 0

        def step(self, closure=None):
            type(self).steps += 1
            return super().step(closure)

    sub = MySGD(params, lr=0.1)
    sgd_step(sub)
    assert MySGD.steps == 1

    with torch.profiler.profile() as prof:
        sgd_step(opt)
    assert any("Optimizer.step" in e.key for e in prof.key_averages())


def test_a_schedule_sees_the_step_and_an_instance_step_is_kept(recwarn):
    params, grads = _problem(torch.float32)
    runs = []
    for fast in (False, True):
        ps = [p.detach().clone().requires_grad_() for p in params]
        opt = torch.optim.SGD(ps, lr=0.1, momentum=0.9)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0 / (1 + k))
        for step_grads in grads:
            for p, gr in zip(ps, step_grads):
                p.grad = gr.clone()
            sgd_step(opt) if fast else opt.step()
            sched.step()
        runs.append(ps)
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]
    for p, q in zip(*runs):
        assert torch.equal(p, q)

    opt = torch.optim.SGD(params, lr=0.1)
    calls = []
    opt.step = lambda closure=None: calls.append(1)  # the caller's own step
    params[0].grad = torch.ones_like(params[0])
    sgd_step(opt)
    assert calls == [1]


def test_a_sparse_gradient_goes_through_torch_step():
    results = []
    for fast in (False, True):
        p = torch.nn.Parameter(torch.arange(6.0).reshape(3, 2))
        opt = torch.optim.SGD([p], lr=0.5)
        p.grad = torch.sparse_coo_tensor([[0, 2], [1, 0]], [1.0, -2.0], (3, 2))
        sgd_step(opt) if fast else opt.step()
        results.append(p.detach().clone())
    assert torch.equal(*results)
