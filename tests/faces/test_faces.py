"""The face stage: RetinaFace network and weights, decoding, crops, selection, plugins."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from safetensors.torch import save as safetensors_bytes

from deepfakedetect import ConfigError, FaceConfig, InputError, ModelLoadError, UnknownPluginError
from deepfakedetect import _utils
from deepfakedetect.faces import detectors as _faces
from deepfakedetect.faces import stage as _stage
from deepfakedetect.faces.detectors import DEFAULT_FILENAME, DEFAULT_REPO_ID, DEFAULT_REVISION, FACE_DETECTORS, WEIGHTS_ENV, Face, FaceDetector, RetinaFaceDetector, get_face_detector, register_face_detector, resolve_retinaface_weights
from deepfakedetect.faces.stage import FaceStage, crop_face, select_faces
from deepfakedetect.faces.retinaface import (
    RetinaFace,
    decode_boxes,
    decode_landmarks,
    detect_faces,
    load_retinaface,
    make_priors,
)

# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights file with the right names and shapes but random values (offline tests)."""
    torch.manual_seed(0)
    net = RetinaFace()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path_factory.mktemp("rf") / "random.safetensors"
    save_file(net.state_dict(), str(path))
    return path


def _face(box, landmarks=(), confidence=0.99) -> Face:
    return Face(tuple(float(v) for v in box), landmarks, confidence)


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _first_frames(path: Path, picks: tuple[int, ...]) -> list[np.ndarray]:
    """Frames at the given indices, decoded sequentially from the start (no seeking)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    meta = next(gen)
    w, h = meta["size"]
    out = []
    try:
        for i, raw in enumerate(gen):
            if i in picks:
                out.append(np.frombuffer(raw, np.uint8).reshape(h, w, 3).copy())
            if i >= max(picks):
                break
    finally:
        gen.close()
    return out


def _reference_priors(height: int, width: int) -> list[list[float]]:
    """The reference implementation's PriorBox, as plain loops."""
    out = []
    for step, sizes in zip((8, 16, 32), ((16, 32), (64, 128), (256, 512))):
        for i in range(math.ceil(height / step)):
            for j in range(math.ceil(width / step)):
                for m in sizes:
                    out.append([(j + 0.5) * step / width, (i + 0.5) * step / height, m / width, m / height])
    return out


# --------------------------------------------------------------------------- network and weights


@pytest.mark.shared
def test_architecture_matches_trained_weights_exactly(retinaface_weights: Path) -> None:
    keys = json.loads(retinaface_weights.with_name("retinaface_mobilenet0.25.keys.json").read_text())
    ours = {k: list(v.shape) for k, v in RetinaFace().state_dict().items()}
    assert ours == keys  # same names, same shapes, nothing extra (no num_batches_tracked)
    state = load_file(str(retinaface_weights))
    assert set(state) == set(keys)
    net = RetinaFace()
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(0.43e6, rel=0.02)


def test_load_refuses_mismatched_weights_and_lists_keys(random_weights: Path, tmp_path: Path) -> None:
    state = load_file(str(random_weights))
    state["extra.weight"] = torch.zeros(1)
    del state["ClassHead.0.conv1x1.bias"]
    state["BboxHead.1.conv1x1.weight"] = torch.zeros(3, 64, 1, 1)
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad))
    with pytest.raises(ModelLoadError) as info:
        load_retinaface(bad)
    message = str(info.value)
    assert "ClassHead.0.conv1x1.bias" in message and "extra.weight" in message
    assert "BboxHead.1.conv1x1.weight" in message and str(bad) in message

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelLoadError, match="garbage.safetensors"):
        load_retinaface(garbage)


def test_fused_network_matches_unfused(random_weights: Path) -> None:
    plain = load_retinaface(random_weights, fuse=False)
    fused = load_retinaface(random_weights, fuse=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 3, 72, 100) * 50
    with torch.inference_mode():
        for a, b in zip(plain(x), fused(x)):
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_priors_match_reference_loops() -> None:
    net = RetinaFace().eval()
    for h, w in ((37, 53), (64, 64), (480, 640)):
        ours = make_priors(h, w)
        ref = torch.tensor(_reference_priors(h, w))
        assert ours.shape == ref.shape
        torch.testing.assert_close(ours, ref)
        if h < 100:  # the heads emit one row per prior (checked on small inputs: cheap)
            with torch.inference_mode():
                loc, _, _ = net(torch.zeros(1, 3, h, w))
            assert loc.shape[1] == ours.shape[0]


