"""Composed strategies: a sampler over any registered score, by name (survey §3.3).

Name syntax (parsed by :func:`create_composed`, reached through ``create_strategy``):

- ``SAMPLER:SCORE``: a sampler (:data:`SAMPLERS`) over a score, i.e. a registered
  single-score strategy (``entropy``, ``margin``, ``least_confidence``, ``mean_variance``,
  ``bald``, ``dbal``, see :func:`list_scores`) or a fusion. ``topk:SCORE`` is ``SCORE``.
- ``fusion:A+B[+C...]``: a score, the weighted sum of the scores' rank-normalised values
  (``(rank - 1) / (n - 1)``, ties averaged; option ``weights``, default equal), top-k.
- ``hybrid:A+B``: multi-round (survey §3.3.3): strategy ``A`` keeps ``m · k`` candidates
  (option ``m``, default 10), then strategy ``B`` selects ``k`` of them (``B`` sees the
  labeled set as well); A and B are any strategy names but not hybrid or fusion ones.

Options (``create_strategy`` keyword arguments): the sampler's (:data:`SAMPLERS`) go to the
sampler, the rest to the score(s), e.g. ``create_strategy("power:bald", beta=2,
n_mc_samples=10)``.

The samplers' papers are cited in :mod:`medactive.selection.stochastic`,
:mod:`~medactive.selection.cluster_margin`, :mod:`~medactive.selection.kdpp` and
:mod:`~medactive.selection.class_balance`; fusion and hybrid follow the survey §3.3.3.

Example:
    >>> import numpy as np
    >>> from medactive.predictions import ArrayPredictions
    >>> p = ArrayPredictions(probas=np.array([[0.5, 0.5], [0.9, 0.1], [0.6, 0.4]]))
    >>> s = create_composed("power:entropy", beta=1e6)
    >>> s.query(p, np.arange(3), np.array([], int), 2, rng=0).indices.tolist()
    [0, 2]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from medactive._validation import accepts_keyword
from medactive.errors import ConfigError
from medactive.predictions import FieldRows, Predictions
from medactive.selection.class_balance import clasp, class_balanced
from medactive.selection.cluster_margin import cluster_margin
from medactive.selection.kdpp import kdpp_select
from medactive.selection.stochastic import (
    power_sampling,
    rank_sampling,
    softmax_sampling,
    stochastic_batches,
)
from medactive.selection.topk import top_k
from medactive.strategies._scored import TopScoreStrategy
from medactive.strategies.base import _REGISTRY, QueryResult, Strategy

logger = logging.getLogger(__name__)

#: rows of probabilities read at once for class membership (bounds memory on dense outputs)
_BLOCK = 256


@dataclass(frozen=True)
class Sampler:
    """A sampler: its options with defaults, the fields it reads besides the score's, a line."""

    options: dict[str, Any]
    requires: tuple[str, ...]
    description: str


SAMPLERS: dict[str, Sampler] = {
    "topk": Sampler({}, (), "the top-k scores (the plain strategy)"),
    "power": Sampler({"beta": 1.0}, (), "draw without replacement ∝ score^beta (Kirsch et al. "
                     "2023)"),
    "softmax": Sampler({"beta": 1.0}, (), "draw without replacement ∝ exp(beta·score)"),
    "rank": Sampler({"beta": 1.0}, (), "draw without replacement ∝ rank^-beta"),
    "stochastic_batches": Sampler({"n_batches": None}, (), "random disjoint batches, keep the "
                                  "highest mean score (Gaillochet et al. 2023)"),
    "cluster": Sampler({"candidates_per_pick": 10, "n_clusters": None, "max_candidates": 5000,
                        "linkage": "average"}, ("embeddings",),
                       "cluster-margin: HAC of the top m·k, round-robin smallest cluster first "
                       "(Citovsky et al. 2021)"),
    "kdpp": Sampler({"candidates_per_pick": 10, "max_candidates": 2000, "floor": 1e-3},
                    ("embeddings",), "k-DPP on a score-weighted RBF kernel of the top m·k "
                    "(Kulesza and Taskar 2011)"),
    "class_balanced": Sampler({}, ("probas",), "per-predicted-class quotas, rarest first "
                              "(Bengar et al. 2022)"),
    "clasp": Sampler({"noise": 1.0, "decay": 0.5, "class_share": 0.5}, ("probas",),
                     "ClaSP: class-stratified share + power noise decaying by round "
                     "(nnActive, Lüth et al. 2026)"),
}


