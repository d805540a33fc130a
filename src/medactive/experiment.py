"""One active-learning experiment from a config: build the task, run the loop, write outputs.

Shared by ``medactive run``, ``medactive demo`` and the benchmark runner. Outputs in ``out_dir``:

- ``run.json``: the full config, library versions, the task's description.
- ``rounds.csv``: one row per round: ``round, n_labeled`` and every metric on val and test
  (``val_accuracy``, ``test_auc``, ...), plus wall times.
- ``selections.csv``: ``round, sample_id, score`` for the initial set (round 0, score empty) and
  every queried batch (the round whose training set it joined).
- ``timings.csv``: wall seconds per round and of its query (kept apart so that ``rounds.csv``
  is identical between two runs with the same seed).
- ``pseudo_labels.csv`` (only with pseudo-labelling): ``round, sample_id, label``, the
  pseudo-labelled samples each round's model trained on besides its labels (chosen by the
  previous round's model; never labels, never in ``selections.csv``). ``rounds.csv`` then also
  has ``n_pseudo`` and ``pseudo_label_accuracy``.
- Region-based segmentation (``data_options={"region_size": P}``): the pool, ``n_labeled``
  and the selections are patches (ids ``"<slice id>@<row>,<col>"``), and ``rounds.csv`` also
  has ``labelled_pixel_fraction`` and ``n_labelled_slices`` (the task's ``label_metrics``).

:func:`read_run` reads these files back as loop records, so a stopped run can be resumed with
``run_experiment(config, out_dir=same, completed=read_run(same, task.pool_ids))``.
- ``pretrained.pt`` (only with ``ssl``): the self-supervised backbone weights with their
  content key (settings, seed, model, pool), reused by a resumed run instead of pretraining
  again.
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
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from medactive._version import __version__
from medactive.errors import ConfigError
from medactive.loop.active_loop import LoopConfig, RoundRecord, run_active_learning
from medactive.loop.pseudo_label import PseudoLabelConfig

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
        data_options: loader options (e.g. ``image_size``, ``labels``, ``frames``;
            segmentation ``region_size``: label square patches of that side, survey §4.3.1).
        train_options: overrides of the training preset's fields (e.g.
            ``{"augmentation": "isic"}`` for ISIC 2020, ``{"n_mc_samples": 10}``).
        pseudo_label: CEAL pseudo-labelling settings ``{"entropy": δ0, "decay": r, "max": N}``
            (see :class:`~medactive.loop.pseudo_label.PseudoLabelConfig`); ``None``: off.
        ssl: self-supervised pretraining of the backbone on the pool, e.g.
            ``{"method": "simclr", "epochs": 5}`` (see
            :class:`~medactive.encoders.simclr.SSLConfig`; classification only): once
            per experiment, seeded from ``seed``; every round's model starts from it.
            ``None``: off.
        initial_strategy: ``"random"`` (default), or a strategy choosing the initial set on the
            self-supervised embeddings (``"typiclust"``, ``"coreset_l2"``; needs ``ssl``).
        encoder: where round models start from, or the fixed features of frozen rounds: a
            file written by ``medactive pretrain`` or ``"timm:NAME"`` (see
            :func:`~medactive.encoders.load_encoder`; classification only). ``None``: none.
        encoder_weights: local weights file of a ``timm:NAME`` encoder.
        train_mode: ``"finetune"`` (every round trains the whole network, from ``encoder``
            when given) or ``"frozen"`` (needs ``encoder``: its pool embeddings are computed
            once and each round trains only a head on them; ``train_options["head"]`` holds
            :class:`~medactive.tasks.classification.head.HeadConfig` fields).
        semi_supervised: ``"fixmatch"`` (classification) or ``"mean-teacher"``
            (segmentation) semi-supervised training on the unlabeled pool each round;
            ``None``: labels only. Pseudo-targets never become labels.
        semi_options: overrides of the method's config fields (e.g. ``{"threshold": 0.9}``).
        selection_device: where queries run: ``"cpu"`` (numpy) or ``"cuda"`` (torch tensors
            on the GPU, same picks; see :mod:`medactive.query_device`).
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
    pseudo_label: dict[str, Any] | None = None
    ssl: dict[str, Any] | None = None
    initial_strategy: str = "random"
    encoder: str | None = None
    encoder_weights: str | None = None
    train_mode: str = "finetune"
    semi_supervised: str | None = None
    semi_options: dict[str, Any] = field(default_factory=dict)
    selection_device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def loop_config(config: ExperimentConfig) -> LoopConfig:
    pseudo = (None if config.pseudo_label is None
              else PseudoLabelConfig.from_dict(dict(config.pseudo_label)))
    return LoopConfig(strategy=config.strategy, initial=config.initial, budget=config.budget,
                      rounds=config.rounds, seed=config.seed, finetune=config.finetune,
                      strategy_options=dict(config.strategy_options), pseudo_label=pseudo,
                      initial_strategy=config.initial_strategy)


TRAIN_MODES = ("finetune", "frozen")
SEMI_METHODS = {"fixmatch": "classification", "mean-teacher": "segmentation"}


def check_training_options(config: ExperimentConfig, kind: str | None = None) -> None:
    """Refuse ``encoder`` / ``train_mode`` / ``semi_supervised`` / a head recipe where they do
    not apply or conflict (cheap, before any data is read).

    Raises:
        ConfigError: frozen mode without an encoder, encoder weights without a ``timm:``
            encoder, an encoder together with ``ssl``, an encoder, frozen mode or fixmatch for
            segmentation, mean-teacher for classification, unknown values or options.
    """
    head = config.train_options.get("head")
    if config.train_mode not in TRAIN_MODES:
        raise ConfigError(f"--train-mode must be one of {', '.join(TRAIN_MODES)}, got "
                          f"{config.train_mode!r}")
    if config.train_mode == "frozen" and config.encoder is None:
        raise ConfigError("--train-mode frozen trains a head on a fixed encoder's embeddings: "
                          "give --encoder FILE (from `medactive pretrain`) or timm:NAME")
    if config.encoder_weights is not None:
        if config.encoder is None or not str(config.encoder).startswith("timm:"):
            raise ConfigError("--encoder-weights loads a local checkpoint into --encoder "
                              "timm:NAME; a medactive encoder file holds its own weights")
        if not Path(config.encoder_weights).is_file():
            raise ConfigError(f"--encoder-weights {config.encoder_weights}: file not found")
    if config.encoder is not None and not str(config.encoder).startswith("timm:") and \
            not Path(config.encoder).is_file():
        raise ConfigError(f"--encoder {config.encoder}: no such encoder file (write one with "
                          "`medactive pretrain`, or use timm:NAME --encoder-weights FILE)")
    if config.encoder is not None and config.ssl is not None:
        raise ConfigError("--ssl pretrains a backbone and --encoder supplies one: use one "
                          "(`medactive pretrain` writes an encoder file)")
    if head is not None and config.train_mode != "frozen":
        raise ConfigError("--head (train option head) applies to --train-mode frozen only")
    if config.semi_supervised is not None and config.semi_supervised not in SEMI_METHODS:
        raise ConfigError(f"--semi-supervised must be one of {', '.join(SEMI_METHODS)}, got "
                          f"{config.semi_supervised!r}")
    if config.semi_options and config.semi_supervised is None:
        raise ConfigError(f"semi_options {config.semi_options} given without --semi-supervised")
    learning_loss = _check_learning_loss(config)
    ensemble = _check_ensemble(config) > 1
    evidential = _check_evidential(config)
    wants = [config.encoder is not None, config.train_mode != "finetune",
             config.semi_supervised is not None, learning_loss, ensemble, evidential]
    if not any(wants):
        return
    kind = kind or resolve_task_kind(config)
    if config.semi_supervised is not None and SEMI_METHODS[config.semi_supervised] != kind:
        other = next(m for m, k in SEMI_METHODS.items() if k == kind) \
            if kind in SEMI_METHODS.values() else None
        raise ConfigError(f"--semi-supervised {config.semi_supervised} is for "
                          f"{SEMI_METHODS[config.semi_supervised]}, not {kind}"
                          + (f"; use {other}" if other else ""))
    if kind != "classification" and ensemble:
        raise ConfigError(f"--ensemble-size is for classification only for now, not {kind}")
    if kind != "classification" and evidential:
        raise ConfigError(f"--evidential is for classification only for now, not {kind}")
    if kind != "classification" and (config.encoder is not None
                                     or config.train_mode != "finetune"):
        raise ConfigError(f"--encoder and --train-mode frozen are for classification only "
                          f"for now, not {kind}")
    if kind == "classification":
        from medactive.tasks.classification.semi_supervised import semi_supervised_config

        semi_supervised_config(config.semi_supervised, dict(config.semi_options))
        if head is not None:
            from medactive.tasks.classification.head import HeadConfig

            HeadConfig.from_dict(head, source="--head (train option head)")


def _check_flag(config: ExperimentConfig, option: str, *, field: str, needs_flag: str,
                without_semi: str) -> bool:
    """Whether the boolean train option ``option`` is on; refuses a non-boolean value, FixMatch
    with it (``without_semi`` says why), and a strategy reading ``field`` without it
    (``needs_flag`` is that line)."""
    value = config.train_options.get(option, False)
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"train option {option} must be true or false "
                          f"(--{option.replace('_', '-')}), got {value!r}")
    if value and config.semi_supervised is not None:
        raise ConfigError(f"--{option.replace('_', '-')} with --semi-supervised is not "
                          f"supported ({without_semi})")
    if not value and field in _strategy_requires(config):
        raise ConfigError(needs_flag)
    return bool(value)


def _check_learning_loss(config: ExperimentConfig) -> bool:
    """``train_options.learning_loss``, checked by :func:`_check_flag`."""
    from medactive.tasks.learning_loss import NEEDS_FLAG

    return _check_flag(config, "learning_loss", field="predicted_loss", needs_flag=NEEDS_FLAG,
                       without_semi="the module ranks the losses of labelled batches only")


def _strategy_requires(config: ExperimentConfig) -> tuple[str, ...]:
    """The prediction fields the run's strategy reads (none when its name or options are bad:
    that is reported where the strategy is built)."""
    from medactive.strategies import create_strategy

    try:
        return tuple(create_strategy(config.strategy, **dict(config.strategy_options)).requires)
    except ConfigError:
        return ()


def _check_evidential(config: ExperimentConfig) -> bool:
    """``train_options.evidential``, checked by :func:`_check_flag`."""
    from medactive.tasks.evidential import NEEDS_FLAG

    return _check_flag(config, "evidential", field="dirichlet_alpha", needs_flag=NEEDS_FLAG,
                       without_semi="FixMatch's loss is a cross-entropy")


def _check_ensemble(config: ExperimentConfig) -> int:
    """``train_options.ensemble_size`` (default 1), checked; refuses a strategy reading the
    members' probabilities (``"member_probas"``) without an ensemble of 2 or more."""
    from medactive.tasks.ensemble import check_ensemble_size

    size = check_ensemble_size(config.train_options.get("ensemble_size", 1),
                               name="--ensemble-size (train option ensemble_size)")
    if "ensemble_workers" in config.train_options:
        raise ConfigError("train option ensemble_workers: the worker count is an execution "
                          "setting, not part of a run's config (it never changes results); "
                          "give `medactive run --ensemble-workers N` instead")
    if size < 2 and "member_probas" in _strategy_requires(config):
        from medactive.strategies.ensemble import NEEDS_MEMBERS

        raise ConfigError(f"{config.strategy} {NEEDS_MEMBERS}")
    return size


