"""Applying a :class:`~deepfakedetect.FaceConfig`: pick the faces to score and crop them.

:func:`select_faces` keeps the faces a config asks for, :func:`crop_face` cuts one out
with a margin (optionally aligned by the eyes), and :class:`FaceStage` runs a face
detector and both over a batch of images.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from deepfakedetect._config import FaceConfig
from deepfakedetect._errors import ConfigError, InputError
from deepfakedetect._registry import parse_spec
from deepfakedetect._utils import as_number
from deepfakedetect.faces.detectors import (
    FACE_DETECTORS,
    Face,
    FaceDetector,
    check_images,
)

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = ["FaceStage", "crop_face", "select_faces"]


def _size(face: Face) -> float:
    return math.sqrt(face.area)


def select_faces(faces: Sequence[Face], config: FaceConfig) -> list[Face]:
    """The faces a model should score, largest first.

    Faces below ``config.min_confidence`` are dropped; of the rest, ``select`` keeps
    ``"largest"`` (one face), ``"all"``, or ``"relative"``: every face whose size
    (square root of the box area) is at least ``config.min_relative_size`` times that
    of the largest.

    Args:
        faces: Faces of one image.
        config: The face-stage configuration.

    Returns:
        The kept faces by decreasing box area (ties keep the detector's order).

    Example:
        >>> from deepfakedetect._config import FaceConfig
        >>> big = Face((0, 0, 100, 100), (), 0.99)
        >>> small = Face((0, 0, 40, 40), (), 0.95)
        >>> len(select_faces([small, big], FaceConfig(select="relative", min_relative_size=0.5)))
        1
        >>> select_faces([small, big], FaceConfig(select="all"))[0] is big
        True
    """
    kept = sorted((f for f in faces if f.confidence >= config.min_confidence), key=lambda f: -f.area)
    if not kept:
        return []
    if config.select == "largest":
        return kept[:1]
    if config.select == "relative":
        floor = config.min_relative_size * _size(kept[0])
        # A small tolerance so a face exactly at the ratio is kept despite float rounding.
        return [f for f in kept if _size(f) >= floor * (1 - 1e-9)]
    return kept


def crop_face(image: np.ndarray, face: Face, *, margin: float = 1.3, square: bool = True, align: bool = False) -> np.ndarray:
    """Cut a face out of an image with a margin around its box.

    The crop is centred on the box centre and is ``margin`` times the box's width and
    height (with ``square``: ``margin`` times the longer side, both ways). Where it
    leaves the image it is filled with zeros. With ``align``, the crop is rotated
    about the box centre so that the eyes (the first two landmarks) are level;
    without landmarks ``align`` has no effect.

    Args:
        image: RGB ``uint8`` array ``(H, W, 3)`` (any channel count works).
        face: The face, in ``image``'s pixel coordinates.
        margin: Crop side over box side, at least 1.
        square: Make the crop square.
        align: Rotate so the eyes are level.

    Returns:
        A new ``uint8`` array of shape ``(h, w, C)``.

    Raises:
        ConfigError: when ``margin`` is below 1 or not a number.
        InputError: when ``image`` is not an ``(H, W, C)`` array.

    Example:
        >>> img = np.full((100, 100, 3), 255, np.uint8)
        >>> crop = crop_face(img, Face((90, 40, 110, 60), (), 0.9), margin=1.5)
        >>> crop.shape, int(crop[:, :15].min()), int(crop[:, 15:].max())
        ((30, 30, 3), 255, 0)
    """
    if not (as_number(margin) >= 1.0):
        raise ConfigError(f"crop margin must be a number >= 1 (crop side / box side), got {margin!r}")
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0):
        shape = getattr(image, "shape", None)
        raise InputError(f"crop_face expects an image array of shape (H, W, C), got {type(image).__name__} {shape}")
    x1, y1, x2, y2 = face.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = face.width * margin, face.height * margin
    if square:
        w = h = max(w, h)
    out_w, out_h = max(1, round(w)), max(1, round(h))

    angle = 0.0
    if align and len(face.landmarks) >= 2:
        (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
        angle = math.atan2(ry - ly, rx - lx)
    if angle == 0.0:
        return _crop_axis_aligned(image, cx - out_w / 2, cy - out_h / 2, out_w, out_h)
    return _crop_rotated(image, cx, cy, out_w, out_h, angle)


def _crop_axis_aligned(image: np.ndarray, left: float, top: float, out_w: int, out_h: int) -> np.ndarray:
    x0, y0 = round(left), round(top)
    out = np.zeros((out_h, out_w, image.shape[2]), dtype=image.dtype)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(image.shape[1], x0 + out_w), min(image.shape[0], y0 + out_h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def _crop_rotated(image: np.ndarray, cx: float, cy: float, out_w: int, out_h: int, angle: float) -> np.ndarray:
    """Bilinear sampling of a rotated rectangle; outside the image reads as zero."""
    cos, sin = math.cos(angle), math.sin(angle)
    # Output pixel centres relative to the crop centre, rotated into the image.
    u = np.arange(out_w, dtype=np.float64) + 0.5 - out_w / 2
    v = np.arange(out_h, dtype=np.float64) + 0.5 - out_h / 2
    uu, vv = np.meshgrid(u, v)
    # Pixel (i, j) covers [j, j+1) x [i, i+1): its centre is at j + 0.5, hence the - 0.5.
    sx = cx + cos * uu - sin * vv - 0.5
    sy = cy + sin * uu + cos * vv - 0.5
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    fx = (sx - x0)[..., None]
    fy = (sy - y0)[..., None]
    h, w = image.shape[:2]
    # Only the part of the image under the crop is copied, with a ring of zeros around
    # it so that reads outside the image are zero without masks.
    rx0, ry0 = int(np.clip(x0.min(), 0, w)), int(np.clip(y0.min(), 0, h))
    rx1, ry1 = int(np.clip(x0.max() + 2, 0, w)), int(np.clip(y0.max() + 2, 0, h))
    region = np.zeros((max(0, ry1 - ry0) + 2, max(0, rx1 - rx0) + 2, image.shape[2]), dtype=np.float32)
    region[1:-1, 1:-1] = image[ry0:ry1, rx0:rx1]
    rw, rh = region.shape[1] - 1, region.shape[0] - 1
    xa = np.clip(x0 - rx0 + 1, 0, rw)
    xb = np.clip(x0 - rx0 + 2, 0, rw)
    ya = np.clip(y0 - ry0 + 1, 0, rh)
    yb = np.clip(y0 - ry0 + 2, 0, rh)
    top = region[ya, xa] * (1 - fx) + region[ya, xb] * fx
    bottom = region[yb, xa] * (1 - fx) + region[yb, xb] * fx
    out = top * (1 - fy) + bottom * fy
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype)


class FaceStage:
    """Detect faces in a batch of images, select them per :class:`FaceConfig`, and crop them.

    Args:
        config: What to select and how to crop (``enabled`` is the caller's concern:
            this stage always runs when called).
        detector: A :class:`FaceDetector` (any callable), a registry name or spec such as
            ``"retinaface:max_size=480"`` or ``{"name": "retinaface", "weights": path}``;
            ``None`` builds ``config.detector``. Built from a name, the detector is given
            ``min_confidence``, ``max_size`` (from ``config.detect_max_size``),
            ``device`` and the ``detector_options`` when its factory accepts them and the
            spec does not set them.
        device: Passed to a detector built here, when its factory takes ``device``.
        detector_options: More parameters for a detector built here from a name, each
            passed when its factory takes it, the spec does not set it and the value is
            not ``None``: for instance ``{"cache_dir": ..., "local_files_only": True,
            "token": ...}``, which ``"retinaface"`` uses to get its weights. Ignored for a
            detector given as a callable.

    Raises:
        ConfigError: when ``config`` is not a :class:`FaceConfig`, the detector spec is bad
            or ``detector_options`` is not a mapping with string keys.
        UnknownPluginError: when the detector name is not registered.

    Example:
        >>> from deepfakedetect._config import FaceConfig
        >>> def one_face(images):
        ...     return [[Face((2, 2, 6, 6), (), 0.99)] for _ in images]
        >>> stage = FaceStage(FaceConfig(margin=1.5), one_face)
        >>> [(face.box, crop.shape) for face, crop in stage([np.zeros((8, 8, 3), np.uint8)])[0]]
        [((2.0, 2.0, 6.0, 6.0), (6, 6, 3))]
    """

    def __init__(
        self,
        config: FaceConfig,
        detector: FaceDetector | str | Mapping[str, Any] | None = None,
        *,
        device: str | torch.device | None = None,
        detector_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(config, FaceConfig):
            raise ConfigError(f"FaceStage needs a FaceConfig, got {type(config).__name__}")
        if detector_options is not None and not (
            isinstance(detector_options, Mapping) and all(isinstance(k, str) for k in detector_options)
        ):
            raise ConfigError(
                f"FaceStage detector_options must be a mapping of parameter names to values, got {detector_options!r}"
            )
        options = dict(detector_options or {})
        self.config = config
        if detector is None:
            detector = config.detector
        if callable(detector) and not isinstance(detector, (str, Mapping)):
            self.detector: FaceDetector = detector
        else:
            self.detector = _build_detector(detector, config, device, options)

    def __repr__(self) -> str:
        return f"FaceStage(config={self.config!r}, detector={self.detector!r})"

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Detect in batch and select: per image, the faces to score, largest first.

        Args:
            images: RGB ``uint8`` arrays of shape ``(H, W, 3)``.

        Returns:
            One list per image (empty when no face qualifies).

        Raises:
            InputError: when an image is not an RGB ``uint8`` array.
            ConfigError: when the detector returns something other than one list of
                :class:`Face` per image.
        """
        checked = check_images(images)
        if not checked:
            return []
        found = self.detector(checked)
        if not isinstance(found, Sequence) or len(found) != len(checked):
            n = len(found) if isinstance(found, Sequence) else type(found).__name__
            raise ConfigError(
                f"face detector {self.detector!r} returned {n} results for {len(checked)} images; "
                "a FaceDetector returns one list of Face per image"
            )
        selected = []
        for i, faces in enumerate(found):
            faces = list(faces)
            bad = next((f for f in faces if not isinstance(f, Face)), None)
            if bad is not None:
                raise ConfigError(
                    f"face detector {self.detector!r} returned {type(bad).__name__} for image {i}; "
                    "it must return deepfakedetect.Face objects"
                )
            selected.append(select_faces(faces, self.config))
        return selected

    def __call__(self, images: Sequence[np.ndarray]) -> list[list[tuple[Face, np.ndarray]]]:
        """Detect, select and crop.

        Args:
            images: RGB ``uint8`` arrays of shape ``(H, W, 3)``.

        Returns:
            Per image, ``(face, crop)`` pairs by decreasing face size; crops are RGB
            ``uint8`` arrays cut with ``config.margin``, ``config.square`` and
            ``config.align``.

        Raises:
            InputError: when an image is not an RGB ``uint8`` array.
            ConfigError: when the detector misbehaves.
        """
        cfg = self.config
        per_image = self.detect(images)
        return [
            [(face, crop_face(img, face, margin=cfg.margin, square=cfg.square, align=cfg.align)) for face in faces]
            for img, faces in zip(images, per_image)
        ]


def _build_detector(
    spec: str | Mapping[str, Any], config: FaceConfig, device: str | torch.device | None, options: Mapping[str, Any]
) -> FaceDetector:
    if isinstance(spec, str):
        name, params = parse_spec(spec)
    elif isinstance(spec, Mapping):
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(f"a face detector given as a mapping needs a 'name' key: {spec!r}")
    else:
        raise ConfigError(f"a face detector must be a callable, a name or a mapping with 'name'; got {spec!r}")
    factory = FACE_DETECTORS.get(name)
    try:
        accepted: Mapping[str, inspect.Parameter] = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins and C callables have no signature
        accepted = {}
    for key, value in (
        ("min_confidence", config.min_confidence),
        ("max_size", config.detect_max_size),
        ("device", device),
        *options.items(),
    ):
        if key in accepted and key not in params and value is not None:
            params[key] = value
    return cast(FaceDetector, FACE_DETECTORS.create({"name": name, **params}))
