"""Small helpers that several layers need: progress bars, atomic writes, JSON, sha256.

Each exists once here so that the library has one behaviour for each: one switch for
progress bars, one way to replace a file atomically, one way to hash and verify a file.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PROGRESS_ENV",
    "atomic_write",
    "atomic_write_text",
    "file_stamp",
    "jsonable",
    "progress_bar",
    "progress_enabled",
    "sha256_file",
    "sha256_matches",
]

#: Set to 0 / false / no / off to switch every progress bar off.
PROGRESS_ENV = "DEEPFAKEDETECT_PROGRESS"


def progress_enabled(progress: bool | None) -> bool:
    """Whether to show progress bars.

    ``progress=True`` or ``False`` decides; ``None`` means on, unless the environment
    variable ``DEEPFAKEDETECT_PROGRESS`` switches bars off or stderr is not a terminal
    (a log file or a pipe gets no bars).

    Example:
        >>> progress_enabled(False)
        False
    """
    if progress is not None:
        return progress
    if os.environ.get(PROGRESS_ENV, "1").lower() in ("0", "false", "no", "off"):
        return False
    return sys.stderr is not None and sys.stderr.isatty()


def progress_bar(total: int, desc: str, *, unit: str = "it", progress: bool | None = None) -> Any:
    """A tqdm progress bar on stderr, or ``None`` when bars are off or there is nothing to count.

    Callers use ``bar.update(n)`` / ``bar.close()`` behind ``if bar is not None``.
    """
    if total == 0 or not progress_enabled(progress):
        return None
    # huggingface_hub's tqdm honours its own switch too; imported here so that modules
    # which only might show a bar do not pay for importing huggingface_hub.
    from huggingface_hub.utils import tqdm  # type: ignore[attr-defined]

    return tqdm(total=total, desc=desc, unit=unit, leave=False)  # type: ignore[no-untyped-call]


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Write a file through ``write(tmp_path)`` and rename it into place.

    Readers see the old file or the new one, never a half-written one; the temporary
    file is removed if ``write`` fails.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.txt"
        >>> atomic_write(p, lambda tmp: tmp.write_text("hi")).read_text()
        'hi'
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def jsonable(x: Any) -> Any:
    """A JSON-ready copy: NaN and infinities become ``None``, tuples lists, paths strings.

    Example:
        >>> jsonable({"a": float("nan"), "b": (1, np.float32(0.5))})
        {'a': None, 'b': [1, 0.5]}
    """
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        return jsonable(x.item())
    if isinstance(x, Path):
        return str(x)
    return x


def file_stamp(path: str | os.PathLike[str]) -> str:
    """Size, modification time and inode: changes whenever the file's content may have."""
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_verified: dict[str, str] = {}  # resolved path -> file_stamp of the content that matched
_verified_lock = threading.Lock()


def sha256_matches(path: str | os.PathLike[str], expected: str) -> tuple[bool, str]:
    """Whether a file hashes to ``expected``, and its actual digest.

    A file that matched once is not hashed again in this process while its
    :func:`file_stamp` is unchanged. Raises ``OSError`` when the file cannot be read.
    """
    key = str(Path(path).resolve())
    stamp = file_stamp(path)
    with _verified_lock:
        if _verified.get(key) == f"{expected}:{stamp}":
            return True, expected
    actual = sha256_file(path)
    if actual == expected:
        with _verified_lock:
            _verified[key] = f"{expected}:{stamp}"
    return actual == expected, actual


def as_number(x: Any) -> float:
    """``x`` as a float when it is a finite real number (not a bool), else NaN.

    Validators compare the result (``as_number(v) >= 0``), so any bad value fails the check.

    Example:
        >>> as_number(3), as_number(True), as_number("1")
        (3.0, nan, nan)
    """
    ok = isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))
    return float(x) if ok and math.isfinite(float(x)) else math.nan


def as_int(x: Any) -> int:
    """``x`` when it is an integer (not a bool), else -1 (fails any ``>= 0`` check).

    Example:
        >>> as_int(4), as_int(4.0), as_int(True)
        (4, -1, -1)
    """
    return int(x) if isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) else -1
