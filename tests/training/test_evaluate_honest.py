"""``evaluate`` that cannot fool itself: training data recorded by content, overlap found by
content, no build-machine paths in ``config.json``, a breakdown per source, crashes as misses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from imagefolders import make_dataset

from deepfakedetect import Detector, Trainer, TrainingManifest, evaluate


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Detector, Path, Path]:
    """A detector trained one epoch on a pool folder (split here), saved to a model folder."""
    root = tmp_path_factory.mktemp("honest")
    pool = make_dataset(root / "pool", 10, size=24)
    out = root / "model"
    Trainer(
        "shufflenet_v2_x0_5", weights=None, epochs=1, batch_size=8, input_size=32, precision="fp32",
        progress=False, out_dir=out, val_fraction=0.2, test_fraction=0.3, seed=3,
    ).fit(pool)  # fmt: skip
    return Detector.from_pretrained(out, device="cpu"), pool, out


def test_training_data_is_recorded_by_content_not_by_path(trained: tuple[Detector, Path, Path]) -> None:
    det, pool, out = trained
    text = (out / "config.json").read_text()
    assert str(pool.parent) not in text and str(Path.home()) not in text
    config = json.loads(text)
    assert config["training"]["data"] == ["pool"]  # the folder's name only
    manifest = TrainingManifest.load(out / "training_manifest.json")
    assert det.training_manifest == manifest
    assert manifest.counts() == {"train": 10, "val": 4, "test": 6}
    assert str(pool) not in (out / "training_manifest.json").read_text()


def test_a_renamed_copy_of_the_training_data_is_recognised(trained: tuple[Detector, Path, Path], tmp_path: Path) -> None:
    det, pool, _ = trained
    copy = tmp_path / "elsewhere"
    for p in pool.rglob("*.png"):
        target = copy / p.parent.name / f"renamed_{p.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, target)
    report = evaluate(det, copy, progress=False)
    # "test" of a folder the model trained on: only the files it never saw, found by content.
    assert report.levels["image"]["n"] == 6
    assert len(report.overlap["train"]) == 10 and len(report.overlap["val"]) == 4
    assert "never saw" in report.to_markdown() or "trained on" in report.to_markdown()
    everything = evaluate(det, copy, split="all", progress=False)
    assert everything.levels["image"]["n"] == 20 and len(everything.overlap["train"]) == 10


def test_a_test_split_holding_training_files_is_caught(trained: tuple[Detector, Path, Path], tmp_path: Path) -> None:
    det, pool, _ = trained
    data = make_dataset(tmp_path / "d", splits={"test": 3}, size=24, seed=5)
    leaked = [p for p in pool.rglob("*.png") if det.training_manifest.splits_of(_digest(p)) == ["train"]][0]
    shutil.copy(leaked, data / "test" / leaked.parent.name / "leaked.png")
    report = evaluate(det, data, progress=False)
    assert [Path(p).name for p in report.overlap["train"]] == ["leaked.png"]
    assert report.levels["image"]["n"] == 6  # the leaked file is left out of the test metrics


def _digest(path: Path) -> str:
    from deepfakedetect.models.manifest import file_digest

    return file_digest(path)


def test_the_breakdown_names_the_worst_group_first(tmp_path: Path) -> None:
    det = Detector.from_backbone("shufflenet_v2_x0_5", input_size=32, device="cpu")
    rng = np.random.default_rng(0)
    for label, methods in (("real", ["youtube"]), ("fake", ["Deepfakes", "Face2Face"])):
        for m in methods:
            folder = tmp_path / "ffpp" / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"{m}__{i:03d}.png")
    report = evaluate(det, tmp_path / "ffpp", progress=False)
    rows = [r for r in report.breakdown if r["key"] == "method"]
    assert {r["group"] for r in rows} == {"youtube", "Deepfakes", "Face2Face"}
    assert [r["accuracy"] for r in rows] == sorted(r["accuracy"] for r in rows)
    assert all(r["n"] == 3 for r in rows)
    text = report.to_markdown()
    assert "| method | Face2Face |" in text or "| method | Deepfakes |" in text or "| method | youtube |" in text
    assert [r["group"] for r in report.to_dict()["breakdown"] if r["key"] == "method"] == [r["group"] for r in rows]


def test_an_input_that_cannot_be_scored_counts_as_a_miss(tmp_path: Path) -> None:
    det = Detector.from_backbone("shufflenet_v2_x0_5", input_size=32, device="cpu")
    data = make_dataset(tmp_path / "d", 3, size=24)
    good = evaluate(det, data, split="all", progress=False).levels["image"]
    (data / "fake" / "broken.png").write_bytes(b"not an image")
    report = evaluate(det, data, split="all", progress=False)
    level = report.levels["image"]
    assert level["n"] == good["n"] + 1 and level["n_errors"] == 1
    # A fake that crashed is a fake not caught.
    assert level["confusion_matrix"][1][0] == good["confusion_matrix"][1][0] + 1
    assert [Path(p).name for p, _ in report.skipped] == ["broken.png"]


def test_a_manifest_saved_again_is_the_same_file(tmp_path: Path) -> None:
    """Splits added in any order write the same bytes, so a re-saved model folder is unchanged."""
    aa, bb, cc, dd = (c * 16 for c in "abcd")
    a = TrainingManifest().with_split("train", [aa, bb]).with_split("val", [cc]).with_split("calibration", [dd])
    b = TrainingManifest().with_split("calibration", [dd]).with_split("val", [cc]).with_split("train", [bb, aa])
    a.save(tmp_path / "a.json")
    b.save(tmp_path / "b.json")
    TrainingManifest.load(tmp_path / "a.json").save(tmp_path / "again.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes() == (tmp_path / "again.json").read_bytes()
