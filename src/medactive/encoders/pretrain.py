"""``medactive pretrain``: a self-supervised pool encoder written to one file, with its quality.

:func:`pretrain_encoder` pretrains a backbone self-supervised (SimCLR or SimSiam, the settings'
``method``) on the train split (labels never read),
then measures it with the standard yardsticks (:mod:`medactive.encoders.quality`: kNN and
linear-probe accuracy on val and test, fitted on every train label — the labels are read only
for this report, after training) and writes the record to ``out``
(:func:`~medactive.encoders.base.save_encoder_file`).

Resumable: the training state is kept in ``<out>.partial`` after every epoch; a killed
pretraining rerun with the same settings continues after its last epoch and ends with the same
weights as an uninterrupted one. A finished ``out`` holding the same content key is returned
as it is.

References:
    Chen, Kornblith, Norouzi and Hinton, "A simple framework for contrastive learning of visual
    representations", ICML 2020.
    Chen and He, "Exploring simple Siamese representation learning", CVPR 2021.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from medactive.data.pool import Dataset
from medactive.encoders.base import (
    Encoder,
    backbone_from_record,
    fingerprint_ids,
    read_encoder_file,
    save_encoder_file,
)
from medactive.encoders.simclr import SSLConfig, pretrain_ssl
from medactive.errors import DataError

logger = logging.getLogger(__name__)

#: the backbone ``medactive pretrain`` trains unless told otherwise
DEFAULT_MODEL, DEFAULT_WIDTH = "smallcnn", 32

#: SimCLR settings for small medical images: any rotation and both flips (X-ray patches, blood
#: smears and fundus photographs have no canonical orientation at 28 px), SimCLR's colour
#: distortion for RGB (saturation, 20 % grey views), tighter crops than the paper's 0.08 floor
#: (28 px images lose their content below a third of the area), 30 epochs. SimSiam
#: (``method = "simsiam"``) takes the same settings (its predictor: 128 -> 32 -> 128) and the
#: same Adam schedule, not the paper's SGD (lr 0.05 x batch / 256, weight decay 1e-4, predictor
#: lr not decayed), so the two methods differ only in their objective
MEDICAL_SSL = SSLConfig(epochs=30, batch_size=256, lr=1e-3, temperature=0.5, projection_dim=128,
                        crop_min=0.3, max_rotation=180.0, vertical_flip=True, jitter=0.4,
                        saturation=0.4, grayscale=0.2)


def encoder_key(dataset: Dataset, *, ssl: SSLConfig, model: str, width: int | None,
                seed: int) -> dict[str, Any]:
    """The content key of a pretraining: method, settings, seed, model and pool."""
    train = dataset.train
    shape = list(train.images.shape) if isinstance(train.images, np.ndarray) else [len(train)]
    return {"method": ssl.method, "ssl": ssl.to_dict(), "seed": int(seed), "model": model,
            "width": width, "in_channels": dataset.in_channels,
            "pool": {"name": dataset.name, "ids": fingerprint_ids(train.ids), "shape": shape}}


def pretrain_encoder(dataset: Dataset, out: str | Path, *, ssl: SSLConfig = MEDICAL_SSL,
                     model: str = DEFAULT_MODEL, width: int | None = DEFAULT_WIDTH,
                     seed: int = 0, device: str = "cpu", progress: bool = False,
                     measure: bool = True) -> dict[str, Any]:
    """Pretrain (or resume, or reuse) the encoder of ``dataset`` into ``out``.

    Args:
        dataset: its train split is the pool; val/test (with labels) serve the quality report.
        out: the encoder file.
        ssl: pretraining settings.
        model: the backbone (``smallcnn`` or ``resnet18``).
        width: its width (channels of the first block; ``None``: the model's default).
        seed: seeds initialisation, batch order and augmentation.
        measure: compute the kNN / linear-probe quality at the end.

    Returns:
        The stored record (``key``, ``architecture``, ``state``, ``quality``, ``seconds``).
    """
    out = Path(out)
    key = encoder_key(dataset, ssl=ssl, model=model, width=width, seed=seed)
    if out.is_file():
        try:
            record = read_encoder_file(out)
        except DataError as exc:
            logger.warning("%s; pretraining again", exc)
            record = None
        if record is not None and record["key"] == _plain(key):
            logger.info("%s already holds this encoder", out)
            return record
    partial = out.with_name(out.name + ".partial")
    start = time.perf_counter()
    state = pretrain_ssl(dataset.train, config=ssl, model=model,
                         in_channels=dataset.in_channels, width=width, seed=seed,
                         device=device, progress=progress, checkpoint=partial,
                         checkpoint_key=key)
    seconds = time.perf_counter() - start
    record = {"key": _plain(key),
              "architecture": {"model": model, "width": width,
                               "in_channels": dataset.in_channels},
              "state": state, "seconds": seconds, "quality": None}
    if measure:
        record["quality"] = measure_quality(
            Encoder(str(out), backbone_from_record(record, in_channels=dataset.in_channels),
                    key=record["key"]), dataset, device=device, progress=progress)
    save_encoder_file(out, record)
    partial.unlink(missing_ok=True)
    return record


def measure_quality(encoder: Encoder, dataset: Dataset, *, k: int = 20, device: str = "cpu",
                    progress: bool = False) -> dict[str, float] | None:
    """kNN (k = 20, cosine) and linear-probe accuracy of ``encoder`` on ``dataset``'s val and
    test splits, fitted on every train label; ``None`` when the train split has no labels."""
    from medactive.encoders.quality import encoder_quality

    if dataset.train.labels is None:
        return None
    features, labels = {}, {}
    for name in ("train", "val", "test"):
        split = getattr(dataset, name)
        if len(split) and split.labels is not None:
            features[name] = encoder.embed(split, device=device, progress=progress)
            labels[name] = np.asarray(split.labels)
    return encoder_quality(features, labels, k=k)


def _plain(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, sort_keys=True, default=str))
