r"""``torch.optim.SGD``'s update without torch's per-call machinery, bit for bit.

``optimizer.step()`` of a plain SGD over a few small tensors spends most of its time
outside the arithmetic: a profiler annotation, hook dispatch, grad-mode switching and
choosing between the single-tensor, foreach and fused paths, for every parameter group.
:func:`sgd_step` performs the single-tensor path's arithmetic directly (the path torch
takes on the CPU), in the same order with the same operations, so the parameters and
momentum buffers come out identical (tested against ``SGD.step`` over its options):

.. math::

    g &\leftarrow \pm\nabla + \lambda\, \theta \qquad (- \text{ when maximising};
        \lambda = \text{weight\_decay})\\
    b &\leftarrow g \ \text{(first step)}, \quad
        b \leftarrow \mu b + (1 - \tau) g \ \text{(after)}\\
    \theta &\leftarrow \theta - \eta\, (g + \mu b \ \text{(Nesterov)} \ \text{or}\ b)

(``momentum`` :math:`\mu`, ``dampening`` :math:`\tau`, ``lr`` :math:`\eta`; no
momentum: :math:`\theta \leftarrow \theta - \eta g`). The buffers live where torch keeps
them, ``optimizer.state[p]["momentum_buffer"]``, so ``state_dict`` / checkpoints and
exact resume are unchanged, and a learning-rate schedule sees the step (as through its
wrapper of ``step``). Whenever the fast path might differ it calls ``optimizer.step()``
instead: a subclass of SGD, step hooks, a ``step`` replaced on the instance (other than
by a schedule), foreach / fused / differentiable groups, tensor-valued hyperparameters,
sparse or non-CPU gradients, or a running profiler (whose step annotations then stay).
"""

from __future__ import annotations

import torch
from torch.optim import optimizer as _torch_optimizer

__all__ = ["sgd_step"]

_NUMBERS = (float, int)


def _eligible(opt: torch.optim.Optimizer) -> bool:
    if type(opt) is not torch.optim.SGD or torch.autograd._profiler_enabled():
        return False
    own = vars(opt).get("step")
    # a learning-rate schedule wraps ``opt.step`` only to note that it was called; any
    # other replacement of ``step`` on the instance is the caller's and is kept
    if own is not None and not getattr(own, "_wrapped_by_lr_sched", False):
        return False
    hooks = (
        getattr(opt, "_optimizer_step_pre_hooks", None),
        getattr(opt, "_optimizer_step_post_hooks", None),
        getattr(_torch_optimizer, "_global_optimizer_pre_hooks", None),
        getattr(_torch_optimizer, "_global_optimizer_post_hooks", None),
    )
    if any(h is None or len(h) for h in hooks):  # hooks, or a torch that names them otherwise
        return False
    if getattr(opt, "grad_scale", None) is not None or getattr(opt, "found_inf", None) is not None:
        return False
    for group in opt.param_groups:
        if group.get("foreach") or group.get("fused") or group.get("differentiable"):
            return False
        for key in ("lr", "momentum", "weight_decay", "dampening"):
            if type(group.get(key)) not in _NUMBERS:  # exact types: cheap, and no tensors
                return False
    return True


def sgd_step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()`` for a ``torch.optim.SGD`` (see the module docstring): the same
    update, computed directly on the CPU, or by ``opt.step()`` where it might differ."""
    if not _eligible(opt):
        opt.step()
        return
    work = []
    for group in opt.param_groups:
        params = []
        for p in group["params"]:
            g = p.grad
            if g is not None:
                if g.is_sparse or not g.is_cpu:  # (a gradient is on its parameter's device)
                    opt.step()
                    return
                params.append(p)
        work.append((group, params))
    if "step" in vars(opt):
        opt._opt_called = True  # what the schedule's wrapper records (no warning on its step)
    state = opt.state
    with torch.no_grad():
        for group, params in work:
            lr, wd = group["lr"], group["weight_decay"]
            mu, tau = group["momentum"], group["dampening"]
            nesterov, maximize = group["nesterov"], group["maximize"]
            for p in params:
                grad = p.grad if not maximize else -p.grad
                if wd != 0:
                    grad = grad.add(p, alpha=wd)
                if mu != 0:
                    st = state[p]
                    buf = st.get("momentum_buffer")
                    if buf is None:
                        buf = grad.detach().clone()
                    else:
                        buf.mul_(mu).add_(grad, alpha=1 - tau)
                    st["momentum_buffer"] = buf
                    grad = grad.add(buf, alpha=mu) if nesterov else buf
                p.add_(grad, alpha=-lr)
