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

import csv
import datetime as _dt
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Sampler

from ._augment import AugmentConfig, build_augment
from ._calibration import calibrate, fake_margin
from ._config import FaceConfig
from ._data import (
    DataArg,
    ImageDataset,
    PreparedImages,
    Sample,
    check_classes,
    find_dataset,
    prepare_images,
)
from ._detector import Detector, progress_enabled
from ._errors import ConfigError, DatasetError, ModelLoadError
from ._metrics import binary_metrics, equal_error_rate, roc_auc
from ._model import _last_linear
from ._perf import PRECISIONS as _PRECISIONS
from ._perf import resolve_precision
from ._version import __version__

logger = logging.getLogger(__name__)

__all__ = ["TrainResult", "Trainer", "read_checkpoint", "write_checkpoint"]

CHECKPOINT_FORMAT = 1
_OPTIMIZERS = ("adamw", "adam", "sgd")
_SCHEDULERS = ("cosine", "linear", "constant")
_CACHES = ("memory", "disk", None)
#: Metrics ``select_metric`` may name, with the direction that is better.
SELECT_METRICS = {
    "val_auc": "max",
    "val_accuracy": "max",
    "val_balanced_accuracy": "max",
    "val_loss": "min",
    "val_eer": "min",
}
_DEFAULT_LR = {"adamw": 3e-4, "adam": 3e-4, "sgd": 1e-2}
_DEFAULT_WD = {"adamw": 0.05, "adam": 0.0, "sgd": 1e-4}


# ---------------------------------------------------------------------------- precision


# ---------------------------------------------------------------------------- distribution


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    backend: str | None = None
    created: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def close(self) -> None:
        if self.created and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.created = False


def _setup_distributed(device: str | torch.device | None) -> tuple[_Dist, torch.device]:
    dist = torch.distributed
    world_env = int(os.environ.get("WORLD_SIZE", "1") or 1)
    state = _Dist()
    if dist.is_available() and dist.is_initialized():
        state = _Dist(dist.get_rank(), dist.get_world_size(), str(dist.get_backend()), False)
    elif world_env > 1:
        if not dist.is_available():
            raise ConfigError("WORLD_SIZE > 1 but this torch build has no torch.distributed support")
        wants_cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
        backend = "nccl" if wants_cuda else "gloo"
        dist.init_process_group(backend=backend)
        state = _Dist(dist.get_rank(), dist.get_world_size(), backend, True)
        logger.info("joined process group: rank %d of %d (%s)", state.rank, state.world, backend)
    local_rank = int(os.environ.get("LOCAL_RANK", state.rank if state.active else 0))
    if device is not None:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None and state.active:
            dev = torch.device("cuda", local_rank)
    elif torch.cuda.is_available() and state.backend in (None, "nccl"):
        dev = torch.device("cuda", local_rank if state.active else torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return state, dev


class _ShardSampler(Sampler[int]):
    """Each process's share of an epoch, like ``DistributedSampler``.

    Training (``shuffle=True``): a permutation seeded by ``(seed, epoch)``, padded by
    repeating its start to a multiple of the world size, dealt round-robin. Evaluation:
    ``range(rank, n, world)``, no padding.
    """

    def __init__(self, n: int, *, rank: int, world: int, shuffle: bool, seed: int) -> None:
        self.n, self.rank, self.world, self.shuffle, self.seed = n, rank, world, shuffle, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.rank, self.n, self.world))
        g = torch.Generator()
        g.manual_seed(_epoch_seed(self.seed, self.epoch))
        order = torch.randperm(self.n, generator=g).tolist()
        total = math.ceil(self.n / self.world) * self.world
        order += order[: total - self.n]
        return order[self.rank : total : self.world]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        if not self.shuffle:
            return len(range(self.rank, self.n, self.world))
        return math.ceil(self.n / self.world)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, 1 << 31]).generate_state(1, np.uint64)[0] >> 1)


def _gather_rows(rows: torch.Tensor, dist: _Dist, device: torch.device) -> torch.Tensor:
    """All processes' ``(n_i, k)`` float64 rows, concatenated in rank order."""
    if not dist.active:
        return rows
    comm = device if dist.backend == "nccl" else torch.device("cpu")
    local = rows.to(comm)
    n = torch.tensor([local.shape[0]], device=comm, dtype=torch.int64)
    sizes = [torch.zeros_like(n) for _ in range(dist.world)]
    torch.distributed.all_gather(sizes, n)
    most = int(max(s.item() for s in sizes))
    padded = torch.zeros((most, local.shape[1]), dtype=local.dtype, device=comm)
    padded[: local.shape[0]] = local
    parts = [torch.zeros_like(padded) for _ in range(dist.world)]
    torch.distributed.all_gather(parts, padded)
    return torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]).cpu()


