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
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from deepfakedetect._config import PreprocessConfig
from deepfakedetect._errors import DatasetError, DeepfakeDetectError
from deepfakedetect._media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from deepfakedetect._utils import atomic_write, progress_bar
from deepfakedetect._version import __version__
from deepfakedetect.io.images import load_image
from deepfakedetect.models.preprocess import resize_and_crop
from deepfakedetect.training.blend import self_blend
from deepfakedetect.training.folders import (
    EXAMPLES,
    DataSplits,
    Sample,
    find_dataset,
    stratified_split,
)

if TYPE_CHECKING:
    from deepfakedetect.detector import Detector

logger = logging.getLogger(__name__)

SELF_BLENDED = "self-blended fakes"  # the name of the self-blended fakes as a source

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

    return load_image(path)


def _prepare_one(path: Path, pre: PreprocessConfig, detector: Detector | None) -> tuple[np.ndarray | None, str]:

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
    examples = "; ".join(f"{p} ({r})" for p, r in skipped[:EXAMPLES])
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
                cached_paths = set(index["kept"])
                usable = [s for s in samples if str(s.path) in cached_paths]
                if len(usable) == len(images):
                    logger.info("loaded %d cached %s from %s", len(usable), desc, cache_file)
                    cached_skips = [(p, r) for p, r in index["skipped"]]
                    _report_skipped(cached_skips, len(samples), strict, desc)
                    return PreparedImages(usable, images, preprocess, cached_skips, 0.0, cache_file, detector)
            except (OSError, ValueError, KeyError) as e:
                logger.warning("ignoring unreadable cache %s (%s); rebuilding it", cache_file, e)

    start = time.perf_counter()
    pre_size = preprocess.input_size
    out = np.empty((len(samples), pre_size, pre_size, 3), dtype=np.uint8) if cache else None
    ok = np.zeros(len(samples), dtype=bool)
    skipped: list[tuple[str, str]] = []
    n_workers = workers or min(8, os.cpu_count() or 1)
    bar = progress_bar(len(samples), f"preparing {desc}", unit="img", progress=progress)

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
                    kept: list[tuple[int, np.ndarray]] = []
                    for (i, _), found in zip(good, faces):
                        if found:
                            kept.append((i, found[0][1]))  # largest face first
                        else:
                            skipped.append((str(samples[i].path), "no face found"))
                    good = kept

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

        index = {"kept": [str(s.path) for s in usable], "skipped": skipped, "seconds": seconds}
        atomic_write(cache_file, lambda p: _save_npy(p, images))
        atomic_write(
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


class ImageDataset(Dataset[tuple[torch.Tensor, int, int]]):
    """A torch map-style dataset over :class:`PreparedImages`, with optional augmentation.

    Item ``i`` is ``(x, y, i)``: the normalised float (3, S, S) input, the label (1
    fake, 0 real) and the index. Augmentation of item ``i`` in epoch ``e`` draws its
    randomness from a generator seeded with ``(seed, e, i)``, so it does not depend on
    the number of data-loading workers or processes, and a resumed run repeats it.

    With ``self_blend``, items past the prepared ones are synthetic fakes: each is a
    self-blended image (:func:`~deepfakedetect.training.blend.self_blend`) of a real sample,
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

    def source_weights(self) -> tuple[np.ndarray, dict[str, int]]:
        """Sampling weights that give each source the same share of an epoch.

        A source is the data folder an item was found under; the self-blended fakes are
        one source more. Each class a source has gets an equal part of its share, so a
        folder of 360 reals and 120 fakes weighs as much as one of 4,200 files, and its
        fakes as much as its reals.

        Returns:
            The weights (one per item, summing to 1) and the number of items of each
            source, by name (the folder's path, or ``SELF_BLENDED``: ``"self-blended fakes"``).

        Example:
            >>> prep = PreparedImages([Sample(Path("a/real/1.jpg"), "real", Path("a")),
            ...                        Sample(Path("a/fake/2.jpg"), "fake", Path("a")),
            ...                        Sample(Path("b/real/3.jpg"), "real", Path("b"))],
            ...                       np.zeros((3, 16, 16, 3), np.uint8), PreprocessConfig(input_size=16))
            >>> ImageDataset(prep).source_weights()[0].tolist()
            [0.25, 0.25, 0.5]
        """
        keys = [str(s.root) for s in self.prepared.samples] + [SELF_BLENDED] * len(self._blend_of)
        names = sorted(set(keys))
        counts = {(k, y): 0 for k in names for y in (0, 1)}
        for k, y in zip(keys, self._y.tolist()):
            counts[k, y] += 1
        weights = np.empty(len(keys), dtype=np.float64)
        for i, (k, y) in enumerate(zip(keys, self._y.tolist())):
            classes = (counts[k, 0] > 0) + (counts[k, 1] > 0)
            weights[i] = 1.0 / (len(names) * classes * counts[k, y])
        return weights, {k: counts[k, 0] + counts[k, 1] for k in names}

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
