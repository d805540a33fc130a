"""``medactive pretrain``: the encoder file, its quality, reuse, and resuming after SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from medactive.cli import main
from medactive.data.classification import load_classification_data
from medactive.encoders import load_encoder, pretrain_encoder, read_encoder_file
from medactive.encoders.simclr import SSLConfig

from .conftest import two_kind_arrays

TINY = SSLConfig(epochs=2, batch_size=16, projection_dim=8, max_rotation=180.0,
                 vertical_flip=True)


def test_pretrain_writes_a_loadable_encoder_with_quality(two_kind_npz, tmp_path):
    dataset = load_classification_data(two_kind_npz)
    out = tmp_path / "enc.pt"
    record = pretrain_encoder(dataset, out, ssl=TINY, model="smallcnn", width=4, seed=0)
    stored = read_encoder_file(out)
    assert stored["key"] == record["key"]
    assert stored["key"]["pool"]["ids"].startswith("96:")
    assert stored["key"]["ssl"]["max_rotation"] == 180.0
    assert set(stored["quality"]) == {"k", "knn_val", "knn_test", "linear_val", "linear_test"}
    # the two kinds differ in which half is bright: even a 2-epoch encoder separates them
    assert stored["quality"]["linear_test"] >= 0.9
    assert not (tmp_path / "enc.pt.partial").exists()
    encoder = load_encoder(str(out), in_channels=1)
    emb = encoder.embed(dataset.test)
    assert emb.shape == (32, 32) and emb.dtype == np.float32
    # the same settings again: the file is reused, not retrained
    mtime = out.stat().st_mtime_ns
    again = pretrain_encoder(dataset, out, ssl=TINY, model="smallcnn", width=4, seed=0)
    assert out.stat().st_mtime_ns == mtime
    for k, v in again["state"].items():
        assert torch.equal(v, record["state"][k])


def test_pretrain_is_reproducible_per_seed(two_kind_npz, tmp_path):
    dataset = load_classification_data(two_kind_npz)
    a = pretrain_encoder(dataset, tmp_path / "a.pt", ssl=TINY, width=4, seed=3, measure=False)
    b = pretrain_encoder(dataset, tmp_path / "b.pt", ssl=TINY, width=4, seed=3, measure=False)
    c = pretrain_encoder(dataset, tmp_path / "c.pt", ssl=TINY, width=4, seed=4, measure=False)
    first = next(iter(a["state"]))
    assert torch.equal(a["state"][first], b["state"][first])
    assert not torch.equal(a["state"][first], c["state"][first])


def _command(data: Path, out: Path, method: str = "simclr") -> list[str]:
    return [sys.executable, "-m", "medactive", "pretrain", "--data", str(data), "--out",
            str(out), "--method", method, "--epochs", "8", "--width", "8", "--batch-size",
            "16", "--threads", "1", "--device", "cpu"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["simclr", "simsiam"])
def test_pretraining_resumes_after_sigkill_to_the_same_weights(tmp_path, method):
    data = tmp_path / "pool.npz"
    np.savez(data, **two_kind_arrays(n_train=320, size=28))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # uninterrupted reference
    reference = tmp_path / "reference.pt"
    subprocess.run(_command(data, reference, method), check=True, env=env, capture_output=True)
    # killed as soon as a first epoch is checkpointed, then rerun with the same command
    out = tmp_path / "resumed.pt"
    partial = tmp_path / "resumed.pt.partial"
    proc = subprocess.Popen(_command(data, out, method), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not partial.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "the pretraining finished before it could be killed"
    killed_after = torch.load(partial, weights_only=True)["epoch"]
    assert killed_after < 7
    done = subprocess.run(_command(data, out, method), check=False, env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    assert not partial.exists()
    want, got = read_encoder_file(reference), read_encoder_file(out)
    assert got["key"] == want["key"] and got["key"]["method"] == method
    for name, tensor in want["state"].items():
        assert torch.equal(got["state"][name], tensor), name
    assert got["quality"] == want["quality"]


def test_cli_prints_quality_and_refuses_other_settings(two_kind_npz, tmp_path, capsys):
    out = tmp_path / "enc.pt"
    args = ["pretrain", "--data", str(two_kind_npz), "--out", str(out), "--epochs", "1",
            "--width", "4", "--batch-size", "16", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "kNN (k=20): val" in printed and "linear probe: val" in printed
    assert main(args[:-4] + ["--width", "8", "--device", "cpu"]) == 2
    assert "holds an encoder of other settings" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(two_kind_npz), "--out", str(tmp_path),
                 "--epochs", "1"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["pretrain", "--data", str(two_kind_npz), "--out", str(out),
                 "--epochs", "0"]) == 2
    assert "--epochs must be positive" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_takes_classes_for_a_folder_with_a_rare_class(tmp_path, capsys):
    from tests.cli.test_run import _label_folder

    data = _label_folder(tmp_path / "imgs", ["benign", "malignant"] * 9 + ["rare"] * 3)
    base = ["pretrain", "--data", str(data), "--epochs", "1", "--width", "4",
            "--batch-size", "16"]
    assert main([*base, "--out", str(tmp_path / "a.pt")]) == 2
    assert "rare" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "b.pt"),
                 "--classes", "benign,malignant,rare"]) == 0
    assert (tmp_path / "b.pt").exists()
