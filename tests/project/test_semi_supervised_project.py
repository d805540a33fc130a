"""``project init --semi-supervised fixmatch|mean-teacher [--semi-options JSON]`` (issue 10):
every round's model also trains on the project's not-yet-labelled pool items, and the
pseudo-targets of that training never reach the project's label store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medactive.cli import main
from medactive.errors import ConfigError
from medactive.project.importer import import_labels
from medactive.project.store import ProjectStore
from medactive.project.workflow import build_project_task, init_project, query, train

from .conftest import write_csv
from .test_train_options import DEFAULT_META_KEYS


def _init(tmp_path, image_folder, name="proj", **options):
    root, truth = image_folder
    store = init_project(tmp_path / name, root, classes=["a", "b"], preset="smoke", initial=4,
                         **options)
    store.truth = truth
    return store


def _label(store, tmp_path, ids, name):
    """Import the truth of ``ids`` as a labels CSV."""
    import_labels(store, write_csv(tmp_path / f"{name}.csv",
                                   [(i, "ab"[store.truth[i]]) for i in ids]))


def _label_store(store: ProjectStore) -> dict[str, list]:
    """Every row of the tables that hold labels (values, annotators, provenance, times), and
    the mask files the labels name."""
    tables = {t: [tuple(r) for r in store.execute(f"SELECT * FROM {t} ORDER BY seq")]
              for t in ("labels", "corrections", "adjudications")}
    masks = {Path(r["mask_path"]).parent for r in store.execute(
        "SELECT mask_path FROM labels WHERE mask_path IS NOT NULL")}
    tables["mask_files"] = sorted(p.relative_to(store.directory).as_posix()
                                  for d in masks for p in (store.directory / d).rglob("*"))
    return tables


def _labelled_ids(store: ProjectStore) -> set[str]:
    return {r["sample_id"] for r in store.execute("SELECT sample_id FROM labels")}


class _Spy:
    """Counts FixMatch's unlabelled-loss calls and records, per fit, the pool ids FixMatch
    used as unlabelled data."""

    def __init__(self, monkeypatch) -> None:
        from medactive.tasks.classification import semi_supervised, task, train

        self.loss_calls = 0
        self.unlabeled: list[set[str]] = []
        real_loss = semi_supervised.fixmatch_unlabeled_loss

        def loss(*args, **kwargs):
            self.loss_calls += 1
            return real_loss(*args, **kwargs)

        monkeypatch.setattr(train, "fixmatch_unlabeled_loss", loss)  # finetune mode
        monkeypatch.setattr(semi_supervised, "fixmatch_unlabeled_loss", loss)  # frozen heads
        real_idx = task.ClassificationTask._unlabeled_idx

        def unlabeled_idx(inner, used_idx):
            idx = real_idx(inner, used_idx)
            self.unlabeled.append({str(inner.pool_ids[i]) for i in idx})
            return idx

        monkeypatch.setattr(task.ClassificationTask, "_unlabeled_idx", unlabeled_idx)


def test_init_stores_fixmatch_and_every_round_task_uses_it(tmp_path, image_folder):
    plain = _init(tmp_path, image_folder, "plain")
    assert sorted(plain.meta()) == DEFAULT_META_KEYS  # a project without it: meta as before
    semi = _init(tmp_path, image_folder, "semi", semi_supervised="fixmatch",
                 semi_options={"threshold": 0.9, "mu": 2})
    meta = semi.meta()
    assert meta["semi_supervised"] == "fixmatch"
    assert meta["semi_options"] == {"threshold": 0.9, "mu": 2}
    assert "train_options" not in meta
    plain_task, _ = build_project_task(plain)
    task, _ = build_project_task(semi)
    assert plain_task.inner.semi is None
    assert task.inner.semi_supervised == "fixmatch"
    assert (task.inner.semi.threshold, task.inner.semi.mu) == (0.9, 2)
    assert task.inner.semi.lambda_u == 1.0  # the paper's default where not given
    # a FixMatch project trains its own models (the digest names the method and the pool)
    assert (task.digest(np.array([0, 1]), [0, 1], 7)
            != plain_task.digest(np.array([0, 1]), [0, 1], 7))
    assert "semi_supervised" not in json.loads(plain_task._extra)


def test_init_flags_on_the_command_line_and_status_shows_them(tmp_path, image_folder, capsys):
    root, _ = image_folder
    assert main(["project", "init", str(tmp_path / "p"), "--images", str(root), "--classes",
                 "a,b", "--preset", "smoke", "--semi-supervised", "fixmatch",
                 "--semi-options", '{"threshold": 0.8}']) == 0
    capsys.readouterr()
    assert main(["project", "status", str(tmp_path / "p")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith('semi-supervised: fixmatch {"threshold": 0.8}')
               for line in lines), lines
    assert main(["project", "status", str(tmp_path / "p"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["semi_supervised"] == {"method": "fixmatch", "options": {"threshold": 0.8}}


def test_status_of_a_project_without_it(tmp_path, image_folder, capsys):
    store = _init(tmp_path, image_folder)
    assert main(["project", "status", str(store.directory)]) == 0
    assert not any(line.startswith("semi-supervised")
                   for line in capsys.readouterr().out.splitlines())
    assert main(["project", "status", str(store.directory), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["semi_supervised"] is None


@pytest.mark.parametrize("flags, message", [
    (["--semi-supervised", "mean-teacher"],
     "--semi-supervised mean-teacher is for segmentation, not classification; use fixmatch"),
    (["--semi-supervised", "fixmatch", "--semi-options", "{threshold: 0.9}"],
     "--semi-options: not valid JSON"),
    (["--semi-supervised", "fixmatch", "--semi-options", "[0.9]"],
     "--semi-options must be a JSON object"),
    (["--semi-supervised", "fixmatch", "--semi-options", '{"tau": 0.9}'],
     "unknown fixmatch option(s) tau"),
    (["--semi-supervised", "fixmatch", "--semi-options", '{"threshold": 2}'],
     "fixmatch threshold must be a number in [0.0, 1.0], got 2"),
    (["--semi-supervised", "fixmatch", "--semi-options", '{"mu": 0}'], "fixmatch mu"),
    (["--semi-options", '{"threshold": 0.9}'], "given without --semi-supervised"),
    (["--semi-supervised", "fixmatch", "--evidential"],
     "--evidential with --semi-supervised"),
])
def test_classification_init_refuses_in_one_line(tmp_path, image_folder, capsys, flags,
                                                 message):
    root, _ = image_folder
    rc = main(["project", "init", str(tmp_path / "p"), "--images", str(root), "--classes",
               "a,b", "--preset", "smoke", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "p" / "project.db").exists()


@pytest.mark.parametrize("flags, message", [
    (["--semi-supervised", "fixmatch"],
     "--semi-supervised fixmatch is for classification, not segmentation; use mean-teacher"),
    (["--semi-supervised", "mean-teacher", "--semi-options", '{"ema": 0.9}'],
     "unknown mean-teacher option(s) ema"),
    (["--semi-supervised", "mean-teacher", "--semi-options", '{"ema_decay": 1.5}'],
     "ema_decay"),
])
def test_segmentation_init_refuses_in_one_line(tmp_path, seg_folder, capsys, flags, message):
    rc = main(["project", "init", str(tmp_path / "s"), "--images", str(seg_folder), "--task",
               "segmentation", "--preset", "smoke", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "s" / "project.db").exists()


def test_library_init_refuses_options_that_are_not_a_table(tmp_path, image_folder):
    with pytest.raises(ConfigError, match="semi_options must be a table"):
        _init(tmp_path, image_folder, semi_supervised="fixmatch", semi_options=[0.9])
    assert not (tmp_path / "proj" / "project.db").exists()


def _fixmatch_rounds(store, tmp_path, spy):
    """Two FixMatch rounds (train, then query twice): after each, the label store holds
    exactly the imported labels and the batch is only unlabelled items."""
    first = query(store, strategy="random", budget=4)
    _label(store, tmp_path, first.sample_ids, "round0")
    labelled = set(first.sample_ids)
    before = _label_store(store)
    assert not train(store)["reused"]
    assert spy.loss_calls > 0  # the round's model trained with FixMatch's unlabelled loss
    pool = set(store.pool_ids())
    # FixMatch's unlabelled data: the project's not-yet-labelled pool items, nothing else
    assert spy.unlabeled and all(u == pool - labelled for u in spy.unlabeled)
    assert _label_store(store) == before and _labelled_ids(store) == labelled
    second = query(store, strategy="margin", budget=3)
    assert len(second.sample_ids) == 3 and not set(second.sample_ids) & labelled
    assert _label_store(store) == before and store.integrity_check() == "ok"
    _label(store, tmp_path, second.sample_ids, "round1")
    labelled |= set(second.sample_ids)
    before = _label_store(store)
    calls = spy.loss_calls
    third = query(store, strategy="margin", budget=2)  # trains round 1's model with FixMatch
    assert spy.loss_calls > calls and spy.unlabeled[-1] == pool - labelled
    assert len(third.sample_ids) == 2 and not set(third.sample_ids) & labelled
    assert _label_store(store) == before and store.integrity_check() == "ok"
    # exactly the imported labels: one row per labelled item, its truth, source import
    rows = store.execute("SELECT sample_id, value, source, provenance FROM labels")
    assert sorted((r["sample_id"], r["value"]) for r in rows) == sorted(
        (sid, store.truth[sid]) for sid in labelled)
    assert {(r["source"], r["provenance"]) for r in rows} == {("import", None)}


@pytest.mark.slow
def test_a_fixmatch_round_never_writes_a_label(tmp_path, image_folder, monkeypatch):
    spy = _Spy(monkeypatch)
    store = _init(tmp_path, image_folder, semi_supervised="fixmatch",
                  semi_options={"mu": 2})
    _fixmatch_rounds(store, tmp_path, spy)


@pytest.mark.slow
def test_a_frozen_fixmatch_round_never_writes_a_label(tmp_path, image_folder, monkeypatch):
    from tests.tasks.classification.test_task_modes import write_tiny_encoder

    monkeypatch.setenv("MEDACTIVE_CACHE", str(tmp_path / "cache"))
    spy = _Spy(monkeypatch)
    store = _init(tmp_path, image_folder, encoder=str(write_tiny_encoder(tmp_path / "enc.pt")),
                  train_mode="frozen", semi_supervised="fixmatch")
    assert build_project_task(store)[0].inner.semi is not None
    _fixmatch_rounds(store, tmp_path, spy)


@pytest.mark.slow
def test_a_mean_teacher_round_never_writes_a_mask(tmp_path, seg_folder, monkeypatch):
    from medactive.tasks.segmentation import task as seg_task

    seen = []
    real = seg_task.train_unet

    def train_unet(*args, unlabeled=None, mean_teacher=None, **kwargs):
        seen.append((None if unlabeled is None else int(unlabeled.shape[0]), mean_teacher))
        return real(*args, unlabeled=unlabeled, mean_teacher=mean_teacher, **kwargs)

    monkeypatch.setattr(seg_task, "train_unet", train_unet)
    store = init_project(tmp_path / "s", seg_folder, task="segmentation", preset="smoke",
                         initial=2, semi_supervised="mean-teacher",
                         semi_options={"consistency": 0.2})
    assert store.meta()["semi_supervised"] == "mean-teacher"
    labelled = _labelled_ids(store)  # case0's three slices, from its mask file
    assert len(labelled) == 3
    before = _label_store(store)
    assert before["mask_files"]
    assert not train(store)["reused"]
    n_pool = len(store.pool_ids())
    # the mean teacher's unlabelled slices: the pool's not-yet-labelled ones
    assert seen and all(n == n_pool - 3 and mt is not None and mt.consistency == 0.2
                        for n, mt in seen)
    assert _label_store(store) == before and _labelled_ids(store) == labelled
    batch = query(store, strategy="entropy", budget=2)
    assert len(batch.sample_ids) == 2 and not set(batch.sample_ids) & labelled
    assert _label_store(store) == before and store.integrity_check() == "ok"
    rows = store.execute("SELECT sample_id, value, source FROM labels")
    assert len(rows) == 3 and {r["source"] for r in rows} == {"initial"}
    assert all(r["value"] is None for r in rows)
