"""``medactive strategies``, ``medactive run`` and ``medactive demo``."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from medactive._validation import check_at_least, check_output_dir
from medactive.errors import ConfigError
from medactive.loop.pseudo_label import DEFAULT_DECAY, DEFAULT_ENTROPY, PseudoLabelConfig


def add_parsers(subparsers) -> None:
    p = subparsers.add_parser("strategies", help="list the registered query strategies, scores "
                              "and samplers (SAMPLER:SCORE)")
    p.set_defaults(func=cmd_strategies)

    p = subparsers.add_parser(
        "run", help="run one active-learning experiment with a simulated oracle",
        description="Run one pool-based active-learning experiment (survey §2): a random initial "
        "set (or a cold-start one, --initial-strategy), then ROUNDS rounds of train -> score the pool -> query BUDGET samples -> reveal "
        "their ground truth. Writes run.json, rounds.csv, selections.csv, timings.csv, run.log "
        "(and pseudo_labels.csv with --pseudo-label-entropy, pretrained.pt with --ssl). "
        "With --encoder, rounds start from a pretrained encoder or (--train-mode frozen) "
        "train only a head on its cached embeddings. --config FILE gives the settings from a "
        "TOML file (the fields of one bench-grid unit) or a run.json; flags override it.")
    p.add_argument("--config", default=None, metavar="FILE",
                   help="run settings from FILE: TOML with the fields of a bench grid's unit "
                   "(data, strategy, initial, budget, rounds, seed, preset, ..., tables such "
                   "as data_options), or the run.json of an earlier run to repeat it; flags "
                   "given beside it override the file (see docs/RUN_CONFIG.md)")
    p.add_argument("--data",
                   help="dataset: a MedMNIST .npz, an image folder with labels.csv, an "
                   "NCT-CRC-HE / ISIC 2020 / ACDC folder, or 'default' (embedded "
                   "PneumoniaMNIST); required, here or in --config")
    p.add_argument("--strategy", help="strategy name (see `medactive strategies`); required, "
                   "here or in --config")
    p.add_argument("--initial", type=int,
                   help="size of the initial set (at least 1); required, here or in --config")
    p.add_argument("--budget", type=int,
                   help="samples queried per round (at least 1); required, here or in --config")
    p.add_argument("--rounds", type=int,
                   help="number of query rounds; 0 trains and evaluates on the initial set only "
                   "(ROUNDS + 1 models in all); required, here or in --config")
    p.add_argument("--seed", type=int, default=0, help="master seed, 0 or more (default 0)")
    p.add_argument("--out", required=True,
                   help="output folder (created; checked to be writable before anything runs)")
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--resume", action="store_true",
                          help="continue the run in --out after its last finished round (same "
                          "settings required; a round cut off mid-way is redone)")
    existing.add_argument("--overwrite", action="store_true",
                          help="replace a run already in --out (without it, and without "
                          "--resume, an existing run is never touched)")
    _add_training_args(p)
    g = p.add_argument_group(
        "pseudo-labelling (CEAL, Wang et al. 2017; classification only)",
        "After each query, unlabeled samples whose predicted class distribution has entropy "
        "below delta_r = DELTA0 - DECAY * r (natural log) get the predicted class as a "
        "pseudo-label and join the next round's training set only; they are never labels. "
        "rounds.csv gains n_pseudo and pseudo_label_accuracy; pseudo_labels.csv lists them.")
    g.add_argument("--pseudo-label-entropy", type=float, nargs="?", const=DEFAULT_ENTROPY,
                   default=None, metavar="DELTA0",
                   help=f"turn CEAL pseudo-labelling on with this initial entropy threshold "
                   f"(alone: the paper's {DEFAULT_ENTROPY}; off by default)")
    g.add_argument("--pseudo-label-decay", type=float, default=None, metavar="DECAY",
                   help=f"threshold decrease per round (default {DEFAULT_DECAY}, the paper's)")
    g.add_argument("--pseudo-label-max", type=int, default=None, metavar="N",
                   help="keep at most the N most confident pseudo-labels per round (default: no "
                   "cap; a fixed threshold admits more samples with 2 classes than with 8)")
    g = p.add_argument_group(
        "self-supervised pretraining and cold start (survey §4.2; classification only)",
        "--ssl simclr pretrains the backbone on the whole pool without labels (SimCLR, Chen et "
        "al. 2020: two augmented views per image, NT-Xent loss) once per run, seeded from "
        "--seed, and starts every round's model from it (the classifier head stays random; "
        "with --finetune only round 0 does, later rounds continue the previous model). The "
        "weights are kept in OUT/pretrained.pt, so --resume does not pretrain again. "
        "--initial-strategy chooses the initial set on the pretrained embeddings instead of at "
        "random (cold start); it depends on data, seed and SSL settings only, never on "
        "--strategy.")
    g.add_argument("--ssl", default=None, choices=["simclr"],
                   help="self-supervised pretraining method (off by default)")
    g.add_argument("--ssl-epochs", type=int, default=None, metavar="N",
                   help="pretraining epochs over the pool (default 5)")
    g.add_argument("--ssl-batch-size", type=int, default=None, metavar="N",
                   help="pretraining batch size (default 256 images, i.e. 512 views)")
    g.add_argument("--ssl-temperature", type=float, default=None, metavar="TAU",
                   help="NT-Xent temperature (default 0.5)")
    g.add_argument("--initial-strategy", default="random", metavar="NAME",
                   help="how the initial set is chosen: random (default) or a strategy on the "
                   "self-supervised embeddings, e.g. typiclust (Hacohen et al. 2022, the "
                   "survey's cold-start method) or coreset_l2; needs --ssl or --encoder")
    _add_label_efficiency_args(p)
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser(
        "demo", help="a short experiment on the embedded PneumoniaMNIST (about 3 minutes)",
        description="random vs badge for 3 rounds on the embedded PneumoniaMNIST (28 px, CC BY "
        "4.0): prints a per-round table and writes a learning-curve PNG.")
    p.add_argument("--out", default="medactive-demo", help="output folder (default ./medactive-demo)")
    p.add_argument("--strategies", default="random,badge", help="comma-separated strategies")
    p.add_argument("--initial", type=int, default=50, help="initial set (default 50)")
    p.add_argument("--budget", type=int, default=50, help="samples per round (default 50)")
    p.add_argument("--rounds", type=int, default=3,
                   help="query rounds (default 3; 0: the initial round only)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", default="cpu")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar / progress lines (stderr) for loading, training and "
                   "pool scoring")
    p.set_defaults(func=cmd_demo)


def _add_label_efficiency_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "encoders, frozen-feature rounds and semi-supervised training (survey §4.1-4.2, §7.5)",
        "--encoder starts every round's model from a pretrained backbone (--train-mode "
        "finetune), or keeps it fixed (--train-mode frozen): the pool's embeddings are then "
        "computed once (cached under $MEDACTIVE_CACHE/embeddings, default "
        "~/.cache/medactive/embeddings) and each round trains only a head on them, in seconds; "
        "strategies still get probabilities, MC-dropout samples and embeddings, from the head. "
        "--semi-supervised also trains on the unlabeled pool each round; its pseudo-targets "
        "are never labels. run.json records the encoder (key, quality), mode, head and "
        "semi-supervised settings. Classification only, except mean-teacher.")
    g.add_argument("--encoder", default=None, metavar="SPEC",
                   help="a file written by `medactive pretrain`, or timm:NAME (a timm model "
                   "built without downloading; weights from --encoder-weights)")
    g.add_argument("--encoder-weights", default=None, metavar="FILE",
                   help="local checkpoint for --encoder timm:NAME (never downloaded)")
    g.add_argument("--train-mode", default="finetune", choices=["finetune", "frozen"],
                   help="finetune (default): train the whole network each round, from "
                   "--encoder when given; frozen: train only a head on the fixed encoder's "
                   "cached embeddings (needs --encoder; Adam, 500 steps whatever the number of "
                   "labels, best validation checkpoint; --epochs does not apply)")
    g.add_argument("--head", default=None, choices=["linear", "mlp"],
                   help="frozen mode's head: linear (default; dropout + linear layer on the "
                   "standardised embeddings) or mlp (one hidden layer of 256, ReLU, dropout)")
    g.add_argument("--semi-supervised", default=None, choices=["fixmatch", "mean-teacher"],
                   help="fixmatch (classification; Sohn et al. 2020: tau 0.95, mu 7, lambda_u "
                   "1; frozen mode uses feature-space views) or mean-teacher (segmentation; "
                   "EMA teacher, consistency on unlabeled slices); off by default")


def _add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="cpu", help="training preset: survey, cpu or smoke "
                   "(default cpu)")
    p.add_argument("--epochs", type=int, default=None,
                   help="override the preset's epochs (segmentation: iterations)")
    p.add_argument("--task", default="auto", choices=["auto", "classification", "segmentation"])
    p.add_argument("--finetune", action="store_true",
                   help="start each round from the previous model instead of from scratch")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--selection-device", default="cpu", choices=["cpu", "cuda"],
                   help="where selection and scoring run: cpu (numpy, default) or cuda (torch "
                   "tensors on the GPU, the same picks; refused when CUDA is not available)")
    p.add_argument("--image-size", type=int, default=None, help="resize images to this side")
    p.add_argument("--labels", default=None, help="labels CSV for an image folder")
    p.add_argument("--classes", default=None, metavar="A,B,...",
                   help="image folder (or MedMNIST .npz): the class names in label-index order. "
                   "Without it the classes are the label column's values, and a value that "
                   "looks like missing data (nan, NA, None, null, -, ?, empty) or a class with "
                   "fewer than 5 samples (a typo such as 'benigm') is refused, naming its CSV "
                   "lines; with it, every value outside the list is refused")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar / progress lines (stderr) for loading, training and "
                   "pool scoring")
    p.add_argument("--mc-samples", type=int, default=None,
                   help="MC-dropout passes for dbal/bald/mean_variance (preset default)")
    p.add_argument("--learning-loss", action="store_true",
                   help="train a loss-prediction module beside each round's model (Yoo & "
                   "Kweon 2019: intermediate features, margin ranking loss, its gradient into "
                   "the model stopped after 60%% of the epochs); needed by --strategy "
                   "learning_loss (classification and segmentation)")
    p.add_argument("--ensemble-size", type=int, default=None, metavar="M",
                   help="deep ensemble: train M independently seeded models per round "
                   "(member 0 from the round's seed; frozen heads or whole networks), one "
                   "after the other or in --ensemble-workers processes; metrics are those of "
                   "their mean probabilities (rounds.csv adds ensemble_size) and ensemble_entropy, ensemble_bald, qbc_vote_entropy "
                   "and qbc_kl read the members' (default 1: one model; classification)")
    p.add_argument("--ensemble-workers", type=int, default=None, metavar="N",
                   help="train a deep ensemble's members in N worker processes at once "
                   "(1: one after the other). Default: as many as the usable cores hold at "
                   "--threads each (on 2 cores: 2 with --threads 1, else 1). The members, "
                   "metrics and selections are the same whatever N; run.json records it "
                   "under execution")
    p.add_argument("--evidential", action="store_true",
                   help="evidential deep learning (Sensoy et al. 2018): train with the "
                   "Dirichlet loss (MSE Bayes risk + annealed KL, evidence = softplus of the "
                   "logits); probabilities are alpha/S; needed by --strategy evidential and "
                   "evidential_epistemic (classification, not with --semi-supervised)")
    p.add_argument("--reduction", default=None, choices=["mean", "max", "foreground_mean"],
                   help="segmentation: how pixel scores are reduced per slice (default mean)")
    p.add_argument("--augmentation", default=None, choices=["none", "flip", "nct", "isic"],
                   help="override the preset's augmentation (ISIC 2020: isic)")
    p.add_argument("--region-size", type=int, default=None, metavar="P",
                   help="segmentation: region-based AL (survey §4.3.1): label square P x P "
                   "patches of the resized slices (preset image_size; the last row/column is "
                   "narrower when P does not divide it) instead of whole slices; --initial and "
                   "--budget then count patches, training uses labelled pixels only, scores are "
                   "reduced per patch (--reduction), and rounds.csv adds "
                   "labelled_pixel_fraction and n_labelled_slices")
    p.add_argument("--frames", default=None, choices=["ed", "es", "both"],
                   help="ACDC: end-diastolic frames only (survey, default), end-systolic or both")
    p.add_argument("--spacing-csv", default=None,
                   help="segmentation (h5 layout): CSV case,z,y,x of voxel spacings in mm; "
                   "without it distances are reported in voxels")
    p.add_argument("--cache-dir", default=None,
                   help="keep each round's pool predictions in memory-mapped files here "
                   "(pools of 10^5-10^6 images)")
    p.add_argument("--cache-float16", action="store_true",
                   help="store that cache as float16 (half the disk and memory)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is fastest on a busy "
                   "machine)")


def cmd_strategies(args) -> int:
    from medactive.strategies.registry import strategy_listing

    print(strategy_listing())
    return 0


def experiment_config(args, strategy: str):
    from medactive.experiment import ExperimentConfig

    data_options = {}
    for key in ("image_size", "labels", "reduction", "frames", "spacing_csv", "cache_dir",
                "region_size"):
        value = getattr(args, key, None)
        if value is not None:
            data_options[key] = value
    if getattr(args, "cache_float16", False):
        data_options["cache_dtype"] = "float16"
    check_counts(args)
    classes = parse_classes(getattr(args, "classes", None))
    if classes is not None:
        data_options["classes"] = classes
    train_options = {}
    if getattr(args, "augmentation", None):
        train_options["augmentation"] = args.augmentation
    if getattr(args, "mc_samples", None) is not None:
        if args.mc_samples < 2:
            raise ConfigError(f"--mc-samples must be at least 2, got {args.mc_samples}")
        train_options["n_mc_samples"] = args.mc_samples
    if getattr(args, "learning_loss", False):
        train_options["learning_loss"] = True
    if getattr(args, "ensemble_size", None) is not None:
        train_options["ensemble_size"] = args.ensemble_size
    if getattr(args, "evidential", False):
        train_options["evidential"] = True
    if getattr(args, "head", None) is not None:
        train_options["head"] = {"kind": args.head}
    return ExperimentConfig(
        data=args.data, strategy=strategy, initial=args.initial, budget=args.budget,
        rounds=args.rounds, seed=args.seed, task=args.task, preset=args.preset,
        epochs=args.epochs, finetune=args.finetune, device=args.device,
        data_options=data_options, train_options=train_options,
        pseudo_label=_pseudo_label_options(args), ssl=_ssl_options(args),
        initial_strategy=getattr(args, "initial_strategy", None) or "random",
        encoder=getattr(args, "encoder", None), encoder_weights=getattr(args, "encoder_weights",
                                                                        None),
        train_mode=getattr(args, "train_mode", None) or "finetune",
        semi_supervised=getattr(args, "semi_supervised", None),
        selection_device=getattr(args, "selection_device", None) or "cpu")


#: (flag, least value, what the least value means) for the integer flags of run and demo
_COUNTS = (("initial", 1, ""), ("budget", 1, ""),
           ("rounds", 0, "0: train and evaluate on the initial set only"), ("seed", 0, ""),
           ("epochs", 1, ""), ("image_size", 1, ""), ("region_size", 1, ""),
           ("mc_samples", 2, ""), ("ensemble_size", 1, "1: one model"), ("threads", 1, ""),
           ("ensemble_workers", 1, "1: members one after the other"),
           ("ssl_epochs", 1, ""),
           ("pseudo_label_max", 1, ""))


def check_counts(args) -> None:
    """One rule for the integer flags: each has a least value, refused below it in one line."""
    for key, least, note in _COUNTS:
        check_at_least(getattr(args, key, None), least, name=f"--{key.replace('_', '-')}",
                       note=note)


def parse_classes(text: str | None) -> list[str] | None:
    """``--classes a,b`` as ``["a", "b"]`` (``None``: not given)."""
    if text is None:
        return None
    names = [c.strip() for c in text.split(",") if c.strip()]
    if len(names) < 2:
        raise ConfigError(f"--classes needs at least two comma-separated names, got {text!r}")
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ConfigError(f"--classes names {', '.join(map(repr, dup))} twice")
    return names


def _ssl_options(args) -> dict | None:
    """The ``ssl`` settings of ``--ssl*`` (``None``: off)."""
    from medactive.encoders.simclr import SSLConfig

    extra = {key: getattr(args, f"ssl_{key}", None)
             for key in ("epochs", "batch_size", "temperature")}
    extra = {k: v for k, v in extra.items() if v is not None}
    method = getattr(args, "ssl", None)
    if method is None:
        if extra:
            raise ConfigError("--ssl-epochs / --ssl-batch-size / --ssl-temperature need --ssl "
                              "(which turns pretraining on)")
        return None
    return SSLConfig.from_dict({"method": method, **extra}, source="--ssl").to_dict()


def _pseudo_label_options(args) -> dict | None:
    """The ``pseudo_label`` settings of ``--pseudo-label-*`` (``None``: off)."""
    entropy = getattr(args, "pseudo_label_entropy", None)
    decay = getattr(args, "pseudo_label_decay", None)
    cap = getattr(args, "pseudo_label_max", None)
    if entropy is None:
        if decay is not None or cap is not None:
            raise ConfigError("--pseudo-label-decay / --pseudo-label-max need "
                              "--pseudo-label-entropy (which turns pseudo-labelling on)")
        return None
    options = {"entropy": entropy, "max": cap}
    if decay is not None:
        options["decay"] = decay
    return PseudoLabelConfig.from_dict(options).to_dict()  # validates


def cmd_run(args) -> int:
    from medactive.experiment import (
        build_task,
        check_ssl_options,
        resolve_task_kind,
        resume_run,
        run_experiment,
    )
    from medactive.progress import stage
    from medactive.strategies import create_strategy

    _set_threads(args.threads)
    config = run_settings(args)
    create_strategy(config.strategy)  # fail fast on an unknown name
    check_ssl_options(config)  # before loading data: refused for segmentation
    from medactive.query_device import array_device

    array_device(config.selection_device)  # cuda without a GPU: refused before any work
    out = Path(args.out)
    has_run = (out / "rounds.csv").is_file()
    if has_run and not (args.resume or args.overwrite):
        raise ConfigError(f"{out} already holds a run: --resume continues it, --overwrite "
                          "replaces it, or choose another --out")
    check_output_dir(out)  # before hours of training, not after
    if "classes" in config.data_options and resolve_task_kind(config) == "segmentation":
        raise ConfigError("--classes applies to classification data (an image folder with a "
                          "labels CSV, or a MedMNIST .npz)")
    show = not args.no_progress
    stage(f"loading {config.data} ...", enabled=show)
    task = build_task(config, progress=show,
                      ensemble_workers=getattr(args, "ensemble_workers", None))
    _print_data(task)
    completed = resume_run(out, config, task.pool_ids) if args.resume and has_run else []
    if len(completed) >= config.rounds + 1:
        print(f"{out}: all {len(completed)} rounds already done")
        return 0
    for record in completed:
        print(f"round {record.round}: done before ({record.n_labeled} labels)")
    start = time.perf_counter()
    records = run_experiment(config, out_dir=out, task=task, completed=completed,
                             on_round=lambda r: _print_round(r, task.primary_metric))
    print(f"done in {time.perf_counter() - start:.1f}s: {len(records)} rounds -> {args.out}")
    return 0


def run_settings(args):
    """The :class:`~medactive.experiment.ExperimentConfig` of ``medactive run``: the flags, or
    with ``--config`` the file's settings overridden by the flags given explicitly."""
    from medactive.experiment import ExperimentConfig
    from medactive.run_config import merge_flags, missing_required, read_run_config

    flags = experiment_config(args, args.strategy)
    if args.config is None:
        settings = flags.to_dict()
    else:
        given = explicit_flags(getattr(args, "argv", None))
        settings = merge_flags(read_run_config(args.config), flags.to_dict(), given)
    missing = missing_required(settings)
    if missing:
        where = f" or in {args.config}" if args.config else " (or in a --config file)"
        raise ConfigError("missing " + ", ".join(f"--{m}" for m in missing) + f": give "
                          f"{'them' if len(missing) > 1 else 'it'} as a flag{where}")
    defaults = ExperimentConfig(data="", strategy="", initial=1, budget=1, rounds=0).to_dict()
    return ExperimentConfig(**{**defaults, **settings})


