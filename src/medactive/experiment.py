"""One active-learning experiment from a config: build the task, run the loop, write outputs.

Shared by ``medactive run``, ``medactive demo`` and the benchmark runner. Outputs in ``out_dir``:

- ``run.json``: the full config, library versions, the task's description.
- ``rounds.csv``: one row per round: ``round, n_labeled`` and every metric on val and test
  (``val_accuracy``, ``test_auc``, ...), plus wall times.
- ``selections.csv``: ``round, sample_id, score`` for the initial set (round 0, score empty) and
  every queried batch (the round whose training set it joined).
- ``timings.csv``: wall seconds per round and of its query (kept apart so that ``rounds.csv``
  is identical between two runs with the same seed).
- ``run.log``: the log of the run.
- ``round_<r>.png`` (segmentation): a few test slices with prediction and ground-truth contours.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medactive import __version__
from medactive.errors import ConfigError
from medactive.loop.active_loop import LoopConfig, RoundRecord, run_active_learning

logger = logging.getLogger(__name__)

TASKS = ("auto", "classification", "segmentation")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that defines one AL experiment.

    Attributes:
        data: dataset path, or ``"default"`` for the embedded PneumoniaMNIST.
        strategy, initial, budget, rounds, seed, finetune, strategy_options: see
            :class:`~medactive.loop.active_loop.LoopConfig`.
        task: ``"classification"``, ``"segmentation"`` or ``"auto"`` (inferred from ``data``).
        preset: training preset (``"survey"``, ``"cpu"``, ``"smoke"``).
        epochs: override the preset's epochs (segmentation: iterations).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        data_options: loader options (e.g. ``image_size``, ``labels``, ``frames``).
        train_options: overrides of the training preset's fields (e.g.
            ``{"augmentation": "isic"}`` for ISIC 2020, ``{"n_mc_samples": 10}``).
    """

    data: str
    strategy: str
    initial: int
    budget: int
    rounds: int
    seed: int = 0
    task: str = "auto"
    preset: str = "cpu"
    epochs: int | None = None
    finetune: bool = False
    device: str = "auto"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    data_options: dict[str, Any] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def loop_config(config: ExperimentConfig) -> LoopConfig:
    return LoopConfig(strategy=config.strategy, initial=config.initial, budget=config.budget,
                      rounds=config.rounds, seed=config.seed, finetune=config.finetune,
                      strategy_options=dict(config.strategy_options))


def resolve_task_kind(config: ExperimentConfig) -> str:
    if config.task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {config.task!r}")
    if config.task != "auto":
        return config.task
    if config.data != "default" and Path(config.data).is_dir():
        try:
            from medactive.segmentation.task import looks_like_segmentation_data
        except ImportError:
            return "classification"
        if looks_like_segmentation_data(config.data):
            return "segmentation"
    return "classification"


def build_task(config: ExperimentConfig, *, progress: bool = False):
    """The :class:`~medactive.loop.task.Task` described by ``config``."""
    kind = resolve_task_kind(config)
    if kind == "segmentation":
        try:
            from medactive.segmentation.task import build_segmentation_task
        except ImportError as exc:
            raise ConfigError(f"segmentation is not available: {exc}") from exc
        if {"cache_dir", "cache_dtype"} & set(config.data_options):
            raise ConfigError("--cache-dir / --cache-float16 apply to classification pools only")
        options = {k: v for k, v in config.data_options.items() if k != "labels"}
        return build_segmentation_task(config.data, preset=config.preset, seed=config.seed,
                                       device=config.device, iterations=config.epochs,
                                       progress=progress,
                                       train_options=dict(config.train_options) or None,
                                       **options)
    from medactive.data import load_classification_data
    from medactive.tasks.classification import ClassificationTask
    from medactive.training.presets import get_preset

    options = dict(config.data_options)
    try:
        train_config = get_preset(config.preset, epochs=config.epochs, **config.train_options)
    except TypeError as exc:
        raise ConfigError(f"invalid training option: {exc}") from exc
    if options.get("image_size"):
        train_config = train_config.replace(image_size=int(options["image_size"]))
    # the train/val/test split is fixed across AL seeds (seed 0 unless data_options says
    # otherwise), so every seed of a benchmark evaluates on the same test set
    options.pop("image_size", None)
    split_seed = int(options.pop("split_seed", 0))
    cache = {k: options.pop(k) for k in ("cache_dir", "cache_dtype") if k in options}
    dataset = load_classification_data(config.data, seed=split_seed,
                                       image_size=train_config.image_size, **options)
    return ClassificationTask(dataset, train_config, device=config.device, progress=progress,
                              **cache)


