"""Encoder files, loading errors, the input adapter and the embedding cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medactive.data.classification import load_classification_data
from medactive.encoders import (
    Encoder,
    InputAdapter,
    cached_embeddings,
    load_encoder,
    save_encoder_file,
)
from medactive.encoders.base import fingerprint_ids
from medactive.errors import ConfigError, DataError
from medactive.tasks.classification.model import build_classifier


def _record(width=4, in_channels=1):
    backbone = build_classifier("smallcnn", in_channels=in_channels, n_classes=1,
                                width=width).backbone
    return {"key": {"method": "test", "width": width},
            "architecture": {"model": "smallcnn", "width": width, "in_channels": in_channels},
            "state": backbone.state_dict(), "quality": None, "seconds": 0.0}, backbone


def test_file_round_trip_gives_the_same_features(two_kind_npz, tmp_path):
    record, backbone = _record()
    save_encoder_file(tmp_path / "e.pt", record)
    encoder = load_encoder(str(tmp_path / "e.pt"), in_channels=1)
    dataset = load_classification_data(two_kind_npz)
    x = (torch.from_numpy(dataset.test.images[:4]).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        want = backbone.eval()(x).numpy()
    assert np.allclose(encoder.embed(dataset.test, np.arange(4)), want, atol=1e-6)
    fresh = encoder.fresh_backbone()
    assert fresh.training and fresh is not encoder.backbone
    assert encoder.describe()["key"] == record["key"]


def test_bad_encoder_files_get_one_clear_line(tmp_path):
    with pytest.raises(DataError, match="encoder file not found"):
        load_encoder(str(tmp_path / "nope.pt"), in_channels=1)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(DataError, match="not a readable encoder file"):
        load_encoder(str(tmp_path / "text.pt"), in_channels=1)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a medactive encoder file"):
        load_encoder(str(tmp_path / "other.pt"), in_channels=1)
    record, _ = _record(in_channels=3)
    save_encoder_file(tmp_path / "rgb.pt", record)
    with pytest.raises(ConfigError, match="3-channel"):
        load_encoder(str(tmp_path / "rgb.pt"), in_channels=1)
    with pytest.raises(ConfigError, match="--encoder-weights is for"):
        load_encoder(str(tmp_path / "rgb.pt"), weights="w.pt", in_channels=3)


def test_adapter_matches_channels_size_and_normalisation():
    adapter = InputAdapter(in_channels=1, out_channels=3, image_size=4, mean=(0.5, 0.0, 1.0),
                           std=(0.5, 1.0, 0.5))
    x = torch.zeros(1, 1, 2, 2)  # medactive-normalised 0 = grey level 0.5
    y = adapter(x)
    assert y.shape == (1, 3, 4, 4)
    assert torch.allclose(y[0, :, 0, 0], torch.tensor([0.0, 0.5, -1.0]))
    to_grey = InputAdapter(in_channels=3, out_channels=1, image_size=None, mean=(0.0,),
                           std=(1.0,))
    rgb = torch.tensor([1.0, 0.0, -1.0]).view(1, 3, 1, 1)  # levels 1, 0.5, 0 -> mean 0.5
    assert torch.allclose(to_grey(rgb), torch.tensor(0.5).view(1, 1, 1, 1))


def test_cache_computes_once_and_keys_on_encoder_and_split(two_kind_npz, tmp_path):
    dataset = load_classification_data(two_kind_npz)
    record, backbone = _record()
    calls = []

    class Counting(Encoder):
        def embed(self, split, idx=None, **kwargs):
            calls.append(len(split))
            return super().embed(split, idx, **kwargs)

    enc = Counting("test", backbone, key=record["key"])
    a = cached_embeddings(enc, dataset.train, cache_dir=tmp_path)
    b = cached_embeddings(enc, dataset.train, cache_dir=tmp_path)
    assert np.array_equal(a, b) and calls == [96]
    cached_embeddings(enc, dataset.val, cache_dir=tmp_path)
    other = Counting("test", backbone, key={**record["key"], "width": 5})
    cached_embeddings(other, dataset.train, cache_dir=tmp_path)
    assert calls == [96, 32, 96]
    assert len(list(tmp_path.glob("*.npy"))) == 3


def test_fingerprint_depends_on_ids_and_order():
    assert fingerprint_ids(["a", "b"]) != fingerprint_ids(["b", "a"])
    assert fingerprint_ids(["a", "b"]).startswith("2:")
