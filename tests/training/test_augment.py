"""Each augmentation runs, changes the image, keeps its size, dtype and label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepfakedetect import ConfigError, PreprocessConfig
from deepfakedetect.training.augment import AUGMENTATIONS, AugmentConfig, build_augment
from deepfakedetect.training.data import ImageDataset, PreparedImages, Sample


def _image(size: int = 48) -> torch.Tensor:
    """A textured image, so that every augmentation (even blur and JPEG) has something to change."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    img = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1) + rng.integers(0, 40, (size, size, 3))
    img[size // 4 : size // 2, size // 3 : 2 * size // 3] = (250, 20, 20)
    return torch.from_numpy(np.clip(img, 0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous()


@pytest.mark.parametrize("name", AUGMENTATIONS)
def test_each_augmentation_runs_and_changes_the_image_and_keeps_the_label(name: str) -> None:
    size = 48
    x = _image(size)
    transform = build_augment(AugmentConfig.only(name), input_size=size)
    torch.manual_seed(1)
    changed = [not torch.equal(transform(x), x) for _ in range(5)]
    out = transform(x)
    assert out.shape == x.shape and out.dtype == torch.uint8
    # Rotation and crop draw a random amount that can round to "no change" in rare draws.
    assert sum(changed) >= 4, f"{name} left the image unchanged in {5 - sum(changed)} of 5 draws"

    prep = PreparedImages(
        [Sample(Path("fake/a.png"), "fake", Path(".")), Sample(Path("real/b.png"), "real", Path("."))],
        np.stack([x.permute(1, 2, 0).numpy()] * 2),
        PreprocessConfig(input_size=size),
    )
    ds = ImageDataset(prep, augment=transform, seed=0)
    plain = ImageDataset(prep)
    assert [ds[i][1] for i in range(2)] == [1, 0]
    assert not torch.equal(ds[0][0], plain[0][0])


def test_flip_is_a_mirror_and_jpeg_keeps_the_picture_close() -> None:
    x = _image()
    assert torch.equal(build_augment(AugmentConfig.only("flip"), input_size=48)(x), x.flip(-1))
    torch.manual_seed(0)
    y = build_augment(AugmentConfig.only("jpeg", jpeg_quality=(70, 70)), input_size=48)(x)
    assert 0 < (y.float() - x.float()).abs().mean() < 12


def test_noise_strength_follows_the_config() -> None:
    x = torch.full((3, 64, 64), 128, dtype=torch.uint8)
    torch.manual_seed(0)
    weak = build_augment(AugmentConfig.only("noise", noise_std=0.01), input_size=64)(x).float().std()
    strong = build_augment(AugmentConfig.only("noise", noise_std=0.1), input_size=64)(x).float().std()
    assert 1.5 < weak < 4 and 18 < strong < 33  # 0.01 * 255 and 0.1 * 255


def test_default_config_augments_but_disabled_steps_do_not_run() -> None:
    assert AugmentConfig().enabled() == AUGMENTATIONS
    none = AugmentConfig.only()
    assert none.enabled() == ()
    x = _image()
    assert torch.equal(build_augment(none, input_size=48)(x), x)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"jpeg_p": 1.5}, "jpeg_p"),
        ({"jpeg_quality": (90, 50)}, "jpeg_quality"),
        ({"crop_scale": (0.0, 1.0)}, "crop_scale"),
        ({"rotation_degrees": -3}, "rotation_degrees"),
        ({"noise_std": "a lot"}, "noise_std"),
    ],
)
def test_bad_settings_raise_config_error(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        AugmentConfig(**kwargs)
    with pytest.raises(ConfigError, match="unknown augmentation"):
        AugmentConfig.only("sharpen")


def test_config_round_trips_through_json() -> None:
    import json

    cfg = AugmentConfig(jpeg_quality=(50, 90), blur_p=0.0)
    assert AugmentConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
