"""Turning what users pass (paths, PIL images, arrays, tensors) into RGB uint8 arrays, safely.

Files are opened with Pillow without touching its global settings: EXIF orientation
is applied, every mode becomes RGB with the right scaling, decompression bombs and
truncated files raise :class:`ImageDecodeError`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from deepfakedetect._errors import ImageDecodeError, InputError
from deepfakedetect._untrusted import MAX_PIXELS, NotRegularFileError, open_regular

__all__ = ["DecodedImage", "ImageInput", "decode_image", "decoded_size", "describe_input", "is_image_input", "load_image"]

# What detect_image accepts for one image. torch tensors are accepted too (checked by
# duck typing so that this module does not import torch).
ImageInput = Union[str, "os.PathLike[str]", Image.Image, np.ndarray, Any]

# Pillow's own default; read from the class attribute at call time would pick up a
# user's change to the global, which is theirs to make, so we honour it when smaller.
_DEFAULT_MAX_PIXELS = MAX_PIXELS


def describe_input(x: Any) -> str:
    """A short description of an input for error messages."""
    if isinstance(x, (str, os.PathLike)):
        return str(x)
    if isinstance(x, DecodedImage):
        return str(x.source) if x.source is not None else describe_input(x.array)
    if isinstance(x, Image.Image):
        return f"PIL image {x.mode} {x.size[0]}x{x.size[1]}"
    shape = getattr(x, "shape", None)
    if shape is not None:
        return f"{type(x).__name__} of shape {tuple(shape)} and dtype {getattr(x, 'dtype', '?')}"
    return type(x).__name__


def is_image_input(x: Any) -> bool:
    """Whether ``x`` is one image (as opposed to a list of them)."""
    return isinstance(x, (str, os.PathLike, Image.Image, np.ndarray, DecodedImage)) or _is_tensor(x)


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def load_image(x: ImageInput, *, max_pixels: int | None = None) -> np.ndarray:
    """Return an RGB uint8 array (H, W, 3) for a path, PIL image, array or tensor.

    Arrays are HWC (or HW) with 1, 3 or 4 channels, uint8 or float in [0, 1].
    Tensors are CHW (or HW), uint8 or float in [0, 1], as torchvision uses them.

    Args:
        x: The image.
        max_pixels: Refuse files with more pixels than this (default: Pillow's limit,
            about 89 megapixels). Checked from the header, before decoding.

    Returns:
        A C-contiguous uint8 array of shape (H, W, 3).

    Raises:
        ImageDecodeError: unreadable, truncated, too large, or of an unusable shape or dtype.

    Example:
        >>> import numpy as np
        >>> load_image(np.zeros((4, 5), dtype=np.uint8)).shape
        (4, 5, 3)
    """
    if isinstance(x, DecodedImage):
        return x.array
    if isinstance(x, (str, os.PathLike)):
        return _load_file(Path(x), max_pixels=max_pixels)[0]
    if isinstance(x, Image.Image):
        return _pil_image_to_rgb(x)
    if isinstance(x, np.ndarray):
        return _array_to_rgb(x, name=describe_input(x), channels_last=True)
    if _is_tensor(x):
        return _array_to_rgb(_tensor_to_numpy(x), name=describe_input(x), channels_last=False)
    raise InputError(
        f"cannot use {describe_input(x)} as an image: pass a file path, a PIL image, "
        "a NumPy array (HWC) or a torch tensor (CHW)"
    )


def _tensor_to_numpy(x: Any) -> np.ndarray:
    """A tensor's values as an array; a typed error for tensors that hold no plain data."""
    name = describe_input(x)
    if getattr(x, "is_meta", False):
        raise InputError(f"{name} is on the meta device and holds no data; pass a tensor with values")
    layout = str(getattr(x, "layout", "torch.strided"))
    if layout != "torch.strided":
        raise InputError(f"{name} is a sparse tensor ({layout}); convert it with .to_dense() first")
    try:
        arr = x.detach().cpu()
        if arr.dtype.is_floating_point:
            arr = arr.float()
        return arr.numpy()
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as e:  # quantized, nested, ...
        raise InputError(f"{name}: cannot read its values as an image ({type(e).__name__}: {e})") from e


def _pil_image_to_rgb(img: Image.Image) -> np.ndarray:
    name = describe_input(img)
    try:
        # A lazily opened image decodes here: a truncated file or a closed image fails now.
        img.load()
        return _pil_to_rgb(img, name=name)
    except ImageDecodeError:
        raise
    except (OSError, ValueError, SyntaxError, EOFError, AttributeError) as e:
        closed = "closed" in str(e).lower() or getattr(img, "fp", 0) is None and getattr(img, "im", 0) is None
        why = "it was closed (use it before closing it, or pass img.copy())" if closed else (
            "the image data is truncated or corrupt"
        )
        raise ImageDecodeError(f"{name}: cannot read its pixels: {why} ({type(e).__name__}: {e})") from e


