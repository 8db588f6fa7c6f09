r"""Hessian-free optimisation (Martens 2010; Martens & Sutskever 2011).

Each outer step minimises a damped local quadratic model of the loss by conjugate
gradient (CG), using only curvature-vector products with the Gauss-Newton matrix:

.. math::

    q_\theta(p) = f(\theta) + g^\top p + \tfrac12 p^\top (G + \lambda I
        + \lambda\mu\, G_S) p, \qquad
    G = J^\top H_L J, \qquad G_S = J_h^\top H_D J_h .

=====================  ===============================================================
symbol                 meaning
=====================  ===============================================================
:math:`\theta`         all parameters, flattened (P)
:math:`z`              the network's outputs before the loss (``outputs``), any shape
:math:`J`              :math:`\partial z / \partial \theta`, the Jacobian of the outputs
:math:`H_L`            :math:`\partial^2 L / \partial z^2` (PSD: the loss is convex in z:
                       squared error, cross-entropy on logits)
:math:`g`              :math:`\nabla_\theta L`, the gradient of the minibatch loss
:math:`\lambda`        Tikhonov damping (``damping``), adjusted Levenberg-Marquardt style
:math:`\mu`            structural damping weight (``structural_damping``)
:math:`h`              the hidden states (``hidden``, optional), :math:`J_h` their Jacobian
:math:`H_D`            the Hessian of :math:`D(h) = \frac1{2B}\lVert h - h_n\rVert^2`,
                       :math:`I / B` with B the leading dimension of ``hidden``
:math:`\rho`           reduction ratio :math:`(f(\theta+p) - f(\theta)) / (q(p) - q(0))`,
                       with the undamped model :math:`g^\top p + \frac12 p^\top G p`
=====================  ===============================================================

Curvature-vector products never form G. :math:`J v` is the R-op, taken with the
double-backward trick: :math:`u \mapsto J^\top u` is linear in u, so
:math:`J v = \partial (J^\top u \cdot v) / \partial u`; the graph of :math:`J^\top u` is
built once per outer step and reused by every CG iteration. :math:`H_L (J v)` is a
double backward through the loss alone, and :math:`J^\top (\cdot)` an ordinary
vector-Jacobian product. So the generic path needs a model that supports double
backward: rnnlab's recurrent layers do with ``engine="loop"`` everywhere and with
``engine="fused"`` on the CPU (torch's kernel, where the configuration has one; cuDNN has
no double backward). The hand-written BPTT kernels refuse it with a clear RuntimeError.

The fast path: the closure may hand over an explicit forward-mode product
(``outputs["jvp"]``, below), such as :class:`SRNTangents`, the R-op of a one-layer tanh
SRN and its linear read-out written out step by step. Then no graph of
:math:`J^\top u` is built, :math:`J v` is one forward recursion, and
:math:`J^\top w` is an ordinary backward through the model's own graph, so the model may
run on ``engine="bptt"`` (hand-written kernels, ragged lengths included). The products
are the same (tests: equal to the explicit :math:`J^\top H_L J` and to the generic path
to 1e-10 in float64). Measured (one HF outer step of ``rnnlab reproduce four-ways``' HF
net: 50 tanh units, adding T = 100 with ragged lengths, gradient batch 500, curvature
100, structural damping; one thread of the 2-core CPU machine, load 1.5-1.8; 5 alternated pairs
from the same weights and batches): 3.61 s on ``loop`` with the generic products against
0.76 s on ``bptt`` with :class:`SRNTangents`, 4.5x (pairs 4.1-6.7x); a curvature product
87-113 ms against 12-26 ms (5.4x, 4.3-7.2x). With the products this cheap, the rest of a
step (the gradient on 500 sequences, the backtracking and line-search forward passes) is
about half of it.

One outer step (Martens 2010, Alg. 1; Martens & Sutskever 2011, §4 and 2012, §8):

1. ``closure()`` gives the loss and outputs; g by backward.
2. CG on :math:`(G + \lambda I + \lambda\mu G_S) p = -g` from the previous direction times
   ``cg_decay``, preconditioned by :math:`M = (\mathrm{diag}(g \odot g) + \lambda)^{0.75}`
   when ``preconditioner=True`` (Martens uses the per-case squared gradients; the
   minibatch gradient's square is used here), stopped by Martens' relative-progress rule:
   after iteration i, with :math:`k = \max(10, 0.1 i)`, stop when :math:`\phi_i < 0` and
   :math:`(\phi_i - \phi_{i-k}) / \phi_i < k\,\epsilon` (:math:`\epsilon` = ``cg_tol``,
   :math:`\phi` the quadratic CG minimises), or at ``cg_max_iter``.
3. Backtracking over the CG iterates kept at iterations :math:`\lceil 1.3^j \rceil`: from
   the last, step back while the earlier iterate has a lower loss.
4. :math:`\rho` from that iterate; :math:`\lambda \leftarrow \frac32\lambda` if
   :math:`\rho < \frac14`, :math:`\frac23\lambda` if :math:`\rho > \frac34`.
5. A backtracking line search on the step size (from ``lr``, times 0.8 until
   :math:`f(\theta + \alpha p) \le f(\theta) + 10^{-2} \alpha g^\top p`, at most 20
   tries; no update when none is accepted).

Closure protocol: ``closure()`` recomputes the forward pass with gradients enabled and
returns ``(loss, outputs)``. ``outputs`` is the tensor z, or ``(z, hidden)`` for
structural damping, or a dict with keys ``"outputs"``, optional ``"hidden"`` and optional
``"curvature"``: a zero-argument callable returning ``(loss, outputs)`` on a separate
(smaller) curvature minibatch, used for the products instead of the gradient batch, and
optional ``"jvp"``: a callable ``jvp(tangents) -> (J v, J_h v)`` (``tangents`` a dict
{parameter: v}; :class:`SRNTangents`) that replaces the double-backward R-op (taken from
the curvature closure's outputs when there is one).
The closure is also called under ``torch.no_grad()`` to evaluate trial points.

Example::

    model = RecurrentNet(SRN(2, 100, engine="bptt"), 1)
    opt = HessianFree(model.parameters(), damping=1.0, structural_damping=0.3)

    def closure():
        out, state = model.rnn(x, lengths=lengths)     # (B, T, H)
        z = model.head(state[-1])                      # (B, 1)
        jvp = SRNTangents(model.rnn, model.head, x, out, lengths)  # J v without 2nd backward
        return F.mse_loss(z, y), {"outputs": z, "hidden": out, "jvp": jvp}

(without ``"jvp"``, i.e. ``(z, out)`` as the outputs, build the SRN with ``engine="loop"``).

    for _ in range(100):
        loss = opt.step(closure)

With :class:`rnnlab.train.Trainer`: ``loss_fn`` returns ``StepOutput(loss, items,
outputs=(z, out))`` and the loop calls ``opt.step(closure)`` (``takes_closure``); the
checkpoint holds the damping and the CG warm start.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from rnnlab.errors import InputError, InputTypeError

Vec = list[Tensor]  # one tensor per parameter


def _dot(a: Vec, b: Vec) -> Tensor:
    return sum((x * y).sum() for x, y in zip(a, b))


def _axpy(alpha, x: Vec, y: Vec) -> Vec:
    """alpha * x + y."""
    return [alpha * a + b for a, b in zip(x, y)]


def _scale(alpha, x: Vec) -> Vec:
    return [alpha * a for a in x]


class GaussNewton:
    """Products with :math:`G + \\lambda I + \\lambda\\mu G_S` on one graph.

    loss: 0-d tensor computed from ``outputs``; params: the parameters (P);
    hidden: optional hidden states (any shape, leading dimension B) for structural damping;
    damping, structural: :math:`\\lambda` and :math:`\\mu`. ``gn(v)`` is
    :math:`G v + \\lambda v + \\lambda\\mu G_S v`; ``gn.undamped(v)`` is :math:`G v`.
    jvp: optional forward-mode product ``jvp(tangents) -> (J v, J_h v)`` (``tangents`` a
    dict {parameter: v}; J_h v may be None without hidden states), e.g.
    :class:`SRNTangents`; it replaces the double-backward R-op (no graph of
    :math:`J^\\top u` is built), and :math:`J^\\top w` stays a backward through the
    graph of ``outputs`` and ``hidden``, which then needs no double backward.
    """

    def __init__(
        self,
        loss: Tensor,
        outputs: Tensor,
        params: Sequence[Tensor],
        *,
        hidden: Tensor | None = None,
        damping: float = 0.0,
        structural: float = 0.0,
        jvp: Callable[[dict], tuple[Tensor, Tensor | None]] | None = None,
    ) -> None:
        self.params = list(params)
        self.outputs = outputs
        self.damping, self.structural = float(damping), float(structural)
        # dL/dz with its graph: H_L w = d(dL/dz . w)/dz
        (self._dldz,) = torch.autograd.grad(loss, outputs, create_graph=True)
        self.hidden = hidden if (hidden is not None and structural > 0) else None
        # one linearisation of (z, h) together: each product then takes one double
        # backward for (J v, J_h v) and one backward for J^T w + J_h^T w_h, where separate
        # graphs took two of each (the recurrence is traversed half as often)
        self._ys = [outputs] + ([self.hidden] if self.hidden is not None else [])
        self._explicit_jvp = jvp
        self._lin = None if jvp is not None else self._linearise(self._ys)

    def _linearise(self, ys: list[Tensor]):
        """The graph of (u_y) -> sum_y J_y^T u_y (linear in the u), for every J_y v by one
        second backward."""
        us = [torch.zeros_like(y, requires_grad=True) for y in ys]
        jtu = torch.autograd.grad(ys, self.params, grad_outputs=us, create_graph=True,
                                  allow_unused=True)  # fmt: skip
        pairs = [(j, p) for j, p in zip(jtu, self.params) if j is not None and j.requires_grad]
        return us, pairs

    def _jvp(self, v: Vec) -> list[Tensor]:
        """[J_y v for y in (z, h)] (shapes of z and h) by the double-backward trick, or by
        the explicit forward-mode product when one was given."""
        if self._explicit_jvp is not None:
            return self._forward_mode(v)
        us, pairs = self._lin
        if not pairs:
            return [torch.zeros_like(u) for u in us]
        index = {id(p): i for i, p in enumerate(self.params)}
        jvs = torch.autograd.grad(
            [j for j, _ in pairs],
            us,
            grad_outputs=[v[index[id(p)]] for _, p in pairs],
            retain_graph=True,
            allow_unused=True,
        )
        return [torch.zeros_like(u) if jv is None else jv for jv, u in zip(jvs, us)]

    def _forward_mode(self, v: Vec) -> list[Tensor]:
        jz, jh = self._explicit_jvp(dict(zip(self.params, v)))
        out = [jz] if self.hidden is None else [jz, jh]
        for name, got, y in zip(("J v", "J_h v"), out, self._ys):
            if not isinstance(got, Tensor) or got.shape != y.shape:
                shape = tuple(got.shape) if isinstance(got, Tensor) else type(got).__name__
                raise InputError(
                    f"jvp: expected {name} of shape {tuple(y.shape)} (the shape of the "
                    f"{'outputs' if name == 'J v' else 'hidden states'}), received {shape}"
                )
        return out

    def _vjp(self, ys: list[Tensor], ws: list[Tensor]) -> Vec:
        g = torch.autograd.grad(ys, self.params, grad_outputs=ws, retain_graph=True,
                                allow_unused=True)  # fmt: skip
        return [torch.zeros_like(p) if x is None else x for x, p in zip(g, self.params)]

    def _loss_hvp(self, w: Tensor) -> Tensor:
        """H_L w: the Hessian of the loss in the outputs times w."""
        if not self._dldz.requires_grad:  # the loss is linear in z: H_L = 0
            return torch.zeros_like(w)
        (hw,) = torch.autograd.grad(self._dldz, self.outputs, grad_outputs=w,
                                    retain_graph=True, allow_unused=True)  # fmt: skip
        return torch.zeros_like(w) if hw is None else hw

    def undamped(self, v: Vec) -> Vec:
        """G v = J^T H_L J v."""
        return self._vjp([self.outputs], [self._loss_hvp(self._jvp(v)[0])])

    def structural_product(self, v: Vec) -> Vec:
        """G_S v = J_h^T J_h v / B (zero without hidden states)."""
        if self.hidden is None:
            return [torch.zeros_like(p) for p in self.params]
        jv = self._jvp(v)[1]  # shape of hidden
        return self._vjp([self.hidden], [jv / self.hidden.shape[0]])

    def __call__(self, v: Vec) -> Vec:
        jvs = self._jvp(v)  # J v, and J_h v with structural damping
        ws = [self._loss_hvp(jvs[0])]
        if self.hidden is not None:  # J^T H_L J v + lambda mu J_h^T J_h v / B, one backward
            ws.append(jvs[1] * (self.damping * self.structural / self.hidden.shape[0]))
        return _axpy(self.damping, v, self._vjp(self._ys, ws))


class SRNTangents:
    r"""The explicit forward-mode product (R-op) of a one-layer tanh SRN and its linear
    read-out: :math:`v \mapsto (J v, J_h v)`, for :class:`GaussNewton`'s ``jvp``.

    With :math:`a_t = W x_t + U h_{t-1} + b`, :math:`h_t = \tanh(a_t)`, :math:`h_0 = 0`
    and the read-out :math:`z = W_o h + b_o` (of the final state, or of every step with
    ``per_step``), the directional derivatives along :math:`v = (V_W, V_U, V_b, V_o,
    v_o)` are

    .. math::

        R a_t = V_W x_t + V_U h_{t-1} + V_b + U\, R h_{t-1}, \qquad
        R h_t = (1 - h_t^2) \odot R a_t, \qquad R z = V_o h + v_o + W_o\, R h,

    :math:`V_b` the tangent of both biases summed. The input-side terms
    :math:`V_W x_t + V_U h_{t-1} + V_b` are one matmul each over all steps; the recursion
    is one ``addmm`` and one multiply per step. With ``lengths`` the factor
    :math:`1 - h_t^2` is zeroed past each length, so :math:`R h_t = 0` there as the
    layer's outputs are zero there; :math:`R h` of the final state is taken at each
    sequence's last step.

    rnn: an ``rnnlab.nn.SRN`` with one unidirectional tanh layer, no recurrent dropout and
    no learned initial state (zero initial state). readout: the ``torch.nn.Linear``
    applied to the final state (or to every step with ``per_step``). x: the input
    (B, T, F); seq: the layer's outputs (B, T, H) for that input (the hidden states of
    structural damping); lengths: the valid lengths (B,) or None. The states are read
    from ``seq``, so the product is the R-op of the forward pass that produced it, by
    whichever engine. Nothing is computed until the first call (the closure also runs
    under ``torch.no_grad()`` for trial points, where no product is taken).
    """

    def __init__(self, rnn, readout, x: Tensor, seq: Tensor, lengths: Tensor | None = None,
                 *, per_step: bool = False) -> None:  # fmt: skip
        from rnnlab.nn import SRN

        if not isinstance(rnn, SRN):
            raise InputTypeError(f"rnn: expected an rnnlab.nn.SRN, received {type(rnn).__name__}")
        unsupported = [
            name for name, bad in (
                ("num_layers", rnn.num_layers != 1), ("bidirectional", rnn.bidirectional),
                ("nonlinearity", rnn.nonlinearity != "tanh"),
                ("recurrent_dropout", rnn.recurrent_dropout > 0),
                ("learn_initial_state", rnn.learn_initial_state),
            ) if bad
        ]  # fmt: skip
        if unsupported:
            raise InputError(
                "rnn: expected one unidirectional tanh layer without recurrent dropout or a "
                f"learned initial state, received an SRN with {', '.join(unsupported)} "
                "different (use GaussNewton's generic double-backward product for it)"
            )
        if not isinstance(readout, torch.nn.Linear):
            raise InputTypeError(
                f"readout: expected a torch.nn.Linear, received {type(readout).__name__}"
            )
        if x.dim() != 3 or seq.dim() != 3 or seq.shape[:2] != x.shape[:2]:
            raise InputError(
                f"x, seq: expected (B, T, F) and (B, T, H) with the same B, T, received "
                f"{tuple(x.shape)} and {tuple(seq.shape)}"
            )
        self.rnn, self.readout, self.per_step = rnn, readout, bool(per_step)
        self._x, self._seq, self._lengths = x.detach(), seq.detach(), lengths
        self._ready = False

    def _prepare(self) -> None:
        x, h, lengths = self._x, self._seq, self._lengths
        B, T, H = h.shape
        h_tm = h.transpose(0, 1)  # (T, B, H)
        K = 1 - h_tm * h_tm  # tanh'(a_t) = 1 - h_t^2, (T, B, H)
        if lengths is not None:
            valid = torch.arange(T, device=h.device).unsqueeze(1) < lengths.to(h.device)
            K = K * valid.unsqueeze(-1)  # (T, B, 1): R h_t = 0 past each length
            x = torch.where(valid.t().unsqueeze(-1), x, 0.0)  # NaN padding stays out
            last = h[torch.arange(B, device=h.device), lengths.to(h.device) - 1]  # (B, H)
        else:
            last = h[:, -1]
        self._K = K.contiguous()
        self._x_tm = x.transpose(0, 1).reshape(T * B, -1).to(h.dtype)  # (T*B, F)
        prev = torch.cat([h_tm.new_zeros(1, B, H), h_tm[:-1]])  # h_{t-1}, (T, B, H)
        self._prev = prev.reshape(T * B, H)
        self._last = last  # (B, H)
        self._ready = True

    def __call__(self, tangents: dict) -> tuple[Tensor, Tensor]:
        if not self._ready:
            self._prepare()
        rnn, head = self.rnn, self.readout
        B, T, H = self._seq.shape
        K = self._K

        def tan(p):
            return None if p is None else tangents.get(p)

        v_w, v_u = tan(rnn.weight_ih_l0), tan(rnn.weight_hh_l0)
        v_b = [t for t in (tan(getattr(rnn, "bias_ih_l0", None)),
                           tan(getattr(rnn, "bias_hh_l0", None))) if t is not None]  # fmt: skip
        # the input-side terms of R a_t for all steps: (T*B, H)
        ra = self._x_tm.new_zeros(T * B, H)
        if v_w is not None:
            ra = ra.addmm_(self._x_tm, v_w.t())
        if v_u is not None:
            ra = ra.addmm_(self._prev, v_u.t())
        for b in v_b:
            ra = ra.add_(b)
        ra = ra.view(T, B, H)
        u_t = rnn.weight_hh_l0.detach().t()  # (H, H)
        rh = torch.empty_like(ra)  # R h_t, (T, B, H)
        torch.mul(ra[0], K[0], out=rh[0])  # R h_0 = 0
        for t in range(1, T):
            torch.addmm(ra[t], rh[t - 1], u_t, out=rh[t]).mul_(K[t])
        r_seq = rh.transpose(0, 1)  # (B, T, H), zero past each length
        if self.per_step:
            h_in, r_in = self._seq, r_seq
        elif self._lengths is not None:
            h_in = self._last
            r_in = rh[self._lengths.to(rh.device) - 1, torch.arange(B, device=rh.device)]
        else:
            h_in, r_in = self._last, rh[-1]
        rz = r_in @ head.weight.detach().t()  # W_o R h: (B, O) or (B, T, O)
        v_o, v_ob = tan(head.weight), tan(head.bias)
        if v_o is not None:
            rz = rz + h_in @ v_o.t()
        if v_ob is not None:
            rz = rz + v_ob
        return rz, r_seq


def conjugate_gradient(
    A: Callable[[Vec], Vec],
    b: Vec,
    x0: Vec | None = None,
    *,
    max_iter: int = 250,
    tol: float = 5e-4,
    min_iter: int = 1,
    preconditioner: Vec | None = None,
    keep: Callable[[int], bool] | None = None,
) -> tuple[Vec, list[tuple[int, Vec]], int]:
    """Preconditioned CG on :math:`A x = b` (A symmetric positive definite), minimising
    :math:`\\phi(x) = \\frac12 x^\\top A x - b^\\top x`, with Martens' relative-progress
    termination (``tol`` = :math:`\\epsilon`; see the module docstring) or a residual
    below 1e-10 of ``b``'s norm.

    preconditioner: the diagonal M (one tensor per parameter); CG uses :math:`M^{-1} r`.
    keep(i): whether to keep iterate i (default: :math:`i = \\lceil 1.3^j \\rceil`).
    Returns (final x, [(i, x_i) kept, the final one last], iterations run).
    """
    if keep is None:
        marks = {math.ceil(1.3**j) for j in range(200)}
        keep = marks.__contains__
    x = [torch.zeros_like(t) for t in b] if x0 is None else [t.clone() for t in x0]
    r = _axpy(-1.0, A(x), b) if x0 is not None else [t.clone() for t in b]  # b - A x
    z = r if preconditioner is None else [a / m for a, m in zip(r, preconditioner)]
    p = [t.clone() for t in z]
    rz = _dot(r, z)
    b_norm = float(_dot(b, b)) ** 0.5
    phis: list[float] = []
    kept: list[tuple[int, Vec]] = []
    i = 0
    for i in range(1, max_iter + 1):
        Ap = A(p)
        pAp = _dot(p, Ap)
        if float(pAp) <= 0:  # not positive definite along p (round-off): stop
            i -= 1
            break
        alpha = rz / pAp
        x = _axpy(alpha, p, x)
        r = _axpy(-alpha, Ap, r)
        phis.append(float(-0.5 * _dot(x, _axpy(1.0, r, b))))  # phi(x) = -(x . (r + b)) / 2
        if keep(i):
            kept.append((i, [t.clone() for t in x]))
        k = max(10, int(0.1 * i))
        phi = phis[-1]
        if i >= min_iter and i > k and phi < 0 and (phi - phis[-1 - k]) / phi < k * tol:
            break
        if float(_dot(r, r)) ** 0.5 <= 1e-10 * b_norm:
            break
        z = r if preconditioner is None else [a / m for a, m in zip(r, preconditioner)]
        rz_new = _dot(r, z)
        p = _axpy(rz_new / rz, p, z)
        rz = rz_new
    if not kept or kept[-1][0] != i:
        kept.append((i, [t.clone() for t in x]))
    return x, kept, i


def _split_outputs(outputs):
    """(z, hidden, curvature closure, explicit jvp) from the closure's second value."""
    if isinstance(outputs, dict):
        if "outputs" not in outputs:
            raise InputError("closure: a dict of outputs needs the key 'outputs'")
        jvp = outputs.get("jvp")
        if jvp is not None and not callable(jvp):
            raise InputTypeError(
                f"closure: outputs['jvp'] must be callable, received {type(jvp).__name__}"
            )
        return outputs["outputs"], outputs.get("hidden"), outputs.get("curvature"), jvp
    if isinstance(outputs, (tuple, list)):
        if len(outputs) != 2:
            raise InputError(
                f"closure: outputs as a tuple must be (outputs, hidden), received "
                f"{len(outputs)} entries"
            )
        return outputs[0], outputs[1], None, None
    return outputs, None, None, None


