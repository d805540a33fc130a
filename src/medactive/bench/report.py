"""Reports of a benchmark store: the survey's tables, learning curves and budget statistics.

``build_report(DIR)`` reads ``DIR/results.sqlite`` and writes ``DIR/report/``:

- ``tables/<dataset>_b<budget>_<metric>.{md,csv,tex}``: rows = strategies, columns = number of
  labels, cells = mean ± std over seeds (sample std, ``ddof=1``), the best and second-best
  method of each column marked (Markdown bold / italic, LaTeX ``\\textbf`` / ``\\underline``,
  CSV ``mark`` column), and the fully supervised reference as the last row (survey Tables 6-8).
- ``curves/<dataset>_b<budget>_<metric>.{png,svg}``: metric vs. labels, mean line and ±1 std
  band per strategy, the fully supervised level dashed (survey Fig. 6 style);
  ``curves/coreset_<dataset>_<metric>.{png,svg}``: Core-Set L2 vs cosine over every budget
  (survey Fig. 6) when both ran.
- ``tables/aubc_<dataset>_<metric>.{md,csv,tex}``: area under the budget curve (trapezoid over
  the number of labels, divided by the label range: the curve's average height) per strategy
  and budget, mean ± std over seeds.
- ``tables/penalty_<metric>.{md,csv}`` and ``curves/penalty_<metric>.{png,svg}``: the pairwise
  penalty matrix: entry ``(i, j)`` adds ``1 / T`` for every round (1..T) of every
  ``(dataset, budget)`` where ``i`` beats ``j`` by a two-sided paired t-test over seeds at 5 %
  (Ash et al. 2020; as used by Lüth et al. 2024). Its column means say how often a method is
  beaten (lower is better).
- ``tables/survey_<dataset>_b<budget>_<metric>.{md,csv}``: where the grid names a survey
  dataset, the survey's table in the same layout with ours, and the rank agreement (Spearman
  rho) of the strategies' AUBC.
- ``tables/timing.{md,csv}``: mean seconds per round and per query, by strategy.
- ``labels_to_target.{md,csv}``: per dataset, the fewest labels at which each configuration
  (dataset entry x strategy) reaches 95 % and 100 % of the fully supervised metric of the same
  recipe (:mod:`medactive.bench.label_efficiency`).
- ``report.md``: all of the above in one page.

References:
    Ash et al., "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds", ICLR
    2020 (pairwise penalty matrix). Lüth et al., "Navigating the Pitfalls of Active Learning
    Evaluation: A Systematic Framework for Meaningful Performance Assessment", NeurIPS 2023/24.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medactive.bench.config import DatasetSpec, GridConfig, describe_grid
from medactive.bench.names import DISPLAY_NAMES, display_name
from medactive.bench.store import ResultStore
from medactive.bench.survey_tables import SurveyTable, survey_table, survey_tables_for
from medactive.bench.tables import (  # noqa: F401 - report is where callers have found them
    BUDGET_MATCHED_NAME,
    CONVERGED_NAME,
    SUPERVISED_NAME,
    Cell,
    MetricFormat,
    ResultTable,
    _short,
    metric_format,
    rank_marks,
)
from medactive.errors import DataError

logger = logging.getLogger(__name__)

def collect_tables(store: ResultStore, grid: GridConfig | None = None) -> list[ResultTable]:
    """Build every (dataset, budget, metric) table from the rounds in ``store``."""
    rows = store.rounds()
    specs = {spec.name: spec for spec in (grid.datasets if grid else ())}
    order = list(grid.strategies) if grid else []
    data: dict[tuple[str, int], dict[str, dict[int, dict[int, dict]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict)))
    for row in rows:
        data[(row["dataset"], row["budget"])][row["strategy"]][row["seed"]][row["round"]] = row
    supervised, converged = defaultdict(list), defaultdict(list)
    for row in store.supervised():
        supervised[row["dataset"]].append(row["metrics"])
    for row in store.supervised(converged=True):
        converged[row["dataset"]].append(row["metrics"])
    tables = []
    for (dataset, budget), by_strategy in sorted(data.items()):
        spec = specs.get(dataset)
        strategies = _ordered(by_strategy, (spec.strategies if spec and spec.strategies
                                            else order))
        n_rounds = 1 + max(r for s in by_strategy.values() for seed in s.values() for r in seed)
        labels = []
        for rnd in range(n_rounds):
            counts = Counter(seed[rnd]["n_labeled"] for s in by_strategy.values()
                             for seed in s.values() if rnd in seed)
            labels.append(counts.most_common(1)[0][0] if counts else budget * (rnd + 1))
        for metric in _metrics(spec, by_strategy):
            fmt = metric_format(metric)
            cells, per_seed = {}, {}
            for strategy in strategies:
                per_seed[strategy] = {
                    seed: [_metric(rounds.get(r), metric) for r in range(n_rounds)]
                    for seed, rounds in sorted(by_strategy[strategy].items())}
                for rnd in range(n_rounds):
                    cell = Cell.of([v[rnd] for v in per_seed[strategy].values()])
                    if cell is not None:
                        cells[(strategy, rnd)] = cell
            if not cells:
                logger.warning("%s b=%d: no %s in the stored metrics", dataset, budget, metric)
                continue
            sup = Cell.of([m.get(metric) for m in supervised.get(dataset, [])])
            conv = Cell.of([m.get(metric) for m in converged.get(dataset, [])])
            tables.append(ResultTable(
                title=f"{dataset}, b = {budget}: {_split_word(metric)}{fmt.label}",
                dataset=dataset,
                budget=budget, fmt=fmt, strategies=strategies, labels=labels, cells=cells,
                per_seed=per_seed, supervised=sup, converged=conv,
                supervised_name=BUDGET_MATCHED_NAME))
    return tables


def _split_word(metric: str) -> str:
    return "test " if metric.startswith("test_") else "val " if metric.startswith("val_") else ""


def _ordered(found: dict[str, Any], preferred: Sequence[str]) -> list[str]:
    """The survey's order, then the grid's for other strategies, then by name (the stored grid
    is the last command's, which may have added a single strategy)."""
    survey = list(DISPLAY_NAMES)
    return sorted(found, key=lambda s: (
        survey.index(s) if s in survey else len(survey),
        preferred.index(s) if s in preferred else len(preferred), s))


def _metric(row: dict | None, metric: str) -> float | None:
    if row is None:
        return None
    value = row["metrics"].get(metric)
    return None if value is None else float(value)


def _metrics(spec: DatasetSpec | None, by_strategy: dict) -> list[str]:
    if spec is not None and spec.metrics:
        return list(spec.metrics)
    found = {k for s in by_strategy.values() for seed in s.values() for row in seed.values()
             for k in row["metrics"]}
    preferred = ["test_dice_mean", "test_asd_mean", "test_accuracy", "test_auc"]
    chosen = [m for m in preferred if m in found]
    return chosen or sorted(k for k in found if k.startswith("test_"))[:2]


def survey_as_table(table: SurveyTable, strategies: Sequence[str] | None = None) -> ResultTable:
    """A survey table in the layout of ours (values converted back to medactive's units)."""
    fmt = metric_format(table.metric)
    preferred = list(strategies or []) + [s for s in DISPLAY_NAMES if s not in (strategies or [])]
    strategies = _ordered(table.rows, preferred)
    cells = {}
    for strategy in strategies:
        cells[(strategy, 0)] = Cell(table.initial / table.scale, None, 5)
        for rnd, (mean, std) in enumerate(table.rows[strategy], start=1):
            cells[(strategy, rnd)] = Cell(mean / table.scale, std / table.scale, 5)
    sup = None if table.supervised is None else Cell(table.supervised / table.scale, None, 1)
    return ResultTable(title=f"Survey {table.caption}", dataset=table.dataset,
                       budget=table.budget, fmt=fmt, strategies=strategies,
                       labels=list(table.labels), cells=cells, supervised=sup, notes=table.notes)


# -- rendering tables --------------------------------------------------------------------------
def _cell_text(cell: Cell | None, fmt: MetricFormat, n_max: int, *, latex: bool = False) -> str:
    if cell is None:
        return "–" if not latex else "--"
    text = fmt.show(cell.mean)
    if cell.std is not None:
        std = f"{cell.std * fmt.scale:.{fmt.decimals}f}"
        text = f"{text} \\pm {std}" if latex else f"{text} ± {std}"
    if cell.n < n_max:
        text += f" (n={cell.n})"
    return f"${text}$" if latex and cell.std is not None else text


def _n_max(table: ResultTable) -> int:
    return max((c.n for c in table.cells.values()), default=0)


def table_markdown(table: ResultTable) -> str:
    """The table in Markdown: **best**, _second-best_."""
    n_max = _n_max(table)
    head = [table.fmt.label] + [str(n) for n in table.labels]
    lines = [f"**{table.title}**", "", "| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + [":---:"] * len(table.labels)) + "|"]
    marks = [table.marks(r) for r in range(len(table.labels))]
    for strategy in table.strategies:
        cells = []
        for rnd in range(len(table.labels)):
            text = _cell_text(table.cells.get((strategy, rnd)), table.fmt, n_max)
            mark = marks[rnd].get(strategy)
            cells.append(f"**{text}**" if mark == "best" else f"_{text}_" if mark == "second"
                         else text)
        lines.append("| " + " | ".join([display_name(strategy)] + cells) + " |")
    for name, _, cell in table.reference_rows():
        text = _cell_text(cell, table.fmt, 0)
        lines.append("| " + " | ".join([name, text] + [""] * (len(table.labels) - 1)) + " |")
    lines += ["", "Mean ± std over seeds; **bold**: best, _italic_: second best per column"
              + (" (lower is better)" if table.fmt.lower_is_better else "") + "."]
    if table.notes:
        lines.append(f"Note: {table.notes}")
    return "\n".join(lines) + "\n"


def table_latex(table: ResultTable) -> str:
    """The table in LaTeX (booktabs): bold best, ``\\underline`` second best."""
    n_max = _n_max(table)
    n_cols = len(table.labels)
    label = table.fmt.label.replace("%", "\\%")
    lines = ["\\begin{table}[t]", "\\centering",
             f"\\caption{{{_latex_escape(table.title)}}}",
             f"\\begin{{tabular}}{{l{'c' * n_cols}}}", "\\toprule",
             " & ".join([label] + [str(n) for n in table.labels]) + " \\\\", "\\midrule"]
    marks = [table.marks(r) for r in range(n_cols)]
    for strategy in table.strategies:
        cells = []
        for rnd in range(n_cols):
            text = _cell_text(table.cells.get((strategy, rnd)), table.fmt, n_max, latex=True)
            mark = marks[rnd].get(strategy)
            if mark == "best":  # \boldmath also bolds the math-mode "mean \pm std"
                text = f"{{\\boldmath {text}}}" if text.startswith("$") else \
                    f"\\textbf{{{text}}}"
            elif mark == "second":
                text = f"\\underline{{{text}}}"
            cells.append(text)
        lines.append(" & ".join([_latex_escape(display_name(strategy))] + cells) + " \\\\")
    if table.reference_rows():
        lines.append("\\midrule")
    for name, _, cell in table.reference_rows():
        text = _cell_text(cell, table.fmt, 0, latex=True)
        lines.append(f"{_latex_escape(name)} & \\multicolumn{{{n_cols}}}{{c}}{{{text}}} \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def _latex_escape(text: str) -> str:
    for char, repl in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"),
                       ("#", "\\#"), ("$", "\\$")):
        text = text.replace(char, repl)
    return text


def table_csv(table: ResultTable) -> str:
    """Long format: one line per (strategy, round) with mean, std, n and mark; values in the
    metric's own units (accuracy as a fraction)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dataset", "budget", "metric", "strategy", "round", "n_labeled", "mean",
                     "std", "n_seeds", "mark"])
    for rnd, n_labeled in enumerate(table.labels):
        marks = table.marks(rnd)
        for strategy in table.strategies:
            cell = table.cells.get((strategy, rnd))
            if cell is None:
                continue
            writer.writerow([table.dataset, table.budget, table.fmt.name, strategy, rnd,
                             n_labeled, _num(cell.mean), _num(cell.std), cell.n,
                             marks.get(strategy, "")])
    for _, csv_name, cell in table.reference_rows():
        writer.writerow([table.dataset, table.budget, table.fmt.name, csv_name, "",
                         "", _num(cell.mean), _num(cell.std), cell.n, ""])
    return out.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


# -- area under the budget curve ---------------------------------------------------------------
def aubc(labels: Sequence[int], values: Sequence[float]) -> float:
    """Area under the budget curve divided by the label range: the curve's mean height.

    Args:
        labels: ``[T + 1]`` number of labels of each round (increasing).
        values: ``[T + 1]`` the metric at those labels.

    Example:
        >>> aubc([10, 20, 30], [0.5, 0.7, 0.7])
        0.65
    """
    x = np.asarray(labels, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if x.size == 1:
        return float(y[0])
    area = float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
    return round(area / float(x[-1] - x[0]), 12)


def aubc_cells(table: ResultTable) -> dict[str, Cell]:
    """``strategy -> Cell`` of the per-seed AUBC (seeds with every round only)."""
    out = {}
    for strategy in table.strategies:
        values = [aubc(table.labels, v) for v in table.per_seed.get(strategy, {}).values()
                  if len(v) == len(table.labels) and all(x is not None for x in v)]
        cell = Cell.of(values)
        if cell is not None:
            out[strategy] = cell
    return out


def aubc_table(tables: Sequence[ResultTable]) -> ResultTable:
    """AUBC of one dataset and metric: rows = strategies, columns = budgets."""
    first = tables[0]
    strategies = _ordered({s: 1 for t in tables for s in t.strategies}, first.strategies)
    cells = {}
    for col, table in enumerate(tables):
        for strategy, cell in aubc_cells(table).items():
            cells[(strategy, col)] = cell
    return ResultTable(title=f"{first.dataset}: area under the budget curve, "
                       f"{_split_word(first.fmt.name)}{first.fmt.label}", dataset=first.dataset, budget=0, fmt=first.fmt,
                       strategies=strategies, labels=[t.budget for t in tables], cells=cells)


def aubc_csv(table: ResultTable) -> str:
    """The AUBC table (from :func:`aubc_table`) in long format: one line per (strategy,
    budget) with mean, std, n and mark, in the metric's own units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dataset", "metric", "strategy", "budget", "mean", "std", "n_seeds",
                     "mark"])
    for col, budget in enumerate(table.labels):
        marks = table.marks(col)
        for strategy in table.strategies:
            cell = table.cells.get((strategy, col))
            if cell is not None:
                writer.writerow([table.dataset, table.fmt.name, strategy, budget,
                                 _num(cell.mean), _num(cell.std), cell.n,
                                 marks.get(strategy, "")])
    return out.getvalue()


