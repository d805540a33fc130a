"""Measured annotation cost (survey §5.2.3): what each label cost the expert, and what the model
gained per expert hour.

What the page measures and sends with each label (``static/timing.js``, one clock per item):

- ``active_ms``: the time the item was on screen until it was saved, counting only *active*
  time: not while the page is hidden (Page Visibility API: another tab, a minimised window, a
  locked screen) and not while the expert is idle. **Idle rule**: after an input (a key, a
  pointer move or click, the wheel, touch; showing the item and the page becoming visible
  again count as inputs) at most :data:`IDLE_SECONDS` count; a longer pause adds just those
  seconds, the rest of it is idle. Time spent on one item over several visits in a session
  (going back and forth) adds up; a skipped item's time is not stored.
- ``edits`` (masks): one per brush or eraser stroke (pointer down to up, a single click
  included) and one per **Clear**; pre-filling the model's proposal is no edit.
- ``pixels`` (masks): the non-background pixels of the mask as saved (a patch project: of the
  patch), counted by the server from the stored mask, so an uploaded file gets it too.

The server checks the values (:func:`parse_cost`: finite, non-negative, at most
:data:`MAX_ACTIVE_MS` and :data:`MAX_EDITS`, whole edits; a 422 naming the field otherwise) and
stores them in the label row (``labels.active_ms``, ``edits``, ``pixels``; NULL = not measured:
imports, initial labels, older rows, API calls without them).

:func:`cost_report` gives, per annotator, labels per active hour and the provenance of their
labels (accepted / edited / scratch), and the learning curve: each round's model's validation
metric against the labels it was trained on and against the expert hours those labels took
(cumulative). :func:`write_report` writes it as PNG + CSV (``project report DIR``).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medactive.project.store import PROVENANCES, ProjectStore

IDLE_SECONDS = 60
MAX_ACTIVE_MS = 24 * 3600 * 1000  # a day on one item: anything longer is a broken clock
MAX_EDITS = 1_000_000

_METRIC_NAMES = {"auc": "AUC", "accuracy": "accuracy", "dice_mean": "mean Dice"}


@dataclass(frozen=True)
class LabelCost:
    """What one label cost as the page sent it: ``active_ms``, ``edits`` (None: not
    measured)."""

    active_ms: int | None = None
    edits: int | None = None


class CostError(ValueError):
    """A timing value the page sent is not acceptable (the message names the field)."""


def _number(name: str, raw: Any, *, maximum: int, whole: bool) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise CostError(f"{name} must be a number, got {type(raw).__name__}")
    try:
        value = float(raw)
    except ValueError:
        raise CostError(f"{name} must be a number, got {str(raw)[:20]!r}") from None
    if not math.isfinite(value):
        raise CostError(f"{name} must be a finite number, got {value}")
    if value < 0:
        raise CostError(f"{name} must be >= 0, got {value:g}")
    if value > maximum:
        raise CostError(f"{name} must be <= {maximum}, got {value:g}")
    if whole and value != int(value):
        raise CostError(f"{name} must be a whole number, got {value:g}")
    return round(value)


def parse_cost(active_ms: Any, edits: Any = None, *, mask: bool) -> LabelCost:
    """Check the cost a page sent with a label (JSON numbers, or query-string text).

    Args:
        active_ms: milliseconds of active time (rounded to whole ms), or None (not measured).
        edits: strokes and clears of a mask, or None; refused for a class label (``mask``
            False).
        mask: whether the label is a mask.

    Raises:
        CostError: a value that is not a finite number in range, naming the field.
    """
    if edits is not None and not mask:
        raise CostError("edits are counted for masks only; a class label has none")
    return LabelCost(_number("active_ms", active_ms, maximum=MAX_ACTIVE_MS, whole=False),
                     _number("edits", edits, maximum=MAX_EDITS, whole=True))


def mask_pixels(store: ProjectStore, mask_path: str) -> int:
    """Non-background pixels of a stored mask (``masks/<hash>.png`` in the project)."""
    from PIL import Image

    with Image.open(store.directory / mask_path) as img:
        return int(np.count_nonzero(np.asarray(img)))


# -- accounting ----------------------------------------------------------------------------------
def cost_report(store: ProjectStore, *, metric: str | None = None) -> dict[str, Any]:
    """Labels per active hour per annotator and the learning curve against expert hours.

    Every label row the page wrote counts (``source = 'expert'``: corrections and each reading
    of double reading included: each took the expert's time).

    Returns:
        ``{"idle_seconds", "annotators": [...], "total", "metric", "curve": [...]}``. An
        annotator's row: ``annotator``, ``n_labels``, ``n_measured`` (with an active time),
        ``active_hours``, ``labels_per_hour`` (measured labels / their active hours; None
        without any), ``seconds_per_label`` (mean), ``provenance`` (counts of ``accepted``,
        ``edited``, ``scratch``, ``none``), and for masks ``edits_per_mask`` and
        ``pixels_per_mask`` (means over masks where measured; None otherwise). ``curve``: the
        latest model of each round: ``round``, ``n_labeled``, ``metric`` (its validation value
        of ``metric``, default the one models keep their best checkpoint by), ``expert_hours``
        (cumulative active hours of the page labels of rounds ``<= round``), ``n_unmeasured``
        (page labels of those rounds without a time: the hours are a lower bound when > 0).
    """
    from medactive.project.signals import _round_models, _value, default_metric

    rows = store.execute("SELECT annotator, round, provenance, active_ms, edits, pixels, "
                         "mask_path FROM labels WHERE source = 'expert' ORDER BY seq")
    people: dict[str, list] = {}
    for r in rows:
        people.setdefault(r["annotator"], []).append(r)
    annotators = [_annotator_row(name, people[name]) for name in sorted(people)]
    measured = [r["active_ms"] for r in rows if r["active_ms"] is not None]
    total = {"n_labels": len(rows), "n_measured": len(measured),
             "active_hours": sum(measured) / 3.6e6,
             "labels_per_hour": _rate(len(measured), sum(measured))}

    metric = metric or default_metric(store)
    key = metric if metric.startswith("val_") else f"val_{metric}"
    curve = []
    for m in _round_models(store):
        k = int(m["round"])
        upto = [r for r in rows if int(r["round"]) <= k]
        curve.append({"round": k, "n_labeled": int(m["n_labeled"]),
                      "metric": _value(m["metrics"], key),
                      "expert_hours": sum(r["active_ms"] or 0 for r in upto) / 3.6e6,
                      "n_unmeasured": sum(r["active_ms"] is None for r in upto)})
    return {"idle_seconds": IDLE_SECONDS, "annotators": annotators, "total": total,
            "metric": key, "curve": curve}


def _rate(n: int, ms: float) -> float | None:
    return n / (ms / 3.6e6) if n and ms > 0 else None


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _annotator_row(name: str, rows: list) -> dict[str, Any]:
    ms = [r["active_ms"] for r in rows if r["active_ms"] is not None]
    masks = [r for r in rows if r["mask_path"] is not None]
    made = {p: sum(r["provenance"] == p for r in rows) for p in PROVENANCES}
    made["none"] = sum(r["provenance"] is None for r in rows)
    return {"annotator": name, "n_labels": len(rows), "n_measured": len(ms),
            "active_hours": sum(ms) / 3.6e6, "labels_per_hour": _rate(len(ms), sum(ms)),
            "seconds_per_label": _mean(ms) / 1000 if ms else None, "provenance": made,
            "n_masks": len(masks), "edits_per_mask": _mean([r["edits"] for r in masks]),
            "pixels_per_mask": _mean([r["pixels"] for r in masks])}


def _metric_name(key: str) -> str:
    bare = key.removeprefix("val_")
    return f"validation {_METRIC_NAMES.get(bare, bare)}"


def format_cost(report: dict[str, Any]) -> list[str]:
    """The text lines of ``project status`` and ``project report``."""
    if not report["annotators"]:
        return ["annotation cost: no labels from the page yet"]
    idle = report["idle_seconds"]
    lines = [f"annotation cost (page labels; active time, a pause over {idle} s counts {idle} s):"]
    for a in report["annotators"]:
        rate = ("no time measured" if a["labels_per_hour"] is None else
                f"{a['active_hours']:.2f} active h = {a['labels_per_hour']:.1f} labels/h, "
                f"{a['seconds_per_label']:.1f} s a label")
        unmeasured = a["n_labels"] - a["n_measured"]
        made = a["provenance"]
        line = (f"  {a['annotator']}: {a['n_labels']} labels, {rate}"
                + (f" ({unmeasured} not measured)" if unmeasured and a["n_measured"] else "")
                + f"; {made['accepted']} accepted, {made['edited']} edited, "
                f"{made['scratch']} scratch" + (f", {made['none']} unknown" if made["none"]
                                                else ""))
        if a["n_masks"] and a["edits_per_mask"] is not None:
            line += (f"; masks: {a['edits_per_mask']:.1f} edits, "
                     f"{a['pixels_per_mask']:.0f} labelled pixels each")
        lines.append(line)
    if report["curve"]:
        name = _metric_name(report["metric"])
        points = ", ".join(
            f"round {c['round']}: {c['n_labeled']} labels / {c['expert_hours']:.2f} h"
            + ("" if c["metric"] is None else f" -> {c['metric']:.4f}")
            for c in report["curve"])
        lines.append(f"  learning curve ({name} by labels / expert hours): {points}")
    return lines


# -- the report folder ---------------------------------------------------------------------------
def write_report(store: ProjectStore, out: str | Path, *,
                 metric: str | None = None) -> list[Path]:
    """Write ``learning_curve.png`` (two panels: the metric against labels, and against expert
    hours), ``learning_curve.csv`` and ``annotators.csv`` into folder ``out``; returns the
    paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = cost_report(store, metric=metric)
    curve_csv = out / "learning_curve.csv"
    with open(curve_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["round", "n_labeled", "expert_hours", "n_unmeasured", "metric"])
        for c in report["curve"]:
            w.writerow([c["round"], c["n_labeled"], f"{c['expert_hours']:.6g}",
                        c["n_unmeasured"], "" if c["metric"] is None else f"{c['metric']:.6g}"])
    people_csv = out / "annotators.csv"
    fields = ["annotator", "n_labels", "n_measured", "active_hours", "labels_per_hour",
              "seconds_per_label", *[f"n_{p}" for p in (*PROVENANCES, "none")], "n_masks",
              "edits_per_mask", "pixels_per_mask"]
    with open(people_csv, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(fields)
        for a in report["annotators"]:
            flat = {**a, **{f"n_{k}": v for k, v in a["provenance"].items()}}
            w.writerow(["" if flat[f] is None else
                        (f"{flat[f]:.6g}" if isinstance(flat[f], float) else flat[f])
                        for f in fields])
    png = out / "learning_curve.png"
    _plot_curve(report, png, title=store.directory.name)
    return [png, curve_csv, people_csv]


def _plot_curve(report: dict[str, Any], path: Path, *, title: str) -> None:
    from matplotlib.figure import Figure  # no pyplot: no backend or global state involved
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(9, 3.6))
    left, right = fig.subplots(1, 2, sharey=True)
    points = [c for c in report["curve"] if c["metric"] is not None]
    name = _metric_name(report["metric"])
    for ax, x_key, x_label in ((left, "n_labeled", "labels"),
                               (right, "expert_hours", "expert hours (active)")):
        ax.plot([c[x_key] for c in points], [c["metric"] for c in points], marker="o")
        for c in points:
            ax.annotate(f"round {c['round']}", (c[x_key], c["metric"]),
                        textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set_xlabel(x_label)
        ax.grid(alpha=0.3)
    left.set_ylabel(name)
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    if not points:
        left.text(0.5, 0.5, "no model with a validation metric yet", ha="center",
                  transform=left.transAxes)
    unmeasured = max((c["n_unmeasured"] for c in report["curve"]), default=0)
    note = (f" ({unmeasured} label{'s' * (unmeasured != 1)} without a measured time)"
            if unmeasured else "")
    fig.suptitle(f"{title}: {name} against labels and expert time{note}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
