"""k-DPP sampling (Kulesza and Taskar 2011) on hand-checkable kernels.

Distribution tests: chi-square at level 0.001 over draws fixed by one seed (deterministic).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy.stats import chisquare

from medactive.selection.kdpp import kdpp_select, quality_kernel, sample_kdpp

DRAWS = 3000
#: a PSD kernel with distinct diagonal entries and off-diagonal similarity
B = np.array([[1.0, 0.2, 0.0, 0.1], [0.3, 1.0, 0.5, 0.0], [0.0, 0.4, 2.0, 0.2],
              [0.5, 0.0, 0.1, 0.8]])
L = B @ B.T


def test_size_one_is_proportional_to_the_diagonal():
    rng = np.random.default_rng(0)
    counts = np.zeros(4)
    for _ in range(DRAWS):
        counts[sample_kdpp(L, 1, rng=rng)[0]] += 1
    assert chisquare(counts, DRAWS * np.diag(L) / np.trace(L)).pvalue > 1e-3
    assert chisquare(counts).pvalue < 1e-10


def test_size_two_is_proportional_to_the_minors():
    pairs = list(itertools.combinations(range(4), 2))
    dets = np.array([np.linalg.det(L[np.ix_(p, p)]) for p in pairs])
    rng = np.random.default_rng(1)
    counts = dict.fromkeys(pairs, 0)
    for _ in range(DRAWS):
        counts[tuple(sorted(sample_kdpp(L, 2, rng=rng).tolist()))] += 1
    assert chisquare(list(counts.values()), DRAWS * dets / dets.sum()).pvalue > 1e-3


def test_similar_items_are_rarely_together():
    # items 0 and 1 are near-duplicates; 2 is far: {0, 1} is almost never drawn
    X = np.array([[0.0], [0.01], [3.0]])
    K = quality_kernel(X, np.ones(3), bandwidth=1.0)
    together = sum(set(sample_kdpp(K, 2, rng=s).tolist()) == {0, 1} for s in range(300))
    assert together < 3


def test_full_size_reproducible_and_candidates():
    rng = np.random.default_rng(2)
    X, scores = rng.normal(size=(200, 3)), rng.random(200)
    assert sorted(sample_kdpp(L, 4, rng=0).tolist()) == [0, 1, 2, 3]
    a = kdpp_select(X, scores, 6, rng=5, max_candidates=30)
    assert a.tolist() == kdpp_select(X, scores, 6, rng=5, max_candidates=30).tolist()
    assert len(set(a.tolist())) == 6 and set(a.tolist()) <= set(np.argsort(-scores)[:30].tolist())
    # repeated candidates: the jitter keeps the k-DPP defined
    twins = np.zeros((5, 2))
    assert sorted(kdpp_select(twins, np.ones(5), 5, rng=0).tolist()) == [0, 1, 2, 3, 4]
