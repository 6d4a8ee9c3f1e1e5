"""The face stage: find faces, pick the ones to score, crop them with a margin.

Deepfake detectors judge faces; a whole 1080p frame squeezed to 224 px leaves the face
a few pixels wide. This module holds:

- :class:`Face`, one detected face in original-image pixels;
- the :class:`FaceDetector` protocol and its registry (entry-point group
  ``deepfakedetect.face_detectors``), so any callable that maps a list of RGB images to
  lists of faces can be plugged in;
- :class:`RetinaFaceDetector`, the built-in detector (RetinaFace-MobileNet0.25 in plain
  torch), and :func:`resolve_retinaface_weights`, which finds its weights: a local file,
  ``DEEPFAKEDETECT_RETINAFACE_WEIGHTS``, the copy shipped in the package (checked against
  :data:`RETINAFACE_SHA256`), or the Hub through :func:`deepfakedetect.models.hub.download_file`
  (offline-aware, sha256-verified);
- :func:`select_faces`, :func:`crop_face` and :class:`FaceStage`, which apply a
  :class:`~deepfakedetect.FaceConfig`.

Importing this module does not import torch; the network is built on first use.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast, runtime_checkable

import numpy as np

from deepfakedetect._errors import ConfigError, InputError, ModelLoadError
from deepfakedetect._registry import Registry
from deepfakedetect._utils import as_int, as_number, sha256_matches

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_FILENAME",
    "DEFAULT_REPO_ID",
    "DEFAULT_REVISION",
    "FACE_DETECTORS",
    "RETINAFACE_SHA256",
    "WEIGHTS_ENV",
    "check_images",
    "list_face_detectors",
    "Face",
    "FaceDetector",
    "RetinaFaceDetector",
    "get_face_detector",
    "register_face_detector",
    "resolve_retinaface_weights",
]

DEFAULT_REPO_ID = "deepfakedetect/retinaface-mobilenet0.25"
DEFAULT_FILENAME = "retinaface_mobilenet0.25.safetensors"
# The Hub revision the weights are taken from when none is given. What is pinned is the
# content: at this revision the file must hash to RETINAFACE_SHA256, whatever the branch
# holds. Replace it with the commit sha once the weights repo is published.
DEFAULT_REVISION = "main"
# sha256 of the weights this version expects (Pytorch_Retinaface's mobilenet0.25_Final.pth,
# converted to safetensors): the shipped copy and a download at DEFAULT_REVISION must match.
RETINAFACE_SHA256 = "08a23211be90f6e7448b3c3b58061c7d525366f8349d183122d495369a653c1e"
WEIGHTS_ENV = "DEEPFAKEDETECT_RETINAFACE_WEIGHTS"
_PACKAGED_WEIGHTS = Path(__file__).parent / "_weights" / DEFAULT_FILENAME

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Face:
    """One face found in an image, in that image's pixel coordinates.

    Attributes:
        box: ``(x1, y1, x2, y2)``; may reach past the image edge for a face cut by it.
        landmarks: Five ``(x, y)`` points: left eye, right eye, nose, left mouth
            corner, right mouth corner ("left" as seen in the image).
        confidence: The detector's confidence that this is a face, in [0, 1].

    Example:
        >>> f = Face((10.0, 20.0, 50.0, 80.0), ((20.0, 40.0),) * 5, 0.99)
        >>> f.width, f.height, f.area
        (40.0, 60.0, 2400.0)
        >>> f.to_dict()["box"]
        [10.0, 20.0, 50.0, 80.0]
    """

    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]
    confidence: float

    def __post_init__(self) -> None:
        try:
            box = tuple(float(v) for v in self.box)
            landmarks = tuple((float(x), float(y)) for x, y in self.landmarks)
            confidence = float(self.confidence)
        except (TypeError, ValueError) as e:
            raise ConfigError(
                f"a Face needs box=(x1, y1, x2, y2), landmarks=((x, y), ...) and a float confidence; "
                f"got box={self.box!r}, landmarks={self.landmarks!r}, confidence={self.confidence!r}"
            ) from e
        if len(box) != 4:
            raise ConfigError(f"a Face box is (x1, y1, x2, y2), got {self.box!r}")
        object.__setattr__(self, "box", box)
        object.__setattr__(self, "landmarks", landmarks)
        object.__setattr__(self, "confidence", confidence)

    @property
    def width(self) -> float:
        """Box width in pixels (never negative)."""
        return max(0.0, self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        """Box height in pixels (never negative)."""
        return max(0.0, self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        """Box area in square pixels."""
        return self.width * self.height

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary: ``box``, ``landmarks`` and ``confidence``.

        Example:
            >>> Face((0, 0, 2, 2), (), 0.5).to_dict()
            {'box': [0.0, 0.0, 2.0, 2.0], 'landmarks': [], 'confidence': 0.5}
        """
        return {
            "box": list(self.box),
            "landmarks": [list(p) for p in self.landmarks],
            "confidence": self.confidence,
        }


