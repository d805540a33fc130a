"""The active-learning cycle as an object that can be asked and told (survey §2, Eq. 1–4).

:class:`ActiveLearningCycle` holds the state of one experiment explicitly: the round ``r``, the
labeled set ``L_r`` with its labels, the round's model and the :class:`RoundRecord` of every
finished round. Its steps are the loop's:

- :meth:`~ActiveLearningCycle.fit` trains round ``r``'s model on ``L_r``;
- :meth:`~ActiveLearningCycle.evaluate` measures it on val and test;
- :meth:`~ActiveLearningCycle.query` selects the batch ``D_q = S(I(x, f_theta), b)``; it closes
  round ``r`` and opens round ``r + 1`` with ``L_{r+1} = L_r ∪ D_q``, whose new members await
  their labels;
- :meth:`~ActiveLearningCycle.tell` gives labels of samples that await them.

A simulated experiment tells each batch the ground truth at once
(:func:`~medactive.loop.active_loop.run_active_learning` is a few lines over this class); the
human workflow stores the batch and tells nothing until people have labelled it; a library user
calls the steps from a loop of their own (and may pass predictions of a model of their own to
:meth:`~ActiveLearningCycle.query`).

Randomness: training, inference and query of round ``r`` each draw from their own stream
derived from ``(seed, purpose, r)``, so a cycle rebuilt from its records (``completed=``)
continues exactly as if it had never stopped.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medactive._random import derive_seed
from medactive._validation import check_budget
from medactive.errors import ConfigError
from medactive.loop.pseudo_label import select_pseudo_labels
from medactive.loop.records import LoopConfig, RoundRecord, cold_start_indices
from medactive.loop.task import Task, task_predictions
from medactive.predictions import Predictions
from medactive.strategies import QueryResult, Strategy, create_strategy

logger = logging.getLogger(__name__)

_EMPTY = np.zeros(0, dtype=np.int64)


class ActiveLearningCycle:
    """One pool-based active-learning experiment, step by step.

    Args:
        task: a :class:`~medactive.loop.task.Task` (what is trained, evaluated and predicted);
            only :attr:`pool_ids` is needed when every query is given its predictions.
        config: the experiment's settings; ``config.budget`` is the default batch size and
            ``config.rounds`` says when :attr:`done` is true.
        strategy: a strategy instance (default ``create_strategy(config.strategy, **options)``).
        completed: records of rounds already finished, in order: the cycle resumes after them,
            with ``L_r`` rebuilt from their batches (its labels await :meth:`tell`).
        initial_idx: ``L_0`` when starting afresh (e.g. a project's first labels); default:
            random from the seed, or chosen by ``config.initial_strategy`` (cold start).
        truth: ground truth of pool indices, when known without counting as a query (a
            simulated oracle): only for the ``pseudo_label_accuracy`` metric.
        array_device: where the task's predictions are selected on
            (:attr:`~medactive.predictions.Predictions.array_device`, e.g. CUDA from
            :func:`medactive.query_device.array_device`); ``None``: numpy.

    Attributes:
        round: the current round ``r``.
        labeled_idx: ``[|L_r|]`` pool indices of ``L_r``, in the order they joined.
        records: a :class:`RoundRecord` per round evaluated or queried so far.
        model: round ``r``'s model once :meth:`fit` ran (``None`` before).

    Raises:
        ConfigError: pseudo-labelling asked of a task that cannot train on pseudo-labels; an
            initial set larger than the pool.
    """

    def __init__(self, task: Task, config: LoopConfig, *, strategy: Strategy | None = None,
                 completed: Sequence[RoundRecord] = (), initial_idx: np.ndarray | None = None,
                 truth: Callable[[np.ndarray], list[Any]] | None = None,
                 array_device: Callable[[np.ndarray], Any] | None = None) -> None:
        check_pseudo_label_support(task, config)
        self.task = task
        self.array_device = array_device
        self.config = config
        self.strategy = strategy or create_strategy(config.strategy, **config.strategy_options)
        self.truth = truth
        self.n_pool = len(task.pool_ids)
        self.records: list[RoundRecord] = list(completed)
        self.round = len(self.records)
        self.model: Any = None
        self._labels: dict[int, Any] = {}
        self._metrics: dict[str, float] | None = None
        self._started: float | None = None
        self._pseudo = (_EMPTY, _EMPTY)  # P_{r-1}: what round r's model trains on besides L_r
        if self.records:  # resume: L_r = initial set + every batch queried so far
            last = self.records[-1]
            self._added = (np.asarray(last.queried_idx, dtype=np.int64),
                           np.asarray(last.queried_scores, dtype=np.float64))
            self.labeled_idx = np.concatenate(
                [np.asarray(self.records[0].added_idx, dtype=np.int64)]
                + [np.asarray(r.queried_idx, dtype=np.int64) for r in self.records])
            if config.pseudo_label is not None:
                self._pseudo = (np.asarray(last.next_pseudo_idx, dtype=np.int64),
                                np.asarray(last.next_pseudo_labels, dtype=np.int64))
        elif initial_idx is not None:
            self.labeled_idx = np.asarray(initial_idx, dtype=np.int64)
            self._added = (self.labeled_idx.copy(), np.full(self.labeled_idx.size, np.nan))
        else:
            idx, scores = cold_start_indices(task, config.initial, config.seed,
                                             config.initial_strategy)
            self.labeled_idx = idx
            self._added = (idx.copy(), scores)

    # -- state ------------------------------------------------------------------------------
    @property
    def awaiting(self) -> np.ndarray:
        """Pool indices of ``L_r`` whose labels have not been told yet."""
        return np.asarray([i for i in self.labeled_idx.tolist() if i not in self._labels],
                          dtype=np.int64)

    @property
    def labels(self) -> list[Any]:
        """The labels of ``L_r``, in the order of :attr:`labeled_idx`.

        Raises:
            ConfigError: some samples of ``L_r`` await their labels.
        """
        self._check_told()
        return [self._labels[i] for i in self.labeled_idx.tolist()]

    @property
    def unlabeled_idx(self) -> np.ndarray:
        """Sorted pool indices outside ``L_r``."""
        return np.setdiff1d(np.arange(self.n_pool, dtype=np.int64), self.labeled_idx)

    @property
    def done(self) -> bool:
        """Whether the last round (``config.rounds``) has been evaluated."""
        return self.round > self.config.rounds or (
            self.round == self.config.rounds and self._metrics is not None)

    # -- steps ------------------------------------------------------------------------------
    def tell(self, idx: Sequence[int] | np.ndarray, labels: Sequence[Any]) -> None:
        """Give the labels of pool indices ``idx`` (members of ``L_r`` awaiting them).

        Raises:
            ConfigError: lengths differ, or an index is not in ``L_r`` (query it first).
        """
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        labels = list(labels)
        if idx.size != len(labels):
            raise ConfigError(f"tell: {idx.size} indices but {len(labels)} labels")
        members = set(self.labeled_idx.tolist())
        outside = [int(i) for i in idx if int(i) not in members]
        if outside:
            raise ConfigError(f"tell: {len(outside)} indices are not in the labeled set of "
                              f"round {self.round} (e.g. {outside[:5]}); only queried samples "
                              "can be labelled")
        for i, value in zip(idx.tolist(), labels):
            self._labels[i] = value

    def fit(self) -> Any:
        """Train round ``r``'s model on ``L_r`` (from the previous round's model with
        ``config.finetune``) and keep it as :attr:`model`."""
        labels = self.labels
        self._started = time.perf_counter()
        init = self.model if (self.config.finetune and self.model is not None) else None
        seed = derive_seed(self.config.seed, "train", self.round)
        if self.config.pseudo_label is None:
            self.model = self.task.fit(self.labeled_idx, labels, seed=seed, init_model=init)
        else:
            self.model = self.task.fit(self.labeled_idx, labels, seed=seed, init_model=init,
                                       extra_idx=self._pseudo[0], extra_labels=self._pseudo[1])
        self._metrics = None
        return self.model

    def evaluate(self) -> dict[str, float]:
        """Metrics of round ``r``'s model: ``val_*`` and ``test_*`` (plus pseudo-label and
        labelled-fraction metrics when they apply, and ``ensemble_size`` when the model is a deep
        ensemble, whose metrics are its mean's). In the last round this closes the round
        (its record joins :attr:`records`)."""
        self._check_model()
        task = self.task
        metrics = {f"val_{k}": v for k, v in task.evaluate(self.model, "val").items()}
        metrics.update({f"test_{k}": v for k, v in task.evaluate(self.model, "test").items()})
        if self.config.pseudo_label is not None:
            metrics.update(_pseudo_metrics(*self._pseudo, self.truth))
        label_metrics = getattr(task, "label_metrics", None)
        if label_metrics is not None:  # e.g. labelled pixel fraction when the unit is a patch
            metrics.update(label_metrics(self.labeled_idx))
        members = getattr(self.model, "n_members", 1)
        if members > 1:  # the metrics are a deep ensemble's mean (medactive.tasks.ensemble)
            metrics["ensemble_size"] = members
        self._metrics = metrics
        if self.round >= self.config.rounds:
            self._close_round(_EMPTY, np.zeros(0), 0.0, (_EMPTY, _EMPTY))
        return metrics

    def query(self, budget: int | None = None, *,
              predictions: Predictions | None = None) -> QueryResult:
        """Select the batch that forms ``L_{r+1}`` and open round ``r + 1``.

        Args:
            budget: batch size (default ``config.budget``).
            predictions: model outputs over the pool to select on (a model of your own, see
                :func:`medactive.inference.model_predictions`); default: the task's
                predictions of :attr:`model`.

        Returns:
            The batch (pool indices in selection order and their scores); its samples now
            await :meth:`tell`.

        Raises:
            ConfigError: the budget exceeds the unlabeled pool; no model and no predictions.
        """
        budget = self.config.budget if budget is None else budget
        unlabeled = self.unlabeled_idx
        budget = check_budget(budget, unlabeled.size)
        if predictions is None:
            self._check_model()
            predictions = task_predictions(
                self.task, self.model, seed=derive_seed(self.config.seed, "predict", self.round),
                labeled_idx=np.sort(self.labeled_idx))
            passes = getattr(self.strategy, "n_mc_samples", None)
            if passes is not None:  # the strategy's n_mc_samples option, routed to the task
                predictions.n_mc_samples = int(passes)
            views = getattr(self.strategy, "n_augmentations", None)
            if views is not None:  # tta_kl's n_augmentations option, routed the same way
                predictions.n_augmentations = int(views)
            if self.array_device is not None:  # --selection-device
                predictions.array_device = self.array_device
        start = time.perf_counter()
        if self._started is None:
            self._started = start
        result = self.strategy.query(predictions, unlabeled, np.sort(self.labeled_idx), budget,
                                     rng=derive_seed(self.config.seed, "query", self.round))
        indices = np.asarray(result.indices, dtype=np.int64)
        scores = np.asarray(result.scores, dtype=np.float64)
        query_seconds = time.perf_counter() - start
        pseudo = (_EMPTY, _EMPTY)
        if self.config.pseudo_label is not None:
            # the query's predictions: probabilities the strategy used are cached
            rule = self.config.pseudo_label
            pseudo = select_pseudo_labels(
                predictions.get("probas", unlabeled), unlabeled,
                threshold=rule.threshold(self.round), exclude_idx=indices, max_n=rule.max)
        self._close_round(indices, scores, query_seconds, pseudo)
        self.labeled_idx = np.concatenate([self.labeled_idx, indices])
        self._added = (indices, scores)
        self._pseudo = pseudo
        self._metrics = None
        self._started = None
        self.round += 1
        return QueryResult(indices, scores)

    # -- internals --------------------------------------------------------------------------
    def _close_round(self, queried_idx: np.ndarray, queried_scores: np.ndarray,
                     query_seconds: float, next_pseudo: tuple[np.ndarray, np.ndarray]) -> None:
        metrics = dict(self._metrics or {})
        started = self._started if self._started is not None else time.perf_counter()
        record = RoundRecord(
            round=self.round, n_labeled=int(self.labeled_idx.size), metrics=metrics,
            added_idx=self._added[0], added_scores=self._added[1], queried_idx=queried_idx,
            queried_scores=queried_scores, seconds=time.perf_counter() - started,
            query_seconds=query_seconds, pseudo_idx=self._pseudo[0],
            pseudo_labels=self._pseudo[1], next_pseudo_idx=next_pseudo[0],
            next_pseudo_labels=next_pseudo[1])
        logger.info("round %d: %d labels, %s", record.round, record.n_labeled,
                    ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k.startswith("test_")))
        if self.records and self.records[-1].round == self.round:
            self.records[-1] = record  # evaluated again, or queried after the last round
        else:
            self.records.append(record)

    def _check_told(self) -> None:
        missing = self.awaiting
        if missing.size:
            raise ConfigError(f"{missing.size} samples of round {self.round}'s labeled set await "
                              f"their labels (e.g. pool indices {missing[:5].tolist()}); tell "
                              "them first")

    def _check_model(self) -> None:
        if self.model is None:
            raise ConfigError(f"round {self.round} has no model yet: call fit() first (or give "
                              "query() predictions of your own)")


def check_pseudo_label_support(task: Task, config: LoopConfig) -> None:
    """Refuse pseudo-labelling for a task that cannot train on pseudo-labels.

    Raises:
        ConfigError: ``config.pseudo_label`` is set and the task lacks
            ``supports_pseudo_labels``.
    """
    if config.pseudo_label is not None and not getattr(task, "supports_pseudo_labels", False):
        raise ConfigError(f"pseudo-labelling (--pseudo-label-entropy, grid pseudo_label) is "
                          f"not supported by {getattr(task, 'kind', type(task).__name__)} "
                          "tasks; leave it off")


def _pseudo_metrics(idx: np.ndarray, labels: np.ndarray,
                    truth: Callable[[np.ndarray], list[Any]] | None) -> dict[str, float]:
    """``n_pseudo`` and, when the truth is known without counting as a query (a simulated
    oracle), ``pseudo_label_accuracy``: the fraction of pseudo-labels equal to the true label."""
    metrics = {"n_pseudo": float(idx.size)}
    if truth is not None:
        accuracy = math.nan
        if idx.size:
            real = np.asarray(truth(idx), dtype=np.int64)
            accuracy = float(np.mean(real == np.asarray(labels, dtype=np.int64)))
        metrics["pseudo_label_accuracy"] = accuracy
    return metrics
