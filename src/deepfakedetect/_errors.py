"""Exceptions raised by deepfakedetect.

Every error the library raises on purpose derives from :class:`DeepfakeDetectError`
and also from the matching builtin, so ``except ValueError`` keeps working::

    DeepfakeDetectError(Exception)
    ├── ConfigError(DeepfakeDetectError, ValueError)        bad or unsupported config / arguments
    ├── ModelLoadError(DeepfakeDetectError, OSError)        missing files, bad weights, key mismatch
    ├── OutputError(DeepfakeDetectError, OSError)           results cannot be written (full disk, ...)
    ├── UnknownPluginError(DeepfakeDetectError, LookupError)
    ├── InputError(DeepfakeDetectError, ValueError)
    │   ├── ImageDecodeError                                unreadable, truncated, bomb
    │   ├── VideoDecodeError                                unreadable, no video stream, truncated, timeout
    │   └── NoFacesError                                    when the caller asked for faces strictly
    └── DatasetError(DeepfakeDetectError, ValueError)       training folder problems

Errors from torch, Pillow, ffmpeg and huggingface_hub are chained (``raise ... from e``).
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DatasetError",
    "DeepfakeDetectError",
    "ImageDecodeError",
    "InputError",
    "ModelLoadError",
    "NoFacesError",
    "OutputError",
    "UnknownPluginError",
    "VideoDecodeError",
]


class DeepfakeDetectError(Exception):
    """Base class of every error raised by deepfakedetect.

    Example:
        >>> from deepfakedetect import DeepfakeDetectError, ImageDecodeError
        >>> issubclass(ImageDecodeError, DeepfakeDetectError)
        True
    """


class ConfigError(DeepfakeDetectError, ValueError):
    """A configuration or argument is invalid or unsupported.

    Example:
        >>> from deepfakedetect import ConfigError
        >>> issubclass(ConfigError, ValueError)
        True
    """


class ModelLoadError(DeepfakeDetectError, OSError):
    """A model could not be loaded: missing files, corrupt weights, key mismatch.

    Example:
        >>> from deepfakedetect import ModelLoadError
        >>> issubclass(ModelLoadError, OSError)
        True
    """


class OutputError(DeepfakeDetectError, OSError):
    """Results could not be written: a full disk, a device that refuses writes, a closed pipe.

    Example:
        >>> from deepfakedetect import OutputError
        >>> issubclass(OutputError, OSError)
        True
    """


class UnknownPluginError(DeepfakeDetectError, LookupError):
    """No sampler, aggregator or face detector is registered under a name.

    Example:
        >>> from deepfakedetect import UnknownPluginError
        >>> issubclass(UnknownPluginError, LookupError)
        True
    """


class InputError(DeepfakeDetectError, ValueError):
    """An input (image, video, array) cannot be used.

    Example:
        >>> from deepfakedetect import InputError
        >>> issubclass(InputError, ValueError)
        True
    """


class ImageDecodeError(InputError):
    """An image is unreadable, truncated, of an unsupported kind, or too large.

    Example:
        >>> from deepfakedetect import ImageDecodeError, InputError
        >>> issubclass(ImageDecodeError, InputError)
        True
    """


class VideoDecodeError(InputError):
    """A video is unreadable, has no video stream, is truncated, or decoding timed out.

    Example:
        >>> from deepfakedetect import VideoDecodeError, InputError
        >>> issubclass(VideoDecodeError, InputError)
        True
    """


class NoFacesError(InputError):
    """No face was found where the caller asked for faces strictly.

    Example:
        >>> from deepfakedetect import NoFacesError, InputError
        >>> issubclass(NoFacesError, InputError)
        True
    """


class DatasetError(DeepfakeDetectError, ValueError):
    """A training or evaluation folder does not have the expected layout or content.

    Example:
        >>> from deepfakedetect import DatasetError
        >>> issubclass(DatasetError, ValueError)
        True
    """