def list_samplers() -> list[str]:
    """Sorted sampler names (the ``SAMPLER`` of ``SAMPLER:SCORE``)."""
    return sorted(SAMPLERS)


def list_scores() -> list[str]:
    """Sorted names of the registered single-score strategies (the ``SCORE``)."""
    return sorted(name for name, cls in _REGISTRY.items()
                  if isinstance(cls, type) and issubclass(cls, TopScoreStrategy))


class _Score:
    """A per-sample score: a registered single-score strategy, or a fusion of several."""

    def __init__(self, names: list[str], weights, options: dict[str, Any]) -> None:
        scores = list_scores()
        for name in names:
            if name not in scores:
                raise ConfigError(f"{name!r} is not a score; choose one of: {', '.join(scores)}")
        self.names = names
        self.parts: list[TopScoreStrategy] = []
        for name in names:
            cls = _REGISTRY[name]
            mine = {k: v for k, v in options.items() if accepts_keyword(cls, k)}
            try:
                self.parts.append(cls(**mine))
            except TypeError as exc:
                raise ConfigError(f"bad options {mine} for score {name!r}: {exc}") from None
        if weights is None:
            weights = [1.0 / len(names)] * len(names)
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(names),) or not np.all(np.isfinite(weights)) \
                or (weights < 0).any() or weights.sum() <= 0:
            raise ConfigError(f"fusion weights must be {len(names)} numbers >= 0, not all 0, "
                              f"got {weights.tolist()}")
        self.weights = weights
        self.requires = tuple(dict.fromkeys(f for p in self.parts for f in p.requires))
        mc = [p.n_mc_samples for p in self.parts if getattr(p, "n_mc_samples", None)]
        if mc:
            self.n_mc_samples = max(mc)
        views = [p.n_augmentations for p in self.parts if getattr(p, "n_augmentations", None)]
        if views:
            self.n_augmentations = max(views)

    def __call__(self, predictions: Predictions, idx: np.ndarray) -> np.ndarray:
        values = [p.scores(predictions, idx) for p in self.parts]
        if len(values) == 1:
            return values[0]
        from scipy.stats import rankdata

        denom = max(1, idx.size - 1)
        return sum(w * (rankdata(v) - 1) / denom for w, v in zip(self.weights, values))


def predicted_membership(predictions: Predictions, idx: np.ndarray) -> np.ndarray:
    """``[n, c]`` bool: classes the model predicts in each sample (classification: the argmax
    class; dense outputs ``[n, c, ...]``: every class that is some pixel's argmax)."""
    from medactive._validation import check_probas

    rows = []
    for start in range(0, idx.size, _BLOCK):
        probas = check_probas(predictions.get("probas", idx[start:start + _BLOCK]))
        arg = probas.reshape(probas.shape[0], probas.shape[1], -1).argmax(axis=1)
        member = np.zeros((probas.shape[0], probas.shape[1]), dtype=bool)
        member[np.repeat(np.arange(arg.shape[0]), arg.shape[1]), arg.ravel()] = True
        rows.append(member)
    return np.concatenate(rows)


