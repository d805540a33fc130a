"""Inter-reader agreement of a double-read project (``project status``'s ``agreement`` block).

Over the items that have all ``K`` readings (:mod:`medactive.project.readings`), per round (the
round of an item's last reading) and overall:

- classes, ``K = 2``: Cohen's kappa between the first and the second reading of each item (by
  the time they were saved: "reader 1" and "reader 2" are positions, since the two readers of
  an item may be any two of the team);
- classes, ``K > 2``: Fleiss' kappa (any readers per item, ``K`` of them);
- masks: the mean pairwise Dice (mean over the foreground classes present in either mask of a
  pair; two empty masks agree, 1.0).

Disagreements: items whose readings are not all the same class, or (masks) with a pair below
:data:`MIN_MASK_DICE`; each listed with its readings and what its training label is.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

import numpy as np

from medactive.project.readings import (
    USED,
    TrainingLabel,
    adjudications,
    load_mask,
    n_readers,
    readings,
    training_labels,
)
from medactive.project.stopping import cohen_kappa
from medactive.project.store import ProjectStore

#: a pair of masks with a Dice below this is a disagreement for an adjudicator
MIN_MASK_DICE = 0.8


def fleiss_kappa(table) -> float:
    """Fleiss' kappa of a ``[n_items, n_classes]`` table of counts (each row sums to the same
    number of raters ``n >= 2``).

    ``kappa = (P - P_e) / (1 - P_e)``: ``P`` the mean over items of the fraction of agreeing
    rater pairs, ``P_e = sum_c p_c^2`` with ``p_c`` the share of all ratings in class ``c``;
    1.0 when every rating is one class (nothing to disagree on), as
    :func:`~medactive.project.stopping.cohen_kappa`.

    References:
        Fleiss, "Measuring nominal scale agreement among many raters", Psychological Bulletin
        76(5), 1971.

    Example:
        >>> fleiss_kappa([[2, 0], [0, 2], [1, 1]])  # P = (1 + 1 + 0) / 3, P_e = 0.5
        0.3333333333333333
    """
    t = np.asarray(table, dtype=np.float64)
    if t.ndim != 2 or t.shape[0] == 0:
        return float("nan")
    n = t.sum(axis=1)
    if np.any(n != n[0]) or n[0] < 2:
        raise ValueError("every item needs the same number (at least 2) of ratings")
    n = float(n[0])
    p_item = ((t * t).sum(axis=1) - n) / (n * (n - 1))
    p_class = t.sum(axis=0) / (t.shape[0] * n)
    p_bar, p_e = float(p_item.mean()), float((p_class ** 2).sum())
    if p_e >= 1.0:
        return 1.0
    return (p_bar - p_e) / (1.0 - p_e)


def dice(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Dice of two ``[H, W]`` class masks: mean over foreground classes present in either;
    1.0 when both are all background.

    Example:
        >>> dice(np.array([[1, 1, 0, 0]]), np.array([[1, 0, 0, 0]]), 2)  # 2*1 / (2 + 1)
        0.6666666666666666
    """
    scores = []
    for c in range(1, n_classes):
        ia, ib = a == c, b == c
        total = int(ia.sum()) + int(ib.sum())
        if total:
            scores.append(2.0 * int((ia & ib).sum()) / total)
    return float(np.mean(scores)) if scores else 1.0


def mean_pairwise_dice(masks: Sequence[np.ndarray], n_classes: int) -> float:
    return float(np.mean([dice(a, b, n_classes) for a, b in combinations(masks, 2)]))


def class_agreement(values: Sequence[Sequence[int]], n_classes: int) -> float:
    """Cohen's kappa (2 readings per item) or Fleiss' kappa (more) of ``[n_items][K]`` class
    readings."""
    v = np.asarray(values, dtype=np.int64)
    if v.size == 0:
        return float("nan")
    if v.shape[1] == 2:
        return cohen_kappa(v[:, 0], v[:, 1])
    return fleiss_kappa(np.stack([np.bincount(row, minlength=n_classes) for row in v]))


