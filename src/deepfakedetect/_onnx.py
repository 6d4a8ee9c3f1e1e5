"""ONNX export of a detector's networks, and an ONNX Runtime backend that runs them.

An exported model folder holds the same ``config.json`` (and ``README.md``) as a
saved one, with the networks as ONNX files instead of ``model.safetensors``:

- ``model.onnx``: the classifier, input ``"input"`` (N, 3, S, S) normalised float32,
  output ``"logits"`` (N, 1 or 2), dynamic batch;
- ``face_detector.onnx`` (when the face stage is on and uses the built-in RetinaFace):
  input ``"input"`` (N, 3, H, W) BGR float32 minus the means, outputs ``"loc"``,
  ``"logits"`` and ``"landmarks"``, dynamic batch, height and width.

Everything around the networks (image loading, face selection and cropping,
preprocessing, calibration, video sampling and aggregation) is the library's own code,
so a detector loaded with ``backend="onnxruntime"`` runs the same pipeline as the
torch one. Exporting needs torch's exporter (``onnx`` and ``onnxscript``); running needs
only ``onnxruntime``: ``pip install 'deepfakedetect[onnx]'`` installs all three.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ._config import ModelConfig
from ._errors import ConfigError, InputError, ModelLoadError
from ._hub import CONFIG_NAME, download_file

logger = logging.getLogger(__name__)

__all__ = [
    "CLASSIFIER_ONNX",
    "FACE_DETECTOR_ONNX",
    "OnnxClassifier",
    "OnnxFiles",
    "OnnxRetinaFace",
    "RetinaFaceOnnxDetector",
    "export_classifier",
    "export_retinaface",
    "onnx_session",
    "resolve_onnx_files",
]

CLASSIFIER_ONNX = "model.onnx"
FACE_DETECTOR_ONNX = "face_detector.onnx"
# The largest batch the exported graphs declare; the exporter needs an upper bound.
_MAX_BATCH = 4096
_INSTALL_HINT = "install the extra: pip install 'deepfakedetect[onnx]'"
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class OnnxFiles:
    """The files of an exported model, and where they came from.

    Attributes:
        config: ``config.json``.
        classifier: ``model.onnx``.
        face_detector: ``face_detector.onnx``, or ``None`` when the model has none.
        source: The folder or repo id as given.
        revision: The Hub commit the files were taken from; ``None`` for a folder.
    """

    config: Path
    classifier: Path
    face_detector: Path | None
    source: str
    revision: str | None


def resolve_onnx_files(
    repo_id_or_dir: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
) -> OnnxFiles:
    """Find an exported model's files in a folder, or download them from one commit of a Hub repo.

    From the Hub, ``face_detector.onnx`` is fetched when the config's face stage is on and
    uses the built-in RetinaFace; in a folder it is used when present.

    Raises:
        ModelLoadError: a missing folder or file (the message says how to export one), or
            any download failure.
        ConfigError: an invalid ``config.json`` (Hub only; a folder's is read by the caller).
    """
    given = os.fspath(repo_id_or_dir)
    folder = Path(given).expanduser()
    if folder.is_dir():
        config, classifier = folder / CONFIG_NAME, folder / CLASSIFIER_ONNX
        for path in (config, classifier):
            if not path.is_file():
                raise ModelLoadError(
                    f"{folder} has no {path.name}: an ONNX model folder holds {CONFIG_NAME} and {CLASSIFIER_ONNX}. "
                    f"Export one with Detector.from_pretrained({given!r}).export_onnx(DIR) or "
                    f"`deepfakedetect export {given} --format onnx --out DIR`"
                )
        face = folder / FACE_DETECTOR_ONNX
        return OnnxFiles(config, classifier, face if face.is_file() else None, given, None)
    if not isinstance(repo_id_or_dir, str) or not _REPO_ID.match(given) or folder.exists():
        raise ModelLoadError(
            f"model folder {given!r} does not exist: pass a folder written by Detector.export_onnx, "
            "or a Hub repo id such as 'org/name'"
        )
    options: dict[str, Any] = {
        "cache_dir": cache_dir, "local_files_only": local_files_only, "token": token, "force_download": force_download,
    }
    config = download_file(given, CONFIG_NAME, revision=revision, **options)
    # The snapshot folder is named by the commit: the other files come from that same commit.
    commit = config.parent.name if _COMMIT.match(config.parent.name) else revision
    classifier = download_file(given, CLASSIFIER_ONNX, revision=commit, **options)
    faces = ModelConfig.load(config).faces
    face = None
    if faces.enabled and faces.detector == "retinaface":
        face = download_file(given, FACE_DETECTOR_ONNX, revision=commit, **options)
    return OnnxFiles(config, classifier, face, given, commit)


def _export(module: nn.Module, example: torch.Tensor, path: Path, *, output_names: list[str], dims: dict[int, Any]) -> Path:
    """Export with torch's (torch.export-based) ONNX exporter, written atomically."""
    try:
        import onnxscript  # noqa: F401 - torch's exporter needs it; imported here to say so clearly
    except ImportError as e:
        raise ConfigError(f"exporting to ONNX needs the onnx and onnxscript packages: {_INSTALL_HINT}") from e
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with warnings.catch_warnings():
            # The exporter warns about its own internals (deprecations inside torch.export).
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module,
                (example,),
                input_names=["input"],
                output_names=output_names,
                dynamic_shapes=(dims,),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
        if program is None:  # only the legacy exporter returns None
            raise ConfigError(f"torch.onnx.export returned no program for {path.name}")
        program.save(str(tmp))
        os.replace(tmp, path)
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"cannot export {type(module).__name__} to {path}: {type(e).__name__}: {str(e)[:500]}; "
            "the network may use an operation ONNX does not support"
        ) from e
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def export_classifier(model: nn.Module, path: str | os.PathLike[str], *, input_size: int) -> Path:
    """Export a classification network (N, 3, S, S) -> (N, K) logits to ONNX, with a dynamic batch.

    Args:
        model: The network (exported in eval mode on the CPU, as float32; ``model`` is not changed).
        path: The ``.onnx`` file to write.
        input_size: The side ``S`` of its square input.

    Returns:
        The path written.

    Raises:
        ConfigError: the exporter is not installed, or cannot export the network.

    Example:
        >>> net = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        >>> export_classifier(net, "classifier.onnx", input_size=32)  # doctest: +SKIP
    """
    import copy

    module = copy.deepcopy(model).eval().float().cpu().to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, 3, input_size, input_size)
    batch = torch.export.Dim("batch", min=1, max=_MAX_BATCH)
    return _export(module, example, Path(path), output_names=["logits"], dims={0: batch})


