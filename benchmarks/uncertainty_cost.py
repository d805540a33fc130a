"""Query cost of the uncertainty strategies (issue 11) relative to ``entropy``, training included.

For every pool size ``n`` the train split of ``--data`` (default: the embedded PneumoniaMNIST)
is tiled to ``n`` images (ids suffixed ``#k``; val and test cut to ``--n-eval`` images), and a
classification task of ``--preset`` trains one round's model on ``--n-labeled`` random samples
for each training recipe the strategies need:

- ``plain``: the preset (entropy, bald, batchbald, tta_kl, egl, egl_entropy, dfal);
- ``ensemble``: ``ensemble_size = --ensemble-size`` members (ensemble_*, qbc_*);
- ``evidential``: the evidential loss and Dirichlet head (evidential, evidential_epistemic);
- ``learning_loss``: the loss-prediction module beside the model (learning_loss).

Each strategy then queries ``--budget`` samples from fresh predictions of that model (nothing
cached from another strategy), so ``query_seconds`` holds the pool inference it needs (one
softmax pass, MC-dropout passes, augmented passes, DeepFool iterations, member passes) and its
selection. ``fit_seconds`` is the training of its recipe's model; the ratios divide by
entropy's ``query_seconds`` and by entropy's ``fit_seconds + query_seconds`` at the same ``n``:
``total_ratio`` is what a round of the method costs against a round of entropy.

Everything runs in this process, one configuration after another, with ``--threads`` torch
threads, after one untimed fit and entropy query (the first-call set-up of training and of
pool inference would otherwise land on entropy's row). Rows are appended to ``--out`` as they finish; rerunning the same command skips rows
already there, so a killed run continues where it stopped.

Usage:
    python benchmarks/uncertainty_cost.py                          # n = 1e4 and 9e4, b = 20
    python benchmarks/uncertainty_cost.py --n 2000 --strategies entropy bald egl

Output: ``--out`` (default ``results/uncertainty_cost.csv``) holds the raw rows
``strategy,n,training,fit_seconds,query_seconds``; standard output gets them with
``query_ratio,total_ratio`` against entropy's row of the same ``n`` (so a rerun of one row, after
deleting it from the file, updates every ratio); progress on stderr.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

import numpy as np

try:
    import medactive  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

logger = logging.getLogger("benchmarks.uncertainty_cost")
ROOT = Path(__file__).resolve().parents[1]
#: columns of the ``--out`` file (raw seconds); the printed table adds the two ratios
RAW = ["strategy", "n", "training", "fit_seconds", "query_seconds"]
HEADER = [*RAW, "query_ratio", "total_ratio"]
#: the training recipe each strategy needs (the baseline ``entropy`` first)
RECIPES = {
    "plain": ("entropy", "bald", "batchbald", "tta_kl", "egl", "egl_entropy", "dfal"),
    "ensemble": ("ensemble_entropy", "ensemble_bald", "qbc_vote_entropy", "qbc_kl"),
    "evidential": ("evidential", "evidential_epistemic"),
    "learning_loss": ("learning_loss",),
}


def recipe_overrides(recipe: str, args: argparse.Namespace) -> dict:
    """Training-preset overrides of ``recipe``."""
    return {"plain": {}, "ensemble": {"ensemble_size": args.ensemble_size},
            "evidential": {"evidential": True}, "learning_loss": {"learning_loss": True}}[recipe]


def tiled_dataset(dataset, n: int, n_eval: int):
    """``dataset`` with its train split repeated (or cut) to ``n`` images, val/test cut to
    ``n_eval``; repeated ids get a ``#k`` suffix so they stay unique."""
    from dataclasses import replace

    from medactive.data.pool import Split

    train = dataset.train
    reps = -(-n // len(train))
    idx = np.arange(n) % len(train)
    ids = np.array([f"{train.ids[i]}#{i_rep}" for i_rep in range(reps)
                    for i in range(len(train))][:n])
    images = np.asarray(train.images)[idx]
    tiled = Split(ids, images, train.labels[idx])

    def cut(split):
        keep = np.arange(min(n_eval, len(split)))
        return split.subset(keep)

    return replace(dataset, train=tiled, val=cut(dataset.val), test=cut(dataset.test))


def done_rows(path: Path) -> dict[tuple[str, int], dict]:
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        return {(r["strategy"], int(r["n"])): r for r in csv.DictReader(fh)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="default", help="a classification dataset "
                        "(default: the embedded PneumoniaMNIST)")
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 90_000])
    parser.add_argument("--strategies", nargs="+", default=None,
                        help="subset of: " + " ".join(s for v in RECIPES.values() for s in v))
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--n-labeled", type=int, default=100)
    parser.add_argument("--n-eval", type=int, default=200)
    parser.add_argument("--ensemble-size", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(ROOT / "results" / "uncertainty_cost.csv"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    import torch

    from medactive.data.classification import load_classification_data
    from medactive.errors import MedactiveError
    from medactive.strategies import create_strategy
    from medactive.tasks.classification.presets import get_preset
    from medactive.tasks.classification.task import ClassificationTask

    if args.threads:
        torch.set_num_threads(args.threads)
    known = [s for v in RECIPES.values() for s in v]
    wanted = args.strategies or known
    unknown = sorted(set(wanted) - set(known))
    if unknown:
        print(f"uncertainty_cost: unknown strategy {', '.join(unknown)}; choose from "
              f"{', '.join(known)}", file=sys.stderr)
        return 2
    wanted = ["entropy", *[s for s in wanted if s != "entropy"]]  # the baseline first
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = done_rows(out)
    if not out.is_file():
        out.write_text(",".join(RAW) + "\n")
    try:
        base = load_classification_data(args.data)
    except MedactiveError as exc:
        print(f"uncertainty_cost: {exc}", file=sys.stderr)
        return 2
    for n in args.n:
        dataset = tiled_dataset(base, n, args.n_eval)
        rng = np.random.default_rng(args.seed)
        labeled = np.sort(rng.choice(n, size=args.n_labeled, replace=False))
        unlabeled = np.setdiff1d(np.arange(n), labeled)
        if any((s, n) not in rows for s in wanted):  # untimed: first-call set-up of training
            warm = ClassificationTask(dataset, get_preset(args.preset))  # and pool inference
            model = warm.fit(labeled, warm.pool_labels(labeled), seed=args.seed)
            create_strategy("entropy").query(warm.predictions(model, seed=args.seed),
                                             unlabeled, labeled, args.budget, rng=args.seed)
        for recipe, members in RECIPES.items():
            todo = [s for s in wanted if s in members and (s, n) not in rows]
            if not todo:
                continue
            config = get_preset(args.preset, **recipe_overrides(recipe, args))
            task = ClassificationTask(dataset, config)
            start = time.perf_counter()
            model = task.fit(labeled, task.pool_labels(labeled), seed=args.seed)
            fit_s = time.perf_counter() - start
            logger.info("n=%d %s: fit %.1f s", n, recipe, fit_s)
            for name in todo:
                preds = task.predictions(model, seed=args.seed + 1, labeled_idx=labeled)
                strategy = create_strategy(name)
                start = time.perf_counter()
                result = strategy.query(preds, unlabeled, labeled, args.budget, rng=args.seed)
                query_s = time.perf_counter() - start
                assert np.unique(result.indices).size == args.budget
                row = {"strategy": name, "n": n, "training": recipe,
                       "fit_seconds": f"{fit_s:.3f}", "query_seconds": f"{query_s:.3f}"}
                rows[(name, n)] = row
                with out.open("a", newline="") as fh:
                    csv.DictWriter(fh, RAW).writerow(row)
                logger.info("n=%d %s: query %.1f s", n, name, query_s)
    print(ratio_table(done_rows(out), args.n, wanted), end="")
    return 0


def ratio_table(rows: dict[tuple[str, int], dict], sizes: list[int], names: list[str]) -> str:
    """The printed CSV: each row's seconds and its ratios to entropy's row of the same ``n``."""
    lines = [",".join(HEADER)]
    for n in sizes:
        base = rows.get(("entropy", n))
        for name in names:
            row = rows.get((name, n))
            if row is None or base is None:
                continue
            fit, query = float(row["fit_seconds"]), float(row["query_seconds"])
            b_fit, b_query = float(base["fit_seconds"]), float(base["query_seconds"])
            lines.append(",".join([*(str(row[k]) for k in RAW), f"{query / b_query:.2f}",
                                   f"{(fit + query) / (b_fit + b_query):.2f}"]))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
