"""Preprocessing from a model's config: resize the shorter side, centre-crop.

The same functions run at inference (``Detector.preprocess``), in training data
preparation and in explanations, so a model sees at inference what it saw in training.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from deepfakedetect._config import PreprocessConfig

__all__ = ["resize_and_crop", "resize_shorter_side"]

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


# Above this many pixels (relative to the input), the resized whole image is never made:
# only the centre box is resampled (a 1 x 100000 strip would otherwise need GBs).
_MAX_RESIZED_FACTOR = 16


def _resized_size(h: int, w: int, pre: PreprocessConfig) -> tuple[int, int]:
    scale = pre.resize_size / min(h, w)
    return max(pre.input_size, round(w * scale)), max(pre.input_size, round(h * scale))


def resize_shorter_side(image: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    """Resize so the shorter side is ``pre.resize_size`` (the first half of :func:`resize_and_crop`).

    Idempotent, and :func:`resize_and_crop` of the result equals :func:`resize_and_crop` of
    the input, so it can run early (e.g. in decoding threads) to keep only small arrays.
    Images whose resized whole would be huge (extreme aspect ratios) are returned unchanged.

    Example:
        >>> resize_shorter_side(np.zeros((300, 400, 3), np.uint8), PreprocessConfig(input_size=224)).shape
        (224, 299, 3)
    """
    h, w = image.shape[:2]
    nw, nh = _resized_size(h, w, pre)
    if (nw, nh) == (w, h) or nw * nh > _MAX_RESIZED_FACTOR * pre.input_size**2:
        return image
    return np.asarray(Image.fromarray(image).resize((nw, nh), _RESAMPLE[pre.interpolation]))


def resize_and_crop(image: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    """Resize so the shorter side is ``pre.resize_size``, then centre-crop ``pre.input_size``.

    Example:
        >>> resize_and_crop(np.zeros((300, 400, 3), np.uint8), PreprocessConfig(input_size=224)).shape
        (224, 224, 3)
    """
    h, w = image.shape[:2]
    s = pre.input_size
    nw, nh = _resized_size(h, w, pre)
    top, left = (nh - s) // 2, (nw - s) // 2
    image = resize_shorter_side(image, pre)
    if image.shape[:2] == (nh, nw):
        return image[top : top + s, left : left + s]
    # Too large to resize whole: resample only the centre box, the same region.
    box = (left * w / nw, top * h / nh, (left + s) * w / nw, (top + s) * h / nh)
    return np.asarray(Image.fromarray(image).resize((s, s), _RESAMPLE[pre.interpolation], box=box))