def _aubc_markdown(table: ResultTable) -> str:
    text = table_markdown(table)
    return text.replace(f"| {table.fmt.label} |", f"| {table.fmt.label} \\ b |", 1)


# -- pairwise penalty matrix -------------------------------------------------------------------
def penalty_matrix(tables: Sequence[ResultTable], *, alpha: float = 0.05,
                   ) -> tuple[list[str], np.ndarray, int]:
    """Pairwise penalty matrix over environments (tables) of one metric.

    Entry ``(i, j)``: sum over tables and rounds ``r = 1..T`` of ``1 / T`` when strategy ``i``
    beats ``j`` in round ``r``: a paired two-sided t-test over the seeds both ran is significant
    at ``alpha`` and ``i``'s mean is better. Round 0 (the shared initial set) is left out.

    Returns:
        ``(strategies, matrix [k, k], number of environments with >= 2 paired seeds)``.

    References:
        Ash et al., ICLR 2020, §5 ("pairwise comparisons"); Lüth et al. 2024.
    """
    from scipy import stats

    strategies = _ordered({s: 1 for t in tables for s in t.strategies},
                          tables[0].strategies if tables else [])
    index = {s: i for i, s in enumerate(strategies)}
    matrix = np.zeros((len(strategies), len(strategies)))
    n_env = 0
    for table in tables:
        n_rounds = len(table.labels) - 1
        if n_rounds < 1:
            continue
        sign = -1.0 if table.fmt.lower_is_better else 1.0
        used = False
        for a in table.strategies:
            for b in table.strategies:
                if a == b:
                    continue
                seeds = sorted(set(table.per_seed.get(a, {})) & set(table.per_seed.get(b, {})))
                for rnd in range(1, n_rounds + 1):
                    diffs = [table.per_seed[a][s][rnd] - table.per_seed[b][s][rnd] for s in seeds
                             if rnd < len(table.per_seed[a][s])
                             and table.per_seed[a][s][rnd] is not None
                             and table.per_seed[b][s][rnd] is not None]
                    if len(diffs) < 2:
                        continue
                    used = True
                    d = sign * np.asarray(diffs)
                    mean, std = float(d.mean()), float(d.std(ddof=1))
                    if std == 0.0:
                        significant = mean > 0
                    else:
                        t = mean / (std / math.sqrt(d.size))
                        significant = t > stats.t.ppf(1 - alpha / 2, d.size - 1)
                    if significant:
                        matrix[index[a], index[b]] += 1.0 / n_rounds
        n_env += int(used)
    return strategies, matrix, n_env


