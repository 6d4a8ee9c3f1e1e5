"""The limits and switches of the local web service, in one typed place."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfakedetect._errors import ConfigError

__all__ = ["ServeSettings"]

_MB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """How ``deepfakedetect serve`` accepts and runs work. Every limit has a safe default.

    Attributes:
        max_upload_bytes: Largest request body (the upload with its form fields); a
            larger one is refused with 413 as soon as the limit is crossed, before it is
            stored whole.
        max_image_pixels: Largest image (width x height), read from the header before
            decoding; larger: 422.
        max_video_seconds: Longest video accepted (from the probe); longer: 422.
        max_video_pixels: Largest video frame (width x height); larger: 422.
        max_video_frames: Most frames a request's sampler may ask for; more: 422.
        request_timeout: Seconds from arrival (queueing included) after which the
            request is answered 504. Work already running cannot be interrupted: it
            finishes in the background, keeping its slot, and its upload is removed then.
        max_concurrency: Requests scored at the same time (each uses every core).
        max_queue: Requests that may wait for a slot; beyond it, 503 with ``Retry-After``.
        retry_after: Seconds suggested in ``Retry-After`` with a 503.
        explain_faces: Most faces per image given a Grad-CAM overlay.
        allowed_path_roots: Folders on the server whose files a request may name with
            the ``path`` form field instead of uploading them. Empty (the default):
            server-side paths are refused with 403.
        cors_origins: Origins allowed to call the API from another site's pages
            (CORS); empty (the default): no CORS headers at all.
        temp_dir: Where uploads are kept while scored (default: the system's temporary
            folder); each upload gets its own folder, removed when its work ends.

    Example:
        >>> ServeSettings().max_concurrency
        1
        >>> ServeSettings(max_queue=-1)
        Traceback (most recent call last):
        ...
        deepfakedetect._errors.ConfigError: ServeSettings max_queue must be an integer >= 0, got -1
    """

    max_upload_bytes: int = 100 * _MB
    max_image_pixels: int = 50_000_000
    max_video_seconds: float = 600.0
    max_video_pixels: int = 3840 * 2160
    max_video_frames: int = 256
    request_timeout: float = 120.0
    max_concurrency: int = 1
    max_queue: int = 8
    retry_after: int = 5
    explain_faces: int = 4
    allowed_path_roots: tuple[Path, ...] = ()
    cors_origins: tuple[str, ...] = ()
    temp_dir: Path | None = None
    # Not settable from the command line: where the page's files are served from.
    static_dir: Path = field(default=Path(__file__).parent / "static", repr=False)

    def __post_init__(self) -> None:
        positive_ints = ("max_upload_bytes", "max_image_pixels", "max_video_pixels", "max_video_frames", "max_concurrency")
        for name in positive_ints:
            _check(name, getattr(self, name), int, 1)
        for name in ("max_queue", "retry_after", "explain_faces"):
            _check(name, getattr(self, name), int, 0)
        for name in ("max_video_seconds", "request_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"ServeSettings {name} must be a number > 0, got {value!r}")
        roots = _as_tuple(self.allowed_path_roots, "allowed_path_roots")
        object.__setattr__(self, "allowed_path_roots", tuple(Path(os.fspath(p)).resolve() for p in roots))
        origins = _as_tuple(self.cors_origins, "cors_origins")
        if not all(isinstance(o, str) and o for o in origins):
            raise ConfigError(f"ServeSettings cors_origins must be origin strings such as 'http://localhost:3000', got {origins!r}")
        object.__setattr__(self, "cors_origins", tuple(origins))
        if self.temp_dir is not None:
            object.__setattr__(self, "temp_dir", Path(self.temp_dir))

    def replace(self, **changes: Any) -> ServeSettings:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def public_dict(self) -> dict[str, Any]:
        """The limits a client may know (no server paths), as ``GET /v1/model`` reports them."""
        return {
            "max_upload_bytes": self.max_upload_bytes,
            "max_image_pixels": self.max_image_pixels,
            "max_video_seconds": self.max_video_seconds,
            "max_video_pixels": self.max_video_pixels,
            "max_video_frames": self.max_video_frames,
            "request_timeout": self.request_timeout,
            "max_concurrency": self.max_concurrency,
            "max_queue": self.max_queue,
            "server_paths": bool(self.allowed_path_roots),
        }


def _check(name: str, value: Any, kind: type[int], minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, kind) or value < minimum:
        raise ConfigError(f"ServeSettings {name} must be an integer >= {minimum}, got {value!r}")


def _as_tuple(value: Any, name: str) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, os.PathLike)) or not isinstance(value, Sequence):
        raise ConfigError(f"ServeSettings {name} must be a list or tuple, got {value!r}")
    return tuple(value)
