"""Image inference speed, how close it runs to this CPU's limit, and what bf16 does to scores.

Prints Markdown tables:

1. **Throughput**: images/s and achieved GFLOP/s for each model and batch size, for
   each way of running it (plain fp32 eager; channels-last; bf16 autocast;
   channels-last + bf16 autocast, which ``precision="auto"`` picks on a CPU with
   native bf16; the same with BatchNorm folded into the convolutions; the same with
   the convolution and linear weights stored in bf16 once, the ``Detector`` default
   on such CPUs (autocast otherwise casts every weight at every call); optionally
   ``torch.compile`` with freezing), with the share of this CPU's fp32 and bf16 matrix
   multiply peak. The peaks are ``torch.mm`` of two 2048x2048 matrices, measured in
   the same rounds as the models (the machines are shared: every round times every
   mode and the peaks back to back, rotating the order, and the table shows medians),
   so each percentage compares numbers taken under the same load. oneDNN's 1x1
   convolution (a GEMM through the library the models run on) is timed as a second
   fp32 peak. On a CPU without native bf16 (no ``avx512_bf16``/``amx_bf16``) bf16 is
   emulated, about 100x slower than fp32: the bf16 modes and peak are then left out
   (``--all-modes`` keeps them) and ``precision="auto"`` is fp32.
2. **End to end**: ``Detector.score_arrays`` on 250x250 uint8 images (resize, crop,
   normalise, model, softmax) against the bare model on a ready tensor, run the same
   way, so the preprocessing overhead is visible.
3. **bf16 vs fp32 scores** on real face images (``data/faces/lfw_faceswap/test``, when
   the shared folder is present): max and mean absolute difference of ``fake_score``,
   labels flipped at threshold 0.5, and AUC under each. Random heads would give scores
   all near 0.5, so each backbone gets a logistic-regression head fitted (in fp32) on
   features of training images first; MobileNetV2 starts from its ImageNet weights
   (``weights/mobilenet_v2_imagenet1k_v1.safetensors``), ResNets from random ones (no
   ImageNet ResNet weights are available offline). ``--model DIR`` measures a trained
   detector folder instead.

4. **Many files**: files/s of ``detect_image`` called per file, ``detect_image`` on the
   whole list (batches, decoding in line), and ``detect_many`` (batches, decoding
   threads a bounded window ahead of the model) on real 250x250 JPEG files.

FLOPs are counted once per model with ``torch.utils.flop_counter.FlopCounterMode``
(2 x multiply-adds of one 224x224 forward).

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/inference.py            # about 4 minutes on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/inference.py --compile  # adds torch.compile (slow start)
    PYTHONPATH=src .venv/bin/python benchmarks/inference.py --models resnet50 --batches 32 --runs 7
    PYTHONPATH=src .venv/bin/python benchmarks/inference.py --skip-scores --device cuda
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from deepfakedetect import Detector  # noqa: E402
from deepfakedetect.models.precision import (  # noqa: E402
    InferenceCopy,
    cast_matmul_weights,
    cpu_has_fast_bf16,
    fold_batchnorm,
)

DEFAULT_SHARED = Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared"))
MOBILENET_WEIGHTS = "weights/mobilenet_v2_imagenet1k_v1.safetensors"


# ----------------------------------------------------------------------------- helpers
def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


def hardware_line(device: torch.device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (
        f"{cpu}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"native bf16: {cpu_has_fast_bf16()}{gpu}"
    )


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# Wall-clock time by default; ``--clock cpu`` switches to the process's CPU time with one
# torch thread, which other processes on a shared machine barely disturb.
CLOCK: Callable[[], float] = time.perf_counter


def time_call(fn: Callable[[], object], device: torch.device, min_time: float) -> float:
    """Seconds per call: calls ``fn`` until ``min_time`` has passed (at least once)."""
    calls = 0
    sync(device)
    start = CLOCK()
    while True:
        fn()
        calls += 1
        sync(device)
        elapsed = CLOCK() - start
        if elapsed >= min_time:
            return elapsed / calls


def interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device, *, runs: int, min_time: float, warmup: int = 2
) -> dict[str, float]:
    """Median seconds per call of each function, timed in rounds that rotate their order."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(runs):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            times[n].append(time_call(fns[n], device, min_time))
    return {n: statistics.median(v) for n, v in times.items()}


