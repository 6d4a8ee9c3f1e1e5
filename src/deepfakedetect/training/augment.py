"""Training-time augmentation on torchvision transforms v2.

Augmentation works on the cached input (already resized and centre-cropped exactly as
inference does it, as a ``uint8`` CHW tensor) and returns a ``uint8`` tensor of the same
size; normalisation happens after it. The order follows what happens to real images:
geometry (crop, flip, rotation), then photometric changes (colour, blur), then the
re-encoding of a copy (JPEG at a random quality), then sensor-like noise.

JPEG re-compression matters for deepfake data: datasets often differ in JPEG quality
between their real and fake halves (the shared LFW face-swap set does), and a model
learns that instead of the manipulation unless the quality is randomised.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from deepfakedetect._errors import ConfigError

__all__ = ["AUGMENTATIONS", "AugmentConfig", "build_augment"]

#: The names of the individual augmentations, in the order they are applied.
AUGMENTATIONS = ("crop", "flip", "rotation", "color", "blur", "jpeg", "noise")


def _prob(name: str, value: Any) -> None:
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0):
        raise ConfigError(f"augment.{name} must be a probability in [0, 1], got {value!r}")


def _range(name: str, value: Any, lo: float, hi: float) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"augment.{name} must be a (low, high) pair, got {value!r}") from None
    if not (lo <= a <= b <= hi):
        raise ConfigError(f"augment.{name} must satisfy {lo} <= low <= high <= {hi}, got {value!r}")
    return a, b


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run during training, how often and how strongly.

    Each augmentation has a probability ``*_p`` (0 turns it off). The defaults are
    mild: they keep faces recognisable while hiding file-format cues.

    Example:
        >>> AugmentConfig().jpeg_quality
        (60, 100)
        >>> AugmentConfig.only("jpeg").enabled()
        ('jpeg',)
    """

    crop_p: float = 0.5
    crop_scale: tuple[float, float] = (0.7, 1.0)  # area fraction kept by the random resized crop
    crop_ratio: tuple[float, float] = (0.8, 1.25)  # aspect ratio of the crop before resizing back
    flip_p: float = 0.5  # horizontal flip
    rotation_p: float = 0.3
    rotation_degrees: float = 10.0  # uniform in [-d, d]
    color_p: float = 0.5
    brightness: float = 0.2  # factor uniform in [1 - b, 1 + b]
    contrast: float = 0.2
    blur_p: float = 0.1
    blur_sigma: tuple[float, float] = (0.1, 1.5)  # Gaussian blur sigma range, in pixels
    jpeg_p: float = 0.5
    jpeg_quality: tuple[int, int] = (60, 100)  # re-compression quality range
    noise_p: float = 0.2
    noise_std: float = 0.02  # standard deviation on the [0, 1] pixel scale

    def __post_init__(self) -> None:
        for name in ("crop_p", "flip_p", "rotation_p", "color_p", "blur_p", "jpeg_p", "noise_p"):
            _prob(name, getattr(self, name))
        object.__setattr__(self, "crop_scale", _range("crop_scale", self.crop_scale, 0.05, 1.0))
        object.__setattr__(self, "crop_ratio", _range("crop_ratio", self.crop_ratio, 0.1, 10.0))
        object.__setattr__(self, "blur_sigma", _range("blur_sigma", self.blur_sigma, 0.01, 20.0))
        q = _range("jpeg_quality", self.jpeg_quality, 1, 100)
        if q != (int(q[0]), int(q[1])):
            raise ConfigError(f"augment.jpeg_quality must be two integers, got {self.jpeg_quality!r}")
        object.__setattr__(self, "jpeg_quality", (int(q[0]), int(q[1])))
        for name, hi in (("rotation_degrees", 180.0), ("brightness", 1.0), ("contrast", 1.0), ("noise_std", 1.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= hi):
                raise ConfigError(f"augment.{name} must be a number in [0, {hi}], got {value!r}")

    @classmethod
    def only(cls, *names: str, **changes: Any) -> AugmentConfig:
        """A config with just the named augmentations, each always applied.

        Args:
            names: Names from :data:`AUGMENTATIONS`.
            changes: Other fields to set.

        Raises:
            ConfigError: for an unknown name.

        Example:
            >>> AugmentConfig.only("flip", "noise").enabled()
            ('flip', 'noise')
        """
        unknown = [n for n in names if n not in AUGMENTATIONS]
        if unknown:
            raise ConfigError(f"unknown augmentation(s) {unknown}; known: {', '.join(AUGMENTATIONS)}")
        probs: dict[str, Any] = {f"{n}_p": (1.0 if n in names else 0.0) for n in AUGMENTATIONS}
        probs.update(changes)
        return cls(**probs)

    def enabled(self) -> tuple[str, ...]:
        """Names of the augmentations that can run (probability above 0), in order."""
        return tuple(n for n in AUGMENTATIONS if getattr(self, f"{n}_p") > 0)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AugmentConfig:
        """Build from :meth:`to_dict` output; unknown keys are ignored.

        Example:
            >>> AugmentConfig.from_dict(AugmentConfig().to_dict()) == AugmentConfig()
            True
        """
        known = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)


