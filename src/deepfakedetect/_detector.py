"""The :class:`Detector`: a backbone, its preprocessing and calibration, and the face stage."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ._config import FaceConfig, ModelConfig, PreprocessConfig
from ._errors import ConfigError, InputError, ModelLoadError, NoFacesError
from ._images import describe_input, is_image_input, load_image
from ._model import _load_strict, _signature, build_model, check_signatures
from ._perf import InferenceCopy, resolve_precision
from ._results import FaceResult, FrameResult, ImageResult, VideoResult
from ._version import __version__

if TYPE_CHECKING:
    from ._explain import Explanation
    from ._faces import Face, FaceDetector, FaceStage

logger = logging.getLogger(__name__)

__all__ = ["Detector", "DEFAULT_MODEL_DIR"]

#: The model shipped inside the package, used by ``Detector.from_pretrained()``.
DEFAULT_MODEL_DIR = Path(__file__).parent / "_default_model"

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def progress_enabled(progress: bool | None) -> bool:
    """Progress bars: on unless ``progress=False`` or ``DEEPFAKEDETECT_PROGRESS=0``."""
    if progress is not None:
        return progress
    return os.environ.get("DEEPFAKEDETECT_PROGRESS", "1").lower() not in ("0", "false", "no", "off")


# Above this many pixels (relative to the input), the resized whole image is never made:
# only the centre box is resampled (a 1 x 100000 strip would otherwise need GBs).
_MAX_RESIZED_FACTOR = 16


def _resized_size(h: int, w: int, pre: PreprocessConfig) -> tuple[int, int]:
    scale = pre.resize_size / min(h, w)
    return max(pre.input_size, round(w * scale)), max(pre.input_size, round(h * scale))


def resize_shorter_side(image: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    """Resize so the shorter side is ``pre.resize_size`` (the first half of :func:`resize_and_crop`).

    Idempotent, and :func:`resize_and_crop` of the result equals :func:`resize_and_crop` of
    the input, so it can run early (e.g. in decoding threads) to keep only small arrays.
    Images whose resized whole would be huge (extreme aspect ratios) are returned unchanged.

    Example:
        >>> resize_shorter_side(np.zeros((300, 400, 3), np.uint8), PreprocessConfig(input_size=224)).shape
        (224, 299, 3)
    """
    h, w = image.shape[:2]
    nw, nh = _resized_size(h, w, pre)
    if (nw, nh) == (w, h) or nw * nh > _MAX_RESIZED_FACTOR * pre.input_size**2:
        return image
    return np.asarray(Image.fromarray(image).resize((nw, nh), _RESAMPLE[pre.interpolation]))


def resize_and_crop(image: np.ndarray, pre: PreprocessConfig) -> np.ndarray:
    """Resize so the shorter side is ``pre.resize_size``, then centre-crop ``pre.input_size``.

    Example:
        >>> resize_and_crop(np.zeros((300, 400, 3), np.uint8), PreprocessConfig(input_size=224)).shape
        (224, 224, 3)
    """
    h, w = image.shape[:2]
    s = pre.input_size
    nw, nh = _resized_size(h, w, pre)
    top, left = (nh - s) // 2, (nw - s) // 2
    image = resize_shorter_side(image, pre)
    if image.shape[:2] == (nh, nw):
        return image[top : top + s, left : left + s]
    # Too large to resize whole: resample only the centre box, the same region.
    box = (left * w / nw, top * h / nh, (left + s) * w / nw, (top + s) * h / nh)
    return np.asarray(Image.fromarray(image).resize((s, s), _RESAMPLE[pre.interpolation], box=box))


class Detector:
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
            fp32 elsewhere), ``"fp32"``, ``"bf16"`` or ``"fp16"``. See docs/performance.md
            for the speed and the score differences that ``"auto"`` was chosen on.

    Example:
        >>> det = Detector.from_backbone("resnet18", weights=None)
        >>> import numpy as np
        >>> r = det.detect_image(np.zeros((64, 64, 3), dtype=np.uint8))
        >>> 0.0 <= r.fake_score <= 1.0
        True
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
    ) -> None:
        self.config = config
        self.device = torch.device(device) if device is not None else _default_device()
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

    # ------------------------------------------------------------------ building
    @classmethod
    def from_backbone(
        cls,
        name: str,
        *,
        weights: str | Path | None = None,
        num_outputs: int = 2,
        input_size: int = 224,
        resize_size: int | None = None,
        faces: bool | FaceConfig | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> Detector:
        """A new detector on a torchvision backbone, with an untrained head.

        Args:
            name: A torchvision classification model (``"resnet50"``; see ``list_backbones()``).
            weights: ``None`` (random, no download), ``"imagenet"``, a torchvision weights
                name, or a ``.safetensors`` file of backbone weights.
            num_outputs: 2 (softmax over ``("fake", "real")``) or 1 (one logit for fake).
            input_size: Side of the square input.
            resize_size: Shorter side before the centre crop (default: ``input_size``).
            faces: Face stage: off by default; ``True`` for the default face settings,
                or a :class:`FaceConfig`.
            device: Where to run.
            precision: Inference precision (see :class:`Detector`).
            backbone_kwargs: Extra arguments for the torchvision constructor.

        Raises:
            ConfigError: unknown backbone or bad arguments.
            ModelLoadError: weights that cannot be loaded.

        Example:
            >>> Detector.from_backbone("resnet18").config.backbone
            'resnet18'
        """
        if isinstance(faces, FaceConfig):
            face_cfg = faces
        elif faces is None or isinstance(faces, bool):
            face_cfg = FaceConfig(enabled=bool(faces))
        else:
            raise ConfigError(f"faces must be True, False or a FaceConfig, got {faces!r}")
        pre = PreprocessConfig(input_size=input_size, resize_size=resize_size or input_size)
        config = ModelConfig(
            backbone=name,
            backbone_kwargs=dict(backbone_kwargs or {}),
            num_outputs=num_outputs,
            preprocess=pre,
            faces=face_cfg,
            training={"init_weights": None if weights is None else str(weights)},
        )
        model = build_model(name, num_outputs=num_outputs, weights=weights, backbone_kwargs=backbone_kwargs)
        return cls(model, config, device=device, precision=precision, source=f"new:{name}")

    @classmethod
    def from_pretrained(
        cls,
        repo_id_or_dir: str | Path | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
        device: str | torch.device | None = None,
        precision: str = "auto",
        face_detector: FaceDetector | None = None,
    ) -> Detector:
        """Load a detector from a model folder, a Hugging Face Hub repo, or the default model.

        Args:
            repo_id_or_dir: A local folder with ``config.json`` and ``model.safetensors``,
                a Hub repo id (``"org/name"``), or ``None`` for the default model shipped
                with the library (no download).
            revision: Branch, tag or commit sha of a Hub repo (pin a sha for reproducibility).
            cache_dir: Hugging Face cache folder.
            local_files_only: Use only the cache; never touch the network.
            token: Hugging Face token for private repos.
            force_download: Download again even if cached.
            device: Where to run.
            precision: Inference precision (see :class:`Detector`).
            face_detector: Use this face detector instead of the one the config names.

        Raises:
            ModelLoadError: missing files, corrupt or mismatched weights, download failures.
            ConfigError: an invalid or newer ``config.json``.

        Example:
            >>> det = Detector.from_pretrained()  # doctest: +SKIP
        """
        from ._hub import load_safetensors, resolve_model_files

        if repo_id_or_dir is None:
            if not (DEFAULT_MODEL_DIR / "config.json").is_file():
                raise ModelLoadError(
                    f"the default model is missing from this installation ({DEFAULT_MODEL_DIR}); "
                    "reinstall deepfakedetect or pass a model folder or Hub repo id"
                )
            repo_id_or_dir = DEFAULT_MODEL_DIR
        files = resolve_model_files(
            repo_id_or_dir,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            force_download=force_download,
        )
        config = ModelConfig.load(files.config)
        build = {"num_outputs": config.num_outputs, "backbone_kwargs": config.backbone_kwargs}
        state = load_safetensors(files.weights)
        # Compare names and shapes on a skeleton without memory first, so weights that do
        # not fit the config fail before a large backbone is allocated.
        with torch.device("meta"):
            skeleton = build_model(config.backbone, **build)
        check_signatures(
            {k: _signature(v) for k, v in skeleton.state_dict().items()},
            {k: _signature(v) for k, v in state.items()},
            source=str(files.weights),
        )
        model = build_model(config.backbone, **build)
        # Weights may be stored in half precision to keep files small; inference runs in float32.
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        _load_strict(model, state, source=str(files.weights))
        source = "default" if Path(str(repo_id_or_dir)) == DEFAULT_MODEL_DIR else files.source
        detector = cls(
            model,
            config,
            device=device,
            precision=precision,
            face_detector=face_detector,
            source=source,
            revision=files.revision,
        )
        # The model's revision is not passed on: the face detector's weights have their own.
        detector._hub_options = {"cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
        return detector

    def save_pretrained(
        self, save_directory: str | Path, *, dtype: torch.dtype = torch.float32, model_card: str | None = None
    ) -> Path:
        """Write ``config.json``, ``model.safetensors`` and a ``README.md`` model card.

        Files are written to a temporary name and renamed, so an interrupted save
        never leaves a half-written model behind.

        Args:
            save_directory: The folder (created if missing).
            dtype: Floating-point type to store the weights in (``torch.float16``
                halves the file; loading always restores float32).
            model_card: The ``README.md`` text (default: one generated from the config).

        Returns:
            The folder.

        Example:
            >>> import tempfile
            >>> det = Detector.from_backbone("resnet18")
            >>> out = det.save_pretrained(tempfile.mkdtemp())
            >>> sorted(p.name for p in out.iterdir())
            ['README.md', 'config.json', 'model.safetensors']
        """
        from safetensors.torch import save_file

        from ._hub import CONFIG_NAME, README_NAME, WEIGHTS_NAME

        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {
            k: (v.detach().to("cpu", dtype=dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in self.model.state_dict().items()
        }
        config = self.config.replace(library_version=__version__)
        _atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
        _atomic_write(out / CONFIG_NAME, config.save)
        card = model_card if model_card is not None else render_model_card(config)
        _atomic_write(out / README_NAME, lambda p: p.write_text(card, encoding="utf-8"))
        return out

    def push_to_hub(
        self,
        repo_id: str,
        *,
        token: str | None = None,
        private: bool = False,
        revision: str | None = None,
        commit_message: str | None = None,
        dtype: torch.dtype = torch.float32,
        model_card: str | None = None,
    ) -> str:
        """Upload the same three files :meth:`save_pretrained` writes to a Hub repo.

        Args:
            repo_id: ``"org/name"`` (created if missing).
            token: A Hugging Face token with write access (default: the logged-in one).
            private: Create the repo private.
            revision: Branch to commit to (default: ``main``).
            commit_message: The commit's message.
            dtype: Floating-point type of the stored weights (see :meth:`save_pretrained`).
            model_card: The ``README.md`` text (see :meth:`save_pretrained`).

        Returns:
            The commit reference returned by the Hub.

        Example:
            >>> Detector.from_backbone("resnet18").push_to_hub("me/my-detector")  # doctest: +SKIP
        """
        from ._hub import upload_model_folder

        with tempfile.TemporaryDirectory(prefix="deepfakedetect-push-") as tmp:
            self.save_pretrained(tmp, dtype=dtype, model_card=model_card)
            return upload_model_folder(
                Path(tmp),
                repo_id,
                token=token,
                private=private,
                revision=revision,
                commit_message=commit_message or f"Upload deepfakedetect {self.config.backbone} detector",
            )

    def compile(self, enabled: bool = True) -> Detector:
        """Score through ``torch.compile`` from the next call on (for long runs); returns ``self``.

        Compilation (inductor, weights frozen into the compiled code) happens at the
        first scoring call and again whenever the weights or the device change. On a
        2-core CPU the first call takes about 8-20 s, after which ResNet-18 and
        ResNet-50 score about 1.1x faster than the default eager path and MobileNetV2
        (the default model) not at all (``docs/performance.md``): it pays off for a
        large ResNet run, not for one video. Shapes are static: every forward
        pass runs a full batch of ``batch_size`` (the last one padded), so a single
        image costs a whole batch. On a CPU it needs a C++ compiler; where compiling
        fails, scoring falls back to the eager path with a warning.

        Args:
            enabled: ``False`` goes back to the eager path.

        Example:
            >>> det = Detector.from_backbone("resnet18").compile()  # doctest: +SKIP
        """
        self._compiled = bool(enabled)
        return self

    def to(self, device: str | torch.device) -> Detector:
        """Move the model (and later face detection) to ``device``; returns ``self``."""
        self.device = torch.device(device)
        self.model.to(self.device)
        self._autocast_dtype = resolve_precision(self.precision, self.device)
        self._face_stage = None  # rebuilt on the new device when next needed
        return self

    # ------------------------------------------------------------------ properties
    @property
    def threshold(self) -> float:
        """The calibrated decision threshold on ``fake_score``."""
        return self.config.calibration.threshold

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
        """Calibrated probability of fake from the model's logits (temperature applied)."""
        t = self.config.calibration.temperature
        logits = logits.float() / t
        if self.config.num_outputs == 1:
            return torch.sigmoid(logits[:, 0])
        return torch.softmax(logits, dim=1)[:, self.config.fake_index]

    def score_arrays(self, images: Sequence[np.ndarray], *, batch_size: int = 32) -> np.ndarray:
        """Calibrated fake scores for RGB uint8 arrays, without any face stage.

        Example:
            >>> det = Detector.from_backbone("resnet18", input_size=64)
            >>> det.score_arrays([np.zeros((64, 64, 3), np.uint8)] * 3).shape
            (3,)
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        out = np.empty(len(images), dtype=np.float64)
        for start in range(0, len(images), batch_size):
            x = self.preprocess(images[start : start + batch_size])
            n = len(x)
            if self._compiled and n < batch_size:  # static shapes: one compiled graph for every batch
                x = torch.cat([x, x.new_zeros((batch_size - n, *x.shape[1:]))])
            if self.device.type == "cuda":
                x = x.pin_memory()  # page-locked, so the copy below is a real asynchronous DMA
            x = x.to(self.device, non_blocking=True)
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            logits = self._forward(x)[:n]
            probs = self.fake_probability(logits)
            out[start : start + n] = probs.cpu().double().numpy()
        return out

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        model = self._inference.get(self.model, self.device, compiled=self._compiled)
        autocast = torch.autocast(
            self.device.type, dtype=self._autocast_dtype or torch.float32, enabled=self._autocast_dtype is not None
        )
        with torch.inference_mode(), autocast:
            if not self._compiled:
                return model(x)
            try:
                return model(x)
            except Exception as e:  # noqa: BLE001 - compilation fails in many ways (no compiler, unsupported ops)
                logger.warning("torch.compile failed (%s: %s); scoring without it", type(e).__name__, str(e)[:300])
                self._compiled = False
                return self._inference.get(self.model, self.device)(x)

    def _get_face_stage(self) -> FaceStage:
        # Built once (the face detector loads its weights on first use) and shared by
        # threads; the lock keeps two threads from building it twice.
        with self._face_lock:
            if self._face_stage is None or self._face_stage.config != self.config.faces:
                from ._faces import FaceStage

                self._face_stage = FaceStage(
                    self.config.faces,
                    detector=self._face_detector,
                    device=self.device,
                    detector_options=self._hub_options,
                )
            return self._face_stage

    def extract_faces(self, images: Sequence[np.ndarray]) -> list[list[tuple[Face, np.ndarray]]]:
        """Find, select and crop faces exactly as scoring does, by the config's face settings.

        Works whether or not the face stage is enabled (the Trainer uses it to crop
        training images the way inference will).

        Args:
            images: RGB uint8 arrays (H, W, 3).

        Returns:
            Per image, ``(face, crop)`` pairs, largest face first.

        Example:
            >>> det = Detector.from_backbone("resnet18", faces=True)
            >>> det.extract_faces([np.zeros((64, 64, 3), np.uint8)])  # doctest: +SKIP
            [[]]
        """
        return self._get_face_stage()(images)

    def _score_frames(
        self, frames: Sequence[np.ndarray], *, batch_size: int
    ) -> list[tuple[float | None, tuple[FaceResult, ...]]]:
        """Score frames: whole frames, or each face crop reduced per frame."""
        faces_cfg = self.config.faces
        if not faces_cfg.enabled:
            return [(float(s), ()) for s in self.score_arrays(frames, batch_size=batch_size)]
        per_frame = self.extract_faces(frames)
        crops = [crop for found in per_frame for _, crop in found]
        scores = self.score_arrays(crops, batch_size=batch_size) if crops else np.empty(0)
        out: list[tuple[float | None, tuple[FaceResult, ...]]] = []
        pos = 0
        for found in per_frame:
            results = tuple(FaceResult.from_face(face, float(scores[pos + i])) for i, (face, _) in enumerate(found))
            pos += len(found)
            out.append((_reduce_faces(results, faces_cfg.reduce), results))
        return out

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
            threshold: Decision threshold (default: the model's calibrated one).
            strict_faces: With the face stage on, raise :class:`NoFacesError` when an
                image has no face instead of returning a ``"no_face"`` result.

        Returns:
            An :class:`ImageResult`, or a list of them for a list input.

        Raises:
            InputError: an input that is not an image; :class:`ImageDecodeError` for
                unreadable files (naming the file).
            NoFacesError: with ``strict_faces``, when an image has no face.

        Example:
            >>> det = Detector.from_backbone("resnet18", input_size=64)
            >>> [r.label in ("real", "fake") for r in det.detect_image([np.zeros((8, 8, 3), np.uint8)] * 2)]
            [True, True]
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
        thr = self.threshold if threshold is None else _check_threshold(threshold)
        results: list[ImageResult] = []
        for start in range(0, len(items), max(1, batch_size)):
            chunk = items[start : start + batch_size]
            arrays = [load_image(x) for x in chunk]
            for x, (score, faces) in zip(chunk, self._score_frames(arrays, batch_size=batch_size)):
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
                    )
                )
        return results[0] if single else results

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
    ) -> VideoResult:
        """Score a video: sample frames, decode only those, score them, aggregate.

        Args:
            path: The video file.
            sampler: Which frames: a name (``"uniform"``), ``"uniform:num_frames=16"``,
                ``{"name": "fps", "fps": 2}``, or any callable ``(VideoInfo) -> indices``.
                Default: the model config's (uniform, 32 frames).
            aggregator: How frame scores become one: a name, spec, mapping or callable
                ``(FrameScores) -> float``. Default: the model config's.
            batch_size: Frames (or face crops) per forward pass.
            threshold: Decision threshold (default: the model's calibrated one); also
                the threshold for ``segments``.
            progress: Show a progress bar (default: on unless ``DEEPFAKEDETECT_PROGRESS=0``).
            strict_faces: Raise :class:`NoFacesError` when no sampled frame has a face.
            allow_urls: Allow URLs and ffmpeg protocols as ``path`` (refused by default).
            timeout: Seconds without progress after which decoding is abandoned.

        Returns:
            A :class:`VideoResult` with per-frame scores and fake segments.

        Raises:
            VideoDecodeError: unreadable, truncated or stalled video (naming the file).
            UnknownPluginError: an unknown sampler or aggregator name.
            NoFacesError: with ``strict_faces``, when no frame had a face.

        Example:
            >>> det = Detector.from_backbone("resnet18")
            >>> v = det.detect_video("clip.mp4", sampler="uniform:num_frames=8")  # doctest: +SKIP
        """
        from ._aggregators import FrameScores, get_aggregator
        from ._samplers import get_sampler
        from ._segments import find_segments
        from ._video import probe_video, read_frames

        thr = self.threshold if threshold is None else _check_threshold(threshold)
        info = probe_video(path, allow_urls=allow_urls, timeout=timeout)
        smp = get_sampler(sampler if sampler is not None else self.config.video.sampler)
        agg = get_aggregator(aggregator if aggregator is not None else self.config.video.aggregator)
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
        bar = _progress_bar(len(indices), f"{Path(str(path)).name}", progress)
        try:
            for chunk in _chunks(read_frames(info, indices, max_size=max_size, timeout=timeout), batch_size):
                idx = [i for i, _ in chunk]
                scored = self._score_frames([f for _, f in chunk], batch_size=batch_size)
                for i, (score, faces) in zip(idx, scored):
                    frames.append(FrameResult(index=i, timestamp=info.timestamp(i), fake_score=score, faces=faces))
                if bar is not None:
                    bar.update(len(chunk))
        finally:
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
        score = float(np.clip(agg(fs), 0.0, 1.0)) if len(fs) else None
        segments = tuple(find_segments(fs, threshold=thr)) if len(fs) else ()
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
        )


    # ------------------------------------------------------------------ many files, explanations
    def detect_many(self, inputs: Any, **options: Any) -> Iterator[dict[str, Any]]:
        """Score many images and videos, yielding one JSON-ready record per input as it is done.

        Decoding runs in background threads, overlapped with the model; with
        ``output="results.jsonl"`` each record is appended and flushed, and
        ``resume=True`` skips inputs already recorded, so a long run can stop and go on.
        An unreadable input gives a record with ``"status": "error"``; the run continues.

        Args:
            inputs: A folder, a glob pattern (``"data/**/*.jpg"``), a text file listing
                paths, or a list of paths.
            **options: ``output``, ``resume``, ``overwrite``, ``batch_size``, ``num_workers``,
                ``prefetch_size``, ``progress``, ``sampler``, ``aggregator``, ``threshold``,
                ``recursive``; see ``docs/guides/batch-scoring.md``.

        Returns:
            An iterator of dictionaries (``ImageResult.to_dict()`` / ``VideoResult.to_dict()``).

        Example:
            >>> det = Detector.from_backbone("resnet18", input_size=32)
            >>> for record in det.detect_many("photos/", output="scores.jsonl", resume=True):  # doctest: +SKIP
            ...     print(record["source"], record["fake_score"])
        """
        from ._batch import detect_many

        return detect_many(self, inputs, **options)

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

        Example:
            >>> det = Detector.from_backbone("resnet18", input_size=32)
            >>> det.explain(np.zeros((40, 40, 3), np.uint8)).heatmap.shape
            (32, 32)
        """
        from ._explain import explain

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

        Example:
            >>> det = Detector.from_backbone("resnet18")
            >>> maps = det.explain_video_frames("clip.mp4", [0, 30])  # doctest: +SKIP
        """
        from ._explain import explain_video_frames

        return explain_video_frames(
            self, path, indices, target=target, layer=layer, face_index=face_index,
            allow_urls=allow_urls, timeout=timeout,
        )

def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_threshold(threshold: float) -> float:
    if not 0.0 <= float(threshold) <= 1.0:
        raise ConfigError(f"threshold must be in [0, 1], got {threshold!r}")
    return float(threshold)


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


def _progress_bar(total: int, desc: str, progress: bool | None) -> Any:
    if not progress_enabled(progress) or total == 0:
        return None
    from huggingface_hub.utils import tqdm

    return tqdm(total=total, desc=desc, unit="frame", leave=False)


def _video_facts(info: Any) -> dict[str, Any]:
    keys = ("width", "height", "fps", "num_frames", "duration", "rotation", "codec")
    return {k: getattr(info, k) for k in keys if hasattr(info, k)}


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def render_model_card(config: ModelConfig) -> str:
    """A Markdown model card from a config (what ``save_pretrained`` writes as ``README.md``)."""
    training = config.training or {}
    metrics = training.get("metrics") or {}
    lines = [
        "---",
        "library_name: deepfakedetect",
        "tags: [deepfake-detection, image-classification]",
        "---",
        "",
        f"# deepfakedetect detector ({config.backbone})",
        "",
        "A real-vs-fake classifier for faces, images and videos, loadable with",
        "",
        "```python",
        "from deepfakedetect import Detector",
        'detector = Detector.from_pretrained("<this repo or folder>")',
        "```",
        "",
        "## Inference",
        "",
        f"- Backbone: `{config.backbone}`, {config.num_outputs} output(s), labels {list(config.labels)}",
        f"- Input: {config.preprocess.input_size} px (shorter side resized to {config.preprocess.resize_size}, "
        f"centre crop, {config.preprocess.interpolation}), mean {list(config.preprocess.mean)}, std {list(config.preprocess.std)}",
        f"- Face stage: {'on (' + config.faces.detector + f', margin {config.faces.margin})' if config.faces.enabled else 'off (whole images)'}",
        f"- Calibration: temperature {config.calibration.temperature:.4g}, threshold {config.calibration.threshold:.4g}",
    ]
    for name, thr in sorted(config.calibration.operating_points.items()):
        lines.append(f"  - operating point `{name}`: threshold {thr:.4g}")
    lines += ["", "## Training", ""]
    if training:
        for k, v in sorted(training.items()):
            if k != "metrics":
                lines.append(f"- {k}: {v}")
    else:
        lines.append("- Not recorded.")
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
        for k, v in sorted(metrics.items()):
            lines.append(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |")
    lines += [
        "",
        "## Limits",
        "",
        "Scores are only as good as the data the model was trained on; check them on your own data",
        "(`deepfakedetect evaluate`) before relying on them.",
        "",
    ]
    return "\n".join(lines)
