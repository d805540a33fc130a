"""Shared shape of the uncertainty strategies: one score per sample, then top-k."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import ClassVar

import numpy as np

from medactive.predictions import Predictions
from medactive.selection.topk import top_k
from medactive.strategies.base import QueryResult, Strategy

logger = logging.getLogger(__name__)


class TopScoreStrategy(Strategy):
    """Score every unlabeled sample with ``score_fn`` on ``field`` and take the top ``budget``.

    Scores come from :meth:`Predictions.score`, so segmentation predictions reduce pixel
    scores to one per slice (mean) while streaming. Ties are broken at random by ``rng``.
    """

    #: ``fn(values [n, c, ...]) -> [n, ...]`` from :mod:`medactive.scoring`
    score_fn: ClassVar[Callable[[np.ndarray], np.ndarray]]
    #: prediction field the score reads (``"probas"`` or ``"mc_probas"``)
    field: ClassVar[str] = "probas"

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        scores = predictions.score(type(self).score_fn, self.field, unlabeled_idx)
        positions = top_k(scores, budget, rng=rng)
        return QueryResult(unlabeled_idx[positions], scores[positions])


class MCScoreStrategy(TopScoreStrategy):
    """A :class:`TopScoreStrategy` on MC-dropout stacks ``"mc_probas"`` ``[n, c, ..., t]``.

    Args:
        n_mc_samples: stochastic passes ``T`` to score on. ``None`` (default): the passes of
            the task's training preset. A number is routed to the task: the active-learning
            cycle sets the predictions' ``n_mc_samples`` to it before the query, so the stack
            holds exactly ``T`` passes (and run.json's strategy options say what ran). On
            predictions of your own (``cycle.query(predictions=...)``) the strategy scores the
            stack it is given and logs when its size differs.
    """

    field: ClassVar[str] = "mc_probas"

    def __init__(self, n_mc_samples: int | None = None) -> None:
        if n_mc_samples is not None and (
                isinstance(n_mc_samples, bool) or not isinstance(n_mc_samples, (int, np.integer))
                or n_mc_samples < 2):
            from medactive.errors import ConfigError

            raise ConfigError(f"n_mc_samples must be an integer >= 2, got {n_mc_samples!r}")
        self.n_mc_samples = None if n_mc_samples is None else int(n_mc_samples)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        if self.n_mc_samples is not None and predictions.n_mc_samples != self.n_mc_samples:
            logger.info("%s: asked for %d MC passes, the predictions hold %d; using those",
                        self.name, self.n_mc_samples, predictions.n_mc_samples)
        return super()._query(predictions, unlabeled_idx, labeled_idx, budget, rng)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_mc_samples={self.n_mc_samples})"
