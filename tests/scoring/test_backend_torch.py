"""Uncertainty scores on torch tensors (issue 16 part 4): the same functions as on numpy,
equal within 1e-6, and the result stays a tensor (on the device it came from)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.predictions import ArrayPredictions
from medactive.scoring import bald, entropy, least_confidence, margin, mc_entropy
from medactive.strategies import create_strategy
from tests.device_tensor import on_device as _t


def test_margin_by_hand_on_torch():
    p = _t(np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]]))
    got = margin(p)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.as_subclass(torch.Tensor).numpy(), [0.2, 0.8, 1.0], atol=1e-12)


@pytest.mark.parametrize("fn", [entropy, margin, least_confidence])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_single_pass_scores_equal_on_numpy_and_torch(fn, dtype):
    p = np.random.default_rng(3).dirichlet(np.ones(5), size=40).astype(dtype)
    p[0] = [1.0, 0.0, 0.0, 0.0, 0.0]  # 0 log 0 = 0
    got = fn(_t(p))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.as_subclass(torch.Tensor).numpy(), fn(p), atol=1e-6)


@pytest.mark.parametrize("fn", [bald, mc_entropy])
def test_mc_scores_equal_on_numpy_and_torch(fn):
    mc = np.random.default_rng(4).dirichlet(np.ones(3), size=(30, 7)).transpose(0, 2, 1)
    got = fn(_t(mc))
    assert isinstance(got, torch.Tensor)
    np.testing.assert_allclose(got.as_subclass(torch.Tensor).numpy(), fn(mc), atol=1e-6)


def test_torch_scores_refuse_what_numpy_refuses():
    with pytest.raises(ValueError, match="sum to 1"):
        entropy(_t(np.array([[0.5, 0.6]])))


@pytest.mark.parametrize("name", ["entropy", "margin", "least_confidence", "bald"])
def test_score_strategies_pick_the_same_on_the_torch_backend(name):
    rng = np.random.default_rng(8)
    mc = rng.dirichlet(np.ones(4), size=(50, 6)).transpose(0, 2, 1)
    pool = ArrayPredictions(probas=mc.mean(-1), mc_probas=mc)
    host = create_strategy(name).query(pool, np.arange(5, 50), np.arange(5), 7, rng=1)
    moved = []
    pool.array_device = lambda x: moved.append(x.shape) or _t(x)
    dev = create_strategy(name).query(pool, np.arange(5, 50), np.arange(5), 7, rng=1)
    assert moved
    assert dev.indices.tolist() == host.indices.tolist()
    np.testing.assert_allclose(dev.scores, host.scores, atol=1e-6)
