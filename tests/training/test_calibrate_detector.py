"""Calibration per modality, the uncertain band and test-time flip, through the public API.

The detector here is a tiny fixed network whose fake logit grows with the brightness of
the left half of its input, so every expected score can be worked out by hand: images
and videos of chosen brightness land where the test needs them, and a mirrored image
scores differently from the original.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from deepfakedetect import (
    CalibrationConfig,
    ConfigError,
    Detector,
    ModelConfig,
    PreprocessConfig,
    calibrate_detector,
)


class LeftBrightness(nn.Module):
    """Fake logit = 4 x the mean of the left half of the normalised input; real logit 0."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fake = 4.0 * x[:, :, :, : x.shape[3] // 2].mean(dim=(1, 2, 3))
        return torch.stack([fake, torch.zeros_like(fake)], dim=1)


def make_detector(**config: object) -> Detector:
    cfg = ModelConfig(backbone="left_brightness", preprocess=PreprocessConfig(input_size=32, resize_size=32), **config)
    return Detector(LeftBrightness(), cfg, device="cpu", precision="fp32")


def grey(value: float, size: int = 40, *, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(value, 3, (size, size, 3)), 0, 255).astype(np.uint8)


def write_images(root: Path, values: dict[str, list[float]]) -> Path:
    for label, levels in values.items():
        (root / label).mkdir(parents=True, exist_ok=True)
        for i, v in enumerate(levels):
            Image.fromarray(grey(v, seed=i)).save(root / label / f"{label}_{i:02d}.png")
    return root


def write_video(path: Path, value: float, n: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = b"".join(grey(value, 48, seed=i).tobytes() for i in range(n))
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "rawvideo",
        "-pix_fmt", "rgb24", "-s", "48x48", "-r", "10", "-i", "pipe:0", "-c:v", "libx264",
        "-preset", "ultrafast", "-qp", "0", "-pix_fmt", "yuv444p", "-y", str(path),
    ]  # fmt: skip
    subprocess.run(cmd, input=frames, check=True)
    return path


# Images: reals 40-120, fakes 100-200 (some overlap). Videos sit lower: reals 20-60, fakes 60-110,
# as a face-swap video's frames score lower than still fakes do.
IMAGE_LEVELS = {"real": [40, 55, 70, 85, 100, 110, 120], "fake": [100, 115, 130, 150, 170, 185, 200]}
VIDEO_LEVELS = {"real": [20, 30, 40, 50, 62], "fake": [58, 70, 80, 95, 110]}


@pytest.fixture(scope="module")
def val_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("val")
    images = write_images(root / "images", IMAGE_LEVELS)
    for label, levels in VIDEO_LEVELS.items():
        for i, v in enumerate(levels):
            write_video(root / "videos" / label / f"{label}_{i}.mp4", v)
    return images, root / "videos"


@pytest.fixture(scope="module")
def calibrated(val_data: tuple[Path, Path]) -> Detector:
    images, videos = val_data
    return calibrate_detector(
        make_detector(), images=images, videos=videos, sampler="uniform:num_frames=3", progress=False
    )


def test_images_and_videos_get_their_own_calibration(calibrated: Detector, val_data: tuple[Path, Path], tmp_path: Path) -> None:
    image_cal, video_cal = calibrated.config.calibration, calibrated.config.video_calibration
    assert video_cal is not None
    assert video_cal.threshold != image_cal.threshold
    assert calibrated.threshold == image_cal.threshold and calibrated.video_threshold == video_cal.threshold
    assert image_cal.fitted_on["n_real"] == 7 and video_cal.fitted_on["n_fake"] == 5
    assert set(image_cal.operating_points) == {"fpr@1%", "fpr@5%"} and video_cal.operating_points
    # The sampler the video calibration was fitted with becomes the model's default.
    assert calibrated.config.video.sampler == "uniform:num_frames=3"

    # A dim fake video: the video calibration calls it fake, the image calibration would not.
    clip = write_video(tmp_path / "dim_fake.mp4", 90)
    with_video_cal = calibrated.detect_video(clip, progress=False)
    assert with_video_cal.threshold == pytest.approx(video_cal.threshold)
    assert with_video_cal.label == "fake"
    images_only = Detector(calibrated.model, calibrated.config.replace(video_calibration=None), device="cpu", precision="fp32")
    old_way = images_only.detect_video(clip, progress=False)
    assert old_way.threshold == pytest.approx(image_cal.threshold) and old_way.label == "real"
    # Frames keep the image calibration: each frame's score is what detect_image says of it.
    frame_scores = [f.fake_score for f in with_video_cal.frames]
    assert frame_scores == pytest.approx([f.fake_score for f in old_way.frames])


