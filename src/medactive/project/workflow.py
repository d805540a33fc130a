"""The human loop: create a project, query a batch, train, with the same loop as ``medactive run``.

A project's rounds are those of :class:`~medactive.loop.cycle.ActiveLearningCycle`: round ``k``'s
batch forms the labeled set ``L_k`` (round 0's batch is the seeded random initial set, unless
the project started with labels), and the model of round ``k`` is trained on ``L_k`` and selects
batch ``k + 1``. ``project query`` rebuilds the cycle's records of the finished rounds from the
database, tells it the stored labels of ``L_k``, then fits, evaluates and queries once and stores
the batch as pending: people tell its labels through the page or ``project import``. So a human project selects exactly the
samples that ``medactive run`` selects with the simulated oracle for the same data, seed and
strategy, provided the expert gives the same labels.

Membership of ``L_k``: a sample joins the labeled set of the round that was current when it got
its first label (``labels.round``). Within a round the loop's order is the batch's rank order,
then any other sample labelled during that round (pool order). Samples of a batch that were
skipped are not labeled: they return to the pool.

Validation and test: samples put in the ``val`` or ``test`` split (a ``split`` column in the
labels CSV of ``init`` or ``import``) and labelled. They are never queried. Without labelled
validation samples the model of the last epoch is kept and metrics are empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medactive._random import derive_seed
from medactive.errors import ConfigError, DataError
from medactive.loop.cycle import ActiveLearningCycle
from medactive.loop.records import LoopConfig, RoundRecord, initial_indices
from medactive.loop.task import task_predictions
from medactive.project.importer import check_label_rows
from medactive.project.store import (
    DB_NAME,
    NewLabel,
    ProjectStore,
    atomic_write_bytes,
    file_sha256,
    now_iso,
    open_project,
)

logger = logging.getLogger(__name__)

TASKS = ("classification", "segmentation")
INITIAL_STRATEGY = "initial"
#: test hook: a file that receives the stage a query/train has reached ("training", "trained"),
#: so a test can SIGKILL it at a known point
MARK_ENV = "MEDACTIVE_TEST_QUERY_MARK"


def _mark(stage: str) -> None:
    path = os.environ.get(MARK_ENV)
    if path:
        atomic_write_bytes(path, stage.encode())


# -- init ------------------------------------------------------------------------------------
def init_project(directory: str | Path, images: str | Path, *, task: str = "classification",
                 classes: list[str] | None = None, labels: str | Path | None = None,
                 initial: int | None = None, seed: int = 0, preset: str = "cpu",
                 epochs: int | None = None, image_size: int | None = None,
                 channels: int | None = None, region_size: int | None = None,
                 exclude: str | list[str] | None = None, excluded_by: str | None = None,
                 encoder: str | None = None, encoder_weights: str | None = None,
                 train_mode: str | None = None, ensemble_size: int | None = None,
                 evidential: bool = False, learning_loss: bool = False,
                 semi_supervised: str | None = None,
                 semi_options: dict[str, Any] | None = None,
                 readers: int = 1, progress: bool = False) -> ProjectStore:
    """Create a project over an image folder (images are referenced, never copied).

    Every image file is decoded in full first (a truncated file fails here, with all bad
    files listed in one error, not at the first query after a whole training).

    Args:
        directory: the project directory to create (holds ``project.db``).
        images: the folder of images (classification: PNG/JPEG/TIFF; segmentation: NIfTI
            volumes or image/mask pairs).
        task: ``"classification"`` or ``"segmentation"``.
        classes: class names (classification: required unless ``labels`` gives them;
            segmentation: label names of mask values, background first).
        labels: optional CSV ``id,label[,split]`` of labels known at the start (source
            ``initial``); a ``split`` of ``val``/``test`` makes those samples the evaluation
            sets.
        initial: size of the random initial batch (default: the first query's budget).
        seed: master seed of the project (initial set, training, queries).
        preset: training preset; ``epochs`` overrides its epochs.
        image_size: resize images to this side (default: their common size).
        channels: 1 or 3 (default: from the files).
        region_size: segmentation only: the query unit is a ``P × P`` patch of a slice at its
            original resolution (see :mod:`medactive.project.regions`).
        exclude: sample ids to leave out from the start (ids or a file of ids, as
            ``project exclude`` takes them); their files are not decoded.
        excluded_by: who excludes them (recorded).
        encoder, encoder_weights, train_mode: classification only: every round's model starts
            from this encoder (a ``medactive pretrain`` file or ``timm:NAME`` with local
            weights; as ``medactive run --encoder``), or with ``train_mode="frozen"`` trains a
            head on its cached embeddings. Checked (loaded once) here; paths are stored
            absolute.
        ensemble_size, evidential, learning_loss: every round's training recipe, as
            ``medactive run --ensemble-size M / --evidential / --learning-loss`` (a deep
            ensemble of M models, the evidential Dirichlet loss, a loss-prediction module;
            segmentation: ``learning_loss`` only), for the strategies that read them. Stored
            in the meta ``train_options`` when not the default; fixed for the project's life.
        semi_supervised, semi_options: every round's model also trains on the pool items not
            yet labelled, as ``medactive run --semi-supervised`` with ``semi_options``:
            ``"fixmatch"`` (classification, finetune or frozen mode) or ``"mean-teacher"``
            (segmentation), options overriding the method's defaults (e.g.
            ``{"threshold": 0.9}``). Checked here by the run command's checks; stored in the
            meta ``semi_supervised`` / ``semi_options`` when given. Pseudo-targets live only
            inside a training step: they never reach the label store.
        readers: double reading: each queried item is offered to this many different
            annotators (meta ``readers``; :mod:`medactive.project.readings`); 1 = one reader.
        progress: report the decoding of the images (:mod:`medactive.progress`).

    Raises:
        ConfigError: ``directory`` is already a project, bad arguments, ``initial`` larger
            than the pool, unknown ids in ``exclude``.
        DataError: no images, unreadable files, bad label rows (all listed).
    """
    directory = Path(directory)
    images = Path(images)
    if task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    if not images.is_dir():
        raise DataError(f"{images}: not a folder")
    if (directory / DB_NAME).is_file() and ProjectStore(directory).get_meta("task"):
        raise ConfigError(f"{directory}: already a medactive project")
    if initial is not None and initial < 1:
        raise ConfigError(f"--initial must be at least 1, got {initial}")
    from medactive.tasks.classification.presets import get_preset

    train_options = _init_train_options(task, ensemble_size=ensemble_size,
                                        evidential=evidential, learning_loss=learning_loss)
    semi = _init_semi(task, semi_supervised, semi_options, train_options)
    get_preset(preset, epochs=epochs)  # fail early on a bad preset
    from medactive.project.readings import check_readers

    readers = check_readers(readers)
    if region_size is not None:
        if task != "segmentation":
            raise ConfigError("--region-size is for segmentation projects (--task segmentation)")
        from medactive.project.regions import check_patch_size

        region_size = check_patch_size(region_size)
    engine = _check_encoder(task, encoder, encoder_weights, train_mode)
    root = images.resolve()
    meta: dict[str, Any] = {"task": task, "images_root": str(root), "seed": int(seed),
                            "initial": initial, "preset": preset, "epochs": epochs,
                            "image_size": image_size, "created_at": now_iso(),
                            "labels_csv": str(labels) if labels else None}
    if readers > 1:  # a single-reader project keeps the meta of before (n_readers: default 1)
        meta["readers"] = readers
    if region_size is not None:
        meta["region_size"] = region_size
    if train_options:  # a project without them keeps the meta (and model digests) of before
        meta["train_options"] = train_options
    meta.update(semi)  # likewise: only a semi-supervised project has these keys
    meta.update(engine)
    if task == "classification":
        rows, fmt, excluded = _classification_samples(root, image_size=image_size,
                                                      channels=channels, exclude=exclude,
                                                      progress=progress)
        meta.update(fmt)
        if engine:
            from medactive.encoders import load_encoder

            # loaded once, so a wrong file or architecture fails here in one line
            load_encoder(engine["encoder"], weights=engine["encoder_weights"],
                         in_channels=meta["channels"])
    else:
        from medactive.project.volumes import discover_segmentation_samples

        rows, fmt = discover_segmentation_samples(root, region_size=region_size)
        excluded = _excluded_at_init(rows, exclude, volumes=fmt.get("volumes", {}))
        _check_decodable(_segmentation_files(root, rows, fmt, excluded), root=root,
                         progress=progress)
        if classes is None and fmt.get("classes_file"):
            classes = fmt["classes_file"]
        meta.update(fmt)
    if classes is not None:
        classes = [c.strip() for c in classes]
        if not classes or any(not c for c in classes) or len(set(classes)) != len(classes):
            raise ConfigError(f"--classes must be distinct non-empty names, got {classes}")
    elif task == "classification" and labels is not None:
        from medactive.project.importer import read_label_csv

        _, raw = read_label_csv(labels)
        classes = sorted({r.get("label", "") for _, r in raw} - {""})
    if not classes or (task == "classification" and len(classes) < 2):
        raise ConfigError("give at least two class names with --classes a,b,... "
                          "(segmentation: mask label names, background first)")
    meta["classes"] = classes
    sample_ids = {r[0] for r in rows}
    label_rows = []
    if labels is not None and task == "classification":
        label_rows = check_label_rows(labels, classes=classes,
                                      sample_splits={sid: "pool" for sid in sample_ids},
                                      current={}, in_batch=set(), images_root=root,
                                      excluded=set(excluded))
    elif labels is not None:
        raise ConfigError("--labels at init is for classification; a segmentation project "
                          "takes masks from the folder (images/ + masks/ or NAME_mask.nii.gz), "
                          "or from `medactive project import` afterwards")
    if initial is not None:
        moved = {r.sample_id for r in label_rows if r.split not in (None, "pool")}
        n_pool = sum(r[4] == "pool" and r[0] not in moved and r[0] not in excluded
                     for r in rows)
        if initial > n_pool:
            raise ConfigError(f"--initial={initial} is larger than the pool of {n_pool} "
                              "samples")
    store = ProjectStore(directory, create=True)
    new_labels = [NewLabel(r.sample_id, value=r.value) for r in label_rows if r.value is not None]
    if task == "segmentation":
        from medactive.project.volumes import initial_mask_labels

        # mask files first (content-addressed, harmless if orphaned), then one transaction
        new_labels = [NewLabel(sid, mask_path=rel)
                      for sid, rel in initial_mask_labels(store, meta)]
    with store.transaction() as tx:
        store.set_meta(meta, tx=tx)
        store.add_samples(rows, tx=tx)
        tx.executemany("UPDATE samples SET split = ? WHERE id = ?",
                       [(r.split, r.sample_id) for r in label_rows if r.split is not None])
        store.write_labels(new_labels,
                           annotator=f"init:{Path(labels).name}" if labels else "init",
                           source="initial", tx=tx)
        tx.executemany("INSERT INTO excluded(sample_id, reason, excluded_by, created_at) "
                       "VALUES (?,?,?,?)",
                       [(sid, "excluded at init", excluded_by or _login(), now_iso())
                        for sid in excluded])
    logger.info("created project %s: %d samples", directory, len(rows))
    return store


def _classification_samples(root: Path, *, image_size: int | None, channels: int | None,
                            exclude, progress: bool):
    from medactive.data.images import find_images, infer_format

    found = find_images(root)
    if not found:
        raise DataError(f"{root}: no images (.png, .jpg, .jpeg, .tif, .tiff) found")
    excluded = _excluded_at_init([(sid,) for sid, _ in found], exclude)
    kept = [p for sid, p in found if sid not in excluded]
    _check_decodable(kept, root=root, progress=progress)
    chans, size = infer_format(kept, channels=channels, image_size=image_size)
    rows = [(sid, p.relative_to(root).as_posix(), None, file_sha256(p), "pool")
            for sid, p in found]
    return rows, {"channels": int(chans), "size": [int(size[0]), int(size[1])]}, excluded


def _excluded_at_init(rows, exclude, *, volumes: dict[str, Any] | None = None) -> list[str]:
    """The sample ids ``init --exclude`` names (a volume id: its slices); unknown ids fail."""
    if exclude is None:
        return []
    from medactive.project.integrity import read_ids

    ids, source = read_ids(exclude)
    known = [r[0] for r in rows]
    known_set = set(known)
    out, unknown = [], []
    for sid in ids:
        hits = ([sid] if sid in known_set else
                [k for k in known if k.startswith(sid + "/")] if sid in (volumes or {}) else [])
        if not hits:
            unknown.append(sid)
        out += [h for h in hits if h not in out]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:10])
        raise ConfigError(f"--exclude ({source}): {len(unknown)} unknown id"
                          f"{'s' * (len(unknown) != 1)}: {shown} (not samples of the folder)")
    return out


def _segmentation_files(root: Path, rows, fmt: dict[str, Any], excluded: list[str]
                        ) -> list[Path]:
    """The volume and mask files a new segmentation project reads (not of excluded samples)."""
    gone = set(excluded)
    used = {r[1] for r in rows if r[0] not in gone}
    files = [root / rel for rel in dict.fromkeys(r[1] for r in rows) if rel in used]
    for vol in fmt.get("volumes", {}).values():
        if vol.get("mask") and vol["path"] in used:
            files.append(root / vol["mask"])
    return files


def _check_decodable(paths: list[Path], *, root: Path, progress: bool) -> None:
    from medactive.project.integrity import decode_problems, undecodable_error

    problems = decode_problems(paths, root=root, progress=progress)
    if problems:
        raise undecodable_error(problems, n_files=len(paths), root=root,
                                hint="fix or remove them, or leave them out with "
                                "--exclude ID,ID,... or --exclude FILE")


def _login() -> str:
    from medactive.project.integrity import _login as login

    return login()


# -- the labeled set as the loop sees it ---------------------------------------------------------
@dataclass
class LabeledState:
    """The project's labels arranged as the loop's rounds.

    Attributes:
        pool_ids: ``[n_pool]`` pool ids (sorted).
        groups: ``groups[k]`` = pool indices joining ``L_k``, in loop order.
        scores: their query scores (NaN for samples outside a batch).
        labels: ``{sample_id: label}`` of labelled pool samples (class index or mask path).
        round: the current round (latest batch), -1 before the first query.
    """

    pool_ids: list[str]
    groups: list[np.ndarray]
    scores: list[np.ndarray]
    labels: dict[str, Any]
    round: int
    index: dict[str, int] = field(default_factory=dict)

    @property
    def labeled_idx(self) -> np.ndarray:
        """All labelled pool indices in loop order."""
        if not self.groups:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate(self.groups).astype(np.int64)


def labeled_state(store: ProjectStore) -> LabeledState:
    """Rebuild the loop's view of ``L_0 ⊆ L_1 ⊆ ...`` from the database."""
    pool_ids = store.pool_ids()
    index = {sid: i for i, sid in enumerate(pool_ids)}
    # excluded samples are not in pool_ids: their labels stay in the history, unused
    from medactive.project.readings import n_readers, training_labels

    if n_readers(store) > 1:  # double reading: adjudicated, else majority (readings.py)
        made = {sid: t for sid, t in training_labels(store).items() if sid in index and t.used}
        labels = {sid: t.label for sid, t in made.items()}
        joined = {sid: t.round for sid, t in made.items()}
    else:
        current = {sid: lab for sid, lab in store.current_labels("pool").items()
                   if sid in index}
        labels = {sid: (lab.value if lab.value is not None else lab.mask_path)
                  for sid, lab in current.items()}
        joined = {sid: rnd for sid, (rnd, _) in store.first_label_rounds().items()
                  if sid in current}
    rnd = store.current_round()
    n_groups = max([max(rnd, 0) + 1] + [r + 1 for r in joined.values()]) if joined else 0
    groups: list[list[int]] = [[] for _ in range(n_groups)]
    scores: list[list[float]] = [[] for _ in range(n_groups)]
    placed: set[str] = set()
    for k in range(n_groups):
        for item in store.batch(k):
            if joined.get(item.sample_id) == k and item.sample_id in index:
                groups[k].append(index[item.sample_id])
                scores[k].append(np.nan if item.score is None else item.score)
                placed.add(item.sample_id)
    extras = sorted((index[sid], k) for sid, k in joined.items() if sid not in placed)
    for i, k in extras:
        groups[k].append(i)
        scores[k].append(np.nan)
    return LabeledState(pool_ids, [np.asarray(g, dtype=np.int64) for g in groups],
                        [np.asarray(s, dtype=np.float64) for s in scores], labels, rnd, index)


