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
  :data:`RETINAFACE_SHA256`), or the Hub through :func:`deepfakedetect._hub.download_file`
  (offline-aware, sha256-verified);
- :func:`select_faces`, :func:`crop_face` and :class:`FaceStage`, which apply a
  :class:`~deepfakedetect.FaceConfig`.

Importing this module does not import torch; the network is built on first use.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from ._config import FaceConfig
from ._errors import ConfigError, InputError, ModelLoadError
from ._registry import Registry, parse_spec

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
    "Face",
    "FaceDetector",
    "FaceStage",
    "RetinaFaceDetector",
    "crop_face",
    "get_face_detector",
    "register_face_detector",
    "resolve_retinaface_weights",
    "select_faces",
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
    return FACE_DETECTORS.create(name, **kwargs)


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
    :func:`deepfakedetect._hub.download_file` (cache first, no socket when offline, the
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
    from ._hub import download_file

    rev = DEFAULT_REVISION if revision is None else revision
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


_sha256_checked: dict[str, str] = {}  # resolved path -> "size:mtime_ns:inode" of the file that matched
_sha256_lock = threading.Lock()


def _check_sha256(path: Path, expected: str, what: str, remedy: str) -> None:
    """Raise ModelLoadError unless ``path`` hashes to ``expected``; each file is hashed once per process."""
    key = str(path.resolve())
    try:
        stat = path.stat()
    except OSError as e:
        raise ModelLoadError(f"{what} ({path}) cannot be read: {e}") from e
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}"
    with _sha256_lock:
        if _sha256_checked.get(key) == stamp:
            return
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as e:
        raise ModelLoadError(f"{what} ({path}) cannot be read: {e}") from e
    actual = digest.hexdigest()
    if actual != expected:
        raise ModelLoadError(f"{what} ({path}) failed its integrity check: sha256 {actual}, expected {expected}; {remedy}")
    with _sha256_lock:
        _sha256_checked[key] = stamp


_NETWORKS: dict[tuple[str, str], Any] = {}
_NETWORKS_LOCK = threading.Lock()


def _shared_network(path: Path, device: torch.device) -> Any:
    """One loaded network per (file, device), shared by every detector that asks."""
    from ._retinaface import load_retinaface

    key = (str(path.resolve()), str(device))
    with _NETWORKS_LOCK:
        net = _NETWORKS.get(key)
        if net is None:
            logger.info("loading RetinaFace weights from %s on %s", path, device)
            net = load_retinaface(path, device=device)
            _NETWORKS[key] = net
        return net


def _check_images(images: Sequence[np.ndarray]) -> list[np.ndarray]:
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
    device: str | None = None
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
            ("min_confidence", 0.0 <= _num(self.min_confidence) <= 1.0, "a number in [0, 1]"),
            ("nms_iou", 0.0 < _num(self.nms_iou) <= 1.0, "a number in (0, 1]"),
            ("max_size", _int(self.max_size) >= 32, "an integer >= 32"),
            ("batch_size", _int(self.batch_size) >= 1, "an integer >= 1"),
        )
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"RetinaFaceDetector {name} must be {expected}, got {getattr(self, name)!r}")

    def load(self) -> Any:
        """Resolve the weights and load the network now (otherwise done on first call).

        The resolved file is remembered, so the Hub is consulted once per detector.

        Returns:
            The shared, loaded :class:`~deepfakedetect._retinaface.RetinaFace` module.

        Raises:
            ModelLoadError: when the weights cannot be found, downloaded or loaded.
            ConfigError: when the device cannot be used.
        """
        net = self.__dict__.get("_network")
        if net is None:
            from ._retinaface import resolve_device

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
        checked = _check_images(images)
        if not checked:
            return []
        from ._retinaface import detect_faces

        dets = detect_faces(
            self.load(),
            checked,
            min_confidence=self.min_confidence,
            nms_iou=self.nms_iou,
            max_size=self.max_size,
            batch_size=self.batch_size,
        )
        return [
            [
                Face(tuple(box.tolist()), tuple(map(tuple, pts.tolist())), float(score))
                for box, pts, score in zip(d.boxes, d.landmarks, d.scores)
            ]
            for d in dets
        ]


