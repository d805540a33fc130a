"""Embeddings that selection algorithms read only through norms and inner products.

k-means++ seeding needs, for every step, the squared distances from all points to one new
centre: ``|x_i|^2 + |x_j|^2 - 2 <x_i, x_j>``. An :class:`Embedding` exposes exactly that, so
BADGE's gradient embedding ``g_i = a_i ⊗ h_i`` (``a_i = p_i - e_{y_hat_i}`` ``[c]``, ``h_i`` the
penultimate features ``[d]``) never has to be materialised as an ``[n, c*d]`` matrix:

- ``|g_i|^2 = |a_i|^2 |h_i|^2``
- ``<g_i, g_j> = (a_i · a_j)(h_i · h_j)``

so one step costs ``O(n (c + d))`` time and ``O(n)`` memory instead of ``O(n c d)`` of both.

Example:
    >>> import numpy as np
    >>> a, h = np.array([[1.0, -1.0], [0.5, 0.0]]), np.array([[2.0], [4.0]])
    >>> emb = FactorisedEmbedding(a, h)
    >>> emb.sq_norms()
    array([8., 4.])
    >>> np.allclose(emb.to_dense() @ emb.to_dense().T, emb.dot(np.array([0, 1])))
    True
"""

from __future__ import annotations

import numpy as np


class Embedding:
    """``n`` vectors of dimension ``dim``, accessed through norms and inner products."""

    n: int
    dim: int

    def __len__(self) -> int:
        return self.n

    def sq_norms(self) -> np.ndarray:
        """``[n]`` squared Euclidean norms."""
        raise NotImplementedError

    def dot(self, rows: np.ndarray) -> np.ndarray:
        """``[n, len(rows)]`` inner products of every vector with the vectors ``rows``."""
        raise NotImplementedError

    def sq_distances(self, rows: np.ndarray, sq_norms: np.ndarray | None = None) -> np.ndarray:
        """``[n, len(rows)]`` squared Euclidean distances to the vectors ``rows`` (``>= 0``).

        Args:
            rows: ``[m]`` positions of the reference vectors.
            sq_norms: the ``[n]`` result of :meth:`sq_norms`, to avoid recomputing it.
        """
        rows = np.asarray(rows, dtype=np.int64)
        sq = self.sq_norms() if sq_norms is None else sq_norms
        d2 = sq[:, None] + sq[rows][None, :] - 2.0 * self.dot(rows)
        return np.maximum(d2, 0.0, out=d2)

    def take(self, positions: np.ndarray) -> Embedding:
        """The embedding restricted to ``positions`` (same class)."""
        raise NotImplementedError

    def to_dense(self) -> np.ndarray:
        """``[n, dim]`` materialised vectors (small inputs and tests only)."""
        raise NotImplementedError


class DenseEmbedding(Embedding):
    """Vectors held as rows of a matrix.

    Args:
        X: ``[n, d]`` vectors; float32 is kept (faster), anything else becomes float64.
    """

    def __init__(self, X: np.ndarray) -> None:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be [n, d], got shape {X.shape}")
        if X.dtype != np.float32:
            X = X.astype(np.float64, copy=False)
        _check_finite(X, "X")
        self.X = X
        self.n, self.dim = X.shape

    def sq_norms(self) -> np.ndarray:
        return np.einsum("ij,ij->i", self.X, self.X, dtype=np.float64)

    def dot(self, rows: np.ndarray) -> np.ndarray:
        return (self.X @ self.X[np.asarray(rows, dtype=np.int64)].T).astype(np.float64, copy=False)

    def take(self, positions: np.ndarray) -> DenseEmbedding:
        return DenseEmbedding(self.X[np.asarray(positions, dtype=np.int64)])

    def to_dense(self) -> np.ndarray:
        return self.X


class FactorisedEmbedding(Embedding):
    """Row-wise outer products ``g_i = a_i ⊗ h_i`` kept as their two factors.

    ``to_dense()`` flattens ``g_i`` class-major: ``g_i[k * d + j] = a_i[k] * h_i[j]``, the
    layout of ``torch.nn.Linear(d, c).weight.grad`` (``[c, d]``) flattened.

    Args:
        a: ``[n, c]`` left factors (BADGE: ``p_i - e_{y_hat_i}``).
        h: ``[n, d]`` right factors (BADGE: penultimate features).

    References:
        Ash et al., "Deep batch active learning by diverse, uncertain gradient lower bounds"
        (BADGE), ICLR 2020.
    """

    def __init__(self, a: np.ndarray, h: np.ndarray) -> None:
        a, h = np.asarray(a), np.asarray(h)
        if a.ndim != 2 or h.ndim != 2 or a.shape[0] != h.shape[0]:
            raise ValueError(f"a must be [n, c] and h [n, d] with the same n, got shapes "
                             f"{a.shape} and {h.shape}")
        a = a if a.dtype == np.float32 else a.astype(np.float64, copy=False)
        h = h if h.dtype == np.float32 else h.astype(np.float64, copy=False)
        _check_finite(a, "a")
        _check_finite(h, "h")
        self.a, self.h = a, h
        self.n = a.shape[0]
        self.dim = a.shape[1] * h.shape[1]

    def sq_norms(self) -> np.ndarray:
        a2 = np.einsum("ij,ij->i", self.a, self.a, dtype=np.float64)
        h2 = np.einsum("ij,ij->i", self.h, self.h, dtype=np.float64)
        return a2 * h2

    def dot(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        left = (self.a @ self.a[rows].T).astype(np.float64, copy=False)
        right = self.h @ self.h[rows].T
        left *= right
        return left

    def take(self, positions: np.ndarray) -> FactorisedEmbedding:
        positions = np.asarray(positions, dtype=np.int64)
        return FactorisedEmbedding(self.a[positions], self.h[positions])

    def to_dense(self) -> np.ndarray:
        return (self.a[:, :, None] * self.h[:, None, :]).reshape(self.n, self.dim)


def _check_finite(values: np.ndarray, name: str, chunk: int = 65536) -> None:
    # chunked so that a [10^6, 512] input does not need a same-sized boolean temporary
    for start in range(0, values.shape[0], chunk):
        if not np.isfinite(values[start:start + chunk]).all():
            raise ValueError(f"embedding {name} contains NaN or infinite values")