class ProjectOracle:
    """The project's stored labels of pool indices (loaded with ``load``, e.g. mask files)."""

    def __init__(self, pool_ids: list[str], labels: dict[str, Any], load=None) -> None:
        self.pool_ids = pool_ids
        self.labels = labels
        self.load = load

    def label(self, idx: np.ndarray) -> list[Any]:
        out = []
        for i in np.asarray(idx, dtype=np.int64):
            sid = self.pool_ids[int(i)]
            if sid not in self.labels:
                raise ConfigError(f"sample {sid} has no stored label")
            value = self.labels[sid]
            out.append(self.load(value) if self.load is not None else value)
        return out


# -- progress of query and train -----------------------------------------------------------------
class StageReport:
    """What a long ``project query``/``train`` is doing, on stderr, when ``enabled``.

    Stage lines (``"query: training the round-1 model on 40 labels"``) mark each step; the steps
    with a count (training epochs inside the training code, scoring the pool here) report with
    :mod:`medactive.progress`: a live bar on a terminal, a plain line every few seconds
    otherwise, so a redirected log shows that a 90-second query is alive.
    """

    def __init__(self, command: str = "", enabled: bool = False) -> None:
        self.command, self.enabled = command, enabled

    def __call__(self, text: str) -> None:
        if self.enabled:
            print(f"{self.command}: {text}" if self.command else text, file=sys.stderr,
                  flush=True)