def _penalty_markdown(metric: str, strategies: list[str], matrix: np.ndarray, n_env: int) -> str:
    names = [display_name(s) for s in strategies]
    lines = [(f"**Pairwise penalty matrix, {metric_format(metric).label}** ({n_env} "
              "dataset x budget environments; entry (row i, column j): how often i beat j "
              "significantly, summed over environments, each round counting 1/T)"), "",
             "| beats → | " + " | ".join(names) + " |",
             "|---|" + "|".join([":---:"] * len(names)) + "|"]
    for i, name in enumerate(names):
        lines.append(f"| {name} | " + " | ".join(
            "–" if i == j else f"{matrix[i, j]:.2f}" for j in range(len(names))) + " |")
    col_mean = matrix.sum(axis=0) / max(len(names) - 1, 1)
    lines.append("| **mean loss** | " + " | ".join(f"**{v:.2f}**" for v in col_mean) + " |")
    lines += ["", ("Mean loss: a column's average, how often that method is beaten (lower is "
                   "better).")]
    return "\n".join(lines) + "\n"


def _penalty_csv(strategies: list[str], matrix: np.ndarray) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["winner \\ loser"] + strategies)
    for i, s in enumerate(strategies):
        writer.writerow([s] + [f"{v:.6g}" for v in matrix[i]])
    return out.getvalue()


