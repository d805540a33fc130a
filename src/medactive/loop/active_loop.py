"""Pool-based batch-mode active learning (survey §2, Eq. 1–4).

Round ``r`` trains a model on the labeled set ``L_r``, evaluates it on val and test, and (except
after the last round) queries a batch ``D_q = S(I(x, f_theta), b)`` from the unlabeled pool,
asks the oracle for its labels and adds it: ``L_{r+1} = L_r ∪ D_q``. ``L_0`` is a random initial
set drawn from the seed alone, so every strategy starts from the same set for a given seed.

Cold start (survey §4.2.1, ``LoopConfig.initial_strategy``, default ``"random"``): ``L_0`` is
chosen instead by a strategy (e.g. TypiClust) on the task's self-supervised pool embeddings
(``task.ssl_predictions()``, see :meth:`~medactive.tasks.classification.task.ClassificationTask.pretrain`).
It depends on the data, the seed, the pretraining and that strategy only, never on the query
strategy, so every strategy of a seed still starts from the same set.

Randomness: initial set, training of round ``r`` and query of round ``r`` each draw from their
own stream derived from ``(seed, purpose, r)``, so results do not depend on which strategy ran
before or on resuming.

Resuming: ``completed`` passes the records of rounds already finished (e.g. read back from a
results store); the loop rebuilds ``L_r`` from their batches and continues with the next round.

Pseudo-labelling (CEAL, :mod:`medactive.loop.pseudo_label`, off unless
``LoopConfig.pseudo_label`` is set): after round ``r`` has queried its batch, the same
predictions give the unlabeled samples (not in the batch) that the model is most confident
about, with their predicted classes ``P_r``; round ``r + 1`` trains on ``L_{r+1}`` plus ``P_r``
(passed to ``task.fit`` as ``extra_idx`` / ``extra_labels``). Pseudo-labels never join ``L``
nor the selections; each record keeps the set its model trained on (``pseudo_idx``) and the set
its model chose (``next_pseudo_idx``), so a resumed run continues exactly.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from medactive._random import derive_seed
from medactive._validation import check_budget
from medactive.errors import ConfigError
from medactive.loop.pseudo_label import PseudoLabelConfig, select_pseudo_labels
from medactive.oracle.simulated import Oracle, SimulatedOracle
from medactive.strategies.base import Strategy, create_strategy

logger = logging.getLogger(__name__)


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


def cold_start_indices(task, initial: int, seed: int, strategy: str,
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


def run_active_learning(task, config: LoopConfig, *, oracle: Oracle | None = None,
                        completed: Sequence[RoundRecord] = (),
                        on_round: Callable[[RoundRecord], None] | None = None,
                        initial_idx: np.ndarray | None = None,
                        strategy: Strategy | None = None) -> list[RoundRecord]:
    """Run (or resume) one active-learning experiment.

    Args:
        task: a :class:`~medactive.loop.task.Task`.
        config: the experiment's settings.
        oracle: label provider; defaults to the :class:`SimulatedOracle` of ``task``.
        completed: records of rounds already finished, in order (resume).
        on_round: called with each new :class:`RoundRecord` as soon as it is final.
        initial_idx: override the initial set (e.g. a project's existing labels); else it is
            random, or chosen by ``config.initial_strategy`` (:func:`cold_start_indices`).
        strategy: a strategy instance (defaults to ``create_strategy(config.strategy)``).

    Returns:
        All records, the ``completed`` ones first.

    Raises:
        ConfigError: budget or initial set larger than the pool allows; pseudo-labelling asked
            of a task that cannot train on pseudo-labels.
    """
    pseudo = config.pseudo_label
    if pseudo is not None and not getattr(task, "supports_pseudo_labels", False):
        raise ConfigError(f"pseudo-labelling (--pseudo-label-entropy, grid pseudo_label) is not "
                          f"supported by {getattr(task, 'kind', type(task).__name__)} tasks; "
                          "leave it off")
    n_pool = len(task.pool_ids)
    strategy = strategy or create_strategy(config.strategy, **config.strategy_options)
    needed = config.initial + config.rounds * config.budget
    if needed > n_pool:
        raise ConfigError(f"initial={config.initial} + rounds={config.rounds} x "
                          f"budget={config.budget} = {needed} labels, more than the pool's "
                          f"{n_pool} samples")
    if config.rounds > 0:
        check_budget(config.budget, n_pool - config.initial)
    oracle = oracle or SimulatedOracle(task)
    records = list(completed)

    if records:  # resume: L_k = initial set + every batch queried so far
        added_idx = np.asarray(records[-1].queried_idx, dtype=np.int64)
        added_scores = np.asarray(records[-1].queried_scores, dtype=np.float64)
        labeled_idx = np.concatenate([np.asarray(records[0].added_idx, dtype=np.int64)]
                                     + [np.asarray(r.queried_idx, dtype=np.int64) for r in records])
    else:
        if initial_idx is not None:
            labeled_idx = np.asarray(initial_idx, dtype=np.int64)
            added_scores = np.full(labeled_idx.size, np.nan)
        else:
            labeled_idx, added_scores = cold_start_indices(task, config.initial, config.seed,
                                                           config.initial_strategy)
        added_idx = labeled_idx.copy()
    labels: list[Any] = list(oracle.label(labeled_idx))
    empty = np.zeros(0, dtype=np.int64)
    # P_{r-1}: chosen by the previous round's model (stored in its record when resuming)
    pseudo_idx, pseudo_labels = empty, empty
    if records and pseudo is not None:
        pseudo_idx = np.asarray(records[-1].next_pseudo_idx, dtype=np.int64)
        pseudo_labels = np.asarray(records[-1].next_pseudo_labels, dtype=np.int64)

    label_metrics = getattr(task, "label_metrics", None)
    model = None
    for rnd in range(len(records), config.rounds + 1):
        start = time.perf_counter()
        init = model if (config.finetune and model is not None) else None
        seed = derive_seed(config.seed, "train", rnd)
        if pseudo is None:
            model = task.fit(labeled_idx, labels, seed=seed, init_model=init)
        else:
            model = task.fit(labeled_idx, labels, seed=seed, init_model=init,
                             extra_idx=pseudo_idx, extra_labels=pseudo_labels)
        metrics = {f"val_{k}": v for k, v in task.evaluate(model, "val").items()}
        metrics.update({f"test_{k}": v for k, v in task.evaluate(model, "test").items()})
        if pseudo is not None:
            metrics.update(_pseudo_metrics(pseudo_idx, pseudo_labels, oracle))
        if label_metrics is not None:  # e.g. labelled pixel fraction when the unit is a patch
            metrics.update(label_metrics(labeled_idx))
        queried_idx = np.zeros(0, dtype=np.int64)
        queried_scores = np.zeros(0, dtype=np.float64)
        next_idx, next_labels = empty, empty
        query_seconds = 0.0
        if rnd < config.rounds:
            q_start = time.perf_counter()
            queried_idx, queried_scores, predictions, unlabeled = _query(
                task, strategy, model, labeled_idx, config, rnd)
            query_seconds = time.perf_counter() - q_start
            if pseudo is not None:
                # the query's predictions: probabilities the strategy used are cached
                next_idx, next_labels = select_pseudo_labels(
                    predictions.get("probas", unlabeled), unlabeled,
                    threshold=pseudo.threshold(rnd), exclude_idx=queried_idx, max_n=pseudo.max)
        record = RoundRecord(round=rnd, n_labeled=int(labeled_idx.size), metrics=metrics,
                             added_idx=added_idx, added_scores=added_scores,
                             queried_idx=queried_idx, queried_scores=queried_scores,
                             seconds=time.perf_counter() - start, query_seconds=query_seconds,
                             pseudo_idx=pseudo_idx, pseudo_labels=pseudo_labels,
                             next_pseudo_idx=next_idx, next_pseudo_labels=next_labels)
        logger.info("round %d: %d labels, %s", rnd, record.n_labeled,
                    ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("test_")))
        records.append(record)
        if on_round is not None:
            on_round(record)
        if queried_idx.size:
            labels.extend(oracle.label(queried_idx))
            labeled_idx = np.concatenate([labeled_idx, queried_idx])
            added_idx, added_scores = queried_idx, queried_scores
        pseudo_idx, pseudo_labels = next_idx, next_labels
    return records


def _query(task, strategy: Strategy, model, labeled_idx: np.ndarray, config: LoopConfig,
           rnd: int):
    """Query the batch that forms ``L_{rnd+1}`` with ``model`` (trained on ``L_rnd``).

    Returns ``(indices, scores, predictions, unlabeled_idx)``; the predictions are kept for
    pseudo-labelling, so it needs no second inference pass.
    """
    n_pool = len(task.pool_ids)
    unlabeled = np.setdiff1d(np.arange(n_pool, dtype=np.int64), labeled_idx)
    predictions = task.predictions(model, seed=derive_seed(config.seed, "predict", rnd))
    result = strategy.query(predictions, unlabeled, np.sort(labeled_idx), config.budget,
                            rng=derive_seed(config.seed, "query", rnd))
    return result.indices, result.scores, predictions, unlabeled


def _pseudo_metrics(idx: np.ndarray, labels: np.ndarray, oracle: Oracle) -> dict[str, float]:
    """``n_pseudo`` and, when the oracle is simulated (knows the truth without counting it as a
    query), ``pseudo_label_accuracy``: the fraction of pseudo-labels equal to the true label."""
    metrics = {"n_pseudo": float(idx.size)}
    if isinstance(oracle, SimulatedOracle):
        accuracy = math.nan
        if idx.size:
            truth = np.asarray(oracle.task.pool_labels(idx), dtype=np.int64)
            accuracy = float(np.mean(truth == np.asarray(labels, dtype=np.int64)))
        metrics["pseudo_label_accuracy"] = accuracy
    return metrics
