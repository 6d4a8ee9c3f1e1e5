"""One training run: data, epochs, validation, best-model selection, checkpoints (what Trainer.fit runs)."""

from __future__ import annotations

import datetime as _dt
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from deepfakedetect._errors import ConfigError, DatasetError, ModelLoadError
from deepfakedetect._metrics import binary_metrics, equal_error_rate, roc_auc
from deepfakedetect._untrusted import shorten
from deepfakedetect._utils import jsonable, progress_bar, progress_enabled
from deepfakedetect._version import __version__
from deepfakedetect.detector import Detector
from deepfakedetect.models.backbones import last_linear
from deepfakedetect.models.calibration import calibrate, fake_margin
from deepfakedetect.models.precision import resolve_precision
from deepfakedetect.training.augment import build_augment
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
    ImageDataset,
    PreparedImages,
    Sample,
    find_dataset,
    prepare_images,
)
from deepfakedetect.training.distributed import (
    Dist,
    ShardSampler,
    gather_rows,
)
from deepfakedetect.training.folders import DataArg, check_classes
from deepfakedetect.training.history import TrainResult

if TYPE_CHECKING:
    from deepfakedetect.training.trainer import Trainer

logger = logging.getLogger(__name__)

__all__ = ['Run', 'class_counts', 'nan', 'prefixed']

#: Metrics ``select_metric`` may name, with the direction that is better.
SELECT_METRICS = {
    "val_auc": "max",
    "val_accuracy": "max",
    "val_balanced_accuracy": "max",
    "val_loss": "min",
    "val_eer": "min",
}


