"""Deep ensembles: ``M`` independently seeded models per round, evaluated by their mean.

A task trained with ``ensemble_size = M > 1`` (``medactive run --ensemble-size M``, train
option ``ensemble_size``) fits ``M`` members on the same labels, each from its own seed
(:func:`member_seeds`: member 0 keeps the round's seed, so it is the model an ``M = 1`` run
trains, and the others derive theirs from it), and returns an :class:`Ensemble`. The round's
model is then the ensemble:

- its metrics are those of the members' mean probabilities (``rounds.csv`` gains a column
  ``ensemble_size``; run.json's task names the ensemble);
- its predictions give strategies ``"member_probas"`` ``[n, c, M]`` (the members'
  probabilities, for ``ensemble_entropy``, ``ensemble_bald``, ``qbc_vote_entropy``,
  ``qbc_kl``), ``"probas"`` = their mean, and ``"embeddings"`` and ``"mc_probas"`` of member 0;
- it saves and loads as one state dict (keys ``members.<i>.…``, :func:`ensemble_size_of`).

Members train one after the other: parallel worker processes are not implemented (on the
2-core machine this was written on they would only compete for the same cores).

References:
    Lakshminarayanan, Pritzel and Blundell, "Simple and scalable predictive uncertainty
    estimation using deep ensembles", NeurIPS 2017; Beluch et al., "The power of ensembles for
    active learning in image classification", CVPR 2018.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from medactive._random import derive_seed
from medactive.errors import ConfigError


class Ensemble(nn.Module):
    """The members of a deep ensemble, as one module (``.to``, ``.eval``, ``state_dict``).

    It has no forward pass: the task runs each member and averages their probabilities.

    Args:
        members: the trained models (at least one).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    @property
    def n_members(self) -> int:
        return len(self.members)

    def __getitem__(self, i: int) -> nn.Module:
        return self.members[i]

    def __iter__(self):
        return iter(self.members)

    def __len__(self) -> int:
        return len(self.members)


def check_ensemble_size(value: Any, *, name: str = "ensemble_size") -> int:
    """``value`` as an int ``>= 1``.

    Raises:
        ConfigError: not an integer, or below 1.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1 (1: one model, no ensemble), got "
                          f"{value!r}")
    return int(value)


def member_seeds(seed: int, size: int) -> list[int]:
    """Training seeds of ``size`` members: ``seed`` itself for member 0, then
    ``derive_seed(seed, "ensemble member", i)``; the same on every machine."""
    return [int(seed)] + [derive_seed(seed, "ensemble member", i) for i in range(1, size)]


def fit_ensemble(fit_member: Callable[[int, Any], nn.Module], *, size: int, seed: int,
                 init_model: Any | None = None) -> Ensemble:
    """Train ``size`` members with ``fit_member(member_seed, member_init)``.

    Args:
        fit_member: trains one model from a seed, starting from ``member_init`` (``None``:
            a fresh model).
        size: the number of members ``M``.
        seed: the round's training seed (:func:`member_seeds`).
        init_model: fine-tuning: the previous round's model; member ``i`` starts from its
            member ``i`` (a single model: every member starts from it).

    Returns:
        The :class:`Ensemble`, in eval mode.
    """
    members = []
    for i, member_seed in enumerate(member_seeds(seed, size)):
        init = init_model
        if isinstance(init_model, Ensemble):
            init = init_model[i % len(init_model)]
        members.append(fit_member(member_seed, init))
    return Ensemble(members).eval()


def mean_probas(member_probas: Sequence[np.ndarray]) -> np.ndarray:
    """The ensemble's prediction: the members' ``[n, c]`` probabilities averaged, ``[n, c]``."""
    return np.mean(np.stack(member_probas, axis=-1), axis=-1)


_MEMBER_KEY = re.compile(r"^members\.(\d+)\.")


def ensemble_size_of(state: Mapping[str, Any]) -> int | None:
    """The number of members of a saved :class:`Ensemble` state dict (``None``: the state of
    a single model)."""
    found = [_MEMBER_KEY.match(k) for k in state]
    if not found or not all(found):
        return None
    return 1 + max(int(m.group(1)) for m in found)


def member_state(state: Mapping[str, Any], i: int) -> dict[str, Any]:
    """Member ``i``'s own state dict out of a saved :class:`Ensemble` state."""
    prefix = f"members.{i}."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
