"""A folder of images (PNG/JPEG/TIFF) with a labels CSV.

The CSV has a header and the columns ``id`` *or* ``path``, ``label``, and optionally ``split``
(``train``/``val``/``test``) and ``patient`` (a group id)::

    path,label,patient
    site1/case0001.png,pneumonia,p17
    site2/case0001.png,normal,p03

``path`` is relative to the image folder; ``id`` names a file by its relative path without
extension (``site2/case0001`` finds ``site2/case0001.png``, ``.jpg``, ``.jpeg``, ``.tif`` or
``.tiff``). A sample's id is the ``id`` value, else the relative path without extension.
Labels are class names (classes sorted alphabetically unless given) or integer class indices.

Unless the classes are given (``classes=``, ``--classes a,b``), two kinds of label value are
refused, with the CSV lines that hold them, because they would silently become extra classes: a
value that means a missing label (``nan``, ``NA``, ``N/A``, ``None``, ``null``, ``missing``,
``-``, ``?``, any case), and a class with fewer than :data:`MIN_CLASS_SAMPLES` (5) samples (a
typo such as ``benigm``; with integer labels also a class index between 0 and the largest label
that no row uses). With the classes given, every value outside them is refused, all rows named.

Without a ``split`` column the samples are split train/val/test by seed, stratified by label, and
by patient when a ``patient`` column exists (no patient in two splits). Within each split the
samples are sorted by id, so pool index ``i`` is the ``i``-th id in sorted order.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medactive._random import derive_seed
from medactive.data.images import IMAGE_EXTENSIONS, infer_format, lazy_images
from medactive.data.pool import Dataset, Split
from medactive.data.splits import split_indices
from medactive.errors import DataError

#: a class seen fewer times than this is refused unless the classes are given explicitly
MIN_CLASS_SAMPLES = 5
#: label values (compared lower-case) that mean a missing label, not a class
MISSING_VALUES = frozenset({"nan", "na", "n/a", "none", "null", "missing", "-", "?", "#n/a"})
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)


def load_image_folder(root: str | Path, *, labels: str | Path | None = None,
                      image_size: int | tuple[int, int] | None = None,
                      channels: int | None = None, classes: Sequence[str] | None = None,
                      seed: int = 0, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                      name: str | None = None) -> Dataset:
    """Load an image folder and its labels CSV as a :class:`Dataset` with lazily read images.

    Args:
        root: folder holding the images.
        labels: the CSV (default ``root/labels.csv``).
        image_size: resize every image to this (int = square, or ``(height, width)``); default:
            the images' common size, or an error when they differ.
        channels: 1 or 3; default 1 when every image is grayscale, else 3.
        classes: class names in label-index order; default: sorted label names, or
            ``"0".."k"`` for integer labels, each with at least :data:`MIN_CLASS_SAMPLES`
            samples (see the module doc). Given, a label must be one of them (or an index).
        seed: seed of the train/val/test split when the CSV has no ``split`` column.
        fractions: train/val/test fractions of that split.
        name: dataset name (default: the folder name).

    Raises:
        DataError: missing CSV, columns or image file, duplicate id, empty or unknown label, a
            missing-data label value or a class with too few samples (without ``classes``), bad
            split value, an empty split. Messages name the CSV lines. A corrupt image raises when
            it is read, naming the file.

    Example:
        >>> ds = load_image_folder("scans/", image_size=64)  # doctest: +SKIP
        >>> ds.train.ids[:2], ds.train.images[0].shape  # doctest: +SKIP
        (array(['case0001', 'case0003'], dtype='<U8'), (64, 64, 1))
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    csv_path = Path(labels) if labels is not None else root / "labels.csv"
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: labels CSV not found (columns id or path, label)")
    rows = _read_rows(root, csv_path)
    rows.sort(key=lambda r: r["id"])
    label_idx, classes = _encode_labels(csv_path, rows, classes)
    paths = [r["path"] for r in rows]
    channels, size = infer_format(paths, channels=channels, image_size=image_size)

    if rows and "split" in rows[0]:
        parts = [np.array([i for i, r in enumerate(rows) if r["split"] == s], dtype=np.int64)
                 for s in ("train", "val", "test")]
    else:
        groups = np.array([r["patient"] for r in rows]) if rows and "patient" in rows[0] else None
        parts = split_indices(label_idx, fractions, groups=groups,
                              random_state=derive_seed(seed, "split"))
    has_groups = bool(rows) and "patient" in rows[0]
    ids = np.array([r["id"] for r in rows])
    splits = {}
    for split_name, idx in zip(("train", "val", "test"), parts):
        if idx.size == 0:
            raise DataError(f"{csv_path}: no samples in the {split_name} split "
                            f"({len(rows)} samples in all)")
        groups = np.array([rows[i]["patient"] for i in idx]) if has_groups else None
        splits[split_name] = Split(ids[idx], lazy_images([paths[i] for i in idx],
                                                          channels=channels, size=size),
                                   label_idx[idx], groups)
    dataset = Dataset(name=name or root.resolve().name, classes=list(classes), **splits,
                      in_channels=channels, source=str(root),
                      info={"labels_csv": str(csv_path), "image_size": list(size)})
    dataset.check_labels()
    return dataset


