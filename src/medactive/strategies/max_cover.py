"""Max-cover (suggestive annotation / Representative Annotation): greedy maximisation of
Σ_{x ∈ S_u} max_{q ∈ Q ∪ L} sim(q, x), optionally among the most uncertain candidates.

Suggestive annotation picks, among candidates ``S_c``, the set ``Q`` whose best cosine
similarity to each unlabeled image ``x ∈ S_u`` is largest in sum (a generalised maximum set
cover, solved greedily); Representative Annotation (Zheng et al. 2019) uses the same
representativeness without the uncertainty step. Here the similarity is the sparse kNN cosine
graph of :mod:`medactive.selection.facility_location` (``O(n k)`` memory, never ``n × n``),
labeled samples count as already chosen, and the greedy is the lazy one (same picks as the
plain greedy).

Without ``prefilter`` (the default, model-free: also a cold-start initial strategy) the
objective equals ``facility_location``'s and so does the selection. With
``prefilter="entropy"`` (or ``"margin"``, ``"least_confidence"``) the candidates ``S_c`` are
the ``prefilter_factor × budget`` most uncertain unlabeled samples (SA's first step, the
paper's bootstrapped-FCN uncertainty replaced by the chosen score on ``"probas"``), while the
coverage still runs over all unlabeled samples; the strategy then also requires ``"probas"``.

References:
    Yang, Zhang, Chen, Zhang and Chen, "Suggestive annotation: a deep active learning
    framework for biomedical image segmentation", MICCAI 2017; Zheng, Yang, Zhang, Wang,
    Chen and Chen, "Biomedical image segmentation via representative annotation", AAAI 2019.
"""

from __future__ import annotations

import numpy as np

from medactive import scoring
from medactive.errors import ConfigError
from medactive.predictions import Predictions
from medactive.selection.facility_location import N_NEIGHBORS
from medactive.selection.topk import top_k
from medactive.strategies._options import check_positive_int
from medactive.strategies.base import register_strategy
from medactive.strategies.facility_location import _CoverStrategy

PREFILTERS = {"entropy": scoring.entropy, "margin": scoring.margin,
              "least_confidence": scoring.least_confidence}


@register_strategy
class MaxCover(_CoverStrategy):
    """Suggestive annotation's max-cover on ``"embeddings"`` ``[n, d]``.

    Args:
        n_neighbors: ``k`` of the sparse similarity graph (default 20).
        knn_backend: ``"faiss"`` or ``"pynndescent"``.
        prefilter: ``None`` (all unlabeled samples are candidates) or an uncertainty score on
            ``"probas"``: ``"entropy"``, ``"margin"``, ``"least_confidence"``.
        prefilter_factor: with a pre-filter, ``m = min(prefilter_factor × budget, n_u)``
            candidates (default 2: SA picks ``k`` of its ``K`` top-uncertain images).
        embedding_dtype: ``"auto"`` (float16 from 250,000 rows), ``"float32"`` or
            ``"float16"`` storage of the unit embeddings.

    The query's scores are each pick's gain in the coverage when it was chosen.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> r = MaxCover(n_neighbors=1).query(ArrayPredictions(embeddings=emb),
        ...                                   np.arange(1, 4), np.array([0]), 1)
        >>> r.indices.tolist()[0] in (2, 3)  # the uncovered direction
        True
    """

    name = "max_cover"
    description = ("Suggestive annotation max-cover: greedy summed best cosine similarity to the "
                   "unlabeled set, kNN-sparse; optional uncertainty pre-filter.")
    universe = "unlabeled"

    def __init__(self, n_neighbors: int = N_NEIGHBORS, knn_backend: str = "faiss",
                 prefilter: str | None = None, prefilter_factor: int = 2,
                 embedding_dtype: str = "auto") -> None:
        super().__init__(n_neighbors=n_neighbors, knn_backend=knn_backend,
                         embedding_dtype=embedding_dtype)
        if prefilter is not None and prefilter not in PREFILTERS:
            raise ConfigError(f"max_cover: prefilter must be None or one of "
                              f"{', '.join(PREFILTERS)}, got {prefilter!r}")
        self.prefilter = prefilter
        self.prefilter_factor = check_positive_int(self.name, "prefilter_factor",
                                                   prefilter_factor)
        if prefilter is not None:
            self.requires = ("embeddings", "probas")

    def _candidates(self, predictions: Predictions, unlabeled_idx: np.ndarray,
                    budget: int) -> np.ndarray:
        if self.prefilter is None:
            return np.arange(unlabeled_idx.size)
        m = min(self.prefilter_factor * budget, unlabeled_idx.size)
        scores = predictions.score(PREFILTERS[self.prefilter], "probas", unlabeled_idx)
        return np.sort(top_k(scores, m, rng=None))  # ties: the lower position

    def __repr__(self) -> str:
        return (f"MaxCover(n_neighbors={self.n_neighbors}, knn_backend={self.knn_backend!r}, "
                f"prefilter={self.prefilter!r}, prefilter_factor={self.prefilter_factor}, "
                f"embedding_dtype={self.embedding_dtype!r})")