def check_ssl_options(config: ExperimentConfig, kind: str | None = None) -> None:
    """Refuse ``ssl`` / ``initial_strategy`` / the training options of
    :func:`check_training_options` where they do not apply (cheap, before any work).

    Raises:
        ConfigError: pretraining asked for segmentation, a cold-start strategy without
            pretraining or an encoder, or invalid settings.
    """
    from medactive.encoders.simclr import SSLConfig

    check_training_options(config, kind)
    cold = config.initial_strategy != "random"
    if config.ssl is None and not cold:
        return
    kind = kind or resolve_task_kind(config)
    if kind != "classification":
        raise ConfigError("self-supervised pretraining and cold-start initial sets (--ssl, "
                          "--initial-strategy; grid ssl, initial_strategy) are for "
                          f"classification only, not {kind}")
    if config.ssl is not None:
        SSLConfig.from_dict(dict(config.ssl))
    if cold:
        if config.ssl is None and config.encoder is None:
            raise ConfigError(f"--initial-strategy {config.initial_strategy} chooses on "
                              "self-supervised embeddings: add --ssl simclr (grid: ssl = {...}) "
                              "or --encoder")
        from medactive.strategies import create_strategy

        chooser = create_strategy(config.initial_strategy)
        if set(chooser.requires) - {"embeddings"}:
            raise ConfigError(f"--initial-strategy {config.initial_strategy} needs "
                              f"{', '.join(chooser.requires)}; before any label only "
                              "embeddings exist: choose random, typiclust, coreset_l2, ...")


