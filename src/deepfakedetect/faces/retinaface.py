"""RetinaFace with a MobileNetV1-0.25 body, in plain torch.

The network matches the trained weights of the MIT-licensed Pytorch_Retinaface project
(``mobilenet0.25_Final.pth``, WIDER FACE) tensor for tensor, so its ``state_dict`` keys
and shapes are exactly those of ``retinaface_mobilenet0.25.safetensors``. Besides the
module this file holds what turns network outputs into faces: the priors (anchors),
box and landmark decoding, and batched inference over frames of different sizes with
non-maximum suppression (:mod:`deepfakedetect.faces.nms`, equal to torchvision's).

Input convention of the trained weights: BGR, float, minus the means (104, 117, 123),
no division by 255. :func:`detect_faces` takes RGB ``uint8`` arrays and does the rest.

This module imports torch; :mod:`deepfakedetect.faces.detectors` imports it only when a
network is first needed.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from deepfakedetect._errors import ConfigError, ModelLoadError
from deepfakedetect.faces.nms import batched_nms
from deepfakedetect.models.precision import fold_sequential_batchnorm

logger = logging.getLogger(__name__)

__all__ = [
    "MEAN_BGR",
    "MIN_SIZES",
    "STEPS",
    "VARIANCES",
    "Detections",
    "RetinaFace",
    "decode_boxes",
    "decode_landmarks",
    "detect_faces",
    "load_retinaface",
    "make_priors",
    "resolve_device",
]

MEAN_BGR = (104.0, 117.0, 123.0)
STEPS = (8, 16, 32)
MIN_SIZES = ((16, 32), (64, 128), (256, 512))  # anchor sides in input pixels, per step
VARIANCES = (0.1, 0.2)
_PRE_NMS_TOP_K = 5000
_MAX_FACES = 750  # per image, after NMS (the reference implementation's keep_top_k)


class _BatchNorm2d(nn.BatchNorm2d):
    """BatchNorm without the ``num_batches_tracked`` counter.

    The trained file has no such tensors, and the module's ``state_dict`` must list
    exactly the file's keys. The counter only matters for training with
    ``momentum=None``, which this network is never used for.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        self.num_batches_tracked = None

    def _load_from_state_dict(self, state_dict: Any, prefix: str, *args: Any) -> None:
        # Skip _NormBase's hook that inserts a num_batches_tracked entry for old files.
        nn.Module._load_from_state_dict(self, state_dict, prefix, *args)


def _conv_bn(
    cin: int, cout: int, *, kernel: int = 3, stride: int = 1, groups: int = 1, leaky: float | None = 0.1
) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        _BatchNorm2d(cout),
    ]
    if leaky is not None:
        layers.append(nn.LeakyReLU(leaky, inplace=True))
    return layers


def _conv_dw(cin: int, cout: int, stride: int) -> nn.Sequential:
    # Depthwise 3x3 (indices 0-2) then pointwise 1x1 (3-5), as the weight names expect.
    return nn.Sequential(
        *_conv_bn(cin, cin, stride=stride, groups=cin),
        *_conv_bn(cin, cout, kernel=1),
    )