def count_flops(model: nn.Module, size: int = 224) -> float:
    """FLOPs (2 x multiply-adds) of one forward of one image."""
    from torch.utils.flop_counter import FlopCounterMode

    model = copy.deepcopy(model).float().eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def build(name: str, *, weights: str | None = None) -> nn.Module:
    from deepfakedetect.models.backbones import build_model

    return build_model(name, num_outputs=2, weights=weights).eval()


class Runner:
    """One way of running a model: layout, precision, folding, compilation."""

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        *,
        channels_last: bool,
        dtype: torch.dtype | None,
        fold: bool = False,
        compile: bool = False,
        cast: bool = False,
    ) -> None:
        self.compile_s = 0.0
        self.device = device
        self.channels_last = channels_last
        self.dtype = dtype
        self.compiled = compile
        if compile:  # what Detector.compile() runs: folded, channels-last, inductor with frozen weights
            self.model = InferenceCopy().get(model.eval(), device, compiled=True)
            return
        m = fold_batchnorm(model) if fold else copy.deepcopy(model)
        m = m.to(device).eval()
        if channels_last:
            m = m.to(memory_format=torch.channels_last)
        if cast and dtype is not None:  # conv/linear weights stored in the autocast dtype, as Detector does
            m = cast_matmul_weights(m, dtype)
        self.model = m

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x.contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(
            self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        ):
            return self.model(x)

    def warm(self, x: torch.Tensor) -> None:
        start = time.perf_counter()
        self(x)
        sync(self.device)
        self.compile_s = time.perf_counter() - start


def has_fast_half(device: torch.device) -> bool:
    """Whether reduced precision is native here (elsewhere bf16 is emulated, 100x slower than fp32)."""
    return device.type == "cuda" or cpu_has_fast_bf16()


def modes(device: torch.device, *, with_compile: bool, all_modes: bool) -> dict[str, dict[str, object]]:
    half = torch.bfloat16 if device.type == "cpu" else (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    native = has_fast_half(device)
    auto = half if native else None  # what precision="auto" picks here
    h = _short(half)
    out: dict[str, dict[str, object]] = {
        "fp32 eager": {"channels_last": False, "dtype": None},
        "channels-last": {"channels_last": True, "dtype": None},
        "channels-last + BN folded" + ("" if native else " (Detector default)"): {
            "channels_last": True, "dtype": None, "fold": True,
        },
    }
    if native or all_modes:
        out[f"{h} autocast"] = {"channels_last": False, "dtype": half}
        out[f"channels-last + {h}"] = {"channels_last": True, "dtype": half}
        out[f"channels-last + {h} + BN folded"] = {"channels_last": True, "dtype": half, "fold": True}
        out[f"channels-last + {h} + BN folded + {h} weights" + (" (Detector default)" if native else "")] = {
            "channels_last": True, "dtype": half, "fold": True, "cast": True,
        }
    if with_compile:
        label = "Detector.compile(): torch.compile, frozen" + (f" + {h}" if auto is not None else "")
        out[label] = {"channels_last": True, "dtype": auto, "compile": True}
    return out


def _short(dtype: torch.dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype))


def peak_fns(device: torch.device, *, half: bool, n: int = 2048, c: int = 1024, hw: int = 32) -> tuple[dict[str, Callable[[], object]], dict[str, float]]:
    """Dense-arithmetic peaks to compare against: ``torch.mm`` (MKL or cuBLAS) and a 1x1
    convolution (a GEMM through oneDNN on CPUs, the library convolutions use), in fp32
    and, where the hardware has it natively, bf16. Returns the callables and their FLOPs."""
    fns: dict[str, Callable[[], object]] = {}
    flops: dict[str, float] = {}
    dtypes = [("fp32", torch.float32)] + ([("bf16", torch.bfloat16)] if half else [])
    for tag, dt in dtypes:
        a, b = torch.randn(n, n, device=device, dtype=dt), torch.randn(n, n, device=device, dtype=dt)
        fns[f"mm {tag}"] = lambda a=a, b=b: torch.mm(a, b)
        flops[f"mm {tag}"] = 2.0 * n**3
        x = torch.randn(1, c, hw, hw, device=device, dtype=dt).contiguous(memory_format=torch.channels_last)
        w = torch.randn(c, c, 1, 1, device=device, dtype=dt).contiguous(memory_format=torch.channels_last)
        fns[f"conv1x1 {tag}"] = lambda x=x, w=w: torch.nn.functional.conv2d(x, w)
        flops[f"conv1x1 {tag}"] = 2.0 * c * c * hw * hw
    return fns, flops


