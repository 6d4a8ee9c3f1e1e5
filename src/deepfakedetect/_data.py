"""Training and evaluation data: finding labelled files, splitting them, caching inputs.

Layout (labels come from folder names only, never from the order of classes)::

    DATA/real/**/*.jpg   DATA/fake/**/*.jpg                  one pool, split here with a seed
    DATA/train/real/...  DATA/val/fake/...  DATA/test/...    splits given by folders

``real/`` and ``fake/`` may sit at any depth below ``DATA`` (``DATA/ffhq/real/`` and
``DATA/gan/fake/`` work), or be data folders themselves, with images at any depth below
them; a ``train/``,
``val/`` (or ``valid/``, ``validation/``) or ``test/`` folder above them names the
split. Several folders can be combined. Images are decoded once, brought to the
model's exact inference geometry (face crop when the face stage is on, then resize and
centre crop) and kept as ``uint8`` in memory or in a ``.npy`` file on disk, so epochs
never decode JPEG again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ._blend import self_blend
from ._config import PreprocessConfig
from ._errors import DatasetError, DeepfakeDetectError
from ._version import __version__

if TYPE_CHECKING:
    from ._detector import Detector

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "DataSplits",
    "ImageDataset",
    "PreparedImages",
    "Sample",
    "find_dataset",
    "prepare_images",
    "stratified_split",
]

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts"}
)
LABELS = ("real", "fake")
SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
_EXAMPLES = 5  # how many paths an error or warning quotes

DataPath = Union[str, "os.PathLike[str]"]
DataArg = Union[DataPath, Sequence[DataPath]]  # noqa: UP007

_EXPECTED = (
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


def _resolve_roots(data: DataArg) -> list[Path]:
    items: list[Any] = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not items:
        raise DatasetError(f"no data folder given; {_EXPECTED}")
    roots: list[Path] = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise DatasetError(f"a data folder must be a path, got {type(item).__name__}: {item!r}")
        root = Path(item).expanduser()
        if not root.exists():
            raise DatasetError(f"data folder {root} does not exist")
        if not root.is_dir():
            raise DatasetError(f"{root} is not a folder; {_EXPECTED}")
        root = root.resolve()
        if root not in roots:
            roots.append(root)
    return roots


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames.sort()
        # Hidden folders hold caches and editor files, never data.
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _scan_root(root: Path, extensions: frozenset[str]) -> tuple[dict[str | None, list[Sample]], list[Path]]:
    """Labelled samples of one root keyed by split (``None`` when no split folder)."""
    found: dict[str | None, list[Sample]] = {}
    unlabelled: list[Path] = []
    for path in _walk(root):
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
        splits = {_SPLIT_ALIASES[p] for p in parts[1 : label_pos[0]] if p in _SPLIT_ALIASES}
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
    key = lambda s: str(s.path)
    return sorted(train, key=key), sorted(val, key=key), sorted(test, key=key)


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
    roots = _resolve_roots(data)
    parts: dict[str, list[Sample]] = {name: [] for name in SPLITS}
    layouts: dict[str, str] = {}
    seen: set[Path] = set()
    kinds = "videos" if extensions == VIDEO_EXTENSIONS else "images"
    for root in roots:
        found, unlabelled = _scan_root(root, extensions)
        if not found:
            note = f" ({len(unlabelled)} {kinds} found, none below a real/ or fake/ folder)" if unlabelled else ""
            raise DatasetError(f"no labelled {kinds} in {root}{note}; {_EXPECTED}")
        if unlabelled:
            logger.warning(
                "ignored %d %s in %s that are not below a real/ or fake/ folder, e.g. %s",
                len(unlabelled),
                kinds,
                root,
                ", ".join(str(p) for p in unlabelled[:_EXAMPLES]),
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
    key = lambda s: str(s.path)
    return DataSplits(
        train=sorted(parts["train"], key=key),
        val=sorted(parts["val"], key=key),
        test=sorted(parts["test"], key=key),
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
        raise DatasetError(f"{what} has {n_real} real and {n_fake} fake files; both classes are needed ({_EXPECTED})")


# ---------------------------------------------------------------------------- preparation


@dataclass
class PreparedImages:
    """Inputs decoded once and brought to the model's inference geometry.

    Attributes:
        samples: The usable samples, in order.
        images: ``(N, S, S, 3)`` ``uint8`` (in memory, or memory-mapped from disk), or
            ``None`` without a cache (each access decodes the file again).
        skipped: ``(path, reason)`` for unreadable files and images without a face.
        seconds: Time spent preparing (0 when loaded from a disk cache).
        cache_file: The ``.npy`` file of a disk cache.
    """

    samples: list[Sample]
    images: np.ndarray | None
    preprocess: PreprocessConfig
    skipped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    cache_file: Path | None = None
    _detector: Any = None

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def y(self) -> np.ndarray:
        """Labels, 1 for fake and 0 for real."""
        return np.array([s.y for s in self.samples], dtype=np.int64)

    def get(self, i: int) -> np.ndarray:
        """The ``(S, S, 3)`` ``uint8`` input of sample ``i``."""
        if self.images is not None:
            return np.asarray(self.images[i])
        image, _ = _prepare_one(self.samples[i].path, self.preprocess, self._detector)
        if image is None:
            raise DatasetError(f"{self.samples[i].path}: no face found any more (the file changed while training)")
        return image


def _load(path: Path) -> np.ndarray:
    from ._images import load_image

    return load_image(path)


def _prepare_one(path: Path, pre: PreprocessConfig, detector: Detector | None) -> tuple[np.ndarray | None, str]:
    from ._detector import resize_and_crop

    image = _load(path)
    if detector is not None:
        found = detector.extract_faces([image])[0]
        if not found:
            return None, "no face found"
        image = found[0][1]
    return np.ascontiguousarray(resize_and_crop(image, pre)), ""


def _cache_key(samples: Sequence[Sample], pre: PreprocessConfig, detector: Detector | None) -> str:
    h = hashlib.sha256()
    h.update(f"deepfakedetect-cache-1|{__version__}|{pre!r}".encode())
    if detector is not None:
        h.update(f"|faces={detector.config.faces!r}|{detector._get_face_stage().detector!r}".encode())
    for s in samples:
        st = s.path.stat()
        h.update(f"|{s.path}|{s.label}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:20]


def _report_skipped(skipped: list[tuple[str, str]], total: int, strict: bool, what: str) -> None:
    if not skipped:
        return
    examples = "; ".join(f"{p} ({r})" for p, r in skipped[:_EXAMPLES])
    if strict:
        raise DatasetError(
            f"{len(skipped)} of {total} {what} cannot be used: {examples}; fix or remove them, "
            "or turn strict mode off to skip them"
        )
    logger.warning("skipped %d of %d %s that cannot be used, e.g. %s", len(skipped), total, what, examples)


@contextlib.contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads inside the block (small tensors are slower on more)."""
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def prepare_images(
    samples: Sequence[Sample],
    *,
    preprocess: PreprocessConfig,
    detector: Detector | None = None,
    cache: str | None = "memory",
    cache_dir: str | os.PathLike[str] | None = None,
    strict: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
    desc: str = "images",
) -> PreparedImages:
    """Decode, face-crop (optionally), resize and centre-crop every sample once.

    With a face stage, the largest face of each image is cropped exactly as
    :meth:`Detector.detect_image` crops it (``detector.extract_faces``), so training
    and inference preprocessing cannot drift apart.

    Args:
        samples: The files.
        preprocess: The model's preprocessing (``detector.config.preprocess``).
        detector: A detector whose face stage crops the images, or ``None`` for whole images.
        cache: ``"memory"`` (keep a ``uint8`` array), ``"disk"`` (a ``.npy`` file in
            ``cache_dir``, memory-mapped, reused by later runs on the same files and
            settings) or ``None`` (check every file now, decode again at each access).
        cache_dir: Folder of the disk cache.
        strict: Raise :class:`DatasetError` for unreadable files or images without a
            face instead of skipping them with a warning.
        workers: Decoding threads (default: the number of CPUs, at most 8).
        progress: Show a progress bar.
        desc: What the samples are, for messages.

    Returns:
        A :class:`PreparedImages`.

    Raises:
        DatasetError: in strict mode for unusable files, when nothing is usable, or
            for a bad ``cache`` value.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (40, 30)).save(root / "a.png")
        >>> (root / "b.png").write_bytes(b"not an image")
        12
        >>> samples = [Sample(root / "a.png", "real", root), Sample(root / "b.png", "fake", root)]
        >>> prep = prepare_images(samples, preprocess=PreprocessConfig(input_size=16), progress=False)
        >>> prep.images.shape, len(prep.skipped)
        ((1, 16, 16, 3), 1)
    """
    from ._detector import progress_enabled

    if cache not in ("memory", "disk", None):
        raise DatasetError(f"cache must be 'memory', 'disk' or None, got {cache!r}")
    samples = list(samples)
    if detector is not None and not detector.config.faces.enabled:
        detector = None
    cache_file: Path | None = None
    if cache == "disk":
        folder = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        folder.mkdir(parents=True, exist_ok=True)
        key = _cache_key(samples, preprocess, detector)
        cache_file = folder / f"{key}.npy"
        index_file = folder / f"{key}.json"
        if cache_file.is_file() and index_file.is_file():
            try:
                index = json.loads(index_file.read_text(encoding="utf-8"))
                images = np.load(cache_file, mmap_mode="r", allow_pickle=False)
                kept = set(index["kept"])
                usable = [s for s in samples if str(s.path) in kept]
                if len(usable) == len(images):
                    logger.info("loaded %d cached %s from %s", len(usable), desc, cache_file)
                    skipped = [(p, r) for p, r in index["skipped"]]
                    _report_skipped(skipped, len(samples), strict, desc)
                    return PreparedImages(usable, images, preprocess, skipped, 0.0, cache_file, detector)
            except (OSError, ValueError, KeyError) as e:
                logger.warning("ignoring unreadable cache %s (%s); rebuilding it", cache_file, e)

    start = time.perf_counter()
    pre_size = preprocess.input_size
    out = np.empty((len(samples), pre_size, pre_size, 3), dtype=np.uint8) if cache else None
    ok = np.zeros(len(samples), dtype=bool)
    skipped: list[tuple[str, str]] = []
    n_workers = workers or min(8, os.cpu_count() or 1)
    bar = None
    if progress_enabled(progress) and samples:
        from huggingface_hub.utils import tqdm

        bar = tqdm(total=len(samples), desc=f"preparing {desc}", unit="img", leave=False)

    def decode(path: Path) -> np.ndarray | str:
        try:
            return _load(path)
        except DeepfakeDetectError as e:
            return str(e).removeprefix(f"{path}: ")

    chunk = 32
    try:
        with ThreadPoolExecutor(max_workers=n_workers) as pool, _threads(1):
            for begin in range(0, len(samples), chunk):
                part = samples[begin : begin + chunk]
                decoded = list(pool.map(decode, [s.path for s in part]))
                good = [(begin + j, im) for j, im in enumerate(decoded) if not isinstance(im, str)]
                skipped += [(str(s.path), im) for s, im in zip(part, decoded) if isinstance(im, str)]
                if detector is not None and good:
                    faces = detector.extract_faces([im for _, im in good])
                    kept = []
                    for (i, _), found in zip(good, faces):
                        if found:
                            kept.append((i, found[0][1]))  # largest face first
                        else:
                            skipped.append((str(samples[i].path), "no face found"))
                    good = kept
                from ._detector import resize_and_crop

                resized = list(pool.map(lambda item: resize_and_crop(item[1], preprocess), good))
                for (i, _), im in zip(good, resized):
                    ok[i] = True
                    if out is not None:
                        out[i] = im
                if bar is not None:
                    bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    usable = [s for s, good_ in zip(samples, ok) if good_]
    skipped.sort()
    _report_skipped(skipped, len(samples), strict, desc)
    if not usable:
        raise DatasetError(f"none of the {len(samples)} {desc} could be used (e.g. {skipped[0][0]}: {skipped[0][1]})")
    images = out[ok] if out is not None and not ok.all() else out
    logger.info("prepared %d %s in %.1f s (%d skipped)", len(usable), desc, seconds, len(skipped))
    if cache_file is not None and images is not None:
        from ._detector import _atomic_write

        index = {"kept": [str(s.path) for s in usable], "skipped": skipped, "seconds": seconds}
        _atomic_write(cache_file, lambda p: _save_npy(p, images))
        _atomic_write(
            cache_file.with_suffix(".json"), lambda p: p.write_text(json.dumps(index), encoding="utf-8")
        )
        images = np.load(cache_file, mmap_mode="r", allow_pickle=False)
    return PreparedImages(usable, images, preprocess, skipped, seconds, cache_file, detector)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _default_cache_dir() -> Path:
    base = os.environ.get("DEEPFAKEDETECT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "deepfakedetect"
    )
    return Path(base) / "preprocessed"