def pretrain_task(task, config: ExperimentConfig, *, cache_path: str | Path | None = None,
                  ) -> None:
    """Run ``config.ssl`` pretraining on ``task`` once (a no-op without ``ssl`` or when the
    task already holds the weights of these settings). Seeded from ``(seed, "ssl")``."""
    if config.ssl is None:
        return
    from medactive._random import derive_seed
    from medactive.encoders.simclr import SSLConfig

    ssl = SSLConfig.from_dict(dict(config.ssl))
    seed = derive_seed(config.seed, "ssl")
    key = getattr(task, "ssl_key", None)
    if key is not None and key.get("ssl") == ssl.to_dict() and key.get("seed") == seed:
        return
    if not hasattr(task, "pretrain"):
        raise ConfigError(f"{getattr(task, 'kind', type(task).__name__)} tasks have no "
                          "self-supervised pretraining; leave --ssl off")
    task.pretrain(ssl, seed=seed, cache_path=cache_path)


def resolve_task_kind(config: ExperimentConfig) -> str:
    if config.task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {config.task!r}")
    if config.task != "auto":
        return config.task
    if config.data != "default" and Path(config.data).is_dir():
        try:
            from medactive.tasks.segmentation.task import looks_like_segmentation_data
        except ImportError:
            return "classification"
        if looks_like_segmentation_data(config.data):
            return "segmentation"
    return "classification"


