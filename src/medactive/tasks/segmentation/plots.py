"""Per-round figure: a few test slices with predicted and ground-truth contours.

The lead's ``medactive run`` calls :func:`save_round_figure` after each round (e.g. from the
loop's ``on_round`` hook, with the model the round trained) to write ``round_<r>.png``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: one colour per foreground class (RV, MYO, LV for ACDC)
CLASS_COLOURS = ("tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple", "tab:cyan")


def pick_slices(masks: list[np.ndarray], n: int) -> list[tuple[int, int]]:
    """``n`` ``(volume, slice)`` pairs spread over the volumes: each volume's slice with the most
    foreground, taking volumes at even intervals (deterministic)."""
    if not masks:
        return []
    volumes = np.unique(np.linspace(0, len(masks) - 1, num=min(n, len(masks))).round().astype(int))
    out = []
    for v in volumes:
        fg = (masks[v] > 0).reshape(masks[v].shape[0], -1).sum(axis=1)
        out.append((int(v), int(np.argmax(fg))))
    return out


def save_round_figure(task, model, path: str | Path, *, n_slices: int = 4,
                      title: str | None = None) -> Path:
    """Write a PNG of ``n_slices`` test slices: image, ground truth (solid contours) and
    prediction (dashed contours), one colour per class, with the volume's mean Dice.

    Args:
        task: a :class:`~medactive.tasks.segmentation.task.SegmentationTask`.
        model: the round's model.
        path: the PNG to write (folders are created).
        n_slices: slices to show (one per volume, volumes spread over the test set).
        title: figure title (e.g. ``"entropy, round 3, 40 labels"``).

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure  # no pyplot: no backend or global state involved
    from matplotlib.lines import Line2D

    from medactive.tasks.segmentation.metrics import dice
    from medactive.tasks.segmentation.train import predict_volume

    vols = task.volumes("test")
    picks = pick_slices(vols.masks, n_slices)
    n_classes = len(task.classes)
    fig = Figure(figsize=(3.2 * max(len(picks), 1), 3.6))
    axes = fig.subplots(1, max(len(picks), 1), squeeze=False)
    model.eval()
    for ax, (v, s) in zip(axes[0], picks, strict=False):
        pred = predict_volume(model, vols.inputs[v][s:s + 1], vols.masks[v].shape[1:],
                              device=task.device)[0].numpy()
        gt = vols.masks[v][s]
        ax.imshow(vols.images[v][s], cmap="gray", interpolation="nearest")
        for k in range(1, n_classes):
            colour = CLASS_COLOURS[(k - 1) % len(CLASS_COLOURS)]
            if (gt == k).any():
                ax.contour(gt == k, levels=[0.5], colors=[colour], linewidths=1.2)
            if (pred == k).any():
                ax.contour(pred == k, levels=[0.5], colors=[colour], linewidths=1.2,
                           linestyles="dashed")
        scores = [dice(pred == k, gt == k) for k in range(1, n_classes)
                  if (gt == k).any() or (pred == k).any()]
        mean_dice = float(np.mean(scores)) if scores else 1.0
        ax.set_title(f"{vols.ids[v]} s{s}\nslice Dice {mean_dice:.3f}", fontsize=8)
        ax.axis("off")
    handles = [Line2D([], [], color=CLASS_COLOURS[(k - 1) % len(CLASS_COLOURS)],
                      label=task.classes[k]) for k in range(1, n_classes)]
    handles += [Line2D([], [], color="black", label="ground truth"),
                Line2D([], [], color="black", linestyle="dashed", label="prediction")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7,
               frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95 if title else 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
