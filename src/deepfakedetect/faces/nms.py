"""Non-maximum suppression, as ``torchvision.ops.nms`` and ``batched_nms`` compute it.

The face detector needs only this from torchvision, and importing torchvision costs
about as much as importing torch (its ``ops`` package pulls in torch's compiler stack).
These functions reproduce torchvision's CPU results exactly: boxes sorted by score
(stable, descending), greedy suppression of every later box whose IoU with a kept box
is above the threshold, IoU in the boxes' own float type, ``batched_nms`` by the same
coordinate-offset trick below 1,000 boxes and per group above. ``tests/faces/test_nms.py``
compares them with torchvision on random and on tied boxes.

The greedy loop runs in NumPy over the boxes kept (a few per face), each step
comparing one box with all the remaining ones.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["batched_nms", "nms"]

# torchvision switches from the offset trick to a loop over groups above this many
# box coordinates on a CPU (boxes.numel(), i.e. 4 per box).
_VANILLA_ABOVE_NUMEL = 4000


def _nms_numpy(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    zero = boxes.dtype.type(0)
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        # torchvision compares in double precision (its threshold is a double).
        order = rest[~(iou.astype(np.float64) > iou_threshold)]
    return np.asarray(keep, dtype=np.int64)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Indices of the boxes kept by greedy non-maximum suppression, by decreasing score.

    Args:
        boxes: ``(N, 4)`` float tensor of ``(x1, y1, x2, y2)``.
        scores: ``(N,)`` float tensor.
        iou_threshold: A box is dropped when its IoU with a higher-scoring kept box is above this.

    Returns:
        An ``int64`` tensor of indices into ``boxes``, on ``boxes``' device.

    Example:
        >>> b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
        >>> nms(b, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist()
        [0, 2]
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    b = boxes.detach().cpu().numpy()
    s = scores.detach().cpu().numpy()
    return torch.from_numpy(_nms_numpy(b, s, float(iou_threshold))).to(boxes.device)


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Non-maximum suppression within each group (``idxs``), as ``torchvision.ops.batched_nms``.

    Args:
        boxes: ``(N, 4)`` float tensor of ``(x1, y1, x2, y2)``.
        scores: ``(N,)`` float tensor.
        idxs: ``(N,)`` integer group of each box (boxes of different groups never suppress each other).
        iou_threshold: See :func:`nms`.

    Returns:
        Indices of the kept boxes, by decreasing score.

    Example:
        >>> b = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0]])
        >>> batched_nms(b, torch.tensor([0.9, 0.8]), torch.tensor([0, 1]), 0.5).tolist()
        [0, 1]
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    if boxes.numel() > _VANILLA_ABOVE_NUMEL:
        keep_mask = torch.zeros_like(scores, dtype=torch.bool)
        for group in torch.unique(idxs):
            members = torch.where(idxs == group)[0]
            keep_mask[members[nms(boxes[members], scores[members], iou_threshold)]] = True
        kept = torch.where(keep_mask)[0]
        # The same (unstable) sort as torchvision, so that tied scores come out in the same order.
        return kept[scores[kept].sort(descending=True)[1]]
    # Shift each group's boxes far enough apart that boxes of different groups cannot overlap.
    offsets = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
    return nms(boxes + offsets[:, None], scores, iou_threshold)
