"""Rebuild this sample from the embedded PneumoniaMNIST: ``python make_sample.py`` (seeded).

100 test-split images, 50 normal and 50 pneumonia, shuffled and renamed ``xray-001.png`` ...
``xray-100.png`` (the names say nothing of the class): 60 unlabelled pool images (30/30),
20 validation and 20 test images (10/10 each) whose labels are in ``eval.csv``. ``answers.csv``
holds the true labels of the 60 pool images, to play the expert; ``provenance.csv`` maps each
file to its PneumoniaMNIST split and index.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("normal", "pneumonia")
HERE = Path(__file__).resolve().parent
NPZ = HERE.parents[1] / "src" / "medactive" / "assets" / "pneumoniamnist.npz"


def main() -> None:
    data = np.load(NPZ)
    images, labels = data["test_images"], data["test_labels"].ravel()
    rng = np.random.default_rng(0)
    picks = {c: rng.permutation(np.flatnonzero(labels == c))[:50] for c in (0, 1)}
    # (index, split) per class: 30 pool, 10 val, 10 test
    rows = [(int(i), split) for c in (0, 1) for i, split in
            zip(picks[c], ["pool"] * 30 + ["val"] * 10 + ["test"] * 10, strict=True)]
    rows = [rows[k] for k in rng.permutation(len(rows))]
    scans = HERE / "scans"
    scans.mkdir(exist_ok=True)
    table = []
    for n, (index, split) in enumerate(rows, start=1):
        name = f"xray-{n:03d}"
        Image.fromarray(images[index]).save(scans / f"{name}.png", optimize=True)
        table.append((name, CLASSES[labels[index]], split, index))
    table.sort()
    _write(HERE / "eval.csv", ["id", "label", "split"],
           [(i, lab, s) for i, lab, s, _ in table if s != "pool"])
    _write(HERE / "answers.csv", ["id", "label"],
           [(i, lab) for i, lab, s, _ in table if s == "pool"])
    _write(HERE / "provenance.csv", ["id", "medmnist_split", "medmnist_index"],
           [(i, "test", idx) for i, _, _, idx in table])


def _write(path: Path, header: list[str], rows) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
