"""Score every image and video in a folder and write one CSV row per file.

    python examples/detect_folder.py FOLDER [--model MODEL] [--out results.csv]

Images are scored in batches; videos one at a time (sampled frames, aggregated). A file
that cannot be read gets a row with status "error" and the run goes on. For runs over
very many files, with resuming, see docs/guides/batch-scoring.md.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from deepfakedetect import DeepfakeDetectError, Detector

IMAGES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"}
VIDEOS = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}
FIELDS = ["path", "kind", "status", "label", "fake_score", "detail"]


def row(path: Path, kind: str, result) -> dict:
    """One CSV row from an ImageResult or VideoResult."""
    if kind == "video":
        detail = f"{result.num_decoded} frames"
    else:
        detail = f"{len(result.faces)} faces" if result.face_stage else ""
    return {
        "path": str(path),
        "kind": kind,
        "status": result.status,  # "ok", or "no_face" when the face stage found none
        "label": result.label or "",
        "fake_score": "" if result.fake_score is None else f"{result.fake_score:.4f}",
        "detail": detail,
    }


def score_images(detector: Detector, paths: list[Path], batch_size: int) -> list[dict]:
    rows = []
    for start in range(0, len(paths), batch_size):
        chunk = paths[start : start + batch_size]
        try:
            results = detector.detect_image(chunk, batch_size=batch_size)
        except DeepfakeDetectError:
            # One unreadable file fails its batch: score that batch one file at a time.
            results = []
            for path in chunk:
                try:
                    results.append(detector.detect_image(path))
                except DeepfakeDetectError as e:
                    results.append(e)
        for path, result in zip(chunk, results):
            if isinstance(result, Exception):
                rows.append({"path": str(path), "kind": "image", "status": "error", "detail": str(result)})
            else:
                rows.append(row(path, "image", result))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default=None, help="model folder or Hub repo id (default: the built-in model)")
    parser.add_argument("--out", type=Path, default=Path("results.csv"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sampler", default=None, help="for videos, e.g. uniform:num_frames=16")
    parser.add_argument("--aggregator", default=None, help="for videos, e.g. top_k_mean:k=5")
    args = parser.parse_args(argv)

    files = sorted(p for p in args.folder.rglob("*") if p.is_file())
    images = [p for p in files if p.suffix.lower() in IMAGES]
    videos = [p for p in files if p.suffix.lower() in VIDEOS]
    if not images and not videos:
        print(f"no images or videos found in {args.folder}", file=sys.stderr)
        return 1

    detector = Detector.from_pretrained(args.model)
    rows = score_images(detector, images, args.batch_size)
    for path in videos:
        try:
            result = detector.detect_video(path, sampler=args.sampler, aggregator=args.aggregator, progress=False)
            rows.append(row(path, "video", result))
        except DeepfakeDetectError as e:
            rows.append({"path": str(path), "kind": "video", "status": "error", "detail": str(e)})

    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    fakes = sum(r.get("label") == "fake" for r in rows)
    errors = sum(r["status"] == "error" for r in rows)
    print(f"{len(rows)} files ({len(images)} images, {len(videos)} videos): {fakes} fake, {errors} errors -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
