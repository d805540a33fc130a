"""TypiClust at scale (issue 16): k-means on a sample then one assignment pass, typicality
only for the members nearest the centre of large clusters, 16-bit storage. Below each size
threshold nothing changes; above it the documented law holds."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from medactive.errors import ConfigError
from medactive.selection import clustering
from medactive.selection.typiclust import typiclust, typiclust_stacked


def _blobs(n_per_blob, dim=8, n_blobs=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=20.0, size=(n_blobs, dim))
    return np.concatenate([c + rng.normal(size=(n_per_blob, dim)) for c in centres])


def _exact_typicality(X, k):
    D = cdist(X, X)
    np.fill_diagonal(D, np.inf)
    return 1.0 / np.sort(D, axis=1)[:, :k].mean(axis=1)


def test_kmeans_below_max_samples_is_unchanged():
    X = _blobs(40).astype(np.float32)
    c0, l0 = clustering.kmeans(X, 5, rng=3)
    c1, l1 = clustering.kmeans(X, 5, rng=3, max_samples=X.shape[0])
    np.testing.assert_array_equal(l0, l1)
    np.testing.assert_array_equal(c0, c1)


@pytest.mark.parametrize("backend", ["sklearn", "faiss"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_kmeans_on_a_sample_assigns_every_point_to_its_nearest_centre(backend, dtype):
    X = _blobs(300).astype(dtype)  # 900 points, trained on 200 of them
    centres, labels = clustering.kmeans(X, 3, rng=0, backend=backend, max_samples=200,
                                         n_init=5)  # FAISS seeds at random
    assert centres.dtype == np.float32 and labels.shape == (900,)
    nearest = cdist(X.astype(np.float32), centres, "sqeuclidean").argmin(axis=1)
    np.testing.assert_array_equal(labels, nearest)
    # the three blobs are found: each blob is one cluster
    assert sorted(np.unique(labels[b * 300:(b + 1) * 300]).size for b in range(3)) == [1, 1, 1]
    assert np.unique(labels).size == 3


def test_kmeans_float16_fits_a_float32_sample_only(monkeypatch):
    # a 16-bit X is never converted whole: the fit sees a float32 sample, the rest is assigned
    X = _blobs(100).astype(np.float16)
    fitted = []
    real = clustering._fit

    def spy(Xs, *args, **kwargs):
        fitted.append((Xs.shape[0], Xs.dtype))
        return real(Xs, *args, **kwargs)

    monkeypatch.setattr(clustering, "_fit", spy)
    monkeypatch.setattr(clustering, "HALF_SAMPLES_MIN", 64)
    monkeypatch.setattr(clustering, "SAMPLES_PER_CLUSTER", 20)
    _, labels = clustering.kmeans(X, 3, rng=0)
    assert fitted == [(64, np.float32)] and labels.shape == (300,)


def test_small_clusters_keep_exact_typicality():
    # every cluster has at most typicality_candidates members: same picks and scores
    X, L = _blobs(30)[:80], _blobs(30)[80:]
    exact = typiclust(X, 6, X_labeled=L, rng=0, typicality_candidates=None)
    default = typiclust(X, 6, X_labeled=L, rng=0)
    capped = typiclust(X, 6, X_labeled=L, rng=0, typicality_candidates=30)
    for got in (default, capped):
        np.testing.assert_array_equal(got[0], exact[0])
        np.testing.assert_array_equal(got[1], exact[1])


def test_candidate_typicality_keeps_its_law_on_large_clusters():
    # 3 clusters of 400 points, 40 candidates each: every pick's typicality is exact (its
    # score is the true kNN typicality within the cluster) and within 2% of the best free point
    X = _blobs(400, dim=16)
    pos, scores = typiclust(X, 6, rng=0, max_clusters=3, typicality_candidates=40)
    picked = set()
    for p, s in zip(pos.tolist(), scores.tolist()):
        b = p // 400
        blob = X[400 * b:400 * (b + 1)]
        t = _exact_typicality(blob, 20)
        np.testing.assert_allclose(s, t[p - 400 * b], rtol=1e-4)
        free = [i for i in range(400) if 400 * b + i not in picked]
        assert s >= 0.98 * t[free].max()
        picked.add(p)


def test_a_dense_blob_off_the_mean_is_found():
    # one cluster: 300 broad points around 0 and a dense blob of 100 at (3, 0); the cluster's
    # mean lies between them, so members nearest the mean would miss the blob. The estimate
    # from a 40-member sample ranks the blob first.
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(scale=1.5, size=(300, 2)),
                        [3.0, 0.0] + rng.normal(scale=0.3, size=(100, 2))])
    t = _exact_typicality(X, 20)
    pos, scores = typiclust(X, 2, rng=0, max_clusters=1, typicality_candidates=40)
    assert all(p >= 300 for p in pos.tolist())
    assert scores[0] >= 0.98 * t.max()


def test_candidates_are_refilled_when_a_cluster_runs_out():
    X = _blobs(50, dim=4, n_blobs=1)
    pos, scores = typiclust(X, 12, rng=0, max_clusters=1, typicality_candidates=5)
    assert np.unique(pos).size == 12 and np.all(scores > 0)
    t = _exact_typicality(X, 20)
    np.testing.assert_allclose(scores, t[pos], rtol=1e-4)


def test_stacked_float16_matches_float32_on_well_separated_blobs():
    X, L = _blobs(60)[:170], _blobs(60)[170:]
    ref = typiclust(X, 5, X_labeled=L, rng=0)
    X_all = np.concatenate([X, L]).astype(np.float16)
    half = typiclust_stacked(X_all, 170, 5, rng=0)
    np.testing.assert_array_equal(half[0], ref[0])
    np.testing.assert_allclose(half[1], ref[1], rtol=1e-2)


def test_kmeans_sample_per_cluster_sets_the_sample(monkeypatch):
    seen = []
    real = clustering.kmeans

    def spy(X, n_clusters, **kwargs):
        seen.append(kwargs.get("max_samples"))
        return real(X, n_clusters, **kwargs)

    monkeypatch.setattr(clustering, "kmeans", spy)
    X = _blobs(30)
    typiclust(X, 3, rng=0, kmeans_samples_per_cluster=10)
    typiclust(X, 3, rng=0, kmeans_samples_per_cluster=None)
    assert seen == [30, None]


def test_scale_option_errors():
    X = np.zeros((6, 2))
    with pytest.raises(ConfigError, match="typicality_candidates"):
        typiclust(X, 1, typicality_candidates=0)
    with pytest.raises(ConfigError, match="kmeans_samples_per_cluster"):
        typiclust(X, 1, kmeans_samples_per_cluster=-3)


def test_large_clusters_do_not_keep_their_rows(monkeypatch):
    # issue 16 at 10^6: each scored cluster kept a float32 copy of its members' rows, i.e. a
    # second copy of X across all large clusters (+1.7 GB); only the cluster in hand may hold one
    import weakref

    from medactive.selection import neighbors

    seen, alive_at_call = [], []
    real = neighbors.knn_among

    def spy(X, *args, **kwargs):
        alive_at_call.append(sum(r() is not None for r in seen if r() is not X))
        seen.append(weakref.ref(X))
        return real(X, *args, **kwargs)

    monkeypatch.setattr(neighbors, "knn_among", spy)
    typiclust(_blobs(200, dim=8), 3, rng=0, max_clusters=3, typicality_candidates=20)
    assert len(alive_at_call) >= 6  # estimate + exact scoring in each of 3 clusters
    assert max(alive_at_call) <= 1  # at most the sample of the cluster in hand
