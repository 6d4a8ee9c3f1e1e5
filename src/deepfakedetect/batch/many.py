"""Scoring many files: streaming results, parallel decoding, resumable JSON-lines output.

:func:`detect_many` takes a folder, a glob pattern, a list of paths or a text file
listing paths, images and videos mixed, and yields one JSON-ready record per input
in input order, as soon as it is scored. Images are decoded (and, without the face
stage, already resized) by a small thread pool running ahead of the model through a
bounded window (a number of images and a byte budget), so decoding overlaps with
compute and memory stays bounded whatever the number and size of the files; large
JPEGs are decoded reduced, as :meth:`Detector.decode` does. With ``output=``, each record is appended to a JSON-lines file
and flushed at once; ``resume=True`` skips the inputs already recorded there, so a
run over 100,000 files can be stopped and continued.

:func:`prefetch` (from ``deepfakedetect._utils``, re-exported here) is the same overlap
for any iterator: a background thread that runs a bounded number of items ahead of the
consumer.
"""

from __future__ import annotations

import ctypes
import itertools
import logging
import os
import time
import warnings
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any

from PIL import Image

from deepfakedetect._config import PreprocessConfig
from deepfakedetect._errors import ConfigError, DeepfakeDetectError, ImageDecodeError
from deepfakedetect._media import is_video_path
from deepfakedetect._untrusted import open_regular, shorten
from deepfakedetect._utils import as_int, as_number, prefetch, progress_bar
from deepfakedetect.batch.budget import DEFAULT_DECODE_BUDGET, DecodeBudget
from deepfakedetect.batch.inputs import BatchInputs, list_inputs, read_done
from deepfakedetect.batch.output import ResultsFile, resolved_key
from deepfakedetect.io.images import DecodedImage, decoded_size
from deepfakedetect.models.preprocess import resize_shorter_side
from deepfakedetect.video.aggregators import get_aggregator
from deepfakedetect.video.samplers import get_sampler

if TYPE_CHECKING:
    from deepfakedetect.detector import Detector

logger = logging.getLogger(__name__)

__all__ = ["detect_many", "list_inputs", "prefetch", "read_done"]

def _decode_image(detector: Detector, path: str, pre: PreprocessConfig | None) -> DecodedImage:
    # Decoded as detect_image decodes (large JPEGs reduced, Detector.decode).
    image = detector.decode(path)
    if pre is None:
        return image
    # Resized in the decoding threads so only small arrays wait for the model; the model's
    # own resize_and_crop then only crops, so scores equal detect_image's on the same file.
    return DecodedImage(resize_shorter_side(image.array, pre), image.full_size, image.source)


_PEAK_BYTES_PER_PIXEL = 11

# glibc gives each decoding thread its own malloc arena and keeps what a large decode
# freed there (Pillow allocates images in 16 MB blocks, below the mmap threshold): with 4
# threads, 24 PNGs of 9400 x 9400 grew the process by 1.9 GB instead of 1.2 GB (the peak of
# one decode). Trimming after a large decode hands those pages back. Elsewhere: a no-op.
try:
    _malloc_trim: Any = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
    _malloc_trim = None
_TRIM_AFTER_BYTES = 64 * 2**20