class Run:
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
            if t.face_detector is not None:
                det = Detector(det.model, det.config, device=self.device, face_detector=t.face_detector)
            else:
                det.to(self.device)
            return det
        det = Detector.from_backbone(
            t.backbone, weights=t.weights, input_size=t.input_size, faces=t.faces, device=self.device
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
    def fit(self, data: DataArg, *, val: DataArg | None, resume: bool) -> TrainResult:
        t = self.t
        wall = time.perf_counter()
        seed_all(t.seed)
        det = self._build_detector()
        config = det.config
        model = det.model.to(self.device, memory_format=torch.channels_last)
        self.num_outputs = config.num_outputs
        self.fake_index = config.fake_index if config.num_outputs == 2 else 0
        self.amp = resolve_precision(t.precision, self.device)

        splits, train_s, val_s, test_s, val_roots = self._find_data(data, val)
        data_start = time.perf_counter()
        train_p = self._prepare(train_s, det, "training images")
        val_p = self._prepare(val_s, det, "validation images")
        data_seconds = time.perf_counter() - data_start
        check_classes(train_p.samples, "the usable training images", fakes_optional=t.self_blend > 0)
        check_classes(val_p.samples, "the usable validation images")

        augment = build_augment(t.augment, input_size=config.preprocess.input_size) if t.augment is not None else None
        train_ds = ImageDataset(train_p, augment=augment, seed=t.seed, self_blend=t.self_blend)
        val_ds = ImageDataset(val_p)
        self.train_sampler = ShardSampler(len(train_ds), rank=self.dist.rank, world=self.dist.world, shuffle=True, seed=t.seed)
        val_sampler = ShardSampler(len(val_ds), rank=self.dist.rank, world=self.dist.world, shuffle=False, seed=t.seed)
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

        head = last_linear(model)[2]
        head_ids = {id(p) for p in head.parameters()}
        self.head = head
        self.criterion = self._criterion(train_ds.y)
        decay = [p for p in model.parameters() if p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.ndim <= 1]
        groups = [
            {"params": decay, "weight_decay": t.weight_decay, "base_lr": t.lr},
            {"params": no_decay, "weight_decay": 0.0, "base_lr": t.lr},
        ]
        if t.optimizer == "adamw":
            opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=t.lr)
        elif t.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=t.lr)
        else:
            opt = torch.optim.SGD(groups, lr=t.lr, momentum=0.9, nesterov=True)
        self.opt = opt
        self.scaler = torch.amp.GradScaler("cuda") if self.amp == torch.float16 else None
        self.model = model
        self.ddp: nn.Module = model
        self.backbone_params = [p for p in model.parameters() if id(p) not in head_ids]

        fingerprint = {
            "backbone": config.backbone,
            "input_size": config.preprocess.input_size,
            "faces": config.faces.enabled,
            "n_train": len(train_ds),
            "n_val": len(val_ds),
            "batch_size": t.batch_size,
            "world_size": self.dist.world,
            "seed": t.seed,
            "optimizer": t.optimizer,
        }
        history: list[dict[str, Any]] = []
        start_epoch = 0
        self.step = 0
        best: dict[str, Any] = {"epoch": 0, "value": None, "since": 0, "state": None}
        stopped_early = False
        prior_seconds = 0.0
        ck_dir = t.out_dir / "checkpoints" if t.out_dir is not None else None
        last_path = ck_dir / "last.safetensors" if ck_dir is not None else None
        best_path = ck_dir / "best.safetensors" if ck_dir is not None else None
        if resume and last_path is not None and last_path.is_file():
            state = self._load_checkpoint(last_path, fingerprint)
            history = state["history"]
            start_epoch = state["epoch"]
            self.step = state["step"]
            stopped_early = state.get("stopped_early", False)
            prior_seconds = state.get("train_seconds", 0.0)
            best.update(epoch=state["best"]["epoch"], value=state["best"]["value"], since=state["best"]["since"])
            if best["epoch"] and best_path is not None and best_path.is_file():
                best["state"] = read_checkpoint(best_path)[0]
                best["state"] = {k[len("model."):]: v for k, v in best["state"].items() if k.startswith("model.")}
            logger.info("resuming from %s after epoch %d", last_path, start_epoch)
        elif resume:
            logger.info("no checkpoint at %s: starting from scratch", last_path)

        self._set_frozen(start_epoch + 1)
        train_seconds = prior_seconds
        direction = SELECT_METRICS[t.select_metric]
        for epoch in range(start_epoch + 1, t.epochs + 1):
            if stopped_early:
                break
            self._set_frozen(epoch)
            self.train_sampler.set_epoch(epoch)
            train_ds.set_epoch(epoch)
            t0 = time.perf_counter()
            train_stats = self._train_epoch(train_loader, epoch)
            t1 = time.perf_counter()
            val_rows = self._predict(val_loader)
            val_stats = self._epoch_metrics(val_rows, "val")
            t2 = time.perf_counter()
            entry = {
                "epoch": epoch,
                "lr": self.opt.param_groups[0]["lr"],
                **train_stats,
                **val_stats,
                "train_time_s": t1 - t0,
                "val_time_s": t2 - t1,
                "time_s": t2 - t0,
                "train_images_per_s": len(train_ds) / max(t1 - t0, 1e-9),
            }
            train_seconds += t2 - t0
            value = entry[t.select_metric]
            improved = value is not None and not math.isnan(value) and (
                best["value"] is None
                or (value > best["value"] if direction == "max" else value < best["value"])
            )
            if improved:
                best.update(epoch=epoch, value=value, since=0)
                best["state"] = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            else:
                best["since"] += 1
            entry["best_epoch"] = best["epoch"]
            history.append(entry)
            logger.info(
                "epoch %d/%d: train loss %.4f acc %.4f | val loss %.4f acc %.4f auc %.4f | %.1f s",
                epoch, t.epochs, entry["train_loss"], entry["train_accuracy"],
                entry["val_loss"], entry["val_accuracy"], nan(entry["val_auc"]), entry["time_s"],
            )
            if t.early_stopping_patience is not None and best["since"] >= t.early_stopping_patience:
                stopped_early = True
                logger.info(
                    "early stopping after epoch %d: %s has not improved for %d epochs (best %.4f at epoch %d)",
                    epoch, t.select_metric, best["since"], best["value"], best["epoch"],
                )
            if ck_dir is not None:
                if self.dist.is_main:
                    ck_dir.mkdir(parents=True, exist_ok=True)
                    if improved and best_path is not None:
                        write_checkpoint(
                            best_path,
                            {f"model.{k}": v for k, v in best["state"].items()},
                            {"format": CHECKPOINT_FORMAT, "epoch": epoch, "value": value},
                        )
                    self._save_checkpoint(
                        last_path, epoch=epoch, history=history, best=best, fingerprint=fingerprint,
                        stopped_early=stopped_early, train_seconds=train_seconds,
                    )
                self.dist.barrier()
            if t.on_epoch_end is not None:
                t.on_epoch_end(dict(entry))

        # ---------------------------------------------------------------- finalise
        if best["state"] is not None:
            self.model.load_state_dict(best["state"])
        self.model.eval()
        metrics: dict[str, Any] = {}
        val_rows = self._predict(val_loader)
        y_val, margin_val = val_rows[:, 1].astype(np.int64), self._margin(val_rows)
        calibration = config.calibration
        if t.calibrate:
            calibration = calibrate(margin_val, y_val)
        scores = 1.0 / (1.0 + np.exp(-margin_val / calibration.temperature))
        metrics.update(prefixed(binary_metrics(y_val, scores, threshold=calibration.threshold), "val"))
        test_counts = {"real": 0, "fake": 0}
        skipped = len(train_p.skipped) + len(val_p.skipped)
        if test_s:
            test_p = self._prepare(test_s, det, "test images")
            skipped += len(test_p.skipped)
            test_counts = class_counts(test_p.samples)
            test_loader = DataLoader(
                ImageDataset(test_p),
                batch_size=t.batch_size,
                sampler=ShardSampler(len(test_p), rank=self.dist.rank, world=self.dist.world, shuffle=False, seed=0),
                num_workers=t.num_workers,
            )
            rows = self._predict(test_loader)
            y_test, margin_test = rows[:, 1].astype(np.int64), self._margin(rows)
            scores = 1.0 / (1.0 + np.exp(-margin_test / calibration.temperature))
            if 0 < y_test.sum() < len(y_test):
                metrics.update(prefixed(binary_metrics(y_test, scores, threshold=calibration.threshold), "test"))
        completed = history[-1]["epoch"] if history else 0
        training = {
            **{k: v for k, v in config.training.items() if k not in ("metrics",)},
            **t.settings(),
            "data": [str(r) for r in splits.roots],
            "val_data": val_roots or None,
            "layouts": splits.layouts,
            "split": splits.split,
            "counts": {
                "train": class_counts(train_p.samples),
                "val": class_counts(val_p.samples),
                "test": test_counts,
            },
            "skipped_files": skipped,
            "epochs_completed": completed,
            "best_epoch": best["epoch"],
            "stopped_early": stopped_early,
            "precision_used": str(self.amp).replace("torch.", "") if self.amp is not None else "fp32",
            "world_size": self.dist.world,
            "train_seconds": round(train_seconds, 1),
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
        detector = Detector(
            self.model, config, device=self.device, face_detector=t.face_detector, source="trained"
        )
        result = TrainResult(
            detector=detector,
            history=history,
            best_epoch=best["epoch"],
            metrics=metrics,
            stopped_early=stopped_early,
            out_dir=t.out_dir,
            data_seconds=data_seconds,
        )
        if t.out_dir is not None:
            if self.dist.is_main:
                detector.save_pretrained(t.out_dir)
                result.save_history(t.out_dir)
            self.dist.barrier()
        logger.info(
            "trained %d epochs in %.1f s%s (best epoch %d, %s %.4f)",
            completed, time.perf_counter() - wall,
            f", resumed after epoch {start_epoch}" if start_epoch else "",
            best["epoch"], t.select_metric, nan(best["value"]),
        )  # fmt: skip
        return result

    # ------------------------------------------------------------------ pieces
    def _criterion(self, y: np.ndarray) -> nn.Module:
        t = self.t
        n_fake = int(y.sum())
        n_real = len(y) - n_fake
        if t.class_weights == "balanced":
            w_fake, w_real = len(y) / (2.0 * n_fake), len(y) / (2.0 * n_real)
        elif isinstance(t.class_weights, dict):
            w_fake, w_real = float(t.class_weights["fake"]), float(t.class_weights["real"])
        else:
            w_fake = w_real = 1.0
        if self.num_outputs == 1:
            # pos_weight scales the fake term; the real term keeps weight 1.
            return nn.BCEWithLogitsLoss(pos_weight=torch.tensor([w_fake / w_real], device=self.device))
        weight = torch.empty(2)
        weight[self.fake_index] = w_fake
        weight[1 - self.fake_index] = w_real
        return nn.CrossEntropyLoss(weight=weight.to(self.device))

    def _targets(self, y: torch.Tensor) -> torch.Tensor:
        if self.num_outputs == 1:
            return y.float().view(-1, 1)
        return torch.where(y == 1, self.fake_index, 1 - self.fake_index).long()

    def _set_frozen(self, epoch: int) -> None:
        t = self.t
        frozen = t.freeze_backbone and (t.unfreeze_at_epoch is None or epoch < t.unfreeze_at_epoch)
        current = getattr(self, "_frozen", None)
        if current == frozen:
            return
        for p in self.backbone_params:
            p.requires_grad_(not frozen)
        self._frozen = frozen
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            # DDP registers the parameters that need gradients when it is built: rebuild
            # it whenever that set changes.
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.ddp = self.model
        if current is not None:
            logger.info("epoch %d: backbone %s", epoch, "frozen" if frozen else "unfrozen")

    def _lr_factor(self, step: int) -> float:
        t = self.t
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if t.scheduler == "constant":
            return 1.0
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        if t.scheduler == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None)

    def _train_epoch(self, loader: DataLoader[Any], epoch: int) -> dict[str, Any]:
        t = self.t
        self.ddp.train()
        if self._frozen:
            # A linear probe keeps the backbone exactly as it is, batch-norm statistics included.
            self.model.eval()
            self.head.train()
        rows = []
        bar = progress_bar(len(loader), f"epoch {epoch}/{t.epochs}", unit="batch", progress=self.show_progress)
        try:
            for x, y, idx in loader:
                factor = self._lr_factor(self.step)
                for g in self.opt.param_groups:
                    g["lr"] = g["base_lr"] * factor
                x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                y = y.to(self.device)
                with self._autocast():
                    logits = self.ddp(x)
                loss = self.criterion(logits.float(), self._targets(y))
                self.opt.zero_grad(set_to_none=True)
                if self.scaler is not None:
                    self.scaler.scale(loss).backward()
                    self.scaler.unscale_(self.opt)
                else:
                    loss.backward()
                if t.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None], t.grad_clip)
                if self.scaler is not None:
                    self.scaler.step(self.opt)
                    self.scaler.update()
                else:
                    self.opt.step()
                self.step += 1
                if not math.isfinite(loss.item()):
                    raise ConfigError(
                        f"the training loss became {loss.item()} at epoch {epoch}, step {self.step}; "
                        f"lower the learning rate (now {t.lr:g}) or use precision='fp32'"
                    )
                rows.append(self._rows(idx, y, logits))
                if bar is not None:
                    bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
                    bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        self._sync_buffers()
        gathered = self._gather(rows)
        return self._epoch_metrics(gathered, "train")

    def _sync_buffers(self) -> None:
        """Give every process rank 0's batch-norm statistics, so all evaluate one model."""
        if not self.dist.active:
            return
        for buf in self.model.buffers():
            if self.dist.backend == "nccl" or buf.device.type == "cpu":
                torch.distributed.broadcast(buf, 0)
            else:
                tmp = buf.cpu()
                torch.distributed.broadcast(tmp, 0)
                buf.copy_(tmp)

    @staticmethod
    def _rows(idx: torch.Tensor, y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [idx.double().view(-1, 1).to(logits.device), y.double().view(-1, 1), logits.detach().double()], dim=1
        ).cpu()

    def _gather(self, rows: list[torch.Tensor]) -> np.ndarray:
        width = 2 + self.num_outputs
        local = torch.cat(rows) if rows else torch.zeros((0, width), dtype=torch.float64)
        full = gather_rows(local, self.dist, self.device).numpy()
        # Padding repeats a few items across processes: keep each index once, in order.
        _, first = np.unique(full[:, 0], return_index=True)
        return full[first]

    @torch.no_grad()
    def _predict(self, loader: DataLoader[Any]) -> np.ndarray:
        self.model.eval()
        rows = []
        for x, y, idx in loader:
            x = x.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            with self._autocast():
                logits = self.model(x)
            rows.append(self._rows(idx, y.to(self.device), logits.float()))
        return self._gather(rows)

    def _margin(self, rows: np.ndarray) -> np.ndarray:
        return fake_margin(rows[:, 2:], fake_index=self.fake_index)

    def _epoch_metrics(self, rows: np.ndarray, prefix: str) -> dict[str, Any]:
        y = rows[:, 1].astype(np.int64)
        margin = self._margin(rows)
        # Unweighted cross-entropy, the same for train and validation so the curves compare.
        loss = float(np.mean(np.logaddexp(0.0, -np.where(y == 1, margin, -margin)))) if len(y) else math.nan
        pred = (margin >= 0).astype(np.int64)
        out: dict[str, Any] = {
            f"{prefix}_loss": loss,
            f"{prefix}_accuracy": float(np.mean(pred == y)) if len(y) else math.nan,
            f"{prefix}_auc": roc_auc(y, margin) if len(y) else math.nan,
        }
        if prefix == "val":
            both = 0 < y.sum() < len(y)
            recall_fake = float(np.mean(pred[y == 1] == 1)) if y.sum() else math.nan
            recall_real = float(np.mean(pred[y == 0] == 0)) if (y == 0).any() else math.nan
            out["val_balanced_accuracy"] = (recall_fake + recall_real) / 2
            out["val_eer"] = equal_error_rate(y, margin)[0] if both else math.nan
        return out

    # ------------------------------------------------------------------ checkpoints
    def _save_checkpoint(
        self,
        path: Path | None,
        *,
        epoch: int,
        history: list[dict[str, Any]],
        best: dict[str, Any],
        fingerprint: dict[str, Any],
        stopped_early: bool,
        train_seconds: float,
    ) -> None:
        if path is None:
            return
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        opt_tensors, opt_meta = optimizer_to_parts(self.opt)
        rng_tensors, rng_meta = rng_parts()
        tensors.update(opt_tensors)
        tensors.update(rng_tensors)
        state = {
            "format": CHECKPOINT_FORMAT,
            "library_version": __version__,
            "epoch": epoch,
            "step": self.step,
            "history": history,
            "best": {"epoch": best["epoch"], "value": best["value"], "since": best["since"]},
            "stopped_early": stopped_early,
            "train_seconds": train_seconds,
            "fingerprint": fingerprint,
            "settings": self.t.settings(),
            "optimizer": opt_meta,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng_meta,
        }
        write_checkpoint(path, tensors, state)

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


def prefixed(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def class_counts(samples: Sequence[Sample]) -> dict[str, int]:
    n_fake = sum(s.y for s in samples)
    return {"real": len(samples) - n_fake, "fake": n_fake}


def nan(x: float | None) -> float:
    return math.nan if x is None else x
