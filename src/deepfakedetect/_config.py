"""Typed model configuration: what ``config.json`` in a model folder holds.

Everything needed to reproduce inference travels with the weights: the backbone,
labels, preprocessing, face stage, calibration and video defaults. Unknown keys are
ignored on load (older libraries can read newer files that only add keys); a newer
``format_version`` is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfakedetect._errors import ConfigError
from deepfakedetect._version import __version__

#: The files of a model folder (local or a Hub repo).
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
README_NAME = "README.md"

__all__ = [
    "FORMAT_VERSION",
    "CalibrationConfig",
    "FaceConfig",
    "ModelConfig",
    "PreprocessConfig",
    "VideoConfig",
]

FORMAT_VERSION = 1

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")
_FACE_SELECT = ("largest", "all", "relative")
_FACE_REDUCE = ("max", "mean", "largest")


def _check(cond: object, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class PreprocessConfig:
    """How an RGB image becomes the model's input tensor.

    The image is resized so its shorter side is ``resize_size`` (keeping the aspect
    ratio), centre-cropped to ``input_size`` x ``input_size``, scaled to [0, 1] and
    normalised with ``mean`` and ``std``.

    Example:
        >>> PreprocessConfig(input_size=128, resize_size=128).input_size
        128
    """

    input_size: int = 224
    resize_size: int = 224  # shorter side before the centre crop; >= input_size
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)  # ImageNet statistics
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        _check(
            isinstance(self.input_size, int) and 16 <= self.input_size <= 2048,
            f"preprocess.input_size must be an integer in [16, 2048], got {self.input_size!r}",
        )
        _check(
            isinstance(self.resize_size, int) and self.input_size <= self.resize_size <= 4096,
            f"preprocess.resize_size must be an integer in [input_size, 4096], got {self.resize_size!r}",
        )
        _check(
            self.interpolation in _INTERPOLATIONS,
            f"preprocess.interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}",
        )
        for name in ("mean", "std"):
            value = getattr(self, name)
            _check(
                len(value) == 3 and all(_is_number(v) for v in value),
                f"preprocess.{name} must be three numbers, got {value!r}",
            )
            object.__setattr__(self, name, tuple(float(v) for v in value))
        _check(all(s > 0 for s in self.std), f"preprocess.std must be positive, got {self.std!r}")


@dataclass(frozen=True)
class FaceConfig:
    """The face stage: find faces, crop them with a margin, score each crop.

    Example:
        >>> FaceConfig(enabled=True, margin=1.3).select
        'all'
    """

    enabled: bool = False
    detector: str = "retinaface"  # a name in the face-detector registry
    min_confidence: float = 0.8  # faces below this detector confidence are ignored
    margin: float = 1.3  # crop side = margin x the face box's side
    square: bool = True  # crop a square around the box centre
    align: bool = False  # rotate so the eyes are level before cropping
    select: str = "all"  # "largest", "all", or "relative" (all at least min_relative_size x the largest)
    min_relative_size: float = 0.5
    reduce: str = "max"  # how a frame's score comes from its faces' scores: "max", "mean", "largest"
    detect_max_size: int = 640  # frames are downscaled so their longer side is at most this for detection

    def __post_init__(self) -> None:
        _check(isinstance(self.enabled, bool), f"faces.enabled must be true or false, got {self.enabled!r}")
        _check(
            _is_number(self.min_confidence) and 0.0 <= self.min_confidence <= 1.0,
            f"faces.min_confidence must be in [0, 1], got {self.min_confidence!r}",
        )
        _check(
            _is_number(self.margin) and 1.0 <= self.margin <= 4.0,
            f"faces.margin must be in [1, 4], got {self.margin!r}",
        )
        _check(self.select in _FACE_SELECT, f"faces.select must be one of {_FACE_SELECT}, got {self.select!r}")
        _check(
            _is_number(self.min_relative_size) and 0.0 < self.min_relative_size <= 1.0,
            f"faces.min_relative_size must be in (0, 1], got {self.min_relative_size!r}",
        )
        _check(self.reduce in _FACE_REDUCE, f"faces.reduce must be one of {_FACE_REDUCE}, got {self.reduce!r}")
        _check(
            isinstance(self.detect_max_size, int) and 64 <= self.detect_max_size <= 4096,
            f"faces.detect_max_size must be an integer in [64, 4096], got {self.detect_max_size!r}",
        )


@dataclass(frozen=True)
class CalibrationConfig:
    """Turning logits into a calibrated ``fake_score`` and a label.

    ``fake_score = softmax(logits / temperature)[fake]`` (or ``sigmoid`` for one
    logit); the label is ``"fake"`` when ``fake_score >= threshold``.
    ``operating_points`` names other thresholds, e.g. ``{"fpr@1%": 0.93}``.

    Example:
        >>> CalibrationConfig(temperature=1.5, threshold=0.4).threshold
        0.4
    """

    temperature: float = 1.0
    threshold: float = 0.5
    operating_points: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(
            _is_number(self.temperature) and 1e-3 <= self.temperature <= 1e3,
            f"calibration.temperature must be in [0.001, 1000], got {self.temperature!r}",
        )
        _check(
            _is_number(self.threshold) and 0.0 <= self.threshold <= 1.0,
            f"calibration.threshold must be in [0, 1], got {self.threshold!r}",
        )
        for k, v in self.operating_points.items():
            _check(
                _is_number(v) and 0.0 <= v <= 1.0,
                f"calibration.operating_points[{k!r}] must be in [0, 1], got {v!r}",
            )


@dataclass(frozen=True)
class VideoConfig:
    """Default frame sampler, aggregator and people rule for ``detect_video`` (specs as the registries take them).

    Example:
        >>> VideoConfig().sampler
        {'name': 'uniform', 'num_frames': 32}
    """

    sampler: Any = field(default_factory=lambda: {"name": "uniform", "num_frames": 32})
    aggregator: Any = field(default_factory=lambda: {"name": "mean"})
    # How the video's score comes from its people (face tracks): "max", "largest" or "longest".
    people: str = "max"

    def __post_init__(self) -> None:
        _check(
            self.people in ("max", "largest", "longest"),
            f"video.people must be 'max', 'largest' or 'longest', got {self.people!r}",
        )


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a detector and reproduce its inference.

    Example:
        >>> cfg = ModelConfig(backbone="resnet18")
        >>> ModelConfig.from_dict(cfg.to_dict()) == cfg
        True
    """

    backbone: str = "resnet50"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    labels: tuple[str, ...] = ("fake", "real")  # order of the head's outputs
    fake_label: str = "fake"
    num_outputs: int = 2  # 2 (softmax over labels) or 1 (one logit, sigmoid = fake_score)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    faces: FaceConfig = field(default_factory=FaceConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    video: VideoConfig = field(default_factory=VideoConfig)
    training: dict[str, Any] = field(default_factory=dict)  # provenance: data, epochs, metrics
    format_version: int = FORMAT_VERSION
    library_version: str = __version__

    def __post_init__(self) -> None:
        _check(isinstance(self.backbone, str) and self.backbone, f"backbone must be a name, got {self.backbone!r}")
        _check(isinstance(self.backbone_kwargs, dict), "backbone_kwargs must be a mapping")
        reserved = sorted(set(self.backbone_kwargs) & {"num_classes", "weights", "progress"})
        _check(
            not reserved,
            f"backbone_kwargs may not set {reserved}: the head is always replaced and the weights "
            "come from model.safetensors",
        )
        object.__setattr__(self, "labels", tuple(self.labels))
        _check(
            len(self.labels) == 2 and len(set(self.labels)) == 2 and all(isinstance(x, str) for x in self.labels),
            f"labels must be two different names, got {list(self.labels)!r}",
        )
        _check(
            self.fake_label in self.labels,
            f"fake_label {self.fake_label!r} is not one of the labels {list(self.labels)!r}",
        )
        _check(
            type(self.num_outputs) is int and self.num_outputs in (1, 2),
            f"num_outputs must be the integer 1 or 2, got {self.num_outputs!r}",
        )
        _check(
            isinstance(self.format_version, int) and self.format_version >= 1,
            f"format_version must be a positive integer, got {self.format_version!r}",
        )

    @property
    def fake_index(self) -> int:
        """Index of the fake class in the head's outputs (two-output heads)."""
        return self.labels.index(self.fake_label)

    @property
    def real_label(self) -> str:
        """The label that is not ``fake_label``."""
        return next(x for x in self.labels if x != self.fake_label)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        for sub in ("preprocess",):
            for k, v in d[sub].items():
                if isinstance(v, tuple):
                    d[sub][k] = list(v)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> ModelConfig:
        """Build from a dictionary; unknown keys are ignored, newer formats refused.

        Raises:
            ConfigError: when a value is invalid or the format is newer than this library reads.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ConfigError(f"{source}: format_version must be an integer, got {version!r}")
        if version > FORMAT_VERSION:
            raise ConfigError(
                f"{source}: format_version {version} is newer than this deepfakedetect "
                f"({__version__}) reads (up to {FORMAT_VERSION}); upgrade with "
                "'pip install -U deepfakedetect' or load an older revision of the model"
            )
        subs = {
            "preprocess": PreprocessConfig,
            "faces": FaceConfig,
            "calibration": CalibrationConfig,
            "video": VideoConfig,
        }
        kwargs: dict[str, Any] = {}
        try:
            for f in dataclasses.fields(cls):
                if f.name not in data:
                    continue
                value = data[f.name]
                if f.name in subs:
                    if not isinstance(value, dict):
                        raise ConfigError(f"{source}: {f.name} must be an object, got {value!r}")
                    sub_cls = subs[f.name]
                    known = {sf.name for sf in dataclasses.fields(sub_cls)}
                    value = sub_cls(**{k: v for k, v in value.items() if k in known})
                kwargs[f.name] = value
            return cls(**kwargs)
        except ConfigError as e:
            if str(e).startswith(source):
                raise
            raise ConfigError(f"{source}: {e}") from None
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: invalid value: {e}") from e

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> None:
        """Write as JSON (sorted keys, indented)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ModelConfig:
        """Read a ``config.json``.

        Raises:
            ConfigError: for invalid JSON or values.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read {path}: {e}") from e
        if len(text) > 10_000_000:
            raise ConfigError(f"{path}: a config.json of {len(text)} characters is not a model config")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path} is not valid JSON: {e}") from e
        return cls.from_dict(data, source=str(path))