def export_retinaface(net: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Export the RetinaFace network to ONNX with dynamic batch, height and width.

    Args:
        net: A loaded :class:`~deepfakedetect._retinaface.RetinaFace` (not changed).
        path: The ``.onnx`` file to write.

    Returns:
        The path written.

    Raises:
        ConfigError: the exporter is not installed, or cannot export the network.
    """
    import copy

    module = copy.deepcopy(net).eval().float().cpu().to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, 3, 96, 128)
    dims = {
        0: torch.export.Dim("batch", min=1, max=_MAX_BATCH),
        2: torch.export.Dim("height", min=32, max=8192),
        3: torch.export.Dim("width", min=32, max=8192),
    }
    return _export(module, example, Path(path), output_names=["loc", "logits", "landmarks"], dims=dims)


def onnx_session(path: str | os.PathLike[str], *, threads: int | None = None) -> Any:
    """An ONNX Runtime inference session on the CPU for one ``.onnx`` file.

    Args:
        path: The ``.onnx`` file.
        threads: Threads per call (``None``: ONNX Runtime's default, one per physical core).

    Returns:
        An ``onnxruntime.InferenceSession`` (safe to call from several threads).

    Raises:
        ConfigError: ``onnxruntime`` is not installed.
        ModelLoadError: the file is missing or not a valid ONNX model.
    """
    try:
        import onnxruntime as ort  # optional dependency, the [onnx] extra
    except ImportError as e:
        raise ConfigError(f"backend='onnxruntime' needs the onnxruntime package: {_INSTALL_HINT}") from e
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(
            f"{path} does not exist: export the model first "
            "(Detector.export_onnx(dir) or deepfakedetect export MODEL --format onnx --out DIR)"
        )
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's warnings about unused initialisers are noise
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as e:
        raise ModelLoadError(
            f"{path} is not a valid ONNX model for onnxruntime: {type(e).__name__}: {str(e)[:300]}; "
            "export it again with this version of deepfakedetect"
        ) from e


class _SessionModule(nn.Module):
    """An ``nn.Module`` face on an ONNX Runtime session: tensors in, tensors out, on the CPU."""

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = onnx_session(self.path, threads=threads)
        self._output_names = [o.name for o in self.session.get_outputs()]

    def _run(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.device.type != "cpu":
            raise ConfigError(f"the ONNX Runtime backend runs on the CPU; got a tensor on {x.device}")
        array = np.ascontiguousarray(x.detach().float().numpy())
        outputs = self.session.run(self._output_names, {"input": array})
        return [torch.from_numpy(np.asarray(o)) for o in outputs]

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}"


class OnnxClassifier(_SessionModule):
    """The classifier of an exported model, run by ONNX Runtime: (N, 3, S, S) -> (N, K) logits.

    It holds no parameters; ``state_dict()`` is empty. :class:`~deepfakedetect.Detector`
    calls it in place of the torch network when loaded with ``backend="onnxruntime"``.

    Example:
        >>> clf = OnnxClassifier("exported/model.onnx")  # doctest: +SKIP
        >>> clf(torch.zeros(4, 3, 128, 128)).shape  # doctest: +SKIP
        torch.Size([4, 2])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x)[0]


class OnnxRetinaFace(_SessionModule):
    """The exported RetinaFace run by ONNX Runtime, with the torch network's inputs and outputs."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        loc, logits, landmarks = self._run(x)
        return loc, logits, landmarks


@dataclass(frozen=True)
class RetinaFaceOnnxDetector:
    """The built-in face detector with its network run by ONNX Runtime.

    Detection sizes, confidence filtering, NMS and the mapping back to image pixels are
    those of :class:`~deepfakedetect.RetinaFaceDetector`; only the network differs.

    Args:
        path: The exported ``face_detector.onnx``.
        min_confidence: Faces scoring below this are not returned.
        nms_iou: Non-maximum-suppression overlap threshold.
        max_size: Longest image side, in pixels, at which detection runs.
        batch_size: Images per forward pass.
        threads: ONNX Runtime threads per call (``None``: its default).

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
        object.__setattr__(self, "_lock", threading.Lock())

    def load(self) -> OnnxRetinaFace:
        """Open the ONNX Runtime session now (otherwise done on the first call)."""
        with self.__dict__["_lock"]:
            net = self.__dict__.get("_network")
            if net is None:
                net = OnnxRetinaFace(self.path, threads=self.threads)
                object.__setattr__(self, "_network", net)
            return net

    def __call__(self, images: Sequence[np.ndarray], /) -> list[list[Any]]:
        from ._faces import Face
        from ._retinaface import detect_faces

        checked = list(images)
        for i, img in enumerate(checked):
            if not (isinstance(img, np.ndarray) and img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3):
                raise InputError(f"image {i}: expected an RGB uint8 numpy array of shape (H, W, 3)")
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
        return [
            [
                Face(tuple(box.tolist()), tuple(map(tuple, pts.tolist())), float(score))
                for box, pts, score in zip(d.boxes, d.landmarks, d.scores)
            ]
            for d in dets
        ]
