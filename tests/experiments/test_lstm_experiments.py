"""The LSTM task reproductions: the shared trainer (oracle checks) and every quick preset
(result structure, sane metrics, and learning where a quick run can show it)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from rnnlab.experiments import ExperimentConfig, ExperimentResult, get, registry
from rnnlab.experiments._task_training import Evaluation, RecurrentNet, init_1997, train_task
from rnnlab.experiments.anbn import max_n_generalised
from rnnlab.nn import LSTM
from rnnlab.tasks import anbn

NAMES = ("adding", "reber", "anbn", "anbncn", "temporal-order", "multiplication", "copy")


# --------------------------------------------------------------------------- trainer


class _Const(nn.Module):
    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.b.expand(x.shape[0])


def _mean_task(target=3.0):
    def sample(b, g):
        return target + 0.1 * torch.randn(b, generator=g)

    def loss(m, x):
        return ((m(x) - x) ** 2).mean()

    return sample, loss


def test_trainer_counts_sequences_and_stops_at_success():
    sample, loss = _mean_task()
    seen = []

    def evaluate(m):
        seen.append(float(m.b))
        return Evaluation({"b": float(m.b)}, done=abs(float(m.b) - 3.0) < 0.05)

    net = _Const()
    log = train_task(net, sample, loss, evaluate, batch_size=8, max_sequences=80_000,
                     eval_every=40, lr=0.1, optimiser="sgd", momentum=0.0, seed=0)  # fmt: skip
    assert log.success
    assert log.sequences == 8 * log.updates
    assert log.sequences % 40 == 0 and log.sequences < 80_000
    assert [h["sequences"] for h in log.history] == [40 * (k + 1) for k in range(len(seen))]
    assert abs(float(net.b.detach()) - 3.0) < 0.05


def test_trainer_budget_and_keep_best_restore():
    sample, loss = _mean_task()
    scores = iter([1.0, 5.0, 2.0, 0.0, 0.0, 0.0])
    states = []

    def evaluate(m):
        states.append(float(m.b))
        return Evaluation({}, score=next(scores))

    net = _Const()
    log = train_task(net, sample, loss, evaluate, batch_size=4, max_sequences=20,
                     eval_every=4, lr=0.5, optimiser="sgd", momentum=0.0, seed=1,
                     keep_best=True)  # fmt: skip
    assert not log.success and log.sequences == 20
    assert log.best_score == 5.0 and log.best_sequences == 8
    assert float(net.b.detach()) == pytest.approx(states[1])  # parameters of the best evaluation


def test_trainer_is_seeded():
    sample, loss = _mean_task()
    runs = []
    for _ in range(2):
        net = _Const()
        train_task(net, sample, loss, lambda m: Evaluation({}), batch_size=4,
                   max_sequences=40, eval_every=20, lr=0.1, seed=7)  # fmt: skip
        runs.append(float(net.b.detach()))
    assert runs[0] == runs[1]


def test_init_1997_sets_gate_biases():
    lstm = init_1997(LSTM(2, 4, forget_gate=False), scale=0.1, input_gate_bias=(-3, -6),
                     output_gate_bias=(-1,))  # fmt: skip
    assert lstm.bias_ih_l0[:4].tolist() == [-3, -6, -3, -6]
    assert lstm.bias_ih_l0[8:].tolist() == [-1] * 4
    assert float(lstm.bias_hh_l0[:4].detach().abs().sum()) == 0.0
    assert float(lstm.weight_ih_l0.detach().abs().max()) <= 0.1


def test_recurrent_net_reads_the_last_valid_step():
    torch.manual_seed(0)
    net = RecurrentNet(LSTM(3, 5), 2).double()
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    lengths = torch.tensor([7, 4])
    y = net(x, lengths)
    y1 = net(x[1:, :4], None)  # the second sequence alone, truncated
    assert torch.allclose(y[1], y1[0], atol=1e-12)


# --------------------------------------------------------------------------- anbn helper


class _Automaton(nn.Module):
    """The exact counter automaton's logits, wrong on every n > ``fail_above``."""

    def __init__(self, with_c, fail_above=None):
        super().__init__()
        self.with_c, self.fail_above = with_c, fail_above

    def forward(self, x, lengths):
        from rnnlab.tasks._common import TaskBatch

        k = 3 if self.with_c else 2
        b = TaskBatch(x, None, None, lengths)
        logits = 2 * anbn.solve(b, self.with_c) - 1
        if self.fail_above is not None:
            n = (lengths - 1) // k
            logits[n > self.fail_above, 0, :] = 1.0  # every symbol "legal" after S
        return logits


@pytest.mark.parametrize("with_c", [False, True])
def test_max_n_generalised_against_the_automaton(with_c):
    assert max_n_generalised(_Automaton(with_c), with_c, 45, chunk=20) == 45
    assert max_n_generalised(_Automaton(with_c, 33), with_c, 45, chunk=20) == 33
    assert max_n_generalised(_Automaton(with_c, 0), with_c, 45, chunk=20) == 0


# --------------------------------------------------------------------------- quick presets


def test_registered():
    names = registry()
    for name in NAMES:
        assert name in names


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = {}
    for name in NAMES:
        folder = tmp_path_factory.mktemp(name.replace("-", "_"))
        out[name] = (get(name).run(ExperimentConfig(quick=True, seed=0, out=folder)), folder)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_quick_preset_structure(quick_results, name):
    res, folder = quick_results[name]
    assert isinstance(res, ExperimentResult)
    assert res.experiment == name
    assert isinstance(res.success, bool)
    json.dumps(res.metrics), json.dumps(res.published)  # serialisable
    assert res.report.startswith(f"# {name}")
    assert "| this run |" in res.report
    assert res.plots and all(p.exists() and p.parent == folder for p in res.plots)
    for v in res.metrics.values():
        if isinstance(v, float):
            assert math.isfinite(v)
    if "sequences" in res.metrics:
        assert res.metrics["sequences"] > 0


def test_quick_adding_learns_and_srn_does_not(quick_results):
    m = quick_results["adding"][0].metrics
    assert m["lstm_test_mse"] < 0.9 * m["constant_baseline_mse"]
    assert m["srn_sequences"] == m["lstm_sequences"]
    assert 0 <= m["lstm_wrong"] <= m["test_sequences"]


def test_quick_counting_languages_metrics_in_range(quick_results):
    for name in ("anbn", "anbncn"):
        m = quick_results[name][0].metrics
        assert 0 <= m["max_n_generalised"] <= m["max_n_tested"]


def test_quick_copy_and_order_metrics_are_sane(quick_results):
    c = quick_results["copy"][0].metrics
    assert c["memoryless_baseline_ce"] == pytest.approx(10 * math.log(8) / (c["T"] + 20))
    assert 0 <= c["symbol_accuracy"] <= 1
    t = quick_results["temporal-order"][0].metrics
    assert 0 <= t["wrong"] <= t["test_sequences"]