class _ScoringProgress:
    """One ``scoring the pool`` bar per prediction field, counting the rows computed.

    ``steps`` (``{field: rows}``) splits a provider's calls into pieces of that many rows, so
    the bar moves during a pool that fits one chunk; given only for fields whose values do not
    depend on the split (one inference batch per piece, exactly the batches of one call).
    """

    def __init__(self, total: int, enabled: bool, steps: dict[str, int] | None = None) -> None:
        self.total, self.enabled = total, enabled
        self.steps = dict(steps or {})
        self.bars: dict[str, Any] = {}

    def wrap(self, name: str, fn):
        from medactive.progress import progress_bar

        step = self.steps.get(name)

        def provider(idx):
            bar = self.bars.get(name)
            if bar is None:
                bar = self.bars[name] = progress_bar(self.total, desc="scoring the pool",
                                                     unit="sample", enabled=self.enabled)
                bar.set_postfix_str(name)
            if self.enabled and bar.n + len(idx) > (bar.total or 0):
                bar.total = bar.n + len(idx)  # a strategy asking for labelled rows too
            if not step or len(idx) <= step:
                out = fn(idx)
                bar.update(len(idx))
                return out
            parts = []
            for start in range(0, len(idx), step):
                parts.append(np.asarray(fn(idx[start:start + step])))
                bar.update(len(parts[-1]))
            return np.concatenate(parts)
        return provider

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


