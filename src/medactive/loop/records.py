"""What one active-learning experiment is told and what it records (survey §2).

- :class:`LoopConfig` — the settings of one experiment;
- :class:`RoundRecord` — what one round produced (labels it trained on, metrics, batch);
- :func:`initial_indices` — the random initial set ``L_0`` of a seed (same for every strategy);
- :func:`cold_start_indices` — ``L_0`` chosen on self-supervised embeddings (survey §4.2.1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from medactive._random import derive_seed
from medactive._validation import check_budget
from medactive.errors import ConfigError
from medactive.loop.pseudo_label import PseudoLabelConfig
from medactive.loop.task import Task
from medactive.strategies import create_strategy


@dataclass(frozen=True)
class LoopConfig:
    """Settings of one AL experiment.

    Attributes:
        strategy: registered strategy name.
        initial: size of the random initial labeled set ``L_0``.
        budget: samples queried per round ``b``.
        rounds: number of query rounds ``T`` (the loop trains ``T + 1`` models).
        seed: master seed.
        finetune: start round ``r`` from round ``r-1``'s model instead of from scratch.
        strategy_options: keyword options of the strategy (e.g. ``{"n_mc_samples": 25}``).
        pseudo_label: CEAL pseudo-labelling of confident unlabeled samples; ``None``: off.
        initial_strategy: how ``L_0`` is chosen: ``"random"`` (from the seed), or a registered
            strategy that needs only ``"embeddings"`` (``"typiclust"``, ``"coreset_l2"``, ...)
            run on the task's self-supervised embeddings (cold start).
    """

    strategy: str
    initial: int
    budget: int
    rounds: int
    seed: int = 0
    finetune: bool = False
    strategy_options: dict[str, Any] = field(default_factory=dict)
    pseudo_label: PseudoLabelConfig | None = None
    initial_strategy: str = "random"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RoundRecord:
    """What one round produced.

    Attributes:
        round: round number, 0 = trained on the initial set.
        n_labeled: ``|L_r|``, the labels the round's model was trained on.
        metrics: ``{"val_<name>": v, "test_<name>": v}``, plus ``task.label_metrics(L_r)``
            when the task has it (patch tasks: ``labelled_pixel_fraction``); with pseudo-labelling also
            ``n_pseudo`` (``len(pseudo_idx)``) and, with a simulated oracle,
            ``pseudo_label_accuracy`` (fraction of pseudo-labels equal to the truth; NaN when
            there are none).
        added_idx: pool indices added to form ``L_r`` (round 0: the initial set).
        added_scores: their scores when they were queried (NaN for the initial set).
        queried_idx: the batch this round's model selected, forming ``L_{r+1}`` (empty after
            the last round).
        queried_scores: their scores.
        seconds: wall time of the round (training, evaluation, query).
        query_seconds: wall time of the query alone (inference + selection).
        pseudo_idx: pool indices pseudo-labelled for training this round's model (``P_{r-1}``;
            empty in round 0 and when pseudo-labelling is off).
        pseudo_labels: their pseudo-labels (predicted classes).
        next_pseudo_idx: the pseudo-labelled set this round's model chose for round ``r + 1``
            (empty after the last round and when off).
        next_pseudo_labels: their pseudo-labels.
    """

    round: int
    n_labeled: int
    metrics: dict[str, float]
    added_idx: np.ndarray
    added_scores: np.ndarray
    queried_idx: np.ndarray
    queried_scores: np.ndarray
    seconds: float = 0.0
    query_seconds: float = 0.0
    pseudo_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    pseudo_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    next_pseudo_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    next_pseudo_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def initial_indices(n_pool: int, initial: int, seed: int) -> np.ndarray:
    """The random initial labeled set for ``seed``: same for every strategy (survey §6.1.3)."""
    initial = check_budget(initial, n_pool, name="initial")
    rng = np.random.default_rng(derive_seed(seed, "initial"))
    return np.sort(rng.choice(n_pool, size=initial, replace=False)).astype(np.int64)


def cold_start_indices(task: Task, initial: int, seed: int, strategy: str,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """The initial set chosen by ``strategy`` on ``task``'s self-supervised embeddings.

    Args:
        task: a task with ``ssl_predictions()`` returning predictions with ``"embeddings"``
            (a pretrained :class:`~medactive.tasks.classification.task.ClassificationTask`).
        initial: size of the set.
        seed: the experiment's master seed (the query draws from ``(seed, "initial")``).
        strategy: a registered strategy needing only embeddings (``"random"`` gives
            :func:`initial_indices`).

    Returns:
        ``(indices, scores)``: ``[initial]`` sorted pool indices and the strategy's scores for
        them (NaN for ``"random"``).

    Raises:
        ConfigError: the strategy needs model outputs other than embeddings, or the task has
            no self-supervised embeddings.
    """
    n_pool = len(task.pool_ids)
    if strategy == "random":
        idx = initial_indices(n_pool, initial, seed)
        return idx, np.full(idx.size, np.nan)
    initial = check_budget(initial, n_pool, name="initial")
    chooser = create_strategy(strategy)
    if set(chooser.requires) - {"embeddings"}:
        raise ConfigError(f"initial strategy {strategy!r} needs {', '.join(chooser.requires)}; "
                          "before any label only embeddings exist: choose random or a strategy "
                          "on embeddings (typiclust, coreset_l2, coreset_cosine, ...)")
    provider = getattr(task, "ssl_predictions", None)
    predictions = provider() if provider is not None else None
    if predictions is None:
        raise ConfigError(f"initial strategy {strategy!r} chooses on self-supervised "
                          "embeddings: turn pretraining on (--ssl simclr, grid ssl = {...})")
    result = chooser.query(predictions, np.arange(n_pool, dtype=np.int64),
                           np.zeros(0, dtype=np.int64), initial,
                           rng=derive_seed(seed, "initial", strategy))
    order = np.argsort(result.indices, kind="stable")
    return (np.asarray(result.indices, dtype=np.int64)[order],
            np.asarray(result.scores, dtype=np.float64)[order])
