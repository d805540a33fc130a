"""DAL's and VAAL's discriminators (tasks/discrepancy.py) on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.errors import ConfigError
from medactive.tasks.discrepancy import (
    DALConfig,
    VAALConfig,
    dal_scores,
    discrepancy_providers,
    vaal_scores,
)


def _two_regions(n_far: int = 10):
    """30 labeled points near the origin, 30 unlabeled ones among them, n_far far away."""
    rng = np.random.default_rng(0)
    near = rng.normal(0, 1, size=(60, 4))
    far = rng.normal(6, 1, size=(n_far, 4))
    x = np.r_[near, far].astype(np.float32)
    labeled = np.zeros(len(x), dtype=bool)
    labeled[:30] = True
    return x, labeled


def test_dal_ranks_what_is_unlike_the_labeled_set_first():
    x, labeled = _two_regions()
    p = dal_scores(x, labeled, seed=0)
    assert p.shape == (70,) and np.all((p >= 0) & (p <= 1))
    unlabeled = np.flatnonzero(~labeled)
    top = unlabeled[np.argsort(-p[unlabeled])[:10]]
    assert set(top.tolist()) == set(range(60, 70))  # the far cluster, unlike anything labeled


def test_dal_is_reproducible_per_seed_and_leaves_the_global_rng_alone():
    x, labeled = _two_regions()
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = dal_scores(x, labeled, seed=5, config=DALConfig(max_epochs=3))
    after = torch.rand(3)
    np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(a, dal_scores(x, labeled, seed=5, config=DALConfig(max_epochs=3)))
    assert not np.array_equal(a, dal_scores(x, labeled, seed=6, config=DALConfig(max_epochs=3)))


def test_dal_and_vaal_need_both_sets():
    x, _ = _two_regions()
    with pytest.raises(ConfigError, match="dal needs labeled and unlabeled"):
        dal_scores(x, np.zeros(len(x), dtype=bool), seed=0)
    with pytest.raises(ConfigError, match="vaal needs labeled and unlabeled"):
        vaal_scores(lambda i: torch.zeros(len(i), 1, 8, 8), 4, np.ones(4, dtype=bool), seed=0)


def _images():
    """Labeled: dark images; unlabeled: as many dark ones and 6 bright ones (8 x 8, grey)."""
    rng = np.random.default_rng(1)
    dark = rng.uniform(0.0, 0.2, size=(60, 1, 8, 8))
    bright = rng.uniform(0.8, 1.0, size=(6, 1, 8, 8))
    pool = torch.from_numpy(np.r_[dark, bright].astype(np.float32))
    labeled = np.zeros(len(pool), dtype=bool)
    labeled[:30] = True
    return pool, labeled


def test_vaal_discriminator_on_the_latent_ranks_an_unlabeled_mode_first():
    # adversary = 0 isolates the discriminator on the VAE's latent means: the bright mode,
    # never labeled, is what it finds most "unlabeled"
    pool, labeled = _images()
    cfg = VAALConfig(latent=4, width=4, steps=200, batch_size=16, image_size=8, adversary=0.0)
    p = vaal_scores(lambda i: pool[np.asarray(i)], len(pool), labeled, seed=0, config=cfg)
    unlabeled = np.flatnonzero(~labeled)
    top = unlabeled[np.argsort(-p[unlabeled])[:6]]
    assert set(top.tolist()) == set(range(60, 66))


def test_vaal_is_reproducible_per_seed():
    pool, labeled = _images()
    cfg = VAALConfig(latent=4, width=4, steps=20, batch_size=8, image_size=8)
    run = lambda seed: vaal_scores(lambda i: pool[np.asarray(i)], len(pool), labeled,
                                   seed=seed, config=cfg)
    a = run(0)
    assert a.shape == (66,) and np.all((a >= 0) & (a <= 1))
    np.testing.assert_array_equal(a, run(0))
    assert not np.array_equal(a, run(1))


def test_providers_train_once_for_the_labeled_set_and_refuse_without_it():
    x, labeled = _two_regions()
    calls = []

    def embeddings(idx):
        calls.append(len(idx))
        return x[idx]

    providers = discrepancy_providers(len(x), np.flatnonzero(labeled), seed=0,
                                      embeddings=embeddings, dal=DALConfig(max_epochs=2))
    assert set(providers) == {"dal_unlabeled"}  # no images: no VAAL
    first = providers["dal_unlabeled"](np.array([60, 61]))
    second = providers["dal_unlabeled"](np.array([0, 60]))
    assert calls == [len(x)] and first[0] == second[1]
    with pytest.raises(ConfigError, match="need the labeled set"):
        discrepancy_providers(len(x), None, seed=0, embeddings=embeddings)["dal_unlabeled"](
            np.array([0]))
