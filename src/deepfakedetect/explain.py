"""What the model looks at: Grad-CAM heat maps over the crop a detector scored.

Grad-CAM (Selvaraju et al., 2017) weighs the feature maps of a convolutional layer by
the spatial mean of their gradients with respect to the model's output, sums them,
keeps the positive part, and upsamples the result to the input. Here the output is the
**log-odds of the target label** (``fake`` by default): for a two-output head
``logit[target] - logit[other]``, for a one-logit head ``+logit`` for fake and
``-logit`` for real. The map is scaled so its maximum is 1; a map of zeros means that
no region pushed the score towards the target.

The layer is found automatically: the last module, in the order the forward pass
finishes them, whose output is 4-D ``(N, C, H, W)`` with more than one spatial
position (``layer4`` in a ResNet, ``features`` in a MobileNet or EfficientNet). Pass
``layer=`` to choose another.

Explaining never changes the model: hooks are added for one call, act only for the
thread that added them (other threads may score with the same detector meanwhile), and
are removed in ``finally``; gradients are taken with :func:`torch.autograd.grad`, so no
parameter's ``.grad`` is touched; the model stays in eval mode.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from deepfakedetect._config import PreprocessConfig
from deepfakedetect._errors import ConfigError, InputError, NoFacesError
from deepfakedetect.io.images import DecodedImage, describe_input
from deepfakedetect.io.video import probe_video, read_frames
from deepfakedetect.models.preprocess import resize_and_crop

if TYPE_CHECKING:
    from deepfakedetect.detector import Detector
    from deepfakedetect.faces.detectors import Face

logger = logging.getLogger(__name__)

__all__ = ["Explanation", "explain", "explain_video_frames", "find_target_layer"]


@dataclass(frozen=True, eq=False)
class Explanation:
    """A Grad-CAM heat map over the crop a detector scored.

    Attributes:
        heatmap: ``float32`` array ``(H, W)`` in [0, 1], the size of ``crop``: how much
            each pixel pushed the score towards ``target`` (1 = the strongest).
        crop: The RGB ``uint8`` array ``(H, W, 3)`` that was scored: the face crop when
            the detector's face stage is on, else the preprocessed image (resized and
            centre-cropped to the model's input size).
        fake_score: The calibrated probability of fake for this crop, scored as
            ``detect_image`` scores it (the detector's precision and test-time flip); the
            map itself comes from a float32 pass without the flip.
        face: The face the crop was cut around, or ``None`` without the face stage.
        target: The label whose log-odds were explained (``"fake"`` or ``"real"``).
        layer: Name of the module whose activations were used (as in ``named_modules``).
        source: What was explained (a path, or a description of an array).
        frame_index: The video frame's index, for :func:`explain_video_frames`.
        timestamp: The video frame's time in seconds, for :func:`explain_video_frames`.

    Example:
        >>> e = Explanation(heatmap=np.eye(4, dtype=np.float32), crop=np.zeros((4, 4, 3), np.uint8),
        ...                 fake_score=0.7, face=None, target="fake", layer="layer4")
        >>> e.overlay(alpha=0.5).size
        (4, 4)
    """

    heatmap: np.ndarray
    crop: np.ndarray
    fake_score: float
    face: Face | None
    target: str
    layer: str
    source: str = ""
    frame_index: int | None = None
    timestamp: float | None = None

    def overlay(self, alpha: float = 0.5) -> Image.Image:
        """The heat map coloured (blue = low, red = high) and blended over the crop.

        Args:
            alpha: Weight of the heat-map colours, from 0 (crop only) to 1 (colours only).

        Returns:
            An RGB PIL image the size of ``crop``.

        Raises:
            ConfigError: when ``alpha`` is not in [0, 1].

        Example:
            >>> e = Explanation(heatmap=np.ones((2, 2), np.float32), crop=np.zeros((2, 2, 3), np.uint8),
            ...                 fake_score=0.9, face=None, target="fake", layer="features")
            >>> e.overlay(alpha=1.0).getpixel((0, 0))  # the colour of 1.0: dark red
            (128, 0, 0)
        """
        if not (isinstance(alpha, (int, float)) and not isinstance(alpha, bool) and 0.0 <= alpha <= 1.0):
            raise ConfigError(f"overlay alpha must be a number in [0, 1], got {alpha!r}")
        colours = colormap_jet(self.heatmap)
        blended = (1.0 - alpha) * self.crop.astype(np.float32) + alpha * colours.astype(np.float32)
        return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8), mode="RGB")


def colormap_jet(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] to RGB ``uint8`` colours of the "jet" map (no matplotlib needed).

    Args:
        values: An array of any shape; values are clipped to [0, 1].

    Returns:
        An array of shape ``values.shape + (3,)``.

    Example:
        >>> colormap_jet(np.array([0.0, 0.5, 1.0])).tolist()
        [[0, 0, 128], [128, 255, 128], [128, 0, 0]]
    """
    v = np.clip(np.asarray(values, dtype=np.float32), 0.0, 1.0)
    # The classic piecewise-linear jet: each channel is a clipped tent around its centre.
    r = np.clip(1.5 - np.abs(4.0 * v - 3.0), 0.0, 1.0)
    g = np.clip(1.5 - np.abs(4.0 * v - 2.0), 0.0, 1.0)
    b = np.clip(1.5 - np.abs(4.0 * v - 1.0), 0.0, 1.0)
    return np.rint(np.stack([r, g, b], axis=-1) * 255.0).astype(np.uint8)


# -------------------------------------------------------------------------- the layer

# model -> {input shape: layer name}; weak so that a discarded detector is not kept alive.
_LAYER_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[int, ...], str]] = weakref.WeakKeyDictionary()
_LAYER_CACHE_LOCK = threading.Lock()


