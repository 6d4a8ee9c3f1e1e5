"""Where the time of a bf16 forward pass goes, layer kind by layer kind, against oneDNN's peak.

``benchmarks/inference.py`` gives the whole-network share of the bf16 peak (ResNet-50
batch 32 on an AMX Xeon: well under the 60% the performance issue asks for). This script
shows what stops it: it runs the network the way ``Detector`` does by default on a CPU
with native bf16 (BatchNorm folded, channels-last, conv/linear weights stored in bf16,
bf16 autocast), times every convolution separately with forward hooks, and groups them
by kind (the 7x7 stem on 3 input channels, 1x1, 3x3, strided, depthwise). Everything
that is not a convolution (ReLU, residual additions, pooling, the head, the casts of
activations) is the remainder of the whole forward pass. In the same rounds it times
oneDNN's bf16 1x1 convolution at three sizes and ``torch.mm`` 2048 in bf16, so each
layer kind's GFLOP/s can be read against what this CPU reaches under the same load.

Usage::

    PYTHONPATH=src python benchmarks/bf16_layers.py                    # ResNet-50, batch 32
    PYTHONPATH=src python benchmarks/bf16_layers.py --model mobilenet_v2 --size 128 --batch 8
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from deepfakedetect.models.backbones import build_model  # noqa: E402
from deepfakedetect.models.precision import InferenceCopy, cpu_has_fast_bf16  # noqa: E402


def cpu_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        text = Path("/proc/cpuinfo").read_text()
        cpu = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), cpu)
        found = [f for f in ("avx512_bf16", "amx_bf16") if f" {f}" in text]
        cpu += f", {' and '.join(found) if found else 'no native bf16'}"
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def kind(conv: nn.Conv2d) -> str:
    kh, kw = conv.kernel_size
    if conv.groups > 1 and conv.groups == conv.in_channels:
        return f"depthwise {kh}x{kw}"
    if conv.in_channels <= 4:
        return f"stem {kh}x{kw} on {conv.in_channels} channels"
    stride = " strided" if max(conv.stride) > 1 else ""
    return f"{kh}x{kw}{stride}"


def timed(fn: Callable[[], object], min_time: float = 0.3) -> float:
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return elapsed / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"# bf16 forward pass by layer kind: {args.model}, batch {args.batch}, {args.size}x{args.size}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}\n")
    print(f"- CPU: {cpu_line()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print(f"- before: {load_line()}")
    if not cpu_has_fast_bf16():
        print("- this CPU has no native bf16: bf16 is emulated here and these figures say nothing about AMX")

    torch.manual_seed(0)
    net = InferenceCopy().get(build_model(args.model, num_outputs=2).eval(), torch.device("cpu"), dtype=torch.bfloat16)
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    x = torch.randn(args.batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)

    flops: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    spent: dict[str, float] = defaultdict(float)
    started: dict[int, float] = {}
    measuring = {"on": False, "flops": True}

    def pre(module: nn.Module, _inp: object) -> None:
        if measuring["on"]:
            started[id(module)] = time.perf_counter()

    def post(module: nn.Module, _inp: object, out: torch.Tensor) -> None:
        conv = module  # type: nn.Conv2d
        k = kind(conv)  # type: ignore[arg-type]
        if measuring["flops"]:
            kh, kw = conv.kernel_size  # type: ignore[misc]
            macs = out.numel() * (conv.in_channels // conv.groups) * kh * kw  # type: ignore[operator]
            flops[k] += 2.0 * macs
            count[k] += 1
        if measuring["on"]:
            spent[k] += time.perf_counter() - started.pop(id(module))

    hooks = [c.register_forward_pre_hook(pre) for c in convs] + [c.register_forward_hook(post) for c in convs]

    def forward() -> object:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return net(x)

    forward()  # warm-up and FLOP count
    measuring["flops"] = False
    peaks: dict[str, tuple[Callable[[], object], float]] = {}
    for c, hw in ((256, 56), (1024, 14), (2048, 7)):
        a = torch.randn(args.batch, c, hw, hw, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 1, 1, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last)
        peaks[f"oneDNN 1x1 conv {c} ch, {hw}x{hw}"] = (
            lambda a=a, w=w: torch.nn.functional.conv2d(a, w), 2.0 * args.batch * c * c * hw * hw
        )
    m1, m2 = torch.randn(2048, 2048, dtype=torch.bfloat16), torch.randn(2048, 2048, dtype=torch.bfloat16)
    peaks["torch.mm 2048"] = (lambda: torch.mm(m1, m2), 2.0 * 2048**3)

    whole: list[float] = []
    per_kind: dict[str, list[float]] = defaultdict(list)
    peak_rates: dict[str, list[float]] = defaultdict(list)
    for _ in range(args.runs):
        spent.clear()
        measuring["on"] = True
        start = time.perf_counter()
        forward()
        whole.append(time.perf_counter() - start)
        measuring["on"] = False
        for k, t in spent.items():
            per_kind[k].append(t)
        for name, (fn, f) in peaks.items():
            peak_rates[name].append(f / timed(fn) / 1e9)
    for h in hooks:
        h.remove()
    plain = statistics.median(timed(forward) for _ in range(3))
    print(f"- after: {load_line()}; medians of {args.runs} rounds\n")

    best = max(statistics.median(v) for k, v in peak_rates.items() if k.startswith("oneDNN"))
    total_flops = sum(flops.values())
    t_all = statistics.median(whole)
    print("| layer kind | layers | GFLOP per batch | ms per batch | share of the time | GFLOP/s | % of oneDNN's best 1x1 |")
    print("|---|---|---|---|---|---|---|")
    t_convs = 0.0
    for k in sorted(flops, key=lambda k: -statistics.median(per_kind[k])):
        t = statistics.median(per_kind[k])
        t_convs += t
        rate = flops[k] / t / 1e9
        print(f"| {k} | {count[k]} | {flops[k] / 1e9:.2f} | {1000 * t:.1f} | {100 * t / t_all:.0f}% | {rate:.0f} | "
              f"{100 * rate / best:.0f}% |")
    rest = max(0.0, t_all - t_convs)
    print(f"| everything else (ReLU, additions, pooling, head, casts) | | 0 | {1000 * rest:.1f} | {100 * rest / t_all:.0f}% | | |")
    rate = total_flops / t_all / 1e9
    print(f"| **whole forward pass** (hooks on) | {len(convs)} convs | {total_flops / 1e9:.2f} | {1000 * t_all:.1f} | 100% | "
          f"{rate:.0f} | {100 * rate / best:.0f}% |")
    rate = total_flops / plain / 1e9
    print(f"| whole forward pass without hooks | | | {1000 * plain:.1f} | | {rate:.0f} | {100 * rate / best:.0f}% |")
    print("\n| peak measured in the same rounds | GFLOP/s |")
    print("|---|---|")
    for name, v in peak_rates.items():
        print(f"| {name} | {statistics.median(v):.0f} |")
    ideal = total_flops / (best * 1e9)
    print(f"\nIf every convolution ran at oneDNN's best 1x1 rate and nothing else took time, a batch would take "
          f"{1000 * ideal:.1f} ms ({100 * ideal / plain:.0f}% of what it takes).")


if __name__ == "__main__":
    main()