# ----------------------------------------------------------------------------- 1. throughput
def throughput(args: argparse.Namespace, device: torch.device) -> None:
    half = has_fast_half(device)
    peaks, peak_flops = peak_fns(device, half=half)
    ways = modes(device, with_compile=args.compile, all_modes=args.all_modes)
    print("## 1. Throughput (images/s; GFLOP/s; share of the dense-arithmetic peaks measured in the same rounds)\n")
    print(f"{hardware_line(device)}; {load_line()} at start; median of {args.runs} rounds, "
          f"each at least {args.min_time:g} s per mode\n")  # fmt: skip
    if not half and not args.all_modes:
        print("No native bf16 here: bf16 is emulated (about 100x slower than fp32), so `precision=\"auto\"` "
              "runs fp32 and the bf16 modes and peaks are left out (`--all-modes` adds the modes).\n")  # fmt: skip
    print("| model | batch | mode | images/s | x fp32 eager | GFLOP/s | % of fp32 peak | % of the best peak |")
    print("|---|---|---|---|---|---|---|---|")
    compile_notes = []
    record: dict[str, object] = {
        "cpu": hardware_line(device), "load_start": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"),
        "clock": args.clock, "runs": args.runs, "rows": [],
    }
    for name in args.models:
        base = build(name)
        flops = count_flops(base)
        runners = {label: Runner(base, device, **kw) for label, kw in ways.items()}  # type: ignore[arg-type]
        for batch in args.batches:
            x = torch.randn(batch, 3, 224, 224)
            inputs = {label: r.prepare(x) for label, r in runners.items()}
            for label, r in runners.items():
                if r.compiled:  # static shapes: each batch size compiles once
                    r.warm(inputs[label])
                    compile_notes.append(f"{name}, batch {batch}: first compiled call {r.compile_s:.1f} s")
            fns: dict[str, Callable[[], object]] = {
                label: (lambda r=r, t=inputs[label]: r(t)) for label, r in runners.items()
            }
            fns.update(peaks)
            med = interleaved(fns, device, runs=args.runs, min_time=args.min_time)
            rates = {k: peak_flops[k] / med[k] / 1e9 for k in peaks}
            peak32 = max(v for k, v in rates.items() if k.endswith("fp32"))
            best = max(rates.values())
            ref = batch / med["fp32 eager"]
            for label in runners:
                ips = batch / med[label]
                gflops = ips * flops / 1e9
                print(f"| {name} | {batch} | {label} | {ips:.1f} | {ips / ref:.2f} | {gflops:.0f} | "
                      f"{100 * gflops / peak32:.0f}% | {100 * gflops / best:.0f}% |")  # fmt: skip
                record["rows"].append(  # type: ignore[attr-defined]
                    {"model": name, "batch": batch, "mode": label, "images_per_s": ips, "gflops": gflops,
                     "peaks_gflops": rates}
                )
            shown = ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
            print(f"| (peaks, GFLOP/s) | | {shown} | | | | | |")
            sys.stdout.flush()
        print(f"|  |  | *{name}: {flops / 1e9:.2f} GFLOP per image* | | | | | |")
    print(f"\n{load_line()} at end")
    if args.json:
        import json

        record["load_end"] = os.getloadavg()
        record["compile_notes"] = compile_notes
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        print(f"- throughput written to {args.json} (plot it with benchmarks/plot_throughput.py)")
    for note in compile_notes:
        print(f"- {note}")
    print()


