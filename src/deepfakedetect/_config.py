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
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfakedetect._errors import ConfigError
from deepfakedetect._untrusted import (
    MAX_SPEC_CHARS,
    MAX_SPEC_PARAMS,
    NotRegularFileError,
    open_regular,
    shorten,
)
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
    "check_band",
    "read_json_file",
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


#: Largest config.json read, in bytes (a real one is about 2 kB).
MAX_CONFIG_BYTES = 10_000_000
_MAX_NAME = 100
_MAX_OPERATING_POINTS = 256
_MAX_KWARGS = 32
_MAX_LIST = 16
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PLUGIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,99}")


def _is_scalar(x: Any) -> bool:
    """A JSON scalar a plugin or backbone parameter may be: none, a bool, a finite number, short text."""
    if x is None or isinstance(x, bool):
        return True
    if isinstance(x, (int, float)):
        return math.isfinite(x) and abs(x) < 1e18
    return isinstance(x, str) and len(x) <= MAX_SPEC_CHARS


def _check_name(value: Any, what: str, pattern: re.Pattern[str] = _PLUGIN_NAME) -> None:
    _check(
        isinstance(value, str) and pattern.fullmatch(value),
        f"{what} must be a name (letters, digits, '_', at most {_MAX_NAME} characters), got {shorten(value)}",
    )


def check_plugin_spec(value: Any, what: str) -> None:
    """The shape of a sampler or aggregator spec: bounded text, a flat mapping with a name, or a callable.

    Names and parameters are checked against the registries when a detector is loaded.

    Raises:
        ConfigError: anything else (nested values, unbounded text, other types).

    Example:
        >>> check_plugin_spec({"name": "top_k_mean", "k": 5}, "video.aggregator")
        >>> check_plugin_spec({"name": "mean", "w": [1]}, "video.aggregator")
        Traceback (most recent call last):
        deepfakedetect._errors.ConfigError: video.aggregator parameter 'w' must be a number, true/false, null or text, got [1]
    """
    if isinstance(value, str):
        _check(
            0 < len(value) <= MAX_SPEC_CHARS,
            f"{what} must be a spec such as 'name:key=value' of at most {MAX_SPEC_CHARS} characters, "
            f"got {len(value)} characters: {shorten(value, 60)}",
        )
        return
    if isinstance(value, dict):
        _check_name(value.get("name"), f"{what} 'name'")
        _check(len(value) <= MAX_SPEC_PARAMS + 1, f"{what} sets {len(value) - 1} parameters; at most {MAX_SPEC_PARAMS}")
        for k, v in value.items():
            _check_name(k, f"{what} parameter", _IDENTIFIER)
            _check(
                _is_scalar(v),
                f"{what} parameter {k!r} must be a number, true/false, null or text, got {shorten(v)}",
            )
        return
    _check(
        callable(value),
        f"{what} must be a spec ('name:key=value'), a mapping with a 'name', or a callable; got {shorten(value)}",
    )


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
            f"preprocess.input_size must be an integer in [16, 2048], got {shorten(self.input_size)}",
        )
        _check(
            isinstance(self.resize_size, int) and self.input_size <= self.resize_size <= 4096,
            f"preprocess.resize_size must be an integer in [input_size, 4096], got {shorten(self.resize_size)}",
        )
        _check(
            isinstance(self.interpolation, str) and self.interpolation in _INTERPOLATIONS,
            f"preprocess.interpolation must be one of {_INTERPOLATIONS}, got {shorten(self.interpolation)}",
        )
        for name in ("mean", "std"):
            value = getattr(self, name)
            _check(
                isinstance(value, (list, tuple)) and len(value) == 3 and all(_is_number(v) for v in value),
                f"preprocess.{name} must be three numbers, got {shorten(value)}",
            )
            object.__setattr__(self, name, tuple(float(v) for v in value))
        _check(all(s > 0 for s in self.std), f"preprocess.std must be positive, got {shorten(self.std)}")


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
        for name in ("enabled", "square", "align"):
            value = getattr(self, name)
            _check(isinstance(value, bool), f"faces.{name} must be true or false, got {shorten(value)}")
        _check(
            isinstance(self.detector, str),
            f"faces.detector must be a face detector's name or spec such as 'retinaface:max_size=640', "
            f"got {shorten(self.detector)}",
        )
        check_plugin_spec(self.detector, "faces.detector")
        _check(
            _is_number(self.min_confidence) and 0.0 <= self.min_confidence <= 1.0,
            f"faces.min_confidence must be in [0, 1], got {shorten(self.min_confidence)}",
        )
        _check(
            _is_number(self.margin) and 1.0 <= self.margin <= 4.0,
            f"faces.margin must be in [1, 4], got {shorten(self.margin)}",
        )
        _check(isinstance(self.select, str) and self.select in _FACE_SELECT, f"faces.select must be one of {_FACE_SELECT}, got {shorten(self.select)}")
        _check(
            _is_number(self.min_relative_size) and 0.0 < self.min_relative_size <= 1.0,
            f"faces.min_relative_size must be in (0, 1], got {shorten(self.min_relative_size)}",
        )
        _check(isinstance(self.reduce, str) and self.reduce in _FACE_REDUCE, f"faces.reduce must be one of {_FACE_REDUCE}, got {shorten(self.reduce)}")
        _check(
            isinstance(self.detect_max_size, int) and 64 <= self.detect_max_size <= 4096,
            f"faces.detect_max_size must be an integer in [64, 4096], got {shorten(self.detect_max_size)}",
        )


