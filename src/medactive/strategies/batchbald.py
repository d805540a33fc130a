"""BatchBALD: a batch chosen greedily by the joint mutual information of its labels and weights.

Reads the same MC-dropout stacks as ``bald`` (``"mc_probas"`` ``[n, c, t]``). Where top-b BALD
takes near-duplicates that each look informative, BatchBALD scores what a point adds to the
points already in the batch, so a second copy of a chosen point adds nothing. The maths
(exact joint entropy while enumerable, the sampled estimator beyond, memory bound) is in
:mod:`medactive.scoring.batchbald`. Classification only: segmentation stacks are refused.

References:
    Kirsch, van Amersfoort and Gal, "BatchBALD: Efficient and Diverse Batch Acquisition for
    Deep Bayesian Active Learning", NeurIPS 2019.
"""

from __future__ import annotations

import logging

import numpy as np

from medactive.errors import ConfigError
from medactive.predictions import Predictions
from medactive.scoring.batchbald import N_CONFIG_SAMPLES, batchbald
from medactive.strategies.base import QueryResult, Strategy, register_strategy

logger = logging.getLogger(__name__)


@register_strategy
class BatchBALD(Strategy):
    """Greedy BatchBALD over ``T`` MC-dropout passes.

    Args:
        n_mc_samples: MC passes ``T`` (as for ``bald``; ``None``: the training preset's). The
            cycle routes it to the task so the stack holds exactly ``T`` passes.
        n_config_samples: ``M``, sampled label configurations of the chosen points once their
            joint with a candidate has more than
            :data:`~medactive.scoring.batchbald.MAX_EXACT_CONFIGS` configurations.
        n_candidates: score only the top-``n_candidates`` unlabeled points by BALD (at least
            the budget), to bound the ``O(budget * n * M * T * c)`` time on huge pools;
            ``None`` (default): all of them.

    The scores are each pick's gain in joint mutual information (nats): the first pick's is
    its BALD, a duplicate of a chosen point gains about 0.

    Example:
        >>> create_strategy("batchbald", n_candidates=5000)  # doctest: +SKIP
    """

    name = "batchbald"
    description = ("Greedy batch maximising the joint mutual information of its labels and the "
                   "weights over T MC-dropout passes (BatchBALD).")
    requires = ("mc_probas",)

    def __init__(self, n_mc_samples: int | None = None,
                 n_config_samples: int = N_CONFIG_SAMPLES,
                 n_candidates: int | None = None) -> None:
        _check_count("n_mc_samples", n_mc_samples, minimum=2, optional=True)
        _check_count("n_config_samples", n_config_samples, minimum=1)
        _check_count("n_candidates", n_candidates, minimum=1, optional=True)
        self.n_mc_samples = None if n_mc_samples is None else int(n_mc_samples)
        self.n_config_samples = int(n_config_samples)
        self.n_candidates = None if n_candidates is None else int(n_candidates)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        probe = np.asarray(predictions.get("mc_probas", unlabeled_idx[:1]))
        if probe.ndim != 3:  # before the whole pool's dense stack is computed
            raise ConfigError(f"batchbald is for classification (mc_probas [n, c, t]); got "
                              f"mc_probas of shape [n, {', '.join(map(str, probe.shape[1:]))}]"
                              f" (segmentation): use bald or power:bald")
        if self.n_mc_samples is not None and predictions.n_mc_samples != self.n_mc_samples:
            logger.info("%s: asked for %d MC passes, the predictions hold %d; using those",
                        self.name, self.n_mc_samples, predictions.n_mc_samples)
        stack = predictions.get("mc_probas", unlabeled_idx)
        positions, joint_mi = batchbald(stack, budget, rng=rng,
                                        n_config_samples=self.n_config_samples,
                                        n_candidates=self.n_candidates)
        return QueryResult(unlabeled_idx[positions], np.diff(joint_mi, prepend=0.0))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n_mc_samples={self.n_mc_samples}, "
                f"n_config_samples={self.n_config_samples}, n_candidates={self.n_candidates})")


def _check_count(name: str, value, *, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"batchbald option {name} must be an integer >= {minimum}"
                          f"{' or None' if optional else ''}, got {value!r}")
