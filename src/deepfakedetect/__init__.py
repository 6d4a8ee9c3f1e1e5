"""deepfakedetect: tell real faces, images and videos from deepfakes.

Example:
    >>> from deepfakedetect import Detector
    >>> detector = Detector.from_backbone("resnet18")  # untrained; use from_pretrained() for a real model
    >>> detector.config.backbone
    'resnet18'
"""

from ._config import CalibrationConfig, FaceConfig, ModelConfig, PreprocessConfig, VideoConfig
from ._detector import Detector
from ._errors import (
    ConfigError,
    DatasetError,
    DeepfakeDetectError,
    ImageDecodeError,
    InputError,
    ModelLoadError,
    NoFacesError,
    UnknownPluginError,
    VideoDecodeError,
)
from ._faces import (
    Face,
    FaceDetector,
    FaceStage,
    RetinaFaceDetector,
    crop_face,
    get_face_detector,
    register_face_detector,
    select_faces,
)
from ._images import load_image
from ._model import list_backbones
from ._results import FaceResult, FrameResult, ImageResult, VideoResult
from ._version import __version__

__all__ = [
    "CalibrationConfig",
    "ConfigError",
    "DatasetError",
    "DeepfakeDetectError",
    "Detector",
    "Face",
    "FaceConfig",
    "FaceDetector",
    "FaceResult",
    "FaceStage",
    "FrameResult",
    "ImageDecodeError",
    "ImageResult",
    "InputError",
    "ModelConfig",
    "ModelLoadError",
    "NoFacesError",
    "PreprocessConfig",
    "RetinaFaceDetector",
    "UnknownPluginError",
    "VideoConfig",
    "VideoDecodeError",
    "VideoResult",
    "__version__",
    "crop_face",
    "get_face_detector",
    "list_backbones",
    "load_image",
    "register_face_detector",
    "select_faces",
]