def test_decoding_matches_formula() -> None:
    rng = np.random.default_rng(1)
    priors = rng.uniform(0.1, 0.9, (7, 4))
    loc = rng.normal(size=(7, 4))
    lm = rng.normal(size=(7, 10))
    cx = priors[:, 0] + loc[:, 0] * 0.1 * priors[:, 2]
    cy = priors[:, 1] + loc[:, 1] * 0.1 * priors[:, 3]
    w = priors[:, 2] * np.exp(loc[:, 2] * 0.2)
    h = priors[:, 3] * np.exp(loc[:, 3] * 0.2)
    expected = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    got = decode_boxes(torch.tensor(loc), torch.tensor(priors)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    pts = decode_landmarks(torch.tensor(lm), torch.tensor(priors)).numpy()
    np.testing.assert_allclose(pts[:, 3, 0], priors[:, 0] + lm[:, 6] * 0.1 * priors[:, 2], rtol=1e-6)
    np.testing.assert_allclose(pts[:, 3, 1], priors[:, 1] + lm[:, 7] * 0.1 * priors[:, 3], rtol=1e-6)


# --------------------------------------------------------------------------- real images


@pytest.fixture(scope="module")
def real_detector(retinaface_weights: Path) -> RetinaFaceDetector:
    return RetinaFaceDetector(retinaface_weights, device="cpu")


@pytest.fixture(scope="module")
def ffhq_images(shared_dir: Path) -> list[np.ndarray]:
    faces = shared_dir / "data" / "faces" / "stylegan2_ffhq"
    files = sorted((faces / "real").glob("*.jpg"))[:20] + sorted((faces / "fake").glob("*.jpg"))[:20]
    return [_read_rgb(f) for f in files]


@pytest.fixture(scope="module")
def lfw_images(shared_dir: Path) -> list[np.ndarray]:
    root = shared_dir / "data" / "faces" / "lfw_faceswap" / "test"
    files = sorted((root / "real").glob("*.jpg"))[:20] + sorted((root / "fake").glob("*.jpg"))[:20]
    return [_read_rgb(f) for f in files]


@pytest.fixture(scope="module")
def video_frames(shared_dir: Path) -> list[np.ndarray]:
    root = shared_dir / "data" / "videos" / "ffpp_c23"
    videos = [root / "real" / "youtube__055.mp4", root / "real" / "youtube__648.mp4", root / "fake" / "FaceSwap__210_241.mp4"]
    return [f for v in videos for f in _first_frames(v, (0, 20, 40))]


def _check_face_geometry(face: Face) -> None:
    x1, y1, x2, y2 = face.box
    (lex, ley), (rex, rey), (nx, ny), (lmx, lmy), (rmx, rmy) = face.landmarks
    slack = 0.05 * max(face.width, face.height)
    for x, y in face.landmarks:
        assert x1 - slack <= x <= x2 + slack and y1 - slack <= y <= y2 + slack, face
    assert lex < rex and lmx < rmx, face  # left eye / mouth corner left of the right ones
    assert max(ley, rey) < ny < min(lmy, rmy), face  # eyes above the nose above the mouth


@pytest.mark.shared
def test_one_confident_face_per_real_image(
    real_detector: RetinaFaceDetector,
    ffhq_images: list[np.ndarray],
    lfw_images: list[np.ndarray],
    video_frames: list[np.ndarray],
) -> None:
    # FFHQ / StyleGAN2 portraits and FF++ newsroom frames hold one face each.
    single = ffhq_images + video_frames
    found = real_detector(single)
    exactly_one = [sum(f.confidence > 0.9 for f in faces) == 1 for faces in found]
    rate = sum(exactly_one) / len(exactly_one)
    print(f"\nexactly one face > 0.9: {sum(exactly_one)}/{len(exactly_one)} = {rate:.1%} (FFHQ/StyleGAN2 + FF++ frames)")
    assert rate >= 0.95

    # LFW photos often show other people beside the subject; the centred subject must be found.
    lfw_found = real_detector(lfw_images)
    centred = []
    for img, faces in zip(lfw_images, lfw_found):
        h, w = img.shape[:2]
        centred.append(any(f.confidence > 0.9 and f.box[0] < w / 2 < f.box[2] and f.box[1] < h / 2 < f.box[3] for f in faces))
    lfw_rate = sum(centred) / len(centred)
    print(f"LFW: centred face > 0.9 in {sum(centred)}/{len(centred)} = {lfw_rate:.1%}")
    assert lfw_rate >= 0.95

    for faces in found + lfw_found:
        if faces:
            _check_face_geometry(max(faces, key=lambda f: f.area))  # the subject, upright


@pytest.mark.shared
def test_no_face_in_blank_or_noise(real_detector: RetinaFaceDetector) -> None:
    rng = np.random.default_rng(0)
    blank = np.full((480, 640, 3), 128, np.uint8)
    black = np.zeros((300, 300, 3), np.uint8)
    noise = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert real_detector([blank, black, noise]) == [[], [], []]


@pytest.mark.shared
def test_batched_equals_one_by_one(
    real_detector: RetinaFaceDetector, ffhq_images: list[np.ndarray], lfw_images: list[np.ndarray], video_frames: list[np.ndarray]
) -> None:
    mixed = [ffhq_images[0], lfw_images[1], video_frames[0], ffhq_images[1], video_frames[3], lfw_images[0]]
    batched = RetinaFaceDetector(real_detector.weights, device="cpu", batch_size=4)(mixed)
    for img, together in zip(mixed, batched):
        alone = real_detector([img])[0]
        strong_alone = [f for f in alone if f.confidence > 0.9]
        strong_together = [f for f in together if f.confidence > 0.9]
        assert len(strong_alone) == len(strong_together) >= 1
        for a, b in zip(strong_alone, strong_together):
            # Only float summation order may differ between batch sizes.
            np.testing.assert_allclose(a.box, b.box, atol=1e-2)
            np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-2)
            assert a.confidence == pytest.approx(b.confidence, abs=1e-4)