# ----------------------------------------------------------------------------- 2. end to end
def end_to_end(args: argparse.Namespace, device: torch.device) -> None:
    print("## 2. End to end: Detector.score_arrays (preprocessing included) vs the bare model\n")
    print(f"{load_line()}; batch {args.e2e_batch}, {args.e2e_batch} images of 250x250 uint8 per call; "
          f"median of {args.runs} rounds\n")  # fmt: skip
    print("| model | preprocess only (images/s) | bare model, same precision (images/s) | "
          "Detector.score_arrays (images/s) | preprocessing share of the time |")  # fmt: skip
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (250, 250, 3), dtype=np.uint8) for _ in range(args.e2e_batch)]
    for name in args.models:
        det = Detector.from_backbone(name, device=device)
        x = det.preprocess(images).to(device).contiguous(memory_format=torch.channels_last)
        dtype = det._autocast_dtype
        net = det._inference.get(det.model, device)  # the very network score_arrays runs

        def bare(det: Detector = det, net: nn.Module = net, x: torch.Tensor = x, dtype: torch.dtype | None = dtype) -> object:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                return det.fake_probability(net(x)).cpu()

        med = interleaved(
            {
                "pre": lambda det=det: det.preprocess(images),
                "bare": bare,
                "e2e": lambda det=det: det.score_arrays(images, batch_size=args.e2e_batch),
            },
            device,
            runs=args.runs,
            min_time=args.min_time,
        )
        n = args.e2e_batch
        share = 1.0 - med["bare"] / med["e2e"]
        print(f"| {name} | {n / med['pre']:.0f} | {n / med['bare']:.1f} | {n / med['e2e']:.1f} | {100 * share:.0f}% |")
        sys.stdout.flush()
    print()


# ----------------------------------------------------------------------------- 3. what the fast ways do to scores
def face_images(shared: Path, split: str, per_class: int) -> tuple[list[np.ndarray], np.ndarray]:
    from deepfakedetect.io.images import load_image

    root = shared / "data" / "faces" / "lfw_faceswap" / split
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, cls in ((0, "real"), (1, "fake")):
        for p in sorted((root / cls).glob("*.jpg"))[:per_class]:
            images.append(load_image(p))
            labels.append(label)
    return images, np.array(labels)


