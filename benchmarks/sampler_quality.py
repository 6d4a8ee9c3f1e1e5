"""Frame samplers compared on labelled videos: video AUC, accuracy, time, and how far scores move.

Scores every video of a FaceForensics++-style folder (``real/`` and ``fake/`` of ``.mp4``
files named like ``Deepfakes__134_192.mp4`` and ``youtube__134.mp4``) with the default
model (or ``--model``) once per sampler, and prints one Markdown table. ``--groups``
keeps only the videos of the given identity groups; the default, 134/192, is the default
model's FF++ validation group (see the quality page). Choose between samplers on
validation groups only; the test groups are for the final table.

Usage::

    PYTHONPATH=src python benchmarks/sampler_quality.py                      # uniform vs keyframes
    PYTHONPATH=src python benchmarks/sampler_quality.py --samplers uniform,uniform:num_frames=8,keyframes
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from pathlib import Path

import numpy as np

from deepfakedetect import Detector
from deepfakedetect._metrics import roc_auc

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared"))


def cpu_line() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def in_groups(path: Path, groups: list[set[str]]) -> bool:
    ids = set(re.findall(r"\d+", path.stem.split("__")[-1]))  # after "Face2Face__"
    return any(ids and ids <= group for group in groups)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=Path, default=DEFAULT_SHARED / "data" / "videos" / "ffpp_c23")
    ap.add_argument("--groups", default="134_192", help="identity groups to keep, comma-separated ('all': every video)")
    ap.add_argument("--samplers", default="uniform,keyframes", help="comma-separated sampler specs")
    ap.add_argument("--model", default=None, help="a model folder or Hub id (default: the shipped model)")
    args = ap.parse_args()

    files = sorted(p for label in ("real", "fake") for p in (args.videos / label).glob("*.mp4"))
    if args.groups != "all":
        groups = [set(g.split("_")) for g in args.groups.split(",")]
        files = [p for p in files if in_groups(p, groups)]
    if not files:
        raise SystemExit(f"no videos of groups {args.groups} under {args.videos}")
    y = np.array([p.parent.name == "fake" for p in files])
    det = Detector.from_pretrained(args.model) if args.model else Detector.from_pretrained()
    det.detect_video(files[0], progress=False)  # warm up: kernels built before any timing

    scores: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    threshold = 0.5
    for spec in args.samplers.split(","):
        t = time.perf_counter()
        results = [det.detect_video(p, sampler=spec, progress=False) for p in files]
        seconds[spec] = time.perf_counter() - t
        scores[spec] = np.array([np.nan if r.fake_score is None else r.fake_score for r in results])
        threshold = results[0].threshold

    print(f"# Samplers on {len(files)} videos ({int((~y).sum())} real, {int(y.sum())} fake), groups {args.groups}\n")
    print(f"- CPU: {cpu_line()}, {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f} at the end")
    print(f"- model: {det.source}; video threshold {threshold:.3f}\n")
    first = args.samplers.split(",")[0]
    print(f"| sampler | video AUC | accuracy at the threshold | time, all videos (s) | labels as `{first}` | "
          f"mean / largest score change from `{first}` |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    base = scores[first]
    for spec, s in scores.items():
        agree = int(np.sum((s >= threshold) == (base >= threshold)))
        diff = np.abs(s - base)
        print(f"| `{spec}` | {roc_auc(y, s):.3f} | {np.mean((s >= threshold) == y):.3f} | {seconds[spec]:.1f} | "
              f"{agree} of {len(files)} | {np.nanmean(diff):.3f} / {np.nanmax(diff):.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
