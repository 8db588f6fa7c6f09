"""The public cell API: a cell is one step; the runner gives it lengths, both directions,
stacking, recurrent dropout and the engines (the README's custom-cell example)."""

import pytest
import torch
from torch import nn

from rnnlab.errors import InputError
from rnnlab.nn import GRU, LSTM, SRN, Cell, Recurrent, detach_state

DT = torch.float64


class ScaledSRNCell(Cell):
    """h_t = tanh(W_ih x_t + alpha W_hh h_{t-1}): the README's custom-cell example."""

    def __init__(self, input_size, hidden_size, alpha=0.5):
        super().__init__(state_sizes=(hidden_size,), output_size=hidden_size)
        self.alpha = alpha
        self.weight_ih = nn.Parameter(0.3 * torch.randn(hidden_size, input_size))
        self.weight_hh = nn.Parameter(0.3 * torch.randn(hidden_size, hidden_size))

    def project(self, x):  # (B, T, F) -> (B, T, H)
        return x @ self.weight_ih.t()

    def step(self, x_t, state):
        h = torch.tanh(x_t + self.alpha * state[0] @ self.weight_hh.t())
        return h, (h,)


class ThreeStateCell(Cell):
    """Three state variables of different sizes: a, b (b is a running sum of a) and a
    step counter; the output mixes all three."""

    def __init__(self, input_size, n=3):
        super().__init__(state_sizes=(n, 2 * n, 1), output_size=n)
        self.w = nn.Parameter(0.4 * torch.randn(n, input_size))
        self.u = nn.Parameter(0.4 * torch.randn(n, n))
        self.v = nn.Parameter(0.4 * torch.randn(2 * n, n))

    def step(self, x_t, state):
        a, b, k = state
        a = torch.tanh(x_t @ self.w.t() + a @ self.u.t() + 0.01 * k)
        b = b + a @ self.v.t()
        return a + b[:, : a.shape[1]], (a, b, k + 1)


def test_custom_cell_runs_on_the_loop_engine_and_equals_an_srn():
    torch.manual_seed(0)
    layer = Recurrent(lambda n: ScaledSRNCell(n, 3, alpha=1.0), 2, 2, bidirectional=True)
    assert layer.resolved_engine() == "loop"
    srn = SRN(2, 3, 2, bias=False, bidirectional=True, engine="bptt")
    srn.load_state_dict(layer.state_dict())  # the runner gives torch.nn's names
    assert list(layer.state_dict()) == list(srn.state_dict())
    x, lengths = torch.randn(3, 5, 2), torch.tensor([5, 2, 4])
    y1, h1 = layer(x, lengths=lengths)
    y2, h2 = srn(x, lengths=lengths)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(h1, h2)


def test_recurrent_dropout_in_a_custom_cell_equals_a_hand_masked_loop():
    """The runner applies recurrent dropout to a cell that knows nothing of it: the same
    mask on h_{t-1} at every step of a sequence (Gal & Ghahramani 2016)."""
    torch.manual_seed(1)
    layer = Recurrent(lambda n: ScaledSRNCell(n, 4), 3, recurrent_dropout=0.5).double()
    x = torch.randn(5, 7, 3, dtype=DT)
    torch.manual_seed(2)
    y, h = layer(x)
    torch.manual_seed(2)  # the same draw, by hand
    mask = torch.bernoulli(torch.full((5, 4), 0.5, dtype=DT)) / 0.5
    cell, hs, prev = layer.cells[0], [], torch.zeros(5, 4, dtype=DT)
    for t in range(7):
        prev = torch.tanh(
            x[:, t] @ cell.weight_ih.t() + cell.alpha * (prev * mask) @ cell.weight_hh.t()
        )
        hs.append(prev)
    torch.testing.assert_close(y, torch.stack(hs, 1))
    torch.testing.assert_close(h[0], prev)
    assert not torch.equal(y, layer.eval()(x)[0])  # the mask did something; eval has none


def test_recurrent_dropout_is_applied_by_every_engine_alike():
    torch.manual_seed(3)
    for make in (
        lambda: LSTM(3, 4, recurrent_dropout=0.3, peepholes=True),
        lambda: GRU(3, 4, recurrent_dropout=0.3),
        lambda: SRN(3, 4, recurrent_dropout=0.3),
    ):
        layer = make().double()
        x = torch.randn(4, 6, 3, dtype=DT)
        outs = []
        for engine in ("loop", "bptt"):
            layer.engine = engine
            torch.manual_seed(4)
            outs.append(layer(x)[0])
        torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=1e-12)


