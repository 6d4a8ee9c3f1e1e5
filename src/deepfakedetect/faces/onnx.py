"""The built-in face detector as ONNX: export the RetinaFace network, and run it with ONNX Runtime.

Only the network changes: detection sizes, confidence filtering, NMS and the mapping back
to image pixels are :func:`~deepfakedetect.faces.retinaface.detect_faces`, as for
:class:`~deepfakedetect.faces.RetinaFaceDetector`. The classifier's half is in
:mod:`deepfakedetect.models.onnx`.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from deepfakedetect._errors import ConfigError
from deepfakedetect._utils import as_int, as_number
from deepfakedetect.faces.detectors import Face, check_images, faces_from_detections
from deepfakedetect.faces.retinaface import detect_faces
from deepfakedetect.models.onnx import MAX_BATCH, OnnxSessionModule, export_module

__all__ = ["OnnxRetinaFace", "RetinaFaceOnnxDetector", "export_retinaface"]


def export_retinaface(net: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Export the RetinaFace network to ONNX with dynamic batch, height and width.

    Args:
        net: A loaded :class:`~deepfakedetect.faces.retinaface.RetinaFace` (not changed).
        path: The ``.onnx`` file to write.

    Returns:
        The path written.

    Raises:
        ConfigError: the exporter is not installed, or cannot export the network.
    """
    module = copy.deepcopy(net).eval().float().cpu().to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, 3, 96, 128)
    dims = {
        0: torch.export.Dim("batch", min=1, max=MAX_BATCH),
        2: torch.export.Dim("height", min=32, max=8192),
        3: torch.export.Dim("width", min=32, max=8192),
    }
    return export_module(module, example, path, output_names=["loc", "logits", "landmarks"], dims=dims)


class OnnxRetinaFace(OnnxSessionModule):
    """The exported RetinaFace run by ONNX Runtime, with the torch network's inputs and outputs."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loc, logits, landmarks = self.run(x)
        return loc, logits, landmarks


@dataclass(frozen=True)
class RetinaFaceOnnxDetector:
    """The built-in face detector with its network run by ONNX Runtime (a :class:`FaceDetector`).

    Args:
        path: The exported ``face_detector.onnx``.
        min_confidence: Faces scoring below this are not returned.
        nms_iou: Non-maximum-suppression overlap threshold.
        max_size: Longest image side, in pixels, at which detection runs.
        batch_size: Images per forward pass.
        threads: ONNX Runtime threads per call (``None``: its default).

    Raises:
        ConfigError: for out-of-range parameters.

    Example:
        >>> det = RetinaFaceOnnxDetector("exported/face_detector.onnx", min_confidence=0.8)
        >>> det.max_size
        640
    """

    path: str | os.PathLike[str]
    _: dataclasses.KW_ONLY
    min_confidence: float = 0.5
    nms_iou: float = 0.4
    max_size: int = 640
    batch_size: int = 16
    threads: int | None = None

    def __post_init__(self) -> None:
        checks = (
            ("min_confidence", 0.0 <= as_number(self.min_confidence) <= 1.0, "a number in [0, 1]"),
            ("nms_iou", 0.0 < as_number(self.nms_iou) <= 1.0, "a number in (0, 1]"),
            ("max_size", as_int(self.max_size) >= 32, "an integer >= 32"),
            ("batch_size", as_int(self.batch_size) >= 1, "an integer >= 1"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"RetinaFaceOnnxDetector {name} must be {expected}, got {getattr(self, name)!r}")
        # A cache, not a parameter: kept out of the dataclass fields, repr and equality.
        object.__setattr__(self, "_lock", threading.Lock())

    def load(self) -> OnnxRetinaFace:
        """Open the ONNX Runtime session now (otherwise done on the first call)."""
        with self.__dict__["_lock"]:
            net = self.__dict__.get("_network")
            if net is None:
                net = OnnxRetinaFace(self.path, threads=self.threads)
                object.__setattr__(self, "_network", net)
            return net

    def __call__(self, images: Sequence[np.ndarray], /) -> list[list[Face]]:
        """Find faces in each image (RGB ``uint8`` arrays of any sizes), best first."""
        checked = check_images(images)
        if not checked:
            return []
        dets = detect_faces(
            self.load(),
            checked,
            min_confidence=self.min_confidence,
            nms_iou=self.nms_iou,
            max_size=self.max_size,
            batch_size=self.batch_size,
        )
        return faces_from_detections(dets)
