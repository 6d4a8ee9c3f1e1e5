"""Video: time to a verdict and peak memory, the default pipeline against the original design's way.

Generates (with the ffmpeg binary imageio-ffmpeg ships, in a temporary folder that is
deleted afterwards) a 60 s 1920x1080 30 fps H.264 video: a real FaceForensics++ clip
upscaled and looped when the shared data is present (so the face stage finds real
faces), else ffmpeg's ``testsrc2`` pattern. x264's default keyframe interval (250) is
kept, as most real videos have one about that long.

Each pipeline runs in a fresh Python process (imports and model building included in
its wall time), one after the other in the same run:

- **original way**: ffmpeg writes every frame as a JPEG, each JPEG is loaded and
  resized to 224x224, and a ResNet-50 in plain fp32 eager mode classifies every frame
  (batches of 32); the verdict is the mean score.
- **default pipeline**: ``Detector.from_pretrained().detect_video(path)`` (the shipped
  default model, ``shipped``), ``Detector.from_pretrained(DIR)`` for a trained model's
  folder, and ``Detector.from_backbone(B, faces=True).detect_video(path)`` for other
  backbones: probe, 32 uniformly spread frames decoded by ffmpeg (only those, scaled in
  ffmpeg), RetinaFace face crops, ``precision="auto"`` (channels-last, BatchNorm folded,
  bf16 autocast where the CPU has native bf16), the model's aggregator.
- with ``--baseline-src DIR``: the default pipeline run from another source tree (an
  older checkout's ``src/``), in the same rounds, for before/after comparisons;
- with ``--warm``: each default pipeline also calls ``detect_video`` a second time in the
  same process, to time it with the models loaded and the kernels ready.

CPU time (the process's own plus its waited-for children's, ffmpeg included, from
``getrusage``) is reported beside wall time: on a shared machine other load stretches
wall time but barely changes the CPU work a pipeline needs.

Peak memory is measured two ways: the sum of the resident memory of the process and
all its descendants (ffmpeg included), sampled every 20 ms from ``/proc``; and
the Python process's own peak from ``getrusage(RUSAGE_SELF)``, reported by the process
when it ends. With ``--full`` the 1-minute video is also looped (stream
copy, no re-encoding) to 30 minutes and the default pipeline's peak memory compared.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/video.py            # about 5 minutes on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/video.py --full     # adds the 30-minute video
    PYTHONPATH=src .venv/bin/python benchmarks/video.py --skip-original --runs 3 --warm --baseline-src ../old/src
    PYTHONPATH=src .venv/bin/python benchmarks/video.py --skip-original --runs 3 --warm --samplers uniform,keyframes
    PYTHONPATH=src .venv/bin/python benchmarks/video.py --skip-original --runs 3 --backbones shipped,runs/quality/v8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared"))
RETINAFACE = "weights/retinaface_mobilenet0.25.safetensors"


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


# ----------------------------------------------------------------------------- making videos
def make_video(out: Path, *, seconds: int, size: str, shared: Path) -> str:
    """Encode the test video; returns what it was made from."""
    w, h = size.split("x")
    src_dir = shared / "data" / "videos" / "ffpp_c23" / "real"
    sources = sorted(src_dir.glob("*.mp4")) if src_dir.is_dir() else []
    common = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-an", "-t", str(seconds)]
    if sources:
        src = sources[0]
        args = ["-stream_loop", "-1", "-i", str(src), "-vf", f"scale={w}:{h}:flags=bicubic,fps=30", *common]
        made_from = f"{src.name} (FaceForensics++ c23) upscaled to {size}, looped"
    else:
        args = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30", *common]
        made_from = "ffmpeg testsrc2 (no faces: shared data absent)"
    subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", *args, str(out)], check=True)
    return made_from


def loop_video(src: Path, out: Path, *, times: int) -> None:
    """``times`` copies of ``src`` back to back, stream copy (no re-encoding)."""
    subprocess.run(
        [ffmpeg_exe(), "-y", "-loglevel", "error", "-stream_loop", str(times - 1), "-i", str(src),
         "-c", "copy", str(out)],
        check=True,
    )  # fmt: skip


# ----------------------------------------------------------------------------- measuring a process
def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its descendants that run another program (ffmpeg).

    A child between fork and exec still shows the parent's pages as its own; counting
    it would add the whole Python process twice for a moment, so descendants running
    the same executable as ``pid`` are left out.
    """
    try:
        root_exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return 0
    total = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            if p == pid or os.readlink(f"/proc/{p}/exe") != root_exe:
                with open(f"/proc/{p}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) * 1024
                            break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def run_pipeline(
    mode: str, video: Path, backbone: str, *, env: dict[str, str], args: argparse.Namespace, src: str | None = None
) -> dict[str, Any]:
    backbone, _, sampler = backbone.partition("@")
    cmd = [sys.executable, __file__, "--worker", mode, "--video", str(video), "--backbone", backbone]
    if sampler:
        cmd += ["--sampler", sampler]
    if src:
        cmd += ["--src", src]
        env = dict(env, PYTHONPATH=src)
    if args.warm:
        cmd.append("--warm")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(proc.pid))
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline {mode} failed ({proc.returncode}):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result.update(wall=wall, tree_peak=peak)
    return result


# ----------------------------------------------------------------------------- the pipelines (workers)
def worker_original(video: Path) -> dict[str, Any]:
    """Every frame to JPEG, reload each, ResNet-50 fp32 eager on every frame."""
    t0 = time.perf_counter()
    import numpy as np
    import torch
    import torchvision
    from PIL import Image

    model = torchvision.models.resnet50(weights=None)
    model.fc = torch.nn.Linear(model.fc.in_features, 2)
    model.eval()
    t_model = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dfd-frames-") as tmp:
        subprocess.run(
            [ffmpeg_exe(), "-loglevel", "error", "-i", str(video), "-q:v", "2", f"{tmp}/%06d.jpg"], check=True
        )
        t_split = time.perf_counter()
        files = sorted(Path(tmp).glob("*.jpg"))
        disk = sum(f.stat().st_size for f in files)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        scores: list[float] = []
        reload_s = 0.0
        infer_s = 0.0
        for start in range(0, len(files), 32):
            r0 = time.perf_counter()
            batch = np.stack(
                [np.asarray(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR)) for f in files[start : start + 32]]
            )
            x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255.0 - mean) / std
            r1 = time.perf_counter()
            with torch.no_grad():
                scores.extend(torch.softmax(model(x), 1)[:, 0].tolist())
            infer_s += time.perf_counter() - r1
            reload_s += r1 - r0
    end = time.perf_counter()
    return {
        "score": float(np.mean(scores)),
        "frames": len(scores),
        "jpeg_mb": disk / 1e6,
        "phases": {
            "imports+model": t_model - t0,
            "ffmpeg to JPEG": t_split - t_model,
            "JPEG reload+resize": reload_s,
            "inference": infer_s,
        },
        "inside": end - t0,
    }


def worker_default(video: Path, backbone: str, *, src: Path, warm: bool, sampler: str | None) -> dict[str, Any]:
    t0 = time.perf_counter()
    sys.path.insert(0, str(src))
    from deepfakedetect import Detector

    # "shipped": the default model itself (MobileNetV2 on 128 px face crops, every face scored);
    # a folder with a config.json: that trained model; else a torchvision backbone, random weights.
    if backbone == "shipped":
        det = Detector.from_pretrained()
    elif (Path(backbone) / "config.json").is_file():
        det = Detector.from_pretrained(backbone)
    else:
        det = Detector.from_backbone(backbone, faces=True)
    t_model = time.perf_counter()
    v = det.detect_video(video, sampler=sampler, progress=False)
    end = time.perf_counter()
    phases = {"imports+model": t_model - t0, "detect_video": end - t_model}
    if warm:  # the same call again in the now warm process (models loaded, kernels ready)
        again = det.detect_video(video, sampler=sampler, progress=False)
        phases["detect_video, warm"] = time.perf_counter() - end
        assert again.fake_score == v.fake_score
    return {
        "score": v.fake_score,
        "frames": v.num_decoded,
        "faces": sum(len(f.faces) for f in v.frames),
        "no_face_frames": v.frames_without_faces,
        "phases": phases,
        "inside": end - t0,
    }


def worker_torch() -> dict[str, Any]:
    """``import torch`` and nothing else: the memory every pipeline starts from."""
    t0 = time.perf_counter()
    import torch  # noqa: F401

    return {"score": None, "frames": 0, "phases": {"imports+model": time.perf_counter() - t0}}


def worker(args: argparse.Namespace) -> int:
    if args.worker == "original":
        out = worker_original(Path(args.video))
    elif args.worker == "torch":
        out = worker_torch()
    else:
        src = Path(args.src) if args.src else REPO / "src"
        out = worker_default(Path(args.video), args.backbone, src=src, warm=args.warm, sampler=args.sampler)
    # RUSAGE_CHILDREN is not used: a child's peak includes the parent pages it saw
    # between fork and exec, so it reads as large as the Python process.
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # ffmpeg, once waited for
    out["maxrss_self"] = me.ru_maxrss * 1024
    out["cpu_s"] = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
    print(json.dumps(out))
    return 0


# ----------------------------------------------------------------------------- driver
def mb(x: float) -> str:
    return f"{x / 1e6:.0f} MB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--size", default="1920x1080")
    p.add_argument(
        "--backbones",
        default="shipped,resnet50",
        help="models of the default pipeline: 'shipped' (Detector.from_pretrained(), the default model), "
        "a trained model's folder, or torchvision backbones with random weights",
    )
    p.add_argument("--runs", type=int, default=2, help="runs of each default pipeline (median reported)")
    p.add_argument("--skip-original", action="store_true", help="skip the original way (about 150-300 s)")
    p.add_argument(
        "--baseline-src", default=None, help="also run the default pipeline from this other source tree (an older src/)"
    )
    p.add_argument("--warm", action="store_true", help="also time a second detect_video call in the same process")
    p.add_argument("--src", default=None, help=argparse.SUPPRESS)
    p.add_argument("--full", action="store_true", help="also a 30-minute video (peak memory 1 vs 30 min)")
    p.add_argument("--long-minutes", type=int, default=30)
    p.add_argument("--shared", default=str(DEFAULT_SHARED))
    p.add_argument("--keep", default=None, help="write the generated videos to this folder and keep them")
    p.add_argument("--video", default=None, help="use this video instead of generating one")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--backbone", default="resnet50", help=argparse.SUPPRESS)
    p.add_argument(
        "--samplers",
        default="",
        help="comma-separated sampler specs to time, each as its own row (default: the model's own, "
        "uniform 32 frames); e.g. 'uniform,keyframes'",
    )
    p.add_argument("--sampler", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args)

    shared = Path(args.shared)
    env = dict(os.environ, DEEPFAKEDETECT_PROGRESS="0", PYTHONPATH=str(REPO / "src"))
    weights = shared / RETINAFACE
    if weights.is_file():
        env.setdefault("DEEPFAKEDETECT_RETINAFACE_WEIGHTS", str(weights))
    backbones = [b for b in args.backbones.split(",") if b]
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="dfd-video-bench-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        if args.video:
            video = Path(args.video)
            made_from = f"given: {video}"
        else:
            video = tmp / "one_minute_1080p.mp4"
            t = time.perf_counter()
            made_from = make_video(video, seconds=args.seconds, size=args.size, shared=shared)
            print(f"generated {video.name} ({video.stat().st_size / 1e6:.1f} MB) from {made_from} "
                  f"in {time.perf_counter() - t:.0f} s\n")  # fmt: skip

        print(f"## Time to a verdict, {args.seconds} s {args.size} H.264 (each pipeline in a fresh process)\n")
        print(f"{load_line()} at start; video: {made_from}\n")
        results: dict[str, list[dict[str, Any]]] = {}
        samplers = [x for x in args.samplers.split(",") if x] or [""]
        plan = [
            (
                f"default ({'the shipped model' if b == 'shipped' else b}, faces, "
                + (f"sampler {smp})" if smp else "32 frames)"),
                "default",
                f"{b}@{smp}" if smp else b,
            )
            for b in backbones
            for smp in samplers
        ]
        if args.baseline_src:
            plan += [(f"baseline tree ({'the shipped model' if b == 'shipped' else b})", "baseline", b) for b in backbones]
        # Default pipelines before and after the original way, so load drifts hit both.
        order: list[tuple[str, str, str]] = []
        torch_row = "import torch alone (memory baseline)"
        for r in range(args.runs):
            order.append((torch_row, "torch", ""))
            if r == args.runs // 2 and not args.skip_original:
                order.append(("original way (all frames to JPEG, ResNet-50 fp32)", "original", "resnet50"))
            order.extend(plan)
        if args.runs == 0 and not args.skip_original:
            order.append(("original way (all frames to JPEG, ResNet-50 fp32)", "original", "resnet50"))
        for label, mode, backbone in order:
            src = str(Path(args.baseline_src).resolve()) if mode == "baseline" else None
            res = run_pipeline(mode, video, backbone, env=env, args=args, src=src)
            results.setdefault(label, []).append(res)
            score = f"score {res['score']:.4f}, " if res.get("score") is not None else ""
            print(f"- {label}: {res['wall']:.1f} s wall, {res['cpu_s']:.1f} s CPU, peak {mb(res['tree_peak'])}, {score}phases "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in res["phases"].items()), flush=True)  # fmt: skip
        print()
        print("| pipeline | runs | wall, median (s) | CPU time, median (s) | of which imports + model, wall (s) | "
              "peak RSS, process tree | peak RSS, Python process alone | frames scored | "
              "x faster than original (wall) | x less CPU than original | detect_video, warm process (s) |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        orig = results.get("original way (all frames to JPEG, ResNet-50 fp32)")
        for label, rs in results.items():
            wall = statistics.median(r["wall"] for r in rs)
            cpu = statistics.median(r["cpu_s"] for r in rs)
            setup = statistics.median(r["phases"]["imports+model"] for r in rs)
            peak = max(r["tree_peak"] for r in rs)
            self_peak = mb(max(r["maxrss_self"] for r in rs))
            warms = [r["phases"]["detect_video, warm"] for r in rs if "detect_video, warm" in r.get("phases", {})]
            warm = f"{statistics.median(warms):.2f}" if warms else "-"
            ratio = f"{orig[0]['wall'] / wall:.1f}x" if orig and rs[0]["frames"] else "-"
            cpu_ratio = f"{orig[0]['cpu_s'] / cpu:.1f}x" if orig and rs[0]["frames"] else "-"
            print(f"| {label} | {len(rs)} | {wall:.1f} | {cpu:.1f} | {setup:.1f} | {mb(peak)} | {self_peak} | "
                  f"{rs[0]['frames']} | {ratio} | {cpu_ratio} | {warm} |")  # fmt: skip
        base = results.get(torch_row)
        if base:
            torch_peak = max(r["maxrss_self"] for r in base)
            print(f"\nPython process peak over `import torch` alone ({mb(torch_peak)}): "
                  + ", ".join(f"{label} +{mb(max(r['maxrss_self'] for r in rs) - torch_peak)}"
                              for label, rs in results.items() if rs[0]["frames"]))  # fmt: skip
        if orig:
            o = orig[0]
            print(f"\nOriginal way: {o['jpeg_mb']:.0f} MB of JPEG for {o['frames']} frames; phases "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in o["phases"].items()))  # fmt: skip
        print(f"\n{load_line()} at end\n")

        if args.full:
            long_video = tmp / f"{args.long_minutes}_minutes.mp4"
            t = time.perf_counter()
            loop_video(video, long_video, times=max(1, round(args.long_minutes * 60 / args.seconds)))
            print(f"## Peak memory, 1 minute vs {args.long_minutes} minutes (default pipeline, {backbones[0]})\n")
            print(f"looped to {long_video.name} ({long_video.stat().st_size / 1e6:.0f} MB, stream copy) "
                  f"in {time.perf_counter() - t:.0f} s; {load_line()}\n")  # fmt: skip
            print("| video | wall (s) | CPU (s) | peak RSS, process tree | peak RSS, Python process alone | frames scored |")
            print("|---|---|---|---|---|---|")
            peaks = {}
            for name, path in (("1 minute", video), (f"{args.long_minutes} minutes", long_video)):
                res = run_pipeline("default", path, backbones[0], env=env, args=args)
                peaks[name] = res["tree_peak"]
                print(f"| {name} | {res['wall']:.1f} | {res['cpu_s']:.1f} | {mb(res['tree_peak'])} | "
                      f"{mb(res['maxrss_self'])} | {res['frames']} |", flush=True)  # fmt: skip
            a, b = peaks.values()
            print(f"\n{args.long_minutes}-minute peak / 1-minute peak: {b / a:.3f}; {load_line()}\n")
            long_video.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
