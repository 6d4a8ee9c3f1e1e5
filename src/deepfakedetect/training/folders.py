"""Finding labelled data: real/ and fake/ folders, optional train/val/test splits, stratified splitting."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

from deepfakedetect._errors import DatasetError
from deepfakedetect._media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)

EXAMPLES = 5  # how many paths an error or warning quotes

__all__ = ['DataArg', 'DataPath', 'DataSplits', 'EXPECTED', 'LABELS', 'SPLITS', 'SPLIT_ALIASES', 'Sample', 'check_classes', 'find_dataset', 'resolve_roots', 'scan_root', 'stratified_split', 'walk']


LABELS = ("real", "fake")


SPLITS = ("train", "val", "test")


SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


DataPath = Union[str, "os.PathLike[str]"]


DataArg = Union[DataPath, Sequence[DataPath]]  # noqa: UP007


EXPECTED = (
    "expected real/ and fake/ folders below it (DATA/real/*.jpg, DATA/fake/*.jpg), or "
    "train/, val/ and test/ folders each holding real/ and fake/"
)


@dataclass(frozen=True)
class Sample:
    """One labelled file.

    Example:
        >>> Sample(Path("d/fake/a.jpg"), "fake", Path("d")).y
        1
    """

    path: Path
    label: str  # "real" or "fake", from the folder name
    root: Path  # the data folder it was found under

    @property
    def y(self) -> int:
        """1 for fake, 0 for real (the convention of the metrics)."""
        return 1 if self.label == "fake" else 0


@dataclass
class DataSplits:
    """Labelled files by split, and where they came from.

    Attributes:
        train, val, test: The samples of each split (sorted by path).
        roots: The data folders, resolved.
        layouts: Per root, ``"splits"`` (split folders) or ``"pool"`` (split here).
        split: How pools were split: ``seed``, ``val_fraction``, ``test_fraction``.

    Example:
        >>> DataSplits([], [], [], ()).counts()
        {'train': {'real': 0, 'fake': 0}, 'val': {'real': 0, 'fake': 0}, 'test': {'real': 0, 'fake': 0}}
    """

    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    roots: tuple[Path, ...]
    layouts: dict[str, str] = field(default_factory=dict)
    split: dict[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> list[Sample]:
        """The samples of split ``name`` (``"train"``, ``"val"``, ``"test"``), or of all for ``"all"``.

        Raises:
            DatasetError: for another name.
        """
        if name == "all":
            return sorted(self.train + self.val + self.test, key=lambda s: str(s.path))
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; choose one of train, val, test, all")
        return list(getattr(self, name))

    def counts(self) -> dict[str, dict[str, int]]:
        """Number of real and fake samples per split."""
        return {
            name: {lab: sum(1 for s in getattr(self, name) if s.label == lab) for lab in LABELS} for name in SPLITS
        }


def resolve_roots(data: DataArg) -> list[Path]:
    items: list[Any] = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not items:
        raise DatasetError(f"no data folder given; {EXPECTED}")
    roots: list[Path] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise DatasetError(f"a data folder must be a path, got {type(item).__name__}: {item!r}")
        root = Path(item).expanduser()
        if not root.exists():
            raise DatasetError(f"data folder {root} does not exist")
        if not root.is_dir():
            raise DatasetError(f"{root} is not a folder; {EXPECTED}")
        root = root.resolve()
        if root not in roots:
            roots.append(root)
    return roots


def walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        # Hidden folders hold caches and editor files, never data.
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def scan_root(root: Path, extensions: frozenset[str]) -> tuple[dict[str | None, list[Sample]], list[Path]]:
    """Labelled samples of one root keyed by split (``None`` when no split folder)."""
    found: dict[str | None, list[Sample]] = {}
    unlabelled: list[Path] = []
    for path in walk(root):
        if path.suffix.lower() not in extensions:
            continue
        # The root's own name counts for the label (``train ffhq/real gan/fake`` works),
        # not for the split (``train data/train`` is a pool to split).
        parts = [root.name.lower()] + [p.lower() for p in path.relative_to(root).parts[:-1]]
        label_pos = [i for i, p in enumerate(parts) if p in LABELS]
        if not label_pos:
            unlabelled.append(path)
            continue
        if len({parts[i] for i in label_pos}) > 1:
            raise DatasetError(
                f"{path} is below both a real/ and a fake/ folder; a file's label must be unambiguous"
            )
        label = parts[label_pos[0]]
        splits = {SPLIT_ALIASES[p] for p in parts[1 : label_pos[0]] if p in SPLIT_ALIASES}
        if len(splits) > 1:
            raise DatasetError(f"{path} is below more than one split folder ({', '.join(sorted(splits))})")
        split = splits.pop() if splits else None
        found.setdefault(split, []).append(Sample(path, label, root))
    return found, unlabelled


def stratified_split(
    samples: Sequence[Sample], *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    """Split samples into train, val and test, keeping the real/fake ratio in each.

    The split depends only on the set of paths, the fractions and the seed (not on
    the order the files were listed in).

    Args:
        samples: The pool.
        val_fraction: Share of each class for validation.
        test_fraction: Share of each class for test.
        seed: Random seed.

    Returns:
        ``(train, val, test)``, each sorted by path.

    Raises:
        DatasetError: when the fractions do not leave room for training data.

    Example:
        >>> pool = [Sample(Path(f"{lab}/{i}.jpg"), lab, Path(".")) for lab in ("real", "fake") for i in range(10)]
        >>> [len(part) for part in stratified_split(pool, val_fraction=0.2, test_fraction=0.1, seed=0)]
        [14, 4, 2]
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise DatasetError(
            f"val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be in [0, 1) "
            "and leave some data for training"
        )
    train: list[Sample] = []
    val: list[Sample] = []
    test: list[Sample] = []
    rng = np.random.default_rng(seed)
    for label in LABELS:
        group = sorted((s for s in samples if s.label == label), key=lambda s: str(s.path))
        order = rng.permutation(len(group))
        n_val = round(val_fraction * len(group))
        n_test = round(test_fraction * len(group))
        val += [group[i] for i in order[:n_val]]
        test += [group[i] for i in order[n_val : n_val + n_test]]
        train += [group[i] for i in order[n_val + n_test :]]
    return sorted(train, key=_path_key), sorted(val, key=_path_key), sorted(test, key=_path_key)


