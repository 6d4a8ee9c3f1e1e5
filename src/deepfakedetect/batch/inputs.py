"""Which files a batch run scores: folders, globs, list files; and which a previous run already did."""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Union

from deepfakedetect._errors import InputError
from deepfakedetect._media import MEDIA_EXTENSIONS

logger = logging.getLogger(__name__)

__all__ = ["LIST_SUFFIXES", "BatchInputs", "list_inputs", "read_done", "scan_output"]


BatchInputs = Union[str, "os.PathLike[str]", Iterable[Union[str, "os.PathLike[str]"]]]


#: Suffixes of files read as lists of paths (one per line) rather than as media.
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})


GLOB_CHARS = frozenset("*?[")


def list_inputs(inputs: BatchInputs, *, recursive: bool = True) -> list[str]:
    """The files :func:`detect_many` would score, in the order it scores them.

    Args:
        inputs: A folder (its image and video files, sorted, at any depth when
            ``recursive``), a glob pattern (``"data/**/*.jpg"``; its image and video
            matches, sorted), a text file (``.txt``, ``.lst``, ``.list``) with one path per
            line (blank lines and lines starting with ``#`` skipped; relative paths are
            relative to the list file's folder), one image or video file, or a list of
            these (folders, list files and globs in it are expanded in place; other
            entries are kept as given, even missing or unreadable ones, which then get
            an error record), as the command line passes its arguments.
        recursive: Descend into sub-folders, and let ``**`` in a glob match any depth.

    Returns:
        Paths as strings, exactly as they appear in the records' ``"source"``.

    Raises:
        InputError: a path that does not exist, a glob or folder without any image
            or video file, or an unreadable list file.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("b.jpg", "a.png", "notes.md", "sub/c.mp4"):
        ...     (d / name).parent.mkdir(exist_ok=True); _ = (d / name).write_bytes(b"")
        >>> [pathlib.Path(p).relative_to(d).as_posix() for p in list_inputs(d)]
        ['a.png', 'b.jpg', 'sub/c.mp4']
    """
    if isinstance(inputs, (str, os.PathLike)):
        return expand_one(os.fspath(inputs), recursive=recursive)
    if isinstance(inputs, (bytes, bytearray)) or not isinstance(inputs, Iterable):
        raise InputError(
            f"cannot read inputs from {type(inputs).__name__}: pass a folder, a glob pattern, "
            "a text file listing paths, or a list of paths"
        )
    out = []
    for item in inputs:
        if not isinstance(item, (str, os.PathLike)):
            raise InputError(f"inputs must be paths (str or os.PathLike), got {type(item).__name__}: {item!r}")
        text = os.fspath(item)
        if expands(text):
            out.extend(expand_one(text, recursive=recursive))
        else:
            out.append(text)
    return out


def expands(text: str) -> bool:
    """Whether a list entry stands for several files: a folder, a list file, or a glob."""
    if os.path.isdir(text):
        return True
    if os.path.isfile(text):
        return Path(text).suffix.lower() in LIST_SUFFIXES
    return bool(GLOB_CHARS & set(text))


def expand_one(text: str, *, recursive: bool) -> list[str]:
    media = MEDIA_EXTENSIONS
    if os.path.isdir(text):
        found = sorted(walk(text, recursive=recursive, media=media))
        if not found:
            raise InputError(
                f"{text}: no image or video files found{' (searched sub-folders too)' if recursive else ''}; "
                f"looked for {', '.join(sorted(media))}"
            )
        return found
    if os.path.isfile(text):
        if Path(text).suffix.lower() in LIST_SUFFIXES:
            return read_list(text)
        return [text]
    if GLOB_CHARS & set(text):
        found = sorted(
            p for p in glob.glob(text, recursive=recursive) if os.path.isfile(p) and Path(p).suffix.lower() in media
        )
        if not found:
            raise InputError(f"the pattern {text!r} matched no image or video files")
        return found
    if os.path.exists(text):  # a FIFO or device: listed, so that it gets its own error record
        return [text]
    raise InputError(f"{text}: no such file or folder (pass a folder, a glob pattern, a file or a list of paths)")


def walk(root: str, *, recursive: bool, media: frozenset[str]) -> Iterator[str]:
    if not recursive:
        for entry in os.scandir(root):
            if entry.is_file() and Path(entry.name).suffix.lower() in media:
                yield os.path.join(root, entry.name)
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if Path(name).suffix.lower() in media:
                yield os.path.join(dirpath, name)


def read_list(path: str) -> list[str]:
    base = os.path.dirname(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read the list of paths ({e}); it must be UTF-8 text, one path per line") from e
    out = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        out.append(entry if os.path.isabs(entry) else os.path.join(base, entry))
    return out


def read_done(output: str | os.PathLike[str]) -> set[str]:
    """The ``"source"`` of every complete record in a JSON-lines results file.

    A last line without its newline (a run killed mid-write) does not count; neither
    does a line that is not a JSON object with a ``"source"`` (logged as a warning).

    Args:
        output: The results file; a missing file has no records.

    Returns:
        The set of recorded sources.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "r.jsonl")
        >>> _ = open(p, "w").write('{"source": "a.jpg", "status": "ok"}\\n{"source": "b.j')
        >>> sorted(read_done(p))
        ['a.jpg']
    """
    done, _ = scan_output(os.fspath(output))
    return done


def scan_output(path: str) -> tuple[set[str], int]:
    """Recorded sources and the byte length of the complete lines (where to append)."""
    done: set[str] = set()
    good_end = 0
    if not os.path.exists(path):
        return done, 0
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                logger.info("%s: ignoring an incomplete last line (%d bytes); it will be redone", path, len(raw))
                break
            good_end += len(raw)
            try:
                rec = json.loads(raw)
                done.add(str(rec["source"]))
            except (ValueError, TypeError, KeyError):
                logger.warning("%s: line %d is not a result record; its input will be scored again", path, number)
    return done, good_end
