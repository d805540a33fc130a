"""One progress convention (medactive.progress): a bar on a terminal, plain lines otherwise.

Every long step (training, pool scoring, segmentation loading/training, the benchmark's bar)
writes plain lines when stderr is not a terminal (pytest's capture is not one): no carriage
returns, no tqdm bar.
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import torch

from medactive.progress import PlainProgress, progress, progress_bar, stage

TQDM_MARKS = ("\r", "█", "%|", "it/s]")


def _plain(text: str) -> bool:
    return not any(mark in text for mark in TQDM_MARKS)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    bar = progress_bar(4, desc="scoring the pool", unit="image", stream=out, interval=0)
    assert isinstance(bar, PlainProgress)
    bar.update(2)
    bar.write("a message between updates", file=out)
    bar.update(2)
    bar.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("scoring the pool: 2/4 (50%) images, elapsed 00:00, ETA 00:00")
    assert lines[1] == "a message between updates"
    assert lines[-1].startswith("scoring the pool: 4/4 (100%) images")
    assert _plain(out.getvalue())


def test_plain_lines_are_spaced_by_the_interval():
    out = io.StringIO()
    for _ in progress(range(50), desc="train", stream=out, interval=3600):
        pass
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[-1]]  # the last only
    assert out.getvalue().startswith("train: 50/50 (100%)")


def test_a_bar_on_a_terminal_and_silence_when_disabled():
    from tqdm import tqdm

    term = _Terminal()
    bar = progress_bar(3, desc="train", stream=term)
    assert isinstance(bar, tqdm)
    bar.write("between", file=term)  # tqdm's write keeps the bar intact
    bar.close()
    assert "between\n" in term.getvalue()
    quiet, messages = io.StringIO(), io.StringIO()
    bar = progress_bar(3, desc="train", stream=quiet, enabled=False)
    bar.update(3)
    bar.write("a message is not progress", file=messages)
    bar.close()
    stage("loading", enabled=False, stream=quiet)
    assert quiet.getvalue() == "" and messages.getvalue() == "a message is not progress\n"


def _toy_split(n=24):
    from medactive.data.pool import Split

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (n, 8, 8, 1)).astype(np.uint8)
    return Split(np.array([f"t{i}" for i in range(n)]), images, rng.integers(0, 2, n))


def test_classifier_training_writes_plain_lines(capsys):
    from medactive.tasks.classification import get_preset
    from medactive.tasks.classification.train import fit_classifier

    split = _toy_split()
    fit_classifier(split, np.arange(len(split)), split.labels,
                   config=get_preset("smoke", epochs=2), n_classes=2, in_channels=1, seed=0,
                   progress=True)
    err = capsys.readouterr().err
    assert "train (24 labels): 2/2 (100%) epochs" in err and _plain(err)


def test_pool_scoring_reports_progress(capsys):
    from medactive.data.pool import Dataset
    from medactive.tasks.classification import get_preset
    from medactive.tasks.classification.task import ClassificationTask

    split = _toy_split()
    dataset = Dataset(name="toy", classes=["a", "b"], train=split, val=_toy_split(6),
                      test=_toy_split(6), in_channels=1)
    # batches of 4: a bar only when the images take more than one batch
    task = ClassificationTask(dataset, get_preset("smoke", epochs=1, inference_batch_size=4),
                              progress=True)
    model = task.fit(np.arange(8), task.pool_labels(np.arange(8)), seed=0)
    capsys.readouterr()
    task.predictions(model, seed=0).get("probas", np.arange(8, 24))
    err = capsys.readouterr().err
    assert "scoring the pool (probabilities): 16/16 (100%) images" in err and _plain(err)
    task.predictions(model, seed=0).get("mc_probas", np.arange(8, 24))
    err = capsys.readouterr().err
    assert "scoring the pool (MC dropout): 16/16 (100%) images" in err and _plain(err)
    task.predictions(model, seed=0).get("probas", np.arange(8, 12))  # one batch: no line
    assert "scoring the pool" not in capsys.readouterr().err


def test_segmentation_training_writes_plain_lines(capsys):
    from medactive.tasks.segmentation.presets import SMOKE
    from medactive.tasks.segmentation.train import train_unet
    from medactive.tasks.segmentation.unet import UNet2D

    preset = dataclasses.replace(SMOKE, iterations=3, val_every=10, batch_size=2)
    torch.manual_seed(0)
    images = torch.rand(3, 1, 32, 32)
    train_unet(UNet2D(1, 2, channels=preset.channels), images, (images[:, 0] > 0.5).long(),
               preset, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "train (3 slices): 3/3 (100%) steps" in err and _plain(err)


def test_segmentation_loading_writes_plain_lines(capsys):
    from medactive.tasks.segmentation import task as seg_task

    items = seg_task._progress_items(list(range(5)), True, "loading pool slices", "slice")
    assert list(items) == list(range(5))
    err = capsys.readouterr().err
    assert "loading pool slices: 5/5 (100%) slices" in err and _plain(err)


def test_bench_bar_writes_plain_lines_into_a_log(tmp_path, capsys):
    from medactive.cli import main
    from tests.bench.fake_backend import fake_toml

    config = tmp_path / "grid.toml"
    config.write_text(fake_toml(name="fake-progress", rounds=2))
    assert main(["bench", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    captured = capsys.readouterr()
    assert "rounds" in captured.err and _plain(captured.err) and _plain(captured.out)
