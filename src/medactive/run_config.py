"""Run settings from a file: ``medactive run --config FILE``.

The file holds the fields of one :class:`~medactive.experiment.ExperimentConfig`, which is
exactly what a bench grid gives each of its units
(:meth:`~medactive.bench.config.GridConfig.unit_options`), so a unit of a grid can be run alone
from its settings. Two forms are read:

- TOML (``.toml``)::

      data = "default"            # or a dataset path, relative to the current directory
      strategy = "margin"
      initial = 20
      budget = 10
      rounds = 2
      seed = 3
      preset = "smoke"
      # epochs, task, finetune, device, initial_strategy, encoder, encoder_weights,
      # train_mode, semi_supervised; tables: strategy_options, data_options, train_options,
      # pseudo_label, ssl, semi_options

- JSON (``.json``): the same fields, or a ``run.json`` written by ``medactive run``, whose
  ``"config"`` block is read, so any run repeats from its own record.

Flags given on the command line override the file, field by field (``--image-size`` replaces
only ``data_options.image_size``; the ``--ssl*`` and ``--pseudo-label-*`` flags replace the
``ssl`` / ``pseudo_label`` table as a whole). ``--out``, ``--threads``, ``--resume`` and the
progress flags are never in the file.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from medactive._validation import check_at_least
from medactive.errors import ConfigError

#: run flags (argparse dests) and the config field they set: a field name, or
#: ``(table, key)`` for one key of a table, or ``(table, None)`` for the whole table
FLAG_FIELDS: dict[str, str | tuple[str, str | None]] = {
    **{name: name for name in ("data", "strategy", "initial", "budget", "rounds", "seed",
                               "task", "preset", "epochs", "finetune", "device",
                               "initial_strategy", "encoder", "encoder_weights", "train_mode",
                               "semi_supervised", "selection_device")},
    **{name: ("data_options", name) for name in ("image_size", "labels", "reduction",
                                                  "frames", "spacing_csv", "cache_dir",
                                                  "region_size", "classes")},
    "cache_float16": ("data_options", "cache_dtype"),
    "augmentation": ("train_options", "augmentation"),
    "mc_samples": ("train_options", "n_mc_samples"),
    "evidential": ("train_options", "evidential"),
    "ensemble_size": ("train_options", "ensemble_size"),
    "learning_loss": ("train_options", "learning_loss"),
    "head": ("train_options", "head"),
    **{name: ("pseudo_label", None) for name in ("pseudo_label_entropy", "pseudo_label_decay",
                                                  "pseudo_label_max")},
    **{name: ("ssl", None) for name in ("ssl", "ssl_epochs", "ssl_batch_size",
                                         "ssl_temperature")},
}
#: settings a run cannot do without
REQUIRED = ("data", "strategy", "initial", "budget", "rounds")
_INTS = {"initial": 1, "budget": 1, "rounds": 0, "seed": 0, "epochs": 1}
_STRINGS = ("data", "strategy", "task", "preset", "device", "initial_strategy", "encoder",
            "encoder_weights", "train_mode", "semi_supervised", "selection_device")
_TABLES = ("strategy_options", "data_options", "train_options", "semi_options")
_OPTIONAL_TABLES = ("pseudo_label", "ssl")


def config_fields() -> list[str]:
    from medactive.experiment import ExperimentConfig

    return [f.name for f in fields(ExperimentConfig)]


def read_run_config(path: str | Path) -> dict[str, Any]:
    """The settings in ``path`` (TOML, JSON, or a ``run.json``), checked field by field.

    Raises:
        ConfigError: the file is missing or unreadable, not valid TOML/JSON, has an unknown
            field, or a field of the wrong type (each message names the file and the field).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        if isinstance(data, dict) and isinstance(data.get("config"), dict) and "versions" in data:
            data = data["config"]  # a run.json: its record of what ran
    else:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a table of run settings")
    return check_run_config(data, source=str(path))


def check_run_config(data: dict[str, Any], *, source: str) -> dict[str, Any]:
    """``data`` if every field is known and of the right type, else one ConfigError."""
    known = config_fields()
    unknown = sorted(set(data) - set(known))
    if unknown:
        hint = " (--out and --threads are flags only)" if set(unknown) & {"out", "threads"} \
            else ""
        raise ConfigError(f"{source}: unknown setting(s) {', '.join(map(repr, unknown))}{hint}; "
                          f"known: {', '.join(known)}")
    for key, least in _INTS.items():
        value = data.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be an integer, got {value!r}")
        check_at_least(value, least, name=f"{source}: {key}")
    for key in _STRINGS:
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be a string, got {value!r}")
    if "finetune" in data and not isinstance(data["finetune"], bool):
        raise ConfigError(f"{source}: finetune must be true or false, got {data['finetune']!r}")
    for key in _TABLES:
        if key in data and not isinstance(data[key], dict):
            raise ConfigError(f"{source}: {key} must be a table, got {data[key]!r}")
    for key in _OPTIONAL_TABLES:
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise ConfigError(f"{source}: {key} must be a table, got {data[key]!r}")
    return dict(data)


def merge_flags(settings: dict[str, Any], flags: dict[str, Any], given: set[str]
                ) -> dict[str, Any]:
    """``settings`` (from a file) with the parts the ``given`` flags set taken from ``flags``
    (the config the flags alone describe, :meth:`ExperimentConfig.to_dict`)."""
    out = dict(settings)
    for dest in sorted(given):
        target = FLAG_FIELDS.get(dest)
        if target is None:
            continue
        if isinstance(target, str):
            out[target] = flags[target]
            continue
        table, key = target
        if key is None:
            out[table] = flags[table]
        else:
            merged = dict(out.get(table) or {})
            if key in flags[table]:
                merged[key] = flags[table][key]
            out[table] = merged
    return out


def missing_required(settings: dict[str, Any]) -> list[str]:
    """The required settings neither the file nor a flag gave."""
    return [key for key in REQUIRED if settings.get(key) is None]