def find_target_layer(model: nn.Module, example: torch.Tensor) -> str:
    """Name of the module Grad-CAM uses by default: the last with a spatial 4-D output.

    "Last" is in the order the forward pass finishes modules, so a container such as
    ResNet's ``layer4`` (which finishes after its blocks) is chosen over its parts;
    outputs of 1 x 1 (global pooling) are skipped. The answer is cached per model and
    input shape.

    Args:
        model: The network.
        example: An input batch of the shape that will be explained.

    Returns:
        A name from ``model.named_modules()``.

    Raises:
        ConfigError: when no module gives a 4-D output larger than 1 x 1.

    Example:
        >>> import torchvision
        >>> find_target_layer(torchvision.models.resnet18(num_classes=2).eval(), torch.zeros(1, 3, 64, 64))
        'layer4'
    """
    key = tuple(example.shape)
    with _LAYER_CACHE_LOCK:
        cached = _LAYER_CACHE.get(model, {}).get(key)
    if cached is not None:
        return cached
    owner = threading.get_ident()
    last: list[str] = []

    def make_hook(name: str) -> Any:
        def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
            if threading.get_ident() != owner:
                return
            if isinstance(output, torch.Tensor) and output.dim() == 4 and output.shape[2] * output.shape[3] > 1:
                last.append(name)

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in model.named_modules() if n]
    try:
        with torch.inference_mode():
            model(example)
    finally:
        for h in handles:
            h.remove()
    if not last:
        raise ConfigError(
            f"{type(model).__name__} has no module with a 4-D (N, C, H, W) output larger than 1 x 1 "
            f"for input {key}; Grad-CAM needs a convolutional backbone (pass layer=<module name> "
            "to pick one)"
        )
    with _LAYER_CACHE_LOCK:
        _LAYER_CACHE.setdefault(model, {})[key] = last[-1]
    return last[-1]


