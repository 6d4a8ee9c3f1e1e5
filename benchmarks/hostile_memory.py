"""Peak memory of batch scoring on a folder of small files that decode to huge images (issue 15).

The red-team case: PNGs of 9400 x 9400 pixels of one colour (about 85 KB each, 265 MB of
pixels once decoded), scored with the face stage on through ``detect_many`` with an
``output`` file, as ``deepfakedetect detect DIR --output`` does. Before the byte budget,
24 of them peaked at 8.2 GB. Each measurement runs in a fresh child process: it scores a
folder of small images first (so the model, the face detector and the thread pool are
loaded), reads its peak resident memory, scores the big folder, and reads it again; the
table gives both and the growth.

``--decode-budget`` sets ``detect_many``'s budget in MiB (default: the library's). To see
the old behaviour, pass a budget larger than the folder (e.g. ``--decode-budget 100000``)
only with memory to spare: the whole window is then decoded at once (24 x 9400^2 PNGs:
several GB).

Usage::

    PYTHONPATH=src python benchmarks/hostile_memory.py                 # 24 PNGs of 9400^2: about a minute on 2 cores
    PYTHONPATH=src python benchmarks/hostile_memory.py --files 48 --side 6000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

_CHILD = r"""
import json, resource, sys, time
from deepfakedetect import Detector, detect_many
small, big, out_small, out_big, budget = sys.argv[1:6]
det = Detector.from_pretrained()  # the shipped default model, face stage on
kwargs = {} if budget == "default" else {"decode_budget": int(float(budget) * 2**20)}
n_small = sum(1 for _ in detect_many(det, small, output=out_small, progress=False, **kwargs))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
records = list(detect_many(det, big, output=out_big, progress=False, **kwargs))
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"before_mb": before, "after_mb": after, "seconds": seconds, "n": len(records),
                  "status": sorted({r["status"] for r in records}), "faces_on": det.config.faces.enabled}))
"""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _folder(path: Path, n: int, side: int) -> int:
    path.mkdir()
    Image.new("RGB", (side, side), (120, 130, 140)).save(path / "src.png")
    data = (path / "src.png").read_bytes()
    (path / "src.png").unlink()
    for i in range(n):
        (path / f"{i:03d}.png").write_bytes(data)
    return len(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=24, help="big PNGs in the folder (default: 24)")
    ap.add_argument("--side", type=int, default=9400, help="their side in pixels (default: 9400)")
    ap.add_argument("--decode-budget", default="default", help="detect_many's decode_budget in MiB (default: the library's)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="dfd-hostile-mem-") as tmp:
        root = Path(tmp)
        _folder(root / "small", 8, 64)
        size = _folder(root / "big", args.files, args.side)
        env = dict(os.environ, DEEPFAKEDETECT_PROGRESS="0")
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(root / "small"), str(root / "big"), str(root / "s.jsonl"),
             str(root / "b.jsonl"), args.decode_budget],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            sys.exit(f"the measuring process failed:\n{done.stderr[-3000:]}")
        r = json.loads(done.stdout.strip().splitlines()[-1])

    print(f"CPU: {_cpu_model()} ({os.cpu_count()} CPUs), load average {os.getloadavg()[0]:.1f}; "
          f"Python {platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"Folder: {args.files} PNGs of {args.side}x{args.side} ({size / 1e3:.0f} KB each, "
          f"{args.side**2 * 3 / 1e6:.0f} MB of pixels each); face stage {'on' if r['faces_on'] else 'off'}; "
          f"decode_budget {args.decode_budget} (MiB)")
    print()
    print("| files scored | statuses | peak RSS after warm-up (MB) | peak RSS after the folder (MB) | growth (MB) | seconds |")
    print("|---:|---|---:|---:|---:|---:|")
    print(f"| {r['n']} | {', '.join(r['status'])} | {r['before_mb']:.0f} | {r['after_mb']:.0f} | "
          f"{r['after_mb'] - r['before_mb']:.0f} | {r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