@pytest.mark.shared
def test_boxes_map_back_from_downscaled_detection(real_detector: RetinaFaceDetector, ffhq_images: list[np.ndarray]) -> None:
    from PIL import Image

    img = ffhq_images[2]  # 384 px: detected at full size
    face = max(real_detector([img])[0], key=lambda f: f.area)
    side = max(face.width, face.height)

    # A 2x nearest-neighbour copy detected at max_size=384 is (nearly) the same input
    # as the original: results must be the original's, times two.
    doubled = np.repeat(np.repeat(img, 2, axis=0), 2, axis=1)
    at_384 = RetinaFaceDetector(real_detector.weights, device="cpu", max_size=384)
    again = max(at_384([doubled])[0], key=lambda f: f.area)
    np.testing.assert_allclose(np.array(again.box), np.array(face.box) * 2, atol=0.01 * side * 2)
    np.testing.assert_allclose(np.array(again.landmarks), np.array(face.landmarks) * 2, atol=0.01 * side * 2)

    # A smooth 2x upscale detected at the default 640: the same face, box scaled by 2
    # (the box regressor itself varies a few percent with the face's scale).
    big = np.asarray(Image.fromarray(img).resize((img.shape[1] * 2, img.shape[0] * 2), Image.BICUBIC))
    big_face = max(real_detector([big])[0], key=lambda f: f.area)
    np.testing.assert_allclose(np.array(big_face.box), np.array(face.box) * 2, atol=0.06 * side * 2)

    # A face in a 1080p frame: detection runs at 640 px, results come in frame pixels,
    # as if we had resized the frame to 640x360 ourselves and scaled the boxes by 3.
    canvas = np.zeros((1080, 1920, 3), np.uint8)
    canvas[500:884, 1200:1584] = img
    in_frame = max(real_detector([canvas])[0], key=lambda f: f.area)
    small = np.asarray(Image.fromarray(canvas).resize((640, 360), Image.BILINEAR))
    reference = max(real_detector([small])[0], key=lambda f: f.area)
    np.testing.assert_allclose(in_frame.box, np.array(reference.box) * 3, atol=0.02 * side)
    np.testing.assert_allclose(in_frame.landmarks, np.array(reference.landmarks) * 3, atol=0.02 * side)
    assert in_frame.box[0] > 1100 and in_frame.box[1] > 400  # where the face was pasted


@pytest.mark.shared
def test_alignment_levels_the_eyes_of_a_tilted_face(real_detector: RetinaFaceDetector, ffhq_images: list[np.ndarray]) -> None:
    from PIL import Image

    tilted = np.asarray(Image.fromarray(ffhq_images[3]).rotate(25, resample=Image.BICUBIC))
    face = max(real_detector([tilted])[0], key=lambda f: f.area)
    (lx, ly), (rx, ry) = face.landmarks[:2]
    assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) > 15
    crop = crop_face(tilted, face, margin=1.6, square=True, align=True)
    again = max(real_detector([crop])[0], key=lambda f: f.area)
    (lx, ly), (rx, ry) = again.landmarks[:2]
    assert abs(math.degrees(math.atan2(ry - ly, rx - lx))) < 5


