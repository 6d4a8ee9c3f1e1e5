"""``deepfakedetect detect``: score images, videos, folders and lists of them.

Arguments are checked before the model is loaded or any input read, so a bad one exits
with code 2 whatever the inputs. Everything written to the terminal that comes from a
file name or a file (sources, error messages) has its control characters escaped: one
input, one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deepfakedetect._errors import ConfigError, DeepfakeDetectError, OutputError
from deepfakedetect._media import is_video_path
from deepfakedetect._untrusted import printable, shorten
from deepfakedetect._utils import as_number
from deepfakedetect.batch.many import detect_many
from deepfakedetect.detector import Detector
from deepfakedetect.video.aggregators import get_aggregator
from deepfakedetect.video.samplers import get_sampler

__all__ = ["run"]


def uncertain_band_option(text: str | None) -> tuple[float, float] | bool | None:
    """``--uncertain-band``: ``None`` (the model's), ``"off"`` (``False``), or ``"LOW,HIGH"``.

    Example:
        >>> uncertain_band_option("0.2,0.9"), uncertain_band_option("off"), uncertain_band_option(None)
        ((0.2, 0.9), False, None)
    """
    if text is None:
        return None
    if text.strip().lower() in ("off", "none", "no"):
        return False
    parts = text.replace(":", ",").split(",")
    try:
        low, high = (float(x) for x in parts)
    except ValueError:
        raise ConfigError(f"--uncertain-band must be LOW,HIGH (e.g. 0.3,0.8) or off, got {text!r}") from None
    return (low, high)


def _load_detector(args: argparse.Namespace) -> Detector:
    return Detector.from_pretrained(
        args.model, revision=args.revision, local_files_only=args.offline, device=args.device, backend=args.backend,
        flip=args.flip, uncertain_band=uncertain_band_option(args.uncertain_band),
    )  # fmt: skip


def _line(source: str, score: float | None, verdict: str | None, label: str | None) -> str:
    source = printable(source)  # a file name cannot forge or break the line
    if score is None:
        return f"{source}\tno_face"
    line = f"{source}\t{verdict}\tfake_score={score:.4f}"
    return line + f"\tlabel={label}" if verdict == "uncertain" else line


def _check_args(args: argparse.Namespace) -> None:
    """Refuse bad arguments before anything is loaded or read (exit code 2 for a file as for a folder)."""
    if args.threshold is not None and not 0.0 <= as_number(args.threshold) <= 1.0:
        raise ConfigError(f"--threshold must be a number in [0, 1], got {shorten(args.threshold)}")
    if args.sampler is not None:
        get_sampler(args.sampler)
    if args.aggregator is not None:
        get_aggregator(args.aggregator)
    if args.resume and not args.output:
        raise ConfigError("--resume needs --output (the JSON-lines file to continue)")
    if args.overwrite and not args.output:
        raise ConfigError("--overwrite needs --output (the JSON-lines file to start again)")
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other: choose one")
    if args.output and not (args.resume or args.overwrite):
        # detect_many refuses it too, in the library's words (resume=True); here in the CLI's.
        out = Path(args.output)
        if out.is_file() and out.stat().st_size > 0:
            raise ConfigError(
                f"--output {out} already holds results: continue it (--resume), start it again (--overwrite), "
                "or write to another file"
            )


def _emit(line: str) -> None:
    """Print one line to standard output, at once; a full disk there is an OutputError (exit 2)."""
    try:
        print(line)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        error = OutputError(f"cannot write to standard output: {e.strerror or e}")
        error.stdout = True  # type: ignore[attr-defined]  # main() silences stdout before exiting
        raise error from e


def _report(message: object) -> None:
    print(f"deepfakedetect: error: {printable(message)}", file=sys.stderr)


def _summary(result: Any, path: str) -> str:
    line = _line(path, result.fake_score, result.verdict, result.label)
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
        overwrite=args.overwrite,
        batch_size=args.batch_size,
        progress=False if args.no_progress else None,
        sampler=args.sampler,
        aggregator=args.aggregator,
        threshold=args.threshold,
        timeout=args.timeout,
    ):
        if record.get("status") == "error":
            failures += 1
            _report(record.get("error"))
        if args.json:
            if not args.frames:
                record.pop("frames", None)
                record.pop("faces", None)
            _emit(json.dumps(record))
        elif record.get("status") != "error":
            line = _line(record["source"], record.get("fake_score"), record.get("verdict"), record.get("label"))
            people = record.get("people") or []
            _emit("\n".join([line + (f"\tpeople={len(people)}" if people else ""), *_people_lines(people)]))
    return 1 if failures else 0


def run(args: argparse.Namespace) -> int:
    """``deepfakedetect detect``: score each input, print a line (or JSON) per input."""
    _check_args(args)
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
                    timeout=args.timeout,
                )
            else:
                result = detector.detect_image(path, batch_size=args.batch_size, threshold=args.threshold)
        except DeepfakeDetectError as e:
            failures += 1
            if args.json:
                _emit(json.dumps({"source": path, "status": "error", "error": str(e), "type": type(e).__name__}))
            _report(e)
            continue
        if args.json:
            d = result.to_dict()
            if not args.frames:
                d.pop("frames", None)
                d.pop("faces", None)
            _emit(json.dumps(d))
        else:
            _emit(_summary(result, path))
    return 1 if failures else 0
