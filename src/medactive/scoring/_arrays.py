"""One code path for numpy arrays and other array-API arrays (torch tensors, on a GPU or not).

Scores and selection kernels take ``xp = namespace(x)`` and call ``xp.`` functions, so the
same lines run on numpy and on torch tensors without this package importing torch (issue 16
part 4; :mod:`medactive.query_device` makes the tensors, outside the query side). Random
draws stay on the host (a numpy Generator), so both backends give the same picks; only
indices and small vectors come back to the host (:func:`to_host`).

A few operations are spelled differently on numpy for speed (``einsum`` norms in float64,
``argpartition``, in-place minima); the helpers below choose, the values are the same.
"""

from __future__ import annotations

from typing import Any

import array_api_compat
import numpy as np

#: rows per block when a float64 copy is made for norms on a non-numpy backend (8192 x 512
#: float64 = 32 MB of temporaries)
NORM_ROWS = 8192


def namespace(*arrays: Any):
    """The array-API namespace of ``arrays`` (``array_api_compat.numpy`` for numpy)."""
    return array_api_compat.array_namespace(*arrays)


def is_numpy(x: Any) -> bool:
    return isinstance(x, np.ndarray)


def is_device_array(x: Any) -> bool:
    """An array-API array that is not numpy (a torch tensor, ...)."""
    return not isinstance(x, np.ndarray) and array_api_compat.is_array_api_obj(x)


def to_host(x: Any) -> np.ndarray:
    """``x`` as a numpy array (a copy from the device for a tensor; numpy unchanged)."""
    if isinstance(x, np.ndarray):
        return x
    if array_api_compat.is_torch_array(x):
        return x.detach().cpu().numpy()
    return np.asarray(array_api_compat.to_device(x, "cpu"))


def device(x: Any):
    """The device ``x`` lives on (``"cpu"`` for numpy)."""
    return array_api_compat.device(x)


def positions_like(like: Any, positions: Any):
    """Integer ``positions`` (host or device) as an index array for ``like``'s backend."""
    if isinstance(like, np.ndarray):
        return np.asarray(to_host(positions), dtype=np.int64)
    xp = namespace(like)
    if is_device_array(positions):
        return positions
    return xp.asarray(np.asarray(positions, dtype=np.int64), device=array_api_compat.device(like))


def asarray_like(like: Any, values: np.ndarray):
    """Host ``values`` on ``like``'s backend and device (numpy stays numpy)."""
    if isinstance(like, np.ndarray):
        return values
    return namespace(like).asarray(values, device=array_api_compat.device(like))


def as_float(x: Any, name: str):
    """``[n, d]`` float array: float32 kept, others float64; non-finite values refused."""
    xp = namespace(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [n, d], got shape {tuple(x.shape)}")
    if x.dtype != xp.float32:
        x = xp.astype(x, xp.float64)
    for start in range(0, x.shape[0], NORM_ROWS):
        if not bool(xp.all(xp.isfinite(x[start:start + NORM_ROWS]))):
            raise ValueError(f"{name} contains NaN or infinite values")
    return x


def sq_row_norms(X: Any):
    """``[n]`` squared row norms of ``[n, d]`` ``X``, accumulated in float64."""
    if isinstance(X, np.ndarray):
        return np.einsum("ij,ij->i", X, X, dtype=np.float64)
    xp = namespace(X)
    parts = []
    for start in range(0, X.shape[0], NORM_ROWS):
        block = xp.astype(X[start:start + NORM_ROWS], xp.float64)
        parts.append(xp.sum(block * block, axis=1))
    if not parts:
        return xp.zeros(0, dtype=xp.float64, device=array_api_compat.device(X))
    return xp.concat(parts)


def minimum_into(a: Any, b: Any):
    """``minimum(a, b)``, written into ``a`` on numpy (no new ``[n]`` array per pick)."""
    if isinstance(a, np.ndarray):
        return np.minimum(a, b, out=a)
    return namespace(a).minimum(a, b)


def largest(x: Any, k: int):
    """Positions of ``k`` largest values of ``[n]`` ``x`` (any order among them)."""
    n = x.shape[0]
    if isinstance(x, np.ndarray):
        return np.argpartition(x, n - k)[n - k:]
    if array_api_compat.is_torch_array(x):  # a method of the tensor: no torch import here
        return x.topk(k).indices
    return namespace(x).argsort(x, descending=True)[:k]


def smallest_per_row(x: Any, k: int):
    """``(values, positions)`` of the ``k`` smallest entries of each row of ``[m, n]`` ``x``,
    ascending (a tensor's ``topk``; other backends sort the rows). Ties: any order."""
    if array_api_compat.is_torch_array(x):  # a method of the tensor: no torch import here
        values, positions = x.topk(k, dim=1, largest=False, sorted=True)
        return values, positions
    xp = namespace(x)
    positions = xp.argsort(x, axis=1)[:, :k]
    return xp.take_along_axis(x, positions, axis=1), positions
