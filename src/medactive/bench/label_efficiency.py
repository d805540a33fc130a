"""How many labels each configuration needs to reach its fully supervised metric.

For every dataset entry of a grid and every strategy (a *configuration*: the entry fixes the
data, encoder, training mode and semi-supervised method; the strategy fixes the queries), the
fewest labels at which the mean over seeds of the test metric reaches 95 % and 100 % of the
fully supervised reference of the same entry (the same recipe trained on every pool label,
mean over its seeds). Every budget level ``b`` and every round count: a configuration reaches
a target at the smallest ``n_labeled`` of any ``(b, round)`` whose mean meets it. Rounds that
not every seed of the configuration has finished are not counted (a mean over fewer seeds
would flatter a partial grid). For metrics where lower is better (ASD), reaching a fraction
``f`` means a mean at most ``reference / f``.

Entries over the same data (``bloodmnist`` and ``bloodmnist-fixmatch``) share one section, so
the report shows them side by side.

References:
    Lüth et al., "Toward realistic evaluation of deep active learning algorithms in image
    classification", 2023 (label efficiency against full supervision as the yardstick).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medactive.bench.names import display_name
from medactive.bench.tables import MetricFormat, ResultTable

#: fractions of the fully supervised metric the table reports
FRACTIONS = (0.95, 1.0)
NOT_REACHED = "not reached"
#: absolute slack of the comparison (0.95 * 0.9 is 0.8549999... in floating point)
_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Reached:
    """Where a configuration first reached a target: ``labels`` at budget ``budget``, round
    ``round``, with mean ``mean`` over ``n_seeds`` seeds."""

    labels: int
    budget: int
    round: int
    mean: float
    n_seeds: int


@dataclass
class TargetRow:
    """One configuration's labels to reach each fraction of full supervision.

    Attributes:
        group: the data the entry reads (its file's stem: ``"bloodmnist"``).
        dataset: the grid's dataset entry (``"bloodmnist-fixmatch"``).
        strategy: the strategy.
        fmt: the metric.
        supervised: mean of the entry's fully supervised reference (``None``: none stored).
        reached: ``fraction -> Reached`` (``None``: not reached, or no reference).
        best: the configuration's best mean over its counted rounds.
    """

    group: str
    dataset: str
    strategy: str
    fmt: MetricFormat
    supervised: float | None
    reached: dict[float, Reached | None] = field(default_factory=dict)
    best: Reached | None = None


def meets(mean: float, reference: float, fraction: float, *, lower_is_better: bool) -> bool:
    """Whether ``mean`` reaches ``fraction`` of ``reference``.

    Example:
        >>> meets(0.855, 0.9, 0.95, lower_is_better=False), meets(0.85, 0.9, 0.95,
        ...                                                      lower_is_better=False)
        (True, False)
        >>> meets(2.1, 2.0, 0.95, lower_is_better=True)  # 2.1 <= 2.0 / 0.95 = 2.105
        True
    """
    if lower_is_better:
        return mean <= reference / fraction + _TOLERANCE
    return mean >= reference * fraction - _TOLERANCE


def labels_to_target(tables: Sequence[ResultTable], *, groups: dict[str, str] | None = None,
                     fractions: Sequence[float] = FRACTIONS) -> list[TargetRow]:
    """One :class:`TargetRow` per (entry, metric, strategy) of ``tables``.

    Args:
        tables: per-round tables (:func:`~medactive.bench.report.collect_tables`), any budgets.
        groups: ``entry -> data group`` (default: each entry its own group).
        fractions: fractions of the fully supervised mean to report.

    Returns:
        Rows ordered by group, metric, entry (first appearance) and strategy.
    """
    groups = groups or {}
    by_config: dict[tuple[str, str], list[ResultTable]] = {}
    for table in tables:
        by_config.setdefault((table.dataset, table.fmt.name), []).append(table)
    rows = []
    for (dataset, _metric), group_tables in by_config.items():
        group_tables = sorted(group_tables, key=lambda t: t.budget)
        fmt = group_tables[0].fmt
        reference = next((t.supervised.mean for t in group_tables if t.supervised is not None),
                         None)
        strategies = []
        for table in group_tables:
            strategies += [s for s in table.strategies if s not in strategies]
        for strategy in strategies:
            points = sorted(_points(group_tables, strategy), key=lambda p: (p.labels, p.budget))
            row = TargetRow(groups.get(dataset, dataset), dataset, strategy, fmt, reference)
            sign = 1.0 if fmt.lower_is_better else -1.0
            row.best = min(points, key=lambda p: (sign * p.mean, p.labels), default=None)
            for fraction in fractions:
                row.reached[fraction] = None if reference is None else next(
                    (p for p in points if meets(p.mean, reference, fraction,
                                                lower_is_better=fmt.lower_is_better)), None)
            rows.append(row)
    order = {name: i for i, name in enumerate(dict.fromkeys(t.dataset for t in tables))}
    rows.sort(key=lambda r: (r.group, r.fmt.name, order[r.dataset]))
    return rows


def _points(tables: Sequence[ResultTable], strategy: str) -> list[Reached]:
    """Every (budget, round) of ``strategy`` that all of its seeds have finished."""
    points = []
    for table in tables:
        if strategy not in table.strategies:
            continue
        n_seeds = len(table.per_seed.get(strategy, {})) or max(
            (c.n for (s, _), c in table.cells.items() if s == strategy), default=0)
        for rnd, labels in enumerate(table.labels):
            cell = table.cells.get((strategy, rnd))
            if cell is not None and cell.n >= n_seeds:
                points.append(Reached(int(labels), table.budget, rnd, cell.mean, cell.n))
    return points


def groups_of(specs: dict) -> dict[str, str]:
    """``entry -> data group``: the stem of each entry's data path (``default`` as it is)."""
    return {name: (Path(spec.data).stem if spec.data != "default" else "default")
            for name, spec in specs.items()}


# -- rendering ---------------------------------------------------------------------------------
def _percent(fraction: float) -> str:
    return f"{fraction * 100:g} %"


def targets_markdown(rows: Sequence[TargetRow], fractions: Sequence[float] = FRACTIONS,
                     *, heading: str = "###") -> str:
    """One Markdown table per (data group, metric): rows = entry and strategy."""
    out: list[str] = []
    sections: dict[tuple[str, str], list[TargetRow]] = {}
    for row in rows:
        sections.setdefault((row.group, row.fmt.name), []).append(row)
    for (group, _metric), section in sections.items():
        fmt = section[0].fmt
        out += [f"{heading} {group}: {fmt.label}", "",
                "| entry | strategy | fully supervised | "
                + " | ".join(f"{_percent(f)} of it" for f in fractions) + " | best (labels) |",
                "|---|---|---:|" + "---:|" * len(fractions) + "---:|"]
        for row in section:
            sup = "–" if row.supervised is None else fmt.show(row.supervised)
            cells = []
            for fraction in fractions:
                hit = row.reached.get(fraction)
                cells.append("no reference" if row.supervised is None else NOT_REACHED
                             if hit is None else f"{hit.labels} (b = {hit.budget})")
            best = "–" if row.best is None else f"{fmt.show(row.best.mean)} ({row.best.labels})"
            out.append(f"| {row.dataset} | {display_name(row.strategy)} | {sup} | "
                       + " | ".join(cells) + f" | {best} |")
        out.append("")
    return "\n".join(out)


def targets_csv(rows: Sequence[TargetRow], fractions: Sequence[float] = FRACTIONS) -> str:
    """One line per configuration; ``labels_<p>`` / ``budget_<p>`` empty when not reached;
    values in the metric's own units (accuracy as a fraction)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    names = [f"{round(f * 100):d}" for f in fractions]
    writer.writerow(["group", "dataset", "strategy", "metric", "supervised"]
                    + [f"{kind}_{p}" for p in names for kind in ("labels", "budget")]
                    + ["best", "best_labels"])
    for row in rows:
        line = [row.group, row.dataset, row.strategy, row.fmt.name,
                "" if row.supervised is None else f"{row.supervised:.6g}"]
        for fraction in fractions:
            hit = row.reached.get(fraction)
            line += ["", ""] if hit is None else [hit.labels, hit.budget]
        line += ["", ""] if row.best is None else [f"{row.best.mean:.6g}", row.best.labels]
        writer.writerow(line)
    return out.getvalue()


INTRO = ("The fewest labels at which each configuration (dataset entry x strategy) reaches "
         "95 % and 100 % of the fully supervised reference of the same entry (the same recipe: "
         "encoder, training mode, semi-supervised method, trained on every pool label): the "
         "mean over seeds of the test metric at each round of every budget b against the "
         "reference's mean over its seeds; \"not reached\" when no round does. Rounds that not "
         "every seed has finished are not counted. Lower-is-better metrics (ASD) reach a "
         "fraction f at reference / f.")
