import pytest
import torch

from rnnlab.data import StreamBatcher
from rnnlab.train import LanguageModel, LMConfig, detach_carry, evaluate_lm, lm_loss


@pytest.mark.parametrize("cell", ["lstm", "gru", "srn", "lstm1997"])
def test_chunked_forward_with_carried_state_equals_whole(cell):
    torch.manual_seed(0)
    m = LanguageModel(
        LMConfig(vocab_size=7, hidden_size=6, num_layers=2, cell=cell, embedding_size=5),
        dtype=torch.float64,
    )
    x = torch.randint(0, 7, (3, 17))
    whole, _ = m(x)
    state, parts = None, []
    for i in range(0, 17, 5):  # truncated-BPTT chunks of 5 with the state carried
        logits, state = m(x[:, i : i + 5], state)
        state = detach_carry(state)
        parts.append(logits)
    assert torch.allclose(torch.cat(parts, 1), whole, atol=1e-12)
    # unbatched (T,) input gives the batched result at rank 2
    single, _ = m(x[1])
    assert single.shape == (17, 7) and torch.allclose(single, whole[1], atol=1e-12)


def test_lm_loss_over_a_pass_equals_evaluate_lm():
    torch.manual_seed(0)
    m = LanguageModel(
        LMConfig(vocab_size=5, hidden_size=4, num_layers=1, embedding_size=3), dtype=torch.float64
    ).eval()
    tokens = torch.randint(0, 5, (203,))
    batches = StreamBatcher(tokens, batch_size=4, seq_len=7, passes=1)
    total, count, carry = 0.0, 0, None
    with torch.no_grad():
        for batch in batches:
            out = lm_loss(m, batch, carry)
            total, count, carry = total + float(out.loss) * out.items, count + out.items, out.carry
    # the same 4 streams of 50 tokens fed whole give the same mean loss
    with torch.no_grad():
        whole, _ = m(tokens[:200].view(4, 50))  # (B, L, V)
    ref = torch.nn.functional.cross_entropy(
        whole.reshape(-1, 5), tokens[1:201].view(4, 50).reshape(-1)
    )
    assert total / count == pytest.approx(float(ref), rel=1e-12)
    assert evaluate_lm(m, tokens, batch_size=4, seq_len=9) == pytest.approx(float(ref), rel=1e-12)
