from __future__ import annotations

import numpy as np
import pytest

from medactive.scoring import typicality
from medactive.selection.neighbors import knn_graph


def test_typicality_on_a_line_by_hand():
    X = np.array([[0.0], [1.0], [2.0], [10.0]], dtype=np.float32)
    _, dist = knn_graph(X, 2)
    # 2 nearest: 0 -> {1, 2} mean 1.5; 1 -> {0, 2} mean 1; 2 -> {1, 0} mean 1.5;
    # 10 -> {2, 1} mean 8.5
    np.testing.assert_allclose(typicality(dist), [1 / 1.5, 1.0, 1 / 1.5, 1 / 8.5], rtol=1e-6)
    assert int(np.argmax(typicality(dist))) == 1  # the middle of the dense run


def test_typicality_from_a_distance_table():
    d = np.array([[1.0, 3.0], [2.0, 2.0], [0.5, 0.5]])
    np.testing.assert_allclose(typicality(d), [0.5, 0.5, 2.0])
    assert typicality(np.zeros((1, 3)))[0] == pytest.approx(1e12)  # duplicates stay finite


@pytest.mark.parametrize("bad", [np.zeros(3), np.zeros((3, 0)), np.array([[-1.0]]),
                                 np.array([[np.nan]])])
def test_typicality_rejects_bad_input(bad):
    with pytest.raises(ValueError, match="knn_distances"):
        typicality(bad)
