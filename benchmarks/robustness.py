"""Robustness of the scores: how far a model's ``fake_score`` moves when media is re-encoded.

Real media is re-compressed, resized and cropped on its way to a detector. For a seeded
subset of the shared data this script scores each file as it is and after each change,
and reports per data set and change:

- ``mean |Δ|`` and ``p95 |Δ|``: the mean and 95th percentile of the absolute change of
  ``fake_score``;
- ``flips``: the share of files whose label (at the model's calibrated threshold) changes;
- ``AUC before`` and ``AUC after``: ROC AUC (real vs fake) of the original and changed files.

Changes: images are re-encoded as JPEG at quality 95, 75, 50 and 30 (Pillow, 4:2:0),
downscaled to half their size (Lanczos), and centre-cropped to 90 % of each side; videos
are re-encoded with H.264 at CRF 35 (libx264, ``-preset veryfast``, audio dropped). Images
are changed in memory; each video is re-encoded once into a temporary folder.

Data (read from the shared folder, ``--data`` or ``$DEEPFAKEDETECT_SHARED/data``):
``faces/lfw_faceswap/test`` (LFW face swaps), ``faces/stylegan2_ffhq`` (StyleGAN2 vs
FFHQ) and ``videos/ffpp_c23`` (FaceForensics++ c23). When the model's face stage finds
no face in a file (before or after the change), that pair is left out and counted.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/robustness.py                     # the default model, a few minutes
    PYTHONPATH=src python benchmarks/robustness.py --model out/ --images 200 --videos 10
    PYTHONPATH=src python benchmarks/robustness.py --model org/name --revision <sha> --json robustness.json

Prints a Markdown table (the one in docs/robustness.md) and, with ``--json``, writes
every score.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared"))
RETINAFACE = "weights/retinaface_mobilenet0.25.safetensors"
IMAGE_SETS = {
    "LFW face swap (test)": "faces/lfw_faceswap/test",
    "StyleGAN2 / FFHQ": "faces/stylegan2_ffhq",
}
VIDEO_SET = ("FaceForensics++ c23", "videos/ffpp_c23")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


# -- the changes ---------------------------------------------------------------------------


def jpeg(quality: int) -> Callable[[np.ndarray], np.ndarray]:
    def change(image: np.ndarray) -> np.ndarray:
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            return np.asarray(im.convert("RGB"))

    change.__name__ = f"JPEG q{quality}"
    return change


def downscale_half(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return np.asarray(Image.fromarray(image).resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS))


def centre_crop_90(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    ch, cw = max(1, round(h * 0.9)), max(1, round(w * 0.9))
    top, left = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(image[top : top + ch, left : left + cw])


IMAGE_CHANGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "JPEG q95": jpeg(95),
    "JPEG q75": jpeg(75),
    "JPEG q50": jpeg(50),
    "JPEG q30": jpeg(30),
    "downscale 1/2": downscale_half,
    "centre crop 90%": centre_crop_90,
}
VIDEO_CHANGE = "H.264 CRF 35"


def reencode_h264(src: Path, dst: Path, *, crf: int = 35) -> Path:
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-i", str(src),
           "-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", str(crf),
           "-pix_fmt", "yuv420p", "-y", str(dst)]  # fmt: skip
    subprocess.run(cmd, check=True)
    return dst


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Row:
    """The scores of one data set before and after one change, with their labels."""

    dataset: str
    change: str
    labels: list[int] = field(default_factory=list)  # 1 = fake
    before: list[float | None] = field(default_factory=list)
    after: list[float | None] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def summary(self, threshold: float) -> dict[str, Any]:
        from deepfakedetect._metrics import roc_auc

        keep = [i for i, (a, b) in enumerate(zip(self.before, self.after)) if a is not None and b is not None]
        y = np.array([self.labels[i] for i in keep], dtype=np.int64)
        a = np.array([self.before[i] for i in keep], dtype=np.float64)
        b = np.array([self.after[i] for i in keep], dtype=np.float64)
        delta = np.abs(b - a)
        return {
            "dataset": self.dataset,
            "change": self.change,
            "n": len(keep),
            "no_face": len(self.labels) - len(keep),
            "mean_abs_delta": float(delta.mean()) if len(keep) else math.nan,
            "p95_abs_delta": float(np.percentile(delta, 95)) if len(keep) else math.nan,
            "flip_rate": float(np.mean((a >= threshold) != (b >= threshold))) if len(keep) else math.nan,
            "auc_before": roc_auc(y, a) if len(keep) else math.nan,
            "auc_after": roc_auc(y, b) if len(keep) else math.nan,
        }


def pick(folder: Path, suffixes: set[str], n: int, rng: np.random.Generator) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes) if folder.is_dir() else []
    if n < len(files):
        files = sorted(files[i] for i in rng.choice(len(files), size=n, replace=False))
    return files


def score_images(detector: Any, images: Sequence[np.ndarray], batch_size: int) -> list[float | None]:
    return [r.fake_score for r in detector.detect_image(list(images), batch_size=batch_size)]


def measure_images(
    detector: Any, name: str, root: Path, per_class: int, rng: np.random.Generator, batch_size: int
) -> list[Row]:
    from deepfakedetect.io.images import load_image

    files, labels = [], []
    for label, y in (("real", 0), ("fake", 1)):
        chosen = pick(root / label, IMAGE_SUFFIXES, per_class, rng)
        files += chosen
        labels += [y] * len(chosen)
    if not files:
        log(f"{name}: no images under {root}, skipped")
        return []
    t0 = time.perf_counter()
    originals = [load_image(p) for p in files]
    before = score_images(detector, originals, batch_size)
    rows = []
    for change_name, change in IMAGE_CHANGES.items():
        after = score_images(detector, [change(im) for im in originals], batch_size)
        rows.append(Row(name, change_name, list(labels), list(before), after, [str(p) for p in files]))
    log(f"{name}: {len(files)} images x {1 + len(IMAGE_CHANGES)} versions in {time.perf_counter() - t0:.0f} s")
    return rows


def measure_videos(
    detector: Any, name: str, root: Path, per_class: int, rng: np.random.Generator, batch_size: int, tmp: Path
) -> list[Row]:
    files, labels = [], []
    for label, y in (("real", 0), ("fake", 1)):
        chosen = pick(root / label, VIDEO_SUFFIXES, per_class, rng)
        files += chosen
        labels += [y] * len(chosen)
    if not files:
        log(f"{name}: no videos under {root}, skipped")
        return []
    t0 = time.perf_counter()
    row = Row(name, VIDEO_CHANGE, labels, files=[str(p) for p in files])
    for i, path in enumerate(files):
        changed = reencode_h264(path, tmp / f"v{i}{path.suffix}")
        row.before.append(detector.detect_video(path, batch_size=batch_size, progress=False).fake_score)
        row.after.append(detector.detect_video(changed, batch_size=batch_size, progress=False).fake_score)
        changed.unlink()
    log(f"{name}: {len(files)} videos x 2 versions in {time.perf_counter() - t0:.0f} s")
    return [row]


# -- reporting -----------------------------------------------------------------------------


def _f(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(summaries: list[dict[str, Any]]) -> str:
    lines = [
        "| data | change | n | mean \\|Δ\\| | p95 \\|Δ\\| | flips | AUC before | AUC after |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summaries:
        n = f"{s['n']}" + (f" ({s['no_face']} no face)" if s["no_face"] else "")
        lines.append(
            f"| {s['dataset']} | {s['change']} | {n} | {_f(s['mean_abs_delta'])} | {_f(s['p95_abs_delta'])} "
            f"| {_f(100 * s['flip_rate'], 1)}% | {_f(s['auc_before'])} | {_f(s['auc_after'])} |"
        )
    return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="model folder or Hub repo id (default: the default model)")
    p.add_argument("--revision", default=None, help="Hub revision (pin a commit sha)")
    p.add_argument("--data", type=Path, default=DEFAULT_SHARED / "data", help="the shared data folder")
    p.add_argument("--images", type=int, default=100, help="images per class per image data set (default 100)")
    p.add_argument("--videos", type=int, default=4, help="videos per class (default 4; 0 skips videos)")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset choice")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA when available)")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--json", type=Path, default=None, help="write every score and the summary here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from deepfakedetect import Detector

    weights = args.data.parent / RETINAFACE
    if weights.is_file():  # the face stage's weights without a download, when the shared folder has them
        os.environ.setdefault("DEEPFAKEDETECT_RETINAFACE_WEIGHTS", str(weights))
    if not args.data.is_dir():
        log(f"no data folder at {args.data}: pass --data or set DEEPFAKEDETECT_SHARED")
        return 2
    detector = Detector.from_pretrained(args.model, revision=args.revision, device=args.device, precision=args.precision)
    threshold = detector.threshold
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    rows: list[Row] = []
    for name, rel in IMAGE_SETS.items():
        if args.images > 0:
            rows += measure_images(detector, name, args.data / rel, args.images, rng, args.batch_size)
    if args.videos > 0:
        with tempfile.TemporaryDirectory(prefix="dfd-robustness-") as tmp:
            rows += measure_videos(detector, VIDEO_SET[0], args.data / VIDEO_SET[1], args.videos, rng,
                                   args.batch_size, Path(tmp))  # fmt: skip
    summaries = [r.summary(threshold) for r in rows]
    prov = detector.provenance
    cfg = detector.config
    command = "PYTHONPATH=src python benchmarks/robustness.py " + shlex.join(list(argv if argv is not None else sys.argv[1:]))
    print(f"Model: {prov['source']} (revision {prov['revision'] or 'n/a'}), {cfg.backbone}, input "
          f"{cfg.preprocess.input_size} px, face stage {'on' if cfg.faces.enabled else 'off'}, threshold "
          f"{threshold:.4g}, precision {args.precision} on {detector.device}; deepfakedetect {prov['library_version']}")  # fmt: skip
    print(f"Subsets: seed {args.seed}, {args.images} images per class per image set, {args.videos} videos per class; "
          f"{time.perf_counter() - started:.0f} s on {platform.machine()} with {os.cpu_count()} CPUs "
          f"(load average {os.getloadavg()[0]:.1f})")  # fmt: skip
    print(f"Command: `{command.strip()}`")
    print()
    print(markdown(summaries))
    if args.json is not None:
        payload = {
            "model": prov,
            "threshold": threshold,
            "args": {k: str(v) for k, v in vars(args).items()},
            "summary": summaries,
            "scores": [r.__dict__ for r in rows],
        }
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
