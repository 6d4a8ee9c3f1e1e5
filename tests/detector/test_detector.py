import json

import numpy as np
import pytest
import torch

from deepfakedetect import ConfigError, Detector, ImageDecodeError, InputError, ModelLoadError

rng = np.random.default_rng(0)
IMAGES = [rng.integers(0, 256, (40 + 7 * i, 50, 3), dtype=np.uint8) for i in range(5)]


@pytest.fixture(scope="module")
def detector():
    torch.manual_seed(0)
    return Detector.from_backbone("resnet18", input_size=32, device="cpu")


def test_list_in_list_out_order_kept(detector):
    single = [detector.detect_image(im).fake_score for im in IMAGES]
    batched = detector.detect_image(IMAGES, batch_size=2)
    assert [r.fake_score for r in batched] == pytest.approx(single, abs=1e-5)
    assert len(set(np.round(single, 6))) == len(single)  # distinct images, distinct scores


def test_result_fields(detector):
    r = detector.detect_image(IMAGES[0])
    assert 0.0 <= r.fake_score <= 1.0
    assert r.label == ("fake" if r.fake_score >= r.threshold else "real")
    assert r.is_fake == (r.label == "fake")
    d = r.to_dict()
    json.dumps(d)
    assert d["model"]["backbone"] == "resnet18" and d["status"] == "ok"


def test_threshold_decides_label(detector):
    score = detector.detect_image(IMAGES[0]).fake_score
    assert detector.detect_image(IMAGES[0], threshold=0.0).label == "fake"
    assert detector.detect_image(IMAGES[0], threshold=min(1.0, score + 1e-3)).label == "real"
    with pytest.raises(ConfigError):
        detector.detect_image(IMAGES[0], threshold=1.5)


