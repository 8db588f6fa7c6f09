"""Oracles for NeuralAR: a hand computation of Bengio et al.'s eq. 1, a deterministic
language learned to near-zero loss, the Gaussian density of the continuous variant."""

import math

import pytest
import torch

from rnnlab.classic.nplm import NeuralAR, context_windows

DT = torch.float64


def test_log_probs_equal_manual_computation():
    torch.manual_seed(0)
    model = NeuralAR(order=3, vocab_size=7, embedding_dim=4, hidden_size=5, dtype=DT)
    x = torch.randint(0, 7, (2, 9))
    lp = model.log_probs(x)
    C = model.embedding.weight
    H, d = model.hidden.weight, model.hidden.bias
    U, b, W = model.output.weight, model.output.bias, model.direct.weight
    for bi in range(2):
        for t in range(3, 9):
            feats = torch.cat([C[x[bi, t - 1]], C[x[bi, t - 2]], C[x[bi, t - 3]]])
            a = b + W @ feats + U @ torch.tanh(d + H @ feats)
            manual = a - torch.logsumexp(a, 0)
            torch.testing.assert_close(lp[bi, t - 3], manual)
    ll = model(x)
    manual_ll = lp.gather(-1, x[:, 3:].unsqueeze(-1)).squeeze(-1).sum(-1)
    torch.testing.assert_close(ll, manual_ll)
    # lengths: steps past the length do not count
    ll_len = model(x, lengths=torch.tensor([9, 6]))
    torch.testing.assert_close(ll_len[1], lp[1, :3].gather(-1, x[1, 3:6].unsqueeze(-1)).sum())


def test_learns_deterministic_language_to_near_zero_loss():
    torch.manual_seed(0)
    period = torch.tensor([0, 1, 2, 0, 2, 1])  # every order-2 context fixes the next token
    x = period.repeat(20)
    model = NeuralAR(order=2, vocab_size=3, embedding_dim=4, hidden_size=16)
    model.fit(x, epochs=80, lr=5e-2, batch_size=128, generator=0)
    assert model.history_[-1] < 0.02
    assert -model.score(x) / (len(x) - 2) < 0.02
    pred = model.one_step_forecast(x)
    assert torch.equal(pred[2:], x[2:])
    assert (pred[:2] == -1).all()
    sample = model.sample(1, 12, context=x[None, :2], temperature=0.01, generator=0)
    assert torch.equal(sample[0], x[2:14])


def test_continuous_variant_density_and_fit():
    torch.manual_seed(0)
    model = NeuralAR(order=2, obs_dim=1, hidden_size=8, dtype=DT)
    t = torch.arange(200, dtype=DT)
    y = torch.sin(0.3 * t).unsqueeze(-1)  # (T, 1): y_t = 2 cos(0.3) y_{t-1} - y_{t-2}
    ctx, tgt = context_windows(y[None], 2)
    mean = model.output(torch.tanh(model.hidden(ctx.flatten(-2)))) + model.direct(ctx.flatten(-2))
    var = model.log_var.exp()
    manual = (-0.5 * ((tgt - mean) ** 2 / var + torch.log(2 * math.pi * var))).sum()
    torch.testing.assert_close(model(y), manual)
    model.fit(y, epochs=150, lr=1e-2, batch_size=64, generator=0)
    pred = model.one_step_forecast(y)
    rmse = (pred[2:] - y[2:]).pow(2).mean().sqrt()
    assert rmse < 0.05
    assert model.history_[-1] < model.history_[0]
    fixed = NeuralAR(order=2, obs_dim=1, learn_variance=False, noise_var=0.5, dtype=DT)
    assert "log_var" not in dict(fixed.named_parameters())


def test_bad_input():
    with pytest.raises(ValueError, match="vocab_size, obs_dim"):
        NeuralAR(order=2)
    model = NeuralAR(order=2, vocab_size=3)
    with pytest.raises(ValueError, match="x: expected token ids in 0..2"):
        model.score(torch.tensor([0, 1, 3, 1]))
    with pytest.raises(ValueError, match="x: expected more than order=2"):
        model.score(torch.tensor([0, 1]))
