"""External timm encoders from a local weights file, with the network unreachable.

timm needs torchvision, which on this project's machines imports only beside torch 2.14.1;
``scripts/setup-timm.sh`` makes ``.venv-timm`` for it and ``scripts/test.sh`` runs this file
there. In an environment without timm the tests skip, saying so.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm", reason="timm is not installed here (scripts/setup-timm.sh "
                           "makes .venv-timm, where scripts/test.sh runs these tests)")

from medactive.data.pool import Split
from medactive.encoders import load_encoder
from medactive.errors import ConfigError, DataError


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _split(n=5, channels=1, size=12):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(n, size, size, channels), dtype=np.uint8)
    return Split(ids=np.array([f"s{i}" for i in range(n)]), images=images)


@pytest.mark.parametrize("name", ["test_resnet", "test_vit"])
def test_local_checkpoint_loads_offline_and_gives_its_features(name, tmp_path, offline):
    torch.manual_seed(0)
    source = timm.create_model(name, pretrained=False, num_classes=3)  # a tiny random model
    path = tmp_path / f"{name}.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    encoder = load_encoder(f"timm:{name}", weights=str(path), in_channels=1)
    assert encoder.name == f"timm:{name}"
    split = _split()
    feats = encoder.embed(split)
    assert feats.shape == (5, source.num_features)
    # the same weights through timm directly, on images prepared as the adapter documents
    size = encoder.info["image_size"]
    cfg = source.pretrained_cfg
    x = torch.from_numpy(split.images).permute(0, 3, 1, 2).float() / 255
    x = torch.nn.functional.interpolate(x.expand(-1, 3, -1, -1), size=(size, size),
                                        mode="bilinear", align_corners=False, antialias=True)
    x = (x - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    source.reset_classifier(0)
    with torch.no_grad():
        want = source.eval()(x).numpy()
    assert np.allclose(feats, want, atol=1e-4)
    # a different checkpoint gives a different content key (embedding caches never mix)
    torch.manual_seed(1)
    other = timm.create_model(name, pretrained=False, num_classes=0)
    torch.save(other.state_dict(), tmp_path / "other.pth")
    assert load_encoder(f"timm:{name}", weights=str(tmp_path / "other.pth"),
                        in_channels=1).key != encoder.key


def test_missing_or_mismatched_weights_are_one_line_errors(tmp_path, offline):
    with pytest.raises(ConfigError, match="needs --encoder-weights"):
        load_encoder("timm:test_resnet", in_channels=3)
    with pytest.raises(DataError, match="not found"):
        load_encoder("timm:test_resnet", weights=str(tmp_path / "none.pth"), in_channels=3)
    torch.save(timm.create_model("test_vit", num_classes=0).state_dict(), tmp_path / "vit.pth")
    with pytest.raises(DataError, match="do not fit timm:test_resnet"):
        load_encoder("timm:test_resnet", weights=str(tmp_path / "vit.pth"), in_channels=3)
    with pytest.raises(ConfigError, match="no model"):
        load_encoder("timm:no_such_net", weights=str(tmp_path / "vit.pth"), in_channels=3)
