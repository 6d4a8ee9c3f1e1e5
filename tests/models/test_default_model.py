"""The default model shipped in the package: loads offline, within the wheel budget, scores faces sensibly."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from deepfakedetect import Detector
from deepfakedetect.detector import DEFAULT_MODEL_DIR


def test_default_model_is_small_and_complete():
    files = {p.name: p.stat().st_size for p in DEFAULT_MODEL_DIR.iterdir()}
    # The manifest lists the training and calibration data by content, so evaluate() can
    # tell data the model has seen from data it has not.
    assert set(files) == {"config.json", "model.safetensors", "README.md", "training_manifest.json"}
    assert sum(files.values()) < 15 * 2**20


def test_default_model_names_no_path_of_the_machine_that_built_it():
    text = (DEFAULT_MODEL_DIR / "config.json").read_text()
    assert '"/' not in text and ":\\\\" not in text  # no absolute POSIX or Windows path


def test_default_model_knows_its_training_data():
    det = Detector.from_pretrained(device="cpu")
    counts = det.training_manifest.counts()
    assert counts["train"] > 5000 and counts["val"] > 1000 and counts["calibration"] > 1000
    assert det.config.video_calibration is not None and det.config.calibration.uncertain_band is not None


def test_default_model_loads_offline_without_sockets(monkeypatch):
    def no_socket(*args, **kwargs):
        raise AssertionError("the default model must load without the network")

    monkeypatch.setattr(socket, "socket", no_socket)
    det = Detector.from_pretrained(device="cpu")
    assert det.source == "default" and det.config.faces.enabled
    r = det.detect_image(np.zeros((64, 64, 3), np.uint8))
    assert r.status == "no_face" and r.fake_score is None  # a blank image has no face: not scored


@pytest.mark.shared
def test_default_model_separates_real_and_fake_faces(shared_dir):
    faces = shared_dir / "data" / "faces" / "lfw_faceswap" / "test"
    real = sorted((faces / "real").glob("*.jpg"))[:10]
    fake = sorted((faces / "fake").glob("*.jpg"))[:10]
    det = Detector.from_pretrained(device="cpu")
    scores = [r.fake_score for r in det.detect_image(real + fake)]
    assert all(s is not None for s in scores)
    real_scores, fake_scores = np.array(scores[:10]), np.array(scores[10:])
    # AUC over these 100 pairs; the full LFW test split gives 0.988 (docs/quality.md).
    auc = (fake_scores[:, None] > real_scores[None, :]).mean()
    assert auc > 0.9


def test_a_pushed_copy_of_the_default_model_is_the_default_model(hub_server, tmp_path):
    """What ships in the package is what the Hub would serve: push it, load it back, compare."""
    import torch

    shipped = {p.name: p.read_bytes() for p in DEFAULT_MODEL_DIR.iterdir()}
    det = Detector.from_pretrained(device="cpu", precision="fp32")
    sha = det.push_to_hub(
        "deepfakedetect/default", token=hub_server.token, dtype=torch.float16, model_card=shipped["README.md"].decode()
    )
    remote = hub_server.files("deepfakedetect/default", sha)
    assert {k: remote[k] for k in shipped} == shipped  # byte for byte (the Hub adds its .gitattributes)
    pulled = Detector.from_pretrained("deepfakedetect/default", revision=sha, cache_dir=tmp_path, device="cpu", precision="fp32")
    assert pulled.revision == sha and pulled.config == det.config
    a, b = det.model.state_dict(), pulled.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    faces = np.random.default_rng(0).integers(0, 256, (4, 128, 128, 3), dtype=np.uint8)
    np.testing.assert_array_equal(det.score_arrays(list(faces)), pulled.score_arrays(list(faces)))
