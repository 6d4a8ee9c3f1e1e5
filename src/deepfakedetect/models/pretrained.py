"""Making, loading and saving detectors: the model-folder half of :class:`~deepfakedetect.Detector`.

A model is a folder (local or a Hub repo) of ``config.json``, ``model.safetensors``, a
``README.md`` model card and, for a model the Trainer made, ``training_manifest.json``
(the content digests of its data, see :mod:`deepfakedetect.models.manifest`). :class:`PretrainedMixin` gives ``Detector`` its constructors
(:meth:`~PretrainedMixin.from_backbone`, :meth:`~PretrainedMixin.from_pretrained`) and
:meth:`~PretrainedMixin.save_pretrained` / :meth:`~PretrainedMixin.push_to_hub`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from safetensors.torch import save_file
from torch import nn

from deepfakedetect._config import (
    CONFIG_NAME,
    README_NAME,
    WEIGHTS_NAME,
    FaceConfig,
    ModelConfig,
    PreprocessConfig,
)
from deepfakedetect._errors import ConfigError, ModelLoadError
from deepfakedetect._utils import atomic_write
from deepfakedetect._version import __version__
from deepfakedetect.models.backbones import build_model, build_model_from_state
from deepfakedetect.models.card import render_model_card
from deepfakedetect.models.files import local_model_files
from deepfakedetect.models.manifest import MANIFEST_NAME, TrainingManifest
from deepfakedetect.models.onnx import OnnxClassifier, check_backend, resolve_onnx_files
from deepfakedetect.models.temporal import load_temporal, save_temporal
from deepfakedetect.models.weights import load_safetensors

if TYPE_CHECKING:
    from deepfakedetect.faces import FaceDetector

__all__ = ["DEFAULT_MODEL_DIR", "PretrainedMixin"]

#: The model shipped inside the package, used by ``Detector.from_pretrained()``.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "_default_model"

D = TypeVar("D", bound="PretrainedMixin")


class PretrainedMixin:
    """Constructors and savers of :class:`~deepfakedetect.Detector` (its model-folder half)."""

    model: nn.Module
    config: ModelConfig
    backend: str
    _hub_options: dict[str, Any]
    training_manifest: TrainingManifest | None
    _onnx_face_detector: Path | None
    temporal_head: nn.Module | None

    if TYPE_CHECKING:  # Detector's constructor, which these class methods call

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
        ) -> None: ...

    @classmethod
    def from_backbone(
        cls: type[D],
        name: str,
        *,
        weights: str | os.PathLike[str] | None = None,
        num_outputs: int = 2,
        input_size: int = 224,
        resize_size: int | None = None,
        faces: bool | FaceConfig | None = None,
        device: str | torch.device | None = None,
        precision: str = "auto",
        backbone_kwargs: dict[str, Any] | None = None,
    ) -> D:
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
            >>> from deepfakedetect import Detector
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
        cls: type[D],
        repo_id_or_dir: str | os.PathLike[str] | None = None,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        force_download: bool = False,
        device: str | torch.device | None = None,
        precision: str = "auto",
        face_detector: FaceDetector | None = None,
        flip: bool | None = None,
        uncertain_band: tuple[float, float] | bool | None = None,
        backend: str = "torch",
    ) -> D:
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
            flip: Test-time flip on or off (default: the config's ``test_time_flip``).
            uncertain_band: ``(low, high)`` instead of the calibrations' bands, or
                ``False`` for none (default: the model's).
            backend: ``"torch"``, or ``"onnxruntime"`` for a folder (or Hub repo) written by
                :meth:`~deepfakedetect.Detector.export_onnx`: its ONNX files run with ONNX
                Runtime on the CPU, in fp32 (``precision`` does not apply), and the rest of
                the pipeline is unchanged. Needs the ``[onnx]`` extra.

        The model folder's ``training_manifest.json``, when there is one beside
        ``config.json``, becomes ``detector.training_manifest``.

        Raises:
            ModelLoadError: missing files, corrupt or mismatched weights, download failures.
            ConfigError: an invalid or newer ``config.json``; an unknown backend; with
                ``"onnxruntime"``, a device other than the CPU or a missing onnxruntime.

        Example:
            >>> from deepfakedetect import Detector
            >>> det = Detector.from_pretrained()  # doctest: +SKIP
        """
        if repo_id_or_dir is None:
            if not (DEFAULT_MODEL_DIR / "config.json").is_file():
                raise ModelLoadError(
                    f"the default model is missing from this installation ({DEFAULT_MODEL_DIR}); "
                    "reinstall deepfakedetect or pass a model folder or Hub repo id"
                )
            repo_id_or_dir = DEFAULT_MODEL_DIR
        if check_backend(backend) == "onnxruntime":
            onnx_files = resolve_onnx_files(
                repo_id_or_dir,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                force_download=force_download,
            )
            onnx_config = ModelConfig.load(onnx_files.config)
            cls.check_plugins(onnx_config, source=str(onnx_files.config))
            onnx_detector = cls(
                OnnxClassifier(onnx_files.classifier),
                onnx_config,
                device=device,
                face_detector=face_detector,
                source=onnx_files.source,
                revision=onnx_files.revision,
                flip=flip,
                uncertain_band=uncertain_band,
            )
            onnx_detector._onnx_face_detector = onnx_files.face_detector
            onnx_manifest = Path(onnx_files.config).parent / MANIFEST_NAME  # written by export_onnx
            onnx_detector.training_manifest = TrainingManifest.load(onnx_manifest) if onnx_manifest.is_file() else None
            onnx_detector._hub_options = {"cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
            return onnx_detector
        files = local_model_files(repo_id_or_dir, revision=revision)
        if files is None:
            # models.hub imports huggingface_hub and httpx (about 0.3 s): only for Hub repos.
            from deepfakedetect.models.hub import resolve_model_files

            files = resolve_model_files(
                repo_id_or_dir,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                force_download=force_download,
            )
        config = ModelConfig.load(files.config)
        cls.check_plugins(config, source=str(files.config))
        state = load_safetensors(files.weights)
        try:
            model = build_model_from_state(
                config.backbone,
                state,
                source=str(files.weights),
                num_outputs=config.num_outputs,
                backbone_kwargs=config.backbone_kwargs,
            )
        except ConfigError as e:  # the config's backbone or backbone_kwargs: name the file
            raise ConfigError(f"{files.config}: {e}") from e.__cause__
        source = "default" if Path(str(repo_id_or_dir)) == DEFAULT_MODEL_DIR else files.source
        detector = cls(
            model,
            config,
            device=device,
            precision=precision,
            face_detector=face_detector,
            source=source,
            revision=files.revision,
            flip=flip,
            uncertain_band=uncertain_band,
        )
        manifest = Path(files.config).parent / MANIFEST_NAME
        detector.training_manifest = TrainingManifest.load(manifest) if manifest.is_file() else None
        # The model's revision is not passed on: the face detector's weights have their own.
        detector._hub_options = {"cache_dir": cache_dir, "local_files_only": local_files_only, "token": token}
        # A temporal head saved beside the weights (a local folder; not fetched from the Hub yet).
        detector.temporal_head = load_temporal(Path(files.config).parent)
        return detector

    @classmethod
    def check_plugins(cls, config: ModelConfig, *, source: str) -> None:
        """Check the plugins a config names (sampler, aggregator, face detector) exist and take its parameters.

        Called when a model is loaded, so a bad spec fails there rather than at the first
        video of a batch. The models layer knows no plugins; :class:`~deepfakedetect.Detector`
        overrides this.
        """

    def save_pretrained(
        self, save_directory: str | Path, *, dtype: torch.dtype = torch.float32, model_card: str | None = None
    ) -> Path:
        """Write ``config.json``, ``model.safetensors``, a ``README.md`` model card and the training manifest.

        ``training_manifest.json`` is written when the detector has one (a trained or
        calibrated detector); a stale one in the folder is removed otherwise.

        A temporal head (``temporal_head``) is written beside them as ``temporal.json``
        and ``temporal.safetensors``.

        Files are written to a temporary name and renamed, so an interrupted save
        never leaves a half-written model behind.

        Args:
            save_directory: The folder (created if missing).
            dtype: Floating-point type to store the weights in (``torch.float16``
                halves the file; loading always restores float32).
            model_card: The ``README.md`` text (default: one generated from the config).

        Returns:
            The folder.

        Raises:
            ConfigError: for a detector that runs with ONNX Runtime (it has no torch weights).

        Example:
            >>> from deepfakedetect import Detector
            >>> import tempfile
            >>> det = Detector.from_backbone("resnet18")
            >>> out = det.save_pretrained(tempfile.mkdtemp())
            >>> sorted(p.name for p in out.iterdir())
            ['README.md', 'config.json', 'model.safetensors']
        """
        self._need_torch_weights("save_pretrained")
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        state = {
            k: (v.detach().to("cpu", dtype=dtype) if v.is_floating_point() else v.detach().cpu()).contiguous()
            for k, v in self.model.state_dict().items()
        }
        config = self.config.replace(library_version=__version__)
        atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
        atomic_write(out / CONFIG_NAME, config.save)
        card = model_card if model_card is not None else render_model_card(config)
        atomic_write(out / README_NAME, lambda p: p.write_text(card, encoding="utf-8"))
        if self.training_manifest is not None:
            self.training_manifest.save(out / MANIFEST_NAME)
        elif (out / MANIFEST_NAME).is_file():
            (out / MANIFEST_NAME).unlink()  # it would describe another model's data
        head = getattr(self, "temporal_head", None)
        if head is not None:
            save_temporal(out, head)
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
        """Upload the files :meth:`save_pretrained` writes to a Hub repo.

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
            >>> from deepfakedetect import Detector
            >>> Detector.from_backbone("resnet18").push_to_hub("me/my-detector")  # doctest: +SKIP
        """
        self._need_torch_weights("push_to_hub")
        # models.hub imports huggingface_hub and httpx: only when uploading.
        from deepfakedetect.models.hub import upload_model_folder

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

    def _need_torch_weights(self, what: str) -> None:
        if self.backend != "torch":
            raise ConfigError(
                f"{what} writes torch weights, and this detector runs from ONNX files: upload or copy its "
                "exported folder as it is, or load the torch model folder and call export_onnx again"
            )
