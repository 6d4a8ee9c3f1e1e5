"""Which files a model was trained, selected and calibrated on, recorded by content.

Paths say nothing about content: the same image under another folder name is still
training data, and another machine's absolute path matches nothing. A
:class:`TrainingManifest` keeps, per split (``train``, ``val``, ``test``, and
``calibration`` for data a model was calibrated on afterwards), the sorted sha256
digests of the files' bytes, cut to 16 hex digits (64 bits: a false match among
millions of files is far less likely than one in a billion). It is written beside the
model as ``training_manifest.json`` and :func:`~deepfakedetect.evaluate` checks the files
it scores against it.

Example:
    >>> m = TrainingManifest({"train": frozenset({"0123456789abcdef"})})
    >>> TrainingManifest.from_dict(m.to_dict()) == m
    True
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepfakedetect._errors import ConfigError
from deepfakedetect._utils import atomic_write_text, sha256_file

__all__ = ["MANIFEST_NAME", "SEEN_SPLITS", "TrainingManifest", "file_digest", "file_digests"]

#: The manifest's file name in a model folder.
MANIFEST_NAME = "training_manifest.json"
_FORMAT = 1
_DIGITS = 16
#: Splits that a model has seen before evaluation: training, selection and calibration data.
SEEN_SPLITS = ("train", "val", "calibration")


def file_digest(path: str | os.PathLike[str], *, digits: int = _DIGITS) -> str:
    """The first ``digits`` hex digits of the sha256 of a file's bytes.

    Example:
        >>> import tempfile
        >>> p = Path(tempfile.mkdtemp()) / "a.bin"
        >>> _ = p.write_bytes(b"abc")
        >>> file_digest(p)
        'ba7816bf8f01cfea'
    """
    return sha256_file(path)[:digits]


def file_digests(paths: Iterable[str | os.PathLike[str]], *, digits: int = _DIGITS) -> dict[str, str | None]:
    """Digests of many files (in threads: hashing releases the GIL); ``None`` for unreadable files.

    Example:
        >>> file_digests([])
        {}
    """
    items = [str(p) for p in paths]

    def one(p: str) -> str | None:
        try:
            return file_digest(p, digits=digits)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return dict(zip(items, pool.map(one, items)))


@dataclass(frozen=True)
class TrainingManifest:
    """Content digests of a model's data, per split.

    Attributes:
        splits: Per split name, the set of file digests.
        digits: Hex digits kept of each sha256.

    Example:
        >>> m = TrainingManifest({"train": frozenset({"aa"}), "val": frozenset({"bb"})})
        >>> m.splits_of("bb"), m.splits_of("cc")
        (['val'], [])
    """

    splits: Mapping[str, frozenset[str]] = field(default_factory=dict)
    digits: int = _DIGITS

    def __post_init__(self) -> None:
        object.__setattr__(self, "splits", {k: frozenset(v) for k, v in self.splits.items()})

    @classmethod
    def from_files(cls, files: Mapping[str, Iterable[str | os.PathLike[str]]]) -> TrainingManifest:
        """Hash the files of each split (unreadable files are left out).

        Example:
            >>> TrainingManifest.from_files({"train": []}).counts()
            {'train': 0}
        """
        out: dict[str, frozenset[str]] = {}
        for name, paths in files.items():
            out[name] = frozenset(d for d in file_digests(paths).values() if d is not None)
        return cls(out)

    def with_split(self, name: str, digests: Iterable[str]) -> TrainingManifest:
        """A copy with ``digests`` added to split ``name``.

        Example:
            >>> TrainingManifest().with_split("calibration", ["aa"]).counts()
            {'calibration': 1}
        """
        splits = dict(self.splits)
        splits[name] = frozenset(splits.get(name, frozenset())) | frozenset(d[: self.digits] for d in digests)
        return TrainingManifest(splits, self.digits)

    def counts(self) -> dict[str, int]:
        """Number of distinct files per split."""
        return {k: len(v) for k, v in self.splits.items()}

    def splits_of(self, digest: str | None) -> list[str]:
        """The splits holding a file with this digest (sorted; empty when none or ``None``)."""
        if digest is None:
            return []
        d = digest[: self.digits]
        return sorted(name for name, ds in self.splits.items() if d in ds)

    def seen(self, digest: str | None) -> bool:
        """Whether the model trained, selected or was calibrated on a file with this digest."""
        return any(s in SEEN_SPLITS for s in self.splits_of(digest))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (splits and digests sorted, so equal manifests write equal files)."""
        return {
            "format": _FORMAT,
            "hash": "sha256",
            "digits": self.digits,
            "counts": dict(sorted(self.counts().items())),
            "splits": {k: sorted(v) for k, v in sorted(self.splits.items())},
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "manifest") -> TrainingManifest:
        """Read :meth:`to_dict`'s form.

        Raises:
            ConfigError: a malformed or newer manifest.
        """
        if not isinstance(data, dict) or not isinstance(data.get("splits"), dict):
            raise ConfigError(f"{source}: not a training manifest (expected an object with 'splits')")
        fmt = data.get("format", _FORMAT)
        if not isinstance(fmt, int) or fmt > _FORMAT:
            raise ConfigError(f"{source}: manifest format {fmt!r} is newer than this library reads ({_FORMAT})")
        digits = data.get("digits", _DIGITS)
        if not isinstance(digits, int) or not 8 <= digits <= 64:
            raise ConfigError(f"{source}: digits must be an integer in [8, 64], got {digits!r}")
        splits: dict[str, frozenset[str]] = {}
        for name, values in data["splits"].items():
            if not isinstance(values, list) or not all(isinstance(v, str) and len(v) == digits for v in values):
                raise ConfigError(f"{source}: split {name!r} must be a list of {digits}-digit hex digests")
            splits[str(name)] = frozenset(values)
        return cls(splits, digits)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write as compact JSON (atomically)."""
        atomic_write_text(path, json.dumps(self.to_dict(), separators=(",", ":")) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainingManifest:
        """Read a ``training_manifest.json``.

        Raises:
            ConfigError: unreadable or malformed.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read the training manifest {path}: {e}") from e
        return cls.from_dict(data, source=str(path))
