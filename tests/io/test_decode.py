"""decode_image: JPEGs decoded at a reduced size where the caller's minimums allow it."""

import numpy as np
import pytest
from PIL import Image

from deepfakedetect import ImageDecodeError
from deepfakedetect.io.images import DecodedImage, decode_image, load_image


def _gradient(width: int, height: int) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    rgb = np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1)
    return Image.fromarray(rgb.astype(np.uint8))


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory):
    path = tmp_path_factory.mktemp("decode") / "big.jpg"
    _gradient(4000, 3000).save(path, quality=95)
    return path


@pytest.mark.parametrize(
    ("longer", "shorter", "shape"),
    [
        (640, None, (750, 1000, 3)),  # 1/4: longer side 1000 >= 640; 1/8 would give 500
        (None, 256, (375, 500, 3)),  # 1/8: shorter side 375 >= 256
        (400, 300, (375, 500, 3)),
        (1500, None, (1500, 2000, 3)),  # 1/2
        (2500, None, (3000, 4000, 3)),  # no reduction keeps 2500: full size
    ],
)
def test_jpeg_decoded_at_the_smallest_reduction_keeping_the_minimums(big_jpeg, longer, shorter, shape):
    img = decode_image(big_jpeg, min_longer_side=longer, min_shorter_side=shorter)
    assert img.array.shape == shape and img.array.dtype == np.uint8
    assert img.full_size == (3000, 4000)
    assert img.source == big_jpeg
    assert img.reduced == (shape[:2] != (3000, 4000))
    assert img.scale == pytest.approx((4000 / shape[1], 3000 / shape[0]))
    assert img.nbytes == img.array.nbytes


def test_reduced_pixels_match_a_full_decode_scaled_down(big_jpeg):
    small = decode_image(big_jpeg, min_longer_side=640).array
    full = Image.fromarray(load_image(big_jpeg)).resize((1000, 750), Image.Resampling.BOX)
    diff = np.abs(small.astype(np.int16) - np.asarray(full).astype(np.int16))
    assert diff.mean() < 2.0 and diff.max() < 24


def test_exif_orientation_turns_the_full_size_too(tmp_path):
    path = tmp_path / "turned.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: stored 4000x3000, shown 3000 wide and 4000 high
    _gradient(4000, 3000).save(path, exif=exif)
    img = decode_image(path, min_longer_side=640)
    assert img.array.shape == (1000, 750, 3)
    assert img.full_size == (4000, 3000)
    assert img.scale == pytest.approx((4.0, 4.0))
    np.testing.assert_array_equal(decode_image(path).array, load_image(path))


def test_odd_sizes_round_up_like_the_decoder(tmp_path):
    path = tmp_path / "odd.jpg"
    _gradient(4001, 2999).save(path)
    img = decode_image(path, min_longer_side=400)
    assert img.array.shape == (375, 501, 3)  # ceil(2999 / 8), ceil(4001 / 8)
    assert img.full_size == (2999, 4001)


def test_other_formats_and_in_memory_inputs_come_at_full_size(tmp_path):
    png = tmp_path / "big.png"
    _gradient(1200, 900).save(png)
    img = decode_image(png, min_longer_side=100)
    assert img.array.shape == (900, 1200, 3) and not img.reduced and img.source == png
    arr = np.zeros((90, 120, 3), np.uint8)
    img = decode_image(arr, min_longer_side=10)
    assert img.array is not None and img.full_size == (90, 120) and img.source is None
    assert decode_image(img) is img
    assert load_image(img) is img.array


def test_no_minimum_means_full_size(big_jpeg):
    img = decode_image(big_jpeg)
    assert img.array.shape == (3000, 4000, 3) and not img.reduced


def test_pixel_limit_counts_the_full_resolution(big_jpeg, tmp_path):
    with pytest.raises(ImageDecodeError, match="big.jpg"):
        decode_image(big_jpeg, min_longer_side=640, max_pixels=4000 * 3000 - 1)
    with pytest.raises(ImageDecodeError, match="nothing.jpg"):
        decode_image(tmp_path / "nothing.jpg", min_longer_side=640)


def test_scale_of_a_hand_made_decoded_image():
    img = DecodedImage(np.zeros((30, 40, 3), np.uint8), (120, 160))
    assert img.reduced and img.scale == (4.0, 4.0)
