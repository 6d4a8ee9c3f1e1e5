"""Does test-time flip pay for the new default model? Measured on the validation face crops.

The Trainer keeps the validation images it prepared (faces found and cropped to the
model's input size, exactly as it validated on them) in its disk cache. This script scores
those crops with each model, without and with test-time flip (``Detector(flip=True)``:
the crop and its mirror image, logits averaged), and reports per source and pooled: ROC
AUC, and log loss after refitting the temperature on those scores (what calibration would
do for either setting), with the classifier's time for each. Validation data only::

    PYTHONPATH=src python benchmarks/quality_flip.py runs/quality/v2/cache/VAL.npy \\
        v2=runs/quality/v2 shipped
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from deepfakedetect import CalibrationConfig, Detector
from deepfakedetect._metrics import log_loss, roc_auc
from deepfakedetect.models.calibration import calibrate

sys.path.insert(0, str(Path(__file__).parent))
from quality_select import cpu_model, source_of  # noqa: E402  (a sibling script)

READ_T = 100.0


def margins(det: Detector, crops: np.ndarray, flip: bool) -> tuple[np.ndarray, float]:
    reading = Detector(
        det.model, det.config.replace(calibration=CalibrationConfig(temperature=READ_T, threshold=0.5)),
        device="cpu", precision=det.precision, flip=flip,
    )  # fmt: skip
    t0 = time.process_time()
    p = np.clip(reading.score_arrays(list(crops), batch_size=64), 1e-12, 1 - 1e-12)
    return READ_T * (np.log(p) - np.log1p(-p)), time.process_time() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cache", type=Path, help="the Trainer's validation cache (.npy, with its .json beside it)")
    parser.add_argument("models", nargs="+", help="'shipped' or NAME=FOLDER")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    kept = json.loads(args.cache.with_suffix(".json").read_text())["kept"]
    crops = np.load(args.cache, mmap_mode="r")
    y = np.array([1 if "/fake/" in k else 0 for k in kept])
    sources = np.array([source_of(k) for k in kept])
    rows = []
    for spec in args.models:
        name, _, path = spec.partition("=")
        det = Detector.from_pretrained(path or None, device="cpu")
        for flip in (False, True):
            m, cpu_s = margins(det, crops, flip)
            cal = calibrate(m, y, target_precision=None)
            s = 1.0 / (1.0 + np.exp(-m / cal.temperature))
            row = {"model": name, "flip": flip, "cpu_s": cpu_s, "pooled_auc": roc_auc(y, m), "pooled_log_loss": log_loss(y, s)}
            for src in sorted(set(sources)):
                sel = sources == src
                row[f"{src}_auc"] = roc_auc(y[sel], m[sel])
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    srcs = sorted(set(sources))
    print(f"validation face crops: {len(y)} ({int(y.sum())} fake); CPU: {cpu_model()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}\n")  # fmt: skip
    print("| model | flip | " + " | ".join(f"{s} AUC" for s in srcs) + " | pooled AUC | pooled log loss | classifier CPU s |")
    print("|---|---|" + "---|" * (len(srcs) + 3))
    for r in rows:
        print(f"| {r['model']} | {'on' if r['flip'] else 'off'} | " + " | ".join(f"{r[f'{s}_auc']:.4f}" for s in srcs)
              + f" | {r['pooled_auc']:.4f} | {r['pooled_log_loss']:.4f} | {r['cpu_s']:.0f} |")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
