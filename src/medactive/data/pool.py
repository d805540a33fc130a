"""Pools of samples with stable ids, split into train (the AL pool), val and test.

A :class:`Split` holds sample ids (stable strings), an image source and labels where known. Images
come either from an in-memory array or from a lazy sequence that reads files on demand; both
return ``uint8`` (or float) arrays shaped ``[H, W, C]`` for classification.

A :class:`Dataset` groups the three splits with the class names. The train split is the active
learning pool: indices into it are the pool-absolute indices strategies return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from medactive.errors import DataError


class LazyImages(Sequence):
    """A sequence of images read on demand by ``load(i)``.

    Args:
        n: number of images.
        load: ``i -> [H, W, C]`` array; raise :class:`~medactive.errors.DataError` naming the
            file when it cannot be read.
    """

    def __init__(self, n: int, load: Callable[[int], np.ndarray]) -> None:
        self._n = int(n)
        self._load = load

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._load(j) for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        return self._load(int(i))


@dataclass
class Split:
    """One split of a dataset.

    Attributes:
        ids: ``[n]`` unique sample ids (strings).
        images: ``[n, H, W, C]`` array or a :class:`LazyImages` of ``[H, W, C]`` arrays.
        labels: ``[n]`` int class indices, or ``None`` where unknown.
        groups: ``[n]`` patient/group ids or ``None``.
    """

    ids: np.ndarray
    images: np.ndarray | LazyImages
    labels: np.ndarray | None = None
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=str)
        if len(self.images) != len(self.ids):
            raise DataError(f"{len(self.ids)} ids but {len(self.images)} images")
        if self.labels is not None:
            self.labels = np.asarray(self.labels).reshape(-1).astype(np.int64)
            if self.labels.shape[0] != len(self.ids):
                raise DataError(f"{len(self.ids)} ids but {self.labels.shape[0]} labels")
        if np.unique(self.ids).size != self.ids.size:
            raise DataError("sample ids are not unique")

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx: np.ndarray) -> Split:
        """The rows ``idx`` as a new split (in-memory arrays are sliced, lazy ones wrapped)."""
        idx = np.asarray(idx, dtype=np.int64)
        if isinstance(self.images, np.ndarray):
            images = self.images[idx]
        else:
            src = self.images
            images = LazyImages(idx.size, lambda j: src[int(idx[j])])
        return Split(self.ids[idx], images,
                     None if self.labels is None else self.labels[idx],
                     None if self.groups is None else np.asarray(self.groups)[idx])


@dataclass
class Dataset:
    """A classification dataset: train pool, val and test splits, and class names.

    Attributes:
        name: short name (e.g. ``"pneumoniamnist"``).
        classes: class names; labels are indices into this list.
        train, val, test: the splits; ``train`` is the AL pool.
        in_channels: image channels (1 grayscale, 3 RGB).
        source: where the data came from (path), for run.json.
    """

    name: str
    classes: list[str]
    train: Split
    val: Split
    test: Split
    in_channels: int
    source: str = ""
    task: str = "classification"
    info: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def class_counts(self, split: str | None = None) -> dict[str, int]:
        """Samples per class name (in class order) in ``split``, or in all three splits.

        Unlabelled splits count nothing.
        """
        names = ("train", "val", "test") if split is None else (split,)
        counts = np.zeros(self.n_classes, dtype=np.int64)
        for name in names:
            labels = getattr(self, name).labels
            if labels is not None and labels.size:
                counts += np.bincount(labels[(labels >= 0) & (labels < self.n_classes)],
                                      minlength=self.n_classes)
        return {c: int(k) for c, k in zip(self.classes, counts)}

    def describe_classes(self, split: str | None = None) -> str:
        """``"2 classes: normal 10, pneumonia 5"``: :meth:`class_counts` on one line."""
        counts = self.class_counts(split)
        return (f"{len(counts)} classes: "
                + ", ".join(f"{name} {n}" for name, n in counts.items()))

    def check_labels(self) -> None:
        """Raise :class:`DataError` if any known label lies outside ``range(n_classes)``."""
        for split_name in ("train", "val", "test"):
            split = getattr(self, split_name)
            if split.labels is None:
                continue
            bad = np.flatnonzero((split.labels < 0) | (split.labels >= self.n_classes))
            if bad.size:
                i = int(bad[0])
                raise DataError(
                    f"{self.source or self.name}: {split_name} label {int(split.labels[i])} of "
                    f"sample {str(split.ids[i])!r} is outside the class set 0..{self.n_classes - 1} "
                    f"({bad.size} such labels)")
