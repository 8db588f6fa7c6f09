r"""The echo state network: a fixed random reservoir and a trained linear readout.

Jaeger (2001, "The 'echo state' approach to analysing and training recurrent neural
networks"); leaky integrators after Jaeger et al. (2007). The reservoir (see
:mod:`rnnlab.esn.reservoir` for the recurrence and its symbols) is never trained; only the
readout

.. math::

    y_t = W_{out} x_t + b_{out}

is, by ridge regression on the states collected while the reservoir is driven by the
inputs and, with output feedback, by the teacher outputs :math:`y_{t-1}` (teacher
forcing). In closed loop (:meth:`EchoStateNetwork.generate`) the network feeds back its
own :math:`y_{t-1}` and runs free: the generative mode.

=================  ==================================================================
symbol             meaning
=================  ==================================================================
:math:`x_t`        reservoir state (B, H) after reading :math:`u_t`
:math:`y_t`        output (B, O); :math:`W_{out}` (O, H), :math:`b_{out}` (O,)
washout            initial steps of every sequence left out of the regression (the
                   state still remembers :math:`x_0`)
=================  ==================================================================

Buffers (fixed, saved in ``state_dict``): ``weight_ih`` :math:`W_{in}` (H, F),
``weight_hh`` :math:`W` (H, H), ``bias`` :math:`b` (H,), ``weight_fb`` :math:`W_{fb}`
(H, O) (zeros without feedback). Parameters: ``readout.weight``, ``readout.bias``.
"""

from __future__ import annotations

import math
import warnings
from typing import NamedTuple

import torch
from torch import Tensor, nn

from rnnlab._validation import check_lengths, check_positive_int, check_tensor, describe
from rnnlab.errors import InputError, InputTypeError
from rnnlab.esn.readouts import RLS, RidgeAccumulator
from rnnlab.esn.reservoir import (
    ACTIVATIONS,
    check_leak_rate,
    recurrent_operator,
    reservoir_weights,
    run_closed_loop,
    run_reservoir,
    uniform_weights,
)


class ESNState(NamedTuple):
    """The state an echo state network carries between calls.

    x: (B, H) reservoir state.  y: (B, O) the last output (teacher or own), fed back at
    the next step when the network has output feedback (zeros otherwise).
    """

    x: Tensor
    y: Tensor