def run_experiment(config: ExperimentConfig, *, out_dir: str | Path | None = None,
                   completed: Sequence[RoundRecord] = (), task=None, progress: bool = False,
                   on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
    """Run one experiment; write ``run.json``, ``rounds.csv``, ``selections.csv`` to ``out_dir``."""
    task = task or build_task(config, progress=progress)
    writer = RunWriter(Path(out_dir), config, task) if out_dir is not None else None

    def _on_round(record: RoundRecord) -> None:
        if writer is not None:
            writer.add(record)
        if on_round is not None:
            on_round(record)

    handler = None
    if writer is not None:
        handler = logging.FileHandler(writer.out_dir / "run.log", mode="w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger("medactive")
        root.addHandler(handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
    try:
        return run_active_learning(task, loop_config(config), completed=completed,
                                   on_round=_on_round)
    finally:
        if handler is not None:
            logging.getLogger("medactive").removeHandler(handler)
            handler.close()


def supervised_reference(config: ExperimentConfig, *, task=None) -> dict[str, float]:
    """Metrics of a model trained on every pool label (the survey's "Fully supervised" row)."""
    from medactive._random import derive_seed

    task = task or build_task(config)
    idx = np.arange(len(task.pool_ids), dtype=np.int64)
    model = task.fit(idx, task.pool_labels(idx), seed=derive_seed(config.seed, "supervised"))
    metrics = {f"val_{k}": v for k, v in task.evaluate(model, "val").items()}
    metrics.update({f"test_{k}": v for k, v in task.evaluate(model, "test").items()})
    return metrics


def library_versions() -> dict[str, str]:
    import monai
    import sklearn
    import torch

    return {"medactive": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__, "monai": monai.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform()}


class RunWriter:
    """Writes a run's files, rewriting each atomically after every round."""

    def __init__(self, out_dir: Path, config: ExperimentConfig, task) -> None:
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.task = task
        self.rows: list[dict[str, Any]] = []
        self.selections: list[tuple[int, str, float]] = []
        self.timings: list[tuple[int, float, float]] = []
        info = {"config": config.to_dict(), "task": task.describe(),
                "versions": library_versions()}
        _atomic_write(self.out_dir / "run.json", json.dumps(info, indent=2, default=str) + "\n")

    def add(self, record: RoundRecord) -> None:
        if getattr(self.task, "kind", "") == "segmentation" and \
                getattr(self.task, "last_model", None) is not None:
            from medactive.segmentation import save_round_figure

            save_round_figure(self.task, self.task.last_model,
                              self.out_dir / f"round_{record.round}.png",
                              title=f"round {record.round}: {record.n_labeled} labelled slices")
        row = {"round": record.round, "n_labeled": record.n_labeled}
        row.update(record.metrics)
        self.rows.append(row)
        # wall times vary between identical runs: kept out of rounds.csv so that it reproduces
        self.timings.append((record.round, record.seconds, record.query_seconds))
        ids = self.task.pool_ids
        if record.round == 0:
            self.selections += [(0, str(ids[i]), float(s))
                                for i, s in zip(record.added_idx, record.added_scores)]
        self.selections += [(record.round + 1, str(ids[i]), float(s))
                            for i, s in zip(record.queried_idx, record.queried_scores)]
        self._flush()

    def _flush(self) -> None:
        columns: list[str] = []
        for row in self.rows:
            columns += [c for c in row if c not in columns]
        lines = [",".join(columns)]
        for row in self.rows:
            lines.append(",".join(_fmt(row.get(c, "")) for c in columns))
        _atomic_write(self.out_dir / "rounds.csv", "\n".join(lines) + "\n")
        path = self.out_dir / "selections.csv"
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["round", "sample_id", "score"])
            for rnd, sid, score in self.selections:
                w.writerow([rnd, sid, "" if math.isnan(score) else repr(score)])
        os.replace(tmp, path)
        _atomic_write(self.out_dir / "timings.csv", "round,seconds,query_seconds\n" + "".join(
            f"{r},{s:.3f},{q:.3f}\n" for r, s, q in self.timings))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}" if abs(value) >= 1e-4 else repr(value)
    return str(value)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