def explicit_flags(argv: list[str] | None) -> set[str]:
    """The ``run`` flags (argparse dests) given on the command line ``argv``, defaults aside."""
    if not argv or "run" not in argv:
        return set()
    sub = argparse.ArgumentParser(add_help=False).add_subparsers()
    add_parsers(sub)
    parser = sub.choices["run"]
    for action in parser._actions:
        action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv[argv.index("run") + 1:])))


def _print_data(task) -> None:
    """What was loaded, with the samples per class (a typo class or a lost class shows here)."""
    dataset = getattr(task, "dataset", None)
    if dataset is None or not hasattr(dataset, "describe_classes"):
        return
    print(f"data: {dataset.name}: {len(dataset.train)} pool, {len(dataset.val)} val, "
          f"{len(dataset.test)} test images; {dataset.describe_classes()}", flush=True)


def _set_threads(threads: int | None) -> None:
    if threads is None:
        return
    if threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)


def _print_round(record, metric: str) -> None:
    test = record.metrics.get(f"test_{metric}", float("nan"))
    val = record.metrics.get(f"val_{metric}", float("nan"))
    pseudo = ""
    if "n_pseudo" in record.metrics:
        pseudo = f" + {int(record.metrics['n_pseudo'])} pseudo"
        accuracy = record.metrics.get("pseudo_label_accuracy", float("nan"))
        if not math.isnan(accuracy):
            pseudo += f" (accuracy {accuracy:.4f})"
    if "labelled_pixel_fraction" in record.metrics:  # region-based: labels are patches
        pseudo += (f" ({record.metrics['labelled_pixel_fraction']:.2%} of pixels, "
                   f"{int(record.metrics['n_labelled_slices'])} slices)")
    print(f"round {record.round}: {record.n_labeled} labels{pseudo}  val_{metric}={val:.4f}  "
          f"test_{metric}={test:.4f}  ({record.seconds:.1f}s)", flush=True)


