"""Handling what comes from outside: file names, file contents, paths that may not be files.

File names and everything read from files are untrusted (issue 15). Three rules, one
helper each, used by every layer (this module imports nothing from the package):

- :func:`printable`: text written to a terminal or a line-based output has its control
  characters escaped, so a file name holding a newline or a terminal escape can neither
  forge nor break a line.
- :func:`shorten`: a value echoed in an error message is a bounded ``repr``, never the
  whole of a large or hostile value.
- :func:`open_regular` / :func:`check_regular`: a path is read only when it is a regular
  file; a FIFO, device, socket or folder is refused without blocking (opening a FIFO that
  has no writer blocks forever).
"""

from __future__ import annotations

import os
import re
import stat
from typing import BinaryIO

__all__ = [
    "MAX_PIXELS",
    "MAX_SPEC_CHARS",
    "MAX_SPEC_PARAMS",
    "NotRegularFileError",
    "check_regular",
    "file_kind",
    "open_regular",
    "printable",
    "shorten",
]

#: Pixel limit of a decoded image or video frame (Pillow's own default decompression-bomb limit).
MAX_PIXELS = 89_478_485
#: Longest plugin spec accepted, in characters (``"top_k_mean:k=5"`` has 14).
MAX_SPEC_CHARS = 1000
#: Most parameters one plugin spec may set.
MAX_SPEC_PARAMS = 32

# C0 and C1 controls (tab kept apart), DEL, line and paragraph separators, and the
# bidirectional controls that can reorder what a terminal shows.
_UNPRINTABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    c = match.group(0)
    if c == "\n":
        return "\\n"
    if c == "\r":
        return "\\r"
    return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"


def printable(text: object, *, tabs: bool = False) -> str:
    """``str(text)`` with control characters escaped, safe to write as (part of) one line.

    Args:
        text: What to show.
        tabs: Keep tab characters (otherwise written as ``\\t``, so that a name cannot add
            a column to a tab-separated line).

    Example:
        >>> printable("a\\nb\\x1b[2J\\tc.png")
        'a\\\\nb\\\\x1b[2J\\\\tc.png'
    """
    out = _UNPRINTABLE.sub(_escape, str(text))
    return out if tabs else out.replace("\t", "\\t")


def shorten(value: object, limit: int = 80) -> str:
    """``repr(value)``, escaped and cut to about ``limit`` characters with the full length noted.

    Example:
        >>> shorten("x" * 1000, 24)
        "'xxxxxxxxxxxxxxxxxx... (1002 characters)"
    """
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not replace the error being reported
        text = f"<{type(value).__name__}>"
    if len(text) <= limit:
        return printable(text)
    return printable(text[: max(limit - 5, 8)]) + f"... ({len(text)} characters)"


class NotRegularFileError(OSError):
    """A path names a folder, FIFO, device or socket where a regular file was expected.

    Example:
        >>> str(NotRegularFileError("x.mp4", "a FIFO (named pipe)"))
        'x.mp4 is a FIFO (named pipe), not a regular file'
    """

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{printable(path)} is {kind}, not a regular file")
        self.path = path
        self.kind = kind


def file_kind(mode: int) -> str:
    """What an ``st_mode`` is, in words.

    Example:
        >>> import stat
        >>> file_kind(stat.S_IFIFO)
        'a FIFO (named pipe)'
    """
    for test, name in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a file"


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """``os.stat(path)``, refusing anything but a regular file; never opens it.

    Raises:
        NotRegularFileError: a folder, FIFO, device or socket.
        OSError: the path cannot be looked at (``FileNotFoundError``, ...).

    Example:
        >>> check_regular("/")  # doctest: +SKIP
        Traceback (most recent call last):
        NotRegularFileError: / is a folder, not a regular file
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(os.fspath(path), file_kind(st.st_mode))
    return st


def open_regular(path: str | os.PathLike[str]) -> BinaryIO:
    """Open a regular file for binary reading, never blocking on a FIFO or device.

    The path is opened non-blocking (opening a FIFO without a writer would otherwise
    block in ``open`` itself) and checked with ``fstat`` on that same descriptor, so a
    path swapped between a check and the open cannot slip through. The returned file
    blocks normally.

    Raises:
        NotRegularFileError: a folder, FIFO, device or socket.
        OSError: the file cannot be opened (``FileNotFoundError``, ``PermissionError``, ...).

    Example:
        >>> import tempfile
        >>> with tempfile.NamedTemporaryFile() as tmp, open_regular(tmp.name) as f:
        ...     f.read()
        b''
    """
    nonblock = getattr(os, "O_NONBLOCK", 0)
    flags = os.O_RDONLY | nonblock | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(os.fspath(path), file_kind(mode))
        if nonblock:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