def _num(x: Any) -> float:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    return float(x) if ok else math.nan


def _int(x: Any) -> int:
    return x if isinstance(x, int) and not isinstance(x, bool) else -1


def _size(face: Face) -> float:
    return math.sqrt(face.area)


def select_faces(faces: Sequence[Face], config: FaceConfig) -> list[Face]:
    """The faces a model should score, largest first.

    Faces below ``config.min_confidence`` are dropped; of the rest, ``select`` keeps
    ``"largest"`` (one face), ``"all"``, or ``"relative"``: every face whose size
    (square root of the box area) is at least ``config.min_relative_size`` times that
    of the largest.

    Args:
        faces: Faces of one image.
        config: The face-stage configuration.

    Returns:
        The kept faces by decreasing box area (ties keep the detector's order).

    Example:
        >>> from deepfakedetect._config import FaceConfig
        >>> big = Face((0, 0, 100, 100), (), 0.99)
        >>> small = Face((0, 0, 40, 40), (), 0.95)
        >>> len(select_faces([small, big], FaceConfig(select="relative", min_relative_size=0.5)))
        1
        >>> select_faces([small, big], FaceConfig(select="all"))[0] is big
        True
    """
    kept = sorted((f for f in faces if f.confidence >= config.min_confidence), key=lambda f: -f.area)
    if not kept:
        return []
    if config.select == "largest":
        return kept[:1]
    if config.select == "relative":
        floor = config.min_relative_size * _size(kept[0])
        # A small tolerance so a face exactly at the ratio is kept despite float rounding.
        return [f for f in kept if _size(f) >= floor * (1 - 1e-9)]
    return kept


def crop_face(image: np.ndarray, face: Face, *, margin: float = 1.3, square: bool = True, align: bool = False) -> np.ndarray:
    """Cut a face out of an image with a margin around its box.

    The crop is centred on the box centre and is ``margin`` times the box's width and
    height (with ``square``: ``margin`` times the longer side, both ways). Where it
    leaves the image it is filled with zeros. With ``align``, the crop is rotated
    about the box centre so that the eyes (the first two landmarks) are level;
    without landmarks ``align`` has no effect.

    Args:
        image: RGB ``uint8`` array ``(H, W, 3)`` (any channel count works).
        face: The face, in ``image``'s pixel coordinates.
        margin: Crop side over box side, at least 1.
        square: Make the crop square.
        align: Rotate so the eyes are level.

    Returns:
        A new ``uint8`` array of shape ``(h, w, C)``.

    Raises:
        ConfigError: when ``margin`` is below 1 or not a number.
        InputError: when ``image`` is not an ``(H, W, C)`` array.

    Example:
        >>> img = np.full((100, 100, 3), 255, np.uint8)
        >>> crop = crop_face(img, Face((90, 40, 110, 60), (), 0.9), margin=1.5)
        >>> crop.shape, int(crop[:, :15].min()), int(crop[:, 15:].max())
        ((30, 30, 3), 255, 0)
    """
    if not (_num(margin) >= 1.0):
        raise ConfigError(f"crop margin must be a number >= 1 (crop side / box side), got {margin!r}")
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0):
        shape = getattr(image, "shape", None)
        raise InputError(f"crop_face expects an image array of shape (H, W, C), got {type(image).__name__} {shape}")
    x1, y1, x2, y2 = face.box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = face.width * margin, face.height * margin
    if square:
        w = h = max(w, h)
    out_w, out_h = max(1, round(w)), max(1, round(h))

    angle = 0.0
    if align and len(face.landmarks) >= 2:
        (lx, ly), (rx, ry) = face.landmarks[0], face.landmarks[1]
        angle = math.atan2(ry - ly, rx - lx)
    if angle == 0.0:
        return _crop_axis_aligned(image, cx - out_w / 2, cy - out_h / 2, out_w, out_h)
    return _crop_rotated(image, cx, cy, out_w, out_h, angle)


