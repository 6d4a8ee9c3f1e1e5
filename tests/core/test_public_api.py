import subprocess
import sys

import pytest

import deepfakedetect
from deepfakedetect import (
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


# What a user types: pinned, so that a name added or removed is a decision, not an accident.
PUBLIC = [
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


def test_all_is_pinned_sorted_and_resolvable():
    assert deepfakedetect.__all__ == PUBLIC == sorted(PUBLIC)
    for n in PUBLIC:
        assert getattr(deepfakedetect, n) is not None
    assert set(PUBLIC) <= set(dir(deepfakedetect))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        deepfakedetect.Nope  # noqa: B018


def test_builtin_plugins_live_in_their_namespaces():
    from deepfakedetect import aggregators, faces, samplers

    for module in (samplers, aggregators, faces):
        assert module.__all__ == sorted(module.__all__)
        for n in module.__all__:
            assert getattr(module, n) is not None
    assert samplers.get_sampler("uniform:num_frames=4") == samplers.UniformSampler(num_frames=4)
    assert aggregators.get_aggregator("mean") == aggregators.MeanAggregator()
    assert isinstance(faces.get_face_detector("retinaface", weights=None), faces.RetinaFaceDetector)


def test_import_and_help_load_no_torch():
    # A fresh interpreter: the test process has imported torch long ago.
    code = (
        "import sys, deepfakedetect, deepfakedetect.cli.parser as p; p.build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'numpy', 'PIL')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_error_hierarchy():
    assert issubclass(ConfigError, (DeepfakeDetectError, ValueError))
    assert issubclass(ModelLoadError, (DeepfakeDetectError, OSError))
    assert issubclass(UnknownPluginError, (DeepfakeDetectError, LookupError))
    for cls in (ImageDecodeError, VideoDecodeError, NoFacesError):
        assert issubclass(cls, InputError)
    assert issubclass(InputError, ValueError)
    assert issubclass(DatasetError, (DeepfakeDetectError, ValueError))
