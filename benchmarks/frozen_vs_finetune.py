"""Frozen-feature rounds vs finetuning: wall time of one AL run in each mode, same machine.

One AL run is ``--rounds`` query rounds after the initial set, so ``rounds + 1`` trained
models (6 by default: initial + 5 rounds), on BloodMNIST (``--data``; default
``../shared/data/medmnist/bloodmnist.npz`` beside this checkout). Both modes start from the
same encoder file (``--encoder``; when absent, a quick SimCLR encoder is pretrained into that
path first, or into a temporary folder: its time is printed but counted in neither run):

- ``frozen``: ``train_mode="frozen"``: the pool's embeddings are computed once (into a fresh
  embedding cache, so that time *is* counted) and every round trains only a head on them;
- ``finetune``: ``train_mode="finetune"``: every round trains the whole network from the
  encoder with the ``--preset`` training recipe (default ``cpu``).

Both runs use the same strategy, budget, seed, data and preset, one after the other in this
process with the same torch thread count; each is timed from building its task (data loading,
embedding) to its last round's evaluation.

Usage:
    python benchmarks/frozen_vs_finetune.py                       # BloodMNIST, margin, b = 50
    python benchmarks/frozen_vs_finetune.py --encoder blood.pt --rounds 1 --threads 2

Output on standard output (progress on stderr): a CSV
``mode,models,seconds,seconds_per_model,<metric>`` with one line per mode (``<metric>`` is the
last round's test accuracy, or AUC for binary data), then
``ratio,finetune_over_frozen,<x>``: how many times longer the finetune run took.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "medmnist" / "bloodmnist.npz"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="dataset (default BloodMNIST)")
    p.add_argument("--encoder", default=None,
                   help="encoder file (`medactive pretrain`); pretrained here when absent")
    p.add_argument("--strategy", default="margin", help="query strategy (default margin)")
    p.add_argument("--budget", type=int, default=50, help="b, also the initial set (50)")
    p.add_argument("--rounds", type=int, default=5, help="query rounds T (5: 6 models)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="cpu", help="training preset (default cpu)")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--pretrain-epochs", type=int, default=5,
                   help="epochs of the quick encoder when --encoder is absent (5)")
    p.add_argument("--width", type=int, default=32, help="quick encoder's width (32)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    return p.parse_args(argv)


def quick_encoder(args: argparse.Namespace, path: Path) -> float:
    """Pretrain a SimCLR encoder into ``path`` (a no-op if it holds this one); seconds."""
    from dataclasses import replace

    from medactive.data.classification import load_classification_data
    from medactive.encoders import MEDICAL_SSL, pretrain_encoder

    dataset = load_classification_data(args.data)
    start = time.perf_counter()
    pretrain_encoder(dataset, path, ssl=replace(MEDICAL_SSL, epochs=args.pretrain_epochs),
                     model="smallcnn", width=args.width, seed=args.seed, device=args.device,
                     progress=True)
    return time.perf_counter() - start


def timed_run(args: argparse.Namespace, mode: str, encoder: Path, cache: Path):
    """One AL run in ``mode``; ``(seconds, records, number of classes)``."""
    from medactive.experiment import ExperimentConfig, build_task, loop_config
    from medactive.loop.active_loop import run_active_learning

    config = ExperimentConfig(data=args.data, strategy=args.strategy, initial=args.budget,
                              budget=args.budget, rounds=args.rounds, seed=args.seed,
                              preset=args.preset, epochs=args.epochs, device=args.device,
                              encoder=str(encoder), train_mode=mode)
    os.environ["MEDACTIVE_CACHE"] = str(cache / mode)  # a cold embedding cache per run
    start = time.perf_counter()
    task = build_task(config, progress=True)
    records = run_active_learning(task, loop_config(config))
    return time.perf_counter() - start, records, task.dataset.n_classes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if not Path(args.data).exists():
        print(f"data {args.data} not found; pass --data", file=sys.stderr)
        return 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        encoder = Path(args.encoder) if args.encoder else tmp_path / "encoder.pt"
        if not encoder.is_file():
            seconds = quick_encoder(args, encoder)
            print(f"pretrained {encoder} ({args.pretrain_epochs} epochs): {seconds:.1f} s, "
                  "counted in neither run", file=sys.stderr)
        results: dict[str, tuple] = {}
        for mode in ("frozen", "finetune"):
            print(f"{mode} run: {args.strategy}, b = {args.budget}, {args.rounds} rounds",
                  file=sys.stderr)
            seconds, records, n_classes = timed_run(args, mode, encoder, tmp_path / "cache")
            results[mode] = (seconds, records)
    metric = "test_auc" if n_classes == 2 else "test_accuracy"
    print(f"mode,models,seconds,seconds_per_model,{metric}")
    for mode, (seconds, records) in results.items():
        print(f"{mode},{len(records)},{seconds:.2f},{seconds / len(records):.3f},"
              f"{records[-1].metrics.get(metric, float('nan')):.4f}")
    ratio = results["finetune"][0] / max(results["frozen"][0], 1e-9)
    print(f"ratio,finetune_over_frozen,{ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