# ---------------------------------------------------------------------------- results


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes:
        detector: The trained detector (best epoch's weights, calibrated); ready for
            ``save_pretrained``.
        history: One dict per epoch: ``epoch``, ``lr``, ``train_loss``,
            ``train_accuracy``, ``train_auc``, ``val_loss``, ``val_accuracy``,
            ``val_balanced_accuracy``, ``val_auc``, ``val_eer``, ``train_time_s``,
            ``val_time_s``, ``time_s``, ``train_images_per_s``.
        best_epoch: The epoch (from 1) whose weights were kept.
        metrics: Validation (and, when the data has a test split, test) metrics of
            the returned detector, calibrated: ``val_auc``, ``test_accuracy``, ...
        stopped_early: Whether early stopping ended training.
        out_dir: Where files were written, if anywhere.
        data_seconds: Time spent decoding and caching inputs before training.

    Example:
        >>> r = TrainResult(detector=None, history=[{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6}], best_epoch=1)
        >>> r.history[0]["val_loss"]
        0.6
    """

    detector: Any
    history: list[dict[str, Any]]
    best_epoch: int
    metrics: dict[str, Any] = field(default_factory=dict)
    stopped_early: bool = False
    out_dir: Path | None = None
    data_seconds: float = 0.0

    def save_history(self, directory: str | os.PathLike[str]) -> list[Path]:
        """Write ``history.json``, ``history.csv`` and, with matplotlib, ``history.png``.

        The plot has loss, accuracy and ROC AUC against the epoch for training and
        validation, with the kept epoch marked. Without matplotlib (the ``plot``
        extra: ``pip install deepfakedetect[plot]``) the PNG is skipped with a log note.

        Args:
            directory: The folder (created if missing).

        Returns:
            The files written.

        Example:
            >>> import tempfile
            >>> r = TrainResult(None, [{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6}], best_epoch=1)
            >>> sorted(p.name for p in r.save_history(tempfile.mkdtemp()))[:2]
            ['history.csv', 'history.json']
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        doc = {"best_epoch": self.best_epoch, "stopped_early": self.stopped_early, "history": self.history}
        path = out / "history.json"
        _atomic_text(path, json.dumps(_jsonable(doc), indent=2) + "\n")
        written.append(path)
        columns: list[str] = []
        for row in self.history:
            columns += [k for k in row if k not in columns]
        path = out / "history.csv"
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in self.history:
                writer.writerow({k: row.get(k, "") for k in columns})
        os.replace(tmp, path)
        written.append(path)
        png = _plot_history(self.history, self.best_epoch, out / "history.png")
        if png is not None:
            written.append(png)
        return written


def _plot_history(history: list[dict[str, Any]], best_epoch: int, path: Path) -> Path | None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        logger.info("matplotlib is not installed: no %s (pip install 'deepfakedetect[plot]')", path.name)
        return None
    fig = Figure(figsize=(12, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    epochs = [row["epoch"] for row in history]
    for ax, (key, title) in zip(fig.subplots(1, 3), (("loss", "Loss"), ("accuracy", "Accuracy"), ("auc", "ROC AUC"))):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = [row.get(f"{split}_{key}", math.nan) for row in history]
            ax.plot(epochs, [math.nan if v is None else v for v in values], style, label=split, markersize=3)
        if best_epoch:
            ax.axvline(best_epoch, color="0.6", linestyle="--", linewidth=1, label=f"kept (epoch {best_epoch})")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.png")
    fig.savefig(tmp, format="png")
    os.replace(tmp, path)
    return path


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _jsonable(x: Any) -> Any:
    """NaN and infinities become ``None`` (JSON has no such numbers); tuples become lists."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return _jsonable(x.item())
    if isinstance(x, Path):
        return str(x)
    return x


# ---------------------------------------------------------------------------- checkpoints


def _save_file(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file(tensors, path, metadata=metadata)


def write_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """Write tensors (safetensors) and a JSON state (in its header) atomically.

    The file is written under a temporary name, flushed to disk and renamed over
    ``path``: a crash at any point leaves either the old or the new file.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "ck.safetensors"
        >>> write_checkpoint(p, {"w": torch.ones(2)}, {"epoch": 3})
        >>> read_checkpoint(p)[1]["epoch"]
        3
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    meta = {"format": "pt", "deepfakedetect_checkpoint": json.dumps(_jsonable(state))}
    try:
        _save_file(tensors, str(tmp), meta)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a file written by :func:`write_checkpoint`.

    Raises:
        ModelLoadError: when the file is unreadable or not a deepfakedetect checkpoint.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open is not a dict
    except Exception as e:
        raise ModelLoadError(f"{path}: cannot read the checkpoint ({e}); delete it to start over") from e
    if "deepfakedetect_checkpoint" not in meta:
        raise ModelLoadError(f"{path}: not a deepfakedetect training checkpoint")
    try:
        state = json.loads(meta["deepfakedetect_checkpoint"])
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{path}: the checkpoint's state is not valid JSON ({e})") from e
    return tensors, state


def _optimizer_to_parts(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{pid}.{name}"] = value
            else:
                plain.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "state": plain}


def _optimizer_from_parts(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, values in meta.get("state", {}).items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


def _rng_parts() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    name, keys, pos, has_gauss, cached = np.random.get_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    py = random.getstate()
    meta = {
        "numpy": {"name": name, "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": [py[0], list(py[1]), py[2]],
    }
    return tensors, meta


def _restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda][: torch.cuda.device_count()])
    n = meta["numpy"]
    keys = tensors["rng.numpy"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)
    torch.manual_seed(seed)


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
            place (its own preprocessing and face settings are used; ``weights``,
            ``input_size`` and ``faces`` are then ignored).
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
        precision: ``"auto"`` (bf16 autocast on CPUs with native bf16 and on GPUs,
            else fp32), ``"fp32"``, ``"bf16"``, or ``"fp16"`` (CUDA only, with loss scaling).
        grad_clip: Maximum gradient norm, or ``None`` for no clipping.
        augment: An :class:`AugmentConfig` (default: the default one) or ``None`` for
            no augmentation. Only training data is augmented.
        self_blend: Synthetic fakes per real training image and epoch, made from the
            real face itself (self-blended images, SBI: a shifted, recoloured,
            sharpened or blurred copy blended back through a random face mask; see
            ``docs/concepts/self-blending.md``). They teach the blending seam that face
            swaps and reenactments share, which carries over to methods and people
            not in the training data. 0 (default) turns it off; 1 adds one per real.
            The mask assumes face crops (the face stage on) or face-centred photos.
        input_size: Side of the square input.
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
        precision: str = "auto",
        grad_clip: float | None = 1.0,
        augment: AugmentConfig | None = AugmentConfig(),  # noqa: B008 - frozen dataclass
        self_blend: float = 0.0,
        input_size: int = 224,
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
        _check_positive_int("input_size", input_size, minimum=16)
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
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)
        self.strict = strict
        self.device = device
        self.on_epoch_end = on_epoch_end

    def __repr__(self) -> str:
        name = self.backbone if isinstance(self.backbone, str) else repr(self.backbone)
        return f"Trainer(backbone={name!r}, epochs={self.epochs}, batch_size={self.batch_size}, lr={self.lr:g})"

    def settings(self) -> dict[str, Any]:
        """The training settings as a JSON-ready dict (recorded in ``config.training``)."""
        return {
            "backbone": self.backbone if isinstance(self.backbone, str) else self.backbone.config.backbone,
            "init_weights": (
                f"detector:{self.backbone.source}"
                if isinstance(self.backbone, Detector)
                else None if self.weights is None else str(self.weights)
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
            "precision": self.precision,
            "grad_clip": self.grad_clip,
            "augment": self.augment.to_dict() if self.augment is not None else None,
            "self_blend": self.self_blend,
            "input_size": self.input_size,
            "select_metric": self.select_metric,
            "early_stopping_patience": self.early_stopping_patience,
            "seed": self.seed,
        }

    # ------------------------------------------------------------------ fit
    def fit(self, data: DataArg, *, val: DataArg | None = None, resume: bool = False) -> TrainResult:
        """Train on ``data``, keep the best epoch, calibrate, and return the detector.

        Args:
            data: A folder (or list of folders) with ``real/`` and ``fake/``, or with
                ``train/``, ``val/``, ``test/`` each holding them.
            val: Validation folder(s) instead of the ``val/`` split or a split-off
                share of ``data`` (its ``val/`` split when it has split folders,
                else all of it).
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
        dist, device = _setup_distributed(self.device)
        try:
            return _Run(self, dist, device).fit(data, val=val, resume=resume)
        finally:
            dist.close()


class _Run:
    """The state of one :meth:`Trainer.fit` call."""

    def __init__(self, trainer: Trainer, dist: _Dist, device: torch.device) -> None:
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
                prepared = prepare_images(samples, **kwargs)  # type: ignore[arg-type]
            self.dist.barrier()
            if not self.dist.is_main:
                prepared = prepare_images(samples, **kwargs)  # type: ignore[arg-type]
            return prepared
        return prepare_images(samples, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ main
    def fit(self, data: DataArg, *, val: DataArg | None, resume: bool) -> TrainResult:
        t = self.t
        wall = time.perf_counter()
        _seed_all(t.seed)
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
        self.train_sampler = _ShardSampler(len(train_ds), rank=self.dist.rank, world=self.dist.world, shuffle=True, seed=t.seed)
        val_sampler = _ShardSampler(len(val_ds), rank=self.dist.rank, world=self.dist.world, shuffle=False, seed=t.seed)
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

        head = _last_linear(model)[2]
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
                entry["val_loss"], entry["val_accuracy"], _nan(entry["val_auc"]), entry["time_s"],
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
        metrics.update(_prefixed(binary_metrics(y_val, scores, threshold=calibration.threshold), "val"))
        test_counts = {"real": 0, "fake": 0}
        skipped = len(train_p.skipped) + len(val_p.skipped)
        if test_s:
            test_p = self._prepare(test_s, det, "test images")
            skipped += len(test_p.skipped)
            test_counts = _class_counts(test_p.samples)
            test_loader = DataLoader(
                ImageDataset(test_p),
                batch_size=t.batch_size,
                sampler=_ShardSampler(len(test_p), rank=self.dist.rank, world=self.dist.world, shuffle=False, seed=0),
                num_workers=t.num_workers,
            )
            rows = self._predict(test_loader)
            y_test, margin_test = rows[:, 1].astype(np.int64), self._margin(rows)
            scores = 1.0 / (1.0 + np.exp(-margin_test / calibration.temperature))
            if 0 < y_test.sum() < len(y_test):
                metrics.update(_prefixed(binary_metrics(y_test, scores, threshold=calibration.threshold), "test"))
        completed = history[-1]["epoch"] if history else 0
        training = {
            **{k: v for k, v in config.training.items() if k not in ("metrics",)},
            **t.settings(),
            "data": [str(r) for r in splits.roots],
            "val_data": val_roots or None,
            "layouts": splits.layouts,
            "split": splits.split,
            "counts": {
                "train": _class_counts(train_p.samples),
                "val": _class_counts(val_p.samples),
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
        config = config.replace(calibration=calibration, training=_jsonable(training))
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
            best["epoch"], t.select_metric, _nan(best["value"]),
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

    def _train_epoch(self, loader: DataLoader, epoch: int) -> dict[str, Any]:
        t = self.t
        self.ddp.train()
        if self._frozen:
            # A linear probe keeps the backbone exactly as it is, batch-norm statistics included.
            self.model.eval()
            self.head.train()
        rows = []
        bar = None
        if self.show_progress:
            from huggingface_hub.utils import tqdm

            bar = tqdm(total=len(loader), desc=f"epoch {epoch}/{t.epochs}", unit="batch", leave=False)
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
        full = _gather_rows(local, self.dist, self.device).numpy()
        # Padding repeats a few items across processes: keep each index once, in order.
        _, first = np.unique(full[:, 0], return_index=True)
        return full[first]

    @torch.no_grad()
    def _predict(self, loader: DataLoader) -> np.ndarray:
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
        opt_tensors, opt_meta = _optimizer_to_parts(self.opt)
        rng_tensors, rng_meta = _rng_parts()
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
            raise ModelLoadError(f"{path}: checkpoint format {state.get('format')!r} is not {CHECKPOINT_FORMAT}")
        saved = state.get("fingerprint", {})
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
        self.opt.load_state_dict(_optimizer_from_parts(tensors, state["optimizer"]))
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        _restore_rng(tensors, state["rng"])
        return state


def _prefixed(metrics: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {f"{prefix}_{k}": v for k, v in metrics.items()}


def _class_counts(samples: Sequence[Sample]) -> dict[str, int]:
    n_fake = sum(s.y for s in samples)
    return {"real": len(samples) - n_fake, "fake": n_fake}


def _nan(x: float | None) -> float:
    return math.nan if x is None else x
