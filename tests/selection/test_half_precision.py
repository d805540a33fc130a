"""16-bit embedding storage (issue 16): exact decoding, D² law and k-center picks kept."""

from __future__ import annotations

import numpy as np
import pytest

from medactive.selection.embedding import (
    DenseEmbedding,
    FactorisedEmbedding,
    HalfMatrix,
    resolve_dtype,
)
from medactive.selection.kcenter import k_center_greedy


def test_float16_decode_is_numpy_cast_including_subnormals():
    values = np.array([[0.0, -0.0, 1.0, -2.5, 65504.0, 6.1e-5, 3e-7, -1e-6, 0.1, 1234.5]],
                      dtype=np.float32)
    M = HalfMatrix.encode(values, "float16")
    assert M.block(0, 1).tolist() == values.astype(np.float16).astype(np.float32).tolist()
    assert M.bits.dtype == np.uint16 and M.bits.nbytes == values.nbytes // 2


def test_bfloat16_rounds_to_nearest_even_by_hand():
    # 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even one (1)
    # 1 + 3 * 2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties go to 1 + 2^-6 (even)
    values = np.array([[1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-12, -3.0, 1e30]],
                      dtype=np.float32)
    before = values.copy()
    got = HalfMatrix.encode(values, "bfloat16").block(0, 1)[0]
    np.testing.assert_array_equal(values, before)  # the caller's array is not rounded in place
    assert got[:4].tolist() == [1.0, 1 + 2**-6, 1 + 2**-7, -3.0]
    assert abs(got[4] / 1e30 - 1) < 2**-8  # float32's range is kept


def test_float16_out_of_range_is_refused():
    with pytest.raises(ValueError, match="float16's range"):
        HalfMatrix.encode(np.array([[1e5]], dtype=np.float32), "float16")
    with pytest.raises(ValueError, match="NaN"):
        HalfMatrix.encode(np.array([[np.nan]], dtype=np.float32), "bfloat16")


def test_products_accumulate_over_blocks():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 7)).astype(np.float32)
    M = HalfMatrix.encode(X, "float16", block_rows=64)
    M.block_rows = 50  # several decode blocks per product
    Xr = X.astype(np.float16).astype(np.float64)
    np.testing.assert_allclose(M.matmul_t(X[:3], 10, 290), Xr[10:290] @ X[:3].T, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(M.sq_norms(), (Xr ** 2).sum(1), rtol=1e-6)


def test_auto_is_float32_below_the_threshold():
    assert resolve_dtype("auto", 249_999) == "float32"
    assert resolve_dtype("auto", 250_000) == "bfloat16"
    with pytest.raises(ValueError, match="embedding_dtype"):
        resolve_dtype("int8", 10)


def _badge_fixture(n=300, c=4, d=24, seed=0):
    rng = np.random.default_rng(seed)
    h = (rng.normal(scale=2.0, size=(6, d))[rng.integers(6, size=n)]
         + rng.standard_normal((n, d))).astype(np.float32)
    p = rng.dirichlet(np.ones(c), size=n)
    a = p.copy()
    a[np.arange(n), a.argmax(axis=1)] -= 1.0
    return a, h


def _d2_law(embedding, chosen: np.ndarray) -> np.ndarray:
    closest, _ = embedding.min_sq_distances(chosen)
    closest[chosen] = 0.0
    return closest / closest.sum()


@pytest.mark.parametrize("kind", ["float16", "bfloat16"])
def test_badge_d2_law_within_total_variation(kind):
    """The next-pick law of D² sampling, computed exactly from the D² weights, after 1, 5
    and 20 seeds: 16-bit storage stays within total variation 0.03 of float32."""
    a, h = _badge_fixture()
    exact = FactorisedEmbedding(a, h)
    half = FactorisedEmbedding(a, HalfMatrix.encode(h, kind))
    rng = np.random.default_rng(1)
    for k in (1, 5, 20):
        chosen = rng.choice(len(exact), size=k, replace=False)
        p, q = _d2_law(exact, chosen), _d2_law(half, chosen)
        tv = 0.5 * np.abs(p - q).sum()
        assert tv <= 0.03, (k, tv)
        # the bound is not vacuous: the uniform law over the others is far from D²
        uniform = np.where(p > 0, 1.0, 0.0) / (p > 0).sum()
        assert 0.5 * np.abs(p - uniform).sum() > 0.1


def _separated(metric: str, n=16):
    """Points whose farthest-first order has no near-ties, from a labeled point ``e0``.

    L2: ``1.15^j w_j`` on orthonormal axes ``w_j``: squared distances ``r_i^2 + r_j^2``, so
    picks go by decreasing radius. Cosine: ``s_j (e0 + t_j w_j)``, ``t_j = 0.2 · 1.3^j``,
    arbitrary norms ``s_j``: ``1 - cos`` to the chosen set is ``1 - 1/sqrt(1 + t_j^2)``.
    """
    d = n + 1
    W = np.eye(d)[1:]
    e0 = np.eye(d)[:1]
    j = np.random.default_rng(0).permutation(n)[:, None]  # the order is not the row order
    if metric == "l2":
        return (1.15 ** j * W).astype(np.float32), (0.01 * e0).astype(np.float32)
    scale = np.random.default_rng(1).uniform(1, 5, size=(n, 1))
    return (scale * (e0 + 0.2 * 1.3 ** j * W)).astype(np.float32), e0.astype(np.float32)


def _assert_gaps(X: np.ndarray, centres: np.ndarray, metric: str, k: int) -> None:
    """The fixture's precondition: at each of ``k`` steps the farthest point is >= 2 % ahead."""
    X, C = X.astype(np.float64), centres.astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        C = C / np.linalg.norm(C, axis=1, keepdims=True)
    min_d2 = ((X[:, None] - C[None]) ** 2).sum(-1).min(1)
    for _ in range(k):
        top = np.sort(min_d2)[-2:]
        assert top[1] > 1.02 * top[0]
        pick = int(np.argmax(min_d2))
        min_d2 = np.minimum(min_d2, ((X - X[pick]) ** 2).sum(-1))
        min_d2[pick] = -1.0


@pytest.mark.parametrize("kind", ["float16", "bfloat16"])
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_k_center_picks_identical_without_near_ties(kind, metric):
    X, labeled = _separated(metric)
    _assert_gaps(X, labeled, metric, 12)
    want, _ = k_center_greedy(X, 12, X_labeled=labeled, metric=metric, rng=0)
    got, _ = k_center_greedy(HalfMatrix.encode(X, kind), 12, X_labeled=labeled,
                             metric=metric, rng=0)
    assert got.tolist() == want.tolist()
    assert sorted(want.tolist()) != want.tolist()  # a real order, not the row order


def test_dense_embedding_on_half_matrix_matches_rounded_float32():
    X = np.random.default_rng(0).standard_normal((40, 5)).astype(np.float32)
    half = DenseEmbedding(HalfMatrix.encode(X, "float16"))
    rounded = DenseEmbedding(X.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(half.sq_distances(np.array([3, 7])),
                               rounded.sq_distances(np.array([3, 7])), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(half.take(np.array([2])).to_dense(), rounded.X[[2]])
