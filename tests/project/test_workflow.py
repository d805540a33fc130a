"""The human loop: query/train on the project's labels with the same loop as ``medactive run``."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from medactive.cli import main
from medactive.errors import ConfigError
from medactive.loop.active_loop import initial_indices
from medactive.project.importer import import_labels
from medactive.project.store import NewLabel, ProjectStore
from medactive.project.workflow import labeled_state, query, train

from .conftest import write_csv, write_folder


def _label_batch(store, truth, ids, tmp_path, name="labels.csv"):
    return import_labels(store, write_csv(tmp_path / name, [(i, "ab"[truth[i]]) for i in ids]))


def test_first_query_is_the_seeded_initial_set(project):
    batch = query(project, strategy="entropy", budget=3)
    pool = project.pool_ids()
    assert batch.round == 0 and batch.strategy == "initial"
    assert batch.sample_ids == [pool[i] for i in initial_indices(len(pool), 4, 0)]
    assert project.counts()["batch"]["pending"] == 4


def test_query_refuses_while_pending_and_unknown_strategy(project, tmp_path):
    with pytest.raises(ConfigError, match="unknown strategy"):
        query(project, strategy="nope", budget=3)
    batch = query(project, strategy="random", budget=3)
    with pytest.raises(ConfigError, match="still pending"):
        query(project, strategy="random", budget=3)
    _label_batch(project, project.truth, batch.sample_ids, tmp_path)
    with pytest.raises(ConfigError, match="larger than the 8 unlabeled"):
        query(project, strategy="random", budget=9)


@pytest.mark.slow
def test_train_then_query_reuses_the_model(project, tmp_path):
    batch = query(project, strategy="random", budget=4)
    _label_batch(project, project.truth, batch.sample_ids, tmp_path)
    first = train(project)
    assert not first["reused"] and first["n_labeled"] == 4
    assert train(project)["reused"]
    nxt = query(project, strategy="entropy", budget=3)
    assert nxt.round == 1 and len(nxt.sample_ids) == 3
    assert len(project.models()) == 1  # the query reused the trained checkpoint
    assert not set(nxt.sample_ids) & set(batch.sample_ids)


def test_labeled_state_orders_batches_then_extras(project, tmp_path):
    truth = project.truth
    b0 = query(project, strategy="random", budget=4)
    _label_batch(project, truth, b0.sample_ids, tmp_path)
    extra = next(i for i in project.pool_ids() if i not in b0.sample_ids)
    project.add_label(NewLabel(extra, value=truth[extra]), annotator="x")
    state = labeled_state(project)
    pool = project.pool_ids()
    assert [pool[i] for i in state.groups[0]] == b0.sample_ids + [extra]
    # a skipped sample of a batch is not labeled: it goes back to the pool
    other = next(i for i in pool if i not in b0.sample_ids and i != extra)
    with project.transaction() as tx:
        project.add_batch(1, "random", [other], [0.1], budget=1, tx=tx)
    project.set_status(other, "skipped")
    state = labeled_state(project)
    assert other not in {pool[i] for i in state.labeled_idx}
    assert len(state.labeled_idx) == 5


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["badge", "entropy"])
def test_human_loop_selects_what_the_simulated_run_selects(tmp_path, strategy):
    """init -> query -> import -> query -> import -> query == `medactive run`'s selections."""
    images = tmp_path / "images"
    truth = write_folder(images, n=30, subfolder_every=5, seed=1)
    ids = sorted(truth)
    split = {sid: ("val" if k % 6 == 1 else "test" if k % 6 == 4 else "train")
             for k, sid in enumerate(ids)}
    full = write_csv(tmp_path / "full.csv", [(i, "ab"[truth[i]], split[i]) for i in ids],
                     header=("id", "label", "split"))
    evaluation = write_csv(tmp_path / "eval.csv",
                           [(i, "ab"[truth[i]], split[i]) for i in ids if split[i] != "train"],
                           header=("id", "label", "split"))
    common = ["--seed", "3", "--preset", "smoke"]
    out = tmp_path / "run"
    assert main(["run", "--data", str(images), "--labels", str(full), "--strategy", strategy,
                 "--initial", "6", "--budget", "4", "--rounds", "2", "--out", str(out),
                 "--device", "cpu", *common]) == 0
    simulated: dict[int, list[tuple[str, str]]] = {}
    for row in _rows(out / "selections.csv"):
        simulated.setdefault(int(row["round"]), []).append((row["sample_id"], row["score"]))

    proj = tmp_path / "proj"
    assert main(["project", "init", str(proj), "--images", str(images), "--labels",
                 str(evaluation), "--classes", "a,b", "--initial", "6", *common]) == 0
    for rnd in range(3):
        assert main(["project", "query", str(proj), "--strategy", strategy, "--budget", "4",
                     "--device", "cpu"]) == 0
        store = ProjectStore(proj)
        batch = store.batch(rnd)
        assert [q.sample_id for q in batch] == [sid for sid, _ in simulated[rnd]], rnd
        for q, (_, score) in zip(batch, simulated[rnd]):
            if score:
                assert math.isclose(q.score, float(score), rel_tol=1e-9, abs_tol=1e-12)
            else:
                assert q.score is None
        labels = write_csv(tmp_path / f"round{rnd}.csv",
                           [(q.sample_id, "ab"[truth[q.sample_id]]) for q in batch])
        if rnd < 2:
            assert main(["project", "import", str(proj), str(labels)]) == 0
        store.close()
    # the models of rounds 0 and 1 have the run's metrics
    run_rounds = _rows(out / "rounds.csv")
    models = ProjectStore(proj).models()
    assert [m["round"] for m in models] == [0, 1]
    for m, row in zip(models, run_rounds):
        assert m["n_labeled"] == int(row["n_labeled"])
        for key in ("val_accuracy", "test_accuracy"):
            assert np.isclose(m["metrics"][key], float(row[key]), atol=1e-4)