def _resolve_layer(model: nn.Module, layer: str | nn.Module | None, x: torch.Tensor) -> tuple[str, nn.Module]:
    modules = dict(model.named_modules())
    if layer is None:
        name = find_target_layer(model, x)
        return name, modules[name]
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name or "<model>", module
        raise ConfigError(f"the module {type(layer).__name__} given as layer is not part of the detector's model")
    if isinstance(layer, str) and layer in modules and layer:
        return layer, modules[layer]
    convs = [n for n, m in modules.items() if isinstance(m, (nn.Conv2d, nn.Sequential)) and n][-5:]
    raise ConfigError(
        f"layer {layer!r} is not a module of {type(model).__name__}; pass None for the automatic "
        f"choice or a name from model.named_modules(), e.g. {', '.join(convs)}"
    )


# -------------------------------------------------------------------------- Grad-CAM


def _target_log_odds(detector: Detector, logits: torch.Tensor, target: str) -> torch.Tensor:
    cfg = detector.config
    if cfg.num_outputs == 1:
        sign = 1.0 if target == cfg.fake_label else -1.0
        return sign * logits[:, 0]
    t = cfg.labels.index(target)
    return logits[:, t] - logits[:, 1 - t]


def _grad_cam(detector: Detector, crop: np.ndarray, *, target: str, layer: str | nn.Module | None) -> tuple[np.ndarray, float, str]:
    """The CAM at the model's input size (S, S) in [0, 1], the fake score, and the layer's name."""
    model = detector.model
    x = detector.preprocess([crop]).to(detector.device)
    if detector.device.type == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    # The caller may be inside no_grad or inference_mode; Grad-CAM needs a graph.
    with torch.inference_mode(False), torch.enable_grad():
        x = x.clone().requires_grad_(True)  # a graph even when every parameter is frozen
        name, module = _resolve_layer(model, layer, x.detach())
        owner = threading.get_ident()
        captured: dict[str, torch.Tensor] = {}

        def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
            if threading.get_ident() != owner or "act" in captured:
                return None
            if not (isinstance(output, torch.Tensor) and output.dim() == 4):
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                raise ConfigError(f"layer {name!r} gives {shape}, not a 4-D (N, C, H, W) tensor; choose a convolutional layer")
            captured["act"] = output
            # Later in-place operations (ReLU(inplace=True), +=) must not alter the tensor we
            # take gradients against: they get a copy of equal value instead.
            return output.clone()

        handle = module.register_forward_hook(hook)
        try:
            logits = model(x)
        finally:
            handle.remove()
        if "act" not in captured:
            raise ConfigError(f"layer {name!r} did not run in the forward pass; choose another layer")
        act = captured["act"]
        objective = _target_log_odds(detector, logits.float(), target).sum()
        (grads,) = torch.autograd.grad(objective, act)
    # The map comes from this fp32, unmirrored graph; the score from the detector's own
    # scoring path (its precision, e.g. bf16 autocast, and its test-time flip), so that it
    # is the score detect_image reports for the same crop.
    fake_score = float(detector.score_arrays([crop])[0])
    weights = grads.float().mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * act.detach().float()).sum(dim=1, keepdim=True))
    size = detector.config.preprocess.input_size
    cam = torch.nn.functional.interpolate(cam, size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    cam_np = cam.cpu().numpy().astype(np.float32)
    peak = float(cam_np.max())
    if not np.isfinite(peak):
        raise InputError("the gradient map is not finite (the model produced NaN or inf); check the model's weights")
    cam_np = cam_np / peak if peak > 0 else np.zeros_like(cam_np)
    return np.clip(cam_np, 0.0, 1.0), fake_score, name


def _cam_on_crop(cam: np.ndarray, crop_hw: tuple[int, int], pre: PreprocessConfig) -> np.ndarray:
    """Map a CAM over the model input back onto a crop of another size.

    The model saw the crop resized (shorter side ``resize_size``) and centre-cropped
    (see ``resize_and_crop``); pixels outside that centre crop were not seen and get 0.
    """
    h, w = crop_hw
    s = pre.input_size
    scale = pre.resize_size / min(h, w)
    nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
    top, left = (nh - s) // 2, (nw - s) // 2
    canvas = np.zeros((nh, nw), dtype=np.float32)
    canvas[top : top + s, left : left + s] = cam
    if (nw, nh) != (w, h):
        canvas = np.asarray(Image.fromarray(canvas, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    return np.clip(canvas, 0.0, 1.0).astype(np.float32)


def _check_target(detector: Detector, target: str) -> str:
    labels = detector.config.labels
    if target not in labels:
        raise ConfigError(f"target must be one of the model's labels {list(labels)}, got {target!r}")
    return target


def _explain_array(
    detector: Detector,
    image: np.ndarray | DecodedImage,
    *,
    target: str,
    layer: str | nn.Module | None,
    face_index: int,
    source: str,
    frame_index: int | None = None,
    timestamp: float | None = None,
) -> Explanation:
    pre = detector.config.preprocess
    face: Face | None = None
    if detector.config.faces.enabled:
        found = detector.extract_faces([image])[0]
        if not found:
            raise NoFacesError(
                f"{source}: no face found (min confidence {detector.config.faces.min_confidence}); "
                "there is no face crop to explain"
            )
        if face_index >= len(found):
            raise ConfigError(f"face_index={face_index} but {source} has {len(found)} face(s) (index 0 is the largest)")
        face, crop = found[face_index]
        cam, score, name = _grad_cam(detector, crop, target=target, layer=layer)
        heatmap = _cam_on_crop(cam, crop.shape[:2], pre)
    else:
        array = image.array if isinstance(image, DecodedImage) else image
        crop = np.ascontiguousarray(resize_and_crop(array, pre))
        cam, score, name = _grad_cam(detector, array, target=target, layer=layer)
        heatmap = cam
    return Explanation(
        heatmap=heatmap,
        crop=crop,
        fake_score=score,
        face=face,
        target=target,
        layer=name,
        source=source,
        frame_index=frame_index,
        timestamp=timestamp,
    )


def _check_face_index(face_index: int) -> int:
    if not (isinstance(face_index, int) and not isinstance(face_index, bool) and face_index >= 0):
        raise ConfigError(f"face_index must be an integer >= 0 (0 is the largest face), got {face_index!r}")
    return face_index


def explain(
    detector: Detector,
    image: Any,
    *,
    target: str = "fake",
    layer: str | nn.Module | None = None,
    face_index: int = 0,
) -> Explanation:
    """Grad-CAM heat map of what made ``detector`` score ``image`` as it did.

    The image is decoded as ``detect_image`` decodes it (large JPEGs at a reduced size).
    With the face stage on, the face is found and cropped exactly as ``detect_image``
    does, and the map covers that face crop; otherwise it covers the preprocessed image
    (resized and centre-cropped to the model's input size).

    Args:
        detector: The detector to explain.
        image: One image: a path, PIL image, NumPy array (HWC) or torch tensor (CHW).
        target: The label whose evidence to show, ``"fake"`` or ``"real"``.
        layer: The module to take activations from: a name from
            ``detector.model.named_modules()`` (``"layer4"``), the module itself, or
            ``None`` for the last convolutional block.
        face_index: Which face, with the face stage on (0 = the largest).

    Returns:
        An :class:`Explanation` with ``heatmap``, ``crop``, ``fake_score``, ``face``
        and ``overlay()``.

    Raises:
        InputError: an input that is not one image (:class:`ImageDecodeError` for
            unreadable files).
        NoFacesError: the face stage is on and found no face.
        ConfigError: unknown ``target`` or ``layer``, or ``face_index`` out of range.

    Example:
        >>> from deepfakedetect import Detector
        >>> det = Detector.from_backbone("resnet18", input_size=64)
        >>> e = explain(det, np.random.default_rng(0).integers(0, 256, (80, 80, 3), dtype=np.uint8))
        >>> e.heatmap.shape, e.crop.shape, e.layer
        ((64, 64), (64, 64, 3), 'layer4')
        >>> 0.0 <= float(e.heatmap.min()) <= float(e.heatmap.max()) <= 1.0
        True
    """
    if isinstance(image, (list, tuple)):
        raise InputError(
            f"explain takes one image, got a {type(image).__name__} of {len(image)}; call it once per image"
        )
    _check_target(detector, target)
    _check_face_index(face_index)
    # Decoded as detect_image decodes it (large JPEGs reduced), so the map explains that score.
    decoded = detector.decode(image)
    return _explain_array(
        detector, decoded, target=target, layer=layer, face_index=face_index, source=describe_input(image)
    )


def explain_video_frames(
    detector: Detector,
    path: str | os.PathLike[str],
    indices: Sequence[int],
    *,
    target: str = "fake",
    layer: str | nn.Module | None = None,
    face_index: int = 0,
    allow_urls: bool = False,
    timeout: float = 120.0,
) -> list[Explanation]:
    """Grad-CAM heat maps for chosen frames of a video.

    Frames are decoded as ``detect_video`` decodes them (upright, downscaled the same
    way), so the maps explain the scores ``detect_video`` gives those frames (for
    example the frames of a fake segment: ``[f.index for f in result.frames]``).

    Args:
        detector: The detector to explain.
        path: The video file.
        indices: Frame indices (duplicates are dropped; the result is in frame order).
        target: The label whose evidence to show, ``"fake"`` or ``"real"``.
        layer: The module to take activations from (see :func:`explain`).
        face_index: Which face in each frame, with the face stage on (0 = the largest).
        allow_urls: Allow URLs and ffmpeg protocols as ``path`` (refused by default).
        timeout: Seconds without progress after which decoding is abandoned.

    Returns:
        One :class:`Explanation` per decoded frame, with ``frame_index`` and
        ``timestamp`` set.

    Raises:
        VideoDecodeError: an unreadable video.
        ConfigError: an index outside the video, or a bad ``target``/``layer``/``face_index``.
        NoFacesError: the face stage is on and a requested frame has no face.

    Example:
        >>> import os, subprocess, tempfile, imageio_ffmpeg
        >>> from deepfakedetect import Detector
        >>> clip = os.path.join(tempfile.mkdtemp(), "clip.mp4")
        >>> _ = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi",
        ...                     "-i", "testsrc2=size=96x64:rate=10:duration=1", "-pix_fmt", "yuv420p", clip],
        ...                    check=True)
        >>> det = Detector.from_backbone("resnet18", input_size=64)
        >>> [(e.frame_index, e.timestamp, e.heatmap.shape) for e in explain_video_frames(det, clip, [8, 2])]
        [(2, 0.2, (64, 64)), (8, 0.8, (64, 64))]
    """

    _check_target(detector, target)
    _check_face_index(face_index)
    info = probe_video(path, allow_urls=allow_urls, timeout=timeout)
    wanted = sorted({int(i) for i in indices})
    bad = [i for i in wanted if not 0 <= i < info.num_frames]
    if bad:
        raise ConfigError(f"frame indices outside 0..{info.num_frames - 1} for {path}: {bad[:5]}")
    # The same downscaling as detect_video, so the crops match what was scored there.
    pre = detector.config.preprocess
    max_size = 1920 if detector.config.faces.enabled else 2 * pre.resize_size
    out = []
    for index, frame in read_frames(info, wanted, max_size=max_size, timeout=timeout):
        out.append(
            _explain_array(
                detector,
                frame,
                target=target,
                layer=layer,
                face_index=face_index,
                source=f"{path} frame {index}",
                frame_index=int(index),
                timestamp=float(info.timestamp(index)),
            )
        )
    return out
