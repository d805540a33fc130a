"""Commands ``medactive project init|status|query|export|import|train|add-annotator|adjudicate|
report|exclude|relocate``, ``serve``."""

from __future__ import annotations

import argparse
import json
import math

from medactive.errors import ConfigError


def add_parsers(subparsers) -> None:
    project = subparsers.add_parser(
        "project", help="a labelling project: the human-in-the-loop workflow",
        description="Label your own data with active learning: create a project over a folder of "
        "images, ask for a batch, label it (in the browser with `medactive serve`, or in your "
        "own tool with export/import), repeat. State lives in DIR/project.db (SQLite).")
    sub = project.add_subparsers(dest="project_command", metavar="COMMAND")
    project.set_defaults(func=lambda args: _help(project))

    p = sub.add_parser("init", help="create a project over an image folder")
    p.add_argument("dir", help="project directory to create")
    p.add_argument("--images", required=True, help="folder of images (referenced, never copied)")
    p.add_argument("--labels", default=None, help="CSV id,label[,split] of labels known at the "
                   "start; split val/test marks evaluation samples")
    p.add_argument("--task", default="classification", choices=["classification",
                                                                 "segmentation"])
    p.add_argument("--classes", default=None,
                   help="comma-separated class names (segmentation: mask labels, background "
                   "first)")
    p.add_argument("--initial", type=int, default=None,
                   help="size of the random initial batch (default: the first --budget)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--preset", default="cpu", help="training preset: survey, cpu or smoke")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this side")
    p.add_argument("--channels", type=int, default=None, choices=[1, 3],
                   help="force grayscale (1) or RGB (3)")
    p.add_argument("--encoder", default=None, metavar="FILE|timm:NAME",
                   help="classification: start every round's model from this encoder (a "
                   "`medactive pretrain` file, or timm:NAME with --encoder-weights), as "
                   "`medactive run --encoder`")
    p.add_argument("--encoder-weights", default=None, metavar="FILE",
                   help="local weights of a timm: encoder (nothing is downloaded)")
    p.add_argument("--train-mode", default=None, choices=["finetune", "frozen"],
                   help="with --encoder: finetune it each round (default) or keep it frozen "
                   "and train a head on its cached embeddings (seconds a round)")
    p.add_argument("--ensemble-size", type=int, default=None, metavar="M",
                   help="classification: every round trains a deep ensemble of M seeded "
                   "models (as `medactive run --ensemble-size`), for --strategy "
                   "ensemble_entropy, ensemble_bald, qbc_vote_entropy, qbc_kl (default 1)")
    p.add_argument("--evidential", action="store_true",
                   help="classification: train with the evidential (Dirichlet) loss, as "
                   "`medactive run --evidential`, for --strategy evidential, "
                   "evidential_epistemic")
    p.add_argument("--learning-loss", action="store_true",
                   help="train a loss-prediction module beside each round's model, as "
                   "`medactive run --learning-loss`, for --strategy learning_loss")
    p.add_argument("--semi-supervised", default=None, choices=["fixmatch", "mean-teacher"],
                   help="every round's model also trains on the pool items not yet labelled, "
                   "as `medactive run --semi-supervised`: fixmatch (classification, finetune "
                   "or frozen mode; Sohn et al. 2020: threshold 0.95, mu 7, lambda_u 1) or "
                   "mean-teacher (segmentation; EMA teacher, consistency on unlabelled "
                   "slices). Its pseudo-targets are never stored as labels")
    p.add_argument("--semi-options", default=None, metavar="JSON",
                   help='overrides of the method\'s settings, a JSON object, e.g. '
                   '\'{"threshold": 0.9}\' (fixmatch: threshold, lambda_u, mu, n_ops, cutout, '
                   'steps_per_epoch, max_unlabeled_per_epoch; mean-teacher: ema_decay, '
                   'consistency, rampup, noise_std, noise_clip, unlabeled_batch_size)')
    p.add_argument("--region-size", type=int, default=None, metavar="P",
                   help="segmentation: label P x P patches of the slices (original pixels) "
                   "instead of whole slices")
    p.add_argument("--exclude", default=None, metavar="IDS|FILE",
                   help="leave these samples out from the start (comma-separated ids, or a "
                   "file of ids); e.g. the unreadable files init lists")
    p.add_argument("--readers", type=int, default=1, metavar="K",
                   help="double reading: offer each queried item to K different annotators "
                   "(default 1); training uses the adjudicated label, else the majority "
                   "(classes; a tie waits for `project adjudicate`) or the per-pixel vote "
                   "(masks)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("status", help="counts, rounds, the latest metrics, when to stop "
                       "(stopping signals, calibration, a recommendation) and the image files; "
                       "exit 1 when an image is missing, changed or unreadable")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true",
                   help="print everything as one JSON object (stopping signals under "
                   "'stopping')")
    p.add_argument("--verify", action="store_true",
                   help="re-hash and fully decode every image file")
    p.add_argument("--metric", default=None, metavar="NAME",
                   help="validation metric of the stopping signals (default: the one models "
                   "keep their best checkpoint by: auc for two classes, else accuracy; "
                   "segmentation dice_mean)")
    p.add_argument("--max-metric-change", type=float, default=0.005, metavar="X",
                   help="recommend stopping only when the validation metric changed by less "
                   "than X (absolute) in each of the last --stop-window rounds (default 0.005)")
    p.add_argument("--max-prediction-change", type=float, default=0.01, metavar="F",
                   help="... and less than the fraction F of the unlabelled pool's predicted "
                   "classes changed between consecutive models (default 0.01 = 1 %%)")
    p.add_argument("--stop-window", type=int, default=2, metavar="N",
                   help="how many consecutive round-to-round changes must stay below both "
                   "thresholds (default 2)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("report", help="annotation cost: labels per active hour per annotator "
                       "and the learning curve against labels and expert hours (PNG + CSV)",
                       description="Write DIR/report/ (or --out FOLDER): learning_curve.png "
                       "(the validation metric of each round's model against the labels and "
                       "against the expert's active hours), learning_curve.csv and "
                       "annotators.csv (labels per active hour, provenance, mask edits and "
                       "pixels per annotator).")
    p.add_argument("dir")
    p.add_argument("--out", default=None, metavar="FOLDER",
                   help="folder to write (default DIR/report)")
    p.add_argument("--metric", default=None, metavar="NAME",
                   help="validation metric of the curve (default as for status)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("exclude", help="leave samples out (e.g. unreadable images); labels and "
                       "history are kept",
                       description="Leave samples out of the project: they leave the pool, "
                       "the evaluation sets, queries, training and exports. Their labels, "
                       "batches and history stay in the database (a label of an excluded "
                       "sample is kept but no longer used); --undo brings them back.")
    p.add_argument("dir")
    p.add_argument("ids", metavar="IDS|FILE",
                   help="comma-separated sample ids, or a file: one id per line, or a CSV "
                   "with an 'id' column (segmentation: a volume id stands for its slices)")
    p.add_argument("--reason", default="", help="why (recorded, shown by status)")
    p.add_argument("--by", default=None, help="who (recorded; default: your login name)")
    p.add_argument("--undo", action="store_true", help="bring excluded samples back")
    p.set_defaults(func=cmd_exclude)

    p = sub.add_parser("relocate", help="point the project at its moved image folder",
                       description="Point the project at a new image folder after the images "
                       "were moved. Every file's content hash must match the one stored at "
                       "init; otherwise all missing and changed files are listed and nothing "
                       "is changed.")
    p.add_argument("dir")
    p.add_argument("--images", required=True, help="the image folder's new location")
    p.set_defaults(func=cmd_relocate)

    p = sub.add_parser("query", help="select the next batch and store it as pending")
    p.add_argument("dir")
    p.add_argument("--strategy", required=True, help="strategy (see `medactive strategies`)")
    p.add_argument("--budget", type=int, required=True, help="batch size")
    p.add_argument("--initial", type=int, default=None,
                   help="size of the random initial batch (first query only; at least 1)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--allow-partial", action="store_true",
                   help="query although the current batch is not fully labelled")
    p.set_defaults(func=cmd_query)

    p = sub.add_parser("export", help="write the pending batch for labelling in another tool "
                       "(CSV, folder, Label Studio tasks), or the masks (NIfTI, DICOM SEG)",
                       description="csv/folder: the pending batch as a template to fill in; "
                       "label-studio: the pending batch as Label Studio tasks (JSON, with the "
                       "latest model's predictions as pre-annotations, and FILE.xml, a matching "
                       "labelling config); masks (segmentation): every labelled slice's mask, "
                       "per volume, as NIfTI with the source volume's geometry or as DICOM SEG "
                       "for DICOM series. Everything exported imports back with `project "
                       "import`.")
    p.add_argument("dir")
    p.add_argument("--format", default="csv", choices=["csv", "folder", "label-studio", "masks"])
    p.add_argument("--out", default=None, help="output file (csv, label-studio: .json) or "
                   "folder (folder, masks)")
    p.add_argument("--include-skipped", action="store_true")
    p.add_argument("--image-root", default=None, metavar="URL_OR_PATH",
                   help="label-studio: reference images under this folder or URL prefix (e.g. "
                   "/data/local-files/?d=scans) instead of by absolute path")
    p.add_argument("--no-predictions", action="store_true",
                   help="label-studio: leave out the model's pre-annotations")
    p.add_argument("--device", default="auto", help="label-studio predictions: auto, cpu or "
                   "cuda")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("import", help="import labels (CSV id,label, a Label Studio export) or "
                       "masks, all or nothing")
    p.add_argument("dir")
    p.add_argument("file", help="CSV with id,label[,split]; a Label Studio JSON export of "
                   "`export --format label-studio` tasks; segmentation: or a folder of masks "
                   "named by sample id, or by volume id (NIfTI volumes, DICOM SEG)")
    p.add_argument("--format", default="auto", choices=["auto", "csv", "label-studio"],
                   help="auto (default): a .json file is a Label Studio export, anything else "
                   "a CSV or a mask folder")
    p.add_argument("--annotator", default=None, help="who made these labels")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing labels that differ (history is kept)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("train", help="train the current round's model on all labels so far")
    p.add_argument("dir")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("add-annotator", help="create an annotator and print their login token")
    p.add_argument("dir")
    p.add_argument("name")
    p.add_argument("--adjudicator", action="store_true",
                   help="double reading: their page offers the disagreements of the readers, "
                   "each reader's label shown (masks: each reader's mask and their Dice), to "
                   "decide (masks: keep one reader's mask, or correct one and save it)")
    p.set_defaults(func=cmd_add_annotator)

    p = sub.add_parser("adjudicate", help="double reading: list the readers' disagreements, or "
                       "record decisions on them",
                       description="Without --sample/--csv: list the disagreements (items "
                       "whose readers gave different classes, or masks with a pair below the "
                       "Dice threshold). With them: record the adjudicator's decisions (a "
                       "class, one reader's reading, or a corrected mask from a file: --mask), "
                       "all or nothing; a decision becomes the training label and every "
                       "reading is kept.")
    p.add_argument("dir")
    p.add_argument("--sample", default=None, metavar="ID", help="the disagreement to decide")
    p.add_argument("--label", default=None, metavar="CLASS", help="with --sample: the class "
                   "(classification)")
    p.add_argument("--reader", default=None, metavar="NAME",
                   help="with --sample: keep this reader's reading (class or mask)")
    p.add_argument("--mask", default=None, metavar="FILE",
                   help="with --sample: the adjudicator's corrected mask of a mask "
                   "disagreement, a PNG, NIfTI or .npy file of the item's shape holding class "
                   "ids 0..C-1; checked like the page's edited mask, stored as method 'edited'")
    p.add_argument("--start", default=None, metavar="vote|NAME",
                   help="with --mask: where the correction started, the readers' per-pixel "
                   "vote (default) or a reader's mask (recorded)")
    p.add_argument("--csv", default=None, metavar="FILE",
                   help="decisions as CSV with columns id and label (or reader)")
    p.add_argument("--by", default=None, help="the adjudicator (recorded; default: your login "
                   "name)")
    p.set_defaults(func=cmd_adjudicate)

    p = subparsers.add_parser("serve", help="the labelling web page of a project",
                              description="Serve the labelling page. Annotators sign in with "
                              "the token from `medactive project add-annotator`.")
    p.add_argument("dir", help="project directory")
    p.add_argument("--host", default="127.0.0.1",
                   help="bind address (default 127.0.0.1: this machine only; any other needs "
                   "--allow-remote)")
    p.add_argument("--port", type=int, default=8000, help="port 1..65535 (default 8000)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a --host reachable from other machines. The page speaks plain "
                   "HTTP: put HTTPS in front of it (a reverse proxy such as nginx or Caddy)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="a host name browsers use to reach the page, e.g. the one the reverse "
                   "proxy forwards (repeatable); requests naming another Host are refused (400)")
    p.add_argument("--lease-minutes", type=float, default=10.0,
                   help="how long an offered image stays reserved without activity")
    p.add_argument("--max-upload-mb", type=float, default=20.0, help="cap on mask uploads")
    p.set_defaults(func=cmd_serve)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def cmd_init(args) -> int:
    from medactive.project.workflow import init_project

    classes = [c for c in args.classes.split(",")] if args.classes else None
    store = init_project(args.dir, args.images, task=args.task, classes=classes,
                         labels=args.labels, initial=args.initial, seed=args.seed,
                         preset=args.preset, epochs=args.epochs, image_size=args.image_size,
                         channels=args.channels, region_size=args.region_size,
                         exclude=args.exclude, encoder=args.encoder,
                         encoder_weights=args.encoder_weights, train_mode=args.train_mode,
                         ensemble_size=args.ensemble_size, evidential=args.evidential,
                         learning_loss=args.learning_loss,
                         semi_supervised=args.semi_supervised,
                         semi_options=_json_object(args.semi_options, "--semi-options"),
                         readers=args.readers,
                         progress=True)
    counts = store.counts()
    print(f"created {args.dir}: {sum(counts['samples'].values())} samples "
          f"(pool {counts['samples']['pool']}, val {counts['samples']['val']}, test "
          f"{counts['samples']['test']}), classes {', '.join(store.classes)}"
          + (f"; {counts['excluded']} excluded" if counts["excluded"] else ""))
    if any(counts["labelled"].values()):
        print("labels: " + ", ".join(f"{k} {v}" for k, v in counts["labelled"].items()))
    return 0