@pytest.mark.slow
def test_mc_scoring_shows_one_bar_not_the_tasks_too(project, tmp_path, capsys):
    """The project reports pool scoring for every field; the task's own MC-dropout bar (shown
    by `medactive run` for pools larger than one inference batch) stays off in projects."""
    from medactive.project.workflow import StageReport, build_project_task

    b0 = query(project, strategy="random", budget=4)
    _label_batch(project, project.truth, b0.sample_ids, tmp_path)
    task, _ = build_project_task(project, progress=True)
    task.inner.config = task.inner.config.replace(inference_batch_size=3)
    state = labeled_state(project)
    model = task.fit(state.labeled_idx, [state.labels[project.pool_ids()[i]]
                                         for i in state.labeled_idx], seed=0)
    unlabeled = np.setdiff1d(np.arange(12), state.labeled_idx)
    task.report = StageReport("t", True)
    capsys.readouterr()
    task.predictions(model, seed=1).get("mc_probas", unlabeled)
    task.close_scoring()
    err = capsys.readouterr().err
    assert "scoring the pool: 8/8 (100%) samples" in err
    assert "scoring the pool (MC dropout)" not in err


@pytest.mark.slow
def test_scoring_progress_in_pieces_gives_the_same_values(project, tmp_path, capsys):
    from medactive.project.workflow import StageReport, build_project_task

    b0 = query(project, strategy="random", budget=4)
    _label_batch(project, project.truth, b0.sample_ids, tmp_path)
    task, _ = build_project_task(project)
    task.inner.config = task.inner.config.replace(inference_batch_size=3)
    state = labeled_state(project)
    model = task.fit(state.labeled_idx, [state.labels[project.pool_ids()[i]]
                                         for i in state.labeled_idx], seed=0)
    unlabeled = np.setdiff1d(np.arange(12), state.labeled_idx)
    plain = task.inner.predictions(model, seed=1)
    expected = {f: plain.get(f, unlabeled) for f in ("probas", "embeddings")}
    calls = []
    original = task.inner.predictions

    def recording(model, *, seed):
        preds = original(model, seed=seed)
        fn = preds.providers["probas"]
        preds.providers["probas"] = lambda idx: (calls.append(len(idx)), fn(idx))[1]
        return preds

    task.inner.predictions = recording
    task.report = StageReport("t", True)
    preds = task.predictions(model, seed=1)
    for f in ("probas", "embeddings"):
        assert np.array_equal(preds.get(f, unlabeled), expected[f]), f
    task.close_scoring()
    assert calls == [3, 3, 2]  # pieces of one inference batch, so the bar moves
    err = capsys.readouterr().err
    assert "scoring the pool: 8/8 (100%) samples" in err and "probas" in err


def test_options_added_later_leave_the_model_digest_of_a_default_recipe_alone():
    # issue 11 added ensemble_size / evidential / learning_loss to the recipes; a project
    # trained before must keep finding its stored models (same digest) unless one is set
    from medactive.project.workflow import LATER_OPTIONS, digest_config
    from medactive.tasks.classification.presets import get_preset
    from medactive.tasks.segmentation.presets import get_preset as segmentation_preset

    for recipe in (get_preset("cpu"), segmentation_preset("cpu")):
        named = digest_config(recipe)
        assert not set(named) & set(LATER_OPTIONS)
        assert named == {k: v for k, v in recipe.to_dict().items() if k not in LATER_OPTIONS}
    assert digest_config(get_preset("cpu", ensemble_size=3))["ensemble_size"] == 3
    assert digest_config(get_preset("cpu", learning_loss=True))["learning_loss"] is True
