import io

import numpy as np
import pytest
import torch
from PIL import Image

from deepfakedetect import ImageDecodeError, InputError
from deepfakedetect.io.images import load_image


def _gradient(h=20, w=30):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 8 % 256, y * 12 % 256, (x + y) * 4 % 256], axis=2).astype(np.uint8)


def test_path_pil_array_and_tensor_agree(tmp_path):
    arr = _gradient()
    path = tmp_path / "a.png"
    Image.fromarray(arr).save(path)
    tensor = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    for x in (path, str(path), Image.open(path), arr, tensor, tensor.float() / 255):
        out = load_image(x)
        assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
        np.testing.assert_array_equal(out, arr)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGBA", "CMYK", "I;16", "I", "F", "RGB"])
def test_every_mode_becomes_rgb(tmp_path, mode):
    base = Image.fromarray(_gradient())
    if mode == "I;16":
        img = Image.fromarray((np.asarray(base.convert("L")).astype(np.uint16) * 257))
        assert img.mode.startswith("I;16")
    elif mode == "F":
        img = Image.fromarray(np.asarray(base.convert("L")).astype(np.float32) / 255.0, mode="F")
    else:
        img = base.convert(mode)
    out = load_image(img)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode in ("L", "I;16", "F", "LA"):
        gray = np.asarray(base.convert("L"))
        # 16-bit and float greys are rescaled to 0..255, not clipped.
        assert np.abs(out[:, :, 0].astype(int) - gray).max() <= 1


def test_sixteen_bit_is_scaled_not_clipped():
    img = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert load_image(img).min() == 255
    img = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    assert 126 <= load_image(img)[0, 0, 0] <= 129


def test_transparent_pixels_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    out = load_image(Image.fromarray(rgba, "RGBA"))
    assert (out == 255).all()
    assert (load_image(rgba) == 255).all()


@pytest.mark.parametrize("orientation", range(2, 9))
def test_exif_orientation_is_applied(tmp_path, orientation):
    upright = _gradient(16, 24)
    img = Image.fromarray(upright)
    # Store the pixels as a camera would, then tag how to turn them upright.
    inverse = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
               4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
               6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE,
               8: Image.Transpose.ROTATE_270}[orientation]
    stored = img.transpose(inverse)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"
    stored.save(path, exif=exif)
    np.testing.assert_array_equal(load_image(path), upright)


def test_bad_files(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.jpg"
    text.write_text("this is not an image\n" * 10)
    buf = io.BytesIO()
    Image.fromarray(_gradient(200, 200)).save(buf, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    for path, match in [(empty, "empty"), (text, "not an image"), (truncated, "truncated"),
                        (tmp_path / "missing.jpg", "no such file")]:
        with pytest.raises(ImageDecodeError, match=match) as info:
            load_image(path)
        assert str(path) in str(info.value)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (5000, 5000)).save(path)
    with pytest.raises(ImageDecodeError, match="decompression bomb"):
        load_image(path, max_pixels=1_000_000)
    before = Image.MAX_IMAGE_PIXELS
    assert load_image(path).shape == (5000, 5000, 3)
    assert Image.MAX_IMAGE_PIXELS == before


@pytest.mark.parametrize(
    "bad",
    [np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4, 3), np.uint8), np.full((4, 4, 3), np.nan, np.float32),
     np.full((4, 4, 3), 3.0), np.zeros((4, 4, 3), np.int32), np.zeros((2, 3, 4, 4), np.uint8)],
)
def test_bad_arrays(bad):
    with pytest.raises(ImageDecodeError):
        load_image(bad)


def test_unsupported_type():
    with pytest.raises(InputError, match="cannot use"):
        load_image(42)
