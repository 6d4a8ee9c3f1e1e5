"""detect_image on large JPEGs: faces found on a reduced decode, boxes in full-resolution
pixels, crops re-decoded larger only where the model needs more detail."""

import dataclasses
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from deepfakedetect import Detector, FaceConfig
from deepfakedetect import detector as detector_module
from deepfakedetect.faces import Face
from deepfakedetect.io.images import decode_image, load_image
from deepfakedetect.models.preprocess import resize_and_crop

FULL_W, FULL_H = 4000, 3000


def _marked_faces(images):
    """Stand-in face detector: the bounding box of the pure-red marker in each image."""
    out = []
    for im in images:
        mask = (im[..., 0] > 200) & (im[..., 1] < 60) & (im[..., 2] < 60)
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            out.append([])
            continue
        x1, y1, x2, y2 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        eyes = ((x1 + (x2 - x1) * 0.3, y1 + (y2 - y1) * 0.4), (x1 + (x2 - x1) * 0.7, y1 + (y2 - y1) * 0.4))
        out.append([Face((x1, y1, x2, y2), (*eyes, ((x1 + x2) / 2, (y1 + y2) / 2)) + eyes, 0.99)])
    return out


def _photo(path, box):
    """A 12-megapixel JPEG: smooth background, a red marker framing a textured face at ``box``."""
    rng = np.random.default_rng(1)
    x = np.linspace(60, 180, FULL_W, dtype=np.float32)[None, :]
    y = np.linspace(60, 180, FULL_H, dtype=np.float32)[:, None]
    img = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = (255, 0, 0)
    inner = (x2 - x1) // 8
    patch = rng.integers(0, 256, ((y2 - y1) // 8, (x2 - x1) // 8, 3), dtype=np.uint8)
    img[y1 + inner : y2 - inner, x1 + inner : x2 - inner] = np.kron(patch, np.ones((8, 8, 1), np.uint8))[
        : y2 - y1 - 2 * inner, : x2 - x1 - 2 * inner
    ]
    Image.fromarray(img).save(path, quality=95)
    return path


@pytest.fixture(scope="module")
def det():
    torch.manual_seed(0)
    base = Detector.from_backbone("resnet18", input_size=64, device="cpu", precision="fp32")
    config = dataclasses.replace(base.config, faces=FaceConfig(enabled=True, margin=1.3))
    return Detector(base.model, config, device="cpu", precision="fp32", face_detector=_marked_faces)


def _crops_scored(det, monkeypatch, image):
    seen = []
    real = det.score_arrays

    def spy(images, **kw):
        seen.extend(images)
        return real(images, **kw)

    monkeypatch.setattr(det, "score_arrays", spy)
    result = det.detect_image(image)
    monkeypatch.undo()
    return result, seen


def _decode_calls(monkeypatch):
    calls = []

    def counting(x, **kw):
        calls.append(kw)
        return decode_image(x, **kw)

    monkeypatch.setattr(detector_module, "decode_image", counting)
    return calls


@pytest.mark.parametrize(
    ("box", "decodes"),
    [
        ((2400, 1200, 2800, 1600), 1),  # 400 px face: 100 px in the 1/4 decode, its crop 130 >= 64
        ((1000, 2000, 1160, 2160), 2),  # 160 px face: crop 52 < 64 px at 1/4: cut from a 1/2 decode
    ],
)
def test_boxes_in_full_pixels_and_crops_as_from_the_full_image(det, monkeypatch, tmp_path, box, decodes):
    path = _photo(tmp_path / "photo.jpg", box)
    calls = _decode_calls(monkeypatch)
    reduced, crops = _crops_scored(det, monkeypatch, path)
    calls_made = len(calls)
    full, full_crops = _crops_scored(det, monkeypatch, load_image(path))  # an array: no reduction

    assert calls_made == decodes
    assert calls[0] == {"min_longer_side": det.config.faces.detect_max_size}
    (face,) = reduced.faces
    assert face.box == pytest.approx(box, abs=8)  # one pixel of the 1/4 decode is 4 here
    assert full.faces[0].box == pytest.approx(box, abs=1)
    # What the model sees: the two crops agree after preprocessing, up to JPEG-scaling noise.
    pre = det.config.preprocess
    a = resize_and_crop(crops[0], pre).astype(np.int16)
    b = resize_and_crop(full_crops[0], pre).astype(np.int16)
    assert np.abs(a - b).mean() < 12
    assert reduced.fake_score == pytest.approx(full.fake_score, abs=0.05)


def test_no_face_stage_decodes_for_the_shorter_side(monkeypatch, tmp_path):
    torch.manual_seed(0)
    plain = Detector.from_backbone("resnet18", input_size=64, device="cpu", precision="fp32")
    path = _photo(tmp_path / "photo.jpg", (2400, 1200, 2800, 1600))
    calls = _decode_calls(monkeypatch)
    score = plain.detect_image(path).fake_score
    assert calls == [{"min_shorter_side": plain.config.preprocess.resize_size}]
    assert plain.decode(path).array.shape == (375, 500, 3)
    assert score == pytest.approx(plain.detect_image(load_image(path)).fake_score, abs=0.05)


def test_lists_decode_in_a_background_thread_and_a_failure_stops_it(det, monkeypatch, tmp_path):
    paths = [_photo(tmp_path / f"p{i}.jpg", (400 * i, 400, 400 * i + 400, 800)) for i in range(3)]
    threads = []
    real_decode = det.decode

    def spying(x):
        threads.append(threading.current_thread().name)
        return real_decode(x)

    monkeypatch.setattr(det, "decode", spying)
    results = det.detect_image(paths, batch_size=2)
    assert threads == ["dfd-prefetch"] * 3
    assert [r.source for r in results] == [str(p) for p in paths]
    for i, r in enumerate(results):
        assert r.faces[0].box == pytest.approx((400 * i, 400, 400 * i + 400, 800), abs=8)

    def failing(images, **kw):
        raise RuntimeError("scoring broke")

    monkeypatch.setattr(det, "score_arrays", failing)
    with pytest.raises(RuntimeError, match="scoring broke"):
        det.detect_image(paths, batch_size=1)
    assert not any(t.name == "dfd-prefetch" and t.is_alive() for t in threading.enumerate())