def _check_number(name: str, value: object, lo: float, hi: float, lo_open: bool, hi_open: bool):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    v = float(value) if ok else math.nan
    inside = (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if not ok or not inside:
        rng = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise InputError(f"{name}: expected a number in {rng}, received {value!r}")
    return v


def _check_finite(name: str, x: Tensor) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        raise InputError(
            f"{name}: expected finite values, received {n_nan} NaN and {n_inf} infinite "
            f"entries in a {describe(x)}"
        )


class EchoStateNetwork(nn.Module):
    r"""Echo state network with a leaky-integrator reservoir and a ridge readout.

    Args:
        input_size: F (0 for a network driven by its feedback and bias only).
        reservoir_size: H.  output_size: O.
        spectral_radius: :math:`\rho(W)` > 0 (exact eigenvalues up to 1,000 units, a seeded
            power iteration above, documented in :func:`rnnlab.esn.spectral_radius`).
        leak_rate: :math:`a \in (0, 1]`.
        input_scaling: :math:`W_{in}` entries uniform in [-s, s].
        bias_scaling: :math:`b` entries uniform in [-s, s] (0: no bias).
        connectivity: fraction of nonzero entries of :math:`W`, in (0, 1].
        input_connectivity: fraction of nonzero entries of :math:`W_{in}`, in (0, 1].
        feedback: output feedback :math:`W_{fb} y_{t-1}` (needed by :meth:`generate`).
        feedback_scaling: :math:`W_{fb}` entries uniform in [-s, s].
        noise: std of the Gaussian state noise :math:`\nu_t` added inside the
            nonlinearity while states are collected for training (:meth:`fit`); 0 = none.
        activation: "tanh" or "identity" (a linear reservoir).
        ridge: :math:`\lambda` >= 0 of the readout.
        seed: seeds the weights and the noise (None: drawn from torch's global generator).
        dtype: of the buffers and states (default: torch's default dtype); the readout
            sums are float64 regardless.
        device: where the buffers live.
        input_noise, feedback_noise: std of Gaussian noise added to :math:`u_t` and to
            the teacher :math:`y_{t-1}` while collecting training states.

    Shapes: inputs (B, T, F) or unbatched (T, F); targets (B, T, O) or (T, O); outputs
    like the targets. The network holds its last state (:attr:`state_`): every method
    with ``state=None`` continues from it (zeros after :meth:`reset_state`); :meth:`fit`
    starts from zeros unless given a ``state`` and leaves the state at the end of the
    training data, so :meth:`generate` continues the training sequence.
    """

    def __init__(
        self,
        input_size: int,
        reservoir_size: int,
        output_size: int,
        spectral_radius: float = 0.9,
        leak_rate: float = 1.0,
        input_scaling: float = 1.0,
        bias_scaling: float = 0.0,
        connectivity: float = 0.1,
        input_connectivity: float = 1.0,
        feedback: bool = False,
        feedback_scaling: float = 1.0,
        noise: float = 0.0,
        activation: str = "tanh",
        ridge: float = 1e-6,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
        *,
        device=None,
        input_noise: float = 0.0,
        feedback_noise: float = 0.0,
    ) -> None:
        super().__init__()
        check_positive_int("input_size", input_size, minimum=0)
        check_positive_int("reservoir_size", reservoir_size)
        check_positive_int("output_size", output_size)
        spectral_radius = _check_number("spectral_radius", spectral_radius, 0, math.inf, 1, 1)
        self.leak_rate = check_leak_rate(leak_rate)
        connectivity = _check_number("connectivity", connectivity, 0, 1, True, False)
        input_connectivity = _check_number(
            "input_connectivity", input_connectivity, 0, 1, True, False
        )
        for name, v in (
            ("input_scaling", input_scaling),
            ("bias_scaling", bias_scaling),
            ("feedback_scaling", feedback_scaling),
            ("noise", noise),
            ("input_noise", input_noise),
            ("feedback_noise", feedback_noise),
            ("ridge", ridge),
        ):
            _check_number(name, v, 0, math.inf, False, True)
        if activation not in ACTIVATIONS:
            raise InputError(f"activation: expected one of {ACTIVATIONS}, received {activation!r}")
        if not isinstance(feedback, bool):
            raise InputTypeError(f"feedback: expected a bool, received {describe(feedback)}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InputTypeError(f"seed: expected an int or None, received {describe(seed)}")
        if input_size == 0 and not feedback and bias_scaling == 0:
            raise InputError(
                "input_size: 0 needs feedback=True or bias_scaling > 0 (else nothing drives "
                "the reservoir), received input_size=0, feedback=False, bias_scaling=0"
            )
        self.input_size, self.reservoir_size, self.output_size = (
            input_size, reservoir_size, output_size,
        )  # fmt: skip
        self.spectral_radius = spectral_radius
        self.input_scaling, self.bias_scaling = float(input_scaling), float(bias_scaling)
        self.connectivity, self.input_connectivity = connectivity, input_connectivity
        self.feedback, self.feedback_scaling = feedback, float(feedback_scaling)
        self.noise, self.input_noise = float(noise), float(input_noise)
        self.feedback_noise = float(feedback_noise)
        self.activation, self.ridge = activation, float(ridge)
        if seed is None:
            seed = int(torch.randint(2**62, (1,)))
        self.seed = seed
        dtype = dtype or torch.get_default_dtype()
        g = torch.Generator().manual_seed(seed)
        H, F, O = reservoir_size, input_size, output_size
        W = reservoir_weights(H, spectral_radius, connectivity, g, dtype)
        W_in = uniform_weights((H, F), input_scaling, input_connectivity, g, dtype)
        b = uniform_weights((H,), bias_scaling, 1.0, g, dtype)
        W_fb = uniform_weights((H, O), feedback_scaling if feedback else 0.0, 1.0, g, dtype)
        self._noise_seed = int(torch.randint(2**62, (1,), generator=g))
        self.register_buffer("weight_hh", W.to(device))
        self.register_buffer("weight_ih", W_in.to(device))
        self.register_buffer("bias", b.to(device))
        self.register_buffer("weight_fb", W_fb.to(device))
        self.readout = nn.Linear(H, O, device=device, dtype=dtype)
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)
        self._noise_gen = torch.Generator().manual_seed(self._noise_seed)
        self._recur_key: tuple | None = None
        self._recur = None
        self._acc: RidgeAccumulator | None = None
        self.state_: ESNState | None = None

    def extra_repr(self) -> str:
        return (
            f"{self.input_size}, {self.reservoir_size}, {self.output_size}, "
            f"spectral_radius={self.spectral_radius}, leak_rate={self.leak_rate}, "
            f"connectivity={self.connectivity}, feedback={self.feedback}, ridge={self.ridge}"
        )

    # --------------------------------------------------------------- helpers

    def _recurrent(self):
        W = self.weight_hh
        key = (W.data_ptr(), W._version, W.device, W.dtype)
        if key != self._recur_key:
            self._recur, self._recur_key = recurrent_operator(W), key
        return self._recur

    def _inputs(self, inputs, T_hint: int | None, name: str = "inputs"):
        """(B, T, F) inputs and whether they came batched; None allowed when F = 0."""
        if inputs is None:
            if self.input_size != 0 or T_hint is None:
                raise InputError(
                    f"{name}: expected a (B, T, {self.input_size}) or (T, {self.input_size}) "
                    "tensor, received None"
                )
            return None, None
        check_tensor(name, inputs)
        if inputs.dim() not in (2, 3) or inputs.shape[-1] != self.input_size:
            raise InputError(
                f"{name}: expected shape (B, T, {self.input_size}) or (T, {self.input_size}), "
                f"received shape {tuple(inputs.shape)}"
            )
        _check_finite(name, inputs)
        batched = inputs.dim() == 3
        x = inputs if batched else inputs.unsqueeze(0)
        return x.to(device=self.weight_hh.device, dtype=self.weight_hh.dtype), batched

    def _targets(self, targets, name: str = "targets"):
        check_tensor(name, targets)
        if targets.dim() not in (2, 3) or targets.shape[-1] != self.output_size:
            raise InputError(
                f"{name}: expected shape (B, T, {self.output_size}) or (T, {self.output_size}), "
                f"received shape {tuple(targets.shape)}"
            )
        _check_finite(name, targets)
        batched = targets.dim() == 3
        y = targets if batched else targets.unsqueeze(0)
        return y.to(device=self.weight_hh.device, dtype=self.weight_hh.dtype), batched

    def _start(self, state, B: int) -> ESNState:
        """The initial state: ``state`` if given, else the held one, else zeros."""
        ref = self.weight_hh
        if state is None:
            state = self.state_
            if state is not None and state.x.shape[0] != B:
                raise InputError(
                    f"state: the held state has batch size {state.x.shape[0]}, the inputs "
                    f"{B}; call reset_state() or pass state="
                )
        if state is None:
            return ESNState(
                ref.new_zeros(B, self.reservoir_size), ref.new_zeros(B, self.output_size)
            )
        if isinstance(state, Tensor):
            state = ESNState(state, ref.new_zeros(B, self.output_size))
        x, y = state
        x = x.unsqueeze(0) if x.dim() == 1 else x
        y = y.unsqueeze(0) if y.dim() == 1 else y
        if x.shape != (B, self.reservoir_size) or y.shape != (B, self.output_size):
            raise InputError(
                f"state: expected x of shape ({B}, {self.reservoir_size}) and y of shape "
                f"({B}, {self.output_size}), received {tuple(x.shape)} and {tuple(y.shape)}"
            )
        return ESNState(x.to(ref), y.to(ref))

    def _drive(self, u: Tensor | None, B: int, T: int, y_prev: Tensor | None, noise: bool):
        r"""(B, T, H): :math:`W_{in} u_t + b + W_{fb} y_{t-1} + \nu_t` for all steps at once."""
        ref = self.weight_hh
        d = self.bias.expand(B, T, self.reservoir_size).clone()
        if u is not None and self.input_size:
            if noise and self.input_noise:
                u = u + self.input_noise * self._randn(u.shape)
            d += u @ self.weight_ih.t()  # (B, T, F) @ (F, H)
        if y_prev is not None and self.feedback:
            if noise and self.feedback_noise:
                y_prev = y_prev + self.feedback_noise * self._randn(y_prev.shape)
            d += y_prev @ self.weight_fb.t()  # (B, T, O) @ (O, H)
        if noise and self.noise:
            d += self.noise * self._randn(d.shape)
        return d.to(ref.dtype)

    def _randn(self, shape) -> Tensor:
        ref = self.weight_hh
        return torch.randn(shape, generator=self._noise_gen, dtype=torch.float64).to(ref)

    @staticmethod
    def _shift(y: Tensor, y0: Tensor) -> Tensor:
        """(B, T, O) -> the sequence of previous outputs y_{t-1}, starting at y0 (B, O)."""
        return torch.cat([y0.unsqueeze(1), y[:, :-1]], dim=1)

    @staticmethod
    def _final(seq: Tensor, lengths: Tensor | None) -> Tensor:
        """(B, T, D) -> (B, D) at each sequence's last valid step (a copy: holding the
        state must not keep the whole sequence of states alive)."""
        if lengths is None:
            return seq[:, -1].clone()
        return seq[torch.arange(seq.shape[0], device=seq.device), lengths - 1]

    @staticmethod
    def _zero_past(seq: Tensor, lengths: Tensor | None) -> Tensor:
        if lengths is None:
            return seq
        T = seq.shape[1]
        keep = torch.arange(T, device=seq.device)[None, :] < lengths[:, None]  # (B, T)
        return seq * keep[..., None]

    def _teacher_states(self, u, y, lengths, state, noise: bool):
        """States driven by inputs and, with feedback, the teacher outputs (open loop)."""
        B, T = y.shape[:2]
        s0 = self._start(state, B)
        d = self._drive(u, B, T, self._shift(y, s0.y), noise)
        with torch.no_grad():
            X = run_reservoir(d, s0.x, self._recurrent(), self.leak_rate, self.activation)
        self.state_ = ESNState(self._final(X, lengths), self._final(y, lengths))
        return X

    def _check_washout(self, washout: object, T: int, lengths: Tensor | None) -> int:
        if isinstance(washout, bool) or not isinstance(washout, int) or washout < 0:
            raise InputError(f"washout: expected an integer >= 0, received {washout!r}")
        shortest = T if lengths is None else int(lengths.min())
        if washout >= shortest:
            raise InputError(
                f"washout: expected fewer steps than the shortest sequence ({shortest}), "
                f"received washout={washout}"
            )
        return washout

    def _fit_data(self, inputs, targets, lengths):
        y, batched = self._targets(targets)
        B, T = y.shape[:2]
        u, _ = self._inputs(inputs, T)
        if u is not None and u.shape[:2] != (B, T):
            raise InputError(
                f"inputs: expected the batch and time sizes of targets {(B, T)}, received "
                f"shape {tuple(inputs.shape)}"
            )
        if lengths is not None:
            lengths = check_lengths(lengths, B, T, y.device)
        return u, y, lengths, batched

    # --------------------------------------------------------------- training

    def fit(
        self, inputs, targets: Tensor, washout: int = 0, lengths: Tensor | None = None,
        state=None,
    ) -> EchoStateNetwork:  # fmt: skip
        """Fit the ridge readout on one batch (teacher forcing of the output feedback).

        inputs: (B, T, F) / (T, F) (None when input_size is 0); targets: (B, T, O) /
        (T, O); washout: initial steps of every sequence left out of the regression;
        lengths: (B,) valid steps. Starts from zero states unless ``state`` is given, and
        restarts the noise generator (a fit is reproducible; successive
        :meth:`partial_fit` calls draw fresh noise).
        Same as :meth:`reset_fit` followed by :meth:`partial_fit`.
        """
        self.reset_fit()
        self._noise_gen.manual_seed(self._noise_seed)  # the same noise on every fit
        if state is None:
            self.reset_state()
        return self.partial_fit(inputs, targets, washout=washout, lengths=lengths, state=state)

    def reset_fit(self) -> None:
        """Forget the sums accumulated by :meth:`partial_fit`."""
        self._acc = None

    def partial_fit(
        self, inputs, targets: Tensor, washout: int = 0, lengths: Tensor | None = None,
        state=None, solve: bool = True,
    ) -> EchoStateNetwork:  # fmt: skip
        r"""Add a batch (or the next chunk of a long sequence) to the readout's sums and, if
        ``solve``, refit the readout from everything added since :meth:`reset_fit`.

        Chunks of one sequence: pass them in order with the default ``state=None`` (the
        held state carries over) and ``washout`` on the first chunk only. The sums
        :math:`Z^\top Z, Z^\top Y` are float64; the solve is a Cholesky factorisation.
        """
        u, y, lengths, _ = self._fit_data(inputs, targets, lengths)
        B, T = y.shape[:2]
        washout = self._check_washout(washout, T, lengths)
        X = self._teacher_states(u, y, lengths, state, noise=True)  # (B, T, H)
        keep = torch.zeros(B, T, dtype=torch.bool, device=y.device)
        keep[:, washout:] = True
        if lengths is not None:
            keep &= torch.arange(T, device=y.device)[None, :] < lengths[:, None]
        if self._acc is None:
            self._acc = RidgeAccumulator(self.reservoir_size, self.output_size, y.device)
        if lengths is None:  # contiguous slice, no gather copy
            self._acc.add(
                X[:, washout:].reshape(-1, self.reservoir_size),  # (B (T - w), H)
                y[:, washout:].reshape(-1, self.output_size),
            )
        else:
            self._acc.add(X[keep], y[keep])
        if solve:
            self.solve()
        return self

    def solve(self) -> EchoStateNetwork:
        """Solve the ridge readout from the sums accumulated so far."""
        if self._acc is None or self._acc.count == 0:
            raise InputError("solve: expected data added by fit or partial_fit, received none")
        W_out, b_out = self._acc.solve(self.ridge)
        with torch.no_grad():
            self.readout.weight.copy_(W_out)
            self.readout.bias.copy_(b_out)
        return self

    def fit_online(
        self, inputs, targets: Tensor, washout: int = 0, method: str = "rls",
        delta: float = 1.0, forgetting: float = 1.0, state=None,
    ) -> EchoStateNetwork:  # fmt: skip
        r"""Train the readout one step at a time by recursive least squares.

        method "rls": the reservoir is driven by the inputs and the teacher outputs (as in
        :meth:`fit`); after the washout, every step updates :math:`[W_{out}, b_{out}]`
        (:class:`rnnlab.esn.RLS`, :math:`P_0 = I/\delta`, forgetting :math:`\mu`). With
        :math:`\mu = 1` this ends at the ridge solution with penalty :math:`\delta` on
        all weights, bias included.

        method "force": FORCE learning (Sussillo & Abbott 2009): the network runs in
        closed loop on its own output :math:`z_t = W_{out} x_t + b_{out}` (needs
        ``feedback=True``), and every step after the washout corrects the readout by RLS
        towards the target; the fed-back output is the one before the correction.
        One sequence (B = 1) for "force"; sequences in order for "rls".
        """
        if method not in ("rls", "force"):
            raise InputError(f"method: expected 'rls' or 'force', received {method!r}")
        _check_number("delta", delta, 0, math.inf, True, True)
        _check_number("forgetting", forgetting, 0, 1, True, False)
        u, y, _, _ = self._fit_data(inputs, targets, None)
        B, T = y.shape[:2]
        washout = self._check_washout(washout, T, None)
        H = self.reservoir_size
        if state is None:
            self.reset_state()
        rls = RLS(H + 1, self.output_size, delta, forgetting, device=y.device)
        one = y.new_ones(1, dtype=torch.float64)
        if method == "rls":
            X = self._teacher_states(u, y, None, state, noise=True)
            for b in range(B):
                for t in range(washout, T):
                    rls.update(torch.cat([X[b, t].double(), one]), y[b, t])
        else:
            if not self.feedback:
                raise InputError("method: 'force' needs an ESN built with feedback=True")
            if B != 1:
                raise InputError(f"targets: 'force' takes one sequence, received batch {B}")
            s0 = self._start(state, 1)
            d = self._drive(u, 1, T, None, noise=False)[0]  # (T, H)
            x, z = s0.x[0], s0.y[0]
            W, W_fb, a = self.weight_hh, self.weight_fb, self.leak_rate
            with torch.no_grad():
                for t in range(T):
                    h = d[t] + W @ x + W_fb @ z
                    h = torch.tanh(h) if self.activation == "tanh" else h
                    x = (1 - a) * x + a * h
                    zx = torch.cat([x.double(), one])
                    z = (rls.weight @ zx).to(x.dtype)  # output before the correction
                    if t >= washout:
                        rls.update(zx, y[0, t])
            self.state_ = ESNState(x[None], z[None])
        with torch.no_grad():
            self.readout.weight.copy_(rls.weight[:, :H])
            self.readout.bias.copy_(rls.weight[:, H])
        return self

    # --------------------------------------------------------------- running

    def reset_state(self) -> None:
        """Forget the held state: the next call starts from zeros."""
        self.state_ = None

    def states(
        self, inputs, targets: Tensor | None = None, state=None, lengths: Tensor | None = None
    ) -> Tensor:
        """The reservoir states (B, T, H) (or (T, H)) driven by ``inputs``.

        With output feedback, the fed-back outputs are ``targets`` (teacher forcing) when
        given, else the network's own readout (closed loop). No noise. Zero past lengths.
        """
        if targets is not None:
            u, y, lengths, batched = self._fit_data(inputs, targets, lengths)
            X = self._teacher_states(u, y, lengths, state, noise=False)
        else:
            u, batched = self._inputs(inputs, None)
            B, T = u.shape[:2]
            if lengths is not None:
                lengths = check_lengths(lengths, B, T, u.device)
            X, _ = self._run(u, B, T, state, lengths)
        X = self._zero_past(X, lengths)
        return X if batched else X[0]

    def _run(self, u, B: int, T: int, state, lengths):
        """Drive with the inputs (closed loop through the readout when there is feedback)."""
        s0 = self._start(state, B)
        d = self._drive(u, B, T, None, noise=False)
        with torch.no_grad():
            if self.feedback:
                X, Y = run_closed_loop(
                    d, s0.x, s0.y, self._recurrent(), self.leak_rate, self.activation,
                    self.weight_fb, self.readout.weight, self.readout.bias,
                )  # fmt: skip
            else:
                X = run_reservoir(d, s0.x, self._recurrent(), self.leak_rate, self.activation)
                Y = self.readout(X)
        self.state_ = ESNState(self._final(X, lengths), self._final(Y, lengths))
        return X, Y

    def predict(self, inputs: Tensor, state=None, lengths: Tensor | None = None) -> Tensor:
        """Outputs (B, T, O) (or (T, O)) of the network driven by ``inputs``.

        With output feedback the network feeds back its own outputs. Zero past lengths.
        Continues from the held state unless ``state`` is given.
        """
        u, batched = self._inputs(inputs, None)
        B, T = u.shape[:2]
        if lengths is not None:
            lengths = check_lengths(lengths, B, T, u.device)
        _, Y = self._run(u, B, T, state, lengths)
        Y = self._zero_past(Y, lengths)
        return Y if batched else Y[0]

    def forward(self, inputs: Tensor, state=None, lengths: Tensor | None = None) -> Tensor:
        """Same as :meth:`predict`."""
        return self.predict(inputs, state=state, lengths=lengths)

    def generate(
        self, steps: int, warmup: Tensor | None = None, inputs: Tensor | None = None, state=None
    ) -> Tensor:
        """Run free for ``steps`` steps, feeding back the network's own output.

        warmup: (B, Tw, O) / (Tw, O) true outputs to teacher-force first (not returned);
        without it the run continues from the held state (after :meth:`fit`: the end of
        the training sequence). inputs: (B, Tw + steps, F) external inputs over warmup and
        free run, needed when input_size > 0. Returns (B, steps, O), or (steps, O) when
        ``warmup`` or ``inputs`` is unbatched.
        """
        if not self.feedback:
            raise InputError(
                "generate: expected an ESN built with feedback=True (the free run feeds back "
                "the output), received feedback=False"
            )
        check_positive_int("steps", steps)
        batched = True
        Tw = 0
        if warmup is not None:
            w, batched = self._targets(warmup, "warmup")
            B, Tw = w.shape[:2]
        elif inputs is not None and isinstance(inputs, Tensor):
            B = inputs.shape[0] if inputs.dim() == 3 else 1
            batched = inputs.dim() == 3
        else:
            B = self.state_.x.shape[0] if self.state_ is not None else 1
        u, ub = self._inputs(inputs, Tw + steps)
        if u is not None:
            if u.shape[:2] != (B, Tw + steps):
                raise InputError(
                    f"inputs: expected batch and time sizes {(B, Tw + steps)} (warmup + "
                    f"steps), received shape {tuple(inputs.shape)}"
                )
            batched = ub
        if warmup is not None:
            uw = None if u is None else u[:, :Tw]
            self._teacher_states(uw, w, None, state, noise=False)
            state = None  # continue from the end of the warmup
        uf = None if u is None else u[:, Tw:]
        _, Y = self._run(uf, B, steps, state, None)
        return Y if batched else Y[0]

    # --------------------------------------------------------------- export

    def to_srn(self, engine: str = "auto"):
        r"""An :class:`rnnlab.nn.SRN` (F, H) initialised with this reservoir's weights.

        ``weight_ih_l0`` = :math:`W_{in}`, ``weight_hh_l0`` = :math:`W`, ``bias_ih_l0`` =
        :math:`b`, ``bias_hh_l0`` = 0: with leak rate 1, no feedback and no noise the SRN
        computes exactly this reservoir's states; the "careful initialisation plus
        momentum" method (Hinton's lecture 7) trains it from there. The readout is
        ``copy.deepcopy(esn.readout)``. Warns when the ESN has a leak or feedback (the
        SRN has neither, so its dynamics differ).
        """
        from rnnlab.nn import SRN

        if self.leak_rate != 1.0 or self.feedback:
            warnings.warn(
                f"to_srn: the SRN has no leak and no output feedback; this ESN has "
                f"leak_rate={self.leak_rate}, feedback={self.feedback}, so the SRN's dynamics "
                "differ (the weights are exported as they are)",
                UserWarning,
                stacklevel=2,
            )
        if self.activation != "tanh":
            raise InputError(f"to_srn: expected activation 'tanh', received {self.activation!r}")
        ref = self.weight_hh
        srn = SRN(self.input_size, self.reservoir_size, engine=engine, dtype=ref.dtype)
        srn.to(ref.device)
        missing, unexpected = srn.load_state_dict(
            {
                "weight_ih_l0": self.weight_ih.clone(),
                "weight_hh_l0": self.weight_hh.clone(),
                "bias_ih_l0": self.bias.clone(),
                "bias_hh_l0": torch.zeros_like(self.bias),
            },
            strict=False,
        )
        ours = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}
        if unexpected or ours & set(missing):  # the SRN's public names changed
            raise RuntimeError(
                f"to_srn: SRN parameter names differ from torch.nn.RNN's: missing {missing}, "
                f"unexpected {unexpected}"
            )
        return srn