class ComposedStrategy(Strategy):
    """A sampler over a score; built from a name by :func:`create_composed`.

    The query's scores are the score of each pick (the fusion value for a fusion).
    """

    def __init__(self, sampler: str, score: _Score, name: str, **options: Any) -> None:
        self.sampler = sampler
        self.score = score
        self.options = {**SAMPLERS[sampler].options, **options}
        self.name = name
        self.requires = tuple(dict.fromkeys(score.requires + SAMPLERS[sampler].requires))
        self.description = f"{SAMPLERS[sampler].description}, over {'+'.join(score.names)}"
        if hasattr(score, "n_mc_samples"):
            self.n_mc_samples = score.n_mc_samples
        if hasattr(score, "n_augmentations"):
            self.n_augmentations = score.n_augmentations
        for key in ("beta",):
            if key in self.options:
                from medactive.selection.stochastic import check_beta

                check_beta(self.options[key], name=f"{name}: beta")

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        scores = self.score(predictions, unlabeled_idx)
        opts, s = self.options, self.sampler
        if s == "topk":
            pos = top_k(scores, budget, rng=rng)
        elif s in ("power", "softmax", "rank"):
            fn = {"power": power_sampling, "softmax": softmax_sampling, "rank": rank_sampling}[s]
            pos = fn(scores, budget, beta=opts["beta"], rng=rng)
        elif s == "stochastic_batches":
            pos = stochastic_batches(scores, budget, n_batches=opts["n_batches"], rng=rng)
        elif s == "cluster":  # only the top-scored candidates' embeddings are fetched
            X = FieldRows(predictions, "embeddings", unlabeled_idx)
            pos = cluster_margin(X, scores, budget, rng=rng, **opts)
        elif s == "kdpp":
            X = FieldRows(predictions, "embeddings", unlabeled_idx)
            pos = kdpp_select(X, scores, budget, rng=rng, **opts)
        else:  # class_balanced, clasp: classes of the labeled set by the model's predictions
            member = predicted_membership(predictions, unlabeled_idx)
            have = predicted_membership(predictions, labeled_idx).sum(axis=0) \
                if labeled_idx.size else None
            if s == "class_balanced":
                pos = class_balanced(scores, member, budget, labeled_counts=have)
            else:  # the round read from the labeled set: |L| / b - 1 (0 when |L_0| = b)
                round_index = max(0.0, labeled_idx.size / budget - 1.0)
                pos = clasp(scores, member, budget, round_index=round_index,
                            labeled_counts=have, rng=rng, **opts)
        return QueryResult(unlabeled_idx[pos], scores[pos])

    def __repr__(self) -> str:
        return f"ComposedStrategy({self.name!r}, {self.options})"


class HybridStrategy(Strategy):
    """Multi-round: ``first`` keeps ``m · k`` candidates, ``second`` picks ``k`` of them.

    The query's scores are ``second``'s.
    """

    def __init__(self, first: Strategy, second: Strategy, name: str, m: int = 10) -> None:
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
            raise ConfigError(f"{name}: m must be a positive integer, got {m!r}")
        self.first, self.second, self.m, self.name = first, second, int(m), name
        self.requires = tuple(dict.fromkeys(first.requires + second.requires))
        self.description = (f"top {m}·k by {first.name}, then k of those by {second.name}")
        mc = [s.n_mc_samples for s in (first, second) if getattr(s, "n_mc_samples", None)]
        if mc:
            self.n_mc_samples = max(mc)
        views = [s.n_augmentations for s in (first, second)
                 if getattr(s, "n_augmentations", None)]
        if views:
            self.n_augmentations = max(views)

    def _query(self, predictions: Predictions, unlabeled_idx: np.ndarray,
               labeled_idx: np.ndarray, budget: int, rng: np.random.Generator) -> QueryResult:
        n_cand = min(unlabeled_idx.size, self.m * budget)
        cand = self.first.query(predictions, unlabeled_idx, labeled_idx, n_cand, rng=rng).indices
        return self.second.query(predictions, np.sort(cand), labeled_idx, budget, rng=rng)

    def __repr__(self) -> str:
        return f"HybridStrategy({self.name!r}, m={self.m})"


def _split_options(options: dict[str, Any], own: set[str]) -> tuple[dict, dict]:
    return ({k: v for k, v in options.items() if k in own},
            {k: v for k, v in options.items() if k not in own})


