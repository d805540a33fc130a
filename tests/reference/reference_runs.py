"""Two small ``medactive run`` invocations whose selections and metrics are kept in the
repository (``tests/reference/*.json``), so that a restructuring of the code can be checked to
change nothing a user sees: same seed, same selected samples, same scores and metrics to the test's TOL.

``python -m tests.reference.reference_runs`` rewrites the references (only on purpose: the point
is that they stay put)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from medactive.cli import main

HERE = Path(__file__).parent
NON_METRIC = {"round", "n_labeled", "train_seconds", "score_seconds", "query_seconds",
              "seconds", "eval_seconds", "fit_seconds", "epochs_run"}


def classification_args(out: Path) -> list[str]:
    return ["run", "--data", "default", "--strategy", "margin", "--initial", "20",
            "--budget", "10", "--rounds", "2", "--seed", "3", "--preset", "smoke",
            "--threads", "1", "--no-progress", "--out", str(out)]


def segmentation_args(data: Path, out: Path) -> list[str]:
    return ["run", "--data", str(data), "--strategy", "entropy", "--initial", "4",
            "--budget", "2", "--rounds", "2", "--seed", "5", "--preset", "smoke",
            "--threads", "1", "--no-progress", "--out", str(out)]


def write_segmentation_data(root: Path) -> Path:
    from tests.segmentation_data import write_h5_layout

    return write_h5_layout(root)


def summarise(out: Path) -> dict:
    """What must not change: the selected ids per round and every metric column per round."""
    with open(out / "selections.csv") as fh:
        sel = list(csv.DictReader(fh))
    with open(out / "rounds.csv") as fh:
        rounds = list(csv.DictReader(fh))
    selected: dict[str, list[list]] = {}
    for row in sel:
        score = float(row["score"]) if row.get("score") not in ("", None) else None
        selected.setdefault(row["round"], []).append([row["sample_id"], score])
    metrics = []
    for row in rounds:
        kept = {}
        for key, value in row.items():
            if key in NON_METRIC or key.endswith("_seconds") or value in ("", None):
                continue
            try:
                kept[key] = float(value)
            except ValueError:
                continue
        metrics.append({"round": int(row["round"]), "n_labeled": int(row["n_labeled"]),
                        "metrics": kept})
    return {"selected": selected, "rounds": metrics}


def run_classification(tmp: Path) -> dict:
    out = tmp / "cls"
    assert main(classification_args(out)) == 0
    return summarise(out)


def run_segmentation(tmp: Path) -> dict:
    data = write_segmentation_data(tmp / "seg-data")
    out = tmp / "seg"
    assert main(segmentation_args(data, out)) == 0
    return summarise(out)


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for name, fn in (("classification", run_classification),
                         ("segmentation", run_segmentation)):
            result = fn(Path(tmp))
            (HERE / f"{name}.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
            print(f"wrote {HERE / (name + '.json')}", file=sys.stderr)
