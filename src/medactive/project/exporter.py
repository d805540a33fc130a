"""``project export``: the pending batch, for labelling in another tool.

``csv``: one file ``id,label,round,rank,score,path`` with an empty ``label`` column to fill in and
import back with ``project import``. ``folder``: a folder with ``images/`` (copies of the batch's
images, named by sample id), ``labels.csv`` (the same template) and, for segmentation, each slice
as NIfTI (``images/<id>.nii.gz``) or PNG with an empty mask template ``masks/<id>.nii.gz`` /
``masks/<id>.png`` of the slice's shape to paint in and import back as a folder. A region
project (``init --region-size``) exports each patch's slice image (named by the slice id), a PNG
template ``masks/<patch id>.png`` of the patch's size, and the patch box in both CSVs
(``x0,y0,x1,y1``: columns and rows in the slice's pixels, ``x1``/``y1`` exclusive).

The project's images are only read, never modified. Files are written through temporary names,
so an interrupted export never leaves a half-written file under its final name.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from medactive.errors import ConfigError, DataError
from medactive.project.store import ProjectStore, QueryItem, atomic_write_bytes

logger = logging.getLogger(__name__)

FORMATS = ("csv", "folder")


@dataclass
class ExportResult:
    path: Path
    n_samples: int
    round: int


def pending_items(store: ProjectStore, *, include_skipped: bool = False) -> list[QueryItem]:
    """Open items of the batches: pending (and skipped) ones, by round and rank."""
    items = store.queries("pending")
    if include_skipped:
        items = sorted(items + store.queries("skipped"), key=lambda q: (q.round, q.rank))
    excluded = store.excluded_ids()  # left out of the project (``project exclude``)
    items = [q for q in items if q.sample_id not in excluded]
    return items


def _template_csv(store: ProjectStore, items: list[QueryItem], *, image_paths: dict[str, str]
                  ) -> bytes:
    boxes = None
    if store.get_meta("region_size") is not None:
        from medactive.project.volumes import sample_box

        boxes = {q.sample_id: sample_box(store, q.sample_id) for q in items}
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "label", "round", "rank", "score", "path"]
                    + (["x0", "y0", "x1", "y1"] if boxes is not None else []))
    for q in items:
        score = "" if q.score is None or math.isnan(q.score) else repr(q.score)
        row = [q.sample_id, "", q.round, q.rank, score, image_paths[q.sample_id]]
        if boxes is not None:  # x = column, y = row; x1, y1 exclusive
            r, c, h, w = boxes[q.sample_id]
            row += [c, r, c + w, r + h]
        writer.writerow(row)
    return buf.getvalue().encode("utf-8")


def pending_batch(store: ProjectStore, *, include_skipped: bool = False):
    """``(items, round, samples by id)`` of the open batch, for an export.

    Raises:
        ConfigError: nothing pending.
        DataError: image files of the batch are missing (all of them in one message, before
            anything is written).
    """
    items = pending_items(store, include_skipped=include_skipped)
    if not items:
        raise ConfigError("nothing pending to export; run `medactive project query` first")
    samples = {s.id: s for s in store.samples()}
    files = list(dict.fromkeys(samples[q.sample_id].path for q in items))
    missing = [rel for rel in files if not (store.images_root / rel).exists()]
    if missing:
        from medactive.project.integrity import missing_message

        raise DataError(missing_message(store, missing, len(files)))
    return items, max(q.round for q in items), samples


def export_batch(store: ProjectStore, *, fmt: str = "csv", out: str | Path | None = None,
                 include_skipped: bool = False) -> ExportResult:
    """Write the pending batch as a CSV template or a folder.

    Args:
        store: the project.
        fmt: ``"csv"`` or ``"folder"``.
        out: output file (csv) or folder; default ``DIR/exports/round<k>.csv`` or
            ``DIR/exports/round<k>/``.
        include_skipped: also export skipped samples.

    Raises:
        ConfigError: unknown format, nothing pending, output folder not empty.
        DataError: image files of the batch are missing (all listed).
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    items, rnd, samples = pending_batch(store, include_skipped=include_skipped)
    default = store.directory / "exports" / (f"round{rnd}.csv" if fmt == "csv" else f"round{rnd}")
    out = Path(out) if out is not None else default
    if fmt == "csv":
        paths = {q.sample_id: str(store.sample_path(samples[q.sample_id])) for q in items}
        atomic_write_bytes(out, _template_csv(store, items, image_paths=paths))
        return ExportResult(out, len(items), rnd)

    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out}: folder exists and is not empty; choose another --out")
    paths = {}
    segmentation = store.task == "segmentation"
    for q in items:
        sample = samples[q.sample_id]
        if segmentation:
            from medactive.project.volumes import export_slice

            paths[q.sample_id] = export_slice(store, sample, out)
            continue
        src = store.sample_path(sample)
        rel = f"images/{sample.id}{src.suffix.lower()}"
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(target)
        paths[q.sample_id] = rel
    atomic_write_bytes(out / "labels.csv", _template_csv(store, items, image_paths=paths))
    return ExportResult(out, len(items), rnd)