def _json_object(text: str | None, flag: str) -> dict | None:
    """``flag``'s JSON object (``None``: not given), else one ConfigError naming ``flag``."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{flag}: not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object such as '{{\"threshold\": 0.9}}', "
                          f"got {text!r}")
    return value


def cmd_status(args) -> int:
    from medactive.project.stopping import StopRule
    from medactive.project.workflow import open_or_fail, status

    try:
        rule = StopRule(max_metric_change=args.max_metric_change,
                        max_prediction_change=args.max_prediction_change,
                        window=args.stop_window)
    except ValueError as exc:
        flag = {"max_metric": "--max-metric-change", "max_prediction": "--max-prediction-change",
                "window": "--stop-window"}
        name = next((v for k, v in flag.items() if str(exc).startswith(k)), "option")
        raise ConfigError(f"{name}: {exc}") from None
    info = status(open_or_fail(args.dir), verify=args.verify, progress=True,
                  metric=args.metric, rule=rule)
    if args.json:
        print(json.dumps(_finite(info), indent=2, default=str))
        return 0 if info["ok"] else 1
    s, lab = info["samples"], info["labelled"]
    print(f"project {info['directory']} ({info['task']}, classes {', '.join(info['classes'])})")
    print(f"images: {info['images']}")
    if info["train_options"]:
        from medactive.project.workflow import describe_train_options

        print(f"training options: {describe_train_options(info['train_options'])}")
    if info["semi_supervised"]:
        semi = info["semi_supervised"]
        settings = json.dumps(semi["options"]) if semi["options"] else "(its defaults)"
        print(f"semi-supervised: {semi['method']} {settings} (also trains on the pool items "
              "not yet labelled; pseudo-targets are never labels)")
    print(f"samples: pool {s['pool']} ({lab['pool']} labelled), val {s['val']} "
          f"({lab['val']} labelled), test {s['test']} ({lab['test']} labelled)")
    if not info["rounds"]:
        print("no batch yet: run `medactive project query DIR --strategy NAME --budget B`")
    for r in info["rounds"]:
        print(f"round {r['round']}: {r['strategy']}, {r['size']} samples: {r['labelled']} "
              f"labelled, {r['skipped']} skipped, {r['pending']} pending")
    model = info["latest_model"]
    if model:
        metrics = "  ".join(f"{k}={v:.4f}" for k, v in model["metrics"].items()
                            if isinstance(v, float) and not math.isnan(v)
                            and "recall" not in k)
        print(f"latest model: round {model['round']} on {model['n_labeled']} labels"
              + (f": {metrics}" if metrics else " (no labelled val/test samples)"))
        from medactive.project.signals import format_stopping

        print("\n".join(format_stopping(info["stopping"])))
    from medactive.project.agreement import format_agreement

    for line in format_agreement(info["agreement"], directory=args.dir):
        print(line)
    from medactive.project.cost import format_cost

    print("\n".join(format_cost(info["cost"])))
    print(f"annotators: {', '.join(info['annotators']) or 'none'}")
    excluded = info["excluded"]
    if excluded:
        shown = ", ".join(f"{e['sample_id']}: {e['reason']}" if e["reason"] else e["sample_id"]
                          for e in excluded[:10])
        more = f", ... {len(excluded) - 10} more (--json lists all)" if len(excluded) > 10 else ""
        print(f"excluded: {len(excluded)} ({shown}{more})")
    problems = []
    for key, title in (("missing_files", "missing images"), ("changed_files", "changed images")):
        if info.get(key):
            problems.append(f"{len(info[key])} {title.split()[0]}")
            print(f"{title}: {len(info[key])}")
            for rel in info[key]:
                print(f"  {rel}")
    unreadable = info.get("unreadable_images") or []
    if unreadable:
        files = {u["path"]: u["reason"] for u in unreadable}
        problems.append(f"{len(files)} unreadable")
        print(f"cannot be decoded: {len(files)}")
        for rel, reason in files.items():
            print(f"  {rel}: {reason}")
    if info["integrity"] != "ok":
        problems.insert(0, f"database: {info['integrity']}")
    if problems:
        hint = ("" if info["verified"] else "; `--verify` also checks content hashes")
        print(f"integrity: FAILED ({', '.join(problems)}){hint}; missing or moved files: "
              f"`medactive project relocate {args.dir} --images NEW_FOLDER`, unusable samples: "
              f"`medactive project exclude {args.dir} IDS`")
    elif info["verified"]:
        print(f"integrity: ok (database; {info['n_files']} image files present, unchanged "
              "and decodable)")
    else:
        print(f"database integrity: ok ({info['n_files']} image files present; --verify "
              "re-hashes and decodes them)")
    return 0 if info["ok"] else 1


def _finite(value):
    """``value`` with NaN/inf floats replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def cmd_query(args) -> int:
    from medactive.project.workflow import open_or_fail, query
    from medactive.tasks.classification.task import resolve_device

    store = open_or_fail(args.dir)
    outcome = query(store, strategy=args.strategy, budget=args.budget, initial=args.initial,
                    device=resolve_device(args.device), allow_partial=args.allow_partial,
                    progress=True)
    shown = ", ".join(outcome.sample_ids[:8]) + (" ..." if len(outcome.sample_ids) > 8 else "")
    print(f"round {outcome.round}: {len(outcome.sample_ids)} samples pending ({outcome.strategy})"
          f": {shown}")
    return 0