def _fit_logistic(z: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    w = torch.zeros(z.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach()


def fit_head(det: Detector, images: list[np.ndarray], labels: np.ndarray) -> float:
    """Replace the detector's head with a logistic regression fitted on fp32 features.

    The L2 penalty is chosen by log loss on a held-out fifth of the images (a weakly
    penalised head on 1,000+ features separates a few hundred images perfectly, with
    huge weights that no trained detector has); returns the chosen penalty.
    """
    from deepfakedetect.models.backbones import last_linear

    _, _, head = _last_linear(det.model)
    feats: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda m, i, o: feats.append(i[0].detach().float().cpu()))
    fp32 = Detector(det.model, det.config, device="cpu", precision="fp32")
    fp32.score_arrays(images, batch_size=32)
    hook.remove()
    f = torch.cat(feats)
    mu, sd = f.mean(0), f.std(0) + 1e-6
    z = (f - mu) / sd
    y = torch.from_numpy(labels).float()
    held = torch.from_numpy(np.random.default_rng(0).permutation(len(y)) % 5 == 0)
    best = (math.inf, 1.0)
    for l2 in (1e-3, 1e-2, 1e-1, 1.0):
        w, b = _fit_logistic(z[~held], y[~held], l2)
        loss = float(nn.functional.binary_cross_entropy_with_logits(z[held] @ w + b, y[held]))
        best = min(best, (loss, l2))
    w, b = _fit_logistic(z, y, best[1])
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.weight[det.config.fake_index] = w / sd
        head.bias[det.config.fake_index] = b - (w * mu / sd).sum()
    return best[1]


def score_differences(args: argparse.Namespace, device: torch.device) -> None:
    from deepfakedetect._metrics import roc_auc

    shared = Path(args.shared)
    if not (shared / "data" / "faces" / "lfw_faceswap").is_dir():
        print(f"## 3. Score differences: skipped (no shared data at {shared})\n")
        return
    print("## 3. What BN folding and bf16 do to scores, on real face images (lfw_faceswap test split)\n")
    test, y = face_images(shared, "test", args.score_images // 2)
    cases: list[tuple[str, Detector]] = []
    for folder in args.model or []:
        cases.append((f"trained model {folder}", Detector.from_pretrained(folder, precision="fp32")))
    if not args.model or args.also_fitted:
        train, ytr = face_images(shared, "train", args.fit_images // 2)
        for name in args.score_models:
            weights = str(shared / MOBILENET_WEIGHTS) if name == "mobilenet_v2" else None
            det = Detector.from_backbone(name, weights=weights, device="cpu", precision="fp32")
            l2 = fit_head(det, train, ytr)
            cases.append((f"{name} ({'ImageNet' if weights else 'random'} backbone + fitted head, L2 {l2:g})", det))
    print(f"{load_line()}; {len(test)} images ({int((y == 0).sum())} real, {int((y == 1).sum())} fake); "
          "reference: the unfolded network in fp32, eager\n")  # fmt: skip
    native = has_fast_half(device)
    if not native and not args.all_modes:
        print("No native bf16 here, so `precision=\"auto\"` is fp32: only BN folding changes scores "
              "(`--all-modes` adds emulated bf16, slowly).\n")  # fmt: skip
    print("| model | way | max abs diff | mean abs diff | labels flipped at 0.5 | AUC | scores in (0.1, 0.9) |")
    print("|---|---|---|---|---|---|---|")
    for label, det in cases:
        det = Detector(det.model, det.config, device=device, precision="fp32")
        with torch.inference_mode():
            ref = np.concatenate([
                det.fake_probability(det.model(det.preprocess(test[i : i + 32]).to(device))).cpu().double().numpy()
                for i in range(0, len(test), 32)
            ])  # fmt: skip
        print(f"| {label} | fp32, unfolded | 0 | 0 | 0 | {roc_auc(y, ref):.4f} | {int(((ref > 0.1) & (ref < 0.9)).sum())} |")
        variants = {"Detector, fp32 (BN folded)": "fp32"}
        if native or args.all_modes:
            variants["Detector, bf16 autocast (BN folded; `auto` where bf16 is native)"] = "bf16"
        for vname, precision in variants.items():
            s = Detector(det.model, det.config, device=device, precision=precision).score_arrays(test, batch_size=32)
            d = np.abs(s - ref)
            flips = int(((s >= 0.5) != (ref >= 0.5)).sum())
            print(f"| {label} | {vname} | {d.max():.2e} | {d.mean():.2e} | {flips} of {len(ref)} | "
                  f"{roc_auc(y, s):.4f} | |")  # fmt: skip
        sys.stdout.flush()
    print()


# ----------------------------------------------------------------------------- 4. many files
def many_files(args: argparse.Namespace, device: torch.device) -> None:
    """detect_many (decoding threads, bounded prefetch) against scoring files one call at a time."""
    from deepfakedetect.batch.many import detect_many

    shared = Path(args.shared)
    src = shared / "data" / "faces" / "lfw_faceswap" / "test"
    files = sorted(src.glob("*/*.jpg"))[: args.many_files] if src.is_dir() else []
    made = f"{len(files)} JPEG files of lfw_faceswap/test (250x250)"
    tmp = None
    if not files:
        import tempfile

        from PIL import Image

        tmp = tempfile.TemporaryDirectory(prefix="dfd-many-")
        rng = np.random.default_rng(0)
        for i in range(args.many_files):
            f = Path(tmp.name) / f"{i:05d}.jpg"
            Image.fromarray(rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)).save(f, quality=90)
            files.append(f)
        made = f"{len(files)} generated 250x250 JPEG files"
    if files and args.many_size:
        import tempfile

        from PIL import Image

        tmp = tempfile.TemporaryDirectory(prefix="dfd-many-")
        w, h = (int(v) for v in args.many_size.split("x"))
        big = []
        for f in files:
            out = Path(tmp.name) / f.name
            with Image.open(f) as im:
                im.convert("RGB").resize((w, h), Image.BICUBIC).save(out, quality=90)
            big.append(out)
        files = big
        made = f"{len(files)} lfw_faceswap/test faces upscaled to {w}x{h} JPEG"
    paths = [str(f) for f in files]
    name = args.many_model
    det = Detector.from_backbone(name, device=device)
    print(f"## 4. Many files: {made}, {name} (random weights), whole images\n")
    print(f"{load_line()}; wall-clock, {torch.get_num_threads()} torch threads, decoding threads "
          f"min(4, CPUs); median of {args.runs} rounds, in rotating order\n")  # fmt: skip

    def one_by_one() -> object:
        return [det.detect_image(p) for p in paths]

    def batched() -> object:
        return det.detect_image(paths, batch_size=32)

    def many() -> object:
        return list(detect_many(det, paths, batch_size=32, progress=False))

    # Always wall-clock: what detect_many adds is overlap of decoding with compute,
    # which CPU time cannot show.
    global CLOCK
    clock, CLOCK = CLOCK, time.perf_counter
    try:
        med = interleaved(
            {"one by one": one_by_one, "batched": batched, "many": many}, device, runs=args.runs, min_time=0.0, warmup=1
        )
    finally:
        CLOCK = clock
    n = len(paths)
    print("| way | files/s | x one by one |")
    print("|---|---|---|")
    for label, key in (
        ("`detect_image(path)` per file (batch 1, decode in line)", "one by one"),
        ("`detect_image(paths, batch_size=32)` (batches, decode in line)", "batched"),
        ("`detect_many(paths)` (batches, decoding threads ahead of the model)", "many"),
    ):
        print(f"| {label} | {n / med[key]:.1f} | {med['one by one'] / med[key]:.2f}x |")
    print()
    if tmp is not None:
        tmp.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="resnet18,resnet50,mobilenet_v2", help="comma-separated torchvision names")
    p.add_argument("--batches", default="1,8,32", help="comma-separated batch sizes")
    p.add_argument("--runs", type=int, default=5, help="timed rounds per measurement (median reported)")
    p.add_argument("--min-time", type=float, default=0.3, help="seconds per timed measurement at least")
    p.add_argument("--compile", action="store_true", help="add Detector.compile()'s way (8-20 s start-up per model and batch on 2 cores)")
    p.add_argument("--all-modes", action="store_true", help="also the bf16 modes on CPUs without native bf16 (very slow)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (the GPU path is untested here)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: wall-clock time with torch's threads (default); cpu: CPU time of this process "
        "with one torch thread (per-core numbers that other load on a shared machine barely "
        "changes; the matmul peaks are then one core's too)",
    )
    p.add_argument("--e2e-batch", type=int, default=32)
    p.add_argument("--shared", default=str(DEFAULT_SHARED), help="the shared data folder")
    p.add_argument("--score-models", default="mobilenet_v2,resnet50", help="backbones for the score comparison")
    p.add_argument("--score-images", type=int, default=600, help="test images for the score comparison")
    p.add_argument("--fit-images", type=int, default=400, help="training images to fit the heads on")
    p.add_argument("--model", action="append", help="a trained detector folder for the score comparison (repeatable)")
    p.add_argument("--also-fitted", action="store_true", help="with --model, also the fitted-head backbones")
    p.add_argument("--json", default=None, help="also write the throughput table to this JSON file (for plot_throughput.py)")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--skip-e2e", action="store_true")
    p.add_argument("--skip-scores", action="store_true")
    p.add_argument("--skip-many", action="store_true")
    p.add_argument("--many-files", type=int, default=256, help="files for the many-files comparison")
    p.add_argument("--many-model", default="mobilenet_v2", help="backbone for the many-files comparison")
    p.add_argument("--many-size", default=None, help="upscale the files to WxH first (e.g. 1920x1080: costlier decoding)")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.batches = [int(b) for b in args.batches.split(",") if b]
    args.score_models = [m for m in args.score_models.split(",") if m]
    global CLOCK
    if args.clock == "cpu":
        if args.device != "cpu":
            p.error("--clock cpu measures CPU time; use it with --device cpu")
        CLOCK = time.process_time
        torch.set_num_threads(1)
    elif args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"clock: {'CPU time of this process, 1 torch thread (per-core figures)' if args.clock == 'cpu' else 'wall'}\n")
    torch.manual_seed(0)
    start = time.perf_counter()
    if not args.skip_throughput:
        throughput(args, device)
    if not args.skip_e2e:
        end_to_end(args, device)
    if not args.skip_scores:
        score_differences(args, device)
    if not args.skip_many:
        many_files(args, device)
    print(f"total {time.perf_counter() - start:.0f} s; {load_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
