"""Small labelled image folders that the tests make, learnable in an epoch or two."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_image(label: str, rng: np.random.Generator, size: int = 40) -> Image.Image:
    """A small image whose class a network can learn: fakes carry a diagonal stripe pattern."""
    base = rng.integers(60, 200, size=3)
    img = base + rng.normal(0, 12, (size, size, 3))
    if label == "fake":
        yy, xx = np.mgrid[:size, :size]
        img[(yy + xx) % 4 < 2] += 40
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def make_dataset(
    root: Path, n: int = 20, *, splits: dict[str, int] | None = None, size: int = 40, seed: int = 0, ext: str = ".png"
) -> Path:
    """``root/{real,fake}/`` with ``n`` images each, or ``root/<split>/{real,fake}/`` per ``splits``."""
    rng = np.random.default_rng(seed)
    for split, count in (splits or {"": n}).items():
        for label in ("real", "fake"):
            folder = root / split / label if split else root / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                make_image(label, rng, size).save(folder / f"{label}_{i:03d}{ext}")
    return root


def make_split_data(root: Path, *, train: int = 8, val: int = 4, test: int = 2, size: int = 36) -> Path:
    """Dark reals and bright striped fakes: learnable in an epoch or two."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    for split, n in (("train", train), ("val", val), ("test", test)):
        for label in ("real", "fake"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = rng.normal(70 if label == "real" else 170, 20, (size, size, 3))
                if label == "fake":
                    img[(yy + xx) % 4 < 2] += 50
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"{label}_{i}.png")
    return root