def _read_rows(root: Path, csv_path: Path) -> list[dict]:
    """The CSV rows as dicts with ``id``, ``path``, ``label``, ``line`` (+ split, patient)."""
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip().lower() for h in (reader.fieldnames or [])]
            raw = [(reader.line_num, row) for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: cannot read the CSV ({exc})") from exc
    if "label" not in header or not ({"id", "path"} & set(header)):
        raise DataError(f"{csv_path}: needs columns 'id' or 'path', and 'label'; found {header}")
    key = "path" if "path" in header else "id"
    rows, first_line = [], {}
    for line, row in raw:
        row = {h.strip().lower(): (v or "").strip() for h, v in row.items() if h is not None}
        if not any(row.values()):
            continue  # blank line
        where = f"{csv_path} line {line}"
        if not row[key]:
            raise DataError(f"{where}: empty {key}")
        path = _resolve(root, row[key], key, where)
        if row.get("id"):
            sample_id = row["id"]
        elif Path(row[key]).is_absolute():
            sample_id = Path(row[key]).with_suffix("").name
        else:
            sample_id = Path(row[key]).with_suffix("").as_posix()
        if sample_id in first_line:
            raise DataError(f"{where}: duplicate id {sample_id!r} (first on line "
                            f"{first_line[sample_id]})")
        first_line[sample_id] = line
        if not row["label"]:
            raise DataError(f"{where}: empty label for {sample_id!r}")
        entry = {"id": sample_id, "path": path, "label": row["label"], "line": line}
        if "split" in header:
            split = SPLIT_NAMES.get(row["split"].lower())
            if split is None:
                raise DataError(f"{where}: split {row['split']!r} is not train, val or test")
            entry["split"] = split
        if "patient" in header:
            if not row["patient"]:
                raise DataError(f"{where}: empty patient for {sample_id!r}")
            entry["patient"] = row["patient"]
        rows.append(entry)
    if not rows:
        raise DataError(f"{csv_path}: no samples")
    return rows


def _resolve(root: Path, value: str, key: str, where: str) -> Path:
    """The image file that a CSV ``path`` or ``id`` value names."""
    if key == "path":
        path = Path(value) if Path(value).is_absolute() else root / value
        if not path.is_file():
            raise DataError(f"{where}: image file {path} not found")
        return path
    for ext in IMAGE_EXTENSIONS:
        for suffix in (ext, ext.upper()):
            path = root / f"{value}{suffix}"
            if path.is_file():
                return path
    if (root / value).is_file() and (root / value).suffix.lower() in IMAGE_EXTENSIONS:
        return root / value
    raise DataError(f"{where}: no image file for id {value!r} (looked for {root / value}"
                    f"{{{','.join(IMAGE_EXTENSIONS)}}})")


def _encode_labels(csv_path: Path, rows: list[dict],
                   classes: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Map label strings to class indices; errors name the CSV lines (see the module doc)."""
    values = [r["label"] for r in rows]
    as_int = [_parse_int(v) for v in values]
    if classes is None:
        _check_missing_values(csv_path, rows)
        if all(v is not None for v in as_int):
            for r, v in zip(rows, as_int):
                if v < 0:
                    raise DataError(f"{csv_path} line {r['line']}: negative label {v}")
            classes = [str(c) for c in range(max(as_int) + 1)]
            _check_rare_classes(csv_path, rows, classes, [str(v) for v in as_int])
            return np.array(as_int, dtype=np.int64), classes
        classes = sorted(set(values))
        _check_rare_classes(csv_path, rows, classes, values)
    classes = [str(c) for c in classes]
    lookup = {c: i for i, c in enumerate(classes)}
    out = np.empty(len(rows), dtype=np.int64)
    outside: dict[str, list[int]] = {}
    for i, (r, value, number) in enumerate(zip(rows, values, as_int)):
        if value in lookup:
            out[i] = lookup[value]
        elif number is not None and 0 <= number < len(classes):
            out[i] = number
        else:
            outside.setdefault(value, []).append(r["line"])
    if outside:
        raise DataError(f"{csv_path}: labels not in the given classes {classes}: "
                        + "; ".join(f"{v!r} on {_lines(lines)}" for v, lines in outside.items()))
    return out, classes


def _check_missing_values(csv_path: Path, rows: list[dict]) -> None:
    """Refuse label values such as ``nan`` / ``NA`` / ``None`` (a spreadsheet's empty cell)."""
    found: dict[str, list[int]] = {}
    for r in rows:
        if r["label"].lower() in MISSING_VALUES:
            found.setdefault(r["label"], []).append(r["line"])
    if found:
        raise DataError(
            f"{csv_path}: label values that look like missing data: "
            + "; ".join(f"{v!r} on {_lines(lines)}" for v, lines in found.items())
            + "; fill in or remove these rows (if they are real class names, list every class "
            "explicitly with --classes)")


def _check_rare_classes(csv_path: Path, rows: list[dict], classes: Sequence[str],
                        values: Sequence[str]) -> None:
    """Refuse classes with fewer than :data:`MIN_CLASS_SAMPLES` samples (typos, stray values)."""
    lines: dict[str, list[int]] = {c: [] for c in classes}
    for r, value in zip(rows, values):
        lines[value].append(r["line"])
    rare = [c for c in classes if len(lines[c]) < MIN_CLASS_SAMPLES]
    if not rare:
        return
    parts = []
    for c in rare:
        n = len(lines[c])
        if n == 0:  # integer labels 0..max with a gap
            parts.append(f"class {c!r} has no samples (integer labels run 0..{len(classes) - 1})")
        else:
            parts.append(f"class {c!r} has {n} sample{'s' if n > 1 else ''} ({_lines(lines[c])})")
    raise DataError(f"{csv_path}: " + "; ".join(parts) + f": classes with fewer than "
                    f"{MIN_CLASS_SAMPLES} samples look like typos; fix those labels, or list the "
                    "classes explicitly with --classes to keep them")


def _lines(lines: Sequence[int], limit: int = 10) -> str:
    """``"line 4"``, ``"lines 4, 9"``, or the first ``limit`` lines and how many in all."""
    lines = sorted(lines)
    if len(lines) == 1:
        return f"line {lines[0]}"
    shown = ", ".join(str(n) for n in lines[:limit])
    more = f", ... ({len(lines)} rows in all)" if len(lines) > limit else ""
    return f"lines {shown}{more}"


def _parse_int(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None
