"""Option checks shared by the representativeness strategies (one clear ConfigError line)."""

from __future__ import annotations

import numpy as np

from medactive.errors import ConfigError
from medactive.selection import neighbors


def check_positive_int(strategy: str, name: str, value: object, minimum: int = 1) -> int:
    """``value`` as an int ``>= minimum``, else a ConfigError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{strategy}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_knn_backend(strategy: str, value: str) -> str:
    if value not in neighbors.BACKENDS:
        raise ConfigError(f"{strategy}: knn_backend must be one of {neighbors.BACKENDS}, "
                          f"got {value!r}")
    return value


def check_embedding_dtype(strategy: str, value: str) -> str:
    """``embedding_dtype`` of the kNN strategies (issue 16): ``"auto"`` (float16 from
    :data:`~medactive.selection.neighbors.HALF_PRECISION_FROM` rows), ``"float32"`` or
    ``"float16"``."""
    if value not in neighbors.EMBEDDING_DTYPES:
        raise ConfigError(f"{strategy}: embedding_dtype must be one of "
                          f"{neighbors.EMBEDDING_DTYPES}, got {value!r}")
    return value