def _crop_axis_aligned(image: np.ndarray, left: float, top: float, out_w: int, out_h: int) -> np.ndarray:
    x0, y0 = round(left), round(top)
    out = np.zeros((out_h, out_w, image.shape[2]), dtype=image.dtype)
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(image.shape[1], x0 + out_w), min(image.shape[0], y0 + out_h)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def _crop_rotated(image: np.ndarray, cx: float, cy: float, out_w: int, out_h: int, angle: float) -> np.ndarray:
    """Bilinear sampling of a rotated rectangle; outside the image reads as zero."""
    cos, sin = math.cos(angle), math.sin(angle)
    # Output pixel centres relative to the crop centre, rotated into the image.
    u = np.arange(out_w, dtype=np.float64) + 0.5 - out_w / 2
    v = np.arange(out_h, dtype=np.float64) + 0.5 - out_h / 2
    uu, vv = np.meshgrid(u, v)
    # Pixel (i, j) covers [j, j+1) x [i, i+1): its centre is at j + 0.5, hence the - 0.5.
    sx = cx + cos * uu - sin * vv - 0.5
    sy = cy + sin * uu + cos * vv - 0.5
    x0 = np.floor(sx).astype(np.int64)
    y0 = np.floor(sy).astype(np.int64)
    fx = (sx - x0)[..., None]
    fy = (sy - y0)[..., None]
    h, w = image.shape[:2]
    # Only the part of the image under the crop is copied, with a ring of zeros around
    # it so that reads outside the image are zero without masks.
    rx0, ry0 = int(np.clip(x0.min(), 0, w)), int(np.clip(y0.min(), 0, h))
    rx1, ry1 = int(np.clip(x0.max() + 2, 0, w)), int(np.clip(y0.max() + 2, 0, h))
    region = np.zeros((max(0, ry1 - ry0) + 2, max(0, rx1 - rx0) + 2, image.shape[2]), dtype=np.float32)
    region[1:-1, 1:-1] = image[ry0:ry1, rx0:rx1]
    rw, rh = region.shape[1] - 1, region.shape[0] - 1
    xa = np.clip(x0 - rx0 + 1, 0, rw)
    xb = np.clip(x0 - rx0 + 2, 0, rw)
    ya = np.clip(y0 - ry0 + 1, 0, rh)
    yb = np.clip(y0 - ry0 + 2, 0, rh)
    top = region[ya, xa] * (1 - fx) + region[ya, xb] * fx
    bottom = region[yb, xa] * (1 - fx) + region[yb, xb] * fx
    out = top * (1 - fy) + bottom * fy
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(image.dtype)


