"""tta_kl: top-b by the mean KL of augmented predictions to their mean."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.loop.cycle import ActiveLearningCycle
from medactive.loop.records import LoopConfig
from medactive.predictions import ArrayPredictions, CachedPredictions
from medactive.strategies import create_strategy
from tests.loop.fake_task import FakeTask


def test_picks_the_samples_whose_augmentations_disagree():
    agree = [[0.9, 0.9], [0.1, 0.1]]
    slightly = [[0.8, 0.6], [0.2, 0.4]]
    contradict = [[1.0, 0.0], [0.0, 1.0]]
    preds = ArrayPredictions(tta_probas=np.array([agree, contradict, slightly, agree]))
    result = create_strategy("tta_kl").query(preds, np.arange(4), np.array([], int), 2, rng=0)
    assert result.indices.tolist() == [1, 2]
    np.testing.assert_allclose(result.scores[0], np.log(2))


def test_reads_only_tta_probas_and_takes_n_augmentations():
    strategy = create_strategy("tta_kl", n_augmentations=4)
    assert strategy.requires == ("tta_probas",) and strategy.n_augmentations == 4
    assert create_strategy("tta_kl").n_augmentations is None
    with pytest.raises(ConfigError, match="n_augmentations"):
        create_strategy("tta_kl", n_augmentations=1)
    assert create_strategy("power:tta_kl", n_augmentations=3).n_augmentations == 3


class _TTATask(FakeTask):
    """A FakeTask whose tta stack has as many views as the predictions hold when computed."""

    def predictions(self, model, *, seed):
        def tta(idx):
            self.views = preds.n_augmentations
            p = np.random.default_rng(seed).dirichlet(np.ones(self.n_classes),
                                                      size=(idx.size, self.views))
            return p.transpose(0, 2, 1)

        preds = CachedPredictions(len(self.pool_ids), {"tta_probas": tta})
        return preds


@pytest.mark.parametrize("option, views", [({}, 8), ({"n_augmentations": 3}, 3)])
def test_the_cycle_routes_n_augmentations_to_the_task(option, views):
    task = _TTATask()
    cycle = ActiveLearningCycle(task, LoopConfig(strategy="tta_kl", initial=4, budget=2,
                                                 rounds=1, seed=0, strategy_options=option))
    cycle.tell(cycle.labeled_idx, task.pool_labels(cycle.labeled_idx))
    cycle.fit()
    cycle.query()
    assert task.views == views