def cmd_export(args) -> int:
    from medactive.project.exporter import export_batch
    from medactive.project.workflow import open_or_fail

    store = open_or_fail(args.dir)
    if args.format == "masks":
        from medactive.project.volume_masks import export_masks

        done = export_masks(store, args.out)
        print(f"exported the masks of {done.n_slices} labelled slices in {done.n_volumes} "
              f"volumes -> {done.path}")
        return 0
    if args.format == "label-studio":
        from medactive.project.label_studio import export_label_studio
        from medactive.tasks.classification.task import resolve_device

        result = export_label_studio(store, args.out, image_root=args.image_root,
                                     include_skipped=args.include_skipped,
                                     predictions=not args.no_predictions,
                                     device=resolve_device(args.device))
    else:
        result = export_batch(store, fmt=args.format, out=args.out,
                              include_skipped=args.include_skipped)
    print(f"exported {result.n_samples} samples of round {result.round} -> {result.path}")
    return 0


def cmd_import(args) -> int:
    from medactive.project.importer import import_labels
    from medactive.project.workflow import open_or_fail

    fmt = args.format
    if fmt == "auto":
        fmt = "label-studio" if str(args.file).lower().endswith(".json") else "csv"
    if fmt == "label-studio":
        from medactive.project.label_studio import import_label_studio

        report = import_label_studio(open_or_fail(args.dir), args.file,
                                     annotator=args.annotator, overwrite=args.overwrite)
    else:
        from pathlib import Path

        from medactive.project.volume_masks import (
            import_volume_masks,
            is_volume_mask_folder,
        )

        store = open_or_fail(args.dir)
        if Path(args.file).is_dir() and is_volume_mask_folder(store, Path(args.file)):
            # `export --format masks`: NIfTI volumes, DICOM SEG
            report = import_volume_masks(store, args.file, annotator=args.annotator,
                                         overwrite=args.overwrite)
        else:
            report = import_labels(store, args.file, annotator=args.annotator,
                                   overwrite=args.overwrite)
    print(f"imported {args.file}: {report.summary()}")
    return 0