def build_task(config: ExperimentConfig, *, progress: bool = False,
               ensemble_workers: int | None = 1):
    """The :class:`~medactive.loop.task.Task` described by ``config``; a classification
    deep ensemble trains its members in ``ensemble_workers`` processes (1: serially, the
    default of library callers and bench units; ``None``: as the cores allow; see
    :func:`~medactive.tasks.ensemble.resolve_ensemble_workers`)."""
    kind = resolve_task_kind(config)
    check_ssl_options(config, kind)
    if kind == "segmentation":
        try:
            from medactive.tasks.segmentation.task import build_segmentation_task
        except ImportError as exc:
            raise ConfigError(f"segmentation is not available: {exc}") from exc
        if {"cache_dir", "cache_dtype"} & set(config.data_options):
            raise ConfigError("--cache-dir / --cache-float16 apply to classification pools only")
        options = {k: v for k, v in config.data_options.items() if k != "labels"}
        if config.semi_supervised is not None or config.semi_options:
            import inspect

            if "semi_supervised" not in inspect.signature(build_segmentation_task).parameters:
                raise ConfigError("--semi-supervised for segmentation is not available in "
                                  "this installation")
            options.update(semi_supervised=config.semi_supervised,
                           semi_options=dict(config.semi_options) or None)
        return build_segmentation_task(config.data, preset=config.preset, seed=config.seed,
                                       device=config.device, iterations=config.epochs,
                                       progress=progress,
                                       train_options=dict(config.train_options) or None,
                                       **options)
    from medactive.data.classification import load_classification_data
    from medactive.tasks.classification.presets import get_preset
    from medactive.tasks.classification.task import ClassificationTask

    options = dict(config.data_options)
    if "region_size" in options:
        raise ConfigError("--region-size (data option region_size) applies to segmentation only")
    train_options = dict(config.train_options)
    head = train_options.pop("head", None)
    if "epochs" in train_options:
        raise ConfigError("training option 'epochs': set the run's epochs instead (--epochs, "
                          "the grid field epochs)")
    try:
        train_config = get_preset(config.preset, epochs=config.epochs, **train_options)
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
    encoder = None
    if config.encoder is not None:
        from medactive.encoders import load_encoder

        encoder = load_encoder(config.encoder, weights=config.encoder_weights,
                               in_channels=dataset.in_channels)
    head_config = None
    if config.train_mode == "frozen":
        from medactive.tasks.classification.head import HeadConfig

        head_config = HeadConfig.from_dict(head, source="--head (train option head)")
    return ClassificationTask(dataset, train_config, device=config.device, progress=progress,
                              encoder=encoder, train_mode=config.train_mode, head=head_config,
                              semi_supervised=config.semi_supervised,
                              semi_options=dict(config.semi_options) or None,
                              ensemble_workers=ensemble_workers, **cache)


