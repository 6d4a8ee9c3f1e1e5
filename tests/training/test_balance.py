"""Per-source balanced sampling: each data folder (and the self-blended fakes) an equal share of an epoch."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from imagefolders import make_split_data

from deepfakedetect._config import PreprocessConfig
from deepfakedetect.training.data import ImageDataset, PreparedImages, Sample
from deepfakedetect.training.distributed import Dist, ShardSampler
from deepfakedetect.training.trainer import Trainer


def _prepared(counts: dict[tuple[str, str], int]) -> PreparedImages:
    samples = [
        Sample(Path(root) / label / f"{i}.jpg", label, Path(root))
        for (root, label), n in counts.items()
        for i in range(n)
    ]
    return PreparedImages(samples, np.zeros((len(samples), 16, 16, 3), np.uint8), PreprocessConfig(input_size=16))


def test_each_source_and_each_of_its_classes_gets_an_equal_share() -> None:
    # lfw: 4,200 balanced; gan: 360 reals, 120 fakes; sd: fakes only; plus 0.5 blends per real.
    prep = _prepared({("/d/lfw", "real"): 2100, ("/d/lfw", "fake"): 2100, ("/d/gan", "real"): 360,
                      ("/d/gan", "fake"): 120, ("/d/sd", "fake"): 200})  # fmt: skip
    ds = ImageDataset(prep, self_blend=0.5)
    weights, sizes = ds.source_weights()
    assert sizes == {"/d/gan": 480, "/d/lfw": 4200, "/d/sd": 200, "self-blended fakes": 1230}
    assert weights.shape == (len(ds),) and weights.sum() == pytest.approx(1.0)
    keys = np.array([str(s.root) for s in prep.samples] + ["self-blended fakes"] * 1230)
    for key in sizes:  # four sources, a quarter each
        assert weights[keys == key].sum() == pytest.approx(0.25)
    gan = keys == "/d/gan"
    assert weights[gan & (ds.y == 1)].sum() == pytest.approx(weights[gan & (ds.y == 0)].sum())
    assert weights[gan & (ds.y == 1)].max() == pytest.approx(3 * weights[gan & (ds.y == 0)].max())


def test_weighted_epochs_draw_in_proportion_the_same_in_every_process() -> None:
    n = 2000
    weights = np.ones(n)
    weights[:20] = (n - 20) / 20  # the first 20 items: half of the total weight
    one = ShardSampler(n, rank=0, world=1, shuffle=True, seed=3, weights=weights)
    order = one.indices()
    assert len(order) == len(one) == n
    assert np.mean(np.array(order) < 20) == pytest.approx(0.5, abs=0.04)
    assert one.indices() == order  # seeded by (seed, epoch)
    one.set_epoch(1)
    assert one.indices() != order
    one.set_epoch(0)
    # Two processes deal the one draw between them, round-robin.
    shards = [ShardSampler(n, rank=r, world=2, shuffle=True, seed=3, weights=weights).indices() for r in (0, 1)]
    assert shards[0] == order[0::2] and shards[1] == order[1::2]
    with pytest.raises(ValueError, match="weights"):
        ShardSampler(n, rank=0, world=1, shuffle=True, seed=0, weights=np.ones(n - 1))
    with pytest.raises(ValueError, match="weights"):
        ShardSampler(2, rank=0, world=1, shuffle=True, seed=0, weights=np.array([1.0, -1.0]))


def test_balanced_class_weights_follow_the_drawn_shares() -> None:
    from deepfakedetect.training.run import Run

    run = Run(Trainer("resnet18", weights=None), Dist(), torch.device("cpu"))
    run.num_outputs, run.fake_index = 2, 0
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0])
    # Drawn equally by class: no class weighting left to do.
    even = np.where(y == 1, 1 / 4, 1 / 12)
    assert run._criterion(y, even).weight.tolist() == pytest.approx([1.0, 1.0])
    # Fakes drawn three quarters of the time (a quarter by count): fakes weigh 1 / (2 * 3/4),
    # reals 1 / (2 * 1/4), where the counts alone would give the opposite (2 and 2/3).
    three_quarters = np.where(y == 1, 3 / 8, 1 / 24)
    assert run._criterion(y, three_quarters).weight.tolist() == pytest.approx([2 / 3, 2.0])
    assert run._criterion(y).weight.tolist() == pytest.approx([2.0, 2 / 3])


def test_training_on_two_folders_balances_them_and_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    big = make_split_data(tmp_path / "big", train=12, val=2, test=0, size=24)
    small = make_split_data(tmp_path / "small", train=2, val=2, test=0, size=24)
    drawn: list[int] = []
    datasets: list[ImageDataset] = []
    real_indices, real_weights = ShardSampler.indices, ImageDataset.source_weights

    def recording(self: ShardSampler) -> list[int]:
        idx = real_indices(self)
        if self.shuffle:
            drawn.extend(idx)
        return idx

    def keeping(self: ImageDataset) -> tuple[np.ndarray, dict[str, int]]:
        datasets.append(self)
        return real_weights(self)

    monkeypatch.setattr(ShardSampler, "indices", recording)
    monkeypatch.setattr(ImageDataset, "source_weights", keeping)
    trainer = Trainer("shufflenet_v2_x0_5", weights=None, epochs=3, batch_size=8, input_size=24, progress=False,
                      precision="fp32", calibrate=False, augment=None, balance="source", out_dir=tmp_path / "m")  # fmt: skip
    with caplog.at_level(logging.INFO, logger="deepfakedetect.training.run"):
        trainer.fit([big, small])
    assert "balancing 2 sources" in caplog.text and "small (4 images)" in caplog.text
    (ds,) = datasets
    in_small = np.array([s.root == small.resolve() for s in ds.prepared.samples])
    assert len(ds) == 28 and in_small.sum() == 4
    # 4 of the 28 training images, yet drawn about half of the time (3 epochs of 28 draws).
    assert len(drawn) == 3 * 28
    assert 0.3 < in_small[drawn].mean() < 0.7
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["training"]["balance"] == "source"
