"""Grad-CAM explanations: shape, range, sensitivity to the input, and no lasting change to the model."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from deepfakedetect import ConfigError, Detector, FaceConfig, InputError, NoFacesError
from deepfakedetect.explain import (
    Explanation,
    colormap_jet,
    explain,
    explain_video_frames,
    find_target_layer,
)
from deepfakedetect.faces.detectors import Face
from deepfakedetect.models.preprocess import resize_and_crop


def _image(seed: int, size: tuple[int, int] = (90, 120)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth random structure (not pure noise), so feature maps have something to localise.
    small = rng.integers(0, 256, (size[0] // 10, size[1] // 10, 3), dtype=np.uint8)
    from PIL import Image

    return np.asarray(Image.fromarray(small).resize((size[1], size[0]), Image.Resampling.BILINEAR))


@pytest.fixture(scope="module")
def det() -> Detector:
    torch.manual_seed(0)
    return Detector.from_backbone("resnet18", input_size=64, resize_size=72, precision="fp32", device="cpu")


def _hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_map_has_crop_size_is_finite_and_in_range(det: Detector) -> None:
    img = _image(1)
    e = explain(det, img)
    assert isinstance(e, Explanation)
    assert e.crop.dtype == np.uint8 and e.crop.shape == (64, 64, 3)
    # Without the face stage the crop is exactly the preprocessed image the model saw.
    np.testing.assert_array_equal(e.crop, resize_and_crop(img, det.config.preprocess))
    assert e.heatmap.dtype == np.float32 and e.heatmap.shape == e.crop.shape[:2]
    assert np.isfinite(e.heatmap).all()
    assert e.heatmap.min() >= 0.0 and e.heatmap.max() <= 1.0
    # Scaled so the strongest evidence is 1 (a random head may have no evidence for "fake"
    # anywhere, and then the map is all zeros and the "real" map carries it).
    assert max(e.heatmap.max(), explain(det, img, target="real").heatmap.max()) == pytest.approx(1.0)
    assert e.face is None and e.layer == "layer4" and e.target == "fake"


def _both_maps(det: Detector, img: np.ndarray) -> np.ndarray:
    return np.concatenate([explain(det, img).heatmap, explain(det, img, target="real").heatmap])


def test_map_changes_when_the_image_changes(det: Detector) -> None:
    a = _both_maps(det, _image(1))
    b = _both_maps(det, _image(2))
    again = _both_maps(det, _image(1))
    np.testing.assert_allclose(a, again, atol=1e-5)  # deterministic for the same input
    assert np.abs(a - b).max() > 0.05


def test_fake_score_matches_detect_image(det: Detector) -> None:
    img = _image(3)
    e = explain(det, img)
    assert e.fake_score == pytest.approx(det.detect_image(img).fake_score, abs=1e-5)


@pytest.mark.parametrize("precision, flip", [("bf16", False), ("fp32", True)])
def test_fake_score_matches_detect_image_in_any_precision_and_with_flip(precision: str, flip: bool) -> None:
    # The map needs an fp32 graph; the score must still be the one detect_image gives,
    # which runs under bf16 autocast (the default on CPUs with native bf16) or mirrored too.
    d = Detector.from_backbone("resnet18", input_size=64, resize_size=72, precision=precision, device="cpu")
    d.flip = flip
    img = _image(4)
    assert explain(d, img).fake_score == pytest.approx(d.detect_image(img).fake_score, abs=1e-6)


def test_fake_score_matches_detect_image_on_a_large_jpeg(det: Detector, tmp_path: Path) -> None:
    # detect_image decodes a large JPEG reduced (Pillow draft); explain must score the same pixels.
    from PIL import Image

    path = tmp_path / "large.jpg"
    Image.fromarray(_image(5, (1200, 1600))).save(path, quality=95)
    assert det.decode(path).reduced  # the case where the two used to differ
    assert explain(det, path).fake_score == pytest.approx(det.detect_image(path).fake_score, abs=1e-6)


def test_hooks_removed_and_model_unchanged(det: Detector) -> None:
    before = {k: v.clone() for k, v in det.model.state_dict().items()}
    hooks = _hook_count(det.model)
    explain(det, _image(4))
    explain(det, _image(4), layer="layer3")
    with pytest.raises(ConfigError, match="not a 4-D"):
        explain(det, _image(4), layer="fc")  # a failing call removes its hooks too
    assert _hook_count(det.model) == hooks
    assert not det.model.training
    assert all(p.grad is None for p in det.model.parameters())
    after = det.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_target_real_and_layer_choice(det: Detector) -> None:
    img = _image(5)
    fake = explain(det, img, target="fake")
    real = explain(det, img, target="real")
    assert real.target == "real"
    assert fake.fake_score == pytest.approx(real.fake_score)
    # Two-class log-odds: the real map comes from exactly the negated weights of the fake one.
    assert not np.allclose(fake.heatmap, real.heatmap)
    l3 = explain(det, img, layer="layer3")
    assert l3.layer == "layer3" and l3.heatmap.shape == (64, 64)
    by_module = explain(det, img, layer=det.model.layer3)
    np.testing.assert_allclose(by_module.heatmap, l3.heatmap, atol=1e-6)
    with pytest.raises(ConfigError, match="target must be one of"):
        explain(det, img, target="FAKE")
    with pytest.raises(ConfigError, match="not a module"):
        explain(det, img, layer="layer9")
    with pytest.raises(InputError, match="one image"):
        explain(det, [img, img])


def test_works_inside_inference_mode(det: Detector) -> None:
    img = _image(6)
    plain = explain(det, img).heatmap
    with torch.inference_mode():
        inside = explain(det, img).heatmap
    np.testing.assert_allclose(plain, inside, atol=1e-6)


def test_frozen_backbone_still_explained() -> None:
    torch.manual_seed(1)
    d = Detector.from_backbone("resnet18", input_size=64, precision="fp32", device="cpu")
    for p in d.model.parameters():
        p.requires_grad_(False)
    assert _both_maps(d, _image(7)).max() > 0 and all(not p.requires_grad for p in d.model.parameters())


def test_automatic_layer_for_other_cnns() -> None:
    import torchvision

    mobilenet = torchvision.models.mobilenet_v2(num_classes=2).eval()
    assert find_target_layer(mobilenet, torch.zeros(1, 3, 64, 64)) == "features"
    resnet = torchvision.models.resnet18(num_classes=2).eval()
    # At 32 px layer4 is 1 x 1 (global pooling territory): the last larger map is layer3.
    assert find_target_layer(resnet, torch.zeros(1, 3, 32, 32)) == "layer3"
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 2))
    with pytest.raises(ConfigError, match="no module with a 4-D"):
        find_target_layer(mlp, torch.zeros(1, 3, 8, 8))


def test_one_logit_head() -> None:
    torch.manual_seed(2)
    d = Detector.from_backbone("resnet18", input_size=64, num_outputs=1, precision="fp32", device="cpu")
    img = _image(8)
    fake, real = explain(d, img), explain(d, img, target="real")
    assert fake.fake_score == pytest.approx(d.detect_image(img).fake_score, abs=1e-5)
    assert not np.allclose(fake.heatmap, real.heatmap)


def _boxes_detector(box: tuple[float, float, float, float]):
    def detector(images):
        return [[Face(box, ((0, 0),) * 5, 0.99)] for _ in images]

    return detector


def test_face_stage_map_covers_the_face_crop() -> None:
    torch.manual_seed(3)
    # A non-square crop and resize_size > input_size: the model sees only the crop's centre.
    faces = FaceConfig(enabled=True, margin=1.0, square=False)
    base = Detector.from_backbone("resnet18", input_size=64, resize_size=80, faces=faces, precision="fp32")
    d = Detector(base.model, base.config, device="cpu", precision="fp32", face_detector=_boxes_detector((20, 10, 80, 110)))
    img = _image(9, (140, 120))
    e = explain(d, img)
    assert e.face is not None and e.face.box == (20.0, 10.0, 80.0, 110.0)
    np.testing.assert_array_equal(e.crop, img[10:110, 20:80])  # the face crop, as scored
    assert e.heatmap.shape == (100, 60)
    assert np.isfinite(e.heatmap).all() and 0.0 <= e.heatmap.min() and e.heatmap.max() <= 1.0
    # Crop 60 x 100 -> resized to 80 x 133 -> centre 64 x 64: rows outside it were never seen.
    real = explain(d, img, target="real")
    for m in (e.heatmap, real.heatmap):
        assert m[:20].max() == 0.0 and m[-20:].max() == 0.0
    # A random head may push every region away from "fake"; then the "real" map is the non-zero one.
    assert max(e.heatmap[30:70].max(), real.heatmap[30:70].max()) > 0.0
    assert e.fake_score == pytest.approx(d.detect_image(img).fake_score, abs=1e-5)


def test_face_stage_errors() -> None:
    faces = FaceConfig(enabled=True)
    base = Detector.from_backbone("resnet18", input_size=64, faces=faces)
    none = Detector(base.model, base.config, device="cpu", face_detector=lambda images: [[] for _ in images])
    with pytest.raises(NoFacesError, match="no face"):
        explain(none, _image(10))
    one = Detector(base.model, base.config, device="cpu", face_detector=_boxes_detector((10, 10, 50, 50)))
    with pytest.raises(ConfigError, match="face_index=1"):
        explain(one, _image(10), face_index=1)
    with pytest.raises(ConfigError, match="face_index must be"):
        explain(one, _image(10), face_index=-1)


def test_overlay() -> None:
    crop = np.full((6, 8, 3), 200, np.uint8)
    heat = np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    e = Explanation(heatmap=heat, crop=crop, fake_score=0.5, face=None, target="fake", layer="x")
    img = e.overlay()
    assert img.size == (8, 6) and img.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(e.overlay(alpha=0.0)), crop)
    np.testing.assert_array_equal(np.asarray(e.overlay(alpha=1.0)), colormap_jet(heat))
    with pytest.raises(ConfigError, match="alpha"):
        e.overlay(alpha=1.5)
    # Low values are blue, high values red.
    lo, hi = colormap_jet(np.array([0.05, 0.95]))
    assert lo[2] > lo[0] and hi[0] > hi[2]


def test_thread_safe_with_concurrent_scoring(det: Detector) -> None:
    imgs = [_image(20 + i) for i in range(3)]
    expected_scores = [det.detect_image(im).fake_score for im in imgs]
    expected_maps = [explain(det, im).heatmap for im in imgs]
    errors: list[BaseException] = []
    maps: dict[int, list[np.ndarray]] = {}
    scores: list[float] = []

    def explainer(k: int) -> None:
        try:
            maps[k] = [explain(det, im).heatmap for im in imgs]
        except BaseException as e:  # noqa: BLE001 - surfaced in the main thread below
            errors.append(e)

    def scorer() -> None:
        try:
            for _ in range(3):
                scores.extend(r.fake_score for r in det.detect_image(imgs))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=explainer, args=(k,)) for k in range(2)] + [threading.Thread(target=scorer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    np.testing.assert_allclose(scores, expected_scores * 3, atol=1e-5)
    for k in range(2):
        for got, want in zip(maps[k], expected_maps):
            np.testing.assert_allclose(got, want, atol=1e-4)
    assert _hook_count(det.model) == 0


def _make_video(path: Path, frames: int = 12) -> Path:
    import imageio_ffmpeg

    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size=96x80:rate=10:duration={frames / 10}",
            "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path),
        ],
        check=True,
        timeout=60,
    )
    return path


def test_explain_video_frames(det: Detector, tmp_path: Path) -> None:
    video = _make_video(tmp_path / "clip.mp4")
    out = explain_video_frames(det, video, [7, 2, 7])
    assert [e.frame_index for e in out] == [2, 7]
    assert [e.timestamp for e in out] == pytest.approx([0.2, 0.7], abs=1e-6)
    for e in out:
        assert e.heatmap.shape == (64, 64) and e.crop.shape == (64, 64, 3)
        assert np.isfinite(e.heatmap).all() and 0.0 <= e.heatmap.min() and e.heatmap.max() <= 1.0
    assert not np.allclose(out[0].heatmap, out[1].heatmap)
    # The frame explained is the frame detect_video scored.
    v = det.detect_video(video, sampler=lambda info: [2, 7], aggregator="mean", progress=False)
    assert [f.fake_score for f in v.frames] == pytest.approx([e.fake_score for e in out], abs=1e-5)
    with pytest.raises(ConfigError, match="outside"):
        explain_video_frames(det, video, [12])


@pytest.mark.shared
def test_real_face_with_retinaface(shared_dir: Path, retinaface_weights: Path) -> None:
    from deepfakedetect.faces.detectors import get_face_detector

    torch.manual_seed(4)
    base = Detector.from_backbone("resnet18", input_size=64, faces=True, precision="fp32")
    faces = get_face_detector("retinaface", weights=retinaface_weights, device="cpu")
    d = Detector(base.model, base.config, device="cpu", precision="fp32", face_detector=faces)
    path = min((shared_dir / "data/faces/lfw_faceswap/test/fake").glob("*.jpg"))
    e = explain(d, path)
    assert e.face is not None and e.face.confidence > 0.9
    assert e.crop.shape[:2] == e.heatmap.shape and min(e.crop.shape[:2]) > 50
    assert np.isfinite(e.heatmap).all() and e.heatmap.max() <= 1.0
    assert e.source == str(path)