class _ReportingStrategy:
    """A strategy whose ``query`` announces the selection and closes the scoring bars."""

    def __init__(self, inner, name: str, report: StageReport, task: ProjectTask) -> None:
        self.inner, self.name, self.report, self.task = inner, name, report, task

    def __getattr__(self, attr: str):
        return getattr(self.inner, attr)

    def query(self, predictions, unlabeled_idx, labeled_idx, budget, *, rng):
        self.report(f"selecting {budget} of {len(unlabeled_idx)} samples with {self.name}")
        start = time.monotonic()
        try:
            result = self.inner.query(predictions, unlabeled_idx, labeled_idx, budget, rng=rng)
        finally:
            self.task.close_scoring()
        self.report(f"selected in {time.monotonic() - start:.1f}s")
        return result


# -- task with a checkpoint cache ------------------------------------------------------------------
def _label_key(value: Any) -> str:
    """A label's identity for the checkpoint digest (masks by content, not by their repr)."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{value.shape}:" + hashlib.sha256(
            np.ascontiguousarray(value).tobytes()).hexdigest()
    return str(value)


class ProjectTask:
    """A task of the project whose ``fit`` reuses a checkpoint trained on the same labels.

    The checkpoint file name is a digest of everything that determines the model (labeled ids and
    labels in loop order, seed, recipe, evaluation labels), so a model trained by ``project
    train`` is reused by the next ``project query`` and an interrupted query resumes without
    retraining. Checkpoints are written atomically (temporary file + rename).
    """

    def __init__(self, inner, store: ProjectStore, *, describe_extra: dict[str, Any]) -> None:
        self.inner = inner
        self.store = store
        self.kind = inner.kind
        self.pool_ids = inner.pool_ids
        self.primary_metric = inner.primary_metric
        self._extra = json.dumps(describe_extra, sort_keys=True, default=str)
        self.last_fit: dict[str, Any] = {}
        #: stage lines of the command running the task, and the round its fit trains
        self.report = StageReport()
        self.round = 0
        self._scoring: _ScoringProgress | None = None
        self.last_predictions: Any = None

    def digest(self, labeled_idx: np.ndarray, labels: list[Any], seed: int) -> str:
        h = hashlib.sha256(self._extra.encode())
        h.update(json.dumps([[str(self.pool_ids[int(i)]) for i in labeled_idx],
                             [_label_key(v) for v in labels], int(seed)]).encode())
        return h.hexdigest()

    def pool_labels(self, idx: np.ndarray) -> list[Any]:
        raise ConfigError("a project has no ground truth; labels come from the store")

    def fit(self, labeled_idx: np.ndarray, labels: list[Any], *, seed: int,
            init_model: Any | None = None):
        digest = self.digest(labeled_idx, labels, seed)
        path = self.store.directory / "models" / f"{digest[:24]}.pt"
        model = None
        if path.is_file() and init_model is None:
            try:
                model = self._load(path)
                logger.info("reusing model %s (trained on the same %d labels)", path.name,
                            len(labeled_idx))
                self.report(f"round-{self.round} model up to date ({len(labeled_idx)} labels)")
            except Exception as exc:  # noqa: BLE001 - a damaged checkpoint is retrained
                logger.warning("%s: cannot load (%s); retraining", path, exc)
        if model is None:
            _mark("training")
            self.report(f"training the round-{self.round} model on {len(labeled_idx)} labels")
            start = time.monotonic()
            model = self.inner.fit(labeled_idx, labels, seed=seed, init_model=init_model)
            self._save(model, path)
            self.report(f"trained in {time.monotonic() - start:.1f}s")
            _mark("trained")
        self.last_fit = {"digest": digest, "checkpoint": path.relative_to(
            self.store.directory).as_posix(), "n_labeled": len(labeled_idx)}
        return model

    def _save(self, model, path: Path) -> None:
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        state = model.state_dict() if hasattr(model, "state_dict") else model
        torch.save(state, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def _load(self, path: Path):
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        return self.inner.load_model(state)

    def evaluate(self, model, split: str) -> dict[str, float]:
        n = _split_size(self.inner, split)
        if n:
            self.report(f"evaluating on the {split} set ({n} samples)")
        return self.inner.evaluate(model, split)

    def predictions(self, model, *, seed: int, labeled_idx=None):
        preds = task_predictions(self.inner, model, seed=seed, labeled_idx=labeled_idx)
        self.last_predictions = preds  # the query's, for the stopping signals
        providers = getattr(preds, "providers", None)
        if self.report.enabled and isinstance(providers, dict):
            n_unlabeled = len(self.pool_ids) - int(self.last_fit.get("n_labeled", 0))
            steps = {}
            if getattr(self.inner, "train_mode", None) == "finetune":
                # predict() runs batches of inference_batch_size from the start of its indices:
                # pieces of one batch give the very same batches, so the same values
                batch = int(self.inner.config.inference_batch_size)
                steps = {"probas": batch, "embeddings": batch}
            self._scoring = _ScoringProgress(max(n_unlabeled, 0), True, steps)
            preds.providers = {name: self._scoring.wrap(name, fn)
                               for name, fn in providers.items()}
        return preds

    def close_scoring(self) -> None:
        """End the scoring bars (their last line says how many rows were scored)."""
        if self._scoring is not None:
            self._scoring.close()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


def _split_size(inner, split: str) -> int | None:
    """Samples (volumes) of an evaluation split, when the task tells."""
    for holder in ("dataset", "data"):
        data = getattr(getattr(inner, holder, None), split, None)
        if data is not None:
            try:
                return len(data)
            except TypeError:
                return None
    inner_task = getattr(inner, "base", None)  # a region task wraps the segmentation task
    return _split_size(inner_task, split) if inner_task is not None else None


def build_project_task(store: ProjectStore, *, device: str = "cpu",
                       progress: bool = False) -> tuple[ProjectTask, Any]:
    """The project's task and the function turning a stored label into a training label."""
    meta = store.meta()
    if meta["task"] == "segmentation":
        from medactive.project.volumes import build_segmentation_project_task

        inner, load = build_segmentation_project_task(store, device=device, progress=progress)
    else:
        inner, load = _build_classification_task(store, meta, device=device, progress=progress)
    extra = {"task": meta["task"], "classes": meta["classes"], "preset": meta.get("preset"),
             "epochs": meta.get("epochs"), "image_size": meta.get("image_size"),
             "eval": _eval_digest(store)}
    if meta.get("region_size") is not None:
        extra["region_size"] = int(meta["region_size"])
    if hasattr(inner, "config"):
        extra["config"] = digest_config(inner.config)
    semi = semi_supervised_setting(meta)
    if semi is not None:  # its unlabelled data: the pool (minus the labelled items)
        pool = json.dumps([str(i) for i in inner.pool_ids]).encode()
        extra["semi_supervised"] = {**semi, "pool": hashlib.sha256(pool).hexdigest()}
    return ProjectTask(inner, store, describe_extra=extra), load