def find_dataset(
    data: DataArg,
    *,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    extensions: frozenset[str] = IMAGE_EXTENSIONS,
) -> DataSplits:
    """Find labelled images (or videos) under one or more data folders.

    Folders with ``train/``, ``val/``, ``test/`` keep their splits; a folder without
    them is a pool, split stratified by class with ``seed`` (so the same call always
    gives the same split). Files not below a ``real/`` or ``fake/`` folder are
    ignored with a warning.

    Args:
        data: A folder or a list of folders.
        val_fraction: Share of each class of a pool used for validation.
        test_fraction: Share of each class of a pool held out for testing.
        seed: Seed of the pool split.
        extensions: File extensions (lower case, with the dot) to collect.

    Returns:
        A :class:`DataSplits`.

    Raises:
        DatasetError: a missing folder, no labelled files, ambiguous labels, or a
            folder that mixes split folders with unsplit ``real/``/``fake/`` folders.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> for lab in ("real", "fake"):
        ...     (root / lab).mkdir()
        ...     for i in range(4):
        ...         (root / lab / f"{i}.jpg").touch()
        >>> find_dataset(root, val_fraction=0.25, test_fraction=0.25).counts()["val"]
        {'real': 1, 'fake': 1}
    """
    roots = resolve_roots(data)
    parts: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    layouts: dict[str, str] = {}
    seen: set[Path] = set()
    kinds = "videos" if extensions == VIDEO_EXTENSIONS else "images"
    for root in roots:
        found, unlabelled = scan_root(root, extensions)
        if not found:
            note = f" ({len(unlabelled)} {kinds} found, none below a real/ or fake/ folder)" if unlabelled else ""
            raise DatasetError(f"no labelled {kinds} in {root}{note}; {EXPECTED}")
        if unlabelled:
            logger.warning(
                "ignored %d %s in %s that are not below a real/ or fake/ folder, e.g. %s",
                len(unlabelled),
                kinds,
                root,
                ", ".join(str(p) for p in unlabelled[:EXAMPLES]),
            )
        if None in found and len(found) > 1:
            splits = sorted(k for k in found if k is not None)
            raise DatasetError(
                f"{root} mixes split folders ({', '.join(splits)}) with real/ and fake/ folders outside "
                f"them (e.g. {found[None][0].path}); put every labelled file under train/, val/ or test/, or none"
            )
        # The same file reached through two roots (one inside the other) is used once.
        for key in list(found):
            found[key] = [s for s in found[key] if s.path not in seen]
            seen.update(s.path for s in found[key])
        if None in found:
            layouts[str(root)] = "pool"
            train, val, test = stratified_split(
                found[None], val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
            )
            parts["train"] += train
            parts["val"] += val
            parts["test"] += test
        else:
            layouts[str(root)] = "splits"
            for key, samples in found.items():
                parts[str(key)] += samples
    return DataSplits(
        train=sorted(parts["train"], key=_path_key),
        val=sorted(parts["val"], key=_path_key),
        test=sorted(parts["test"], key=_path_key),
        roots=tuple(roots),
        layouts=layouts,
        split={"seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction},
    )


def check_classes(samples: Sequence[Sample], what: str, *, fakes_optional: bool = False) -> None:
    """Raise :class:`DatasetError` unless ``samples`` hold both real and fake files.

    Args:
        samples: The files.
        what: What they are, for the message.
        fakes_optional: Real files alone suffice (training with self-blended fakes).

    Example:
        >>> check_classes([], "training data")
        Traceback (most recent call last):
        ...
        deepfakedetect._errors.DatasetError: training data has 0 real and 0 fake files; ...
    """
    n_fake = sum(s.y for s in samples)
    n_real = len(samples) - n_fake
    if n_real == 0 or (n_fake == 0 and not fakes_optional):
        raise DatasetError(f"{what} has {n_real} real and {n_fake} fake files; both classes are needed ({EXPECTED})")


def _path_key(sample: Sample) -> str:
    return str(sample.path)
