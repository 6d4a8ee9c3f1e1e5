"""Fine-tune a detector on folders of real and fake images, evaluate it, and save it.

    python examples/fine_tune.py DATA --out my-model [--backbone resnet18] [--epochs 5]

DATA holds real/ and fake/ (split into train/val/test here, stratified and seeded), or
train/, val/ and test/ each holding real/ and fake/. The model folder (config.json,
model.safetensors, README.md), the training history (history.json, .csv, and .png with
matplotlib) and checkpoints are written to --out; run it again with --resume to continue
an interrupted run. The same is available as `deepfakedetect train`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepfakedetect import Detector, Trainer, evaluate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backbone", default="resnet18", help="a torchvision model name")
    parser.add_argument("--weights", default="imagenet", help="imagenet, none, or a .safetensors file")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--faces", action="store_true", help="crop faces first (RetinaFace), as inference will")
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args(argv)

    trainer = Trainer(
        args.backbone,
        weights=None if args.weights.lower() == "none" else args.weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        input_size=args.input_size,
        faces=args.faces,
        out_dir=args.out,
    )
    result = trainer.fit(args.data, resume=args.resume)

    print(f"kept epoch {result.best_epoch} of {len(result.history)}")
    for row in result.history:
        print(
            f"epoch {row['epoch']}: train loss {row['train_loss']:.3f}, "
            f"val loss {row['val_loss']:.3f}, val AUC {row['val_auc']:.3f}, {row['time_s']:.0f} s"
        )
    calibration = result.detector.config.calibration
    print(f"calibrated: temperature {calibration.temperature:.3f}, threshold {calibration.threshold:.3f}")

    # The folder on disk is what users get: load it back and measure it on the held-out split.
    detector = Detector.from_pretrained(args.out)
    report = evaluate(detector, args.data, split="test")
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
