"""One training run: data, epochs, validation, best-model selection, checkpoints (what Trainer.fit runs)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from deepfakedetect._errors import ConfigError, DatasetError, ModelLoadError
from deepfakedetect._metrics import binary_metrics
from deepfakedetect._untrusted import shorten
from deepfakedetect._utils import jsonable, progress_enabled
from deepfakedetect._version import __version__
from deepfakedetect.detector import Detector
from deepfakedetect.models.backbones import last_linear
from deepfakedetect.models.calibration import calibrate
from deepfakedetect.models.manifest import TrainingManifest, file_digests
from deepfakedetect.models.precision import resolve_precision
from deepfakedetect.training.augment import build_augment
from deepfakedetect.training.calibrate import fit_video_calibration
from deepfakedetect.training.checkpoint import (
    CHECKPOINT_FORMAT,
    check_state,
    optimizer_from_parts,
    optimizer_to_parts,
    read_checkpoint,
    restore_rng,
    rng_parts,
    seed_all,
    write_checkpoint,
)
from deepfakedetect.training.data import (
    SELF_BLENDED,
    ImageDataset,
    PreparedImages,
    Sample,
    find_dataset,
    prepare_images,
)
from deepfakedetect.training.distributed import (
    Dist,
    ShardSampler,
)
from deepfakedetect.training.folders import DataArg, DataSplits, check_classes
from deepfakedetect.training.history import TrainResult
from deepfakedetect.training.loop import EpochLoop, nan, prefixed

if TYPE_CHECKING:
    from deepfakedetect.training.trainer import Trainer

logger = logging.getLogger(__name__)

__all__ = ["SELECT_METRICS", "Run"]

#: Metrics ``select_metric`` may name, with the direction that is better.
SELECT_METRICS = {
    "val_auc": "max",
    "val_accuracy": "max",
    "val_balanced_accuracy": "max",
    "val_loss": "min",
    "val_eer": "min",
}


@dataclass
class _Data:
    """What a run trains and validates on."""

    splits: DataSplits
    val_roots: list[str]
    test_samples: list[Sample]
    train_p: PreparedImages
    val_p: PreparedImages
    train_ds: ImageDataset
    val_ds: ImageDataset
    train_loader: DataLoader[Any]
    val_loader: DataLoader[Any]
    data_seconds: float


@dataclass
class _State:
    """Where a run stands after its last epoch (what a checkpoint restores)."""

    history: list[dict[str, Any]] = field(default_factory=list)
    epoch: int = 0
    stopped_early: bool = False
    train_seconds: float = 0.0
    best_epoch: int = 0
    best_value: float | None = None
    since_best: int = 0
    best_state: dict[str, torch.Tensor] | None = None


class Run(EpochLoop):
    """The state of one :meth:`Trainer.fit` call."""

    def __init__(self, trainer: Trainer, dist: Dist, device: torch.device) -> None:
        self.t = trainer
        self.dist = dist
        self.device = device
        self.show_progress = progress_enabled(trainer.progress) and dist.is_main

    # ------------------------------------------------------------------ setup
    def _build_detector(self) -> Detector:
        t = self.t
        if isinstance(t.backbone, Detector):
            det = t.backbone
            pre = det.config.preprocess
            if t.input_size is not None and t.input_size != pre.input_size:
                # Fine-tuned at another size: the network is the same, the inputs change.
                resize = max(t.input_size, round(pre.resize_size * t.input_size / pre.input_size))
                pre = dataclasses.replace(pre, input_size=t.input_size, resize_size=resize)
                logger.info("fine-tuning at %d px (the detector was %d px)", t.input_size, det.config.preprocess.input_size)
            if pre != det.config.preprocess:
                det = det.with_config(det.config.replace(preprocess=pre))
            if t.face_detector is not None:
                det = Detector(det.model, det.config, device=self.device, face_detector=t.face_detector)
            else:
                det.to(self.device)
            return det
        det = Detector.from_backbone(
            t.backbone, weights=t.weights, input_size=t.effective_input_size, faces=t.faces, device=self.device
        )
        if t.face_detector is not None:
            det = Detector(det.model, det.config, device=self.device, face_detector=t.face_detector)
        return det

    def _find_data(self, data: DataArg, val: DataArg | None) -> tuple[Any, list[Sample], list[Sample], list[Sample], list[str]]:
        t = self.t
        splits = find_dataset(
            data, val_fraction=0.0 if val is not None else t.val_fraction, test_fraction=t.test_fraction, seed=t.seed
        )
        train, val_samples, test = splits.train, splits.val, splits.test
        val_roots: list[str] = []
        if val is not None:
            vs = find_dataset(val, val_fraction=0.0, test_fraction=0.0, seed=t.seed)
            if val_samples:
                logger.info("using the given validation data instead of the %d files of data's val split", len(val_samples))
            val_samples = vs.val or vs.get("all")
            val_roots = [str(r) for r in vs.roots]
            overlap = {s.path for s in train} & {s.path for s in val_samples}
            if overlap:
                raise DatasetError(
                    f"{len(overlap)} validation files are also training files (e.g. {min(overlap)}); "
                    "keep validation data apart"
                )
        # With self-blended fakes, real images alone can be trained on (as SBI was).
        check_classes(train, f"the training split of {', '.join(str(r) for r in splits.roots)}", fakes_optional=t.self_blend > 0)
        check_classes(val_samples, "the validation data")
        return splits, train, val_samples, test, val_roots

    def _prepare(self, samples: list[Sample], det: Detector, desc: str) -> PreparedImages:
        t = self.t
        cache_dir = (t.out_dir / "cache") if (t.cache == "disk" and t.out_dir is not None) else None
        kwargs: dict[str, Any] = {
            "preprocess": det.config.preprocess,
            "detector": det if det.config.faces.enabled else None,
            "cache": t.cache,
            "cache_dir": cache_dir,
            "strict": t.strict,
            "progress": None if self.show_progress else False,
            "desc": desc,
        }
        if t.cache == "disk" and self.dist.active:
            # Rank 0 builds the disk cache; the others then read it instead of decoding.
            if self.dist.is_main:
                prepared = prepare_images(samples, **kwargs)
            self.dist.barrier()
            if not self.dist.is_main:
                prepared = prepare_images(samples, **kwargs)
            return prepared
        return prepare_images(samples, **kwargs)

    # ------------------------------------------------------------------ main
    def fit(self, data: DataArg, *, val: DataArg | None, resume: bool, val_videos: DataArg | None = None) -> TrainResult:
        wall = time.perf_counter()
        seed_all(self.t.seed)
        det = self._build_detector()
        self.model = det.model.to(self.device).to(memory_format=torch.channels_last)
        self.num_outputs = det.config.num_outputs
        self.flip = det.config.test_time_flip
        self.fake_index = det.config.fake_index if det.config.num_outputs == 2 else 0
        self.amp = resolve_precision(self.t.precision, self.device)
        d = self._load_data(det, data, val)
        self._build_optimizer(d.train_ds.y)
        fingerprint = {
            "backbone": det.config.backbone,
            "input_size": det.config.preprocess.input_size,
            "faces": det.config.faces.enabled,
            "n_train": len(d.train_ds),
            "n_val": len(d.val_ds),
            "batch_size": self.t.batch_size,
            "world_size": self.dist.world,
            "seed": self.t.seed,
            "optimizer": self.t.optimizer,
            "balance": self.t.balance,
        }
        state = self._restore(fingerprint) if resume else _State()
        start_epoch = state.epoch
        self._train_epochs(d, state, fingerprint)
        result = self._finish(det, d, state, val_videos)
        logger.info(
            "trained %d epochs in %.1f s%s (best epoch %d, %s %.4f)",
            state.epoch, time.perf_counter() - wall,
            f", resumed after epoch {start_epoch}" if start_epoch else "",
            state.best_epoch, self.t.select_metric, nan(state.best_value),
        )  # fmt: skip
        return result

    def _load_data(self, det: Detector, data: DataArg, val: DataArg | None) -> _Data:
        """Find, split and prepare the data; build the datasets and loaders."""
        t = self.t
        splits, train_s, val_s, test_s, val_roots = self._find_data(data, val)
        data_start = time.perf_counter()
        train_p = self._prepare(train_s, det, "training images")
        val_p = self._prepare(val_s, det, "validation images")
        data_seconds = time.perf_counter() - data_start
        check_classes(train_p.samples, "the usable training images", fakes_optional=t.self_blend > 0)
        check_classes(val_p.samples, "the usable validation images")

        input_size = det.config.preprocess.input_size
        augment = build_augment(t.augment, input_size=input_size) if t.augment is not None else None
        train_ds = ImageDataset(train_p, augment=augment, seed=t.seed, self_blend=t.self_blend)
        val_ds = ImageDataset(val_p)
        rank, world = self.dist.rank, self.dist.world
        self.sample_weights: np.ndarray | None = None
        if t.balance == "source":
            self.sample_weights, sizes = train_ds.source_weights()
            logger.info(
                "balancing %d sources, an equal share of each epoch: %s", len(sizes),
                ", ".join(f"{k if k == SELF_BLENDED else Path(k).name} ({n} images)" for k, n in sizes.items()),
            )  # fmt: skip
        self.train_sampler = ShardSampler(
            len(train_ds), rank=rank, world=world, shuffle=True, seed=t.seed, weights=self.sample_weights
        )
        val_sampler = ShardSampler(len(val_ds), rank=rank, world=world, shuffle=False, seed=t.seed)
        shard = len(self.train_sampler)
        # A last batch of one breaks batch norm in training mode.
        drop_last = shard % t.batch_size == 1 and shard > 1
        pin = self.device.type == "cuda"  # page-locked batches: host-to-GPU copies overlap compute
        train_loader = DataLoader(
            train_ds, batch_size=t.batch_size, sampler=self.train_sampler, num_workers=t.num_workers,
            drop_last=drop_last, pin_memory=pin,
        )
        val_loader = DataLoader(val_ds, batch_size=t.batch_size, sampler=val_sampler, num_workers=t.num_workers, pin_memory=pin)
        steps_per_epoch = len(train_loader)
        self.total_steps = steps_per_epoch * t.epochs
        self.warmup_steps = round(min(t.warmup_epochs, max(t.epochs - 1, 0)) * steps_per_epoch)
        return _Data(splits, val_roots, test_s, train_p, val_p, train_ds, val_ds, train_loader, val_loader, data_seconds)

    def _build_optimizer(self, y_train: np.ndarray) -> None:
        """Loss, optimizer (no weight decay on biases and norms), scaler; the head for freezing."""
        t, model = self.t, self.model
        self.head = last_linear(model)[2]
        head_ids = {id(p) for p in self.head.parameters()}
        self.criterion = self._criterion(y_train, self.sample_weights)
        groups = [
            {"params": [p for p in model.parameters() if p.ndim > 1], "weight_decay": t.weight_decay, "base_lr": t.lr},
            {"params": [p for p in model.parameters() if p.ndim <= 1], "weight_decay": 0.0, "base_lr": t.lr},
        ]
        if t.optimizer == "adamw":
            self.opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=t.lr)
        elif t.optimizer == "adam":
            self.opt = torch.optim.Adam(groups, lr=t.lr)
        else:
            self.opt = torch.optim.SGD(groups, lr=t.lr, momentum=0.9, nesterov=True)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.ddp: nn.Module = model
        self.backbone_params = [p for p in model.parameters() if id(p) not in head_ids]
        self.step = 0

    def _checkpoint_paths(self) -> tuple[Path, Path, Path] | None:
        if self.t.out_dir is None:
            return None
        ck_dir = self.t.out_dir / "checkpoints"
        return ck_dir, ck_dir / "last.safetensors", ck_dir / "best.safetensors"

    def _restore(self, fingerprint: dict[str, Any]) -> _State:
        """The state of a resumed run from its last checkpoint, or a fresh one."""
        paths = self._checkpoint_paths()
        if paths is None or not paths[1].is_file():
            logger.info("no checkpoint at %s: starting from scratch", paths[1] if paths else None)
            return _State()
        _, last_path, best_path = paths
        saved = self._load_checkpoint(last_path, fingerprint)
        self.step = saved["step"]
        state = _State(
            history=saved["history"],
            epoch=saved["epoch"],
            stopped_early=saved.get("stopped_early", False),
            train_seconds=saved.get("train_seconds", 0.0),
            best_epoch=saved["best"]["epoch"],
            best_value=saved["best"]["value"],
            since_best=saved["best"]["since"],
        )
        if state.best_epoch and best_path.is_file():
            tensors = read_checkpoint(best_path)[0]
            state.best_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
        logger.info("resuming from %s after epoch %d", last_path, state.epoch)
        return state

    def _train_epochs(self, d: _Data, state: _State, fingerprint: dict[str, Any]) -> None:
        """Train, validate and checkpoint each epoch; keep the best; stop early when asked."""
        t = self.t
        paths = self._checkpoint_paths()
        direction = SELECT_METRICS[t.select_metric]
        self._set_frozen(state.epoch + 1)
        for epoch in range(state.epoch + 1, t.epochs + 1):
            if state.stopped_early:
                break
            self._set_frozen(epoch)
            self.train_sampler.set_epoch(epoch)
            d.train_ds.set_epoch(epoch)
            t0 = time.perf_counter()
            train_stats = self._train_epoch(d.train_loader, epoch)
            t1 = time.perf_counter()
            val_stats = self._epoch_metrics(self._predict(d.val_loader), "val")
            t2 = time.perf_counter()
            entry = {
                "epoch": epoch,
                "lr": self.opt.param_groups[0]["lr"],
                **train_stats,
                **val_stats,
                "train_time_s": t1 - t0,
                "val_time_s": t2 - t1,
                "time_s": t2 - t0,
                "train_images_per_s": len(d.train_ds) / max(t1 - t0, 1e-9),
            }
            state.train_seconds += t2 - t0
            state.epoch = epoch
            value = entry[t.select_metric]
            improved = value is not None and not math.isnan(value) and (
                state.best_value is None
                or (value > state.best_value if direction == "max" else value < state.best_value)
            )
            if improved:
                state.best_epoch, state.best_value, state.since_best = epoch, value, 0
                state.best_state = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            else:
                state.since_best += 1
            entry["best_epoch"] = state.best_epoch
            state.history.append(entry)
            logger.info(
                "epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f auc %.4f | %.1f s",
                epoch, t.epochs, entry["train_loss"], entry["train_accuracy"],
                entry["val_loss"], entry["val_accuracy"], nan(entry["val_auc"]), entry["time_s"],
            )  # fmt: skip
            if t.early_stopping_patience is not None and state.since_best >= t.early_stopping_patience:
                state.stopped_early = True
                logger.info(
                    "early stopping after epoch %d: %s has not improved for %d epochs (best %.4f at epoch %d)",
                    epoch, t.select_metric, state.since_best, state.best_value, state.best_epoch,
                )  # fmt: skip
            if paths is not None:
                if self.dist.is_main:
                    self._write_checkpoints(paths, state, improved=improved, fingerprint=fingerprint)
                self.dist.barrier()
            if t.on_epoch_end is not None:
                t.on_epoch_end(dict(entry))

    def _write_checkpoints(
        self, paths: tuple[Path, Path, Path], state: _State, *, improved: bool, fingerprint: dict[str, Any]
    ) -> None:
        ck_dir, last_path, best_path = paths
        ck_dir.mkdir(parents=True, exist_ok=True)
        if improved and state.best_state is not None:
            write_checkpoint(
                best_path,
                {f"model.{k}": v for k, v in state.best_state.items()},
                {"format": CHECKPOINT_FORMAT, "epoch": state.epoch, "value": state.best_value},
            )
        self._save_checkpoint(last_path, state, fingerprint=fingerprint)

    def _finish(self, det: Detector, d: _Data, state: _State, val_videos: DataArg | None) -> TrainResult:
        """Restore the best epoch, calibrate on validation (images, and videos when given), measure the test split, save."""
        t = self.t
        if state.best_state is not None:
            self.model.load_state_dict(state.best_state)
        self.model.eval()
        config = det.config
        val_rows = self._predict(d.val_loader)
        y_val, margin_val = val_rows[:, 1].astype(np.int64), self._margin(val_rows)
        calibration = config.calibration
        if t.calibrate:
            calibration = calibrate(margin_val, y_val, target_precision=t.target_precision)
            calibration = dataclasses.replace(
                calibration,
                fitted_on={
                    **calibration.fitted_on,
                    "kind": "image",
                    "data": _names(d.val_roots or [str(r) for r in d.splits.roots]),
                    "flip": config.test_time_flip,
                },
            )
        metrics = prefixed(binary_metrics(y_val, self._scores(margin_val, calibration.temperature), threshold=calibration.threshold), "val")
        test_counts = {"real": 0, "fake": 0}
        skipped = len(d.train_p.skipped) + len(d.val_p.skipped)
        if d.test_samples:
            test_p = self._prepare(d.test_samples, det, "test images")
            skipped += len(test_p.skipped)
            test_counts = class_counts(test_p.samples)
            test_loader = DataLoader(
                ImageDataset(test_p),
                batch_size=t.batch_size,
                sampler=ShardSampler(len(test_p), rank=self.dist.rank, world=self.dist.world, shuffle=False, seed=0),
                num_workers=t.num_workers,
            )
            rows = self._predict(test_loader)
            y_test, scores = rows[:, 1].astype(np.int64), self._scores(self._margin(rows), calibration.temperature)
            if 0 < y_test.sum() < len(y_test):
                metrics.update(prefixed(binary_metrics(y_test, scores, threshold=calibration.threshold), "test"))
        training = {
            **{k: v for k, v in config.training.items() if k not in ("metrics",)},
            **t.settings(),
            # Folder names only, never the training machine's paths: what the model saw is
            # recorded by content in training_manifest.json.
            "data": _names(str(r) for r in d.splits.roots),
            "val_data": _names(d.val_roots) or None,
            "layouts": {Path(k).name: v for k, v in d.splits.layouts.items()},
            "split": d.splits.split,
            "counts": {"train": class_counts(d.train_p.samples), "val": class_counts(d.val_p.samples), "test": test_counts},
            "skipped_files": skipped,
            "epochs_completed": state.epoch,
            "best_epoch": state.best_epoch,
            "stopped_early": state.stopped_early,
            "precision_used": str(self.amp).replace("torch.", "") if self.amp is not None else "fp32",
            "world_size": self.dist.world,
            "train_seconds": round(state.train_seconds, 1),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "library_version": __version__,
            "metrics": {
                k: v
                for k, v in metrics.items()
                if isinstance(v, (int, float)) and not k.endswith(("threshold", "_n_real", "_n_fake"))
            },
        }
        config = config.replace(calibration=calibration, training=jsonable(training))
        for p in self.model.parameters():
            p.requires_grad_(True)
        detector = Detector(self.model, config, device=self.device, face_detector=t.face_detector, source="trained")
        manifest = TrainingManifest.from_files(
            {
                "train": [s.path for s in d.train_p.samples],
                "val": [s.path for s in d.val_p.samples],
                "test": [s.path for s in d.test_samples],
            }
        )
        if val_videos is not None and t.calibrate:
            video_cal, used, y_v, s_v = fit_video_calibration(
                detector, val_videos, target_precision=t.target_precision, progress=self.show_progress
            )
            metrics.update(prefixed(binary_metrics(y_v, s_v, threshold=video_cal.threshold), "val_video"))
            metrics["val_video_uncertain_share"] = video_cal.fitted_on.get("uncertain_share")
            training["metrics"].update(
                {k: v for k, v in metrics.items() if k.startswith("val_video_") and isinstance(v, (int, float))}
            )
            config = config.replace(video_calibration=video_cal, training=jsonable(training))
            detector = detector.with_config(config)
            manifest = manifest.with_split("val", [h for h in file_digests(used).values() if h is not None])
        detector.training_manifest = manifest
        result = TrainResult(
            detector=detector,
            history=state.history,
            best_epoch=state.best_epoch,
            metrics=metrics,
            stopped_early=state.stopped_early,
            out_dir=t.out_dir,
            data_seconds=d.data_seconds,
        )
        if t.out_dir is not None:
            if self.dist.is_main:
                detector.save_pretrained(t.out_dir)
                result.save_history(t.out_dir)
            self.dist.barrier()
        return result

    @staticmethod
    def _scores(margin: np.ndarray, temperature: float) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-margin / temperature))

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(self, path: Path, state: _State, *, fingerprint: dict[str, Any]) -> None:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_meta = optimizer_to_parts(self.opt)
        rng_tensors, rng_meta = rng_parts()
        tensors.update(opt_tensors)
        tensors.update(rng_tensors)
        saved = {
            "format": CHECKPOINT_FORMAT,
            "library_version": __version__,
            "epoch": state.epoch,
            "step": self.step,
            "history": state.history,
            "best": {"epoch": state.best_epoch, "value": state.best_value, "since": state.since_best},
            "stopped_early": state.stopped_early,
            "train_seconds": state.train_seconds,
            "fingerprint": fingerprint,
            "settings": self.t.settings(),
            "optimizer": opt_meta,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_meta,
        }
        write_checkpoint(path, tensors, saved)

    def _load_checkpoint(self, path: Path, fingerprint: dict[str, Any]) -> dict[str, Any]:
        tensors, state = read_checkpoint(path)
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ModelLoadError(
                f"{path}: checkpoint format {shorten(state.get('format'))} is not {CHECKPOINT_FORMAT}; "
                "delete it to start over"
            )
        check_state(state, path, optimizer=self.opt.state_dict())
        saved = state["fingerprint"]
        diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {v!r}" for k, v in fingerprint.items() if saved.get(k) != v]
        if diffs:
            raise ConfigError(
                f"{path} was written by a run with other settings or data ({'; '.join(diffs)}); "
                "resume with the same settings, or use another out_dir"
            )
        if state["settings"].get("epochs") != self.t.epochs:
            logger.warning(
                "resuming a run planned for %s epochs with epochs=%d: the learning-rate schedule changes",
                state["settings"].get("epochs"), self.t.epochs,
            )
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(model_state, strict=True)
        except RuntimeError as e:
            raise ModelLoadError(f"{path}: the checkpoint's weights do not fit the model: {e}") from e
        try:
            self.opt.load_state_dict(optimizer_from_parts(tensors, state["optimizer"]))
            if self.scaler is not None and state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
            restore_rng(tensors, state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
            raise ModelLoadError(
                f"{path}: the checkpoint's optimizer or random state cannot be restored "
                f"({type(e).__name__}: {shorten(str(e), 200)}); delete it to start over"
            ) from e
        return state


def _names(roots: Any) -> list[str]:
    """The folders' names (their last component), for provenance without the machine's paths."""
    return [Path(str(r)).name for r in roots or []]


def class_counts(samples: Sequence[Sample]) -> dict[str, int]:
    n_fake = sum(s.y for s in samples)
    return {"real": len(samples) - n_fake, "fake": n_fake}
