"""Ray Data scoring on a local cluster of 2 workers (skipped when Ray is not installed)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepfakedetect import Detector
from deepfakedetect.batch.many import detect_many

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

# Ray Data's own configuration warns about its deprecated settings on start-up.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _factory(model_dir: str, pid_dir: str):
    def build() -> Detector:
        (Path(pid_dir) / str(os.getpid())).touch()
        return Detector.from_pretrained(model_dir, precision="fp32")

    return build


@pytest.mark.slow
def test_two_local_workers_score_every_file(tmp_path: Path) -> None:
    from deepfakedetect.batch.ray import detect_with_ray

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40 + i, 48, 3), dtype=np.uint8)).save(data / f"{i:02d}.jpg")
    (data / "broken.jpg").write_bytes(b"not an image")
    model_dir = tmp_path / "model"
    Detector.from_backbone("resnet18", input_size=32).save_pretrained(model_dir)
    pids = tmp_path / "pids"
    pids.mkdir()

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ds = detect_with_ray(
            data, detector_factory=_factory(str(model_dir), str(pids)), concurrency=2, files_per_batch=3, batch_size=4
        )
        rows = ds.take_all()
    finally:
        ray.shutdown()

    local = {r["source"]: r for r in detect_many(Detector.from_pretrained(model_dir, precision="fp32"), data, progress=False)}
    assert sorted(r["path"] for r in rows) == sorted(local)
    for row in rows:
        want = local[row["path"]]
        assert row["status"] == want["status"]
        if want["status"] == "ok":
            assert row["fake_score"] == pytest.approx(want["fake_score"], abs=1e-5)
            assert row["label"] == want["label"]
        else:
            assert math.isnan(row["fake_score"]) and row["error"] and row["label"] == ""
    # One detector per worker: two actors, each built its detector once.
    assert len(list(pids.iterdir())) == 2


def test_predictor_names_a_missing_path_column(tmp_path: Path) -> None:
    from deepfakedetect import ConfigError
    from deepfakedetect.batch.ray import DetectorPredictor

    pred = DetectorPredictor(detector_factory=lambda: Detector.from_backbone("resnet18", input_size=32))
    with pytest.raises(ConfigError, match="no column 'path'"):
        pred({"file": np.array(["a.jpg"], dtype=object)})
    Image.new("RGB", (40, 30)).save(tmp_path / "a.jpg")
    out = pred({"path": np.array([str(tmp_path / "a.jpg"), str(tmp_path / "gone.jpg")], dtype=object)})
    assert list(out["status"]) == ["ok", "error"]
    assert 0.0 <= out["fake_score"][0] <= 1.0 and math.isnan(out["fake_score"][1])
