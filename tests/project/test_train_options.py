"""Issue 11's training options in projects: ``project init --ensemble-size M / --evidential /
--learning-loss``, stored in the meta, applied to every round's model, and the query refusal of
a strategy that needs one the project lacks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medactive.cli import main
from medactive.errors import ConfigError
from medactive.project.importer import import_labels
from medactive.project.workflow import (
    LATER_OPTIONS,
    build_project_task,
    init_project,
    query,
    train,
)

from .conftest import write_csv

#: the meta keys of a classification project created without any training option (before
#: issue 11's options existed)
DEFAULT_META_KEYS = ['channels', 'classes', 'created_at', 'epochs', 'image_size', 'images_root',
                     'initial', 'labels_csv', 'preset', 'schema_version', 'seed', 'size', 'task']


def _init(tmp_path, image_folder, name="proj", **options):
    root, truth = image_folder
    store = init_project(tmp_path / name, root, classes=["a", "b"], preset="smoke", initial=4,
                         **options)
    store.truth = truth
    return store


def _reused_checkpoint(caplog) -> bool:
    """The query loaded the model `project train` saved (a checkpoint that does not load is
    retrained with a warning instead)."""
    messages = [r.getMessage() for r in caplog.records]
    return (any(m.startswith("reusing model") for m in messages)
            and not any("retraining" in m for m in messages))


def _first_round(store, tmp_path):
    """The initial batch, labelled with the truth."""
    batch = query(store, strategy="random", budget=4)
    import_labels(store, write_csv(tmp_path / f"{store.directory.name}.csv",
                                   [(i, "ab"[store.truth[i]]) for i in batch.sample_ids]))
    return batch


def test_init_stores_the_options_and_a_default_project_keeps_its_meta_and_digest(
        tmp_path, image_folder):
    plain = _init(tmp_path, image_folder, "plain")
    assert sorted(plain.meta()) == DEFAULT_META_KEYS
    flagged = _init(tmp_path, image_folder, "flagged", ensemble_size=2, evidential=True,
                    learning_loss=True)
    assert flagged.meta()["train_options"] == {"ensemble_size": 2, "evidential": True,
                                               "learning_loss": True}
    digests = []
    for store in (plain, flagged):
        task, _ = build_project_task(store)
        digests.append(task.digest(np.array([0, 1]), [0, 1], 7))
        extra = json.loads(task._extra)["config"]
        if store is plain:  # the recipe of before: none of the later options named
            assert not set(extra) & set(LATER_OPTIONS)
        else:
            assert task.inner.config.ensemble_size == 2
            assert task.inner.config.learning_loss and task.inner.evidential
            assert {k: extra[k] for k in LATER_OPTIONS} == {
                "ensemble_size": 2, "evidential": True, "learning_loss": True}
    assert digests[0] != digests[1]  # a project with options trains its own models


def test_init_flags_on_the_command_line_and_status_shows_them(tmp_path, image_folder, capsys):
    root, _ = image_folder
    assert main(["project", "init", str(tmp_path / "p"), "--images", str(root), "--classes",
                 "a,b", "--preset", "smoke", "--ensemble-size", "3", "--learning-loss"]) == 0
    capsys.readouterr()
    assert main(["project", "status", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "training options: --ensemble-size 3 --learning-loss" in out.splitlines()
    assert main(["project", "status", str(tmp_path / "p"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["train_options"] == {"ensemble_size": 3, "learning_loss": True}


@pytest.mark.parametrize("flags, message", [
    (["--ensemble-size", "0"], "--ensemble-size"),
    (["--ensemble-size", "-2"], "--ensemble-size"),
])
def test_init_refuses_a_bad_ensemble_size_in_one_line(tmp_path, image_folder, capsys, flags,
                                                      message):
    root, _ = image_folder
    rc = main(["project", "init", str(tmp_path / "p"), "--images", str(root), "--classes",
               "a,b", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "p" / "project.db").exists()


def test_library_init_refuses_non_boolean_options(tmp_path, image_folder):
    with pytest.raises(ConfigError, match="evidential.*true or false"):
        _init(tmp_path, image_folder, evidential="yes")
    with pytest.raises(ConfigError, match="learning_loss.*true or false"):
        _init(tmp_path, image_folder, learning_loss=1)
    assert not (tmp_path / "proj" / "project.db").exists()


@pytest.mark.parametrize("flags, message", [
    (["--ensemble-size", "2"], "--ensemble-size is for classification"),
    (["--evidential"], "--evidential is for classification"),
])
def test_segmentation_init_refuses_ensembles_and_evidential(tmp_path, seg_folder, capsys,
                                                            flags, message):
    rc = main(["project", "init", str(tmp_path / "s"), "--images", str(seg_folder), "--task",
               "segmentation", "--preset", "smoke", *flags])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "s" / "project.db").exists()


@pytest.mark.parametrize("strategy, flag", [
    ("ensemble_bald", "--ensemble-size 2 or more"),
    ("qbc_vote_entropy", "--ensemble-size 2 or more"),
    ("evidential", "--evidential"),
    ("learning_loss", "--learning-loss"),
])
def test_query_with_a_strategy_needing_a_missing_option_is_refused_in_one_line(
        tmp_path, image_folder, capsys, strategy, flag):
    store = _init(tmp_path, image_folder)
    _first_round(store, tmp_path)
    before = (store.current_round(), store.counts()["batch"], store.models())
    rc = main(["project", "query", str(store.directory), "--strategy", strategy,
               "--budget", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert strategy in err and flag in err and "medactive project init" in err, err
    assert (store.current_round(), store.counts()["batch"], store.models()) == before
    assert store.queries("pending") == []
    assert not (store.directory / "models").exists()  # refused before any training


def test_a_segmentation_query_of_a_classification_only_strategy_is_refused_before_training(
        tmp_path, seg_folder):
    store = init_project(tmp_path / "s", seg_folder, task="segmentation", preset="smoke",
                         initial=2)
    with pytest.raises(ConfigError, match="ensemble and QBC strategies are for classification"):
        query(store, strategy="ensemble_bald", budget=2)
    with pytest.raises(ConfigError, match="learning_loss needs --learning-loss.*project init"):
        query(store, strategy="learning_loss", budget=2)
    assert store.rounds() == [] and not (store.directory / "models").exists()


@pytest.mark.slow
@pytest.mark.parametrize("options, strategy", [
    ({"ensemble_size": 2}, "ensemble_bald"),
    ({"evidential": True}, "evidential"),
    ({"learning_loss": True}, "learning_loss"),
])
def test_a_project_with_the_option_queries_with_its_strategy(tmp_path, image_folder, caplog,
                                                             options, strategy):
    store = _init(tmp_path, image_folder, **options)
    first = _first_round(store, tmp_path)
    # `project train` saves the model; the query then reloads it from its checkpoint (the
    # ensemble's members, the evidential head, the loss-prediction module)
    assert not train(store)["reused"]
    with caplog.at_level("INFO", logger="medactive.project.workflow"):
        batch = query(store, strategy=strategy, budget=3)
    assert _reused_checkpoint(caplog)
    assert batch.round == 1 and len(batch.sample_ids) == 3
    assert not set(batch.sample_ids) & set(first.sample_ids)
    assert np.isfinite(batch.scores).all()
    assert len(store.models()) == 1  # the query reused the trained checkpoint


@pytest.mark.slow
def test_a_segmentation_project_with_learning_loss_queries_with_it(tmp_path, seg_folder,
                                                                   caplog):
    store = init_project(tmp_path / "s", seg_folder, task="segmentation", preset="smoke",
                         initial=2, learning_loss=True)
    assert store.meta()["train_options"] == {"learning_loss": True}
    assert not train(store)["reused"]  # case0's masks; the query reloads the checkpoint
    with caplog.at_level("INFO", logger="medactive.project.workflow"):
        batch = query(store, strategy="learning_loss", budget=2)
    assert _reused_checkpoint(caplog)
    assert batch.round == 1 and len(batch.sample_ids) == 2
    assert np.isfinite(batch.scores).all() and len(store.models()) == 1