# -- plots -------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "medactive"  # reproducible SVG ids
    return plt


def _save(fig, path_stem: Path) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = path_stem.with_suffix(f".{ext}")
        fig.savefig(path, dpi=150, bbox_inches="tight", metadata={"Date": None} if ext == "svg"
                    else {"Software": None})
        paths.append(path)
    return paths


def _draw_curves(ax, table: ResultTable, strategies: Sequence[str], colors: dict[str, Any]):
    x = np.asarray(table.labels, dtype=np.float64)
    scale = table.fmt.scale
    for strategy in strategies:
        pts = [(x[r], table.cells[(strategy, r)]) for r in range(len(x))
               if (strategy, r) in table.cells]
        if not pts:
            continue
        xs = np.array([p[0] for p in pts])
        mean = np.array([p[1].mean for p in pts]) * scale
        std = np.array([p[1].std or 0.0 for p in pts]) * scale
        ax.plot(xs, mean, marker="o", markersize=3, linewidth=1.4, color=colors[strategy],
                label=display_name(strategy))
        ax.fill_between(xs, mean - std, mean + std, color=colors[strategy], alpha=0.15,
                        linewidth=0)
    for (name, _, cell), style in zip(table.reference_rows(), ("--", ":")):
        ax.axhline(cell.mean * scale, color="0.4", linestyle=style, linewidth=1, label=name)
    ax.set_xlabel("number of labels")
    ax.set_ylabel(f"{_split_word(table.fmt.name)}{table.fmt.label}")
    ax.set_xticks(x)
    ax.grid(alpha=0.3)


def _colors(strategies: Sequence[str]) -> dict[str, Any]:
    plt = _pyplot()
    cmap = plt.get_cmap("tab10" if len(strategies) <= 10 else "tab20")
    return {s: cmap(i % cmap.N) for i, s in enumerate(strategies)}