@pytest.mark.shared
def test_face_stage_on_real_images(retinaface_weights: Path, ffhq_images: list[np.ndarray], video_frames: list[np.ndarray]) -> None:
    stage = FaceStage(FaceConfig(enabled=True, margin=1.3, select="largest"), {"name": "retinaface", "weights": str(retinaface_weights), "device": "cpu"})
    out = stage([ffhq_images[0], video_frames[0]])
    for pairs in out:
        assert len(pairs) == 1
        face, crop = pairs[0]
        side = round(1.3 * max(face.width, face.height))
        assert crop.shape == (side, side, 3) and crop.dtype == np.uint8
    assert json.loads(json.dumps(out[0][0][0].to_dict()))["confidence"] > 0.9


@pytest.mark.shared
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(retinaface_weights: Path, ffhq_images: list[np.ndarray], video_frames: list[np.ndarray]) -> None:
    images = ffhq_images[:4] + video_frames[:4]
    on_cpu = RetinaFaceDetector(retinaface_weights, device="cpu")(images)
    on_gpu = RetinaFaceDetector(retinaface_weights, device="cuda")(images)
    for a_faces, b_faces in zip(on_cpu, on_gpu):
        a_strong = [f for f in a_faces if f.confidence > 0.9]
        b_strong = [f for f in b_faces if f.confidence > 0.9]
        assert len(a_strong) == len(b_strong)
        for a, b in zip(a_strong, b_strong):
            np.testing.assert_allclose(a.box, b.box, atol=1.0)


# --------------------------------------------------------------------------- offline detector behaviour


def test_detector_is_lazy_and_shares_networks(random_weights: Path, tmp_path: Path) -> None:
    RetinaFaceDetector(tmp_path / "missing.safetensors")  # nothing is read until first use
    a = RetinaFaceDetector(random_weights, device="cpu", min_confidence=0.9)
    b = RetinaFaceDetector(str(random_weights), device="cpu", max_size=320)
    assert a.load() is b.load()
    img = np.zeros((40, 60, 3), np.uint8)
    out = b([img, img])
    assert len(out) == 2 and all(isinstance(f, Face) for faces in out for f in faces)
    assert a([]) == []
    with pytest.raises(ModelLoadError, match="missing.safetensors"):
        RetinaFaceDetector(tmp_path / "missing.safetensors")([img])


