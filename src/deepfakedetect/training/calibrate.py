"""Calibrating an existing detector on validation images and videos, each kind on its own.

A video's score is an aggregate of its frames' scores, and those sit elsewhere than still
images' scores (compression, motion blur, a face seen from many angles), so one threshold
cannot serve both. :func:`calibrate_detector` fits:

- the **image calibration** (``config.calibration``) on validation images: temperature,
  threshold, operating points and the uncertain band, on the scores ``detect_image``
  gives (face stage, test-time flip and all);
- the **video calibration** (``config.video_calibration``) on validation videos, scored
  at video level exactly as ``detect_video`` scores them (the model's frame sampler and
  aggregator, or the ones passed, which then become the model's defaults): the
  aggregate of the frames' image-calibrated scores gets its own temperature (applied to
  the aggregate's logit), threshold, operating points and band.

Every file used is added to the detector's training manifest as ``calibration`` data, so
:func:`~deepfakedetect.evaluate` will not count it as unseen test data later.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepfakedetect._config import CalibrationConfig, VideoConfig
from deepfakedetect._errors import ConfigError, DatasetError
from deepfakedetect._media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from deepfakedetect._metrics import roc_auc
from deepfakedetect.models.calibration import calibrate
from deepfakedetect.models.manifest import TrainingManifest, file_digests
from deepfakedetect.training.evaluate import EvaluationReport, evaluate
from deepfakedetect.training.folders import DataArg, find_dataset

if TYPE_CHECKING:
    from deepfakedetect.detector import Detector

logger = logging.getLogger(__name__)

__all__ = ["calibrate_detector", "fit_video_calibration"]

# Scores are read back as margins: a copy of the detector with this temperature keeps
# every probability well inside float32's range (no saturation at 0 or 1), and
# margin = temperature * logit(p) recovers the network's fake-minus-real logit.
_READ_TEMPERATURE = 100.0
_EPS = 1e-12


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _split_of(root: Path, *, videos: bool) -> str:
    """A folder's validation part: its ``val/`` split when it has split folders, else all of it."""
    extensions = VIDEO_EXTENSIONS if videos else IMAGE_EXTENSIONS
    layouts = find_dataset(root, val_fraction=0.0, test_fraction=0.0, extensions=extensions).layouts
    return "val" if "splits" in layouts.values() else "all"


def _roots(data: DataArg) -> list[Path]:
    items = [data] if isinstance(data, (str, Path)) or hasattr(data, "__fspath__") else list(data)
    if not items:
        raise ConfigError("no validation folder given")
    return [Path(str(x)) for x in items]


def _score(detector: Detector, data: DataArg, *, videos: bool, **options: Any) -> tuple[list[str], list[int], list[float], list[EvaluationReport]]:
    sources: list[str] = []
    ys: list[int] = []
    scores: list[float] = []
    reports = []
    for root in _roots(data):
        report = evaluate(detector, root, split=_split_of(root, videos=videos), videos=videos, **options)
        level = "video" if videos else "image"
        item = report.items.get(level, {"source": [], "y": [], "fake_score": []})
        sources += item["source"]
        ys += item["y"]
        scores += item["fake_score"]
        reports.append(report)
    return sources, ys, scores, reports


def _fit(
    margins: np.ndarray,
    y: np.ndarray,
    *,
    kind: str,
    roots: Sequence[Path],
    method: str,
    fprs: Sequence[float],
    target_precision: float | None,
    extra: dict[str, Any],
) -> CalibrationConfig:
    n_fake = int(y.sum())
    if n_fake == 0 or n_fake == len(y):
        raise DatasetError(
            f"calibrating {kind}s needs real and fake validation {kind}s; {', '.join(str(r) for r in roots)} "
            f"gave {len(y) - n_fake} real and {n_fake} fake that could be scored"
        )
    cal = calibrate(margins, y, method=method, fprs=fprs, target_precision=target_precision)
    fitted = dict(cal.fitted_on)
    scores = 1.0 / (1.0 + np.exp(-margins / cal.temperature))
    fitted.update(
        kind=kind,
        data=[r.name for r in roots],  # folder names only: no paths of the machine it ran on
        auc=roc_auc(y, scores),
        **extra,
    )
    return dataclasses.replace(cal, fitted_on={k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in fitted.items()})


def fit_video_calibration(
    detector: Detector,
    videos: DataArg,
    *,
    sampler: Any = None,
    aggregator: Any = None,
    target_precision: float | None = 0.9,
    method: str = "balanced_accuracy",
    fprs: Sequence[float] = (0.01, 0.05),
    batch_size: int = 32,
    strict: bool = False,
    progress: bool | None = None,
) -> tuple[CalibrationConfig, list[str], list[int], list[float]]:
    """The video calibration of ``detector`` on validation videos; the paths used, labels and calibrated scores.

    Frames are scored with the detector's image calibration; the aggregate of each video
    is read as a logit and calibrated like an image's logit.

    Raises:
        DatasetError: no folder, or not both classes among the videos that could be scored.
    """
    roots = _roots(videos)
    reading = detector.with_config(detector.config.replace(video_calibration=None))
    sources, ys, scores, _ = _score(
        reading, roots, videos=True, sampler=sampler, aggregator=aggregator, batch_size=batch_size,
        strict=strict, progress=progress,
    )  # fmt: skip
    spec = VideoConfig(
        sampler=sampler if sampler is not None else detector.config.video.sampler,
        aggregator=aggregator if aggregator is not None else detector.config.video.aggregator,
    )
    cal = _fit(
        _logit(np.asarray(scores)), np.asarray(ys, dtype=np.int64), kind="video", roots=roots, method=method,
        fprs=fprs, target_precision=target_precision,
        extra={"flip": detector.flip, "sampler": spec.sampler, "aggregator": spec.aggregator},
    )  # fmt: skip
    calibrated = 1.0 / (1.0 + np.exp(-_logit(np.asarray(scores)) / cal.temperature))
    return cal, sources, ys, [float(x) for x in calibrated]


