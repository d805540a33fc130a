"""Images per second of pool inference, as a round scores the pool (issue 16, part 5).

Two networks, as the CPU presets build them: the classifier of ``medactive bench --config
cpu-blood`` (``smallcnn`` width 16, dropout 0.3, 25 MC passes) on BloodMNIST's 28 px training
images (``--data``; synthetic uint8 images of the same shape where the file is missing), and
the U-Net of ``cpu-acdc`` (channels 8–128, 64×64 slices, 4 classes, 8 MC passes) on synthetic
slices. Both run through the library's own scoring functions:

- classifier ``probas+embeddings``: :func:`medactive.tasks.classification.train.predict` with
  ``with_features=True`` (one pass gives both fields, as ``ClassificationTask.predictions``);
  ``mc``: :func:`~medactive.tasks.classification.train.predict_mc` (backbone once, head ``t``
  times with per-sample masks);
- U-Net ``probas`` / ``mc``: :class:`~medactive.tasks.segmentation.predictions.SegmentationPredictions`
  ``.score`` (pixel entropy / BALD reduced per slice, streamed) and ``embeddings``: its
  ``.get("embeddings", ...)``.

Variants, each against the same inputs, alternated within every repeat (medians reported):
``before`` (the default before issue 16: no batch-norm folding, ``torch.no_grad``, contiguous
memory, the preset's batch size, 1 thread as ``medactive bench`` runs), ``default`` (what the
library does now: the classifier's pool passes fold batch norm, the U-Net's deterministic
passes run channels-last), and one knob at a time off ``before``: ``inference_mode``,
``channels_last``, ``batch=B``, ``threads=2``, ``fold`` (batch norm folded into the
convolutions, :func:`medactive.inference.fold_batch_norm`), ``onnxruntime`` (the same
``predict`` loop with the backbone / U-Net run by ONNX Runtime; only where ``onnxruntime`` and
``onnx`` import; its export and session set-up, once per model and round, is reported apart).
Every variant's set-up (copies, folding) is inside its timing, as in a round.

CSV on standard output: ``model,step,variant,n,batch_size,threads,images_per_s,seconds,
max_abs_diff,setup_s`` (``max_abs_diff``: largest difference of the step's output from
``before``'s). Ratios of images/s to ``before`` on standard error.

    .venv/bin/python benchmarks/inference_speed.py                 # about 8 minutes, 2 busy cores
    .venv/bin/python benchmarks/inference_speed.py --only unet --n-seg 512 --repeats 5
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import importlib.util
import io
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from medactive.data.pool import Split
from medactive.data.tensors import load_images, normalise_batch
from medactive.inference import fold_batch_norm
from medactive.scoring import bald, entropy
from medactive.tasks.classification import get_preset
from medactive.tasks.classification.model import build_classifier
from medactive.tasks.classification.train import predict, predict_mc
from medactive.tasks.segmentation.predictions import SegmentationPredictions
from medactive.tasks.segmentation.presets import get_preset as get_segmentation_preset
from medactive.tasks.segmentation.unet import UNet2D

ROOT = Path(__file__).resolve().parents[1]
BLOOD = ROOT.parent / "shared" / "data" / "medmnist" / "bloodmnist.npz"
FIELDS = ["model", "step", "variant", "n", "batch_size", "threads", "images_per_s", "seconds",
          "max_abs_diff", "setup_s"]


@dataclass(frozen=True)
class Variant:
    name: str
    batch_size: int
    threads: int = 1
    fold: bool = False
    inference_mode: bool = False
    channels_last: bool = False
    onnx: bool = False


def variants(preset_batch: int, batch_sizes: list[int], onnx: bool, **default
             ) -> list[Variant]:
    """``before``, the library's ``default`` (``before`` with the knobs ``default`` turns on)
    and one knob at a time off ``before``."""
    before = Variant("before", preset_batch)
    out = [before, replace(before, name="default", **default),
           replace(before, name="inference_mode", inference_mode=True),
           replace(before, name="channels_last", channels_last=True),
           replace(before, name="threads=2", threads=2),
           replace(before, name="fold", fold=True),
           replace(before, name="fold+threads=2", fold=True, threads=2)]
    out += [replace(before, name=f"batch={b}", batch_size=b) for b in batch_sizes
            if b != preset_batch]
    if onnx:
        out.append(replace(before, name="onnxruntime", onnx=True))
    return out


def randomise_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Running statistics and affine parameters away from the identity, as after training."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
                n = bn.num_features
                bn.running_mean.copy_(0.2 * torch.randn(n, generator=gen))
                bn.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                bn.weight.copy_(0.5 + torch.rand(n, generator=gen))
                bn.bias.copy_(0.2 * torch.randn(n, generator=gen))
    return model.eval()


# ---------------------------------------------------------------- ONNX Runtime
def onnx_session(module: torch.nn.Module, example: torch.Tensor, threads: int):
    """An ONNX Runtime session of ``module`` (dynamic batch axis), built in memory."""
    import onnxruntime as ort

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (example,), buffer, dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}})
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


def onnx_predict(session, model, split, idx, batch_size, *, mc_samples=None, seed=0):
    """``predict`` / ``predict_mc``'s loop with the backbone run by ONNX Runtime."""
    from medactive.tasks.classification.model import mc_row_seeds

    probas, feats = [], []
    for start in range(0, len(idx), batch_size):
        rows = idx[start:start + batch_size]
        x = normalise_batch(load_images(split, rows, None)).numpy()
        h = torch.from_numpy(session.run(None, {"x": x})[0])
        with torch.no_grad():
            if mc_samples is None:
                probas.append(model.probas(model.fc(h)).double().numpy())
                feats.append(h.numpy())
            else:
                probas.append(model.mc_head(h, mc_samples, row_seeds=mc_row_seeds(seed, rows))
                              .double().numpy())
    return np.concatenate(probas) if mc_samples is not None else (np.concatenate(probas),
                                                                   np.concatenate(feats))


