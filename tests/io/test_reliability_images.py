"""Hostile and odd images (issue 9, items 7 and 11): what ``test_images.py`` does not cover.

Decompression bombs at and around the limits (refused from the header, with little
memory; just under the limit a valid result, with Pillow's warning kept from the caller),
truncated files of every common format, every mode read from a real file, EXIF
orientation through the whole detector on JPEGs, Pillow's global settings left as they
were, and finite scores for degenerate images (all black, all white, 1x1, 10000x10).
"""

from __future__ import annotations

import io
import struct
import sys
import tracemalloc
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from deepfakedetect import Detector, ImageDecodeError
from deepfakedetect.io.images import load_image

PILLOW_DEFAULT_MAX = 89_478_485  # Pillow's own default for Image.MAX_IMAGE_PIXELS

needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory is read from /proc")


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth, asymmetric colour image (survives JPEG; any flip or turn changes it)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = [
        128 + 90 * np.sin(x / (5 + 3 * c) + y / (9 + c) + rng.uniform(0, 6)) * (0.4 + 0.6 * x / w) + 20 * (y / h)
        for c in range(3)
    ]
    return np.clip(np.stack(planes, axis=2), 0, 255).astype(np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` grey pixels but holds only one short row of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pytest.skip("cannot reset the peak RSS counter (/proc/self/clear_refs)")


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # Tiny models gain nothing from more threads, and on a busy 2-core machine lose a lot.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def pillow_globals_kept():
    """Fail the test if loading changed Pillow's global settings or the warning filters."""
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters))
    yield
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES, list(warnings.filters)) == before


@pytest.fixture(scope="module")
def detector() -> Detector:
    torch.manual_seed(0)
    return Detector.from_backbone("resnet18", input_size=32, device="cpu", precision="fp32")


# -- decompression bombs ---------------------------------------------------------------------


@needs_proc
@pytest.mark.parametrize(
    "size",
    [(9500, 9500), (30_000, 30_000), (1, 2**31 - 1)],
    ids=["over our limit, in Pillow's warning zone", "over Pillow's error limit", "one absurd side"],
)
def test_bombs_are_refused_from_the_header(tmp_path: Path, size: tuple[int, int], pillow_globals_kept: None) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(*size))
    assert path.stat().st_size < 200
    _reset_peak_rss()
    base = _peak_rss_mb()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageDecodeError, match="decompression bomb") as info:
            load_image(path)
    assert str(path) in str(info.value)
    assert _peak_rss_mb() - base < 20  # nothing was decoded
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


@needs_proc
def test_just_under_the_limit_loads_with_bounded_memory_and_no_leaked_warning(
    tmp_path: Path, pillow_globals_kept: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (pillow_globals_kept comes first so that it checks after monkeypatch has undone its change)
    # The user lowered Pillow's global limit to 4 Mpx (load_image honours that) and lets this one
    # image through with max_pixels: 2200 x 2000 = 4.4 Mpx is in Pillow's warning zone (over the
    # limit, under twice it), so Pillow warns, and load_image must still return the pixels.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4_000_000)
    h, w = 2000, 2200
    arr = np.zeros((h, w, 3), np.uint8)
    arr[::7, :, 0] = 255
    arr[:, ::5, 2] = 200
    path = tmp_path / "big.png"
    Image.fromarray(arr).save(path, compress_level=1)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(path)  # without max_pixels the user's 4 Mpx limit applies
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(path, max_pixels=h * w - 1)  # one pixel over
    del arr
    _reset_peak_rss()
    base = _peak_rss_mb()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = load_image(path, max_pixels=h * w)  # exactly at the limit: allowed
    peak = _peak_rss_mb() - base
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    assert out[0, 1, 0] == 255 and out[1, 1, 0] == 0 and out[1, 0, 2] == 200
    assert not [x for x in caught if issubclass(x.category, Image.DecompressionBombWarning)]
    # Pillow's buffer (4 bytes a pixel), the array handed over and the result: a few copies, as
    # many for any size (measured: 69 MB for this 12.6 MB image, Pillow 13).
    frame_mb = h * w * 3 / 2**20
    assert peak < 6 * frame_mb + 20, f"peak {peak:.0f} MB for a {frame_mb:.0f} MB image"


def test_default_limit_is_pillows(tmp_path: Path) -> None:
    # Just over the default (89.48 Mpx) is refused; the message names the limit and the way past it.
    path = tmp_path / "over.png"
    path.write_bytes(_png_header_only(PILLOW_DEFAULT_MAX // 10_000 + 1, 10_000))
    with pytest.raises(ImageDecodeError, match="89,478,485") as info:
        load_image(path)
    assert "max_pixels" in str(info.value)


# -- truncated and malformed files -----------------------------------------------------------


def _encoded(fmt: str, arr: np.ndarray, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
@pytest.mark.parametrize("keep", [0.5, 0.1, 40], ids=["half", "tenth", "header only"])
def test_truncated_files_raise_image_decode_error(
    tmp_path: Path, fmt: str, keep: float, pillow_globals_kept: None
) -> None:
    data = _encoded(fmt, _texture(120, 160))
    cut = int(keep) if keep >= 1 else int(len(data) * keep)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[:cut])
    with pytest.raises(ImageDecodeError) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_other_malformed_files(tmp_path: Path, pillow_globals_kept: None) -> None:
    png = _encoded("PNG", _texture(32, 32))
    cases = {
        "zero.jpg": b"",
        "text.jpg": b"GIF89a is not what this is\n" * 20,
        "html.png": b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        "bad-crc.png": png[:40] + bytes([png[40] ^ 0xFF]) + png[41:],
        "jpeg-magic-only.jpg": b"\xff\xd8\xff\xe0" + b"\x00" * 100,
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ImageDecodeError) as info:
            load_image(path)
        assert name in str(info.value)


def test_broken_exif_does_not_make_pixels_unusable(tmp_path: Path) -> None:
    arr = _texture(24, 32)
    exif = Image.Exif()
    exif[0x0112] = 99  # not an orientation
    path = tmp_path / "odd-exif.png"
    Image.fromarray(arr).save(path, exif=exif)
    np.testing.assert_array_equal(load_image(path), arr)


# -- every mode, read from a real file ---------------------------------------------------------


def _grey() -> np.ndarray:
    return _texture(24, 32)[:, :, 1]


@pytest.mark.parametrize(
    "mode,fmt",
    [("1", "PNG"), ("L", "PNG"), ("LA", "PNG"), ("P", "PNG"), ("P+transparency", "PNG"), ("RGBA", "PNG"),
     ("CMYK", "JPEG"), ("CMYK", "TIFF"), ("I;16", "PNG"), ("I", "TIFF"), ("F", "TIFF"), ("YCbCr", "JPEG")],
)
def test_every_mode_read_from_a_file_becomes_the_right_rgb(tmp_path: Path, mode: str, fmt: str) -> None:
    rgb = _texture(24, 32)
    grey = _grey()
    if mode == "1":
        img, expected = Image.fromarray(grey > 128), np.where(grey > 128, 255, 0)[:, :, None].repeat(3, 2)
    elif mode == "L":
        img, expected = Image.fromarray(grey), grey[:, :, None].repeat(3, 2)
    elif mode == "LA":
        alpha = np.full_like(grey, 255)
        alpha[:, :8] = 0  # transparent columns come out white
        img = Image.fromarray(np.stack([grey, alpha], 2), "LA")
        expected = np.where(alpha[:, :, None] == 0, 255, grey[:, :, None]).repeat(3, 2)
    elif mode == "P":
        img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        expected = np.asarray(img.convert("RGB"))
    elif mode == "P+transparency":
        img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        index = np.asarray(img)[0, 0]
        img.info["transparency"] = int(index)
        expected = np.asarray(img.convert("RGB")).copy()
        expected[np.asarray(img) == index] = 255
    elif mode == "RGBA":
        alpha = np.full(grey.shape, 255, np.uint8)
        alpha[:4] = 0
        img = Image.fromarray(np.dstack([rgb, alpha]), "RGBA")
        expected = rgb.copy()
        expected[:4] = 255
    elif mode == "CMYK":
        img = Image.fromarray(rgb).convert("CMYK")
        expected = rgb
    elif mode == "I;16":
        img, expected = Image.fromarray(grey.astype(np.uint16) * 257), grey[:, :, None].repeat(3, 2)
    elif mode == "I":
        img = Image.fromarray(grey.astype(np.int32) * 257, "I")
        expected = grey[:, :, None].repeat(3, 2)
    elif mode == "F":
        img, expected = Image.fromarray(grey.astype(np.float32) / 255.0, "F"), grey[:, :, None].repeat(3, 2)
    else:  # YCbCr JPEG
        img, expected = Image.fromarray(rgb).convert("YCbCr"), rgb
    path = tmp_path / f"img.{fmt.lower()}"
    save_kw = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    img.save(path, format=fmt, **save_kw)
    out = load_image(path)
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
    tolerance = 12 if fmt == "JPEG" else 1
    assert np.abs(out.astype(int) - expected.astype(int)).max() <= tolerance


# -- EXIF orientation through the detector ---------------------------------------------------------

_TO_STORED = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_270}
# How a viewer turns the stored pixels upright (the inverse of the above).
_TO_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
               5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_90}


def test_exif_oriented_jpegs_score_like_their_upright_copy(detector: Detector, tmp_path: Path) -> None:
    upright = Image.fromarray(_texture(48, 64))
    for orientation in range(2, 9):
        stored = upright.transpose(_TO_STORED[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        tagged = tmp_path / f"o{orientation}.jpg"
        stored.save(tagged, quality=90, exif=exif)
        # The upright copy: the JPEG's own decoded pixels, turned upright, stored losslessly.
        with Image.open(tagged) as im:
            decoded = im.convert("RGB")
        copy = tmp_path / f"o{orientation}-upright.png"
        decoded.transpose(_TO_UPRIGHT[orientation]).save(copy)
        assert load_image(tagged).shape == (48, 64, 3)
        tagged_score, copy_score = (r.fake_score for r in detector.detect_image([tagged, copy]))
        wrong_way = detector.detect_image(np.asarray(decoded)).fake_score
        assert abs(tagged_score - copy_score) <= 1e-6, orientation
        # The model does see the difference, so the equality above means something.
        assert abs(wrong_way - copy_score) > 1e-4, orientation


# -- degenerate images give finite scores ---------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_degenerate_images_give_finite_scores(precision: str) -> None:
    torch.manual_seed(0)
    det = Detector.from_backbone("resnet18", input_size=32, device="cpu", precision=precision)
    images = {
        "all black": np.zeros((64, 64, 3), np.uint8),
        "all white": np.full((64, 64, 3), 255, np.uint8),
        "1x1": np.full((1, 1, 3), 77, np.uint8),
        "10000x10": _texture(10, 10_000),
        "10x10000": _texture(10_000, 10),
        "float all ones": np.ones((20, 20, 3), np.float32),
        "bool": np.ones((8, 8), bool),
    }
    results = det.detect_image(list(images.values()), batch_size=3)
    for name, r in zip(images, results):
        assert r.fake_score is not None and np.isfinite(r.fake_score) and 0.0 <= r.fake_score <= 1.0, name
        assert r.label in ("real", "fake"), name


def test_degenerate_files_give_finite_scores(detector: Detector, tmp_path: Path) -> None:
    paths = []
    for name, arr in {"black.png": np.zeros((16, 16), np.uint8), "white.jpg": np.full((16, 16, 3), 255, np.uint8),
                      "dot.gif": np.zeros((1, 1), np.uint8), "strip.png": _texture(10, 10_000)}.items():
        Image.fromarray(arr).save(tmp_path / name)
        paths.append(tmp_path / name)
    for r in detector.detect_image(paths):
        assert np.isfinite(r.fake_score) and 0.0 <= r.fake_score <= 1.0


@pytest.mark.parametrize("shape", [(1, 20_000, 3), (20_000, 1, 3)])
def test_extreme_aspect_ratio_uses_bounded_memory(detector: Detector, shape: tuple[int, int, int]) -> None:
    image = np.full(shape, 128, np.uint8)
    tracemalloc.start()
    try:
        score = detector.detect_image(image).fake_score
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert np.isfinite(score)
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MB traced for a {image.nbytes / 2**10:.0f} KB image"


# -- the robustness benchmark (benchmarks/robustness.py) runs on any model folder ------------------------


def test_robustness_benchmark_on_a_model_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util
    import json
    import subprocess

    import imageio_ffmpeg

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "robustness.py"
    spec = importlib.util.spec_from_file_location("robustness_benchmark", script)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)

    data = tmp_path / "shared" / "data"
    for rel, n in (("faces/lfw_faceswap/test", 3), ("faces/stylegan2_ffhq", 2)):
        for k, label in enumerate(("real", "fake")):
            (data / rel / label).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(_texture(40, 44, seed=10 * k + i)).save(data / rel / label / f"{label}_{i}.jpg", quality=90)
    for k, label in enumerate(("real", "fake")):
        (data / "videos/ffpp_c23" / label).mkdir(parents=True)
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
             f"testsrc2=size=64x48:rate=10:duration=0.5,hue=h={90 * k}", "-c:v", "libx264", "-pix_fmt", "yuv420p",
             str(data / "videos/ffpp_c23" / label / f"{label}.mp4")],
            check=True,
        )  # fmt: skip
    torch.manual_seed(0)
    model = Detector.from_backbone("resnet18", input_size=32, precision="fp32").save_pretrained(tmp_path / "model")
    out_json = tmp_path / "robustness.json"
    argv = ["--model", str(model), "--data", str(data), "--images", "2", "--videos", "1", "--precision", "fp32",
            "--batch-size", "4", "--json", str(out_json)]  # fmt: skip
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 2 * 6 + 1 and any("H.264 CRF 35" in r for r in rows)

    result = json.loads(out_json.read_text())
    by_key = {(s["dataset"], s["change"]): s for s in result["summary"]}
    assert by_key[("LFW face swap (test)", "JPEG q30")]["n"] == 4 and by_key[("StyleGAN2 / FFHQ", "JPEG q95")]["n"] == 4
    assert by_key[("FaceForensics++ c23", "H.264 CRF 35")]["n"] == 2
    # Recompute one cell by hand: the centre crop on the LFW subset.
    scores = next(r for r in result["scores"] if r["dataset"].startswith("LFW") and r["change"] == "centre crop 90%")
    det = Detector.from_pretrained(model, precision="fp32")
    images = [load_image(p) for p in scores["files"]]
    before = [r.fake_score for r in det.detect_image(images)]
    after = [r.fake_score for r in det.detect_image([bench.centre_crop_90(im) for im in images])]
    assert before == pytest.approx(scores["before"], abs=1e-6) and after == pytest.approx(scores["after"], abs=1e-6)
    expected = float(np.mean(np.abs(np.array(after) - np.array(before))))
    assert by_key[("LFW face swap (test)", "centre crop 90%")]["mean_abs_delta"] == pytest.approx(expected, abs=1e-6)
    assert all(0.0 <= s["flip_rate"] <= 1.0 and s["mean_abs_delta"] >= 0.0 for s in result["summary"])
