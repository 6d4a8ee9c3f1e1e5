"""``deepfakedetect serve``: the local web service and page (the [serve] extra)."""

from __future__ import annotations

import argparse

from deepfakedetect._errors import ConfigError
from deepfakedetect.detector import Detector

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Build the settings from the flags, load the model, serve until interrupted."""
    try:
        from deepfakedetect.serve import (  # optional: starlette, uvicorn ([serve] extra)
            ServeSettings,
            serve,
        )
    except ImportError as e:
        raise ConfigError(f"deepfakedetect serve needs the [serve] extra: pip install 'deepfakedetect[serve]' ({e})") from e
    settings = ServeSettings(
        max_upload_bytes=max(1, int(args.max_upload_mb * 1024 * 1024)),
        max_image_pixels=args.max_image_pixels,
        max_video_seconds=args.max_video_seconds,
        max_video_pixels=args.max_video_pixels,
        max_video_frames=args.max_video_frames,
        request_timeout=args.timeout,
        max_concurrency=args.concurrency,
        max_queue=args.queue,
        retry_after=args.retry_after,
        allowed_path_roots=tuple(args.allow_path),
        cors_origins=tuple(args.cors_origin),
        temp_dir=args.temp_dir,
    )
    detector = Detector.from_pretrained(
        args.model, revision=args.revision, local_files_only=args.offline, device=args.device, backend=args.backend
    )
    serve(detector, host=args.host, port=args.port, settings=settings, log_level=args.log_level)
    return 0