@runtime_checkable
class FaceDetector(Protocol):
    """Anything that finds faces in a batch of images.

    Called with RGB ``uint8`` arrays of shape ``(H, W, 3)``; returns, per image, a
    list of :class:`Face` in that image's pixel coordinates. A plain function
    qualifies.

    Example:
        >>> def no_faces(images):
        ...     return [[] for _ in images]
        >>> isinstance(no_faces, FaceDetector)
        True
    """

    def __call__(self, images: Sequence[np.ndarray], /) -> list[list[Face]]: ...


FACE_DETECTORS: Registry[Callable[..., Any]] = Registry("face detector", group="deepfakedetect.face_detectors")


def register_face_detector(name: str | None = None, *, override: bool = False) -> Callable[[F], F]:
    """Decorator that registers a face detector by name.

    As in every deepfakedetect registry, a registered **function** is the detector
    itself (parameters given by name are bound with :func:`functools.partial`), and a
    registered **class** is instantiated with them, its instances being detectors.

    Args:
        name: The registry name (default: the object's ``__name__``).
        override: Replace an existing entry of that name instead of raising.

    Returns:
        The decorator, which returns the object unchanged.

    Raises:
        ConfigError: if the name is taken and ``override`` is false.

    Example:
        >>> @register_face_detector("doc_center", override=True)
        ... def center_face(images, *, side=10.0):
        ...     return [[Face((0.0, 0.0, side, side), (), 1.0)] for _ in images]
        >>> get_face_detector("doc_center", side=4.0)([np.zeros((8, 8, 3), np.uint8)])[0][0].box
        (0.0, 0.0, 4.0, 4.0)
    """
    return FACE_DETECTORS.register(name, override=override)


def list_face_detectors() -> list[str]:
    """Sorted names of the face detectors known now, entry points of installed packages included.

    Example:
        >>> "retinaface" in list_face_detectors()
        True
    """
    return FACE_DETECTORS.names()


def get_face_detector(name: str = "retinaface", **kwargs: Any) -> FaceDetector:
    """Make a face detector by registry name.

    Args:
        name: A registered name, optionally with parameters (``"retinaface:max_size=480"``);
            unknown names are looked up in the ``deepfakedetect.face_detectors``
            entry-point group.
        **kwargs: Parameters: a registered class is instantiated with them, a
            registered function bound to them (for ``"retinaface"``: ``weights``,
            ``device``, ``min_confidence``, ``nms_iou``, ``max_size``, ``batch_size``,
            ``revision``, ``cache_dir``, ``local_files_only``, ``token``).

    Returns:
        A callable that maps a list of RGB images to lists of :class:`Face`.

    Raises:
        UnknownPluginError: when no detector has that name (the message lists those known).
        ConfigError: when the parameters do not fit the factory.

    Example:
        >>> det = get_face_detector("retinaface", weights=None, max_size=480)
        >>> det.max_size
        480
    """
    return cast(FaceDetector, FACE_DETECTORS.create(name, **kwargs))


def resolve_retinaface_weights(
    weights: str | os.PathLike[str] | None = None,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """Find the RetinaFace weights file.

    Order: ``weights`` when given; else the file named by ``DEEPFAKEDETECT_RETINAFACE_WEIGHTS``;
    else, unless a ``revision`` is given, the copy shipped inside the package; else
    ``DEFAULT_FILENAME`` from the Hub repo ``DEFAULT_REPO_ID`` through
    :func:`deepfakedetect.models.hub.download_file` (cache first, no socket when offline, the
    Hub's sha256 checked). The shipped copy, and a download at the default revision, must
    also hash to :data:`RETINAFACE_SHA256`; each file is hashed once per process. A file
    named by the caller or the environment is used as it is.

    Args:
        weights: A local ``.safetensors`` file, or ``None``.
        revision: Take the weights from the Hub at this branch, tag or commit sha rather
            than from the shipped copy (default: the shipped copy, else ``DEFAULT_REVISION``).
            That file is checked against the Hub's sha256 only, not against
            ``RETINAFACE_SHA256``.
        cache_dir: The Hugging Face cache folder (default: ``HF_HUB_CACHE``).
        local_files_only: Never use the network (as does ``HF_HUB_OFFLINE=1``).
        token: Hugging Face token (default: ``HF_TOKEN`` or the saved login).

    Returns:
        The path of a local file.

    Raises:
        ModelLoadError: when a named file does not exist; when the shipped copy or the
            download does not match its sha256; or when the download fails (offline with
            a cold cache, repo or file not found, network errors), chained to the cause.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "r.safetensors"
        >>> _ = f.write_bytes(b"")
        >>> resolve_retinaface_weights(f) == f
        True
        >>> resolve_retinaface_weights().name  # the copy shipped with the package
        'retinaface_mobilenet0.25.safetensors'
    """
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f"RetinaFace weights file {path} does not exist; pass the path of "
                f"{DEFAULT_FILENAME}, or weights=None to use the copy shipped with deepfakedetect"
            )
        return path
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ModelLoadError(
                f"{WEIGHTS_ENV}={env} does not name an existing file; point it at {DEFAULT_FILENAME} "
                "or unset it to use the copy shipped with deepfakedetect"
            )
        return path
    packaged = _PACKAGED_WEIGHTS
    if revision is None and packaged.is_file():
        _check_sha256(
            packaged,
            RETINAFACE_SHA256,
            "the RetinaFace weights shipped with deepfakedetect",
            "the installation is damaged or was altered: reinstall deepfakedetect, or pass weights=<path> "
            f"or set {WEIGHTS_ENV} to a copy you trust",
        )
        return packaged
    if revision is None:
        logger.debug("no RetinaFace weights shipped at %s; getting them from the Hub", packaged)
    return _hub_weights(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token)


