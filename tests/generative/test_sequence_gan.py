"""SequenceGAN's alternating update hook in the Trainer, MMD's oracles (zero on the same
set, positive and growing with a shift, the closed form on two points), the
discriminative score, and bad input."""

import copy
import math

import pytest
import torch

from rnnlab.errors import InputError
from rnnlab.generative import SequenceGAN, discriminative_score, mmd
from rnnlab.train import TrainConfig, Trainer


def test_mmd_zero_on_the_same_set_positive_for_shifted_data():
    x = torch.randn(40, 6, 2, generator=torch.Generator().manual_seed(0))
    assert mmd(x, x) == 0.0
    small, large = mmd(x, x + 0.3), mmd(x, x + 3.0)
    assert 0 < small < large


def test_mmd_closed_form_on_two_points():
    a, b = torch.zeros(1, 1, 1), torch.full((1, 1, 1), 2.0)
    s = 1.5
    expected = 2 - 2 * math.exp(-4 / (2 * s * s))
    assert mmd(a, b, bandwidths=[s]) == pytest.approx(expected, rel=1e-12)


def test_discriminative_score_separates_shifted_sets_and_not_identical_ones():
    g = torch.Generator().manual_seed(1)
    real = torch.randn(80, 5, 1, generator=g)
    same = torch.randn(80, 5, 1, generator=g)
    assert discriminative_score(real, real + 2.0, steps=40) > 0.4
    assert discriminative_score(real, same, steps=40) < 0.2


def test_alternating_updates_in_the_trainer_move_both_networks():
    torch.manual_seed(0)
    gan = SequenceGAN(1, noise_size=2, hidden_size=8)
    d_opt = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-2)
    g_opt = torch.optim.Adam(gan.generator.parameters(), lr=1e-2)
    real = torch.sin(torch.linspace(0, 6, 10))[None, :, None].repeat(16, 1, 1)
    d0 = [p.detach().clone() for p in gan.discriminator.parameters()]
    g0 = [p.detach().clone() for p in gan.generator.parameters()]
    Trainer(gan, g_opt, iter(lambda: real, None), None, TrainConfig(steps=10, progress=False),
            gradients=gan.update_hook(d_opt, d_steps=1)).fit()  # fmt: skip
    moved = lambda ps, p0: any(not torch.equal(a, b) for a, b in zip(ps, p0))  # noqa: E731
    assert moved(gan.discriminator.parameters(), d0) and moved(gan.generator.parameters(), g0)


def test_a_resumed_gan_run_continues_exactly(tmp_path):
    """The discriminator's Adam state travels in the Trainer's checkpoint (the hook's)."""
    real = torch.sin(torch.linspace(0, 6, 10))[None, :, None].repeat(8, 1, 1)

    def trainer(steps):
        torch.manual_seed(0)
        gan = SequenceGAN(1, noise_size=2, hidden_size=6)
        d_opt = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-2)
        g_opt = torch.optim.Adam(gan.generator.parameters(), lr=1e-2)
        return Trainer(gan, g_opt, iter(lambda: real, None), None,
                       TrainConfig(steps=steps, progress=False),
                       gradients=gan.update_hook(d_opt))  # fmt: skip

    straight = trainer(6)
    straight.fit()
    first = trainer(3)
    first.fit()
    state = copy.deepcopy(first.state_dict())
    assert state["gradients"]["state"]  # the discriminator's moments are in it
    resumed = trainer(6)
    resumed.load_state_dict(state)
    resumed.fit()
    for k, v in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v, rtol=0, atol=0)


def test_update_hook_is_d_steps_then_the_generator_gradient_at_the_updated_discriminator():
    """The hook against the same updates written out by hand (same noise, plain SGD)."""
    torch.manual_seed(1)
    gan = SequenceGAN(1, noise_size=2, hidden_size=5)
    twin = copy.deepcopy(gan)
    real = torch.randn(6, 7, 1)
    hook = gan.update_hook(torch.optim.SGD(gan.discriminator.parameters(), lr=0.5), d_steps=2)
    state = torch.random.get_rng_state()
    out = hook(gan, real, None)
    torch.random.set_rng_state(state)
    for _ in range(2):  # two discriminator steps on fresh fakes
        with torch.no_grad():
            fake = twin.sample(6, 7)
        loss_d = twin.discriminator_loss(real, fake)
        grads = torch.autograd.grad(loss_d, list(twin.discriminator.parameters()))
        with torch.no_grad():
            for p, g in zip(twin.discriminator.parameters(), grads):
                p -= 0.5 * g
    loss_g = twin.generator_loss(twin.sample(6, 7))
    grads = torch.autograd.grad(loss_g, list(twin.generator.parameters()))
    for a, b in zip(gan.discriminator.parameters(), twin.discriminator.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    for p, g in zip(gan.generator.parameters(), grads):
        assert torch.allclose(p.grad, g, atol=1e-6)
    assert all(p.grad is None for p in gan.discriminator.parameters())
    assert float(out.loss) == pytest.approx(float(loss_g.detach()), abs=1e-6) and out.items == 6


def test_bad_input():
    gan = SequenceGAN(2)
    with pytest.raises(InputError, match="features"):
        SequenceGAN(0)
    with pytest.raises(InputError, match="real"):
        gan.discriminator_loss(torch.zeros(4, 5, 3), torch.zeros(4, 5, 2))
    with pytest.raises(InputError, match="batch"):
        gan.update_hook(torch.optim.SGD(gan.discriminator.parameters(), lr=0.1))(
            gan, torch.zeros(4, 5), None
        )
    with pytest.raises(InputError, match="y"):
        mmd(torch.zeros(3, 4, 1), torch.zeros(3, 5, 1))
    with pytest.raises(InputError, match="x"):
        mmd(torch.zeros(3, 4), torch.zeros(3, 4))
    with pytest.raises(InputError, match="bandwidths"):
        mmd(torch.zeros(3, 4, 1), torch.ones(3, 4, 1), bandwidths=[0.0])