#: training options added after projects existed: left out of the model digest while they hold
#: their default, so a project's stored models stay valid across the upgrade that added them
LATER_OPTIONS = {"ensemble_size": 1, "evidential": False, "learning_loss": False}


def digest_config(config: Any) -> dict[str, Any] | str:
    """The part of a training recipe that names a project's model (see :data:`LATER_OPTIONS`)."""
    if not hasattr(config, "to_dict"):
        return str(config)
    return {key: value for key, value in config.to_dict().items()
            if not (key in LATER_OPTIONS and value == LATER_OPTIONS[key])}


def _eval_digest(store: ProjectStore) -> str:
    rows = store.execute("SELECT s.id, s.split, l.value, l.mask_path FROM samples s JOIN labels l "
                         "ON l.sample_id = s.id WHERE s.split != 'pool' AND s.id NOT IN "
                         "(SELECT sample_id FROM excluded) ORDER BY l.seq")
    return hashlib.sha256(json.dumps([list(r) for r in rows]).encode()).hexdigest()


def _build_classification_task(store: ProjectStore, meta: dict[str, Any], *, device: str,
                               progress: bool):
    from medactive.data.images import lazy_images
    from medactive.data.pool import Dataset, Split
    from medactive.tasks.classification.presets import get_preset
    from medactive.tasks.classification.task import ClassificationTask

    root = Path(meta["images_root"])
    size = tuple(meta["size"])
    channels = int(meta["channels"])
    current = store.current_labels()

    def split(name: str, labelled_only: bool) -> Split:
        samples = store.samples(name)
        if labelled_only:
            samples = [s for s in samples if s.id in current]
        # unlabelled pool samples get a placeholder 0: the project oracle, not pool_labels,
        # provides training labels
        labels = [current[s.id].value if s.id in current else 0 for s in samples]
        return Split(np.array([s.id for s in samples], dtype=str),
                     lazy_images([root / s.path for s in samples], channels=channels, size=size),
                     np.asarray(labels, dtype=np.int64))

    dataset = Dataset(name=store.directory.name, classes=list(meta["classes"]),
                      train=split("pool", False), val=split("val", True),
                      test=split("test", True), in_channels=channels, source=str(root))
    if len(dataset.train) == 0:
        raise DataError(f"{store.directory}: the project's pool is empty")
    config = get_preset(meta.get("preset") or "cpu", epochs=meta.get("epochs"),
                        **dict(meta.get("train_options") or {}))
    if meta.get("image_size"):
        config = config.replace(image_size=int(meta["image_size"]))
    encoder = None
    if meta.get("encoder"):
        from medactive.encoders import load_encoder

        encoder = load_encoder(meta["encoder"], weights=meta.get("encoder_weights"),
                               in_channels=channels)
    # pool scoring is reported by ProjectTask for every field: the task's own bars stay off
    # semi-supervised: its unlabelled data is the pool minus the labelled items (the task's
    # _unlabeled_idx), i.e. the project's pool items not yet labelled
    return ClassificationTask(dataset, config, device=device, progress=progress,
                              encoder=encoder, train_mode=meta.get("train_mode") or "finetune",
                              scoring_progress=False,
                              semi_supervised=meta.get("semi_supervised"),
                              semi_options=meta.get("semi_options")), None


def _check_encoder(task: str, encoder: str | None, weights: str | None,
                   train_mode: str | None) -> dict[str, Any]:
    """The project meta of an encoder (``{}`` without one)."""
    if encoder is None:
        if weights is not None or train_mode not in (None, "finetune"):
            raise ConfigError("--encoder-weights and --train-mode frozen need --encoder")
        return {}
    if task != "classification":
        raise ConfigError("--encoder is for classification projects (segmentation trains its "
                          "U-Net from scratch)")
    if train_mode not in (None, "finetune", "frozen"):
        raise ConfigError(f"--train-mode must be finetune or frozen, got {train_mode!r}")
    if not encoder.startswith("timm:"):
        encoder = str(Path(encoder).resolve())
    if weights is not None:
        weights = str(Path(weights).resolve())
    return {"encoder": encoder, "encoder_weights": weights,
            "train_mode": train_mode or "finetune"}


