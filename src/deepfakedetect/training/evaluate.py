"""Evaluating a detector on labelled folders: image, frame and video level metrics.

Scores are produced by the detector's own public path (``detect_image`` and
``detect_video``), so what is measured is what users get: the same preprocessing,
face stage, calibration and threshold.
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepfakedetect._errors import ConfigError, DatasetError, DeepfakeDetectError
from deepfakedetect._media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from deepfakedetect._metrics import binary_metrics, roc_curve
from deepfakedetect._utils import jsonable, progress_bar, progress_enabled
from deepfakedetect.io.images import load_image
from deepfakedetect.training.data import Sample, find_dataset
from deepfakedetect.training.folders import DataArg

if TYPE_CHECKING:
    from deepfakedetect.detector import Detector

logger = logging.getLogger(__name__)

__all__ = ["EvaluationReport", "evaluate"]

_EXAMPLES = 5
_ROWS = (
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("precision", "precision (fake)"),
    ("recall", "recall (fake)"),
    ("f1", "F1"),
    ("auc", "ROC AUC"),
    ("eer", "EER"),
    ("log_loss", "log loss"),
    ("ece", "ECE"),
    ("tpr_at_fpr_1%", "TPR at 1% FPR"),
    ("tpr_at_fpr_5%", "TPR at 5% FPR"),
)


@dataclass
class EvaluationReport:
    """Metrics of a detector on labelled data, per level (``image``, ``video``, ``frame``).

    Attributes:
        levels: Per level, the dict of :func:`~deepfakedetect._metrics.binary_metrics`.
        items: Per level, ``{"source": [...], "y": [...], "fake_score": [...]}``.
        threshold: The decision threshold used.
        split: The split evaluated.
        data: The data folders.
        model: The detector's provenance.
        skipped: ``(path, reason)`` for files that could not be scored.
        no_face: Files where the face stage found no face (not scored).
        seconds: Wall time.

    Example:
        >>> r = EvaluationReport(levels={"image": binary_metrics([0, 1], [0.2, 0.9])}, threshold=0.5)
        >>> r.to_dict()["levels"]["image"]["accuracy"]
        1.0
        >>> print(str(r).splitlines()[0])
        | metric | image |
    """

    levels: dict[str, dict[str, Any]]
    threshold: float
    items: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    split: str = "test"
    data: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    no_face: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self, *, include_scores: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``); per-item scores with ``include_scores``."""
        d: dict[str, Any] = {
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "threshold": self.threshold,
            "levels": self.levels,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "no_face": self.no_face,
            "seconds": round(self.seconds, 3),
        }
        if include_scores:
            d["items"] = self.items

        return jsonable(d)

    def to_markdown(self) -> str:
        """The metrics as a Markdown table, one column per level.

        Example:
            >>> r = EvaluationReport(levels={"image": binary_metrics([0, 1], [0.2, 0.9])}, threshold=0.5)
            >>> "| ROC AUC | 1.0000 |" in r.to_markdown()
            True
        """
        names = list(self.levels)
        lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines.append(
            "| n (real / fake) | "
            + " | ".join(f"{m['n']} ({m['n_real']} / {m['n_fake']})" for m in self.levels.values())
            + " |"
        )
        for key, title in _ROWS:
            lines.append(f"| {title} | " + " | ".join(_fmt(m.get(key)) for m in self.levels.values()) + " |")
        lines.append(
            "| confusion [[TN, FP], [FN, TP]] | "
            + " | ".join(str(m["confusion_matrix"]) for m in self.levels.values())
            + " |"
        )
        notes = [f"threshold {self.threshold:.4g}, split {self.split!r}"]
        if self.skipped:
            notes.append(
                f"{len(self.skipped)} files skipped (e.g. {self.skipped[0][0]}: {self.skipped[0][1]})"
            )
        if self.no_face:
            notes.append(f"{len(self.no_face)} without a face, not scored (e.g. {self.no_face[0]})")
        return "\n".join(lines) + "\n\n" + "; ".join(notes) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()

    def plot_roc(self, path: str | os.PathLike[str]) -> Path:
        """Draw the ROC curve of each level to a PNG (needs matplotlib: ``deepfakedetect[plot]``).

        Args:
            path: Where to write the image.

        Returns:
            The path.

        Raises:
            ConfigError: when matplotlib is missing or no level has both classes.

        Example:
            >>> r = EvaluationReport(levels={}, threshold=0.5,
            ...                      items={"image": {"source": ["a", "b"], "y": [0, 1], "fake_score": [0.2, 0.9]}})
            >>> import tempfile
            >>> r.plot_roc(Path(tempfile.mkdtemp()) / "roc.png").name
            'roc.png'
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as e:
            raise ConfigError("plotting needs matplotlib: pip install matplotlib (the [plot] extra)") from e
        fig = Figure(figsize=(5, 5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        drawn = 0
        for level, item in self.items.items():
            y = np.asarray(item["y"])
            if not (0 < y.sum() < len(y)):
                continue
            fpr, tpr, _ = roc_curve(y, item["fake_score"])
            auc = self.levels.get(level, {}).get("auc")
            label = f"{level} (AUC {auc:.3f})" if isinstance(auc, float) and math.isfinite(auc) else level
            ax.plot(fpr, tpr, label=label)
            drawn += 1
        if not drawn:
            raise ConfigError("no level has both real and fake items: there is no ROC curve to draw")
        ax.plot([0, 1], [0, 1], color="0.7", linestyle="--", linewidth=1)
        ax.set_xlabel("false-positive rate (real flagged as fake)")
        ax.set_ylabel("true-positive rate (fakes caught)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
        ax.set_title(f"ROC, split {self.split!r}")
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png")
        return out


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return "n/a" if not math.isfinite(x) else f"{x:.4f}"
    return "n/a" if x is None else str(x)


def _select(detector: Detector, data: DataArg, split: str, extensions: frozenset[str]) -> tuple[list[Sample], list[str]]:
    """The samples of ``split``; a pool the model never trained on counts whole as test data."""
    training = detector.config.training or {}
    trained_on = {str(Path(r)) for r in training.get("data") or []}
    how = training.get("split") or {}
    ds = find_dataset(
        data,
        val_fraction=float(how.get("val_fraction", 0.15)),
        test_fraction=float(how.get("test_fraction", 0.15)),
        seed=int(how.get("seed", 0)),
        extensions=extensions,
    )
    if split not in ("train", "val", "test", "all"):
        raise ConfigError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}")
    chosen = ds.get(split)
    if split == "test":
        chosen = []
        for root in ds.roots:
            if ds.layouts[str(root)] == "pool" and str(root) not in trained_on:
                logger.info("%s has no split folders and was not used to train this model: scoring all of it", root)
                chosen += [s for s in ds.get("all") if s.root == root]
            else:
                chosen += [s for s in ds.test if s.root == root]
    if not chosen:
        counts = ds.counts()
        raise DatasetError(
            f"no {split!r} files in {', '.join(str(r) for r in ds.roots)} (files per split: {counts}); "
            "pass another split, or split='all'"
        )
    return chosen, [str(r) for r in ds.roots]


def evaluate(
    detector: Detector,
    data: DataArg,
    *,
    batch_size: int = 32,
    split: str = "test",
    videos: bool = False,
    threshold: float | None = None,
    sampler: Any = None,
    aggregator: Any = None,
    strict: bool = False,
    progress: bool | None = None,
) -> EvaluationReport:
    """Score labelled data with a detector and compute metrics.

    Args:
        detector: The detector.
        data: A folder (or list) laid out as for training: ``real/`` and ``fake/``, or
            ``train/``, ``val/``, ``test/`` holding them.
        batch_size: Images (or frames) per forward pass.
        split: ``"test"`` (default), ``"val"``, ``"train"`` or ``"all"``. A folder with
            split folders gives that split. A folder without them is split as the
            trainer split it (same seed and fractions, read from the model's
            ``config.training``) when the model was trained on it, so ``"test"`` is its
            held-out part; a folder the model never saw is scored whole for ``"test"``.
        videos: Evaluate video files (``real/``, ``fake/`` holding videos) at video level
            (via ``detect_video``) and frame level, instead of images.
        threshold: Decision threshold (default: the model's calibrated one).
        sampler: Frame sampler for videos (default: the model's).
        aggregator: Frame-score aggregator for videos (default: the model's).
        strict: Raise :class:`DatasetError` on an unreadable file instead of skipping it.
        progress: Show a progress bar.

    Returns:
        An :class:`EvaluationReport`.

    Raises:
        DatasetError: a bad layout, an empty split, or (strict) an unreadable file.
        ConfigError: a bad split name or threshold.

    Example:
        >>> from deepfakedetect import Detector
        >>> report = evaluate(Detector.from_pretrained("model/"), "data/")  # doctest: +SKIP
        >>> print(report)  # doctest: +SKIP
    """

    if threshold is not None and not (0.0 <= float(threshold) <= 1.0):
        raise ConfigError(f"threshold must be in [0, 1], got {threshold!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    thr = detector.threshold if threshold is None else float(threshold)
    start = time.perf_counter()
    samples, roots = _select(detector, data, split, VIDEO_EXTENSIONS if videos else IMAGE_EXTENSIONS)
    show = progress_enabled(progress)
    skipped: list[tuple[str, str]] = []
    no_face: list[str] = []
    items: dict[str, dict[str, list[Any]]] = {}
    if videos:
        items["video"], items["frame"] = _score_videos(
            detector, samples, batch_size=batch_size, threshold=thr, sampler=sampler,
            aggregator=aggregator, skipped=skipped, no_face=no_face, strict=strict, show=show,
        )
    else:
        items["image"] = _score_images(
            detector, samples, batch_size=batch_size, threshold=thr, skipped=skipped,
            no_face=no_face, strict=strict, show=show,
        )
    levels = {
        name: binary_metrics(item["y"], item["fake_score"], threshold=thr) for name, item in items.items() if item["y"]
    }
    if not levels:
        raise DatasetError(
            f"none of the {len(samples)} files could be scored ({len(skipped)} unreadable, "
            f"{len(no_face)} without a face)"
        )
    if skipped:
        logger.warning(
            "skipped %d unreadable files, e.g. %s",
            len(skipped), "; ".join(f"{p} ({r})" for p, r in skipped[:_EXAMPLES]),
        )
    return EvaluationReport(
        levels=levels,
        threshold=thr,
        items=items,
        split=split,
        data=roots,
        model=detector.provenance,
        skipped=skipped,
        no_face=no_face,
        seconds=time.perf_counter() - start,
    )


def _fail(path: Path, e: Exception, strict: bool, skipped: list[tuple[str, str]]) -> None:
    if strict:
        raise DatasetError(f"{path}: cannot be scored ({e}); fix or remove it, or pass strict=False") from e
    skipped.append((str(path), str(e).removeprefix(f"{path}: ")))


def _score_images(
    detector: Detector,
    samples: list[Sample],
    *,
    batch_size: int,
    threshold: float,
    skipped: list[tuple[str, str]],
    no_face: list[str],
    strict: bool,
    show: bool,
) -> dict[str, list[Any]]:

    out: dict[str, list[Any]] = {"source": [], "y": [], "fake_score": []}
    bar = progress_bar(len(samples), "evaluating", unit="img", progress=show)

    def load(path: Path) -> Any:
        try:
            return load_image(path)
        except DeepfakeDetectError as e:
            return e

    chunk = max(batch_size, 32)
    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for begin in range(0, len(samples), chunk):
                part = samples[begin : begin + chunk]
                arrays = list(pool.map(load, [s.path for s in part]))
                good = []
                for s, a in zip(part, arrays):
                    if isinstance(a, Exception):
                        _fail(s.path, a, strict, skipped)
                    else:
                        good.append((s, a))
                if good:
                    results = detector.detect_image([a for _, a in good], batch_size=batch_size, threshold=threshold)
                    for (s, _), r in zip(good, results):
                        if r.fake_score is None:
                            no_face.append(str(s.path))
                            continue
                        out["source"].append(str(s.path))
                        out["y"].append(s.y)
                        out["fake_score"].append(float(r.fake_score))
                if bar is not None:
                    bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    return out


def _score_videos(
    detector: Detector,
    samples: list[Sample],
    *,
    batch_size: int,
    threshold: float,
    sampler: Any,
    aggregator: Any,
    skipped: list[tuple[str, str]],
    no_face: list[str],
    strict: bool,
    show: bool,
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    video: dict[str, list[Any]] = {"source": [], "y": [], "fake_score": []}
    frame: dict[str, list[Any]] = {"source": [], "y": [], "fake_score": []}
    bar = progress_bar(len(samples), "evaluating", unit="video", progress=show)
    try:
        for s in samples:
            try:
                r = detector.detect_video(
                    s.path, sampler=sampler, aggregator=aggregator, batch_size=batch_size,
                    threshold=threshold, progress=False,
                )
            except DeepfakeDetectError as e:
                _fail(s.path, e, strict, skipped)
            else:
                if r.fake_score is None:
                    no_face.append(str(s.path))
                else:
                    video["source"].append(str(s.path))
                    video["y"].append(s.y)
                    video["fake_score"].append(float(r.fake_score))
                for f in r.frames:
                    if f.fake_score is not None:
                        frame["source"].append(f"{s.path}#{f.index}")
                        frame["y"].append(s.y)
                        frame["fake_score"].append(float(f.fake_score))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return video, frame
