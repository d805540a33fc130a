"""The benchmark's result tables: one dataset, budget and metric; strategies x rounds.

:class:`ResultTable` and its :class:`Cell` (mean, std, n over seeds), the display conventions of
each metric (:func:`metric_format`) and the best / second marks of a column
(:func:`rank_marks`). Filled by :mod:`medactive.bench.report`, read by
:mod:`medactive.bench.label_efficiency` and the survey comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

SUPERVISED_NAME = "Fully supervised"
#: row names of our two references (survey tables keep SUPERVISED_NAME)
BUDGET_MATCHED_NAME = "Fully supervised, rounds' recipe"
CONVERGED_NAME = "Fully supervised, converged"


# -- metrics -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class MetricFormat:
    """How a metric is shown: ``label``, ``scale`` (x100 for %), ``decimals``, direction."""

    name: str
    label: str
    scale: float
    decimals: int
    lower_is_better: bool

    def show(self, value: float) -> str:
        return f"{value * self.scale:.{self.decimals}f}"


def metric_format(name: str) -> MetricFormat:
    """Display conventions of the survey: accuracy in %, ASD in mm (lower is better).

    Example:
        >>> metric_format("test_accuracy").show(0.9336)
        '93.36'
    """
    base = name.split("_", 1)[1] if name.startswith(("test_", "val_")) else name
    lower = any(part in base for part in ("asd", "hd95", "hausdorff", "loss", "nll", "error"))
    if "accuracy" in base or base.startswith("recall"):
        label = {"accuracy": "ACC (%)", "balanced_accuracy": "Balanced ACC (%)",
                 "pseudo_label_accuracy": "pseudo-label accuracy (%)"}.get(base, f"{base} (%)")
        return MetricFormat(name, label, 100.0, 2, lower)
    if "asd" in base or "hd" in base:
        # the unit (mm or voxels) depends on the data's spacing: stated in run.json
        label = "ASD" if base == "asd_mean" else base
        return MetricFormat(name, label, 1.0, 2, True)
    if base.startswith("n_"):  # counts, e.g. n_pseudo, n_labelled_slices
        return MetricFormat(name, {"n_pseudo": "pseudo-labels"}.get(base, base), 1.0, 1, lower)
    if base.endswith("_fraction"):
        return MetricFormat(name, f"{base.replace('_', ' ')} (%)", 100.0, 2, lower)
    label = {"auc": "AUC", "dice_mean": "DSC"}.get(base, base)
    return MetricFormat(name, label, 1.0, 4, lower)


def _short(metric: str) -> str:
    return metric.split("_", 1)[1] if metric.startswith(("test_", "val_")) else metric


# -- data --------------------------------------------------------------------------------------
@dataclass
class Cell:
    """Mean and std of one (strategy, round) over seeds; ``std`` is ``None`` for one value."""

    mean: float
    std: float | None
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Cell | None:
        values = [v for v in values if v is not None and math.isfinite(v)]
        if not values:
            return None
        arr = np.asarray(values, dtype=np.float64)
        return cls(float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else None,
                   int(arr.size))


@dataclass
class ResultTable:
    """One table: a dataset, a budget, a metric; rows = strategies, columns = rounds.

    Attributes:
        labels: number of labels of each round's model ``[T + 1]``.
        cells: ``(strategy, round) -> Cell``.
        per_seed: ``strategy -> seed -> [value or None] * (T + 1)`` (our runs only).
        supervised: the fully supervised reference (ours: trained with the rounds' recipe,
            budget-matched).
        converged: our reference trained to a validation plateau (``None``: not run).
        supervised_name: the row name of ``supervised``.
    """

    title: str
    dataset: str
    budget: int
    fmt: MetricFormat
    strategies: list[str]
    labels: list[int]
    cells: dict[tuple[str, int], Cell]
    per_seed: dict[str, dict[int, list[float | None]]] = field(default_factory=dict)
    supervised: Cell | None = None
    notes: str = ""
    converged: Cell | None = None
    supervised_name: str = SUPERVISED_NAME

    def reference_rows(self) -> list[tuple[str, str, Cell]]:
        """``(row name, CSV name, cell)`` of each reference the table has."""
        rows = []
        if self.supervised is not None:
            rows.append((self.supervised_name, "fully_supervised", self.supervised))
        if self.converged is not None:
            rows.append((CONVERGED_NAME, "fully_supervised_converged", self.converged))
        return rows

    @property
    def stem(self) -> str:
        return f"{self.dataset}_b{self.budget}_{_short(self.fmt.name)}"

    def marks(self, rnd: int) -> dict[str, str]:
        """``strategy -> "best" | "second"`` for column ``rnd`` (none if all are equal).

        Means are compared as shown (rounded to the metric's printed decimals), so two cells
        that print the same value share a mark."""
        means = {s: round(self.cells[(s, rnd)].mean * self.fmt.scale, self.fmt.decimals)
                 for s in self.strategies if (s, rnd) in self.cells}
        return rank_marks(means, lower_is_better=self.fmt.lower_is_better)


def rank_marks(means: dict[str, float], *, lower_is_better: bool = False) -> dict[str, str]:
    """Mark the best and second-best values.

    Ties share a mark; a tie for the best leaves no second best; all equal: no marks.

    Example:
        >>> rank_marks({"a": 0.7, "b": 0.9, "c": 0.8})
        {'b': 'best', 'c': 'second'}
    """
    distinct = sorted(set(means.values()), reverse=not lower_is_better)
    if len(distinct) < 2:
        return {}
    marks = {s: "best" for s, v in means.items() if v == distinct[0]}
    if len(marks) == 1:  # a tie for the best leaves no second best
        marks.update({s: "second" for s, v in means.items() if v == distinct[1]})
    return marks
