"""Peers side by side: medactive's selection against scikit-activeml and baal on the same inputs.

Each run is one fresh process: benchmarks/selection.py's measured worker (the same synthetic
inputs from :func:`selection.make_inputs`: 512-d float32 embeddings in 9 Gaussian clusters,
softmax probabilities, T = 25 MC-dropout passes; the same random labeled set; the same wall
clock and added peak RSS from /proc/self/status), with only the query swapped. medactive runs
under the interpreter running this script, the peers under ``.venv-peers/bin/python`` where
scripts/setup-peers.sh made it (else this interpreter, if the peers import there). The two
impls of a step alternate (medactive, peer, medactive, ...); every process builds its inputs
from the same seed, so both get byte-identical arrays (``--digest`` prints their SHA-256).

Steps (medactive strategy | peer call, as each peer's docs describe it):

- ``badge``: ``badge`` | scikit-activeml ``Badge(clf_embedding_flag_name="return_embeddings")
  .query(X, y, clf, fit_clf=False, batch_size=B)``; ``clf`` is a ``SkactivemlClassifier``
  whose ``predict_proba`` returns the precomputed ``(probas, embeddings)`` of the unlabeled
  rows (the stand-in for a trained model, as medactive's ``ArrayPredictions``).
- ``coreset``: ``coreset_l2`` | ``CoreSet(metric="euclidean").query(X, y, batch_size=B)``.
- ``typiclust``: ``typiclust`` with ``max_clusters=None`` | ``TypiClust(k=20,
  cluster_algo=MiniBatchKMeans, cluster_algo_dict=...)``: both cluster the whole pool into
  ``|L| + B`` groups (the peer has no cap; medactive's default caps at 500) with the same
  MiniBatchKMeans settings (batch 4096, 25 passes, 1 init) and k = 20 neighbours.
- ``probcover``: ``probcover`` with ``n_clusters=classes`` | ``ProbCover(n_classes=classes,
  cluster_algo=MiniBatchKMeans, ...)`` on the L2-normalised embeddings (medactive normalises
  inside; for the peer the normalisation is done inside the timed call).
- ``bald``: ``bald`` | baal ``BALD().get_ranks(mc_probas[unlabeled])``, top ``B``.
- ``batchbald``: ``batchbald`` with ``n_config_samples=--num-draw`` | baal
  ``BatchBALD(num_samples=B, num_draw=--num-draw).get_ranks(...)``, top ``B``; ``B`` is
  ``--batchbald-budget`` (default 50), since BatchBALD at ``B = 1000`` on these pools is out of
  reach for every implementation (``B`` greedy steps over the whole pool).

Settings that still differ (both sides documented): medactive's TypiClust never picks from
clusters of fewer than 5 points; medactive's ProbCover takes δ as an exact order statistic of
the purity and keeps at most 50 neighbours per ball, the peer searches δ on the grid 0.2, 0.4,
..., 2.0 with dense ``n x n`` distances (skipped when those exceed ``--peer-max-gb``); baal's
BatchBALD stops early once the gain stays below 0.1 for 10 steps.

Usage:
    scripts/setup-peers.sh                               # once: .venv-peers with the peers
    python benchmarks/peers.py --n 10000 90000 --repeats 3 > results/peers/peers.csv
    python benchmarks/peers.py --n 2000 --steps badge bald --impls medactive

Output: CSV on standard output, ``step,n,impl,seconds,peak_mb``, one row per run (``nan`` for a
failed or timed-out run); progress, then the medians and the ratios medactive / peer (time,
memory) on standard error.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
try:
    import medactive  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

logger = logging.getLogger("benchmarks.peers")
HEADER = "step,n,impl,seconds,peak_mb"
IMPLS = ("medactive", "scikit-activeml", "baal")
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
#: MiniBatchKMeans settings of medactive.selection.clustering.kmeans, handed to the peer too
KMEANS = {"batch_size": 4096, "max_iter": 25, "n_init": 1}
TYPICLUST_K = 20


def _load_selection():
    """benchmarks/selection.py as a module: its input builder and measured worker."""
    spec = importlib.util.spec_from_file_location("bench_selection",
                                                  Path(__file__).with_name("selection.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def medactive_options(step: str, args: argparse.Namespace) -> dict:
    """Keyword options of medactive's strategy for ``step``, set to the peer's settings."""
    return {"typiclust": {"max_clusters": None, "n_neighbors": TYPICLUST_K},
            "probcover": {"n_clusters": args.classes},
            "batchbald": {"n_config_samples": args.num_draw}}.get(step, {})


#: step -> (medactive strategy name, peer impl)
STEPS = {"badge": ("badge", "scikit-activeml"), "coreset": ("coreset_l2", "scikit-activeml"),
         "typiclust": ("typiclust", "scikit-activeml"),
         "probcover": ("probcover", "scikit-activeml"), "bald": ("bald", "baal"),
         "batchbald": ("batchbald", "baal")}


# ---------------------------------------------------------------- the peers' calls
def _skactiveml_y(n: int, labeled: np.ndarray, classes: int) -> np.ndarray:
    """Labels as scikit-activeml wants them: NaN = unlabeled, a class for each labeled row."""
    y = np.full(n, np.nan)
    y[labeled] = np.arange(labeled.size) % classes
    return y


def run_skactiveml(step: str, inputs: dict, args: argparse.Namespace) -> np.ndarray:
    from skactiveml.pool import Badge, CoreSet, ProbCover, TypiClust
    from sklearn.cluster import MiniBatchKMeans

    fields, unl, lab = inputs["fields"], inputs["unlabeled"], inputs["labeled"]
    X = fields["embeddings"]
    y = _skactiveml_y(X.shape[0], lab, args.classes)
    if step == "badge":
        clf = _precomputed_classifier(fields["probas"][unl], args.classes)
        qs = Badge(clf_embedding_flag_name="return_embeddings", random_state=args.seed)
        idx = qs.query(X, y, clf, fit_clf=False, batch_size=args.budget)
    elif step == "coreset":
        idx = CoreSet(metric="euclidean", random_state=args.seed).query(
            X, y, batch_size=args.budget)
    elif step == "typiclust":
        qs = TypiClust(k=TYPICLUST_K, cluster_algo=MiniBatchKMeans,
                       cluster_algo_dict=dict(KMEANS), random_state=args.seed)
        idx = qs.query(X, y, batch_size=args.budget)
    elif step == "probcover":
        Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
        qs = ProbCover(n_classes=args.classes, cluster_algo=MiniBatchKMeans,
                       cluster_algo_dict=dict(KMEANS), random_state=args.seed)
        idx = qs.query(Xn, y, batch_size=args.budget)
    else:
        raise ValueError(f"scikit-activeml has no step {step!r} here")
    return np.asarray(idx, dtype=np.int64)


def _precomputed_classifier(probas: np.ndarray, classes: int):
    """A fitted ``SkactivemlClassifier`` answering ``predict_proba`` from stored outputs."""
    from skactiveml.base import SkactivemlClassifier

    class Precomputed(SkactivemlClassifier):
        def __init__(self, probas=None, classes=None, missing_label=np.nan):
            super().__init__(classes=classes, missing_label=missing_label)
            self.probas = probas

        def fit(self, X, y, sample_weight=None):  # pragma: no cover - fit_clf=False
            return self

        def predict_proba(self, X, return_embeddings=False):
            if len(X) != len(self.probas):
                raise ValueError(f"expected the {len(self.probas)} unlabeled rows, got {len(X)}")
            return (self.probas, X) if return_embeddings else self.probas

    clf = Precomputed(probas=probas, classes=np.arange(classes))
    clf.classes_ = np.arange(classes)
    return clf


def run_baal(step: str, inputs: dict, args: argparse.Namespace) -> np.ndarray:
    from baal.active.heuristics import BALD, BatchBALD

    unl = inputs["unlabeled"]
    stack = inputs["fields"]["mc_probas"][unl]  # [n_unlabeled, classes, T], baal's layout
    if step == "bald":
        heuristic = BALD()
    elif step == "batchbald":
        heuristic = BatchBALD(num_samples=args.budget, num_draw=args.num_draw)
    else:
        raise ValueError(f"baal has no step {step!r} here")
    ranks, _ = heuristic.get_ranks(stack)
    return unl[np.asarray(ranks[:args.budget], dtype=np.int64)]


def run_medactive(step: str, inputs: dict, args: argparse.Namespace) -> np.ndarray:
    from medactive.predictions import ArrayPredictions
    from medactive.strategies import create_strategy

    strategy = create_strategy(STEPS[step][0], **medactive_options(step, args))
    result = strategy.query(ArrayPredictions(**inputs["fields"]), inputs["unlabeled"],
                            inputs["labeled"], args.budget, rng=args.seed)
    return result.indices


RUNNERS = {"medactive": run_medactive, "scikit-activeml": run_skactiveml, "baal": run_baal}


# ---------------------------------------------------------------- one measured process
def make_spec(step: str, n: int, impl: str, args: argparse.Namespace) -> dict:
    """What one process gets; the specs of a step's impls differ only in ``impl``."""
    shared = {"budget": args.batchbald_budget if step == "batchbald" else args.budget,
              "n_labeled": args.n_labeled, "dim": args.dim, "classes": args.classes,
              "mc_samples": args.mc_samples, "seed": args.seed, "num_draw": args.num_draw,
              "threads": args.threads}
    return {"step": step, "strategy": STEPS[step][0], "n": n, "impl": impl, "args": shared}