def _hub_weights(
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    local_files_only: bool,
    token: str | bool | None,
) -> Path:
    rev = DEFAULT_REVISION if revision is None else revision
    # Imported here: models.hub imports huggingface_hub and httpx (about 0.3 s), needed only to download.
    from deepfakedetect.models.hub import download_file

    try:
        path = download_file(
            DEFAULT_REPO_ID,
            DEFAULT_FILENAME,
            revision=rev,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
        )
    except ModelLoadError as e:
        raise ModelLoadError(
            f"could not get the RetinaFace weights: {e}. Alternatively pass weights=<path> or set "
            f"{WEIGHTS_ENV} to a local copy of {DEFAULT_FILENAME}"
        ) from e
    if revision is None:
        _check_sha256(
            path,
            RETINAFACE_SHA256,
            f"{DEFAULT_FILENAME} of Hub repo {DEFAULT_REPO_ID!r} at revision {rev!r}",
            "the repo holds other weights than this version of deepfakedetect expects: pass the revision "
            "you mean to use explicitly (revision=...), or pass weights=<path>",
        )
    return path


def _check_sha256(path: Path, expected: str, what: str, remedy: str) -> None:
    """Raise ModelLoadError unless ``path`` hashes to ``expected``."""
    try:
        ok, actual = sha256_matches(path, expected)
    except OSError as e:
        raise ModelLoadError(f"{what} ({path}) cannot be read: {e}") from e
    if not ok:
        raise ModelLoadError(f"{what} ({path}) failed its integrity check: sha256 {actual}, expected {expected}; {remedy}")


_NETWORKS: dict[tuple[str, str], Any] = {}
_NETWORKS_LOCK = threading.Lock()


def _shared_network(path: Path, device: torch.device) -> Any:
    """One loaded network per (file, device), shared by every detector that asks."""
    # torch: imported on first use, so that faces and crops work without loading torch
    from deepfakedetect.faces.retinaface import load_retinaface

    key = (str(path.resolve()), str(device))
    with _NETWORKS_LOCK:
        net = _NETWORKS.get(key)
        if net is None:
            logger.info("loading RetinaFace weights from %s on %s", path, device)
            net = load_retinaface(path, device=device)
            _NETWORKS[key] = net
        return net


def faces_from_detections(dets: Sequence[Any]) -> list[list[Face]]:
    """RetinaFace's per-image detections (``boxes``, ``landmarks``, ``scores`` arrays) as :class:`Face` lists.

    Shared by the torch and the ONNX Runtime RetinaFace detectors.
    """
    return [
        [
            Face(tuple(box.tolist()), tuple(map(tuple, pts.tolist())), float(score))
            for box, pts, score in zip(d.boxes, d.landmarks, d.scores)
        ]
        for d in dets
    ]


def check_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    if isinstance(images, np.ndarray) and images.ndim == 3:
        raise InputError(
            f"face detectors take a list of images; got one array of shape {images.shape}: wrap it in a list"
        )
    checked = list(images)
    for i, img in enumerate(checked):
        if not (
            isinstance(img, np.ndarray)
            and img.dtype == np.uint8
            and img.ndim == 3
            and img.shape[2] == 3
            and img.shape[0] > 0
            and img.shape[1] > 0
        ):
            described = (
                f"{type(img).__name__} dtype={img.dtype} shape={img.shape}"
                if isinstance(img, np.ndarray)
                else type(img).__name__
            )
            raise InputError(
                f"image {i}: expected an RGB uint8 numpy array of shape (H, W, 3), got {described}; "
                "convert with numpy.asarray(PIL.Image.open(path).convert('RGB'))"
            )
    return checked


