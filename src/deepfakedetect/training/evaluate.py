"""Evaluating a detector on labelled folders: image, frame and video level metrics.

Scores are produced by the detector's own public path (``detect_image`` and
``detect_video``), so what is measured is what users get: the same preprocessing,
face stage, calibration (images and videos each their own), threshold and uncertain band.

Evaluation cannot fool itself: every file is looked up by content in the model's training
manifest (files the model trained, was selected or calibrated on never count as test
data), a file that cannot be scored counts as a miss, and the breakdown per source,
folder and manipulation method shows the worst group first.
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

from deepfakedetect._errors import ConfigError, DatasetError
from deepfakedetect._media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from deepfakedetect._metrics import binary_metrics, roc_curve
from deepfakedetect._utils import jsonable, progress_bar, progress_enabled
from deepfakedetect.io.images import load_image
from deepfakedetect.models.calibration import band_stats
from deepfakedetect.models.manifest import SEEN_SPLITS, file_digests
from deepfakedetect.training.breakdown import breakdown
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
    ("uncertain_share", "uncertain share"),
    ("decided_accuracy", "accuracy of the decided"),
)
_BREAKDOWN_ROWS = 12  # rows of the breakdown table in the Markdown report (JSON has all)


@dataclass
class EvaluationReport:
    """Metrics of a detector on labelled data, per level (``image``, ``video``, ``frame``).

    Attributes:
        levels: Per level, the dict of :func:`~deepfakedetect._metrics.binary_metrics`,
            plus ``n_errors`` (items that could not be scored, counted as misses),
            ``uncertain_share`` and ``decided_accuracy``.
        items: Per level, ``{"source": [...], "y": [...], "fake_score": [...]}`` (scored items).
        threshold: The decision threshold of the first level.
        thresholds: Per level, its decision threshold (videos use the video calibration).
        split: The split evaluated.
        data: The data folders.
        model: The detector's provenance.
        skipped: ``(path, reason)`` for files that could not be scored (counted as misses).
        no_face: Files where the face stage found no face (not scored).
        overlap: Per split of the model's training manifest, the evaluated files found in
            it by content (with ``split="test"``, those of ``train``, ``val`` and
            ``calibration`` were left out of the metrics).
        checked_by_content: Whether the model had a training manifest to check against.
        breakdown: Metrics per source, folder and manipulation method, worst first.
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
    thresholds: dict[str, float] = field(default_factory=dict)
    overlap: dict[str, list[str]] = field(default_factory=dict)
    checked_by_content: bool = False
    breakdown: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, *, include_scores: bool = False) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``); per-item scores with ``include_scores``."""
        d: dict[str, Any] = {
            "model": self.model,
            "data": self.data,
            "split": self.split,
            "threshold": self.threshold,
            "thresholds": self.thresholds or {k: self.threshold for k in self.levels},
            "levels": self.levels,
            "breakdown": self.breakdown,
            "overlap": {k: {"n": len(v), "files": v} for k, v in self.overlap.items()},
            "checked_by_content": self.checked_by_content,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "no_face": self.no_face,
            "seconds": round(self.seconds, 3),
        }
        if include_scores:
            d["items"] = self.items
        return jsonable(d)

    def to_markdown(self) -> str:
        """The metrics as a Markdown table, one column per level, then the breakdown.

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
        if any(m.get("n_errors") for m in self.levels.values()):
            lines.append(
                "| could not be scored (counted as misses) | "
                + " | ".join(str(m.get("n_errors", 0)) for m in self.levels.values())
                + " |"
            )
        for key, title in _ROWS:
            if any(key in m for m in self.levels.values()):
                lines.append(f"| {title} | " + " | ".join(_fmt(m.get(key)) for m in self.levels.values()) + " |")
        lines.append(
            "| confusion [[TN, FP], [FN, TP]] | "
            + " | ".join(str(m["confusion_matrix"]) for m in self.levels.values())
            + " |"
        )
        thresholds = self.thresholds or {k: self.threshold for k in self.levels}
        if len(set(thresholds.values())) > 1:
            thr = "thresholds " + ", ".join(f"{k} {v:.4g}" for k, v in thresholds.items())
        else:
            thr = f"threshold {self.threshold:.4g}"
        notes = [f"{thr}, split {self.split!r}"]
        seen = {k: len(v) for k, v in self.overlap.items() if v}
        if seen:
            what = ", ".join(f"{k} {n}" for k, n in sorted(seen.items()))
            if self.split == "test":
                notes.append(f"files the model trained on or was calibrated on left out ({what}); only files it never saw are scored")
            else:
                notes.append(f"files found in the model's training manifest were scored ({what})")
        elif self.checked_by_content:
            notes.append("no file is in the model's training manifest")
        else:
            notes.append("the model has no training manifest: overlap with its training data was not checked by content")
        if self.skipped:
            notes.append(
                f"{len(self.skipped)} files could not be scored, counted as misses "
                f"(e.g. {self.skipped[0][0]}: {self.skipped[0][1]})"
            )
        if self.no_face:
            notes.append(f"{len(self.no_face)} without a face, not scored (e.g. {self.no_face[0]})")
        text = "\n".join(lines) + "\n\n" + "; ".join(notes) + "\n"
        if self.breakdown:
            rows = self.breakdown[:_BREAKDOWN_ROWS]
            table = [
                "",
                "Breakdown, worst first" + (f" ({_BREAKDOWN_ROWS} of {len(self.breakdown)} rows)" if len(self.breakdown) > _BREAKDOWN_ROWS else "") + ":",
                "",
                "| level | by | group | n (real / fake) | misses | accuracy | ROC AUC |",
                "|---|---|---|---|---|---|---|",
            ]
            for r in rows:
                table.append(
                    f"| {r['level']} | {r['key']} | {r['group']} | {r['n']} ({r['n_real']} / {r['n_fake']}) | "
                    f"{r['misses']} | {_fmt(r['accuracy'])} | {_fmt(r['auc'])} |"
                )
            text += "\n".join(table) + "\n"
        return text

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