def test_video_scores_are_the_aggregate_under_the_video_temperature(calibrated: Detector, tmp_path: Path) -> None:
    clip = write_video(tmp_path / "v.mp4", 75)
    r = calibrated.detect_video(clip, progress=False)
    mean = float(np.mean([f.fake_score for f in r.frames]))
    t = calibrated.config.video_calibration.temperature  # type: ignore[union-attr]
    expected = 1 / (1 + np.exp(-np.log(mean / (1 - mean)) / t))
    assert r.fake_score == pytest.approx(expected, abs=1e-6)


def test_a_config_with_one_calibration_uses_it_for_both(tmp_path: Path) -> None:
    doc = make_detector().config.to_dict()
    doc["calibration"] = {"temperature": 2.0, "threshold": 0.3, "operating_points": {}}
    doc.pop("video_calibration", None)
    config = ModelConfig.from_dict(doc)
    assert config.video_calibration is None
    det = Detector(LeftBrightness(), config, device="cpu")
    assert det.video_threshold == det.threshold == 0.3
    r = det.detect_video(write_video(tmp_path / "v.mp4", 100), sampler="uniform:num_frames=2", progress=False)
    assert r.threshold == 0.3
    assert r.fake_score == pytest.approx(np.mean([f.fake_score for f in r.frames]))


def test_calibration_survives_save_and_load(calibrated: Detector, tmp_path: Path) -> None:
    config = calibrated.config
    assert ModelConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    config.save(tmp_path / "config.json")
    loaded = ModelConfig.load(tmp_path / "config.json")
    assert loaded.video_calibration == config.video_calibration
    assert loaded.calibration.uncertain_band == config.calibration.uncertain_band


def test_the_uncertain_band_is_fitted_on_validation_and_shown(calibrated: Detector, val_data: tuple[Path, Path]) -> None:
    cal = calibrated.config.calibration
    low, high = cal.uncertain_band  # type: ignore[misc]
    assert 0.0 <= low <= cal.threshold <= high <= 1.0 and low < high  # the classes overlap: a real band
    images = sorted(val_data[0].glob("*/*.png"))
    results = calibrated.detect_image(images)
    verdicts = [r.verdict for r in results]
    assert set(verdicts) <= {"real", "fake", "uncertain"} and "uncertain" in verdicts
    for r in results:
        inside = low <= r.fake_score < high
        assert (r.verdict == "uncertain") == inside
        assert r.verdict in (r.label, "uncertain")  # never contradicts the label
        d = r.to_dict()
        assert d["verdict"] == r.verdict and d["uncertain_band"] == [low, high]
    share = sum(v == "uncertain" for v in verdicts) / len(verdicts)
    assert cal.fitted_on["uncertain_share"] == pytest.approx(share)
    # Outside the band, validation calls reach the target precision (class-balanced).
    target = cal.fitted_on["target_precision"]
    decided = [(r.verdict, p.parent.name) for r, p in zip(results, images) if r.verdict != "uncertain"]
    assert all(v == label for v, label in decided) or target < 1.0


def test_the_band_can_be_overridden_or_turned_off(calibrated: Detector) -> None:
    image = grey(110)
    model_band = calibrated.detect_image(image)
    wide = Detector(calibrated.model, calibrated.config, device="cpu", uncertain_band=(0.0, 1.0)).detect_image(image)
    off = Detector(calibrated.model, calibrated.config, device="cpu", uncertain_band=False).detect_image(image)
    assert wide.verdict == "uncertain" and wide.uncertain_band == (0.0, 1.0)
    assert off.verdict == off.label and off.uncertain_band is None
    assert model_band.uncertain_band == calibrated.config.calibration.uncertain_band
    with pytest.raises(ConfigError, match="uncertain_band"):
        Detector(calibrated.model, calibrated.config, uncertain_band=(0.8, 0.2))
    with pytest.raises(ConfigError, match="uncertain_band"):
        CalibrationConfig(threshold=0.5, uncertain_band=(0.6, 0.9))  # must hold the threshold


def test_test_time_flip_averages_the_logits_of_the_mirror_image() -> None:
    image = np.concatenate([grey(200, 40)[:, :20], grey(40, 40)[:, 20:]], axis=1)  # bright left, dark right
    plain = make_detector()
    flipped = make_detector(test_time_flip=True)
    assert flipped.flip and not plain.flip
    a = plain.detect_image(image).fake_score
    b = plain.detect_image(image[:, ::-1].copy()).fake_score
    c = flipped.detect_image(image).fake_score
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    assert a > 0.9 and b < 0.1  # the model looks at the left half only
    assert logit(c) == pytest.approx((logit(a) + logit(b)) / 2, abs=1e-4)
    # The option overrides the config either way.
    assert Detector(plain.model, plain.config, flip=True).detect_image(image).fake_score == pytest.approx(c, abs=1e-6)
    assert Detector(plain.model, flipped.config, flip=False).detect_image(image).fake_score == pytest.approx(a, abs=1e-6)


