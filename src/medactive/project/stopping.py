"""When to stop labelling: signals that more labels stop paying, and a recommendation.

Pure functions of arrays and numbers (numpy only); :mod:`medactive.project.signals` reads what
they need from a project.

Two signals compare consecutive rounds' models:

- **Validation metric change**: ``|m_k - m_{k-1}|`` of the validation metric (AUC, accuracy,
  Dice) of the models of rounds ``k - 1`` and ``k``.
- **Prediction stability** (Bloodgood & Vijay-Shanker, 2009): the fraction of unlabelled pool
  samples whose predicted class changed between the two models, over the samples unlabelled
  for both (the later round's pool: a sample labelled in between is no longer predicted). The
  paper measures agreement with Cohen's kappa on a fixed unlabelled "stop set" and stops when
  kappa averaged over the last rounds exceeds 0.99; :func:`cohen_kappa` gives it too.

:func:`recommend` stops when every signal in use stayed below its threshold over the last
``window`` consecutive changes, and says why in one sentence.

References:
    Bloodgood & Vijay-Shanker, "A method for stopping active learning based on stabilizing
    predictions and the need for user-adjustable stopping", CoNLL 2009.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: defaults of ``project status``: stop when the last 2 changes of the validation metric were
#: below 0.005 and fewer than 1 % of the pool's predictions changed
MAX_METRIC_CHANGE = 0.005
MAX_PREDICTION_CHANGE = 0.01
WINDOW = 2


def prediction_change(prev_ids, prev_pred, ids, pred) -> tuple[float, int]:
    """Fraction of samples, predicted by both models, whose predicted class changed.

    Args:
        prev_ids: ``[n_prev]`` sample ids the earlier model predicted.
        prev_pred: ``[n_prev]`` its predicted classes.
        ids: ``[n]`` sample ids the later model predicted.
        pred: ``[n]`` its predicted classes.

    Returns:
        ``(fraction, n_common)``: the changed fraction over the ``n_common`` ids in both
        (NaN when none).

    Example:
        >>> prediction_change(["a", "b", "c"], [0, 1, 1], ["b", "c", "d"], [1, 0, 0])
        (0.5, 2)
    """
    prev_ids, ids = np.asarray(prev_ids), np.asarray(ids)
    prev_pred, pred = np.asarray(prev_pred).reshape(-1), np.asarray(pred).reshape(-1)
    if prev_ids.shape != prev_pred.shape or ids.shape != pred.shape:
        raise ValueError("each model needs one predicted class per id")
    common, i_prev, i_new = np.intersect1d(prev_ids, ids, assume_unique=True,
                                           return_indices=True)
    if common.size == 0:
        return float("nan"), 0
    changed = prev_pred[i_prev] != pred[i_new]
    return float(changed.mean()), int(common.size)


def cohen_kappa(a, b) -> float:
    """Cohen's kappa between two label sequences (agreement beyond chance).

    ``kappa = (p_o - p_e) / (1 - p_e)`` with ``p_o`` the observed agreement and ``p_e`` the
    agreement expected from the two marginal class frequencies; 1.0 when both are one and the
    same constant sequence (nothing to disagree on).

    Example:
        >>> cohen_kappa([0, 0, 1, 1], [0, 1, 1, 1])  # p_o = 0.75, p_e = 0.5*0.25 + 0.5*0.75
        0.5
    """
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"sequences of different lengths: {a.size} and {b.size}")
    if a.size == 0:
        return float("nan")
    classes, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
    ca, cb = codes[:a.size], codes[a.size:]
    p_o = float(np.mean(ca == cb))
    pa = np.bincount(ca, minlength=classes.size) / a.size
    pb = np.bincount(cb, minlength=classes.size) / b.size
    p_e = float(pa @ pb)
    if p_e >= 1.0:
        return 1.0
    return (p_o - p_e) / (1.0 - p_e)


@dataclass(frozen=True)
class StopRule:
    """Thresholds of :func:`recommend` (``project status`` options).

    Attributes:
        max_metric_change: largest ``|change|`` of the validation metric that counts as flat.
        max_prediction_change: largest fraction of changed pool predictions that counts as
            stable.
        window: how many consecutive round-to-round changes must all be below the thresholds.
    """

    max_metric_change: float = MAX_METRIC_CHANGE
    max_prediction_change: float = MAX_PREDICTION_CHANGE
    window: int = WINDOW

    def __post_init__(self) -> None:
        if not self.max_metric_change >= 0:
            raise ValueError(f"max_metric_change must be >= 0, got {self.max_metric_change}")
        if not 0 <= self.max_prediction_change <= 1:
            raise ValueError("max_prediction_change must be in [0, 1], got "
                             f"{self.max_prediction_change}")
        if self.window < 1:
            raise ValueError(f"window must be at least 1, got {self.window}")


@dataclass(frozen=True)
class Recommendation:
    """``decision`` is ``"stop"`` or ``"continue"``; ``reason`` the plain sentence."""

    decision: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"decision": self.decision, "reason": self.reason}


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _fmt_limit(x: float, percent: bool) -> str:
    return f"{x * 100:g} %" if percent else f"{x:g}"


def recommend(rounds: list[int], metric_changes: list[float | None],
              prediction_changes: list[float | None], *, rule: StopRule | None = None,
              metric: str = "metric", use_metric: bool = True,
              use_stability: bool = True) -> Recommendation:
    """Stop or continue, from the signals of consecutive rounds.

    Args:
        rounds: ``[n]`` the rounds that have a model, in order.
        metric_changes: ``[n]`` change of the validation metric from the previous round's model
            (``None``/NaN: not available, always so for the first round).
        prediction_changes: ``[n]`` fraction of changed pool predictions from the previous
            round's model (``None``/NaN: not available).
        rule: the thresholds (default :class:`StopRule`).
        metric: the metric's name, for the sentence (e.g. ``"validation AUC"``).
        use_metric: judge the metric change (``False``: the project has no validation metric).
        use_stability: judge prediction stability (``False``: the task has no pool
            predictions saved, e.g. segmentation for now).

    Returns:
        ``stop`` when every signal in use is below its threshold for the last ``rule.window``
        changes, else ``continue`` with the reason.

    Example:
        >>> r = recommend([0, 1, 2], [None, 0.001, -0.002], [None, 0.005, 0.0], metric="AUC")
        >>> r.decision, r.reason[:58]
        ('stop', 'Stop: the last 2 rounds changed the AUC by 0.001 and 0.002')
    """
    rule = rule or StopRule()
    n = len(rounds)
    if not len(metric_changes) == len(prediction_changes) == n:
        raise ValueError("one metric change and one prediction change per round")
    w = rule.window
    if not (use_metric or use_stability):
        return Recommendation("continue", "Continue: no stopping signal is available (no "
                              "validation labels and no saved pool predictions).")
    need = w + 1
    if n < need:
        return Recommendation("continue", f"Continue: {n} round{'s' * (n != 1)} with a model; "
                              f"the stopping signals need {need} consecutive rounds' models "
                              f"({w} change{'s' * (w != 1)}).")
    last = slice(n - w, n)
    signals = []
    if use_metric:
        signals.append((f"changed the {metric} by", metric_changes[last],
                        rule.max_metric_change, False, True))
    if use_stability:
        signals.append(("changed", prediction_changes[last], rule.max_prediction_change, True,
                        False))
    parts, problems = [], []
    for words, values, limit, percent, absolute in signals:
        what = "pool predictions" if percent else ""
        gaps = [r for r, v in zip(rounds[last], values) if _missing(v)]
        if gaps:
            kind = "pool predictions were" if percent else f"the {metric} was"
            problems.append(f"round{'s' * (len(gaps) != 1)} "
                            f"{', '.join(str(g) for g in gaps)}: {kind} not recorded")
            continue
        shown = [abs(v) if absolute else v for v in values]
        text = " and ".join(_fmt_limit(v, percent) if percent else f"{v:.3g}" for v in shown)
        above = [r for r, v in zip(rounds[last], shown) if v >= limit]
        sentence = f"{words} {text}{' of ' + what if what else ''}"
        if above:
            problems.append(f"{sentence} (round{'s' * (len(above) != 1)} "
                            f"{', '.join(str(r) for r in above)} at or above "
                            f"{_fmt_limit(limit, percent)})")
        else:
            parts.append(f"{sentence} (< {_fmt_limit(limit, percent)})")
    span = f"the last {w} round{'s' * (w != 1)}"
    if problems:
        return Recommendation("continue", f"Continue: over {span}, "
                              + "; ".join(problems + parts) + ".")
    return Recommendation("stop", f"Stop: {span} " + " and ".join(parts) + ".")