def agreement_report(store: ProjectStore) -> dict[str, Any]:
    """The ``agreement`` block of ``project status`` (``{"readers": 1}`` for a single-reader
    project)."""
    k = n_readers(store)
    if k == 1:
        return {"readers": 1}
    classes = store.classes
    is_class = store.task == "classification"
    by_sample = readings(store)
    train = training_labels(store, write_masks=False)
    decided = adjudications(store)
    complete: dict[int, list[tuple[str, Any]]] = {}
    disagreements = []
    incomplete = 0
    for sid, rs in by_sample.items():
        if len(rs) < k:
            incomplete += 1
            continue
        rs = rs[:k]
        rnd = max(r.round for r in rs)
        if is_class:
            item_value: Any = [r.value for r in rs]
            differs = len(set(item_value)) > 1
            detail: dict[str, Any] = {}
        else:
            masks = [load_mask(store, r.mask_path) for r in rs]
            pairs = [dice(a, b, len(classes)) for a, b in combinations(masks, 2)]
            item_value = float(np.mean(pairs))
            differs = min(pairs) < MIN_MASK_DICE
            detail = {"dice": item_value, "min_dice": min(pairs)}
        complete.setdefault(rnd, []).append((sid, item_value))
        if differs:
            t: TrainingLabel | None = train.get(sid)
            d = decided.get(sid)
            disagreements.append({
                "sample_id": sid, "round": rnd,
                "readings": [{"annotator": r.annotator, "seq": r.seq,
                              **({"label": classes[r.value]} if is_class else
                                 {"mask_path": r.mask_path})} for r in rs],
                **detail,
                "rule": t.rule if t is not None else None,
                "adjudicated": None if d is None else {
                    "by": d["adjudicator"], "at": d["created_at"],
                    "method": d.get("method"), "reader": d.get("reader"),
                    **({"label": classes[d["value"]]} if d["value"] is not None
                       else {"mask_path": d["mask_path"]})}})

    def measure(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if is_class:
            value = class_agreement([v for _, v in items], len(classes))
            observed = float(np.mean([len(set(v)) == 1 for _, v in items])) if items else None
            return {"n_items": len(items), "kappa": value, "observed_agreement": observed}
        return {"n_items": len(items),
                "mean_dice": float(np.mean([v for _, v in items])) if items else float("nan")}

    everything = [it for rnd in sorted(complete) for it in complete[rnd]]
    rules = {r: 0 for r in ("adjudicated", "unanimous", "majority", "vote", "unresolved",
                            "incomplete", "single")}
    for t in train.values():
        rules[t.rule] += 1
    disagreements.sort(key=lambda d: (d["round"], d["sample_id"]))
    return {
        "readers": k,
        "measure": ("cohen_kappa" if k == 2 else "fleiss_kappa") if is_class
        else "mean_pairwise_dice",
        "overall": measure(everything),
        "rounds": [{"round": rnd, **measure(complete[rnd])} for rnd in sorted(complete)],
        "incomplete_items": incomplete,
        "disagreements": disagreements,
        "open_disagreements": sum(d["adjudicated"] is None and d["rule"] not in
                                  ("majority", "vote") for d in disagreements),
        "training_label_rules": rules,
        "training_labels": sum(n for r, n in rules.items() if r in USED),
        "min_mask_dice": None if is_class else MIN_MASK_DICE,
    }


def format_agreement(report: dict[str, Any], *, directory: str = "DIR",
                     max_listed: int = 10) -> list[str]:
    """The lines ``project status`` prints (none for a single-reader project)."""
    k = report["readers"]
    if k == 1:
        return []
    name = {"cohen_kappa": "Cohen's kappa", "fleiss_kappa": "Fleiss' kappa",
            "mean_pairwise_dice": "mean pairwise Dice"}[report["measure"]]
    key = "mean_dice" if report["measure"] == "mean_pairwise_dice" else "kappa"

    def fmt(m: dict[str, Any]) -> str:
        v = m.get(key)
        shown = "n/a" if v is None or not np.isfinite(v) else f"{v:.3f}"
        return f"{shown} ({m['n_items']} items)"

    lines = [f"double reading: {k} readers per item; agreement ({name}): overall "
             f"{fmt(report['overall'])}"
             + "".join(f"; round {r['round']} {fmt(r)}" for r in report["rounds"])]
    if report["incomplete_items"]:
        lines.append(f"  {report['incomplete_items']} items read by fewer than {k} readers "
                     "(not used for training yet)")
    dis = report["disagreements"]
    if dis:
        lines.append(f"disagreements: {len(dis)} ({report['open_disagreements']} waiting for "
                     f"an adjudicator: `medactive project adjudicate {directory}`)")
        for d in dis[:max_listed]:
            lines.append("  " + describe_disagreement(d))
        if len(dis) > max_listed:
            lines.append(f"  ... {len(dis) - max_listed} more (--json lists all)")
    rules = ", ".join(f"{n} {r}" for r, n in report["training_label_rules"].items() if n)
    lines.append(f"training labels: {report['training_labels']}" + (f" ({rules})" if rules
                                                                    else ""))
    return lines


def describe_disagreement(d: dict[str, Any]) -> str:
    """``case0003 (round 1): alice a, bob b -> unresolved`` (one line)."""
    reads = ", ".join(f"{r['annotator']} {r.get('label', r.get('mask_path'))}"
                      for r in d["readings"])
    dice_note = f", Dice {d['dice']:.3f}" if "dice" in d else ""
    if d["adjudicated"] is not None:
        a = d["adjudicated"]
        outcome = f"adjudicated {a.get('label', a.get('mask_path'))} by {a['by']}"
        if a.get("method") == "reader":
            outcome += f" (kept {a['reader']}'s reading)"
        elif a.get("method") == "edited":
            start = f"{a['reader']}'s mask" if a["reader"] else "the vote"
            outcome += f" (edited from {start})"
    else:
        outcome = {"unresolved": "unresolved (not used for training)",
                   "majority": "majority", "vote": "per-pixel vote"}.get(d["rule"], d["rule"])
    return f"{d['sample_id']} (round {d['round']}): {reads}{dice_note} -> {outcome}"
