"""BADGE: k-means++ seeding on last-layer gradient embeddings.

For a sample with softmax output ``p`` ``[c]``, penultimate features ``h`` ``[d]`` and predicted
label ``y_hat`` used as pseudo-label, the gradient of the cross-entropy w.r.t. the last linear
layer's weight is ``(p - e_{y_hat}) ⊗ h`` ``[c, d]``. Its norm grows with uncertainty and its
direction encodes what the sample would teach, so D² seeding picks a batch that is both
uncertain and diverse. The ``[n, c*d]`` matrix is never built:
:meth:`~medactive.predictions.Predictions.gradient_embedding` returns a
:class:`~medactive.selection.embedding.FactorisedEmbedding` whose distances come from the two
factors (segmentation tasks may return a dense embedding instead).

References:
    Ash et al., "Deep batch active learning by diverse, uncertain gradient lower bounds",
    ICLR 2020.
"""

from __future__ import annotations

import numpy as np

from medactive.errors import ConfigError
from medactive.predictions import Predictions
from medactive.selection.kmeanspp import kmeans_plusplus
from medactive.strategies.base import QueryResult, Strategy, register_strategy


@register_strategy
class BADGE(Strategy):
    """k-means++ on gradient embeddings ``(p - e_{y_hat}) ⊗ h``.

    Args:
        first: first seed, ``"max_norm"`` (largest gradient, BADGE's reference code) or
            ``"random"``.
        n_local_trials: candidates per k-means++ step (1 = plain D² sampling, as in BADGE).

    The query's scores are each pick's squared distance to the nearest earlier pick when it
    was chosen (the first pick: its squared gradient norm).
    """

    name = "badge"
    description = ("k-means++ seeding on last-layer gradient embeddings with the predicted "
                   "label as pseudo-label (uncertain and diverse).")
    requires = ("probas", "embeddings")

    def __init__(self, first: str = "max_norm", n_local_trials: int = 1) -> None:
        if first not in ("max_norm", "random"):
            raise ConfigError(f"badge: first must be 'max_norm' or 'random', got {first!r}")
        if isinstance(n_local_trials, bool) or not isinstance(n_local_trials, (int, np.integer)) \
                or n_local_trials < 1:
            raise ConfigError(f"badge: n_local_trials must be an integer >= 1, got "
                              f"{n_local_trials!r}")
        self.first = first
        self.n_local_trials = int(n_local_trials)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        embedding = predictions.gradient_embedding(unlabeled_idx)
        positions, sq_dists = kmeans_plusplus(embedding, budget, rng=rng, first=self.first,
                                              n_local_trials=self.n_local_trials)
        return QueryResult(unlabeled_idx[positions], sq_dists)

    def __repr__(self) -> str:
        return f"BADGE(first={self.first!r}, n_local_trials={self.n_local_trials})"