@FACE_DETECTORS.register("retinaface")
@dataclass(frozen=True)
class RetinaFaceDetector:
    """The built-in face detector: RetinaFace with a MobileNet-0.25 body (0.43 M parameters).

    Frames are downscaled so their longer side is at most ``max_size`` for detection
    (so cost does not grow with resolution) and results are mapped back to the
    original pixels. The network is loaded on the first call and shared by every
    detector with the same weights file and device.

    Args:
        weights: A local ``.safetensors`` file; ``None`` resolves them with
            :func:`resolve_retinaface_weights` (``DEEPFAKEDETECT_RETINAFACE_WEIGHTS``, else
            the copy shipped with the package, else the Hub).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; ``None`` picks CUDA when available.
        min_confidence: Faces scoring below this are not returned.
        nms_iou: Non-maximum-suppression overlap threshold.
        max_size: Longest image side, in pixels, at which detection runs (small
            images are not upscaled).
        batch_size: Images per forward pass.
        revision: Hub revision of the weights (see :func:`resolve_retinaface_weights`).
        cache_dir: Hugging Face cache folder for weights from the Hub.
        local_files_only: Never use the network for the weights.
        token: Hugging Face token for the weights' repo; kept out of ``repr``.

    Raises:
        ConfigError: for out-of-range parameters.

    Example:
        >>> det = RetinaFaceDetector(None, device="cpu", min_confidence=0.9)
        >>> det.min_confidence, det.max_size
        (0.9, 640)
    """

    weights: str | os.PathLike[str] | None = None
    _: dataclasses.KW_ONLY
    device: str | torch.device | None = None
    min_confidence: float = 0.5
    nms_iou: float = 0.4
    max_size: int = 640
    batch_size: int = 16
    revision: str | None = None
    cache_dir: str | os.PathLike[str] | None = None
    local_files_only: bool = False
    # A secret: never in a repr, which ends up in logs and results' provenance.
    token: str | bool | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.device is not None and not isinstance(self.device, str):
            object.__setattr__(self, "device", str(self.device))  # a torch.device: keep the repr plain
        if not isinstance(self.local_files_only, bool):
            raise ConfigError(f"RetinaFaceDetector local_files_only must be True or False, got {self.local_files_only!r}")
        checks = (
            ("min_confidence", 0.0 <= as_number(self.min_confidence) <= 1.0, "a number in [0, 1]"),
            ("nms_iou", 0.0 < as_number(self.nms_iou) <= 1.0, "a number in (0, 1]"),
            ("max_size", as_int(self.max_size) >= 32, "an integer >= 32"),
            ("batch_size", as_int(self.batch_size) >= 1, "an integer >= 1"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"RetinaFaceDetector {name} must be {expected}, got {getattr(self, name)!r}")

    def load(self) -> Any:
        """Resolve the weights and load the network now (otherwise done on first call).

        The resolved file is remembered, so the Hub is consulted once per detector.

        Returns:
            The shared, loaded :class:`~deepfakedetect.faces.retinaface.RetinaFace` module.

        Raises:
            ModelLoadError: when the weights cannot be found, downloaded or loaded.
            ConfigError: when the device cannot be used.
        """
        net = self.__dict__.get("_network")
        if net is None:
            # torch: imported on first use, so that faces and crops work without loading torch
            from deepfakedetect.faces.retinaface import resolve_device

            path = resolve_retinaface_weights(
                self.weights,
                revision=self.revision,
                cache_dir=self.cache_dir,
                local_files_only=self.local_files_only,
                token=self.token,
            )
            net = _shared_network(path, resolve_device(self.device))
            # A cache, not a parameter: kept out of the dataclass fields, repr and equality.
            object.__setattr__(self, "_network", net)
        return net

    def __call__(self, images: Sequence[np.ndarray], /) -> list[list[Face]]:
        """Find faces in each image.

        Args:
            images: RGB ``uint8`` arrays of shape ``(H, W, 3)``, of any sizes.

        Returns:
            Per image, its faces by decreasing confidence.

        Raises:
            InputError: when an image is not an RGB ``uint8`` array.
            ModelLoadError: when the weights cannot be loaded.
        """
        checked = check_images(images)
        if not checked:
            return []
        # torch: imported on first use, so that faces and crops work without loading torch
        from deepfakedetect.faces.retinaface import detect_faces

        dets = detect_faces(
            self.load(),
            checked,
            min_confidence=self.min_confidence,
            nms_iou=self.nms_iou,
            max_size=self.max_size,
            batch_size=self.batch_size,
        )
        return faces_from_detections(dets)

