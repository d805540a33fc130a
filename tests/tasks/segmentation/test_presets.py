from __future__ import annotations

import pytest

from medactive.errors import ConfigError
from medactive.tasks.segmentation.presets import CPU, PRESETS, SURVEY, get_preset


def test_survey_preset_follows_section_6_1_5():
    assert SURVEY.image_size == 256 and len(SURVEY.channels) == 5
    assert SURVEY.iterations == 4000 and SURVEY.batch_size == 32
    assert SURVEY.lr == 1e-3 and SURVEY.dropout == 0.1


def test_every_preset_documents_its_deviations():
    assert set(PRESETS) == {"survey", "cpu", "smoke"}
    for preset in PRESETS.values():
        assert preset.deviations and preset.image_size % 16 == 0
    assert any("64×64" in d for d in CPU.deviations)


def test_overrides_are_recorded():
    p = get_preset("cpu", iterations=10, n_mc_samples=3, channels=[4, 8, 16, 32, 64])
    assert (p.iterations, p.n_mc_samples, p.channels) == (10, 3, (4, 8, 16, 32, 64))
    assert p.val_every <= 10
    assert any("n_mc_samples" in d for d in p.deviations)
    assert any("iterations overridden to 10" in d for d in p.deviations)


def test_bad_presets_and_options():
    with pytest.raises(ConfigError, match="choose one of: survey, cpu, smoke"):
        get_preset("fast")
    with pytest.raises(ConfigError, match="unknown segmentation training option"):
        get_preset("cpu", epochs=3)
    with pytest.raises(ConfigError, match="multiple of 16"):
        get_preset("cpu", image_size=40)
    with pytest.raises(ConfigError, match="at least 1"):
        get_preset("cpu", iterations=0)