def plot_curves(table: ResultTable, path_stem: Path) -> list[Path]:
    """Learning curves of one table: mean line and ±1 std band per strategy (PNG and SVG)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    _draw_curves(ax, table, table.strategies, _colors(table.strategies))
    ax.set_title(f"{table.dataset}, b = {table.budget}")
    ax.legend(fontsize=7, ncol=2, loc="best")
    try:
        return _save(fig, path_stem)
    finally:
        plt.close(fig)


def plot_coreset(tables: Sequence[ResultTable], path_stem: Path) -> list[Path]:
    """Core-Set-L2 vs Core-Set-Cosine, one panel per budget (survey Fig. 6)."""
    plt = _pyplot()
    pair = ["coreset_l2", "coreset_cosine"]
    fig, axes = plt.subplots(1, len(tables), figsize=(4.8 * len(tables), 3.8), squeeze=False)
    colors = {"coreset_l2": "tab:blue", "coreset_cosine": "tab:red"}
    for ax, table in zip(axes[0], tables):
        _draw_curves(ax, table, pair, colors)
        ax.set_title(f"{table.dataset}, b = {table.budget}")
        ax.legend(fontsize=7)
    try:
        return _save(fig, path_stem)
    finally:
        plt.close(fig)


def plot_penalty(strategies: list[str], matrix: np.ndarray, title: str,
                 path_stem: Path) -> list[Path]:
    plt = _pyplot()
    k = len(strategies)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * k, 0.8 + 0.7 * k))
    shown = matrix.astype(np.float64, copy=True)
    np.fill_diagonal(shown, np.nan)
    im = ax.imshow(shown, cmap="Reds", vmin=0.0, vmax=max(float(matrix.max()), 1.0))
    names = [display_name(s) for s in strategies]
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    for i in range(k):
        for j in range(k):
            if i != j:
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xlabel("loser")
    ax.set_ylabel("winner")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    try:
        return _save(fig, path_stem)
    finally:
        plt.close(fig)


# -- survey comparison -------------------------------------------------------------------------
def match_survey(spec: DatasetSpec | None, budget: int, metric: str) -> SurveyTable | None:
    """The survey table to show beside ours: the same budget, else the survey budget nearest
    to ``budget`` on a log scale (our b = 500 beside the survey's b = 1000, b = 200 beside its
    b = 50), whatever other budgets the grid ran (a grid narrowed with ``--budgets`` matches as
    the whole grid would)."""
    if spec is None or spec.survey is None:
        return None
    exact = survey_table(spec.survey, budget, metric)
    if exact is not None:
        return exact
    candidates = list(survey_tables_for(spec.survey, metric))
    if not candidates or budget < 1:
        return None
    return min(candidates, key=lambda t: (abs(math.log(t.budget / budget)), t.budget))


def rank_agreement(ours: ResultTable, survey: ResultTable) -> tuple[float, int] | None:
    """Spearman rho between our and the survey's strategy ranking by AUBC, and the number of
    strategies both ran (``None`` below 3).

    Both sides use the AUBC of the mean curve (the survey publishes only means); with every
    seed complete this equals the mean of the per-seed AUBCs, the trapezoid being linear.
    """
    from scipy import stats

    ours_aubc, theirs = _mean_curve_aubc(ours), _mean_curve_aubc(survey)
    common = [s for s in ours_aubc if s in theirs]
    if len(common) < 3:
        return None
    rho = stats.spearmanr([ours_aubc[s] for s in common], [theirs[s] for s in common])[0]
    return float(rho), len(common)


def _mean_curve_aubc(table: ResultTable) -> dict[str, float]:
    n = len(table.labels)
    return {s: aubc(table.labels, [table.cells[(s, r)].mean for r in range(n)])
            for s in table.strategies if all((s, r) in table.cells for r in range(n))}


def survey_rank_rows(tables: Sequence[ResultTable], specs: dict[str, DatasetSpec]
                     ) -> list[dict[str, Any]]:
    """Every rank correlation of ours with the survey: one row per table that has a survey
    table beside it (``rho`` empty where fewer than 3 strategies are shared)."""
    rows = []
    for table in tables:
        match = match_survey(specs.get(table.dataset), table.budget, table.fmt.name)
        if match is None:
            continue
        agreement = rank_agreement(table, survey_as_table(match, table.strategies))
        rows.append({"dataset": table.dataset, "budget": table.budget,
                     "metric": table.fmt.name, "survey": match.key,
                     "survey_budget": match.budget,
                     "rho": None if agreement is None else agreement[0],
                     "n_strategies": 0 if agreement is None else agreement[1]})
    return rows


def survey_ranks_markdown(rows: Sequence[dict[str, Any]]) -> str:
    lines = ["| ours | metric | survey table | Spearman ρ (AUBC) | strategies |",
             "|---|---|---|---:|---:|"]
    for r in rows:
        rho = "–" if r["rho"] is None else f"{r['rho']:+.2f}"
        lines.append(f"| {r['dataset']}, b = {r['budget']} | {_short(r['metric'])} | "
                     f"{r['survey']} (b = {r['survey_budget']}) | {rho} | {r['n_strategies']} |")
    return "\n".join(lines) + "\n"


def read_table_csv(text: str, *, title: str = "") -> ResultTable:
    """A table back from :func:`table_csv` (means, stds, seed counts and references; no
    per-seed values, so no AUBC spread or penalty matrix)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        raise DataError("empty result table CSV")
    fmt = metric_format(rows[0]["metric"])
    strategies, labels, cells, refs = [], {}, {}, {}

    def cell(r):
        return Cell(float(r["mean"]), float(r["std"]) if r["std"] else None, int(r["n_seeds"]))
    for r in rows:
        if r["round"] == "":
            refs[r["strategy"]] = cell(r)
            continue
        if r["strategy"] not in strategies:
            strategies.append(r["strategy"])
        labels[int(r["round"])] = int(r["n_labeled"])
        cells[(r["strategy"], int(r["round"]))] = cell(r)
    return ResultTable(title=title, dataset=rows[0]["dataset"], budget=int(rows[0]["budget"]),
                       fmt=fmt, strategies=strategies,
                       labels=[labels[k] for k in sorted(labels)], cells=cells,
                       supervised=refs.get("fully_supervised"),
                       converged=refs.get("fully_supervised_converged"),
                       supervised_name=BUDGET_MATCHED_NAME)


