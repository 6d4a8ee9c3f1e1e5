"""Scoring a corpus across machines with Ray Data: one detector per worker.

Ray is an optional extra (``pip install "ray[data]>=2.9"``, the ``ray`` extra). Nothing here is
scheduled by this library: Ray Data splits the dataset into batches and hands them to
a pool of actors, each holding one :class:`~deepfakedetect.Detector` built once, and
scales the pool over the machines of a Ray cluster. Files must be readable from every
worker (a shared or network filesystem); results come back as a Ray dataset to write
wherever Ray writes (``ds.write_json``, ``ds.write_parquet``, ...).

Example::

    import ray
    from deepfakedetect import detect_with_ray

    ray.init()                                   # or ray.init(address="auto") on a cluster
    ds = detect_with_ray("/shared/corpus", model="org/detector", concurrency=8)
    ds.write_json("/shared/results")             # one record per file
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from deepfakedetect._errors import ConfigError
from deepfakedetect.batch.inputs import BatchInputs
from deepfakedetect.batch.many import detect_many, list_inputs
from deepfakedetect.detector import Detector

if TYPE_CHECKING:
    import ray.data

    from deepfakedetect.detector import Detector

logger = logging.getLogger(__name__)

__all__ = ["DetectorPredictor", "detect_with_ray"]

_INSTALL = 'Ray is not installed: pip install "ray[data]>=2.9" (the [ray] extra)'


class DetectorPredictor:
    """A callable class for ``ray.data.Dataset.map_batches``: one detector per actor.

    Each batch is a dictionary of NumPy arrays with a column of file paths (images
    and videos mixed); each output batch has, per input, the columns ``path``,
    ``status`` (``"ok"``, ``"no_face"`` or ``"error"``), ``fake_score`` (NaN when there
    is none), ``label`` (empty when there is none), ``error`` (empty unless the input
    failed) and ``record`` (the full JSON record :func:`~deepfakedetect.batch.many.detect_many`
    yields, as a string).

    Args:
        model: A model folder or Hub repo id for :meth:`Detector.from_pretrained`
            (``None``: the default model).
        revision: Hub revision (pin a commit sha so every worker loads the same model).
        device: Where each actor runs (default: CUDA when the actor was given a GPU).
        precision: Inference precision (see :class:`~deepfakedetect.Detector`).
        local_files_only: Load the model from the Hugging Face cache only.
        detector_factory: Instead of ``model``, a picklable callable returning the
            :class:`~deepfakedetect.Detector` to use (called once per actor).
        path_column: The input column holding file paths.
        batch_size: Images (or crops, or frames) per forward pass inside the actor.
        num_workers: Decoding threads per actor (default: the CPUs Ray gave it, at least 1).
        sampler: Frame sampler for videos (default: the model's).
        aggregator: Frame-score aggregator for videos (default: the model's).
        threshold: Decision threshold (default: the model's).

    Raises:
        ModelLoadError: the model cannot be loaded (raised in the actor; Ray reports it).

    Example:
        >>> import ray  # doctest: +SKIP
        >>> ds = ray.data.from_items([{"path": "a.jpg"}, {"path": "b.mp4"}])  # doctest: +SKIP
        >>> ds = ds.map_batches(DetectorPredictor, fn_constructor_kwargs={"model": "org/name"},
        ...                     concurrency=2, batch_size=64)  # doctest: +SKIP
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        device: str | None = None,
        precision: str = "auto",
        local_files_only: bool = False,
        detector_factory: Callable[[], Detector] | None = None,
        path_column: str = "path",
        batch_size: int = 32,
        num_workers: int | None = None,
        sampler: Any = None,
        aggregator: Any = None,
        threshold: float | None = None,
    ) -> None:

        if detector_factory is not None:
            self.detector = detector_factory()
        else:
            self.detector = Detector.from_pretrained(
                model, revision=revision, device=device, precision=precision, local_files_only=local_files_only
            )
        self.path_column = path_column
        self.options = {
            "batch_size": batch_size,
            "num_workers": num_workers or max(1, _cpus_given()),
            "sampler": sampler,
            "aggregator": aggregator,
            "threshold": threshold,
        }

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.path_column not in batch:
            raise ConfigError(
                f"the batch has no column {self.path_column!r} (columns: {', '.join(batch)}); "
                "pass path_column= naming the column of file paths"
            )
        paths = [str(p) for p in batch[self.path_column]]
        records = list(detect_many(self.detector, paths, progress=False, **self.options)) if paths else []
        return {
            "path": np.array(paths, dtype=object),
            "status": np.array([r["status"] for r in records], dtype=object),
            "fake_score": np.array(
                [np.nan if r.get("fake_score") is None else float(r["fake_score"]) for r in records], dtype=np.float64
            ),
            "label": np.array([r.get("label") or "" for r in records], dtype=object),
            "error": np.array([r.get("error", "") for r in records], dtype=object),
            "record": np.array([json.dumps(r) for r in records], dtype=object),
        }


def _cpus_given() -> int:
    # Ray sets OMP_NUM_THREADS to the CPUs it gave the actor; torch follows it too.
    try:
        return int(os.environ.get("OMP_NUM_THREADS", "") or os.cpu_count() or 1)
    except ValueError:
        return 1


def detect_with_ray(
    inputs: BatchInputs,
    *,
    model: str | os.PathLike[str] | None = None,
    revision: str | None = None,
    concurrency: int | tuple[int, int] | None = None,
    num_cpus: float = 1,
    num_gpus: float = 0,
    batch_size: int = 32,
    files_per_batch: int = 64,
    recursive: bool = True,
    **predictor_kwargs: Any,
) -> ray.data.Dataset:
    """A lazy Ray dataset of results, one row per input file (see :class:`DetectorPredictor`).

    The inputs are listed here, on the driver (:func:`~deepfakedetect.batch.many.list_inputs`);
    scoring starts when the dataset is consumed (``take_all``, ``iter_rows``,
    ``write_json``, ...). Call ``ray.init`` first to choose the cluster; otherwise Ray
    starts a local one.

    Args:
        inputs: A folder, glob pattern, text file of paths, or list of paths, readable
            from every worker.
        model: A model folder or Hub repo id (``None``: the default model).
        revision: Hub revision; pin a commit sha so every worker scores with the same model.
        concurrency: Number of actors (detectors), or ``(min, max)`` for an autoscaling
            pool (default: Ray Data's choice).
        num_cpus: CPUs per actor (also its decoding threads and torch threads).
        num_gpus: GPUs per actor (``1`` puts each detector on its own GPU).
        batch_size: Forward-pass batch inside each actor.
        files_per_batch: Files per Ray batch handed to an actor.
        recursive: For folders and ``**`` globs, descend into sub-folders.
        **predictor_kwargs: More :class:`DetectorPredictor` arguments (``precision``,
            ``sampler``, ``aggregator``, ``threshold``, ``detector_factory``, ...).

    Returns:
        A ``ray.data.Dataset`` with the columns listed in :class:`DetectorPredictor`.

    Raises:
        ConfigError: Ray is not installed.
        InputError: inputs that name nothing to score.

    Example:
        >>> ds = detect_with_ray("corpus/", model="org/name", concurrency=4)  # doctest: +SKIP
        >>> ds.write_json("results/")  # doctest: +SKIP
    """
    try:  # ray is an optional extra ([ray])
        import ray.data
    except ImportError as e:
        raise ConfigError(_INSTALL) from e
    paths = list_inputs(inputs, recursive=recursive)
    ds = ray.data.from_items([{"path": p} for p in paths])
    kwargs: dict[str, Any] = {"model": model, "revision": revision, "batch_size": batch_size, **predictor_kwargs}
    if num_gpus and "device" not in kwargs:
        kwargs["device"] = "cuda"
    return ds.map_batches(
        DetectorPredictor,
        fn_constructor_kwargs=kwargs,
        batch_size=files_per_batch,
        batch_format="numpy",
        concurrency=concurrency,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
    )