def test_detect_faces_keeps_order_over_several_batches(random_weights: Path) -> None:
    net = load_retinaface(random_weights)
    rng = np.random.default_rng(3)
    sizes = [(90, 50), (30, 200), (300, 1000), (90, 50)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    images[3] = images[0]
    # Two same-sized images share a batch; the others run alone.
    dets = detect_faces(net, images, min_confidence=0.0, max_size=256, batch_size=2)
    assert len(dets) == 4
    for d in dets:
        assert d.boxes.shape[1:] == (4,) and d.landmarks.shape[1:] == (5, 2) and d.scores.ndim == 1
        assert len(d.scores) > 0 and np.all(np.diff(d.scores) <= 0)
    np.testing.assert_allclose(dets[0].boxes, dets[3].boxes)  # identical images, identical results
    assert not np.allclose(dets[0].scores[:5], dets[1].scores[:5])
    # Each image's results are its own: running it alone gives the same strongest box.
    alone = detect_faces(net, [images[2]], min_confidence=0.0, max_size=256)[0]
    np.testing.assert_allclose(alone.boxes[0], dets[2].boxes[0], rtol=1e-4, atol=1e-2)


def test_bad_images_are_refused(random_weights: Path) -> None:
    det = RetinaFaceDetector(random_weights, device="cpu")
    with pytest.raises(InputError, match="wrap it in a list"):
        det(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="image 1"):
        det([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(InputError, match="image 0"):
        det([np.zeros((8, 8), np.uint8)])


@pytest.mark.parametrize(
    "kwargs",
    [{"min_confidence": 1.5}, {"nms_iou": 0.0}, {"max_size": 16}, {"batch_size": 0}, {"min_confidence": float("nan")}],
)
def test_detector_parameters_are_validated(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        RetinaFaceDetector(None, **kwargs)


# --------------------------------------------------------------------------- weights resolution


@pytest.fixture
def no_shipped_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No environment variable and no copy in the package: resolution reaches the Hub."""
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(_faces, "_PACKAGED_WEIGHTS", tmp_path / "not-shipped" / DEFAULT_FILENAME)
    monkeypatch.setattr(_faces, "_NETWORKS", {})


def _expect(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    """Make ``data`` the weights this version of the library expects."""
    monkeypatch.setattr(_faces, "RETINAFACE_SHA256", hashlib.sha256(data).hexdigest())


def test_shipped_weights_are_the_expected_file(monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = _faces._PACKAGED_WEIGHTS
    assert shipped.is_file(), f"{shipped} is missing from the package"
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == _faces.RETINAFACE_SHA256
    readme = (shipped.parent / "README.md").read_text()
    assert _faces.RETINAFACE_SHA256 in readme and "mobilenet0.25_Final.pth" in readme
    assert "MIT License" in (shipped.parent / "LICENSE-retinaface.txt").read_text()
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert resolve_retinaface_weights() == shipped
    load_retinaface(shipped)  # every name and shape matches the network (strict)


@pytest.mark.shared
def test_shipped_weights_equal_the_shared_copy(retinaface_weights: Path) -> None:
    assert _faces._PACKAGED_WEIGHTS.read_bytes() == retinaface_weights.read_bytes()


def test_weights_resolution_order(
    random_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_server
) -> None:
    data = random_weights.read_bytes()
    _expect(monkeypatch, data)
    shipped = tmp_path / "package" / DEFAULT_FILENAME
    shipped.parent.mkdir()
    shipped.write_bytes(data)
    monkeypatch.setattr(_faces, "_PACKAGED_WEIGHTS", shipped)
    monkeypatch.setattr(_faces, "_NETWORKS", {})
    env_file = tmp_path / "from_env.safetensors"
    env_file.write_bytes(data)
    hub_server.add_repo(DEFAULT_REPO_ID, {DEFAULT_FILENAME: data})
    cache = tmp_path / "cache"

    monkeypatch.setenv(WEIGHTS_ENV, str(env_file))
    assert resolve_retinaface_weights(random_weights, cache_dir=cache) == random_weights
    assert resolve_retinaface_weights(cache_dir=cache) == env_file
    monkeypatch.delenv(WEIGHTS_ENV)
    assert resolve_retinaface_weights(cache_dir=cache) == shipped
    assert hub_server.requests == []  # none of these consulted the Hub
    # Naming a revision asks for the Hub's file at that revision, not the shipped one.
    sha = hub_server.repos[DEFAULT_REPO_ID].branches["main"]
    at_sha = resolve_retinaface_weights(cache_dir=cache, revision=sha)
    assert at_sha.read_bytes() == data and sha in at_sha.parts and cache.resolve() in at_sha.parents

    monkeypatch.setattr(_faces, "_PACKAGED_WEIGHTS", tmp_path / "not-shipped" / DEFAULT_FILENAME)
    from_hub = resolve_retinaface_weights(cache_dir=cache)
    assert from_hub.read_bytes() == data and cache.resolve() in from_hub.parents
    assert any(f"/resolve/{DEFAULT_REVISION}/{DEFAULT_FILENAME}" in r.path for r in hub_server.requests)

    # A detector without weights goes through the same resolution, with its own options.
    hub_server.clear_log()
    det = RetinaFaceDetector(device="cpu", cache_dir=cache, local_files_only=True)
    assert len(det([np.zeros((32, 32, 3), np.uint8)])) == 1
    assert det.load() is _faces._shared_network(from_hub, torch.device("cpu"))
    assert hub_server.requests == []

    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path / "nope.safetensors"))
    with pytest.raises(ModelLoadError, match=WEIGHTS_ENV):
        resolve_retinaface_weights()
    with pytest.raises(ModelLoadError, match="weights=None"):
        resolve_retinaface_weights(tmp_path / "nope.safetensors")


def test_altered_shipped_weights_are_refused(
    random_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_server
) -> None:
    data = random_weights.read_bytes()
    shipped = tmp_path / DEFAULT_FILENAME
    shipped.write_bytes(data)
    monkeypatch.setattr(_faces, "_PACKAGED_WEIGHTS", shipped)
    monkeypatch.setattr(_faces, "_NETWORKS", {})
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(ModelLoadError, match="integrity") as info:
        resolve_retinaface_weights()
    message = str(info.value)
    assert str(shipped) in message and _faces.RETINAFACE_SHA256 in message and "reinstall" in message
    with pytest.raises(ModelLoadError, match="integrity"):
        RetinaFaceDetector(device="cpu")([np.zeros((32, 32, 3), np.uint8)])
    assert _faces._NETWORKS == {} and hub_server.requests == []  # nothing loaded, no quiet fallback to the Hub

    # A matching file is hashed once per process...
    _expect(monkeypatch, data)
    assert resolve_retinaface_weights() == shipped

    def no_hashing(*args: object) -> None:
        raise AssertionError("the verified file was hashed again")

    monkeypatch.setattr(_utils, "hashlib", SimpleNamespace(sha256=no_hashing))
    assert resolve_retinaface_weights() == shipped
    monkeypatch.setattr(_utils, "hashlib", hashlib)
    # ...until it changes on disk.
    altered = bytearray(data)
    altered[-1] ^= 0xFF
    shipped.write_bytes(bytes(altered))
    stat = shipped.stat()
    os.utime(shipped, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelLoadError, match="integrity"):
        resolve_retinaface_weights()


def test_hub_weights_honour_cache_offline_token_and_revision(
    random_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub_server, no_shipped_weights: None
) -> None:
    data = random_weights.read_bytes()
    _expect(monkeypatch, data)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    cache = tmp_path / "cache"
    with pytest.raises(ModelLoadError, match="local_files_only") as info:
        resolve_retinaface_weights(cache_dir=cache, local_files_only=True)
    assert WEIGHTS_ENV in str(info.value) and hub_server.requests == []

    hub_server.add_repo(DEFAULT_REPO_ID, {DEFAULT_FILENAME: data}, private=True)
    with pytest.raises(ModelLoadError, match="HF_TOKEN"):
        resolve_retinaface_weights(cache_dir=cache, token=False)
    path = resolve_retinaface_weights(cache_dir=cache, token=hub_server.token)
    assert path.read_bytes() == data and cache.resolve() in path.parents

    hub_server.clear_log()
    assert resolve_retinaface_weights(cache_dir=cache, local_files_only=True) == path
    assert hub_server.requests == []

    # Other weights on the default revision are refused; naming a revision accepts them.
    other = safetensors_bytes({"w": torch.ones(3)})
    sha = hub_server.commit(DEFAULT_REPO_ID, {DEFAULT_FILENAME: other})
    with pytest.raises(ModelLoadError, match="integrity") as info:
        resolve_retinaface_weights(cache_dir=cache, token=hub_server.token)
    assert "revision=" in str(info.value)
    pinned = resolve_retinaface_weights(cache_dir=cache, token=hub_server.token, revision=sha)
    assert pinned.read_bytes() == other and sha in pinned.parts


def test_hub_failure_says_what_to_do(tmp_path: Path, hub_server, no_shipped_weights: None) -> None:
    from huggingface_hub.errors import RepositoryNotFoundError

    with pytest.raises(ModelLoadError) as info:
        resolve_retinaface_weights(cache_dir=tmp_path)
    message = str(info.value)
    assert DEFAULT_REPO_ID in message and WEIGHTS_ENV in message and "weights=" in message
    assert isinstance(info.value.__cause__, ModelLoadError)
    assert isinstance(info.value.__cause__.__cause__, RepositoryNotFoundError)

    hub_server.add_repo(DEFAULT_REPO_ID, {"README.md": b"no weights here"})
    with pytest.raises(ModelLoadError, match="the revision and the file name") as info:
        resolve_retinaface_weights(cache_dir=tmp_path)
    assert DEFAULT_FILENAME in str(info.value)


# --------------------------------------------------------------------------- Face, selection, crops


def test_face_dataclass() -> None:
    f = Face((10, 20, 50, 80), [(1, 2)] * 5, np.float32(0.5))
    assert (f.width, f.height, f.area) == (40.0, 60.0, 2400.0)
    assert type(f.confidence) is float and f.landmarks[0] == (1.0, 2.0)
    assert json.loads(json.dumps(f.to_dict())) == {
        "box": [10.0, 20.0, 50.0, 80.0],
        "landmarks": [[1.0, 2.0]] * 5,
        "confidence": 0.5,
    }
    with pytest.raises(Exception):
        f.confidence = 1.0  # type: ignore[misc]
    assert Face((5, 5, 1, 1), (), 0.9).area == 0.0


def test_select_faces_modes() -> None:
    big = _face((0, 0, 100, 100), confidence=0.95)
    mid = _face((0, 0, 60, 60), confidence=0.99)
    small = _face((0, 0, 30, 30), confidence=0.97)
    weak = _face((0, 0, 200, 200), confidence=0.6)
    faces = [small, weak, mid, big]
    assert select_faces(faces, FaceConfig(select="all", min_confidence=0.8)) == [big, mid, small]
    assert select_faces(faces, FaceConfig(select="largest", min_confidence=0.8)) == [big]
    assert select_faces(faces, FaceConfig(select="largest", min_confidence=0.5)) == [weak]
    assert select_faces(faces, FaceConfig(select="relative", min_relative_size=0.6, min_confidence=0.8)) == [big, mid]
    assert select_faces(faces, FaceConfig(select="relative", min_relative_size=0.3, min_confidence=0.8)) == [big, mid, small]
    assert select_faces([weak], FaceConfig(min_confidence=0.8)) == []
    assert select_faces([], FaceConfig(select="largest")) == []


def _gradient(h: int = 100, w: int = 120) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)


def test_crop_margin_and_square() -> None:
    img = _gradient()
    face = _face((40, 30, 60, 70))  # 20 wide, 40 high, centre (50, 50)
    tight = crop_face(img, face, margin=1.0, square=False)
    np.testing.assert_array_equal(tight, img[30:70, 40:60])
    wide = crop_face(img, face, margin=1.5, square=False)
    np.testing.assert_array_equal(wide, img[20:80, 35:65])
    square = crop_face(img, face, margin=1.5, square=True)
    np.testing.assert_array_equal(square, img[20:80, 20:80])


def test_crop_pads_with_zeros_outside_the_image() -> None:
    img = _gradient()
    corner = crop_face(img, _face((-10, -10, 10, 10)), margin=2.0, square=True)  # 40x40 around (0, 0)
    assert corner.shape == (40, 40, 3)
    assert not corner[:20].any() and not corner[:, :20].any()
    np.testing.assert_array_equal(corner[20:, 20:], img[:20, :20])
    outside = crop_face(img, _face((500, 500, 520, 520)), margin=1.0, square=True)
    assert outside.shape == (20, 20, 3) and not outside.any()
    with pytest.raises(ConfigError, match="margin"):
        crop_face(img, _face((0, 0, 10, 10)), margin=0.5, square=True)


def test_rotated_sampling_agrees_with_plain_crops() -> None:
    img = _gradient()
    plain = _stage._crop_axis_aligned(img, 30.0, 20.0, 40, 50)
    np.testing.assert_array_equal(_stage._crop_rotated(img, 50.0, 45.0, 40, 50, 0.0), plain)
    # A quarter turn samples the same pixels, rotated.
    quarter = _stage._crop_rotated(img, 50.0, 45.0, 50, 40, math.pi / 2)
    np.testing.assert_array_equal(quarter, np.rot90(plain, k=1))
    # Across the image's corners and edges, outside reads as zero in both.
    for cx, cy in ((0.0, 0.0), (120.0, 100.0), (110.0, 5.0)):
        plain = _stage._crop_axis_aligned(img, cx - 20, cy - 25, 40, 50)
        assert plain.any() and not plain.all()
        np.testing.assert_array_equal(_stage._crop_rotated(img, cx, cy, 40, 50, 0.0), plain)
        np.testing.assert_array_equal(_stage._crop_rotated(img, cx, cy, 50, 40, math.pi / 2), np.rot90(plain, k=1))
    assert not _stage._crop_rotated(img, 400.0, 400.0, 20, 20, 0.3).any()


def test_align_makes_eyes_level() -> None:
    img = np.zeros((200, 200, 3), np.uint8)
    angle = math.radians(30)
    centre = np.array([100.0, 100.0])
    half = 30 * np.array([math.cos(angle), math.sin(angle)])
    left, right = centre - half, centre + half
    for x, y in (left, right):
        img[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] = 255
    face = _face((60, 60, 140, 140), landmarks=(tuple(left), tuple(right), (100, 110), (90, 130), (110, 130)))
    crop = crop_face(img, face, margin=1.2, square=True, align=True)
    assert crop.shape == (96, 96, 3)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    on_left = xs < crop.shape[1] / 2
    assert on_left.any() and (~on_left).any()
    assert abs(ys[on_left].mean() - ys[~on_left].mean()) < 1.0  # level
    assert abs((xs[~on_left].mean() - xs[on_left].mean()) - 60) < 1.5  # distance kept
    unaligned = crop_face(img, face, margin=1.2, square=True, align=False)
    ys, xs = np.nonzero(unaligned[..., 0] > 128)
    on_left = xs < unaligned.shape[1] / 2
    assert ys[~on_left].mean() - ys[on_left].mean() > 20  # without align the tilt stays


# --------------------------------------------------------------------------- plugins and FaceStage


def test_registry_builds_retinaface_and_refuses_unknown() -> None:
    det = get_face_detector("retinaface", weights=None, max_size=480)
    assert isinstance(det, RetinaFaceDetector) and det.max_size == 480
    assert get_face_detector("retinaface:min_confidence=0.7").min_confidence == 0.7
    assert isinstance(det, FaceDetector)
    with pytest.raises(UnknownPluginError, match="retinaface"):
        get_face_detector("no-such-detector")
    with pytest.raises(ConfigError):
        get_face_detector("retinaface", threshold=0.5)


def test_plain_callable_detector_in_face_stage() -> None:
    seen = []

    def fixed(images):
        seen.append(len(images))
        return [[_face((0, 0, 10, 10), confidence=0.95), _face((20, 20, 60, 60), confidence=0.9), _face((0, 0, 5, 5), confidence=0.3)] for _ in images]

    img = _gradient()
    stage = FaceStage(FaceConfig(enabled=True, margin=1.0, min_confidence=0.5), fixed)
    out = stage([img, img, img])
    assert seen == [3]  # one batched call
    assert [[f.box for f, _ in pairs] for pairs in out] == [[(20.0, 20.0, 60.0, 60.0), (0.0, 0.0, 10.0, 10.0)]] * 3
    np.testing.assert_array_equal(out[0][0][1], img[20:60, 20:60])
    assert stage.detect([img])[0][0].box == (20.0, 20.0, 60.0, 60.0)
    assert stage([]) == []


def test_registered_detector_by_name_gets_config_settings() -> None:
    received = {}

    @register_face_detector("test_recording", override=True)
    class Recording:
        def __init__(self, *, min_confidence: float = 0.5, max_size: int = 640, device: str | None = None) -> None:
            received.update(min_confidence=min_confidence, max_size=max_size, device=device)

        def __call__(self, images):
            return [[] for _ in images]

    try:
        stage = FaceStage(FaceConfig(detector="test_recording", min_confidence=0.3, detect_max_size=320), device="cpu")
        assert stage([_gradient()]) == [[]]
        assert received == {"min_confidence": 0.3, "max_size": 320, "device": "cpu"}
        FaceStage(FaceConfig(detector="test_recording:max_size=999"))
        assert received["max_size"] == 999  # an explicit spec wins
        with pytest.raises(ConfigError, match="already registered"):
            register_face_detector("test_recording")(lambda images: [])
    finally:
        FACE_DETECTORS._entries.pop("test_recording", None)


def test_face_stage_passes_detector_options(tmp_path: Path) -> None:
    options = {"cache_dir": tmp_path, "local_files_only": True, "token": "hf_secret", "revision": None}
    stage = FaceStage(FaceConfig(), detector_options=options)
    det = stage.detector
    assert isinstance(det, RetinaFaceDetector)
    assert (det.cache_dir, det.local_files_only, det.token, det.revision) == (tmp_path, True, "hf_secret", None)
    assert "hf_secret" not in repr(det) and "hf_secret" not in repr(stage)  # a secret stays out of logs
    spec = FaceStage(FaceConfig(detector="retinaface:local_files_only=False"), detector_options=options).detector
    assert spec.local_files_only is False and spec.cache_dir == tmp_path  # an explicit spec wins

    received: dict = {}

    @register_face_detector("test_cache_only", override=True)
    def cache_only(images, *, cache_dir=None, device=None):
        received.update(cache_dir=cache_dir, device=device)
        return [[] for _ in images]

    try:
        # Given only what its factory takes: no token, no local_files_only.
        assert FaceStage(FaceConfig(detector="test_cache_only"), detector_options=options)([_gradient()]) == [[]]
        assert received == {"cache_dir": tmp_path, "device": None}
    finally:
        FACE_DETECTORS._entries.pop("test_cache_only", None)

    def plain(images):
        return [[] for _ in images]

    assert FaceStage(FaceConfig(), plain, detector_options=options).detector is plain
    for bad in (["cache_dir"], {1: "x"}, "cache_dir=x"):
        with pytest.raises(ConfigError, match="detector_options"):
            FaceStage(FaceConfig(), detector_options=bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="local_files_only"):
        RetinaFaceDetector(local_files_only="yes")  # type: ignore[arg-type]


def test_entry_point_detector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "dfd_test_plugin.py").write_text(
        "from deepfakedetect.faces.detectors import Face\n"
        "def detect(images):\n"
        "    return [[Face((1, 1, 3, 3), (), 0.99)] for _ in images]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    ep = metadata.EntryPoint(name="test_ep_detector", value="dfd_test_plugin:detect", group=FACE_DETECTORS.group)
    monkeypatch.setattr(FACE_DETECTORS, "_entry_points", lambda: [ep])
    try:
        stage = FaceStage(FaceConfig(detector="test_ep_detector", margin=1.0))
        [[(face, crop)]] = stage([_gradient()])
        assert face.box == (1.0, 1.0, 3.0, 3.0) and crop.shape == (2, 2, 3)
    finally:
        FACE_DETECTORS._entries.pop("test_ep_detector", None)
        sys.modules.pop("dfd_test_plugin", None)


def test_misbehaving_detector_is_reported() -> None:
    with pytest.raises(ConfigError, match="returned 1 results for 2 images"):
        FaceStage(FaceConfig(), lambda images: [[]])([_gradient(), _gradient()])
    with pytest.raises(ConfigError, match="must return deepfakedetect.Face"):
        FaceStage(FaceConfig(), lambda images: [[(0, 0, 1, 1)] for _ in images])([_gradient()])
    with pytest.raises(ConfigError, match="FaceConfig"):
        FaceStage({"enabled": True})  # type: ignore[arg-type]
