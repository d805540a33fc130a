"""Training presets of the segmentation task: ``survey``, ``cpu`` and ``smoke``.

``survey`` follows §6.1.5 of the survey; ``cpu`` keeps the protocol's shape (same U-Net
structure, loss, optimiser, schedule, augmentation, rounds and budgets) and shrinks the compute
so that a 6-round run finishes in minutes on 2 CPU cores; ``smoke`` only checks that the
pipeline runs. Every deviation from §6.1.5 is listed in the preset's ``deviations``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from medactive.errors import ConfigError


@dataclass(frozen=True)
class SegmentationPreset:
    """Model, training and inference settings of one round.

    Attributes:
        name: preset name.
        image_size: side of the square network input; slices are resized to it (bilinear,
            anti-aliased; masks nearest) and predictions resized back to the original size.
        channels: U-Net feature maps per level (5 levels).
        dropout: dropout probability of every block (channel-wise, also used for MC dropout).
        iterations: optimiser steps per round.
        batch_size: slices per step.
        lr: Adam learning rate, decayed as ``lr * (1 - it / iterations) ** poly_power``.
        poly_power: exponent of the polynomial decay.
        rotation_degrees: range of the arbitrary rotation augmentation (±).
        val_every: evaluate the validation Dice every this many steps and keep the best model.
        batch_dice: compute the Dice loss over the whole batch per class (SSL4MIS's Dice loss;
            MONAI ``DiceCELoss(batch=True)``) rather than per slice. Per slice, a class absent
            from a slice pushes its prediction to zero everywhere, and small structures (RV,
            MYO) can stay unlearnt for hundreds of steps.
        n_mc_samples: MC-dropout passes behind ``"mc_probas"`` (DBAL, BALD).
        patience: stop when this many validations in a row bring no improvement (``None``:
            all ``iterations``, which are then a maximum; the converged reference).
        predict_batch_size: slices per forward pass at inference.
        learning_loss: train a loss-prediction module on every encoder and decoder level
            beside the U-Net (:mod:`medactive.tasks.learning_loss`), for ``learning_loss``.
        deviations: how the preset departs from the survey's §6.1.5.
    """

    name: str
    image_size: int
    channels: tuple[int, ...]
    dropout: float
    iterations: int
    batch_size: int
    lr: float
    poly_power: float
    rotation_degrees: float
    val_every: int
    n_mc_samples: int
    predict_batch_size: int
    batch_dice: bool = True
    patience: int | None = None
    learning_loss: bool = False
    deviations: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


SURVEY = SegmentationPreset(
    name="survey", image_size=256, channels=(16, 32, 64, 128, 256), dropout=0.1,
    iterations=4000, batch_size=32, lr=1e-3, poly_power=0.9, rotation_degrees=20.0,
    val_every=200, n_mc_samples=25, predict_batch_size=32,
    deviations=(
        ("choices the survey leaves open: U-Net channels (16, 32, 64, 128, 256) as in SSL4MIS; "
         "poly decay power 0.9 (SSL4MIS); arbitrary rotation within ±20° (SSL4MIS); validation "
         "Dice every 200 steps to keep the best model; Dice loss over the batch per class "
         "(SSL4MIS's Dice loss); 25 MC-dropout passes (project default)"),
    ),
)

CPU = SegmentationPreset(
    name="cpu", image_size=64, channels=(8, 16, 32, 64, 128), dropout=0.1,
    iterations=800, batch_size=8, lr=1e-2, poly_power=0.9, rotation_degrees=20.0,
    val_every=200, n_mc_samples=8, predict_batch_size=64,
    deviations=(
        ("input 64×64 instead of 256×256 (slices are down-sampled about 4×, which alone caps "
         "the test Dice near 0.975; probabilities are still resized back to the original size "
         "for the 3D metrics)"),
        "U-Net channels (8, 16, 32, 64, 128) instead of (16, 32, 64, 128, 256)",
        ("800 iterations of batch 8 per round instead of 4000 of batch 32 (on 20 slices, 400 "
         "iterations left RV and MYO unlearnt for 2 of 3 seeds; 800 learnt them)"),
        ("Adam learning rate 1e-2 instead of 1e-3 (same poly decay): with 20x fewer slices "
         "seen, 1e-3 left RV and MYO unlearnt (test Dice 0.23 after 200 steps on 10 slices)"),
        "8 MC-dropout passes instead of 25",
    ),
)

SMOKE = SegmentationPreset(
    name="smoke", image_size=32, channels=(4, 8, 16, 32, 64), dropout=0.1,
    iterations=6, batch_size=4, lr=1e-3, poly_power=0.9, rotation_degrees=20.0,
    val_every=3, n_mc_samples=2, predict_batch_size=128,
    deviations=(("checks the pipeline only: 32×32 input, channels (4, 8, 16, 32, 64), 6 "
                 "iterations of batch 4, validation every 3 steps, 2 MC-dropout passes"),),
)

PRESETS = {p.name: p for p in (SURVEY, CPU, SMOKE)}


def get_preset(name: str | SegmentationPreset, *, iterations: int | None = None,
               **overrides) -> SegmentationPreset:
    """The preset called ``name`` (or ``name`` itself), optionally with other ``iterations``
    or other field values (``overrides``, e.g. ``n_mc_samples=10``), each recorded in
    ``deviations``.

    Raises:
        ConfigError: unknown name or field, ``iterations < 1``, an ``image_size`` that is not a
            multiple of 16.
    """
    if isinstance(name, SegmentationPreset):
        preset = name
    elif name in PRESETS:
        preset = PRESETS[name]
    else:
        raise ConfigError(f"unknown segmentation preset {name!r}; choose one of: "
                          f"{', '.join(PRESETS)}")
    if overrides:
        known = set(SegmentationPreset.__dataclass_fields__) - {"name", "deviations"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ConfigError(f"unknown segmentation training option(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        if "channels" in overrides:
            overrides["channels"] = tuple(int(c) for c in overrides["channels"])
        preset = replace(preset, **overrides, deviations=(
            *preset.deviations, *(f"{k} overridden to {v!r}" for k, v in overrides.items())))
        if preset.image_size % 16 or preset.image_size < 16:
            raise ConfigError(f"image_size must be a positive multiple of 16 (5-level U-Net), "
                              f"got {preset.image_size}")
    if iterations is not None:
        if int(iterations) < 1:
            raise ConfigError(f"iterations must be at least 1, got {iterations}")
        preset = replace(preset, iterations=int(iterations),
                         val_every=min(preset.val_every, int(iterations)),
                         deviations=(*preset.deviations,
                                     f"iterations overridden to {int(iterations)}"))
    return preset
