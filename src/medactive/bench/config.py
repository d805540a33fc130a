"""Benchmark grids: datasets x strategies x budget levels x seeds, from presets or TOML files.

A grid expands into *units*, one AL run each (survey §6.1.3): a dataset, a strategy, a budget
``b`` (the initial set has ``b`` samples too unless ``initial`` says otherwise), a seed, ``T``
rounds. For a given seed every strategy starts from the same initial set (the loop draws it from
the seed alone). A grid also asks for a fully supervised reference per dataset (the survey's
"Fully supervised" row): a model trained on every pool label, for ``supervised_seeds`` seeds.

Presets (``list_presets()``; each function's docstring lists its deviations from §6.1):

- ``survey-nct``, ``survey-isic``, ``survey-acdc``: §6.1 exactly; need a GPU.
- ``cpu-pneumonia``, ``cpu-retina``, ``cpu-blood``, ``cpu-acdc``: the protocol's shape on the data
  in ``../shared/data`` with the ``cpu`` training preset.
- ``frozen-pneumonia``, ``frozen-blood``, ``frozen-retina``: label efficiency (issue 10): a
  SimCLR encoder pretrained once per dataset, frozen-feature rounds, 10 seeds, low-to-mid
  budgets, and the same data with FixMatch beside it.
- ``smoke-bench``: PneumoniaMNIST, random and entropy, 2 seeds, 2 rounds, ``smoke`` training.

A TOML file describes any other grid::

    name = "my-grid"
    strategies = ["random", "entropy", "badge"]
    seeds = [0, 1, 2]
    rounds = 5
    preset = "cpu"            # training preset
    # initial = 50            # default: the budget (survey §6.1.3)
    # epochs = 20             # override the training preset's epochs
    # supervised_seeds = 1    # fully supervised reference runs per dataset (0: none)
    # converged_reference = {epochs = 160}  # also one trained far longer (patience = P: stop
    #                                       # after P validations without improvement)
    # data_root = "../shared/data"   # relative to this file; --data-root overrides

    # pseudo_label = {entropy = 0.005, decay = 0.00033, max = 500}  # settings of "+ceal"
    # ssl = {method = "simclr", epochs = 5}  # self-supervised pretraining (classification)
    # initial_strategy = "typiclust"         # cold-start initial set on the SSL embeddings
    # encoder = "encoders/blood-simclr.pt"   # `medactive pretrain` file (relative: data_root),
    #                                        # "timm:NAME" + encoder_weights = "FILE", or a table:
    # encoder = {method = "simclr", epochs = 30, model = "smallcnn", width = 32, seed = 0}
    #                                        # (method = "simsiam": SimSiam, same keys but
    #                                        # temperature; predictor_dim, default 32)
    # train_mode = "frozen"                  # or "finetune" (default): head on fixed features
    # semi_supervised = "fixmatch"           # "mean-teacher" for segmentation
    # semi_options = {threshold = 0.95}      # overrides of the method's settings

    [strategy_options.bald]
    n_mc_samples = 10

    [[datasets]]
    name = "pneumonia"
    data = "medmnist/pneumoniamnist.npz"   # relative to data_root
    budgets = [20, 50]
    metrics = ["test_auc"]                 # reported metrics (default: chosen from the results)
    # task = "classification"; survey = "isic"; strategies = [...]; preset/epochs overrides
    # ssl = {...}; initial_strategy = "..."  (override the grid's for this dataset)
    # [datasets.data_options] image_size = 28; [datasets.train_options] augmentation = "isic"

CEAL: a strategy name with the suffix ``+ceal`` (e.g. ``"entropy+ceal"`` beside ``"entropy"``)
runs that strategy with CEAL pseudo-labelling (:mod:`medactive.loop.pseudo_label`), using the
grid's ``pseudo_label`` table (missing keys: the paper's δ0 = 0.005, decay 0.00033, no cap).
The suffixed name is the unit's strategy in the store and the report, so one grid compares
both; ``strategy_options`` are looked up by the plain name. Classification only.

Self-supervised pretraining and cold start (survey §4.2, classification only): ``ssl`` (grid or
dataset level; keys of :class:`~medactive.encoders.simclr.SSLConfig`, missing ones at
their defaults) SimCLR-pretrains the backbone on the pool once per dataset and seed, and every
round's model of every strategy starts from it; the fully supervised reference does too.
``initial_strategy`` (needs ``ssl``; ``"random"`` by default) chooses each unit's initial set
with that strategy on the pretrained embeddings, from the data, seed and SSL settings alone, so
every strategy of a seed still starts from the same set. Grids without these keys (all presets)
are unchanged.

Encoders, training modes and semi-supervised training (issue 10): ``encoder``,
``encoder_weights``, ``train_mode``, ``semi_supervised`` and ``semi_options`` (grid or dataset
level; the dataset's win) go into each unit's
:class:`~medactive.experiment.ExperimentConfig` as they are, and only when set, so the stored
options of grids without them do not change. An encoder *table* is pretrained (SimCLR with
``medactive pretrain``'s settings for missing keys) once per dataset by ``medactive bench``
into ``OUT/encoders/<data>-<hash>.pt`` before that dataset's units run (resumable; a rerun
finds it ready), and the units get that file. One encoder serves every seed, strategy and
budget: like a downloaded checkpoint it is a fixed starting point of the protocol (the table's
own ``seed`` fixes it), not a part of each seeded AL run, so seed-to-seed spread does not
include pretraining variance.

Region-based segmentation (survey §4.3.1): ``region_size`` in a segmentation dataset's
``data_options`` makes its pool square patches of that side (pixels of the preset's resized
slice), so its budgets count patches. Two dataset entries over the same data compare whole-slice
AL at ``b`` slices with patch AL at the same pixels, ``b * (image_size / P)²`` patches (64 px
slices, ``P = 16``: 16 patches a slice); their rounds have ``labelled_pixel_fraction``::

    [[datasets]]
    name = "acdc-slices"
    data = "acdc"
    budgets = [10]
    [[datasets]]
    name = "acdc-patches16"
    data = "acdc"
    budgets = [160]
    data_options = {region_size = 16}
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from medactive.bench.recipe_text import recipe_text
from medactive.errors import ConfigError

#: the survey's nine classification methods (§6.1.4, Table 6), by registered strategy name
CORE_STRATEGIES = ("random", "least_confidence", "entropy", "margin", "bald", "dbal", "badge",
                   "coreset_l2", "coreset_cosine")
#: Table 7 (ISIC, binary): Margin is left out, being equivalent to Confidence for two classes
TABLE7_STRATEGIES = tuple(s for s in CORE_STRATEGIES if s != "margin")
#: Table 8 (ACDC segmentation): no MC-dropout methods
TABLE8_STRATEGIES = ("random", "least_confidence", "entropy", "margin", "badge", "coreset_l2",
                     "coreset_cosine")

#: baselines that AL must beat (Lüth et al. 2023; nnActive 2025), beside ``random`` in presets
CLASSIFICATION_BASELINE = "random_balanced"
SEGMENTATION_BASELINE = "random_foreground"


def with_baseline(strategies: tuple[str, ...], baseline: str) -> tuple[str, ...]:
    """``strategies`` with ``baseline`` right after ``random``.

    Example:
        >>> with_baseline(("random", "entropy"), "random_balanced")
        ('random', 'random_balanced', 'entropy')
    """
    out = list(strategies)
    out.insert(out.index("random") + 1 if "random" in out else 0, baseline)
    return tuple(out)


#: the default backend: builds tasks with :mod:`medactive.experiment`
DEFAULT_BACKEND = "medactive.bench.backend"
SURVEY_KEYS = ("nct", "isic", "acdc")
#: strategy-name suffix of a unit that adds CEAL pseudo-labelling
CEAL_SUFFIX = "+ceal"
#: grid / dataset keys passed to each unit's ExperimentConfig when set
ENGINE_KEYS = ("encoder", "encoder_weights", "train_mode", "semi_supervised", "semi_options")
#: keys of an encoder table besides the fields of SSLConfig
ENCODER_TABLE_KEYS = ("model", "width", "seed")
ENCODER_MODELS = ("smallcnn", "resnet18")
TRAIN_MODES = ("finetune", "frozen")
SEMI_METHODS = {"fixmatch": "classification", "mean-teacher": "segmentation"}
#: folder of the results directory where encoder tables are pretrained
ENCODER_DIR = "encoders"


def split_strategy(name: str) -> tuple[str, bool]:
    """``"entropy+ceal" -> ("entropy", True)``; ``"entropy" -> ("entropy", False)``."""
    if name.endswith(CEAL_SUFFIX):
        return name[:-len(CEAL_SUFFIX)], True
    return name, False


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of a grid.

    Attributes:
        name: short name used in the store and the report (e.g. ``"bloodmnist"``).
        data: dataset path (absolute once the grid is resolved) or ``"default"``.
        budgets: budget levels ``b`` to run.
        metrics: metrics to report (e.g. ``("test_accuracy",)``); empty: chosen from the results.
        task: ``"auto"``, ``"classification"`` or ``"segmentation"``.
        strategies: strategies for this dataset (empty: the grid's).
        data_options: loader options passed to the task builder (e.g. ``{"image_size": 64}``).
        train_options: overrides of the training preset's fields (e.g.
            ``{"augmentation": "isic"}``).
        preset: training preset for this dataset (``None``: the grid's).
        epochs: epoch (segmentation: iteration) override for this dataset.
        survey: the survey dataset whose tables are shown beside this one's (``"nct"``,
            ``"isic"``, ``"acdc"``), or ``None``.
        ssl: self-supervised pretraining settings for this dataset (``None``: the grid's).
        initial_strategy: initial-set strategy for this dataset (``None``: the grid's).
        encoder, encoder_weights, train_mode, semi_supervised, semi_options: this dataset's
            encoder and training mode (``None``: the grid's); see :class:`GridConfig`.
    """

    name: str
    data: str
    budgets: tuple[int, ...]
    metrics: tuple[str, ...] = ()
    task: str = "auto"
    strategies: tuple[str, ...] = ()
    data_options: dict[str, Any] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    epochs: int | None = None
    survey: str | None = None
    ssl: dict[str, Any] | None = None
    initial_strategy: str | None = None
    encoder: str | dict[str, Any] | None = None
    encoder_weights: str | None = None
    train_mode: str | None = None
    semi_supervised: str | None = None
    semi_options: dict[str, Any] | None = None