def run_experiment(config: ExperimentConfig, *, out_dir: str | Path | None = None,
                   completed: Sequence[RoundRecord] = (), task=None, progress: bool = False,
                   on_round: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
    """Run one experiment; write ``run.json``, ``rounds.csv``, ``selections.csv`` to ``out_dir``.

    ``completed`` resumes after those rounds (e.g. :func:`read_run` of ``out_dir``); their rows
    are kept in the files.
    """
    task = task or build_task(config, progress=progress)
    check_ssl_options(config, getattr(task, "kind", None))
    out = Path(out_dir) if out_dir is not None else None
    writer = None

    def _on_round(record: RoundRecord) -> None:
        if writer is not None:
            writer.add(record)
        if on_round is not None:
            on_round(record)

    handler = None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(out / "run.log", mode="a" if completed else "w")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        root = logging.getLogger("medactive")
        root.addHandler(handler)
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)
    try:
        # before run.json: the task's description then names the pretraining
        pretrain_task(task, config, cache_path=None if out is None else out / "pretrained.pt")
        if out is not None:
            writer = RunWriter(out, config, task, completed=completed)
        from medactive.query_device import array_device

        return run_active_learning(task, loop_config(config), completed=completed,
                                   on_round=_on_round,
                                   array_device=array_device(config.selection_device))
    finally:
        if handler is not None:
            logging.getLogger("medactive").removeHandler(handler)
            handler.close()


def supervised_reference(config: ExperimentConfig, *, task=None) -> dict[str, float]:
    """Metrics of a model trained on every pool label (the survey's "Fully supervised" row)."""
    from medactive._random import derive_seed

    task = task or build_task(config)
    pretrain_task(task, config)
    idx = np.arange(len(task.pool_ids), dtype=np.int64)
    model = task.fit(idx, task.pool_labels(idx), seed=derive_seed(config.seed, "supervised"))
    metrics = {f"val_{k}": v for k, v in task.evaluate(model, "val").items()}
    metrics.update({f"test_{k}": v for k, v in task.evaluate(model, "test").items()})
    metrics.update(_training_summary(task, model))
    return metrics


def _training_summary(task, model) -> dict[str, float]:
    """How long the reference trained and which epoch (step) it kept: whether validation had
    plateaued (a best epoch well before the last) or was still improving."""
    summary = getattr(model, "training_summary", None)
    if summary is not None:
        return {k: float(v) for k, v in summary.items()}
    log = getattr(task, "last_fit", None)
    if log is not None and getattr(log, "best_iteration", None) is not None:
        run = log.history[-1][0] if log.history else log.iterations
        return {"iterations_run": float(run), "best_iteration": float(log.best_iteration)}
    return {}