def _decode_cost(path: str, min_sides: tuple[int, int]) -> int:
    """Peak bytes decoding ``path`` takes, from its header alone (0 when that fails: decoding says why).

    Measured peak of a decode (a 5000 x 5000 PNG: 10.1 bytes a pixel): Pillow's image
    (4 bytes a pixel; EXIF orientation is applied to it in place), the bytes handed to
    NumPy (3) and the array (3), so 11 bytes a pixel, with a margin, of the size it is
    decoded at (a large JPEG at 1/2, 1/4 or 1/8 of its stored size, as
    :func:`~deepfakedetect.io.images.decode_image` does).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open_regular(path) as f, Image.open(f) as img:
                full_w, full_h = img.size
                w, h = decoded_size(full_w, full_h, img.format, min_longer_side=min_sides[0], min_shorter_side=min_sides[1])
    except Exception:  # noqa: BLE001 - any failure is reported by the decoding itself
        return 0
    return _PEAK_BYTES_PER_PIXEL * w * h


def _decode_within_budget(
    detector: Detector, path: str, pre: PreprocessConfig | None, budget: DecodeBudget, ticket: int
) -> DecodedImage:
    """Decode one image once the budget grants its peak cost; afterwards it holds only the array."""
    cfg = detector.config
    # The sizes Detector.decode keeps: the face detector's input, or the model's resize.
    min_sides = (cfg.faces.detect_max_size, 1) if cfg.faces.enabled else (1, cfg.preprocess.resize_size)
    cost = _decode_cost(path, min_sides)
    if not budget.acquire(ticket, cost):
        raise _Abandoned(path)
    try:
        image = _decode_image(detector, path, pre)
    except BaseException:
        budget.release(ticket)
        raise
    finally:
        if _malloc_trim is not None and cost >= _TRIM_AFTER_BYTES:
            _malloc_trim(0)
    budget.resize(ticket, image.nbytes)
    return image


class _Abandoned(Exception):
    """An image whose decoding was given up on (timed out, or the run ended)."""


def _error_record(source: str, error: BaseException) -> dict[str, Any]:
    return {"source": source, "status": "error", "error": str(error), "type": type(error).__name__}


def detect_many(
    detector: Detector,
    inputs: BatchInputs,
    *,
    output: str | os.PathLike[str] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    batch_size: int = 32,
    num_workers: int | None = None,
    prefetch_size: int | None = None,
    progress: bool | None = None,
    sampler: Any = None,
    aggregator: Any = None,
    threshold: float | None = None,
    recursive: bool = True,
    timeout: float = 120.0,
    decode_budget: int = DEFAULT_DECODE_BUDGET,
) -> Iterator[dict[str, Any]]:
    """Score many images and videos, yielding one JSON-ready record per input as it is done.

    Records come in input order (see :func:`list_inputs`). A scored input gives its
    result's ``to_dict()`` (``"status"`` ``"ok"`` or ``"no_face"``), with ``"source"``
    the path as listed; an input that cannot be read gives ``{"source", "status":
    "error", "error": message, "type": error class}`` and the run goes on. Videos are
    recognised by extension and scored with ``detect_video``; consecutive images are
    scored together in batches.

    Args:
        detector: The detector to score with.
        inputs: A folder, a glob pattern, a text file listing paths, a file, or a list
            of paths (see :func:`list_inputs`).
        output: A JSON-lines file to append each record to (written per record). It
            is locked for the run (from this call on): a second run on the same file
            is refused with :class:`ConfigError`. A FIFO or socket is refused; a
            character device (``/dev/null``) may be written but not resumed.
        resume: Continue ``output``: inputs already recorded there are skipped and not
            yielded again, matched by resolved path (``d/a.jpg`` and ``./d/a.jpg`` are
            the same input; a relative path is resolved against the current folder,
            so resume from the folder the run started in); an incomplete last line (a run killed mid-write) is cut
            off and its input scored again; a line that is not a record is skipped
            with a warning naming it. Error records count as done; delete those lines
            to retry them.
        overwrite: Start ``output`` afresh when it already holds records. Without
            ``resume`` or ``overwrite``, an existing non-empty ``output`` is refused so
            that finished work is never lost by mistake.
        batch_size: Images (or face crops, or video frames) per forward pass.
        num_workers: Image-decoding threads (default: ``min(4, CPU count)``).
        prefetch_size: Images decoded ahead of the model at most (default:
            ``2 * batch_size``); bounds memory.
        progress: Progress bar over inputs (default: on unless ``DEEPFAKEDETECT_PROGRESS=0``).
        sampler: Frame sampler for videos (default: the model config's).
        aggregator: Frame-score aggregator for videos (default: the model config's).
        threshold: Decision threshold (default: the model's calibrated one).
        recursive: For folders and ``**`` globs, descend into sub-folders.
        timeout: Seconds one input may take to decode without progress (videos: ffmpeg
            neither writing nor computing; images: waiting for the decoding thread)
            before it gets an error record and the run goes on.
        decode_budget: Bytes of decoded images allowed to exist ahead of the model
            (default 256 MiB). Each image's peak decoding cost is read from its header
            and granted in input order; one image larger than the budget is decoded
            alone. Bounds memory by pixels, not by files.

    Returns:
        A generator of records; nothing is read or scored until it is iterated.
        Inputs are listed, and arguments checked, when this function is called.

    Raises:
        InputError: inputs that name nothing to score.
        ConfigError: bad arguments, ``resume`` without ``output``, an existing
            ``output`` without ``resume`` or ``overwrite``, or an ``output`` another
            run is writing.
        OutputError: ``output`` cannot be opened, or (while iterating) written.
        UnknownPluginError: an unknown sampler or aggregator name.

    Example:
        >>> import tempfile, pathlib
        >>> from PIL import Image
        >>> from deepfakedetect import Detector
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> Image.new("RGB", (40, 30)).save(d / "a.jpg"); _ = (d / "b.jpg").write_bytes(b"not a jpeg")
        >>> det = Detector.from_backbone("resnet18", input_size=32)
        >>> [(pathlib.Path(r["source"]).name, r["status"]) for r in detect_many(det, d, progress=False)]
        [('a.jpg', 'ok'), ('b.jpg', 'error')]
    """
    for name, value in (("batch_size", batch_size), ("num_workers", num_workers), ("prefetch_size", prefetch_size),
                        ("decode_budget", decode_budget)):
        if value is not None and as_int(value) < 1:
            raise ConfigError(f"{name} must be a positive integer, got {shorten(value)}")
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    if prefetch_size is None:
        prefetch_size = 2 * batch_size
    if threshold is not None and not 0.0 <= as_number(threshold) <= 1.0:
        raise ConfigError(f"threshold must be a number in [0, 1], got {shorten(threshold)}")
    if not as_number(timeout) > 0:
        raise ConfigError(f"timeout must be a positive number of seconds, got {shorten(timeout)}")
    if resume and overwrite:
        raise ConfigError("resume=True and overwrite=True contradict each other: choose one")
    out_path = None if output is None else os.fspath(output)
    if resume and out_path is None:
        raise ConfigError("resume=True needs output= (the JSON-lines file to continue)")
    # Resolved once, so an unknown name fails here rather than once per video.
    if sampler is not None:
        sampler = get_sampler(sampler)
    if aggregator is not None:
        aggregator = get_aggregator(aggregator)
    paths = list_inputs(inputs, recursive=recursive)
    # Opened (and locked) last, so that an argument error never leaves a file locked.
    out = None if out_path is None else ResultsFile(out_path, resume=resume, overwrite=overwrite)
    todo = paths
    if out is not None and out.done:
        done = {resolved_key(p) for p in out.done}
        todo = [p for p in paths if resolved_key(p) not in done]
        logger.info("resuming %s: %d of %d inputs already done", out_path, len(paths) - len(todo), len(paths))
    return _run(
        detector,
        todo,
        out=out,
        batch_size=batch_size,
        num_workers=num_workers,
        prefetch_size=prefetch_size,
        progress=progress,
        sampler=sampler,
        aggregator=aggregator,
        threshold=threshold,
        timeout=float(timeout),
        budget=DecodeBudget(decode_budget),
    )


def _run(
    detector: Detector,
    paths: list[str],
    *,
    out: ResultsFile | None,
    batch_size: int,
    num_workers: int,
    prefetch_size: int,
    progress: bool | None,
    sampler: Any,
    aggregator: Any,
    threshold: float | None,
    timeout: float,
    budget: DecodeBudget,
) -> Iterator[dict[str, Any]]:
    pre = None if detector.config.faces.enabled else detector.config.preprocess
    bar = None
    pool = None
    # The window holds submitted-but-unconsumed inputs, in order: images with their
    # decoding future and budget ticket, videos with neither (detect_video decodes them).
    window: deque[tuple[str, Future[DecodedImage] | None, int]] = deque()
    tickets = itertools.count()
    in_flight = 0  # images in the window
    abandoned = False
    pending = iter(paths)

    def fill() -> None:
        nonlocal in_flight
        assert pool is not None
        if in_flight >= prefetch_size:
            return
        for path in pending:
            if is_video_path(path):
                window.append((path, None, -1))
            else:
                ticket = next(tickets)
                window.append((path, pool.submit(_decode_within_budget, detector, path, pre, budget, ticket), ticket))
                in_flight += 1
                if in_flight >= prefetch_size:
                    return

    def wait(path: str, fut: Future[DecodedImage], ticket: int, holding: bool) -> DecodedImage | BaseException | None:
        """The decoded image or its error; ``None``: score what is held first (the budget waits for it)."""
        nonlocal abandoned
        start = time.monotonic()
        while True:
            try:
                return fut.result(timeout=0.05)
            except FutureTimeout:
                if holding and budget.blocked(ticket):
                    return None
                if time.monotonic() - start > timeout:
                    fut.cancel()
                    budget.abandon(ticket)
                    abandoned = True
                    return ImageDecodeError(
                        f"{path}: decoding took more than {timeout:g} s and was abandoned (a stalled disk or "
                        "network mount?); check the file, or pass a larger timeout (--timeout)"
                    )
            except (DeepfakeDetectError, OSError, _Abandoned) as e:
                return e

    def emit(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for rec in records:
            if out is not None:
                out.write(rec)
            if bar is not None:
                bar.update(1)
            yield rec

    try:
        if out is not None:
            out.start()
        bar = progress_bar(len(paths), "detect", unit="file", progress=progress)
        pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="dfd-decode")
        fill()
        while window:
            path, fut, _ = window[0]
            if fut is None:
                window.popleft()
                fill()
                yield from emit([_score_video(detector, path, batch_size, sampler, aggregator, threshold, timeout)])
                continue
            batch: list[tuple[str, DecodedImage | BaseException, int]] = []
            while window and len(batch) < batch_size:
                p, f, t = window[0]
                if f is None:
                    break
                got = wait(p, f, t, holding=any(isinstance(x, DecodedImage) for _, x, _ in batch))
                if got is None:
                    break
                window.popleft()
                in_flight -= 1
                batch.append((p, got, t))
                fill()
            held = [t for _, _, t in batch]
            try:
                records = _score_images(detector, batch, batch_size, threshold)
            finally:
                # Drop every reference to the scored images before their bytes are granted to
                # the next ones, so the two never coexist (nor while the caller holds a record).
                batch.clear()
                got = f = None
                for t in held:
                    budget.release(t)
            yield from emit(records)
    finally:
        budget.close()
        for _, fut, _ in window:
            if fut is not None:
                fut.cancel()
        if pool is not None:
            # A decoding thread stuck past its timeout cannot be stopped; do not wait for it.
            pool.shutdown(wait=not abandoned, cancel_futures=True)
        if bar is not None:
            bar.close()
        if out is not None:
            out.close()


def _score_images(
    detector: Detector, batch: list[tuple[str, DecodedImage | BaseException, int]], batch_size: int,
    threshold: float | None,
) -> list[dict[str, Any]]:
    records: list[dict[str, Any] | None] = []
    arrays: list[DecodedImage] = []
    slots: list[int] = []
    for path, image, _ in batch:
        if not isinstance(image, DecodedImage):
            records.append(_error_record(path, image))
            continue
        slots.append(len(records))
        records.append(None)
        arrays.append(image)
    if arrays:
        results = detector.detect_image(arrays, batch_size=batch_size, threshold=threshold)
        for slot, result in zip(slots, results):
            rec = result.to_dict()
            rec["source"] = batch[slot][0]
            records[slot] = rec
    return [r for r in records if r is not None]


def _score_video(
    detector: Detector, path: str, batch_size: int, sampler: Any, aggregator: Any, threshold: float | None,
    timeout: float,
) -> dict[str, Any]:
    try:
        result = detector.detect_video(
            path, sampler=sampler, aggregator=aggregator, batch_size=batch_size, threshold=threshold,
            progress=False, timeout=timeout,
        )
    except (DeepfakeDetectError, OSError) as e:
        return _error_record(path, e)
    rec = result.to_dict()
    rec["source"] = path
    return rec
