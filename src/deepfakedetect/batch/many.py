"""Scoring many files: streaming results, parallel decoding, resumable JSON-lines output.

:func:`detect_many` takes a folder, a glob pattern, a list of paths or a text file
listing paths, images and videos mixed, and yields one JSON-ready record per input
in input order, as soon as it is scored. Images are decoded (and, without the face
stage, already resized) by a small thread pool running ahead of the model through a
bounded window, so decoding overlaps with compute and memory stays bounded whatever
the number of files. With ``output=``, each record is appended to a JSON-lines file
and flushed at once; ``resume=True`` skips the inputs already recorded there, so a
run over 100,000 files can be stopped and continued.

:func:`prefetch` is the same overlap for any iterator: a background thread that runs
a bounded number of items ahead of the consumer.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any, TypeVar

import numpy as np

from deepfakedetect._config import PreprocessConfig
from deepfakedetect._errors import ConfigError, DeepfakeDetectError
from deepfakedetect._media import is_video_path
from deepfakedetect._utils import progress_bar
from deepfakedetect.batch.inputs import BatchInputs, list_inputs, read_done, scan_output
from deepfakedetect.io.images import load_image
from deepfakedetect.models.preprocess import resize_shorter_side
from deepfakedetect.video.aggregators import get_aggregator
from deepfakedetect.video.samplers import get_sampler

if TYPE_CHECKING:
    from deepfakedetect.detector import Detector

logger = logging.getLogger(__name__)

__all__ = ["detect_many", "list_inputs", "prefetch", "read_done"]

T = TypeVar("T")


def prefetch(iterable: Iterable[T], maxsize: int = 2) -> Iterator[T]:
    """Run ``iterable`` in a background thread, at most ``maxsize`` items ahead.

    Decoding (which releases the GIL in Pillow, NumPy and while waiting on ffmpeg)
    then overlaps with model compute on the consumer's side. Exceptions raised by the
    iterable are re-raised in the consumer, at the position they happened. Closing
    the returned generator (or leaving a ``for`` loop early) stops the thread and
    closes the source iterator.

    Args:
        iterable: The source; consumed only by the background thread.
        maxsize: How many items may wait, decoded, for the consumer (memory bound).

    Yields:
        The source's items, in order.

    Raises:
        ConfigError: ``maxsize`` below 1.

    Example:
        >>> list(prefetch(iter(range(5)), maxsize=2))
        [0, 1, 2, 3, 4]
    """
    if not isinstance(maxsize, int) or maxsize < 1:
        raise ConfigError(f"prefetch maxsize must be a positive integer, got {maxsize!r}")
    return _prefetch(iter(iterable), maxsize)


_DONE = object()


def _prefetch(source: Iterator[T], maxsize: int) -> Iterator[T]:
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
        except BaseException as e:  # handed to the consumer, who re-raises it
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


def _decode_image(path: str, pre: PreprocessConfig | None) -> np.ndarray:


    image = load_image(path)
    # Resized in the decoding threads so only small arrays wait for the model; the model's
    # own resize_and_crop then only crops, so scores equal detect_image's on the same file.
    return image if pre is None else resize_shorter_side(image, pre)


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
        output: A JSON-lines file to append each record to (flushed per record).
        resume: Continue ``output``: inputs already recorded there (by ``"source"``)
            are skipped and not yielded again; an incomplete last line (a run killed
            mid-write) is cut off and its input scored again. Error records count as
            done; delete those lines to retry them.
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

    Returns:
        A generator of records; nothing is read or scored until it is iterated.
        Inputs are listed, and arguments checked, when this function is called.

    Raises:
        InputError: inputs that name nothing to score.
        ConfigError: bad arguments, ``resume`` without ``output``, or an existing
            ``output`` without ``resume`` or ``overwrite``.
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
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if num_workers is None:
        num_workers = min(4, os.cpu_count() or 1)
    if not isinstance(num_workers, int) or num_workers < 1:
        raise ConfigError(f"num_workers must be a positive integer, got {num_workers!r}")
    if prefetch_size is None:
        prefetch_size = 2 * batch_size
    if not isinstance(prefetch_size, int) or prefetch_size < 1:
        raise ConfigError(f"prefetch_size must be a positive integer, got {prefetch_size!r}")
    if threshold is not None and not (isinstance(threshold, (int, float)) and 0.0 <= float(threshold) <= 1.0):
        raise ConfigError(f"threshold must be a number in [0, 1], got {threshold!r}")
    if resume and overwrite:
        raise ConfigError("resume=True and overwrite=True contradict each other: choose one")
    out_path = None if output is None else os.fspath(output)
    if resume and out_path is None:
        raise ConfigError("resume=True needs output= (the JSON-lines file to continue)")
    done: set[str] = set()
    append_at = 0
    if out_path is not None:
        if os.path.isdir(out_path):
            raise ConfigError(f"output {out_path} is a folder; pass a file path such as results.jsonl")
        if resume:
            done, append_at = scan_output(out_path)
        elif not overwrite and os.path.exists(out_path) and os.path.getsize(out_path) > 0:
            raise ConfigError(
                f"output {out_path} already holds results: pass resume=True (--resume) to continue it, "
                "overwrite=True to start again, or another file"
            )
    # Resolved once, so an unknown name fails here rather than once per video.
    if sampler is not None:

        sampler = get_sampler(sampler)
    if aggregator is not None:

        aggregator = get_aggregator(aggregator)
    paths = list_inputs(inputs, recursive=recursive)
    todo = [p for p in paths if p not in done]
    if done:
        logger.info("resuming %s: %d of %d inputs already done", out_path, len(paths) - len(todo), len(paths))
    return _run(
        detector,
        todo,
        out_path=out_path,
        append_at=append_at if resume else 0,
        batch_size=batch_size,
        num_workers=num_workers,
        prefetch_size=max(prefetch_size, 1),
        progress=progress,
        sampler=sampler,
        aggregator=aggregator,
        threshold=threshold,
    )


def _open_output(path: str, append_at: int) -> IO[bytes]:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    f = open(path, "r+b" if append_at and os.path.exists(path) else "wb")
    if append_at:
        # Cut off an incomplete last line left by a killed run before appending.
        f.seek(append_at)
        f.truncate()
    return f


def _run(
    detector: Detector,
    paths: list[str],
    *,
    out_path: str | None,
    append_at: int,
    batch_size: int,
    num_workers: int,
    prefetch_size: int,
    progress: bool | None,
    sampler: Any,
    aggregator: Any,
    threshold: float | None,
) -> Iterator[dict[str, Any]]:

    pre = None if detector.config.faces.enabled else detector.config.preprocess
    out = _open_output(out_path, append_at) if out_path is not None else None
    bar = progress_bar(len(paths), "detect", unit="file", progress=progress)
    if bar is not None:
        bar.unit = "file"
    pool = ThreadPoolExecutor(max_workers=num_workers, thread_name_prefix="dfd-decode")
    # The window holds submitted-but-unconsumed inputs: decoded images wait here, so its
    # length bounds memory. Videos hold no future; they are decoded by detect_video.
    window: deque[tuple[str, Future[np.ndarray] | None]] = deque()
    in_flight = 0  # images in the window
    pending = iter(paths)

    def fill() -> None:
        nonlocal in_flight
        if in_flight >= prefetch_size:
            return
        for path in pending:
            if is_video_path(path):
                window.append((path, None))
            else:
                window.append((path, pool.submit(_decode_image, path, pre)))
                in_flight += 1
                if in_flight >= prefetch_size:
                    return

    def emit(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for rec in records:
            if out is not None:
                out.write(json.dumps(rec, allow_nan=False).encode("utf-8") + b"\n")
                out.flush()
            if bar is not None:
                bar.update(1)
            yield rec

    try:
        fill()
        while window:
            path, fut = window[0]
            if fut is None:
                window.popleft()
                fill()
                yield from emit([_score_video(detector, path, batch_size, sampler, aggregator, threshold)])
                continue
            batch: list[tuple[str, Future[np.ndarray]]] = []
            while window and len(batch) < batch_size:
                p, f = window[0]
                if f is None:
                    break
                window.popleft()
                batch.append((p, f))
            in_flight -= len(batch)
            fill()
            yield from emit(_score_images(detector, batch, batch_size, threshold))
    finally:
        for _, fut in window:
            if fut is not None:
                fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
        if out is not None:
            out.close()


def _score_images(
    detector: Detector, batch: list[tuple[str, Future[np.ndarray]]], batch_size: int, threshold: float | None
) -> list[dict[str, Any]]:
    records: list[dict[str, Any] | None] = []
    arrays: list[np.ndarray] = []
    slots: list[int] = []
    for path, fut in batch:
        try:
            image = fut.result()
        except (DeepfakeDetectError, OSError) as e:
            records.append(_error_record(path, e))
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
    detector: Detector, path: str, batch_size: int, sampler: Any, aggregator: Any, threshold: float | None
) -> dict[str, Any]:
    try:
        result = detector.detect_video(
            path, sampler=sampler, aggregator=aggregator, batch_size=batch_size, threshold=threshold, progress=False
        )
    except (DeepfakeDetectError, OSError) as e:
        return _error_record(path, e)
    rec = result.to_dict()
    rec["source"] = path
    return rec