def cmd_train(args) -> int:
    from medactive.project.workflow import open_or_fail, train
    from medactive.tasks.classification.task import resolve_device

    out = train(open_or_fail(args.dir), device=resolve_device(args.device), progress=True)
    metrics = "  ".join(f"{k}={v:.4f}" for k, v in out["metrics"].items()
                        if isinstance(v, float) and not math.isnan(v) and "recall" not in k)
    word = "up to date" if out["reused"] else "trained"
    print(f"round {out['round']} model {word} on {out['n_labeled']} labels -> "
          f"{out['checkpoint']}" + (f": {metrics}" if metrics else ""))
    return 0


def cmd_report(args) -> int:
    from pathlib import Path

    from medactive.project.cost import cost_report, format_cost, write_report
    from medactive.project.workflow import open_or_fail

    store = open_or_fail(args.dir)
    out = Path(args.out) if args.out else store.directory / "report"
    paths = write_report(store, out, metric=args.metric)
    print("\n".join(format_cost(cost_report(store, metric=args.metric))))
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0


def cmd_exclude(args) -> int:
    from medactive.project.integrity import exclude_samples
    from medactive.project.workflow import open_or_fail

    store = open_or_fail(args.dir)
    done = exclude_samples(store, args.ids, reason=args.reason, by=args.by, undo=args.undo)
    shown = ", ".join(done[:8]) + (" ..." if len(done) > 8 else "")
    word = "restored" if args.undo else "excluded"
    print(f"{word} {len(done)} sample{'s' * (len(done) != 1)}" + (f": {shown}" if done else
          " (all were already)") + f"; pool now {len(store.pool_ids())} samples")
    return 0


