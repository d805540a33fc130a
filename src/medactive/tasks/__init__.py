"""Tasks: what the AL loop trains, evaluates and predicts with (the protocol is
:class:`medactive.loop.task.Task`), one package per task.

- :mod:`.classification` — image classification: model, training recipes (presets), head-only
  and semi-supervised training, metrics and :class:`~.classification.ClassificationTask`;
- :mod:`.segmentation` — 2D slice segmentation of 3D volumes: U-Net, training, mean teacher,
  metrics, streamed predictions, region (patch) pools and
  :class:`~.segmentation.SegmentationTask`.

Their data loaders live in :mod:`medactive.data`, their pool encoders in
:mod:`medactive.encoders`.
"""
