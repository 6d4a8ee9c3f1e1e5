"""Benchmark the video decoding strategies of ``read_frames`` and their memory.

Prints Markdown tables:

1. A 60 s 1080p H.264 video made by this script (testsrc2, x264 veryfast), with a
   keyframe every 250 frames (x264's default) and every 30 frames: best and median
   wall time over ``--repeat`` runs (round-robin, so load spikes hit all alike), peak
   memory (the Python process, and the largest ffmpeg child) to get 32 uniformly
   spread frames with each strategy (scaled to 224 px inside ffmpeg, and at full size),
   and to decode every frame. With ``--verdict``, also the time to a verdict with
   ``Detector.detect_video`` (ResNet-50, random weights, 32 frames).
2. The same for the FaceForensics++ files in ``data/videos/ffpp_c23`` (if present).
3. Peak memory of ``read_frames`` on a 1-minute vs a 30-minute video, both made by
   stream-copying a short clip in a loop (``-stream_loop``), deleted afterwards.

"CPU s" is the CPU time (user + system) of Python and its ffmpeg children during the
run, the fairer comparison on a shared machine where wall time depends on the load
(best of the repeats). Each measurement runs in a fresh Python process (this script
with ``--worker``):
"Python peak" is its ``ru_maxrss`` (torch included, since importing deepfakedetect
imports it) and "+" the growth during the measurement; "ffmpeg peak" is the largest
``VmHWM`` of its ffmpeg children, polled from ``/proc`` every 10 ms (Linux only).
All generated videos live in a temporary folder that is removed at the end.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/video_decode.py [--shared ../shared]
        [--ffpp-files 6] [--repeat 3] [--verdict] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

STRATEGIES = ("auto", "select", "seek", "all")


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def uniform(n: int, k: int) -> list[int]:
    k = min(k, n)
    return [(2 * i + 1) * n // (2 * k) for i in range(k)]


# ---------------------------------------------------------------- worker (one measurement)


class ChildPeak:
    """Largest peak RSS (VmHWM) seen among this process's children, polled from /proc.

    ``RUSAGE_CHILDREN`` cannot be used: a child's RSS right after fork, before it
    execs ffmpeg, counts the whole Python parent.
    """

    def __init__(self, interval: float = 0.01) -> None:
        import threading

        self.peak_kb = 0
        self._stop = threading.Event()
        self._interval = interval
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        me = os.getpid()
        # Children of the main thread (the one that starts ffmpeg); cheaper than scanning /proc.
        listing = f"/proc/{me}/task/{me}/children"
        while not self._stop.is_set():
            try:
                with open(listing) as f:
                    pids = f.read().split()
            except OSError:
                pids = []
            for pid in pids:
                try:
                    with open(f"/proc/{pid}/status") as f:
                        status = f.read()
                except OSError:
                    continue
                fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                if "ffmpeg" in fields.get("Name", ""):
                    self.peak_kb = max(self.peak_kb, int(fields.get("VmHWM", "0 kB").split()[0]))
            self._stop.wait(self._interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


def cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) used so far by this process and by its reaped children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def worker(args: argparse.Namespace) -> None:
    # Importing deepfakedetect imports torch (through the package __init__); measure after it.
    from deepfakedetect.io.video import probe_video, read_frames

    extra: dict[str, Any] = {}
    if args.mode == "verdict":
        from deepfakedetect import Detector

        t0 = time.perf_counter()
        det = Detector.from_backbone("resnet50", device="cpu")
        extra["model_s"] = time.perf_counter() - t0
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = cpu_seconds()
    children = ChildPeak()
    t0 = time.perf_counter()
    frames = 0
    if args.mode == "verdict":
        result = det.detect_video(args.path, sampler=f"uniform:num_frames={args.frames}", aggregator="mean",
                                  progress=False)  # fmt: skip
        frames = len(result.frames)
    else:
        info = probe_video(args.path, timeout=120)
        extra.update(probe_s=time.perf_counter() - t0, num_frames=info.num_frames,
                     keyframe_interval=info.keyframe_interval)  # fmt: skip
        indices = list(range(info.num_frames)) if args.frames == 0 else uniform(info.num_frames, args.frames)
        for _, frame in read_frames(info, indices, max_size=args.max_size or None, strategy=args.mode, timeout=120):
            frames += 1
            del frame
    wall = time.perf_counter() - t0
    py_cpu, ff_cpu = (a - b for a, b in zip(cpu_seconds(), cpu0))
    out = {
        "wall_s": wall,
        "py_cpu_s": py_cpu,
        "ffmpeg_cpu_s": ff_cpu,
        "frames": frames,
        "py_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "py_base_mb": base_rss / 1024,
        "child_peak_mb": children.stop(),
        **extra,
    }
    print(json.dumps(out))


def measure(path: Path, mode: str, *, frames: int, max_size: int, timeout: float = 900) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", "--path", str(path), "--mode", mode,
           "--frames", str(frames), "--max-size", str(max_size)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "DEEPFAKEDETECT_PROGRESS": "0"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        return {"error": tail[0][:120]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of repeated runs, with the median wall time and the largest peaks."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    best = dict(min(ok, key=lambda r: r["wall_s"]))
    best["median_s"] = statistics.median(r["wall_s"] for r in ok)
    best["cpu_s"] = min(r["py_cpu_s"] + r["ffmpeg_cpu_s"] for r in ok)
    best["py_peak_mb"] = max(r["py_peak_mb"] for r in ok)
    best["child_peak_mb"] = max(r["child_peak_mb"] for r in ok)
    return best


def fmt_row(label: str, r: dict[str, Any]) -> str:
    if "error" in r:
        return f"| {label} | error: {r['error']} | | | | | |"
    cpu = r.get("cpu_s", r["py_cpu_s"] + r["ffmpeg_cpu_s"])
    return (
        f"| {label} | {cpu:.2f} | {r['wall_s']:.2f} | {r.get('median_s', r['wall_s']):.2f} | {r['frames']} "
        f"| {r['py_peak_mb']:.0f} (+{r['py_peak_mb'] - r['py_base_mb']:.0f}) | {r['child_peak_mb']:.0f} |"
    )


HEADER = (
    "| what | CPU s | best wall s | median wall s | frames | Python peak MB (+ during the run) | ffmpeg peak MB |\n"
    "|---|---|---|---|---|---|---|"
)


def run_rows(path: Path, rows: list[tuple[str, str, int, int]], repeat: int) -> None:
    """Measure every row ``repeat`` times, round-robin, so load spikes hit all rows alike."""
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label, *_ in rows}
    for _ in range(repeat):
        for label, mode, frames, max_size in rows:
            runs[label].append(measure(path, mode, frames=frames, max_size=max_size))
    for label, *_ in rows:
        print(fmt_row(label, best_of(runs[label])), flush=True)


# ---------------------------------------------------------------- the benchmark


def make_1080p(tmp: Path, gop: int, seconds: int) -> Path:
    path = tmp / f"1080p_{seconds}s_g{gop}.mp4"
    t = time.perf_counter()
    run_ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=1920x1080:rate=30:duration={seconds}", "-c:v", "libx264",
               "-preset", "veryfast", "-g", str(gop), "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    print(f"<!-- made {path.name} in {time.perf_counter() - t:.1f} s -->", flush=True)
    return path


def synthetic_tables(tmp: Path, seconds: int, verdict: bool, repeat: int) -> None:
    for gop in (250, 30):
        path = make_1080p(tmp, gop, seconds)
        print(f"\n### {seconds} s 1080p H.264, keyframe every {gop} frames (best of {repeat})\n")
        print(HEADER)
        rows = [(f"32 frames, `{s}`, 224 px", s, 32, 224) for s in STRATEGIES]
        rows += [
            ("32 frames, `auto`, full 1080p", "auto", 32, 0),
            ("every frame, 224 px", "all", 0, 224),
            ("every frame, full 1080p", "all", 0, 0),
        ]
        run_rows(path, rows, repeat)
        if verdict:
            rows = [("verdict: detect_video, ResNet-50 fp32, 32 frames", "verdict", 32, 0)]
            run_rows(path, rows, 1)
        path.unlink()


def ffpp_table(shared: Path, count: int, repeat: int) -> None:
    root = shared / "data" / "videos" / "ffpp_c23"
    paths = sorted(root.glob("*/*.mp4"))
    if not paths:
        print(f"\n(no FaceForensics++ files under {root}; skipped)")
        return
    # A spread of sizes and lengths: every len/count-th file in name order.
    chosen = paths[:: max(1, len(paths) // count)][:count]
    print(f"\n### FaceForensics++ c23: {len(chosen)} files, 32 frames each at 224 px (best of {repeat} per file)\n")
    print("files: " + ", ".join(p.name for p in chosen) + "\n")
    print("| strategy | median CPU s | median wall s | slowest file, wall s | median ffmpeg peak MB |")
    print("|---|---|---|---|---|")
    best: dict[str, list[dict[str, Any]]] = {s: [] for s in STRATEGIES}
    for p in chosen:
        runs: dict[str, list[dict[str, Any]]] = {s: [] for s in STRATEGIES}
        for _ in range(repeat):
            for s in STRATEGIES:
                runs[s].append(measure(p, s, frames=32, max_size=224))
        for s in STRATEGIES:
            best[s].append(best_of(runs[s]))
    for s in STRATEGIES:
        ok = [r for r in best[s] if "error" not in r]
        if len(ok) < len(best[s]):
            print(f"| `{s}` | errors: {[r['error'] for r in best[s] if 'error' in r][:2]} | | | |")
            continue
        print(
            f"| `{s}` | {statistics.median(r['cpu_s'] for r in ok):.2f} "
            f"| {statistics.median(r['wall_s'] for r in ok):.2f} | {max(r['wall_s'] for r in ok):.2f} "
            f"| {statistics.median(r['child_peak_mb'] for r in ok):.0f} |",
            flush=True,
        )


def long_video_table(tmp: Path, shared: Path) -> None:
    clip = shared / "data" / "videos" / "ffpp_c23" / "real" / "youtube__033.mp4"
    if not clip.is_file():
        clip = tmp / "clip.mp4"
        run_ffmpeg("-f", "lavfi", "-i", "testsrc2=size=854x480:rate=25:duration=30", "-c:v", "libx264",
                   "-preset", "veryfast", "-pix_fmt", "yuv420p", str(clip))  # fmt: skip
    print(f"\n### 1 minute vs 30 minutes ({clip.name} looped with stream copy), 32 frames at 224 px\n")
    print(HEADER)
    for minutes in (1, 30):
        path = tmp / f"long_{minutes}min.mp4"
        run_ffmpeg("-stream_loop", "-1", "-i", str(clip), "-map", "0:v:0", "-c", "copy", "-t", str(60 * minutes),
                   str(path))  # fmt: skip
        size = path.stat().st_size / 2**20
        for s in ("auto", "select"):
            r = measure(path, s, frames=32, max_size=224)
            extra = f", probe {r['probe_s']:.2f} s" if "probe_s" in r else ""
            print(fmt_row(f"{minutes} min ({size:.0f} MB), `{s}`{extra}", r), flush=True)
        path.unlink()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared")))
    p.add_argument("--ffpp-files", type=int, default=6, help="how many FF++ files to time")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (best and median reported)")
    p.add_argument("--verdict", action="store_true", help="also time Detector.detect_video end to end")
    p.add_argument("--quick", action="store_true", help="a 10 s synthetic video instead of 60 s")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    p.add_argument("--mode", help=argparse.SUPPRESS)
    p.add_argument("--frames", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--max-size", type=int, default=224, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"## Video decoding ({os.cpu_count()} CPUs, ffmpeg {ffmpeg_exe().rsplit('-', 1)[-1]})")
    with tempfile.TemporaryDirectory(prefix="dfd-video-bench-") as d:
        tmp = Path(d)
        synthetic_tables(tmp, 10 if args.quick else 60, args.verdict, args.repeat)
        ffpp_table(args.shared, args.ffpp_files, args.repeat)
        long_video_table(tmp, args.shared)


if __name__ == "__main__":
    main()