def worker(spec: dict) -> dict:
    """selection.py's measured worker with the query swapped for ``spec['impl']``'s."""
    selection = _load_selection()
    impl, step = spec["impl"], spec["step"]
    if impl == "scikit-activeml":  # import before the memory baseline
        import skactiveml.pool  # noqa: F401
        import sklearn.cluster
    elif impl == "baal":
        import baal.active.heuristics  # noqa: F401
        import torch

        if spec["args"]["threads"]:
            torch.set_num_threads(int(spec["args"]["threads"]))
    else:  # the libraries medactive imports lazily (k-means, kNN), as the peers' above
        import sklearn.cluster  # noqa: F401

        try:
            import faiss  # noqa: F401
        except ImportError:  # pragma: no cover - faiss-cpu is a dependency
            pass
    import medactive.strategies  # noqa: F401

    selection.run_ours = lambda _name, inputs, args: RUNNERS[impl](step, inputs, args)
    return selection.worker({**spec, "impl": "ours"})


def digest(spec: dict) -> str:
    """SHA-256 over the arrays ``spec``'s process builds (fields, labeled, unlabeled)."""
    selection = _load_selection()
    from medactive.strategies import create_strategy

    fields = create_strategy(spec["strategy"]).requires
    inputs = selection.make_inputs(spec["n"], tuple(fields), argparse.Namespace(**spec["args"]))
    h = hashlib.sha256()
    for name in sorted(inputs["fields"]):
        h.update(name.encode())
        h.update(np.ascontiguousarray(inputs["fields"][name]).tobytes())
    h.update(inputs["labeled"].tobytes())
    h.update(inputs["unlabeled"].tobytes())
    return h.hexdigest()