def _check_loss(value, where: str = "closure") -> Tensor:
    if not isinstance(value, Tensor) or value.numel() != 1:
        raise InputError(
            f"{where}: expected to return (loss, outputs) with loss a 0-d tensor, "
            f"received loss {type(value).__name__}"
        )
    return value.reshape(())


class HessianFree(torch.optim.Optimizer):
    """Hessian-free optimiser with the Gauss-Newton matrix, structural damping and
    Levenberg-Marquardt damping (see the module docstring for the algorithm and the
    closure protocol).

    Args:
        params: parameters (one group), all requiring gradients.
        lr: the step size the line search starts from (1: the CG step itself).
        damping: initial :math:`\\lambda` > 0 (adjusted every step when ``adapt_damping``).
        structural_damping: :math:`\\mu \\ge 0`, the weight of the hidden-state penalty
            (Martens & Sutskever 2011 use 1/30 for their RNNs); needs ``hidden`` outputs.
        cg_max_iter: CG iterations at most per step (>= 1).
        cg_tol: :math:`\\epsilon` of the relative-progress termination (> 0).
        cg_min_iter: CG iterations at least (before the relative-progress rule applies).
        cg_decay: the previous direction times this starts the next CG run (0: from 0).
        preconditioner: the diagonal preconditioner :math:`(g \\odot g + \\lambda)^{0.75}`.
        adapt_damping: Levenberg-Marquardt adjustment of :math:`\\lambda` from :math:`\\rho`.
        line_search: the final backtracking line search on the step size.
        min_damping, max_damping: bounds of the adjusted :math:`\\lambda`.

    After each step ``last_step`` holds diagnostics: loss before/after, rho, the damping,
    CG iterations, the chosen iterate and the step size.
    """

    takes_closure = True

    def __init__(
        self,
        params,
        lr: float = 1.0,
        damping: float = 1.0,
        structural_damping: float = 0.0,
        cg_max_iter: int = 250,
        cg_tol: float = 5e-4,
        cg_min_iter: int = 1,
        cg_decay: float = 0.95,
        preconditioner: bool = False,
        adapt_damping: bool = True,
        line_search: bool = True,
        min_damping: float = 1e-8,
        max_damping: float = 1e8,
    ) -> None:
        def number(name, v):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise InputTypeError(f"{name}: expected a finite number, received {v!r}")
            return float(v)

        def integer(name, v, low):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InputError(f"{name}: expected an integer >= {low}, received {v!r}")
            return v

        if number("lr", lr) <= 0:
            raise InputError(f"lr: expected a number > 0, received {lr!r}")
        if number("damping", damping) <= 0:
            raise InputError(f"damping: expected a number > 0, received {damping!r}")
        if number("structural_damping", structural_damping) < 0:
            raise InputError(
                f"structural_damping: expected a number >= 0, received {structural_damping!r}"
            )
        integer("cg_max_iter", cg_max_iter, 1)
        integer("cg_min_iter", cg_min_iter, 1)
        if number("cg_tol", cg_tol) <= 0:
            raise InputError(f"cg_tol: expected a number > 0, received {cg_tol!r}")
        if not 0.0 <= number("cg_decay", cg_decay) <= 1.0:
            raise InputError(f"cg_decay: expected a number in [0, 1], received {cg_decay!r}")
        if not 0 < number("min_damping", min_damping) <= number("max_damping", max_damping):
            raise InputError(
                f"min_damping, max_damping: expected 0 < min_damping <= max_damping, "
                f"received {min_damping!r}, {max_damping!r}"
            )
        defaults = dict(
            lr=float(lr), damping=float(damping), structural_damping=float(structural_damping),
            cg_max_iter=cg_max_iter, cg_tol=float(cg_tol), cg_min_iter=cg_min_iter,
            cg_decay=float(cg_decay), preconditioner=bool(preconditioner),
            adapt_damping=bool(adapt_damping), line_search=bool(line_search),
            min_damping=float(min_damping), max_damping=float(max_damping), hf_steps=0,
        )  # fmt: skip
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise InputError(
                f"params: HessianFree takes one parameter group, received {len(self.param_groups)}"
            )
        frozen = [i for i, p in enumerate(self.param_groups[0]["params"]) if not p.requires_grad]
        if frozen:
            raise InputError(
                f"params: every parameter must require gradients; parameters {frozen} do not "
                "(leave frozen parameters out of the list)"
            )
        self.last_step: dict = {}

    # -- helpers ----------------------------------------------------------------------

    def _params(self) -> list[Tensor]:
        return self.param_groups[0]["params"]

    @torch.no_grad()
    def _loss_at(self, closure, delta: Vec | None, alpha: float = 1.0) -> float:
        """f(theta + alpha delta) by the closure, the parameters restored afterwards.

        The trial values are swapped in as new tensors (``p.data = ...``), not added in
        place, so the graph kept for the curvature products stays valid."""
        params = self._params()
        saved = [p.data for p in params]
        if delta is not None:
            for p, d in zip(params, delta):
                p.data = p.data + alpha * d
        try:
            loss, _ = closure()
            value = float(_check_loss(loss))
        finally:
            for p, old in zip(params, saved):
                p.data = old
        return value if math.isfinite(value) else math.inf

    def step(self, closure=None):  # noqa: C901  (one algorithm, read top to bottom)
        """One outer HF step; returns the loss at the new parameters (a 0-d tensor)."""
        if closure is None or not callable(closure):
            raise InputError(
                "closure: HessianFree.step needs a closure that recomputes the forward pass "
                f"and returns (loss, outputs), received {closure!r}"
            )
        group = self.param_groups[0]
        params = self._params()
        lam, mu = group["damping"], group["structural_damping"]

        # 1. loss, outputs and gradient on the gradient batch
        with torch.enable_grad():
            result = closure()
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                raise InputError(
                    f"closure: expected to return (loss, outputs), received {type(result).__name__}"
                )
            loss, outputs = result
            loss = _check_loss(loss)
            z, hidden, curvature, jvp = _split_outputs(outputs)
            if not isinstance(z, Tensor):
                raise InputError(
                    "closure: outputs must be the network's output tensor before the loss "
                    f"(the Gauss-Newton matrix is taken in it), received {type(z).__name__}"
                )
            if mu > 0 and hidden is None:
                raise InputError(
                    "structural_damping: > 0 needs the hidden states; return (loss, "
                    "(outputs, hidden)) from the closure"
                )
            f0 = float(loss.detach())
            if not math.isfinite(f0):
                self.last_step = {"loss": f0, "skipped": "non-finite loss"}
                return loss.detach()
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            grads = [torch.zeros_like(p) if g is None else g.detach()
                     for g, p in zip(grads, params)]  # fmt: skip
            if curvature is not None:  # a separate curvature minibatch
                closs, cout = curvature()
                closs = _check_loss(closs, "curvature closure")
                cz, chidden, _, cjvp = _split_outputs(cout)
            else:
                closs, cz, chidden, cjvp = loss, z, hidden, jvp
            gn = GaussNewton(closs, cz, params, hidden=chidden if mu > 0 else None,
                             damping=lam, structural=mu, jvp=cjvp)  # fmt: skip

            def A(v):
                return [t.detach() for t in gn(v)]

            # 2. CG from the decayed previous direction
            x0 = None
            if group["cg_decay"] > 0 and all("direction" in self.state[p] for p in params):
                x0 = [group["cg_decay"] * self.state[p]["direction"] for p in params]
            precond = None
            if group["preconditioner"]:
                precond = [(g * g + lam) ** 0.75 for g in grads]
            b = [-g for g in grads]
            x, kept, iters = conjugate_gradient(
                A, b, x0, max_iter=group["cg_max_iter"], tol=group["cg_tol"],
                min_iter=group["cg_min_iter"], preconditioner=precond,
            )  # fmt: skip
            for p, d in zip(params, x):
                self.state[p]["direction"] = d.detach().clone()

            # 3. backtracking over the kept CG iterates
            j = len(kept) - 1
            f_best = self._loss_at(closure, kept[j][1])
            while j > 0:
                f_prev = self._loss_at(closure, kept[j - 1][1])
                if f_prev >= f_best:
                    break
                j, f_best = j - 1, f_prev
            chosen_iter, p_dir = kept[j]

            # 4. reduction ratio with the undamped quadratic; Levenberg-Marquardt
            gp = float(_dot(grads, p_dir))
            pGp = float(_dot(p_dir, [t.detach() for t in gn.undamped(p_dir)]))
        q = gp + 0.5 * pGp
        rho = (f_best - f0) / q if q < 0 else -math.inf
        if group["adapt_damping"]:
            if rho < 0.25:
                lam *= 1.5
            elif rho > 0.75:
                lam *= 2.0 / 3.0
            group["damping"] = min(max(lam, group["min_damping"]), group["max_damping"])

        # 5. line search on the step size
        alpha, f_new = group["lr"], f_best
        if alpha != 1.0:
            f_new = self._loss_at(closure, p_dir, alpha)
        if group["line_search"]:
            tries = 0
            while f_new > f0 + 1e-2 * alpha * gp and tries < 20:
                alpha *= 0.8
                f_new = self._loss_at(closure, p_dir, alpha)
                tries += 1
            if f_new > f0 + 1e-2 * alpha * gp:
                alpha, f_new = 0.0, f0
        elif not math.isfinite(f_new):
            alpha, f_new = 0.0, f0
        with torch.no_grad():
            if alpha > 0:
                for p, d in zip(params, p_dir):
                    p.add_(d, alpha=alpha)
            final_loss, _ = closure()  # the caller sees the loss (and outputs) at the new point
        group["hf_steps"] += 1
        self.last_step = {
            "loss_before": f0, "loss": float(final_loss), "rho": rho,
            "damping": group["damping"], "cg_iterations": iters,
            "chosen_iteration": chosen_iter, "step_size": alpha,
        }  # fmt: skip
        return final_loss.detach()


__all__ = ["GaussNewton", "HessianFree", "SRNTangents", "conjugate_gradient"]
