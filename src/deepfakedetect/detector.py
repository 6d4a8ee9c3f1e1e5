"""The :class:`Detector`: a backbone, its preprocessing and calibration, and the face stage."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn

from deepfakedetect._config import CONFIG_NAME, README_NAME, CalibrationConfig, ModelConfig, check_band
from deepfakedetect._errors import (
    ConfigError,
    InputError,
    NoFacesError,
    UnknownPluginError,
)
from deepfakedetect._untrusted import shorten
from deepfakedetect._utils import as_int, as_number, atomic_write, prefetch, progress_bar
from deepfakedetect._version import __version__
from deepfakedetect.explain import Explanation, explain, explain_video_frames
from deepfakedetect.faces import Face, FaceDetector, FaceStage, RetinaFaceDetector, crop_face
from deepfakedetect.faces.detectors import FACE_DETECTORS
from deepfakedetect.faces.onnx import RetinaFaceOnnxDetector, export_retinaface
from deepfakedetect.io.images import (
    DecodedImage,
    decode_image,
    describe_input,
    is_image_input,
)
from deepfakedetect.io.video import probe_video, read_frames
from deepfakedetect.models.card import render_model_card
from deepfakedetect.models.manifest import MANIFEST_NAME, TrainingManifest
from deepfakedetect.models.onnx import (
    CLASSIFIER_ONNX,
    FACE_DETECTOR_ONNX,
    OnnxClassifier,
    export_classifier,
)
from deepfakedetect.models.precision import (
    InferenceCopy,
    one_core_for_the_decoder,
    resolve_device,
    resolve_precision,
)
from deepfakedetect.models.preprocess import resize_and_crop
from deepfakedetect.models.pretrained import DEFAULT_MODEL_DIR, PretrainedMixin
from deepfakedetect.models.temporal import embed_arrays
from deepfakedetect.results import (
    FaceResult,
    FrameResult,
    ImageResult,
    Person,
    VideoResult,
    verdict,
)
from deepfakedetect.video.aggregators import FrameScores, get_aggregator
from deepfakedetect.video.people import find_people, people_score, resolve_people_rule
from deepfakedetect.video.samplers import get_sampler
from deepfakedetect.video.segments import find_segments
from deepfakedetect.video.tracks import TrackingConfig, frame_signature

logger = logging.getLogger(__name__)

__all__ = ["Detector", "DEFAULT_MODEL_DIR"]

# Lists of images and video frames go through the face stage and the model this many at
# a time while a background thread decodes the next ones (MobileNetV2 runs fastest at
# batch 8 on a 2-core CPU).
_STAGE_CHUNK = 8
# Video frames are large (6 MB for a 1080p RGB frame), and a chunk is held twice: the one
# being scored and the one decoded ahead. Chunks of video frames stay within this many
# bytes (4 frames of 1080p, 8 of 720p): on a 60 s 1080p video this lowered the peak memory
# of detect_video by about 120 MB against chunks of 8, for the same CPU time and score.
_VIDEO_CHUNK_BYTES = 25 * 2**20


class Detector(PretrainedMixin):
    """Tells real from fake images and videos.

    A detector is a classification network, the preprocessing it was trained with,
    its calibration and, optionally, a face stage that crops faces before scoring.
    Build one with :meth:`from_pretrained` (a model folder or Hub repo, or the
    default model) or :meth:`from_backbone` (a new, untrained detector).

    Args:
        model: A network mapping a normalised (N, 3, S, S) batch to (N, 1 or 2) logits.
        config: Its configuration.
        device: Where to run (``"cpu"``, ``"cuda"``, ...); default: CUDA when available.
        face_detector: A face detector to use instead of the one the config names.
        source: Where the model came from (for provenance in results).
        revision: The Hub commit it came from, if any.
        precision: ``"auto"`` (bf16 autocast where the hardware multiplies bf16 natively,
            fp32 elsewhere), ``"fp32"``, ``"bf16"`` or ``"fp16"``. The
            [performance page](../performance.md) has the speed and the score
            differences that ``"auto"`` was chosen on.
        flip: Test-time flip: score every image or face crop also mirrored left to
            right and average the two logits. ``None`` (default): the config's
            ``test_time_flip``. It doubles the classifier's work (not the face
            detector's); calibrations record whether they were fitted with it.
        uncertain_band: ``None`` (default): each calibration's own band (images, videos);
            ``(low, high)``: this band for images and videos alike; ``False``: no band
            (every verdict is the label). See ``docs/concepts/calibration.md``.

    Attributes:
        training_manifest: The content digests of the data the model was trained and
            calibrated on (``training_manifest.json``), or ``None``; ``evaluate`` checks
            against it.

    Example:
        >>> from deepfakedetect import Detector
        >>> detector = Detector.from_pretrained()  # the default model, shipped in the package
        >>> result = detector.detect_image("face.jpg")  # a real photo
        >>> result.label, round(result.fake_score, 1)
        ('real', 0.1)
    """

    def __init__(
        self,
        model: nn.Module,
        config: ModelConfig,
        *,
        device: str | torch.device | None = None,
        face_detector: FaceDetector | None = None,
        source: str | None = None,
        revision: str | None = None,
        precision: str = "auto",
        flip: bool | None = None,
        uncertain_band: tuple[float, float] | bool | None = None,
    ) -> None:
        if flip is not None and not isinstance(flip, bool):
            raise ConfigError(f"flip must be True, False or None (the config's), got {flip!r}")
        if uncertain_band is True:
            raise ConfigError("uncertain_band must be None (the model's), False (none) or (low, high)")
        self.config = config
        self.flip = config.test_time_flip if flip is None else flip
        self._band_override: tuple[float, float] | None | bool = (
            uncertain_band if uncertain_band is None or uncertain_band is False else check_band(uncertain_band)
        )
        self.training_manifest: TrainingManifest | None = None
        #: ``"torch"``, or ``"onnxruntime"`` for a model loaded from an exported folder.
        self.backend = "onnxruntime" if isinstance(model, OnnxClassifier) else "torch"
        if self.backend == "onnxruntime":
            device = _onnx_device(device)
            precision = "fp32"  # ONNX Runtime runs the exported fp32 graph as it is
        self.device = resolve_device(device)
        self.precision = precision
        self._autocast_dtype = resolve_precision(precision, self.device)
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)
        # Scoring runs a copy with BatchNorm folded in; self.model stays trainable and savable.
        self._inference = InferenceCopy()
        self._compiled = False
        self.source = source
        self.revision = revision
        self._face_detector = face_detector
        # How the face detector's own weights may be fetched (from_pretrained's options).
        self._hub_options: dict[str, Any] = {}
        self._face_stage: FaceStage | None = None
        self._face_lock = threading.Lock()
        # With the ONNX Runtime backend: the exported face detector, used unless one was given.
        self._onnx_face_detector: Path | None = None
        # The temporal head over face tracks (models/temporal.py), when the model folder has one.
        self.temporal_head: nn.Module | None = None

    # ------------------------------------------------------------------ building
    @classmethod
    def check_plugins(cls, config: ModelConfig, *, source: str) -> None:
        """Make the config's sampler and aggregator and look up its face detector, naming ``source`` on failure.

        Raises:
            ConfigError: a spec the plugin refuses.
            UnknownPluginError: a name no registry (nor entry point) knows.
        """
        checks = (
            ("video.sampler", lambda: get_sampler(config.video.sampler)),
            ("video.aggregator", lambda: get_aggregator(config.video.aggregator)),
            ("faces.detector", lambda: FACE_DETECTORS.get(config.faces.detector)),
        )
        for what, make in checks:
            try:
                make()
            except UnknownPluginError as e:
                raise UnknownPluginError(f"{source}: {what}: {e}") from None
            except ConfigError as e:
                raise ConfigError(f"{source}: {what}: {e}") from None

    def compile(self, enabled: bool = True) -> Detector:
        """Score through ``torch.compile`` from the next call on (for long runs); returns ``self``.

        Compilation (inductor, weights frozen into the compiled code) happens at the
        first scoring call and again whenever the weights or the device change. On a
        2-core CPU the first call takes about 8-20 s, after which ResNet-18 and
        ResNet-50 score about 1.1x faster than the default eager path and MobileNetV2
        (the default model) not at all (see [performance](../performance.md)): it pays off for a
        large ResNet run, not for one video. Shapes are static: every forward
        pass runs a full batch of ``batch_size`` (the last one padded), so a single
        image costs a whole batch. On a CPU it needs a C++ compiler; where compiling
        fails, scoring falls back to the eager path with a warning.

        Args:
            enabled: ``False`` goes back to the eager path.

        Raises:
            ConfigError: with the ONNX Runtime backend, which does not compile.

        Example:
            >>> det = Detector.from_backbone("resnet18").compile()  # doctest: +SKIP
        """
        if enabled and self.backend != "torch":
            raise ConfigError("compile() needs the torch backend; this detector runs with onnxruntime")
        self._compiled = bool(enabled)
        return self

    def to(self, device: str | torch.device) -> Detector:
        """Move the model (and later face detection) to ``device``; returns ``self``."""
        if self.backend != "torch":
            device = _onnx_device(device)
        self.device = resolve_device(device)
        self.model.to(self.device)
        self._autocast_dtype = resolve_precision(self.precision, self.device)
        self._face_stage = None  # rebuilt on the new device when next needed
        return self

    # ------------------------------------------------------------------ properties
    @property
    def threshold(self) -> float:
        """The calibrated decision threshold on an image's ``fake_score`` (and each video frame's)."""
        return self.config.calibration.threshold

    @property
    def video_calibration(self) -> CalibrationConfig:
        """The calibration of a video's aggregated score: ``config.video_calibration``, else ``config.calibration``."""
        return self.config.video_calibration or self.config.calibration

    @property
    def video_threshold(self) -> float:
        """The calibrated decision threshold on a video's ``fake_score``."""
        return self.video_calibration.threshold

    def uncertain_band_for(self, kind: str) -> tuple[float, float] | None:
        """The uncertain band that results of ``kind`` (``"image"`` or ``"video"``) get.

        Example:
            >>> Detector.from_backbone("resnet18", input_size=32).uncertain_band_for("image") is None
            True
        """
        if self._band_override is False:
            return None
        if self._band_override is not None:
            return self._band_override  # type: ignore[return-value]
        cal = self.video_calibration if kind == "video" else self.config.calibration
        return cal.uncertain_band

    def with_config(self, config: ModelConfig) -> Detector:
        """A detector on the same network (shared, not copied) with another config.

        Device, precision, face detector, provenance, training manifest and temporal head are kept;
        the ``flip`` and ``uncertain_band`` overrides are not (the new config's apply).

        Example:
            >>> det = Detector.from_backbone("resnet18", input_size=32)
            >>> det.with_config(det.config.replace(test_time_flip=True)).flip
            True
        """
        out = Detector(
            self.model, config, device=self.device, face_detector=self._face_detector, source=self.source,
            revision=self.revision, precision=self.precision,
        )  # fmt: skip
        out._hub_options = dict(self._hub_options)
        out.training_manifest = self.training_manifest
        out.temporal_head = self.temporal_head
        out._compiled = self._compiled
        return out

    @property
    def provenance(self) -> dict[str, Any]:
        """Where the model came from, recorded in every result."""
        return {
            "source": self.source,
            "revision": self.revision,
            "backbone": self.config.backbone,
            "library_version": __version__,
        }

    def __repr__(self) -> str:
        return (
            f"Detector(backbone={self.config.backbone!r}, source={self.source!r}, "
            f"faces={self.config.faces.enabled}, device={str(self.device)!r})"
        )

    # ------------------------------------------------------------------ scoring core
    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Turn RGB uint8 arrays into the normalised (N, 3, S, S) float batch the model expects.

        Example:
            >>> det = Detector.from_backbone("resnet18", input_size=64)
            >>> det.preprocess([np.zeros((80, 100, 3), np.uint8)]).shape
            torch.Size([1, 3, 64, 64])
        """
        pre = self.config.preprocess
        batch = np.stack([resize_and_crop(im, pre) for im in images])
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float().div_(255.0)
        mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
        std = torch.tensor(pre.std).view(1, 3, 1, 1)
        return (x - mean) / std

    def fake_probability(self, logits: torch.Tensor) -> torch.Tensor:
        """Calibrated probability of fake from the model's logits (the image temperature applied)."""
        t = self.config.calibration.temperature
        logits = logits.float() / t
        if self.config.num_outputs == 1:
            return torch.sigmoid(logits[:, 0])
        return torch.softmax(logits, dim=1)[:, self.config.fake_index]

    def score_arrays(self, images: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
        """Calibrated fake scores for RGB uint8 arrays, without any face stage.

        With ``flip`` on, each array is also scored mirrored left to right, in the same
        forward pass, and the two logits are averaged before the temperature.

        Example:
            >>> det = Detector.from_backbone("resnet18", input_size=64)
            >>> det.score_arrays([np.zeros((64, 64, 3), np.uint8)] * 3).shape
            (3,)
        """
        batch_size = check_batch_size(batch_size)
        out = np.empty(len(images), dtype=np.float64)
        for start in range(0, len(images), batch_size):
            x = self.preprocess(images[start : start + batch_size])
            n = len(x)
            if self._compiled and n < batch_size:  # static shapes: one compiled graph for every batch
                x = torch.cat([x, x.new_zeros((batch_size - n, *x.shape[1:]))])
            if self.device.type == "cuda":
                x = x.pin_memory()  # page-locked, so the copy below is a real asynchronous DMA
            x = x.to(self.device, non_blocking=True)
            if self.flip:
                x = torch.cat([x, x.flip(3)])
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            logits = self._forward(x)
            if self.flip:
                half = len(logits) // 2
                logits = (logits[:half].float() + logits[half:].float()) / 2
            logits = logits[:n]
            probs = self.fake_probability(logits)
            out[start : start + n] = probs.cpu().double().numpy()
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend != "torch":  # ONNX Runtime: the exported fp32 graph, nothing to fold or cast
            return cast(torch.Tensor, self.model(x.contiguous()))
        model = self._inference.get(self.model, self.device, compiled=self._compiled, dtype=self._autocast_dtype)
        autocast = torch.autocast(
            self.device.type, dtype=self._autocast_dtype or torch.float32, enabled=self._autocast_dtype is not None
        )
        with torch.inference_mode(), autocast:
            if not self._compiled:
                return cast(torch.Tensor, model(x))
            try:
                return cast(torch.Tensor, model(x))
            except Exception as e:  # noqa: BLE001 - compilation fails in many ways (no compiler, unsupported ops)
                logger.warning("torch.compile failed (%s: %s); scoring without it", type(e).__name__, str(e)[:300])
                self._compiled = False
                return cast(torch.Tensor, self._inference.get(self.model, self.device, dtype=self._autocast_dtype)(x))

    def _get_face_stage(self) -> FaceStage:
        # Built once (the face detector loads its weights on first use) and shared by
        # threads; the lock keeps two threads from building it twice.
        with self._face_lock:
            if self._face_stage is None or self._face_stage.config != self.config.faces:
                detector = self._face_detector
                if detector is None and self._onnx_face_detector is not None:
                    faces = self.config.faces
                    detector = RetinaFaceOnnxDetector(
                        self._onnx_face_detector, min_confidence=faces.min_confidence, max_size=faces.detect_max_size
                    )
                self._face_stage = FaceStage(
                    self.config.faces,
                    detector=detector,
                    device=self.device,
                    detector_options=self._hub_options,
                )
            return self._face_stage

    def extract_faces(self, images: Sequence[np.ndarray | DecodedImage]) -> list[list[tuple[Face, np.ndarray]]]:
        """Find, select and crop faces exactly as scoring does, by the config's face settings.

        Works whether or not the face stage is enabled (the Trainer uses it to crop
        training images the way inference will).

        Args:
            images: RGB uint8 arrays (H, W, 3), cropped as they are; or images from
                :meth:`decode`, cropped as ``detect_image`` crops them (faces found on the
                reduced image, crops cut from a larger decode where the face needs it).

        Returns:
            Per image, ``(face, crop)`` pairs, largest face first (boxes in
            full-resolution pixels).

        Example:
            >>> det = Detector.from_backbone("resnet18", faces=True)
            >>> det.extract_faces([np.zeros((64, 64, 3), np.uint8)])  # doctest: +SKIP
            [[]]
        """
        arrays = [im for im in images if not isinstance(im, DecodedImage)]
        if len(arrays) < len(images):
            return self._find_faces([self.decode(im) for im in images])
        return self._get_face_stage()(arrays)

    def decode(self, image: Any) -> DecodedImage:
        """Decode one input at the size scoring needs: large JPEGs at a reduced size.

        With the face stage on, faces are found on an image whose longer side is at least
        the detection size (``config.faces.detect_max_size``, which detection shrinks
        to anyway); without it, the shorter side is kept at least
        ``config.preprocess.resize_size``. A JPEG is decoded at 1/2, 1/4 or 1/8 of its size
        where that keeps these (several times faster than decoding it whole and
        resizing); face crops that need more detail are cut from a larger decode when
        scored. Other inputs come at full size.

        Args:
            image: A path, PIL image, array, tensor, or a :class:`DecodedImage` (returned as is).

        Returns:
            A :class:`~deepfakedetect.io.images.DecodedImage`.

        Raises:
            ImageDecodeError: an unreadable file (naming it).

        Example:
            >>> det = Detector.from_backbone("resnet18", input_size=64)
            >>> det.decode(np.zeros((80, 100, 3), np.uint8)).full_size
            (80, 100)
        """
        if self.config.faces.enabled:
            return decode_image(image, min_longer_side=self.config.faces.detect_max_size)
        return decode_image(image, min_shorter_side=self.config.preprocess.resize_size)

    def _find_faces(self, images: Sequence[DecodedImage]) -> list[list[tuple[Face, np.ndarray]]]:
        """The face stage: per image, the selected faces (in full-resolution pixels) and their crops.

        Faces are found on the (possibly reduced) arrays. A crop is cut from the same
        array when it has at least ``preprocess.resize_size`` pixels across there, the size
        the model resizes it to; otherwise the file is decoded again, large enough for the
        image's smallest face, and the crops are cut from that.
        """
        cfg = self.config.faces
        per_image = self._get_face_stage().detect([im.array for im in images])
        need = self.config.preprocess.resize_size
        out = []
        for im, faces in zip(images, per_image):
            source = im.array
            if faces and im.reduced and im.source is not None:
                # Crop sides in array pixels: the crop is margin x the box (its longer side when square).
                sides = [cfg.margin * (max(f.width, f.height) if cfg.square else min(f.width, f.height)) for f in faces]
                if min(sides) < need:
                    longer = math.ceil(max(im.array.shape[:2]) * need / max(min(sides), 1e-6))
                    source = decode_image(im.source, min_longer_side=min(longer, max(im.full_size))).array
            fx, fy = source.shape[1] / im.array.shape[1], source.shape[0] / im.array.shape[0]
            sx, sy = im.scale
            found = []
            for face in faces:
                crop = crop_face(source, _scaled(face, fx, fy), margin=cfg.margin, square=cfg.square, align=cfg.align)
                found.append((_scaled(face, sx, sy), crop))
            out.append(found)
        return out

    def _score_faces(
        self,
        per_image: Sequence[Sequence[tuple[Face, np.ndarray]]],
        *,
        batch_size: int,
        features: list[np.ndarray] | None = None,
    ) -> list[tuple[float | None, tuple[FaceResult, ...]]]:
        """Score every face crop; per image, its faces' results and their reduction (``faces.reduce``).

        With ``features`` (a list), the crops are scored by
        :func:`~deepfakedetect.models.temporal.embed_arrays` instead, and each image's
        face embeddings, (faces, D), are appended to it.
        """
        crops = [crop for found in per_image for _, crop in found]
        feats = None
        if features is not None:
            scores, feats = embed_arrays(self, crops, batch_size=batch_size)
        else:
            scores = self.score_arrays(crops, batch_size=batch_size) if crops else np.empty(0)
        out: list[tuple[float | None, tuple[FaceResult, ...]]] = []
        pos = 0
        for found in per_image:
            results = tuple(FaceResult.from_face(face, float(scores[pos + i])) for i, (face, _) in enumerate(found))
            if features is not None and feats is not None:
                features.append(feats[pos : pos + len(found)])
            pos += len(found)
            out.append((_reduce_faces(results, self.config.faces.reduce), results))
        return out

    def _score_images(
        self, images: Sequence[DecodedImage], *, batch_size: int, features: list[np.ndarray] | None = None
    ) -> list[tuple[float | None, tuple[FaceResult, ...]]]:
        """Score decoded images: whole, or each face crop reduced per image (``features``: see :meth:`_score_faces`)."""
        if not self.config.faces.enabled:
            scores = self.score_arrays([im.array for im in images], batch_size=batch_size)
            return [(float(s), ()) for s in scores]
        return self._score_faces(self._find_faces(images), batch_size=batch_size, features=features)

    def _label(self, score: float | None, threshold: float) -> str | None:
        if score is None:
            return None
        return self.config.fake_label if score >= threshold else self.config.real_label

    # ------------------------------------------------------------------ images
    def detect_image(
        self,
        image: Any,
        *,
        batch_size: int = 32,
        threshold: float | None = None,
        strict_faces: bool = False,
    ) -> Any:
        """Score one image or a list of images.

        Args:
            image: A path, ``pathlib.Path``, PIL image, NumPy array (HWC uint8),
                torch tensor (CHW), or a list of them (list in, list out, order kept).
            batch_size: Images (or face crops) per forward pass.
            threshold: Decision threshold (default: the model's calibrated one). The
                verdict's uncertain band is widened to hold it.
            strict_faces: With the face stage on, raise :class:`NoFacesError` when an
                image has no face instead of returning a ``"no_face"`` result.

        Returns:
            An :class:`ImageResult`, or a list of them for a list input.

        Raises:
            InputError: an input that is not an image; :class:`ImageDecodeError` for
                unreadable files (naming the file).
            NoFacesError: with ``strict_faces``, when an image has no face.

        Example:
            >>> detector = Detector.from_pretrained()
            >>> [r.label for r in detector.detect_image(["face.jpg", "fake.jpg"])]  # real, face swap
            ['real', 'fake']
            >>> detector.detect_image(np.full((64, 64, 3), 128, np.uint8)).status  # no face in it
            'no_face'
        """
        single = is_image_input(image)
        if single:
            items = [image]
        elif isinstance(image, (list, tuple)):
            items = list(image)
        else:
            raise InputError(
                f"cannot use {describe_input(image)} as an image: pass a path, PIL image, "
                "NumPy array, torch tensor, or a list of them"
            )
        batch_size = check_batch_size(batch_size)
        thr = self.threshold if threshold is None else _check_threshold(threshold)
        results: list[ImageResult] = []
        # Decoding overlaps with the face stage and the model: a background thread decodes
        # at most one chunk ahead (a bounded producer/consumer) while this chunk is scored.
        chunk_size = self._chunk_size(batch_size)
        decode = (self.decode(x) for x in items)
        decoded = prefetch(decode, maxsize=chunk_size) if len(items) > 1 else decode
        try:
            for start, chunk_decoded in zip(range(0, len(items), chunk_size), _chunks(decoded, chunk_size)):
                chunk = items[start : start + chunk_size]
                results.extend(self._image_results(chunk, chunk_decoded, thr, batch_size, strict_faces))
        finally:
            decoded.close()  # stops the decoding thread when scoring failed
        return results[0] if single else results

    def _chunk_size(self, batch_size: int) -> int:
        # Compiled models run full batches (static shapes), so their chunks are batches.
        return batch_size if self._compiled else max(1, min(batch_size, _STAGE_CHUNK))

    def _video_chunk_size(self, batch_size: int, width: int, height: int, max_size: int) -> int:
        """:meth:`_chunk_size`, fewer for frames so large that a chunk would pass ``_VIDEO_CHUNK_BYTES``."""
        chunk = self._chunk_size(batch_size)
        if self._compiled:
            return chunk
        scale = min(1.0, max_size / max(width, height, 1))
        frame_bytes = 3 * width * height * scale * scale
        return max(1, min(chunk, int(_VIDEO_CHUNK_BYTES // max(frame_bytes, 1.0))))

    def _image_results(
        self, chunk: list[Any], decoded: list[DecodedImage], thr: float, batch_size: int, strict_faces: bool
    ) -> list[ImageResult]:
        results = []
        for x, (score, faces) in zip(chunk, self._score_images(decoded, batch_size=batch_size)):
            if score is None and strict_faces:
                raise NoFacesError(
                    f"{describe_input(x)}: no face found (min confidence "
                    f"{self.config.faces.min_confidence}); pass strict_faces=False to get a "
                    "'no_face' result instead"
                )
            results.append(
                ImageResult(
                    fake_score=score,
                    label=self._label(score, thr),
                    threshold=thr,
                    faces=faces,
                    face_stage=self.config.faces.enabled,
                    source=describe_input(x),
                    model=self.provenance,
                    uncertain_band=self.uncertain_band_for("image"),
                )
            )
        return results

    # ------------------------------------------------------------------ videos
    def detect_video(
        self,
        path: str | os.PathLike[str],
        *,
        sampler: Any = None,
        aggregator: Any = None,
        batch_size: int = 32,
        threshold: float | None = None,
        progress: bool | None = None,
        strict_faces: bool = False,
        allow_urls: bool = False,
        timeout: float = 120.0,
        people: Any = None,
        tracking: TrackingConfig | None = None,
    ) -> VideoResult:
        """Score a video: sample frames, decode only those, score them, aggregate per person.

        With the face stage on, the faces of the sampled frames are linked into
        people (face tracks; a shot cut ends them, tracks seen in fewer than 3 sampled
        frames are dropped, see :mod:`deepfakedetect.video.tracks`), the aggregator
        scores each person's frames alone, and the video's score comes from the
        people by the ``people`` rule: by default the most fake person's, so a video in
        which one of two people is fake is fake. With the face stage off, the
        aggregator scores the frames as before and ``people`` is empty.

        Each frame is scored as ``detect_image`` would score it (the image calibration).
        The aggregate ``a`` of the frame scores becomes the video's score through the
        video calibration: ``fake_score = sigmoid(logit(a) / temperature)``, labelled by
        its threshold, with its uncertain band (``config.video_calibration``; a config
        without one uses the image calibration, and the aggregate unchanged).

        ffmpeg decodes the next frames in a background thread while the current ones
        are scored; on the CPU, torch runs on one thread fewer meanwhile
        (``torch.get_num_threads()`` is restored when the call returns).

        Args:
            path: The video file.
            sampler: Which frames: a name (``"uniform"``), ``"uniform:num_frames=16"``,
                ``{"name": "fps", "fps": 2}``, or any callable ``(VideoInfo) -> indices``.
                Default: the model config's (uniform, 32 frames).
            aggregator: How frame scores become one: a name, spec, mapping or callable
                ``(FrameScores) -> float``. Default: the model config's.
            batch_size: Frames (or face crops) per forward pass.
            threshold: Decision threshold on the video's score (default: the video
                calibration's); when given, also the threshold for ``segments``, which
                otherwise compare frame scores with the image threshold.
            progress: Show a progress bar (default: on unless ``DEEPFAKEDETECT_PROGRESS=0``).
            strict_faces: Raise :class:`NoFacesError` when no sampled frame has a face.
            allow_urls: Allow URLs and ffmpeg protocols as ``path`` (refused by default).
            timeout: Seconds without progress after which decoding is abandoned.
            people: How the people's scores become the video's: ``"max"`` (the most
                fake person), ``"largest"`` (the person with the largest face),
                ``"longest"`` (the person seen in most sampled frames), or a callable
                ``(people) -> float``. Default: the model config's (``"max"``).
            tracking: How faces are linked into people (default
                :class:`~deepfakedetect.video.tracks.TrackingConfig`).

        Returns:
            A :class:`VideoResult` with per-frame scores, the people and fake segments.

        Raises:
            VideoDecodeError: unreadable, truncated or stalled video (naming the file).
            UnknownPluginError: an unknown sampler or aggregator name.
            NoFacesError: with ``strict_faces``, when no frame had a face.

        Example:
            >>> detector = Detector.from_pretrained()
            >>> video = detector.detect_video("clip.mp4", sampler="uniform:num_frames=8")  # a deepfake
            >>> video.label, video.num_decoded, len(video.segments)
            ('fake', 8, 1)
        """
        batch_size = check_batch_size(batch_size)
        cal = self.config.video_calibration
        thr = self.video_threshold if threshold is None else _check_threshold(threshold)
        frame_thr = self.threshold if threshold is None else thr
        # Arguments first: a bad spec is an argument error, whatever the file.
        smp = get_sampler(sampler if sampler is not None else self.config.video.sampler)
        agg = get_aggregator(aggregator if aggregator is not None else self.config.video.aggregator)
        rule = people if people is not None else self.config.video.people
        resolve_people_rule(rule)  # an unknown rule fails before any decoding
        info = probe_video(path, allow_urls=allow_urls, timeout=timeout)
        faces_on = self.config.faces.enabled
        features: list[np.ndarray] | None = None
        if getattr(agg, "needs_features", False):
            agg = self._bind_temporal(agg)
            features = []
        indices = sorted({int(i) for i in smp(info)})
        bad = [i for i in indices if not 0 <= i < info.num_frames]
        if bad:
            raise ConfigError(
                f"sampler {smp!r} returned frame indices outside 0..{info.num_frames - 1} for {path}: {bad[:5]}"
            )
        # Whole-frame models never need more than about twice their input size; the
        # face stage keeps detail for the crops, up to 1080p-class frames.
        pre = self.config.preprocess
        max_size = 1920 if self.config.faces.enabled else 2 * pre.resize_size
        frames: list[FrameResult] = []
        signatures: list[np.ndarray] = []
        bar = progress_bar(len(indices), Path(str(path)).name, unit="frame", progress=progress)
        # Stages: decode -> faces -> score, then aggregate. ffmpeg decodes in a background
        # thread at most one chunk ahead (a bounded producer/consumer), so it works on the
        # next frames while this chunk is scored, and about two chunks of frames are held.
        chunk_size = self._video_chunk_size(batch_size, info.width, info.height, max_size)
        decoded = prefetch(read_frames(info, indices, max_size=max_size, timeout=timeout), maxsize=chunk_size)
        try:
            # On the CPU torch leaves one core to ffmpeg meanwhile (see one_core_for_the_decoder).
            cpu_torch = self.backend == "torch" and self.device.type == "cpu"
            with one_core_for_the_decoder() if cpu_torch else contextlib.nullcontext():
                for chunk in _chunks(decoded, chunk_size):
                    idx = [i for i, _ in chunk]
                    if faces_on:  # a shot cut ends every person's track (see video/tracks.py)
                        signatures += [frame_signature(f) for _, f in chunk]
                    images = [DecodedImage(f, (f.shape[0], f.shape[1])) for _, f in chunk]
                    scored = self._score_images(images, batch_size=batch_size, features=features)
                    for i, (score, faces) in zip(idx, scored):
                        frames.append(FrameResult(index=i, timestamp=info.timestamp(i), fake_score=score, faces=faces))
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            decoded.close()  # stops the decoding thread (and ffmpeg) when scoring failed
            if bar is not None:
                bar.close()
        scored_frames = [f for f in frames if f.fake_score is not None]
        fs = FrameScores(
            scores=np.array([f.fake_score for f in scored_frames], dtype=np.float64),
            indices=np.array([f.index for f in scored_frames], dtype=np.int64),
            timestamps=np.array([f.timestamp for f in scored_frames], dtype=np.float64),
        )
        if len(fs) == 0 and strict_faces:
            raise NoFacesError(f"{path}: no face found in any of the {len(frames)} decoded frames")
        band = self.uncertain_band_for("video")
        # A video's score (and each person's) is the aggregate under the video calibration.
        video_cal = cal

        def aggregate(scores: FrameScores) -> float:
            value = float(np.clip(agg(scores), 0.0, 1.0))
            return _recalibrate(value, video_cal.temperature) if video_cal is not None else value

        found: tuple[Person, ...] = ()
        if faces_on and len(fs):
            found = find_people(
                frames,
                aggregator=aggregate,
                threshold=frame_thr,
                label=lambda s: self._label(s, thr),
                signatures=signatures,
                features=features,
                tracking=tracking,
                verdict=lambda s: verdict(s, thr, band),
            )
            score = people_score(found, rule)
        else:
            score = aggregate(fs) if len(fs) else None
        segments = tuple(find_segments(fs, threshold=frame_thr)) if len(fs) else ()
        return VideoResult(
            fake_score=score,
            label=self._label(score, thr),
            threshold=thr,
            frames=tuple(frames),
            segments=segments,
            num_requested=len(indices),
            sampler=repr(smp),
            aggregator=repr(agg),
            video=_video_facts(info),
            face_stage=self.config.faces.enabled,
            source=str(path),
            model=self.provenance,
            uncertain_band=band,
            people=found,
            people_rule=repr(rule) if found else "",
        )

    def _bind_temporal(self, agg: Any) -> Any:
        """The temporal aggregator with this detector's head, checked before any decoding."""
        if self.backend != "torch":  # the head reads the backbone's embeddings, which model.onnx does not output
            raise ConfigError(
                "the temporal aggregator needs the torch backend (it reads the backbone's embeddings); this "
                "detector runs with onnxruntime: load the torch model folder, or choose another aggregator"
            )
        if not self.config.faces.enabled:
            raise ConfigError(
                "the temporal aggregator reads face tracks and needs the face stage; enable it "
                "(config faces.enabled) or choose another aggregator"
            )
        if getattr(agg, "head", None) is not None:
            return agg
        if self.temporal_head is None:
            raise ConfigError(
                f"this model ({self.source}) has no temporal head: train one with "
                "'deepfakedetect train VIDEOS --temporal --model FOLDER', or choose another aggregator"
            )
        return agg.with_head(self.temporal_head)

    # ------------------------------------------------------------------ explanations
    def explain(self, image: Any, *, target: str = "fake", layer: Any = None, face_index: int = 0) -> Explanation:
        """Grad-CAM heat map of what made the model score ``image`` as it did.

        With the face stage on, the map covers the face crop that ``detect_image``
        scores; otherwise the preprocessed image.

        Args:
            image: One image: a path, PIL image, NumPy array (HWC) or torch tensor (CHW).
            target: The label whose evidence to show, ``"fake"`` or ``"real"``.
            layer: A module name (``"layer4"``), a module, or ``None`` for the last convolutional block.
            face_index: Which face, with the face stage on (0 = the largest).

        Returns:
            An :class:`Explanation` with ``heatmap``, ``crop``, ``fake_score``, ``face`` and ``overlay()``.

        Raises:
            InputError: an input that is not one image.
            NoFacesError: the face stage is on and found no face.
            ConfigError: with the ONNX Runtime backend (Grad-CAM needs torch's gradients).

        Example:
            >>> detector = Detector.from_pretrained()
            >>> e = detector.explain("fake.jpg")  # a face swap: where is the evidence?
            >>> e.heatmap.shape == e.crop.shape[:2], e.face is not None
            (True, True)
        """
        self._need_torch("explain")
        return explain(self, image, target=target, layer=layer, face_index=face_index)

    def explain_video_frames(
        self,
        path: str | os.PathLike[str],
        indices: Sequence[int],
        *,
        target: str = "fake",
        layer: Any = None,
        face_index: int = 0,
        allow_urls: bool = False,
        timeout: float = 120.0,
    ) -> list[Explanation]:
        """Grad-CAM heat maps for chosen frames of a video, decoded as ``detect_video`` decodes them.

        Args:
            path: The video file.
            indices: Frame indices (e.g. the frames of a fake segment).
            target: The label whose evidence to show, ``"fake"`` or ``"real"``.
            layer: The module to take activations from (see :meth:`explain`).
            face_index: Which face in each frame, with the face stage on.
            allow_urls: Allow URLs and ffmpeg protocols as ``path``.
            timeout: Seconds without progress after which decoding is abandoned.

        Returns:
            One :class:`Explanation` per decoded frame, with ``frame_index`` and ``timestamp``.

        Raises:
            VideoDecodeError: an unreadable video.
            ConfigError: with the ONNX Runtime backend (Grad-CAM needs torch's gradients).

        Example:
            >>> detector = Detector.from_pretrained()
            >>> maps = detector.explain_video_frames("clip.mp4", [0, 250])
            >>> [(m.frame_index, round(m.timestamp, 1)) for m in maps]
            [(0, 0.0), (250, 10.0)]
        """
        self._need_torch("explain_video_frames")
        return explain_video_frames(
            self, path, indices, target=target, layer=layer, face_index=face_index,
            allow_urls=allow_urls, timeout=timeout,
        )

    def _need_torch(self, what: str) -> None:
        if self.backend != "torch":
            raise ConfigError(
                f"{what} needs the torch backend (Grad-CAM uses gradients); this detector runs with "
                f"{self.backend}: load the torch model folder for explanations"
            )

    # ------------------------------------------------------------------ ONNX
    def export_onnx(self, save_directory: str | os.PathLike[str]) -> Path:
        """Export the networks to ONNX, beside the same ``config.json``, for ``backend="onnxruntime"``.

        Writes ``model.onnx`` (the classifier; input ``"input"`` (N, 3, S, S), output
        ``"logits"``, dynamic batch), ``face_detector.onnx`` when the face stage is on and
        uses the built-in RetinaFace (dynamic batch, height and width), ``config.json``, a
        ``README.md`` model card and, when the detector has one, ``training_manifest.json``
        (so ``evaluate`` checks the exported model against its training data too). Each
        file is written to a temporary name and renamed.
        Load the folder with ``Detector.from_pretrained(folder, backend="onnxruntime")``;
        scores agree with this detector in fp32 to about 1e-6.

        Args:
            save_directory: The folder (created if missing).

        Returns:
            The folder.

        Raises:
            ConfigError: the ``[onnx]`` extra is missing, a network cannot be exported, or
                this detector already runs with ONNX Runtime.

        Example:
            >>> Detector.from_pretrained().export_onnx("default-onnx")  # doctest: +SKIP
            PosixPath('default-onnx')
        """
        if self.backend != "torch":
            raise ConfigError("this detector already runs from ONNX files: copy its folder instead of exporting it")
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        export_classifier(self.model, out / CLASSIFIER_ONNX, input_size=self.config.preprocess.input_size)
        face_file = out / FACE_DETECTOR_ONNX
        face_detector = self._get_face_stage().detector if self.config.faces.enabled else None
        if isinstance(face_detector, RetinaFaceDetector):
            export_retinaface(face_detector.load(), face_file)
        else:
            if face_detector is not None:
                logger.warning(
                    "face detector %r is not the built-in RetinaFace and is not exported: the ONNX folder "
                    "will use the detector its config names",
                    face_detector,
                )
            face_file.unlink(missing_ok=True)  # a stale one from an earlier export would be used
        if self.temporal_head is not None:
            logger.warning(
                "the temporal head is not exported: the ONNX folder scores frames and faces, and the "
                "temporal aggregator needs the torch model folder"
            )
        config = self.config.replace(library_version=__version__)
        atomic_write(out / CONFIG_NAME, config.save)
        card = render_model_card(config)
        atomic_write(out / README_NAME, lambda p: p.write_text(card, encoding="utf-8"))
        manifest_file = out / MANIFEST_NAME
        if self.training_manifest is not None:  # evaluate() checks the exported model against it too
            self.training_manifest.save(manifest_file)
        else:
            manifest_file.unlink(missing_ok=True)  # a stale one from an earlier export would be used
        return out


def _onnx_device(device: str | torch.device | None) -> str:
    if device is not None and resolve_device(device).type != "cpu":
        raise ConfigError(f"the onnxruntime backend runs on the CPU; got device={str(device)!r}: use 'cpu' or None")
    return "cpu"


# Aggregates of 0 or 1 (e.g. every frame saturated) are read as these logits.
_EPS = 1e-12


def _recalibrate(score: float, temperature: float) -> float:
    """A video's calibrated score: ``sigmoid(logit(score) / temperature)``."""
    p = min(max(score, _EPS), 1.0 - _EPS)
    z = (math.log(p) - math.log1p(-p)) / temperature
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def _check_threshold(threshold: float) -> float:
    value = as_number(threshold)
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"threshold must be a number in [0, 1], got {shorten(threshold)}")
    return value


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` when it is a positive integer (not a bool), else :class:`ConfigError`.

    Example:
        >>> check_batch_size(8)
        8
    """
    if as_int(batch_size) < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {shorten(batch_size)}")
    return int(batch_size)


def _scaled(face: Face, sx: float, sy: float) -> Face:
    """``face`` in the pixels of the same image scaled by ``sx`` across and ``sy`` down."""
    if sx == 1.0 and sy == 1.0:
        return face
    x1, y1, x2, y2 = face.box
    points = tuple((x * sx, y * sy) for x, y in face.landmarks)
    return Face((x1 * sx, y1 * sy, x2 * sx, y2 * sy), points, face.confidence)


def _reduce_faces(faces: tuple[FaceResult, ...], how: str) -> float | None:
    if not faces:
        return None
    if how == "mean":
        return float(np.mean([f.fake_score for f in faces]))
    if how == "largest":
        return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])).fake_score
    return max(f.fake_score for f in faces)


def _chunks(it: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    try:
        for item in it:
            chunk.append(item)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()


def _video_facts(info: Any) -> dict[str, Any]:
    keys = ("width", "height", "fps", "num_frames", "duration", "rotation", "codec")
    return {k: getattr(info, k) for k in keys if hasattr(info, k)}


