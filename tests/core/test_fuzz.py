"""Property-based and fuzz tests of the loaders (issue 9, item 12).

Whatever they are given, ``load_image``, ``Detector.detect_image``, ``probe_video`` and
``read_frames`` return a valid result or raise a :class:`DeepfakeDetectError`, never
another exception, and never hang (every call on a file runs under a time limit).

- Hypothesis draws arrays (any shape, dtype and values, NaN and infinities included),
  torch tensors, and PIL images of every mode with random pixels.
- A seeded mutation fuzz flips, inserts and cuts bytes of real JPEG, PNG, GIF, WebP,
  BMP and TIFF files (mostly in their headers) and of MP4, WebM, AVI, MPEG-TS and
  Matroska videos, and feeds pure random bytes behind each format's magic number.

Budgets are small (``max_examples`` up to 50) so the file runs in well under a minute.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from deepfakedetect import DeepfakeDetectError, Detector, ImageDecodeError
from deepfakedetect.io.images import load_image
from deepfakedetect.io.video import probe_video, read_frames

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
CALL_LIMIT_S = 20.0  # generous: the machine may be busy; a hang is minutes, not seconds
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def within(limit: float, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` in a thread; fails the test if it has not returned after ``limit`` s."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    if t.is_alive():
        pytest.fail(f"{getattr(fn, '__name__', fn)} did not return within {limit} s (a hang)")
    if "error" in box:
        raise box["error"]
    return box["value"]


def typed_or_valid_image(fn: Callable[..., np.ndarray], *args: Any) -> np.ndarray | None:
    """The RGB array ``fn`` returns, or None when it raised a DeepfakeDetectError."""
    try:
        out = within(CALL_LIMIT_S, fn, *args)
    except DeepfakeDetectError:
        return None
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
    assert out.shape[0] > 0 and out.shape[1] > 0 and out.flags.c_contiguous
    return out


# -- Hypothesis: arrays, tensors, PIL images ------------------------------------------------------

_DTYPES = [np.uint8, np.uint16, np.int8, np.int32, np.int64, np.float16, np.float32, np.float64, np.bool_,
           np.complex64]  # fmt: skip
_shapes = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9),
    st.tuples(st.integers(1, 20), st.integers(1, 20), st.sampled_from([1, 2, 3, 4, 5])),
)
_arrays = st.sampled_from(_DTYPES).flatmap(lambda dt: hnp.arrays(dt, _shapes))


@FUZZ
@given(arr=_arrays)
def test_load_image_on_any_array(arr: np.ndarray) -> None:
    out = typed_or_valid_image(load_image, arr)
    if out is not None:
        assert out.shape[:2] == arr.shape[:2]


@FUZZ
@given(arr=_arrays)
def test_load_image_on_any_tensor(arr: np.ndarray) -> None:
    if arr.dtype == np.uint16:  # not every torch build has uint16 tensors
        arr = arr.astype(np.int32)
    tensor = torch.from_numpy(np.ascontiguousarray(arr))  # read as CHW, as torchvision lays images out
    out = typed_or_valid_image(load_image, tensor)
    if out is not None:
        assert out.shape[:2] == (arr.shape if arr.ndim == 2 else arr.shape[1:3])


# "La" (premultiplied alpha) is left out here: see test_premultiplied_la_image_is_typed_or_converted.
_MODES = ["1", "L", "LA", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "I", "I;16",
          "I;16B", "I;16L", "F"]  # fmt: skip


@FUZZ
@given(mode=st.sampled_from(_MODES), w=st.integers(1, 24), h=st.integers(1, 24), data=st.data())
def test_load_image_on_any_pil_mode(mode: str, w: int, h: int, data: st.DataObject) -> None:
    n = len(Image.new(mode, (w, h)).tobytes())
    img = Image.frombytes(mode, (w, h), data.draw(st.binary(min_size=n, max_size=n)))
    out = typed_or_valid_image(load_image, img)
    if out is not None:
        assert out.shape[:2] == (h, w)


def test_premultiplied_la_image_is_typed_or_converted() -> None:
    img = Image.frombytes("La", (3, 2), bytes([200, 255, 100, 128, 0, 0] * 2))
    out = typed_or_valid_image(load_image, img)
    assert out is not None and out.shape == (2, 3, 3)
    assert out[0, 0].tolist() == [200, 200, 200]  # opaque pixel: its grey value


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], derandomize=True)
@given(arr=_arrays)
def test_detect_image_on_any_array(detector: Detector, arr: np.ndarray) -> None:
    try:
        r = within(CALL_LIMIT_S, detector.detect_image, arr)
    except DeepfakeDetectError:
        return
    assert r.status == "ok" and r.label in ("real", "fake")
    assert np.isfinite(r.fake_score) and 0.0 <= r.fake_score <= 1.0


# -- mutation fuzz of image files ---------------------------------------------------------------------


def _texture(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 7 % 256, y * 5 % 256, (x * y) % 256], 2).astype(np.uint8)


_IMAGE_FORMATS = {"JPEG": {"quality": 90}, "PNG": {}, "GIF": {}, "WEBP": {}, "BMP": {}, "TIFF": {"compression": "tiff_deflate"}}
_MAGIC = [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"BM", b"II*\x00",
          b"MM\x00*", b""]  # fmt: skip


def _mutate(data: bytes, rng: np.random.Generator, *, header: int = 256) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 6))):
        op = int(rng.integers(0, 4))
        if op == 0 and out:  # a byte of the header
            out[int(rng.integers(0, min(len(out), header)))] = int(rng.integers(0, 256))
        elif op == 1 and out:  # a byte anywhere
            out[int(rng.integers(0, len(out)))] = int(rng.integers(0, 256))
        elif op == 2:  # cut
            out = out[: int(rng.integers(0, len(out) + 1))]
        else:  # insert
            pos = int(rng.integers(0, len(out) + 1))
            out[pos:pos] = rng.bytes(int(rng.integers(1, 9)))
    return bytes(out)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about some corrupt EXIF and TIFF tags
def test_mutated_and_random_image_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    seeds = {}
    for fmt, kw in _IMAGE_FORMATS.items():
        buf = io.BytesIO()
        Image.fromarray(_texture(20, 24)).save(buf, format=fmt, **kw)
        seeds[fmt] = buf.getvalue()
    cases = [_mutate(seeds[fmt], rng) for _ in range(60) for fmt in seeds]
    cases += [magic + rng.bytes(int(rng.integers(0, 400))) for _ in range(10) for magic in _MAGIC]
    valid = 0
    for i, data in enumerate(cases):
        path = tmp_path / f"case{i}.img"
        path.write_bytes(data)
        valid += typed_or_valid_image(load_image, path) is not None
    assert 0 < valid < len(cases)  # both outcomes happened: the fuzz reached the decoders


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Pillow deprecates the IM format
@pytest.mark.parametrize("case", ["dds-unknown-pixel-format", "im-float-size"])
def test_rare_format_decoder_errors_are_typed(tmp_path: Path, case: str) -> None:
    buf = io.BytesIO()
    if case.startswith("dds"):
        Image.fromarray(_texture(20, 24)).save(buf, format="DDS")
        data = bytearray(buf.getvalue())
        data[80:84] = (0x40000000).to_bytes(4, "little")  # DDS_PIXELFORMAT.dwFlags
    else:
        Image.fromarray(_texture(20, 24)).save(buf, format="IM")
        data = bytearray(buf.getvalue().replace(b"24*20", b"24*2.0", 1))
    path = tmp_path / f"{case}.img"
    path.write_bytes(bytes(data))
    with pytest.raises(ImageDecodeError):
        load_image(path)


# -- mutation fuzz of videos --------------------------------------------------------------------------


def _children() -> list[int]:
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    if int(f.read().rpartition(b")")[2].split()[1]) == me:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


@pytest.fixture(scope="module")
def video_seeds() -> dict[str, bytes]:
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, args in {
            "mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
            "webm": ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "200k"],
            "avi": ["-c:v", "mjpeg"],
            "ts": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-f", "mpegts"],
            "mkv": ["-c:v", "mpeg4"],
        }.items():
            path = Path(d) / f"seed.{name}"
            subprocess.run(
                [FFMPEG, "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                 "testsrc2=size=48x32:rate=10:duration=0.6", *args, "-y", str(path)],
                check=True,
            )  # fmt: skip
            out[name] = path.read_bytes()
    return out


def _probe_and_read(path: Path) -> str:
    """How far a file got: "probe error", "decode error" or "frames"."""
    try:
        info = probe_video(path, timeout=CALL_LIMIT_S / 2)
    except DeepfakeDetectError:
        return "probe error"
    assert info.num_frames >= 1 and info.width >= 1 and info.height >= 1 and np.isfinite(info.duration)
    try:
        # As detect_video reads them: scaled inside ffmpeg, so a lying header cannot inflate frames.
        frames = list(read_frames(info, [0, info.num_frames - 1], max_size=64, timeout=CALL_LIMIT_S / 2))
    except DeepfakeDetectError:
        return "decode error"
    for _, frame in frames:
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3 and max(frame.shape[:2]) <= 64
    return "frames"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child processes are read from /proc")
def test_mutated_and_random_videos(video_seeds: dict[str, bytes], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cases = [(f"{name}-{k}", _mutate(data, rng, header=1024)) for k in range(5) for name, data in video_seeds.items()]
    cases += [(f"random-{k}", magic + rng.bytes(int(rng.integers(8, 3000))))
              for k, magic in enumerate([b"\x00\x00\x00\x18ftypisom", b"\x1aE\xdf\xa3", b"RIFF\x00\x00\x00\x00AVI ",
                                         b"G", b""])]  # fmt: skip
    outcomes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, data in cases:
            path = tmp_path / f"{name}.bin"
            path.write_bytes(data)
            outcomes.append(within(CALL_LIMIT_S * 1.5, _probe_and_read, path))
    assert _children() == []
    # The fuzz reached the demuxers and decoders: some files still gave frames, others were refused.
    assert "frames" in outcomes and "probe error" in outcomes, outcomes
