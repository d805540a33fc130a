from __future__ import annotations

import numpy as np
import pytest

from medactive.errors import ConfigError
from medactive.loop.records import cold_start_indices
from medactive.predictions import ArrayPredictions
from medactive.strategies import create_strategy, strategy_descriptions

CENTRES = np.array([[0.0, 0.0], [30.0, 0.0], [0.0, 30.0]])
MODEL_FREE = ["kmeans", "max_cover", "probcover", "facility_location"]


def _grid_blobs():
    # three 5 x 5 grids of spacing 1; blob b's middle point is row 25 * b + 12
    g = np.stack(np.meshgrid(np.arange(-2.0, 3.0), np.arange(-2.0, 3.0)), -1).reshape(-1, 2)
    return np.concatenate([c + g for c in CENTRES])


class _SSLTask:
    """Just what cold_start_indices reads: pool ids and self-supervised embeddings of two
    groups in orthogonal directions (rows 0..29 and 30..39)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.pool_ids = [f"s{i}" for i in range(40)]
        self.group = (np.arange(40) >= 30).astype(int)
        base = np.where(self.group[:, None] == 0, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        self.emb = base + rng.normal(0, 0.05, (40, 3))

    def ssl_predictions(self):
        return ArrayPredictions(embeddings=self.emb)


def test_registered_model_free_with_options():
    assert "k-means" in strategy_descriptions()["kmeans"]
    s = create_strategy("kmeans")
    assert (s.kmeans_backend, s.n_init, s.requires) == ("sklearn", 1, ("embeddings",))
    assert create_strategy("kmeans", kmeans_backend="faiss", n_init=3).n_init == 3


def test_one_pick_per_blob_pool_absolute():
    preds = ArrayPredictions(embeddings=_grid_blobs())
    labeled = np.array([0, 1])
    unlabeled = np.setdiff1d(np.arange(75), labeled)[::-1]  # any order
    r = create_strategy("kmeans", n_init=3).query(preds, unlabeled, labeled, 3, rng=0)
    assert sorted(r.indices.tolist()) == [12, 37, 62]
    assert sorted(r.scores.tolist()) == [23.0, 25.0, 25.0]  # cluster sizes, 2 labeled left out


@pytest.mark.parametrize("name", MODEL_FREE)
def test_accepted_as_cold_start_initial_strategy(name):
    task = _SSLTask()
    idx, scores = cold_start_indices(task, 2, 0, name)
    assert idx.size == 2 and np.unique(idx).size == 2
    if name != "probcover":  # its default 10 pseudo-label clusters give a δ far below a group
        assert set(task.group[idx].tolist()) == {0, 1}
    assert np.isfinite(scores).all()
    again, _ = cold_start_indices(task, 2, 0, name)
    np.testing.assert_array_equal(idx, again)


@pytest.mark.parametrize("options,match", [({"kmeans_backend": "lloyd"}, "kmeans_backend"),
                                           ({"n_init": 0}, "n_init"),
                                           ({"k": 3}, "bad options")])
def test_bad_options(options, match):
    with pytest.raises(ConfigError, match=match):
        create_strategy("kmeans", **options)
