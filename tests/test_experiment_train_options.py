"""Training options of an experiment that collide with its own fields are refused by name."""

from __future__ import annotations

import pytest

from medactive.errors import ConfigError
from medactive.experiment import ExperimentConfig, build_task


def test_epochs_among_the_training_options_is_refused_naming_the_field():
    config = ExperimentConfig(data="default", strategy="random", initial=10, budget=10,
                              rounds=1, preset="smoke",
                              train_options={"epochs": 5})
    with pytest.raises(ConfigError, match=r"^training option 'epochs': set the run's epochs "
                       r"instead \(--epochs, the grid field epochs\)$"):
        build_task(config)