@dataclass(frozen=True)
class CalibrationConfig:
    """Turning logits into a calibrated ``fake_score``, a label and a verdict.

    ``fake_score = softmax(logits / temperature)[fake]`` (or ``sigmoid`` for one
    logit; for a video, ``sigmoid(logit(aggregate) / temperature)``); the label is
    ``"fake"`` when ``fake_score >= threshold``. ``operating_points`` names other
    thresholds, e.g. ``{"fpr@1%": 0.93}``. ``uncertain_band`` is ``(low, high)``, with
    ``low <= threshold <= high``: scores in ``[low, high)`` get the verdict
    ``"uncertain"`` (``None``: no band). ``fitted_on`` records what it was fitted on
    (counts, AUC, the uncertain share on that validation data, folder names).

    Example:
        >>> CalibrationConfig(temperature=1.5, threshold=0.4).threshold
        0.4
        >>> CalibrationConfig(threshold=0.4, uncertain_band=[0.3, 0.7]).uncertain_band
        (0.3, 0.7)
    """

    temperature: float = 1.0
    threshold: float = 0.5
    operating_points: dict[str, float] = field(default_factory=dict)
    uncertain_band: tuple[float, float] | None = None
    fitted_on: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(
            _is_number(self.temperature) and 1e-3 <= self.temperature <= 1e3,
            f"calibration.temperature must be in [0.001, 1000], got {shorten(self.temperature)}",
        )
        _check(
            _is_number(self.threshold) and 0.0 <= self.threshold <= 1.0,
            f"calibration.threshold must be in [0, 1], got {shorten(self.threshold)}",
        )
        _check(
            isinstance(self.operating_points, dict),
            f"calibration.operating_points must map names to thresholds, got {shorten(self.operating_points)}",
        )
        _check(
            len(self.operating_points) <= _MAX_OPERATING_POINTS,
            f"calibration.operating_points has {len(self.operating_points)} entries; at most {_MAX_OPERATING_POINTS}",
        )
        for k, v in self.operating_points.items():
            _check(
                isinstance(k, str) and 0 < len(k) <= _MAX_NAME,
                f"calibration.operating_points names must be short text, got {shorten(k)}",
            )
            _check(
                _is_number(v) and 0.0 <= v <= 1.0,
                f"calibration.operating_points[{shorten(k)}] must be a number in [0, 1], got {shorten(v)}",
            )
        band = check_band(self.uncertain_band, what="calibration.uncertain_band")
        if band is not None:
            _check(
                band[0] <= self.threshold <= band[1],
                f"calibration.uncertain_band {list(band)} must hold the threshold {self.threshold!r}",
            )
        object.__setattr__(self, "uncertain_band", band)
        _check(isinstance(self.fitted_on, dict), f"calibration.fitted_on must be a mapping, got {shorten(self.fitted_on)}")


