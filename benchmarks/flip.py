"""Does test-time flip pay? Validation AUC and log loss with and without it, and its cost.

Test-time flip scores each face crop twice, as it is and mirrored left to right, and
averages the two logits (``Detector(flip=True)``). This script measures, on the
*validation* data of the default model's recipe (never its test data):

- LFW face swap ``val`` (600 images) and the StyleGAN2/FFHQ validation split (20% per
  class, seed 0, as ``benchmarks/quality.py`` splits it);
- FaceForensics++ c23 videos of the validation identity group (134/192): frame level and
  video level (32 uniform frames, the mean of frame scores).

For each: ROC AUC and log loss with the model's own temperature, and log loss after
refitting the temperature on those scores (what calibration would do for either
setting). Faces are detected once per image or frame; only the classifier runs twice.
The cost table times the classifier on the same crops with and without flip, and the
face detector per frame, so the cost on a whole ``detect_video`` follows.

Usage::

    PYTHONPATH=src python benchmarks/flip.py [--shared ../shared] [--model DIR] [--frames 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepfakedetect import Detector, UniformSampler, load_image, probe_video, read_frames
from deepfakedetect._calibration import fit_temperature
from deepfakedetect._metrics import log_loss, roc_auc

VAL_GROUP = ("134", "192")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def image_sets(shared: Path) -> dict[str, list[tuple[Path, int]]]:
    lfw = shared / "data" / "faces" / "lfw_faceswap" / "val"
    sets = {"LFW face swap val": [(p, int(c == "fake")) for c in ("real", "fake") for p in sorted((lfw / c).glob("*.jpg"))]}
    sg = shared / "data" / "faces" / "stylegan2_ffhq"
    rng = random.Random(0)  # the same shuffle as benchmarks/quality.py: 60/20/20 per class
    val: list[tuple[Path, int]] = []
    for c in ("real", "fake"):
        files = sorted((sg / c).glob("*.jpg"))
        rng.shuffle(files)
        n = len(files)
        val += [(p, int(c == "fake")) for p in files[int(0.6 * n) : int(0.8 * n)]]
    sets["StyleGAN2/FFHQ val"] = val
    return sets


def val_videos(shared: Path) -> list[tuple[Path, int]]:
    root = shared / "data" / "videos" / "ffpp_c23"
    out = []
    for c in ("real", "fake"):
        for p in sorted((root / c).glob("*.mp4")):
            if set(re.findall(r"\d{3}", p.name)) & set(VAL_GROUP):
                out.append((p, int(c == "fake")))
    return out


def crop_logit_margins(det: Detector, crops: list[np.ndarray], flip: bool) -> tuple[np.ndarray, float]:
    """Fake-minus-real logit of each crop (temperature 1), averaged with the mirror when ``flip``; and seconds."""
    t = det.config.calibration.temperature
    t0 = time.perf_counter()
    p = det.score_arrays(crops, batch_size=32)
    if flip:
        p2 = det.score_arrays([c[:, ::-1] for c in crops], batch_size=32)
    seconds = time.perf_counter() - t0
    eps = 1e-7
    m = t * np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1 - eps))
    if flip:
        m2 = t * np.log(np.clip(p2, eps, 1 - eps) / np.clip(1 - p2, eps, 1 - eps))
        m = (m + m2) / 2
    return m, seconds


def metrics(y: np.ndarray, margin: np.ndarray, temperature: float) -> dict[str, Any]:
    p = 1 / (1 + np.exp(-margin / temperature))
    t_fit = fit_temperature(margin, y)
    p_fit = 1 / (1 + np.exp(-margin / t_fit))
    return {"n": len(y), "auc": roc_auc(y, p), "log_loss": log_loss(y, p), "log_loss_refit": log_loss(y, p_fit)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(os.environ.get("DEEPFAKEDETECT_SHARED", "../shared")))
    ap.add_argument("--model", default=None, help="model folder (default: the built-in model)")
    ap.add_argument("--frames", type=int, default=32)
    args = ap.parse_args()
    det = Detector.from_pretrained(args.model)
    if not det.config.faces.enabled:
        raise SystemExit("this script measures face-stage models (the default model)")
    temperature = det.config.calibration.temperature
    rows = []
    all_crops: list[np.ndarray] = []
    detect_seconds, detect_frames = 0.0, 0
    for name, items in image_sets(args.shared).items():
        ys, owners, crops = [], [], []
        for k, (path, y) in enumerate(items):
            image = load_image(path)
            t0 = time.perf_counter()
            faces = det.extract_faces([image])[0]
            detect_seconds += time.perf_counter() - t0
            detect_frames += 1
            if faces:
                ys.append(y)
                owners += [len(ys) - 1] * len(faces)
                crops += [c for _, c in faces]
        all_crops += crops
        for flip in (False, True):
            m, _ = crop_logit_margins(det, crops, flip)
            per_image = np.full(len(ys), -np.inf)
            np.maximum.at(per_image, np.asarray(owners), m)  # the frame's score: the max over its faces
            rows.append((name, flip, metrics(np.asarray(ys), per_image, temperature)))
    # FF++ validation videos: frames and the mean of frame scores.
    video_y, frame_y, frame_owner, frame_crops, crop_frame = [], [], [], [], []
    for path, y in val_videos(args.shared):
        info = probe_video(path)
        idx = UniformSampler(num_frames=args.frames)(info)
        video_y.append(y)
        for _, frame in read_frames(info, sorted(set(int(i) for i in idx)), max_size=1920):
            t0 = time.perf_counter()
            faces = det.extract_faces([frame])[0]
            detect_seconds += time.perf_counter() - t0
            detect_frames += 1
            if faces:
                frame_y.append(y)
                frame_owner.append(len(video_y) - 1)
                crop_frame += [len(frame_y) - 1] * len(faces)
                frame_crops += [c for _, c in faces]
    all_crops += frame_crops
    for flip in (False, True):
        m, _ = crop_logit_margins(det, frame_crops, flip)
        per_frame = np.full(len(frame_y), -np.inf)
        np.maximum.at(per_frame, np.asarray(crop_frame), m)
        rows.append(("FF++ val group 134/192, frames", flip, metrics(np.asarray(frame_y), per_frame, temperature)))
        p_frame = 1 / (1 + np.exp(-per_frame / temperature))
        owner = np.asarray(frame_owner)
        p_video = np.array([p_frame[owner == v].mean() for v in range(len(video_y))])
        eps = 1e-7
        m_video = np.log(np.clip(p_video, eps, 1 - eps) / np.clip(1 - p_video, eps, 1 - eps))
        rows.append(("FF++ val group 134/192, videos (mean)", flip, metrics(np.asarray(video_y), m_video, 1.0)))
    # Cost: the classifier on every crop, three rounds in alternating order, medians.
    times: dict[bool, list[float]] = {False: [], True: []}
    for r in range(3):
        for flip in ((False, True) if r % 2 == 0 else (True, False)):
            times[flip].append(crop_logit_margins(det, all_crops, flip)[1])
    off, on = float(np.median(times[False])), float(np.median(times[True]))
    ms_detect = 1000 * detect_seconds / max(detect_frames, 1)
    ms_off, ms_on = 1000 * off / len(all_crops), 1000 * on / len(all_crops)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
          f"model {det.source} ({det.config.backbone}, input {det.config.preprocess.input_size} px)\n")
    print("| validation set | flip | n | ROC AUC | log loss (model's temperature) | log loss (refitted temperature) |")
    print("|---|---|---|---|---|---|")
    for name, flip, m in rows:
        print(f"| {name} | {'on' if flip else 'off'} | {m['n']} | {m['auc']:.4f} | {m['log_loss']:.4f} | {m['log_loss_refit']:.4f} |")
    print()
    print("| cost | off | on |")
    print("|---|---|---|")
    print(f"| classifier, ms per face crop (batch 32, {len(all_crops)} crops, median of 3) | {ms_off:.2f} | {ms_on:.2f} |")
    print(f"| face detection, ms per image or frame (once either way) | {ms_detect:.1f} | {ms_detect:.1f} |")
    per_frame_off, per_frame_on = ms_detect + ms_off, ms_detect + ms_on
    print(f"| one frame with one face, detection + classifier (ms) | {per_frame_off:.1f} | {per_frame_on:.1f} ({per_frame_on / per_frame_off:.2f}x) |")


if __name__ == "__main__":
    main()
