"""Embeddings that selection algorithms read only through norms and inner products.

k-means++ seeding needs, for every step, the squared distances from all points to one new
centre: ``|x_i|^2 + |x_j|^2 - 2 <x_i, x_j>``. An :class:`Embedding` exposes exactly that, so
BADGE's gradient embedding ``g_i = a_i ⊗ h_i`` (``a_i = p_i - e_{y_hat_i}`` ``[c]``, ``h_i`` the
penultimate features ``[d]``) never has to be materialised as an ``[n, c*d]`` matrix:

- ``|g_i|^2 = |a_i|^2 |h_i|^2``
- ``<g_i, g_j> = (a_i · a_j)(h_i · h_j)``

so one step costs ``O(n (c + d))`` time and ``O(n)`` memory instead of ``O(n c d)`` of both.

On very large pools the ``[n, d]`` matrix (``h``, or a dense embedding's ``X``) can be held in
16 bits (:class:`HalfMatrix`, IEEE float16 or bfloat16): every pass then reads half the bytes,
decoding blocks of rows into a small float32 buffer and accumulating in float32 (norms in
float64). :func:`resolve_dtype` says which storage ``"auto"`` means for a pool size.

The factors may also be torch tensors (or any array-API arrays), e.g. on a GPU
(``--selection-device cuda``): every product and norm then runs there with the same lines
(:mod:`medactive.scoring._arrays`); only the 16-bit :class:`HalfMatrix` is numpy-only.

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

from medactive.scoring._arrays import (
    as_float,
    is_device_array,
    namespace,
    positions_like,
    sq_row_norms,
)

#: storage choices of the ``[n, d]`` matrix; ``"auto"`` = float32 below
#: :data:`HALF_PRECISION_FROM` rows, bfloat16 from there on
EMBEDDING_DTYPES = ("auto", "float32", "float16", "bfloat16")
#: ``"auto"`` stores embeddings in 16 bits from this many rows (10^6 × 512 float32 = 2 GB)
HALF_PRECISION_FROM = 250_000
#: rows per block of a full pass (``min_sq_distances``), bounding its temporaries
PASS_ROWS = 65536


def resolve_dtype(embedding_dtype: str, n: int) -> str:
    """The storage ``embedding_dtype`` means for ``n`` rows: ``float32``, ``float16``, ``bfloat16``.

    ``"auto"`` is float32 below :data:`HALF_PRECISION_FROM` rows (small pools keep their exact
    picks) and bfloat16 from there on: float32's range (float16 overflows above 65504) and a
    decode that is two integer operations (numpy's float16 cast is several times slower).

    Example:
        >>> resolve_dtype("auto", 1000), resolve_dtype("auto", 10**6), resolve_dtype("float16", 5)
        ('float32', 'bfloat16', 'float16')
    """
    if embedding_dtype not in EMBEDDING_DTYPES:
        raise ValueError(f"embedding_dtype must be one of {EMBEDDING_DTYPES}, got "
                         f"{embedding_dtype!r}")
    if embedding_dtype == "auto":
        return "bfloat16" if n >= HALF_PRECISION_FROM else "float32"
    return embedding_dtype


class HalfMatrix:
    """An ``[n, d]`` float matrix stored in 16 bits, read back in float32 blocks.

    ``bits`` is ``[n, d]`` uint16: IEEE float16 (11 significant bits, finite values up to
    65504) or bfloat16 (the top half of a float32: 8 significant bits, float32's range). Every
    product decodes ``block_rows`` rows at a time into one reusable float32 buffer and
    multiplies there, so a pass reads ``2 n d`` bytes and no second ``[n, d]`` float32 array is
    ever made. Build it with :meth:`encode`.

    Example:
        >>> M = HalfMatrix.encode(np.array([[1.0, 2.0], [0.5, -3.0]], dtype=np.float32), "float16")
        >>> M.block(0, 2).tolist(), M.matmul_t(np.eye(2, dtype=np.float32)).tolist()
        ([[1.0, 2.0], [0.5, -3.0]], [[1.0, 2.0], [0.5, -3.0]])
    """

    KINDS = ("float16", "bfloat16")
    #: the type blocks decode to
    dtype = np.dtype(np.float32)

    def __init__(self, bits: np.ndarray, kind: str) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}, got {kind!r}")
        if bits.dtype != np.uint16 or bits.ndim != 2:
            raise ValueError(f"bits must be a [n, d] uint16 array, got {bits.dtype} {bits.shape}")
        self.bits, self.kind = bits, kind
        self.shape = bits.shape
        self.block_rows = max(64, 2**20 // max(1, bits.shape[1]))  # a 4 MB float32 buffer

    @classmethod
    def encode(cls, rows, kind: str, *, block_rows: int | None = None) -> HalfMatrix:
        """Round ``rows`` (``[n, d]``: an array, a memory map, or anything with ``len`` whose
        row-range slices are arrays, e.g. :class:`~medactive.predictions.FieldRows`) to 16
        bits, one block of ``block_rows`` rows at a time.

        Raises:
            ValueError: non-finite values, or values beyond float16's range for ``"float16"``.
        """
        n, bits = len(rows), None
        if block_rows is None:  # ~2^20 values (4 MB of float32) per block
            width = rows.shape[1] if len(getattr(rows, "shape", ())) == 2 else 512
            block_rows = max(1, 2**20 // max(1, width))
        for start in range(0, max(n, 1), block_rows):
            block = np.asarray(rows[start:start + block_rows], dtype=np.float32)
            if block.ndim != 2:
                raise ValueError(f"rows must be [n, d], got blocks of shape {block.shape}")
            if bits is None:
                bits = np.empty((n, block.shape[1]), dtype=np.uint16)
            if not np.isfinite(block).all():
                raise ValueError("embedding contains NaN or infinite values")
            if kind == "float16":
                if np.abs(block).max(initial=0.0) > 65504.0:
                    raise ValueError("embedding values exceed float16's range (65504): use "
                                     "embedding_dtype 'bfloat16' or 'float32'")
                bits[start:start + block.shape[0]] = block.astype(np.float16).view(np.uint16)
            elif kind == "bfloat16":  # round to nearest, ties to even, on the float32 bits
                # (no overflow: the largest finite pattern 0xFF7FFFFF + 0x8000 < 2^32)
                u = block.view(np.uint32).copy()  # a block may be a view of the caller's data
                lsb = np.right_shift(u, 16)
                np.bitwise_and(lsb, 1, out=lsb)
                lsb += 0x7FFF
                u += lsb
                np.right_shift(u, 16, out=u)
                bits[start:start + block.shape[0]] = u
            else:
                raise ValueError(f"kind must be one of {cls.KINDS}, got {kind!r}")
        return cls(bits, kind)

    def __len__(self) -> int:
        return self.shape[0]

    def _decode(self, bits: np.ndarray, out: np.ndarray) -> np.ndarray:
        """float32 values of ``bits`` ``[m, d]`` written into ``out`` (same shape)."""
        u = out.view(np.uint32)
        np.copyto(u, bits, casting="unsafe")
        if self.kind == "bfloat16":
            np.left_shift(u, 16, out=u)
            return out
        # float16 -> float32 by integer operations (exact for finite values, subnormals
        # included): move exponent and mantissa into place, rescale by 2^(127 - 15), re-sign
        sign = np.bitwise_and(u, 0x8000)
        np.left_shift(sign, 16, out=sign)
        np.bitwise_and(u, 0x7FFF, out=u)
        np.left_shift(u, 13, out=u)
        np.multiply(out, np.float32(2.0**112), out=out)
        np.bitwise_or(u, sign, out=u)
        return out

    def block(self, start: int, stop: int) -> np.ndarray:
        """``[stop - start, d]`` float32 rows ``start:stop`` (a new array)."""
        bits = self.bits[start:stop]
        return self._decode(bits, np.empty(bits.shape, dtype=np.float32))

    def rows(self, positions: np.ndarray) -> np.ndarray:
        """``[len(positions), d]`` float32 rows."""
        bits = self.bits[np.asarray(positions, dtype=np.int64)]
        return self._decode(bits, np.empty(bits.shape, dtype=np.float32))

    def _blocks(self, start: int, stop: int):
        buf = np.empty((min(self.block_rows, max(stop - start, 1)), self.shape[1]),
                       dtype=np.float32)
        for lo in range(start, stop, self.block_rows):
            hi = min(lo + self.block_rows, stop)
            yield lo, hi, self._decode(self.bits[lo:hi], buf[:hi - lo])

    def sq_norms(self) -> np.ndarray:
        """``[n]`` squared norms, accumulated in float64."""
        out = np.empty(self.shape[0], dtype=np.float64)
        for lo, hi, block in self._blocks(0, self.shape[0]):
            out[lo:hi] = np.einsum("ij,ij->i", block, block, dtype=np.float64)
        return out

    def matmul_t(self, Y: np.ndarray, start: int = 0, stop: int | None = None) -> np.ndarray:
        """``[stop - start, m]`` float32 products of rows ``start:stop`` with ``Y.T`` (``Y`` ``[m, d]``)."""
        stop = self.shape[0] if stop is None else stop
        Yt = np.ascontiguousarray(np.asarray(Y, dtype=np.float32).T)
        out = np.empty((stop - start, Yt.shape[1]), dtype=np.float32)
        for lo, hi, block in self._blocks(start, stop):
            np.matmul(block, Yt, out=out[lo - start:hi - start])
        return out

    def project(self, proj: np.ndarray) -> np.ndarray:
        """``[n, p]`` float32 ``X @ proj`` (a random projection), by blocks."""
        return self.matmul_t(np.asarray(proj, dtype=np.float32).T)


def _rows(X, positions: np.ndarray) -> np.ndarray:
    return X.rows(positions) if isinstance(X, HalfMatrix) else X[positions_like(X, positions)]


def _gram(X, start: int, stop: int, rows: np.ndarray) -> np.ndarray:
    """``[stop - start, len(rows)]`` inner products of rows ``start:stop`` with rows ``rows``."""
    if isinstance(X, HalfMatrix):
        return X.matmul_t(X.rows(rows), start, stop)
    return X[start:stop] @ X[positions_like(X, rows)].T


def _sq_norms(X) -> np.ndarray:
    if isinstance(X, HalfMatrix):
        return X.sq_norms()
    return sq_row_norms(X)


def _f64(x):
    """``x`` in float64 (no copy when it is already)."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float64, copy=False)
    xp = namespace(x)
    return x if x.dtype == xp.float64 else xp.astype(x, xp.float64)


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
        return self.dot_block(0, self.n, rows)

    def dot_block(self, start: int, stop: int, rows: np.ndarray) -> np.ndarray:
        """``[stop - start, len(rows)]`` inner products of vectors ``start:stop`` with ``rows``."""
        raise NotImplementedError

    def min_sq_distances(self, rows: np.ndarray, sq_norms: np.ndarray | None = None,
                         ) -> tuple[np.ndarray, np.ndarray]:
        """``([n] min, [n] argmin)`` over ``rows`` of the squared distances, in one blocked pass.

        One matrix product per block of :data:`PASS_ROWS` vectors: ``O(PASS_ROWS · len(rows))``
        temporaries instead of ``[n, len(rows)]``; ``argmin`` indexes ``rows``.
        """
        sq = self.sq_norms() if sq_norms is None else sq_norms
        if is_device_array(sq):
            return self._min_sq_distances_xp(rows, sq)
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty(self.n, dtype=np.float64)
        arg = np.empty(self.n, dtype=np.int64)
        block = max(1, min(PASS_ROWS, 2**22 // max(1, rows.size)))
        for start in range(0, self.n, block):
            stop = min(start + block, self.n)
            d2 = self.dot_block(start, stop, rows).astype(np.float64, copy=False)
            d2 *= -2.0
            d2 += sq[rows][None, :]
            arg[start:stop] = d2.argmin(axis=1)
            out[start:stop] = d2[np.arange(stop - start), arg[start:stop]]
            out[start:stop] += sq[start:stop]
        np.maximum(out, 0.0, out=out)
        return out, arg

    def _min_sq_distances_xp(self, rows, sq):
        """:meth:`min_sq_distances` on an array-API backend (same operations, new arrays)."""
        xp = namespace(sq)
        rows = positions_like(sq, rows)
        sq_rows = sq[rows][None, :]
        block = max(1, min(PASS_ROWS, 2**22 // max(1, rows.shape[0])))
        mins, args = [], []
        for start in range(0, self.n, block):
            stop = min(start + block, self.n)
            d2 = _f64(self.dot_block(start, stop, rows)) * -2.0 + sq_rows
            args.append(xp.argmin(d2, axis=1))
            mins.append(xp.min(d2, axis=1) + sq[start:stop])
        return xp.clip(xp.concat(mins), min=0.0), xp.concat(args)

    def sq_distances(self, rows: np.ndarray, sq_norms: np.ndarray | None = None) -> np.ndarray:
        """``[n, len(rows)]`` squared Euclidean distances to the vectors ``rows`` (``>= 0``).

        Args:
            rows: ``[m]`` positions of the reference vectors.
            sq_norms: the ``[n]`` result of :meth:`sq_norms`, to avoid recomputing it.
        """
        sq = self.sq_norms() if sq_norms is None else sq_norms
        if is_device_array(sq):
            rows = positions_like(sq, rows)
            d2 = sq[:, None] + sq[rows][None, :] - 2.0 * self.dot(rows)
            return namespace(d2).clip(d2, min=0.0)
        rows = np.asarray(rows, dtype=np.int64)
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
        X: ``[n, d]`` vectors; float32 is kept (faster), a :class:`HalfMatrix` is read in
            float32 blocks, anything else becomes float64. A torch tensor (any array-API
            array) stays one: the products run on its device.
    """

    def __init__(self, X) -> None:
        if is_device_array(X):
            X = as_float(X, "embedding X")
        elif not isinstance(X, HalfMatrix):
            X = np.asarray(X)
            if X.ndim != 2:
                raise ValueError(f"X must be [n, d], got shape {X.shape}")
            if X.dtype != np.float32:
                X = X.astype(np.float64, copy=False)
            _check_finite(X, "X")
        self.X = X
        self.n, self.dim = X.shape

    def sq_norms(self) -> np.ndarray:
        return _sq_norms(self.X)

    def dot_block(self, start: int, stop: int, rows: np.ndarray) -> np.ndarray:
        return _f64(_gram(self.X, start, stop, rows))

    def take(self, positions: np.ndarray) -> DenseEmbedding:
        return DenseEmbedding(_rows(self.X, positions))

    def to_dense(self) -> np.ndarray:
        return self.X.block(0, self.n) if isinstance(self.X, HalfMatrix) else self.X


class FactorisedEmbedding(Embedding):
    """Row-wise outer products ``g_i = a_i ⊗ h_i`` kept as their two factors.

    ``to_dense()`` flattens ``g_i`` class-major: ``g_i[k * d + j] = a_i[k] * h_i[j]``, the
    layout of ``torch.nn.Linear(d, c).weight.grad`` (``[c, d]``) flattened.

    Args:
        a: ``[n, c]`` left factors (BADGE: ``p_i - e_{y_hat_i}``).
        h: ``[n, d]`` right factors (BADGE: penultimate features); float32 is kept, a
            :class:`HalfMatrix` is read in float32 blocks (half the bytes per pass).

    References:
        Ash et al., "Deep batch active learning by diverse, uncertain gradient lower bounds"
        (BADGE), ICLR 2020.
    """

    def __init__(self, a: np.ndarray, h) -> None:
        if is_device_array(a) or is_device_array(h):  # torch tensors: the work stays there
            self.a, self.h = as_float(a, "embedding a"), as_float(h, "embedding h")
            if self.a.shape[0] != self.h.shape[0]:
                raise ValueError(f"a must be [n, c] and h [n, d] with the same n, got shapes "
                                 f"{tuple(a.shape)} and {tuple(h.shape)}")
            self.n, self.dim = self.a.shape[0], self.a.shape[1] * self.h.shape[1]
            return
        a = np.asarray(a)
        h = h if isinstance(h, HalfMatrix) else np.asarray(h)
        if a.ndim != 2 or len(h.shape) != 2 or a.shape[0] != h.shape[0]:
            raise ValueError(f"a must be [n, c] and h [n, d] with the same n, got shapes "
                             f"{a.shape} and {h.shape}")
        a = a if a.dtype == np.float32 else a.astype(np.float64, copy=False)
        _check_finite(a, "a")
        if not isinstance(h, HalfMatrix):  # a HalfMatrix was checked when encoded
            h = h if h.dtype == np.float32 else h.astype(np.float64, copy=False)
            _check_finite(h, "h")
        self.a, self.h = a, h
        self.n = a.shape[0]
        self.dim = a.shape[1] * h.shape[1]

    def sq_norms(self) -> np.ndarray:
        return sq_row_norms(self.a) * _sq_norms(self.h)

    def dot_block(self, start: int, stop: int, rows: np.ndarray) -> np.ndarray:
        if is_device_array(self.a):
            return _f64(_gram(self.a, start, stop, rows)) * _gram(self.h, start, stop, rows)
        rows = np.asarray(rows, dtype=np.int64)
        left = (self.a[start:stop] @ self.a[rows].T).astype(np.float64, copy=False)
        left *= _gram(self.h, start, stop, rows)
        return left

    def take(self, positions: np.ndarray) -> FactorisedEmbedding:
        return FactorisedEmbedding(_rows(self.a, positions), _rows(self.h, positions))

    def to_dense(self) -> np.ndarray:
        h = self.h.block(0, self.n) if isinstance(self.h, HalfMatrix) else self.h
        return (self.a[:, :, None] * h[:, None, :]).reshape(self.n, self.dim)


def _check_finite(values: np.ndarray, name: str, chunk: int = 65536) -> None:
    # chunked so that a [10^6, 512] input does not need a same-sized boolean temporary
    for start in range(0, values.shape[0], chunk):
        if not np.isfinite(values[start:start + chunk]).all():
            raise ValueError(f"embedding {name} contains NaN or infinite values")