def _select(
    detector: Detector, data: DataArg, split: str, extensions: frozenset[str]
) -> tuple[list[Sample], list[str], dict[str, list[str]]]:
    """The samples of ``split``, and the evaluated files found in the training manifest per split.

    With a manifest, files are matched by content: ``"test"`` leaves out every file the
    model has seen; a folder without split folders gives, for ``"train"`` and ``"val"``, its
    files in that manifest split. Without one (older models), a folder is matched by its
    path against ``config.training["data"]``.
    """
    if split not in ("train", "val", "test", "all"):
        raise ConfigError(f"split must be 'train', 'val', 'test' or 'all', got {split!r}")
    manifest = detector.training_manifest
    training = detector.config.training or {}
    how = training.get("split") or {}
    if manifest is None:
        trained_on = {str(Path(r)) for r in training.get("data") or []}
        ds = find_dataset(
            data,
            val_fraction=float(how.get("val_fraction", 0.15)),
            test_fraction=float(how.get("test_fraction", 0.15)),
            seed=int(how.get("seed", 0)),
            extensions=extensions,
        )
        chosen = ds.get(split)
        if split == "test":
            chosen = []
            for root in ds.roots:
                if ds.layouts[str(root)] == "pool" and str(root) not in trained_on:
                    logger.info("%s has no split folders and its path is not among the model's training data: scoring all of it", root)
                    chosen += [s for s in ds.get("all") if s.root == root]
                else:
                    chosen += [s for s in ds.test if s.root == root]
        overlap: dict[str, list[str]] = {}
    else:
        ds = find_dataset(data, val_fraction=0.0, test_fraction=0.0, extensions=extensions)
        candidates: list[Sample] = []
        for root in ds.roots:
            mine = [s for s in ds.get("all") if s.root == root]
            if ds.layouts[str(root)] == "splits" and split != "all":
                mine = [s for s in getattr(ds, split) if s.root == root]
            candidates += mine
        digests = file_digests([s.path for s in candidates])
        overlap = {}
        chosen = []
        for s in candidates:
            found = manifest.splits_of(digests[str(s.path)])
            for name in found:
                overlap.setdefault(name, []).append(str(s.path))
            pool = ds.layouts[str(s.root)] == "pool"
            if split == "test":
                keep = not any(n in SEEN_SPLITS for n in found)
            elif split in ("train", "val") and pool:
                keep = split in found
            else:
                keep = True
            if keep:
                chosen.append(s)
        if overlap:
            logger.info(
                "by content, %s of the evaluated files are in the model's training manifest%s",
                ", ".join(f"{len(v)} in {k}" for k, v in sorted(overlap.items())),
                " (files it has seen are left out of 'test')" if split == "test" else "",
            )
        else:
            logger.info("by content, none of the %d evaluated files is in the model's training manifest", len(candidates))
    if not chosen:
        counts = ds.counts()
        raise DatasetError(
            f"no {split!r} files in {', '.join(str(r) for r in ds.roots)} (files per split: {counts}"
            + (f"; by content, the model has seen {sum(len(v) for v in overlap.values())} of them" if overlap else "")
            + "); pass another split, or split='all'"
        )
    return chosen, [str(r) for r in ds.roots], overlap