def calibrate_detector(
    detector: Detector,
    *,
    images: DataArg | None = None,
    videos: DataArg | None = None,
    target_precision: float | None = 0.9,
    method: str = "balanced_accuracy",
    fprs: Sequence[float] = (0.01, 0.05),
    sampler: Any = None,
    aggregator: Any = None,
    batch_size: int = 32,
    strict: bool = False,
    progress: bool | None = None,
) -> Detector:
    """A copy of ``detector`` calibrated on validation images and/or videos, each kind on its own.

    Args:
        detector: A trained detector (its weights are shared, not copied).
        images: Validation image folder(s): ``real/`` and ``fake/`` (used whole), or
            ``train/``, ``val/``, ``test/`` folders (their ``val/`` is used). Fits the
            image calibration (``config.calibration``); left as it is when ``None``.
        videos: Validation video folder(s), laid out the same way. Fits the video
            calibration (``config.video_calibration``); left as it is when ``None``.
        target_precision: The precision (class-balanced) each call must reach on the
            validation data outside the uncertain band; ``None`` fits no band.
        method: Threshold method, ``"balanced_accuracy"`` or ``"eer"``.
        fprs: False-positive rates of the named operating points.
        sampler: Frame sampler for the validation videos (default: the model's); stored
            as the model's default, since the video calibration holds for it only.
        aggregator: Frame aggregator, likewise.
        batch_size: Images or frames per forward pass.
        strict: Raise on an unreadable file instead of leaving it out.
        progress: Progress bars.

    Returns:
        A new :class:`Detector` whose config carries the new calibration(s), each with
        ``fitted_on``: counts, AUC, the uncertain share on the validation data, the
        folder names; and whose training manifest lists the files as ``calibration`` data.

    Raises:
        ConfigError: neither ``images`` nor ``videos``, a bad option, or a sampler or
            aggregator that is not a name or spec (a callable cannot be saved).
        DatasetError: a folder without both classes.

    Example:
        >>> from deepfakedetect import Detector, calibrate_detector
        >>> det = Detector.from_pretrained("runs/model")  # doctest: +SKIP
        >>> det = calibrate_detector(det, images="data/val_faces", videos="data/val_videos")  # doctest: +SKIP
        >>> det.save_pretrained("runs/model-calibrated")  # doctest: +SKIP
    """
    if images is None and videos is None:
        raise ConfigError("calibrate_detector needs validation images=..., videos=... or both")
    if target_precision is not None and not (
        isinstance(target_precision, (int, float)) and 0.5 < float(target_precision) <= 1.0
    ):
        raise ConfigError(f"target_precision must be in (0.5, 1] or None, got {target_precision!r}")
    for name, spec in (("sampler", sampler), ("aggregator", aggregator)):
        if spec is not None and not isinstance(spec, (str, dict)):
            raise ConfigError(
                f"{name} must be a name, 'name:key=value' string or mapping to be stored with the "
                f"calibration, got {type(spec).__name__}"
            )
    # The calibration holds for the way the detector scores now (test-time flip on or off).
    config = detector.config.replace(test_time_flip=detector.flip)
    detector = detector.with_config(config)
    used: list[str] = []
    if images is not None:
        roots = _roots(images)
        reading = detector.with_config(
            config.replace(calibration=CalibrationConfig(temperature=_READ_TEMPERATURE, threshold=0.5))
        )
        sources, ys, scores, _ = _score(
            reading, roots, videos=False, batch_size=batch_size, strict=strict, progress=progress
        )
        margins = _READ_TEMPERATURE * _logit(np.asarray(scores))
        image_cal = _fit(
            margins, np.asarray(ys, dtype=np.int64), kind="image", roots=roots, method=method, fprs=fprs,
            target_precision=target_precision, extra={"flip": detector.flip},
        )  # fmt: skip
        config = config.replace(calibration=image_cal)
        used += sources
        detector = detector.with_config(config)
    if videos is not None:
        video_cal, sources, _, _ = fit_video_calibration(
            detector, videos, sampler=sampler, aggregator=aggregator, target_precision=target_precision,
            method=method, fprs=fprs, batch_size=batch_size, strict=strict, progress=progress,
        )  # fmt: skip
        video = config.video
        if sampler is not None or aggregator is not None:
            video = VideoConfig(
                sampler=sampler if sampler is not None else video.sampler,
                aggregator=aggregator if aggregator is not None else video.aggregator,
            )
        config = config.replace(video_calibration=video_cal, video=video)
        used += sources
    manifest = detector.training_manifest or TrainingManifest()
    digests = [d for d in file_digests(used).values() if d is not None]
    out = detector.with_config(config)
    out.training_manifest = manifest.with_split("calibration", digests)
    for kind, cal in (("image", config.calibration), ("video", config.video_calibration)):
        if cal is not None and cal.fitted_on.get("kind") == kind:
            logger.info(
                "%s calibration: temperature %.4g, threshold %.4g, uncertain band %s (%.1f%% of validation)",
                kind, cal.temperature, cal.threshold, cal.uncertain_band,
                100 * (cal.fitted_on.get("uncertain_share") or 0.0),
            )  # fmt: skip
    return out
