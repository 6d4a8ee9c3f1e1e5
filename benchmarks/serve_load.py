"""Load on a live `deepfakedetect serve` at 127.0.0.1: answers, latency, throughput and server memory.

Starts the server in its own process (the shipped model by default, or a tiny untrained
ResNet-18 with ``--tiny``), sends ``--requests`` uploads of real faces (from the shared
folder, else generated images) from ``--concurrency`` client threads, and prints one
Markdown table. A client that gets 503 waits ``Retry-After`` before its next request.
Only 127.0.0.1 is ever contacted.

    PYTHONPATH=src python benchmarks/serve_load.py                 # shipped model, faces, Grad-CAM
    PYTHONPATH=src python benchmarks/serve_load.py --tiny --no-explain
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

SERVER = """
import sys
from deepfakedetect import Detector
from deepfakedetect.serve import ServeSettings, serve
det = Detector.from_pretrained(None if sys.argv[1] == "default" else sys.argv[1])
settings = ServeSettings(max_concurrency=int(sys.argv[4]), max_queue=int(sys.argv[5]), retry_after=1, temp_dir=sys.argv[3])
serve(det, port=int(sys.argv[2]), settings=settings, log_level="warning")
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def payloads(n: int) -> tuple[list[tuple[str, bytes]], str]:
    shared = Path(os.environ.get("DEEPFAKEDETECT_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    files = sorted((shared / "data" / "faces" / "lfw_faceswap" / "test").glob("*/*.jpg"))[:n]
    if files:
        return [(p.name, p.read_bytes()) for p in files], f"{len(files)} LFW test faces (250x250 JPEG)"
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (250, 250, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        out.append((f"{i}.jpg", buf.getvalue()))
    return out, f"{n} generated 250x250 JPEGs (no shared data)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--slots", type=int, default=1, help="the server's max_concurrency")
    ap.add_argument("--queue", type=int, default=4, help="the server's max_queue")
    ap.add_argument("--tiny", action="store_true", help="a tiny untrained ResNet-18 at 32 px, faces off")
    ap.add_argument("--no-explain", action="store_true", help="ask for no Grad-CAM overlays")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dfd-serve-load-"))
    if args.tiny:
        from deepfakedetect import Detector

        model = str(Detector.from_backbone("resnet18", input_size=32).save_pretrained(tmp / "model"))
        model_desc = "tiny ResNet-18, 32 px, no face stage"
    else:
        model, model_desc = "default", "shipped default (MobileNetV2 128 px, RetinaFace face stage)"
    uploads = tmp / "uploads"
    uploads.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, model, str(port), str(uploads), str(args.slots), str(args.queue)],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
            if proc.poll() is not None:
                sys.exit("the server did not start")
        files, files_desc = payloads(40)
        rss_start = rss_mb(proc.pid)
        explain = "false" if args.no_explain else "true"

        def one(i: int, client: httpx.Client) -> tuple[int, float]:
            name, data = files[i % len(files)]
            t = time.perf_counter()
            r = client.post("/v1/detect", files={"file": (name, data, "image/jpeg")}, data={"explain": explain}, timeout=120)
            dt = time.perf_counter() - t
            if r.status_code == 503:
                time.sleep(float(r.headers.get("retry-after", "1")))
            return r.status_code, dt

        t0 = time.perf_counter()
        with httpx.Client(base_url=base, limits=httpx.Limits(max_connections=args.concurrency)) as client, ThreadPoolExecutor(args.concurrency) as pool:
            quarter = list(pool.map(lambda i: one(i, client), range(args.requests // 4)))
            rss_quarter = rss_mb(proc.pid)
            rest = list(pool.map(lambda i: one(i, client), range(args.requests // 4, args.requests)))
        wall = time.perf_counter() - t0
        rss_end = rss_mb(proc.pid)
        left = len(list(uploads.iterdir()))
    finally:
        proc.terminate()
        proc.wait(15)
    results = quarter + rest
    counts = Counter(s for s, _ in results)
    ok = sorted(dt for s, dt in results if s == 200)
    busy = sorted(dt for s, dt in results if s == 503)
    q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")

    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; load average {os.getloadavg()[0]:.1f} at the end")
    print(f"model: {model_desc}; inputs: {files_desc}; Grad-CAM: {explain}")
    print(f"server: {args.slots} slot(s), queue {args.queue}; clients: {args.concurrency} threads, {args.requests} requests\n")
    print("| answers | 200 | 503 | other | wall s | scored/s | 200 p50 ms | 200 p95 ms | 503 p50 ms | RSS start MB | RSS after 1/4 MB | RSS end MB | uploads left |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    other = sum(v for k, v in counts.items() if k not in (200, 503))
    print(
        f"| {len(results)} | {counts[200]} | {counts[503]} | {other} | {wall:.1f} | {counts[200] / wall:.2f} | "
        f"{1000 * statistics.median(ok) if ok else float('nan'):.0f} | {1000 * q(ok, 0.95):.0f} | "
        f"{1000 * statistics.median(busy) if busy else float('nan'):.0f} | {rss_start:.0f} | {rss_quarter:.0f} | {rss_end:.0f} | {left} |"
    )


if __name__ == "__main__":
    main()