def test_save_and_load_give_identical_scores(detector, tmp_path):
    folder = detector.save_pretrained(tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = Detector.from_pretrained(folder, device="cpu")
    assert loaded.config == detector.config.replace(library_version=loaded.config.library_version)
    a = [r.fake_score for r in detector.detect_image(IMAGES)]
    b = [r.fake_score for r in loaded.detect_image(IMAGES)]
    assert a == b
    assert loaded.source == str(folder)


def test_half_precision_file_loads_as_float32(detector, tmp_path):
    folder = detector.save_pretrained(tmp_path / "half", dtype=torch.float16)
    loaded = Detector.from_pretrained(folder, device="cpu")
    assert next(loaded.model.parameters()).dtype == torch.float32
    a = np.array([r.fake_score for r in detector.detect_image(IMAGES)])
    b = np.array([r.fake_score for r in loaded.detect_image(IMAGES)])
    assert np.abs(a - b).max() < 5e-3


def test_one_logit_head_and_label_order():
    det = Detector.from_backbone("resnet18", num_outputs=1, input_size=32)
    assert det.model.fc.out_features == 1
    logits = torch.tensor([[2.0], [-2.0]])
    assert det.fake_probability(logits).tolist() == pytest.approx([0.8808, 0.1192], abs=1e-4)
    det2 = Detector.from_backbone("resnet18", input_size=32)
    det2.config = det2.config.replace(labels=("real", "fake"))
    assert det2.fake_probability(torch.tensor([[0.0, 5.0]])).item() > 0.99


def test_temperature_softens(detector):
    logits = torch.tensor([[3.0, -3.0]])
    sharp = detector.fake_probability(logits).item()
    det = Detector(detector.model, detector.config.replace(
        calibration=detector.config.calibration.__class__(temperature=4.0)), device="cpu")
    assert 0.5 < det.fake_probability(logits).item() < sharp


def test_missing_key_is_reported(detector, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = detector.save_pretrained(tmp_path / "m")
    state = load_file(folder / "model.safetensors")
    del state["fc.bias"]
    state["extra.weight"] = torch.zeros(1)
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ModelLoadError, match=r"missing keys \(1\): fc.bias.*unexpected keys \(1\): extra.weight"):
        Detector.from_pretrained(folder)


def test_pickle_only_folder_is_refused(detector, tmp_path):
    folder = detector.save_pretrained(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="safetensors"):
        Detector.from_pretrained(folder)


def test_missing_folder():
    with pytest.raises(ModelLoadError):
        Detector.from_pretrained("./no/such/folder")


def test_unknown_backbone_lists_names():
    with pytest.raises(ConfigError, match="unknown backbone 'resnet5000'.*resnet"):
        Detector.from_backbone("resnet5000")


def test_bad_inputs(detector, tmp_path):
    with pytest.raises(InputError):
        detector.detect_image(42)
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    with pytest.raises(ImageDecodeError, match="bad.jpg"):
        detector.detect_image([IMAGES[0], bad])


def test_backbone_weights_from_safetensors_file(tmp_path):
    import torchvision
    from safetensors.torch import save_file

    ref = torchvision.models.resnet18()
    save_file(ref.state_dict(), tmp_path / "r18.safetensors")
    det = Detector.from_backbone("resnet18", weights=tmp_path / "r18.safetensors")
    assert torch.equal(det.model.conv1.weight, ref.conv1.weight)
    with pytest.raises(ModelLoadError, match="safetensors"):
        Detector.from_backbone("resnet18", weights=tmp_path / "r18.pth")


def test_mobilenet_head_is_replaced():
    det = Detector.from_backbone("mobilenet_v2", input_size=32)
    assert det.model.classifier[-1].out_features == 2
    assert 0 <= det.detect_image(IMAGES[0]).fake_score <= 1


def test_hub_folder_and_offline_cache_give_identical_scores(detector, hub_server, tmp_path):
    folder = detector.save_pretrained(tmp_path / "model")
    sha = hub_server.add_repo("org/tiny-detector", folder)
    cache = tmp_path / "cache"
    from_folder = Detector.from_pretrained(folder, device="cpu")
    from_hub = Detector.from_pretrained("org/tiny-detector", cache_dir=cache, device="cpu")
    pinned = Detector.from_pretrained("org/tiny-detector", revision=sha, cache_dir=cache, device="cpu")
    offline = Detector.from_pretrained("org/tiny-detector", cache_dir=cache, local_files_only=True, device="cpu")
    scores = [[r.fake_score for r in d.detect_image(IMAGES)] for d in (from_folder, from_hub, pinned, offline)]
    assert scores[0] == scores[1] == scores[2] == scores[3]
    assert from_hub.revision == sha and from_hub.source == "org/tiny-detector"
    assert from_hub.detect_image(IMAGES[0]).to_dict()["model"]["revision"] == sha


def test_push_to_hub_round_trip(detector, hub_server, tmp_path):
    commit = detector.push_to_hub("me/pushed", token=hub_server.token)
    assert commit
    pulled = Detector.from_pretrained("me/pushed", cache_dir=tmp_path, device="cpu")
    assert [r.fake_score for r in pulled.detect_image(IMAGES)] == [r.fake_score for r in detector.detect_image(IMAGES)]


def _two_faces_left_half(images):
    """A stand-in face detector: two faces in the left half, none in all-black images."""
    from deepfakedetect.faces.detectors import Face

    out = []
    for im in images:
        if im.max() == 0:
            out.append([])
            continue
        out.append([Face((2.0, 2.0, 18.0, 18.0), ((6, 8), (14, 8), (10, 11), (7, 15), (13, 15)), 0.99),
                    Face((2.0, 22.0, 10.0, 30.0), ((4, 24), (8, 24), (6, 26), (4, 28), (8, 28)), 0.95)])
    return out


def test_face_stage_scores_each_face_and_reduces_by_max():
    from deepfakedetect import FaceConfig, NoFacesError

    det = Detector.from_backbone("resnet18", input_size=32, faces=FaceConfig(enabled=True, min_confidence=0.9))
    det._face_detector = _two_faces_left_half
    r = det.detect_image(IMAGES[0])
    assert r.face_stage and len(r.faces) == 2
    assert r.fake_score == max(f.fake_score for f in r.faces)
    crops = [c for _, c in det.extract_faces([IMAGES[0]])[0]]
    assert [f.fake_score for f in r.faces] == pytest.approx(list(det.score_arrays(crops)), abs=1e-6)
    d = r.to_dict()
    assert len(d["faces"]) == 2 and d["faces"][0]["box"] == [2.0, 2.0, 18.0, 18.0]

    blank = np.zeros((40, 40, 3), np.uint8)
    none = det.detect_image(blank)
    assert none.status == "no_face" and none.fake_score is None and none.label is None and none.is_fake is None
    with pytest.raises(NoFacesError):
        det.detect_image(blank, strict_faces=True)


def test_face_stage_off_by_default_for_new_detectors():
    assert Detector.from_backbone("resnet18").config.faces.enabled is False
