"""Selection at scale: time and added peak memory of each strategy's selection step.

For every pool size ``n`` and every registered strategy, the selection runs in a fresh process
that first builds synthetic model outputs (embeddings ``[n, dim]`` float32 in ``classes``
Gaussian clusters, softmax probabilities ``[n, classes]`` and MC-dropout stacks
``[n, classes, T]``, with ensemble-member and augmentation stacks made the same way, and
Dirichlet parameters ``exp(logits) + 1``; only the fields the strategy requires), with a random labeled set of
``--n-labeled`` samples. It then resets the kernel's peak-RSS counter, runs the query for
``--budget`` samples and reports the wall time and the peak resident memory added above the
process holding its inputs (``VmHWM`` after minus ``VmRSS`` before, from /proc/self/status).

Implementations (column ``impl``):
- ``ours``: ``create_strategy(name).query(ArrayPredictions(...), ...)``, the library's path.
- ``naive``: the straightforward versions, where they fit in ``--naive-max-gb``:
  BADGE = materialised ``[n, classes*dim]`` gradient embeddings + scikit-learn's
  ``kmeans_plusplus`` (``n_local_trials=1``, the same plain D² sampling as ours); Core-Set =
  k-center greedy on a dense ``n × n`` distance matrix (scikit-learn ``pairwise_distances``).
  The naive matrices are float64 by default (``--naive-dtype``): scikit-learn upcasts float32
  to float64 in blocks on every distance call, which is several times slower.

The model-free representativeness strategies (issue 12: ``kmeans``, ``max_cover``,
``probcover``, ``facility_location``) are registered, so they run by default too (embeddings
only); :data:`REPRESENTATIVENESS` names them for ``--strategies representativeness``. They have
no naive baseline: the straightforward versions need a dense ``n × n`` similarity (64 GB in
float64 at n = 9·10^4), which is what their sparse kNN graphs avoid.

Composed names (``SAMPLER:SCORE``, ``hybrid:A+B``, ``fusion:A+B``, see
:mod:`medactive.strategies.composed`) are accepted by ``--strategies``; :data:`SAMPLERS` (each
sampler over ``margin``, one hybrid and one fusion) is ``--strategies samplers`` and is part of
the default run. A field a strategy requires other than ``embeddings``, ``probas`` and
``mc_probas`` (e.g. ``dal_unlabeled``) is made as a uniform ``[0, 1)`` float32 score ``[n]``.

A name may carry strategy options after ``@``, ``;``-separated (``NAME@KEY=VALUE;KEY=VALUE``,
values read as JSON where they parse, else as strings), so variants of one strategy are rows of
the same run, e.g. ``"badge@embedding_dtype=float16;lazy_updates=1"`` or
``"badge@seeding=kmeans||"``; the ``strategy`` column shows the name as given.

Usage:
    python benchmarks/selection.py                      # n = 1e4, 9e4, 1e6 (takes long)
    python benchmarks/selection.py --n 90000 --impls ours --strategies \
        "badge@embedding_dtype=float32;lazy_updates=1" "badge@seeding=kmeans||"
    python benchmarks/selection.py --n 90000 --impls ours --strategies representativeness
    python benchmarks/selection.py --n 10000 --strategies badge coreset_l2
    python benchmarks/selection.py --n 90000 1000000 --impls ours --strategies samplers
    python benchmarks/selection.py --n 10000 90000 --impls ours --strategies uncertainty

``--selection-device cuda`` runs ``ours`` on torch tensors on the GPU (the run's
``--selection-device``: the pool's fields are copied to the device inside the timed query,
CUDA is initialised before the clock; ``impl`` reads ``ours-cuda``, ``peak_mb`` stays host
memory); ``torch-cpu`` runs the same torch code on the CPU (``ours-torch-cpu``), to compare
the two backends on a machine without a GPU. Default ``cpu``: numpy, as before.

Output: CSV on standard output, ``strategy,n,impl,seconds,peak_mb``; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

try:
    import medactive  # noqa: F401
except ImportError:  # running from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

logger = logging.getLogger("benchmarks.selection")
HEADER = "strategy,n,impl,seconds,peak_mb"
NAIVE = ("badge", "coreset_l2", "coreset_cosine")
#: ``--strategies representativeness`` expands to these (issue 12, survey §3.2)
REPRESENTATIVENESS = ("kmeans", "max_cover", "probcover", "facility_location")
#: ``--strategies samplers`` expands to these: each sampler over one score, a hybrid, a fusion
SAMPLERS = ("power:margin", "softmax:margin", "rank:margin", "stochastic_batches:margin",
            "cluster:margin", "kdpp:margin", "class_balanced:margin", "clasp:margin",
            "hybrid:margin+kmeans", "fusion:margin+entropy")
#: ``--strategies uncertainty`` expands to these (issue 11, survey §3.1), ``entropy`` first as
#: the baseline the docs divide by; the training side of the methods that train extra models is
#: measured by benchmarks/uncertainty_cost.py
UNCERTAINTY = ("entropy", "bald", "batchbald", "ensemble_entropy", "ensemble_bald",
               "qbc_vote_entropy", "qbc_kl", "tta_kl", "egl", "egl_entropy", "learning_loss",
               "evidential", "evidential_epistemic", "dfal")
GROUPS = {"representativeness": REPRESENTATIVENESS, "samplers": SAMPLERS,
          "uncertainty": UNCERTAINTY}
#: stacks ``[n, classes, k]`` of ``k`` predictions per sample, built like MC-dropout passes
STACKS = ("mc_probas", "member_probas", "tta_probas")
#: fields built from the synthetic embeddings; any other required field is a [n] score
MODEL_FIELDS = ("embeddings", "probas", "dirichlet_alpha", *STACKS)


# ---------------------------------------------------------------- inputs
def make_inputs(n: int, fields: tuple[str, ...], args: argparse.Namespace) -> dict:
    """Synthetic outputs built block by block (no large temporaries before the baseline)."""
    rng = np.random.default_rng(args.seed)
    centres = rng.normal(scale=2.0, size=(args.classes, args.dim)).astype(np.float32)
    weights = rng.normal(scale=0.2, size=(args.dim, args.classes)).astype(np.float32)
    out = {}
    if any(f in MODEL_FIELDS for f in fields):
        emb = np.empty((n, args.dim), dtype=np.float32)
        for start in range(0, n, 65536):
            stop = min(start + 65536, n)
            cls = rng.integers(args.classes, size=stop - start)
            emb[start:stop] = centres[cls] + rng.standard_normal((stop - start, args.dim),
                                                                 dtype=np.float32)
        if "embeddings" in fields:
            out["embeddings"] = emb
        if "probas" in fields:
            out["probas"] = np.empty((n, args.classes), dtype=np.float32)
        if "dirichlet_alpha" in fields:
            out["dirichlet_alpha"] = np.empty((n, args.classes), dtype=np.float32)
        for field in STACKS:
            if field in fields:
                out[field] = np.empty((n, args.classes, args.mc_samples), dtype=np.float32)
        for start in range(0, n, 65536):
            stop = min(start + 65536, n)
            logits = emb[start:stop] @ weights
            if "probas" in out:
                out["probas"][start:stop] = _softmax(logits, axis=1)
            if "dirichlet_alpha" in out:  # evidence exp(logits), alpha = evidence + 1
                out["dirichlet_alpha"][start:stop] = np.exp(np.clip(logits, -20, 20)) + 1.0
            for field in STACKS:
                if field in out:
                    noise = rng.normal(size=(stop - start, args.classes, args.mc_samples))
                    out[field][start:stop] = _softmax(logits[:, :, None] + noise, axis=1)
        del emb
    for field in fields:  # e.g. dal_unlabeled, vaal_unlabeled: a per-sample score in [0, 1)
        if field not in MODEL_FIELDS:
            out[field] = rng.random(n, dtype=np.float32)
    labeled = np.sort(rng.choice(n, size=args.n_labeled, replace=False))
    unlabeled = np.setdiff1d(np.arange(n), labeled)
    return {"fields": out, "labeled": labeled, "unlabeled": unlabeled}


def _softmax(z: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- implementations
def parse_variant(spec: str) -> tuple[str, dict]:
    """``"badge@seeding=kmeans||;rounds=3"`` -> ``("badge", {"seeding": "kmeans||", "rounds": 3})``."""
    name, _, rest = spec.partition("@")
    options = {}
    for item in filter(None, rest.split(";")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"strategy option {item!r} of {spec!r} is not KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return name, options


def make_strategy(spec: str):
    from medactive.strategies import create_strategy

    name, options = parse_variant(spec)
    return create_strategy(name, **options)


def run_ours(name: str, inputs: dict, args: argparse.Namespace) -> np.ndarray:
    from medactive.predictions import ArrayPredictions

    preds = ArrayPredictions(**inputs["fields"])
    preds.array_device = _array_device(getattr(args, "selection_device", "cpu"))
    result = make_strategy(name).query(preds, inputs["unlabeled"], inputs["labeled"],
                                       args.budget, rng=args.seed)
    return result.indices


def _array_device(device: str):
    """``None`` (numpy), or the host-to-device copy of ``--selection-device``."""
    if device == "cpu":
        return None
    if device == "cuda":
        from medactive.query_device import array_device

        return array_device("cuda")
    import torch

    return torch.as_tensor


def run_naive(name: str, inputs: dict, args: argparse.Namespace) -> np.ndarray:
    dtype = np.dtype(args.naive_dtype)
    fields, unl, lab = inputs["fields"], inputs["unlabeled"], inputs["labeled"]
    if name == "badge":
        from sklearn.cluster import kmeans_plusplus

        p, h = fields["probas"][unl].astype(dtype), fields["embeddings"][unl].astype(dtype)
        p[np.arange(p.shape[0]), p.argmax(axis=1)] -= 1.0
        grads = (p[:, :, None] * h[:, None, :]).reshape(p.shape[0], -1)
        del p, h
        _, positions = kmeans_plusplus(grads, args.budget, random_state=args.seed,
                                       n_local_trials=1)
        return unl[positions]
    from sklearn.metrics import pairwise_distances

    X = fields["embeddings"].astype(dtype)
    D = pairwise_distances(X, metric="euclidean" if name == "coreset_l2" else "cosine")
    min_d = D[np.ix_(unl, lab)].min(axis=1)
    picks = []
    for _ in range(args.budget):
        j = int(np.argmax(min_d))
        picks.append(j)
        min_d = np.minimum(min_d, D[unl[j], unl])  # D is symmetric: a row, not a column
        min_d[picks] = -1.0
    return unl[np.array(picks)]


def naive_fits(name: str, n: int, args: argparse.Namespace) -> bool:
    itemsize = np.dtype(args.naive_dtype).itemsize
    if name == "badge":
        need = n * args.classes * args.dim * itemsize
    elif name in NAIVE:
        need = n * n * itemsize
    else:
        return False
    return need <= args.naive_max_gb * 2**30


# ---------------------------------------------------------------- one measured process
def _status_mb() -> dict[str, float]:
    values = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def worker(spec: dict) -> dict:
    args = argparse.Namespace(**spec["args"])
    fields = make_strategy(spec["strategy"]).requires
    if spec["impl"] == "naive" and spec["strategy"] == "badge":
        fields = ("probas", "embeddings")
    if spec["impl"] == "naive":  # import before the clock and the memory baseline
        import sklearn.cluster
        import sklearn.metrics  # noqa: F401
    inputs = make_inputs(spec["n"], tuple(fields), args)
    device = getattr(args, "selection_device", "cpu")
    if spec["impl"] == "ours" and device != "cpu":  # torch imported, CUDA started, off the clock
        import torch

        if device == "cuda":
            torch.zeros(1, device="cuda")
            torch.cuda.synchronize()
    base = _status_mb()["VmRSS"]
    try:  # Linux >= 4.0: reset the peak-RSS counter to the current RSS
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        reset = True
    except OSError:
        reset = False
    sampled = [base]
    done = threading.Event()

    def sample() -> None:  # a cross-check (and the measure where the reset is not allowed)
        while not done.wait(0.005):
            sampled.append(_status_mb()["VmRSS"])

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.perf_counter()
    run = run_ours if spec["impl"] == "ours" else run_naive
    indices = run(spec["strategy"], inputs, args)
    seconds = time.perf_counter() - start
    done.set()
    thread.join()
    peak = max(_status_mb()["VmHWM"] if reset else 0.0, max(sampled))
    assert len(np.unique(indices)) == args.budget
    return {"seconds": seconds, "peak_mb": peak - base, "base_mb": base, "hwm_reset": reset}


# ---------------------------------------------------------------- driver
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10_000, 90_000, 1_000_000])
    parser.add_argument("--strategies", nargs="+", default=None,
                        help="names, plain or composed (SAMPLER:SCORE, hybrid:A+B, "
                        "fusion:A+B); default: every registered strategy, then 'samplers'; "
                        "'representativeness' = " + " ".join(REPRESENTATIVENESS)
                        + "; 'samplers' = " + " ".join(SAMPLERS))
    parser.add_argument("--impls", nargs="+", default=["ours", "naive"],
                        choices=["ours", "naive"])
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--n-labeled", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--mc-samples", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--selection-device", default="cpu",
                        choices=["cpu", "cuda", "torch-cpu"],
                        help="where 'ours' selects: cpu (numpy, default), cuda (torch on the "
                        "GPU), torch-cpu (the torch backend on the CPU)")
    parser.add_argument("--naive-dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--naive-max-gb", type=float, default=8.0,
                        help="skip a naive run whose main matrix would exceed this")
    parser.add_argument("--threads", type=int, default=1,
                        help="BLAS/OpenMP threads of each measured process (0 = leave as is)")
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per process")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    from medactive.errors import ConfigError
    from medactive.strategies import list_strategies

    strategies = []
    for name in args.strategies or [*list_strategies(), "samplers"]:
        strategies.extend(GROUPS.get(name, [name]))
    strategies = list(dict.fromkeys(strategies))
    try:  # an unknown name or option: one line before any process starts
        for name in strategies:
            make_strategy(name)
    except (ConfigError, KeyError, ValueError) as exc:
        parser.error(f"--strategies: {exc}")
    try:
        _array_device(args.selection_device)  # cuda without a GPU: one line
    except ConfigError as exc:
        parser.error(str(exc))
    label = {"cpu": "", "cuda": "-cuda", "torch-cpu": "-torch-cpu"}[args.selection_device]
    env = dict(os.environ)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(args.threads)
    shared = {k: v for k, v in vars(args).items() if k not in ("worker", "n", "strategies")}
    print(HEADER, flush=True)
    failures = 0
    for n in args.n:
        for name in strategies:
            for impl in args.impls:
                if impl == "naive" and not naive_fits(name, n, args):
                    if name in NAIVE:
                        logger.info("skip naive %s at n=%d: does not fit in %.0f GB", name, n,
                                    args.naive_max_gb)
                    continue
                spec = {"strategy": name, "n": n, "impl": impl, "args": shared}
                logger.info("running %s n=%d %s", name, n, impl)
                try:
                    proc = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)],
                                          capture_output=True, text=True, env=env,
                                          timeout=args.timeout, check=True)
                    res = json.loads(proc.stdout.strip().splitlines()[-1])
                except (subprocess.SubprocessError, ValueError, IndexError) as exc:
                    failures += 1
                    err = getattr(exc, "stderr", "") or ""
                    logger.error("%s n=%d %s failed: %s %s", name, n, impl, exc, err[-2000:])
                    print(f"{name},{n},{impl + label * (impl == 'ours')},nan,nan", flush=True)
                    continue
                shown = impl + label * (impl == "ours")
                print(f"{name},{n},{shown},{res['seconds']:.3f},{res['peak_mb']:.1f}", flush=True)
                logger.info("  %.2f s, +%.1f MB (inputs held: %.0f MB)", res["seconds"],
                            res["peak_mb"], res["base_mb"])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
