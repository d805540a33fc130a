"""Label Studio tasks out, Label Studio exports in.

**Export** (``project export DIR --format label-studio --out FILE.json [--image-root ROOT]``):
one task per open batch item (pending; ``--include-skipped`` adds skipped ones), a JSON list
Label Studio imports as it is, and ``FILE.xml``, a labelling config whose tag names match::

    {"data": {"image": "<ROOT>/case0001.png", "medactive_id": "case0001", "medactive_round": 2,
              "medactive_rank": 0, "medactive_score": 0.69},
     "predictions": [{"model_version": "round 1 (models/ab12....pt)", "score": 0.81,
                      "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                  "value": {"choices": ["pneumonia"]}}]}]}

``data.image`` is the image's path under ROOT, a folder or a URL prefix (for Label Studio's
local files, ``/data/local-files/?d=scans``); without ``--image-root`` it is the file's absolute
path. Image files are referenced, not copied; slices of NIfTI volumes or DICOM series are
rendered as PNGs into ``<FILE stem>-images/`` beside FILE (min-max scaled) and referenced under
ROOT from there. ``predictions`` are the pre-annotations of the latest trained model (skipped
when the project has none, or with ``--no-predictions``): the predicted class and its
probability for classification, and for segmentation one brush region (``brushlabels``,
:mod:`.brush_rle`) per predicted foreground class at the slice's size (region projects get no
pre-annotations).

**Import** (``project import DIR FILE.json``): Label Studio's JSON export of those tasks with
their ``annotations``. Each task maps back to its sample by ``data.medactive_id``; of a task's
annotations that were not cancelled the most recently updated one is used (a task without one is
left unlabelled). Classification takes the one class of its ``choices`` result (a result naming
several classes is refused). Segmentation builds the ``[H, W]`` mask from its ``brushlabels``
(RLE) and ``polygonlabels`` (points in percent of ``original_width``/``original_height``, filled
over the pixels whose centres lie inside) results; where regions of two classes overlap the
higher class index wins, and a submitted annotation with no region is an all-background mask.
The rows then go through the CSV import's own checks and commit
(:func:`medactive.project.importer.check_rows`, :func:`~medactive.project.importer.commit_rows`):
unknown or excluded ids, duplicates, unknown classes, a mask of another shape, a label that would
replace a different one without ``--overwrite`` refuse the whole file with one line per bad task
(numbered from 1 in file order), and a good file is ONE transaction.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

from medactive.errors import DataError
from medactive.project.brush_rle import mask_to_rle, rle_to_mask
from medactive.project.exporter import ExportResult, pending_batch
from medactive.project.importer import BadRows, ImportReport, check_rows, commit_rows
from medactive.project.store import ProjectStore, Sample, atomic_write_bytes

logger = logging.getLogger(__name__)

#: tag names of the exported labelling config (``from_name`` / ``to_name`` of results)
IMAGE_TAG, CHOICES_TAG, BRUSH_TAG, POLYGON_TAG = "image", "label", "mask", "polygon"
ID_KEY = "medactive_id"


# -- export ----------------------------------------------------------------------------------
def _join(root: str | None, rel: str, default: Path) -> str:
    if root is None:
        return str(default)
    return root.rstrip("/") + "/" + rel


def label_config(store: ProjectStore) -> str:
    """The Label Studio labelling config (XML) matching the exported tasks."""
    image = f'  <Image name="{IMAGE_TAG}" value="$image" zoom="true" zoomControl="true"/>\n'
    if store.task == "classification":
        choices = "".join(f"    <Choice value={quoteattr(c)}/>\n" for c in store.classes)
        body = (f'  <Choices name="{CHOICES_TAG}" toName="{IMAGE_TAG}" choice="single-radio" '
                f'showInline="true">\n{choices}  </Choices>\n')
    else:
        labels = "".join(f"    <Label value={quoteattr(c)}/>\n" for c in store.classes[1:])
        body = (f'  <BrushLabels name="{BRUSH_TAG}" toName="{IMAGE_TAG}">\n{labels}'
                f'  </BrushLabels>\n  <PolygonLabels name="{POLYGON_TAG}" toName="{IMAGE_TAG}">'
                f"\n{labels}  </PolygonLabels>\n")
    return f"<View>\n{image}{body}</View>\n"


def export_label_studio(store: ProjectStore, out: str | Path | None = None, *,
                        image_root: str | None = None, include_skipped: bool = False,
                        predictions: bool = True, device: str = "cpu") -> ExportResult:
    """Write the open batch items as Label Studio tasks (and ``<out stem>.xml``).

    Args:
        store: the project.
        out: the JSON file (default ``DIR/exports/round<k>-label-studio.json``).
        image_root: folder or URL prefix the images are referenced under (see module doc).
        include_skipped: also export skipped items.
        predictions: add the latest model's predictions as pre-annotations.
        device: where the model predicts.

    Raises:
        ConfigError: nothing pending.
        DataError: image files of the batch are missing (all listed).
    """
    items, rnd, samples = pending_batch(store, include_skipped=include_skipped)
    out = Path(out) if out is not None else (
        store.directory / "exports" / f"round{rnd}-label-studio.json")
    preds = _model_predictions(store, [q.sample_id for q in items], device=device) \
        if predictions else None
    tasks = []
    rendered = out.parent / f"{out.stem}-images"
    for q in items:
        sample = samples[q.sample_id]
        data: dict[str, Any] = {"image": _image_ref(store, sample, rendered, image_root),
                                ID_KEY: q.sample_id, "medactive_round": q.round,
                                "medactive_rank": q.rank}
        if q.score is not None and not math.isnan(q.score):
            data["medactive_score"] = float(q.score)
        task: dict[str, Any] = {"data": data}
        if preds is not None and q.sample_id in preds["values"]:
            task["predictions"] = [_prediction(store, preds, q.sample_id)]
        tasks.append(task)
    atomic_write_bytes(out, json.dumps(tasks, indent=1).encode("utf-8"))
    atomic_write_bytes(out.with_suffix(".xml"), label_config(store).encode("utf-8"))
    return ExportResult(out, len(items), rnd)


def _image_ref(store: ProjectStore, sample: Sample, rendered: Path, root: str | None) -> str:
    """``data.image`` of a sample: its file, or a PNG rendering of its volume slice."""
    src = store.sample_path(sample)
    if store.task == "classification":
        return _join(root, sample.path, src)
    from medactive.project.volumes import _png, render_slice, slice_of

    if _png().is_image_file(src):  # a 2D image: Label Studio shows it as it is
        return _join(root, sample.path, src)
    name = slice_of(sample.id) if store.get_meta("region_size") is not None else sample.id
    rel = f"{name}.png"
    target = rendered / rel
    if not target.is_file():
        from medactive.project.volumes import _png_bytes

        atomic_write_bytes(target, _png_bytes(render_slice(store, sample)))
    return _join(root, f"{rendered.name}/{rel}", target.resolve())


def _model_predictions(store: ProjectStore, sample_ids: list[str], *, device: str
                       ) -> dict[str, Any] | None:
    """``{"model_version", "values": {id: probas [c] | mask [H, W]}}`` of the latest model
    whose checkpoint exists, else None (no model yet; region projects)."""
    models = [m for m in store.models()
              if m["checkpoint"] and (store.directory / m["checkpoint"]).is_file()]
    if not models or (store.task == "segmentation"
                      and store.get_meta("region_size") is not None):
        return None
    import torch

    from medactive.loop.task import task_predictions
    from medactive.project.workflow import build_project_task

    model_row = models[-1]
    task, _ = build_project_task(store, device=device)
    state = torch.load(store.directory / model_row["checkpoint"], map_location="cpu",
                       weights_only=True)
    model = task.inner.load_model(state)
    pool = {str(sid): i for i, sid in enumerate(task.inner.pool_ids)}
    ids = [sid for sid in sample_ids if sid in pool]
    values: dict[str, Any] = {}
    if ids:
        idx = np.asarray([pool[sid] for sid in ids], dtype=np.int64)
        preds = task_predictions(task.inner, model, seed=int(store.get_meta("seed", 0)),
                                 labeled_idx=np.zeros(0, dtype=np.int64))
        probas = preds.get("probas", idx)
        for k, sid in enumerate(ids):
            if store.task == "classification":
                values[sid] = np.asarray(probas[k], dtype=np.float64)
            else:
                from medactive.project.volumes import slice_shape
                from medactive.tasks.segmentation.regions import resize_scores

                scores = resize_scores(np.asarray(probas[k]), slice_shape(store, sid))
                values[sid] = np.argmax(scores, axis=0).astype(np.uint8)
    version = f"round {model_row['round']} ({model_row['checkpoint']})"
    return {"model_version": version, "values": values}


def _prediction(store: ProjectStore, preds: dict[str, Any], sample_id: str) -> dict[str, Any]:
    value = preds["values"][sample_id]
    if store.task == "classification":
        best = int(np.argmax(value))
        return {"model_version": preds["model_version"], "score": float(value[best]),
                "result": [{"from_name": CHOICES_TAG, "to_name": IMAGE_TAG, "type": "choices",
                            "value": {"choices": [store.classes[best]]}}]}
    return {"model_version": preds["model_version"],
            "result": mask_results(value, store.classes)}


def mask_results(mask: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    """Label Studio ``brushlabels`` results of a ``[H, W]`` class-index mask: one region per
    foreground class present."""
    h, w = mask.shape
    out = []
    for c in range(1, len(classes)):
        region = mask == c
        if region.any():
            out.append({"from_name": BRUSH_TAG, "to_name": IMAGE_TAG, "type": "brushlabels",
                        "original_width": int(w), "original_height": int(h),
                        "image_rotation": 0,
                        "value": {"format": "rle", "rle": mask_to_rle(region),
                                  "brushlabels": [classes[c]]}})
    return out


# -- import ----------------------------------------------------------------------------------
@dataclass
class _Parsed:
    """Rows ``(task number, {"id", "label"})`` for :func:`check_rows` and the tasks refused
    while reading them."""

    raw: list[tuple[int, dict[str, str]]]
    problems: list[tuple[int, str]]


def read_export(path: str | Path) -> list[dict[str, Any]]:
    """The task list of a Label Studio JSON export."""
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a Label Studio JSON export ({exc})") from None
    if isinstance(tasks, dict) and "data" in tasks:
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise DataError(f"{path}: not a Label Studio JSON export (expected a list of tasks, "
                        f"found {type(tasks).__name__})")
    return tasks


def _latest_annotation(task: dict[str, Any]) -> dict[str, Any] | None:
    annotations = [a for a in task.get("annotations") or []
                   if isinstance(a, dict) and not a.get("was_cancelled")]
    if not annotations:
        return None
    order = sorted(range(len(annotations)), key=lambda i: (
        str(annotations[i].get("updated_at") or annotations[i].get("created_at") or ""), i))
    return annotations[order[-1]]


def _results(annotation: dict[str, Any]) -> list[dict[str, Any]]:
    results = annotation.get("result") or []
    if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
        raise DataError("annotation 'result' is not a list of regions")
    return results


def _choice(results: list[dict[str, Any]]) -> str:
    """The one class of a classification annotation ('' when none was chosen)."""
    chosen = []
    for r in results:
        if str(r.get("type", "")).lower() != "choices":
            continue
        value = (r.get("value") or {}).get("choices") or []
        chosen += [str(c) for c in (value if isinstance(value, list) else [value])]
    chosen = list(dict.fromkeys(chosen))
    if len(chosen) > 1:
        raise DataError(f"{len(chosen)} classes chosen ({', '.join(map(repr, chosen))}); one "
                        "class per image")
    return chosen[0] if chosen else ""


def _region_mask(result: dict[str, Any], kind: str, shape: tuple[int, int]) -> np.ndarray:
    value = result.get("value") or {}
    h, w = (int(result.get("original_height", shape[0])),
            int(result.get("original_width", shape[1])))
    if (h, w) != tuple(shape):
        raise DataError(f"{kind} region on a {h} x {w} image; the slice is {shape[0]} x "
                        f"{shape[1]} (rows x columns)")
    if kind == "brushlabels":
        rle = value.get("rle", result.get("rle"))
        if value.get("format", "rle") != "rle" or rle is None:
            raise DataError("brush region without an RLE ('value.rle')")
        return rle_to_mask(rle, h, w)
    points = value.get("points")
    try:
        # percent of the image -> pixels (x = column, y = row; pixel (r, c) spans [c, c + 1))
        xy = np.asarray([(float(x) * w / 100, float(y) * h / 100) for x, y in points])
    except (TypeError, ValueError):
        raise DataError("polygon without a list of [x, y] points") from None
    if len(xy) < 3 or not np.all(np.isfinite(xy)):
        raise DataError(f"polygon with {len(xy)} points; at least 3 finite ones")
    return polygon_mask(xy, (h, w))


def polygon_mask(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[H, W]`` pixels whose centres ``(c + 0.5, r + 0.5)`` lie inside the polygon ``xy``
    (``[n, 2]`` points ``(x = column, y = row)`` in pixel units; even-odd rule)."""
    h, w = shape
    cy, cx = np.mgrid[0:h, 0:w] + 0.5
    inside = np.zeros((h, w), dtype=bool)
    x0, y0 = xy[:, 0], xy[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    for ax, ay, bx, by in zip(x0, y0, x1, y1):
        if ay == by:
            continue
        crosses = (ay > cy) != (by > cy)
        at = ax + (cy - ay) * (bx - ax) / (by - ay)  # the edge's x at the centre's row
        inside ^= crosses & (cx < at)
    return inside


def _mask(results: list[dict[str, Any]], classes: list[str], shape: tuple[int, int]
          ) -> np.ndarray:
    """The ``[H, W]`` class-index mask of a segmentation annotation's regions."""
    lookup = {c: i for i, c in enumerate(classes)}
    layers: list[tuple[int, np.ndarray]] = []
    for r in results:
        kind = str(r.get("type", "")).lower()
        if kind not in ("brushlabels", "polygonlabels"):
            continue
        names = (r.get("value") or {}).get(kind) or []
        names = names if isinstance(names, list) else [names]
        if len(names) != 1:
            raise DataError(f"a {kind} region names {len(names)} classes; one per region")
        if names[0] not in lookup:
            raise DataError(f"class {names[0]!r} is not in the project (classes: "
                            f"{', '.join(classes)})")
        layers.append((lookup[names[0]], _region_mask(r, kind, shape)))
    mask = np.zeros(shape, dtype=np.uint8)
    for c, region in sorted(layers, key=lambda layer: layer[0]):  # higher class wins
        mask[region] = c
    return mask


def _parse(store: ProjectStore, tasks: list[Any], tmp: Path) -> _Parsed:
    from medactive.project.volumes import slice_shape

    known = {s.id: s for s in store.samples()}
    raw: list[tuple[int, dict[str, str]]] = []
    problems: list[tuple[int, str]] = []
    for n, task in enumerate(tasks, start=1):
        data = task.get("data") if isinstance(task, dict) else None
        sid = data.get(ID_KEY) if isinstance(data, dict) else None
        if not isinstance(sid, str) or not sid:
            problems.append((n, (f"no data.{ID_KEY} (tasks must come from `medactive "
                                 "project export --format label-studio`)")))
            continue
        try:
            annotation = _latest_annotation(task)
            label = ""
            if annotation is not None and sid in known:  # unknown ids: check_rows says so
                results = _results(annotation)
                if store.task == "classification":
                    label = _choice(results)
                else:
                    sample = known[sid]
                    if sample.frame is None:
                        raise DataError(f"{sid!r} is an evaluation volume, not a slice")
                    mask = _mask(results, store.classes, slice_shape(store, sid))
                    from medactive.project.volumes import _png_bytes

                    file = tmp / f"task{n}.png"
                    file.write_bytes(_png_bytes(mask))
                    label = str(file)
        except DataError as exc:
            problems.append((n, f"{sid!r}: {exc}"))
            continue
        raw.append((n, {"id": sid, "label": label}))
    return _Parsed(raw, problems)


def import_label_studio(store: ProjectStore, path: str | Path, *, annotator: str | None = None,
                        overwrite: bool = False) -> ImportReport:
    """Import a Label Studio JSON export into the project, all or nothing.

    Raises:
        BadRows: any bad task (numbered from 1 in file order, each on its own line).
        DataError: the file is no Label Studio export.
    """
    path = Path(path)
    tasks = read_export(path)
    if not tasks:
        raise DataError(f"{path}: no tasks")
    current = store.current_labels()
    mask_shape = None
    if store.task == "segmentation":
        from medactive.project.volumes import mask_shapes, sample_shape

        region = store.get_meta("region_size") is not None
        mask_shape = ((lambda sid: mask_shapes(store, sid)) if region
                      else (lambda sid: sample_shape(store, sid)))
    with tempfile.TemporaryDirectory(prefix="medactive-ls-") as tmp:
        parsed = _parse(store, tasks, Path(tmp))
        problems = list(parsed.problems)
        rows = []
        try:
            rows = check_rows(path, ["id", "label"], parsed.raw, classes=store.classes,
                              sample_splits={s.id: s.split for s in store.samples()},
                              current=current, in_batch={q.sample_id for q in store.queries()},
                              task=store.task, images_root=store.images_root,
                              overwrite=overwrite, mask_shape=mask_shape,
                              excluded=store.excluded_ids(), base=Path(tmp), kind="task")
        except BadRows as exc:
            problems += exc.problems
        if problems:
            raise BadRows(path, sorted(problems), kind="task")
        return commit_rows(store, rows, path, annotator=annotator, overwrite=overwrite,
                           current=current, kind="task")
