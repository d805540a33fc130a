"""kNN and linear-probe accuracy on hand-built feature sets."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.encoders.quality import (
    encoder_quality,
    knn_accuracy,
    knn_predict,
    linear_probe_accuracy,
)
from medactive.errors import ConfigError


def test_knn_majority_of_cosine_neighbours_by_hand():
    # directions matter, not lengths: (10, 0) is as close to (1, 0) as (1, 0) itself
    train = np.array([[1.0, 0.0], [10.0, 0.5], [0.0, 1.0], [0.2, 3.0], [0.1, 1.0]])
    labels = np.array([0, 0, 1, 1, 1])
    # (2, 1): cosines 0.894, 0.915, 0.447, 0.505, 0.534 -> the two nearest are class 0
    query = np.array([[5.0, 0.1], [0.0, 2.0], [2.0, 1.0]])
    assert knn_predict(train, labels, query, k=1).tolist() == [0, 1, 0]
    assert knn_predict(train, labels, query, k=2).tolist() == [0, 1, 0]
    # k = 5 is a vote of all: three 1s beat two 0s for every query
    assert knn_predict(train, labels, query, k=5).tolist() == [1, 1, 1]
    # (1, 1) is as close to (1, 0) as to (0, 1): one vote each, the tie goes to class 0
    assert knn_predict(train[[0, 2]], labels[[0, 2]], np.array([[1.0, 1.0]]), k=2).tolist() \
        == [0]


def test_knn_accuracy_and_blocks_agree():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50, 4))
    labels = (train[:, 0] > 0).astype(int)
    query = rng.normal(size=(30, 4))
    truth = (query[:, 0] > 0).astype(int)
    a = knn_predict(train, labels, query, k=5, block=7)
    b = knn_predict(train, labels, query, k=5, block=1000)
    assert np.array_equal(a, b)
    assert knn_accuracy(train, labels, query, truth, k=5) == pytest.approx(np.mean(a == truth))


def test_separable_toy_set_is_perfect_for_both_yardsticks():
    rng = np.random.default_rng(1)
    centres = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    def draw(n):
        y = np.arange(n) % 3
        return centres[y] + rng.normal(scale=0.3, size=(n, 3)), y
    (xtr, ytr), (xva, yva), (xte, yte) = draw(60), draw(30), draw(30)
    quality = encoder_quality({"train": xtr, "val": xva, "test": xte},
                              {"train": ytr, "val": yva, "test": yte}, k=20)
    assert quality == {"k": 20.0, "knn_val": 1.0, "knn_test": 1.0, "linear_val": 1.0,
                       "linear_test": 1.0}
    # labels shuffled against the features: both fall to chance (1/3 +- noise)
    shuffled = rng.permutation(ytr)
    probe = linear_probe_accuracy(xtr, shuffled, {"test": (xte, yte)})
    assert probe["test"] < 0.7
    assert knn_accuracy(xtr, shuffled, xte, yte, k=20) < 0.7


def test_knn_refuses_bad_shapes():
    with pytest.raises(ConfigError, match="k must be"):
        knn_predict(np.zeros((3, 2)), np.zeros(3, int), np.zeros((1, 2)), k=4)
    with pytest.raises(ConfigError, match="labels"):
        knn_predict(np.zeros((3, 2)), np.zeros(2, int), np.zeros((1, 2)), k=1)
