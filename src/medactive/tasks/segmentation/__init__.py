"""Active learning for medical image segmentation: 2D slices of 3D volumes (survey §5.2, §6).

- the data (ACDC, NIfTI, DICOM, PNG pairs) is loaded by :mod:`medactive.data.segmentation`
  as a pool of slices plus val/test volumes;
- :mod:`.unet`, :mod:`.presets`, :mod:`.train` — the survey's 5-level U-Net and its training;
- :mod:`.metrics` — Dice, ASD, HD95 in 3D;
- :mod:`.predictions` — streamed model outputs for strategies;
- :mod:`.task` — :class:`SegmentationTask` and :func:`build_segmentation_task`;
- :mod:`.losses`, :mod:`.mean_teacher` — Dice + cross-entropy, the mean-teacher option;
- :mod:`.regions` — region (patch) pools and their task;
- :mod:`.plots` — the per-round figure.
"""

from __future__ import annotations

from medactive.data.segmentation import looks_like_segmentation_data
from medactive.tasks.segmentation.plots import save_round_figure
from medactive.tasks.segmentation.task import SegmentationTask, build_segmentation_task

__all__ = ["SegmentationTask", "build_segmentation_task", "looks_like_segmentation_data",
           "save_round_figure"]
