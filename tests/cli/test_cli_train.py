"""``evaluate()`` and the ``train`` / ``evaluate`` subcommands."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from imagefolders import make_split_data

from deepfakedetect import ConfigError, DatasetError, Detector
from deepfakedetect.cli.parser import build_parser
from deepfakedetect.training.data import find_dataset
from deepfakedetect.training.evaluate import EvaluationReport, evaluate
from deepfakedetect._metrics import binary_metrics


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def run_cli(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    return int(_command(args)(args))


def _command(args: argparse.Namespace) -> Any:
    module, _, name = args.run.partition(":")
    return getattr(importlib.import_module(module), name)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_split_data(tmp_path_factory.mktemp("data"), train=6, val=3, test=2)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.from_backbone("shufflenet_v2_x0_5", input_size=32, device="cpu")


def test_train_and_evaluate_from_the_command_line(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "model"
    code = run_cli([
        "train", str(data_dir), "--backbone", "shufflenet_v2_x0_5", "--weights", "none", "--epochs", "2",
        "--batch-size", "8", "--input-size", "32", "--precision", "fp32", "--no-progress", "--out", str(out),
        "--balance", "source",
    ])  # fmt: skip
    assert code == 0
    text = capsys.readouterr().out
    assert "kept epoch" in text and "val: accuracy" in text and str(out) in text
    loaded = Detector.from_pretrained(out)
    assert loaded.config.training["epochs_completed"] == 2
    assert loaded.config.training["init_weights"] is None
    assert loaded.config.training["balance"] == "source"

    roc = tmp_path / "roc.png"
    assert run_cli(["evaluate", str(out), str(data_dir), "--json", "--roc", str(roc), "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and report["levels"]["image"]["n"] == 4
    for key in ("accuracy", "precision", "recall", "auc", "eer", "log_loss", "ece", "confusion_matrix"):
        assert key in report["levels"]["image"]
    assert report["threshold"] == pytest.approx(loaded.config.calibration.threshold)
    assert roc.read_bytes()[:4] == b"\x89PNG"

    assert run_cli(["evaluate", str(out), str(data_dir), "--split", "all", "--no-progress"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("| metric | image |") and "| n (real / fake) | 22 (11 / 11) |" in table

    # A second run resumes: nothing left to train, the model is only finalised again.
    assert run_cli([
        "train", str(data_dir), "--backbone", "shufflenet_v2_x0_5", "--weights", "none", "--epochs", "2",
        "--batch-size", "8", "--input-size", "32", "--precision", "fp32", "--out", str(out), "--resume", "--json",
        "--balance", "source",
    ]) == 0  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert [h["epoch"] for h in doc["history"]] == [1, 2]


def test_cli_options_reach_the_trainer_and_errors_propagate(data_dir: Path, tmp_path: Path) -> None:
    parser = build_parser()
    args = parser.parse_args(["train", "d", "--out", "o", "--weights", "none", "--no-augment", "--faces", "--cache", "none"])
    assert (args.weights, args.no_augment, args.faces, args.cache) == ("none", True, True, "none")
    assert args.balance is None and parser.parse_args(["train", "d", "--out", "o", "--balance", "source"]).balance == "source"
    args = parser.parse_args(["evaluate", "m", "d1", "d2", "--videos", "--split", "val"])
    assert args.data == ["d1", "d2"] and args.videos and args.split == "val"
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "d", "--out", "o", "--epochs", "0"])
    with pytest.raises(ConfigError, match="select_metric"):
        run_cli(["train", str(data_dir), "--out", str(tmp_path / "o"), "--select-metric", "val_f1"])
    with pytest.raises(DatasetError, match="does not exist"):
        run_cli(["train", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--weights", "none"])


def test_evaluate_report_matches_the_detector_and_counts_unreadable_files_as_misses(
    data_dir: Path, tmp_path: Path, detector: Detector
) -> None:
    import shutil

    data = tmp_path / "d"
    shutil.copytree(data_dir / "test", data)
    (data / "fake" / "broken.png").write_bytes(b"garbage")
    report = evaluate(detector, data, progress=False)
    assert isinstance(report, EvaluationReport)
    assert report.split == "test" and report.levels.keys() == {"image"}
    assert [p for p, _ in report.skipped] == [str(data / "fake" / "broken.png")]
    item = report.items["image"]
    scores = [r.fake_score for r in detector.detect_image([Path(s) for s in item["source"]])]
    assert item["fake_score"] == pytest.approx(scores, abs=1e-6)
    # The unreadable fake is a miss: scored as 0.0, the most wrong score for a fake.
    expected = binary_metrics([*item["y"], 1], [*scores, 0.0], threshold=detector.threshold)
    got = report.levels["image"]
    assert got["n"] == 5 and got["n_errors"] == 1 and got["confusion_matrix"] == expected["confusion_matrix"]
    assert got["auc"] == pytest.approx(expected["auc"])
    json.dumps(report.to_dict(include_scores=True), allow_nan=False)
    assert "| ROC AUC |" in str(report) and "1 files could not be scored, counted as misses" in str(report)
    with pytest.raises(DatasetError, match="broken.png"):
        evaluate(detector, data, progress=False, strict=True)
    with pytest.raises(ConfigError, match="split"):
        evaluate(detector, data, split="holdout")


def test_a_pool_the_model_trained_on_is_evaluated_on_its_held_out_part(tmp_path: Path, detector: Detector) -> None:
    from imagefolders import make_dataset

    pool = make_dataset(tmp_path / "pool", 10, size=20)
    everything = evaluate(detector, pool, progress=False)
    assert everything.levels["image"]["n"] == 20  # never trained on: all of it is test data

    trained = Detector(
        detector.model,
        detector.config.replace(
            training={"data": [str(pool.resolve())], "split": {"seed": 7, "val_fraction": 0.2, "test_fraction": 0.3}}
        ),
    )
    held_out = evaluate(trained, pool, progress=False)
    expected = find_dataset(pool, val_fraction=0.2, test_fraction=0.3, seed=7).test
    assert sorted(held_out.items["image"]["source"]) == sorted(str(s.path) for s in expected)
    assert held_out.levels["image"]["n"] == 6
    assert evaluate(trained, pool, split="all", progress=False).levels["image"]["n"] == 20


def _write_video(path: Path, bright: bool, n: int = 8) -> Path:
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        img = rng.normal(170 if bright else 70, 20, (48, 64, 3))
        frames.append(np.clip(img, 0, 255).astype(np.uint8).tobytes())
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
        "-pix_fmt", "rgb24", "-s", "64x48", "-r", "10", "-i", "pipe:0", "-c:v", "libx264",
        "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-y", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, input=b"".join(frames), check=True)
    return path


def test_videos_are_evaluated_at_video_and_frame_level(tmp_path: Path, detector: Detector) -> None:
    for label, bright in (("real", False), ("fake", True)):
        (tmp_path / "v" / label).mkdir(parents=True)
        for i in range(2):
            _write_video(tmp_path / "v" / label / f"{label}{i}.mp4", bright)
    (tmp_path / "v" / "fake" / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "v" / "real" / "still.jpg").write_bytes(b"ignored: not a video")
    report = evaluate(detector, tmp_path / "v", videos=True, sampler="uniform:num_frames=3", progress=False)
    assert report.levels.keys() == {"video", "frame"}
    # The broken video counts as a miss at video level; it has no frames.
    assert report.levels["video"]["n"] == 5 and report.levels["video"]["n_errors"] == 1
    assert report.levels["frame"]["n"] == 12
    assert [Path(p).name for p, _ in report.skipped] == ["broken.mp4"]
    assert "| metric | video | frame |" in report.to_markdown()
    roc = report.plot_roc(tmp_path / "roc.png")
    assert roc.read_bytes()[:4] == b"\x89PNG"
