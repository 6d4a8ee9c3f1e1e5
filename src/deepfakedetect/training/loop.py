"""The inner loop of training: one epoch of steps, predictions, and their metrics.

:class:`EpochLoop` holds what a step needs (model, optimizer, loss, learning-rate
schedule, freezing, autocast, the process group); :class:`~deepfakedetect.training.run.Run`
builds those and runs the epochs.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from deepfakedetect._errors import ConfigError
from deepfakedetect._metrics import equal_error_rate, roc_auc
from deepfakedetect._utils import progress_bar
from deepfakedetect.models.calibration import fake_margin
from deepfakedetect.training.distributed import Dist, ShardSampler, gather_rows

if TYPE_CHECKING:
    from deepfakedetect.training.trainer import Trainer

logger = logging.getLogger(__name__)

__all__ = ["EpochLoop", "nan", "prefixed"]


class EpochLoop:
    """Training steps and predictions for a :class:`~deepfakedetect.training.run.Run`."""

    t: Trainer
    dist: Dist
    device: torch.device
    model: nn.Module
    ddp: nn.Module
    head: nn.Module
    opt: torch.optim.Optimizer
    criterion: nn.Module
    scaler: torch.amp.GradScaler | None
    amp: torch.dtype | None
    backbone_params: list[nn.Parameter]
    train_sampler: ShardSampler
    sample_weights: np.ndarray | None
    num_outputs: int
    fake_index: int
    flip: bool
    total_steps: int
    warmup_steps: int
    step: int
    show_progress: bool

    def _criterion(self, y: np.ndarray, sample_weights: np.ndarray | None = None) -> nn.Module:
        """The loss; ``"balanced"`` class weights from the classes' shares of an epoch.

        The shares are the label counts, or with ``sample_weights`` (drawn in proportion
        to them) the classes' parts of the weights.
        """
        t = self.t
        w = np.ones(len(y)) if sample_weights is None else np.asarray(sample_weights, dtype=np.float64)
        share_fake = float(w[y == 1].sum() / w.sum())
        if t.class_weights == "balanced":
            w_fake, w_real = 1.0 / (2.0 * share_fake), 1.0 / (2.0 * (1.0 - share_fake))
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
                if self.flip:  # score as the detector will: averaged with the mirror image
                    logits = (logits.float() + self.model(x.flip(3)).float()) / 2
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



def prefixed(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def nan(x: float | None) -> float:
    return math.nan if x is None else x