@dataclass(frozen=True)
class DecodedImage:
    """An image decoded for scoring, possibly at a reduced size.

    Large JPEGs are decoded at 1/2, 1/4 or 1/8 of their size when that is all a step
    needs (Pillow's ``draft``: the JPEG decoder scales in the DCT domain, several times
    faster than decoding in full and resizing). :func:`decode_image` makes these.

    Attributes:
        array: RGB ``uint8`` array ``(H, W, 3)``, upright (EXIF orientation applied).
        full_size: ``(height, width)`` of the whole image at full resolution, upright.
        source: The file it was decoded from, or ``None`` (arrays, PIL images, tensors).

    Example:
        >>> img = DecodedImage(np.zeros((30, 40, 3), np.uint8), (120, 160))
        >>> img.reduced, img.scale
        (True, (4.0, 4.0))
    """

    array: np.ndarray
    full_size: tuple[int, int]
    source: Path | None = None

    @property
    def reduced(self) -> bool:
        """Whether ``array`` is smaller than the full-resolution image."""
        return tuple(self.array.shape[:2]) != tuple(self.full_size)

    @property
    def scale(self) -> tuple[float, float]:
        """Full-resolution pixels per ``array`` pixel, ``(x, y)``."""
        h, w = self.array.shape[:2]
        return self.full_size[1] / w, self.full_size[0] / h

    @property
    def nbytes(self) -> int:
        """Memory the pixels take."""
        return int(self.array.nbytes)


