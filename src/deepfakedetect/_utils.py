"""Small helpers that several layers need: progress bars, atomic writes, JSON, sha256, read-ahead.

Each exists once here so that the library has one behaviour for each: one switch for
progress bars, one way to replace a file atomically, one way to hash and verify a file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from deepfakedetect._errors import ConfigError

__all__ = [
    "PROGRESS_ENV",
    "atomic_write",
    "atomic_write_text",
    "file_stamp",
    "jsonable",
    "prefetch",
    "progress_bar",
    "progress_enabled",
    "sha256_file",
    "sha256_matches",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

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


def prefetch(iterable: Iterable[T], maxsize: int = 2) -> Generator[T, None, None]:
    """Run ``iterable`` in a background thread, at most ``maxsize`` items ahead.

    A bounded producer/consumer: decoding (which releases the GIL in Pillow, NumPy and
    while waiting on ffmpeg) then overlaps with model compute on the consumer's side.
    Exceptions raised by the iterable are re-raised in the consumer, at the position
    they happened. Closing the returned generator (or leaving a ``for`` loop early)
    stops the thread and closes the source iterator.

    Args:
        iterable: The source; consumed only by the background thread.
        maxsize: How many items may wait for the consumer (the memory bound); at least 1.

    Yields:
        The source's items, in order.

    Raises:
        ConfigError: ``maxsize`` below 1.

    Example:
        >>> list(prefetch(iter(range(5)), maxsize=2))
        [0, 1, 2, 3, 4]
    """
    if not isinstance(maxsize, int) or isinstance(maxsize, bool) or maxsize < 1:
        raise ConfigError(f"prefetch maxsize must be a positive integer, got {maxsize!r}")
    return _prefetch(iter(iterable), maxsize)


_DONE = object()


def _prefetch(source: Iterator[T], maxsize: int) -> Generator[T, None, None]:
    q: queue.Queue[Any] = queue.Queue(maxsize=maxsize)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in source:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, who re-raises it
            put((_DONE, e))
        finally:
            close = getattr(source, "close", None)
            if close is not None and stop.is_set():
                try:
                    close()
                except Exception:  # the consumer is gone; nothing to report to
                    logger.debug("closing a prefetched iterator failed", exc_info=True)

    worker = threading.Thread(target=run, name="dfd-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = q.get()
            if item is _DONE:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join()
