"""``deepfakedetect detect``: score images, videos, folders and lists of them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deepfakedetect._errors import DeepfakeDetectError
from deepfakedetect._media import is_video_path
from deepfakedetect.batch.many import detect_many
from deepfakedetect.detector import Detector

__all__ = ["run"]


def _load_detector(args: argparse.Namespace) -> Detector:
    return Detector.from_pretrained(
        args.model, revision=args.revision, local_files_only=args.offline, device=args.device, backend=args.backend
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
        if result.people:
            line += f"\tpeople={len(result.people)}"
            line = "\n".join([line, *_people_lines([p.to_dict() for p in result.people])])
    elif result.face_stage:
        line += f"\tfaces={len(result.faces)}"
    return line


def _people_lines(people: list[dict[str, Any]]) -> list[str]:
    """One indented line per person of a video record: label, score, time range, typical box."""
    lines = []
    for p in people:
        boxes = [f["box"] for f in p.get("frames", [])]
        box = ""
        if boxes:
            mid = boxes[len(boxes) // 2]
            box = "\tbox=" + ",".join(f"{v:.0f}" for v in mid)
        verdict = f"\tverdict={p['verdict']}" if p.get("verdict") else ""
        lines.append(
            f"  person {p['id']}\t{p['label']}\tfake_score={p['fake_score']:.4f}{verdict}\t"
            f"{p['start']:.2f}-{p['end']:.2f} s\tframes={p['num_frames']}{box}"
        )
    return lines


def _is_many(path: str) -> bool:
    return Path(path).is_dir() or any(c in path for c in "*?[") or Path(path).suffix.lower() in (".txt", ".lst", ".list")


def _cmd_detect_many(args: argparse.Namespace, detector: Any) -> int:
    failures = 0
    inputs = args.files[0] if len(args.files) == 1 else args.files
    for record in detect_many(
        detector,
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
            people = record.get("people") or []
            print("\n".join([line + (f"\tpeople={len(people)}" if people else ""), *_people_lines(people)]))
        sys.stdout.flush()
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    """``deepfakedetect detect``: score each input, print a line (or JSON) per input."""
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