@dataclass(frozen=True, order=True)
class Unit:
    """One AL run of a grid: ``(dataset, strategy, budget, seed)``."""

    dataset: str
    strategy: str
    budget: int
    seed: int

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.strategy}/b{self.budget}/s{self.seed}"

    def __str__(self) -> str:
        return f"{self.dataset} b={self.budget} seed={self.seed} {self.strategy}"


@dataclass(frozen=True, order=True)
class SupervisedUnit:
    """A fully supervised reference run: every pool label of ``dataset``, one ``seed``.

    ``converged=False``: the rounds' own recipe (the same epochs or iterations as one AL
    round: budget-matched, so it shows what that compute reaches with every label);
    ``converged=True``: the grid's ``converged_reference`` recipe, trained up to its maximum
    epochs and stopped at a validation plateau (what the model can reach at all)."""

    dataset: str
    seed: int
    converged: bool = False

    @property
    def key(self) -> str:
        kind = "fully_supervised_converged" if self.converged else "fully_supervised"
        return f"{self.dataset}/{kind}/s{self.seed}"

    def __str__(self) -> str:
        kind = "converged fully supervised" if self.converged else "fully supervised"
        return f"{self.dataset} seed={self.seed} {kind}"


@dataclass(frozen=True)
class GridConfig:
    """A benchmark grid.

    Attributes:
        name: grid name (a preset's name, or the TOML file's ``name``).
        datasets: the datasets, each with its budget levels.
        strategies: registered strategy names (a dataset may override them).
        seeds: seeds; each seed fixes the initial set, training and query randomness.
        rounds: query rounds ``T`` (``T + 1`` models are trained per unit).
        initial: initial labeled set size; ``None`` = the budget (survey §6.1.3).
        preset: training preset (``"survey"``, ``"cpu"``, ``"smoke"``).
        epochs: override of the training preset's epochs (segmentation: iterations).
        finetune: continue from the previous round's model instead of training from scratch.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        selection_device: where queries run, ``"cpu"`` (numpy) or ``"cuda"`` (torch tensors
            on the GPU, the same picks).
        strategy_options: ``strategy name -> keyword options``.
        pseudo_label: CEAL settings ``{"entropy": δ0, "decay": r, "max": N}`` of the strategies
            named ``<name>+ceal`` (``None``: the paper's defaults); plain names run without.
        ssl: self-supervised pretraining ``{"method": "simclr", "epochs": 5, ...}`` of every
            classification dataset (``None``: off; a dataset's ``ssl`` overrides it).
        initial_strategy: ``"random"``, or a strategy choosing the initial set on the
            self-supervised embeddings (``"typiclust"``, ``"coreset_l2"``; needs ``ssl``).
        encoder: where round models start from, or the features a frozen round trains a head
            on: a file written by ``medactive pretrain`` (relative paths: against the data
            root), ``"timm:NAME"`` (with ``encoder_weights``), or a table
            ``{method = "simclr", epochs = 30, model = "smallcnn", width = 32, seed = 0, ...}``
            pretrained once per dataset into ``OUT/encoders/`` (see :data:`ENCODER_TABLE_KEYS`);
            ``None``: none (models from scratch, or ``ssl``).
        encoder_weights: local weights file of a ``timm:`` encoder (relative: data root).
        train_mode: ``"finetune"`` or ``"frozen"`` (needs ``encoder``); ``None``: the
            experiment's default (finetune).
        semi_supervised: ``"fixmatch"`` (classification) or ``"mean-teacher"``
            (segmentation); ``None``: off.
        semi_options: overrides of the semi-supervised method's settings.
        supervised_seeds: fully supervised reference runs per dataset (first seeds; 0: none).
        converged_reference: ``{epochs = E}`` (optionally ``patience = P``): also train each
            reference with the rounds' recipe stretched to ``E`` epochs (segmentation:
            iterations; the learning-rate schedule spans all ``E``) and keep the best
            validation checkpoint, beside the budget-matched one that uses the rounds' recipe;
            with ``patience``, stop after ``P`` validations without improvement. The stored
            metrics say at which epoch (step) the kept model was, so a reader sees whether
            validation had plateaued. ``None``: only the budget-matched reference.
        backend: module providing ``build_task(options)``, ``loop_config(options)`` and
            ``supervised_reference(options, task)`` (tests plug in a fake task here).
        description: what the grid is for and how it deviates from the survey.
    """

    name: str
    datasets: tuple[DatasetSpec, ...]
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    rounds: int = 5
    initial: int | None = None
    preset: str = "cpu"
    epochs: int | None = None
    finetune: bool = False
    device: str = "auto"
    selection_device: str = "cpu"
    strategy_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    pseudo_label: dict[str, Any] | None = None
    ssl: dict[str, Any] | None = None
    initial_strategy: str = "random"
    encoder: str | dict[str, Any] | None = None
    encoder_weights: str | None = None
    train_mode: str | None = None
    semi_supervised: str | None = None
    semi_options: dict[str, Any] | None = None
    supervised_seeds: int = 1
    converged_reference: dict[str, Any] | None = None
    backend: str = DEFAULT_BACKEND
    description: str = ""

    def __post_init__(self) -> None:
        _check_grid(self)

    # -- expansion -------------------------------------------------------------------------
    def dataset(self, name: str) -> DatasetSpec:
        for spec in self.datasets:
            if spec.name == name:
                return spec
        raise ConfigError(f"grid {self.name!r} has no dataset {name!r}")

    def strategies_for(self, dataset: str) -> tuple[str, ...]:
        return self.dataset(dataset).strategies or self.strategies

    def units(self) -> list[Unit]:
        """Every AL unit, seed-major (a full table for seed 0 exists before seed 1 starts)."""
        return [Unit(spec.name, strategy, budget, seed)
                for seed in self.seeds
                for spec in self.datasets
                for budget in spec.budgets
                for strategy in self.strategies_for(spec.name)]

    def supervised_units(self) -> list[SupervisedUnit]:
        """Budget-matched references, then (with ``converged_reference``) converged ones."""
        kinds = (False, True) if self.converged_reference else (False,)
        return [SupervisedUnit(spec.name, seed, converged)
                for converged in kinds
                for seed in self.seeds[:self.supervised_seeds] for spec in self.datasets]

    def unit_options(self, unit: Unit | SupervisedUnit) -> dict[str, Any]:
        """The :class:`~medactive.experiment.ExperimentConfig` fields of ``unit``.

        A supervised unit gets the options of the dataset's first budget with ``"random"``
        (only data, task, preset, epochs, device and seed matter for it). A ``+ceal`` unit runs
        the plain strategy with a ``pseudo_label`` option (absent for other units).
        """
        spec = self.dataset(unit.dataset)
        ceal = False
        if isinstance(unit, SupervisedUnit):
            strategy, budget = "random", spec.budgets[0]
        else:
            (strategy, ceal), budget = split_strategy(unit.strategy), unit.budget
        options = {
            "data": spec.data, "strategy": strategy,
            "initial": self.initial if self.initial is not None else budget,
            "budget": budget, "rounds": self.rounds, "seed": unit.seed, "task": spec.task,
            "preset": spec.preset or self.preset,
            "epochs": spec.epochs if spec.epochs is not None else self.epochs,
            "finetune": self.finetune, "device": self.device,
            "selection_device": self.selection_device,
            "strategy_options": dict(self.strategy_options.get(strategy, {})),
            "data_options": dict(spec.data_options),
            "train_options": dict(spec.train_options),
        }
        if isinstance(unit, SupervisedUnit) and unit.converged:
            table = self.converged_reference or {}
            options["epochs"] = int(table["epochs"])
            if "patience" in table:
                options["train_options"]["patience"] = int(table["patience"])
        if ceal:
            options["pseudo_label"] = _pseudo_label(self.pseudo_label or {},
                                                    f"grid {self.name!r}").to_dict()
        # only when set, so that the stored options of grids without them do not change
        ssl = self.ssl_for(spec.name)
        if ssl is not None:
            options["ssl"] = ssl
            initial = self.initial_strategy_for(spec.name)
            if initial != "random" and not isinstance(unit, SupervisedUnit):
                options["initial_strategy"] = initial
        options.update(self.engine_options(spec.name))
        return options

    def engine_options(self, dataset: str) -> dict[str, Any]:
        """The encoder / training-mode / semi-supervised options of ``dataset``'s units: only
        the keys that are set (so grids without them keep their stored options). An encoder
        table not yet resolved by :func:`resolve_encoders` appears as its complete settings."""
        spec = self.dataset(dataset)
        options: dict[str, Any] = {}
        for key in ENGINE_KEYS:
            value = getattr(spec, key)
            if value is None:
                value = getattr(self, key)
            if value is not None:
                options[key] = dict(value) if isinstance(value, dict) else value
        table = self.encoder_table(dataset)
        if table is not None:
            options["encoder"] = table
        return options

    def encoder_table(self, dataset: str) -> dict[str, Any] | None:
        """The complete pretraining settings of ``dataset``'s encoder table (missing keys at
        ``medactive pretrain``'s defaults), or ``None`` when its encoder is a path or unset."""
        spec = self.dataset(dataset)
        value = spec.encoder if spec.encoder is not None else self.encoder
        if not isinstance(value, dict):
            return None
        return _encoder_table(value, f"grid {self.name!r}, dataset {dataset!r}")

    def encoder_file(self, dataset: str) -> str | None:
        """``<data>-<hash>.pt``: the file name of ``dataset``'s pretrained encoder table, named
        after its data (``bloodmnist`` for ``.../bloodmnist.npz``), so two entries over the same
        data with the same table share one encoder; the hash covers the settings, the data
        file's name, the training preset and the loader options (what the pool's images are).
        """
        table = self.encoder_table(dataset)
        if table is None:
            return None
        spec = self.dataset(dataset)
        data = Path(spec.data).stem if spec.data != "default" else "default"
        key = json.dumps({"encoder": table, "data": Path(spec.data).name,
                          "preset": spec.preset or self.preset,
                          "data_options": spec.data_options}, sort_keys=True, default=str)
        return f"{data}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"

    def ssl_for(self, dataset: str) -> dict[str, Any] | None:
        """The complete SSL settings of ``dataset`` (``None``: no pretraining)."""
        spec = self.dataset(dataset)
        table = spec.ssl if spec.ssl is not None else self.ssl
        return None if table is None else _ssl(table, f"grid {self.name!r}").to_dict()

    def initial_strategy_for(self, dataset: str) -> str:
        spec = self.dataset(dataset)
        return spec.initial_strategy or self.initial_strategy

    # -- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "grid") -> GridConfig:
        """Inverse of :meth:`to_dict` (also accepts TOML-shaped dicts with lists)."""
        data = dict(data)
        _check_keys(data, {f.name for f in fields(cls)}, source)
        raw_datasets = data.pop("datasets", None)
        if not isinstance(raw_datasets, (list, tuple)) or not raw_datasets:
            raise ConfigError(f"{source}: needs at least one [[datasets]] entry")
        datasets = tuple(_dataset_from_dict(d, f"{source}: datasets[{i}]")
                         for i, d in enumerate(raw_datasets))
        for key in ("strategies", "seeds"):
            if key in data:
                data[key] = tuple(_as_list(data[key], f"{source}: {key}"))
        for key in ("name", "strategies", "seeds"):
            if key not in data:
                raise ConfigError(f"{source}: missing required key {key!r}")
        try:
            return cls(datasets=datasets, **data)
        except TypeError as exc:  # pragma: no cover - keys were checked above
            raise ConfigError(f"{source}: {exc}") from exc

    def with_overrides(self, **changes: Any) -> GridConfig:
        """A copy with grid fields changed (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _dataset_from_dict(data: Any, source: str) -> DatasetSpec:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table, got {data!r}")
    data = dict(data)
    _check_keys(data, {f.name for f in fields(DatasetSpec)}, source)
    for key in ("name", "data", "budgets"):
        if key not in data:
            raise ConfigError(f"{source}: missing required key {key!r}")
    for key in ("budgets", "metrics", "strategies"):
        if key in data:
            data[key] = tuple(_as_list(data[key], f"{source}: {key}"))
    for key in ("data_options", "train_options", "ssl", "semi_options"):
        if key in data and not isinstance(data[key], dict) and not (
                key in ("ssl", "semi_options") and data[key] is None):
            raise ConfigError(f"{source}: {key} must be a table")
    region = data.get("data_options", {}).get("region_size")
    if region is not None:
        if isinstance(region, bool) or not isinstance(region, int) or region < 1:
            raise ConfigError(f"{source}: data_options.region_size must be a positive integer "
                              f"(patch side in pixels), got {region!r}")
        if data.get("task", "auto") == "classification":
            raise ConfigError(f"{source}: data_options.region_size applies to segmentation "
                              "only")
    return DatasetSpec(**data)


def _as_list(value: Any, source: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    raise ConfigError(f"{source}: expected a list, got {value!r}")


def _check_keys(data: dict, allowed: set[str], source: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; "
                          f"allowed: {', '.join(sorted(allowed))}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_grid(grid: GridConfig) -> None:
    where = f"grid {grid.name!r}"
    if not isinstance(grid.name, str) or not grid.name:
        raise ConfigError("grid name must be a non-empty string")
    if not grid.datasets:
        raise ConfigError(f"{where}: no datasets")
    names = [spec.name for spec in grid.datasets]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: dataset names must be unique, got {names}")
    if not grid.strategies or not all(isinstance(s, str) and s for s in grid.strategies):
        raise ConfigError(f"{where}: strategies must be a non-empty list of names")
    if len(set(grid.strategies)) != len(grid.strategies):
        raise ConfigError(f"{where}: strategies contain duplicates: {list(grid.strategies)}")
    if not grid.seeds or not all(_is_int(s) and s >= 0 for s in grid.seeds):
        raise ConfigError(f"{where}: seeds must be a non-empty list of non-negative integers, "
                          f"got {list(grid.seeds)}")
    if len(set(grid.seeds)) != len(grid.seeds):
        raise ConfigError(f"{where}: seeds contain duplicates: {list(grid.seeds)}")
    if not _is_int(grid.rounds) or grid.rounds < 0:
        raise ConfigError(f"{where}: rounds must be an integer >= 0, got {grid.rounds!r}")
    if grid.initial is not None and (not _is_int(grid.initial) or grid.initial < 1):
        raise ConfigError(f"{where}: initial must be a positive integer, got {grid.initial!r}")
    if grid.epochs is not None and (not _is_int(grid.epochs) or grid.epochs < 1):
        raise ConfigError(f"{where}: epochs must be a positive integer, got {grid.epochs!r}")
    if not _is_int(grid.supervised_seeds) or grid.supervised_seeds < 0:
        raise ConfigError(f"{where}: supervised_seeds must be an integer >= 0")
    if grid.converged_reference is not None:
        table = grid.converged_reference
        if not isinstance(table, dict) or "epochs" not in table or not set(table) <= {
                "epochs", "patience"} or not all(_is_int(v) and v >= 1 for v in table.values()):
            raise ConfigError(f"{where}: converged_reference must be a table {{epochs = E}} or "
                              f"{{epochs = E, patience = P}} of positive integers, got {table!r}")
    if not isinstance(grid.strategy_options, dict) or not all(
            isinstance(v, dict) for v in grid.strategy_options.values()):
        raise ConfigError(f"{where}: strategy_options must map strategy names to tables")
    if grid.pseudo_label is not None:
        _pseudo_label(grid.pseudo_label, where)
    if grid.ssl is not None and not isinstance(grid.ssl, dict):
        raise ConfigError(f"{where}: ssl must be a table, e.g. {{method = \"simclr\"}}")
    for spec in grid.datasets:
        at = f"{where}, dataset {spec.name!r}"
        _check_ssl(grid, spec, at)
        _check_engine(grid, spec, at)
        if not spec.budgets or not all(_is_int(b) and b >= 1 for b in spec.budgets):
            raise ConfigError(f"{at}: budgets must be a non-empty list of positive integers, "
                              f"got {list(spec.budgets)}")
        if len(set(spec.budgets)) != len(spec.budgets):
            raise ConfigError(f"{at}: budgets contain duplicates")
        if spec.survey is not None and spec.survey not in SURVEY_KEYS:
            raise ConfigError(f"{at}: survey must be one of {', '.join(SURVEY_KEYS)}, "
                              f"got {spec.survey!r}")
        if spec.strategies and len(set(spec.strategies)) != len(spec.strategies):
            raise ConfigError(f"{at}: strategies contain duplicates")
        ceal = [s for s in grid.strategies_for(spec.name) if split_strategy(s)[1]]
        if ceal and spec.task == "segmentation":
            raise ConfigError(f"{at}: {', '.join(ceal)}: CEAL pseudo-labelling ({CEAL_SUFFIX}) "
                              "is for classification only")
        if spec.epochs is not None and (not _is_int(spec.epochs) or spec.epochs < 1):
            raise ConfigError(f"{at}: epochs must be a positive integer")
        if "/" in spec.name or not spec.name:
            raise ConfigError(f"{at}: a dataset name must be non-empty and contain no '/'")


def _ssl(table: Any, where: str):
    from medactive.encoders.simclr import SSLConfig

    return SSLConfig.from_dict(table, source=f"{where}: ssl")


def _check_ssl(grid: GridConfig, spec: DatasetSpec, at: str) -> None:
    ssl = spec.ssl if spec.ssl is not None else grid.ssl
    initial = spec.initial_strategy or grid.initial_strategy
    if not isinstance(initial, str) or not initial:
        raise ConfigError(f"{at}: initial_strategy must be a strategy name, got {initial!r}")
    if ssl is None:
        if initial != "random":
            raise ConfigError(f"{at}: initial_strategy {initial!r} chooses on self-supervised "
                              "embeddings and needs ssl = {method = \"simclr\", ...}")
        return
    if spec.task == "segmentation":
        raise ConfigError(f"{at}: ssl (self-supervised pretraining) and initial_strategy are "
                          "for classification only")
    _ssl(ssl, at)
    if initial != "random":
        from medactive.strategies import create_strategy

        chooser = create_strategy(initial)  # ConfigError listing names when unknown
        if set(chooser.requires) - {"embeddings"}:
            raise ConfigError(f"{at}: initial_strategy {initial!r} needs "
                              f"{', '.join(chooser.requires)}; before any label only embeddings "
                              "exist (typiclust, coreset_l2, coreset_cosine, random)")


def _encoder_table(table: Any, where: str) -> dict[str, Any]:
    """A validated, complete encoder table: SSL settings (``medactive pretrain``'s defaults
    for missing keys) plus ``model``, ``width`` and ``seed``."""
    from medactive.encoders.pretrain import DEFAULT_MODEL, DEFAULT_WIDTH, MEDICAL_SSL
    from medactive.encoders.simclr import SSLConfig

    if not isinstance(table, dict):
        raise ConfigError(f"{where}: encoder must be a path or a table, got {table!r}")
    table = dict(table)
    model = table.pop("model", DEFAULT_MODEL)
    width = table.pop("width", DEFAULT_WIDTH)
    seed = table.pop("seed", 0)
    if model not in ENCODER_MODELS:
        raise ConfigError(f"{where}: encoder model must be one of {', '.join(ENCODER_MODELS)}, "
                          f"got {model!r}")
    if width is not None and (not _is_int(width) or width < 1):
        raise ConfigError(f"{where}: encoder width must be a positive integer, got {width!r}")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"{where}: encoder seed must be an integer >= 0, got {seed!r}")
    ssl = SSLConfig.from_dict({**MEDICAL_SSL.to_dict(), **table}, source=f"{where}: encoder")
    return {**ssl.to_dict(), "model": model, "width": width, "seed": seed}


def _check_engine(grid: GridConfig, spec: DatasetSpec, at: str) -> None:
    """Encoder, training mode and semi-supervised keys of one dataset (grid's as defaults)."""
    def pick(key: str) -> Any:
        value = getattr(spec, key)
        return value if value is not None else getattr(grid, key)

    encoder, weights = pick("encoder"), pick("encoder_weights")
    mode, semi, semi_options = pick("train_mode"), pick("semi_supervised"), pick("semi_options")
    if isinstance(encoder, dict):
        if spec.task == "segmentation":
            raise ConfigError(f"{at}: an encoder table (pretraining) is for classification "
                              "only; give a file")
        _encoder_table(encoder, at)
    elif encoder is not None and (not isinstance(encoder, str) or not encoder):
        raise ConfigError(f"{at}: encoder must be a file, \"timm:NAME\" or a table, "
                          f"got {encoder!r}")
    if encoder is not None and (spec.ssl if spec.ssl is not None else grid.ssl) is not None:
        raise ConfigError(f"{at}: give either encoder or ssl (both set where round models "
                          "start from)")
    if weights is not None and (not isinstance(weights, str) or not weights):
        raise ConfigError(f"{at}: encoder_weights must be a file path, got {weights!r}")
    if weights is not None and not (isinstance(encoder, str) and encoder.startswith("timm:")):
        raise ConfigError(f"{at}: encoder_weights is the local weights file of a "
                          "\"timm:NAME\" encoder")
    if mode is not None and mode not in TRAIN_MODES:
        raise ConfigError(f"{at}: train_mode must be one of {', '.join(TRAIN_MODES)}, "
                          f"got {mode!r}")
    if mode == "frozen" and encoder is None:
        raise ConfigError(f"{at}: train_mode \"frozen\" trains a head on an encoder's "
                          "features and needs encoder = ...")
    if semi is not None:
        if semi not in SEMI_METHODS:
            raise ConfigError(f"{at}: semi_supervised must be one of "
                              f"{', '.join(SEMI_METHODS)}, got {semi!r}")
        if spec.task != "auto" and SEMI_METHODS[semi] != spec.task:
            raise ConfigError(f"{at}: semi_supervised {semi!r} is for {SEMI_METHODS[semi]}, "
                              f"not {spec.task}")
    if semi_options is not None:
        if not isinstance(semi_options, dict):
            raise ConfigError(f"{at}: semi_options must be a table")
        if semi is None:
            raise ConfigError(f"{at}: semi_options needs semi_supervised = ...")


def _pseudo_label(table: Any, where: str):
    from medactive.loop.pseudo_label import PseudoLabelConfig

    return PseudoLabelConfig.from_dict(table, source=f"{where}: pseudo_label")


# -- data root ---------------------------------------------------------------------------------
def default_data_root() -> Path:
    """Where presets look for data: ``$MEDACTIVE_DATA_ROOT``, else ``../shared/data``.

    ``../shared/data`` is tried beside the current directory's project (``./../shared/data``)
    and beside this source checkout; the first that exists wins.
    """
    env = os.environ.get("MEDACTIVE_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    candidates = [Path.cwd().parent / "shared" / "data",
                  Path(__file__).resolve().parents[4] / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[0]


def resolve_data(grid: GridConfig, data_root: str | Path) -> GridConfig:
    """``grid`` with each dataset's relative ``data`` path joined to ``data_root``."""
    root = Path(data_root).expanduser()
    datasets = []
    for spec in grid.datasets:
        data = spec.data
        if data != "default" and not Path(data).expanduser().is_absolute():
            data = str((root / data).absolute())
        datasets.append(replace(spec, data=str(Path(data).expanduser()) if data != "default"
                                else data, encoder=_resolve_file(spec.encoder, root),
                                encoder_weights=_resolve_file(spec.encoder_weights, root)))
    return replace(grid, datasets=tuple(datasets), encoder=_resolve_file(grid.encoder, root),
                   encoder_weights=_resolve_file(grid.encoder_weights, root))


def _resolve_file(value: Any, root: Path) -> Any:
    """A file path joined to ``root`` unless absolute; tables, ``timm:`` specs and ``None`` as
    they are."""
    if not isinstance(value, str) or value.startswith("timm:"):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (root / path).absolute())


def resolve_encoders(grid: GridConfig, out_dir: str | Path) -> GridConfig:
    """``grid`` with every encoder table replaced by its file in ``out_dir/encoders/``
    (:meth:`GridConfig.encoder_file`), where the runner pretrains it before any unit runs.

    One encoder per dataset, shared by every seed: like a downloaded checkpoint it is a fixed
    starting point of the protocol, not part of the seeded AL run (its own ``seed`` is in the
    table).
    """
    folder = Path(out_dir).expanduser().absolute() / ENCODER_DIR
    datasets = tuple(replace(spec, encoder=str(folder / grid.encoder_file(spec.name)))
                     if grid.encoder_table(spec.name) is not None else spec
                     for spec in grid.datasets)
    return replace(grid, datasets=datasets)


# -- loading -----------------------------------------------------------------------------------
def load_grid(name_or_path: str | Path, *, data_root: str | Path | None = None) -> GridConfig:
    """A preset by name, or a TOML grid file, with data paths resolved.

    Args:
        name_or_path: a preset name (see :func:`list_presets`) or a ``.toml`` file.
        data_root: where relative data paths point (presets: default
            :func:`default_data_root`; files: their ``data_root`` key, else their folder).

    Raises:
        ConfigError: unknown preset, unreadable file, invalid keys or values.
    """
    text = str(name_or_path)
    if text in _PRESETS:
        grid = _PRESETS[text]()
        return resolve_data(grid, data_root if data_root is not None else default_data_root())
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(f"--config {text!r} is neither a preset ({', '.join(list_presets())}) "
                          "nor an existing TOML file")
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from exc
    file_root = raw.pop("data_root", None)
    grid = GridConfig.from_dict(raw, source=str(path))
    if data_root is None:
        data_root = (path.parent / file_root) if file_root else path.parent
    return resolve_data(grid, data_root)


_PRESETS: dict[str, Callable[[], GridConfig]] = {}


def _preset(name: str, *, doc: str = ""):
    """Register a preset under ``name``; ``doc`` is appended to its docstring (shared text)."""
    def register(fn: Callable[[], GridConfig]) -> Callable[[], GridConfig]:
        if doc:
            fn.__doc__ = inspect.cleandoc(fn.__doc__ or "") + "\n\n" + inspect.cleandoc(doc)
        _PRESETS[name] = fn
        return fn
    return register


def list_presets() -> list[str]:
    """Names of the built-in grid presets."""
    return sorted(_PRESETS)


def describe_preset(name: str) -> str:
    """The description of preset ``name`` (its protocol and deviations from survey §6.1)."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
    return _PRESETS[name]().description or inspect.cleandoc(_PRESETS[name].__doc__ or "")


def describe_grid(grid: GridConfig) -> str:
    """What ``grid`` runs, written from its fields (so a description cannot drift from them).

    Example:
        >>> g = GridConfig(name="g", strategies=("random",), seeds=(0, 1), rounds=2,
        ...                datasets=(DatasetSpec(name="d", data="d.npz", budgets=(10,)),))
        >>> print(describe_grid(g).splitlines()[1])
        - d (d.npz): b = 10 (up to 30 labels); random.
    """
    seeds = list(grid.seeds)
    seed_text = (f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 2 and seeds == list(
        range(seeds[0], seeds[-1] + 1)) else ", ".join(map(str, seeds)))
    initial = "b" if grid.initial is None else str(grid.initial)
    lines = [f"Seeds {seed_text} ({len(seeds)}); T = {grid.rounds} rounds; initial set = "
             f"{initial}; training preset {grid.preset!r}; {grid.supervised_seeds} fully "
             "supervised reference seed" + ("s" if grid.supervised_seeds != 1 else "")
             + " per dataset (budget-matched: the rounds' recipe)"
             + (_converged_text(grid.converged_reference) if grid.converged_reference else "")
             + "."]
    for spec in grid.datasets:
        most = [(grid.initial if grid.initial is not None else b) + grid.rounds * b
                for b in spec.budgets]
        parts = [(f"b = {', '.join(map(str, spec.budgets))} (up to "
                  f"{', '.join(map(str, most))} labels)"),
                 ", ".join(grid.strategies_for(spec.name))]
        table = grid.encoder_table(spec.name)
        engine = grid.engine_options(spec.name)
        if table is not None:
            parts.append(f"encoder: {table['method']} on the pool, {table['model']} width "
                         f"{table['width']}, {table['epochs']} epochs, seed {table['seed']}, "
                         "pretrained once per dataset into OUT/encoders/")
        elif "encoder" in engine:
            parts.append(f"encoder {engine['encoder']}")
        for key in ("train_mode", "semi_supervised", "semi_options"):
            if key in engine:
                parts.append(f"{key} {engine[key]}")
        data = Path(spec.data).name if spec.data != "default" else "default"
        lines.append(f"- {spec.name} ({data}): " + "; ".join(parts) + ".")
        lines.append("  Training: " + recipe_text(
            spec.task, spec.preset or grid.preset,
            epochs=spec.epochs if spec.epochs is not None else grid.epochs,
            train_options=spec.train_options, train_mode=engine.get("train_mode"),
            encoder="encoder" in engine) + ".")
    return "\n".join(lines)


def _converged_text(table: dict[str, Any]) -> str:
    stop = (f", stopped after {table['patience']} validations without improvement"
            if "patience" in table else "")
    return (f", and as many converged (the rounds' recipe stretched to {table['epochs']} "
            f"epochs or iterations, best validation checkpoint{stop})")


def _doc(fn: Callable) -> str:
    return inspect.cleandoc(fn.__doc__ or "")


#: preset strategy lists: the survey's methods with the baseline beside random (issue 10)
_CORE_AND_BASELINE = with_baseline(CORE_STRATEGIES, CLASSIFICATION_BASELINE)
_TABLE7_AND_BASELINE = with_baseline(TABLE7_STRATEGIES, CLASSIFICATION_BASELINE)
_TABLE8_AND_BASELINE = with_baseline(TABLE8_STRATEGIES, SEGMENTATION_BASELINE)


# -- survey presets (§6.1, GPU) ----------------------------------------------------------------
_SURVEY_COMMON = """
    Choices of the ``survey`` training recipes where §6.1 is silent (not deviations, but not
    the survey's word either): classification adds Nesterov momentum, weight decay 5e-4 and
    dropout 0.3 before the last layer (for the MC samples of BALD and DBAL) and keeps the
    checkpoint with the best validation metric; segmentation takes U-Net channels
    (16, ..., 256), poly power 0.9 and rotations within ±20 degrees from SSL4MIS and keeps the
    best validation Dice. Deviation: one fully supervised reference seed instead of (probably)
    one per AL seed. Addition: a baseline beside Random that AL must beat (Lüth et al. 2023;
    nnActive 2025): ``random_balanced`` (class-stratified random over the model's predicted
    classes) for classification, ``random_foreground`` (random among slices predicted to hold
    foreground) for segmentation.
"""


@_preset("survey-nct", doc=_SURVEY_COMMON)
def survey_nct() -> GridConfig:
    """Survey §6.1 on NCT-CRC-HE-100K (Table 6): 9-class tissue accuracy. Needs a CUDA GPU.

    As §6.1: NCT-CRC-HE-100K split 9:1 into pool and validation, CRC-VAL-HE-7K as test, 224 px
    patches; T = 5 rounds, initial set = b, b = 50 and 1000; 5 seeds; the nine methods of
    §6.1.4; the ``survey`` training recipe (ResNet-18, SGD momentum 0.9, lr 0.01, cosine decay,
    batch 128, 100 epochs, cross-entropy, random horizontal flip). Data: ``<data root>/nct``
    (the folder holding ``NCT-CRC-HE-100K/`` and ``CRC-VAL-HE-7K/``).
    """
    return GridConfig(
        name="survey-nct", strategies=_CORE_AND_BASELINE, seeds=(0, 1, 2, 3, 4), rounds=5,
        preset="survey", datasets=(DatasetSpec(
            name="nct", data="nct", budgets=(50, 1000), metrics=("test_accuracy",),
            task="classification", train_options={"augmentation": "flip"}, survey="nct"),),
        description=_doc(survey_nct))


@_preset("survey-isic", doc=_SURVEY_COMMON)
def survey_isic() -> GridConfig:
    """Survey §6.1 on ISIC 2020 (Table 7): binary melanoma AUC. Needs a CUDA GPU.

    As §6.1: a 6:1:3 train/val/test split; T = 5 rounds, initial set = b, b = 50 and 1000;
    5 seeds; the methods of Table 7 (Margin left out: it ranks like Confidence for two
    classes); the ``survey`` training recipe with the ISIC augmentation of Zhuang et al. (crop,
    flip, rotation, affine, colour jitter). Data: ``<data root>/isic2020`` (the challenge
    download with ``ISIC_2020_Training_GroundTruth.csv``).
    Deviations: the split is by patient (the survey's released split shares patients between
    train and test); images are resized to 224 px (the survey does not state its input size).
    """
    return GridConfig(
        name="survey-isic", strategies=_TABLE7_AND_BASELINE, seeds=(0, 1, 2, 3, 4), rounds=5,
        preset="survey", datasets=(DatasetSpec(
            name="isic2020", data="isic2020", budgets=(50, 1000), metrics=("test_auc",),
            task="classification", data_options={"image_size": 224},
            train_options={"augmentation": "isic"}, survey="isic"),),
        description=_doc(survey_isic))


@_preset("survey-acdc", doc=_SURVEY_COMMON)
def survey_acdc() -> GridConfig:
    """Survey §6.1 on ACDC (Table 8): end-diastolic 2D slices, mean Dice and ASD. Needs a GPU.

    As §6.1: 656 end-diastolic training slices (70 volumes), 10 validation and 20 test volumes
    (the split of Luo et al.), evaluation on 3D volumes; T = 5 rounds, initial set = b = 10
    slices; 5 seeds; the methods of Table 8; the ``survey`` segmentation recipe (5-level U-Net
    with dropout 0.1, 256 x 256 input, Adam lr 1e-3 with polynomial decay, 4,000 iterations of
    batch 32, CE + Dice loss, flips and rotations). Data: ``<data root>/acdc``.
    """
    return GridConfig(
        name="survey-acdc", strategies=_TABLE8_AND_BASELINE, seeds=(0, 1, 2, 3, 4), rounds=5,
        preset="survey", datasets=(DatasetSpec(
            name="acdc", data="acdc", budgets=(10,),
            metrics=("test_dice_mean", "test_asd_mean"), task="segmentation", survey="acdc"),),
        description=_doc(survey_acdc))


# -- CPU presets -------------------------------------------------------------------------------
#: the converged references of the CPU presets: the ``cpu`` recipe stretched to 4x its epochs
#: (iterations), schedule included, best validation checkpoint. (Stopping at a plateau with
#: ``patience`` cuts a cosine or poly schedule while the learning rate is still high: tried
#: first, it ended below the 40-epoch recipe, BloodMNIST 96.26 vs 97.60 %.)
CONVERGED_CLASSIFICATION = {"epochs": 160}
CONVERGED_SEGMENTATION = {"epochs": 3200}
_CPU_CLASSIFICATION = """

    Kept from §6.1: T = 5 rounds; initial set = b, drawn from the seed alone (the same for every
    strategy); a model trained from scratch every round; SGD with momentum 0.9, lr 0.01, cosine
    decay, cross-entropy, horizontal flip (as the ``survey`` training recipe, which adds
    Nesterov momentum and weight decay 5e-4 where §6.1.5 is silent); the test metric of every
    round; a fully supervised reference.

    Deviations from §6.1:

    - data: a MedMNIST set at 28 px with its official train/val/test split, instead of
      NCT-CRC-HE-100K / ISIC 2020 at 224 px;
    - 3 seeds instead of 5;
    - the ``cpu`` training preset instead of ResNet-18 for 100 epochs of batch 128 (its
      numbers are in the "Training:" line below, written from the preset itself);
    - dropout 0.3 before the last layer, for the MC samples of BALD and DBAL (the survey does
      not say where its dropout is);
    - each round reports the checkpoint with the best validation metric (the survey does not
      say which epoch it reports);
    - one fully supervised reference seed, twice: budget-matched (the rounds' recipe: the
      compute of one AL round with every label) and converged (see the first line below);
    - an added baseline beside Random that AL must beat (Lüth et al. 2023): ``random_balanced``,
      class-stratified random over the model's predicted classes.
"""


@_preset("cpu-pneumonia", doc=_CPU_CLASSIFICATION)
def cpu_pneumonia() -> GridConfig:
    """PneumoniaMNIST (binary chest X-ray, 4,708 pool images) at b = 50: the CPU analogue of
    Table 7 (binary, AUC).

    All nine methods: Margin is kept although, for two classes, it ranks like Confidence (the
    survey drops it from Table 7). Data: ``<data root>/medmnist/pneumoniamnist.npz``.
    Further deviation: only the low budget (6 x 1000 labels would exceed the pool).
    """
    return GridConfig(
        name="cpu-pneumonia", strategies=_CORE_AND_BASELINE, seeds=(0, 1, 2), rounds=5,
        preset="cpu", converged_reference=CONVERGED_CLASSIFICATION, datasets=(DatasetSpec(
            name="pneumoniamnist", data="medmnist/pneumoniamnist.npz", budgets=(50,),
            metrics=("test_auc",), task="classification", survey="isic"),),
        description=_doc(cpu_pneumonia))


@_preset("cpu-retina", doc=_CPU_CLASSIFICATION)
def cpu_retina() -> GridConfig:
    """RetinaMNIST (5 diabetic-retinopathy grades, 1,080 pool images) at b = 50: multi-class
    accuracy (the metric of Table 6).

    All nine methods. Data: ``<data root>/medmnist/retinamnist.npz``. Further deviation: only
    the low budget (the pool is small: 6 x 1000 > 1,080).
    """
    return GridConfig(
        name="cpu-retina", strategies=_CORE_AND_BASELINE, seeds=(0, 1, 2), rounds=5,
        preset="cpu", converged_reference=CONVERGED_CLASSIFICATION, datasets=(DatasetSpec(
            name="retinamnist", data="medmnist/retinamnist.npz", budgets=(50,),
            metrics=("test_accuracy",), task="classification"),),
        description=_doc(cpu_retina))


@_preset("cpu-blood", doc=_CPU_CLASSIFICATION)
def cpu_blood() -> GridConfig:
    """BloodMNIST (8 blood-cell classes, 11,959 pool images) at b = 50 and b = 500: the CPU
    analogue of Table 6 (multi-class accuracy, a low and a high budget).

    All nine methods. Data: ``<data root>/medmnist/bloodmnist.npz``. Further deviation: the high
    budget is 500 instead of 1000 (6 x 1000 labels would fit the pool, but its rounds would
    take about twice as long on CPU).
    """
    return GridConfig(
        name="cpu-blood", strategies=_CORE_AND_BASELINE, seeds=(0, 1, 2), rounds=5,
        preset="cpu", converged_reference=CONVERGED_CLASSIFICATION, datasets=(DatasetSpec(
            name="bloodmnist", data="medmnist/bloodmnist.npz", budgets=(50, 500),
            metrics=("test_accuracy",), task="classification", survey="nct"),),
        description=_doc(cpu_blood))


@_preset("cpu-acdc")
def cpu_acdc() -> GridConfig:
    """ACDC end-diastolic slices at b = 10 slices (Table 8's setting) on CPU: mean Dice and ASD.

    Kept from §6.1: the survey's ACDC split (656 end-diastolic training slices, 10 validation
    and 20 test volumes, 3D evaluation), T = 5 rounds, initial set = b = 10 slices drawn from
    the seed, the seven methods of Table 8, the 5-level U-Net with dropout 0.1, CE + Dice loss,
    Adam with polynomial decay, flip and rotation augmentation, test Dice and ASD of every
    round, a fully supervised reference. Data: ``<data root>/acdc``.

    Deviations from §6.1:

    - 3 seeds instead of 5;
    - the ``cpu`` segmentation preset (:mod:`medactive.tasks.segmentation.presets`) instead of the
      survey's 256 x 256 input and 4,000 iterations of batch 32 (predictions are resized back
      for the 3D metrics; its numbers are in the "Training:" line below, written from the
      preset, and its reasons in the preset's ``deviations``);
    - one fully supervised reference seed, twice: budget-matched (the rounds' recipe: the
      compute of one AL round with every label) and converged (see the first line below);
    - an added baseline beside Random that AL must beat (nnActive 2025): ``random_foreground``,
      random among the slices the model predicts to contain foreground.
    """
    return GridConfig(
        name="cpu-acdc", strategies=_TABLE8_AND_BASELINE, seeds=(0, 1, 2), rounds=5,
        preset="cpu", converged_reference=CONVERGED_SEGMENTATION, datasets=(DatasetSpec(
            name="acdc", data="acdc", budgets=(10,),
            metrics=("test_dice_mean", "test_asd_mean"), task="segmentation", survey="acdc"),),
        description=_doc(cpu_acdc))


# -- label-efficiency presets (issue 10) ------------------------------------------------------
#: every core strategy of the frozen presets (the survey's, less DBAL and Core-Set-Cosine,
#: plus the baseline and TypiClust for low budgets)
FROZEN_STRATEGIES = ("random", CLASSIFICATION_BASELINE, "entropy", "margin", "bald", "badge",
                     "coreset_l2", "typiclust")
#: the FixMatch entry of a frozen preset: both baselines and two AL strategies
FIXMATCH_STRATEGIES = ("random", CLASSIFICATION_BASELINE, "margin", "badge")
#: the encoder of the frozen presets: SimCLR on the pool, pretrained once per dataset (epochs
#: per dataset: about 30 minutes of one CPU core each for BloodMNIST and PneumoniaMNIST)
FROZEN_ENCODER = {"method": "simclr", "model": "smallcnn", "width": 32, "seed": 0}

_FROZEN_COMMON = """

    Protocol (the label-efficiency benchmark of issue 10, after Lüth et al. 2023 and Hacohen
    et al. 2022): a SimCLR encoder is pretrained on the pool's images (no labels) once per
    dataset and shared by every seed, strategy and budget, as a downloaded checkpoint would
    be; every round trains only a head on its frozen, cached embeddings (``train_mode
    frozen``), so a round takes seconds and 10 seeds fit on a CPU, giving the pairwise
    penalty matrix the power 3 seeds lack. A second entry over the same data adds FixMatch's
    feature-space variant (``semi_supervised fixmatch``) on fewer strategies, beside the
    first. The fully supervised reference of each entry uses the same recipe (encoder,
    frozen head); ``medactive report`` states the fewest labels at which each configuration
    reaches 95 % and 100 % of it.

    Deviations from §6.1: MedMNIST at 28 px instead of NCT / ISIC at 224 px; 10 seeds instead
    of 5; low-to-mid budgets; a frozen self-supervised encoder and a head instead of ResNet-18
    trained from scratch; the ``cpu`` training preset for the head.
"""


def _frozen_grid(name: str, dataset: str, budgets: tuple[int, ...], metrics: tuple[str, ...],
                 doc: str, *, ssl_epochs: int) -> GridConfig:
    data = f"medmnist/{dataset}.npz"
    grid = GridConfig(
        name=name, strategies=FROZEN_STRATEGIES, seeds=tuple(range(10)), rounds=5,
        preset="cpu", encoder={**FROZEN_ENCODER, "epochs": ssl_epochs}, train_mode="frozen",
        datasets=(DatasetSpec(name=dataset, data=data, budgets=budgets, metrics=metrics,
                              task="classification"),
                  DatasetSpec(name=f"{dataset}-fixmatch", data=data, budgets=budgets,
                              metrics=metrics, task="classification",
                              strategies=FIXMATCH_STRATEGIES, semi_supervised="fixmatch")))
    return replace(grid, description=inspect.cleandoc(doc))


@_preset("frozen-pneumonia", doc=_FROZEN_COMMON)
def frozen_pneumonia() -> GridConfig:
    """PneumoniaMNIST (binary chest X-ray, 4,708 pool images), frozen SimCLR features, test AUC.

    Budget b = 50 (up to 300 labels): the issue's target is our fully supervised AUC with at
    most 250 labels. SimCLR for 40 epochs. Data: ``<data root>/medmnist/pneumoniamnist.npz``.
    """
    return _frozen_grid("frozen-pneumonia", "pneumoniamnist", (50,), ("test_auc",),
                        frozen_pneumonia.__doc__, ssl_epochs=40)


@_preset("frozen-blood", doc=_FROZEN_COMMON)
def frozen_blood() -> GridConfig:
    """BloodMNIST (8 blood-cell classes, 11,959 pool images), frozen SimCLR features, test
    accuracy.

    Budget b = 200 (up to 1,200 labels): the issue's target is 97 % test accuracy with at most
    1,200 labels. SimCLR for 20 epochs. Data: ``<data root>/medmnist/bloodmnist.npz``.
    """
    return _frozen_grid("frozen-blood", "bloodmnist", (200,), ("test_accuracy",),
                        frozen_blood.__doc__, ssl_epochs=20)


@_preset("frozen-retina", doc=_FROZEN_COMMON)
def frozen_retina() -> GridConfig:
    """RetinaMNIST (5 diabetic-retinopathy grades, 1,080 pool images), frozen SimCLR features,
    test accuracy.

    Budget b = 50 (up to 300 labels, over a quarter of the pool). SimCLR for 100 epochs (a small
    pool: 4 steps an epoch). Data: ``<data root>/medmnist/retinamnist.npz``.
    """
    return _frozen_grid("frozen-retina", "retinamnist", (50,), ("test_accuracy",),
                        frozen_retina.__doc__, ssl_epochs=100)


@_preset("smoke-bench")
def smoke_bench() -> GridConfig:
    """A minute-or-two check that the benchmark runs end to end; not a result.

    PneumoniaMNIST, random and entropy, b = 20 (initial 20), 2 rounds, 2 seeds, the ``smoke``
    training preset (2 epochs of a width-8 CNN), one fully supervised reference. Data:
    ``<data root>/medmnist/pneumoniamnist.npz``.
    """
    return GridConfig(
        name="smoke-bench", strategies=("random", "entropy"), seeds=(0, 1), rounds=2,
        preset="smoke", datasets=(DatasetSpec(
            name="pneumoniamnist", data="medmnist/pneumoniamnist.npz", budgets=(20,),
            metrics=("test_auc",), task="classification"),),
        description=_doc(smoke_bench))


def iter_presets() -> Iterable[tuple[str, str]]:
    """``(name, first line of its description)`` for every preset."""
    for name in list_presets():
        yield name, describe_preset(name).splitlines()[0]