# ---------------------------------------------------------------- the steps
def classification_steps(model, split, n_mc: int, onnx: dict) -> dict[str, Callable]:
    idx = np.arange(len(split))

    def probas(v: Variant):
        if v.onnx:
            p, f = onnx_predict(onnx["cls"], model, split, idx, v.batch_size)
        else:
            p, f = predict(model, split, idx, image_size=None, batch_size=v.batch_size,
                           with_features=True, fold_norms=v.fold)
        return np.concatenate([p, f], axis=1)

    def mc(v: Variant):
        if v.onnx:
            return onnx_predict(onnx["cls"], model, split, idx, v.batch_size, mc_samples=n_mc)
        return predict_mc(model, split, idx, n_samples=n_mc, seed=0, image_size=None,
                          batch_size=v.batch_size, fold_norms=v.fold)

    return {"probas+embeddings": probas, "mc": mc}


def segmentation_steps(net, images, n_mc: int, n_mc_slices: int, onnx: dict
                       ) -> dict[str, Callable]:
    idx = np.arange(images.shape[0])

    def preds(v: Variant) -> SegmentationPredictions:
        # the library's knob is channels_last; a folded net serves the deterministic passes
        return SegmentationPredictions(fold_batch_norm(net) if v.fold else net, images, seed=0,
                                       batch_size=v.batch_size, n_mc_samples=n_mc,
                                       channels_last=v.channels_last)

    def probas(v: Variant):
        if v.onnx:
            out = []
            for start in range(0, idx.size, v.batch_size):
                x = images[start:start + v.batch_size].numpy()
                p = torch.softmax(torch.from_numpy(onnx["seg"].run(None, {"x": x})[0]), dim=1)
                out.append(entropy(p.numpy()).mean(axis=(1, 2)))
            return np.concatenate(out)
        return preds(v).score(entropy, "probas", idx)

    def embeddings(v: Variant):
        return preds(v).get("embeddings", idx)

    def mc(v: Variant):
        return preds(v).score(bald, "mc_probas", idx[:n_mc_slices])

    return {"probas": probas, "embeddings": embeddings, "mc": mc}


def timed(fn: Callable, v: Variant) -> tuple[float, np.ndarray]:
    previous = torch.get_num_threads()
    torch.set_num_threads(v.threads)
    mode = torch.inference_mode() if v.inference_mode else contextlib.nullcontext()
    try:
        with mode:
            start = time.perf_counter()
            out = fn(v)
            return time.perf_counter() - start, np.asarray(out, dtype=np.float64)
    finally:
        torch.set_num_threads(previous)


def run_model(name: str, model: torch.nn.Module, steps: dict[str, Callable],
              sizes: dict[str, int], grid: list[Variant], repeats: int,
              setup: dict[str, float]) -> list[dict]:
    seconds = {(s, v.name): [] for s in steps for v in grid}
    outputs: dict[tuple[str, str], np.ndarray] = {}
    for step, fn in steps.items():  # warm-up: first calls pay allocator and kernel set-up
        for v in grid:
            if _skip(name, step, v):
                continue
            _set_format(name, model, v)
            timed(fn, replace(v, name="warm-up"))
    for repeat in range(repeats):
        order = grid if repeat % 2 == 0 else grid[::-1]  # alternate, so drift hits all alike
        for step, fn in steps.items():
            for v in order:
                if _skip(name, step, v):
                    continue
                _set_format(name, model, v)
                s, out = timed(fn, v)
                seconds[step, v.name].append(s)
                outputs[step, v.name] = out
        print(f"[{name}] repeat {repeat + 1}/{repeats} done", file=sys.stderr)
    _set_format(name, model, grid[0])
    rows = []
    for (step, variant), values in seconds.items():
        if not values:
            continue
        v = next(g for g in grid if g.name == variant)
        med, n = statistics.median(values), sizes[step]
        ref = outputs[step, "before"]
        rows.append({"model": name, "step": step, "variant": variant, "n": n,
                     "batch_size": v.batch_size, "threads": v.threads,
                     "images_per_s": round(n / med, 1), "seconds": round(med, 4),
                     "max_abs_diff": f"{float(np.max(np.abs(outputs[step, variant] - ref))):.2e}",
                     "setup_s": round(setup.get(name, 0.0), 3) if v.onnx else ""})
    return rows


