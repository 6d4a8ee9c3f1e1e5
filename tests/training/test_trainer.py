"""The Trainer on tiny generated data: training, saving, resuming, checkpoints, selection."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from imagefolders import make_split_data
from PIL import Image

from deepfakedetect import ConfigError, DatasetError, Detector
from deepfakedetect.faces.detectors import Face
from deepfakedetect.models.precision import cpu_has_fast_bf16 as _cpu_has_fast_bf16
from deepfakedetect.models.precision import resolve_precision
from deepfakedetect.training.augment import AugmentConfig
from deepfakedetect.training.trainer import (
    Trainer,
    TrainResult,
    read_checkpoint,
)

BACKBONE = "shufflenet_v2_x0_5"  # 0.34 M parameters: checkpoints stay small and fast
SIZE = 32


def _trainer(**kw: Any) -> Trainer:
    args: dict[str, Any] = {
        "weights": None, "epochs": 2, "batch_size": 8, "input_size": SIZE, "progress": False,
        "precision": "fp32", "lr": 1e-3,
    }
    args.update(kw)
    return Trainer(BACKBONE, **args)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Tiny models gain nothing from more threads, and on a shared 2-core machine lose a lot."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_split_data(tmp_path_factory.mktemp("data"))


def test_fit_learns_with_labels_from_folder_names(data_dir: Path) -> None:
    # ResNet-18 here: with so few steps the tiny backbone's batch-norm statistics are
    # still too rough for its evaluation-mode outputs to separate anything.
    result = Trainer(
        "resnet18", weights=None, epochs=2, batch_size=8, input_size=SIZE, progress=False, precision="fp32",
        lr=1e-3, augment=None,
    ).fit(data_dir)
    # The classes are easy: a model that learned the labels the wrong way round would score < 0.5.
    assert result.metrics["val_auc"] > 0.9
    fakes = sorted((data_dir / "test" / "fake").iterdir())
    reals = sorted((data_dir / "test" / "real").iterdir())
    scores = [r.fake_score for r in result.detector.detect_image(fakes + reals)]
    assert min(scores[:2]) > max(scores[2:])
    assert result.metrics["test_auc"] == 1.0 and result.metrics["test_n"] == 4


def test_fit_calibrates_and_writes_a_loadable_model_and_history(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _trainer(epochs=3, out_dir=out, augment=None).fit(data_dir)
    assert isinstance(result, TrainResult)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    for key in ("train_loss", "train_accuracy", "train_auc", "val_loss", "val_accuracy", "val_auc", "time_s"):
        assert all(isinstance(h[key], float) for h in result.history), key
    assert 1 <= result.best_epoch <= 3
    best_auc = max(h["val_auc"] for h in result.history)
    assert result.history[result.best_epoch - 1]["val_auc"] == best_auc

    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "history.json", "history.csv", "checkpoints"} <= names
    assert {p.name for p in (out / "checkpoints").iterdir()} == {"last.safetensors", "best.safetensors"}

    det = result.detector
    cfg = det.config
    assert cfg.calibration.operating_points.keys() == {"fpr@1%", "fpr@5%"}
    assert cfg.training["counts"]["train"] == {"real": 8, "fake": 8}
    assert cfg.training["best_epoch"] == result.best_epoch
    # Folder names only: no path of the training machine in config.json; the files are in the manifest.
    assert cfg.training["data"] == [data_dir.name]
    assert str(data_dir) not in (out / "config.json").read_text()
    assert det.training_manifest is not None and det.training_manifest.counts()["train"] == 16
    assert cfg.training["metrics"]["val_auc"] == pytest.approx(result.metrics["val_auc"])

    loaded = Detector.from_pretrained(out)
    assert loaded.config.calibration == cfg.calibration
    assert loaded.config.training == cfg.training
    images = sorted((data_dir / "val").glob("*/*.png"))
    a = [r.fake_score for r in loaded.detect_image(images)]
    b = [r.fake_score for r in det.detect_image(images)]
    assert a == pytest.approx(b, abs=1e-6)
    history = json.loads((out / "history.json").read_text())
    assert history["best_epoch"] == result.best_epoch and len(history["history"]) == 3
    assert (out / "history.csv").read_text().splitlines()[0].startswith("epoch,lr,train_loss")


class _Stop(Exception):
    pass


def _stop_after(epoch: int) -> Any:
    def hook(entry: dict[str, Any]) -> None:
        if entry["epoch"] == epoch:
            raise _Stop

    return hook


def test_resume_gives_bitwise_the_same_weights_as_training_straight(data_dir: Path, tmp_path: Path) -> None:
    # Augmentation on, so its per-item seeding is part of what must repeat.
    kw: dict[str, Any] = {"epochs": 3, "augment": AugmentConfig(), "precision": "auto"}
    straight = _trainer(out_dir=tmp_path / "a", **kw).fit(data_dir)

    with pytest.raises(_Stop):
        _trainer(out_dir=tmp_path / "b", on_epoch_end=_stop_after(2), **kw).fit(data_dir)
    assert read_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")[1]["epoch"] == 2
    resumed = _trainer(out_dir=tmp_path / "b", **kw).fit(data_dir, resume=True)

    _assert_same_weights(_state(straight.detector.model), _state(resumed.detector.model))
    last_a, _ = read_checkpoint(tmp_path / "a" / "checkpoints" / "last.safetensors")
    last_b, _ = read_checkpoint(tmp_path / "b" / "checkpoints" / "last.safetensors")
    _assert_same_weights(last_a, last_b)  # model, optimizer moments and RNG states
    timeless = lambda h: {k: v for k, v in h.items() if not k.endswith("_s") and k != "train_images_per_s"}
    assert [timeless(h) for h in straight.history] == [timeless(h) for h in resumed.history]
    assert straight.detector.config.calibration == resumed.detector.config.calibration


def test_resume_refuses_a_checkpoint_of_other_data(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(_Stop):
        _trainer(out_dir=tmp_path / "run", epochs=2, on_epoch_end=_stop_after(1), augment=None).fit(data_dir)
    other = make_split_data(tmp_path / "other", train=6)
    with pytest.raises(ConfigError, match="n_train"):
        _trainer(out_dir=tmp_path / "run", epochs=2, augment=None).fit(other, resume=True)
    with pytest.raises(ConfigError, match="needs out_dir"):
        _trainer(epochs=2).fit(data_dir, resume=True)


def test_a_crash_while_saving_leaves_the_previous_checkpoint_loadable(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import deepfakedetect.training.checkpoint as checkpoint_mod

    out = tmp_path / "run"
    with pytest.raises(_Stop):
        _trainer(out_dir=out, epochs=3, augment=None, on_epoch_end=_stop_after(1)).fit(data_dir)
    last = out / "checkpoints" / "last.safetensors"
    before = last.read_bytes()

    def crash(tensors: dict, path: str, metadata: dict) -> None:
        with open(path, "wb") as f:
            f.write(b"\x00" * 1000)  # a partial, unusable file
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(checkpoint_mod, "save_file", crash)
    with pytest.raises(OSError, match="simulated"):
        _trainer(out_dir=out, epochs=3, augment=None).fit(data_dir, resume=True)
    assert last.read_bytes() == before
    assert read_checkpoint(last)[1]["epoch"] == 1
    assert not [p for p in (out / "checkpoints").iterdir() if ".tmp-" in p.name]

    monkeypatch.undo()
    result = _trainer(out_dir=out, epochs=3, augment=None).fit(data_dir, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


@pytest.mark.slow
def test_a_process_killed_mid_save_leaves_the_previous_checkpoint_loadable(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    script = textwrap.dedent(
        f"""
        import os, sys
        import deepfakedetect.training.checkpoint as ck
        import deepfakedetect.training.trainer as tm
        real = ck.save_file
        calls = []
        def dying(tensors, path, metadata):
            calls.append(path)
            if len(calls) > 2:  # epoch 1 wrote best + last; die half-way through the next file
                with open(path, "wb") as f:
                    f.write(b"partial")
                    f.flush()
                os._exit(137)
            real(tensors, path, metadata)
        ck.save_file = dying
        tm.Trainer({BACKBONE!r}, weights=None, epochs=3, batch_size=8, input_size={SIZE}, progress=False,
                   precision="fp32", augment=None, out_dir={str(out)!r}).fit({str(data_dir)!r})
        """
    )
    src = str(Path(__file__).parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, *sys.path]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], check=False, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert [p for p in (out / "checkpoints").iterdir() if ".tmp-" in p.name]  # the kill left debris
    assert read_checkpoint(out / "checkpoints" / "last.safetensors")[1]["epoch"] == 1
    result = _trainer(out_dir=out, epochs=3, augment=None).fit(data_dir, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]


def _scripted_val(monkeypatch: pytest.MonkeyPatch, key: str, values: list[float]) -> None:
    from deepfakedetect.training.run import Run

    real = Run._epoch_metrics
    calls = iter(values)

    def scripted(self: Any, rows: np.ndarray, prefix: str) -> dict[str, Any]:
        out = real(self, rows, prefix)
        if prefix == "val":
            out[key] = next(calls, out[key])
        return out

    monkeypatch.setattr(Run, "_epoch_metrics", scripted)


def test_best_epoch_is_kept_and_early_stopping_ends_training(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scripted_val(monkeypatch, "val_auc", [0.6, 0.9, 0.7, 0.8, 0.95])
    out = tmp_path / "run"
    result = _trainer(out_dir=out, epochs=5, augment=None, early_stopping_patience=2).fit(data_dir)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert result.stopped_early and result.best_epoch == 2
    assert [h["best_epoch"] for h in result.history] == [1, 2, 2, 2]
    best, best_meta = read_checkpoint(out / "checkpoints" / "best.safetensors")
    last, _ = read_checkpoint(out / "checkpoints" / "last.safetensors")
    assert best_meta["epoch"] == 2
    model_best = {k[len("model."):]: v for k, v in best.items()}
    model_last = {k[len("model."):]: v for k, v in last.items() if k.startswith("model.")}
    _assert_same_weights(_state(result.detector.model), model_best)
    assert not torch.equal(model_best["fc.weight"], model_last["fc.weight"])
    saved = Detector.from_pretrained(out)
    _assert_same_weights(_state(saved.model), model_best)


def test_loss_metrics_are_minimised(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _scripted_val(monkeypatch, "val_loss", [0.5, 0.7, 0.4])
    result = _trainer(epochs=3, augment=None, select_metric="val_loss").fit(data_dir)
    assert result.best_epoch == 3


def test_frozen_backbone_trains_only_the_head_then_unfreezes(data_dir: Path) -> None:
    det = Detector.from_backbone(BACKBONE, weights=None, input_size=SIZE)
    snapshots: list[dict[str, torch.Tensor]] = []
    start = _state(det.model)
    trainer = Trainer(
        det, epochs=2, batch_size=8, progress=False, precision="fp32", augment=None,
        freeze_backbone=True, unfreeze_at_epoch=2, calibrate=False,
        on_epoch_end=lambda entry: snapshots.append(_state(det.model)),
    )
    trainer.fit(data_dir)
    after1, after2 = snapshots
    head = {"fc.weight", "fc.bias"}
    assert all(not torch.equal(after1[k], start[k]) for k in head)
    # Nothing else moved in epoch 1, batch-norm statistics included.
    _assert_same_weights({k: v for k, v in after1.items() if k not in head}, {k: v for k, v in start.items() if k not in head})
    assert not torch.equal(after2["conv1.0.weight"], after1["conv1.0.weight"])


@pytest.mark.parametrize("input_size, expected", [(None, (SIZE, 36)), (48, (48, 54))])
def test_fine_tuning_a_detector_keeps_or_changes_its_input_size_and_records_the_one_used(
    data_dir: Path, input_size: int | None, expected: tuple[int, int]
) -> None:
    det = Detector.from_backbone(BACKBONE, weights=None, input_size=SIZE, resize_size=36)
    result = Trainer(det, epochs=1, batch_size=8, progress=False, precision="fp32", augment=None, calibrate=False,
                     input_size=input_size).fit(data_dir)  # fmt: skip
    pre = result.detector.config.preprocess
    assert (pre.input_size, pre.resize_size) == expected
    assert result.detector.config.training["input_size"] == expected[0]
    assert result.detector.score_arrays([np.zeros((60, 60, 3), np.uint8)]).shape == (1,)


def test_face_stage_trains_on_the_largest_face_crop_and_skips_images_without_one(tmp_path: Path) -> None:
    from deepfakedetect.training.data import find_dataset, prepare_images

    data = make_split_data(tmp_path / "data", train=6, val=3, test=0, size=48)
    no_face = data / "train" / "real" / "real_0.png"
    no_face_array = np.asarray(Image.open(no_face).convert("RGB"))

    def detector(images: list[np.ndarray]) -> list[list[Face]]:
        out = []
        for im in images:
            if im.shape == no_face_array.shape and np.array_equal(im, no_face_array):
                out.append([])
            else:
                out.append([Face((4, 4, 20, 20), (), 0.99), Face((10, 10, 40, 44), (), 0.95)])
        return out

    result = _trainer(epochs=1, augment=None, faces=True, face_detector=detector).fit(data)
    assert result.detector.config.faces.enabled
    assert result.detector.config.training["counts"]["train"] == {"real": 5, "fake": 6}
    assert result.detector.config.training["skipped_files"] == 1

    det = Detector(result.detector.model, result.detector.config, face_detector=detector)
    samples = find_dataset(data).train
    prep = prepare_images(samples, preprocess=det.config.preprocess, detector=det, progress=False)
    assert [p for p, _ in prep.skipped] == [str(no_face)]
    from deepfakedetect.models.preprocess import resize_and_crop

    some = samples[3]
    crop = det.extract_faces([np.asarray(Image.open(some.path).convert("RGB"))])[0][0][1]
    assert crop.shape[0] > 16  # the larger face, not the first one listed
    index = [s.path for s in prep.samples].index(some.path)
    np.testing.assert_array_equal(prep.images[index], resize_and_crop(crop, det.config.preprocess))


def test_history_without_matplotlib_skips_the_png_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    history = [
        {"epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "train_accuracy": 0.5, "val_accuracy": 0.6, "val_auc": math.nan},
        {"epoch": 2, "train_loss": 0.5, "val_loss": 0.4, "train_accuracy": 0.7, "val_accuracy": 0.8, "val_auc": 0.9},
    ]
    result = TrainResult(detector=None, history=history, best_epoch=2)
    pytest.importorskip("matplotlib")
    files = result.save_history(tmp_path / "with")
    assert [p.name for p in files] == ["history.json", "history.csv", "history.png"]
    assert (tmp_path / "with" / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "with" / "history.json").read_text())["history"][0]["val_auc"] is None

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with caplog.at_level(logging.INFO, logger="deepfakedetect.training.history"):
        files = result.save_history(tmp_path / "without")
    assert [p.name for p in files] == ["history.json", "history.csv"]
    assert "matplotlib is not installed" in caplog.text


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": 0}, "epochs"),
        ({"optimizer": "lamb"}, "optimizer"),
        ({"scheduler": "onecycle"}, "scheduler"),
        ({"precision": "fp8"}, "precision"),
        ({"select_metric": "val_f1"}, "select_metric"),
        ({"cache": "ram"}, "cache"),
        ({"unfreeze_at_epoch": 2}, "freeze_backbone=True"),
        ({"class_weights": {"real": 1.0}}, "class_weights"),
        ({"balance": "class"}, "balance"),
        ({"lr": -1.0}, "lr"),
        ({"augment": {"jpeg_p": 1}}, "AugmentConfig"),
    ],
)
def test_bad_arguments_raise_config_error_before_any_work(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Trainer("resnet18", weights=None, **kwargs)


def test_missing_class_in_training_data_raises_dataset_error(tmp_path: Path) -> None:
    data = make_split_data(tmp_path / "d", train=3)
    for p in (data / "train" / "fake").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="0 fake"):
        _trainer(epochs=1).fit(data)


def test_precision_auto_follows_the_hardware() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == (torch.bfloat16 if _cpu_has_fast_bf16() else None)
    assert resolve_precision("bf16", cpu) == torch.bfloat16
    assert resolve_precision("fp32", cpu) is None
    with pytest.raises(ConfigError, match="CUDA"):
        resolve_precision("fp16", cpu)


def test_worker_processes_do_not_change_the_result(data_dir: Path) -> None:
    # Augmentation randomness is seeded per item, so loading in 2 worker processes
    # gives bit for bit the weights of loading in the training process.
    kw: dict[str, Any] = {"epochs": 1, "augment": AugmentConfig(), "calibrate": False}
    a = _trainer(num_workers=0, **kw).fit(data_dir)
    b = _trainer(num_workers=2, **kw).fit(data_dir)
    _assert_same_weights(_state(a.detector.model), _state(b.detector.model))


def test_balanced_class_weights_follow_the_head_order_not_the_alphabet() -> None:
    from deepfakedetect.training.distributed import Dist
    from deepfakedetect.training.run import Run

    run = Run(Trainer("resnet18", weights=None), Dist(), torch.device("cpu"))
    run.num_outputs, run.fake_index = 2, 0  # config.labels == ("fake", "real")
    y = np.array([1] * 2 + [0] * 6)  # 2 fakes, 6 reals
    weight = run._criterion(y).weight.tolist()
    assert weight == pytest.approx([8 / (2 * 2), 8 / (2 * 6)])  # [fake, real]
    run.fake_index = 1
    assert run._criterion(y).weight.tolist() == pytest.approx([8 / (2 * 6), 8 / (2 * 2)])
    run.t.class_weights = None
    assert run._criterion(y).weight.tolist() == [1.0, 1.0]
    assert run._targets(torch.tensor([1, 0])).tolist() == [1, 0]  # fake -> index 1 here


def test_disk_cache_with_face_stage(tmp_path: Path) -> None:
    """The disk cache key includes the face stage (a regression: it once called a removed method)."""
    rng = np.random.default_rng(0)
    for cls in ("real", "fake"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "data" / cls / f"{i}.png")

    def one_face(images):
        return [[Face((5, 5, 30, 30), ((10, 12), (25, 12), (17, 18), (12, 25), (23, 25)), 0.99)] for _ in images]

    trainer = Trainer("resnet18", weights=None, epochs=1, input_size=32, faces=True, face_detector=one_face,
                      cache="disk", out_dir=tmp_path / "out", progress=False, val_fraction=0.3,
                      test_fraction=0.0, batch_size=4)  # fmt: skip
    trainer.fit(tmp_path / "data")
    assert list((tmp_path / "out" / "cache").glob("*.npy"))