#: the ``project init`` flag of each training option of :data:`LATER_OPTIONS`
TRAIN_OPTION_FLAGS = {"ensemble_size": "--ensemble-size", "evidential": "--evidential",
                      "learning_loss": "--learning-loss"}


def _check_train_options(task: str, train_options: dict[str, Any], *, strategy: str = "random",
                         strategy_options: dict[str, Any] | None = None,
                         semi_supervised: str | None = None,
                         semi_options: dict[str, Any] | None = None) -> None:
    """``medactive run``'s checks of these training options for ``task`` and ``strategy``
    (:func:`medactive.experiment.check_training_options`): a bad value, an option the task
    refuses, a strategy reading a field only a missing option provides, a semi-supervised
    method of the other task, a bad or unknown semi-supervised option."""
    from medactive.experiment import ExperimentConfig, check_training_options

    check_training_options(ExperimentConfig(
        data="project", strategy=strategy, initial=1, budget=1, rounds=0, task=task,
        train_options=dict(train_options), strategy_options=dict(strategy_options or {}),
        semi_supervised=semi_supervised, semi_options=dict(semi_options or {})), kind=task)
    if task == "segmentation":  # the check `medactive run` makes where it builds the task
        from medactive.tasks.segmentation.mean_teacher import semi_supervised_config

        semi_supervised_config(semi_supervised, dict(semi_options or {}))


def _init_semi(task: str, method: str | None, options: Any,
               train_options: dict[str, Any]) -> dict[str, Any]:
    """The meta ``semi_supervised`` / ``semi_options`` of ``project init`` (``{}``: none),
    checked as ``medactive run`` checks ``--semi-supervised`` and ``semi_options``."""
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"semi_options must be a table of option: value (JSON object), "
                          f"got {options!r}")
    options = dict(options or {})
    _check_train_options(task, train_options, semi_supervised=method, semi_options=options)
    return {} if method is None else {"semi_supervised": method, "semi_options": options}


def semi_supervised_setting(meta: dict[str, Any]) -> dict[str, Any] | None:
    """A project's semi-supervised training, ``{"method", "options"}`` (``None``: none)."""
    method = meta.get("semi_supervised")
    if method is None:
        return None
    return {"method": method, "options": dict(meta.get("semi_options") or {})}


def _init_train_options(task: str, **given: Any) -> dict[str, Any]:
    """The meta ``train_options`` of ``project init``: the options given, checked, without
    those left at their default (``{}``: none)."""
    from medactive.tasks.ensemble import check_ensemble_size

    options = {k: v for k, v in given.items() if v is not None and v is not False}
    _check_train_options(task, options)
    if "ensemble_size" in options:
        options["ensemble_size"] = check_ensemble_size(options["ensemble_size"])
    options = {k: (bool(v) if k != "ensemble_size" else v) for k, v in options.items()}
    return {k: v for k, v in options.items() if v != LATER_OPTIONS[k]}


def describe_train_options(options: dict[str, Any] | None) -> str:
    """The ``project init`` flags of a project's training options (``""``: none)."""
    words = []
    for key, value in (options or {}).items():
        flag = TRAIN_OPTION_FLAGS.get(key, key)
        words.append(flag if value is True else f"{flag} {value}")
    return " ".join(words)


def _check_strategy_fields(meta: dict[str, Any], strategy: str, strat,
                           options: dict[str, Any]) -> None:
    """Refuse, before any training, a strategy that reads a prediction field this project's
    models cannot give: one only classification provides (a segmentation project), or one only
    a training option the project was created without provides (naming the init flag)."""
    task = meta["task"]
    if task == "segmentation":
        from medactive.tasks.segmentation.predictions import CLASSIFICATION_ONLY

        for name in getattr(strat, "requires", ()):
            if name in CLASSIFICATION_ONLY:
                raise ConfigError(CLASSIFICATION_ONLY[name])
    train_options = dict(meta.get("train_options") or {})
    try:
        _check_train_options(task, train_options, strategy=strategy, strategy_options=options,
                             semi_supervised=meta.get("semi_supervised"),
                             semi_options=meta.get("semi_options"))
    except ConfigError as exc:
        has = describe_train_options(train_options) or "none"
        raise ConfigError(f"{exc}; a project's training options are set at `medactive project "
                          f"init` (this project's: {has}): create a new project with the "
                          "flag to use this strategy") from None


# -- query -------------------------------------------------------------------------------------
@dataclass
class QueryOutcome:
    """The batch a query stored."""

    round: int
    strategy: str
    sample_ids: list[str]
    scores: list[float]
    metrics: dict[str, float] = field(default_factory=dict)
    trained: bool = False