def _holds(data: DataArg, extensions: frozenset[str]) -> bool:
    """Whether any file below the data folder(s) has one of these extensions."""
    roots = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    for root in roots:
        for _, _, files in os.walk(root):
            if any(Path(f).suffix.lower() in extensions for f in files):
                return True
    return False


def evaluate(
    detector: Detector,
    data: DataArg,
    *,
    batch_size: int = 32,
    split: str = "test",
    videos: bool | None = None,
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
            split folders gives that split, a folder without them all its files; with
            the model's training manifest, ``"test"`` leaves out every file the model
            trained, was selected or calibrated on (found by content, whatever its name
            or folder), and a folder without split folders gives for ``"train"`` and
            ``"val"`` its files in that split of the manifest. A model without a manifest
            is matched by the folder's path (see ``docs/guides/evaluating.md``).
        videos: ``None`` (default): images at image level and, when the folders hold
            videos, videos at video and frame level (via ``detect_video``, with the
            model's video calibration); ``True``: videos only; ``False``: images only.
        threshold: Decision threshold for every level (default: each level's calibrated
            one: the video calibration's for videos, the image calibration's otherwise).
        sampler: Frame sampler for videos (default: the model's).
        aggregator: Frame-score aggregator for videos (default: the model's).
        strict: Raise :class:`DatasetError` on a file that cannot be scored instead of
            counting it as a miss.
        progress: Show a progress bar.

    Returns:
        An :class:`EvaluationReport`.

    Raises:
        DatasetError: a bad layout, an empty split, or (strict) a file that cannot be scored.
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
    if videos is None:
        kinds = [k for k, ext in (("image", IMAGE_EXTENSIONS), ("video", VIDEO_EXTENSIONS)) if _holds(data, ext)]
        kinds = kinds or ["image"]  # let the selection say what is missing
    else:
        kinds = ["video"] if videos else ["image"]
    start = time.perf_counter()
    show = progress_enabled(progress)
    skipped: list[tuple[str, str]] = []
    no_face: list[str] = []
    items: dict[str, dict[str, list[Any]]] = {}
    errors: dict[str, list[Sample]] = {}
    thresholds: dict[str, float] = {}
    overlap: dict[str, list[str]] = {}
    roots: list[str] = []
    samples_total = 0
    for kind in kinds:
        samples, roots, seen = _select(detector, data, split, VIDEO_EXTENSIONS if kind == "video" else IMAGE_EXTENSIONS)
        samples_total += len(samples)
        for k, v in seen.items():
            overlap.setdefault(k, []).extend(v)
        if kind == "video":
            thresholds["video"] = detector.video_threshold if threshold is None else float(threshold)
            thresholds["frame"] = detector.threshold if threshold is None else float(threshold)
            items["video"], items["frame"], errors["video"] = _score_videos(
                detector, samples, batch_size=batch_size, threshold=threshold, sampler=sampler,
                aggregator=aggregator, skipped=skipped, no_face=no_face, strict=strict, show=show,
            )  # fmt: skip
        else:
            thresholds["image"] = detector.threshold if threshold is None else float(threshold)
            items["image"], errors["image"] = _score_images(
                detector, samples, batch_size=batch_size, threshold=threshold, skipped=skipped,
                no_face=no_face, strict=strict, show=show,
            )  # fmt: skip
    levels: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    root_of = _root_finder(roots)
    for name, item in items.items():
        failed = errors.get(name, [])
        if not item["y"] and not failed:
            continue
        thr = thresholds[name]
        # A file that could not be scored is a miss: the most wrong score for its class.
        y = list(item["y"]) + [s.y for s in failed]
        s = list(item["fake_score"]) + [float(1 - s.y) for s in failed]
        m = binary_metrics(y, s, threshold=thr)
        m["n_errors"] = len(failed)
        band = detector.uncertain_band_for("video" if name == "video" else "image")
        n_unsure, n_right = 0, 0
        if item["y"]:
            stats = band_stats(item["y"], item["fake_score"], thr, band)
            n_unsure = stats["uncertain_real"] + stats["uncertain_fake"]
            if len(item["y"]) > n_unsure:
                n_right = round(stats["decided_accuracy"] * (len(item["y"]) - n_unsure))
        # Misses are decided, and wrong.
        m["uncertain_share"] = n_unsure / len(y)
        m["decided_accuracy"] = n_right / (len(y) - n_unsure) if len(y) > n_unsure else math.nan
        levels[name] = m
        sources = list(item["source"]) + [str(x.path) for x in failed]
        scores: list[float | None] = list(item["fake_score"]) + [None] * len(failed)
        rows += breakdown(sources, [root_of(p) for p in sources], y, scores, thr, level=name)
    if not levels:
        raise DatasetError(
            f"none of the {samples_total} files could be scored ({len(skipped)} unreadable, "
            f"{len(no_face)} without a face)"
        )
    if skipped:
        logger.warning(
            "%d files could not be scored and count as misses, e.g. %s",
            len(skipped), "; ".join(f"{p} ({r})" for p, r in skipped[:_EXAMPLES]),
        )  # fmt: skip
    rows.sort(key=lambda r: (r["accuracy"], -r["n"], r["level"], r["key"], r["group"]))
    first = next(iter(levels))
    return EvaluationReport(
        levels=levels,
        threshold=thresholds[first],
        thresholds={k: thresholds[k] for k in levels},
        items=items,
        split=split,
        data=roots,
        model=detector.provenance,
        skipped=skipped,
        no_face=no_face,
        overlap={k: sorted(set(v)) for k, v in overlap.items()},
        checked_by_content=detector.training_manifest is not None,
        breakdown=rows,
        seconds=time.perf_counter() - start,
    )


def _root_finder(roots: list[str]) -> Any:
    resolved = sorted((Path(r) for r in roots), key=lambda p: -len(p.parts))

    def find(path: str) -> str | None:
        p = Path(path.split("#", 1)[0]).resolve()
        for r in resolved:
            if p == r or r in p.parents:
                return str(r)
        return None

    return find


def _fail(sample: Sample, e: BaseException, strict: bool, skipped: list[tuple[str, str]], errors: list[Sample]) -> None:
    if strict:
        raise DatasetError(f"{sample.path}: cannot be scored ({e}); fix or remove it, or pass strict=False") from e
    reason = str(e).removeprefix(f"{sample.path}: ") or type(e).__name__
    skipped.append((str(sample.path), reason))
    errors.append(sample)


def _score_images(
    detector: Detector,
    samples: list[Sample],
    *,
    batch_size: int,
    threshold: float | None,
    skipped: list[tuple[str, str]],
    no_face: list[str],
    strict: bool,
    show: bool,
) -> tuple[dict[str, list[Any]], list[Sample]]:
    out: dict[str, list[Any]] = {"source": [], "y": [], "fake_score": []}
    errors: list[Sample] = []
    bar = progress_bar(len(samples), "evaluating", unit="img", progress=show)

    def load(path: Path) -> Any:
        try:
            return load_image(path)
        except Exception as e:  # noqa: BLE001 - any failure to read an input is a miss, not a crash of the run
            return e

    def score(part: list[tuple[Sample, Any]]) -> None:
        try:
            results = detector.detect_image([a for _, a in part], batch_size=batch_size, threshold=threshold)
        except Exception as e:  # noqa: BLE001 - one bad input must not take its batch down with it
            if len(part) > 1:
                for one in part:
                    score([one])
                return
            _fail(part[0][0], e, strict, skipped, errors)
            return
        for (s, _), r in zip(part, results):
            if r.fake_score is None:
                no_face.append(str(s.path))
                continue
            out["source"].append(str(s.path))
            out["y"].append(s.y)
            out["fake_score"].append(float(r.fake_score))

    chunk = max(batch_size, 32)
    try:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for begin in range(0, len(samples), chunk):
                part = samples[begin : begin + chunk]
                arrays = list(pool.map(load, [s.path for s in part]))
                good = []
                for s, a in zip(part, arrays):
                    if isinstance(a, Exception):
                        _fail(s, a, strict, skipped, errors)
                    else:
                        good.append((s, a))
                if good:
                    score(good)
                if bar is not None:
                    bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    return out, errors


def _score_videos(
    detector: Detector,
    samples: list[Sample],
    *,
    batch_size: int,
    threshold: float | None,
    sampler: Any,
    aggregator: Any,
    skipped: list[tuple[str, str]],
    no_face: list[str],
    strict: bool,
    show: bool,
) -> tuple[dict[str, list[Any]], dict[str, list[Any]], list[Sample]]:
    video: dict[str, list[Any]] = {"source": [], "y": [], "fake_score": []}
    frame: dict[str, list[Any]] = {"source": [], "y": [], "fake_score": []}
    errors: list[Sample] = []
    bar = progress_bar(len(samples), "evaluating", unit="video", progress=show)
    try:
        for s in samples:
            try:
                r = detector.detect_video(
                    s.path, sampler=sampler, aggregator=aggregator, batch_size=batch_size,
                    threshold=threshold, progress=False,
                )  # fmt: skip
            except Exception as e:  # noqa: BLE001 - a video that crashes is a miss, not the end of the run
                _fail(s, e, strict, skipped, errors)
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
    return video, frame, errors
