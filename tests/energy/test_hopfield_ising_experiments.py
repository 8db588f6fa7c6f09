"""The quick presets of ``hopfield-capacity`` and ``ising`` (result structure, numbers that
a quick run can already check against theory), and the Binder-crossing estimator."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from rnnlab._threads import torch_threads
from rnnlab.energy import CRITICAL_TEMPERATURE, onsager_energy
from rnnlab.experiments import ExperimentConfig, get
from rnnlab.experiments.hopfield_capacity import predicted_exact_recall
from rnnlab.experiments.ising import binder_crossing


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def test_hopfield_capacity_quick(tmp_path):
    res = get("hopfield-capacity").run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    rows = json.loads((tmp_path / "hopfield_capacity_rows.json").read_text())
    hebb, storkey = rows["hebb"], rows["storkey"]
    assert res.metrics["hebb_bit_error_just_below_alpha_c"] == hebb[2]["bit_error"]  # 0.10
    assert [r["patterns"] for r in hebb] == [r["patterns"] for r in storkey]
    assert hebb[0]["bit_error"] == 0.0 and hebb[0]["exact_recall"] == 1.0
    assert hebb[-1]["bit_error"] > 0.05  # alpha = 0.24: far beyond capacity
    assert all(s["bit_error"] <= h["bit_error"] for h, s in zip(hebb, storkey))
    assert all(0 <= r["fixed_points"] <= 1 for r in hebb)
    with_digits = importlib.util.find_spec("sklearn") is not None
    assert all(p.exists() for p in res.plots) and len(res.plots) == 1 + with_digits
    assert "| P | alpha |" in res.report


def test_predicted_exact_recall_limits():
    assert predicted_exact_recall(400, 1) == 1.0
    assert predicted_exact_recall(400, 10) > 0.999
    assert predicted_exact_recall(400, 100) < 0.01
    assert predicted_exact_recall(400, 40) > predicted_exact_recall(400, 60)


def test_ising_quick(tmp_path):
    res = get("ising").run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    m = res.metrics
    assert m["curve_lattice"] == 8 and m["binder_lattices"] == [4, 8]
    assert 2.0 < m["tc_binder_crossing"] < 2.6
    assert all(p.exists() for p in res.plots) and len(res.plots) == 2
    assert "Onsager e" in res.report
    assert res.published["tc_binder_crossing"] == pytest.approx(CRITICAL_TEMPERATURE)
    # far from T_c even an 8x8 lattice has the infinite lattice's energy
    line = next(x for x in res.report.splitlines() if x.startswith("| 1.000 |"))
    e = float(line.split("|")[2].split("+-")[0])
    assert e == pytest.approx(onsager_energy(1.0), abs=0.01)


def test_binder_crossing_finds_the_root_of_crossing_lines():
    t = np.linspace(2.1, 2.4, 7)
    u_small = 0.60 - 0.1 * (t - 2.27)
    u_large = 0.60 - 0.4 * (t - 2.27)
    err = np.full(7, 1e-4)
    est, sd = binder_crossing(t, u_small, err, u_large, err, np.random.default_rng(0))
    assert est == pytest.approx(2.27, abs=1e-9)
    assert 0 < sd < 1e-3