def query(store: ProjectStore, *, strategy: str, budget: int, initial: int | None = None,
          device: str = "cpu", allow_partial: bool = False, progress: bool = False,
          strategy_options: dict[str, Any] | None = None) -> QueryOutcome:
    """Select the next batch and store it as pending.

    Before any label, the batch is the seeded random initial set (size ``initial``, else the
    project's ``--initial``, else ``budget``). Afterwards the model of the current round is
    trained on all labels so far (or reused when already trained on exactly them), scores the
    unlabeled pool and ``strategy`` selects ``budget`` samples.

    ``progress``: stage lines and bars on stderr (:class:`StageReport`).

    Raises:
        ConfigError: unknown strategy, budget or initial below 1 or larger than the unlabeled
            pool, a batch still pending (unless ``allow_partial``), no labels to train on.
        DataError: image files missing (all listed; see ``project relocate``).
    """
    from medactive.strategies import create_strategy

    if budget < 1:
        raise ConfigError(f"--budget must be at least 1, got {budget}")
    if initial is not None and initial < 1:
        raise ConfigError(f"--initial must be at least 1, got {initial}")
    options = dict(strategy_options or {})
    strat = create_strategy(strategy, **options)  # unknown names fail here, listing valid ones
    _check_strategy_fields(store.meta(), strategy, strat, options)
    report = StageReport("query", progress)
    _check_files(store, report)
    seed = int(store.get_meta("seed", 0))
    pending = store.queries("pending")
    if pending and not allow_partial:
        rounds = sorted({q.round for q in pending})
        raise ConfigError(f"{len(pending)} samples of round {rounds[-1]}'s batch are still "
                          "pending; label or skip them first (or pass --allow-partial to leave "
                          "them unlabelled)")
    state = labeled_state(store)
    n_pool = len(state.pool_ids)
    if not state.labels:
        if state.round >= 0:
            raise ConfigError(f"no labels in the pool yet: label round {state.round}'s batch "
                              "first")
        size = initial if initial is not None else store.get_meta("initial") or budget
        if size > n_pool:
            raise ConfigError(f"--initial={size} is larger than the pool of {n_pool} samples"
                              if initial is not None or store.get_meta("initial") else
                              f"budget={size} is larger than the pool of {n_pool} samples")
        idx = initial_indices(n_pool, int(size), seed)
        ids = [state.pool_ids[i] for i in idx]
        with store.transaction() as tx:
            store.add_batch(0, INITIAL_STRATEGY, ids, [np.nan] * len(ids), budget=int(size),
                            options={"seed": seed}, tx=tx)
        logger.info("round 0: random initial batch of %d samples", len(ids))
        return QueryOutcome(0, INITIAL_STRATEGY, ids, [float("nan")] * len(ids))
    if initial is not None:
        logger.warning("--initial sizes the first batch only; round %d is past it, ignored",
                       state.round)

    k = max(state.round, 0)
    groups = state.groups[:k + 1] + [np.zeros(0, np.int64)] * (k + 1 - len(state.groups))
    scores = state.scores[:k + 1] + [np.zeros(0)] * (k + 1 - len(state.scores))
    n_labeled = int(sum(g.size for g in groups))
    if n_labeled + budget > n_pool:
        raise ConfigError(f"budget={budget} is larger than the {n_pool - n_labeled} unlabeled "
                          "samples left in the pool")
    task, load = _load_task(store, device=device, report=report)
    task.round = k
    models = {m["round"]: m["metrics"] for m in store.models()}
    completed = [RoundRecord(round=r, n_labeled=int(sum(g.size for g in groups[:r + 1])),
                             metrics=dict(models.get(r, {})), added_idx=groups[r],
                             added_scores=scores[r], queried_idx=groups[r + 1],
                             queried_scores=scores[r + 1]) for r in range(k)]
    config = LoopConfig(strategy=strategy, initial=int(groups[0].size), budget=budget,
                        rounds=k + 1, seed=seed, strategy_options=options)
    oracle = ProjectOracle(state.pool_ids, state.labels, load)
    if progress:
        strat = _ReportingStrategy(strat, strategy, report, task)
    # round k of the project's cycle: L_k are the stored labels; the batch is stored, not told
    cycle = ActiveLearningCycle(task, config, strategy=strat, completed=completed,
                                initial_idx=groups[0] if k == 0 else None)
    cycle.tell(cycle.labeled_idx, oracle.label(cycle.labeled_idx))
    try:
        cycle.fit()
        cycle.evaluate()
        unlabeled = cycle.unlabeled_idx
        batch = cycle.query(budget)
        # before the batch's transaction: a file of a query killed here is rewritten, the same
        _save_signals(store, task, cycle.model, k, unlabeled, task.last_predictions)
    finally:
        task.close_scoring()
    record = cycle.records[-1]
    ids = [state.pool_ids[int(i)] for i in batch.indices]
    with store.transaction() as tx:
        fit = task.last_fit
        if fit and not tx.execute("SELECT 1 FROM models WHERE labels_digest = ?",
                                  (fit["digest"],)).fetchone():
            store.add_model(record.round, fit["checkpoint"], record.metrics,
                            n_labeled=record.n_labeled, labels_digest=fit["digest"], tx=tx)
        # older batch items nobody labelled are closed: they are back in the pool
        tx.execute("UPDATE queries SET status = 'skipped', lease_annotator = NULL, "
                   "lease_expires = NULL WHERE status = 'pending'")
        store.add_batch(k + 1, strategy, ids, list(batch.scores), budget=budget,
                        options={"seed": seed, "strategy_options": options,
                                 "model": fit.get("checkpoint")}, tx=tx)
    outcome = QueryOutcome(k + 1, strategy, ids, [float(s) for s in batch.scores],
                           metrics=dict(record.metrics))
    logger.info("round %d: %d samples queried by %s", k + 1, len(outcome.sample_ids), strategy)
    return outcome


def _check_files(store: ProjectStore, report: StageReport) -> None:
    """Every image file the project reads exists, else one error listing the missing ones."""
    from medactive.project.integrity import missing_files, missing_message

    missing, n_files = missing_files(store)
    report(f"checking {n_files} image files")
    if missing:
        raise DataError(missing_message(store, missing, n_files))


def _load_task(store: ProjectStore, *, device: str, report: StageReport):
    report(f"loading images ({len(store.pool_ids())} pool samples)")
    task, load = build_project_task(store, device=device, progress=report.enabled)
    task.report = report
    return task, load