def _maybe(transform: Any, p: float) -> Any:
    return transform if p >= 1.0 else v2.RandomApply([transform], p=p)


class _Noise(torch.nn.Module):
    """Additive Gaussian noise on a uint8 image, through v2's float ``GaussianNoise``."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.noise = v2.GaussianNoise(mean=0.0, sigma=std, clip=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        noisy = self.noise(image.float().div_(255.0))
        return noisy.mul_(255.0).round_().to(torch.uint8)

    def extra_repr(self) -> str:
        return f"sigma={self.noise.sigma}"


class _Jpeg(torch.nn.Module):
    """JPEG re-compression at a quality drawn uniformly from a range, through Pillow.

    torchvision's own ``v2.JPEG`` goes through ``torchvision.io``, whose encoders are
    deprecated (torchvision 0.29) in favour of a separate package; Pillow is already
    a dependency and encodes the same baseline JPEG (4:2:0).
    """

    def __init__(self, quality: tuple[int, int]) -> None:
        super().__init__()
        self.quality = quality

    def forward(self, image: torch.Tensor) -> torch.Tensor:


        q = int(torch.randint(self.quality[0], self.quality[1] + 1, ()).item())
        buf = io.BytesIO()
        Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()).save(buf, format="JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as im:
            out = np.asarray(im.convert("RGB"))
        return torch.from_numpy(out.copy()).permute(2, 0, 1).contiguous()

    def extra_repr(self) -> str:
        return f"quality={self.quality}"


def build_augment(config: AugmentConfig, *, input_size: int) -> Any:
    """The transform for a config: ``uint8`` (3, S, S) tensor in, same shape and dtype out.

    Randomness comes from torch's global generator (seed it, or fork it per sample as
    the training dataset does, for reproducible augmentation).

    Args:
        config: What to apply.
        input_size: Side of the square input (the random resized crop resizes back to it).

    Returns:
        A ``torchvision.transforms.v2.Compose`` (``v2.Identity`` when nothing is enabled).

    Raises:
        ConfigError: when ``config`` is not an :class:`AugmentConfig`.

    Example:
        >>> t = build_augment(AugmentConfig.only("flip"), input_size=8)
        >>> x = torch.arange(3 * 8 * 8, dtype=torch.uint8).reshape(3, 8, 8)
        >>> bool((t(x) == x.flip(-1)).all())
        True
    """
    if not isinstance(config, AugmentConfig):
        raise ConfigError(f"augment must be an AugmentConfig or None, got {type(config).__name__}")
    steps: list[Any] = []
    if config.crop_p > 0:
        crop = v2.RandomResizedCrop(input_size, scale=config.crop_scale, ratio=config.crop_ratio, antialias=True)
        steps.append(_maybe(crop, config.crop_p))
    if config.flip_p > 0:
        steps.append(v2.RandomHorizontalFlip(p=config.flip_p))
    if config.rotation_p > 0 and config.rotation_degrees > 0:
        rot = v2.RandomRotation(config.rotation_degrees, interpolation=v2.InterpolationMode.BILINEAR)
        steps.append(_maybe(rot, config.rotation_p))
    if config.color_p > 0 and (config.brightness > 0 or config.contrast > 0):
        color = v2.ColorJitter(brightness=config.brightness or None, contrast=config.contrast or None)
        steps.append(_maybe(color, config.color_p))
    if config.blur_p > 0:
        # The kernel covers about three sigmas each side of the largest sigma.
        k = 2 * max(1, round(3 * config.blur_sigma[1])) + 1
        k = min(k, input_size - 1 if input_size % 2 == 0 else input_size)
        steps.append(_maybe(v2.GaussianBlur(k, sigma=config.blur_sigma), config.blur_p))
    if config.jpeg_p > 0:
        steps.append(_maybe(_Jpeg(config.jpeg_quality), config.jpeg_p))
    if config.noise_p > 0 and config.noise_std > 0:
        steps.append(_maybe(_Noise(config.noise_std), config.noise_p))
    return v2.Compose(steps) if steps else v2.Identity()