def library_versions() -> dict[str, str]:
    import monai
    import sklearn
    import torch

    return {"medactive": __version__, "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__, "monai": monai.__version__,
            "scikit-learn": sklearn.__version__, "platform": platform.platform()}


def _execution(task) -> dict[str, Any]:
    """How the run computed (torch threads, ensemble worker processes): settings that do not
    change its results, recorded apart from its config."""
    if hasattr(task, "execution"):
        return task.execution()
    import torch

    return {"threads": torch.get_num_threads()}


class RunWriter:
    """Writes a run's files, rewriting each atomically after every round."""

    def __init__(self, out_dir: Path, config: ExperimentConfig, task,
                 completed: Sequence[RoundRecord] = ()) -> None:
        self.out_dir = out_dir
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.task = task
        self.rows: list[dict[str, Any]] = []
        self.selections: list[tuple[int, str, float]] = []
        self.timings: list[tuple[int, float, float]] = []
        self.with_pseudo = config.pseudo_label is not None
        self.pseudo: list[tuple[int, str, int]] = []
        info = {"config": config.to_dict(), "task": task.describe(),
                "execution": _execution(task), "versions": library_versions()}
        _atomic_write(self.out_dir / "run.json", json.dumps(info, indent=2, default=str) + "\n")
        for record in completed:
            self._collect(record)

    def add(self, record: RoundRecord) -> None:
        self._collect(record, figure=True)
        self._flush()

    def _collect(self, record: RoundRecord, *, figure: bool = False) -> None:
        if figure and getattr(self.task, "kind", "") == "segmentation" and \
                getattr(self.task, "last_model", None) is not None:
            from medactive.tasks.segmentation import save_round_figure

            save_round_figure(self.task, self.task.last_model,
                              self.out_dir / f"round_{record.round}.png",
                              title=f"round {record.round}: {record.n_labeled} labelled "
                                    f"{getattr(self.task, 'label_unit', 'slices')}")
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
        if self.with_pseudo:  # the set this model chose trains the next round's model
            self.pseudo += [(record.round + 1, str(ids[i]), int(y))
                            for i, y in zip(record.next_pseudo_idx, record.next_pseudo_labels)]

    def _flush(self) -> None:
        # rounds.csv last: it is what read_run trusts, so a kill between two writes leaves at
        # most extra rows in the other files, which a resume rewrites
        _write_csv(self.out_dir / "selections.csv", ["round", "sample_id", "score"],
                   [(rnd, sid, "" if math.isnan(score) else repr(score))
                    for rnd, sid, score in self.selections])
        _atomic_write(self.out_dir / "timings.csv", "round,seconds,query_seconds\n" + "".join(
            f"{r},{s:.3f},{q:.3f}\n" for r, s, q in self.timings))
        if self.with_pseudo:
            _write_csv(self.out_dir / "pseudo_labels.csv", ["round", "sample_id", "label"],
                       self.pseudo)
        columns: list[str] = []
        for row in self.rows:
            columns += [c for c in row if c not in columns]
        lines = [",".join(columns)]
        for row in self.rows:
            lines.append(",".join(_fmt(row.get(c, "")) for c in columns))
        _atomic_write(self.out_dir / "rounds.csv", "\n".join(lines) + "\n")


