"""Mean teacher: EMA, ramp-up, consistency loss, settings, and a smoke-sized training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import medactive.tasks.segmentation.task as task_module
from medactive.errors import ConfigError
from medactive.loop.active_loop import LoopConfig, run_active_learning
from medactive.tasks.segmentation import build_segmentation_task
from medactive.tasks.segmentation.mean_teacher import (
    MeanTeacherConfig,
    consistency_loss,
    consistency_weight,
    ema_alpha,
    ema_update,
    semi_supervised_config,
    teacher_noise,
)
from medactive.tasks.segmentation.presets import get_preset
from medactive.tasks.segmentation.train import train_unet
from medactive.tasks.segmentation.unet import UNet2D


def _tiny(weight, bias):
    net = nn.Sequential(nn.Linear(2, 1), nn.BatchNorm1d(1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([weight]))
        net[0].bias.fill_(bias)
    return net


def test_ema_update_by_hand():
    teacher, student = _tiny([1.0, 2.0], 0.0), _tiny([3.0, 4.0], 1.0)
    with torch.no_grad():
        student[1].running_mean.fill_(5.0)
    ema_update(teacher, student, 0.75)
    # 0.75 * [1, 2] + 0.25 * [3, 4] = [1.5, 2.5]; 0.75 * 0 + 0.25 * 1 = 0.25
    assert teacher[0].weight.tolist() == [[1.5, 2.5]]
    assert teacher[0].bias.tolist() == [0.25]
    assert teacher[1].running_mean.tolist() == [0.0]  # buffers are not averaged (SSL4MIS)
    assert student[0].weight.tolist() == [[3.0, 4.0]]  # the student is untouched
    ema_update(teacher, student, 0.0)  # alpha 0 copies the student
    assert teacher[0].weight.tolist() == [[3.0, 4.0]]


def test_ema_alpha_warms_up_to_the_decay():
    assert [ema_alpha(t, 0.99) for t in (1, 2, 4, 10)] == [0.0, 0.5, 0.75, 0.9]
    assert ema_alpha(100, 0.99) == 0.99 and ema_alpha(10_000, 0.99) == 0.99


def test_rampup_values():
    w = [consistency_weight(t, 10, 0.1) for t in (0, 5, 10, 20)]
    assert w == pytest.approx([0.1 * math.exp(-5), 0.1 * math.exp(-1.25), 0.1, 0.1])
    assert consistency_weight(3, 0, 0.1) == 0.1  # no ramp
    assert consistency_weight(-1, 10, 1.0) == pytest.approx(math.exp(-5))
    ws = [consistency_weight(t, 50, 1.0) for t in range(60)]
    assert bool(np.all(np.diff(ws) >= 0))  # non-decreasing


def test_consistency_loss_by_hand():
    x = torch.randn(2, 4, 3, 3)
    assert consistency_loss(x, x.clone()).item() == 0.0
    student = torch.zeros(1, 2, 1, 1, requires_grad=True)  # softmax [0.5, 0.5]
    teacher = torch.tensor([math.log(3.0), 0.0]).reshape(1, 2, 1, 1)  # softmax [0.75, 0.25]
    loss = consistency_loss(student, teacher)
    assert loss.item() == pytest.approx(0.0625)  # mean(0.25², 0.25²)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="differ in shape"):
        consistency_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 2, 2))


def test_teacher_noise_is_clipped_and_seeded():
    x = torch.zeros(4, 1, 8, 8)
    a = teacher_noise(x, 0.1, 0.2, torch.Generator().manual_seed(0))
    b = teacher_noise(x, 0.1, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(a, b) and a.abs().max() <= 0.2 and a.std() > 0.05


def test_settings_and_errors():
    cfg = MeanTeacherConfig()
    assert (cfg.ema_decay, cfg.consistency, cfg.rampup, cfg.noise_std, cfg.noise_clip) == \
        (0.99, 0.1, 1.0, 0.1, 0.2)
    assert MeanTeacherConfig.from_dict(cfg.to_dict()) == cfg
    assert semi_supervised_config(None) is None
    assert semi_supervised_config("mean-teacher", {"consistency": 1.0}).consistency == 1.0
    with pytest.raises(ConfigError, match="unknown semi-supervised method 'fixmatch'"):
        semi_supervised_config("fixmatch")
    with pytest.raises(ConfigError, match="without a semi-supervised method"):
        semi_supervised_config(None, {"consistency": 1.0})
    with pytest.raises(ConfigError, match="unknown mean-teacher option"):
        semi_supervised_config("mean-teacher", {"threshold": 0.9})
    with pytest.raises(ConfigError, match="ema_decay"):
        MeanTeacherConfig(ema_decay=1.0)
    with pytest.raises(ConfigError, match="consistency"):
        MeanTeacherConfig.from_dict({"consistency": "high"})
    with pytest.raises(ConfigError, match="unlabeled_batch_size"):
        MeanTeacherConfig(unlabeled_batch_size=0)


def _train(seed, unlabeled, mean_teacher, images, masks):
    preset = get_preset("smoke", iterations=4)
    torch.manual_seed(0)
    net = UNet2D(1, 2, channels=preset.channels)
    net, log = train_unet(net, images, masks, preset, seed=seed, unlabeled=unlabeled,
                          mean_teacher=mean_teacher)
    return net(images).detach(), log


def test_smoke_training_with_unlabeled_slices_is_reproducible():
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(3, 1, 32, 32, generator=gen)
    masks = (images[:, 0] > 0.5).long()
    unlabeled = torch.rand(5, 1, 32, 32, generator=gen)
    cfg = MeanTeacherConfig(consistency=1.0, rampup=0.0)
    a, log = _train(0, unlabeled, cfg, images, masks)
    b, _ = _train(0, unlabeled, cfg, images, masks)
    assert torch.equal(a, b) and log.iterations == 4
    assert all(np.isfinite(h[1]) for h in log.history)
    c, _ = _train(1, unlabeled, cfg, images, masks)
    assert not torch.equal(a, c)
    plain, _ = _train(0, None, None, images, masks)
    assert not torch.equal(a, plain)  # the unlabelled slices change the training
    with pytest.raises(ValueError, match="needs unlabeled slices"):
        _train(0, unlabeled[:0], cfg, images, masks)


@pytest.fixture(scope="module")
def root(tmp_path_factory, seg):
    return seg.write_h5_layout(tmp_path_factory.mktemp("mt") / "acdc", train_patients=(3, 4),
                               n_slices=3)


def _capture(monkeypatch):
    seen = []
    real = task_module.train_unet

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(task_module, "train_unet", spy)
    return seen


def test_task_trains_on_the_unlabelled_pool_slices(root, monkeypatch):
    task = build_segmentation_task(root, preset="smoke", iterations=3,
                                   semi_supervised="mean-teacher",
                                   semi_options={"consistency": 0.5})
    assert task.mean_teacher == MeanTeacherConfig(consistency=0.5)
    seen = _capture(monkeypatch)
    idx = np.array([0, 4])
    labels_before = [m.copy() for m in task.pool_labels(np.arange(len(task.pool_ids)))]
    task.fit(idx, task.pool_labels(idx), seed=0)
    rest = np.setdiff1d(np.arange(len(task.pool_ids)), idx)
    assert torch.equal(seen[-1]["unlabeled"], task._pool_images[torch.as_tensor(rest)])
    assert seen[-1]["mean_teacher"].consistency == 0.5
    after = task.pool_labels(np.arange(len(task.pool_ids)))
    assert all(np.array_equal(a, b) for a, b in zip(labels_before, after, strict=True))
    info = json.loads(json.dumps(task.describe()))["semi_supervised"]
    assert info["method"] == "mean-teacher" and info["consistency"] == 0.5
    assert "student" in info["evaluated"]


def test_region_task_uses_every_pool_slice(root, monkeypatch):
    task = build_segmentation_task(root, preset="smoke", iterations=2, region_size=16,
                                   semi_supervised="mean-teacher")
    seen = _capture(monkeypatch)
    idx = np.array([0, 5])
    task.fit(idx, task.pool_labels(idx), seed=0)
    assert seen[-1]["unlabeled"].shape[0] == len(task.base.pool_ids)
    assert (seen[-1]["mean_teacher"] is not None
            and task.describe()["semi_supervised"]["method"] == "mean-teacher")


def test_supervised_task_passes_no_unlabelled_slices(root, monkeypatch):
    task = build_segmentation_task(root, preset="smoke", iterations=2)
    seen = _capture(monkeypatch)
    task.fit(np.array([1]), task.pool_labels(np.array([1])), seed=0)
    assert seen[-1]["unlabeled"] is None and seen[-1]["mean_teacher"] is None
    assert task.describe()["semi_supervised"] is None


def test_loop_run_counts_only_oracle_labels(root):
    task = build_segmentation_task(root, preset="smoke", iterations=2,
                                   semi_supervised="mean-teacher")
    records = run_active_learning(task, LoopConfig(strategy="random_foreground", initial=2,
                                                   budget=1, rounds=1, seed=0))
    assert [r.n_labeled for r in records] == [2, 3]


def test_factory_rejects_unknown_methods(root):
    with pytest.raises(ConfigError, match="unknown semi-supervised method"):
        build_segmentation_task(root, preset="smoke", semi_supervised="fixmatch")
    with pytest.raises(ConfigError, match="unknown mean-teacher option"):
        build_segmentation_task(root, preset="smoke", semi_supervised="mean-teacher",
                                semi_options={"ema": 0.9})