def check_band(band: Any, *, what: str = "uncertain_band") -> tuple[float, float] | None:
    """Validate an uncertain band: ``None``, or two numbers ``0 <= low <= high <= 1``.

    Raises:
        ConfigError: anything else, naming ``what``.

    Example:
        >>> check_band([0.2, 0.7])
        (0.2, 0.7)
    """
    if band is None:
        return None
    values = list(band) if isinstance(band, (list, tuple)) else []
    _check(
        len(values) == 2 and all(_is_number(v) for v in values) and 0.0 <= values[0] <= values[1] <= 1.0,
        f"{what} must be two numbers 0 <= low <= high <= 1, or None; got {shorten(band)}",
    )
    return (float(values[0]), float(values[1]))


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
            isinstance(self.people, str) and self.people in ("max", "largest", "longest"),
            f"video.people must be 'max', 'largest' or 'longest', got {shorten(self.people)}",
        )
        check_plugin_spec(self.sampler, "video.sampler")
        check_plugin_spec(self.aggregator, "video.aggregator")


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
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)  # images, and each video frame
    video_calibration: CalibrationConfig | None = None  # a video's aggregated score; None: ``calibration``
    video: VideoConfig = field(default_factory=VideoConfig)
    test_time_flip: bool = False  # average each input's logits with its mirror image's
    training: dict[str, Any] = field(default_factory=dict)  # provenance: data, epochs, metrics
    format_version: int = FORMAT_VERSION
    library_version: str = __version__

    def __post_init__(self) -> None:
        _check_name(self.backbone, "backbone")
        _check(isinstance(self.backbone_kwargs, dict), f"backbone_kwargs must be a mapping, got {shorten(self.backbone_kwargs)}")
        _check(len(self.backbone_kwargs) <= _MAX_KWARGS, f"backbone_kwargs sets {len(self.backbone_kwargs)} arguments; at most {_MAX_KWARGS}")
        for k, v in self.backbone_kwargs.items():
            _check_name(k, "backbone_kwargs argument", _IDENTIFIER)
            flat = isinstance(v, (list, tuple)) and len(v) <= _MAX_LIST and all(_is_scalar(x) for x in v)
            _check(
                _is_scalar(v) or flat,
                f"backbone_kwargs[{k!r}] must be a number, true/false, null, text or a short flat list, got {shorten(v)}",
            )
        _check(
            isinstance(self.labels, (list, tuple)),
            f"labels must be a list of two names, got {shorten(self.labels)}",
        )
        _check(
            isinstance(self.test_time_flip, bool),
            f"test_time_flip must be true or false, got {shorten(self.test_time_flip)}",
        )
        _check(
            self.video_calibration is None or isinstance(self.video_calibration, CalibrationConfig),
            f"video_calibration must be a CalibrationConfig or None, got {type(self.video_calibration).__name__}",
        )
        reserved = sorted(set(self.backbone_kwargs) & {"num_classes", "weights", "progress"})
        _check(
            not reserved,
            f"backbone_kwargs may not set {reserved}: the head is always replaced and the weights "
            "come from model.safetensors",
        )
        object.__setattr__(self, "labels", tuple(self.labels))
        _check(
            len(self.labels) == 2
            and all(isinstance(x, str) and 0 < len(x) <= _MAX_NAME for x in self.labels)
            and len(set(self.labels)) == 2,
            f"labels must be two different names, got {shorten(list(self.labels))}",
        )
        _check(
            isinstance(self.fake_label, str) and self.fake_label in self.labels,
            f"fake_label {shorten(self.fake_label)} is not one of the labels {list(self.labels)!r}",
        )
        _check(isinstance(self.training, dict), f"training must be a mapping, got {shorten(self.training)}")
        _check(
            isinstance(self.library_version, str) and len(self.library_version) <= _MAX_NAME,
            f"library_version must be a version string, got {shorten(self.library_version)}",
        )
        _check(
            type(self.num_outputs) is int and self.num_outputs in (1, 2),
            f"num_outputs must be the integer 1 or 2, got {shorten(self.num_outputs)}",
        )
        _check(
            isinstance(self.format_version, int) and self.format_version >= 1,
            f"format_version must be a positive integer, got {shorten(self.format_version)}",
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
            raise ConfigError(f"{source}: format_version must be an integer, got {shorten(version)}")
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
            "video_calibration": CalibrationConfig,
            "video": VideoConfig,
        }
        kwargs: dict[str, Any] = {}
        try:
            for f in dataclasses.fields(cls):
                if f.name not in data:
                    continue
                value = data[f.name]
                if f.name == "video_calibration" and value is None:
                    continue
                if f.name in subs:
                    if not isinstance(value, dict):
                        raise ConfigError(f"{source}: {f.name} must be an object, got {shorten(value)}")
                    sub_cls = subs[f.name]
                    known = {sf.name for sf in dataclasses.fields(sub_cls)}
                    value = sub_cls(**{k: v for k, v in value.items() if k in known})
                kwargs[f.name] = value
            return cls(**kwargs)
        except ConfigError as e:
            if str(e).startswith(source):
                raise
            raise ConfigError(f"{source}: {e}") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"{source}: invalid value: {shorten(str(e), 200)}") from e

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
        return cls.from_dict(read_json_file(path, what="a model config"), source=str(path))


def read_json_file(path: str | Path, *, what: str, limit: int = MAX_CONFIG_BYTES) -> Any:
    """Read a small JSON file from a model folder, as untrusted data.

    Never blocks (a FIFO is refused), checks the size before reading anything (a huge
    sparse file costs nothing), and turns every failure (not UTF-8, not JSON, nested too
    deeply) into a :class:`ConfigError` naming the file, without echoing its content.

    Args:
        path: The file.
        what: What it should be, for messages (``"a model config"``).
        limit: Most bytes accepted.

    Example:
        >>> import json, tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "c.json")
        >>> _ = open(p, "w").write(json.dumps({"a": 1}))
        >>> read_json_file(p, what="a test file")
        {'a': 1}
    """
    path = Path(path)
    try:
        # Never blocks (a FIFO is refused), and the size is checked before anything is read.
        with open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > limit:
                raise ConfigError(f"{path}: a file of {size:,} bytes is not {what} (at most {limit:,}); check the model folder")
            raw = f.read(limit + 1)
    except NotRegularFileError as e:
        raise ConfigError(f"{path} is {e.kind}, not a regular file; it should be {what} (a JSON file)") from None
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror or e}") from e
    if len(raw) > limit:  # it grew while being read
        raise ConfigError(f"{path}: more than {limit:,} bytes; not {what}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text (byte {e.start}); {what} is UTF-8 JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be {what}") from None
