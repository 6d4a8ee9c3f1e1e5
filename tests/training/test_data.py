"""Dataset discovery, splits, errors and the preprocessing cache."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from imagefolders import make_dataset, make_image
from PIL import Image

from deepfakedetect import DatasetError, PreprocessConfig
from deepfakedetect.models.preprocess import resize_and_crop
from deepfakedetect.training.data import (
    ImageDataset,
    Sample,
    find_dataset,
    prepare_images,
    stratified_split,
)


def test_pool_layout_is_split_stratified_and_reproducibly(tmp_path: Path) -> None:
    make_dataset(tmp_path, 20)
    a = find_dataset(tmp_path, val_fraction=0.2, test_fraction=0.1, seed=3)
    b = find_dataset(tmp_path, val_fraction=0.2, test_fraction=0.1, seed=3)
    c = find_dataset(tmp_path, val_fraction=0.2, test_fraction=0.1, seed=4)
    assert a.counts() == {
        "train": {"real": 14, "fake": 14},
        "val": {"real": 4, "fake": 4},
        "test": {"real": 2, "fake": 2},
    }
    assert a.val == b.val and a.test == b.test
    assert a.val != c.val
    paths = [s.path for part in (a.train, a.val, a.test) for s in part]
    assert len(paths) == len(set(paths)) == 40
    assert a.layouts == {str(tmp_path.resolve()): "pool"}
    assert all(s.path.parent.name == s.label for s in a.train + a.val + a.test)


def test_labels_come_from_folder_names_in_any_case(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for folder, label in (("Real", "real"), ("FAKE", "fake")):
        (tmp_path / folder).mkdir()
        for i in range(3):
            make_image(label, rng, 16).save(tmp_path / folder / f"{i}.png")
    ds = find_dataset(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert {(s.path.parent.name, s.label, s.y) for s in ds.train} == {("Real", "real", 0), ("FAKE", "fake", 1)}


def test_real_and_fake_at_any_depth(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for rel in ("ffhq/real/a/b", "gan/v1/fake", "gan/v2/fake/x"):
        (tmp_path / rel).mkdir(parents=True)
        for i in range(3):
            make_image("real", rng, 20).save(tmp_path / rel / f"{i}.jpg")
    (tmp_path / "notes").mkdir()
    make_image("real", rng, 20).save(tmp_path / "notes" / "unlabelled.jpg")
    (tmp_path / "real_readme.txt").write_text("not an image")
    ds = find_dataset(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert ds.counts()["train"] == {"real": 3, "fake": 6}
    assert all(s.label == "fake" for s in ds.train if "gan" in s.path.parts)


def test_split_folders_are_kept(tmp_path: Path) -> None:
    make_dataset(tmp_path, splits={"train": 5, "val": 2, "test": 3})
    ds = find_dataset(tmp_path)
    assert ds.counts() == {
        "train": {"real": 5, "fake": 5},
        "val": {"real": 2, "fake": 2},
        "test": {"real": 3, "fake": 3},
    }
    assert all(s.path.parts[-3] == "val" for s in ds.val)
    assert ds.layouts[str(tmp_path.resolve())] == "splits"


def test_several_roots_combine_and_overlapping_roots_count_files_once(tmp_path: Path) -> None:
    make_dataset(tmp_path / "a", splits={"train": 3, "val": 1})
    make_dataset(tmp_path / "b", 10)
    ds = find_dataset([tmp_path / "a", tmp_path / "b"], val_fraction=0.2, test_fraction=0.0)
    assert ds.counts()["train"] == {"real": 3 + 8, "fake": 3 + 8}
    assert ds.counts()["val"] == {"real": 1 + 2, "fake": 1 + 2}
    twice = find_dataset([tmp_path / "b", tmp_path / "b" / "real", tmp_path / "b"], val_fraction=0.0, test_fraction=0.0)
    assert len(twice.train) == 20


@pytest.mark.parametrize(
    "layout, message",
    [
        ("missing", "does not exist"),
        ("file", "is not a folder"),
        ("empty", "no labelled images"),
        ("no_labels", "none below a real/ or fake/ folder"),
        ("mixed", "mixes split folders"),
        ("nested", "below both a real/ and a fake/"),
    ],
)
def test_bad_layouts_raise_dataset_error_saying_what_was_expected(tmp_path: Path, layout: str, message: str) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "data"
    if layout == "file":
        root.write_text("x")
    elif layout != "missing":
        root.mkdir()
    if layout == "no_labels":
        (root / "cats").mkdir()
        make_image("real", rng, 16).save(root / "cats" / "a.png")
    elif layout == "mixed":
        make_dataset(root, splits={"train": 1})
        make_dataset(root, 1)
    elif layout == "nested":
        (root / "real" / "fake").mkdir(parents=True)
        make_image("real", rng, 16).save(root / "real" / "fake" / "a.png")
    with pytest.raises(DatasetError, match=message) as info:
        find_dataset(root)
    if layout in ("empty", "no_labels", "file"):
        assert "expected real/ and fake/" in str(info.value)


def test_split_fractions_are_checked() -> None:
    pool = [Sample(Path(f"{lab}/{i}.jpg"), lab, Path(".")) for lab in ("real", "fake") for i in range(5)]
    with pytest.raises(DatasetError, match="leave some data for training"):
        stratified_split(pool, val_fraction=0.6, test_fraction=0.5, seed=0)


def _write_broken(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.jpg"
    empty.write_bytes(b"")
    text = folder / "text.png"
    text.write_text("this is not an image")
    truncated = folder / "truncated.jpg"
    buf = folder / "full.jpg"
    make_image("fake", np.random.default_rng(1), 64).save(buf, quality=90)
    truncated.write_bytes(buf.read_bytes()[:200])
    buf.unlink()
    return [empty, text, truncated]


def test_unreadable_files_are_reported_and_skipped_or_raise_in_strict_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_dataset(tmp_path, 4)
    broken = _write_broken(tmp_path / "fake")
    ds = find_dataset(tmp_path, val_fraction=0.0, test_fraction=0.0)
    assert len(ds.train) == 11
    pre = PreprocessConfig(input_size=16)
    with caplog.at_level(logging.WARNING, logger="deepfakedetect.training.data"):
        prep = prepare_images(ds.train, preprocess=pre, progress=False)
    assert len(prep) == 8 and prep.images is not None and prep.images.shape == (8, 16, 16, 3)
    assert sorted(p for p, _ in prep.skipped) == sorted(str(p) for p in broken)
    assert "skipped 3 of 11" in caplog.text and "empty.jpg" in caplog.text
    with pytest.raises(DatasetError, match="3 of 11 .* cannot be used") as info:
        prepare_images(ds.train, preprocess=pre, strict=True, progress=False)
    assert "text.png" in str(info.value)


def test_cache_holds_exactly_the_inference_geometry(tmp_path: Path) -> None:
    make_dataset(tmp_path, 3, size=50)
    samples = find_dataset(tmp_path, val_fraction=0.0, test_fraction=0.0).train
    pre = PreprocessConfig(input_size=32, resize_size=40)
    prep = prepare_images(samples, preprocess=pre, progress=False)
    for i, s in enumerate(prep.samples):
        expected = resize_and_crop(np.asarray(Image.open(s.path).convert("RGB")), pre)
        np.testing.assert_array_equal(prep.images[i], expected)


def test_disk_cache_is_reused_and_invalidated_when_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deepfakedetect.training.data as data_mod

    make_dataset(tmp_path / "d", 3)
    _write_broken(tmp_path / "d" / "real")
    samples = find_dataset(tmp_path / "d", val_fraction=0.0, test_fraction=0.0).train
    pre = PreprocessConfig(input_size=16)
    first = prepare_images(samples, preprocess=pre, cache="disk", cache_dir=tmp_path / "c", progress=False)
    assert first.cache_file is not None and first.cache_file.is_file()
    assert len(first.skipped) == 3

    calls = []
    real_load = data_mod._load
    monkeypatch.setattr(data_mod, "_load", lambda p: calls.append(p) or real_load(p))
    second = prepare_images(samples, preprocess=pre, cache="disk", cache_dir=tmp_path / "c", progress=False)
    assert calls == []  # nothing decoded again
    assert isinstance(second.images, np.memmap)
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    assert [s.path for s in second.samples] == [s.path for s in first.samples]
    assert len(second.skipped) == 3

    make_image("real", np.random.default_rng(9), 40).save(samples[0].path)  # same name, new content
    third = prepare_images(samples, preprocess=pre, cache="disk", cache_dir=tmp_path / "c", progress=False)
    assert len(calls) == len(samples)
    assert third.cache_file != first.cache_file


def test_no_cache_decodes_on_every_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import deepfakedetect.training.data as data_mod

    make_dataset(tmp_path, 2)
    samples = find_dataset(tmp_path, val_fraction=0.0, test_fraction=0.0).train
    prep = prepare_images(samples, preprocess=PreprocessConfig(input_size=16), cache=None, progress=False)
    assert prep.images is None
    calls = []
    real_load = data_mod._load
    monkeypatch.setattr(data_mod, "_load", lambda p: calls.append(p) or real_load(p))
    ds = ImageDataset(prep)
    ds[0]
    ds[0]
    assert len(calls) == 2


def test_dataset_items_are_normalised_and_augmentation_is_reproducible(tmp_path: Path) -> None:
    from deepfakedetect.training.augment import AugmentConfig, build_augment

    make_dataset(tmp_path, 2)
    samples = find_dataset(tmp_path, val_fraction=0.0, test_fraction=0.0).train
    pre = PreprocessConfig(input_size=32)
    prep = prepare_images(samples, preprocess=pre, progress=False)
    plain = ImageDataset(prep)
    x, y, i = plain[1]
    raw = torch.from_numpy(prep.images[1]).permute(2, 0, 1).float() / 255
    expected = (raw - torch.tensor(pre.mean).view(3, 1, 1)) / torch.tensor(pre.std).view(3, 1, 1)
    torch.testing.assert_close(x, expected)
    assert y == prep.samples[1].y and i == 1

    aug = ImageDataset(prep, augment=build_augment(AugmentConfig(), input_size=32), seed=5)
    aug.set_epoch(2)
    torch.manual_seed(0)
    a = aug[1][0]
    torch.manual_seed(123)  # the global generator does not matter
    b = aug[1][0]
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    aug.set_epoch(3)
    assert not torch.equal(a, aug[1][0])
