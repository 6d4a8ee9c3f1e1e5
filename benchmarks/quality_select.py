"""Choose the default model on validation data: calibrate each candidate, with and without test-time flip.

For each model and flip setting, :func:`deepfakedetect.calibrate_detector` fits the image
calibration on the validation images and the video calibration on the validation videos
(with the uncertain band at ``--target-precision``); the calibrated detector is then
evaluated on the same validation data, per source and per FF++ method. Nothing here reads
a test split. Faces are found once per image or frame and shared by every candidate (a
caching face detector around the configured RetinaFace), so each candidate costs only
decoding and its classifier::

    PYTHONPATH=src python benchmarks/quality_select.py shipped v2=runs/quality/v2 \\
        --data runs/quality/data --out runs/quality/select [--flip both]

Writes ``OUT/select.json`` (metrics, calibrations, per-item scores, seconds) and each
calibrated model in ``OUT/NAME[-flip]/``; prints a table with the CPU model and load.
Models already in ``OUT/select.json`` are kept, not scored again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from deepfakedetect import Detector, calibrate_detector, evaluate
from deepfakedetect._metrics import binary_metrics, roc_auc
from deepfakedetect.faces import FaceStage

METHODS = ("Deepfakes", "Face2Face", "FaceSwap")
# Source of a validation image from its file name (benchmarks/quality.py names them so).
PREFIXES = (("ffpp2_frames__", "ffpp_frames"), ("lfw__", "lfw"), ("stylegan__", "stylegan"), ("sd21__", "sd21"))


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class CachedFaces:
    """A face detector that remembers what it found in each image (by content)."""

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.cache: dict[str, list[Any]] = {}
        self.misses = 0

    def __call__(self, images: Any) -> list[list[Any]]:
        keys = [hashlib.sha1(np.ascontiguousarray(im).tobytes() + str(im.shape).encode()).hexdigest() for im in images]
        todo = [i for i, k in enumerate(keys) if k not in self.cache]
        if todo:
            found = self.detector([images[i] for i in todo])
            for i, faces in zip(todo, found):
                self.cache[keys[i]] = list(faces)
            self.misses += len(todo)
        return [list(self.cache[k]) for k in keys]


def source_of(path: str) -> str:
    name = Path(path).name
    return next((s for p, s in PREFIXES if name.startswith(p)), "other")


def method_of(path: str) -> str:
    """``real`` for an original FF++ video (``youtube__033.mp4``), else the manipulation method."""
    name = Path(path).name
    return name.split("__")[0] if "__" in name and not name.startswith("youtube") else "real"


def metrics(y: list[int], s: list[float], thr: float, band: Any) -> dict[str, Any]:
    y_a, s_a = np.asarray(y), np.asarray(s)
    out = {k: v for k, v in binary_metrics(y_a, s_a, threshold=thr).items() if not isinstance(v, (list, dict))}
    out["n_real"], out["n_fake"] = int((y_a == 0).sum()), int((y_a == 1).sum())
    if band is not None:
        inside = (s_a >= band[0]) & (s_a < band[1])
        out["uncertain_share"] = float(inside.mean())
        dec = ~inside
        out["accuracy_outside_band"] = float(((s_a[dec] >= thr) == (y_a[dec] == 1)).mean()) if dec.any() else None
    return out


def run_one(path: str | None, flip: bool, faces: CachedFaces, args: argparse.Namespace) -> tuple[Detector, dict[str, Any]]:
    t0 = time.perf_counter()
    det = Detector.from_pretrained(path, flip=flip, face_detector=faces, device="cpu")
    cal = calibrate_detector(det, images=args.data / "v2", target_precision=args.target_precision, progress=False)
    video_target = None if args.video_target_precision == "none" else float(args.video_target_precision or args.target_precision)
    cal = calibrate_detector(cal, videos=args.data / "ffpp2_videos", target_precision=video_target, progress=False)
    t1 = time.perf_counter()
    img = evaluate(cal, args.data / "v2", split="val", videos=False, progress=False).items["image"]
    vid = evaluate(cal, args.data / "ffpp2_videos", split="val", videos=True, progress=False).items["video"]
    t2 = time.perf_counter()
    icfg, vcfg = cal.config.calibration, cal.config.video_calibration
    res: dict[str, Any] = {
        "flip": flip,
        "image_calibration": {"temperature": icfg.temperature, "threshold": icfg.threshold, "band": icfg.uncertain_band, "fitted_on": icfg.fitted_on},
        "video_calibration": {"temperature": vcfg.temperature, "threshold": vcfg.threshold, "band": vcfg.uncertain_band, "fitted_on": vcfg.fitted_on},
        "pooled_image": metrics(img["y"], img["fake_score"], icfg.threshold, icfg.uncertain_band),
        "sources": {},
        "videos": metrics(vid["y"], vid["fake_score"], vcfg.threshold, vcfg.uncertain_band),
        "per_method": {},
        "scores": {"image": img, "video": vid},
        "seconds": {"calibrate": t1 - t0, "evaluate": t2 - t1},
    }  # fmt: skip
    for src in sorted({source_of(p) for p in img["source"]}):
        idx = [i for i, p in enumerate(img["source"]) if source_of(p) == src]
        res["sources"][src] = metrics([img["y"][i] for i in idx], [img["fake_score"][i] for i in idx], icfg.threshold, icfg.uncertain_band)
    for m in ("real", *METHODS):
        idx = [i for i, p in enumerate(vid["source"]) if method_of(p) == m]
        if idx:
            flagged = [vid["fake_score"][i] >= vcfg.threshold for i in idx]
            res["per_method"][m] = {"n": len(idx), "flagged": float(np.mean(flagged))}
    # Video AUC per method: that method's fakes against all real videos.
    reals = [s for s, p in zip(vid["fake_score"], vid["source"]) if method_of(p) == "real"]
    for m in METHODS:
        fakes = [s for s, p in zip(vid["fake_score"], vid["source"]) if method_of(p) == m]
        if fakes and reals:
            res["per_method"][m]["auc"] = roc_auc(np.r_[np.zeros(len(reals)), np.ones(len(fakes))], np.r_[reals, fakes])
    return cal, res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="'shipped' (the package's default model) or NAME=FOLDER")
    parser.add_argument("--data", type=Path, default=Path("runs/quality/data"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--flip", choices=("off", "on", "both"), default="both")
    parser.add_argument("--target-precision", type=float, default=0.9, help="of the uncertain band (images)")
    parser.add_argument(
        "--video-target-precision",
        default=None,
        help="of the videos' uncertain band (default: --target-precision); 'none' fits no band, as for "
        "the shipped model, whose 12 validation videos (4 real) are too few to place one",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    out_json = args.out / "select.json"
    results: dict[str, Any] = json.loads(out_json.read_text()) if out_json.is_file() else {}
    first = Detector.from_pretrained(device="cpu")
    faces = CachedFaces(FaceStage(first.config.faces, device="cpu").detector)
    flips = {"off": [False], "on": [True], "both": [False, True]}[args.flip]
    for flip in flips:
        for spec in args.models:
            name, _, path = spec.partition("=")
            key = name + ("-flip" if flip else "")
            if key in results:
                continue
            det_cfg = Detector.from_pretrained(path or None, device="cpu").config
            # The face detector sees the decoded image, not the classifier's input: models of
            # another input size share its findings, models of other face settings cannot.
            if det_cfg.faces != first.config.faces:
                raise SystemExit(f"{name}: face settings differ from the default model's; faces cannot be shared")
            cal, res = run_one(path or None, flip, faces, args)
            res["load_average"] = os.getloadavg()
            results[key] = res
            cal.save_pretrained(args.out / key)
            out_json.write_text(json.dumps(results, indent=1, default=float))
            print(f"{key}: done in {sum(res['seconds'].values()):.0f} s (face detector ran on {faces.misses} images so far)", file=sys.stderr, flush=True)
    print(f"validation only; CPU: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}\n")
    srcs = ("lfw", "stylegan", "sd21", "ffpp_frames")
    print("| model | " + " | ".join(f"{s} AUC" for s in srcs) + " | pooled image AUC | image uncertain | FF++ video AUC (n) | video acc | video uncertain | seconds |")
    print("|---|" + "---|" * (len(srcs) + 6))
    for key, r in results.items():
        v = r["videos"]
        print(
            f"| {key} | " + " | ".join(f"{r['sources'][s]['auc']:.3f}" for s in srcs if s in r["sources"])
            + f" | {r['pooled_image']['auc']:.3f} | {100 * r['pooled_image'].get('uncertain_share', 0):.1f}% | {v['auc']:.3f} ({v['n_real']}+{v['n_fake']})"
            f" | {v['accuracy']:.3f} | {100 * v.get('uncertain_share', 0):.1f}% | {sum(r['seconds'].values()):.0f} |"
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
