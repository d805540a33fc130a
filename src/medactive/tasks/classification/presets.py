"""Named classification training recipes: ``survey``, ``cpu`` and ``smoke``.

``survey`` is §6.1.5 of Wang et al. (2024): ResNet-18, SGD with Nesterov momentum 0.9, lr 0.01,
weight decay 5e-4, cosine decay, batch 128, 100 epochs, cross-entropy. Deviations in ``cpu``
and ``smoke`` are listed in their ``notes``. Segmentation presets with the same names live in
:mod:`medactive.tasks.segmentation.presets`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from medactive.errors import ConfigError


@dataclass(frozen=True)
class TrainConfig:
    """A classification training recipe.

    Attributes:
        name: preset name.
        model: ``"resnet18"`` or ``"smallcnn"``.
        width: backbone width (ResNet-18 standard: 64).
        image_size: resize images to this side (``None``: keep the data's size).
        epochs: training epochs per round.
        batch_size: mini-batch size.
        ensemble_size: deep ensemble of this many independently seeded models per round
            (:mod:`medactive.tasks.ensemble`; 1: one model); evaluated by their mean
            probabilities, members' probabilities for the ensemble/QBC strategies.
        lr, momentum, nesterov, weight_decay: SGD settings; the schedule is cosine decay.
        augmentation: ``"none"``, ``"flip"``/``"nct"`` (horizontal flip) or ``"isic"`` (crop,
            flip, rotation, affine, colour jitter).
        dropout: dropout before the last layer (MC dropout for DBAL/BALD).
        n_mc_samples: MC-dropout passes ``T``.
        evidential: train with Sensoy et al.'s evidential loss and read the logits as Dirichlet
            evidence (:mod:`medactive.tasks.evidential`; ``medactive run --evidential``).
        eval_every: validate every this many epochs (and after the last) to keep the best
            checkpoint.
        patience: stop when this many validations in a row bring no improvement (``None``:
            train all ``epochs``); with it, ``epochs`` is a maximum (the converged fully
            supervised reference of a benchmark, trained to a validation plateau).
        learning_loss: train a loss-prediction module beside the model (Yoo & Kweon 2019,
            :mod:`medactive.tasks.learning_loss`), for the ``learning_loss`` strategy.
        notes: deviations from the survey recipe.
    """

    name: str
    model: str = "resnet18"
    width: int = 64
    image_size: int | None = None
    epochs: int = 100
    batch_size: int = 128
    ensemble_size: int = 1
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    augmentation: str = "flip"
    dropout: float = 0.3
    n_mc_samples: int = 25
    evidential: bool = False
    eval_every: int = 5
    patience: int | None = None
    inference_batch_size: int = 512
    learning_loss: bool = False
    notes: str = ""

    def replace(self, **changes) -> TrainConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


_PRESETS = {
    "survey": TrainConfig(
        name="survey", notes="Wang et al. 2024 §6.1.5; dropout 0.3 before the last layer is our "
        "addition so DBAL/BALD have MC samples (the survey does not state where its dropout is)."),
    "cpu": TrainConfig(
        name="cpu", model="smallcnn", width=16, epochs=40, batch_size=32, eval_every=4,
        notes="Small 4-block CNN (width 16) instead of ResNet-18; 40 epochs instead of 100; batch "
        "32 instead of 128 (few labels per round); images at their stored size (MedMNIST 28 px) "
        "instead of 224 px. Optimiser, schedule, loss and augmentation as the survey."),
    "smoke": TrainConfig(
        name="smoke", model="smallcnn", width=8, epochs=2, batch_size=32, eval_every=1,
        n_mc_samples=5, inference_batch_size=1024,
        notes="For tests: 2 epochs of a width-8 CNN, 5 MC samples. Not a result."),
}


def list_presets() -> list[str]:
    return sorted(_PRESETS)


def get_preset(name: str, *, epochs: int | None = None, **overrides) -> TrainConfig:
    """The preset ``name``, with ``epochs`` and other fields overridden when given."""
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(list_presets())}")
    config = _PRESETS[name]
    if "ensemble_size" in overrides:
        from medactive.tasks.ensemble import check_ensemble_size

        overrides["ensemble_size"] = check_ensemble_size(overrides["ensemble_size"],
                                                         name="--ensemble-size")
    if epochs is not None:
        if epochs < 1:
            raise ConfigError(f"--epochs must be at least 1, got {epochs}")
        overrides["epochs"] = epochs
    return config.replace(**overrides) if overrides else config
