"""OpenMP's wait policy on a busy machine: torch's threads spinning or sleeping between layers.

torch's CPU kernels run on an OpenMP thread pool (GNU libgomp in the pip wheels). Between
two parallel regions (two layers) its threads spin, waiting for the next one. On a
machine with idle cores that costs nothing; on one with more runnable threads than cores
(CI runners, shared servers, several jobs at once) a spinning thread burns the time slice
that another thread of the same forward pass needs, and every layer waits for the slowest
thread. ``OMP_WAIT_POLICY=PASSIVE`` makes them sleep instead. libgomp reads it once, when
it is loaded, so each setting runs in its own process (the default model's MobileNetV2
and a ResNet-50, as ``Detector`` runs them), alternating, and the table gives medians.

Usage::

    PYTHONPATH=src python benchmarks/omp_wait.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, statistics, sys, time
import numpy as np, torch
from deepfakedetect import Detector
out = {}
crops = list(np.random.default_rng(0).integers(0, 256, (8, 160, 160, 3), dtype=np.uint8))
for name, det in (("default model (MobileNetV2, 128 px)", Detector.from_pretrained()),
                  ("ResNet-50, 224 px", Detector.from_backbone("resnet50"))):
    for batch in (1, 8):
        det.score_arrays(crops[:batch])
        times, cpu = [], []
        deadline = time.perf_counter() + float(sys.argv[1])
        while time.perf_counter() < deadline or len(times) < 3:
            t, c = time.perf_counter(), time.process_time()
            det.score_arrays(crops[:batch])
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out[f"{name}, batch {batch}"] = (statistics.median(times), statistics.median(cpu), torch.get_num_threads())
print(json.dumps(out))
"""


def cpu_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), cpu)
        found = [f for f in ("avx512_bf16", "amx_bf16") if f" {f}" in text]
        cpu += f", {' and '.join(found) if found else 'no native bf16'}"
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="timing per case and process")
    args = ap.parse_args()
    print(f"# OpenMP wait policy, {time.strftime('%Y-%m-%d %H:%M')}\n")
    print(f"- CPU: {cpu_line()}")
    print(f"- before: {load_line()}")
    settings = {"unset (libgomp default: spin, then sleep)": None, "OMP_WAIT_POLICY=PASSIVE": "PASSIVE"}
    got: dict[str, dict[str, list[tuple[float, float, int]]]] = {s: {} for s in settings}
    names = list(settings)
    for r in range(args.rounds):
        for s in names[r % 2 :] + names[: r % 2]:
            env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
            env.pop("OMP_WAIT_POLICY", None)
            if settings[s]:
                env["OMP_WAIT_POLICY"] = settings[s]
            proc = subprocess.run([sys.executable, "-c", CHILD, str(args.seconds)], env=env, capture_output=True,
                                  text=True, check=True)
            for case, v in json.loads(proc.stdout.strip().splitlines()[-1]).items():
                got[s].setdefault(case, []).append(tuple(v))
    print(f"- after: {load_line()}; {args.rounds} processes per setting, medians\n")
    cases = list(got[names[0]])
    print("| case | " + " | ".join(f"{s}: ms (CPU ms)" for s in names) + " | unset / PASSIVE |")
    print("|---|" + "---|" * (len(names) + 1))
    for case in cases:
        cells, walls = [], []
        for s in names:
            wall = statistics.median(v[0] for v in got[s][case])
            cpu = statistics.median(v[1] for v in got[s][case])
            walls.append(wall)
            cells.append(f"{1000 * wall:.1f} ({1000 * cpu:.1f})")
        threads = got[names[0]][case][0][2]
        print(f"| {case}, {threads} threads | " + " | ".join(cells) + f" | {walls[0] / walls[1]:.2f}x |")


if __name__ == "__main__":
    main()
