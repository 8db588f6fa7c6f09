"""CUDA: every engine equals the CPU result, the fused path is cuDNN with one flattened
weight buffer, the classical models and the language model run there, and fp16 mixed
precision trains to the fp32 loss. Skipped where no GPU is visible (``make test-gpu``
runs them where one is)."""

import warnings

import pytest
import torch

from rnnlab.nn import GRU, LSTM, SRN, MultiplicativeRNN

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]
DT = torch.float64
LAYERS = {
    "lstm": lambda: LSTM(3, 8, 2, bidirectional=True),
    "lstm-peephole": lambda: LSTM(3, 8, peepholes=True, layer_norm=True),
    "lstm1997": lambda: LSTM(3, 8, forget_gate=False),
    "gru": lambda: GRU(3, 8, 2),
    "srn": lambda: SRN(3, 8, nonlinearity="sigmoid"),
    "mrnn": lambda: MultiplicativeRNN(3, 8),
}


def _run(layer, x, lengths):
    layer.zero_grad()
    x = x.detach().requires_grad_()
    y, state = layer(x, lengths=lengths)
    state = state if isinstance(state, tuple) else (state,)
    (y.pow(2).sum() + sum(s.sum() for s in state)).backward()
    return [t.detach().cpu() for t in (y, *state, x.grad, *(p.grad for p in layer.parameters()))]


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("engine", ["loop", "bptt", "auto"])
def test_every_engine_on_cuda_equals_the_cpu_loop(name, engine):
    torch.manual_seed(0)
    layer = LAYERS[name]().double()
    x, lengths = torch.randn(4, 7, 3, dtype=DT), torch.tensor([7, 3, 5, 1])
    layer.engine = "loop"
    want = _run(layer, x, lengths)
    layer.cuda().engine = engine
    got = _run(layer, x.cuda(), lengths.cuda())
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_the_fused_path_is_cudnn_on_one_flattened_buffer():
    assert torch.backends.cudnn.is_available()
    layer = LSTM(16, 32, 2).cuda()
    assert layer.resolved_engine() == "fused"
    weights = layer.fused_weights(0, 2)
    storages = {w.untyped_storage().data_ptr() for w in weights}
    assert len(storages) == 1  # views of one cuDNN buffer, as flatten_parameters makes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # cuDNN warns when it must copy non-contiguous weights
        y, _ = layer(torch.randn(8, 20, 16, device="cuda"))
        y.sum().backward()
    theirs = torch.nn.LSTM(16, 32, 2, batch_first=True).cuda()
    theirs.load_state_dict(layer.state_dict())
    x = torch.randn(8, 20, 16, device="cuda")
    torch.testing.assert_close(layer(x)[0], theirs(x)[0])


def test_the_classical_models_on_cuda_equal_the_cpu():
    from rnnlab.classic import LinearDynamicalSystem
    from rnnlab.classic.hmm import HMM

    torch.manual_seed(0)
    x = torch.randn(3, 50, 2, dtype=DT)
    hmm = HMM(3, emission="gaussian", obs_dim=2, dtype=DT).fit(x, n_iter=3)
    want = hmm.log_likelihood(x)
    torch.testing.assert_close(hmm.cuda().log_likelihood(x.cuda()).cpu(), want)
    lds = LinearDynamicalSystem(2, 2)
    want = lds.filter(x).log_likelihood
    torch.testing.assert_close(lds.cuda().filter(x.cuda()).log_likelihood.cpu(), want)


def test_a_language_model_trains_on_cuda_and_fp16_reaches_the_fp32_loss(tmp_path):
    from rnnlab.train import LMTrainOptions, train_lm

    corpus = tmp_path / "t.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog. " * 200, encoding="utf-8")
    base = dict(data=str(corpus), hidden=64, layers=2, batch=16, seq_len=32, device="cuda")
    vals = {}
    for precision in ("fp32", "fp16", "bf16"):
        record, _ = train_lm(
            LMTrainOptions(**base, precision=precision), steps=60, out=tmp_path / precision,
            progress=False,
        )  # fmt: skip
        vals[precision] = record["val_bits_per_char"]
    assert abs(vals["fp16"] - vals["fp32"]) < 0.05, vals
    assert abs(vals["bf16"] - vals["fp32"]) < 0.1, vals