# -- train -----------------------------------------------------------------------------------
def train(store: ProjectStore, *, device: str = "cpu", progress: bool = False,
          ) -> dict[str, Any]:
    """Train the current round's model on all labels so far (reused when up to date).

    ``progress``: stage lines and bars on stderr (:class:`StageReport`).

    Returns:
        ``{"round", "n_labeled", "metrics", "checkpoint", "reused"}``.
    """
    report = StageReport("train", progress)
    _check_files(store, report)
    state = labeled_state(store)
    if not state.labels:
        raise ConfigError("no labels in the pool yet: nothing to train on")
    k = max(state.round, 0)
    labeled_idx = state.labeled_idx
    task, load = _load_task(store, device=device, report=report)
    task.round = k
    oracle = ProjectOracle(state.pool_ids, state.labels, load)
    labels = oracle.label(labeled_idx)
    seed = int(store.get_meta("seed", 0))
    train_seed = derive_seed(seed, "train", k)
    digest = task.digest(labeled_idx, labels, train_seed)
    existing = store.find_model(digest)
    if existing is not None and (store.directory / (existing["checkpoint"] or "")).is_file():
        report(f"round-{k} model up to date ({labeled_idx.size} labels)")
        from medactive.project.signals import has_signals

        if task.kind == "classification" and not has_signals(store, k, digest):
            task.last_fit = {"digest": digest, "n_labeled": int(labeled_idx.size)}
            _save_signals(store, task, task._load(store.directory / existing["checkpoint"]), k,
                          np.setdiff1d(np.arange(len(state.pool_ids)), labeled_idx),
                          labeled_idx=labeled_idx, seed=seed)
        return {"round": k, "n_labeled": int(labeled_idx.size), "metrics": existing["metrics"],
                "checkpoint": existing["checkpoint"], "reused": True}
    model = task.fit(labeled_idx, labels, seed=train_seed)
    metrics = {f"val_{m}": v for m, v in task.evaluate(model, "val").items()}
    metrics.update({f"test_{m}": v for m, v in task.evaluate(model, "test").items()})
    _save_signals(store, task, model, k, np.setdiff1d(np.arange(len(state.pool_ids)),
                                                      labeled_idx),
                  labeled_idx=labeled_idx, seed=seed)
    store.add_model(k, task.last_fit["checkpoint"], metrics, n_labeled=int(labeled_idx.size),
                    labels_digest=digest)
    return {"round": k, "n_labeled": int(labeled_idx.size), "metrics": metrics,
            "checkpoint": task.last_fit["checkpoint"], "reused": False}


def _save_signals(store: ProjectStore, task: ProjectTask, model, k: int,
                  unlabeled_idx: np.ndarray, preds=None, *, labeled_idx=None,
                  seed: int = 0) -> None:
    """Save round ``k``'s pool predictions and calibration for ``project status``'s stopping
    signals (:mod:`medactive.project.signals`; classification only for now). ``preds``: the
    query's predictions (probabilities a strategy used are not computed again); without them
    the pool is predicted here."""
    if task.kind != "classification" or not task.last_fit.get("digest"):
        return
    from medactive.project.signals import save_round_signals

    task.report("saving the pool predictions and the calibration (stopping signals)")
    if preds is None:
        preds = task.predictions(model, seed=derive_seed(seed, "predict", k),
                                 labeled_idx=np.sort(np.asarray(labeled_idx, dtype=np.int64)))
    inner = task.inner
    n_classes = len(store.classes)
    probas = (preds.get("probas", unlabeled_idx) if unlabeled_idx.size
              else np.zeros((0, n_classes)))
    task.close_scoring()
    val = inner.dataset.val
    has_val = len(val) > 0 and val.labels is not None
    # the probabilities evaluate() scores (an ensemble's members' mean)
    val_probas = inner._probas_of(model, "val") if has_val else None
    save_round_signals(store.directory, k, labels_digest=task.last_fit["digest"],
                       ids=[task.pool_ids[int(i)] for i in unlabeled_idx], probas=probas,
                       val_probas=val_probas, val_labels=val.labels if has_val else None)


# -- status ------------------------------------------------------------------------------------
def status(store: ProjectStore, *, verify: bool = False, progress: bool = False,
           metric: str | None = None, rule: Any = None) -> dict[str, Any]:
    """Counts, rounds, latest metrics, excluded samples, the image files' state, and the
    stopping signals and calibration (``stopping``: :func:`medactive.project.signals.
    stopping_report` with the validation ``metric`` and the thresholds ``rule``, a
    :class:`~medactive.project.stopping.StopRule`).

    Every status checks that the image files exist (``missing_images``: sample ids,
    ``missing_files``: paths under the image folder); ``verify`` also re-hashes and fully decodes
    every file (``changed_images``/``changed_files``, ``unreadable_images``). ``ok`` is True
    when the database is sound and no file is missing, changed or unreadable.
    """
    from medactive.project.integrity import missing_files, project_files, verify_files

    info: dict[str, Any] = {"directory": str(store.directory), "task": store.task,
                            "classes": store.classes, "images": str(store.images_root),
                            "seed": store.get_meta("seed"), "preset": store.get_meta("preset"),
                            "train_options": dict(store.get_meta("train_options") or {}),
                            "semi_supervised": semi_supervised_setting(store.meta())}
    info.update(store.counts())
    rounds = []
    for r in store.rounds():
        batch = store.batch(r["round"])
        rounds.append({"round": r["round"], "strategy": r["strategy"], "size": len(batch),
                       **{s: sum(q.status == s for q in batch)
                          for s in ("pending", "labelled", "skipped")}})
    info["rounds"] = rounds
    models = store.models()
    info["latest_model"] = models[-1] if models else None
    from medactive.project.signals import stopping_report
    from medactive.project.stopping import StopRule

    info["stopping"] = stopping_report(store, metric=metric, rule=rule or StopRule())
    from medactive.project.agreement import agreement_report

    info["agreement"] = agreement_report(store)
    from medactive.project.cost import cost_report

    info["cost"] = cost_report(store, metric=metric)
    info["annotators"] = store.annotators()
    info["excluded"] = store.excluded()
    info["integrity"] = store.integrity_check()
    if verify:
        files = verify_files(store, progress=progress)
    else:
        missing, n_files = missing_files(store)
        hashed, _ = project_files(store)
        files = {"missing_files": missing, "n_files": n_files,
                 "missing_images": [i for rel in missing for i in hashed.get(rel, ("", []))[1]]}
    info.update(files)
    info["verified"] = verify
    info["ok"] = info["integrity"] == "ok" and not any(
        info.get(k) for k in ("missing_files", "changed_files", "unreadable_images"))
    return info


def open_or_fail(directory: str | Path) -> ProjectStore:
    store = open_project(directory)
    if not store.get_meta("task"):
        raise ConfigError(f"{directory}: project creation did not finish; run "
                          "`medactive project init` again")
    return store