def comparison_csv(ours: ResultTable, survey: ResultTable) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["strategy", "round", "ours_n_labeled", "ours_mean", "ours_std",
                     "survey_n_labeled", "survey_mean", "survey_std"])
    for strategy in _ordered({s: 1 for s in ours.strategies + survey.strategies},
                             ours.strategies):
        for rnd in range(max(len(ours.labels), len(survey.labels))):
            a = ours.cells.get((strategy, rnd))
            b = survey.cells.get((strategy, rnd))
            if a is None and b is None:
                continue
            writer.writerow([
                strategy, rnd, ours.labels[rnd] if rnd < len(ours.labels) else "",
                _num(a.mean if a else None), _num(a.std if a else None),
                survey.labels[rnd] if rnd < len(survey.labels) else "",
                _num(b.mean if b else None), _num(b.std if b else None)])
    return out.getvalue()


# -- timing ------------------------------------------------------------------------------------
def timing_rows(store: ResultStore) -> list[dict[str, Any]]:
    """Mean wall seconds per round and per query by (dataset, budget, strategy)."""
    acc: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
    for row in store.rounds():
        acc[(row["dataset"], row["budget"], row["strategy"])].append(
            (row["seconds"], row["query_seconds"]))
    out = []
    for (dataset, budget, strategy), values in sorted(acc.items()):
        arr = np.asarray(values)
        queried = arr[arr[:, 1] > 0, 1]
        out.append({"dataset": dataset, "budget": budget, "strategy": strategy,
                    "rounds": len(values), "round_seconds": float(arr[:, 0].mean()),
                    "query_seconds": float(queried.mean()) if queried.size else 0.0,
                    "total_seconds": float(arr[:, 0].sum())})
    return out


