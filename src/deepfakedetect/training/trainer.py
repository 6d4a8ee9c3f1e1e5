"""Fine-tuning a detector: :class:`Trainer` and :class:`TrainResult`.

One loop serves a laptop and a cluster: under ``torchrun`` (``WORLD_SIZE`` > 1 in the
environment) the same call joins the process group (NCCL on GPUs, gloo on CPUs),
trains a DistributedDataParallel model on its own shard of each epoch, all-gathers the
predictions for the metrics, and only rank 0 writes files.

Reproducibility: every generator is seeded; the order of each epoch comes from a
generator seeded with ``(seed, epoch)`` and the augmentation of each item from
``(seed, epoch, index)``, so a run stopped and resumed from its checkpoint ends with the
same weights, bit for bit on CPU, as a run that never stopped.

Checkpoints hold tensors in safetensors and everything else as JSON (in the
safetensors header); nothing is pickled. They are written to a temporary file and
renamed, so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from deepfakedetect._config import FaceConfig
from deepfakedetect._errors import ConfigError
from deepfakedetect._utils import atomic_write_text, jsonable, progress_enabled
from deepfakedetect.detector import Detector
from deepfakedetect.models.precision import PRECISIONS as _PRECISIONS
from deepfakedetect.training.augment import AugmentConfig
from deepfakedetect.training.checkpoint import (
    read_checkpoint,
    write_checkpoint,
)
from deepfakedetect.training.distributed import (
    setup_distributed,
)
from deepfakedetect.training.folders import DataArg
from deepfakedetect.training.history import TrainResult
from deepfakedetect.training.run import SELECT_METRICS, Run
from deepfakedetect.training.temporal import (
    TemporalTrainConfig,
    list_videos,
    train_temporal,
)

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "Trainer", "read_checkpoint", "write_checkpoint"]

_OPTIMIZERS = ("adamw", "adam", "sgd")
_SCHEDULERS = ("cosine", "linear", "constant")
_CACHES = ("memory", "disk", None)
_DEFAULT_LR = {"adamw": 3e-4, "adam": 3e-4, "sgd": 1e-2}
_DEFAULT_WD = {"adamw": 0.05, "adam": 0.0, "sgd": 1e-4}


# ---------------------------------------------------------------------------- precision


# ---------------------------------------------------------------------------- distribution


# ---------------------------------------------------------------------------- results


# ---------------------------------------------------------------------------- checkpoints


# ---------------------------------------------------------------------------- trainer


def _check_positive_int(name: str, value: Any, *, allow_none: bool = False, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_number(name: str, value: Any, lo: float, hi: float, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and lo <= value <= hi):
        raise ConfigError(f"{name} must be a number in [{lo}, {hi}], got {value!r}")


class Trainer:
    """Fine-tunes a detector on folders of real and fake images.

    Args:
        backbone: A torchvision classification model name (``"resnet50"``, see
            ``list_backbones()``), or an existing :class:`Detector` to fine-tune in
            place (its own preprocessing and face settings are used, and ``weights``
            and ``faces`` are ignored; ``input_size`` may change its input size).
        weights: Starting weights of a named backbone: ``"imagenet"`` (default;
            downloaded by torchvision once), ``None`` (random), a torchvision weights
            name, or a ``.safetensors`` file.
        epochs: Number of epochs.
        batch_size: Images per step and process (under torchrun the global batch is
            ``batch_size x world size``).
        lr: Peak learning rate (default 3e-4 for AdamW and Adam, 1e-2 for SGD).
        optimizer: ``"adamw"``, ``"adam"`` or ``"sgd"`` (momentum 0.9, Nesterov).
        scheduler: ``"cosine"`` (to zero), ``"linear"`` (to zero) or ``"constant"``,
            stepped every batch, after ``warmup_epochs`` of linear warm-up.
        warmup_epochs: Epochs of warm-up (fractions allowed); limited to ``epochs - 1``.
        weight_decay: Decoupled weight decay for weights (not biases or norm
            parameters); default 0.05 for AdamW, 0 for Adam, 1e-4 for SGD.
        freeze_backbone: Train only the head (a linear probe); the backbone's batch
            norm statistics stay fixed too.
        unfreeze_at_epoch: With ``freeze_backbone``, the epoch (from 1) at which the
            whole network starts training (staged fine-tuning).
        class_weights: ``"balanced"`` (weight classes by inverse frequency), ``None``,
            or ``{"real": w, "fake": w}``.
        balance: ``None`` (default: every training image once an epoch) or
            ``"source"``: each data folder given to :meth:`fit` (and the self-blended
            fakes, as one more) gets the same share of an epoch, half of it to each of
            its classes, drawn with replacement; an epoch keeps its number of images. So
            a small folder (120 GAN fakes) is not drowned by a large one (4,200 face
            swaps). ``"balanced"`` class weights then follow the drawn shares.
        precision: ``"auto"`` (bf16 autocast on CPUs with native bf16 and on GPUs,
            else fp32), ``"fp32"``, ``"bf16"``, or ``"fp16"`` (CUDA only, with loss scaling).
        grad_clip: Maximum gradient norm, or ``None`` for no clipping.
        augment: An :class:`AugmentConfig` (default: the default one) or ``None`` for
            no augmentation. Only training data is augmented.
        self_blend: Synthetic fakes per real training image and epoch, made from the
            real face itself (self-blended images, SBI: a shifted, recoloured,
            sharpened or blurred copy blended back through a random face mask; see
            [self-blended fakes](../concepts/self-blending.md)). They teach the blending seam that face
            swaps and reenactments share, which carries over to methods and people
            not in the training data. 0 (default) turns it off; 1 adds one per real.
            The mask assumes face crops (the face stage on) or face-centred photos.
        input_size: Side of the square input: 224 by default for a new detector; when
            fine-tuning a :class:`Detector`, ``None`` (default) keeps its size, and
            another size trains (and ships) it at that size, its resize scaled alike
            (use the returned detector: the one passed in keeps its old config).
        faces: Face stage of a new detector: ``None``/``False`` (whole images),
            ``True`` or a :class:`FaceConfig`. With faces on, training images are cropped
            to their largest face exactly as inference crops them.
        face_detector: A face detector callable to use instead of the configured one.
        select_metric: Which validation metric picks the kept epoch: ``"val_auc"``,
            ``"val_accuracy"``, ``"val_balanced_accuracy"``, ``"val_loss"``, ``"val_eer"``.
        early_stopping_patience: Stop after this many epochs without improvement.
        seed: Seed of initialisation, data order, augmentation and splits.
        out_dir: Folder for the model (``config.json``, ``model.safetensors``,
            ``README.md``), history files, ``checkpoints/`` and the disk cache.
        num_workers: DataLoader worker processes (0: load in the training process).
        progress: Progress bars (default: on unless ``DEEPFAKEDETECT_PROGRESS=0``).
        cache: ``"memory"``, ``"disk"`` (in ``out_dir/cache``) or ``None`` (decode
            every epoch).
        target_precision: The class-balanced precision each call must reach on the
            validation data outside the uncertain band (``docs/concepts/calibration.md``);
            ``None`` fits no band.
        calibrate: Fit temperature, threshold and operating points on validation
            data at the end.
        val_fraction: Share of each class held out for validation from a folder
            without split folders.
        test_fraction: Share of each class held out for testing from such a folder.
        strict: Raise on unreadable images (and images without a face) instead of
            skipping them.
        device: Where to train (default: CUDA when available; under torchrun, the
            local rank's GPU).
        on_epoch_end: Called with each epoch's history entry after its checkpoint is
            written (on every process).

    Raises:
        ConfigError: for invalid arguments (checked here, before any work).

    Example:
        >>> trainer = Trainer("resnet18", weights=None, epochs=1, input_size=32, progress=False)
        >>> trainer.epochs
        1
        >>> result = trainer.fit("data/")  # doctest: +SKIP
    """

    def __init__(
        self,
        backbone: str | Detector = "resnet50",
        *,
        weights: str | os.PathLike[str] | None = "imagenet",
        epochs: int = 10,
        batch_size: int = 32,
        lr: float | None = None,
        optimizer: str = "adamw",
        scheduler: str = "cosine",
        warmup_epochs: float = 1.0,
        weight_decay: float | None = None,
        freeze_backbone: bool = False,
        unfreeze_at_epoch: int | None = None,
        class_weights: str | dict[str, float] | None = "balanced",
        balance: str | None = None,
        precision: str = "auto",
        grad_clip: float | None = 1.0,
        augment: AugmentConfig | None = AugmentConfig(),  # noqa: B008 - frozen dataclass
        self_blend: float = 0.0,
        input_size: int | None = None,
        faces: bool | FaceConfig | None = None,
        face_detector: Callable[..., Any] | None = None,
        select_metric: str = "val_auc",
        early_stopping_patience: int | None = None,
        seed: int = 0,
        out_dir: str | os.PathLike[str] | None = None,
        num_workers: int = 0,
        progress: bool | None = None,
        cache: str | None = "memory",
        calibrate: bool = True,
        target_precision: float | None = 0.9,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        strict: bool = False,
        device: str | torch.device | None = None,
        on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if not isinstance(backbone, (str, Detector)):
            raise ConfigError(f"backbone must be a model name or a Detector, got {type(backbone).__name__}")
        _check_positive_int("epochs", epochs)
        _check_positive_int("batch_size", batch_size)
        _check_positive_int("num_workers", num_workers, minimum=0)
        _check_positive_int("early_stopping_patience", early_stopping_patience, allow_none=True)
        _check_positive_int("unfreeze_at_epoch", unfreeze_at_epoch, allow_none=True)
        _check_positive_int("input_size", input_size, minimum=16, allow_none=True)
        if optimizer not in _OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {', '.join(_OPTIMIZERS)}, got {optimizer!r}")
        if scheduler not in _SCHEDULERS:
            raise ConfigError(f"scheduler must be one of {', '.join(_SCHEDULERS)}, got {scheduler!r}")
        if precision not in _PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(_PRECISIONS)}, got {precision!r}")
        if cache not in _CACHES:
            raise ConfigError(f"cache must be 'memory', 'disk' or None, got {cache!r}")
        if select_metric not in SELECT_METRICS:
            raise ConfigError(f"select_metric must be one of {', '.join(SELECT_METRICS)}, got {select_metric!r}")
        if augment is not None and not isinstance(augment, AugmentConfig):
            raise ConfigError(f"augment must be an AugmentConfig or None, got {type(augment).__name__}")
        _check_number("lr", lr, 1e-8, 10.0, allow_none=True)
        _check_number("weight_decay", weight_decay, 0.0, 10.0, allow_none=True)
        _check_number("warmup_epochs", warmup_epochs, 0.0, 1e6)
        _check_number("grad_clip", grad_clip, 1e-6, 1e6, allow_none=True)
        _check_number("self_blend", self_blend, 0.0, 10.0)
        _check_number("val_fraction", val_fraction, 0.0, 0.9)
        if target_precision is not None and not (
            isinstance(target_precision, (int, float)) and 0.5 < float(target_precision) <= 1.0
        ):
            raise ConfigError(f"target_precision must be in (0.5, 1] or None, got {target_precision!r}")
        _check_number("test_fraction", test_fraction, 0.0, 0.9)
        if unfreeze_at_epoch is not None and not freeze_backbone:
            raise ConfigError("unfreeze_at_epoch needs freeze_backbone=True (it says when the frozen backbone thaws)")
        if isinstance(class_weights, dict):
            if set(class_weights) != {"real", "fake"}:
                raise ConfigError(f"class_weights as a mapping needs exactly 'real' and 'fake', got {sorted(class_weights)}")
            for k, v in class_weights.items():
                _check_number(f"class_weights[{k!r}]", v, 1e-6, 1e6)
        elif class_weights not in ("balanced", None):
            raise ConfigError(f"class_weights must be 'balanced', None or {{'real': w, 'fake': w}}, got {class_weights!r}")
        if balance not in (None, "source"):
            raise ConfigError(f"balance must be None or 'source', got {balance!r}")
        if faces is not None and not isinstance(faces, (bool, FaceConfig)):
            raise ConfigError(f"faces must be True, False, None or a FaceConfig, got {faces!r}")
        if isinstance(backbone, str) and weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise ConfigError(f"weights must be 'imagenet', None, a weights name or a path, got {weights!r}")
        self.backbone = backbone
        self.weights = None if isinstance(weights, str) and weights.lower() == "none" else weights
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = float(lr) if lr is not None else _DEFAULT_LR[optimizer]
        self.scheduler = scheduler
        self.warmup_epochs = float(warmup_epochs)
        self.weight_decay = float(weight_decay) if weight_decay is not None else _DEFAULT_WD[optimizer]
        self.freeze_backbone = freeze_backbone
        self.unfreeze_at_epoch = unfreeze_at_epoch
        self.class_weights = class_weights
        self.balance = balance
        self.precision = precision
        self.grad_clip = grad_clip
        self.augment = augment
        self.self_blend = float(self_blend)
        self.input_size = input_size
        self.faces = faces
        self.face_detector = face_detector
        self.select_metric = select_metric
        self.early_stopping_patience = early_stopping_patience
        self.seed = int(seed)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.num_workers = num_workers
        self.progress = progress
        self.cache = cache
        self.calibrate = calibrate
        self.target_precision = None if target_precision is None else float(target_precision)
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.strict = strict
        self.device = device
        self.on_epoch_end = on_epoch_end

    def __repr__(self) -> str:
        name = self.backbone if isinstance(self.backbone, str) else repr(self.backbone)
        return f"Trainer(backbone={name!r}, epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr:g})"

    @property
    def effective_input_size(self) -> int:
        """The input size training uses: ``input_size``, else the detector's own or 224."""
        if self.input_size is not None:
            return self.input_size
        return self.backbone.config.preprocess.input_size if isinstance(self.backbone, Detector) else 224

    def settings(self) -> dict[str, Any]:
        """The training settings as a JSON-ready dict (recorded in ``config.training``)."""
        return {
            "backbone": self.backbone if isinstance(self.backbone, str) else self.backbone.config.backbone,
            "init_weights": (
                f"detector:{self.backbone.source}"
                if isinstance(self.backbone, Detector)
                # The file's name only: a path would name the training machine's folders.
                else None if self.weights is None else Path(str(self.weights)).name
            ),
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "scheduler": self.scheduler,
            "warmup_epochs": self.warmup_epochs,
            "weight_decay": self.weight_decay,
            "freeze_backbone": self.freeze_backbone,
            "unfreeze_at_epoch": self.unfreeze_at_epoch,
            "class_weights": self.class_weights,
            "balance": self.balance,
            "precision": self.precision,
            "grad_clip": self.grad_clip,
            "augment": self.augment.to_dict() if self.augment is not None else None,
            "self_blend": self.self_blend,
            "input_size": self.effective_input_size,
            "select_metric": self.select_metric,
            "early_stopping_patience": self.early_stopping_patience,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------ fit
    def fit(
        self, data: DataArg, *, val: DataArg | None = None, val_videos: DataArg | None = None, resume: bool = False
    ) -> TrainResult:
        """Train on ``data``, keep the best epoch, calibrate, and return the detector.

        Args:
            data: A folder (or list of folders) with ``real/`` and ``fake/``, or with
                ``train/``, ``val/``, ``test/`` each holding them.
            val: Validation folder(s) instead of the ``val/`` split or a split-off
                share of ``data`` (its ``val/`` split when it has split folders,
                else all of it).
            val_videos: Validation video folder(s) (``real/`` and ``fake/`` holding
                videos): the trained detector scores them at video level (the config's
                sampler and aggregator) and fits its video calibration on them
                (``config.video_calibration``). Without them, videos use the image
                calibration.
            resume: Continue from ``out_dir/checkpoints/last.safetensors`` when it
                exists (the same settings and data are required); a finished run is
                only finalised again.

        Returns:
            A :class:`TrainResult`. With ``out_dir``, the model folder, history
            files and checkpoints are written there too.

        Raises:
            DatasetError: bad data layout, a split without both classes, or (in strict
                mode) unusable files.
            ConfigError: ``resume`` without ``out_dir``, or a checkpoint from other settings.
            ModelLoadError: an unreadable checkpoint or weights.
        """
        if resume and self.out_dir is None:
            raise ConfigError("resume=True needs out_dir (where the checkpoints are)")
        dist, device = setup_distributed(self.device)
        try:
            return Run(self, dist, device).fit(data, val=val, val_videos=val_videos, resume=resume)
        finally:
            dist.close()

    def fit_temporal(
        self,
        videos: str | os.PathLike[str],
        *,
        val: str | os.PathLike[str] | None = None,
        config: TemporalTrainConfig | None = None,
    ) -> TrainResult:
        """Train a temporal head over the face tracks of videos (the ``temporal`` aggregator).

        The trainer's ``backbone`` must be a :class:`Detector` with the face stage on; its
        weights stay frozen. Each video's frames are sampled as inference samples them,
        faces are found, linked into tracks and embedded once (cached in
        ``out_dir/embeddings`` unless ``cache=None``, so later runs do not decode video),
        and a small GRU or 1-D convolution learns from each video's longest track (see
        :func:`~deepfakedetect.training.temporal.train_temporal`). The head is set on the
        detector (``detector.temporal_head``); with ``out_dir`` the detector is saved there
        with ``temporal.json``, ``temporal.safetensors`` and ``temporal_report.json``.

        Args:
            videos: A folder with ``real/`` and ``fake/`` videos.
            val: The same for validation; the epoch of lowest validation log loss is kept.
            config: Head and training settings (default: ``TemporalTrainConfig(seed=``
                this trainer's seed ``)``; the trainer's other settings are for images).

        Returns:
            A :class:`TrainResult`: the detector with its head, the per-epoch history
            (``train_loss``, ``val_loss``, ``val_auc``), the kept epoch, the kept
            epoch's validation metrics, and the embedding time as ``data_seconds``.

        Raises:
            ConfigError: the backbone is a model name, or its face stage is off.
            DatasetError: a folder without ``real/`` or ``fake/`` videos, or no faces.
        """
        det = self.backbone
        if not isinstance(det, Detector) or not det.config.faces.enabled:
            raise ConfigError(
                "fit_temporal learns from a trained detector's face embeddings: pass one with the face stage on, "
                "e.g. Trainer(Detector.from_pretrained(), out_dir=...).fit_temporal('videos/')"
            )
        cfg = config if config is not None else TemporalTrainConfig(seed=self.seed)
        out = self.out_dir
        show = progress_enabled(self.progress)  # progress lines on stderr, as the progress bars
        head, report = train_temporal(
            det,
            list_videos(videos),
            val=list_videos(val) if val is not None else (),
            config=cfg,
            cache_dir=out / "embeddings" if out is not None and self.cache is not None else None,
            progress=(lambda line: print(line, file=sys.stderr, flush=True)) if show else None,
        )
        det.temporal_head = head
        best = report["history"][report["best_epoch"] - 1]
        if out is not None:
            det.save_pretrained(out)
            atomic_write_text(out / "temporal_report.json", json.dumps(jsonable(report), indent=2) + "\n")
        return TrainResult(
            detector=det,
            history=report["history"],
            best_epoch=report["best_epoch"],
            metrics={k: v for k, v in best.items() if k.startswith("val_")},
            out_dir=out,
            data_seconds=float(report["embed_seconds"]),
        )


