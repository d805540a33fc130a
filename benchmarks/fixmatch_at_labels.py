"""FixMatch on the labelled set an AL run ended with: with vs without, paired, per seed.

A bench grid stores every unit's picks (``rounds.added_idx``). This script rebuilds the labelled
set of one unit at round ``R`` (the initial set plus the picks of rounds 1..R), then trains the
round's model twice with the unit's own options and its own training seed
(``derive_seed(seed, "train", R)``, what the loop used):

- ``supervised``: exactly the unit's recipe, so its test metric must equal the grid's stored one
  (printed beside it: a check that the labelled set and the recipe were rebuilt correctly);
- ``fixmatch``: the same plus ``semi_supervised = "fixmatch"`` (``--semi-options`` overrides
  FixMatchConfig fields), the rest of the pool as unlabelled images.

The pair differs only in FixMatch, so "does semi-supervised training add to AL's labels?" is
answered per seed, at the label count the grid reached, for a fraction of a FixMatch grid's
cost (2 models per seed instead of ``R + 1`` FixMatch rounds). Pseudo-targets stay inside the
training steps; nothing is written to the grid's store (only read).

Resumable: every finished (seed, arm) is one CSV line in ``--out``; a rerun skips the lines
already there, so a killed run continues where it stopped.

Usage:
    python benchmarks/fixmatch_at_labels.py --results runs/le-blood-finetune-b200/results.sqlite \\
        --dataset bloodmnist-finetune --strategy margin --budget 200 --round 5 --seeds 0 1 2 \\
        --out results/le-blood-fixmatch-at-1200/fixmatch.csv --threads 1

``--train-options`` changes the recipe of both arms (a wider CNN, more epochs, a deep ensemble
with ``ensemble_size``): "would a stronger recipe on the same labels reach the target?",
answered without rerunning the grid; ``grid_value`` is then the grid's figure for the unit's
own recipe.

Output: ``--out`` holds ``dataset,strategy,budget,seed,round,n_labeled,arm,train_options,
metric,value,grid_value,seconds``; standard error gets progress lines and, at the end, per-seed paired
differences with their mean, standard deviation and the paired t statistic.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import sys
import time
from pathlib import Path

import numpy as np

FIELDS = ["dataset", "strategy", "budget", "seed", "round", "n_labeled", "arm", "train_options",
          "metric", "value", "grid_value", "seconds"]
ARMS = ("supervised", "fixmatch")
log = logging.getLogger("fixmatch_at_labels")


def unit_state(db: Path, dataset: str, strategy: str, budget: int, seed: int, round_: int,
               ) -> tuple[dict, np.ndarray, dict]:
    """``(options, labelled pool indices at round_, stored metrics of round_)`` of one unit."""
    from medactive.bench.config import Unit
    from medactive.bench.store import ResultStore

    unit = Unit(dataset, strategy, budget, seed)
    with ResultStore(db, create=False) as store:
        options = store.unit_options(unit)
        if options is None:
            raise SystemExit(f"{db}: no unit {unit.key}")
        records = store.completed_rounds(unit)
    if len(records) <= round_:
        raise SystemExit(f"{db}: unit {unit.key} has {len(records)} rounds stored, needs "
                         f"0..{round_}")
    labeled = np.concatenate([np.asarray(r.added_idx, dtype=np.int64)
                              for r in records[:round_ + 1]])
    if np.unique(labeled).size != labeled.size:
        raise SystemExit(f"{db}: unit {unit.key}: repeated picks")
    return options, labeled, dict(records[round_].metrics)


def train_arm(options: dict, labeled: np.ndarray, seed: int, round_: int, arm: str,
              semi_options: dict, train_options: dict | None = None) -> tuple[str, float, float]:
    """``(metric name, test value, seconds)`` of one model trained on ``labeled``.

    ``train_options`` override the unit's training preset fields (e.g. ``{"width": 64}``).
    """
    from medactive._random import derive_seed
    from medactive.bench.backend import build_task

    opts = dict(options)
    if train_options:
        train_options = dict(train_options)
        if "epochs" in train_options:  # the unit's own field, not a preset override
            opts["epochs"] = int(train_options.pop("epochs"))
        opts["train_options"] = {**opts.get("train_options", {}), **train_options}
    if arm == "fixmatch":
        opts["semi_supervised"], opts["semi_options"] = "fixmatch", semi_options
    started = time.perf_counter()
    task = build_task(opts)
    labels = task.pool_labels(labeled)
    model = task.fit(labeled, labels, seed=derive_seed(seed, "train", round_))
    metrics = task.evaluate(model, "test")
    metric = task.primary_metric
    return metric, float(metrics[metric]), time.perf_counter() - started


def done_rows(path: Path) -> set[tuple]:
    if not path.exists():
        return set()
    with path.open() as f:
        reader = csv.DictReader(f)
        if reader.fieldnames != FIELDS:
            raise SystemExit(f"{path}: columns {reader.fieldnames}, expected {FIELDS}; use "
                             "another --out")
        return {(r["dataset"], r["strategy"], int(r["budget"]), int(r["seed"]), int(r["round"]),
                 r["arm"], r["train_options"]) for r in reader}


def summarise(path: Path, dataset: str, strategy: str, budget: int, round_: int,
              train_options: str = "{}") -> None:
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["dataset"] == dataset and
                r["strategy"] == strategy and int(r["budget"]) == budget and
                int(r["round"]) == round_ and r["train_options"] == train_options]
    by_seed: dict[int, dict[str, float]] = {}
    for r in rows:
        by_seed.setdefault(int(r["seed"]), {})[r["arm"]] = float(r["value"])
    diffs = [v["fixmatch"] - v["supervised"] for v in by_seed.values() if len(v) == 2]
    for seed, v in sorted(by_seed.items()):
        log.info("seed %d: %s", seed, ", ".join(f"{a} {x:.4f}" for a, x in sorted(v.items())))
    if len(diffs) >= 2:
        d = np.asarray(diffs)
        sd = float(d.std(ddof=1))
        t = float(d.mean() / (sd / math.sqrt(d.size))) if sd > 0 else math.inf
        log.info("fixmatch - supervised over %d seeds: mean %+.4f, sd %.4f, paired t %.2f "
                 "(df %d)", d.size, d.mean(), sd, t, d.size - 1)


def _json_object(parser: argparse.ArgumentParser, flag: str, text: str) -> dict:
    """``text`` as a JSON object, or the parser's one-line error naming ``flag``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        parser.error(f"{flag} is not JSON: {exc}")
    if not isinstance(value, dict):
        parser.error(f"{flag} must be a JSON object")
    return value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", type=Path, required=True, help="a bench grid's results.sqlite")
    p.add_argument("--dataset", required=True, help="the grid's dataset entry name")
    p.add_argument("--strategy", required=True)
    p.add_argument("--budget", type=int, required=True)
    p.add_argument("--round", type=int, required=True, help="round whose labelled set is used")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    p.add_argument("--semi-options", default="{}", metavar="JSON",
                   help="FixMatchConfig overrides, e.g. '{\"threshold\": 0.9}' (default: none)")
    p.add_argument("--train-options", default="{}", metavar="JSON",
                   help="training preset overrides for both arms, e.g. '{\"width\": 64, "
                   "\"epochs\": 100}' (default: the unit's own recipe)")
    p.add_argument("--out", type=Path, required=True, help="CSV, appended to and resumed")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    semi_options = _json_object(p, "--semi-options", args.semi_options)
    train_options = _json_object(p, "--train-options", args.train_options)
    train_key = json.dumps(train_options, sort_keys=True)
    if not args.results.is_file():
        p.error(f"--results {args.results}: no such file")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = done_rows(args.out)
    for seed in args.seeds:
        options, labeled, stored = unit_state(args.results, args.dataset, args.strategy,
                                              args.budget, seed, args.round)
        for arm in args.arms:
            key = (args.dataset, args.strategy, args.budget, seed, args.round, arm, train_key)
            if key in done:
                log.info("seed %d %s: already in %s", seed, arm, args.out)
                continue
            log.info("seed %d %s: training on %d labels", seed, arm, labeled.size)
            metric, value, seconds = train_arm(options, labeled, seed, args.round, arm,
                                               semi_options, train_options)
            grid_value = stored.get(f"test_{metric}", float("nan"))
            log.info("seed %d %s: test %s %.4f (grid %.4f), %.0f s", seed, arm, metric, value,
                     grid_value, seconds)
            new = not args.out.exists()
            with args.out.open("a", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(dict(zip(FIELDS, [*key[:5], labeled.size, arm, train_key, metric,
                                                  f"{value:.6f}", f"{grid_value:.6f}",
                                                  f"{seconds:.1f}"])))
    summarise(args.out, args.dataset, args.strategy, args.budget, args.round, train_key)
    return 0


if __name__ == "__main__":
    sys.exit(main())
