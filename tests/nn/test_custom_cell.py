"""A new cell needs only its parameters, its input projection and its step: the runner
gives it lengths, directions, stacking and the loop engine (the README's example)."""

import torch
from torch import nn

from rnnlab.nn import SRN, RecurrentLayer


class ScaledSRN(RecurrentLayer):
    """h_t = tanh(W_ih x_t + alpha * W_hh h_{t-1}): the README's custom-cell example."""

    def __init__(self, input_size, hidden_size, num_layers=1, *, alpha=0.5, **options):
        self.alpha = alpha
        super().__init__(input_size, hidden_size, num_layers, **options)

    def _state_sizes(self):
        return (self.hidden_size,)

    def _build(self, k, sfx, in_size, factory):
        H = self.hidden_size
        setattr(self, f"weight_ih_l{k}{sfx}", nn.Parameter(0.3 * torch.randn(H, in_size)))
        setattr(self, f"weight_hh_l{k}{sfx}", nn.Parameter(0.3 * torch.randn(H, H)))

    def _project(self, x, k, sfx):
        return x @ self._p("weight_ih", k, sfx).t()  # (B, T, H)

    def _step(self, xp_t, state, k, sfx, rmask):
        h = torch.tanh(xp_t + self.alpha * state[0] @ self._p("weight_hh", k, sfx).t())
        return h, (h,)


def test_custom_cell_runs_on_the_loop_engine_and_matches_an_srn():
    torch.manual_seed(0)
    cell = ScaledSRN(2, 3, 2, alpha=1.0, bidirectional=True)
    assert cell.resolved_engine() == "loop"
    srn = SRN(2, 3, 2, bias=False, bidirectional=True, engine="bptt")
    srn.load_state_dict(cell.state_dict())
    x, lengths = torch.randn(3, 5, 2), torch.tensor([5, 2, 4])
    y1, h1 = cell(x, lengths=lengths)
    y2, h2 = srn(x, lengths=lengths)
    torch.testing.assert_close(y1, y2)
    torch.testing.assert_close(h1, h2)
