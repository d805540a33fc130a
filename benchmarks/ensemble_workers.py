"""Seconds of one deep-ensemble round trained serially vs in worker processes (issue 11).

A classification task of ``--preset`` (default ``cpu``: the width-16 CNN, 40 epochs) on
``--data`` (default ``../shared/data/medmnist/pneumoniamnist.npz``, its val and test splits cut
to ``--n-eval`` images) trains one round's ensemble of ``--ensemble-size`` members on
``--n-labeled`` random pool samples, ``--rounds`` times per worker count of ``--workers``
(1 = the serial path), each member at ``--threads`` torch threads. The timed fit includes what
a round pays for parallelism: starting the worker processes and sending them the task; the
first parallel round also starts the forkserver that imports torch and medactive once per run
(so it is printed apart from the later rounds). Before the timings one untimed single-model
fit warms the serial path up. The script also checks that every worker count trained the same
members (state dicts equal, exactly).

Usage:
    python benchmarks/ensemble_workers.py                     # M = 3, workers 1 and 2
    python benchmarks/ensemble_workers.py --ensemble-size 5 --workers 1 2

Output: CSV on standard output, ``ensemble_size,workers,threads,round,seconds,ratio`` (ratio:
seconds over the serial row of the same round), then ``identical,True|False``; progress on
stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

try:
    import medactive  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

logger = logging.getLogger("benchmarks.ensemble_workers")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "medmnist" / "pneumoniamnist.npz"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--preset", default="cpu")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--ensemble-size", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch threads per member")
    p.add_argument("--n-labeled", type=int, default=100)
    p.add_argument("--n-eval", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=2, help="timed fits per worker count")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    import torch

    from medactive.data.classification import load_classification_data
    from medactive.tasks.classification import ClassificationTask, get_preset

    torch.set_num_threads(args.threads)
    data = load_classification_data(args.data, seed=0)
    keep = np.arange(min(args.n_eval, len(data.val)))
    data = replace(data, val=data.val.subset(keep),
                   test=data.test.subset(np.arange(min(args.n_eval, len(data.test)))))
    idx = np.sort(np.random.default_rng(args.seed).choice(len(data.train), args.n_labeled,
                                                          replace=False))
    config = get_preset(args.preset, epochs=args.epochs, ensemble_size=args.ensemble_size)

    warm = ClassificationTask(data, config.replace(ensemble_size=1))
    warm.fit(idx, warm.pool_labels(idx), seed=args.seed)  # untimed: first-call set-up
    rows, states = [], []
    for workers in args.workers:
        task = ClassificationTask(data, config, ensemble_workers=workers)
        used, threads = task.ensemble_execution()
        for rnd in range(args.rounds):
            logger.info("M = %d, %d worker(s) x %d thread(s), round %d ...",
                        args.ensemble_size, used, threads, rnd)
            start = time.perf_counter()
            model = task.fit(idx, task.pool_labels(idx), seed=args.seed)
            rows.append((used, threads, rnd, time.perf_counter() - start))
            states.append(model.state_dict())
    print("ensemble_size,workers,threads,round,seconds,ratio")
    base = {rnd: seconds for used, _, rnd, seconds in rows if used == rows[0][0]}
    for used, threads, rnd, seconds in rows:
        print(f"{args.ensemble_size},{used},{threads},{rnd},{seconds:.2f},"
              f"{seconds / base[rnd]:.2f}")
    same = all(list(s) == list(states[0]) and all(torch.equal(s[k], states[0][k]) for k in s)
               for s in states[1:])
    print(f"identical,{same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
