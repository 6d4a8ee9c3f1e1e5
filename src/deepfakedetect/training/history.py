"""The outcome of a training run: the best model, per-epoch history, and its plot."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfakedetect._utils import atomic_write_text, jsonable

logger = logging.getLogger(__name__)

__all__ = ['TrainResult', 'plot_history']


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
        extra: ``pip install matplotlib``) the PNG is skipped with a log note.

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
        atomic_write_text(path, json.dumps(jsonable(doc), indent=2) + "\n")
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
        png = plot_history(self.history, self.best_epoch, out / "history.png")
        if png is not None:
            written.append(png)
        return written


def plot_history(history: list[dict[str, Any]], best_epoch: int, path: Path) -> Path | None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        logger.info("matplotlib is not installed: no %s (pip install matplotlib: the [plot] extra)", path.name)
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