def _check_used(name: str, rest: dict[str, Any], factories) -> None:
    unused = sorted(k for k in rest if not any(accepts_keyword(f, k) for f in factories))
    if unused:
        raise ConfigError(f"bad options {rest} for strategy {name!r}: unknown option(s) "
                          f"{', '.join(unused)}")


def _parse_score(spec: str, name: str, options: dict[str, Any]) -> _Score:
    weights = options.pop("weights", None)
    if spec.startswith("fusion:"):
        parts = spec[len("fusion:"):].split("+")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"{name!r}: fusion needs two or more scores, e.g. "
                              "'fusion:entropy+bald'")
    else:
        if weights is not None:
            raise ConfigError(f"{name!r}: weights apply to fusion only")
        parts = [spec]
    _check_used(name, options, [_REGISTRY[p] for p in parts if p in _REGISTRY])
    return _Score(parts, weights, options)


def create_composed(name: str, *, create=None, **options: Any) -> Strategy:
    """The strategy a composed name stands for (syntax in the module docstring).

    Args:
        name: the composed name.
        create: ``create(name, **options) -> Strategy`` for the parts of a hybrid and for
            ``topk:SCORE`` (the registry passes its ``create_strategy``; default: the
            registered class itself).
        options: options of the sampler and the score(s).

    Raises:
        ConfigError: an unknown sampler, score or option (naming the valid ones).
    """
    def create_strategy(part: str, **kw: Any) -> Strategy:
        if create is not None:
            return create(part, **kw)
        return create_composed(part, **kw) if ":" in part else _REGISTRY[part](**kw)

    head, _, rest = name.partition(":")
    if not rest:
        raise ConfigError(f"{name!r}: expected SAMPLER:SCORE, hybrid:A+B or fusion:A+B")
    if head == "hybrid":
        parts = rest.split("+")
        if len(parts) != 2 or not all(parts) or any(
                p.startswith(("hybrid:", "fusion:")) for p in parts):
            raise ConfigError(f"{name!r}: hybrid takes two strategy names, 'hybrid:A+B' "
                              "(neither a hybrid nor a fusion)")
        own, rest_opts = _split_options(options, {"m"})
        unused = sorted(k for k in rest_opts if not any(_name_accepts(p, k) for p in parts))
        if unused:
            raise ConfigError(f"bad options {options} for strategy {name!r}: unknown "
                              f"option(s) {', '.join(unused)}")
        strategies = [create_strategy(p, **{k: v for k, v in rest_opts.items()
                                            if _name_accepts(p, k)}) for p in parts]
        return HybridStrategy(strategies[0], strategies[1], name, **own)
    if head == "fusion":
        options = dict(options)
        return ComposedStrategy("topk", _parse_score(name, name, options), name)
    if head not in SAMPLERS:
        raise ConfigError(f"unknown sampler {head!r} in {name!r}; choose one of: "
                          f"{', '.join(list_samplers())}, or hybrid:A+B, fusion:A+B")
    own, score_opts = _split_options(options, set(SAMPLERS[head].options))
    if head == "topk" and not rest.startswith("fusion:"):
        if rest not in list_scores():
            raise ConfigError(f"{rest!r} is not a score; choose one of: "
                              f"{', '.join(list_scores())}")
        return create_strategy(rest, **score_opts)
    return ComposedStrategy(head, _parse_score(rest, name, dict(score_opts)), name, **own)


def _name_accepts(part: str, key: str) -> bool:
    """Whether the strategy named ``part`` (plain or ``SAMPLER:SCORE``) takes option ``key``."""
    head, _, rest = part.partition(":")
    if rest and head in SAMPLERS:
        scores = rest[len("fusion:"):].split("+") if rest.startswith("fusion:") else [rest]
        return key in SAMPLERS[head].options or (key == "weights" and len(scores) > 1) or any(
            s in _REGISTRY and accepts_keyword(_REGISTRY[s], key) for s in scores)
    return part in _REGISTRY and accepts_keyword(_REGISTRY[part], key)
