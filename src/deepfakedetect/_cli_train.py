"""The ``deepfakedetect train`` and ``deepfakedetect evaluate`` subcommands.

``_cli.main`` adds them with :func:`add_subcommands`; errors the library raises on
purpose propagate to it and are printed as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_subcommands"]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_subcommands(subparsers: Any) -> None:
    """Add ``train`` and ``evaluate`` to the main parser's subparsers.

    Each sets ``func``, a function taking the parsed arguments and returning the exit code.

    Example:
        >>> parser = argparse.ArgumentParser(prog="deepfakedetect")
        >>> add_subcommands(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["train", "data/", "--out", "run/", "--weights", "none"])
        >>> args.backbone, args.weights, args.epochs, args.func.__name__
        ('resnet50', 'none', 10, '_cmd_train')
    """
    t = subparsers.add_parser(
        "train",
        help="fine-tune a detector on folders of real and fake images",
        description=(
            "Fine-tune a detector. DATA holds real/ and fake/ folders (split here with --seed), or "
            "train/, val/, test/ each holding them. The model folder (config.json, model.safetensors, "
            "README.md), history.json/.csv/.png and checkpoints/ are written to --out."
        ),
    )
    t.add_argument("data", nargs="+", metavar="DATA", help="data folder(s)")
    t.add_argument("--out", required=True, metavar="DIR", help="output folder (model, history, checkpoints)")
    t.add_argument("--val", nargs="+", default=None, metavar="DIR", help="separate validation folder(s)")
    t.add_argument("--backbone", default="resnet50", help="torchvision model name (default: resnet50)")
    t.add_argument(
        "--weights",
        default="imagenet",
        help="starting weights: imagenet (default), none, a torchvision weights name, or a .safetensors file",
    )
    t.add_argument("--epochs", type=_positive_int, default=10)
    t.add_argument("--batch-size", type=_positive_int, default=32, help="per process (default: 32)")
    t.add_argument("--input-size", type=_positive_int, default=224, help="input side in pixels (default: 224)")
    t.add_argument("--lr", type=float, default=None, help="peak learning rate (default: 3e-4 for AdamW)")
    t.add_argument("--optimizer", choices=("adamw", "adam", "sgd"), default="adamw")
    t.add_argument("--scheduler", choices=("cosine", "linear", "constant"), default="cosine")
    t.add_argument("--warmup-epochs", type=float, default=1.0)
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--freeze-backbone", action="store_true", help="train only the head (linear probe)")
    t.add_argument("--unfreeze-at-epoch", type=_positive_int, default=None, help="with --freeze-backbone")
    t.add_argument("--no-class-weights", action="store_true", help="do not weight classes by inverse frequency")
    t.add_argument(
        "--faces",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="crop faces (RetinaFace) for training and inference (default: whole images)",
    )
    t.add_argument("--no-augment", action="store_true", help="train without augmentation")
    t.add_argument(
        "--self-blend",
        type=float,
        default=0.0,
        metavar="RATIO",
        help="synthetic self-blended fakes per real image and epoch (SBI; 0 = off, 1 = one per real)",
    )
    t.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto")
    t.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm; 0 turns clipping off")
    t.add_argument("--select-metric", default="val_auc", help="val_auc, val_accuracy, val_balanced_accuracy, val_loss, val_eer")
    t.add_argument("--early-stopping", type=_positive_int, default=None, metavar="PATIENCE")
    t.add_argument("--cache", choices=("memory", "disk", "none"), default="memory", help="preprocessed-input cache")
    t.add_argument("--num-workers", type=int, default=0, help="data-loading processes")
    t.add_argument("--val-fraction", type=float, default=0.15)
    t.add_argument("--test-fraction", type=float, default=0.15)
    t.add_argument("--strict", action="store_true", help="fail on unreadable images instead of skipping them")
    t.add_argument("--no-calibrate", action="store_true", help="keep temperature 1 and threshold 0.5")
    t.add_argument("--resume", action="store_true", help="continue from DIR/checkpoints/last.safetensors")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.add_argument("--json", action="store_true", help="print the result as JSON")
    t.set_defaults(func=_cmd_train)

    e = subparsers.add_parser(
        "evaluate",
        help="measure a detector on labelled data",
        description=(
            "Score labelled data (real/ and fake/ folders, or train/ val/ test/ holding them) and print "
            "accuracy, precision, recall, ROC AUC, EER, log loss, calibration error and the confusion matrix."
        ),
    )
    e.add_argument("model", metavar="MODEL", help="model folder or Hub repo id")
    e.add_argument("data", nargs="+", metavar="DATA", help="data folder(s)")
    e.add_argument("--split", default="test", choices=("test", "val", "train", "all"))
    e.add_argument("--videos", action="store_true", help="evaluate videos (video- and frame-level metrics)")
    e.add_argument("--json", action="store_true", help="print the report as JSON")
    e.add_argument("--scores", action="store_true", help="with --json, include every item's score")
    e.add_argument("--roc", metavar="PATH", default=None, help="write an ROC plot (PNG; needs matplotlib)")
    e.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the model's)")
    e.add_argument("--batch-size", type=_positive_int, default=32)
    e.add_argument("--sampler", default=None, help="frame sampler for --videos, e.g. uniform:num_frames=16")
    e.add_argument("--aggregator", default=None, help="frame aggregator for --videos, e.g. top_k_mean:k=5")
    e.add_argument("--strict", action="store_true", help="fail on unreadable files instead of skipping them")
    e.add_argument("--revision", default=None, help="Hub branch, tag or commit sha")
    e.add_argument("--offline", action="store_true", help="use only the local Hugging Face cache")
    e.add_argument("--device", default=None)
    e.add_argument("--no-progress", action="store_true", help="no progress bars")
    e.set_defaults(func=_cmd_evaluate)


def _cmd_train(args: argparse.Namespace) -> int:
    from ._augment import AugmentConfig
    from ._trainer import Trainer

    weights = None if str(args.weights).lower() == "none" else args.weights
    trainer = Trainer(
        args.backbone,
        weights=weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        scheduler=args.scheduler,
        warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay,
        freeze_backbone=args.freeze_backbone,
        unfreeze_at_epoch=args.unfreeze_at_epoch,
        class_weights=None if args.no_class_weights else "balanced",
        precision=args.precision,
        grad_clip=args.grad_clip if args.grad_clip and args.grad_clip > 0 else None,
        augment=None if args.no_augment else AugmentConfig(),
        self_blend=args.self_blend,
        input_size=args.input_size,
        faces=args.faces,
        select_metric=args.select_metric,
        early_stopping_patience=args.early_stopping,
        seed=args.seed,
        out_dir=args.out,
        num_workers=args.num_workers,
        progress=False if (args.no_progress or args.json) else None,
        cache=None if args.cache == "none" else args.cache,
        calibrate=not args.no_calibrate,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        strict=args.strict,
        device=args.device,
    )
    result = trainer.fit(args.data if len(args.data) > 1 else args.data[0], val=args.val, resume=args.resume)
    if args.json:
        from ._trainer import _jsonable

        doc = {
            "out_dir": str(Path(args.out)),
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "data_seconds": result.data_seconds,
            "metrics": result.metrics,
            "history": result.history,
        }
        print(json.dumps(_jsonable(doc)))
        return 0
    print(f"{'epoch':>5}  {'train loss':>10}  {'train acc':>9}  {'val loss':>8}  {'val acc':>7}  {'val AUC':>7}  {'time s':>6}")
    for h in result.history:
        mark = "  *" if h["epoch"] == result.best_epoch else ""
        print(
            f"{h['epoch']:>5}  {h['train_loss']:>10.4f}  {h['train_accuracy']:>9.4f}  {h['val_loss']:>8.4f}  "
            f"{h['val_accuracy']:>7.4f}  {_num(h['val_auc']):>7.4f}  {h['time_s']:>6.1f}{mark}"
        )
    m = result.metrics
    cal = result.detector.config.calibration
    print(f"kept epoch {result.best_epoch} (*); calibrated temperature {cal.temperature:.4g}, threshold {cal.threshold:.4g}")
    for split in ("val", "test"):
        if f"{split}_auc" in m:
            print(
                f"{split}: accuracy {m[f'{split}_accuracy']:.4f}, ROC AUC {_num(m[f'{split}_auc']):.4f}, "
                f"EER {_num(m[f'{split}_eer']):.4f}, log loss {m[f'{split}_log_loss']:.4f} ({m[f'{split}_n']} images)"
            )
    print(f"model written to {args.out} (load with Detector.from_pretrained({str(args.out)!r}))")
    sys.stdout.flush()
    return 0


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ._detector import Detector
    from ._evaluate import evaluate

    detector = Detector.from_pretrained(
        args.model, revision=args.revision, local_files_only=args.offline, device=args.device
    )
    report = evaluate(
        detector,
        args.data if len(args.data) > 1 else args.data[0],
        batch_size=args.batch_size,
        split=args.split,
        videos=args.videos,
        threshold=args.threshold,
        sampler=args.sampler,
        aggregator=args.aggregator,
        strict=args.strict,
        progress=False if (args.no_progress or args.json) else None,
    )
    if args.roc:
        report.plot_roc(args.roc)
    if args.json:
        print(json.dumps(report.to_dict(include_scores=args.scores)))
    else:
        print(report.to_markdown(), end="")
        if args.roc:
            print(f"ROC plot written to {args.roc}")
    sys.stdout.flush()
    return 0
