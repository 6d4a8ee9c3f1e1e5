"""The ``deepfakedetect`` command line.

Errors the library raises on purpose are printed as one line (no traceback) and give
a non-zero exit code: 1 when some inputs failed, 2 for usage or model problems.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from ._data import VIDEO_EXTENSIONS
from ._errors import DeepfakeDetectError
from ._version import __version__

__all__ = ["VIDEO_EXTENSIONS", "is_video_path", "main"]


def is_video_path(path: str | Path) -> bool:
    """Whether a path names a video, by its extension.

    Example:
        >>> is_video_path("clip.MP4"), is_video_path("face.jpg")
        (True, False)
    """
    return Path(str(path)).suffix.lower() in VIDEO_EXTENSIONS


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model folder or Hub repo id (default: the built-in model)")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit sha")
    p.add_argument("--offline", action="store_true", help="use only the local Hugging Face cache")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1, ... (default: cuda when available)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfakedetect", description="Tell real faces, images and videos from deepfakes."
    )
    parser.add_argument("--version", action="version", version=f"deepfakedetect {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", required=True)

    d = sub.add_parser("detect", help="score images and videos", description="Score images and videos.")
    d.add_argument(
        "files",
        nargs="+",
        help="image or video files (videos are recognised by extension), folders, glob patterns, "
        "or .txt files listing paths",
    )
    _add_model_args(d)
    d.add_argument("--json", action="store_true", help="print one JSON object per input (JSON lines)")
    d.add_argument(
        "--sampler",
        default=None,
        help="frame sampler for videos: NAME or NAME:key=value,... (e.g. uniform:num_frames=32)",
    )
    d.add_argument(
        "--aggregator",
        default=None,
        help="frame-score aggregator for videos: NAME or NAME:key=value,... (e.g. top_k_mean:k=5)",
    )
    d.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the model's)")
    d.add_argument("--batch-size", type=int, default=32)
    d.add_argument(
        "--compile",
        action="store_true",
        help="score through torch.compile: 8-20 s to start, then about 1.1x faster for ResNets (none for MobileNetV2)",
    )
    d.add_argument("--frames", action="store_true", help="with --json, include per-frame and per-face detail")
    d.add_argument("--allow-urls", action="store_true", help="allow URLs and ffmpeg protocols as video inputs")
    d.add_argument("--no-progress", action="store_true", help="no progress bars")
    d.add_argument("--output", default=None, help="append one JSON line per input to this file (see --resume)")
    d.add_argument("--resume", action="store_true", help="with --output, skip inputs already in the file")
    d.set_defaults(func=_cmd_detect)

    from ._cli_train import add_subcommands

    add_subcommands(sub)
    return parser


def _load_detector(args: argparse.Namespace) -> Any:
    from ._detector import Detector

    return Detector.from_pretrained(
        args.model, revision=args.revision, local_files_only=args.offline, device=args.device
    )


def _summary(result: Any, path: str) -> str:
    if result.fake_score is None:
        line = f"{path}\tno_face"
    else:
        line = f"{path}\t{result.label}\tfake_score={result.fake_score:.4f}"
    frames = getattr(result, "frames", None)
    if frames is not None:
        line += f"\tframes={result.num_decoded}/{result.num_requested}"
        if result.face_stage:
            line += f"\tno_face_frames={result.frames_without_faces}"
    elif result.face_stage:
        line += f"\tfaces={len(result.faces)}"
    return line


def _is_many(path: str) -> bool:
    return Path(path).is_dir() or any(c in path for c in "*?[") or Path(path).suffix.lower() in (".txt", ".lst", ".list")


def _cmd_detect_many(args: argparse.Namespace, detector: Any) -> int:
    failures = 0
    inputs = args.files[0] if len(args.files) == 1 else args.files
    for record in detector.detect_many(
        inputs,
        output=args.output,
        resume=args.resume,
        batch_size=args.batch_size,
        progress=False if args.no_progress else None,
        sampler=args.sampler,
        aggregator=args.aggregator,
        threshold=args.threshold,
    ):
        if record.get("status") == "error":
            failures += 1
            print(f"deepfakedetect: error: {record.get('error')}", file=sys.stderr)
        if args.json:
            if not args.frames:
                record.pop("frames", None)
                record.pop("faces", None)
            print(json.dumps(record))
        elif record.get("status") != "error":
            score = record.get("fake_score")
            line = f"{record['source']}\tno_face" if score is None else f"{record['source']}\t{record['label']}\tfake_score={score:.4f}"
            print(line)
        sys.stdout.flush()
    return 1 if failures else 0


def _cmd_detect(args: argparse.Namespace) -> int:
    detector = _load_detector(args).compile(args.compile)
    if args.output or any(_is_many(p) for p in args.files):
        return _cmd_detect_many(args, detector)
    progress = False if args.no_progress or args.json else None
    failures = 0
    for path in args.files:
        try:
            if is_video_path(path):
                result = detector.detect_video(
                    path,
                    sampler=args.sampler,
                    aggregator=args.aggregator,
                    batch_size=args.batch_size,
                    threshold=args.threshold,
                    progress=progress,
                    allow_urls=args.allow_urls,
                )
            else:
                result = detector.detect_image(path, batch_size=args.batch_size, threshold=args.threshold)
        except DeepfakeDetectError as e:
            failures += 1
            if args.json:
                print(json.dumps({"source": path, "status": "error", "error": str(e), "type": type(e).__name__}))
            print(f"deepfakedetect: error: {e}", file=sys.stderr)
            continue
        if args.json:
            d = result.to_dict()
            if not args.frames:
                d.pop("frames", None)
                d.pop("faces", None)
            print(json.dumps(d))
        else:
            print(_summary(result, path))
        sys.stdout.flush()
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code.

    Example:
        >>> main(["--version"])  # doctest: +SKIP
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except DeepfakeDetectError as e:
        print(f"deepfakedetect: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("deepfakedetect: interrupted", file=sys.stderr)
        return 130
