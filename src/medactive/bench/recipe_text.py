"""What a grid entry trains, written from the training preset objects themselves.

``medactive bench --describe`` and the report page print these lines, so the numbers a reader
sees (epochs, iterations, learning rate, validation interval) are the ones the units run: they
cannot drift from the presets the way hand-written prose did (issue 15, item 10).
"""

from __future__ import annotations

from typing import Any

from medactive.errors import ConfigError


def recipe_text(task: str, preset: str, *, epochs: int | None = None,
                train_options: dict[str, Any] | None = None, train_mode: str | None = None,
                encoder: bool = False) -> str:
    """One line: the training recipe of a unit of ``task`` with ``preset`` and its overrides.

    ``task`` is ``"classification"`` or ``"segmentation"`` (``"auto"``: both are named, the
    data decides at run time). ``train_mode="frozen"`` describes the head trained on frozen
    embeddings (``train_options["head"]``, :class:`~medactive.tasks.classification.head.HeadConfig`)
    instead of the CNN recipe; with ``encoder`` (finetune mode) the network is the encoder's
    backbone with a new head, trained with the recipe's optimiser and schedule.

    Example:
        >>> recipe_text("segmentation", "cpu")[:60]
        "'cpu' U-Net recipe: 64 x 64 input, channels (8, 16, 32, 64, "
    """
    options = dict(train_options or {})
    head = options.pop("head", None)
    if task == "segmentation":
        return _segmentation(preset, epochs, options)
    if task == "classification":
        if train_mode == "frozen":
            return _head(head)
        return _classification(preset, epochs, options, encoder=encoder)
    return ("task chosen from the data: " + _classification(preset, epochs, options)
            + "; or " + _segmentation(preset, epochs, options))


def _classification(preset: str, epochs: int | None, options: dict[str, Any], *,
                    encoder: bool = False) -> str:
    from medactive.tasks.classification.presets import get_preset

    try:
        c = get_preset(preset, epochs=epochs, **options)
    except (ConfigError, TypeError):
        return f"classification preset {preset!r} (not a classification recipe)"
    opt = (f"SGD lr {c.lr:g}, momentum {c.momentum:g}" + (" (Nesterov)" if c.nesterov else "")
           + f", weight decay {c.weight_decay:g}, cosine decay")
    size = f"{c.image_size} px input" if c.image_size else "images at their stored size"
    stop = (f", stop after {c.patience} validations without improvement"
            if getattr(c, "patience", None) else "")
    network = ("the encoder's backbone and a new head" if encoder
               else f"{c.model} width {c.width}")
    return (f"{c.name!r} CNN recipe: {network}, {size}, {c.epochs} epochs of "
            f"batch {c.batch_size}, {opt}, augmentation {c.augmentation}, dropout {c.dropout:g} "
            f"before the last layer, {c.n_mc_samples} MC-dropout passes, validation every "
            f"{c.eval_every} epochs keeping the best checkpoint{stop}")


def _segmentation(preset: str, iterations: int | None, options: dict[str, Any]) -> str:
    from medactive.tasks.segmentation.presets import get_preset

    options = {k: v for k, v in options.items() if k != "region_size"}
    try:
        p = get_preset(preset, iterations=iterations, **options)
    except (ConfigError, TypeError):
        return f"segmentation preset {preset!r} (not a segmentation recipe)"
    stop = (f", stop after {p.patience} validations without improvement"
            if getattr(p, "patience", None) else "")
    return (f"{p.name!r} U-Net recipe: {p.image_size} x {p.image_size} input, channels "
            f"{tuple(p.channels)}, dropout {p.dropout:g}, {p.iterations} iterations of batch "
            f"{p.batch_size}, Adam lr {p.lr:g} with poly decay (power {p.poly_power:g}), "
            f"rotation ±{p.rotation_degrees:g}°, CE + Dice loss, validation Dice every "
            f"{p.val_every} steps keeping the best weights{stop}, {p.n_mc_samples} MC-dropout "
            "passes")


def _head(options: dict[str, Any] | str | None) -> str:
    from medactive.tasks.classification.head import HeadConfig

    h = HeadConfig.from_dict(options, source="train option head")
    kind = f"MLP head ({h.hidden} hidden)" if h.kind == "mlp" else "linear head"
    return (f"frozen embeddings, {kind}, dropout {h.dropout:g}, Adam lr {h.lr:g}, weight decay "
            f"{h.weight_decay:g}, {h.steps} steps of batch {h.batch_size}, validation every "
            f"{h.eval_every} steps keeping the best head")