class _MobileNetV1(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(
            nn.Sequential(*_conv_bn(3, 8, stride=2)),
            _conv_dw(8, 16, 1),
            _conv_dw(16, 32, 2),
            _conv_dw(32, 32, 1),
            _conv_dw(32, 64, 2),
            _conv_dw(64, 64, 1),
        )
        self.stage2 = nn.Sequential(_conv_dw(64, 128, 2), *[_conv_dw(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_conv_dw(128, 256, 2), _conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        c3 = self.stage3(c2)
        return c1, c2, c3


class _FPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], out_channels: int = 64) -> None:
        super().__init__()
        self.output1 = nn.Sequential(*_conv_bn(in_channels[0], out_channels, kernel=1))
        self.output2 = nn.Sequential(*_conv_bn(in_channels[1], out_channels, kernel=1))
        self.output3 = nn.Sequential(*_conv_bn(in_channels[2], out_channels, kernel=1))
        self.merge1 = nn.Sequential(*_conv_bn(out_channels, out_channels))
        self.merge2 = nn.Sequential(*_conv_bn(out_channels, out_channels))

    def forward(
        self, feats: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        o1 = self.output1(feats[0])
        o2 = self.output2(feats[1])
        o3 = self.output3(feats[2])
        o2 = self.merge2(o2 + F.interpolate(o3, size=o2.shape[-2:], mode="nearest"))
        o1 = self.merge1(o1 + F.interpolate(o2, size=o1.shape[-2:], mode="nearest"))
        return o1, o2, o3


class _SSH(nn.Module):
    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.conv3X3 = nn.Sequential(*_conv_bn(channels, channels // 2, leaky=None))
        self.conv5X5_1 = nn.Sequential(*_conv_bn(channels, channels // 4))
        self.conv5X5_2 = nn.Sequential(*_conv_bn(channels // 4, channels // 4, leaky=None))
        self.conv7X7_2 = nn.Sequential(*_conv_bn(channels // 4, channels // 4))
        self.conv7x7_3 = nn.Sequential(*_conv_bn(channels // 4, channels // 4, leaky=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv3X3(x)
        b1 = self.conv5X5_1(x)
        b = self.conv5X5_2(b1)
        c = self.conv7x7_3(self.conv7X7_2(b1))
        return F.relu(torch.cat((a, b, c), dim=1))


class _Head(nn.Module):
    def __init__(self, channels: int, values: int, anchors: int = 2) -> None:
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(channels, anchors * values, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1x1(x).permute(0, 2, 3, 1)
        return out.reshape(out.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """RetinaFace-MobileNet0.25: boxes, five landmarks and face logits for every prior.

    The input is a BGR float batch minus :data:`MEAN_BGR` (no scaling to [0, 1]).
    The outputs follow the priors of :func:`make_priors` for the same input size:
    box offsets ``(N, P, 4)``, class logits ``(N, P, 2)`` (column 1 is "face") and
    landmark offsets ``(N, P, 10)``.

    Example:
        >>> net = RetinaFace().eval()
        >>> loc, logits, landmarks = net(torch.zeros(1, 3, 64, 96))
        >>> loc.shape[1] == make_priors(64, 96).shape[0], logits.shape[2], landmarks.shape[2]
        (True, 2, 10)
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = _MobileNetV1()
        self.fpn = _FPN((64, 128, 256), 64)
        self.ssh1 = _SSH(64)
        self.ssh2 = _SSH(64)
        self.ssh3 = _SSH(64)
        self.ClassHead = nn.ModuleList(_Head(64, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(64, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(64, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p1, p2, p3 = self.fpn(self.body(x))
        levels = (self.ssh1(p1), self.ssh2(p2), self.ssh3(p3))
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, levels)], dim=1)
        logits = torch.cat([h(f) for h, f in zip(self.ClassHead, levels)], dim=1)
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, levels)], dim=1)
        return loc, logits, landmarks


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The device to run on: CUDA when available and none was named.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_retinaface(path: str | Path, *, device: str | torch.device | None = "cpu", fuse: bool = True) -> RetinaFace:
    """Build the network and load trained weights strictly from a safetensors file.

    Args:
        path: A ``.safetensors`` file with exactly the network's tensors.
        device: Where the network runs (``None``: CUDA when available).
        fuse: Fold BatchNorm into the convolutions after loading (faster, same outputs
            up to float rounding).

    Returns:
        The network in eval mode on ``device``.

    Raises:
        ModelLoadError: when the file cannot be read, or keys or shapes do not match
            (the message lists the missing, unexpected and mis-shaped tensors).
        ConfigError: when ``device`` cannot be used.

    Example:
        >>> import tempfile, os
        >>> from safetensors.torch import save_file
        >>> f = os.path.join(tempfile.mkdtemp(), "r.safetensors")
        >>> save_file(RetinaFace().state_dict(), f)
        >>> type(load_retinaface(f)).__name__
        'RetinaFace'
    """

    path = Path(path)
    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise ModelLoadError(
            f"cannot read RetinaFace weights {path}: {e}; expected a .safetensors file such as "
            "retinaface_mobilenet0.25.safetensors"
        ) from e
    model = RetinaFace()
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k} (file {tuple(state[k].shape)}, network {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    )
    if missing or unexpected or misshaped:
        parts = [
            f"{label} ({len(keys)}): {', '.join(keys[:20])}{' ...' if len(keys) > 20 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped))
            if keys
        ]
        raise ModelLoadError(
            f"{path} does not hold RetinaFace-MobileNet0.25 weights: " + "; ".join(parts)
            + ". Use retinaface_mobilenet0.25.safetensors or a file converted from mobilenet0.25_Final.pth"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelLoadError(f"cannot load RetinaFace weights from {path}: {e}") from e
    model.eval()
    if fuse:
        fold_sequential_batchnorm(model)
    target = resolve_device(device)
    try:
        # Channels-last runs this depthwise-heavy network about 1.5x faster on CPU.
        return model.to(target).to(memory_format=torch.channels_last)
    except (RuntimeError, AssertionError) as e:  # torch raises AssertionError without CUDA support
        raise ConfigError(f"cannot run the face detector on device {str(target)!r}: {e}; use 'cpu' or None") from e


@functools.lru_cache(maxsize=32)
def _priors_cached(height: int, width: int, device: str) -> torch.Tensor:
    parts = []
    for step, sizes in zip(STEPS, MIN_SIZES):
        rows, cols = math.ceil(height / step), math.ceil(width / step)
        cy = (torch.arange(rows, dtype=torch.float32) + 0.5) * step / height
        cx = (torch.arange(cols, dtype=torch.float32) + 0.5) * step / width
        cyy, cxx = torch.meshgrid(cy, cx, indexing="ij")
        s = torch.tensor(sizes, dtype=torch.float32)
        k = len(sizes)
        level = torch.stack(
            (
                cxx[..., None].expand(rows, cols, k),
                cyy[..., None].expand(rows, cols, k),
                (s / width).expand(rows, cols, k),
                (s / height).expand(rows, cols, k),
            ),
            dim=-1,
        )
        parts.append(level.reshape(-1, 4))
    return torch.cat(parts).to(device)


def make_priors(height: int, width: int, *, device: str | torch.device = "cpu") -> torch.Tensor:
    """The anchors for an input of ``height`` x ``width`` pixels.

    Order: level (strides 8, 16, 32), then row, column and anchor size, as the heads
    emit them. Each row is ``(cx, cy, w, h)`` relative to the input size.

    Args:
        height: Input height in pixels.
        width: Input width in pixels.
        device: Where the tensor lives.

    Returns:
        A float tensor of shape ``(P, 4)``.

    Example:
        >>> p = make_priors(32, 32)
        >>> p.shape  # (4*4 + 2*2 + 1*1) positions x 2 sizes
        torch.Size([42, 4])
        >>> [round(v, 4) for v in p[0].tolist()]
        [0.125, 0.125, 0.5, 0.5]
    """
    return _priors_cached(int(height), int(width), str(torch.device(device)))


def decode_boxes(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Turn box offsets into ``(x1, y1, x2, y2)`` relative to the input size.

    Args:
        loc: Offsets ``(..., P, 4)`` from the network.
        priors: ``(P, 4)`` from :func:`make_priors`.

    Returns:
        Boxes of the same shape as ``loc``.

    Example:
        >>> [round(v, 4) for v in decode_boxes(torch.zeros(1, 4), torch.tensor([[0.5, 0.5, 0.2, 0.4]]))[0].tolist()]
        [0.4, 0.3, 0.6, 0.7]
    """
    centre = priors[..., :2] + loc[..., :2] * VARIANCES[0] * priors[..., 2:]
    size = priors[..., 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    top_left = centre - size / 2
    return torch.cat((top_left, top_left + size), dim=-1)


def decode_landmarks(landmarks: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """Turn landmark offsets into five ``(x, y)`` points relative to the input size.

    Args:
        landmarks: Offsets ``(..., P, 10)`` from the network.
        priors: ``(P, 4)`` from :func:`make_priors`.

    Returns:
        Points of shape ``(..., P, 5, 2)``: left eye, right eye, nose, left and right
        mouth corners.

    Example:
        >>> decode_landmarks(torch.zeros(1, 10), torch.tensor([[0.5, 0.5, 0.2, 0.2]])).shape
        torch.Size([1, 5, 2])
    """
    offsets = landmarks.reshape(*landmarks.shape[:-1], 5, 2)
    return priors[..., None, :2] + offsets * VARIANCES[0] * priors[..., None, 2:]


@dataclass(frozen=True)
class Detections:
    """Faces found in one image, in its original pixel coordinates, best first.

    Attributes:
        boxes: ``(K, 4)`` float array of ``(x1, y1, x2, y2)``.
        landmarks: ``(K, 5, 2)`` float array of ``(x, y)`` points.
        scores: ``(K,)`` face confidences in [0, 1].

    Example:
        >>> Detections(np.zeros((0, 4)), np.zeros((0, 5, 2)), np.zeros(0)).scores.size
        0
    """

    boxes: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray


def _prepare(image: np.ndarray, scale: float, size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """RGB uint8 HWC -> BGR float CHW minus the means, resized to ``size`` (h, w)."""
    if not (image.flags.writeable and image.flags.c_contiguous):
        image = np.array(image)  # torch warns on read-only arrays (decoded frames often are)
    t = torch.from_numpy(image).to(device).permute(2, 0, 1).unsqueeze(0)
    if scale < 1.0:
        # CPU resizes uint8 directly (a fast SIMD path); CUDA needs float input.
        if device.type != "cpu":
            t = t.float()
        t = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
    t = t[0].flip(0).float()
    return t - torch.tensor(MEAN_BGR, device=device).view(3, 1, 1)


def detect_faces(
    model: nn.Module,
    images: Sequence[np.ndarray],
    *,
    min_confidence: float = 0.5,
    nms_iou: float = 0.4,
    max_size: int = 640,
    batch_size: int = 16,
) -> list[Detections]:
    """Find faces in RGB ``uint8`` images of any sizes, batched.

    Each image is downscaled (never upscaled) so its longer side is at most
    ``max_size``; images that come to the same size are batched together (no
    padding, so an image's faces do not depend on the rest of the batch); boxes and
    landmarks are mapped back to each image's own pixels.

    Args:
        model: A loaded :class:`RetinaFace` (inputs go to its device), or any module with its
            inputs and outputs, such as :class:`~deepfakedetect.faces.onnx.OnnxRetinaFace`.
        images: RGB ``uint8`` arrays of shape ``(H, W, 3)``.
        min_confidence: Faces scoring below this are dropped before NMS.
        nms_iou: Overlap above which the weaker of two boxes is suppressed.
        max_size: Longest side, in pixels, at which detection runs.
        batch_size: Images per forward pass.

    Returns:
        One :class:`Detections` per image, in the order given.

    Example:
        >>> net = RetinaFace().eval()
        >>> out = detect_faces(net, [np.zeros((48, 64, 3), np.uint8)], min_confidence=1.0)
        >>> len(out), out[0].boxes.shape
        (1, (0, 4))
    """
    # An ONNX Runtime network (faces/onnx.py) has no parameters and runs on the CPU.
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    results: list[Detections | None] = [None] * len(images)
    # Only images of the same detection size share a batch: padding one image to
    # another's size changes what the network sees near its border, and an image's
    # faces should not depend on what else was in the batch.
    groups: dict[tuple[int, int], list[tuple[int, float]]] = {}
    for i, img in enumerate(images):
        h, w = img.shape[:2]
        scale = min(1.0, max_size / max(h, w))
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        groups.setdefault(size, []).append((i, scale))
    with torch.inference_mode():
        for size, members in groups.items():
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                batch = torch.stack([_prepare(images[i], scale, size, device) for i, scale in chunk])
                batch = batch.contiguous(memory_format=torch.channels_last)
                originals = [images[i].shape[:2] for i, _ in chunk]
                for (i, _), det in zip(chunk, _detect_batch(model, batch, originals, min_confidence, nms_iou)):
                    results[i] = det
    return [r for r in results if r is not None]


def _detect_batch(
    model: nn.Module,
    batch: torch.Tensor,
    originals: list[tuple[int, int]],
    min_confidence: float,
    nms_iou: float,
) -> list[Detections]:
    n, _, ph, pw = batch.shape
    device = batch.device
    loc, logits, landmark_offsets = model(batch)
    scores = logits.float().softmax(dim=-1)[..., 1]
    priors = make_priors(ph, pw, device=device)

    # From input-relative coordinates to each original image's pixels.
    fx_img = torch.tensor([float(w) for _, w in originals], device=device)
    fy_img = torch.tensor([float(h) for h, _ in originals], device=device)

    keep_img, keep_prior = [], []
    for b in range(n):
        idx = torch.nonzero(scores[b] >= min_confidence).flatten()
        if idx.numel() > _PRE_NMS_TOP_K:
            idx = idx[scores[b, idx].topk(_PRE_NMS_TOP_K).indices]
        keep_img.append(torch.full_like(idx, b))
        keep_prior.append(idx)
    img_idx = torch.cat(keep_img)
    prior_idx = torch.cat(keep_prior)

    boxes = decode_boxes(loc[img_idx, prior_idx].float(), priors[prior_idx])
    points = decode_landmarks(landmark_offsets[img_idx, prior_idx].float(), priors[prior_idx])
    fx = fx_img[img_idx]
    fy = fy_img[img_idx]
    boxes = boxes * torch.stack((fx, fy, fx, fy), dim=1)
    points = points * torch.stack((fx, fy), dim=1)[:, None, :]
    conf = scores[img_idx, prior_idx]

    kept = batched_nms(boxes, conf, img_idx, nms_iou)  # sorted by decreasing score
    boxes_np = boxes[kept].cpu().numpy().astype(np.float64)
    points_np = points[kept].cpu().numpy().astype(np.float64)
    conf_np = conf[kept].cpu().numpy().astype(np.float64)
    img_np = img_idx[kept].cpu().numpy()
    out = []
    for b in range(n):
        sel = np.flatnonzero(img_np == b)[:_MAX_FACES]
        out.append(Detections(boxes_np[sel], points_np[sel], conf_np[sel]))
    return out