def read_run(out_dir: str | Path, pool_ids: Sequence[str] | np.ndarray) -> list[RoundRecord]:
    """The records of the rounds a run folder holds, for resuming (``completed=``).

    Reads ``rounds.csv`` (metrics, as written: 6 significant digits), ``selections.csv``
    (batches and their scores, exact), ``timings.csv`` and ``pseudo_labels.csv`` (when present).

    Raises:
        DataError: a file is missing or names a sample that is not in ``pool_ids``.
    """
    from medactive.errors import DataError

    out = Path(out_dir)
    position = {str(sid): i for i, sid in enumerate(np.asarray(pool_ids))}

    def rows(name: str, required: bool = True) -> list[dict[str, str]]:
        path = out / name
        if not path.is_file():
            if required:
                raise DataError(f"{path}: missing; cannot resume this run folder")
            return []
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))

    def index(name: str, row: dict[str, str]) -> int:
        if row["sample_id"] not in position:
            raise DataError(f"{out / name}: sample {row['sample_id']!r} is not in the pool")
        return position[row["sample_id"]]

    selected: dict[int, list[tuple[int, float]]] = {}
    for row in rows("selections.csv"):
        score = float(row["score"]) if row["score"] else math.nan
        selected.setdefault(int(row["round"]), []).append((index("selections.csv", row), score))
    pseudo: dict[int, list[tuple[int, int]]] = {}
    for row in rows("pseudo_labels.csv", required=False):
        pseudo.setdefault(int(row["round"]), []).append((index("pseudo_labels.csv", row),
                                                         int(row["label"])))
    timings = {int(r["round"]): (float(r["seconds"]), float(r["query_seconds"]))
               for r in rows("timings.csv", required=False)}

    def idx_of(pairs: list) -> np.ndarray:
        return np.array([p[0] for p in pairs], dtype=np.int64)

    def second(pairs: list, dtype) -> np.ndarray:
        return np.array([p[1] for p in pairs], dtype=dtype)

    records = []
    for row in rows("rounds.csv"):
        rnd = int(row["round"])
        metrics = {k: float(v) if v else math.nan for k, v in row.items()
                   if k not in ("round", "n_labeled")}
        added, queried = selected.get(rnd, []), selected.get(rnd + 1, [])
        used, chosen = pseudo.get(rnd, []), pseudo.get(rnd + 1, [])
        seconds, query_seconds = timings.get(rnd, (0.0, 0.0))
        records.append(RoundRecord(
            round=rnd, n_labeled=int(row["n_labeled"]), metrics=metrics,
            added_idx=idx_of(added), added_scores=second(added, np.float64),
            queried_idx=idx_of(queried), queried_scores=second(queried, np.float64),
            seconds=seconds, query_seconds=query_seconds,
            pseudo_idx=idx_of(used), pseudo_labels=second(used, np.int64),
            next_pseudo_idx=idx_of(chosen), next_pseudo_labels=second(chosen, np.int64)))
    return records


#: data options that do not change what a run computes (ignored when resuming)
_NOT_RESULT_OPTIONS = ("cache_dir",)


def resume_run(out_dir: str | Path, config: ExperimentConfig,
               pool_ids: Sequence[str] | np.ndarray) -> list[RoundRecord]:
    """The finished rounds of the run in ``out_dir``, checked to be a run of ``config``.

    Raises:
        ConfigError: ``out_dir`` holds no run, or a run of different settings (each differing
            setting is named with both values).
        DataError: its files are unreadable or name samples outside the pool.
    """
    out = Path(out_dir)
    info_path = out / "run.json"
    if not info_path.is_file() or not (out / "rounds.csv").is_file():
        raise ConfigError(f"{out}: no run to resume (run.json and rounds.csv are missing)")
    stored = json.loads(info_path.read_text()).get("config", {})
    current = json.loads(json.dumps(config.to_dict(), default=str))
    # a run written before a setting existed ran with that setting's default
    for f in fields(ExperimentConfig):
        if f.default is not MISSING:
            stored.setdefault(f.name, f.default)
        elif f.default_factory is not MISSING:
            stored.setdefault(f.name, f.default_factory())
    for settings in (stored, current):
        for key in _NOT_RESULT_OPTIONS:
            settings.get("data_options", {}).pop(key, None)
    changed = [f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in sorted(
        set(stored) | set(current)) if stored.get(k) != current.get(k)]
    if changed:
        raise ConfigError(f"{out} holds a run with other settings ({'; '.join(changed)}); "
                          "use another --out, or --overwrite to replace it")
    return read_run(out, pool_ids)


def _write_csv(path: Path, header: list[str], rows: Sequence[Sequence[Any]]) -> None:
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}" if abs(value) >= 1e-4 else repr(value)
    return str(value)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
