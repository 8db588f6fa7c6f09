"""rnnlab.nn.init: each initialiser gives the spectral radius, sparsity, identity or
orthogonality it promises (checked by eigenvalues, counts and Gram matrices)."""

from __future__ import annotations

import pytest
import torch

from rnnlab.errors import InputError
from rnnlab.nn import SRN
from rnnlab.nn.init import echo_state_, identity_, orthogonal_, sparse_, spectral_radius


@pytest.mark.parametrize("n, k, rho", [(100, 15, 1.1), (30, 5, 0.9), (8, None, 1.5)])
def test_echo_state_has_the_spectral_radius_and_sparsity(n, k, rho):
    w = torch.empty(n, n)
    echo_state_(w, spectral_radius=rho, connections=k, generator=torch.Generator().manual_seed(0))
    eig = torch.linalg.eigvals(w.double()).abs().max()
    assert float(eig) == pytest.approx(rho, rel=1e-5)
    assert spectral_radius(w) == pytest.approx(rho, rel=1e-5)
    per_row = (w != 0).sum(1)
    assert torch.equal(per_row, torch.full((n,), n if k is None else k))


def test_sparse_has_k_incoming_weights_per_unit_with_the_std():
    w = torch.empty(400, 60)
    sparse_(w, connections=15, std=0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal((w != 0).sum(1), torch.full((400,), 15))
    nz = w[w != 0].double()
    assert float(nz.mean()) == pytest.approx(0.0, abs=0.03)  # 6000 draws: se 0.0065
    assert float(nz.std()) == pytest.approx(0.5, rel=0.04)
    # positions are spread over all inputs, not fixed
    assert bool(((w != 0).sum(0) > 0).all())


def test_identity_and_orthogonal():
    rnn = SRN(3, 7)
    identity_(rnn.weight_hh_l0, scale=0.5)
    assert torch.equal(rnn.weight_hh_l0.detach(), 0.5 * torch.eye(7))
    for shape in [(6, 6), (4, 9), (9, 4)]:
        w = torch.empty(*shape, dtype=torch.float64)
        orthogonal_(w, gain=2.0, generator=torch.Generator().manual_seed(2))
        small = min(shape)
        gram = w @ w.T if shape[0] <= shape[1] else w.T @ w
        torch.testing.assert_close(gram, 4.0 * torch.eye(small, dtype=torch.float64))
    square = torch.empty(6, 6, dtype=torch.float64)
    orthogonal_(square, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(torch.linalg.eigvals(square).abs(),
                               torch.ones(6, dtype=torch.float64))  # fmt: skip


def test_initialisers_are_reproducible_with_a_generator():
    a, b = torch.empty(20, 20), torch.empty(20, 20)
    echo_state_(a, generator=torch.Generator().manual_seed(5))
    echo_state_(b, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "call, name",
    [(lambda: echo_state_(torch.empty(3, 4)), "w"),
     (lambda: echo_state_(torch.empty(4, 4), spectral_radius=0), "spectral_radius"),
     (lambda: sparse_(torch.empty(4, 4), connections=5), "connections"),
     (lambda: sparse_(torch.empty(4, 4), connections=0), "connections"),
     (lambda: identity_(torch.empty(2, 3)), "w"),
     (lambda: orthogonal_(torch.empty(3)), "w"),
     (lambda: orthogonal_([[1.0]]), "w")],
)  # fmt: skip
def test_bad_input_names_the_argument(call, name):
    with pytest.raises(InputError, match=name):
        call()
