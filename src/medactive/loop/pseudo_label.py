"""CEAL pseudo-labelling: train on the labeled set plus the model's most confident guesses.

Cost-Effective Active Learning (survey §4.1.1) complements the queried batch with
*high-confidence* unlabeled samples: after round ``k``'s model has queried its batch, every
other unlabeled sample whose predicted class distribution has entropy below ``delta_k`` gets the
predicted class as a pseudo-label, and round ``k + 1``'s model trains on ``L_{k+1} ∪ P_k``.
Pseudo-labels are recomputed every round and never join the labeled set. The threshold decays
linearly, ``delta_k = delta_0 - decay * k`` (the paper's ``δ = δ0 − dr·t``): as the model
grows more confident, more samples clear a fixed threshold, so the criterion is tightened.

An entropy threshold means different things for 2 and 8 classes (the maximum entropy is
``log c``), so an optional cap keeps only the ``max`` most confident samples.

References:
    Wang et al., "Cost-Effective Active Learning for Deep Image Classification", IEEE TCSVT
    27(12), 2017 (δ0 = 0.005 on CACD, 0.05 on Caltech-256; dr = 0.00033).

Example:
    >>> import numpy as np
    >>> probas = np.array([[0.9999, 0.0001], [0.6, 0.4], [0.001, 0.999]])
    >>> idx, labels = select_pseudo_labels(probas, np.array([7, 8, 9]), threshold=0.01)
    >>> idx.tolist(), labels.tolist()
    ([7, 9], [0, 1])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medactive.errors import ConfigError
from medactive.scoring.uncertainty import entropy

#: the paper's initial threshold on CACD and its per-iteration decay
DEFAULT_ENTROPY = 0.005
DEFAULT_DECAY = 0.00033


@dataclass(frozen=True)
class PseudoLabelConfig:
    """CEAL's high-confidence sample selection.

    Attributes:
        entropy: ``delta_0``, the entropy threshold (natural log) of round 0's selection.
        decay: ``r``, subtracted from the threshold per round.
        max: keep at most this many pseudo-labels (the most confident); ``None``: no cap.
    """

    entropy: float = DEFAULT_ENTROPY
    decay: float = DEFAULT_DECAY
    max: int | None = None

    def __post_init__(self) -> None:
        for name in ("entropy", "decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value) or value < 0:
                raise ConfigError(f"pseudo-label {name} must be a number >= 0, got {value!r}")
        if self.max is not None and (isinstance(self.max, bool) or not isinstance(self.max, int)
                                     or self.max < 1):
            raise ConfigError(f"pseudo-label max must be a positive integer, got {self.max!r}")

    def threshold(self, rnd: int) -> float:
        """``delta_rnd = max(delta_0 - decay * rnd, 0)``: the threshold of round ``rnd``'s model."""
        return entropy_threshold(self.entropy, self.decay, rnd)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "pseudo_label") -> PseudoLabelConfig:
        """From ``{"entropy": ..., "decay": ..., "max": ...}`` (missing keys: defaults)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a table, got {data!r}")
        unknown = sorted(set(data) - {"entropy", "decay", "max"})
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                              "allowed: decay, entropy, max")
        return cls(**data)


def entropy_threshold(delta0: float, decay: float, rnd: int) -> float:
    """CEAL's linearly decaying threshold ``max(delta0 - decay * rnd, 0)``.

    Example:
        >>> round(entropy_threshold(0.005, 0.00033, 3), 8)
        0.00401
    """
    return max(float(delta0) - float(decay) * int(rnd), 0.0)


def select_pseudo_labels(probas: np.ndarray, unlabeled_idx: np.ndarray, *,
                         threshold: float, exclude_idx: np.ndarray | None = None,
                         max_n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The confident unlabeled samples and their predicted classes (CEAL).

    Args:
        probas: ``[n, c]`` class probabilities, row ``i`` for ``unlabeled_idx[i]``.
        unlabeled_idx: ``[n]`` pool-absolute indices.
        threshold: keep samples whose prediction entropy (natural log) is strictly below it.
        exclude_idx: indices never pseudo-labelled (the batch just sent to the oracle).
        max_n: keep at most the ``max_n`` lowest-entropy samples.

    Returns:
        ``(idx, labels)``: ``[m]`` pool indices, most confident first (ties: lower index
        first), and ``[m]`` their argmax classes.

    Raises:
        ValueError: ``probas`` is not ``[len(unlabeled_idx), c]`` probabilities.
    """
    probas = np.asarray(probas)
    unlabeled_idx = np.asarray(unlabeled_idx, dtype=np.int64)
    if probas.ndim != 2 or probas.shape[0] != unlabeled_idx.size:
        raise ValueError(f"probas must be [n, c] with n = {unlabeled_idx.size} (one row per "
                         f"unlabeled index), got shape {probas.shape}")
    if max_n is not None and max_n < 1:
        raise ValueError(f"max_n must be at least 1, got {max_n}")
    if unlabeled_idx.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    scores = entropy(probas)
    keep = scores < threshold
    if exclude_idx is not None:
        keep &= ~np.isin(unlabeled_idx, np.asarray(exclude_idx, dtype=np.int64))
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((unlabeled_idx[rows], scores[rows]))]
    if max_n is not None:
        rows = rows[:max_n]
    return unlabeled_idx[rows], probas[rows].argmax(axis=1).astype(np.int64)
