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

    Scores come from :meth:`scores` (by default :meth:`Predictions.score`, so segmentation
    predictions reduce pixel scores to one per slice while streaming); a subclass that reads
    several fields or checks its inputs overrides :meth:`scores`, and the samplers
    (``power:SCORE``, :mod:`medactive.strategies.composed`) use the same method. Ties are
    broken at random by ``rng``.
    """

    #: ``fn(values [n, c, ...]) -> [n, ...]`` from :mod:`medactive.scoring`
    score_fn: ClassVar[Callable[..., np.ndarray]]
    #: prediction field the score reads (``"probas"`` or ``"mc_probas"``)
    field: ClassVar[str] = "probas"

    def scores(self, predictions: Predictions, idx: np.ndarray) -> np.ndarray:
        """Per-sample scores ``[n]`` of the pool-absolute ``idx`` (higher = query first)."""
        return predictions.score(type(self).score_fn, self.field, idx)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        scores = self.scores(predictions, unlabeled_idx)
        positions = top_k(scores, budget, rng=rng)
        return QueryResult(unlabeled_idx[positions], scores[positions])


def check_count(value: int | None, name: str) -> int | None:
    """``None`` or an integer ``>= 2`` (stochastic passes, augmentations); else ConfigError."""
    if value is not None and (isinstance(value, bool)
                              or not isinstance(value, (int, np.integer)) or value < 2):
        from medactive.errors import ConfigError

        raise ConfigError(f"{name} must be an integer >= 2, got {value!r}")
    return None if value is None else int(value)


class StackScoreStrategy(TopScoreStrategy):
    """A :class:`TopScoreStrategy` on a stack ``[n, c, ..., k]`` whose size ``k`` is an option.

    The option (:attr:`count_option`, e.g. ``n_mc_samples``) is routed to the task: the
    active-learning cycle sets the predictions' attribute of that name before the query, so the
    stack holds exactly ``k`` predictions (and run.json's strategy options say what ran). On
    predictions of your own (``cycle.query(predictions=...)``) the strategy scores the stack it
    is given and logs when its size differs.
    """

    #: the option and the :class:`Predictions` attribute holding the stack's size
    count_option: ClassVar[str]
    #: what the stack's members are, for the log line
    count_noun: ClassVar[str]

    def scores(self, predictions: Predictions, idx: np.ndarray) -> np.ndarray:
        asked = getattr(self, self.count_option)
        held = getattr(predictions, self.count_option, None)
        if asked is not None and held != asked:
            logger.info("%s: asked for %d %s, the predictions hold %s; using those",
                        self.name, asked, self.count_noun, held)
        return super().scores(predictions, idx)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.count_option}={getattr(self, self.count_option)})"


class MCScoreStrategy(StackScoreStrategy):
    """A :class:`StackScoreStrategy` on MC-dropout stacks ``"mc_probas"`` ``[n, c, ..., t]``.

    Args:
        n_mc_samples: stochastic passes ``T`` to score on. ``None`` (default): the passes of
            the task's training preset; a number is routed to the task (see
            :class:`StackScoreStrategy`).
    """

    field: ClassVar[str] = "mc_probas"
    count_option: ClassVar[str] = "n_mc_samples"
    count_noun: ClassVar[str] = "MC passes"

    def __init__(self, n_mc_samples: int | None = None) -> None:
        self.n_mc_samples = check_count(n_mc_samples, "n_mc_samples")
