"""The ``deepfakedetect train`` and ``deepfakedetect evaluate`` subcommands.

Their arguments are in :mod:`deepfakedetect.cli.parser`; errors the library raises on
purpose propagate to it and are printed as one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deepfakedetect._config import CONFIG_NAME, WEIGHTS_NAME
from deepfakedetect._errors import ConfigError
from deepfakedetect._untrusted import printable
from deepfakedetect._utils import jsonable
from deepfakedetect.cli.detect import uncertain_band_option
from deepfakedetect.detector import Detector
from deepfakedetect.training.augment import AugmentConfig
from deepfakedetect.training.calibrate import calibrate_detector
from deepfakedetect.training.evaluate import evaluate
from deepfakedetect.training.temporal import TemporalTrainConfig
from deepfakedetect.training.trainer import Trainer

__all__ = ["run_calibrate", "run_evaluate", "run_temporal", "run_train"]


def run_temporal(args: argparse.Namespace) -> int:
    """``deepfakedetect train VIDEOS --temporal``: a temporal head over face tracks, saved with its model."""
    if len(args.data) != 1:
        raise ConfigError("train --temporal takes one folder of real/ and fake/ videos")
    if args.val is not None and len(args.val) != 1:
        raise ConfigError("train --temporal takes one --val folder of real/ and fake/ videos")
    detector = Detector.from_pretrained(args.model, device=args.device)
    cfg = TemporalTrainConfig(
        kind=args.temporal_kind,
        epochs=args.epochs if args.epochs is not None else TemporalTrainConfig.epochs,
        num_frames=args.frames,
        seed=args.seed,
    )
    trainer = Trainer(
        detector,
        seed=args.seed,
        out_dir=args.out,
        cache=None if args.cache == "none" else "disk",
        progress=not (args.no_progress or args.json),
    )
    result = trainer.fit_temporal(args.data[0], val=args.val[0] if args.val else None, config=cfg)
    out = Path(args.out)
    report = json.loads((out / "temporal_report.json").read_text(encoding="utf-8"))
    if args.json:
        print(json.dumps(jsonable({"out_dir": str(out), **report})))
    else:
        m = result.metrics
        print(
            f"temporal head ({cfg.kind}) saved in {out}: epoch {result.best_epoch} of {cfg.epochs} kept"
            + (f", validation AUC {m['val_auc']:.4f}, log loss {m['val_loss']:.4f}" if "val_auc" in m else "")
            + f"; {report['train_videos']} training videos, {report['embed_seconds']:.0f} s embedding, "
            f"{report['train_seconds']:.0f} s training. Use it with --aggregator temporal --model {out}"
        )
    return 0


#: What makes a folder hold a model (or a run) that ``train --out`` would replace.
_MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, "checkpoints/last.safetensors")


def _check_out(args: argparse.Namespace) -> None:
    """Refuse to replace a model folder unless told (--overwrite) or continuing its run (--resume)."""
    out = Path(args.out)
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other: choose one")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is not a folder; pass a folder for the model")
    found = [name for name in _MODEL_FILES if (out / name).exists()]
    if found and not (args.overwrite or args.resume):
        raise ConfigError(
            f"--out {out} already holds a model or a run ({', '.join(found)}): pass --overwrite to replace it, "
            "--resume to continue its run, or another --out"
        )


def run_train(args: argparse.Namespace) -> int:
    """``deepfakedetect train``."""
    _check_out(args)  # a temporal model is written to --out too
    if args.temporal:
        return run_temporal(args)
    if args.model is not None:
        raise ConfigError("--model is for train --temporal; image training starts from --backbone and --weights")

    weights = None if str(args.weights).lower() == "none" else args.weights
    trainer = Trainer(
        args.backbone,
        weights=weights,
        epochs=args.epochs if args.epochs is not None else 10,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        scheduler=args.scheduler,
        warmup_epochs=args.warmup_epochs,
        weight_decay=args.weight_decay,
        freeze_backbone=args.freeze_backbone,
        unfreeze_at_epoch=args.unfreeze_at_epoch,
        class_weights=None if args.no_class_weights else "balanced",
        balance=args.balance,
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

        doc = {
            "out_dir": str(Path(args.out)),
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "data_seconds": result.data_seconds,
            "metrics": result.metrics,
            "history": result.history,
        }
        print(json.dumps(jsonable(doc)))
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
    print(f"model written to {printable(args.out)} (load with Detector.from_pretrained({str(args.out)!r}))")
    sys.stdout.flush()
    return 0


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


def run_evaluate(args: argparse.Namespace) -> int:
    """``deepfakedetect evaluate``."""

    detector = Detector.from_pretrained(
        args.model, revision=args.revision, local_files_only=args.offline, device=args.device,
        flip=args.flip, uncertain_band=uncertain_band_option(args.uncertain_band),
    )  # fmt: skip
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


def run_calibrate(args: argparse.Namespace) -> int:
    """``deepfakedetect calibrate``."""
    detector = Detector.from_pretrained(
        args.model, revision=args.revision, local_files_only=args.offline, device=args.device, flip=args.flip
    )
    calibrated = calibrate_detector(
        detector,
        images=args.images,
        videos=args.videos,
        target_precision=None if args.no_band else args.target_precision,
        method=args.method,
        sampler=args.sampler,
        aggregator=args.aggregator,
        batch_size=args.batch_size,
        strict=args.strict,
        progress=False if (args.no_progress or args.json) else None,
    )
    calibrated.save_pretrained(args.out)
    config = calibrated.config
    kinds = {"image": config.calibration, "video": config.video_calibration}
    if args.json:
        doc = {"out": str(args.out), **{k: (v.__dict__ if v is not None else None) for k, v in kinds.items()}}
        print(json.dumps(jsonable(doc)))
        return 0
    for kind, cal in kinds.items():
        if cal is None:
            print(f"{kind}: no calibration of its own (uses the image calibration)")
            continue
        fitted = cal.fitted_on
        band = "none" if cal.uncertain_band is None else f"[{cal.uncertain_band[0]:.4f}, {cal.uncertain_band[1]:.4f})"
        share = fitted.get("uncertain_share")
        auc = fitted.get("auc")
        refit = "fitted now" if (kind == "image" and args.images) or (kind == "video" and args.videos) else "kept"
        print(
            f"{kind} ({refit}): temperature {cal.temperature:.4g}, threshold {cal.threshold:.4f}, "
            f"uncertain band {band}"
            + (f" ({100 * share:.1f}% of validation uncertain)" if isinstance(share, (int, float)) else "")
            + (f"; validation n {fitted.get('n_real')} real / {fitted.get('n_fake')} fake" if "n_real" in fitted else "")
            + (f", AUC {auc:.4f}" if isinstance(auc, (int, float)) else "")
        )
    print(f"calibrated model written to {args.out}")
    sys.stdout.flush()
    return 0