def _skip(name: str, step: str, v: Variant) -> bool:
    """ONNX Runtime serves no embeddings here, and neither it nor a folded U-Net can run the
    U-Net's MC passes (their per-sample masks act between each convolution and its norm)."""
    if v.onnx and step == "embeddings":
        return True
    return name == "unet" and step == "mc" and (v.onnx or v.fold)


def _set_format(name: str, model: torch.nn.Module, v: Variant) -> None:
    """The classifier's channels-last variant converts the model (predict has no such knob);
    the U-Net's goes through SegmentationPredictions(channels_last=...)."""
    if name == "classifier":
        model.to(memory_format=torch.channels_last if v.channels_last
                 else torch.contiguous_format)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-cls", type=int, default=4096, help="classifier pool images")
    p.add_argument("--n-seg", type=int, default=128, help="U-Net pool slices")
    p.add_argument("--n-seg-mc", type=int, default=32,
                   help="U-Net slices of the MC step (8 passes each)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--batch-sizes", default="256,1024,4096",
                   help="classifier batch sizes to try (the U-Net tries 128 and 256)")
    p.add_argument("--data", type=Path, default=BLOOD)
    p.add_argument("--no-onnx", action="store_true", help="skip ONNX Runtime")
    p.add_argument("--only", choices=["classifier", "unet"], default=None)
    args = p.parse_args(argv)
    torch.manual_seed(0)
    installed = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
    use_onnx = installed and not args.no_onnx
    if not installed:
        print("onnxruntime / onnx not installed: ONNX Runtime not measured", file=sys.stderr)

    rows: list[dict] = []
    if args.only in (None, "classifier"):
        cfg = get_preset("cpu")
        if args.data.is_file():
            images = np.load(args.data)["train_images"][:args.n_cls]
            source = str(args.data)
        else:
            images = np.random.default_rng(0).integers(0, 256, (args.n_cls, 28, 28, 3),
                                                       dtype=np.uint8)
            source = "synthetic"
        print(f"classifier: {cfg.model} width {cfg.width} on {len(images)} images "
              f"{images.shape[1:]} from {source}", file=sys.stderr)
        split = Split(np.array([str(i) for i in range(len(images))]), images)
        model = randomise_norms(build_classifier(cfg.model, in_channels=3, n_classes=8,
                                                 width=cfg.width, dropout=cfg.dropout))
        onnx, setup = {}, {}
        if use_onnx:
            start = time.perf_counter()
            onnx["cls"] = onnx_session(model.backbone, torch.zeros(2, 3, 28, 28), threads=1)
            setup["classifier"] = time.perf_counter() - start
        grid = variants(cfg.inference_batch_size,
                        [int(b) for b in args.batch_sizes.split(",")], use_onnx, fold=True)
        rows += run_model("classifier", model,
                          classification_steps(model, split, cfg.n_mc_samples, onnx),
                          {"probas+embeddings": len(images), "mc": len(images)}, grid,
                          args.repeats, setup)
    if args.only in (None, "unet"):
        preset = get_segmentation_preset("cpu")
        net = randomise_norms(UNet2D(1, 4, channels=preset.channels, dropout=preset.dropout))
        size = preset.image_size
        images = torch.rand(args.n_seg, 1, size, size, generator=torch.Generator().manual_seed(0))
        onnx, setup = {}, {}
        if use_onnx:
            start = time.perf_counter()
            onnx["seg"] = onnx_session(net, torch.zeros(2, 1, size, size), threads=1)
            setup["unet"] = time.perf_counter() - start
        grid = [v for v in variants(preset.predict_batch_size, [128, 256], use_onnx,
                                    channels_last=True) if v.name != "fold+threads=2"]
        n_mc = min(args.n_seg_mc, args.n_seg)
        rows += run_model("unet", net,
                          segmentation_steps(net, images, preset.n_mc_samples, n_mc, onnx),
                          {"probas": args.n_seg, "embeddings": args.n_seg, "mc": n_mc}, grid,
                          args.repeats, setup)

    writer = csv.DictWriter(sys.stdout, fieldnames=FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    base = {(r["model"], r["step"]): r["images_per_s"] for r in rows if r["variant"] == "before"}
    for r in rows:
        ratio = r["images_per_s"] / base[r["model"], r["step"]]
        print(f"{r['model']:<10} {r['step']:<18} {r['variant']:<16} {r['images_per_s']:>9.1f} "
              f"images/s  {ratio:5.2f}x before  (max |diff| {r['max_abs_diff']})",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
