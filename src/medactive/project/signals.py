"""What ``project status`` needs to say when to stop, kept per round in the project directory.

When ``project query`` scores the pool with round ``k``'s model (classification), it saves
``signals/round-NNNN.npz`` (written to a temporary name and renamed; the label store is not
touched):

- ``ids`` ``[n]``: the pool samples unlabelled at round ``k``; ``predicted`` ``[n]`` their
  predicted class; ``confidence`` ``[n]`` its probability after temperature scaling;
- ``val_log_probas`` ``[n_val, c]`` and ``val_labels`` ``[n_val]``: the validation samples'
  log-probabilities and labels (what the calibration was fitted on);
- ``meta``: a JSON string with the round, the model's labels digest (a file of another model
  of the round is not used), and the calibration (:class:`medactive.calibration.Calibration`:
  the temperature ``T``, ECE and NLL before and after ``T``).

A project made before these files existed, or a segmentation project (classification only for
now), has none: its rows show n/a. :func:`stopping_report` turns the files and the models'
metrics into the per-round signals and the recommendation (:mod:`medactive.project.stopping`).
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from medactive.calibration import N_BINS, apply_temperature, calibrate, log_probas
from medactive.errors import ConfigError
from medactive.project.stopping import StopRule, cohen_kappa, prediction_change, recommend
from medactive.project.store import ProjectStore, atomic_write_bytes, now_iso

logger = logging.getLogger(__name__)

SIGNALS_DIR = "signals"
_METRIC_NAMES = {"auc": "validation AUC", "accuracy": "validation accuracy",
                 "balanced_accuracy": "validation balanced accuracy",
                 "dice_mean": "validation Dice"}


def signals_path(directory: str | Path, rnd: int) -> Path:
    return Path(directory) / SIGNALS_DIR / f"round-{int(rnd):04d}.npz"


def save_round_signals(directory: str | Path, rnd: int, *, labels_digest: str,
                       ids: list[str] | np.ndarray, probas: np.ndarray,
                       val_probas: np.ndarray | None = None,
                       val_labels: np.ndarray | None = None) -> dict[str, Any]:
    """Save round ``rnd``'s pool predictions and its calibration on the validation labels.

    Args:
        directory: the project directory.
        rnd: the round of the model.
        labels_digest: the model's digest (``models.labels_digest``).
        ids: ``[n]`` ids of the unlabelled pool samples ``probas`` are of.
        probas: ``[n, c]`` their class probabilities.
        val_probas: ``[n_val, c]`` probabilities of the labelled validation samples (none: no
            calibration, ``T = 1``).
        val_labels: ``[n_val]`` their class indices.

    Returns:
        The file's ``meta`` (round, digest, calibration or ``None``).
    """
    probas = np.asarray(probas, dtype=np.float64)
    ids = np.asarray(ids, dtype=str)
    cal = None
    if val_probas is not None and val_labels is not None and len(val_labels):
        cal = calibrate(val_probas, val_labels, n_bins=N_BINS).to_dict()
    t = cal["temperature"] if cal else 1.0
    scaled = apply_temperature(log_probas(probas), t) if probas.size else probas
    meta = {"round": int(rnd), "labels_digest": labels_digest, "calibration": cal,
            "created_at": now_iso()}
    n_classes = probas.shape[1] if probas.ndim == 2 else 0
    arrays = {
        "ids": ids, "predicted": probas.argmax(axis=1).astype(np.int16) if probas.size
        else np.zeros(0, np.int16),
        "confidence": scaled.max(axis=1).astype(np.float32) if probas.size
        else np.zeros(0, np.float32),
        "val_log_probas": (log_probas(val_probas).astype(np.float32) if cal
                           else np.zeros((0, n_classes), np.float32)),
        "val_labels": (np.asarray(val_labels, dtype=np.int64) if cal
                       else np.zeros(0, np.int64)),
        "meta": np.array(json.dumps(meta)),
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(signals_path(directory, rnd), buf.getvalue())
    return meta


def load_round_signals(directory: str | Path, rnd: int) -> dict[str, Any] | None:
    """Round ``rnd``'s saved signals (``meta`` keys plus the arrays), or ``None`` (none saved,
    or an unreadable file: logged)."""
    path = signals_path(directory, rnd)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files if k != "meta"}
            out.update(json.loads(str(data["meta"])))
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("%s: cannot read (%s); its round shows n/a", path, exc)
        return None
    return out


def latest_temperature(store: ProjectStore) -> float:
    """The temperature fitted for the project's current model (the latest round's; 1.0 when
    its signals are not saved or it had no validation labels): the one to divide that model's
    logits (or log-probabilities) by before showing a probability
    (:func:`medactive.calibration.apply_temperature`)."""
    models = _round_models(store)
    saved = _signals_for(store, models[-1]) if models else None
    if saved is not None and saved.get("calibration"):
        return float(saved["calibration"]["temperature"])
    return 1.0


def has_signals(store: ProjectStore, rnd: int, labels_digest: str) -> bool:
    """Whether round ``rnd``'s signals of the model with ``labels_digest`` are saved."""
    saved = load_round_signals(store.directory, rnd)
    return saved is not None and saved.get("labels_digest") == labels_digest


