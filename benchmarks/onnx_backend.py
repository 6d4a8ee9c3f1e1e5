"""The ONNX Runtime backend against the torch default, in one run: images/s and start-up.

Exports the model (the shipped default unless ``--model``) with ``Detector.export_onnx``,
then, in rotating rounds, times

- start-up: a fresh Python process that imports deepfakedetect, loads the detector and
  scores one face (wall time of the whole process, and of import + load + first result
  measured inside it);
- throughput: ``detect_image`` on real faces (face detection, crops, classifier) and
  ``score_arrays`` on 128 px crops (the classifier alone), at batch 1 and 32, wall and
  CPU time (all threads) per image;

for torch with ``precision="auto"`` (the default: bf16 where the CPU has native bf16),
torch fp32, and ONNX Runtime (fp32, its CPU provider). Prints Markdown tables, the CPU
model and the load average; compare ratios within one run.

    PYTHONPATH=src python benchmarks/onnx_backend.py                # about 5 minutes on 2 cores
    PYTHONPATH=src python benchmarks/onnx_backend.py --rounds 5 --images 64
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from deepfakedetect import Detector

STARTUP = """
import sys, time
t0 = time.perf_counter()
from deepfakedetect import Detector
model, backend, precision, face = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
kw = {"backend": "onnxruntime"} if backend == "onnxruntime" else {"precision": precision}
det = Detector.from_pretrained(None if model == "default" else model, **kw)
t1 = time.perf_counter()
det.detect_image(face)
t2 = time.perf_counter()
print(f"{t1 - t0:.4f} {t2 - t0:.4f}")
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def faces(n: int) -> list[Path]:
    shared = Path(os.environ.get("DEEPFAKEDETECT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    files = sorted((shared / "data" / "faces" / "lfw_faceswap" / "test").glob("*/*.jpg"))
    if not files:
        sys.exit(f"no shared faces under {shared} (set DEEPFAKEDETECT_SHARED)")
    return [files[i * len(files) // n] for i in range(n)]


def timed(fn, n_items: int) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return n_items / (time.perf_counter() - w), (time.process_time() - c) / n_items * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default", help="a model folder (default: the shipped model)")
    ap.add_argument("--onnx-dir", type=Path, help="reuse an exported folder instead of exporting")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=32)
    args = ap.parse_args()

    model = None if args.model == "default" else args.model
    files = faces(args.images)
    out = args.onnx_dir
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="dfd-onnx-bench-"))
        t = time.perf_counter()
        Detector.from_pretrained(model, precision="fp32").export_onnx(out)
        print(f"export: {time.perf_counter() - t:.1f} s (classifier and face detector) to {out}")

    variants = {
        "torch, precision auto (default)": lambda: Detector.from_pretrained(model),
        "torch, fp32": lambda: Detector.from_pretrained(model, precision="fp32"),
        "onnxruntime (fp32)": lambda: Detector.from_pretrained(out, backend="onnxruntime"),
    }
    dets = {name: make() for name, make in variants.items()}
    crops = [c for found in dets["torch, fp32"].extract_faces([np.asarray(Image.open(f).convert("RGB")) for f in files]) for _, c in found]
    for det in dets.values():  # warm up: weights loaded, face detector built, first calls paid
        det.detect_image(files[:2])
        det.score_arrays(crops[:2])

    pipe: dict[str, list[tuple[float, float]]] = {n: [] for n in dets}
    clf1: dict[str, list[tuple[float, float]]] = {n: [] for n in dets}
    clf32: dict[str, list[tuple[float, float]]] = {n: [] for n in dets}
    names = list(dets)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            det = dets[name]
            pipe[name].append(timed(lambda d=det: d.detect_image(files, batch_size=32), len(files)))
            clf1[name].append(timed(lambda d=det: [d.score_arrays([c], batch_size=1) for c in crops[:16]], 16))
            clf32[name].append(timed(lambda d=det: d.score_arrays(crops, batch_size=32), len(crops)))

    starts: dict[str, list[tuple[float, float, float]]] = {n: [] for n in dets}
    spec = {names[0]: ("torch", "auto"), names[1]: ("torch", "fp32"), names[2]: ("onnxruntime", "fp32")}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            backend, precision = spec[name]
            where = str(out) if backend == "onnxruntime" else args.model
            t = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", STARTUP, where, backend, precision, str(files[0])],
                                 capture_output=True, text=True, check=True)
            total = time.perf_counter() - t
            load, first = map(float, res.stdout.split())
            starts[name].append((total, load, first))

    med = lambda xs, i: statistics.median(x[i] for x in xs)
    print(f"\nCPU: {cpu_model()}, {os.cpu_count()} logical cores; load average {os.getloadavg()[0]:.1f} at the end; "
          f"{args.rounds} rounds, medians; {len(files)} LFW test faces ({len(crops)} face crops)\n")
    print("| backend | detect_image images/s | CPU ms/image | classifier batch 1 crops/s | classifier batch 32 crops/s | CPU ms/crop (batch 32) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        print(f"| {name} | {med(pipe[name], 0):.1f} | {med(pipe[name], 1):.0f} | {med(clf1[name], 0):.1f} | "
              f"{med(clf32[name], 0):.1f} | {med(clf32[name], 1):.1f} |")
    print("\n| backend | new process to first result, s | import + load, s | import + load + first face, s |")
    print("|---|---|---|---|")
    for name in names:
        print(f"| {name} | {med(starts[name], 0):.2f} | {med(starts[name], 1):.2f} | {med(starts[name], 2):.2f} |")


if __name__ == "__main__":
    main()