def peer_fits(step: str, n: int, args: argparse.Namespace) -> bool:
    """scikit-activeml's ProbCover holds dense ``n x n`` distances and masks (about 8 B each)."""
    if step != "probcover":
        return True
    return n * n * 8 <= args.peer_max_gb * 2**30


def python_for(impl: str, args: argparse.Namespace) -> str:
    if impl == "medactive":
        return sys.executable
    if args.peers_python:
        return args.peers_python
    return str(PEERS_PYTHON) if PEERS_PYTHON.is_file() else sys.executable


def _run_process(spec: dict, python: str, env: dict, timeout: float) -> dict:
    proc = subprocess.run([python, __file__, "--worker", json.dumps(spec)], capture_output=True,
                          text=True, env=env, timeout=timeout, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- driver
def summarise(rows: list[tuple[str, int, str, float, float]]) -> list[str]:
    """Lines of medians per (step, n, impl) and the ratios medactive / peer."""
    groups: dict[tuple[str, int], dict[str, list[tuple[float, float]]]] = {}
    for step, n, impl, sec, mb in rows:
        if np.isfinite(sec):
            groups.setdefault((step, n), {}).setdefault(impl, []).append((sec, mb))
    lines = []
    for (step, n), by_impl in groups.items():
        med = {impl: (statistics.median(s for s, _ in v), statistics.median(m for _, m in v),
                      len(v)) for impl, v in by_impl.items()}
        text = "; ".join(f"{impl} {s:.2f} s, {m:.0f} MB (runs: {k})"
                         for impl, (s, m, k) in med.items())
        peer = STEPS[step][1]
        if "medactive" in med and peer in med:
            (s0, m0, _), (s1, m1, _) = med["medactive"], med[peer]
            text += (f"; ratio medactive/{peer}: time {s0 / s1:.3f}, memory "
                     f"{m0 / m1 if m1 > 0 else float('nan'):.3f}")
        lines.append(f"{step} n={n}: {text}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 90_000])
    parser.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS))
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    parser.add_argument("--repeats", type=int, default=3, help="runs per impl, alternating")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--batchbald-budget", type=int, default=50,
                        help="budget of the batchbald step, for both impls")
    parser.add_argument("--num-draw", type=int, default=500,
                        help="BatchBALD's sampled label configurations (baal num_draw = "
                        "medactive n_config_samples)")
    parser.add_argument("--n-labeled", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--mc-samples", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP/torch threads of each measured process (0 = as is)")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds per process; a peer past it is not rerun at that n")
    parser.add_argument("--peer-max-gb", type=float, default=8.0,
                        help="skip scikit-activeml ProbCover where its dense n x n matrices "
                        "would exceed this")
    parser.add_argument("--peers-python", default=None,
                        help="interpreter of the peer processes (default: .venv-peers/bin/"
                        "python if it exists, else this one)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--digest", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    if args.digest:
        print(digest(json.loads(args.digest)), flush=True)
        return 0
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    env = dict(os.environ)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
    print(HEADER, flush=True)
    rows: list[tuple[str, int, str, float, float]] = []
    failures = 0
    for n in args.n:
        for step in args.steps:
            impls = [i for i in ("medactive", STEPS[step][1]) if i in args.impls]
            if STEPS[step][1] in impls and not peer_fits(step, n, args):
                logger.info("skip %s %s at n=%d: its dense n x n matrices exceed %.0f GB",
                            STEPS[step][1], step, n, args.peer_max_gb)
                impls.remove(STEPS[step][1])
            given_up: set[str] = set()
            for rep in range(args.repeats):
                for impl in impls:
                    if impl in given_up:
                        continue
                    spec = make_spec(step, n, impl, args)
                    logger.info("running %s n=%d %s (%d/%d)", step, n, impl, rep + 1,
                                args.repeats)
                    try:
                        res = _run_process(spec, python_for(impl, args), env, args.timeout)
                    except subprocess.TimeoutExpired:
                        given_up.add(impl)
                        logger.error("%s n=%d %s: over --timeout %.0f s, not rerun", step, n,
                                     impl, args.timeout)
                        print(f"{step},{n},{impl},nan,nan", flush=True)
                        continue
                    except (subprocess.SubprocessError, ValueError, IndexError) as exc:
                        failures += 1
                        err = getattr(exc, "stderr", "") or ""
                        logger.error("%s n=%d %s failed: %s %s", step, n, impl, exc, err[-2000:])
                        print(f"{step},{n},{impl},nan,nan", flush=True)
                        continue
                    rows.append((step, n, impl, res["seconds"], res["peak_mb"]))
                    print(f"{step},{n},{impl},{res['seconds']:.3f},{res['peak_mb']:.1f}",
                          flush=True)
                    logger.info("  %.2f s, +%.1f MB (inputs held: %.0f MB)", res["seconds"],
                                res["peak_mb"], res["base_mb"])
    for line in summarise(rows):
        print(line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
