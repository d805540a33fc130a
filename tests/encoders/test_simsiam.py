"""SimSiam: the negative cosine with stop-gradient by hand, its settings, a tiny pretraining,
and the method accepted wherever an encoder table is."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from medactive.cli import main
from medactive.data.classification import load_classification_data
from medactive.encoders import load_encoder, pretrain_encoder, read_encoder_file
from medactive.encoders.simclr import SSLConfig, pretrain_ssl
from medactive.encoders.simsiam import SimSiamHead, negative_cosine, simsiam_loss
from medactive.errors import ConfigError

from .test_simclr import _two_kinds

E1, E2 = [1.0, 0.0], [0.0, 1.0]


def test_negative_cosine_by_hand():
    z = torch.tensor([E1, E2])
    assert negative_cosine(z, z).item() == pytest.approx(-1.0)        # identical: -1
    assert negative_cosine(3 * z, z).item() == pytest.approx(-1.0)    # scale does not matter
    assert negative_cosine(-z, z).item() == pytest.approx(1.0)        # opposite: +1
    assert negative_cosine(z.flip(1), z).item() == pytest.approx(0.0)  # orthogonal: 0
    # rows (1, 1)/sqrt2 against e1: cos = 1/sqrt2 for both rows
    assert negative_cosine(torch.ones(2, 2), z).item() == pytest.approx(-2 ** -0.5)
    with pytest.raises(ValueError, match="same"):
        negative_cosine(torch.zeros(2, 3), torch.zeros(3, 3))


def test_symmetric_loss_stops_the_gradient_at_the_targets():
    p1 = torch.tensor([E1, E2], requires_grad=True)
    p2 = torch.tensor([E2, E1], requires_grad=True)
    z1 = torch.tensor([E1, E2], requires_grad=True)
    z2 = torch.tensor([E1, E2], requires_grad=True)
    # D(p1, z2) = -1 (identical), D(p2, z1) = 0 (orthogonal): loss = (-1 + 0) / 2
    loss = simsiam_loss(p1, p2, z1, z2)
    assert loss.item() == pytest.approx(-0.5)
    loss.backward()
    assert z1.grad is None and z2.grad is None  # stop-gradient: targets get none
    assert p1.grad is not None and p2.grad is not None
    # p2 is orthogonal to its target: moving it towards z1 lowers the loss
    assert float((p2.grad * z1.detach()).sum()) < 0


def test_head_gradient_reaches_the_projector_only_through_the_predictor():
    torch.manual_seed(0)
    head = SimSiamHead(8, 6, 3)
    h = torch.randn(10, 8, requires_grad=True)
    assert all(t.shape == (10, 6) for t in head(h))
    # with the predictor's output weights at zero no gradient can pass back through it, and
    # the targets z pass none either (stop-gradient): nothing reaches projector or input
    with torch.no_grad():
        head.predictor[-1].weight.zero_()
    z, p = head(h)
    simsiam_loss(p[:5], p[5:], z[:5], z[5:]).backward()
    assert all(param.grad is None or not param.grad.any()
               for param in head.projector.parameters())
    assert h.grad is None or not h.grad.any()


def test_settings_of_each_method_and_the_unchanged_simclr_key():
    simclr = SSLConfig().to_dict()
    # the SimCLR key is what it was before SimSiam existed (encoder files keep their names)
    assert set(simclr) == {"method", "epochs", "batch_size", "lr", "weight_decay",
                           "temperature", "projection_dim", "crop_min", "max_rotation",
                           "vertical_flip", "jitter", "saturation", "grayscale"}
    simsiam = SSLConfig.from_dict({"method": "simsiam", "projection_dim": 128}).to_dict()
    assert simsiam["method"] == "simsiam" and simsiam["predictor_dim"] == 32  # 4x bottleneck
    assert "temperature" not in simsiam
    assert SSLConfig.from_dict({"method": "simsiam", "predictor_dim": 8}).predictor_dim == 8
    # a setting of the other method, given at a value that would matter, is refused
    with pytest.raises(ConfigError, match="temperature is a simclr setting"):
        SSLConfig.from_dict({"method": "simsiam", "temperature": 0.2})
    with pytest.raises(ConfigError, match="predictor_dim is a simsiam setting"):
        SSLConfig.from_dict({"method": "simclr", "predictor_dim": 8})
    with pytest.raises(ConfigError, match="predictor_dim must be a positive integer"):
        SSLConfig.from_dict({"method": "simsiam", "predictor_dim": 0})
    with pytest.raises(ConfigError, match="unknown method 'byol'; choose one of simclr, simsiam"):
        SSLConfig.from_dict({"method": "byol"})


@pytest.mark.slow
def test_tiny_simsiam_pretraining_lowers_loss_and_is_seeded():
    split, _ = _two_kinds()
    losses: list[float] = []
    config = SSLConfig(method="simsiam", epochs=6, batch_size=16, lr=3e-3, projection_dim=16)
    state = pretrain_ssl(split, config=config, model="smallcnn", in_channels=1, width=8,
                         seed=0, on_epoch=lambda epoch, loss: losses.append(loss))
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert all(-1.0 <= loss <= 1.0 for loss in losses)  # a mean of negative cosines
    again = pretrain_ssl(split, config=config, model="smallcnn", in_channels=1, width=8, seed=0)
    assert all(torch.equal(state[k], again[k]) for k in state)
    simclr = pretrain_ssl(split, config=replace(config, method="simclr", predictor_dim=None),
                          model="smallcnn", in_channels=1, width=8, seed=0)
    assert set(simclr) == set(state)  # the same backbone, only the objective differs
    assert not torch.equal(simclr["body.0.weight"], state["body.0.weight"])


@pytest.mark.slow
def test_simsiam_encoder_file_end_to_end(two_kind_npz, tmp_path, capsys):
    out = tmp_path / "enc.pt"
    assert main(["pretrain", "--data", str(two_kind_npz), "--out", str(out), "--method",
                 "simsiam", "--epochs", "2", "--width", "4", "--batch-size", "16",
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr()
    assert "pretraining simsiam" in printed.err
    assert "kNN (k=20): val" in printed.out and "linear probe: val" in printed.out
    stored = read_encoder_file(out)
    assert stored["key"]["method"] == "simsiam" == stored["key"]["ssl"]["method"]
    assert stored["key"]["ssl"]["predictor_dim"] == 32  # medical projection_dim 128 / 4
    assert set(stored["quality"]) == {"k", "knn_val", "knn_test", "linear_val", "linear_test"}
    encoder = load_encoder(str(out), in_channels=1)
    assert encoder.embed(load_classification_data(two_kind_npz).test).shape == (32, 32)
    # a SimCLR encoder of otherwise the same settings is another file's content
    dataset = load_classification_data(two_kind_npz)
    simclr = pretrain_encoder(dataset, tmp_path / "simclr.pt", width=4, seed=0, measure=False,
                              ssl=SSLConfig(epochs=2, batch_size=16))
    assert simclr["key"]["method"] == "simclr" and simclr["key"] != stored["key"]
    # --temperature has no meaning for SimSiam: one line, not a silent default
    assert main(["pretrain", "--data", str(two_kind_npz), "--out", str(tmp_path / "t.pt"),
                 "--method", "simsiam", "--temperature", "0.2", "--epochs", "1"]) == 2
    assert "temperature is a simclr setting" in capsys.readouterr().err
    assert not (tmp_path / "t.pt").exists()


def test_bad_method_is_one_clear_line(two_kind_npz, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["pretrain", "--data", str(two_kind_npz), "--out", str(tmp_path / "e.pt"),
              "--method", "byol"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --method: invalid choice: 'byol' (choose from simclr, simsiam)" in err \
        or "argument --method: invalid choice: 'byol' (choose from 'simclr', 'simsiam')" in err
    assert "Traceback" not in err
    assert not (tmp_path / "e.pt").exists()


def test_grid_encoder_tables_take_simsiam():
    from tests.bench.test_engine_grid import TABLE, _grid

    grid = _grid(encoder={**TABLE, "method": "simsiam"}, train_mode="frozen")
    table = grid.encoder_table("fake")
    assert table["method"] == "simsiam" and table["predictor_dim"] == 32
    assert "temperature" not in table
    simclr = _grid(encoder=dict(TABLE), train_mode="frozen")
    assert grid.encoder_file("fake") != simclr.encoder_file("fake")
    with pytest.raises(ConfigError, match="unknown method 'byol'"):
        _grid(encoder={**TABLE, "method": "byol"}, train_mode="frozen").encoder_table("fake")
