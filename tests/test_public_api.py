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


def test_all_is_sorted_and_complete():
    names = deepfakedetect.__all__
    assert names == sorted(names)
    public = {n for n in dir(deepfakedetect) if not n.startswith("_")} | {"__version__"}
    modules = {n for n in public if type(getattr(deepfakedetect, n)).__name__ == "module"}
    assert set(names) == public - modules
    for n in names:
        assert hasattr(deepfakedetect, n)


def test_error_hierarchy():
    assert issubclass(ConfigError, (DeepfakeDetectError, ValueError))
    assert issubclass(ModelLoadError, (DeepfakeDetectError, OSError))
    assert issubclass(UnknownPluginError, (DeepfakeDetectError, LookupError))
    for cls in (ImageDecodeError, VideoDecodeError, NoFacesError):
        assert issubclass(cls, InputError)
    assert issubclass(InputError, ValueError)
    assert issubclass(DatasetError, (DeepfakeDetectError, ValueError))
