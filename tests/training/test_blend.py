"""Self-blended fakes: the blend itself, the dataset that serves them, and training on reals only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfakedetect import ConfigError, DatasetError, Trainer
from deepfakedetect.training.blend import self_blend
from deepfakedetect._config import PreprocessConfig
from deepfakedetect.training.data import ImageDataset, PreparedImages, Sample

SIZE = 48


def _face(seed: int, size: int = SIZE) -> torch.Tensor:
    """A textured 'face' on a flat background: the blend must change the middle, not the border."""
    g = torch.Generator().manual_seed(seed)
    img = torch.full((3, size, size), 40, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    inside = ((xx - size / 2) / (0.35 * size)) ** 2 + ((yy - size / 2) / (0.42 * size)) ** 2 < 1
    img[:, inside] = torch.randint(90, 220, (3, int(inside.sum())), generator=g, dtype=torch.uint8)
    return img


def test_the_blend_changes_the_inner_face_and_keeps_the_border():
    torch.manual_seed(0)
    face = _face(0)
    changed = torch.zeros(SIZE, SIZE)
    for _ in range(20):
        out = self_blend(face)
        assert out.shape == face.shape and out.dtype == torch.uint8
        changed += (out != face).any(0).float()
    centre = changed[SIZE // 2 - 4 : SIZE // 2 + 4, SIZE // 2 - 4 : SIZE // 2 + 4]
    assert centre.mean() > 15  # the middle of the face changes in (nearly) every draw
    k = SIZE // 6
    corners = torch.stack([changed[:k, :k], changed[:k, -k:], changed[-k:, :k], changed[-k:, -k:]])
    assert corners.max() == 0 and changed[:2].max() == 0  # around the face: the real image, untouched


def test_the_blend_is_reproducible_and_varies_between_draws():
    face = _face(1)
    torch.manual_seed(5)
    a = self_blend(face)
    torch.manual_seed(5)
    b = self_blend(face)
    c = self_blend(face)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("bad", [torch.zeros(3, 8, 8), torch.zeros(8, 8, 3, dtype=torch.uint8), torch.zeros(3, 8, 6, dtype=torch.uint8)])
def test_the_blend_refuses_other_inputs(bad):
    with pytest.raises(ValueError, match="uint8 \\(3, S, S\\)"):
        self_blend(bad)


def _prepared(n_real: int, n_fake: int) -> PreparedImages:
    samples = [Sample(Path(f"r{i}.png"), "real", Path(".")) for i in range(n_real)]
    samples += [Sample(Path(f"f{i}.png"), "fake", Path(".")) for i in range(n_fake)]
    images = np.stack([_face(i).permute(1, 2, 0).numpy() for i in range(n_real + n_fake)])
    for i in range(n_real + n_fake):
        images[i, 0, 0] = i  # a corner pixel (never blended) tells which sample an item came from
    return PreparedImages(samples, images, PreprocessConfig(input_size=SIZE, mean=(0.0,) * 3, std=(1 / 255,) * 3))


def _source(x: torch.Tensor) -> int:
    return int(round(float(x[0, 0, 0])))


def test_the_dataset_adds_blended_fakes_of_reals_only():
    prep = _prepared(6, 2)
    ds = ImageDataset(prep, self_blend=1.0, seed=3)
    assert len(ds) == 8 + 6
    assert list(ds.y) == [0] * 6 + [1] * 2 + [1] * 6
    ds.set_epoch(1)
    sources = []
    for i in range(8, 14):
        x, y, idx = ds[i]
        assert y == 1 and idx == i
        sources.append(_source(x))
        assert not torch.equal(x, ds[sources[-1]][0])  # blended, not a copy of its real
    assert sorted(sources) == list(range(6))  # every real once, never a fake
    assert torch.equal(ds[10][0], ds[10][0])  # the same item in the same epoch: the same image


def test_half_the_reals_are_blended_and_a_different_half_each_epoch():
    ds = ImageDataset(_prepared(10, 2), self_blend=0.5, seed=0)
    assert len(ds) == 12 + 5
    chosen = []
    for epoch in (1, 2, 3):
        ds.set_epoch(epoch)
        chosen.append(frozenset(_source(ds[i][0]) for i in range(12, 17)))
    assert all(len(c) == 5 and c <= set(range(10)) for c in chosen)
    assert len(set(chosen)) > 1


def _write(root: Path, split: str, label: str, n: int, offset: int = 0) -> None:
    folder = root / split / label
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = _face(offset + i).permute(1, 2, 0).numpy()
        if label == "fake":
            img = self_blend(_face(offset + i)).permute(1, 2, 0).numpy()
        Image.fromarray(img).save(folder / f"{i}.png")


def test_training_on_real_images_alone_with_self_blending(tmp_path):
    _write(tmp_path, "train", "real", 8)
    _write(tmp_path, "val", "real", 3, offset=100)
    _write(tmp_path, "val", "fake", 3, offset=200)
    args = {"weights": None, "epochs": 1, "batch_size": 8, "input_size": 32, "progress": False, "precision": "fp32"}
    with pytest.raises(DatasetError, match="both classes are needed"):
        Trainer("shufflenet_v2_x0_5", **args).fit(tmp_path)
    trainer = Trainer("shufflenet_v2_x0_5", self_blend=1.0, **args)
    result = trainer.fit(tmp_path)
    assert result.detector.config.training["self_blend"] == 1.0
    # 8 reals and their 8 blended fakes per epoch: one step of 8 and one of 8.
    assert result.history[0]["train_images_per_s"] > 0 and len(result.history) == 1


@pytest.mark.parametrize("value", [-0.5, 11, "1", True])
def test_self_blend_is_checked(value):
    with pytest.raises(ConfigError, match="self_blend"):
        Trainer("resnet18", weights=None, self_blend=value)
