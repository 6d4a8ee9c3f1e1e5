"""Benchmark the built-in face detector (RetinaFace-MobileNet0.25) and its face-found rate.

Prints two Markdown tables:

1. Speed: milliseconds per frame for 640x480 and 1920x1080 frames at batch 1 and
   batch 16 (median of several timed runs after a warm-up), preprocessing, network and
   NMS included, through the public ``RetinaFaceDetector``. Frames are real FF++
   frames resized to each resolution, so post-processing sees real faces.
2. Face-found rate: on ``frames`` frames spread evenly over each video in
   ``data/videos/ffpp_c23`` (decoded with imageio-ffmpeg), the share of frames with at
   least one face of confidence >= 0.9, per class and overall, and the videos below 100%.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/faces.py [--shared ../shared] [--device cpu]
        [--frames 8] [--runs 5] [--threads N] [--no-rate]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from deepfakedetect.faces.detectors import RetinaFaceDetector  # noqa: E402


def video_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` RGB frames spread evenly over a video, decoded in one sequential pass.

    Frames are picked by an ffmpeg ``select`` filter so only those are converted and
    piped. Seeking (``-ss`` before the input) is avoided on purpose: on these FF++ files
    it returns undecodable, mostly green frames for positions past the first keyframe.
    """
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    gen.close()
    total = max(1, int(float(meta["duration"]) * float(meta["fps"])))
    wanted = sorted({min(total - 1, int((k + 0.5) * total / count)) for k in range(count)})
    select = "+".join(f"eq(n\\,{i})" for i in wanted)
    gen = imageio_ffmpeg.read_frames(
        str(path), output_params=["-vf", f"select='{select}'", "-fps_mode", "passthrough"]
    )
    info = next(gen)
    w, h = info["size"]
    try:
        return [np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy() for raw in gen]
    finally:
        gen.close()


def time_per_frame(
    det: RetinaFaceDetector, frames: list[np.ndarray], batch: int, runs: int
) -> tuple[float, float, float]:
    """Milliseconds per frame over ``runs`` timed passes after a warm-up pass.

    Returns the median and best wall-clock times and the median CPU time of this
    process (all threads); CPU time is what other work on a shared machine inflates least.
    """
    chunk = frames[:batch]
    det(chunk)
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        det(chunk)
        wall.append((time.perf_counter() - t0) * 1000 / len(chunk))
        cpu.append((time.process_time() - c0) * 1000 / len(chunk))
    return statistics.median(wall), min(wall), statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared")))
    parser.add_argument("--device", default=None)
    parser.add_argument("--frames", type=int, default=8, help="frames sampled per video for the face-found rate")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-rate", action="store_true", help="only time the detector")
    args = parser.parse_args()

    import torch
    from PIL import Image

    if args.threads:
        torch.set_num_threads(args.threads)
    weights = args.shared / "weights" / "retinaface_mobilenet0.25.safetensors"
    videos = sorted((args.shared / "data" / "videos" / "ffpp_c23").glob("*/*.mp4"))
    if not weights.is_file() or not videos:
        sys.exit(f"need {weights} and videos under {args.shared / 'data/videos/ffpp_c23'}")

    detector = RetinaFaceDetector(weights, device=args.device, batch_size=16)
    detector.load()
    device = next(detector.load().parameters()).device
    cpu = os.cpu_count()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu} CPUs, "
          f"load average before timing {load} (other work on the machine inflates the times)\n")

    # Speed on real content: 16 frames from 16 videos, resized to each resolution.
    base = [video_frames(v, 1)[0] for v in videos[:: max(1, len(videos) // 16)][:16]]
    print("| frame size | batch | ms per frame (median) | ms per frame (best) | CPU ms per frame | frames/s (median) |")
    print("|---|---|---|---|---|---|")
    for w, h in ((640, 480), (1920, 1080)):
        frames = [np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in base]
        for batch in (1, 16):
            ms, best, cpu_ms = time_per_frame(detector, frames, batch, args.runs)
            print(f"| {w}x{h} | {batch} | {ms:.1f} | {best:.1f} | {cpu_ms:.1f} | {1000 / ms:.0f} |")

    if args.no_rate:
        return
    # Face-found rate on FF++ videos.
    per_class: dict[str, list[int]] = {}
    misses = []
    t0 = time.perf_counter()
    for v in videos:
        frames = video_frames(v, args.frames)
        found = [any(f.confidence >= 0.9 for f in faces) for faces in detector(frames)]
        per_class.setdefault(v.parent.name, []).extend(found)
        if not all(found):
            misses.append(f"{v.parent.name}/{v.name}: {sum(found)}/{len(found)}")
    print(f"\nface-found rate (>= 1 face with confidence >= 0.9), {args.frames} frames per video "
          f"({time.perf_counter() - t0:.0f} s with decoding):\n")
    print("| videos | frames | with a face | rate |")
    print("|---|---|---|---|")
    every: list[int] = []
    for name, found in sorted(per_class.items()):
        every.extend(found)
        n_videos = sum(1 for v in videos if v.parent.name == name)
        print(f"| {name} ({n_videos}) | {len(found)} | {sum(found)} | {sum(found) / len(found):.1%} |")
    print(f"| all ({len(videos)}) | {len(every)} | {sum(every)} | {sum(every) / len(every):.1%} |")
    if misses:
        print("\nvideos with frames without a face: " + "; ".join(misses))


if __name__ == "__main__":
    main()