def default_metric(store: ProjectStore) -> str:
    """The metric the project's models keep their best checkpoint by (as the tasks choose)."""
    if store.task == "segmentation":
        return "dice_mean"
    return "auc" if len(store.classes) == 2 else "accuracy"


def _round_models(store: ProjectStore) -> list[dict[str, Any]]:
    """The latest model of each round, by round."""
    latest: dict[int, dict[str, Any]] = {}
    for m in store.models():
        latest[int(m["round"])] = m
    return [latest[r] for r in sorted(latest)]


def _signals_for(store: ProjectStore, model: dict[str, Any]) -> dict[str, Any] | None:
    saved = load_round_signals(store.directory, model["round"])
    if saved is not None and saved.get("labels_digest") != model["labels_digest"]:
        return None  # written by another model of that round (e.g. before an exclusion)
    return saved


def _value(metrics: dict[str, Any], key: str) -> float | None:
    v = metrics.get(key)
    if isinstance(v, (int, float)) and np.isfinite(v):
        return float(v)
    return None


def stopping_report(store: ProjectStore, *, metric: str | None = None,
                    rule: StopRule | None = None) -> dict[str, Any]:
    """The per-round stopping signals, the calibration and the recommendation.

    Returns:
        ``{"metric", "rule", "rounds": [...], "calibration", "temperature",
        "recommendation": {"decision", "reason"}}``; each round has ``round``, ``n_labeled``,
        ``metric`` (the validation value), ``metric_change``, ``prediction_change`` (changed
        fraction of the pool predicted by both models), ``n_compared``, ``kappa``,
        ``predictions_saved`` and ``calibration``; ``None`` where not available.
    """
    rule = rule or StopRule()
    given = metric
    metric = metric or default_metric(store)
    key = metric if metric.startswith("val_") else f"val_{metric}"
    models = _round_models(store)
    known = sorted({k[4:] for m in models for k in m["metrics"] if k.startswith("val_")})
    if given and models and key[4:] not in known:
        raise ConfigError(f"--metric {given}: not a validation metric of this project's models "
                          f"(they have: {', '.join(known) or 'none'})")
    rows: list[dict[str, Any]] = []
    prev_saved = None
    prev_value = None
    for m in models:
        saved = _signals_for(store, m)
        value = _value(m["metrics"], key)
        row: dict[str, Any] = {"round": int(m["round"]), "n_labeled": int(m["n_labeled"]),
                               "metric": value, "metric_change": None,
                               "prediction_change": None, "n_compared": None, "kappa": None,
                               "predictions_saved": saved is not None,
                               "calibration": saved.get("calibration") if saved else None}
        if rows and value is not None and prev_value is not None:
            row["metric_change"] = value - prev_value
        if rows and saved is not None and prev_saved is not None:
            frac, n_common = prediction_change(prev_saved["ids"], prev_saved["predicted"],
                                               saved["ids"], saved["predicted"])
            if n_common:
                row["prediction_change"], row["n_compared"] = frac, n_common
                _, a, b = np.intersect1d(prev_saved["ids"], saved["ids"], assume_unique=True,
                                         return_indices=True)
                row["kappa"] = cohen_kappa(prev_saved["predicted"][a], saved["predicted"][b])
        rows.append(row)
        prev_saved, prev_value = saved, value
    use_metric = any(r["metric"] is not None for r in rows)
    use_stability = store.task == "classification"
    name = _METRIC_NAMES.get(key[4:], f"validation {key[4:]}")
    rec = recommend([r["round"] for r in rows], [r["metric_change"] for r in rows],
                    [r["prediction_change"] for r in rows], rule=rule, metric=name,
                    use_metric=use_metric, use_stability=use_stability)
    latest_cal = rows[-1]["calibration"] if rows else None  # the current model's
    return {"metric": key, "rule": {"max_metric_change": rule.max_metric_change,
                                    "max_prediction_change": rule.max_prediction_change,
                                    "window": rule.window},
            "stability": "classification" if use_stability else
            "n/a: computed for classification projects only (segmentation: the metric alone)",
            "rounds": rows, "calibration": latest_cal,
            "temperature": latest_cal["temperature"] if latest_cal else 1.0,
            "recommendation": rec.to_dict()}