def cmd_relocate(args) -> int:
    from medactive.project.integrity import relocate
    from medactive.project.workflow import open_or_fail

    store = open_or_fail(args.dir)
    old = store.images_root
    n = relocate(store, args.images, progress=True)
    print(f"relocated {args.dir}: {n} image files checked (content hashes match); images "
          f"{old} -> {store.images_root}")
    return 0


def cmd_add_annotator(args) -> int:
    from medactive.project.workflow import open_or_fail

    store = open_or_fail(args.dir)
    token = store.add_annotator(args.name)
    if args.adjudicator:
        from medactive.project.readings import set_adjudicator

        set_adjudicator(store, args.name)
    role = " (adjudicator)" if args.adjudicator else ""
    print(f"annotator {args.name.strip()}{role}: token (shown once, keep it secret):")
    print(token)
    return 0


def cmd_adjudicate(args) -> int:
    from medactive.project.adjudication import Decision, adjudicate, read_decisions
    from medactive.project.agreement import agreement_report, describe_disagreement
    from medactive.project.integrity import _login
    from medactive.project.workflow import open_or_fail

    store = open_or_fail(args.dir)
    if args.csv and args.sample:
        raise ConfigError("give either --sample ID or --csv FILE, not both")
    if (args.label or args.reader) and not args.sample:
        raise ConfigError("--label/--reader decide the item named by --sample ID")
    if args.mask or args.start:
        return _adjudicate_mask(store, args)
    if args.sample or args.csv:
        if args.sample and bool(args.label) == bool(args.reader):
            raise ConfigError("--sample needs either --label CLASS or --reader NAME (or, for a "
                              "mask, --mask FILE)")
        decisions = (read_decisions(args.csv) if args.csv else
                     [Decision(args.sample, label=args.label, reader=args.reader)])
        n = adjudicate(store, decisions, by=args.by or _login())
        print(f"recorded {n} decision{'s' * (n != 1)}; the readings are kept")
        return 0
    report = agreement_report(store)
    if report["readers"] == 1:
        raise ConfigError(f"{args.dir}: a project with one reader per item has nothing to "
                          "adjudicate (double reading: `project init --readers 2`)")
    dis = report["disagreements"]
    print(f"{len(dis)} disagreement{'s' * (len(dis) != 1)} ({report['open_disagreements']} "
          "waiting for a decision)")
    for d in dis:
        print("  " + describe_disagreement(d))
    return 0


