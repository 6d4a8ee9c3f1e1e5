"""Hostile and unlucky inputs through the public API (issue 15): never a hang, always a typed error.

Each case is bounded in time: a call that could block forever runs in a daemon thread
(``within``) and the test fails after a few seconds instead of hanging the suite.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deepfakedetect import (
    ConfigError,
    Detector,
    ImageDecodeError,
    InputError,
    VideoDecodeError,
    detect_many,
    probe_video,
)
from deepfakedetect.io.images import load_image

from hostile_helpers import make_fifo, open_and_close_writer_later, within


@pytest.fixture(scope="module")
def det() -> Detector:
    torch.manual_seed(0)
    return Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def face_det() -> Detector:
    """The default model: its face stage finds no face in plain grey squares."""
    return Detector.from_pretrained(device="cpu", precision="fp32")


# -- paths that are not regular files --------------------------------------------------


@pytest.mark.parametrize("writer", [True, False], ids=["writer-opens-and-closes", "no-writer"])
def test_detect_video_on_a_fifo_is_refused_quickly(det: Detector, tmp_path: Path, writer: bool) -> None:
    fifo = make_fifo(tmp_path / "x.mp4")
    if writer:
        open_and_close_writer_later(fifo)
    with pytest.raises(VideoDecodeError, match="not a regular file"):
        within(20, lambda: det.detect_video(fifo, timeout=5))


def test_probe_video_on_a_fifo_is_refused_quickly(tmp_path: Path) -> None:
    fifo = make_fifo(tmp_path / "x.mkv")
    open_and_close_writer_later(fifo)
    with pytest.raises(VideoDecodeError, match="not a regular file"):
        within(20, lambda: probe_video(fifo, timeout=5))


@pytest.mark.parametrize("writer", [True, False], ids=["writer-opens-and-closes", "no-writer"])
def test_detect_image_on_a_fifo_is_refused_quickly(det: Detector, tmp_path: Path, writer: bool) -> None:
    fifo = make_fifo(tmp_path / "x.jpg")
    if writer:
        open_and_close_writer_later(fifo)
    with pytest.raises(ImageDecodeError, match="not a regular file"):
        within(20, lambda: det.detect_image(fifo))


def test_load_image_on_a_character_device_is_refused(tmp_path: Path) -> None:
    # /dev/zero would otherwise be read for ever; it names no image.
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero here")
    with pytest.raises(ImageDecodeError, match="not a regular file"):
        within(20, lambda: load_image("/dev/zero"))


def test_detect_many_gives_a_fifo_an_error_record_and_scores_the_rest(det: Detector, tmp_path: Path) -> None:
    Image.new("RGB", (40, 40), "gray").save(tmp_path / "a.png")
    make_fifo(tmp_path / "b.jpg")
    records = within(60, lambda: list(detect_many(det, tmp_path, progress=False)))
    by_name = {Path(r["source"]).name: r for r in records}
    assert by_name["a.png"]["status"] == "ok"
    assert by_name["b.jpg"]["status"] == "error" and "not a regular file" in by_name["b.jpg"]["error"]


def test_a_folder_given_as_an_image_says_it_is_a_folder(det: Detector, tmp_path: Path) -> None:
    folder = tmp_path / "some_dir"
    folder.mkdir()
    for given in (str(folder) + "/", folder):
        with pytest.raises(ImageDecodeError, match="is a folder") as info:
            det.detect_image(given)
        assert "no such file" not in str(info.value)


def test_a_missing_image_still_says_no_such_file(det: Detector, tmp_path: Path) -> None:
    with pytest.raises(ImageDecodeError, match="no such file"):
        det.detect_image(tmp_path / "missing.jpg")


# -- tensors and PIL images that are not usable ----------------------------------------


def test_a_meta_tensor_is_a_typed_error(det: Detector) -> None:
    with pytest.raises(InputError, match="meta"):
        det.detect_image(torch.empty(3, 64, 64, device="meta"))


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_a_sparse_tensor_is_a_typed_error(det: Detector, layout: str) -> None:
    dense = torch.rand(3, 64, 64)
    sparse = dense.to_sparse() if layout == "coo" else dense[0].to_sparse_csr()
    with pytest.raises(InputError, match="sparse"):
        det.detect_image(sparse)


def _noisy_png(size: int = 256) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_a_truncated_pil_image_is_a_typed_error(det: Detector) -> None:
    data = _noisy_png()
    im = Image.open(io.BytesIO(data[: len(data) // 2]))  # the header is whole, the pixels are not
    with pytest.raises(ImageDecodeError, match="PIL image"):
        det.detect_image(im)


def test_a_closed_pil_image_is_a_typed_error(det: Detector) -> None:
    im = Image.open(io.BytesIO(_noisy_png()))
    im.close()
    with pytest.raises(ImageDecodeError, match="closed"):
        det.detect_image(im)


def test_a_loaded_then_closed_pil_image_is_a_typed_error_too() -> None:
    im = Image.open(io.BytesIO(_noisy_png(64)))
    im.load()
    im.close()
    with pytest.raises(ImageDecodeError, match="closed"):
        load_image(im)


# -- batch_size --------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [0, -1, -2, 1.5, True])
def test_bad_batch_size_is_refused_even_when_no_face_is_found(face_det: Detector, batch_size: object) -> None:
    grey = [np.full((48, 48, 3), 10 * i, np.uint8) for i in range(5)]
    # With valid batch sizes these images give five no-face results: the check below is
    # not hidden behind the scoring step that faceless images never reach.
    assert [r.status for r in face_det.detect_image(grey, batch_size=2)] == ["no_face"] * 5
    with pytest.raises(ConfigError, match="batch_size"):
        face_det.detect_image(grey, batch_size=batch_size)


@pytest.mark.parametrize("batch_size", [0, -3])
def test_bad_batch_size_is_refused_for_whole_images_and_videos(det: Detector, tmp_path: Path, batch_size: int) -> None:
    with pytest.raises(ConfigError, match="batch_size"):
        det.detect_image(np.zeros((40, 40, 3), np.uint8), batch_size=batch_size)
    # Checked before the (missing) video is even looked at.
    with pytest.raises(ConfigError, match="batch_size"):
        det.detect_video(tmp_path / "missing.mp4", batch_size=batch_size)


# -- devices -------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_without_a_gpu_is_a_config_error(device: str) -> None:
    with pytest.raises(ConfigError, match="CUDA"):
        Detector.from_backbone("resnet18", input_size=32, device=device)


@pytest.mark.parametrize("device", ["gpu", "cpu:banana", ""])
def test_a_device_name_torch_does_not_know_is_a_config_error(device: str) -> None:
    with pytest.raises(ConfigError, match="device"):
        Detector.from_backbone("resnet18", input_size=32, device=device)

