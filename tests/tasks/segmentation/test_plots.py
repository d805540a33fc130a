from __future__ import annotations

import numpy as np

from medactive.tasks.segmentation import build_segmentation_task, save_round_figure
from medactive.tasks.segmentation.plots import pick_slices


def test_pick_slices_spreads_over_volumes():
    masks = [np.zeros((3, 4, 4), np.uint8) for _ in range(5)]
    masks[4][2, 1, 1] = 1
    assert pick_slices(masks, 2) == [(0, 0), (4, 2)]
    assert pick_slices([], 3) == []


def test_save_round_figure_writes_a_png(tmp_path, seg):
    root = seg.write_h5_layout(tmp_path / "acdc", train_patients=(3, 4), n_slices=2)
    task = build_segmentation_task(root, preset="smoke", iterations=2)
    model = task.fit(np.array([0, 1]), task.pool_labels(np.array([0, 1])), seed=0)
    path = save_round_figure(task, model, tmp_path / "figs" / "round_0.png",
                             title="random, round 0")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert task.save_figure(model, tmp_path / "again.png").is_file()