def _adjudicate_mask(store, args) -> int:
    """``--sample ID --mask FILE [--start vote|NAME]``: a corrected mask settles a mask
    disagreement (:func:`medactive.project.adjudication.read_edited_mask`, then the same
    ``adjudicate`` as the page's edited mask)."""
    from medactive.project.adjudication import (
        START_VOTE,
        Decision,
        DecisionRefused,
        adjudicate,
        read_edited_mask,
    )
    from medactive.project.integrity import _login

    if not args.mask:
        raise ConfigError("--start says where the corrected mask of --mask FILE started")
    if not args.sample or args.csv:
        raise ConfigError("--mask FILE is the corrected mask of the item named by --sample ID "
                          "(not with --csv)")
    if args.label or args.reader:
        raise ConfigError("--mask: give a corrected mask or --label/--reader, not both")
    if store.task != "segmentation":
        raise ConfigError(f"--mask: {args.dir} labels classes, not masks (settle a class "
                          "disagreement with --label CLASS or --reader NAME)")
    mask = read_edited_mask(store, args.sample, args.mask)
    try:
        n = adjudicate(store, [Decision(args.sample, mask=mask, start=args.start or START_VOTE)],
                       by=args.by or _login())
    except DecisionRefused as exc:
        flag = {"mask": f"--mask {args.mask}", "start": "--start"}.get(exc.field)
        if flag is None:
            raise
        raise ConfigError(f"{flag}: {exc.problem}") from exc
    print(f"recorded {n} decision (an edited mask); the readings are kept")
    return 0


def cmd_serve(args) -> int:
    from medactive.project.server import serve

    if args.max_upload_mb <= 0:
        raise ConfigError(f"--max-upload-mb must be positive, got {args.max_upload_mb}")

    def listening(url: str) -> None:  # called once the port is bound
        print(f"serving {args.dir} on {url} (Ctrl-C to stop)", flush=True)
        if args.allow_remote:
            print("reachable from other machines over plain HTTP: keep HTTPS in front of it",
                  flush=True)

    serve(args.dir, host=args.host, port=args.port, allow_remote=args.allow_remote,
          extra_hosts=args.allowed_host, lease_seconds=args.lease_minutes * 60,
          max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), on_listening=listening)
    return 0
