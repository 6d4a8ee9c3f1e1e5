"""deepfakedetect: tell real faces, images and videos from deepfakes.

The names a user types are here; they load on first use, so ``import deepfakedetect``
stays light (it imports no torch). The built-in plugins have namespaces of their own:
:mod:`deepfakedetect.samplers`, :mod:`deepfakedetect.aggregators` and
:mod:`deepfakedetect.faces`.

Example:
    >>> import deepfakedetect
    >>> detector = deepfakedetect.Detector.from_pretrained()  # the default model, shipped in the package
    >>> detector.config.backbone
    'mobilenet_v2'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from deepfakedetect._version import __version__

if TYPE_CHECKING:
    from deepfakedetect._config import (
        CalibrationConfig,
        FaceConfig,
        ModelConfig,
        PreprocessConfig,
        VideoConfig,
    )
    from deepfakedetect._errors import (
        ConfigError,
        DatasetError,
        DeepfakeDetectError,
        ImageDecodeError,
        InputError,
        ModelLoadError,
        NoFacesError,
        OutputError,
        UnknownPluginError,
        VideoDecodeError,
    )
    from deepfakedetect.batch.many import detect_many
    from deepfakedetect.detector import Detector
    from deepfakedetect.explain import Explanation
    from deepfakedetect.faces.detectors import get_face_detector
    from deepfakedetect.io.video import VideoInfo, probe_video, read_frames
    from deepfakedetect.models.manifest import TrainingManifest
    from deepfakedetect.results import FaceResult, FrameResult, ImageResult, Person, PersonFrame, VideoResult
    from deepfakedetect.training.augment import AugmentConfig
    from deepfakedetect.training.calibrate import calibrate_detector
    from deepfakedetect.training.evaluate import EvaluationReport, evaluate
    from deepfakedetect.training.trainer import Trainer, TrainResult
    from deepfakedetect.video.aggregators import register_aggregator
    from deepfakedetect.video.samplers import register_sampler
    from deepfakedetect.video.tracks import TrackingConfig

# Where each public name lives; ``__getattr__`` imports the module on first access.
_EXPORTS: dict[str, str] = {
    "AugmentConfig": "deepfakedetect.training.augment",
    "CalibrationConfig": "deepfakedetect._config",
    "ConfigError": "deepfakedetect._errors",
    "DatasetError": "deepfakedetect._errors",
    "DeepfakeDetectError": "deepfakedetect._errors",
    "Detector": "deepfakedetect.detector",
    "EvaluationReport": "deepfakedetect.training.evaluate",
    "Explanation": "deepfakedetect.explain",
    "FaceConfig": "deepfakedetect._config",
    "FaceResult": "deepfakedetect.results",
    "FrameResult": "deepfakedetect.results",
    "ImageDecodeError": "deepfakedetect._errors",
    "ImageResult": "deepfakedetect.results",
    "InputError": "deepfakedetect._errors",
    "ModelConfig": "deepfakedetect._config",
    "ModelLoadError": "deepfakedetect._errors",
    "NoFacesError": "deepfakedetect._errors",
    "OutputError": "deepfakedetect._errors",
    "Person": "deepfakedetect.results",
    "PersonFrame": "deepfakedetect.results",
    "PreprocessConfig": "deepfakedetect._config",
    "TrackingConfig": "deepfakedetect.video.tracks",
    "TrainResult": "deepfakedetect.training.trainer",
    "TrainingManifest": "deepfakedetect.models.manifest",
    "Trainer": "deepfakedetect.training.trainer",
    "UnknownPluginError": "deepfakedetect._errors",
    "VideoConfig": "deepfakedetect._config",
    "VideoDecodeError": "deepfakedetect._errors",
    "VideoInfo": "deepfakedetect.io.video",
    "VideoResult": "deepfakedetect.results",
    "calibrate_detector": "deepfakedetect.training.calibrate",
    "detect_many": "deepfakedetect.batch.many",
    "evaluate": "deepfakedetect.training.evaluate",
    "get_face_detector": "deepfakedetect.faces.detectors",
    "probe_video": "deepfakedetect.io.video",
    "read_frames": "deepfakedetect.io.video",
    "register_aggregator": "deepfakedetect.video.aggregators",
    "register_sampler": "deepfakedetect.video.samplers",
}

__all__ = [
    "AugmentConfig",
    "CalibrationConfig",
    "ConfigError",
    "DatasetError",
    "DeepfakeDetectError",
    "Detector",
    "EvaluationReport",
    "Explanation",
    "FaceConfig",
    "FaceResult",
    "FrameResult",
    "ImageDecodeError",
    "ImageResult",
    "InputError",
    "ModelConfig",
    "ModelLoadError",
    "NoFacesError",
    "OutputError",
    "Person",
    "PersonFrame",
    "PreprocessConfig",
    "TrackingConfig",
    "TrainResult",
    "Trainer",
    "TrainingManifest",
    "UnknownPluginError",
    "VideoConfig",
    "VideoDecodeError",
    "VideoInfo",
    "VideoResult",
    "__version__",
    "calibrate_detector",
    "detect_many",
    "evaluate",
    "get_face_detector",
    "probe_video",
    "read_frames",
    "register_aggregator",
    "register_sampler",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'deepfakedetect' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
