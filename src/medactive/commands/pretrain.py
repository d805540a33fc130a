"""``medactive pretrain``: a self-supervised pool encoder, written to one file."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from medactive.errors import ConfigError


def add_parsers(subparsers) -> None:
    from medactive.encoders.pretrain import DEFAULT_MODEL, DEFAULT_WIDTH, MEDICAL_SSL
    from medactive.encoders.simclr import SSL_METHODS

    p = subparsers.add_parser(
        "pretrain", help="self-supervised encoder on a pool's images (SimCLR, SimSiam), with "
        "its quality",
        description="Pretrain an encoder on the train split's images without their labels "
        "(SimCLR, Chen et al. 2020, or SimSiam, Chen and He 2021; survey §4.2), then print and "
        "store its quality: kNN "
        "accuracy (k = 20, cosine) and linear-probe accuracy on val and test, fitted on every "
        "train label (read only for this report). The file is used by `medactive run "
        "--encoder FILE`, bench grids (encoder = ...) and `project init --encoder`. Resumable: "
        "a killed pretraining rerun with the same command continues after its last epoch "
        "(state in OUT.partial) and ends with the same weights.")
    p.add_argument("--data", required=True, help="dataset (as `medactive run --data`)")
    p.add_argument("--out", required=True, help="encoder file to write (e.g. blood-simclr.pt)")
    p.add_argument("--method", default="simclr", choices=list(SSL_METHODS),
                   help="self-supervised method: simclr (default; contrastive, NT-Xent over "
                   "the batch's other images) or simsiam (negative cosine with stop-gradient "
                   "and a predictor; no negatives, no momentum encoder)")
    p.add_argument("--epochs", type=int, default=MEDICAL_SSL.epochs,
                   help=f"passes over the pool (default {MEDICAL_SSL.epochs})")
    p.add_argument("--model", default=DEFAULT_MODEL, choices=["smallcnn", "resnet18"],
                   help=f"backbone (default {DEFAULT_MODEL})")
    p.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                   help=f"backbone width (default {DEFAULT_WIDTH}: smallcnn gives 8 x width "
                   "features)")
    p.add_argument("--batch-size", type=int, default=MEDICAL_SSL.batch_size,
                   help=f"images per batch, two views each (default {MEDICAL_SSL.batch_size})")
    p.add_argument("--temperature", type=float, default=None,
                   help=f"simclr: NT-Xent temperature (default {MEDICAL_SSL.temperature})")
    p.add_argument("--lr", type=float, default=MEDICAL_SSL.lr,
                   help=f"Adam learning rate, cosine decay (default {MEDICAL_SSL.lr})")
    p.add_argument("--augment", default="medical", choices=["medical", "standard"],
                   help="medical (default): any rotation, both flips, colour distortion for "
                   "RGB; standard: ±15° rotation and horizontal flips only")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--labels", default=None, help="labels CSV for an image folder")
    p.add_argument("--classes", default=None, metavar="A,B,...",
                   help="an image folder's classes, as `medactive run --classes` (needed when "
                   "a class has fewer than 5 labelled images)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an OUT that holds an encoder of other settings")
    p.set_defaults(func=cmd_pretrain)


def ssl_from_args(args):
    """The :class:`SSLConfig` the flags ask for (validated)."""
    from medactive.encoders.pretrain import MEDICAL_SSL
    from medactive.encoders.simclr import SSLConfig

    base = MEDICAL_SSL.to_dict()
    if args.augment == "standard":
        defaults = SSLConfig().to_dict()
        for key in ("crop_min", "max_rotation", "vertical_flip", "jitter", "saturation",
                    "grayscale"):
            base[key] = defaults[key]
    base.update(method=args.method, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    if args.temperature is not None:
        base["temperature"] = args.temperature
    return SSLConfig.from_dict(base, source="pretrain")


def format_quality(quality: dict | None) -> str:
    if not quality:
        return "quality: not measured (no labels)"
    parts = []
    for name, label in (("knn", f"kNN (k={int(quality.get('k', 20))})"),
                        ("linear", "linear probe")):
        values = [f"{split} {quality[f'{name}_{split}']:.4f}" for split in ("val", "test")
                  if f"{name}_{split}" in quality]
        if values:
            parts.append(f"{label}: " + ", ".join(values))
    return "; ".join(parts)


def cmd_pretrain(args) -> int:
    from medactive.commands.run import _set_threads
    from medactive.data.classification import load_classification_data
    from medactive.encoders import pretrain_encoder, read_encoder_file
    from medactive.encoders.pretrain import encoder_key
    from medactive.errors import DataError
    from medactive.tasks.classification.task import resolve_device

    for key in ("epochs", "width", "batch_size"):
        if getattr(args, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be positive, got "
                              f"{getattr(args, key)}")
    ssl = ssl_from_args(args)
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the encoder file's path")
    _set_threads(args.threads)
    device = resolve_device(args.device)
    from medactive.commands.run import parse_classes

    classes = parse_classes(args.classes)
    dataset = load_classification_data(args.data, labels=args.labels,
                                       **({"classes": classes} if classes else {}))
    if out.is_file() and not args.overwrite:
        try:
            stored = read_encoder_file(out)["key"]
        except DataError as exc:
            raise ConfigError(f"{exc}; --overwrite replaces it") from None
        import json

        wanted = json.loads(json.dumps(encoder_key(dataset, ssl=ssl, model=args.model,
                                                   width=args.width, seed=args.seed),
                                       sort_keys=True, default=str))
        if stored != wanted:
            raise ConfigError(f"{out} holds an encoder of other settings; --overwrite "
                              "replaces it, or choose another --out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create its folder ({exc.strerror})") from None
    print(f"pretraining {args.method} ({args.model}, width {args.width}) on {len(dataset.train)} "
          f"images of {dataset.name}, {ssl.epochs} epochs", file=sys.stderr)
    start = time.perf_counter()
    record = pretrain_encoder(dataset, out, ssl=ssl, model=args.model, width=args.width,
                              seed=args.seed, device=device, progress=True)
    print(f"encoder: {out} ({record['seconds']:.0f} s of pretraining; "
          f"{time.perf_counter() - start:.0f} s in this command)")
    print(format_quality(record.get("quality")))
    return 0