def format_stopping(report: dict[str, Any]) -> list[str]:
    """The lines ``project status`` prints for :func:`stopping_report`'s ``report``."""
    rule, rows = report["rule"], report["rounds"]
    name = _METRIC_NAMES.get(report["metric"][4:], f"validation {report['metric'][4:]}")
    w = rule["window"]
    lines = [(f"stopping signals ({name}; stop when over the last {w} round"
              f"{'s' * (w != 1)} it changed by < {rule['max_metric_change']:g} and < "
              f"{rule['max_prediction_change'] * 100:g} % of pool predictions changed):")]
    if not rows:
        lines.append("  no model yet")
    for r in rows:
        metric = "n/a" if r["metric"] is None else f"{r['metric']:.4f}"
        if r["metric_change"] is not None:
            metric += f" ({r['metric_change']:+.4f})"
        if r["prediction_change"] is None:
            change = "n/a"
        else:
            change = (f"{100 * r['prediction_change']:.1f} % of {r['n_compared']} "
                      f"(kappa {r['kappa']:.3f})")
        cal = r["calibration"]
        ece = ("ECE n/a" if not cal else
               f"ECE {cal['ece']:.3f} -> {cal['ece_calibrated']:.3f} (T = "
               f"{cal['temperature']:.2f})")
        lines.append(f"  round {r['round']}: {r['n_labeled']} labels, {name} {metric}, pool "
                     f"predictions changed {change}, {ece}")
    if report["stability"] != "classification":
        lines.append(f"  prediction stability {report['stability']}")
    cal = report["calibration"]
    if rows and cal:
        lines.append(f"calibration of the round-{rows[-1]['round']} model on {cal['n']} "
                     f"validation labels ({cal['n_bins']} bins): ECE {cal['ece']:.3f} -> "
                     f"{cal['ece_calibrated']:.3f} with T = {cal['temperature']:.2f} (NLL "
                     f"{cal['nll']:.3f} -> {cal['nll_calibrated']:.3f}); the pool confidences "
                     "the project saves use T")
    elif rows:
        lines.append(f"calibration of the round-{rows[-1]['round']} model: n/a (no saved "
                     "predictions or no labelled validation samples)")
    lines.append(f"recommendation: {report['recommendation']['reason']}")
    return lines