class FaceStage:
    """Detect faces in a batch of images, select them per :class:`FaceConfig`, and crop them.

    Args:
        config: What to select and how to crop (``enabled`` is the caller's concern:
            this stage always runs when called).
        detector: A :class:`FaceDetector` (any callable), a registry name or spec such as
            ``"retinaface:max_size=480"`` or ``{"name": "retinaface", "weights": path}``;
            ``None`` builds ``config.detector``. Built from a name, the detector is given
            ``min_confidence``, ``max_size`` (from ``config.detect_max_size``),
            ``device`` and the ``detector_options`` when its factory accepts them and the
            spec does not set them.
        device: Passed to a detector built here, when its factory takes ``device``.
        detector_options: More parameters for a detector built here from a name, each
            passed when its factory takes it, the spec does not set it and the value is
            not ``None``: for instance ``{"cache_dir": ..., "local_files_only": True,
            "token": ...}``, which ``"retinaface"`` uses to get its weights. Ignored for a
            detector given as a callable.

    Raises:
        ConfigError: when ``config`` is not a :class:`FaceConfig`, the detector spec is bad
            or ``detector_options`` is not a mapping with string keys.
        UnknownPluginError: when the detector name is not registered.

    Example:
        >>> from deepfakedetect._config import FaceConfig
        >>> def one_face(images):
        ...     return [[Face((2, 2, 6, 6), (), 0.99)] for _ in images]
        >>> stage = FaceStage(FaceConfig(margin=1.5), one_face)
        >>> [(face.box, crop.shape) for face, crop in stage([np.zeros((8, 8, 3), np.uint8)])[0]]
        [((2.0, 2.0, 6.0, 6.0), (6, 6, 3))]
    """

    def __init__(
        self,
        config: FaceConfig,
        detector: FaceDetector | str | Mapping[str, Any] | None = None,
        *,
        device: str | None = None,
        detector_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(config, FaceConfig):
            raise ConfigError(f"FaceStage needs a FaceConfig, got {type(config).__name__}")
        if detector_options is not None and not (
            isinstance(detector_options, Mapping) and all(isinstance(k, str) for k in detector_options)
        ):
            raise ConfigError(
                f"FaceStage detector_options must be a mapping of parameter names to values, got {detector_options!r}"
            )
        options = dict(detector_options or {})
        self.config = config
        if detector is None:
            detector = config.detector
        if callable(detector) and not isinstance(detector, (str, Mapping)):
            self.detector: FaceDetector = detector
        else:
            self.detector = _build_detector(detector, config, device, options)

    def __repr__(self) -> str:
        return f"FaceStage(config={self.config!r}, detector={self.detector!r})"

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Detect in batch and select: per image, the faces to score, largest first.

        Args:
            images: RGB ``uint8`` arrays of shape ``(H, W, 3)``.

        Returns:
            One list per image (empty when no face qualifies).

        Raises:
            InputError: when an image is not an RGB ``uint8`` array.
            ConfigError: when the detector returns something other than one list of
                :class:`Face` per image.
        """
        checked = _check_images(images)
        if not checked:
            return []
        found = self.detector(checked)
        if not isinstance(found, Sequence) or len(found) != len(checked):
            n = len(found) if isinstance(found, Sequence) else type(found).__name__
            raise ConfigError(
                f"face detector {self.detector!r} returned {n} results for {len(checked)} images; "
                "a FaceDetector returns one list of Face per image"
            )
        selected = []
        for i, faces in enumerate(found):
            faces = list(faces)
            bad = next((f for f in faces if not isinstance(f, Face)), None)
            if bad is not None:
                raise ConfigError(
                    f"face detector {self.detector!r} returned {type(bad).__name__} for image {i}; "
                    "it must return deepfakedetect.Face objects"
                )
            selected.append(select_faces(faces, self.config))
        return selected

    def __call__(self, images: Sequence[np.ndarray]) -> list[list[tuple[Face, np.ndarray]]]:
        """Detect, select and crop.

        Args:
            images: RGB ``uint8`` arrays of shape ``(H, W, 3)``.

        Returns:
            Per image, ``(face, crop)`` pairs by decreasing face size; crops are RGB
            ``uint8`` arrays cut with ``config.margin``, ``config.square`` and
            ``config.align``.

        Raises:
            InputError: when an image is not an RGB ``uint8`` array.
            ConfigError: when the detector misbehaves.
        """
        cfg = self.config
        per_image = self.detect(images)
        return [
            [(face, crop_face(img, face, margin=cfg.margin, square=cfg.square, align=cfg.align)) for face in faces]
            for img, faces in zip(images, per_image)
        ]


def _build_detector(
    spec: str | Mapping[str, Any], config: FaceConfig, device: str | None, options: Mapping[str, Any]
) -> FaceDetector:
    if isinstance(spec, str):
        name, params = parse_spec(spec)
    elif isinstance(spec, Mapping):
        params = dict(spec)
        name = params.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(f"a face detector given as a mapping needs a 'name' key: {spec!r}")
    else:
        raise ConfigError(f"a face detector must be a callable, a name or a mapping with 'name'; got {spec!r}")
    factory = FACE_DETECTORS.get(name)
    try:
        accepted = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins and C callables have no signature
        accepted = {}
    for key, value in (
        ("min_confidence", config.min_confidence),
        ("max_size", config.detect_max_size),
        ("device", device),
        *options.items(),
    ):
        if key in accepted and key not in params and value is not None:
            params[key] = value
    return FACE_DETECTORS.create({"name": name, **params})
