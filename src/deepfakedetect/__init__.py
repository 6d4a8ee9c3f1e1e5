"""deepfakedetect: tell real faces, images and videos from deepfakes.

Example:
    >>> from deepfakedetect import Detector
    >>> detector = Detector.from_backbone("resnet18")  # untrained; use from_pretrained() for a real model
    >>> detector.config.backbone
    'resnet18'
"""

from ._aggregators import (
    Aggregator,
    ConfidentAggregator,
    FrameScores,
    MajorityAggregator,
    MaxAggregator,
    MeanAggregator,
    MedianAggregator,
    QuantileAggregator,
    TopKMeanAggregator,
    TrimmedMeanAggregator,
    get_aggregator,
    list_aggregators,
    register_aggregator,
)
from ._augment import AugmentConfig
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
from ._evaluate import EvaluationReport, evaluate
from ._explain import Explanation
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
from ._ray import DetectorPredictor, detect_with_ray
from ._results import FaceResult, FrameResult, ImageResult, VideoResult
from ._samplers import (
    EveryKthSampler,
    FirstSecondsSampler,
    FpsSampler,
    FrameSampler,
    RandomSampler,
    UniformSampler,
    get_sampler,
    list_samplers,
    register_sampler,
)
from ._segments import Segment
from ._trainer import Trainer, TrainResult
from ._version import __version__
from ._video import VideoInfo, probe_video, read_frames

__all__ = [
    "Aggregator",
    "AugmentConfig",
    "CalibrationConfig",
    "ConfidentAggregator",
    "ConfigError",
    "DatasetError",
    "DeepfakeDetectError",
    "Detector",
    "DetectorPredictor",
    "EvaluationReport",
    "EveryKthSampler",
    "Explanation",
    "Face",
    "FaceConfig",
    "FaceDetector",
    "FaceResult",
    "FaceStage",
    "FirstSecondsSampler",
    "FpsSampler",
    "FrameResult",
    "FrameSampler",
    "FrameScores",
    "ImageDecodeError",
    "ImageResult",
    "InputError",
    "MajorityAggregator",
    "MaxAggregator",
    "MeanAggregator",
    "MedianAggregator",
    "ModelConfig",
    "ModelLoadError",
    "NoFacesError",
    "PreprocessConfig",
    "QuantileAggregator",
    "RandomSampler",
    "RetinaFaceDetector",
    "Segment",
    "TopKMeanAggregator",
    "TrainResult",
    "Trainer",
    "TrimmedMeanAggregator",
    "UniformSampler",
    "UnknownPluginError",
    "VideoConfig",
    "VideoDecodeError",
    "VideoInfo",
    "VideoResult",
    "__version__",
    "crop_face",
    "detect_with_ray",
    "evaluate",
    "get_aggregator",
    "get_face_detector",
    "get_sampler",
    "list_aggregators",
    "list_backbones",
    "list_samplers",
    "load_image",
    "probe_video",
    "read_frames",
    "register_aggregator",
    "register_face_detector",
    "register_sampler",
    "select_faces",
]