class ImageDataset(Dataset):
    """A torch map-style dataset over :class:`PreparedImages`, with optional augmentation.

    Item ``i`` is ``(x, y, i)``: the normalised float (3, S, S) input, the label (1
    fake, 0 real) and the index. Augmentation of item ``i`` in epoch ``e`` draws its
    randomness from a generator seeded with ``(seed, e, i)``, so it does not depend on
    the number of data-loading workers or processes, and a resumed run repeats it.

    With ``self_blend``, items past the prepared ones are synthetic fakes: each is a
    self-blended image (:func:`~deepfakedetect._blend.self_blend`) of a real sample,
    drawn afresh every epoch, then augmented like any other item.

    Args:
        prepared: The inputs.
        augment: A transform on ``uint8`` (3, S, S) tensors (see ``build_augment``), or ``None``.
        seed: Base seed of the augmentation.
        self_blend: Synthetic fakes per real sample and epoch (0: none; 0.5: one for
            half of the reals, a different half each epoch).

    Example:
        >>> prep = PreparedImages([Sample(Path("x.jpg"), "fake", Path("."))],
        ...                       np.zeros((1, 16, 16, 3), np.uint8), PreprocessConfig(input_size=16))
        >>> x, y, i = ImageDataset(prep)[0]
        >>> tuple(x.shape), y, i
        ((3, 16, 16), 1, 0)
    """

    def __init__(self, prepared: PreparedImages, *, augment: Any = None, seed: int = 0, self_blend: float = 0.0) -> None:
        self.prepared = prepared
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        pre = prepared.preprocess
        self._mean = torch.tensor(pre.mean, dtype=torch.float32).view(3, 1, 1) * 255.0
        self._std = torch.tensor(pre.std, dtype=torch.float32).view(3, 1, 1) * 255.0
        self._reals = np.flatnonzero(prepared.y == 0)
        n_blend = round(float(self_blend) * len(self._reals))
        self._y = np.concatenate([prepared.y, np.ones(n_blend, dtype=np.int64)])
        self._blend_of = np.empty(n_blend, dtype=np.int64)
        self.set_epoch(0)

    @property
    def y(self) -> np.ndarray:
        """Labels of every item, synthetic fakes included (1 fake, 0 real)."""
        return self._y

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch, which (with the seed and index) fixes each item's augmentation."""
        self.epoch = int(epoch)
        if len(self._blend_of):
            # Which reals become synthetic fakes this epoch: a seeded shuffle, cycled.
            order = np.random.default_rng([self.seed & 0xFFFFFFFF, self.epoch, 1]).permutation(self._reals)
            self._blend_of = order[np.arange(len(self._blend_of)) % len(order)]

    def __len__(self) -> int:
        return len(self._y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        n = len(self.prepared)
        blend = i >= n
        source = int(self._blend_of[i - n]) if blend else i
        x = torch.from_numpy(np.array(self.prepared.get(source), copy=True)).permute(2, 0, 1)
        if self.augment is not None or blend:
            with torch.random.fork_rng(devices=[]), _threads(1):
                # The CPU generator only: torch.manual_seed also queues a seed for every
                # accelerator backend, which costs 0.2 ms an item on a CUDA build.
                torch.default_generator.manual_seed(_item_seed(self.seed, self.epoch, i))
                if blend:
                    x = self_blend(x)
                if self.augment is not None:
                    x = self.augment(x)
        x = (x.float() - self._mean) / self._std
        return x, int(self._y[i]), int(i)


def _item_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, epoch, index]).generate_state(1, np.uint64)[0] >> 1)