def test_calibrate_detector_refuses_bad_input(tmp_path: Path, val_data: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="images.*videos"):
        calibrate_detector(make_detector())
    with pytest.raises(ConfigError, match="target_precision"):
        calibrate_detector(make_detector(), images=val_data[0], target_precision=0.3, progress=False)
    with pytest.raises(ConfigError, match="sampler"):
        calibrate_detector(make_detector(), videos=val_data[1], sampler=lambda info: [0], progress=False)


def test_a_video_folder_with_splits_is_calibrated_on_its_val_part(val_data: tuple[Path, Path], tmp_path: Path) -> None:
    # train/, val/, test/ folders holding only videos: their val/ part is used, the rest left alone.
    root = tmp_path / "videos"
    for split, labels in (("val", ("real", "fake")), ("train", ("real",)), ("test", ("fake",))):
        for label in labels:
            (root / split / label).mkdir(parents=True)
            for video in sorted((val_data[1] / label).glob("*.mp4")):
                (root / split / label / video.name).symlink_to(video)
    det = calibrate_detector(make_detector(), videos=root, sampler="uniform:num_frames=2", progress=False)
    fitted = det.config.video_calibration.fitted_on
    assert fitted["kind"] == "video" and (fitted["n_real"], fitted["n_fake"]) == (5, 5)
    assert det.training_manifest.counts()["calibration"] == 10


def test_cli_shows_the_verdict_and_takes_the_options(calibrated: Detector, tmp_path: Path) -> None:
    model = tmp_path / "model"
    # A saveable detector carrying the calibration: a real (tiny) backbone.
    det = Detector.from_backbone("shufflenet_v2_x0_5", input_size=32, device="cpu")
    det = Detector(det.model, det.config.replace(calibration=calibrated.config.calibration), device="cpu")
    det.save_pretrained(model)
    image = tmp_path / "x.png"
    Image.fromarray(grey(110)).save(image)
    run = [sys.executable, "-m", "deepfakedetect", "detect", str(image), "--model", str(model), "--no-progress"]
    out = subprocess.run([*run, "--json"], capture_output=True, text=True, check=True).stdout
    record = json.loads(out)
    assert record["verdict"] in ("real", "fake", "uncertain") and "uncertain_band" in record
    text = subprocess.run([*run, "--uncertain-band", "0,1"], capture_output=True, text=True, check=True).stdout
    assert "uncertain" in text.split("\t")[1]
    out = subprocess.run([*run, "--uncertain-band", "off", "--json", "--flip"], capture_output=True, text=True, check=True).stdout
    record = json.loads(out)
    assert record["verdict"] == record["label"] and record["uncertain_band"] is None


def test_cli_calibrate_writes_a_model_calibrated_per_modality(val_data: tuple[Path, Path], tmp_path: Path) -> None:
    images, videos = val_data
    src, out = tmp_path / "model", tmp_path / "calibrated"
    Detector.from_backbone("shufflenet_v2_x0_5", input_size=32, device="cpu").save_pretrained(src)
    cmd = [
        sys.executable, "-m", "deepfakedetect", "calibrate", str(src), "--images", str(images), "--videos", str(videos),
        "--sampler", "uniform:num_frames=2", "--out", str(out), "--no-progress",
    ]  # fmt: skip
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert "video" in text and "uncertain" in text
    det = Detector.from_pretrained(out)
    assert det.config.video_calibration is not None and det.config.video_calibration.fitted_on["kind"] == "video"
    assert det.config.calibration.fitted_on["kind"] == "image"
    assert det.training_manifest is not None and det.training_manifest.counts()["calibration"] == 24
    assert str(tmp_path) not in (out / "config.json").read_text()


def test_the_trainer_fits_both_when_given_validation_videos(val_data: tuple[Path, Path], tmp_path: Path) -> None:
    from deepfakedetect import Trainer

    images, videos = val_data
    trainer = Trainer(
        "shufflenet_v2_x0_5", weights=None, epochs=1, batch_size=4, input_size=32, precision="fp32",
        progress=False, val_fraction=0.3, test_fraction=0.0,
    )  # fmt: skip
    result = trainer.fit(images, val_videos=videos)
    config = result.detector.config
    assert config.calibration.fitted_on["kind"] == "image" and config.calibration.uncertain_band is not None
    assert config.video_calibration is not None and config.video_calibration.fitted_on["n_real"] == 5
    assert "val_video_auc" in result.metrics and "val_video_uncertain_share" in result.metrics
    assert result.detector.training_manifest.counts()["val"] == 4 + 10  # validation images and videos
