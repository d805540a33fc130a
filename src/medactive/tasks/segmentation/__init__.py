"""Active learning for medical image segmentation: 2D slices of 3D volumes (survey §5.2, §6).

- :mod:`.dataset`, :mod:`.data_acdc`, :mod:`.data_nifti` — ACDC (SSL4MIS h5, raw NIfTI) and
  NIfTI image/mask folders as a pool of slices plus val/test volumes;
- :mod:`.unet`, :mod:`.presets`, :mod:`.train` — the survey's 5-level U-Net and its training;
- :mod:`.metrics` — Dice, ASD, HD95 in 3D;
- :mod:`.predictions` — streamed model outputs for strategies;
- :mod:`.task` — :class:`SegmentationTask` and :func:`build_segmentation_task`;
- :mod:`.plots` — the per-round figure.
"""

from __future__ import annotations

from medactive.data.segmentation import looks_like_segmentation_data
from medactive.tasks.segmentation.plots import save_round_figure
from medactive.tasks.segmentation.task import SegmentationTask, build_segmentation_task

__all__ = ["SegmentationTask", "build_segmentation_task", "looks_like_segmentation_data",
           "save_round_figure"]
