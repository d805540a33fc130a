"""Strategy base class, query result and the registry of named strategies.

A strategy composes an informativeness (:mod:`medactive.scoring`) with a sampling function
(:mod:`medactive.selection`). It receives a :class:`~medactive.predictions.Predictions`, the
pool-absolute unlabeled and labeled indices, a budget and a random generator, and returns a
:class:`QueryResult`. It never sees a model or a DataLoader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from medactive._random import RandomLike, check_random_state
from medactive._validation import check_budget, check_indices
from medactive.predictions import Predictions


@dataclass(frozen=True)
class QueryResult:
    """The outcome of one query.

    Attributes:
        indices: ``[budget]`` pool-absolute indices, unique, in selection order.
        scores: ``[budget]`` the informativeness that led to each pick (higher = more
            informative; NaN where the method has no per-sample score, e.g. random).
    """

    indices: np.ndarray
    scores: np.ndarray


class Strategy:
    """Base class. Subclasses set ``name``, ``description``, ``requires`` and ``_query``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: prediction fields the strategy reads, so the loop computes only those
    requires: ClassVar[tuple[str, ...]] = ()

    def query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
              labeled_idx: np.ndarray, budget: int, *, rng: RandomLike = None) -> QueryResult:
        """Select ``budget`` samples among ``unlabeled_idx``.

        Args:
            predictions: model outputs over the pool.
            unlabeled_idx: ``[n_u]`` pool-absolute indices of unlabeled samples.
            labeled_idx: ``[n_l]`` pool-absolute indices of labeled samples.
            budget: number of samples to select, ``1 <= budget <= n_u``.
            rng: seed or Generator; the same value gives the same selection.

        Returns:
            A :class:`QueryResult` with ``budget`` unique indices from ``unlabeled_idx``.
        """
        unlabeled_idx = check_indices(unlabeled_idx, name="unlabeled_idx")
        labeled_idx = check_indices(labeled_idx, name="labeled_idx")
        if np.intersect1d(unlabeled_idx, labeled_idx).size:
            raise ValueError("unlabeled_idx and labeled_idx overlap")
        budget = check_budget(budget, unlabeled_idx.size)
        result = self._query(predictions, unlabeled_idx, labeled_idx, budget,
                             check_random_state(rng))
        return QueryResult(np.asarray(result.indices, dtype=np.int64),
                           np.asarray(result.scores, dtype=np.float64))

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


_REGISTRY: dict[str, Callable[..., Strategy]] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator adding a strategy to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY:
        raise ValueError(f"strategy {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls
