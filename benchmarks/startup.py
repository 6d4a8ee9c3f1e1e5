"""Start-up: how long a fresh process takes to import, load the model and score one photo.

Prints one Markdown table. Each command runs in a fresh Python process, in rounds that
rotate their order, and the table gives medians of wall time, CPU time (the process's
own user + system time, from ``wait4``) and peak resident memory, with ratios against
``python -c "import torch"`` measured in the same rounds: the start-up a program that
uses torch cannot avoid. A last column says whether the command imported torchvision
and torch's compiler stack (``torch._dynamo``), read from ``python -X importtime``.

The commands run with the package on ``PYTHONPATH`` and a warm bytecode cache in a
temporary folder (one untimed run of each first), as an installed package would have;
``PYTHONDONTWRITEBYTECODE`` is cleared for them.

Usage::

    PYTHONPATH=src python benchmarks/startup.py               # 5 rounds, about 1-2 minutes on 2 cores
    PYTHONPATH=src python benchmarks/startup.py --runs 9 --image face.jpg
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SHARED = Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared"))
DEFAULT_FACE = "data/faces/lfw_faceswap/test/real/real_0.jpg"
HEAVY = ("torchvision", "torch._dynamo")


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
    return f"{cpu}, {os.cpu_count()} CPUs{flags}, Python {platform.python_version()}"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def run_once(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one run of ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def heavy_imports(cmd: list[str], env: dict[str, str]) -> str:
    """Which of HEAVY a command imports, and their cumulative import time under -X importtime."""
    done = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]], env=env, capture_output=True, text=True, cwd=REPO, check=True
    )
    seen = {}
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)$", line)
        if m and m.group(2) in HEAVY:
            seen[m.group(2)] = int(m.group(1)) / 1e6
    if not seen:
        return "neither"
    return ", ".join(f"{name} ({seen[name]:.2f} s)" for name in HEAVY if name in seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--image", default=None, help=f"the photo to score (default: shared {DEFAULT_FACE})")
    ap.add_argument(
        "--baseline-src",
        default=None,
        help="also time `deepfakedetect detect` from this other source tree (e.g. an older checkout's src/) "
        "in the same rounds",
    )
    args = ap.parse_args()

    image = Path(args.image) if args.image else DEFAULT_SHARED / DEFAULT_FACE
    note = ""
    tmp = tempfile.TemporaryDirectory(prefix="dfd-startup-")
    if not image.is_file():
        import numpy as np
        from PIL import Image

        image = Path(tmp.name) / "noise.jpg"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (250, 250, 3), np.uint8)).save(image, quality=90)
        note = " (no shared data: a generated 250x250 image without a face)"

    py = sys.executable
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tmp.name) / "pycache")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["DEEPFAKEDETECT_PROGRESS"] = "0"
    commands = {
        "python -c pass": [py, "-c", "pass"],
        'python -c "import torch"': [py, "-c", "import torch"],
        'python -c "import torch, torchvision"': [py, "-c", "import torch, torchvision"],
        "deepfakedetect --help": [py, "-m", "deepfakedetect", "--help"],
        "deepfakedetect detect face.jpg": [py, "-m", "deepfakedetect", "detect", str(image)],
    }
    if args.baseline_src:
        base_env = dict(env)
        base_env["PYTHONPATH"] = str(Path(args.baseline_src).resolve())
        base_cmd = [py, "-m", "deepfakedetect", "detect", str(image)]
        commands["deepfakedetect detect face.jpg, baseline tree"] = base_cmd
    envs = {n: (base_env if n.endswith("baseline tree") else env) for n in commands}
    print(f"# Start-up, {time.strftime('%Y-%m-%d %H:%M')}\n")
    print(f"- CPU: {cpu_line()}")
    print(f"- photo: {image}{note}")
    if args.baseline_src:
        print(f"- baseline tree: {Path(args.baseline_src).resolve()}")
    print(f"- before: {load_line()}")
    for n, cmd in commands.items():  # warm the bytecode and page caches
        run_once(cmd, envs[n])
    names = list(commands)
    walls: dict[str, list[float]] = {n: [] for n in names}
    cpus: dict[str, list[float]] = {n: [] for n in names}
    rss: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.runs):
        for n in names[r % len(names) :] + names[: r % len(names)]:
            w, c, m = run_once(commands[n], envs[n])
            walls[n].append(w)
            cpus[n].append(c)
            rss[n].append(m)
    heavy = {n: heavy_imports(commands[n], envs[n]) for n in names if "deepfakedetect" in n}
    print(f"- after: {load_line()}; {args.runs} rounds, medians\n")
    ref = 'python -c "import torch"'
    w0, c0 = statistics.median(walls[ref]), statistics.median(cpus[ref])
    print("| command | wall (s) | wall / import torch | CPU (s) | CPU / import torch | peak memory (MB) | imports torchvision, torch._dynamo |")
    print("|---|---|---|---|---|---|---|")
    for n in names:
        w, c, m = statistics.median(walls[n]), statistics.median(cpus[n]), statistics.median(rss[n])
        print(f"| `{n}` | {w:.2f} | {w / w0:.2f}x | {c:.2f} | {c / c0:.2f}x | {m:.0f} | {heavy.get(n, '')} |")
    tmp.cleanup()


if __name__ == "__main__":
    main()
