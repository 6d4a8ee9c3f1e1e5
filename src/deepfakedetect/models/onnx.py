"""ONNX export of a detector's networks, and the ONNX Runtime sessions that run them.

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
only ``onnxruntime``: ``pip install 'deepfakedetect[onnx]'`` installs all three. The face
detector's half is in :mod:`deepfakedetect.faces.onnx`.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepfakedetect._config import CONFIG_NAME, ModelConfig
from deepfakedetect._errors import ConfigError, ModelLoadError

logger = logging.getLogger(__name__)

__all__ = [
    "BACKENDS",
    "CLASSIFIER_ONNX",
    "FACE_DETECTOR_ONNX",
    "OnnxClassifier",
    "OnnxFiles",
    "OnnxSessionModule",
    "check_backend",
    "export_classifier",
    "export_module",
    "onnx_session",
    "resolve_onnx_files",
]

#: What can run a detector's networks: torch itself, or ONNX Runtime on an exported folder.
BACKENDS = ("torch", "onnxruntime")

CLASSIFIER_ONNX = "model.onnx"
FACE_DETECTOR_ONNX = "face_detector.onnx"
# The largest batch the exported graphs declare; the exporter needs an upper bound.
MAX_BATCH = 4096
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
    # models.hub imports huggingface_hub (about 0.3 s, more on a busy machine): only for Hub repos,
    # so that every Detector (whose module imports this one) does not pay for it.
    from deepfakedetect.models.hub import download_file

    options: dict[str, Any] = {
        "cache_dir": cache_dir, "local_files_only": local_files_only, "token": token, "force_download": force_download,
    }
    config = download_file(given, CONFIG_NAME, revision=revision, **options)
    # The snapshot folder is named by the commit: the other files come from that same commit.
    commit = config.parent.name if _COMMIT.match(config.parent.name) else revision
    classifier = download_file(given, CLASSIFIER_ONNX, revision=commit, **options)
    faces = ModelConfig.load(config).faces
    face_file: Path | None = None
    if faces.enabled and faces.detector == "retinaface":
        face_file = download_file(given, FACE_DETECTOR_ONNX, revision=commit, **options)
    return OnnxFiles(config, classifier, face_file, given, commit)


def check_backend(backend: str) -> str:
    """``backend`` itself when it is one of :data:`BACKENDS`, else a :class:`ConfigError`.

    Example:
        >>> check_backend("onnxruntime")
        'onnxruntime'
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def export_module(
    module: nn.Module, example: torch.Tensor, path: str | os.PathLike[str], *, output_names: list[str], dims: dict[int, Any]
) -> Path:
    """Export a network with torch's (torch.export-based) ONNX exporter; the file is written atomically.

    Args:
        module: The network (exported as it is: eval mode, float32, on the CPU).
        example: An example input.
        path: The ``.onnx`` file to write.
        output_names: Names of the graph's outputs (the input is called ``"input"``).
        dims: The input's dynamic dimensions, ``{axis: torch.export.Dim(...)}``.

    Returns:
        The path written.

    Raises:
        ConfigError: the exporter is not installed, or cannot export the network.
    """
    path = Path(path)
    try:
        import onnxscript  # noqa: F401 - optional ([onnx] extra); torch's exporter needs it, checked here to say so
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
    module = copy.deepcopy(model).eval().float().cpu().to(memory_format=torch.contiguous_format)
    example = torch.zeros(2, 3, input_size, input_size)
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return export_module(module, example, path, output_names=["logits"], dims={0: batch})


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


class OnnxSessionModule(nn.Module):
    """An ``nn.Module`` face on an ONNX Runtime session: tensors in, tensors out, on the CPU.

    It holds no parameters (``state_dict()`` is empty); the graph's one input is ``"input"``.

    Args:
        path: The ``.onnx`` file.
        threads: ONNX Runtime threads per call (``None``: its default).
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: int | None = None) -> None:
        super().__init__()
        self.path = Path(path)
        self.session = onnx_session(self.path, threads=threads)
        self._output_names = [o.name for o in self.session.get_outputs()]

    def run(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run the graph on ``x`` (a CPU tensor); its outputs as tensors, in the graph's order."""
        if x.device.type != "cpu":
            raise ConfigError(f"the ONNX Runtime backend runs on the CPU; got a tensor on {x.device}")
        array = np.ascontiguousarray(x.detach().float().numpy())
        outputs = self.session.run(self._output_names, {"input": array})
        return [torch.from_numpy(np.asarray(o)) for o in outputs]

    def extra_repr(self) -> str:
        return f"path={str(self.path)!r}"


class OnnxClassifier(OnnxSessionModule):
    """The classifier of an exported model, run by ONNX Runtime: (N, 3, S, S) -> (N, K) logits.

    It holds no parameters; ``state_dict()`` is empty. :class:`~deepfakedetect.Detector`
    calls it in place of the torch network when loaded with ``backend="onnxruntime"``.

    Example:
        >>> clf = OnnxClassifier("exported/model.onnx")  # doctest: +SKIP
        >>> clf(torch.zeros(4, 3, 128, 128)).shape  # doctest: +SKIP
        torch.Size([4, 2])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]
