"""Self-blended images: synthetic fakes made from real faces, for training.

A face swap or a reenactment pastes generated pixels into a real frame through a soft
mask, and the seam (a colour, sharpness or geometry mismatch along the mask's edge)
is the trace most manipulation methods share. Self-blended images (SBI; Shiohara and
Yamasaki, "Detecting Deepfakes with Self-Blended Images", CVPR 2022) make such a seam
from a real face alone: a copy of the face, slightly shifted, rescaled, recoloured
and sharpened or blurred, is blended back into the original through a randomly
deformed, feathered face mask. A detector trained on them learns the seam rather
than the artefacts of one generator, which is what carries over to methods and
identities it has not seen.

The original draws its mask from 81 facial landmarks. Training inputs here are face
crops centred on a RetinaFace box (or whole face photos, which are centred too), so
the mask is an ellipse over the inner face whose size, position, aspect and outline
are randomised instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

__all__ = ["self_blend"]

# Ellipse semi-axes as fractions of the crop side, before random scaling: a face crop
# with margin 1.3 has the face box over the middle 77%; the mask covers its inner part
# (brows to chin, cheek to cheek), as a landmark hull would.
_AXES = (0.28, 0.33)
_CENTRE_Y = 0.52  # a little below the middle: the box includes the forehead


def _uniform(lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(()))


def _mask(size: int) -> torch.Tensor:
    """A soft (1, S, S) face mask in [0, 1]: a jittered, warped, feathered ellipse."""
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    # A smooth random warp of the outline: a 4x4 displacement field, upsampled.
    warp = F.interpolate(torch.randn(1, 2, 4, 4) * 0.025, size=(size, size), mode="bicubic", align_corners=False)[0]
    cx = 0.5 + _uniform(-0.03, 0.03)
    cy = _CENTRE_Y + _uniform(-0.03, 0.03)
    scale = _uniform(0.8, 1.1)
    ax = _AXES[0] * scale * _uniform(0.9, 1.1)
    ay = _AXES[1] * scale * _uniform(0.9, 1.1)
    r = ((xx + warp[0] - cx) / ax) ** 2 + ((yy + warp[1] - cy) / ay) ** 2
    mask = (r <= 1.0).float()[None]
    # Feather the edge: a Gaussian blur of 1-6% of the side, then maybe harden it again,
    # so seams range from sharp to gradual.
    sigma = size * _uniform(0.01, 0.06)
    k = 2 * math.ceil(3 * sigma) + 1
    if k < size:
        mask = TF.gaussian_blur(mask, [k, k], [sigma, sigma])
    if float(torch.rand(())) < 0.5:
        mask = (mask * _uniform(1.0, 2.0)).clamp_(0.0, 1.0)
    return mask


def _source(image: torch.Tensor) -> torch.Tensor:
    """The copy pasted back: shifted and rescaled a little, recoloured, sharpened or blurred (float, 0..1)."""
    size = image.shape[-1]
    x = image[None]
    # Geometry: scale 0.94-1.06 and a shift of up to 3% of the side, as a misaligned paste would be.
    s = _uniform(0.94, 1.06)
    tx, ty = _uniform(-0.03, 0.03) * 2, _uniform(-0.03, 0.03) * 2  # affine_grid spans [-1, 1]
    theta = torch.tensor([[[1.0 / s, 0.0, tx], [0.0, 1.0 / s, ty]]])
    grid = F.affine_grid(theta, [1, 3, size, size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # Colour: brightness, contrast and a shift per channel, as a generated face's colour drifts.
    gain = _uniform(0.9, 1.1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * _uniform(0.9, 1.1) + mean * gain + (torch.rand(1, 3, 1, 1) - 0.5) * 0.08
    # Detail: blur (an upsampled, smoother face) or sharpen (a crisper one).
    if float(torch.rand(())) < 0.5:
        sigma = _uniform(0.3, 1.2)
        x = TF.gaussian_blur(x, [5, 5], [sigma, sigma])
    else:
        soft = TF.gaussian_blur(x, [5, 5], [1.0, 1.0])
        x = x + (x - soft) * _uniform(0.2, 1.0)
    return x[0].clamp_(0.0, 1.0)


def self_blend(image: torch.Tensor) -> torch.Tensor:
    """A self-blended fake of a real face: a transformed copy blended in through a face mask.

    Randomness comes from torch's global generator (the training dataset seeds a
    fork of it per sample and epoch, so a run is reproducible).

    Args:
        image: A ``uint8`` (3, S, S) face crop or face photo, face roughly centred.

    Returns:
        A ``uint8`` (3, S, S) image: outside the mask it is ``image`` exactly; inside,
        the transformed copy, at full strength or partly (blend ratio 0.25-1).

    Example:
        >>> _ = torch.manual_seed(0)
        >>> face = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
        >>> fake = self_blend(face)
        >>> fake.shape, fake.dtype, bool((fake[:, 0, 0] == face[:, 0, 0]).all()), bool((fake != face).any())
        (torch.Size([3, 64, 64]), torch.uint8, True, True)
    """
    if image.dtype != torch.uint8 or image.ndim != 3 or image.shape[0] != 3 or image.shape[1] != image.shape[2]:
        raise ValueError(f"self_blend needs a uint8 (3, S, S) image, got {image.dtype} {tuple(image.shape)}")
    target = image.float() / 255.0
    source = _source(target)
    mask = _mask(image.shape[-1])
    ratio = 1.0 if float(torch.rand(())) < 0.5 else _uniform(0.25, 1.0)
    out = target + (source - target) * (mask * ratio)
    return out.mul_(255.0).round_().clamp_(0, 255).to(torch.uint8)
