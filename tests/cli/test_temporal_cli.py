"""``deepfakedetect train VIDEOS --temporal``: trains, saves with the model, loads back, runs as an aggregator."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from deepfakedetect import ConfigError, Detector
from deepfakedetect.cli import main

pytestmark = [pytest.mark.shared, pytest.mark.slow]

# Two seconds of two real and two fake FF++ videos (training groups), small.
CLIPS = {
    "real": ["youtube__035.mp4", "youtube__036.mp4"],
    "fake": ["Deepfakes__035_036.mp4", "Deepfakes__036_035.mp4"],
}


@pytest.fixture(scope="module")
def videos(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = shared_dir / "data" / "videos" / "ffpp_c23"
    root = tmp_path_factory.mktemp("temporal_videos")
    for label, names in CLIPS.items():
        (root / label).mkdir()
        for name in names:
            if not (src / label / name).is_file():
                pytest.skip(f"{src / label / name} is missing")
            subprocess.run(
                [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-t", "2",
                 "-i", str(src / label / name), "-vf", "scale=-2:240", "-an", "-c:v", "libx264", "-crf", "18",
                 "-pix_fmt", "yuv420p", str(root / label / name)],
                check=True, stdin=subprocess.DEVNULL,
            )  # fmt: skip
    return root


def test_train_temporal_from_the_cli_then_detect_with_it(videos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model"
    code = main(["train", str(videos), "--temporal", "--out", str(out), "--epochs", "2", "--frames", "6",
                 "--val", str(videos), "--json"])  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["train_videos"] == 4 and report["val_videos"] == 4 and len(report["history"]) == 2
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "temporal.json",
                                               "temporal.safetensors", "temporal_report.json", "embeddings"}  # fmt: skip
    assert len(list((out / "embeddings").glob("*.npz"))) == 4  # training and validation share the cache

    det = Detector.from_pretrained(out)
    assert det.temporal_head is not None and det.temporal_head.cfg.kind == "gru"
    video = videos / "fake" / CLIPS["fake"][0]
    result = det.detect_video(video, sampler="uniform:num_frames=6", aggregator="temporal", progress=False)
    assert result.aggregator.startswith("TemporalAggregator") and result.people
    assert 0.0 <= result.fake_score <= 1.0
    # The mean aggregator on the same frames gives another score: the head, not the mean, made it.
    mean = det.detect_video(video, sampler="uniform:num_frames=6", aggregator="mean", progress=False)
    assert mean.fake_score != pytest.approx(result.fake_score, abs=1e-6)
    # A model without a head refuses the temporal aggregator before decoding anything.
    with pytest.raises(ConfigError, match="no temporal head"):
        Detector.from_pretrained().detect_video(video, aggregator="temporal", progress=False)
