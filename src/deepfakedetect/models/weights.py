"""Reading weights: ``.safetensors`` files only, validated before anything is allocated.

No pickle is ever run: the header is checked (length, JSON, each tensor's dtype, shape
and byte range) before safetensors reads the tensors.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from deepfakedetect._errors import ModelLoadError
from deepfakedetect._untrusted import open_regular, shorten

__all__ = ["load_safetensors"]

_DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_MAX_HEADER = 100_000_000  # the limit safetensors itself applies


def load_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Load a ``.safetensors`` file after validating its header; never unpickles anything.

    Checked before anything is allocated: the 8-byte header length against the file
    size, the header's JSON, each tensor's dtype (float, integer or bool types), shape
    and byte range (inside the file, the right length, not overlapping another).

    Args:
        path: The ``.safetensors`` file.

    Returns:
        The tensors by name, on the CPU.

    Raises:
        ModelLoadError: The file is missing, empty, truncated or malformed; names the file
            and is chained to the cause.

    Example:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> from safetensors.torch import save_file
        >>> path = Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> save_file({"w": torch.ones(2, 3)}, str(path))
        >>> load_safetensors(path)["w"].shape
        torch.Size([2, 3])
    """
    path = Path(path)
    try:
        _validate_safetensors(path)
    except FileNotFoundError as e:
        raise ModelLoadError(f"weights file {path} does not exist") from e
    except RecursionError:
        raise ModelLoadError(
            f"weights file {path} is not a valid safetensors file: its header is nested too deeply. "
            "Download it again (force_download=True) or re-save the model with Detector.save_pretrained"
        ) from None
    except (ValueError, OSError) as e:
        raise ModelLoadError(
            f"weights file {path} is not a valid safetensors file: {shorten(str(e), 300)}. "
            "Download it again (force_download=True) or re-save the model with Detector.save_pretrained"
        ) from e
    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own SafetensorError, or OSError
        raise ModelLoadError(f"weights file {path} could not be read by safetensors: {e}") from e


# -- safetensors validation -----------------------------------------------------------


def _validate_safetensors(path: Path) -> None:
    """Raise ValueError (or OSError) describing the first problem found in a safetensors file."""
    with open_regular(path) as f:  # never blocks on a FIFO; refuses folders and devices
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"the file has {size} bytes, fewer than the 8-byte header length (empty or truncated)")
        header_len = int.from_bytes(prefix, "little")
        if header_len == 0 or header_len > min(size - 8, _MAX_HEADER):
            raise ValueError(
                f"the header length field says {header_len} bytes, but the file has {size - 8} bytes after it "
                f"(and headers are at most {_MAX_HEADER}): the file is truncated or not safetensors"
            )
        raw = f.read(header_len)

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError(f"the header repeats a key: {sorted(k for k in set(keys) if keys.count(k) > 1)}")
        return dict(pairs)

    header = json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)  # JSONDecodeError is a ValueError
    if not isinstance(header, dict):
        raise ValueError(f"the header is a JSON {type(header).__name__}, not an object")
    data_len = size - 8 - header_len
    ranges: list[tuple[int, int, str]] = []
    for name, info in header.items():
        if name == "__metadata__":
            if not (isinstance(info, dict) and all(isinstance(v, str) for v in info.values())):
                raise ValueError("__metadata__ must map strings to strings")
            continue
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= info.keys():
            raise ValueError(f"tensor {name!r} lacks dtype, shape or data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPE_SIZES:
            raise ValueError(f"tensor {name!r} has dtype {dtype!r}; expected one of {sorted(_DTYPE_SIZES)}")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise ValueError(f"tensor {name!r} has an invalid shape {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            raise ValueError(f"tensor {name!r} has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end <= data_len:
            raise ValueError(
                f"tensor {name!r} spans bytes {begin}..{end} of a {data_len}-byte data section: the file is truncated"
            )
        if end - begin != math.prod(shape) * _DTYPE_SIZES[dtype]:
            raise ValueError(f"tensor {name!r} has {end - begin} bytes, but its shape {shape} and {dtype} need "
                             f"{math.prod(shape) * _DTYPE_SIZES[dtype]}")
        ranges.append((begin, end, name))
    ranges.sort()
    for (_, end_a, name_a), (begin_b, _, name_b) in zip(ranges, ranges[1:]):
        if begin_b < end_a:
            raise ValueError(f"tensors {name_a!r} and {name_b!r} overlap in the file")