# -- the report --------------------------------------------------------------------------------
@dataclass
class Report:
    """What :func:`build_report` wrote."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    tables: list[ResultTable] = field(default_factory=list)


def latest_grid(store: ResultStore) -> GridConfig | None:
    """The most recent grid run into ``store``, merged with the datasets of earlier ones."""
    grids = store.grids()
    if not grids:
        return None
    latest = grids[-1]
    names = {d.name for d in latest.datasets}
    extra = tuple(d for g in grids[:-1] for d in g.datasets if d.name not in names)
    strategies = list(latest.strategies)
    for g in grids[:-1]:
        strategies += [s for s in g.strategies if s not in strategies]
    if not extra and strategies == list(latest.strategies):
        return latest
    unique = {}
    for spec in latest.datasets + extra:
        unique.setdefault(spec.name, spec)
    return latest.with_overrides(datasets=tuple(unique.values()), strategies=tuple(strategies))


def build_report(directory: str | Path, *, out_dir: str | Path | None = None,
                 plots: bool = True) -> Report:
    """Write tables, curves and statistics of the store in ``directory`` (see module doc).

    Raises:
        DataError: no results database, or no finished rounds in it.
    """
    directory = Path(directory)
    store = ResultStore(directory, create=False)
    try:
        grid = latest_grid(store)
        tables = collect_tables(store, grid)
        references = reference_rows(store)
        if not tables and not references:
            raise DataError(f"{store.path}: no finished rounds yet; nothing to report")
        out = Path(out_dir) if out_dir is not None else directory / "report"
        report = Report(out_dir=out, tables=tables)
        (out / "tables").mkdir(parents=True, exist_ok=True)
        if plots:
            (out / "curves").mkdir(parents=True, exist_ok=True)
        specs = {d.name: d for d in (grid.datasets if grid else ())}
        page = [f"# Benchmark report: {grid.name if grid else directory.name}", ""]
        commands = store.commands()
        if commands:
            page += ["Produced by:", ""] + [f"    {c}" for c in commands] + [""]
        if grid is not None:
            page += ["```text", (grid.description + "\n\n" if grid.description else "")
                     + describe_grid(grid), "```", ""]
        page += _section_references(report, references)
        if tables:
            page += _section_labels_to_target(report, tables, specs)
            page += _section_tables(report, tables, specs, plots)
            page += _section_aubc(report, tables)
            page += _section_penalty(report, tables, plots)
            page += _section_survey(report, tables, specs)
            page += _section_timing(report, store)
        failures = store.failures()
        if failures:
            page += ["## Failures", ""] + [f"- `{f['unit']}`: "
                                           f"{f['message'].strip().splitlines()[-1]}"
                                           for f in failures] + [""]
        _write(report, out / "report.md", "\n".join(page))
        return report
    finally:
        store.close()


def reference_rows(store: ResultStore) -> list[dict[str, Any]]:
    """One row per (dataset, reference kind): seeds, labels, mean of every test metric and of
    the seconds; budget-matched (the rounds' recipe) before converged."""
    out = []
    for converged, name in ((False, BUDGET_MATCHED_NAME), (True, CONVERGED_NAME)):
        by_dataset = defaultdict(list)
        for row in store.supervised(converged=converged):
            by_dataset[row["dataset"]].append(row)
        for dataset, rows in sorted(by_dataset.items()):
            metrics = sorted({k for r in rows for k in r["metrics"] if k.startswith("test_")})
            kept = [_kept_text(r["metrics"]) for r in rows]
            out.append({"dataset": dataset, "reference": name, "seeds": len(rows),
                        "kept": "; ".join(k for k in kept if k),
                        "n_labeled": rows[0]["n_labeled"],
                        "seconds": float(np.mean([r["seconds"] for r in rows])),
                        "metrics": {m: Cell.of([r["metrics"].get(m) for r in rows])
                                    for m in metrics}})
    return out


def _kept_text(metrics: dict[str, float]) -> str:
    """``"epoch 31 of 40"`` (or steps) from a reference's training summary, if stored."""
    for best, run, unit in (("best_epoch", "epochs_run", "epoch"),
                            ("best_iteration", "iterations_run", "step")):
        if best in metrics and run in metrics:
            return f"{unit} {metrics[best]:.0f} of {metrics[run]:.0f}"
    return ""


def _section_references(report: Report, references: list[dict[str, Any]]):
    if not references:
        return []
    lines = ["## Fully supervised references", "",
             ("Every pool label. *Rounds' recipe*: the training of one AL round (same epochs or "
              "iterations), so budget-matched to a round; *converged*: the grid's "
              "`converged_reference`, trained until the validation metric stops improving."),
             "", "| dataset | reference | seeds | labels | kept model | test metrics | seconds |",
             "|---|---|---:|---:|---|---|---:|"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dataset", "reference", "seeds", "n_labeled", "metric", "mean", "std",
                     "seconds"])
    for row in references:
        shown = []
        for metric, cell in row["metrics"].items():
            if cell is None:
                continue
            fmt = metric_format(metric)
            shown.append(f"{_short(metric)} {_cell_text(cell, fmt, 0)}")
            writer.writerow([row["dataset"], row["reference"], row["seeds"], row["n_labeled"],
                             metric, _num(cell.mean), _num(cell.std), f"{row['seconds']:.1f}"])
        lines.append(f"| {row['dataset']} | {row['reference']} | {row['seeds']} | "
                     f"{row['n_labeled']} | {row['kept'] or '–'} | {', '.join(shown)} | "
                     f"{row['seconds']:.0f} |")
    text = "\n".join(lines) + "\n"
    _write_table(report, "references", text, out.getvalue())
    return [text]


def _write_table(report: Report, stem: str, markdown: str, csv_text: str) -> None:
    """``tables/<stem>.md`` and ``tables/<stem>.csv``."""
    _write(report, report.out_dir / "tables" / f"{stem}.md", markdown)
    _write(report, report.out_dir / "tables" / f"{stem}.csv", csv_text)


def _write(report: Report, path: Path, text: str) -> None:
    path.write_text(text)
    report.files.append(path)


def _section_labels_to_target(report: Report, tables: list[ResultTable], specs: dict):
    from medactive.bench import label_efficiency as eff

    rows = eff.labels_to_target(tables, groups=eff.groups_of(specs))
    if not rows:
        return []
    text = eff.targets_markdown(rows)
    _write(report, report.out_dir / "labels_to_target.md",
           "# Labels to reach full supervision\n\n" + eff.INTRO + "\n\n" + text)
    _write(report, report.out_dir / "labels_to_target.csv", eff.targets_csv(rows))
    return ["## Labels to reach full supervision", "", eff.INTRO,
            "(Also in `labels_to_target.md` and `labels_to_target.csv`.)", "", text]


