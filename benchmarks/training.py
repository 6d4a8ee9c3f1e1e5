"""Training speed: the Trainer (preprocessing cache, channels-last, bf16) against a plain loop.

For each backbone, on the same images in the same run, prints images/s of:

- **plain loop**: every step decodes each JPEG with Pillow, resizes it to the input
  size, augments it (the Trainer's own default augmentation, so both do the same
  work), normalises, and runs forward + backward + AdamW in fp32 with the default
  memory format. Timed for two epochs, one before and one after the Trainer's run,
  so load drifts on this shared machine hit both; the median is reported.
- **Trainer**: ``Trainer(backbone, weights=None, cache="memory").fit(...)``: its
  first epoch (preprocessing: decode + resize into the in-memory cache, then training
  from it) and later epochs (training from the cache: no JPEG decoding), with
  ``precision="auto"`` (channels-last + bf16 autocast on CPUs with native bf16).

With ``--faces`` both train on face crops, as the default model does: the plain loop
finds and crops each image's largest face (RetinaFace) at every step, the Trainer once,
into its cache.

Each figure is given per wall-clock second and per CPU second (``time.process_time``):
on a shared machine other load stretches the first but barely the second.

Training images come from ``data/faces/lfw_faceswap/train`` (``--per-class`` of each
class, symlinked into a temporary folder; a few ``val`` images for the Trainer's
per-epoch validation, which is timed apart and not counted), or are generated when
the shared folder is absent.

Usage::

    PYTHONPATH=src .venv/bin/python benchmarks/training.py              # about 5 minutes on 2 cores
    PYTHONPATH=src .venv/bin/python benchmarks/training.py --per-class 1000 --epochs 4
    PYTHONPATH=src .venv/bin/python benchmarks/training.py --backbones resnet18 --input-size 128
    PYTHONPATH=src .venv/bin/python benchmarks/training.py --backbones mobilenet_v2 --input-size 128 --faces
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from deepfakedetect import Detector  # noqa: E402
from deepfakedetect.training.augment import AugmentConfig, build_augment  # noqa: E402
from deepfakedetect.models.backbones import build_model  # noqa: E402
from deepfakedetect.models.precision import cpu_has_fast_bf16  # noqa: E402
from deepfakedetect.training.trainer import Trainer  # noqa: E402

DEFAULT_SHARED = Path(os.environ.get("DEEPFAKEDETECT_SHARED", REPO.parent / "shared"))
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min) on {os.cpu_count()} CPUs"


def make_data(root: Path, shared: Path, per_class: int, val_per_class: int) -> str:
    src = shared / "data" / "faces" / "lfw_faceswap"
    for split, n in (("train", per_class), ("val", val_per_class)):
        for cls in ("real", "fake"):
            out = root / split / cls
            out.mkdir(parents=True)
            files = sorted((src / split / cls).glob("*.jpg"))[:n] if src.is_dir() else []
            if files:
                for f in files:
                    (out / f.name).symlink_to(f)
            else:
                rng = np.random.default_rng(hash((split, cls)) % 2**32)
                for i in range(n):
                    img = rng.integers(0, 256, (250, 250, 3), dtype=np.uint8)
                    Image.fromarray(img).save(out / f"{i:05d}.jpg", quality=90)
    return "lfw_faceswap (250x250 JPEG)" if src.is_dir() else "generated 250x250 JPEG noise (shared data absent)"


def plain_epoch(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    files: list[tuple[Path, int]],
    args: argparse.Namespace,
    augment: Any,
    faces: Any = None,
) -> tuple[float, float]:
    """One epoch of the plain loop; returns (images per wall second, images per CPU second).

    With ``faces`` (a detector whose face stage crops), each image's largest face is found
    and cropped every step, as a loop without a cache must.
    """
    model.train()
    loss_fn = torch.nn.CrossEntropyLoss()
    order = np.random.default_rng(0).permutation(len(files))
    start = time.perf_counter()
    cpu = time.process_time()
    for b in range(0, len(order), args.batch_size):
        idx = order[b : b + args.batch_size]
        if len(idx) < 2:
            continue
        xs = []
        for i in idx:
            with Image.open(files[i][0]) as im:
                im = im.convert("RGB")
            if faces is not None:
                found = faces.extract_faces([np.asarray(im)])[0]
                im = Image.fromarray(found[0][1]) if found else im
            im = im.resize((args.input_size, args.input_size), Image.BILINEAR)
            x = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
            xs.append(augment(x) if augment is not None else x)
        x = ((torch.stack(xs).float() / 255.0 - MEAN) / STD).to(args.device)
        y = torch.tensor([files[i][1] for i in idx]).to(args.device)
        loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return len(order) / (time.perf_counter() - start), len(order) / (time.process_time() - cpu)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backbones", default="resnet18,mobilenet_v2")
    p.add_argument("--per-class", type=int, default=128, help="training images per class")
    p.add_argument("--val-per-class", type=int, default=16)
    p.add_argument("--epochs", type=int, default=3, help="Trainer epochs (at least 2)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--shared", default=str(DEFAULT_SHARED))
    p.add_argument("--no-augment", action="store_true", help="no augmentation in either")
    p.add_argument(
        "--faces",
        action="store_true",
        help="train on face crops (RetinaFace), as the default model does: the plain loop crops every step",
    )
    p.add_argument("--device", default=None, help="default: cuda when available (untested here), else cpu")
    p.add_argument(
        "--flush-denormal",
        action="store_true",
        help="torch.set_flush_denormal(True) for both (denormal floats are slow on x86 CPUs)",
    )
    args = p.parse_args(argv)
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    args.epochs = max(2, args.epochs)
    torch.manual_seed(0)
    tmp = Path(tempfile.mkdtemp(prefix="dfd-train-bench-"))
    try:
        made = make_data(tmp / "data", Path(args.shared), args.per_class, args.val_per_class)
        files = [(f, label) for label, cls in enumerate(("fake", "real")) for f in sorted((tmp / "data" / "train" / cls).iterdir())]
        aug_cfg = None if args.no_augment else AugmentConfig()
        augment = build_augment(aug_cfg, input_size=args.input_size) if aug_cfg is not None else None
        print(f"## Training images/s, batch {args.batch_size}, input {args.input_size}, "
              f"{len(files)} training images ({made}){', face crops' if args.faces else ', whole images'}\n")  # fmt: skip
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {cpu_has_fast_bf16()}; "
              f"{load_line()} at start; augmentation: {'default AugmentConfig' if aug_cfg else 'none'}; "
              f"flush denormals: {args.flush_denormal}\n")  # fmt: skip
        faces = Detector.from_backbone("resnet18", faces=True, device=args.device) if args.faces else None
        rows = []
        for name in args.backbones.split(","):
            model = build_model(name, num_outputs=2).to(args.device)
            opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
            plain_epoch(model, opt, files[: args.batch_size], args, augment, faces)  # warm-up, not timed
            plain = [plain_epoch(model, opt, files, args, augment, faces)]
            print(f"- {name} plain loop epoch: {plain[-1][0]:.1f} images/s, {plain[-1][1]:.1f} per CPU-s; {load_line()}", flush=True)
            history: list[dict] = []
            cpu_marks: list[float] = []

            def mark(entry: dict, history: list[dict] = history, cpu_marks: list[float] = cpu_marks) -> None:
                history.append(entry)
                cpu_marks.append(time.process_time())

            trainer = Trainer(
                name, weights=None, epochs=args.epochs, batch_size=args.batch_size, input_size=args.input_size,
                augment=aug_cfg, cache="memory", calibrate=False, progress=False, on_epoch_end=mark, device=args.device,
                faces=args.faces,
            )  # fmt: skip
            t0, c0 = time.perf_counter(), time.process_time()
            result = trainer.fit(tmp / "data")
            total = time.perf_counter() - t0
            plain.append(plain_epoch(model, opt, files, args, augment, faces))
            print(f"- {name} plain loop epoch: {plain[-1][0]:.1f} images/s, {plain[-1][1]:.1f} per CPU-s; {load_line()}", flush=True)
            n = len(files)
            prep = result.data_seconds
            # CPU time per epoch: between the epoch-end callbacks (epoch 1 from the start
            # of fit, so it includes preprocessing). Validation (a few images) is inside.
            cpu_epochs = np.diff([c0, *cpu_marks])
            wall_first = n / (prep + history[0]["train_time_s"])
            wall_later = statistics.median(h["train_images_per_s"] for h in history[1:])
            cpu_first = n / cpu_epochs[0]
            cpu_later = statistics.median(n / c for c in cpu_epochs[1:])
            base_wall = statistics.median(p[0] for p in plain)
            base_cpu = statistics.median(p[1] for p in plain)
            rows.append((name, base_wall, base_cpu, wall_first, cpu_first, wall_later, cpu_later, prep))
            print(f"- {name} Trainer: preprocessing {prep:.1f} s, epochs "
                  + ", ".join(f"{h['train_images_per_s']:.1f}" for h in history) + " images/s, "
                  + ", ".join(f"{n / c:.1f}" for c in cpu_epochs) + f" per CPU-s; fit {total:.0f} s", flush=True)  # fmt: skip
        print()
        print("| backbone | clock | plain loop | Trainer epoch 1 (incl. preprocessing) | Trainer later epochs (median) "
              "| later epochs x plain loop | epoch 1 x plain loop |")  # fmt: skip
        print("|---|---|---|---|---|---|---|")
        for name, bw, bc, fw, fc, lw, lc, prep in rows:
            print(f"| {name} | images/s (wall) | {bw:.1f} | {fw:.1f} | {lw:.1f} | **{lw / bw:.2f}x** | {fw / bw:.2f}x |")
            print(f"| {name} | images per CPU-second | {bc:.1f} | {fc:.1f} | {lc:.1f} | **{lc / bc:.2f}x** | {fc / bc:.2f}x |")
        print(f"\n{load_line()} at end")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
