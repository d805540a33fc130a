"""Stopping signals on hand-made prediction sequences."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medactive.project.stopping import StopRule, cohen_kappa, prediction_change, recommend


def test_two_of_ten_changed_predictions_is_0_2():
    ids = [f"s{i}" for i in range(10)]
    prev = [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]
    new = [0, 1, 1, 1, 0, 1, 0, 0, 0, 1]  # items 2 and 7 changed
    assert prediction_change(ids, prev, ids, new) == (0.2, 10)


def test_only_samples_predicted_by_both_models_are_compared():
    # s0 and s1 were labelled in between (not predicted any more); s9 is new to the pool
    prev_ids, prev = ["s0", "s1", "s2", "s3", "s4"], [1, 1, 0, 0, 1]
    ids, new = ["s2", "s3", "s4", "s9"], [0, 1, 1, 0]  # of s2..s4 only s3 changed
    frac, n = prediction_change(prev_ids, prev, ids, new)
    assert n == 3 and frac == pytest.approx(1 / 3)
    assert np.isnan(prediction_change(["a"], [0], ["b"], [0])[0])


def test_kappa_by_hand_and_as_scikit_learn():
    from sklearn.metrics import cohen_kappa_score

    # p_o = 0.75; p_e = 0.5 * 0.25 + 0.5 * 0.75 = 0.5; kappa = 0.25 / 0.5
    assert cohen_kappa([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))
    assert cohen_kappa([1, 1], [1, 1]) == 1.0


def test_stop_when_both_signals_stay_below_their_thresholds_for_the_window():
    rec = recommend([0, 1, 2, 3], [None, 0.02, 0.004, -0.001], [None, 0.1, 0.008, 0.0],
                    metric="validation AUC")
    assert rec.decision == "stop"
    assert rec.reason == ("Stop: the last 2 rounds changed the validation AUC by 0.004 and "
                          "0.001 (< 0.005) and changed 0.8 % and 0 % of pool predictions "
                          "(< 1 %).")


def test_continue_names_the_signal_above_its_threshold():
    rec = recommend([0, 1, 2], [None, 0.004, 0.003], [None, 0.0, 0.05], metric="AUC")
    assert rec.decision == "continue"
    assert "changed 0 % and 5 % of pool predictions (round 2 at or above 1 %)" in rec.reason
    # a looser threshold and a window of 1 stop
    loose = recommend([0, 1, 2], [None, 0.004, 0.003], [None, 0.0, 0.05],
                      rule=StopRule(max_prediction_change=0.1, window=1))
    assert loose.decision == "stop" and loose.reason.startswith("Stop: the last 1 round ")


def test_missing_predictions_and_too_few_rounds_continue():
    rec = recommend([0, 1, 2], [None, 0.001, 0.001], [None, None, None])
    assert rec.decision == "continue"
    assert "rounds 1, 2: pool predictions were not recorded" in rec.reason
    few = recommend([0, 1], [None, 0.0], [None, 0.0])
    assert few.decision == "continue" and "need 3 consecutive rounds' models" in few.reason
    # without validation labels, stability alone decides
    alone = recommend([0, 1, 2], [None] * 3, [None, 0.0, 0.0], use_metric=False)
    assert alone.decision == "stop" and "validation" not in alone.reason
    with pytest.raises(ValueError, match="window"):
        StopRule(window=0)


# -- project status: the signals of saved rounds ---------------------------------------------
def _fake_rounds(store, rounds):
    """Model rows (and, where ``pred`` is given, saved signals) without training anything.

    ``rounds``: ``[(val_auc, {id: predicted class} | None)]`` for rounds 0, 1, ...
    """
    from medactive.project.signals import save_round_signals

    for k, (auc, pred) in enumerate(rounds):
        digest = f"digest{k}"
        store.add_model(k, None, {"val_auc": auc, "val_accuracy": 0.5}, n_labeled=4 + 3 * k,
                        labels_digest=digest)
        if pred is not None:
            ids = sorted(pred)
            probas = np.eye(2)[[pred[i] for i in ids]] * 0.98 + 0.01
            # validation: 4 samples at 99 % confidence, 1 of them wrong (over-confident)
            save_round_signals(store.directory, k, labels_digest=digest, ids=ids, probas=probas,
                               val_probas=np.array([[0.99, 0.01]] * 4),
                               val_labels=np.array([0, 0, 0, 1]))


def test_status_of_an_old_project_shows_n_a(project, capsys):
    """A project whose models were trained before pool predictions were saved."""
    from medactive.cli import main

    _fake_rounds(project, [(0.70, None), (0.80, None)])
    assert main(["project", "status", str(project.directory)]) == 0
    text = capsys.readouterr().out
    assert "round 1: 7 labels, validation AUC 0.8000 (+0.1000), pool predictions changed n/a" \
        in text
    assert "ECE n/a" in text and "recommendation: Continue:" in text
    assert main(["project", "status", str(project.directory), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    row = info["stopping"]["rounds"][1]
    assert row["prediction_change"] is None and row["calibration"] is None
    assert row["metric_change"] == pytest.approx(0.1)
    assert not row["predictions_saved"]


def test_status_json_has_the_numbers_of_the_text(project, capsys):
    from medactive.cli import main

    ids = [f"x{i}" for i in range(10)]
    p0 = dict.fromkeys(ids, 0)
    p1 = {**p0, "x3": 1, "x8": 1}  # 2 of 10 changed
    p2 = {i: v for i, v in p1.items() if i != "x0"}  # x0 labelled; nothing changed
    p3 = dict(p2)
    _fake_rounds(project, [(0.70, p0), (0.80, p1), (0.803, p2), (0.801, p3)])
    assert main(["project", "status", str(project.directory), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)  # one JSON object, nothing else on stdout
    stop = info["stopping"]
    assert [r["prediction_change"] for r in stop["rounds"]] == [None, 0.2, 0.0, 0.0]
    assert [r["n_compared"] for r in stop["rounds"]] == [None, 10, 9, 9]
    assert stop["recommendation"]["decision"] == "stop"
    cal = stop["calibration"]
    assert cal["temperature"] > 1 and cal["ece_calibrated"] < cal["ece"]
    assert cal["ece"] == pytest.approx(0.99 - 0.75)

    assert main(["project", "status", str(project.directory)]) == 0
    text = capsys.readouterr().out
    r1 = stop["rounds"][1]
    assert (f"round 1: 7 labels, validation AUC {r1['metric']:.4f} "
            f"({r1['metric_change']:+.4f}), pool predictions changed "
            f"{100 * r1['prediction_change']:.1f} % of {r1['n_compared']}") in text
    assert (f"ECE {cal['ece']:.3f} -> {cal['ece_calibrated']:.3f} with T = "
            f"{cal['temperature']:.2f}") in text
    assert f"recommendation: {stop['recommendation']['reason']}" in text

    # the thresholds are options: a stricter metric threshold continues
    assert main(["project", "status", str(project.directory), "--json",
                 "--max-metric-change", "0.001"]) == 0
    strict = json.loads(capsys.readouterr().out)["stopping"]
    assert strict["recommendation"]["decision"] == "continue"
    assert strict["rule"]["max_metric_change"] == 0.001
    assert main(["project", "status", str(project.directory), "--metric", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--metric nope" in err and "auc" in err and "Traceback" not in err
    assert main(["project", "status", str(project.directory), "--stop-window", "0"]) == 2
    assert "--stop-window" in capsys.readouterr().err


def test_a_signals_file_of_another_model_of_the_round_is_not_used(project):
    from medactive.project.signals import save_round_signals, stopping_report

    _fake_rounds(project, [(0.7, {"a": 0})])
    save_round_signals(project.directory, 0, labels_digest="other", ids=["a"],
                       probas=np.array([[0.9, 0.1]]))
    assert stopping_report(project)["rounds"][0]["predictions_saved"] is False


@pytest.mark.slow
def test_query_and_train_save_each_rounds_pool_predictions(tmp_path):
    from medactive.calibration import apply_temperature
    from medactive.project.importer import import_labels
    from medactive.project.signals import latest_temperature, load_round_signals
    from medactive.project.workflow import init_project, query, status, train

    from .conftest import write_csv, write_folder

    truth = write_folder(tmp_path / "img", n=20)
    val = sorted(truth)[:6]
    labels = write_csv(tmp_path / "val.csv", [(i, "ab"[truth[i]], "val") for i in val],
                       header=("id", "label", "split"))
    store = init_project(tmp_path / "p", tmp_path / "img", classes=["a", "b"], labels=labels,
                         preset="smoke", initial=4)

    def label(ids, name):
        import_labels(store, write_csv(tmp_path / name, [(i, "ab"[truth[i]]) for i in ids]))

    label(query(store, strategy="random", budget=3).sample_ids, "b0.csv")
    b1 = query(store, strategy="entropy", budget=3)  # trains round 0, saves its signals
    saved = load_round_signals(store.directory, 0)
    pool = store.pool_ids()  # 14: the 6 val samples left the pool
    assert list(saved["ids"]) == [i for i in pool if i not in store.current_labels("pool")]
    assert saved["predicted"].shape == (10,) and saved["calibration"]["n"] == 6
    assert saved["labels_digest"] == store.models()[-1]["labels_digest"]
    label(b1.sample_ids, "b1.csv")
    train(store)  # round 1's model: its signals are saved by train, before any query
    info = status(store)["stopping"]
    r0, r1 = info["rounds"]
    assert r0["predictions_saved"] and r1["predictions_saved"]
    assert r1["n_compared"] == 7  # the 10 of round 0 minus the 3 labelled since
    assert 0.0 <= r1["prediction_change"] <= 1.0
    t = info["calibration"]["temperature"]
    assert latest_temperature(store) == t
    # the saved confidences are the temperature-scaled probabilities of the argmax
    s1 = load_round_signals(store.directory, 1)
    scaled = apply_temperature(s1["val_log_probas"].astype(float), t)
    assert scaled.argmax(1).tolist() == s1["val_log_probas"].argmax(1).tolist()
    assert np.all((s1["confidence"] >= 0.5) & (s1["confidence"] <= 1.0))
    # a round whose model was trained before predictions were saved: `train` reuses the
    # checkpoint and records them
    from medactive.project.signals import signals_path

    signals_path(store.directory, 1).unlink()
    assert status(store)["stopping"]["rounds"][1]["prediction_change"] is None
    assert train(store)["reused"]
    again = load_round_signals(store.directory, 1)
    assert np.array_equal(again["predicted"], s1["predicted"])
    assert status(store)["stopping"]["rounds"][1]["prediction_change"] == r1["prediction_change"]


def test_a_segmentation_project_is_judged_on_the_metric_alone(tmp_path, seg_folder, capsys):
    from medactive.cli import main
    from medactive.project.workflow import init_project

    store = init_project(tmp_path / "seg", seg_folder, task="segmentation", preset="smoke",
                         initial=2)
    for k, dice in enumerate((0.60, 0.701, 0.703, 0.702)):
        store.add_model(k, None, {"val_dice_mean": dice}, n_labeled=2 + k, labels_digest=f"d{k}")
    assert main(["project", "status", str(store.directory)]) == 0
    text = capsys.readouterr().out
    assert "round 3: 5 labels, validation Dice 0.7020 (-0.0010), pool predictions changed n/a" \
        in text
    assert "prediction stability n/a: computed for classification projects only" in text
    assert ("recommendation: Stop: the last 2 rounds changed the validation Dice by 0.002 and "
            "0.001 (< 0.005).") in text
