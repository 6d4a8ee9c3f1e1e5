"""``deepfakedetect export``: a model's networks as ONNX files beside its config."""

from __future__ import annotations

import argparse

from deepfakedetect.detector import Detector

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Load the model with torch, export it, print the folder."""
    detector = Detector.from_pretrained(args.model, revision=args.revision, local_files_only=args.offline, device="cpu")
    out = detector.export_onnx(args.out)
    files = ", ".join(sorted(p.name for p in out.iterdir() if p.is_file()))
    print(f"{out}: {files}")
    return 0