def _section_tables(report: Report, tables: list[ResultTable], specs: dict, plots: bool):
    page = ["## Results per round", ""]
    for table in tables:
        stem = report.out_dir / "tables" / table.stem
        _write(report, stem.with_suffix(".md"), table_markdown(table))
        _write(report, stem.with_suffix(".csv"), table_csv(table))
        _write(report, stem.with_suffix(".tex"), table_latex(table))
        page += [f"### {table.dataset}, b = {table.budget}, {table.fmt.label}", "",
                 table_markdown(table)]
        if plots:
            report.files += plot_curves(table, report.out_dir / "curves" / table.stem)
            page += [f"![{table.stem}](curves/{table.stem}.png)", ""]
    if plots:
        by_ds_metric = defaultdict(list)
        for table in tables:
            by_ds_metric[(table.dataset, table.fmt.name)].append(table)
        for (dataset, metric), group in sorted(by_ds_metric.items()):
            if all(s in group[0].strategies for s in ("coreset_l2", "coreset_cosine")):
                stem = f"coreset_{dataset}_{_short(metric)}"
                report.files += plot_coreset(group, report.out_dir / "curves" / stem)
                page += [f"Core-Set L2 vs cosine ({dataset}, survey Fig. 6 style):", "",
                         f"![{stem}](curves/{stem}.png)", ""]
    return page


def _section_aubc(report: Report, tables: list[ResultTable]):
    page = ["## Area under the budget curve", "",
            ("Trapezoid area of metric vs. labels divided by the label range (the curve's mean "
             "height), per seed; mean ± std over seeds."), ""]
    groups = defaultdict(list)
    for table in tables:
        groups[(table.dataset, table.fmt.name)].append(table)
    for (dataset, metric), group in sorted(groups.items()):
        table = aubc_table(sorted(group, key=lambda t: t.budget))
        stem = report.out_dir / "tables" / f"aubc_{dataset}_{_short(metric)}"
        text = _aubc_markdown(table)
        _write(report, stem.with_suffix(".md"), text)
        _write(report, stem.with_suffix(".csv"), aubc_csv(table))
        _write(report, stem.with_suffix(".tex"), table_latex(table))
        page += [text]
    return page


def _section_penalty(report: Report, tables: list[ResultTable], plots: bool):
    page = ["## Pairwise penalty matrix", ""]
    by_metric = defaultdict(list)
    for table in tables:
        by_metric[table.fmt.name].append(table)
    for metric, group in sorted(by_metric.items()):
        strategies, matrix, n_env = penalty_matrix(group)
        if n_env == 0:
            page += [f"{metric}: fewer than 2 paired seeds; no penalty matrix.", ""]
            continue
        stem = f"penalty_{_short(metric)}"
        text = _penalty_markdown(metric, strategies, matrix, n_env)
        _write(report, report.out_dir / "tables" / f"{stem}.md", text)
        _write(report, report.out_dir / "tables" / f"{stem}.csv",
               _penalty_csv(strategies, matrix))
        page += [text]
        if plots:
            report.files += plot_penalty(strategies, matrix,
                                         f"pairwise penalties, {metric_format(metric).label}",
                                         report.out_dir / "curves" / stem)
            page += [f"![{stem}](curves/{stem}.png)", ""]
    return page


def _section_survey(report: Report, tables: list[ResultTable], specs: dict):
    page = []
    for table in tables:
        spec = specs.get(table.dataset)
        match = match_survey(spec, table.budget, table.fmt.name)
        if match is None:
            continue
        survey = survey_as_table(match, table.strategies)
        same = table.dataset.startswith(match.dataset)
        stem = report.out_dir / "tables" / f"survey_{table.stem}"
        agreement = rank_agreement(table, survey)
        lines = [f"### {table.dataset}, b = {table.budget} beside survey {match.key}", ""]
        if not same:
            lines += [(f"(A different dataset: {table.dataset} is run as the CPU analogue of "
                       f"the survey's {match.dataset}; compare the shape, not the numbers.)"), ""]
        lines += [table_markdown(table), table_markdown(survey)]
        if agreement is not None:
            lines += [("Rank agreement of the strategies' AUBC with the survey: Spearman "
                       f"rho = {agreement[0]:.2f} over {agreement[1]} strategies."), ""]
        text = "\n".join(lines)
        _write(report, stem.with_suffix(".md"), text)
        _write(report, stem.with_suffix(".csv"), comparison_csv(table, survey))
        page += [text]
    ranks = survey_rank_rows(tables, specs)
    if ranks:
        text = survey_ranks_markdown(ranks)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(ranks[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "rho": "" if r["rho"] is None else f"{r['rho']:.4f}"}
                         for r in ranks)
        _write_table(report, "survey_ranks", text, out.getvalue())
        intro = ("Every rank correlation of this report with the survey (the strategies' area "
                 "under the budget curve, ours against the table beside it):")
        page = [intro, "", text, *page]
    if page:
        page = ["## Beside the survey (Wang et al. 2024, Tables 6-8)", ""] + page
    return page


def _section_timing(report: Report, store: ResultStore):
    rows = timing_rows(store)
    if not rows:
        return []
    lines = ["| dataset | b | strategy | rounds | s / round | s / query | total s |",
             "|---|---:|---|---:|---:|---:|---:|"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(rows[0]))
    for row in rows:
        writer.writerow([row[k] if not isinstance(row[k], float) else f"{row[k]:.3f}"
                         for k in row])
        lines.append(f"| {row['dataset']} | {row['budget']} | {display_name(row['strategy'])} "
                     f"| {row['rounds']} | {row['round_seconds']:.1f} | "
                     f"{row['query_seconds']:.2f} | {row['total_seconds']:.0f} |")
    text = "\n".join(lines) + "\n"
    _write_table(report, "timing", text, out.getvalue())
    return ["## Wall time", "", text]