def cmd_demo(args) -> int:
    from medactive.data.classification.default import load_default_dataset
    from medactive.experiment import ExperimentConfig, run_experiment
    from medactive.plots import plot_learning_curves
    from medactive.progress import stage
    from medactive.strategies import create_strategy
    from medactive.tasks.classification.presets import get_preset
    from medactive.tasks.classification.task import ClassificationTask

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        raise ConfigError("--strategies is empty; give at least one strategy name")
    for name in strategies:
        create_strategy(name)
    check_counts(args)
    out = check_output_dir(args.out)
    show = not args.no_progress
    stage("loading the embedded PneumoniaMNIST ...", enabled=show)
    dataset = load_default_dataset()
    print(f"medactive demo: {dataset.name} ({len(dataset.train)} pool images, "
          f"{dataset.describe_classes()}), strategies {', '.join(strategies)}, "
          f"{args.rounds} rounds of {args.budget}, seed {args.seed}", flush=True)
    curves: dict[str, list[tuple[int, float]]] = {}
    table: dict[str, list] = {}
    for name in strategies:
        config = ExperimentConfig(data="default", strategy=name, initial=args.initial,
                                  budget=args.budget, rounds=args.rounds, seed=args.seed,
                                  preset=args.preset, epochs=args.epochs)
        task = ClassificationTask(dataset, get_preset(args.preset, epochs=args.epochs),
                                  progress=show)
        metric = task.primary_metric
        print(f"-- {name}", flush=True)
        records = run_experiment(config, out_dir=out / name, task=task,
                                 on_round=lambda r, m=metric: _print_round(r, m))
        curves[name] = [(r.n_labeled, r.metrics[f"test_{metric}"]) for r in records]
        table[name] = records
    print()
    print(_demo_table(table, metric))
    png = plot_learning_curves(curves, out / "learning_curve.png", metric=f"test {metric}",
                               title=f"{dataset.name}: test {metric} vs labels")
    summary = {name: [{"round": r.round, "n_labeled": r.n_labeled, **r.metrics} for r in recs]
               for name, recs in table.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"learning curve: {png}")
    return 0


def _demo_table(table: dict[str, list], metric: str) -> str:
    names = list(table)
    lines = ["| round | labels | " + " | ".join(f"{n} test_{metric}" for n in names) + " |",
             "|---|---|" + "---|" * len(names)]
    for i, rec in enumerate(table[names[0]]):
        cells = [f"{table[n][i].metrics[f'test_{metric}']:.4f}" for n in names]
        lines.append(f"| {rec.round} | {rec.n_labeled} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
