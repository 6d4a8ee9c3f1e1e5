"""Which files are images and which are videos, by extension."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["IMAGE_EXTENSIONS", "MEDIA_EXTENSIONS", "VIDEO_EXTENSIONS", "is_image_path", "is_video_path"]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
)
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """Whether a path names a video, by its extension.

    Example:
        >>> is_video_path("clip.MP4"), is_video_path("face.jpg")
        (True, False)
    """
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def is_image_path(path: str | os.PathLike[str]) -> bool:
    """Whether a path names an image, by its extension.

    Example:
        >>> is_image_path("face.JPG"), is_image_path("clip.mp4")
        (True, False)
    """
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS
