"""Big photos: files/s of the default model (faces on) on 12-megapixel phone-sized JPEGs.

Generates the photos in a temporary folder: a 4032x3024 scene (smooth colour fields,
shapes and sensor-like noise, so the JPEG is about as large as a phone's) with one real
face from ``data/faces/lfw_faceswap`` pasted in, scaled up 3-6x (faces of about 300 to
700 pixels, some small enough that their crop needs more than the reduced decode),
saved as JPEG quality 90. Half are real faces, half face-swapped ones. Without the
shared folder the "faces" are random patches and most photos get no face (the timing
still means something; the verdicts do not).

Compared in the same rounds (rotating order, medians), all with the shipped default
model:

- **full decode**: each file decoded at full size by ``load_image`` and the arrays
  given to ``detect_image`` in one list: what ``detect_image(paths)`` did before
  reduced decoding;
- **detect_image(paths)**: the library's own path, decoding each JPEG at a reduced
  size (Pillow's ``draft``) large enough for face detection and, per face, for the crop;
- **detect_many**: the same through ``detect_many`` (decoding threads ahead of the model).

It also prints milliseconds per photo of the decoding alone, and the verdicts of the
fast paths against the full decode (labels that differ, largest score difference).

Usage::

    PYTHONPATH=src python benchmarks/photos.py               # 16 photos, 3 rounds: a few minutes on 2 cores
    PYTHONPATH=src python benchmarks/photos.py --photos 32 --runs 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
DEFAULT_SHARED = Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared"))
LFW_TEST = "data/faces/lfw_faceswap/test"
SIZE = (4032, 3024)  # a 12-megapixel phone photo, landscape


def cpu_line() -> str:
    cpu = platform.processor() or platform.machine()
    flags = ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        for line in text.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        found = [f for f in ("avx512_bf16", "amx_bf16") if f" {f}" in text]
        flags = f", {' and '.join(found) if found else 'no native bf16'}"
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs{flags}"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def make_scene(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A phone-photo-like background: smooth colour fields, a few shapes, sensor noise."""
    from PIL import ImageDraw

    w, h = size
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    scene = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(scene)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(100, 1200)), y0 + int(rng.integers(100, 900))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.rectangle if rng.random() < 0.5 else draw.ellipse)((x0, y0, x1, y1), fill=colour)
    arr = np.asarray(scene, dtype=np.int16)
    noise = rng.normal(0.0, 4.0, (h // 2, w // 2, 1)).astype(np.int16)
    arr = arr + np.repeat(np.repeat(noise, 2, axis=0), 2, axis=1)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def make_photos(out: Path, n: int, shared: Path, seed: int = 0) -> tuple[list[Path], bool]:
    rng = np.random.default_rng(seed)
    faces: list[Path] = []
    for label in ("real", "fake"):
        folder = shared / LFW_TEST / label
        if folder.is_dir():
            faces += sorted(folder.glob("*.jpg"))[: (n + 1) // 2]
    real_faces = len(faces) >= n
    paths = []
    for i in range(n):
        scene = make_scene(rng, SIZE)
        if real_faces:
            face = Image.open(faces[i if i % 2 == 0 else len(faces) // 2 + i // 2]).convert("RGB")
        else:
            face = Image.fromarray(rng.integers(0, 256, (250, 250, 3), dtype=np.uint8))
        side = int(250 * (3.0 + 3.0 * (i % 4) / 3))  # 750 .. 1500 px tiles: faces of about 300-700 px
        face = face.resize((side, side), Image.Resampling.BICUBIC)
        x, y = int(rng.integers(0, SIZE[0] - side)), int(rng.integers(0, SIZE[1] - side))
        scene.paste(face, (x, y))
        path = out / f"photo_{i:03d}.jpg"
        scene.save(path, quality=90)
        paths.append(path)
    return paths, real_faces


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process, all threads) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def stage_times(det: Any, paths: list[str], decode_image: Any, load_image: Any) -> dict[str, tuple[str, str]]:
    """Milliseconds per photo of each stage of the two ways (for the table after the main one)."""
    stage = det._get_face_stage()
    pre = det.config.preprocess

    def best(fn: Callable[[], Any]) -> tuple[float, Any]:
        out, ts = None, []
        for _ in range(2):
            start = time.perf_counter()
            out = fn()
            ts.append(time.perf_counter() - start)
        return min(ts), out

    rows: dict[str, list[list[float]]] = {k: [[], []] for k in ("decode", "face detection", "crops", "score")}
    redecoded = 0
    for p in paths:
        t, full = best(lambda: load_image(p))
        rows["decode"][0].append(t)
        t, small = best(lambda: det.decode(p))
        rows["decode"][1].append(t)
        t, faces = best(lambda: stage.detect([full]))
        rows["face detection"][0].append(t)
        rows["face detection"][1].append(best(lambda: stage.detect([small.array]))[0])
        t, found = best(lambda: stage([full]))
        rows["crops"][0].append(max(0.0, t - rows["face detection"][0][-1]))
        t, found_small = best(lambda: det._find_faces([small]))
        rows["crops"][1].append(max(0.0, t - rows["face detection"][1][-1]))
        redecoded += bool(found_small[0]) and small.reduced and any(
            max(f.width, f.height) / small.scale[0] * det.config.faces.margin < pre.resize_size
            for f, _ in found_small[0]
        )
        crops = [c for _, c in found[0]]
        crops_small = [c for _, c in found_small[0]]
        rows["score"][0].append(best(lambda: det.score_arrays(crops))[0] if crops else 0.0)
        rows["score"][1].append(best(lambda: det.score_arrays(crops_small))[0] if crops_small else 0.0)
    out = {}
    for name, (a, b) in rows.items():
        out[name] = (f"{1000 * statistics.median(a):.1f}", f"{1000 * statistics.median(b):.1f}")
    total = [sum(statistics.median(v[k]) for v in rows.values()) for k in (0, 1)]
    out["sum of the stages"] = (f"{1000 * total[0]:.1f}", f"{1000 * total[1]:.1f}")
    out["photos whose crop was cut from a larger decode"] = ("-", f"{redecoded} of {len(paths)}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=16)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shared", default=str(DEFAULT_SHARED))
    ap.add_argument("--keep", default=None, help="write the photos to this folder and keep them")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    import deepfakedetect
    from deepfakedetect import Detector, detect_many
    from deepfakedetect.io.images import decode_image, load_image

    tmp = tempfile.TemporaryDirectory(prefix="dfd-photos-")
    folder = Path(args.keep) if args.keep else Path(tmp.name)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    paths, real_faces = make_photos(folder, args.photos, Path(args.shared))
    made = time.perf_counter() - t0
    mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6

    print(f"# Big photos, {time.strftime('%Y-%m-%d %H:%M')}\n")
    print(f"- CPU: {cpu_line()}, torch {torch.__version__} with {torch.get_num_threads()} threads, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print(f"- {len(paths)} photos {SIZE[0]}x{SIZE[1]}, JPEG q90, {mb:.1f} MB each on average, made in {made:.0f} s; "
          f"faces: {'LFW face-swap test set, real and fake' if real_faces else 'none (no shared data)'}")
    print(f"- before: {load_line()}")

    det = Detector.from_pretrained()
    strs = [str(p) for p in paths]

    def full_decode() -> list[Any]:
        return det.detect_image([load_image(p) for p in strs], batch_size=32)

    def library() -> list[Any]:
        return det.detect_image(strs, batch_size=32)

    def many() -> list[dict[str, Any]]:
        return list(detect_many(det, strs, progress=False))

    ways: dict[str, Callable[[], Any]] = {"full decode": full_decode, "detect_image(paths)": library, "detect_many": many}
    results = {name: fn() for name, fn in ways.items()}  # warm-up, and the verdicts
    times: dict[str, list[float]] = {n: [] for n in ways}
    cpu: dict[str, list[float]] = {n: [] for n in ways}
    names = list(ways)
    for r in range(args.runs):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            wall, used = timed(ways[n])
            times[n].append(wall)
            cpu[n].append(used)

    stages = stage_times(det, strs, decode_image, load_image)
    print(f"- after: {load_line()}; {args.runs} rounds, medians\n")

    base = statistics.median(times["full decode"])
    print("| way | files/s | vs full decode | CPU-s per file | labels differing from full decode | largest fake_score difference |")
    print("|---|---|---|---|---|---|")
    ref = [(r.label, r.fake_score) for r in results["full decode"]]
    for n in names:
        t = statistics.median(times[n])
        got = results[n]
        pairs = [(r.label, r.fake_score) for r in got] if n != "detect_many" else [
            (rec.get("label"), rec.get("fake_score")) for rec in got
        ]
        flips = sum(a[0] != b[0] for a, b in zip(ref, pairs))
        diffs = [abs(a[1] - b[1]) for a, b in zip(ref, pairs) if a[1] is not None and b[1] is not None]
        none = sum((a[1] is None) != (b[1] is None) for a, b in zip(ref, pairs))
        extra = f" ({none} found a face in one way only)" if none else ""
        used = statistics.median(cpu[n]) / len(paths)
        print(f"| {n} | {len(paths) / t:.2f} | {base / t:.2f}x | {used:.3f} | {flips} of {len(paths)}{extra} | "
              f"{max(diffs) if diffs else float('nan'):.4f} |")
    print("\n| stage, per photo (median of the photos, best of 2) | full decode | reduced decode |")
    print("|---|---|---|")
    for name, (a, b) in stages.items():
        print(f"| {name} | {a} | {b} |")
    labels = [r.label for r in results["full decode"]]
    print(f"\nVerdicts (full decode): {labels.count('fake')} fake, {labels.count('real')} real, "
          f"{labels.count(None)} without a face.")
    tmp.cleanup()


if __name__ == "__main__":
    main()
