"""EGL and the entropy-loss gradient length: top-b by the length of the last layer's gradient
for a label-free loss (gradient-based uncertainty, survey §3.1.2, Eq. 5 and 6).

Both read the class probabilities ``"probas"`` ``[n, c]`` and the last layer's input
``"embeddings"`` ``[n, d]`` (the classifier's penultimate features, or a frozen-mode head's
input) and score with :mod:`medactive.scoring.gradient`, factorised as BADGE's embedding is:
the ``n × (c·d)`` gradients are never built. The models' last layer (``Classifier.fc``) has a
bias, so its gradient is in the norm. A large gradient means the sample would move the model
a lot if labeled.

Classification only: segmentation-shaped probabilities are refused with one line (the
segmentation gradient lives on a 1×1 convolution over every pixel; use ``badge`` there).

References:
    Settles, Craven and Ray, "Multiple-instance active learning", NeurIPS 2008 (EGL).
    Huang et al., "Active learning for speech recognition: the power of gradients",
    arXiv:1612.03226, 2016. Wang et al., "Boosting active learning via improving test
    performance", AAAI 2022 (entropy loss, Eq. 6 of the survey).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import numpy as np

from medactive.errors import ConfigError
from medactive.predictions import Predictions
from medactive.scoring.gradient import entropy_gradient_length, expected_gradient_length
from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy

#: rows of probabilities and embeddings scored at once (the first block is small, so a dense
#: segmentation output is refused before a large block of it is computed)
_FIRST_BLOCK, _BLOCK = 16, 65536


class _GradientLength(TopScoreStrategy):
    """Top-b by a last-layer gradient length ``fn(probas [n, c], embeddings [n, d]) -> [n]``."""

    requires = ("probas", "embeddings")
    score_fn: ClassVar[Callable[[np.ndarray, np.ndarray], np.ndarray]]

    def scores(self, predictions: Predictions, idx: np.ndarray) -> np.ndarray:
        """Gradient lengths ``[n]`` of the pool-absolute ``idx``, scored block by block.

        Raises:
            ConfigError: probabilities that are not ``[n, c]`` (segmentation).
        """
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty(idx.size, dtype=np.float64)
        start, block = 0, _FIRST_BLOCK
        while start < idx.size:
            rows = idx[start:start + block]
            probas = predictions.get("probas", rows)
            if np.ndim(probas) != 2:
                raise ConfigError(f"{self.name} is for classification: it needs class "
                                  f"probabilities [n, c], got shape {np.shape(probas)} "
                                  "(for segmentation use badge)")
            out[start:start + rows.size] = type(self).score_fn(
                probas, predictions.get("embeddings", rows))
            start, block = start + rows.size, _BLOCK
        return out

@register_strategy
class EGL(_GradientLength):
    """Expected gradient length: top-b by ``Σ_y p_y ||∇_{W,b} CE(x, y)||`` of the last layer.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> p = ArrayPredictions(probas=np.array([[1.0, 0.0], [0.5, 0.5], [0.9, 0.1]]),
        ...                      embeddings=np.ones((3, 2)))
        >>> EGL().query(p, np.arange(3), np.array([], int), 2, rng=0).indices.tolist()
        [1, 2]
    """

    name = "egl"
    description = ("EGL: top-b by the expected length of the last layer's cross-entropy "
                   "gradient under the predicted class distribution (Settles et al. 2008; "
                   "classification).")
    score_fn = expected_gradient_length


@register_strategy
class EGLEntropy(_GradientLength):
    """Top-b by the length of the last layer's gradient of the prediction entropy.

    Zero for one-hot and for uniform predictions (both are stationary points of the
    entropy): it favours samples whose entropy the model is still changing fast.

    Example:
        >>> import numpy as np
        >>> from medactive.predictions import ArrayPredictions
        >>> p = ArrayPredictions(probas=np.array([[1.0, 0.0], [0.5, 0.5], [0.8, 0.2]]),
        ...                      embeddings=np.ones((3, 2)))
        >>> EGLEntropy().query(p, np.arange(3), np.array([], int), 1, rng=0).indices.tolist()
        [2]
    """

    name = "egl_entropy"
    description = ("Top-b by the length of the last layer's gradient of the prediction "
                   "entropy (Wang et al. 2022b; classification).")
    score_fn = entropy_gradient_length
