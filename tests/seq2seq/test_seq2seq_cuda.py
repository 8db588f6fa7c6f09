"""CUDA: Seq2Seq's teacher forcing and beam search equal the CPU results (float64).
Skipped where no GPU is visible (``make test-gpu`` runs it where one is)."""

import pytest
import torch

from rnnlab.seq2seq import Seq2Seq

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]


@pytest.mark.parametrize("attention", [None, "bahdanau", "luong-general"])
def test_cuda_equals_cpu(attention):
    torch.manual_seed(0)
    m = Seq2Seq(9, 7, hidden_size=8, embedding_size=5, attention=attention,
                bidirectional_encoder=True, num_layers=2, dtype=torch.float64).eval()  # fmt: skip
    src = torch.randint(3, 9, (4, 6))
    lengths = torch.tensor([6, 2, 4, 1])
    src = src.masked_fill(torch.arange(6) >= lengths[:, None], 0)
    tgt = torch.randint(3, 7, (4, 5))
    tgt[:, 0] = 1
    cpu = m(src, lengths, tgt)
    cpu_beam = m.translate(src, lengths, beam_size=3, max_length=6)
    m.cuda()
    gpu = m(src.cuda(), lengths.cuda(), tgt.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-11)
    gpu_beam = m.translate(src.cuda(), lengths.cuda(), beam_size=3, max_length=6)
    assert gpu_beam.tokens == cpu_beam.tokens
    torch.testing.assert_close(gpu_beam.scores, cpu_beam.scores)
