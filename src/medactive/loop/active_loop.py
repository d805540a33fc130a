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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medactive._validation import check_budget
from medactive.errors import ConfigError
from medactive.loop.cycle import ActiveLearningCycle, check_pseudo_label_support
from medactive.loop.records import (  # noqa: F401 - the loop's public names, one import away
    LoopConfig,
    RoundRecord,
    cold_start_indices,
    initial_indices,
)
from medactive.loop.task import Task
from medactive.oracle.simulated import Oracle, SimulatedOracle
from medactive.strategies.base import Strategy


def run_active_learning(task: Task, config: LoopConfig, *, oracle: Oracle | None = None,
                        completed: Sequence[RoundRecord] = (),
                        on_round: Callable[[RoundRecord], None] | None = None,
                        initial_idx: np.ndarray | None = None,
                        strategy: Strategy | None = None,
                        array_device: Callable[[np.ndarray], Any] | None = None,
                        ) -> list[RoundRecord]:
    """Run (or resume) one active-learning experiment to its last round.

    A few lines over :class:`~medactive.loop.cycle.ActiveLearningCycle`: tell the oracle's
    labels of ``L_r``, then fit, evaluate and query each round, telling each batch's labels.

    Args:
        task: a :class:`~medactive.loop.task.Task`.
        config: the experiment's settings.
        oracle: label provider; defaults to the :class:`SimulatedOracle` of ``task``.
        completed: records of rounds already finished, in order (resume).
        on_round: called with each new :class:`RoundRecord` as soon as it is final.
        initial_idx: override the initial set (e.g. a project's existing labels); else it is
            random, or chosen by ``config.initial_strategy`` (:func:`cold_start_indices`).
        strategy: a strategy instance (defaults to ``create_strategy(config.strategy)``).
        array_device: where queries run (see :class:`ActiveLearningCycle`); ``None``: numpy.

    Returns:
        All records, the ``completed`` ones first.

    Raises:
        ConfigError: budget or initial set larger than the pool allows; pseudo-labelling asked
            of a task that cannot train on pseudo-labels.
    """
    check_pseudo_label_support(task, config)
    n_pool = len(task.pool_ids)
    needed = config.initial + config.rounds * config.budget
    if needed > n_pool:
        raise ConfigError(f"initial={config.initial} + rounds={config.rounds} x "
                          f"budget={config.budget} = {needed} labels, more than the pool's "
                          f"{n_pool} samples")
    if config.rounds > 0:
        check_budget(config.budget, n_pool - config.initial)
    oracle = oracle or SimulatedOracle(task)
    truth = task.pool_labels if isinstance(oracle, SimulatedOracle) else None
    cycle = ActiveLearningCycle(task, config, strategy=strategy, completed=completed,
                                initial_idx=initial_idx, truth=truth,
                                array_device=array_device)
    cycle.tell(cycle.awaiting, oracle.label(cycle.awaiting))
    while not cycle.done:
        cycle.fit()
        cycle.evaluate()
        batch = None if cycle.done else cycle.query()
        if on_round is not None:
            on_round(cycle.records[-1])
        if batch is not None:
            cycle.tell(batch.indices, oracle.label(batch.indices))
    return cycle.records
