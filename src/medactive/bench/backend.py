"""The default benchmark backend: units become :mod:`medactive.experiment` runs.

A backend is a module with three functions of a unit's options (the fields of
:class:`~medactive.experiment.ExperimentConfig` as a dict, see
:meth:`~medactive.bench.config.GridConfig.unit_options`):

- ``build_task(options) -> Task``
- ``loop_config(options) -> LoopConfig``
- ``supervised_reference(options, task) -> dict[str, float]``

and optionally ``validate(options)``, a cheap check run in the parent before any work starts
(e.g. that the data exists), and ``pretrain_encoder(options, table, path)``, which writes the
encoder a grid's ``encoder = {method = "simclr", ...}`` table asks for (run by the parent
before the dataset's units). Tests plug in a module with a fake task instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from medactive.errors import ConfigError


def _config(options: dict[str, Any]):
    from medactive.experiment import ExperimentConfig

    return ExperimentConfig(**options)


def build_task(options: dict[str, Any], *, work_dir: str | None = None):
    """The unit's task; with ``ssl`` also pretrained (once per worker and task options: the
    runner reuses the task for every strategy and budget of a seed, which therefore share the
    pretrained weights and the cold-start initial set).

    With ``work_dir`` (the results folder, when this worker can see it) the weights are kept in
    ``work_dir/pretrained/<key>.pt``, so a killed and rerun grid does not pretrain again; the
    file also records its settings and pool and is ignored if they differ.
    """
    from medactive.experiment import build_task as _build
    from medactive.experiment import pretrain_task

    config = _config(options)
    task = _build(config)
    cache_path = None
    if config.ssl is not None and work_dir is not None and Path(work_dir).is_dir():
        key = json.dumps([options.get(k) for k in ("data", "task", "preset", "epochs", "seed",
                                                    "data_options", "train_options", "ssl")],
                         sort_keys=True, default=str)
        name = hashlib.sha256(key.encode()).hexdigest()[:16]
        cache_path = Path(work_dir) / "pretrained" / f"{name}.pt"
    pretrain_task(task, config, cache_path=cache_path)
    return task


def loop_config(options: dict[str, Any]):
    from medactive.experiment import loop_config as _loop_config

    return _loop_config(_config(options))


def supervised_reference(options: dict[str, Any], task) -> dict[str, float]:
    from medactive.experiment import supervised_reference as _supervised

    return _supervised(_config(options), task=task)


def pretrain_encoder(options: dict[str, Any], table: dict[str, Any], path: str) -> dict:
    """Pretrain the encoder ``table`` asks for on the pool of ``options`` into ``path`` with
    :func:`medactive.encoders.pretrain_encoder` (resumable from ``path + ".partial"``; a no-op
    when ``path`` already holds this encoder's key).

    Args:
        options: a unit's options without encoder / training-mode keys (data, preset, ...).
        table: complete settings: SSLConfig fields plus ``model``, ``width``, ``seed``.
        path: the encoder file.

    Returns:
        The stored record (``key``, ``quality``, ``seconds``, ...).
    """
    from medactive.encoders import pretrain_encoder as _pretrain
    from medactive.encoders.simclr import SSLConfig
    from medactive.experiment import build_task as _build
    from medactive.tasks.classification.task import resolve_device

    settings = dict(table)
    model, width, seed = settings.pop("model"), settings.pop("width"), settings.pop("seed")
    task = _build(_config(options))
    dataset = getattr(task, "dataset", None)
    if dataset is None:
        raise ConfigError(f"{options['data']}: encoder tables (pretraining) need a "
                          "classification pool")
    return _pretrain(dataset, path, ssl=SSLConfig.from_dict(settings, source="encoder"),
                     model=model, width=width, seed=seed,
                     device=resolve_device(options.get("device", "auto")), progress=True)


def validate(options: dict[str, Any]) -> None:
    """Refuse a missing dataset or encoder file (and SSL on segmentation data) before the grid
    starts."""
    from medactive.query_device import array_device

    array_device(options.get("selection_device", "cpu"), name="selection_device")
    data = options["data"]
    if data != "default" and not Path(data).exists():
        raise ConfigError(f"dataset {data} not found; pass --data-root (the folder holding "
                          "medmnist/, acdc/, ...) or fix the path in the config")
    for key in ("encoder", "encoder_weights"):
        value = options.get(key)
        # a table is pretrained by the runner; timm: specs are checked when loaded
        if isinstance(value, str) and not value.startswith("timm:") and not Path(value).exists():
            raise ConfigError(f"{key} {value} not found; write it with `medactive pretrain`, "
                              "or give the grid an encoder table to pretrain")
    if options.get("ssl") is not None or options.get("initial_strategy", "random") != "random":
        from medactive.experiment import check_ssl_options

        check_ssl_options(_config(options))  # e.g. ssl on data that turns out segmentation
