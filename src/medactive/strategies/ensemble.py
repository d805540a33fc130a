"""Deep-ensemble strategies: top-b by the disagreement of independently seeded models.

Both read ``"member_probas"`` ``[n, c, m]``, the probabilities of the ``m`` members the task
trained for the round (``medactive run --ensemble-size M``, :mod:`medactive.tasks.ensemble`):

- ``ensemble_entropy``: entropy of the members' mean prediction (total uncertainty);
- ``ensemble_bald``: mutual information between prediction and member (BALD with members in
  place of MC-dropout passes; epistemic uncertainty).

:class:`MemberScoreStrategy` is their shared base (also of :mod:`medactive.strategies.qbc`):
a :class:`~medactive.strategies._scored.TopScoreStrategy` on ``"member_probas"``, so every
sampler composes with them (``power:ensemble_bald``), which refuses predictions without
members in one line.

References:
    Lakshminarayanan, Pritzel and Blundell, "Simple and scalable predictive uncertainty
    estimation using deep ensembles", NeurIPS 2017; Beluch et al., "The power of ensembles for
    active learning in image classification", CVPR 2018.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from medactive.errors import ConfigError
from medactive.predictions import Predictions
from medactive.scoring.committee import ensemble_bald, ensemble_entropy
from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import register_strategy

#: what a run without ensemble members is told
NEEDS_MEMBERS = "needs --ensemble-size 2 or more (train option ensemble_size)"


class MemberScoreStrategy(TopScoreStrategy):
    """A :class:`TopScoreStrategy` on the members' probabilities ``"member_probas"``
    ``[n, c, ..., m]``.

    Raises:
        ConfigError: (at query time) the predictions have no ``"member_probas"`` (a task
            trained without an ensemble).
    """

    field: ClassVar[str] = "member_probas"
    requires: ClassVar[tuple[str, ...]] = ("member_probas",)

    def scores(self, predictions: Predictions, idx: np.ndarray) -> np.ndarray:
        check_members(predictions, np.asarray(idx)[:1], name=self.name)
        return super().scores(predictions, idx)


def check_members(predictions: Predictions, idx: np.ndarray, *, name: str) -> None:
    """Refuse predictions without ``"member_probas"`` in one line naming ``name``.

    Raises:
        ConfigError: the field is missing (no provider, or ``None`` in array predictions).
    """
    try:
        predictions.get("member_probas", idx)
    except (KeyError, ValueError) as exc:
        if isinstance(exc, ValueError) and "have no" not in str(exc):
            raise
        raise ConfigError(f"{name} {NEEDS_MEMBERS}: these predictions have no ensemble "
                          "members") from None


@register_strategy
class EnsembleEntropy(MemberScoreStrategy):
    """Top-b by the entropy of the deep ensemble's mean prediction."""

    name = "ensemble_entropy"
    description = ("Top-b by the entropy of the mean prediction of a deep ensemble's members "
                   "(--ensemble-size M).")
    score_fn = ensemble_entropy


@register_strategy
class EnsembleBALD(MemberScoreStrategy):
    """Top-b by BALD across the deep ensemble's members (Beluch et al. 2018)."""

    name = "ensemble_bald"
    description = ("Top-b by the mutual information between prediction and member of a deep "
                   "ensemble (BALD on --ensemble-size M members).")
    score_fn = ensemble_bald
