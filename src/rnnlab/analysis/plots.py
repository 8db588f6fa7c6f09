"""Figures of the gradient diagnostics (matplotlib, Agg backend, written to files)."""

from __future__ import annotations

from pathlib import Path

import torch

from rnnlab.analysis import attractors as A


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_gradient_flow(
    curves: dict[str, torch.Tensor], path: Path, title: str = "", ylabel: str = ""
) -> Path:
    """One log-scale line per model: ``curves[name]`` is a ``(T,)`` norm by time step."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, v in curves.items():
        ax.semilogy(range(len(v)), v.clamp_min(1e-300).tolist(), label=name)
    ax.set_xlabel("time step t")
    ax.set_ylabel(ylabel or r"$\|\partial h_T / \partial s_t\|_F$")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9, wspace=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_scalar_example(T: int, path: Path) -> Path:
    """w^t for w = 1.1 and 0.9, t = 0..T (the lecture's scalar example)."""
    plt = _plt()
    t = torch.arange(T + 1, dtype=torch.float64)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for w in (1.1, 0.9):
        ax.semilogy(t.tolist(), (w**t).tolist(), label=f"w = {w}: w^{T} = {w**T:.4g}")
    ax.set_xlabel("steps back in time")
    ax.set_ylabel(r"$\partial h_T / \partial h_{T-t}$")
    ax.set_title("Linear one-unit RNN: gradient = w^t")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9, wspace=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_logistic(path: Path, T: int = 30) -> Path:
    """Cobweb of f(x) = 3.5 x (1 - x), and |d x_T / d x_0| against x_0."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.0))
    xs = torch.linspace(0, 1, 400, dtype=torch.float64)
    ax1.plot(xs.tolist(), A.logistic_map(xs).tolist(), label="f(x) = 3.5 x(1-x)")
    ax1.plot([0, 1], [0, 1], "k--", lw=0.8)
    orbit = A.iterate(A.logistic_map, torch.tensor(0.1, dtype=torch.float64), 60).tolist()
    cx, cy = [orbit[0]], [0.0]
    for a, b in zip(orbit[:-1], orbit[1:]):
        cx += [a, b]
        cy += [b, b]
    ax1.plot(cx, cy, lw=0.7, color="C1", label="orbit from x0 = 0.1")
    for c in A.logistic_cycle():
        ax1.plot([c], [A.logistic_map(torch.tensor(c)).item()], "ro", ms=4)
    ax1.set_title("attracting 4-cycle (red)")
    ax1.legend(fontsize=8)
    x0 = torch.linspace(0.001, 0.999, 2000, dtype=torch.float64)
    for t in (5, 10, T):
        g = A.orbit_gradient(A.logistic_map, x0, t).abs().clamp_min(1e-300)
        ax2.semilogy(x0.tolist(), g.tolist(), lw=0.7, label=f"T = {t}")
    ax2.set_xlabel("x0")
    ax2.set_ylabel("|d x_T / d x_0|")
    ax2.set_title("gradients vanish (attractor) or spike (boundaries)")
    ax2.legend(fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9, wspace=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_bistable(path: Path, T: int = 30) -> Path:
    """h_T and |d h_T / d h_0| against h_0 for the two-attractor tanh unit."""
    plt = _plt()
    h0 = torch.linspace(-1, 1, 4001, dtype=torch.float64)
    hT = A.iterate(A.bistable_rnn, h0, T)[-1]
    g = A.orbit_gradient(A.bistable_rnn, h0, T).abs().clamp_min(1e-300)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.0))
    ax1.plot(h0.tolist(), hT.tolist())
    ax1.set_xlabel("h0")
    ax1.set_ylabel(f"h_{T}")
    ax1.set_title("h <- tanh(2h): two point attractors")
    ax2.semilogy(h0.tolist(), g.tolist())
    ax2.axhline(2.0**T, color="k", ls="--", lw=0.8, label=f"w^T = 2^{T} (at the boundary)")
    ax2.set_xlabel("h0")
    ax2.set_ylabel(f"|d h_{T} / d h0|")
    ax2.set_title("vanishing inside, exploding at the boundary")
    ax2.legend(fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9, wspace=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_clipping(
    plain: A.ClipTrajectory, clipped: A.ClipTrajectory, path: Path, T: int = 10
) -> Path:
    """The loss cliff in b and two gradient-descent runs, with and without clipping."""
    plt = _plt()
    b = torch.linspace(-0.3, 0.3, 3001, dtype=torch.float64)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.0))
    ax1.plot(b.tolist(), A.bistable_loss(b, T=T).tolist(), "k", lw=0.8, label="loss(b)")
    for tr, name in ((plain, "no clipping"), (clipped, "clipped")):
        ax1.plot(tr.b.tolist(), tr.loss.tolist(), ".", ms=3, label=name)
    ax1.set_xlim(-0.3, 0.3)
    ax1.set_xlabel("b")
    ax1.set_ylabel(f"(h_{T} - 0.5)^2")
    ax1.set_title("a cliff at the basin boundary b = 0")
    ax1.legend(fontsize=8)
    for tr, name in ((plain, "no clipping"), (clipped, "clipped")):
        ax2.semilogy(tr.loss.clamp_min(1e-12).tolist(), label=name)
    ax2.set_xlabel("gradient step")
    ax2.set_ylabel("loss")
    ax2.legend(fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9, wspace=0.3)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