def _draft_scale(width: int, height: int, min_longer: int, min_shorter: int) -> int:
    """The largest JPEG reduction (8, 4, 2; 1: none) whose decode keeps both minimums."""
    for k in (8, 4, 2):
        w, h = -(-width // k), -(-height // k)  # what the decoder produces at 1/k: sides rounded up
        if max(w, h) >= min_longer and min(w, h) >= min_shorter:
            return k
    return 1


def _draft_size(width: int, height: int, min_longer: int, min_shorter: int) -> tuple[int, int] | None:
    """The size to ask ``draft`` for: the largest JPEG reduction (1/2, 1/4, 1/8) that keeps both minimums."""
    k = _draft_scale(width, height, min_longer, min_shorter)
    # draft picks the reduction from these (full // asked >= k)
    return None if k == 1 else (width // k, height // k)


def decoded_size(
    width: int, height: int, image_format: str | None, *, min_longer_side: int = 1, min_shorter_side: int = 1
) -> tuple[int, int]:
    """The ``(width, height)`` :func:`decode_image` decodes a file of this size and format at.

    For callers that must know a decode's cost before it happens (the batch window's
    byte budget reads it from the file's header).

    Example:
        >>> decoded_size(4000, 3000, "JPEG", min_longer_side=640)
        (1000, 750)
        >>> decoded_size(4000, 3000, "PNG", min_longer_side=640)
        (4000, 3000)
    """
    if image_format != "JPEG":
        return width, height
    k = _draft_scale(width, height, min_longer_side, min_shorter_side)
    return -(-width // k), -(-height // k)


def decode_image(
    x: ImageInput,
    *,
    min_longer_side: int | None = None,
    min_shorter_side: int | None = None,
    max_pixels: int | None = None,
) -> DecodedImage:
    """Decode an image, at a reduced size where the file allows it and the minimums are kept.

    A JPEG file is decoded at the smallest of 1/8, 1/4, 1/2 or full size whose longer side
    is at least ``min_longer_side`` and shorter side at least ``min_shorter_side``. Other
    formats, and inputs that are not files, come at full size. Everything else is as
    :func:`load_image` (the same checks, errors and conversions).

    Args:
        x: A path, PIL image, array or tensor.
        min_longer_side: Smallest longer side the caller needs (``None``: no reduction on this account).
        min_shorter_side: Smallest shorter side the caller needs.
        max_pixels: As in :func:`load_image` (the full-resolution size counts).

    Returns:
        A :class:`DecodedImage`.

    Raises:
        ImageDecodeError: as :func:`load_image`.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> f = Path(tempfile.mkdtemp()) / "big.jpg"
        >>> Image.new("RGB", (4000, 3000)).save(f)
        >>> img = decode_image(f, min_longer_side=640)  # decoded at 1/4: 1000 >= 640 > 500
        >>> img.array.shape, img.full_size
        ((750, 1000, 3), (3000, 4000))
    """
    if isinstance(x, DecodedImage):
        return x
    if (min_longer_side is None and min_shorter_side is None) or not isinstance(x, (str, os.PathLike)):
        arr = load_image(x, max_pixels=max_pixels)
        source = Path(x) if isinstance(x, (str, os.PathLike)) else None
        return DecodedImage(arr, (arr.shape[0], arr.shape[1]), source)
    path = Path(x)
    arr, full = _load_file(path, max_pixels=max_pixels, reduce=(min_longer_side or 1, min_shorter_side or 1))
    return DecodedImage(arr, full, path)


def _load_file(
    path: Path, *, max_pixels: int | None, reduce: tuple[int, int] | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """The upright RGB array and the full-resolution upright ``(height, width)``.

    ``reduce`` is ``(min_longer_side, min_shorter_side)``: a JPEG is then decoded at the
    largest reduction that keeps both (see :func:`decode_image`).
    """
    limit = max_pixels or min(_DEFAULT_MAX_PIXELS, Image.MAX_IMAGE_PIXELS or _DEFAULT_MAX_PIXELS)
    try:
        # Never blocks: a FIFO, device or folder is refused before anything is read.
        f = open_regular(path)
    except NotRegularFileError as e:
        if e.kind == "a folder":
            raise ImageDecodeError(
                f"{path} is a folder, not an image file; pass the image files in it "
                "(detect_image takes a list) or the folder to detect_many"
            ) from None
        raise ImageDecodeError(f"{path}: {e.kind}, not a regular file; only image files are read") from None
    except FileNotFoundError:
        raise ImageDecodeError(f"{path}: no such file") from None
    except OSError as e:
        raise ImageDecodeError(f"{path}: cannot open the file ({e.strerror or e})") from e
    with f:
        return _decode_open_file(f, path, limit, reduce)


def _decode_open_file(
    f: Any, path: Path, limit: int, reduce: tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int]]:
    if os.fstat(f.fileno()).st_size == 0:
        raise ImageDecodeError(f"{path}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit below replaces Pillow's warning; the global stays untouched.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(f) as img:
                w, h = img.size
                if w * h > limit:
                    raise ImageDecodeError(
                        f"{path}: {w}x{h} = {w * h:,} pixels is over the limit of {limit:,} "
                        "(a possible decompression bomb); downscale the image first, or pass "
                        "max_pixels= if you trust it"
                    )
                if reduce is not None and img.format == "JPEG":
                    asked = _draft_size(w, h, *reduce)
                    if asked is not None:
                        img.draft(None, asked)
                stored = img.size  # after draft: the size the decoder will produce
                img.load()
                arr = _pil_to_rgb(img, name=str(path), own=True)
                # EXIF orientation may have turned the image a quarter: the full size turns with it.
                turned = stored[0] != stored[1] and (arr.shape[1], arr.shape[0]) == (stored[1], stored[0])
                return arr, ((w, h) if turned else (h, w))
    except ImageDecodeError:
        raise
    except UnidentifiedImageError as e:
        raise ImageDecodeError(
            f"{path}: not an image Pillow can read (is it really an image? "
            "supported: JPEG, PNG, WebP, BMP, TIFF, GIF and the other formats Pillow reads)"
        ) from e
    except Image.DecompressionBombError as e:
        raise ImageDecodeError(f"{path}: refused as a decompression bomb: {e}") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageDecodeError(f"{path}: cannot decode the image ({e}); the file may be truncated or corrupt") from e
    except Exception as e:  # Pillow's plugins for rarer formats raise other types on malformed files
        raise ImageDecodeError(f"{path}: cannot decode the image ({type(e).__name__}: {e})") from e


def _pil_to_rgb(img: Image.Image, *, name: str, own: bool = False) -> np.ndarray:
    """An upright RGB ``uint8`` copy of ``img``'s pixels.

    ``own``: the image was opened here and nobody else holds it, so EXIF orientation is
    applied in place (without a full-size copy when the image has no orientation tag).
    """
    try:
        if own:
            ImageOps.exif_transpose(img, in_place=True)
        else:  # the caller's image must not change
            img = ImageOps.exif_transpose(img)
    except Exception:  # a malformed EXIF block must not make the pixels unusable
        pass
    if img.mode in ("La", "RGBa"):  # premultiplied alpha: Pillow converts these only to their plain forms
        img = img.convert("LA" if img.mode == "La" else "RGBA")
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8).copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
        if mode == "F":
            # Float images have no standard range: [0, 1] when they fit in it, else [0, 255].
            scale = 255.0 if arr.size and arr.max() <= 1.0 and arr.min() >= 0.0 else 1.0
        else:
            scale = 255.0 / 65535.0
        gray = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    try:
        if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
            # Transparent pixels are shown on white, as image viewers do.
            rgba = img.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8).copy()
        return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except (ValueError, OSError) as e:
        raise ImageDecodeError(f"{name}: cannot convert image mode {mode!r} to RGB: {e}") from e


def _array_to_rgb(arr: np.ndarray, *, name: str, channels_last: bool) -> np.ndarray:
    if arr.ndim == 3 and not channels_last:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        layout = "(H, W, C)" if channels_last else "(C, H, W)"
        raise ImageDecodeError(f"{name}: expected shape {layout} with 1, 3 or 4 channels, or (H, W)")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageDecodeError(f"{name}: the image is empty")
    if arr.dtype == np.uint8:
        out = arr
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageDecodeError(f"{name}: contains NaN or infinite values")
        if arr.min() < 0.0 or arr.max() > 1.0:
            raise ImageDecodeError(f"{name}: float images must be in [0, 1]; convert to uint8 for 0..255 data")
        out = np.rint(arr * 255.0).astype(np.uint8)
    elif arr.dtype == np.bool_:
        out = arr.astype(np.uint8) * 255
    else:
        raise ImageDecodeError(f"{name}: unsupported dtype {arr.dtype}; use uint8 (0..255) or float (0..1)")
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    elif out.shape[2] == 4:
        alpha = out[:, :, 3:4].astype(np.float32) / 255.0
        out = np.rint(out[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(out)