def test_a_three_state_cell_across_truncated_bptt_chunks_equals_the_whole_sequence():
    torch.manual_seed(5)
    layer = Recurrent(lambda n: ThreeStateCell(n), 2, 2).double()
    x = torch.randn(3, 12, 2, dtype=DT)
    y_whole, s_whole = layer(x)
    state, ys = None, []
    for chunk in x.split(5, dim=1):
        y, state = layer(chunk, state)
        state = detach_state(state)
        ys.append(y)
    torch.testing.assert_close(torch.cat(ys, 1), y_whole)
    for a, b in zip(state, s_whole):
        torch.testing.assert_close(a, b)
    assert state[2][0, 0, 0].item() == 12  # the counter saw every step once


def test_a_three_state_cell_with_lengths_and_both_directions_equals_one_by_one():
    torch.manual_seed(6)
    layer = Recurrent(lambda n: ThreeStateCell(n), 2, bidirectional=True).double()
    x, lengths = torch.randn(3, 6, 2, dtype=DT), torch.tensor([6, 2, 4])
    y, state = layer(x, lengths=lengths)
    for b in range(3):
        yb, sb = layer(x[b : b + 1, : lengths[b]])
        torch.testing.assert_close(y[b : b + 1, : lengths[b]], yb)
        assert float(y[b, lengths[b] :].abs().sum()) == 0.0
        for s, s1 in zip(state, sb):
            torch.testing.assert_close(s[:, b : b + 1], s1)


def test_step_with_a_context_equals_forward_on_the_concatenated_input():
    """An attention decoder's step: x_t and a per-step context, one step of the stack."""
    torch.manual_seed(7)
    layer = LSTM(5, 4, 2).double()
    x, ctx = torch.randn(3, 6, 2, dtype=DT), torch.randn(3, 6, 3, dtype=DT)
    y_all, s_all = layer(torch.cat([x, ctx], -1))
    state, ys = None, []
    for t in range(6):
        y_t, state = layer.step(x[:, t], state, context=ctx[:, t])
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y_all)
    torch.testing.assert_close(state[1], s_all[1])
    with pytest.raises(InputError, match="x_t and context together"):
        layer.step(x[:, 0], None, context=ctx[:, 0, :2])


def test_step_with_recurrent_dropout_needs_the_sequence_masks():
    torch.manual_seed(8)
    layer = SRN(3, 4, recurrent_dropout=0.5).double()
    x = torch.randn(2, 5, 3, dtype=DT)
    with pytest.raises(InputError, match="masks"):
        layer.step(x[:, 0])
    torch.manual_seed(9)
    y_all, _ = layer(x, None)
    torch.manual_seed(9)
    masks, state, ys = layer.recurrent_masks(2), None, []
    for t in range(5):
        y_t, state = layer.step(x[:, t], state, masks=masks)
        ys.append(y_t)
    torch.testing.assert_close(torch.stack(ys, 1), y_all)


def test_cells_follow_the_layer_across_dtype_changes_and_functional_call():
    torch.manual_seed(10)
    layer = LSTM(2, 3, peepholes=True)
    layer.double()
    assert all(p.dtype == DT for c in layer.cells for p in c.parameters())
    x = torch.randn(2, 4, 2, dtype=DT)
    params = {n: torch.zeros_like(p) for n, p in layer.named_parameters()}
    y0, _ = torch.func.functional_call(layer, params, (x,))
    torch.testing.assert_close(y0, torch.zeros_like(y0))  # all-zero weights: h = 0.5 tanh(0)
    y1, _ = layer(x)
    assert y1.abs().sum() > 0  # and the layer's own weights again afterwards


def test_make_cell_must_return_a_cell():
    with pytest.raises(TypeError, match="make_cell"):
        Recurrent(lambda n: nn.Linear(n, 3), 2)


def test_the_fused_weight_list_is_kept_between_calls_and_follows_conversions():
    layer = LSTM(2, 3, 2)
    x = torch.randn(2, 4, 2)
    layer(x)
    kept = layer.fused_weights(0, 2)
    layer(x)
    assert layer.fused_weights(0, 2) is kept
    assert [t is p for t, p in zip(kept, layer.parameters())] == [True] * 8  # torch's order
    layer.double()
    assert all(w.dtype == DT for w in layer.fused_weights(0, 2))
    theirs = nn.LSTM(2, 3, 2, batch_first=True).double()
    theirs.load_state_dict(layer.state_dict())
    torch.testing.assert_close(layer(x.double())[0], theirs(x.double())[0])
