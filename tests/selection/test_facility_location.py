from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp

from medactive.errors import ConfigError
from medactive.selection.facility_location import (
    facility_location_greedy,
    knn_similarity,
    l2_normalise,
)


def _objective(D, Q, chosen=(), weights=None):
    """Σ_x w_x max_{q ∈ Q ∪ chosen} D[q, x] from a dense similarity (brute force)."""
    rows = list(Q) + list(chosen)
    if not rows:
        return 0.0
    w = np.ones(D.shape[0]) if weights is None else weights
    return float((w * D[rows].max(axis=0)).sum())


def _three_directions(n_per=4, seed=0):
    # 3 tight groups in orthogonal planes of R^6 (group g: axis g plus noise on axis 3 + g):
    # cosine ~1 inside a group, exactly 0 across groups
    rng = np.random.default_rng(seed)
    eye = np.eye(6)
    return np.concatenate([eye[g] + 0.3 * rng.normal(size=(n_per, 1)) * eye[3 + g]
                           for g in range(3)])


def test_similarity_is_clipped_cosine_on_knn_edges_symmetric_with_unit_diagonal():
    X = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0], [-1.0, 0.0]])
    S = knn_similarity(X, 1).toarray()
    c = np.sqrt(0.5)
    # nearest by cosine: 0 -> 1, 1 -> 0 (tie with 2, lower index), 2 -> 1, 3 -> 2 (cos 0 vs -1)
    expected = np.array([[1, c, 0, 0], [c, 1, c, 0], [0, c, 1, 0], [0, 0, 0, 1]])
    np.testing.assert_allclose(S, expected, atol=1e-6)
    np.testing.assert_allclose(l2_normalise(np.zeros((1, 3))), 0.0)  # zero rows stay zero


def test_memory_is_order_n_k():
    X = np.random.default_rng(0).normal(size=(500, 8))
    S = knn_similarity(X, 5)
    assert sp.issparse(S) and S.nnz <= 500 * (2 * 5 + 1)


@pytest.mark.parametrize("seed", range(5))
def test_lazy_greedy_equals_plain_greedy(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(200, 6))
    S = knn_similarity(X, 8)
    cands = np.sort(rng.choice(200, size=120, replace=False))
    chosen = np.setdiff1d(np.arange(200), cands)[:10]
    weights = (rng.random(200) < 0.8).astype(float)
    kwargs = {"candidates": cands, "chosen": chosen, "weights": weights}
    lazy = facility_location_greedy(S, 40, lazy=True, **kwargs)
    plain = facility_location_greedy(S, 40, lazy=False, **kwargs)
    np.testing.assert_array_equal(lazy[0], plain[0])
    np.testing.assert_array_equal(lazy[1], plain[1])


def test_lazy_equals_plain_with_ties_lowest_position_first():
    # 6 identical points: every gain ties; both greedy versions take positions in order
    S = knn_similarity(np.ones((6, 2)), 5)
    for lazy in (True, False):
        picks, gains = facility_location_greedy(S, 3, lazy=lazy)
        assert picks.tolist() == [0, 1, 2]
        np.testing.assert_allclose(gains, [6.0, 0.0, 0.0])


def test_greedy_matches_the_greedy_definition_by_brute_force_step_by_step():
    # ≤ 12 points, dense similarity (k = n - 1): each greedy pick must be the candidate with
    # the largest F(Q ∪ {c}) - F(Q), F recomputed from scratch; ties to the lowest position
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 4))
    S = knn_similarity(X, 11)
    D = S.toarray()
    chosen = [2, 7]
    picks, gains = facility_location_greedy(S, 5, candidates=np.setdiff1d(np.arange(12),
                                                                           chosen), chosen=chosen)
    Q: list[int] = []
    for b in range(5):
        base = _objective(D, Q, chosen)
        cand = [c for c in range(12) if c not in chosen and c not in Q]
        best = max(cand, key=lambda c: (_objective(D, Q + [c], chosen) - base, -c))
        assert picks[b] == best
        assert gains[b] == pytest.approx(_objective(D, Q + [best], chosen) - base)
        Q.append(best)


def test_greedy_is_optimal_on_separated_groups_brute_force():
    # three groups with cosine 0 between them: F splits into one term per group, a second pick
    # in a group gains less than a first pick elsewhere, so the greedy's set is optimal
    X = _three_directions()
    S = knn_similarity(X, 11)
    D = S.toarray()
    picks, _ = facility_location_greedy(S, 3)
    best = max(_objective(D, Q) for Q in itertools.combinations(range(12), 3))
    assert _objective(D, picks.tolist()) == pytest.approx(best)
    assert sorted(p // 4 for p in picks.tolist()) == [0, 1, 2]


def test_labeled_group_is_already_covered():
    X = _three_directions()
    picks, _ = facility_location_greedy(knn_similarity(X, 11), 2,
                                        candidates=np.arange(4, 12), chosen=[0])
    assert sorted(p // 4 for p in picks.tolist()) == [1, 2]


def test_errors():
    S = knn_similarity(np.eye(3), 2)
    with pytest.raises(ConfigError, match="budget"):
        facility_location_greedy(S, 4)
    with pytest.raises(ValueError, match="weights"):
        facility_location_greedy(S, 1, weights=-np.ones(3))
    with pytest.raises(ValueError, match="square"):
        facility_location_greedy(sp.csr_matrix(np.ones((2, 3))), 1)


def test_l2_normalise_in_place_only_when_asked():
    X = np.array([[3.0, 4.0], [0.0, 0.0]], dtype=np.float32)
    copied = l2_normalise(X)
    assert X[0, 0] == 3.0 and copied[0].tolist() == pytest.approx([0.6, 0.8])
    same = l2_normalise(X, copy=False)
    assert same is X and X[0].tolist() == pytest.approx([0.6, 0.8]) and X[1].tolist() == [0, 0]
